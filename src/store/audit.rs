//! The audit trail's rows: one entry per changed parameter, each chained to the one before
//! (SHA-256 over the previous entry's hash and its own columns). Retention never deletes
//! them. Each entry also goes out as an event record on channel [`AUDIT_CHANNEL`], so the
//! sinks carry it with their own cursors (InfluxDB, the bureau's CN 3020).

use std::collections::BTreeMap;
use std::fmt;

use rusqlite::types::ValueRef;
use rusqlite::{OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};

use crate::model::Timestamp;

use super::chain::{self, Digest};
use super::{Record, RecordKind, Store, StoreError};

/// The channel of the event records that carry audit entries to the sinks.
pub const AUDIT_CHANNEL: &str = "audit";

/// Tags the entry encoding, apart from the commit chain's.
const ENTRY_DOMAIN: &[u8] = b"cemsd audit entry v1";

/// How a change took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditHow {
    /// Found when the daemon started: the files changed while it was stopped.
    Start,
    /// A SIGHUP reload applied it.
    Reload,
    /// An operator's command (manual input, substitution).
    Command,
    /// A data logger uploaded it (HJ 212 CN 3020).
    Upload,
}

impl AuditHow {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditHow::Start => "start",
            AuditHow::Reload => "reload",
            AuditHow::Command => "command",
            AuditHow::Upload => "upload",
        }
    }

    pub fn parse(text: &str) -> Option<AuditHow> {
        [
            AuditHow::Start,
            AuditHow::Reload,
            AuditHow::Command,
            AuditHow::Upload,
        ]
        .into_iter()
        .find(|h| h.as_str() == text)
    }

    /// 启动 / 重载 / 命令 / 上传, for zh-CN reports.
    pub fn zh(self) -> &'static str {
        match self {
            AuditHow::Start => "启动",
            AuditHow::Reload => "重载",
            AuditHow::Command => "命令",
            AuditHow::Upload => "上传",
        }
    }
}

impl fmt::Display for AuditHow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One change of one parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When it took effect, Unix ms.
    pub ts: i64,
    /// `site`, `profile`, `manual`, or the MN of the logger that uploaded it.
    pub source: String,
    pub how: AuditHow,
    /// Dotted path of the parameter, e.g. `stack.1.reference_o2`.
    pub item: String,
    /// `None`: the parameter was not set before (or is no longer set, for `new`).
    pub old: Option<String>,
    pub new: Option<String>,
    pub file: Option<String>,
    /// SHA-256 (hex) of the file as it was read.
    pub checksum: Option<String>,
}

/// What an audit event record's note holds; the time and source are the record's own.
#[derive(Serialize, Deserialize)]
struct EventNote {
    how: AuditHow,
    item: String,
    old: Option<String>,
    new: Option<String>,
    file: Option<String>,
    checksum: Option<String>,
}

impl AuditEntry {
    /// The event record that carries this entry to the sinks, on `stack` (the stack whose
    /// values it affects; the site id for site-wide parameters).
    pub fn to_record(&self, stack: &str) -> Record {
        let note = EventNote {
            how: self.how,
            item: self.item.clone(),
            old: self.old.clone(),
            new: self.new.clone(),
            file: self.file.clone(),
            checksum: self.checksum.clone(),
        };
        Record {
            note: serde_json::to_string(&note).ok(),
            ..Record::new(
                RecordKind::Event,
                Timestamp::from_millis(self.ts),
                stack.into(),
                self.source.as_str().into(),
                AUDIT_CHANNEL.into(),
            )
        }
    }

    /// The entry an audit event record carries; `None` for any other record.
    pub fn from_record(record: &Record) -> Option<AuditEntry> {
        if record.kind != RecordKind::Event || &*record.channel != AUDIT_CHANNEL {
            return None;
        }
        let note: EventNote = serde_json::from_str(record.note.as_deref()?).ok()?;
        Some(AuditEntry {
            ts: record.ts.millis(),
            source: record.device.to_string(),
            how: note.how,
            item: note.item,
            old: note.old,
            new: note.new,
            file: note.file,
            checksum: note.checksum,
        })
    }

    fn digest(&self, id: i64, previous: &Digest) -> Digest {
        let mut encoded = Vec::with_capacity(256);
        fn text(t: &Option<String>) -> ValueRef<'_> {
            t.as_deref()
                .map_or(ValueRef::Null, |s| ValueRef::Text(s.as_bytes()))
        }
        for value in [
            ValueRef::Integer(id),
            ValueRef::Integer(self.ts),
            ValueRef::Text(self.source.as_bytes()),
            ValueRef::Text(self.how.as_str().as_bytes()),
            ValueRef::Text(self.item.as_bytes()),
            text(&self.old),
            text(&self.new),
            text(&self.file),
            text(&self.checksum),
        ] {
            chain::encode_value(value, &mut encoded);
        }
        chain::sha256(&[ENTRY_DOMAIN, previous, &encoded])
    }
}

/// The columns [`read_entry`] decodes, in order.
const ENTRY_COLUMNS: &str = "id, ts, source, how, item, old, new, file, checksum, hash";

fn read_entry(row: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, AuditEntry, Vec<u8>)> {
    let how: String = row.get(3)?;
    let how = AuditHow::parse(&how).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            3,
            rusqlite::types::Type::Text,
            format!("unknown audit way {how:?}").into(),
        )
    })?;
    Ok((
        row.get(0)?,
        AuditEntry {
            ts: row.get(1)?,
            source: row.get(2)?,
            how,
            item: row.get(4)?,
            old: row.get(5)?,
            new: row.get(6)?,
            file: row.get(7)?,
            checksum: row.get(8)?,
        },
        row.get(9)?,
    ))
}

/// Inserts `entries` in `tx`, each chained to the one before.
pub(super) fn insert_entries(
    tx: &Transaction<'_>,
    entries: &[AuditEntry],
) -> Result<(), StoreError> {
    let newest: Option<(i64, Vec<u8>)> = tx
        .prepare_cached("SELECT id, hash FROM audit_entry ORDER BY id DESC LIMIT 1")?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let (mut id, mut previous) =
        newest.map_or((0, [0u8; 32]), |(id, hash)| (id, chain::to_digest(&hash)));
    let mut insert = tx.prepare_cached(
        "INSERT INTO audit_entry (id, ts, source, how, item, old, new, file, checksum, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    for entry in entries {
        id += 1;
        let hash = entry.digest(id, &previous);
        insert.execute(rusqlite::params![
            id,
            entry.ts,
            entry.source,
            entry.how.as_str(),
            entry.item,
            entry.old,
            entry.new,
            entry.file,
            entry.checksum,
            &hash[..],
        ])?;
        previous = hash;
    }
    Ok(())
}

/// The first audit entry whose hash does not follow from the one before, and how many were
/// checked.
pub(super) fn verify_entries(
    conn: &rusqlite::Connection,
) -> Result<(u64, Option<(i64, i64)>), StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {ENTRY_COLUMNS} FROM audit_entry ORDER BY id"
    ))?;
    let mut rows = stmt.query([])?;
    let mut previous = [0u8; 32];
    let mut expected_id = 1;
    let mut checked = 0;
    while let Some(row) = rows.next()? {
        let (id, entry, stored) = read_entry(row)?;
        checked += 1;
        if id != expected_id || entry.digest(id, &previous)[..] != stored[..] {
            return Ok((checked, Some((id, entry.ts))));
        }
        previous = chain::to_digest(&stored);
        expected_id = id + 1;
    }
    Ok((checked, None))
}

impl Store {
    /// Records `entries` in the trail and, in the same transaction, the event records that
    /// carry them to the sinks (`records`, from [`AuditEntry::to_record`]).
    pub fn record_audit(
        &mut self,
        entries: &[AuditEntry],
        records: &[Record],
    ) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let result = self.append_in_transaction(&[records], records.len(), entries);
        if result.is_err() {
            self.series.get_mut().forget_all();
        }
        result.map(|_| ())
    }

    /// Entries with `from <= ts < to`, newest first.
    pub fn audit_entries(&self, from: i64, to: i64) -> Result<Vec<AuditEntry>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {ENTRY_COLUMNS} FROM audit_entry WHERE ts >= ?1 AND ts < ?2
             ORDER BY ts DESC, id DESC"
        ))?;
        let rows = stmt.query_map([from, to], read_entry)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?.1);
        }
        Ok(out)
    }

    /// The value each item of `source` was last recorded with (`None`: removed).
    pub fn audit_values(
        &self,
        source: &str,
    ) -> Result<BTreeMap<String, Option<String>>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT item, new FROM audit_entry WHERE id IN (
                 SELECT max(id) FROM audit_entry WHERE source = ?1 GROUP BY item)",
        )?;
        let rows = stmt.query_map([source], |row| Ok((row.get(0)?, row.get(1)?)))?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (item, new): (String, Option<String>) = row?;
            out.insert(item, new);
        }
        Ok(out)
    }
}
