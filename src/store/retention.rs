//! Retention: delete what is old enough, or what no longer fits the store's disk budget, and
//! in either case only what every sink has already delivered.
//!
//! Deleting goes in steps of a bounded number of rows, each its own transaction, so the
//! writer commits new data between them: the first prune of a store that never had one (or
//! a budget lowered by half) must not hold the write lock for the minutes a single delete of
//! millions of rows takes.

use rusqlite::{Transaction, TransactionBehavior};

use crate::model::time::HOUR_MS;
use crate::model::Timestamp;

use super::{chain, RecordKind, Store, StoreError};

/// What one pruning step deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Records older than the retention.
    pub by_age: usize,
    /// Records deleted because the store was over its budget.
    pub by_size: usize,
    /// The newest `ts` a size deletion reached: how much history the budget keeps.
    pub size_cutoff: Option<Timestamp>,
    /// The step stopped at its row limit, or the store is still over its budget with more
    /// it may delete: call again.
    pub more: bool,
}

/// Kinds the budget may take before their age: the bulk raw data, then the minutes. Hours,
/// days, gaps, exceedances and events are what reports are made of and stay for their
/// retention.
const SIZE_PRUNED_KINDS: [RecordKind; 2] = [RecordKind::Reading, RecordKind::Minute];

impl Store {
    /// Prunes until nothing more is due; returns how many records went. Without retention
    /// and budget it does nothing. Register the sinks before the first prune: with none
    /// registered, age and size alone decide.
    pub fn prune(&mut self, now: Timestamp) -> Result<usize, StoreError> {
        let mut deleted = 0;
        loop {
            let step = self.prune_step(now, usize::MAX)?;
            deleted += step.by_age + step.by_size;
            if !step.more || step.by_age + step.by_size == 0 {
                return Ok(deleted);
            }
        }
    }

    /// One bounded step: up to `max_rows` records older than the retention, then, while the
    /// store uses more than its budget, the oldest hour of delivered readings (or minutes).
    /// Dead letters go by age only.
    pub fn prune_step(&mut self, now: Timestamp, max_rows: usize) -> Result<Pruned, StoreError> {
        let retention = self.options.retention;
        let max_size = self.options.max_size;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let delivered: i64 = tx
            .prepare_cached(
                "SELECT coalesce(min(seq), (SELECT last_seq FROM seq_counter WHERE id = 1))
                 FROM sink_cursor",
            )?
            .query_row([], |row| row.get(0))?;
        let limit = i64::try_from(max_rows).unwrap_or(i64::MAX);
        let mut pruned = Pruned::default();
        // no reading at or after this went: the newest left of a series lies before it
        let mut readings_cutoff = i64::MIN;
        if let Some(retention) = retention {
            let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
            let cutoff = now.millis().saturating_sub(retention_ms);
            readings_cutoff = cutoff;
            for kind in RecordKind::ALL {
                let left = limit.saturating_sub(pruned.by_age as i64);
                if left == 0 {
                    pruned.more = true;
                    break;
                }
                pruned.by_age += delete_before(&tx, kind, cutoff, delivered, left)?;
            }
            tx.prepare_cached("DELETE FROM dead_letter WHERE ts < ?1")?
                .execute([cutoff])?;
        }
        if let Some(max_size) = max_size.filter(|_| !pruned.more) {
            if used_bytes(&tx)? > max_size {
                for kind in SIZE_PRUNED_KINDS {
                    let oldest: Option<i64> = tx
                        .prepare_cached("SELECT min(ts) FROM record WHERE kind = ?1")?
                        .query_row([kind.code()], |row| row.get(0))?;
                    let Some(oldest) = oldest else { continue };
                    let cutoff = oldest.saturating_add(HOUR_MS);
                    let deleted = delete_before(&tx, kind, cutoff, delivered, limit)?;
                    if deleted > 0 {
                        if kind == RecordKind::Reading {
                            readings_cutoff = readings_cutoff.max(cutoff);
                        }
                        pruned.by_size = deleted;
                        pruned.size_cutoff = Some(Timestamp::from_millis(cutoff));
                        pruned.more = true;
                        break;
                    }
                }
            }
        }
        if pruned.by_age + pruned.by_size > 0 {
            hand_latest_on(&tx, readings_cutoff)?;
            chain::advance_checkpoint(&tx)?;
        }
        tx.commit()?;
        Ok(pruned)
    }

    /// Bytes in the pages the store uses (free pages of the file are reused, not counted).
    pub fn used_bytes(&self) -> Result<u64, StoreError> {
        used_bytes(&self.conn)
    }
}

/// Deletes up to `limit` records of `kind` older than `cutoff` that every sink has taken,
/// a range of the (kind, ts, series) index, keeping the tamper chain verifiable.
fn delete_before(
    tx: &Transaction<'_>,
    kind: RecordKind,
    cutoff: i64,
    delivered: i64,
    limit: i64,
) -> Result<usize, StoreError> {
    chain::delete_keeping_chain(
        tx,
        "SELECT seq FROM record WHERE kind = ?1 AND ts < ?2 AND seq <= ?3 LIMIT ?4",
        rusqlite::params![kind.code(), cutoff, delivered, limit],
    )
}

/// A series whose newest reading went keeps only readings before `cutoff` no sink has taken
/// yet; the newest of those becomes its latest.
fn hand_latest_on(tx: &Transaction<'_>, cutoff: i64) -> Result<(), StoreError> {
    let orphaned = tx
        .prepare_cached(
            "DELETE FROM latest_reading
             WHERE NOT EXISTS (SELECT 1 FROM record WHERE record.seq = latest_reading.seq)",
        )?
        .execute([])?;
    if orphaned > 0 {
        tx.prepare_cached(
            "INSERT OR IGNORE INTO latest_reading (series, ts, seq)
             SELECT series, max(ts), seq FROM record WHERE kind = ?1 AND ts < ?2
             GROUP BY series",
        )?
        .execute(rusqlite::params![RecordKind::Reading.code(), cutoff])?;
    }
    Ok(())
}

fn used_bytes(conn: &rusqlite::Connection) -> Result<u64, StoreError> {
    let pragma = |name: &str| -> Result<i64, StoreError> {
        Ok(conn.query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))?)
    };
    let pages = pragma("page_count")?.saturating_sub(pragma("freelist_count")?);
    Ok(u64::try_from(pages.saturating_mul(pragma("page_size")?)).unwrap_or(0))
}
