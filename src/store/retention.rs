//! Retention: delete what is old enough and what every sink has already delivered.

use rusqlite::TransactionBehavior;

use crate::model::Timestamp;

use super::{RecordKind, Store, StoreError};

impl Store {
    /// Deletes records whose `ts` is older than the retention period, but only those at
    /// or below the lowest cursor of every registered sink, and dead letters older than the
    /// retention period. Returns how many records went. Without retention it does nothing.
    /// Register the sinks before the first prune: with none registered, age alone decides.
    pub fn prune(&mut self, now: Timestamp) -> Result<usize, StoreError> {
        let Some(retention) = self.options.retention else {
            return Ok(0);
        };
        let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now.millis().saturating_sub(retention_ms);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let delivered: i64 = tx
            .prepare_cached(
                "SELECT coalesce(min(seq), (SELECT last_seq FROM seq_counter WHERE id = 1))
                 FROM sink_cursor",
            )?
            .query_row([], |row| row.get(0))?;
        let mut deleted = 0;
        {
            // Kind by kind, each delete a range of the (kind, ts, series) index.
            let mut delete =
                tx.prepare_cached("DELETE FROM record WHERE kind = ?1 AND ts < ?2 AND seq <= ?3")?;
            for kind in RecordKind::ALL {
                deleted += delete.execute(rusqlite::params![kind.code(), cutoff, delivered])?;
            }
        }
        // A series whose newest reading went keeps only readings older than the cutoff
        // that no sink has taken yet; the newest of those becomes its latest.
        tx.prepare_cached(
            "DELETE FROM latest_reading
             WHERE NOT EXISTS (SELECT 1 FROM record WHERE record.seq = latest_reading.seq)",
        )?
        .execute([])?;
        tx.prepare_cached(
            "INSERT OR IGNORE INTO latest_reading (series, ts, seq)
             SELECT series, max(ts), seq FROM record WHERE kind = ?1 AND ts < ?2
             GROUP BY series",
        )?
        .execute(rusqlite::params![RecordKind::Reading.code(), cutoff])?;
        tx.prepare_cached("DELETE FROM dead_letter WHERE ts < ?1")?
            .execute([cutoff])?;
        tx.commit()?;
        Ok(deleted)
    }
}
