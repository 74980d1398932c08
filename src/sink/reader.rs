//! A sink's own read connection to the store.
//!
//! The store runs in WAL mode, so a second connection reads committed rows while the writer
//! thread keeps committing, and the writer never waits for a sink. Opening it is safe next to
//! the writer: `Store::open` finds the schema current and only takes the write lock for an
//! instant (waiting up to the busy timeout if a commit holds it), and every read here is a
//! single short statement, so it never pins an old snapshot that would stop checkpoints.
//! SQLite calls block, so each read runs on tokio's blocking pool.

use std::path::PathBuf;

use crate::store::{Store, StoreError, StoreOptions, Stored};

pub struct StoreReader {
    path: PathBuf,
    /// `None` before the first read and after a failure: the next read (re)opens it.
    store: Option<Store>,
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

/// A reader only needs a small page cache; the writer's is the one that matters.
const READER_CACHE_KIB: u32 = 2 * 1024;

impl StoreReader {
    pub fn new(path: PathBuf) -> StoreReader {
        StoreReader { path, store: None }
    }

    /// How far the store has written; for the backlog gauge while a batch is stuck.
    pub async fn last_seq(&mut self) -> Result<u64, ReadError> {
        self.with_store(|store| store.last_seq()).await
    }

    /// Up to `limit` records with seq above `after`, in seq order, plus the store's last seq.
    pub async fn read_after(&mut self, after: u64, limit: usize) -> Result<ReadBatch, ReadError> {
        self.with_store(move |store| {
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

    /// Runs `read` on the blocking pool with the connection, opening it first if needed.
    async fn with_store<R, F>(&mut self, read: F) -> Result<R, ReadError>
    where
        R: Send + 'static,
        F: FnOnce(&Store) -> Result<R, StoreError> + Send + 'static,
    {
        let store = self.store.take();
        let path = self.path.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let store = match store {
                Some(store) => store,
                None => match Store::open(
                    &path,
                    StoreOptions {
                        cache_size_kib: READER_CACHE_KIB,
                        ..StoreOptions::default()
                    },
                ) {
                    Ok(store) => store,
                    Err(e) => return (None, Err(e)),
                },
            };
            let result = read(&store);
            (Some(store), result)
        })
        .await;
        match joined {
            Ok((store, result)) => {
                // A failed read drops the connection; the next read opens a fresh one.
                if result.is_ok() {
                    self.store = store;
                }
                Ok(result?)
            }
            Err(e) => Err(ReadError::Task(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Timestamp;
    use crate::store::{Record, RecordKind, StoreWriter, WriterOptions};

    fn records(n: usize) -> Vec<Record> {
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

    #[tokio::test]
    async fn reads_what_the_writer_thread_commits_while_it_keeps_running() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path = dir.path().join("cems.db");
        let store =
            Store::open(&path, StoreOptions::default()).unwrap_or_else(|e| panic!("open: {e}"));
        let (handle, join) = StoreWriter::spawn(store, WriterOptions::default())
            .unwrap_or_else(|e| panic!("spawn: {e}"));

        let mut reader = StoreReader::new(path);
        let empty = reader
            .read_after(0, 10)
            .await
            .unwrap_or_else(|e| panic!("read: {e}"));
        assert!(empty.records.is_empty());
        assert_eq!(empty.last_seq, 0);

        let committed = handle.append(records(5)).await;
        assert_eq!(committed.ok().flatten(), Some((1, 5)));
        let batch = reader
            .read_after(0, 3)
            .await
            .unwrap_or_else(|e| panic!("read: {e}"));
        let seqs: Vec<u64> = batch.records.iter().map(|s| s.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3]);
        assert_eq!(batch.last_seq, 5);

        // The writer still commits while the reader holds its connection open.
        assert_eq!(handle.append(records(2)).await.ok().flatten(), Some((6, 7)));
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
        let mut reader = StoreReader::new(path.clone());
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
}
