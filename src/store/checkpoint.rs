//! Checkpoints on a thread of their own. A checkpoint copies the WAL into the database file
//! and fsyncs both; run by the writer inside a commit (SQLite's default) that fsync stalls
//! every caller waiting for an append, 100 ms and more on a busy disk. Here the writer's WAL
//! hook only signals, and a second connection checkpoints while the writer goes on
//! committing (SQLite allows one checkpointer beside the writer). Once the WAL reaches the
//! auto-checkpoint size the writer still checkpoints itself, as before, which also lets
//! SQLite start the WAL over: a checkpointer that falls behind cannot let it grow unbounded.

use std::os::raw::c_int;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::hooks::Wal;
use rusqlite::Connection;

use super::schema::{self, WAL_AUTOCHECKPOINT_PAGES};
use super::StoreError;

/// WAL pages that make a background checkpoint worth its fsyncs: SQLite's own default
/// auto-checkpoint size, so a lightly loaded store syncs as often as it always did.
const BACKGROUND_FROM_PAGES: c_int = 1000;

type Hook = fn(&mut Wal, c_int) -> rusqlite::Result<()>;

pub(super) struct Checkpointer {
    thread: JoinHandle<()>,
}

impl Checkpointer {
    /// Starts the thread and hooks it to `conn`'s commits. `None` for a database without a
    /// file (in memory), which has no WAL.
    pub fn start(
        conn: &mut Connection,
        busy_timeout: Duration,
    ) -> Result<Option<Checkpointer>, StoreError> {
        let Some(path) = conn.path().filter(|p| !p.is_empty()).map(str::to_owned) else {
            return Ok(None);
        };
        let checkpointer = Connection::open(&path)?;
        checkpointer.busy_timeout(busy_timeout)?;
        let (signal, signals) = sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("cemsd-checkpoint".to_string())
            .spawn(move || run(&checkpointer, &signals))
            .map_err(|e| StoreError::WriterThread(Arc::new(e)))?;
        let inline_from = c_int::try_from(WAL_AUTOCHECKPOINT_PAGES).unwrap_or(c_int::MAX);
        // Replaces SQLite's auto-checkpoint hook on this connection.
        conn.wal_hook(Some(move |wal: &mut Wal, pages: c_int| {
            if pages >= inline_from {
                // As SQLite's own hook does: the commit has happened whatever this returns,
                // so a failure is only logged, and the next commit tries again.
                if let Err(error) = wal.checkpoint() {
                    tracing::warn!(%error, "store checkpoint failed");
                }
            } else if pages >= BACKGROUND_FROM_PAGES {
                // A full channel means a checkpoint is due already; it will see these pages.
                let _ = signal.try_send(());
            }
            Ok(())
        }))?;
        Ok(Some(Checkpointer { thread }))
    }

    /// Unhooks `conn`, which gets SQLite's own auto-checkpoint back, and waits for the
    /// thread to finish its checkpoint.
    pub fn stop(self, conn: &mut Connection) -> Result<(), StoreError> {
        // Dropping the hook drops the signal's sender, which ends the thread.
        let unhooked = conn.wal_hook(None::<Hook>);
        let _ = self.thread.join();
        unhooked?;
        schema::auto_checkpoint(conn)
    }
}

fn run(conn: &Connection, signals: &Receiver<()>) {
    while signals.recv().is_ok() {
        if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(%error, "background store checkpoint failed; the writer checkpoints later");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use crate::store::testing::{events, running_writer};
    use crate::store::Record;

    /// Records of about 2 KiB each (the note), so two fill a 4 KiB page.
    fn bulky(n: usize) -> Vec<Record> {
        events(n)
            .into_iter()
            .map(|event| Record {
                note: Some("x".repeat(2000)),
                ..event
            })
            .collect()
    }

    /// In WAL mode new pages reach the database file only through a checkpoint. 3000
    /// records of 2 KiB make about 1500 WAL pages: past the 1000 that wake the checkpoint
    /// thread, short of the 8192 at which the writer would checkpoint by itself, so the file
    /// grows past 1000 pages only if the thread did it.
    #[tokio::test]
    async fn the_thread_checkpoints_what_the_writer_committed() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let (path, handle, join) = running_writer(dir.path());
        let file_len = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(file_len() < 100 * 4096, "a new store is small");
        for _ in 0..3 {
            let appended = handle.append(bulky(1000)).await;
            assert!(appended.is_ok(), "append: {appended:?}");
        }
        let deadline = Instant::now() + std::time::Duration::from_secs(20);
        while file_len() < 1000 * 4096 && Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(
            file_len() >= 1000 * 4096,
            "database file holds {} bytes: nothing was checkpointed",
            file_len()
        );
        assert!(handle.shutdown().await.is_ok());
        let store = join
            .join()
            .unwrap_or_else(|_| panic!("writer thread panicked"));
        // Back to checkpointing by itself, now that no thread does it.
        let pages: i64 = store
            .conn
            .query_row("PRAGMA wal_autocheckpoint", [], |row| row.get(0))
            .unwrap_or_else(|e| panic!("pragma: {e}"));
        assert_eq!(pages, 8192);
        assert_eq!(store.count().ok().flatten(), Some(3000));
    }
}
