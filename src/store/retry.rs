//! Dead letters sent again. A line an InfluxDB server refused (a 400 from a schema conflict
//! fixed since, a 413 from a limit raised since) is kept in the dead-letter table; an
//! operator queues it with `cemsd dead-letters retry`, and the sink that refused it takes it
//! from the queue, sends it like any batch, deletes it once the server has it, and puts it
//! back with the server's new reason if refused again.
//!
//! The queue is the dead-letter table itself: a queued letter's source is `retry:<sink>`,
//! so the command works while the daemon runs (it only updates rows), survives a restart,
//! and `cemsd dead-letters list` shows what waits.

use rusqlite::types::Value;

use crate::model::Timestamp;
use crate::protocol::redact::mask_passwords_text;

use super::dead_letter::{read_letters, DeadLetter, DeadLetterFilter};
use super::{limit_to_sql, seq_to_sql, Store, StoreError};

/// Put before a sink's name in the source of a queued dead letter.
pub const RETRY_PREFIX: &str = "retry:";

/// The reasons of lines a server refused, as the InfluxDB sink writes them
/// (`seq 12: HTTP 413: …`); a line that could not even be encoded has nothing to send.
const SENDABLE_REASON: &str = "seq %: HTTP %";

impl Store {
    /// Queues for retry the dead letters `filter` matches that one of `sinks` refused;
    /// returns how many. Letters of other sources are left as they are.
    pub fn queue_dead_letter_retry(
        &mut self,
        filter: &DeadLetterFilter,
        sinks: &[String],
    ) -> Result<usize, StoreError> {
        if sinks.is_empty() {
            return Ok(0);
        }
        let (condition, mut params) = filter.condition();
        let first = params.len() + 1;
        let listed: Vec<String> = (first..first + sinks.len())
            .map(|n| format!("?{n}"))
            .collect();
        params.extend(sinks.iter().map(|s| Value::Text(s.clone())));
        params.push(Value::Text(SENDABLE_REASON.to_string()));
        let queued = self.conn.execute(
            &format!(
                "UPDATE dead_letter SET source = '{RETRY_PREFIX}' || source \
                 WHERE {condition} AND source IN ({}) AND reason LIKE ?{}",
                listed.join(", "),
                params.len()
            ),
            rusqlite::params_from_iter(params),
        )?;
        Ok(queued)
    }

    /// Up to `limit` dead letters queued for retry to `sink`, oldest first.
    pub fn queued_retries(&self, sink: &str, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, ts, source, reason, payload FROM dead_letter \
             WHERE source = ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = stmt.query(rusqlite::params![
            format!("{RETRY_PREFIX}{sink}"),
            limit_to_sql(Some(limit))
        ])?;
        read_letters(rows)
    }

    /// After a retry to `sink`: the `delivered` letters are deleted, the `refused` ones
    /// (id, the server's answer) are dead letters of `sink` again, stamped `now`, their
    /// reason keeping the record's seq.
    pub fn settle_retries(
        &mut self,
        sink: &str,
        delivered: &[u64],
        refused: &[(u64, String)],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let queued = format!("{RETRY_PREFIX}{sink}");
        let tx = self.conn.transaction()?;
        {
            let mut delete =
                tx.prepare_cached("DELETE FROM dead_letter WHERE id = ?1 AND source = ?2")?;
            for id in delivered {
                delete.execute(rusqlite::params![seq_to_sql(*id)?, queued])?;
            }
            let mut put_back = tx.prepare_cached(
                "UPDATE dead_letter SET source = ?3, ts = ?4, \
                 reason = substr(reason, 1, instr(reason, ': ') - 1) || ': ' || ?5 \
                 WHERE id = ?1 AND source = ?2",
            )?;
            for (id, reason) in refused {
                put_back.execute(rusqlite::params![
                    seq_to_sql(*id)?,
                    queued,
                    sink,
                    now.millis(),
                    &*mask_passwords_text(reason)
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;

    const T0: i64 = 1_767_225_600_000;

    fn ok<T>(result: Result<T, StoreError>) -> T {
        result.unwrap_or_else(|e| panic!("{e}"))
    }

    fn store(dir: &tempfile::TempDir) -> Store {
        ok(Store::open(
            &dir.path().join("cems.db"),
            StoreOptions::default(),
        ))
    }

    fn sources(store: &Store) -> Vec<(u64, String)> {
        ok(store.find_dead_letters(&DeadLetterFilter::default()))
            .into_iter()
            .map(|d| (d.id, d.source))
            .collect()
    }

    #[test]
    fn filters_select_by_sink_reason_and_time() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut store = store(&dir);
        let at = |minutes: i64| Timestamp::from_millis(T0 + minutes * 60_000);
        ok(store.append_dead_letter("influx:main", "seq 1: HTTP 400: bad", b"a", at(0)));
        ok(store.append_dead_letter("influx:backup", "seq 1: HTTP 413: big", b"b", at(10)));
        ok(store.append_dead_letter("mqtt:plant", "syntax: not JSON", b"{", at(20)));
        let ids_in = |store: &Store, filter: DeadLetterFilter| -> Vec<u64> {
            ok(store.find_dead_letters(&filter))
                .iter()
                .map(|d| d.id)
                .collect()
        };
        let ids = |filter: DeadLetterFilter| ids_in(&store, filter);
        assert_eq!(ids(DeadLetterFilter::default()), vec![1, 2, 3]);
        let sink = |s: &str| DeadLetterFilter {
            sink: Some(s.into()),
            ..DeadLetterFilter::default()
        };
        assert_eq!(ids(sink("main")), vec![1]);
        assert_eq!(ids(sink("influx:backup")), vec![2]);
        assert_eq!(ids(sink("plant")), vec![3]);
        assert_eq!(ids(sink("ain")), Vec::<u64>::new());
        assert_eq!(
            ids(DeadLetterFilter {
                reason: Some("HTTP 4".into()),
                since: Some(at(5)),
                ..DeadLetterFilter::default()
            }),
            vec![2]
        );
        assert_eq!(
            ids(DeadLetterFilter {
                until: Some(at(10)),
                ..DeadLetterFilter::default()
            }),
            vec![1]
        );
        assert_eq!(ok(store.drop_dead_letters(&sink("plant"))), 1);
        assert_eq!(ids_in(&store, DeadLetterFilter::default()), vec![1, 2]);
    }

    #[test]
    fn only_refused_lines_of_the_given_sinks_are_queued_and_settled_back_or_away() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut store = store(&dir);
        let now = Timestamp::from_millis(T0);
        ok(store.append_dead_letter("influx:main", "seq 7: HTTP 400: bad", b"l7", now));
        ok(store.append_dead_letter("influx:main", "seq 8: cannot encode: NaN", b"?", now));
        ok(store.append_dead_letter("influx:main", "seq 9: HTTP 413: big", b"l9", now));
        ok(store.append_dead_letter("mqtt:plant", "syntax", b"{", now));
        let all = DeadLetterFilter::default();
        let queued = ok(store.queue_dead_letter_retry(&all, &["influx:main".to_string()]));
        assert_eq!(queued, 2);
        assert_eq!(
            sources(&store),
            vec![
                (1, "retry:influx:main".to_string()),
                (2, "influx:main".to_string()),
                (3, "retry:influx:main".to_string()),
                (4, "mqtt:plant".to_string()),
            ]
        );
        // queued letters still match their sink
        let main = DeadLetterFilter {
            sink: Some("main".into()),
            ..DeadLetterFilter::default()
        };
        assert_eq!(ok(store.find_dead_letters(&main)).len(), 3);
        let taken = ok(store.queued_retries("influx:main", 10));
        assert_eq!(taken.iter().map(|d| d.id).collect::<Vec<_>>(), vec![1, 3]);

        let later = Timestamp::from_millis(T0 + 60_000);
        let refused = vec![(3, "HTTP 400: unknown field PW=secret; line 1".to_string())];
        ok(store.settle_retries("influx:main", &[1], &refused, later));
        let left = ok(store.find_dead_letters(&all));
        assert_eq!(left.iter().map(|d| d.id).collect::<Vec<_>>(), vec![2, 3, 4]);
        let again = &left[1];
        assert_eq!(again.source, "influx:main");
        assert_eq!(
            again.reason,
            "seq 9: HTTP 400: unknown field PW=******; line 1"
        );
        assert_eq!(again.ts, later);
        assert_eq!(again.payload, b"l9");
        assert!(ok(store.queued_retries("influx:main", 10)).is_empty());
    }
}
