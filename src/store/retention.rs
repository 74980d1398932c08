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
        let series_ids: Vec<i64> = {
            let mut stmt = tx.prepare_cached("SELECT id FROM series")?;
            let ids = stmt.query_map([], |row| row.get(0))?;
            ids.collect::<Result<_, _>>()?
        };
        let mut deleted = 0;
        {
            // One (series, kind) at a time so each delete is a range of the
            // (series, kind, ts) index, not a scan of everything within retention.
            let mut delete = tx.prepare_cached(
                "DELETE FROM record
                 WHERE series = ?1 AND kind = ?2 AND ts < ?3 AND seq <= ?4",
            )?;
            for id in series_ids {
                for kind in RecordKind::ALL {
                    deleted +=
                        delete.execute(rusqlite::params![id, kind.code(), cutoff, delivered])?;
                }
            }
        }
        tx.prepare_cached("DELETE FROM dead_letter WHERE ts < ?1")?
            .execute([cutoff])?;
        tx.commit()?;
        Ok(deleted)
    }
}
