//! How many records the store holds, kept as they come and go instead of counted on demand:
//! count(*) walks a whole index, which `/metrics` paid on every scrape (0.3 s on 17.5 million
//! rows, minutes on a year-old bureau store). Appends add to `seq_counter.rows` in the
//! update that moves `last_seq` on (no page written that was not written anyway), deletions
//! take from it in their transaction.
//!
//! A store from before the counter counts what it held in steps after its first start (see
//! [`Store::count_step`]): rows up to `uncounted_to` are not in `rows` yet, and the count
//! is not reported until they are.

use rusqlite::{Transaction, TransactionBehavior};

use super::{Store, StoreError};

/// Seqs one counting step covers: a walk of that rowid range of the table, about 50 ms of
/// the writer's time (a million took a second, and held every commit and `/health` up that
/// long).
pub const COUNT_STEP_SEQS: i64 = 50_000;

impl Store {
    /// Records held; `None` while a store written by an older version is still being
    /// counted.
    pub fn count(&self) -> Result<Option<u64>, StoreError> {
        let (rows, uncounted_to): (i64, i64) = self
            .conn
            .prepare_cached("SELECT rows, uncounted_to FROM seq_counter WHERE id = 1")?
            .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok((uncounted_to <= 0).then(|| u64::try_from(rows).unwrap_or(0)))
    }

    /// Counts the rows of up to `max_seqs` seqs not yet counted, newest first, in one
    /// transaction; returns whether any are left.
    pub fn count_step(&mut self, max_seqs: i64) -> Result<bool, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let uncounted_to: i64 = tx
            .prepare_cached("SELECT uncounted_to FROM seq_counter WHERE id = 1")?
            .query_row([], |row| row.get(0))?;
        if uncounted_to <= 0 {
            return Ok(false);
        }
        let from = uncounted_to.saturating_sub(max_seqs.max(1)).max(0);
        let found: i64 = tx
            .prepare_cached("SELECT count(*) FROM record WHERE seq > ?1 AND seq <= ?2")?
            .query_row([from, uncounted_to], |row| row.get(0))?;
        tx.prepare_cached(
            "UPDATE seq_counter SET rows = rows + ?1, uncounted_to = ?2 WHERE id = 1",
        )?
        .execute([found, from])?;
        tx.commit()?;
        Ok(from > 0)
    }
}

/// Takes the records with `deleted` seqs off the count, inside the transaction that deleted
/// them; those not counted yet were never in it.
pub(super) fn take_off(
    tx: &Transaction<'_>,
    deleted: impl Iterator<Item = i64>,
) -> Result<(), StoreError> {
    let uncounted_to: i64 = tx
        .prepare_cached("SELECT uncounted_to FROM seq_counter WHERE id = 1")?
        .query_row([], |row| row.get(0))?;
    let counted = deleted.filter(|&seq| seq > uncounted_to).count();
    tx.prepare_cached("UPDATE seq_counter SET rows = rows - ?1 WHERE id = 1")?
        .execute([i64::try_from(counted).unwrap_or(i64::MAX)])?;
    Ok(())
}
