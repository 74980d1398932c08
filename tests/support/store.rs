//! The SQLite store as the tests open, fill and query it.

use std::path::Path;
use std::time::{Duration, Instant};

use cemsd::store::{
    Query, Record, RecordKind, Store, StoreHandle, StoreOptions, StoreWriter, Stored, WriterOptions,
};

/// Opens the store at `db`, or fails the test.
pub fn open(db: &Path) -> Store {
    Store::open(db, StoreOptions::default()).unwrap_or_else(|e| panic!("open {db:?}: {e}"))
}

/// The store at `db` if it opens (it may not exist yet, or be busy).
pub fn try_open(db: &Path) -> Option<Store> {
    Store::open(db, StoreOptions::default()).ok()
}

/// Every record in the store at `db`, in seq order.
pub fn all(db: &Path) -> Vec<Stored> {
    open(db)
        .query(&Query::default())
        .unwrap_or_else(|e| panic!("query {db:?}: {e}"))
}

/// Every reading of `device`, oldest first.
pub fn readings(store: &Store, device: &str) -> Vec<Stored> {
    store
        .query(&reading_query(device))
        .unwrap_or_else(|e| panic!("query: {e}"))
}

/// How many readings of `device` the store at `db` holds; 0 while it cannot be read.
pub fn count_readings(db: &Path, device: &str) -> usize {
    try_open(db)
        .and_then(|s| s.query(&reading_query(device)).ok())
        .map_or(0, |rows| rows.len())
}

fn reading_query(device: &str) -> Query {
    Query {
        kind: Some(RecordKind::Reading),
        device: Some(device.into()),
        ..Query::default()
    }
}

/// Polls the store at `db` until `done` says so, for at most 30 s; false on time-out.
pub fn wait_for(db: &Path, mut done: impl FnMut(&Store) -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        if let Some(store) = try_open(db) {
            if done(&store) {
                return true;
            }
        }
    }
    false
}

/// Appends `records` to the store at `db` (created with its directory if need be) in one
/// commit; returns the first and last seq.
pub fn append(db: &Path, records: &[Record]) -> (u64, u64) {
    if let Some(dir) = db.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {dir:?}: {e}"));
    }
    open(db)
        .append(records)
        .unwrap_or_else(|e| panic!("append: {e}"))
        .unwrap_or_else(|| panic!("nothing appended"))
}

/// Creates a store at `path` holding `records`, 10 000 a commit; returns their last seq.
pub fn fill_store(path: &Path, records: &[Record]) -> u64 {
    let mut store = open(path);
    let mut last = 0;
    for chunk in records.chunks(10_000) {
        if let Some((_, l)) = store
            .append(chunk)
            .unwrap_or_else(|e| panic!("append: {e}"))
        {
            last = l;
        }
    }
    last
}

/// The store's writer thread, as the daemon runs it.
pub struct Writer {
    pub handle: StoreHandle,
    join: Option<std::thread::JoinHandle<Store>>,
}

impl Writer {
    pub fn start(path: &Path) -> Writer {
        let (handle, join) = StoreWriter::spawn(open(path), WriterOptions::default())
            .unwrap_or_else(|e| panic!("store writer: {e}"));
        Writer {
            handle,
            join: Some(join),
        }
    }

    pub async fn stop(mut self) {
        assert!(
            self.handle.shutdown().await.is_ok(),
            "store writer shutdown"
        );
        if let Some(join) = self.join.take() {
            let joined = tokio::task::spawn_blocking(move || join.join().is_ok()).await;
            assert!(joined.is_ok_and(|ok| ok), "store writer thread");
        }
    }
}
