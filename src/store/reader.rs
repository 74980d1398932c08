//! A read connection to the store, beside the writer's: the sinks read after their cursors
//! through one, the status page and health checks through another.
//!
//! The store runs in WAL mode, so a second connection reads committed rows while the writer
//! thread keeps committing, and the writer never waits for a reader. Opening it is safe next
//! to the writer: `Store::open` finds the schema current and only takes the write lock for an
//! instant (waiting up to the busy timeout if a commit holds it), and every read here is a
//! short statement or a few, so it never pins an old snapshot that would stop checkpoints.
//! SQLite calls block: the sync methods are for the blocking pool, the async ones go there
//! themselves.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::model::Timestamp;
use crate::store::{Query, RecordKind, Store, StoreError, StoreOptions, Stored};

/// Clones share one connection.
#[derive(Clone)]
pub struct StoreReader {
    path: PathBuf,
    /// `None` before the first read and after a failure: the next read (re)opens it.
    store: Arc<Mutex<Option<Store>>>,
}

/// Records after a cursor, and how far the store has written.
#[derive(Debug)]
pub struct ReadBatch {
    pub records: Vec<Stored>,
    pub last_seq: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the store read was cancelled or panicked: {0}")]
    Task(String),
}

/// A reader only needs a small page cache (a sink reads forward, the status page recent rows
/// of a few series); the writer's is the one that matters, and a gateway's memory is small.
const READER_CACHE_KIB: u32 = 2 * 1024;

impl StoreReader {
    /// A reader that opens the store at its first read.
    pub fn new(path: PathBuf) -> StoreReader {
        StoreReader {
            path,
            store: Arc::new(Mutex::new(None)),
        }
    }

    /// A reader with the store opened now, so that a store that cannot be read is reported
    /// at once.
    pub fn open(path: &Path) -> Result<StoreReader, StoreError> {
        let reader = StoreReader::new(path.to_path_buf());
        *reader.store.lock().unwrap_or_else(|e| e.into_inner()) = Some(open(path)?);
        Ok(reader)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `read` with the connection, opening it first if needed. Blocks; a failed read
    /// drops the connection and the next one opens a fresh one.
    pub fn read<R>(
        &self,
        read: impl FnOnce(&Store) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut slot = self.store.lock().unwrap_or_else(|e| e.into_inner());
        let store = match slot.take() {
            Some(store) => store,
            None => open(&self.path)?,
        };
        let result = read(&store);
        if result.is_ok() {
            *slot = Some(store);
        }
        result
    }

    /// The latest stored record of every series. Blocks.
    pub fn latest(&self) -> Result<Vec<Stored>, StoreError> {
        self.read(|store| store.latest())
    }

    /// Readings of one channel of one device on one stack in `[from, to)`. Blocks.
    pub fn readings(
        &self,
        stack: &str,
        device: &str,
        channel: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Stored>, StoreError> {
        let query = Query {
            kind: Some(RecordKind::Reading),
            stack: Some(stack.to_string()),
            device: Some(device.to_string()),
            channel: Some(channel.to_string()),
            from: Some(from),
            to: Some(to),
            ..Query::default()
        };
        self.read(|store| store.query(&query))
    }

    /// How far the store has written; for the backlog gauge while a batch is stuck.
    pub async fn last_seq(&self) -> Result<u64, ReadError> {
        self.on_blocking_pool(|store| store.last_seq()).await
    }

    /// Up to `limit` records with seq above `after`, in seq order, plus the store's last seq.
    pub async fn read_after(&self, after: u64, limit: usize) -> Result<ReadBatch, ReadError> {
        self.on_blocking_pool(move |store| {
            let last_seq = store.last_seq()?;
            let records = store.read_after(after, limit)?;
            // Rows committed between the two statements may be newer than last_seq, so the
            // batch's own last seq raises it.
            let newest = records.last().map_or(last_seq, |s| s.seq.max(last_seq));
            Ok(ReadBatch {
                records,
                last_seq: newest,
            })
        })
        .await
    }

    /// [`StoreReader::read`] on tokio's blocking pool.
    async fn on_blocking_pool<R, F>(&self, read: F) -> Result<R, ReadError>
    where
        R: Send + 'static,
        F: FnOnce(&Store) -> Result<R, StoreError> + Send + 'static,
    {
        let reader = self.clone();
        match tokio::task::spawn_blocking(move || reader.read(read)).await {
            Ok(result) => Ok(result?),
            Err(e) => Err(ReadError::Task(e.to_string())),
        }
    }
}

fn open(path: &Path) -> Result<Store, StoreError> {
    Store::open(
        path,
        StoreOptions {
            cache_size_kib: READER_CACHE_KIB,
            ..StoreOptions::default()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{events, running_writer};

    #[tokio::test]
    async fn reads_what_the_writer_thread_commits_while_it_keeps_running() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let (path, handle, join) = running_writer(dir.path());

        let reader = StoreReader::new(path);
        let empty = reader
            .read_after(0, 10)
            .await
            .unwrap_or_else(|e| panic!("read: {e}"));
        assert!(empty.records.is_empty());
        assert_eq!(empty.last_seq, 0);

        let committed = handle.append(events(5)).await;
        assert_eq!(committed.ok().flatten(), Some((1, 5)));
        let batch = reader
            .read_after(0, 3)
            .await
            .unwrap_or_else(|e| panic!("read: {e}"));
        let seqs: Vec<u64> = batch.records.iter().map(|s| s.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3]);
        assert_eq!(batch.last_seq, 5);

        // The writer still commits while the reader holds its connection open.
        assert_eq!(handle.append(events(2)).await.ok().flatten(), Some((6, 7)));
        let rest = reader
            .read_after(3, 100)
            .await
            .unwrap_or_else(|e| panic!("read: {e}"));
        let seqs: Vec<u64> = rest.records.iter().map(|s| s.seq).collect();
        assert_eq!(seqs, vec![4, 5, 6, 7]);
        assert_eq!(rest.last_seq, 7);
        assert_eq!(reader.last_seq().await.ok(), Some(7));

        assert!(handle.shutdown().await.is_ok());
        assert!(join.join().is_ok());
    }

    #[tokio::test]
    async fn an_unopenable_store_is_an_error_and_a_later_read_retries() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        // A directory where the file should be: SQLite cannot open it.
        let path = dir.path().join("cems.db");
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir: {e}"));
        let reader = StoreReader::new(path.clone());
        assert!(matches!(
            reader.read_after(0, 1).await,
            Err(ReadError::Store(_))
        ));
        std::fs::remove_dir(&path).unwrap_or_else(|e| panic!("rmdir: {e}"));
        let batch = reader
            .read_after(0, 1)
            .await
            .unwrap_or_else(|e| panic!("read after the fix: {e}"));
        assert_eq!(batch.last_seq, 0);
    }

    /// The status page's reader (opened at start, kept on failure) and the sinks' (opened at
    /// the first read, dropped on failure) are one type now: `open` still fails at once, and
    /// after a failed read every reader opens a fresh connection, shared by its clones.
    #[test]
    fn open_fails_at_once_and_a_failed_read_drops_the_shared_connection() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path = dir.path().join("cems.db");
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir: {e}"));
        assert!(StoreReader::open(&path).is_err());
        std::fs::remove_dir(&path).unwrap_or_else(|e| panic!("rmdir: {e}"));

        let reader = StoreReader::open(&path).unwrap_or_else(|e| panic!("open: {e}"));
        let connected = |r: &StoreReader| r.store.lock().map(|s| s.is_some()).unwrap_or(false);
        let clone = reader.clone();
        assert!(connected(&clone));
        assert!(reader
            .read(|_| Err::<(), _>(StoreError::WriterClosed))
            .is_err());
        assert!(!connected(&clone), "a failed read drops the connection");
        assert_eq!(clone.latest().map(|l| l.len()).ok(), Some(0));
        assert!(connected(&reader), "the next read opened it again");
    }
}
