//! The store's writer thread for the async daemon. SQLite calls block, so they run on one
//! OS thread that owns the `Store`; tasks talk to it through cloneable `StoreHandle`s.
//! Whatever is queued when the thread gets to it is committed in one transaction, so
//! under load it commits big batches and the per-commit cost is shared. WAL checkpoints run
//! on a thread of their own (`checkpoint`), so their fsyncs do not delay commits.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use crate::model::Timestamp;

use super::checkpoint::Checkpointer;
use super::{AuditEntry, Pruned, Record, Store, StoreError};

type AppendResult = Result<Option<(u64, u64)>, StoreError>;
type StoreCall = Box<dyn FnOnce(&mut Store) + Send>;

enum Command {
    Append {
        /// Shared, so a caller that retries a failed commit keeps its records without a copy.
        records: Arc<Vec<Record>>,
        /// `None` for `submit`: nobody waits for the outcome.
        reply: Option<oneshot::Sender<AppendResult>>,
    },
    Call(StoreCall),
    Shutdown(oneshot::Sender<()>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterOptions {
    /// Stop adding queued requests to a transaction once it holds this many records. A
    /// single request larger than this is still committed whole.
    pub max_batch_records: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            max_batch_records: 10_000,
        }
    }
}

/// Counters since the writer started, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    pub records_committed: u64,
    pub transactions: u64,
    pub failed_transactions: u64,
    /// Records in failed transactions: callers of `append` got the error, records from
    /// `submit` are lost.
    pub records_failed: u64,
    /// Records handed to the writer and not yet taken into a transaction.
    pub queued_records: u64,
}

#[derive(Debug, Default)]
struct Counters {
    records_committed: AtomicU64,
    transactions: AtomicU64,
    failed_transactions: AtomicU64,
    records_failed: AtomicU64,
    queued_records: AtomicU64,
}

pub struct StoreWriter {
    store: Store,
    /// `None` for an in-memory store.
    checkpointer: Option<Checkpointer>,
    commands: mpsc::UnboundedReceiver<Command>,
    counters: Arc<Counters>,
    options: WriterOptions,
}

impl StoreWriter {
    /// Moves `store` onto a new thread. The thread ends, after committing everything
    /// queued, when every handle is dropped or on `StoreHandle::shutdown`, and gives the
    /// store back through the join handle.
    pub fn spawn(
        mut store: Store,
        options: WriterOptions,
    ) -> Result<(StoreHandle, JoinHandle<Store>), StoreError> {
        let checkpointer = Checkpointer::start(&mut store.conn, store.options.busy_timeout)?;
        let (sender, commands) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        let writer = StoreWriter {
            store,
            checkpointer,
            commands,
            counters: counters.clone(),
            options,
        };
        let join = std::thread::Builder::new()
            .name("cemsd-store".to_string())
            .spawn(move || writer.run())
            .map_err(|e| StoreError::WriterThread(Arc::new(e)))?;
        Ok((
            StoreHandle {
                commands: sender,
                counters,
            },
            join,
        ))
    }

    fn run(mut self) -> Store {
        let mut next: Option<Command> = None;
        let mut shutdown_waiters = Vec::new();
        loop {
            let command = match next.take() {
                Some(command) => command,
                None => match self.commands.blocking_recv() {
                    Some(command) => command,
                    None => break,
                },
            };
            match command {
                Command::Append { records, reply } => next = self.commit_batch(records, reply),
                Command::Call(call) => call(&mut self.store),
                Command::Shutdown(waiter) => {
                    // Refuse new commands but keep draining the ones already queued.
                    self.commands.close();
                    shutdown_waiters.push(waiter);
                }
            }
        }
        if let Some(checkpointer) = self.checkpointer.take() {
            if let Err(error) = checkpointer.stop(&mut self.store.conn) {
                tracing::warn!(%error, "store checkpoint thread did not stop cleanly");
            }
        }
        for waiter in shutdown_waiters {
            // The waiter may have given up; the work is done either way.
            let _ = waiter.send(());
        }
        self.store
    }

    /// Commits `records` together with every append queued behind it, up to the batch
    /// limit. Returns the first non-append command it took off the queue, to run next.
    fn commit_batch(
        &mut self,
        records: Arc<Vec<Record>>,
        reply: Option<oneshot::Sender<AppendResult>>,
    ) -> Option<Command> {
        let mut total = records.len();
        let mut batch = vec![(records, reply)];
        let mut after_batch = None;
        while total < self.options.max_batch_records {
            match self.commands.try_recv() {
                Ok(Command::Append { records, reply }) => {
                    total += records.len();
                    batch.push((records, reply));
                }
                Ok(other) => {
                    after_batch = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        let total = total as u64;
        let c = &self.counters;
        c.queued_records.fetch_sub(total, Ordering::Relaxed);
        let parts: Vec<&[Record]> = batch
            .iter()
            .map(|(records, _)| records.as_slice())
            .collect();
        let result = self.store.append_parts(&parts);
        match &result {
            Ok(_) => {
                c.records_committed.fetch_add(total, Ordering::Relaxed);
                if total > 0 {
                    c.transactions.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(error) => {
                c.failed_transactions.fetch_add(1, Ordering::Relaxed);
                c.records_failed.fetch_add(total, Ordering::Relaxed);
                let unawaited: usize = batch
                    .iter()
                    .filter(|(_, reply)| reply.is_none())
                    .map(|(records, _)| records.len())
                    .sum();
                tracing::error!(%error, records = total, lost_submitted = unawaited, "store commit failed");
            }
        }
        let mut next_seq = match &result {
            Ok(Some((first, _))) => *first,
            _ => 0,
        };
        for (records, reply) in batch {
            let answer = match &result {
                Err(error) => Err(error.clone()),
                Ok(_) if records.is_empty() => Ok(None),
                Ok(_) => {
                    let last = next_seq + records.len() as u64 - 1;
                    let range = (next_seq, last);
                    next_seq = last + 1;
                    Ok(Some(range))
                }
            };
            if let Some(reply) = reply {
                // The caller may have stopped waiting; the records are committed regardless.
                let _ = reply.send(answer);
            }
        }
        after_batch
    }
}

/// Cheap to clone; every method enqueues its command when called (not when the returned
/// future is first polled), so commands from one task run in the order they were made.
#[derive(Debug, Clone)]
pub struct StoreHandle {
    commands: mpsc::UnboundedSender<Command>,
    counters: Arc<Counters>,
}

impl StoreHandle {
    /// Resolves after the records are committed, with the seq range they got, so the
    /// caller can acknowledge its upstream only then.
    pub fn append(
        &self,
        records: Vec<Record>,
    ) -> impl Future<Output = Result<Option<(u64, u64)>, StoreError>> + Send + 'static {
        self.append_shared(Arc::new(records))
    }

    /// Like `append` for records the caller keeps, e.g. to commit them again after a failure.
    pub fn append_shared(
        &self,
        records: Arc<Vec<Record>>,
    ) -> impl Future<Output = Result<Option<(u64, u64)>, StoreError>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let sent = self.send_append(records, Some(reply));
        async move {
            sent?;
            answer.await.map_err(|_| StoreError::WriterClosed)?
        }
    }

    /// Queues records without waiting. If their transaction fails they are lost (logged
    /// and counted in `records_failed`); use `append` where that is not acceptable.
    pub fn submit(&self, records: Vec<Record>) -> Result<(), StoreError> {
        self.send_append(Arc::new(records), None)
    }

    /// Runs `f` on the writer thread between transactions, after everything queued before
    /// it, e.g. reads that must see every earlier append.
    pub fn call<R, F>(&self, f: F) -> impl Future<Output = Result<R, StoreError>> + Send + 'static
    where
        R: Send + 'static,
        F: FnOnce(&mut Store) -> R + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let call: StoreCall = Box::new(move |store| {
            // The caller may have stopped waiting; nothing else wants the result.
            let _ = reply.send(f(store));
        });
        let sent = self
            .commands
            .send(Command::Call(call))
            .map_err(|_| StoreError::WriterClosed);
        async move {
            sent?;
            answer.await.map_err(|_| StoreError::WriterClosed)
        }
    }

    /// Runs `changes` on the writer thread, between transactions, and records the audit
    /// entries it returns together with their event records in one transaction, counted like
    /// any commit. Resolves to the entries recorded.
    pub fn record_audit<F>(
        &self,
        changes: F,
    ) -> impl Future<Output = Result<Vec<AuditEntry>, StoreError>> + Send + 'static
    where
        F: FnOnce(&Store) -> Result<(Vec<AuditEntry>, Vec<Record>), StoreError> + Send + 'static,
    {
        let counters = self.counters.clone();
        let done = self.call(move |store| {
            let (entries, records) = changes(store)?;
            store.record_audit(&entries, &records)?;
            if !entries.is_empty() {
                counters
                    .records_committed
                    .fetch_add(records.len() as u64, Ordering::Relaxed);
                counters.transactions.fetch_add(1, Ordering::Relaxed);
            }
            Ok(entries)
        });
        async move { done.await? }
    }

    pub fn set_cursor(
        &self,
        sink: &str,
        seq: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        let sink = sink.to_string();
        let done = self.call(move |store| store.set_cursor(&sink, seq));
        async move { done.await? }
    }

    /// One bounded step of retention (see [`Store::prune_step`]), between commits.
    pub fn prune_step(
        &self,
        now: Timestamp,
        max_rows: usize,
    ) -> impl Future<Output = Result<Pruned, StoreError>> + Send + 'static {
        let done = self.call(move |store| store.prune_step(now, max_rows));
        async move { done.await? }
    }

    /// One bounded step of counting an older store's rows (see [`Store::count_step`]),
    /// between commits; whether any are left.
    pub fn count_step(
        &self,
        max_seqs: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send + 'static {
        let done = self.call(move |store| store.count_step(max_seqs));
        async move { done.await? }
    }

    pub fn append_dead_letter(
        &self,
        source: &str,
        reason: &str,
        payload: Vec<u8>,
        now: Timestamp,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send + 'static {
        let (source, reason) = (source.to_string(), reason.to_string());
        let done =
            self.call(move |store| store.append_dead_letter(&source, &reason, &payload, now));
        async move { done.await? }
    }

    /// Resolves once everything queued before (and while) it was committed and the writer
    /// has stopped; later commands from any handle fail with `WriterClosed`.
    pub fn shutdown(&self) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let sent = self
            .commands
            .send(Command::Shutdown(reply))
            .map_err(|_| StoreError::WriterClosed);
        async move {
            sent?;
            answer.await.map_err(|_| StoreError::WriterClosed)
        }
    }

    pub fn stats(&self) -> WriterStats {
        let c = &self.counters;
        WriterStats {
            records_committed: c.records_committed.load(Ordering::Relaxed),
            transactions: c.transactions.load(Ordering::Relaxed),
            failed_transactions: c.failed_transactions.load(Ordering::Relaxed),
            records_failed: c.records_failed.load(Ordering::Relaxed),
            queued_records: c.queued_records.load(Ordering::Relaxed),
        }
    }

    fn send_append(
        &self,
        records: Arc<Vec<Record>>,
        reply: Option<oneshot::Sender<AppendResult>>,
    ) -> Result<(), StoreError> {
        let n = records.len() as u64;
        // Count before sending so the writer's decrement can never run first.
        self.counters.queued_records.fetch_add(n, Ordering::Relaxed);
        if self
            .commands
            .send(Command::Append { records, reply })
            .is_err()
        {
            self.counters.queued_records.fetch_sub(n, Ordering::Relaxed);
            return Err(StoreError::WriterClosed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc as std_mpsc;

    use super::*;
    use crate::model::{Quantity, Unit};
    use crate::store::{RecordKind, StoreOptions};

    fn records(n: usize, channel: &str) -> Vec<Record> {
        (0..n)
            .map(|i| Record {
                quantity: Some(Quantity::SO2),
                unit: Some(Unit::MgPerM3),
                measured: Some(i as f64),
                ..Record::new(
                    RecordKind::Reading,
                    Timestamp::from_millis(i as i64),
                    "s".into(),
                    "d".into(),
                    channel.into(),
                )
            })
            .collect()
    }

    fn start(dir: &tempfile::TempDir, options: WriterOptions) -> (StoreHandle, JoinHandle<Store>) {
        let store = Store::open(&dir.path().join("cems.db"), StoreOptions::default())
            .unwrap_or_else(|e| panic!("open: {e}"));
        StoreWriter::spawn(store, options).unwrap_or_else(|e| panic!("spawn: {e}"))
    }

    /// Parks the writer thread until the returned sender is used or dropped, so commands
    /// queue up behind it.
    fn park(handle: &StoreHandle) -> std_mpsc::Sender<()> {
        let (release, parked) = std_mpsc::channel::<()>();
        drop(handle.call(move |_| {
            let _ = parked.recv();
        }));
        release
    }

    fn reopen(dir: &tempfile::TempDir) -> Store {
        Store::open(&dir.path().join("cems.db"), StoreOptions::default())
            .unwrap_or_else(|e| panic!("reopen: {e}"))
    }

    #[tokio::test]
    async fn append_resolves_after_commit_with_its_own_seq_range() {
        let dir = temp_dir();
        let (handle, join) = start(&dir, WriterOptions::default());
        let first = handle.append(records(3, "so2")).await;
        assert_eq!(first.ok().flatten(), Some((1, 3)));
        // Visible to an independent connection as soon as the future resolved.
        let reader = reopen(&dir);
        assert_eq!(reader.last_seq().ok(), Some(3));
        assert_eq!(reader.count().ok().flatten(), Some(3));
        assert_eq!(handle.append(Vec::new()).await.ok(), Some(None));
        assert_eq!(
            handle.append(records(2, "nox")).await.ok().flatten(),
            Some((4, 5))
        );
        drop(handle);
        assert!(join.join().is_ok(), "writer thread ended cleanly");
    }

    #[tokio::test]
    async fn queued_appends_are_committed_in_one_transaction() {
        let dir = temp_dir();
        let (handle, join) = start(&dir, WriterOptions::default());
        let release = park(&handle);
        for _ in 0..50 {
            assert!(handle.submit(records(10, "so2")).is_ok());
        }
        let waited = handle.append(records(5, "nox"));
        assert_eq!(handle.stats().queued_records, 505);
        drop(release);
        // 50 submits of 10 come first, so the awaited 5 get seqs 501..=505.
        assert_eq!(waited.await.ok().flatten(), Some((501, 505)));
        assert_eq!(
            handle.stats(),
            WriterStats {
                records_committed: 505,
                transactions: 1,
                ..WriterStats::default()
            }
        );
        drop(handle);
        let store = join
            .join()
            .unwrap_or_else(|_| panic!("writer thread panicked"));
        assert_eq!(store.count().ok().flatten(), Some(505));
    }

    #[tokio::test]
    async fn batches_stop_growing_at_the_record_limit() {
        let dir = temp_dir();
        let (handle, join) = start(
            &dir,
            WriterOptions {
                max_batch_records: 250,
            },
        );
        let release = park(&handle);
        let pending: Vec<_> = (0..10)
            .map(|_| handle.append(records(100, "so2")))
            .collect();
        drop(release);
        let mut ranges = Vec::new();
        for done in pending {
            ranges.push(done.await.ok().flatten());
        }
        let expected: Vec<_> = (0..10u64)
            .map(|i| Some((i * 100 + 1, i * 100 + 100)))
            .collect();
        assert_eq!(ranges, expected);
        // A batch takes requests while it holds fewer than 250: 100, 200, then 300 stops it.
        // 10 requests of 100 make batches of 3, 3, 3 and 1.
        assert_eq!(handle.stats().transactions, 4);
        assert_eq!(handle.stats().records_committed, 1000);
        drop(handle);
        assert!(join.join().is_ok());
    }

    #[tokio::test]
    async fn shutdown_commits_everything_queued_then_refuses_more() {
        let dir = temp_dir();
        let (handle, join) = start(&dir, WriterOptions::default());
        let other = handle.clone();
        let release = park(&handle);
        for _ in 0..4 {
            assert!(other.submit(records(25, "so2")).is_ok());
        }
        let stopped = handle.shutdown();
        // Queued after the shutdown request but before the writer got to it: still committed.
        assert!(other.submit(records(7, "nox")).is_ok());
        drop(release);
        assert!(stopped.await.is_ok());
        assert!(matches!(
            other.submit(records(1, "o2")),
            Err(StoreError::WriterClosed)
        ));
        assert!(matches!(
            handle.append(records(1, "o2")).await,
            Err(StoreError::WriterClosed)
        ));
        assert!(matches!(
            handle.shutdown().await,
            Err(StoreError::WriterClosed)
        ));
        let stats = handle.stats();
        assert_eq!((stats.records_committed, stats.queued_records), (107, 0));
        let store = join
            .join()
            .unwrap_or_else(|_| panic!("writer thread panicked"));
        assert_eq!(store.last_seq().ok(), Some(107));
    }

    #[tokio::test]
    async fn dropping_every_handle_commits_what_was_submitted() {
        let dir = temp_dir();
        let (handle, join) = start(&dir, WriterOptions::default());
        let release = park(&handle);
        for _ in 0..3 {
            assert!(handle.submit(records(10, "so2")).is_ok());
        }
        drop(handle);
        drop(release);
        let store = join
            .join()
            .unwrap_or_else(|_| panic!("writer thread panicked"));
        assert_eq!(store.count().ok().flatten(), Some(30));
    }

    #[tokio::test]
    async fn a_failed_commit_reaches_every_waiter_and_is_counted() {
        let dir = temp_dir();
        let store = Store::open(
            &dir.path().join("cems.db"),
            StoreOptions {
                busy_timeout: std::time::Duration::from_millis(10),
                ..StoreOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("open: {e}"));
        let (handle, join) =
            StoreWriter::spawn(store, WriterOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        let blocker = rusqlite::Connection::open(dir.path().join("cems.db"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(blocker.execute_batch("BEGIN IMMEDIATE").is_ok());

        let release = park(&handle);
        let a = handle.append(records(2, "so2"));
        assert!(handle.submit(records(3, "so2")).is_ok());
        let b = handle.append(records(4, "so2"));
        drop(release);
        assert!(matches!(a.await, Err(StoreError::Sqlite(_))));
        assert!(matches!(b.await, Err(StoreError::Sqlite(_))));
        let stats = handle.stats();
        assert_eq!(
            (
                stats.failed_transactions,
                stats.records_failed,
                stats.records_committed
            ),
            (1, 9, 0)
        );

        assert!(blocker.execute_batch("ROLLBACK").is_ok());
        assert_eq!(
            handle.append(records(1, "so2")).await.ok().flatten(),
            Some((1, 1))
        );
        assert_eq!(handle.stats().transactions, 1);
        drop(handle);
        assert!(join.join().is_ok());
    }

    #[tokio::test]
    async fn cursor_prune_and_dead_letters_run_in_order_with_appends() {
        let dir = temp_dir();
        let store = Store::open(
            &dir.path().join("cems.db"),
            StoreOptions {
                retention: Some(std::time::Duration::from_millis(1000)),
                ..StoreOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("open: {e}"));
        let (handle, join) =
            StoreWriter::spawn(store, WriterOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        let registered = handle.call(|store| store.register_sink("influx"));
        assert!(matches!(registered.await, Ok(Ok(()))));
        // Not awaited before set_cursor is made: the order of calls alone makes it valid.
        let appended = handle.append(records(4, "so2"));
        let cursor = handle.set_cursor("influx", 3);
        assert_eq!(appended.await.ok().flatten(), Some((1, 4)));
        assert!(cursor.await.is_ok());
        // Records have ts 0..=3 ms; at 1002 ms the cutoff is 2 ms, so ts 0 and 1 go.
        assert_eq!(
            handle
                .prune_step(Timestamp::from_millis(1002), 1000)
                .await
                .ok()
                .map(|p| p.by_age),
            Some(2)
        );
        let id = handle.append_dead_letter(
            "mqtt",
            "bad topic",
            b"x".to_vec(),
            Timestamp::from_millis(5),
        );
        assert_eq!(id.await.ok(), Some(1));
        assert!(handle.shutdown().await.is_ok());
        let store = join
            .join()
            .unwrap_or_else(|_| panic!("writer thread panicked"));
        let left: Vec<u64> = store
            .read_after(0, 10)
            .unwrap_or_else(|e| panic!("{e}"))
            .iter()
            .map(|s| s.seq)
            .collect();
        assert_eq!(left, vec![3, 4]);
        assert_eq!(store.cursor("influx").ok(), Some(3));
        assert_eq!(store.dead_letters(5).map(|d| d.len()).ok(), Some(1));
    }

    fn temp_dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"))
    }
}
