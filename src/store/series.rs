//! Series interning: each distinct (stack, device, channel, quantity, unit) is stored once
//! and record rows refer to it by integer id, which keeps rows small and inserts fast.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::Connection;

use crate::model::{Quantity, Unit};

use super::{Record, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct SeriesKey {
    pub stack: Arc<str>,
    pub device: Arc<str>,
    pub channel: Arc<str>,
    pub quantity: Option<Quantity>,
    pub unit: Option<Unit>,
}

impl SeriesKey {
    fn of(record: &Record) -> SeriesKey {
        SeriesKey {
            stack: record.stack.clone(),
            device: record.device.clone(),
            channel: record.channel.clone(),
            quantity: record.quantity,
            unit: record.unit,
        }
    }
}

/// A series by the addresses of its name strings. Producers reuse one `Arc` per name for
/// every record (the listener per connection, the pipeline per configured channel, the
/// store's reads per series), so comparing addresses finds the series without hashing or
/// comparing the text. Equal names at other addresses only miss; whoever keys by address
/// must hold the records (or their names) while the key is in use, so that an address is
/// not reused for another name.
pub(crate) type NamesAt = (usize, usize, usize, Option<Quantity>, Option<Unit>);

pub(crate) fn names_at(record: &Record) -> NamesAt {
    let at = |name: &Arc<str>| Arc::as_ptr(name).cast::<u8>() as usize;
    (
        at(&record.stack),
        at(&record.device),
        at(&record.channel),
        record.quantity,
        record.unit,
    )
}

/// Entries kept in the by-address map before it starts over, so producers that make new
/// strings for every record cannot grow it without bound.
const NAMES_AT_LIMIT: usize = 65_536;

/// In-memory mirror of the `series` table. Other connections on the same file may add
/// series, so a miss is answered by reloading what was added since the last look.
#[derive(Debug, Default)]
pub(super) struct SeriesTable {
    ids: HashMap<SeriesKey, i64>,
    keys: HashMap<i64, SeriesKey>,
    /// The id and the record's own names: holding those `Arc`s keeps their addresses from
    /// being reused for other text while the entry exists.
    by_address: HashMap<NamesAt, (i64, SeriesKey)>,
    loaded_up_to: i64,
}

impl SeriesTable {
    pub fn refresh(&mut self, conn: &Connection) -> Result<(), StoreError> {
        let mut stmt = conn.prepare_cached(
            "SELECT id, stack, device, channel, quantity, unit FROM series
             WHERE id > ?1 ORDER BY id",
        )?;
        let mut rows = stmt.query([self.loaded_up_to])?;
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            let stack: String = row.get(1)?;
            let device: String = row.get(2)?;
            let channel: String = row.get(3)?;
            let quantity: Option<String> = row.get(4)?;
            let unit: Option<String> = row.get(5)?;
            let corrupt = |detail: String| StoreError::Corrupt {
                row: id,
                detail: format!("series: {detail}"),
            };
            let key = SeriesKey {
                stack: stack.into(),
                device: device.into(),
                channel: channel.into(),
                quantity: quantity
                    .map(|q| q.parse::<Quantity>())
                    .transpose()
                    .map_err(corrupt)?,
                unit: unit
                    .map(|u| u.parse::<Unit>())
                    .transpose()
                    .map_err(corrupt)?,
            };
            self.remember(key, id);
            self.loaded_up_to = id;
        }
        Ok(())
    }

    /// The id of the record's series, adding the series if it is new. Must run inside the
    /// transaction that inserts the record; if that transaction fails, call `forget_all`.
    pub fn intern(&mut self, conn: &Connection, record: &Record) -> Result<i64, StoreError> {
        let at = names_at(record);
        if let Some((id, _)) = self.by_address.get(&at) {
            return Ok(*id);
        }
        let key = SeriesKey::of(record);
        let id = match self.ids.get(&key) {
            Some(id) => *id,
            None => self.insert(conn, key.clone())?,
        };
        if self.by_address.len() >= NAMES_AT_LIMIT {
            self.by_address.clear();
        }
        self.by_address.insert(at, (id, key));
        Ok(id)
    }

    fn insert(&mut self, conn: &Connection, key: SeriesKey) -> Result<i64, StoreError> {
        let quantity = key.quantity.map(Quantity::name);
        let unit = key.unit.map(Unit::symbol);
        let params = rusqlite::params![&*key.stack, &*key.device, &*key.channel, quantity, unit];
        // OR IGNORE and a read back, because another connection may have added it already.
        conn.prepare_cached(
            "INSERT OR IGNORE INTO series (stack, device, channel, quantity, unit)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params)?;
        let id: i64 = conn
            .prepare_cached(
                "SELECT id FROM series
                 WHERE stack = ?1 AND device = ?2 AND channel = ?3
                   AND coalesce(quantity, '') = coalesce(?4, '')
                   AND coalesce(unit, '') = coalesce(?5, '')",
            )?
            .query_row(params, |row| row.get(0))?;
        self.remember(key, id);
        Ok(id)
    }

    pub fn key(&mut self, conn: &Connection, id: i64) -> Result<&SeriesKey, StoreError> {
        if !self.keys.contains_key(&id) {
            self.refresh(conn)?;
        }
        self.keys.get(&id).ok_or_else(|| StoreError::Corrupt {
            row: id,
            detail: "a record refers to a series that does not exist".to_string(),
        })
    }

    /// Ids of every known series the filter accepts, in id order.
    pub fn ids_where(&self, mut accept: impl FnMut(&SeriesKey) -> bool) -> Vec<i64> {
        let mut ids: Vec<i64> = self
            .keys
            .iter()
            .filter(|(_, key)| accept(key))
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Drops everything, so series a rolled-back transaction added are not trusted.
    pub fn forget_all(&mut self) {
        *self = SeriesTable::default();
    }

    fn remember(&mut self, key: SeriesKey, id: i64) {
        self.ids.insert(key.clone(), id);
        self.keys.insert(id, key);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::model::{Quantity, Timestamp, Unit};
    use crate::store::{Record, RecordKind, Store, StoreOptions};

    fn record(stack: &Arc<str>, channel: &Arc<str>, quantity: Quantity) -> Record {
        Record {
            quantity: Some(quantity),
            unit: Some(Unit::MgPerM3),
            ..Record::new(
                RecordKind::Minute,
                Timestamp::from_millis(0),
                stack.clone(),
                "MN1".into(),
                channel.clone(),
            )
        }
    }

    /// Shared names, fresh copies of the same text and a changed quantity, in one store.
    #[test]
    fn series_are_found_by_shared_names_and_by_text_alike() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let mut store = Store::open(&dir.path().join("cems.db"), StoreOptions::default())
            .unwrap_or_else(|e| panic!("open: {e}"));
        let stack: Arc<str> = "plant.unit1".into();
        let channel: Arc<str> = "a21026".into();
        let shared = record(&stack, &channel, Quantity::SO2);
        let copied = record(&"plant.unit1".into(), &"a21026".into(), Quantity::SO2);
        let other_quantity = record(&stack, &channel, Quantity::NOx);
        let appended = store.append(&[shared.clone(), shared, copied, other_quantity]);
        assert!(appended.is_ok(), "append: {appended:?}");
        let series: Vec<i64> = store
            .conn
            .prepare("SELECT series FROM record ORDER BY seq")
            .and_then(|mut stmt| stmt.query_map([], |row| row.get(0))?.collect())
            .unwrap_or_else(|e| panic!("read back: {e}"));
        // The first three name one series; the NOx one (same strings) is the second.
        assert_eq!(series, vec![1, 1, 1, 2]);
    }
}
