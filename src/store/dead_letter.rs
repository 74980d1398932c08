//! Input that was received but could not be accepted (bad MQTT payload, HJ 212 packet
//! with a wrong CRC, a line InfluxDB rejected), kept verbatim for diagnosis, except for HJ
//! 212 passwords, which are masked on the way in whoever dead-letters.

use crate::model::Timestamp;
use crate::protocol::redact::{mask_passwords, mask_passwords_text};

use rusqlite::types::Value;

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
        let rows = stmt.query([limit_to_sql(Some(limit))])?;
        read_letters(rows)
    }

    /// Every dead letter `filter` matches, oldest first.
    pub fn find_dead_letters(
        &self,
        filter: &DeadLetterFilter,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let (condition, params) = filter.condition();
        let mut stmt = self.conn.prepare(&format!(
            "SELECT id, ts, source, reason, payload FROM dead_letter WHERE {condition} ORDER BY id"
        ))?;
        let rows = stmt.query(rusqlite::params_from_iter(params))?;
        read_letters(rows)
    }

    /// Deletes every dead letter `filter` matches; returns how many.
    pub fn drop_dead_letters(&mut self, filter: &DeadLetterFilter) -> Result<usize, StoreError> {
        let (condition, params) = filter.condition();
        let deleted = self.conn.execute(
            &format!("DELETE FROM dead_letter WHERE {condition}"),
            rusqlite::params_from_iter(params),
        )?;
        Ok(deleted)
    }
}

pub(super) fn read_letters(mut rows: rusqlite::Rows<'_>) -> Result<Vec<DeadLetter>, StoreError> {
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

/// Which dead letters an operator means (`cemsd dead-letters … --sink --reason --since
/// --until`): every condition given holds; none given means all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterFilter {
    /// A source such as `influx:main` or `mqtt:plant`, or the name after its colon
    /// (`main`); letters queued for retry to it match too.
    pub sink: Option<String>,
    /// A part of the reason, e.g. `HTTP 413`.
    pub reason: Option<String>,
    /// Rejected at or after this time.
    pub since: Option<Timestamp>,
    /// Rejected before this time.
    pub until: Option<Timestamp>,
}

impl DeadLetterFilter {
    pub fn is_empty(&self) -> bool {
        *self == DeadLetterFilter::default()
    }

    /// A SQL condition on `dead_letter` and its parameters, in order.
    pub(super) fn condition(&self) -> (String, Vec<Value>) {
        let mut terms = vec!["1".to_string()];
        let mut params = Vec::new();
        if let Some(sink) = &self.sink {
            params.push(Value::Text(sink.clone()));
            let n = params.len();
            terms.push(format!(
                "(source = ?{n} OR substr(source, -(length(?{n}) + 1)) = ':' || ?{n})"
            ));
        }
        if let Some(reason) = &self.reason {
            params.push(Value::Text(reason.clone()));
            terms.push(format!("instr(reason, ?{}) > 0", params.len()));
        }
        if let Some(since) = self.since {
            params.push(Value::Integer(since.millis()));
            terms.push(format!("ts >= ?{}", params.len()));
        }
        if let Some(until) = self.until {
            params.push(Value::Integer(until.millis()));
            terms.push(format!("ts < ?{}", params.len()));
        }
        (terms.join(" AND "), params)
    }
}
