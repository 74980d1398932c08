//! The durable outbox between the pipeline and the sinks: SQLite in WAL mode.
//!
//! Every record gets a `seq` that rises forever. Each sink keeps a persistent cursor (the
//! last seq it has delivered), so an outage of one sink neither blocks the others nor loses
//! data, and retention deletes only rows every sink has taken.
//!
//! One `Store` should write (normally owned by a [`StoreWriter`] thread); further `Store`s
//! opened on the same file may read concurrently without blocking it.

mod audit;
mod chain;
mod checkpoint;
mod cursor;
mod dead_letter;
mod error;
mod lock;
mod query;
mod reader;
mod record;
mod retention;
mod retry;
mod row;
mod row_count;
mod schema;
mod series;
mod verify;
mod writer;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::model::Timestamp;

pub use audit::{AuditEntry, AuditHow};
pub use chain::{hex, sha256_hex};
pub use dead_letter::{DeadLetter, DeadLetterFilter};
pub use error::StoreError;
pub use lock::{lock_path, LockError, StoreLock};
pub use query::Query;
pub use reader::{ReadBatch, ReadError, StoreReader};
pub use record::{Record, RecordKind, Stored};
pub use retention::Pruned;
pub use retry::RETRY_PREFIX;
pub use row_count::COUNT_STEP_SEQS;
pub(crate) use series::{names_at, NamesAt};
pub use verify::{BrokenCommit, Verification};
pub use writer::{StoreHandle, StoreWriter, WriterOptions, WriterStats};

use series::SeriesTable;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// How long records (by their `ts`) and dead letters are kept; `None` keeps them forever.
    pub retention: Option<Duration>,
    /// fsync every commit (`synchronous=FULL`), so a power cut cannot undo an acknowledged
    /// commit. The default `NORMAL` already survives any crash of the process itself.
    pub synchronous_full: bool,
    /// How long to wait for another connection's write lock before failing.
    pub busy_timeout: Duration,
    /// SQLite page cache per connection.
    pub cache_size_kib: u32,
    /// The most the store may use on disk (pages in use, not the file, whose free pages are
    /// reused); past it the oldest delivered readings, then minute records, go first.
    pub max_size: Option<u64>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            retention: None,
            synchronous_full: false,
            busy_timeout: Duration::from_secs(5),
            cache_size_kib: 8 * 1024,
            max_size: None,
        }
    }
}

/// The store on one SQLite file. `Send` but not `Sync`: it moves to the thread that uses it.
pub struct Store {
    conn: Connection,
    options: StoreOptions,
    // RefCell: reads (`&self`) may meet series another connection added and must learn them.
    series: RefCell<SeriesTable>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.conn.path())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens or creates the store at `path`, creating its directory and bringing the schema
    /// up to date.
    pub fn open(path: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source: Arc::new(e),
            })?;
        }
        let mut conn = Connection::open(path)?;
        schema::configure(&conn, &options)?;
        schema::migrate(&mut conn)?;
        let mut series = SeriesTable::default();
        series.refresh(&conn)?;
        Ok(Store {
            conn,
            options,
            series: RefCell::new(series),
        })
    }

    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// Caps this connection's page cache at `kib` for the duration of `work`, then gives it
    /// back its configured size. For work that reads each page once (a restart's look back):
    /// the pages it reads are recycled instead of kept, so they add nothing to the peak
    /// memory. SQLite frees cached pages above a lowered limit at once.
    pub fn with_cache_kib<R>(
        &mut self,
        kib: u32,
        work: impl FnOnce(&mut Store) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.conn
            .pragma_update(None, "cache_size", -i64::from(kib))?;
        let result = work(self);
        let restored =
            self.conn
                .pragma_update(None, "cache_size", -i64::from(self.options.cache_size_kib));
        let result = result?;
        restored?;
        Ok(result)
    }

    /// Commits all `records` in one transaction and returns the first and last seq they
    /// got (`None` for no records). Either every record is committed or none is.
    pub fn append(&mut self, records: &[Record]) -> Result<Option<(u64, u64)>, StoreError> {
        self.append_parts(&[records])
    }

    /// Like `append` for records held in several slices, numbered in slice order; lets the
    /// writer commit many callers' batches together without moving their records.
    fn append_parts(&mut self, parts: &[&[Record]]) -> Result<Option<(u64, u64)>, StoreError> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total == 0 {
            return Ok(None);
        }
        let result = self.append_in_transaction(parts, total, &[]);
        if result.is_err() {
            self.series.get_mut().forget_all();
        }
        result
    }

    /// Appends `parts` (and the audit `entries` with them) in one transaction, adding its
    /// commit to the tamper chain.
    fn append_in_transaction(
        &mut self,
        parts: &[&[Record]],
        total: usize,
        entries: &[AuditEntry],
    ) -> Result<Option<(u64, u64)>, StoreError> {
        let series = self.series.get_mut();
        // IMMEDIATE takes the write lock before reading last_seq, so two connections
        // appending to one file can never hand out the same seq.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let before: i64 = tx
            .prepare_cached("SELECT last_seq FROM seq_counter WHERE id = 1")?
            .query_row([], |row| row.get(0))?;
        let last = i64::try_from(total)
            .ok()
            .and_then(|n| before.checked_add(n))
            .ok_or(StoreError::SeqOutOfRange(u64::MAX))?;
        {
            let mut insert = tx.prepare_cached(row::INSERT)?;
            // The newest (ts, seq) of each series' readings, and of its minute, hour and day
            // records, in this commit.
            let mut readings = Newest::default();
            let mut periods = Newest::default();
            for (record, seq) in parts.iter().flat_map(|p| p.iter()).zip(before + 1..) {
                let series_id = series.intern(&tx, record)?;
                row::insert(&mut insert, seq, series_id, record)?;
                match record.kind {
                    RecordKind::Reading => readings.take(series_id, record.ts.millis(), seq),
                    RecordKind::Minute | RecordKind::Hour | RecordKind::Day => {
                        periods.take(series_id, record.ts.millis(), seq)
                    }
                    _ => {}
                }
            }
            readings.write(&tx, "latest_reading")?;
            periods.write(&tx, "latest_period")?;
        }
        tx.prepare_cached(
            "UPDATE seq_counter SET last_seq = ?1, rows = rows + ?1 - ?2 WHERE id = 1",
        )?
        .execute([last, before])?;
        if total > 0 {
            chain::add_commit(&tx, before + 1, last, crate::model::time::now().millis())?;
        }
        audit::insert_entries(&tx, entries)?;
        tx.commit()?;
        Ok(Some((seq_from_sql(before + 1), seq_from_sql(last))))
    }

    /// Up to `limit` records with seq greater than `after_seq`, in seq order.
    pub fn read_after(&self, after_seq: u64, limit: usize) -> Result<Vec<Stored>, StoreError> {
        let Ok(after) = i64::try_from(after_seq) else {
            return Ok(Vec::new());
        };
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {} FROM record WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            row::COLUMNS
        ))?;
        row::read_all(
            &mut stmt,
            rusqlite::params![after, limit_to_sql(Some(limit))],
            &self.conn,
            &mut self.series.borrow_mut(),
        )
    }

    /// The highest seq ever handed out (0 for a new store), even if retention has since
    /// deleted that record.
    pub fn last_seq(&self) -> Result<u64, StoreError> {
        let last: i64 = self
            .conn
            .prepare_cached("SELECT last_seq FROM seq_counter WHERE id = 1")?
            .query_row([], |row| row.get(0))?;
        Ok(seq_from_sql(last))
    }

    /// The latest reading of every (stack, device, channel), ordered by those three; when a
    /// channel changed quantity or unit, the newest reading wins.
    pub fn latest(&self) -> Result<Vec<Stored>, StoreError> {
        let mut series = self.series.borrow_mut();
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {} FROM record WHERE seq IN (SELECT seq FROM latest_reading)",
            row::COLUMNS
        ))?;
        let mut newest: BTreeMap<ChannelKey, Stored> = BTreeMap::new();
        for stored in row::read_all(&mut stmt, [], &self.conn, &mut series)? {
            let r = &stored.record;
            let key = (r.stack.clone(), r.device.clone(), r.channel.clone());
            let newer = newest
                .get(&key)
                .is_none_or(|held| (r.ts, stored.seq) > (held.record.ts, held.seq));
            if newer {
                newest.insert(key, stored);
            }
        }
        Ok(newest.into_values().collect())
    }

    /// The newest minute, hour or day record of every series (what a data logger last
    /// uploaded of each channel, or the last period computed), read one row per series
    /// through `latest_period`, whatever the store's age. A series whose newest period
    /// retention deleted has none.
    pub fn latest_periods(&self) -> Result<Vec<Stored>, StoreError> {
        let mut series = self.series.borrow_mut();
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {} FROM record WHERE seq IN (SELECT seq FROM latest_period)",
            row::COLUMNS
        ))?;
        row::read_all(&mut stmt, [], &self.conn, &mut series)
    }

    /// Time of the newest reading of `device`/`channel` on any stack, so a restart can
    /// tell how long the channel has been silent.
    pub fn last_timestamp(
        &self,
        device: &str,
        channel: &str,
    ) -> Result<Option<Timestamp>, StoreError> {
        let mut series = self.series.borrow_mut();
        series.refresh(&self.conn)?;
        let ids = series.ids_where(|k| &*k.device == device && &*k.channel == channel);
        let mut stmt = self
            .conn
            .prepare_cached("SELECT ts FROM latest_reading WHERE series = ?1")?;
        let mut last: Option<i64> = None;
        for id in ids {
            let ts: Option<i64> = stmt.query_row([id], |row| row.get(0)).optional()?;
            last = last.max(ts);
        }
        Ok(last.map(Timestamp::from_millis))
    }
}

/// (stack, device, channel).
type ChannelKey = (Arc<str>, Arc<str>, Arc<str>);

/// The newest (ts, seq) of each series among the records of one commit, for a table that
/// keeps each series' newest row of some kinds (`latest_reading`, `latest_period`).
#[derive(Default)]
struct Newest(HashMap<i64, (i64, i64)>);

impl Newest {
    fn take(&mut self, series: i64, ts: i64, seq: i64) {
        let newest = self.0.entry(series).or_insert((ts, seq));
        // Later seqs win ties (a revision of a period, a reading redelivered).
        if ts >= newest.0 {
            *newest = (ts, seq);
        }
    }

    /// Moves `table`'s row of each series on where this commit holds a newer one.
    fn write(self, tx: &rusqlite::Transaction<'_>, table: &str) -> Result<(), StoreError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let mut upsert = tx.prepare_cached(&format!(
            "INSERT INTO {table} (series, ts, seq) VALUES (?1, ?2, ?3)
             ON CONFLICT (series) DO UPDATE SET ts = excluded.ts, seq = excluded.seq
             WHERE excluded.ts >= {table}.ts"
        ))?;
        for (series, (ts, seq)) in self.0 {
            upsert.execute([series, ts, seq])?;
        }
        Ok(())
    }
}

/// Seqs and counts in SQLite are never negative; a negative value reads as 0.
fn seq_from_sql(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn seq_to_sql(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| StoreError::SeqOutOfRange(seq))
}

/// SQLite reads a negative LIMIT as "no limit".
fn limit_to_sql(limit: Option<usize>) -> i64 {
    limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX))
}

/// What the store's own tests share: events to append and a store with its writer running.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::{Path, PathBuf};
    use std::thread::JoinHandle;

    use super::{Record, RecordKind, Store, StoreHandle, StoreOptions, StoreWriter, WriterOptions};
    use crate::model::Timestamp;

    /// `n` events of one series, 1 ms apart from the epoch.
    pub fn events(n: usize) -> Vec<Record> {
        (0..n)
            .map(|i| {
                Record::new(
                    RecordKind::Event,
                    Timestamp::from_millis(i as i64),
                    "s".into(),
                    "d".into(),
                    "c".into(),
                )
            })
            .collect()
    }

    /// A new store `cems.db` in `dir` with its writer thread running.
    pub fn running_writer(dir: &Path) -> (PathBuf, StoreHandle, JoinHandle<Store>) {
        let path = dir.join("cems.db");
        let store =
            Store::open(&path, StoreOptions::default()).unwrap_or_else(|e| panic!("open: {e}"));
        let (handle, join) = StoreWriter::spawn(store, WriterOptions::default())
            .unwrap_or_else(|e| panic!("spawn: {e}"));
        (path, handle, join)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Flag, FlagSet, Quantity, Unit};

    const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    const MINUTE: i64 = 60_000;
    const HOUR: i64 = 60 * MINUTE;

    fn open(dir: &tempfile::TempDir, options: StoreOptions) -> Store {
        let path = dir.path().join("cems.db");
        match Store::open(&path, options) {
            Ok(store) => store,
            Err(e) => panic!("opening {}: {e}", path.display()),
        }
    }

    fn temp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"))
    }

    fn reading(ts: i64, stack: &str, device: &str, channel: &str, q: Quantity, v: f64) -> Record {
        Record {
            quantity: Some(q),
            unit: Some(Unit::MgPerM3),
            measured: Some(v),
            ..Record::new(
                RecordKind::Reading,
                Timestamp::from_millis(ts),
                stack.into(),
                device.into(),
                channel.into(),
            )
        }
    }

    fn seqs(stored: &[Stored]) -> Vec<u64> {
        stored.iter().map(|s| s.seq).collect()
    }

    fn ok<T>(result: Result<T, StoreError>) -> T {
        result.unwrap_or_else(|e| panic!("store operation failed: {e}"))
    }

    #[test]
    fn append_numbers_contiguously_and_read_after_keeps_order() {
        let dir = temp();
        let mut store = open(&dir, StoreOptions::default());
        let first: Vec<Record> = (0..3)
            .map(|i| reading(T0 + i * 1000, "s1", "a1", "so2", Quantity::SO2, i as f64))
            .collect();
        let second: Vec<Record> = (3..5)
            .map(|i| reading(T0 + i * 1000, "s1", "a1", "nox", Quantity::NOx, i as f64))
            .collect();
        assert_eq!(ok(store.append(&first)), Some((1, 3)));
        assert_eq!(ok(store.append(&second)), Some((4, 5)));
        assert_eq!(ok(store.append(&[])), None, "nothing to append, no seq");
        assert_eq!(ok(store.last_seq()), 5);
        assert_eq!(ok(store.count()), Some(5));

        let all = ok(store.read_after(0, 100));
        assert_eq!(seqs(&all), vec![1, 2, 3, 4, 5]);
        let records: Vec<Record> = all.into_iter().map(|s| s.record).collect();
        assert_eq!(records, [first, second].concat());
        assert_eq!(seqs(&ok(store.read_after(3, 100))), vec![4, 5]);
        assert_eq!(seqs(&ok(store.read_after(0, 2))), vec![1, 2]);
        assert_eq!(seqs(&ok(store.read_after(5, 100))), Vec::<u64>::new());
        assert_eq!(
            seqs(&ok(store.read_after(u64::MAX, 100))),
            Vec::<u64>::new()
        );
    }

    #[test]
    fn every_field_round_trips_and_nan_reads_as_no_value() {
        let dir = temp();
        let mut store = open(&dir, StoreOptions::default());
        let full = Record {
            kind: RecordKind::Hour,
            ts: Timestamp::from_millis(T0),
            end: Some(Timestamp::from_millis(T0 + HOUR)),
            stack: "stack-1".into(),
            device: "analyser-2".into(),
            channel: "so2".into(),
            quantity: Some(Quantity::SO2),
            unit: Some(Unit::MgPerM3),
            flags: FlagSet::of(Flag::T).with(Flag::C),
            raw: Some(12.5),
            measured: Some(-0.25),
            corrected: Some(35.125),
            rate: Some(1.5e-3),
            min: Some(f64::MIN_POSITIVE),
            max: Some(f64::INFINITY),
            count: Some(u32::MAX),
            corrected_min: Some(-1e-300),
            corrected_max: Some(f64::MAX),
            note: Some("维护 after calibration".to_string()),
            revision: 3,
        };
        let bare = Record::new(
            RecordKind::Gap,
            Timestamp::from_millis(-1),
            "".into(),
            "d".into(),
            "c".into(),
        );
        let nan = Record {
            raw: Some(f64::NAN),
            ..bare.clone()
        };
        ok(store.append(&[full.clone(), bare.clone(), nan]));
        let back: Vec<Record> = ok(store.read_after(0, 10))
            .into_iter()
            .map(|s| s.record)
            .collect();
        assert_eq!(back, vec![full, bare.clone(), bare]);
        assert_eq!(back[0].flags.primary(), Flag::C);
    }

    #[test]
    fn cursors_start_at_zero_and_never_move_backwards() {
        let dir = temp();
        let mut store = open(&dir, StoreOptions::default());
        let batch: Vec<Record> = (0..5)
            .map(|i| reading(T0 + i, "s", "d", "c", Quantity::O2, 6.0))
            .collect();
        ok(store.append(&batch));

        ok(store.register_sink("influx"));
        assert_eq!(ok(store.cursor("influx")), 0);
        ok(store.set_cursor("influx", 3));
        ok(store.set_cursor("influx", 2));
        assert_eq!(
            ok(store.cursor("influx")),
            3,
            "a late, older ack is ignored"
        );
        ok(store.register_sink("influx"));
        assert_eq!(ok(store.cursor("influx")), 3, "registering again keeps it");

        assert!(matches!(
            store.set_cursor("influx", 6),
            Err(StoreError::CursorBeyondEnd {
                seq: 6,
                last_seq: 5,
                ..
            })
        ));
        assert!(matches!(
            store.set_cursor("hj212", 1),
            Err(StoreError::UnknownSink(s)) if s == "hj212"
        ));
        assert!(matches!(
            store.cursor("hj212"),
            Err(StoreError::UnknownSink(_))
        ));

        ok(store.register_sink_from("hj212", 5));
        assert_eq!(
            ok(store.sinks()),
            vec![("hj212".to_string(), 5), ("influx".to_string(), 3)]
        );
        assert!(ok(store.unregister_sink("hj212")));
        assert!(!ok(store.unregister_sink("hj212")));
        drop(store);
        let store = open(&dir, StoreOptions::default());
        assert_eq!(ok(store.cursor("influx")), 3, "cursor survives reopening");
    }

    fn open_keeping_an_hour(dir: &tempfile::TempDir) -> Store {
        let options = StoreOptions {
            retention: Some(Duration::from_secs(3600)),
            ..StoreOptions::default()
        };
        open(dir, options)
    }

    #[test]
    fn prune_keeps_what_any_sink_still_needs_and_what_is_young() {
        let dir = temp();
        let mut store = open_keeping_an_hour(&dir);
        let now = T0 + 10 * HOUR;
        let records = vec![
            reading(now - 3 * HOUR, "s", "d", "so2", Quantity::SO2, 1.0), // seq 1, old
            reading(now - 2 * HOUR, "s", "d", "nox", Quantity::NOx, 2.0), // seq 2, old
            reading(now - 30 * MINUTE, "s", "d", "so2", Quantity::SO2, 3.0), // seq 3, young
            reading(now - 4 * HOUR, "s", "d", "o2", Quantity::O2, 4.0),   // seq 4, old (backfill)
        ];
        ok(store.append(&records));
        ok(store.register_sink("influx"));
        ok(store.register_sink("hj212"));

        assert_eq!(
            ok(store.prune(Timestamp::from_millis(now))),
            0,
            "no sink took anything"
        );
        ok(store.set_cursor("influx", 4));
        ok(store.set_cursor("hj212", 1));
        // min cursor 1: only seq 1 is both delivered everywhere and older than an hour.
        assert_eq!(ok(store.prune(Timestamp::from_millis(now))), 1);
        assert_eq!(seqs(&ok(store.read_after(0, 10))), vec![2, 3, 4]);

        ok(store.set_cursor("hj212", 4));
        // min cursor 4: seqs 2 and 4 are old; seq 3 is 30 min old and stays.
        assert_eq!(ok(store.prune(Timestamp::from_millis(now))), 2);
        assert_eq!(seqs(&ok(store.read_after(0, 10))), vec![3]);

        // Two hours later seq 3 is 2.5 h old and goes too.
        assert_eq!(ok(store.prune(Timestamp::from_millis(now + 2 * HOUR))), 1);
        assert_eq!(ok(store.count()), Some(0));
    }

    /// A budget takes the oldest delivered readings an hour at a time, then minutes, and
    /// never the hours or what a sink has not taken; steps stop at their row limit.
    #[test]
    fn a_store_over_its_budget_loses_its_oldest_delivered_readings_first() {
        let dir = temp();
        let mut store = open(&dir, StoreOptions::default());
        let now = T0 + 10 * HOUR;
        // three hours of readings a second apart, a minute record and an hour record each hour
        let mut records = Vec::new();
        for hour in 0..3 {
            let start = T0 + hour * HOUR;
            for s in 0..3600 {
                records.push(reading(
                    start + s * 1000,
                    "s",
                    "d",
                    "so2",
                    Quantity::SO2,
                    1.0,
                ));
            }
            for kind in [RecordKind::Minute, RecordKind::Hour] {
                records.push(Record::new(
                    kind,
                    Timestamp::from_millis(start),
                    "s".into(),
                    "d".into(),
                    "so2".into(),
                ));
            }
        }
        ok(store.append(&records));
        ok(store.register_sink("influx"));
        // the sink has everything but the last hour's readings and records
        ok(store.set_cursor("influx", 2 * 3602));
        let used = ok(store.used_bytes());
        store.options.max_size = Some(used / 10);

        let step = ok(store.prune_step(Timestamp::from_millis(now), 1000));
        assert_eq!(
            (step.by_age, step.by_size),
            (0, 1000),
            "a step stops at its limit"
        );
        assert!(step.more);
        let mut by_size = step.by_size;
        loop {
            let step = ok(store.prune_step(Timestamp::from_millis(now), 1000));
            by_size += step.by_size;
            if step.by_size == 0 {
                break;
            }
        }
        // all delivered readings, then the delivered minutes; the hours and the last hour stay
        assert_eq!(by_size, 2 * 3600 + 2);
        let left = ok(store.read_after(0, 10_000));
        let kinds = |kind| left.iter().filter(|s| s.record.kind == kind).count();
        assert_eq!(kinds(RecordKind::Reading), 3600);
        assert_eq!(kinds(RecordKind::Minute), 1);
        assert_eq!(kinds(RecordKind::Hour), 3);
        // the newest reading is still the series' latest
        assert_eq!(ok(store.latest()).len(), 1);
    }

    /// Age retention, too, goes in bounded steps.
    #[test]
    fn pruning_by_age_goes_in_steps_of_at_most_the_row_limit() {
        let dir = temp();
        let mut store = open_keeping_an_hour(&dir);
        let records: Vec<Record> = (0..2500)
            .map(|i| reading(T0 + i * 1000, "s", "d", "so2", Quantity::SO2, 1.0))
            .collect();
        ok(store.append(&records));
        let now = Timestamp::from_millis(T0 + 10 * HOUR);
        let steps: Vec<usize> = (0..4)
            .map(|_| ok(store.prune_step(now, 1000)).by_age)
            .collect();
        assert_eq!(steps, vec![1000, 1000, 500, 0]);
        assert_eq!(ok(store.count()), Some(0));
    }

    #[test]
    fn prune_hands_latest_to_the_newest_reading_left() {
        let dir = temp();
        let mut store = open_keeping_an_hour(&dir);
        let now = T0 + 10 * HOUR;
        ok(store.append(&[
            reading(now - 3 * HOUR, "s", "d", "so2", Quantity::SO2, 1.0), // seq 1
            reading(now - 2 * HOUR, "s", "d", "nox", Quantity::NOx, 2.0), // seq 2
            reading(now - 4 * HOUR, "s", "d", "so2", Quantity::SO2, 3.0), // seq 3, backfill
        ]));
        ok(store.register_sink("influx"));
        ok(store.set_cursor("influx", 2));
        assert_eq!(seqs(&ok(store.latest())), vec![2, 1]);
        // Seqs 1 and 2 are delivered and old, so they go; seq 3 is as old but undelivered.
        assert_eq!(ok(store.prune(Timestamp::from_millis(now))), 2);
        // so2's newest reading is now seq 3; nox has none left.
        assert_eq!(seqs(&ok(store.latest())), vec![3]);
        assert_eq!(
            ok(store.last_timestamp("d", "so2")),
            Some(Timestamp::from_millis(now - 4 * HOUR))
        );
        assert_eq!(ok(store.last_timestamp("d", "nox")), None);
    }

    #[test]
    fn prune_without_retention_keeps_everything() {
        let dir = temp();
        let mut store = open(&dir, StoreOptions::default());
        ok(store.append(&[reading(0, "s", "d", "c", Quantity::CO, 1.0)]));
        ok(store.register_sink("influx"));
        ok(store.set_cursor("influx", 1));
        assert_eq!(ok(store.prune(Timestamp::from_millis(T0))), 0);
        assert_eq!(ok(store.count()), Some(1));
    }

    #[test]
    fn seq_keeps_rising_after_everything_is_pruned_and_after_reopen() {
        let dir = temp();
        let options = StoreOptions {
            retention: Some(Duration::from_millis(1)),
            ..StoreOptions::default()
        };
        let mut store = open(&dir, options.clone());
        let five: Vec<Record> = (0..5)
            .map(|i| reading(T0 + i, "s", "d", "c", Quantity::SO2, 1.0))
            .collect();
        assert_eq!(ok(store.append(&five)), Some((1, 5)));
        assert_eq!(ok(store.prune(Timestamp::from_millis(T0 + HOUR))), 5);
        assert_eq!(ok(store.count()), Some(0));
        assert_eq!(ok(store.last_seq()), 5, "last_seq outlives its rows");
        assert_eq!(ok(store.append(&five[..1])), Some((6, 6)));
        assert_eq!(ok(store.prune(Timestamp::from_millis(T0 + HOUR))), 1);
        drop(store);

        let mut store = open(&dir, options);
        assert_eq!(ok(store.count()), Some(0));
        assert_eq!(ok(store.last_seq()), 6);
        assert_eq!(ok(store.append(&five[..2])), Some((7, 8)));
    }

    #[test]
    fn dead_letters_round_trip_newest_first_and_expire() {
        let dir = temp();
        let mut store = open_keeping_an_hour(&dir);
        let binary = [0xff_u8, 0x00, 0x23, 0x23, 0xfe];
        let old = Timestamp::from_millis(T0);
        let new = Timestamp::from_millis(T0 + 2 * HOUR);
        assert_eq!(
            ok(store.append_dead_letter("hj212", "bad CRC", &binary, old)),
            1
        );
        assert_eq!(
            ok(store.append_dead_letter("mqtt", "not JSON", b"{", new)),
            2
        );

        let letters = ok(store.dead_letters(10));
        assert_eq!(
            letters,
            vec![
                DeadLetter {
                    id: 2,
                    ts: new,
                    source: "mqtt".to_string(),
                    reason: "not JSON".to_string(),
                    payload: b"{".to_vec(),
                },
                DeadLetter {
                    id: 1,
                    ts: old,
                    source: "hj212".to_string(),
                    reason: "bad CRC".to_string(),
                    payload: binary.to_vec(),
                },
            ]
        );
        assert_eq!(ok(store.dead_letters(1)).len(), 1);

        // At T0 + 2h30 the first (2.5 h old) is past the hour of retention, the second not.
        ok(store.prune(Timestamp::from_millis(T0 + 2 * HOUR + 30 * MINUTE)));
        let ids: Vec<u64> = ok(store.dead_letters(10)).iter().map(|d| d.id).collect();
        assert_eq!(ids, vec![2]);
    }

    fn query_fixture(store: &mut Store) {
        let mut hour = Record::new(
            RecordKind::Hour,
            Timestamp::from_millis(T0),
            "s1".into(),
            "a1".into(),
            "so2".into(),
        );
        hour.quantity = Some(Quantity::SO2);
        hour.unit = Some(Unit::MgPerM3);
        let records = vec![
            reading(T0, "s1", "a1", "so2", Quantity::SO2, 1.0), // seq 1
            reading(T0, "s1", "a1", "nox", Quantity::NOx, 2.0), // seq 2
            reading(T0, "s2", "a2", "so2", Quantity::SO2, 3.0), // seq 3
            reading(T0 + MINUTE, "s1", "a1", "so2", Quantity::SO2, 4.0), // seq 4
            hour,                                               // seq 5
            reading(T0 - MINUTE, "s2", "a2", "so2", Quantity::SO2, 5.0), // seq 6
        ];
        ok(store.append(&records));
    }

    #[test]
    fn query_filters_combine() {
        let dir = temp();
        let mut store = open(&dir, StoreOptions::default());
        query_fixture(&mut store);
        let run = |q: Query| seqs(&ok(store.query(&q)));

        // Ordered by ts then seq: seq 6 is the earliest reading.
        assert_eq!(run(Query::default()), vec![6, 1, 2, 3, 5, 4]);
        let readings = Some(RecordKind::Reading);
        assert_eq!(
            run(Query {
                kind: readings,
                ..Query::default()
            }),
            vec![6, 1, 2, 3, 4]
        );
        assert_eq!(
            run(Query {
                kind: Some(RecordKind::Hour),
                ..Query::default()
            }),
            vec![5]
        );
        assert_eq!(
            run(Query {
                stack: Some("s2".into()),
                ..Query::default()
            }),
            vec![6, 3]
        );
        assert_eq!(
            run(Query {
                device: Some("a1".into()),
                kind: readings,
                ..Query::default()
            }),
            vec![1, 2, 4]
        );
        assert_eq!(
            run(Query {
                quantity: Some(Quantity::NOx),
                ..Query::default()
            }),
            vec![2]
        );
        assert_eq!(
            run(Query {
                channel: Some("so2".into()),
                stack: Some("s1".into()),
                ..Query::default()
            }),
            vec![1, 5, 4]
        );
        // from inclusive, to exclusive.
        assert_eq!(
            run(Query {
                from: Some(Timestamp::from_millis(T0)),
                to: Some(Timestamp::from_millis(T0 + MINUTE)),
                ..Query::default()
            }),
            vec![1, 2, 3, 5]
        );
        assert_eq!(
            run(Query {
                limit: Some(2),
                ..Query::default()
            }),
            vec![6, 1]
        );
        assert_eq!(
            run(Query {
                stack: Some("nowhere".into()),
                ..Query::default()
            }),
            Vec::<u64>::new()
        );
    }

    #[test]
    fn latest_periods_gives_the_newest_minute_hour_or_day_per_series() {
        let dir = temp();
        let mut store = open(&dir, StoreOptions::default());
        let period = |kind, ts: i64, device: &str, v: f64| Record {
            kind,
            ..reading(ts, "s1", device, "so2", Quantity::SO2, v)
        };
        ok(store.append(&[
            period(RecordKind::Minute, T0, "a1", 1.0),          // seq 1
            period(RecordKind::Minute, T0 + MINUTE, "a1", 2.0), // seq 2
            period(RecordKind::Hour, T0, "a1", 3.0),            // seq 3: older than seq 2
            reading(T0 + 2 * MINUTE, "s1", "a1", "so2", Quantity::SO2, 9.0), // seq 4: a reading
            period(RecordKind::Hour, T0, "a2", 5.0),            // seq 5
        ]));
        // a late minute is older; a revision of the newest minute (same ts) wins
        ok(store.append(&[period(RecordKind::Minute, T0 - MINUTE, "a1", 6.0)])); // seq 6
        let mut newest = seqs(&ok(store.latest_periods()));
        newest.sort_unstable();
        assert_eq!(newest, vec![2, 5]);
        ok(store.append(&[period(RecordKind::Minute, T0 + MINUTE, "a1", 7.0)])); // seq 7
        let mut newest: Vec<(u64, Option<f64>)> = ok(store.latest_periods())
            .iter()
            .map(|s| (s.seq, s.record.measured))
            .collect();
        newest.sort_by_key(|(seq, _)| *seq);
        assert_eq!(newest, vec![(5, Some(5.0)), (7, Some(7.0))]);
    }

    #[test]
    fn latest_gives_the_newest_reading_per_channel() {
        let dir = temp();
        let mut store = open(&dir, StoreOptions::default());
        query_fixture(&mut store);
        // A unit change on s1/a1/nox makes a second series for the same channel.
        let mut ppm = reading(T0 + 2 * MINUTE, "s1", "a1", "nox", Quantity::NOx, 9.0); // seq 7
        ppm.unit = Some(Unit::Ppm);
        ok(store.append(&[ppm]));

        let latest: Vec<(String, u64)> = ok(store.latest())
            .iter()
            .map(|s| {
                (
                    format!(
                        "{}/{}/{}",
                        s.record.stack, s.record.device, s.record.channel
                    ),
                    s.seq,
                )
            })
            .collect();
        // s1/a1/so2: seq 4 (T0+1min) beats seq 1, and the hour record (seq 5) is no reading.
        // s2/a2/so2: seq 3 (T0) beats seq 6 (T0-1min) although 6 was stored later.
        assert_eq!(
            latest,
            vec![
                ("s1/a1/nox".to_string(), 7),
                ("s1/a1/so2".to_string(), 4),
                ("s2/a2/so2".to_string(), 3),
            ]
        );
    }

    #[test]
    fn last_timestamp_is_the_newest_reading_of_a_channel() {
        let dir = temp();
        let mut store = open(&dir, StoreOptions::default());
        query_fixture(&mut store);
        assert_eq!(
            ok(store.last_timestamp("a1", "so2")),
            Some(Timestamp::from_millis(T0 + MINUTE))
        );
        assert_eq!(
            ok(store.last_timestamp("a2", "so2")),
            Some(Timestamp::from_millis(T0))
        );
        assert_eq!(ok(store.last_timestamp("a1", "o2")), None);
        assert_eq!(ok(store.last_timestamp("nobody", "so2")), None);
    }

    #[test]
    fn a_failed_append_leaves_nothing_and_the_next_one_works() {
        let dir = temp();
        let options = StoreOptions {
            busy_timeout: Duration::from_millis(20),
            ..StoreOptions::default()
        };
        let mut store = open(&dir, options);
        ok(store.append(&[reading(T0, "s", "d", "so2", Quantity::SO2, 1.0)]));

        // Another connection holding the write lock: the append fails before it starts.
        let blocker = ok(Connection::open(dir.path().join("cems.db")).map_err(StoreError::from));
        ok(blocker
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(StoreError::from));
        let so2 = reading(T0 + 1, "s", "d", "so2", Quantity::SO2, 1.5);
        assert!(matches!(
            store.append(std::slice::from_ref(&so2)),
            Err(StoreError::Sqlite(_))
        ));
        ok(blocker.execute_batch("ROLLBACK").map_err(StoreError::from));

        // A failure mid-transaction, after a new series was interned for the first record.
        ok(store
            .conn
            .execute_batch(
                "CREATE TEMP TRIGGER reject BEFORE INSERT ON main.record
                 WHEN NEW.note = 'reject' BEGIN SELECT RAISE(ABORT, 'rejected'); END",
            )
            .map_err(StoreError::from));
        let new_series = reading(T0, "s", "d", "nox", Quantity::NOx, 2.0);
        let rejected = Record {
            note: Some("reject".to_string()),
            ..so2.clone()
        };
        assert!(matches!(
            store.append(&[new_series.clone(), rejected]),
            Err(StoreError::Sqlite(_))
        ));
        assert_eq!(
            ok(store.last_seq()),
            1,
            "nothing of the failed batches is kept"
        );
        assert_eq!(ok(store.count()), Some(1));

        // The rolled-back series row must not be referred to by its stale id.
        assert_eq!(
            ok(store.append(&[new_series.clone(), so2.clone()])),
            Some((2, 3))
        );
        let back: Vec<Record> = ok(store.read_after(1, 10))
            .into_iter()
            .map(|s| s.record)
            .collect();
        assert_eq!(back, vec![new_series, so2]);
    }

    #[test]
    fn a_second_connection_reads_series_it_has_not_seen() {
        let dir = temp();
        let mut writer = open(&dir, StoreOptions::default());
        let reader = open(&dir, StoreOptions::default());
        let record = reading(T0, "s9", "d9", "dust", Quantity::Dust, 7.5);
        ok(writer.append(std::slice::from_ref(&record)));
        let back = ok(reader.read_after(0, 10));
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].record, record);
        assert_eq!(
            seqs(&ok(reader.query(&Query {
                stack: Some("s9".into()),
                ..Query::default()
            }))),
            vec![1]
        );
    }

    #[test]
    fn open_creates_directories_and_refuses_a_newer_schema() {
        let dir = temp();
        let path = dir.path().join("var/lib/cemsd/store.db");
        let store = ok(Store::open(&path, StoreOptions::default()));
        let version: i64 = ok(store
            .conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(StoreError::from));
        assert_eq!(version, schema::SCHEMA_VERSION);
        let mode: String = ok(store
            .conn
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .map_err(StoreError::from));
        assert_eq!(mode, "wal");
        ok(store
            .conn
            .pragma_update(None, "user_version", schema::SCHEMA_VERSION + 1)
            .map_err(StoreError::from));
        drop(store);

        assert!(matches!(
            Store::open(&path, StoreOptions::default()),
            Err(StoreError::SchemaTooNew { found, supported })
                if found == schema::SCHEMA_VERSION + 1 && supported == schema::SCHEMA_VERSION
        ));
    }

    /// A file as the first schema left it: rows written with plain SQL, as that build did.
    fn store_from_schema_1(path: &Path) {
        let mut conn = ok(Connection::open(path).map_err(StoreError::from));
        ok(schema::migrate_to(&mut conn, 1));
        ok(conn
            .execute_batch(&format!(
                "INSERT INTO series (id, stack, device, channel, quantity, unit)
                 VALUES (1, 's1', '', '', NULL, NULL), (2, 's1', 'a1', 'so2', 'SO2', 'mg/m3');
                 INSERT INTO record (seq, kind, series, ts, flags, min)
                 VALUES (1, 2, 1, {T0}, 0, 3.0);
                 INSERT INTO record (seq, kind, series, ts, flags, measured)
                 VALUES (2, 0, 2, {}, 0, 7.0), (3, 0, 2, {T0}, 0, 8.0), (4, 1, 2, {}, 0, 6.0);
                 UPDATE seq_counter SET last_seq = 4;",
                T0 + MINUTE,
                T0 - 10 * 24 * HOUR
            ))
            .map_err(StoreError::from));
    }

    #[test]
    fn a_store_from_before_the_row_counter_is_counted_in_steps_and_then_kept_counted() {
        let dir = temp();
        let path = dir.path().join("v1.db");
        store_from_schema_1(&path);
        let mut store = ok(Store::open(&path, StoreOptions::default()));
        assert_eq!(ok(store.count()), None, "four old rows not counted yet");
        ok(store.append(&[reading(T0, "s1", "a1", "so2", Quantity::SO2, 1.0)]));
        assert_eq!(ok(store.count()), None);
        // seqs 3..=4, then 1..=2
        assert!(ok(store.count_step(2)));
        assert_eq!(ok(store.count()), None);
        assert!(!ok(store.count_step(2)));
        assert_eq!(ok(store.count()), Some(5));
        assert!(!ok(store.count_step(2)), "nothing left to count");
        let exact: i64 = ok(store
            .conn
            .query_row("SELECT count(*) FROM record", [], |row| row.get(0))
            .map_err(StoreError::from));
        assert_eq!(exact, 5);
    }

    #[test]
    fn a_store_from_the_first_schema_keeps_its_rows_and_gains_what_came_since() {
        let dir = temp();
        let path = dir.path().join("v1.db");
        store_from_schema_1(&path);

        let mut store = ok(Store::open(&path, StoreOptions::default()));
        // Migration 7: the old hour is its series' newest period; a minute ten days before
        // it lies outside the three days the migration reads back.
        assert_eq!(seqs(&ok(store.latest_periods())), vec![1]);
        let mut hour = Record::new(
            RecordKind::Hour,
            Timestamp::from_millis(T0),
            "s1".into(),
            "".into(),
            "".into(),
        );
        hour.min = Some(3.0);
        // Migration 2: the O2-corrected extremes, NULL on the old row.
        let mut later = hour.clone();
        later.ts = Timestamp::from_millis(T0 + HOUR);
        later.corrected_min = Some(4.5);
        later.corrected_max = Some(9.25);
        ok(store.append(std::slice::from_ref(&later)));
        let hours = ok(store.query(&Query {
            kind: Some(RecordKind::Hour),
            stack: Some("s1".into()),
            ..Query::default()
        }));
        let back: Vec<Record> = hours.into_iter().map(|s| s.record).collect();
        assert_eq!(back, vec![hour, later]);
        assert_eq!(seqs(&ok(store.latest_periods())), vec![5]);
        // Migration 3: the newest reading of the old rows is known without a search; it is
        // seq 2 (T0 + 1 min), stored before seq 3 (T0).
        assert_eq!(seqs(&ok(store.latest())), vec![2]);
        assert_eq!(
            ok(store.last_timestamp("a1", "so2")),
            Some(Timestamp::from_millis(T0 + MINUTE))
        );
    }
}
