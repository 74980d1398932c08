//! Filtered reads for reports and status views.

use rusqlite::types::Value;
use rusqlite::Connection;

use crate::model::{Quantity, Timestamp};

use super::schema::{slot_index, SERIES_INDEX_CONDITION};
use super::series::SeriesTable;
use super::{limit_to_sql, row, RecordKind, Store, StoreError, Stored};

/// Which records to read. Every filter left `None` matches everything; `from` is
/// inclusive and `to` exclusive, so consecutive windows never overlap.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    pub kind: Option<RecordKind>,
    pub stack: Option<String>,
    pub device: Option<String>,
    pub channel: Option<String>,
    pub quantity: Option<Quantity>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub limit: Option<usize>,
}

impl Query {
    fn filters_series(&self) -> bool {
        self.stack.is_some()
            || self.device.is_some()
            || self.channel.is_some()
            || self.quantity.is_some()
    }
}

impl Store {
    /// Matching records ordered by `ts`, then seq.
    pub fn query(&self, q: &Query) -> Result<Vec<Stored>, StoreError> {
        let mut out = Vec::new();
        self.query_each(q, &mut |stored| out.push(stored))?;
        Ok(out)
    }

    /// Hands `each` the matching records one at a time, ordered by `ts`, then seq: a reader
    /// that keeps little of what it reads (a restart) holds one row, not all of them. A
    /// `dyn` callback keeps one copy of this code in the binary, whatever the callers.
    pub fn query_each(&self, q: &Query, each: &mut dyn FnMut(Stored)) -> Result<(), StoreError> {
        let mut series = self.series.borrow_mut();
        let Some((filter, mut params)) = filter_of(q, &self.conn, &mut series, Reach::Whole)?
        else {
            return Ok(());
        };
        let sql = format!(
            "SELECT {} FROM record {filter} ORDER BY ts, seq LIMIT ?",
            row::COLUMNS
        );
        params.push(Value::Integer(limit_to_sql(q.limit)));
        // Not cached: the text varies with the filters and the number of series.
        let mut stmt = self.conn.prepare(&sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        while let Some(found) = rows.next()? {
            each(row::decode(found, &self.conn, &mut series)?);
        }
        Ok(())
    }

    /// The newest `ts` among the records `q` matches (its limit does not apply). The time
    /// index is walked back from `q.to`, so the cost is what lies between `to` and the
    /// answer, not the whole range.
    pub fn newest_ts(&self, q: &Query) -> Result<Option<Timestamp>, StoreError> {
        let mut series = self.series.borrow_mut();
        let Some((filter, params)) = filter_of(q, &self.conn, &mut series, Reach::Newest)? else {
            return Ok(None);
        };
        let sql = format!("SELECT ts FROM record {filter} ORDER BY ts DESC LIMIT 1");
        let mut stmt = self.conn.prepare(&sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        match rows.next()? {
            Some(row) => Ok(Some(Timestamp::from_millis(row.get(0)?))),
            None => Ok(None),
        }
    }
}

/// How much of the matching rows a statement reads.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Reach {
    /// Every match: per-series reads of a window seek their series slot by slot.
    Whole,
    /// Only the newest match: the time-led index walked back from `to` stops at it, where
    /// slot seeks would visit every slot of the window first.
    Newest,
}

/// Slot seeks beyond this many cost more than they save even against a scan of every
/// series: a year of minutes.
const MAX_SLOTS: i64 = 530_000;

/// The index hint and WHERE clause, and their parameters; `None` when no series matches,
/// so nothing can.
///
/// Kinds go into the text as literals: SQLite picks the partial per-series index
/// (schema migration 3) only when it can see from the statement itself that the query
/// implies the index's condition. Without a kind, every kind is listed, which lets the
/// time-led index serve a time range. A read of named series over a window of a bulk kind
/// seeks each slot of its slotted index (migration 6); the slots are generated in the
/// statement so that their number does not run into SQLite's limit on parameters.
fn filter_of(
    q: &Query,
    conn: &Connection,
    series: &mut SeriesTable,
    reach: Reach,
) -> Result<Option<(String, Vec<Value>)>, StoreError> {
    let mut sql = String::from("WHERE ");
    let mut params: Vec<Value> = Vec::new();
    let mut slotted = false;
    if let (Reach::Whole, Some(kind), Some(from), Some(to), true) =
        (reach, q.kind, q.from, q.to, q.filters_series())
    {
        if let Some(slots) = slot_index(kind) {
            let first = from.millis() / slots.slot_ms;
            let last = (to.millis() - 1) / slots.slot_ms;
            if last >= first && last - first < MAX_SLOTS {
                sql = format!(
                    "INDEXED BY {} WHERE kind = {} AND ts / {} IN (WITH RECURSIVE slot(n) AS \
                     (SELECT ? UNION ALL SELECT n + 1 FROM slot WHERE n < ?) SELECT n FROM slot)",
                    slots.name,
                    kind.code(),
                    slots.slot_ms
                );
                params.push(Value::Integer(first));
                params.push(Value::Integer(last));
                slotted = true;
            }
        }
    }
    match q.kind {
        Some(_) if slotted => {}
        Some(kind) if kind.in_series_index() => {
            sql.push_str(&format!(
                "{SERIES_INDEX_CONDITION} AND kind = {}",
                kind.code()
            ));
        }
        Some(kind) => sql.push_str(&format!("kind = {}", kind.code())),
        None => {
            let codes: Vec<String> = RecordKind::ALL
                .iter()
                .map(|k| k.code().to_string())
                .collect();
            sql.push_str(&format!("kind IN ({})", codes.join(", ")));
        }
    }
    if q.filters_series() {
        series.refresh(conn)?;
        let ids = series.ids_where(|k| {
            q.stack.as_deref().is_none_or(|s| *k.stack == *s)
                && q.device.as_deref().is_none_or(|d| *k.device == *d)
                && q.channel.as_deref().is_none_or(|c| *k.channel == *c)
                && q.quantity.is_none_or(|qty| k.quantity == Some(qty))
        });
        if ids.is_empty() {
            return Ok(None);
        }
        let placeholders = vec!["?"; ids.len()].join(", ");
        sql.push_str(&format!(" AND series IN ({placeholders})"));
        params.extend(ids.into_iter().map(Value::Integer));
    }
    if let Some(from) = q.from {
        sql.push_str(" AND ts >= ?");
        params.push(Value::Integer(from.millis()));
    }
    if let Some(to) = q.to {
        sql.push_str(" AND ts < ?");
        params.push(Value::Integer(to.millis()));
    }
    Ok(Some((sql, params)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Record, StoreOptions};

    const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    fn store_with_series(dir: &tempfile::TempDir) -> Store {
        let mut store = Store::open(&dir.path().join("cems.db"), StoreOptions::default())
            .unwrap_or_else(|e| panic!("open: {e}"));
        let records: Vec<Record> = RecordKind::ALL
            .into_iter()
            .map(|kind| {
                Record::new(
                    kind,
                    Timestamp::from_millis(T0),
                    "s1".into(),
                    "a1".into(),
                    "so2".into(),
                )
            })
            .collect();
        let appended = store.append(&records);
        assert!(appended.is_ok(), "append: {appended:?}");
        store
    }

    /// SQLite's plan for `q`, its steps joined by " | ".
    fn plan(store: &Store, q: &Query) -> String {
        let mut series = store.series.borrow_mut();
        let (filter, params) = filter_of(q, &store.conn, &mut series, Reach::Whole)
            .unwrap_or_else(|e| panic!("filter: {e}"))
            .unwrap_or_else(|| panic!("the series exists"));
        let sql = format!(
            "EXPLAIN QUERY PLAN SELECT {} FROM record {filter}",
            row::COLUMNS
        );
        let mut stmt = store
            .conn
            .prepare(&sql)
            .unwrap_or_else(|e| panic!("prepare: {e}"));
        let steps: Vec<String> = stmt
            .query_map(rusqlite::params_from_iter(params), |row| row.get(3))
            .and_then(|rows| rows.collect())
            .unwrap_or_else(|e| panic!("plan: {e}"));
        steps.join(" | ")
    }

    /// Bulk kinds are read by time, sparse kinds by series; a plan that scans the table
    /// would read every record the store holds.
    #[test]
    fn every_query_shape_reads_through_an_index() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let store = store_with_series(&dir);
        let from = Some(Timestamp::from_millis(T0));
        let to = Some(Timestamp::from_millis(T0 + 86_400_000));
        let by_time = "USING INDEX record_kind_ts_series";
        let by_series = "USING INDEX record_series_period";
        let cases = [
            (Some(RecordKind::Reading), None, by_time),
            (Some(RecordKind::Reading), Some("s1"), by_time),
            (
                Some(RecordKind::Minute),
                Some("s1"),
                "USING INDEX record_minute_slot",
            ),
            (Some(RecordKind::Hour), Some("s1"), by_series),
            (Some(RecordKind::Day), Some("s1"), by_series),
            (Some(RecordKind::Exceedance), Some("s1"), by_series),
            (Some(RecordKind::Hour), None, by_time),
            (None, None, by_time),
        ];
        for (kind, stack, index) in cases {
            let q = Query {
                kind,
                stack: stack.map(str::to_string),
                from,
                to,
                ..Query::default()
            };
            let plan = plan(&store, &q);
            assert!(plan.contains(index), "{q:?}: expected {index}, got {plan}");
        }
    }

    /// The slot seeks must find exactly what the time-led scan finds: minutes stamped off
    /// the minute, at either edge of the window, and nothing of other series.
    #[test]
    fn slotted_reads_return_what_a_scan_returns() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let mut store = store_with_series(&dir);
        let minute = |ts: i64, device: &str| {
            Record::new(
                RecordKind::Minute,
                Timestamp::from_millis(T0 + ts),
                "s1".into(),
                device.into(),
                "so2".into(),
            )
        };
        let appended = store.append(&[
            minute(59_999, "a1"),
            minute(60_000, "a2"),
            minute(61_500, "a1"),
            minute(119_999, "a1"),
            minute(120_000, "a1"),
            minute(-1, "a1"),
        ]);
        assert!(appended.is_ok(), "append: {appended:?}");
        let read = |device: Option<&str>, from: i64, to: i64| -> Vec<i64> {
            store
                .query(&Query {
                    kind: Some(RecordKind::Minute),
                    device: device.map(str::to_string),
                    from: Some(Timestamp::from_millis(T0 + from)),
                    to: Some(Timestamp::from_millis(T0 + to)),
                    ..Query::default()
                })
                .unwrap_or_else(|e| panic!("query: {e}"))
                .iter()
                .map(|s| s.record.ts.millis() - T0)
                .collect()
        };
        // a1 also has the minute at +0 from store_with_series.
        assert_eq!(read(Some("a1"), 0, 120_000), [0, 59_999, 61_500, 119_999]);
        assert_eq!(
            read(Some("a1"), 59_999, 120_001),
            [59_999, 61_500, 119_999, 120_000]
        );
        assert_eq!(read(Some("a1"), -1, 1), [-1, 0]);
        assert_eq!(read(Some("a2"), 0, 120_000), [60_000]);
        // Without a series filter the time-led index serves; both must agree.
        assert_eq!(read(None, 0, 120_000), [0, 59_999, 60_000, 61_500, 119_999]);
    }

    #[test]
    fn newest_ts_is_the_latest_match_before_to() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let mut store = store_with_series(&dir);
        let minute = |ts: i64, device: &str| {
            Record::new(
                RecordKind::Minute,
                Timestamp::from_millis(ts),
                "s1".into(),
                device.into(),
                "so2".into(),
            )
        };
        let appended = store.append(&[
            minute(T0 + 60_000, "a1"),
            minute(T0 + 120_000, "a2"),
            minute(T0 + 180_000, "a1"),
        ]);
        assert!(appended.is_ok(), "append: {appended:?}");
        let newest = |device: &str, from: i64, to: i64| {
            store
                .newest_ts(&Query {
                    kind: Some(RecordKind::Minute),
                    device: Some(device.to_string()),
                    from: Some(Timestamp::from_millis(from)),
                    to: Some(Timestamp::from_millis(to)),
                    ..Query::default()
                })
                .unwrap_or_else(|e| panic!("newest: {e}"))
                .map(|ts| ts.millis() - T0)
        };
        // a1 has minutes at +0 (store_with_series), +1 and +3 min; `to` is exclusive.
        assert_eq!(newest("a1", T0, T0 + 180_000), Some(60_000));
        assert_eq!(newest("a1", T0, T0 + 180_001), Some(180_000));
        assert_eq!(newest("a2", T0, T0 + 180_000), Some(120_000));
        assert_eq!(newest("a1", T0 + 61_000, T0 + 180_000), None);
        assert_eq!(newest("nobody", T0, T0 + 180_000), None);
    }
}
