//! `cemsd verify`: walks the tamper chain from its checkpoint, recomputing every commit's
//! hash from the rows now in the store, and the audit trail's own chain.

use crate::model::Timestamp;

use super::chain::{self, CommitFacts, Digest, CANONICAL_ROW, CANONICAL_TS_COLUMN};
use super::{audit, Store, StoreError};

/// A commit whose rows no longer add up to its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenCommit {
    /// The commit's number; one past the newest for rows after the last commit.
    pub commit: i64,
    pub first_seq: i64,
    pub last_seq: i64,
    /// When it was committed (wall clock), if the commit row is there.
    pub committed_at: Option<Timestamp>,
    /// The earliest and latest `ts` of the rows now in its range: the periods affected.
    pub period: Option<(Timestamp, Timestamp)>,
    pub reason: String,
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub commits: u64,
    pub rows: u64,
    /// Rows written before the store had a chain (a store from an older build): not covered.
    pub unchained_rows: u64,
    /// The newest commit's hash: note it down to pin the history up to now.
    pub head: Digest,
    pub broken: Vec<BrokenCommit>,
    pub audit_entries: u64,
    /// The first audit entry that does not follow from the one before: (id, ts).
    pub audit_broken: Option<(i64, i64)>,
}

impl Verification {
    pub fn is_intact(&self) -> bool {
        self.broken.is_empty() && self.audit_broken.is_none()
    }
}

/// One commit row as stored.
struct StoredCommit {
    id: i64,
    first_seq: i64,
    last_seq: i64,
    committed_at: i64,
    rows: i64,
    pruned_rows: i64,
    pruned_sum: Digest,
    hash: Digest,
}

/// The rows of a seq range as found.
#[derive(Default)]
struct Found {
    rows: i64,
    sum: Digest,
    period: Option<(i64, i64)>,
}

impl Found {
    fn add(&mut self, digest: &Digest, ts: Option<i64>) {
        self.rows += 1;
        chain::add_digest(&mut self.sum, digest);
        if let Some(ts) = ts {
            self.period = Some(
                self.period
                    .map_or((ts, ts), |(a, b)| (a.min(ts), b.max(ts))),
            );
        }
    }

    fn period(&self) -> Option<(Timestamp, Timestamp)> {
        self.period
            .map(|(a, b)| (Timestamp::from_millis(a), Timestamp::from_millis(b)))
    }
}

impl Store {
    /// Checks every commit from the checkpoint on and the audit trail. Reads only.
    pub fn verify(&self) -> Result<Verification, StoreError> {
        // one read transaction: a daemon committing meanwhile is not seen half-way
        let tx = self.conn.unchecked_transaction()?;
        let conn: &rusqlite::Connection = &tx;
        let (checkpoint_id, checkpoint_seq, checkpoint_hash, unchained_to): (
            i64,
            i64,
            Vec<u8>,
            i64,
        ) = conn.query_row(
            "SELECT commit_id, last_seq, hash, unchained_to FROM chain_checkpoint WHERE id = 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )?;
        let last_seq: i64 =
            conn.query_row("SELECT last_seq FROM seq_counter WHERE id = 1", [], |row| {
                row.get(0)
            })?;
        let count_between = |from: i64, to: i64| -> Result<i64, StoreError> {
            Ok(conn.query_row(
                "SELECT count(*) FROM record WHERE seq > ?1 AND seq <= ?2",
                [from, to],
                |row| row.get(0),
            )?)
        };
        let unchained = count_between(i64::MIN, unchained_to)?;
        let below = count_between(unchained_to, checkpoint_seq)?;
        let mut verification = Verification {
            commits: 0,
            rows: 0,
            unchained_rows: 0,
            head: chain::to_digest(&checkpoint_hash),
            broken: Vec::new(),
            audit_entries: 0,
            audit_broken: None,
        };
        verification.unchained_rows = u64::try_from(unchained).unwrap_or(0);
        if below > 0 {
            // retention moved the checkpoint past these seqs once none of them was left
            verification.broken.push(BrokenCommit {
                commit: checkpoint_id,
                first_seq: 0,
                last_seq: checkpoint_seq,
                committed_at: None,
                period: None,
                reason: format!("{below} rows inserted before the retention checkpoint"),
            });
        }

        let mut commits = conn.prepare(
            "SELECT id, first_seq, last_seq, committed_at, rows, pruned_rows, pruned_sum, hash
             FROM record_commit ORDER BY id",
        )?;
        let mut commits = commits.query([])?;
        let mut rows = conn.prepare(&format!("{CANONICAL_ROW} WHERE r.seq > ?1 ORDER BY r.seq"))?;
        let mut rows = rows.query([checkpoint_seq])?;
        let mut buffer = Vec::with_capacity(256);
        // the row read but not yet given to a commit: (seq, digest, ts)
        let mut pending: Option<(i64, Digest, Option<i64>)> = None;
        let mut next_row =
            |pending: &mut Option<(i64, Digest, Option<i64>)>| -> Result<(), StoreError> {
                *pending = match rows.next()? {
                    Some(row) => Some((
                        row.get(0)?,
                        chain::row_digest(row, &mut buffer)?,
                        row.get(CANONICAL_TS_COLUMN)?,
                    )),
                    None => None,
                };
                Ok(())
            };
        next_row(&mut pending)?;
        let mut previous = chain::to_digest(&checkpoint_hash);
        let mut expected = (checkpoint_id + 1, checkpoint_seq + 1);
        while let Some(row) = commits.next()? {
            let pruned_sum: Option<Vec<u8>> = row.get(6)?;
            let hash: Vec<u8> = row.get(7)?;
            let commit = StoredCommit {
                id: row.get(0)?,
                first_seq: row.get(1)?,
                last_seq: row.get(2)?,
                committed_at: row.get(3)?,
                rows: row.get(4)?,
                pruned_rows: row.get(5)?,
                pruned_sum: pruned_sum.as_deref().map_or([0u8; 32], chain::to_digest),
                hash: chain::to_digest(&hash),
            };
            verification.commits += 1;
            let mut outside = Found::default();
            while let Some((_, digest, ts)) = pending.filter(|p| p.0 < commit.first_seq) {
                outside.add(&digest, ts);
                verification.rows += 1;
                next_row(&mut pending)?;
            }
            let mut found = Found::default();
            while let Some((_, digest, ts)) = pending.filter(|p| p.0 <= commit.last_seq) {
                found.add(&digest, ts);
                verification.rows += 1;
                next_row(&mut pending)?;
            }
            let mut reasons = Vec::new();
            if (commit.id, commit.first_seq) != expected {
                reasons.push(format!(
                    "the chain expected commit {} from seq {}, found commit {} from seq {}",
                    expected.0, expected.1, commit.id, commit.first_seq
                ));
            }
            if outside.rows > 0 {
                reasons.push(format!(
                    "{} rows lie outside every commit before it",
                    outside.rows
                ));
            }
            let mut sum = found.sum;
            chain::add_digest(&mut sum, &commit.pruned_sum);
            let facts = CommitFacts {
                id: commit.id,
                first_seq: commit.first_seq,
                last_seq: commit.last_seq,
                rows: found.rows + commit.pruned_rows,
                rows_sum: sum,
            };
            if chain::commit_hash(&previous, &facts) != commit.hash {
                let held = commit.rows - commit.pruned_rows;
                reasons.push(match found.rows.cmp(&held) {
                    std::cmp::Ordering::Less => {
                        format!("{} of its {held} rows deleted", held - found.rows)
                    }
                    std::cmp::Ordering::Greater => {
                        format!("{} rows inserted into it", found.rows - held)
                    }
                    std::cmp::Ordering::Equal => "rows edited".to_string(),
                });
            }
            if !reasons.is_empty() {
                let period = match (found.period, outside.period) {
                    (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
                    (one, other) => one.or(other),
                };
                verification.broken.push(BrokenCommit {
                    commit: commit.id,
                    first_seq: commit.first_seq,
                    last_seq: commit.last_seq,
                    committed_at: Some(Timestamp::from_millis(commit.committed_at)),
                    period: period
                        .map(|(a, b)| (Timestamp::from_millis(a), Timestamp::from_millis(b))),
                    reason: reasons.join("; "),
                });
            }
            // the stored hash goes on, so one edit names one commit, not every later one
            previous = commit.hash;
            expected = (commit.id + 1, commit.last_seq + 1);
        }
        verification.head = previous;
        let mut after = Found::default();
        while let Some((_, digest, ts)) = pending {
            after.add(&digest, ts);
            verification.rows += 1;
            next_row(&mut pending)?;
        }
        let newest_seq = expected.1 - 1;
        if after.rows > 0 || newest_seq != last_seq {
            let mut reasons = Vec::new();
            if after.rows > 0 {
                reasons.push(format!("{} rows after the newest commit", after.rows));
            }
            if newest_seq != last_seq {
                reasons.push(format!(
                    "the newest commit ends at seq {newest_seq} but the store handed out seqs up to {last_seq}: commits deleted"
                ));
            }
            verification.broken.push(BrokenCommit {
                commit: expected.0,
                first_seq: expected.1,
                last_seq,
                committed_at: None,
                period: after.period(),
                reason: reasons.join("; "),
            });
        }
        let (audit_entries, audit_broken) = audit::verify_entries(conn)?;
        verification.audit_entries = audit_entries;
        verification.audit_broken = audit_broken;
        Ok(verification)
    }

    /// The newest commit's number and hash, or the checkpoint's.
    pub fn chain_head(&self) -> Result<(i64, Digest), StoreError> {
        chain::head(&self.conn)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::events;
    use super::super::{Store, StoreOptions};
    use crate::model::Timestamp;

    fn open(dir: &tempfile::TempDir, options: StoreOptions) -> Store {
        Store::open(&dir.path().join("cems.db"), options).unwrap_or_else(|e| panic!("open: {e}"))
    }

    fn sql(dir: &tempfile::TempDir, statement: &str) {
        let conn = rusqlite::Connection::open(dir.path().join("cems.db"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(conn.execute(statement, []).ok(), Some(1), "{statement}");
    }

    fn broken(store: &Store) -> Vec<(i64, String)> {
        let v = store.verify().unwrap_or_else(|e| panic!("verify: {e}"));
        v.broken.into_iter().map(|b| (b.commit, b.reason)).collect()
    }

    #[test]
    fn an_edit_a_deletion_and_an_insertion_each_name_their_commit() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut store = open(&dir, StoreOptions::default());
        for _ in 0..3 {
            assert!(store.append(&events(4)).is_ok()); // commits 1..=3: seqs 1-4, 5-8, 9-12
        }
        let v = store.verify().unwrap_or_else(|e| panic!("{e}"));
        assert!(v.is_intact());
        assert_eq!((v.commits, v.rows, v.unchained_rows), (3, 12, 0));

        sql(&dir, "UPDATE record SET note = 'x' WHERE seq = 6");
        assert_eq!(broken(&store), vec![(2, "rows edited".to_string())]);
        sql(&dir, "UPDATE record SET note = NULL WHERE seq = 6");
        assert!(broken(&store).is_empty());

        sql(&dir, "DELETE FROM record WHERE seq = 10");
        assert_eq!(
            broken(&store),
            vec![(3, "1 of its 4 rows deleted".to_string())]
        );
        sql(
            &dir,
            "INSERT INTO record (seq, kind, series, ts, flags) VALUES (10, 6, 1, 9, 0)",
        );
        assert_eq!(broken(&store), vec![(3, "rows edited".to_string())]);
        sql(
            &dir,
            "INSERT INTO record (seq, kind, series, ts, flags) VALUES (13, 6, 1, 9, 0)",
        );
        assert_eq!(broken(&store).len(), 2);
        assert_eq!(broken(&store)[1].0, 4);
    }

    #[test]
    fn rows_of_a_store_from_before_the_chain_are_counted_as_not_covered() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        {
            let mut conn = rusqlite::Connection::open(dir.path().join("cems.db"))
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(super::super::schema::migrate_to(&mut conn, 4).is_ok());
            let old = "INSERT INTO series (id, stack, device, channel) VALUES (1, 's', 'd', 'c');
                 INSERT INTO record (seq, kind, series, ts, flags) VALUES (1, 6, 1, 0, 0), (2, 6, 1, 1, 0);
                 UPDATE seq_counter SET last_seq = 2;";
            assert!(conn.execute_batch(old).is_ok());
        }
        let mut store = open(&dir, StoreOptions::default());
        assert_eq!(store.append(&events(3)).ok(), Some(Some((3, 5))));
        let v = store.verify().unwrap_or_else(|e| panic!("{e}"));
        assert!(v.is_intact(), "{:?}", v.broken);
        assert_eq!((v.unchained_rows, v.commits, v.rows), (2, 1, 3));
    }

    #[test]
    fn retention_keeps_the_chain_verifiable_and_cuts_it_at_a_checkpoint() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut store = open(
            &dir,
            StoreOptions {
                retention: Some(std::time::Duration::from_millis(1000)),
                ..StoreOptions::default()
            },
        );
        assert!(store.append(&events(4)).is_ok()); // ts 0..=3
        assert!(store.append(&events(4)).is_ok());
        // at 1002 ms the cutoff is 2 ms: ts 0 and 1 of both commits go, half of each
        assert_eq!(store.prune(Timestamp::from_millis(1002)).ok(), Some(4));
        let v = store.verify().unwrap_or_else(|e| panic!("{e}"));
        assert!(v.is_intact(), "{:?}", v.broken);
        assert_eq!((v.commits, v.rows), (2, 4));
        let (_, head) = store.chain_head().unwrap_or_else(|e| panic!("{e}"));
        // everything goes: both commits are cut off, the checkpoint keeps the head
        assert_eq!(store.prune(Timestamp::from_millis(5000)).ok(), Some(4));
        let v = store.verify().unwrap_or_else(|e| panic!("{e}"));
        assert!(v.is_intact(), "{:?}", v.broken);
        assert_eq!((v.commits, v.rows, v.head), (0, 0, head));
        assert!(store.append(&events(1)).is_ok());
        let v = store.verify().unwrap_or_else(|e| panic!("{e}"));
        assert!(v.is_intact(), "{:?}", v.broken);
        assert_eq!(v.commits, 1);
    }
}
