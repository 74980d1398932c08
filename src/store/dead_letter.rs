//! Input that was received but could not be accepted (bad MQTT payload, HJ 212 packet
//! with a wrong CRC, a line InfluxDB rejected), kept verbatim for diagnosis, except for HJ
//! 212 passwords, which are masked on the way in whoever dead-letters.

use crate::model::Timestamp;
use crate::protocol::redact::{mask_passwords, mask_passwords_text};

use super::{limit_to_sql, seq_from_sql, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: u64,
    /// When it was rejected.
    pub ts: Timestamp,
    /// Which path rejected it, e.g. "mqtt", "hj212", "influx".
    pub source: String,
    pub reason: String,
    pub payload: Vec<u8>,
}

impl Store {
    /// Keeps rejected input, passwords masked; returns its id. Ids rise forever, like
    /// record seqs.
    pub fn append_dead_letter(
        &mut self,
        source: &str,
        reason: &str,
        payload: &[u8],
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let reason = mask_passwords_text(reason);
        let payload = mask_passwords(payload);
        self.conn
            .prepare_cached(
                "INSERT INTO dead_letter (ts, source, reason, payload) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(rusqlite::params![now.millis(), source, &*reason, &*payload])?;
        Ok(seq_from_sql(self.conn.last_insert_rowid()))
    }

    /// The `limit` most recent dead letters, newest first.
    pub fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, ts, source, reason, payload FROM dead_letter ORDER BY id DESC LIMIT ?1",
        )?;
        let mut rows = stmt.query([limit_to_sql(Some(limit))])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(DeadLetter {
                id: seq_from_sql(row.get(0)?),
                ts: Timestamp::from_millis(row.get(1)?),
                source: row.get(2)?,
                reason: row.get(3)?,
                payload: row.get(4)?,
            });
        }
        Ok(out)
    }
}
