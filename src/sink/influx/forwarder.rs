//! The store-and-forward loop of one InfluxDB sink.
//!
//! Reads records after the sink's persistent cursor, writes them, and moves the cursor only
//! once every record of the batch is either acknowledged by the server or in the dead-letter
//! table. A crash between the write and the cursor update resends that batch: delivery is
//! at least once, and because a point is keyed by series and timestamp the store ends up
//! with each record exactly once.
//!
//! While a backlog drains, up to `requests_in_flight` batches are on the wire at once, each
//! read, encoded and compressed beforehand, so the server never waits for the forwarder's
//! bookkeeping. Answers are settled in seq order: the cursor moves past a batch only once
//! it and every batch before it are settled. Batches on the wire together never write the
//! same point, so the server cannot apply a revision before the version it replaces. When a
//! batch is not accepted at once, the later ones are let finish and sent again after it:
//! everything from the first unsettled batch goes out again, in order.
//!
//! What each answer means:
//! - 2xx: delivered.
//! - 400/422: some line is bad. The batch is halved until the bad lines stand alone; the
//!   good halves are delivered, each bad line goes to the dead-letter table with the
//!   server's message. Nothing is dropped silently and one bad point never blocks the rest.
//! - 413: halved the same way. A single line refused as too large is a dead letter only
//!   when it is over [`SURELY_TOO_LARGE_LINE`]; a shorter one shows a body limit set too
//!   low (a proxy's, the server's), which an operator fixes: it is sent again after a
//!   backoff, like any outage, and the log says what to raise.
//! - everything else (no connection, timeout, 401/403/404, 429, 5xx): the same body again
//!   after an exponential backoff with jitter, or after `Retry-After` on 429/503. The
//!   backlog waits in the store and is sent in order, at full speed, once the server is back.

use std::collections::VecDeque;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::model::backoff::Backoff;
use crate::model::time::Clock;
use crate::sink::backlog::{BacklogChange, BacklogMonitor};
use crate::sink::stop::{pause, stop_requested};
use crate::store::{ReadError, StoreError, StoreHandle, StoreReader};

use super::client::payload_of;
use super::client::{ClientError, WriteClient, WriteOutcome};
use super::encode::{EncodedBatch, Encoder};
use super::prepared::{prepare, Prepared};
use super::site_facts::SiteFacts;
use super::stats::ForwarderStats;
use crate::config::influx::InfluxSinkConfig;
use crate::config::secret::Secret;

/// A single line refused with 413 is dead-lettered only above this length. InfluxDB takes
/// bodies of 25 MB and VictoriaMetrics lines of 256 KiB by default, and cemsd's lines are a
/// few hundred bytes: a 413 on a shorter line means a limit set too low somewhere between,
/// not a line no server could take.
pub const SURELY_TOO_LARGE_LINE: usize = 256 * 1024;

/// Dead letters queued for retry (`cemsd dead-letters retry`) are looked for this often.
const RETRY_QUEUE_CHECK: Duration = Duration::from_secs(2);

/// Queued dead letters sent in one go.
const RETRY_QUEUE_BATCH: usize = 500;

/// First retry delay; it doubles up to `max_backoff`.
const INITIAL_BACKOFF: Duration = Duration::from_millis(250);

/// A longer `Retry-After` (a misconfigured proxy, a date years ahead) is cut to this, so
/// the sink checks back within minutes rather than days.
const RETRY_AFTER_LIMIT: Duration = Duration::from_secs(600);

/// The server's final word on one body, once retries are over.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Accepted,
    /// 400/422 (some line is bad) or 413 (too large): split, or dead-letter a single line.
    Refused {
        status: u16,
        message: String,
    },
}

/// A batch whose whole body was sent; `answer` is `None` when no line of it could be
/// encoded, so there was nothing to send.
struct InFlight {
    batch: Prepared,
    answer: Option<JoinHandle<WriteOutcome>>,
}

impl InFlight {
    /// The server's answer; a request task that died counts as a failed request.
    async fn outcome(self) -> (Prepared, Option<WriteOutcome>) {
        let outcome = match self.answer {
            Some(task) => Some(task.await.unwrap_or_else(|e| WriteOutcome::Retry {
                reason: format!("the request task ended: {e}"),
                retry_after: None,
            })),
            None => None,
        };
        (self.batch, outcome)
    }
}

/// A record the server (or the encoder) refused, on its way to the dead-letter table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DeadLine {
    seq: u64,
    reason: String,
    payload: Vec<u8>,
}

pub struct Forwarder {
    name: String,
    encoder: Arc<Encoder>,
    client: Arc<WriteClient>,
    reader: StoreReader,
    store: StoreHandle,
    batch_size: usize,
    requests_in_flight: usize,
    flush_interval: Duration,
    backoff: Backoff,
    backlog: BacklogMonitor,
    /// Last seq delivered and recorded in the store.
    cursor: u64,
    stats: Arc<ForwarderStats>,
    clock: Clock,
}

impl Forwarder {
    /// The forwarder reads `store_path` through its own connection; cursor moves and dead
    /// letters go through `store`, the writer thread. `seed` drives the jitter.
    pub fn new(
        config: &InfluxSinkConfig,
        facts: SiteFacts,
        token: &Secret,
        store_path: PathBuf,
        store: StoreHandle,
        clock: Clock,
        seed: u64,
    ) -> Result<Forwarder, ClientError> {
        Ok(Forwarder {
            name: config.store_name(),
            stats: Arc::new(ForwarderStats::new(config.store_name())),
            encoder: Arc::new(Encoder::new(
                &config.measurement_prefix,
                facts,
                config.precision,
            )),
            client: Arc::new(WriteClient::new(config, token)?),
            reader: StoreReader::new(store_path),
            store,
            batch_size: config.batch_size,
            requests_in_flight: config.requests_in_flight.max(1),
            flush_interval: config.flush_interval.0,
            backoff: Backoff::new(INITIAL_BACKOFF, config.max_backoff.0, seed),
            backlog: BacklogMonitor::new(config.backlog_warning),
            cursor: 0,
            clock,
        })
    }

    pub fn stats(&self) -> Arc<ForwarderStats> {
        self.stats.clone()
    }

    /// Forwards until `shutdown` turns true (or its sender is dropped). Requests already
    /// sent are finished and recorded first; waits (idle, backoff) end at once.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let Some(cursor) = self.start(&mut shutdown).await else {
            return;
        };
        self.cursor = cursor;
        tracing::info!(sink = %self.name, url = %self.client.url(), cursor, requests_in_flight = self.requests_in_flight, "influx forwarder started");
        let mut retry_check = tokio::time::Instant::now();
        // Batches sent and not yet settled, in seq order.
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        // Batches read and not sent (sent again after a failure, or held back because they
        // write a point of a batch in flight), in seq order, before anything read later.
        let mut unsent: VecDeque<Prepared> = VecDeque::new();
        // The batch after `read_to`, being read and encoded.
        let mut next: Option<JoinHandle<Result<Prepared, ReadError>>> = None;
        // Last seq of the newest batch read.
        let mut read_to = cursor;
        // The newest read found less than a full batch: wait `flush_interval` once all is settled.
        let mut caught_up = false;
        'forward: while !stop_requested(&shutdown) {
            if retry_check.elapsed() >= RETRY_QUEUE_CHECK {
                retry_check = tokio::time::Instant::now();
                if !self.send_queued_dead_letters(&mut shutdown).await {
                    break;
                }
            }
            while in_flight.len() < self.requests_in_flight {
                let batch = match unsent.pop_front() {
                    Some(batch) => batch,
                    None if caught_up => break,
                    None => {
                        let prepared = match next.take() {
                            Some(task) => task
                                .await
                                .unwrap_or_else(|e| Err(ReadError::Task(e.to_string()))),
                            None => self.prepare_after(read_to).await,
                        };
                        let batch = match prepared {
                            Ok(batch) => batch,
                            Err(e) if in_flight.is_empty() => {
                                let delay = self.backoff.next_delay();
                                tracing::error!(sink = %self.name, "cannot read the store, retrying in {delay:?}: {e}");
                                if pause(delay, &mut shutdown).await {
                                    break 'forward;
                                }
                                continue 'forward;
                            }
                            Err(e) => {
                                tracing::error!(sink = %self.name, "cannot read the store; read again once the requests sent are answered: {e}");
                                break;
                            }
                        };
                        self.observe_backlog(batch.store_last_seq);
                        let Some(last) = batch.last() else {
                            caught_up = true;
                            break;
                        };
                        read_to = last;
                        // A full batch says more is waiting: read and encode it meanwhile.
                        if batch.records.len() >= self.batch_size {
                            next = Some(tokio::spawn(self.prepare_after(last)));
                        } else {
                            caught_up = true;
                        }
                        batch
                    }
                };
                if in_flight
                    .iter()
                    .any(|sent| sent.batch.points.overlap(&batch.points))
                {
                    unsent.push_front(batch);
                    break;
                }
                in_flight.push_back(self.send_whole(batch));
            }
            let Some(front) = in_flight.pop_front() else {
                if caught_up {
                    caught_up = false;
                    if pause(self.flush_interval, &mut shutdown).await {
                        break;
                    }
                }
                continue;
            };
            let (batch, outcome) = front.outcome().await;
            if outcome
                .as_ref()
                .is_some_and(|o| *o != WriteOutcome::Accepted)
            {
                // The later batches' answers no longer count: let them finish, then send
                // them again after this one, in order.
                while let Some(later) = in_flight.pop_back() {
                    let (batch, _) = later.outcome().await;
                    unsent.push_front(batch);
                }
            }
            if !self.settle(batch, outcome, &mut shutdown).await {
                break;
            }
        }
        // Requests on the wire when the stop came: record those accepted, in order.
        while let Some(sent) = in_flight.pop_front() {
            let (batch, outcome) = sent.outcome().await;
            if outcome.is_some_and(|o| o != WriteOutcome::Accepted)
                || !self
                    .settle(batch, Some(WriteOutcome::Accepted), &mut shutdown)
                    .await
            {
                break;
            }
        }
        for sent in in_flight {
            let _ = sent.outcome().await;
        }
        if let Some(task) = next {
            task.abort();
        }
        tracing::info!(sink = %self.name, cursor = self.cursor, "influx forwarder stopped");
    }

    /// Puts the whole body of `batch` on the wire.
    fn send_whole(&self, batch: Prepared) -> InFlight {
        let answer = batch.body.clone().map(|payload| {
            self.stats.add_request();
            let client = Arc::clone(&self.client);
            tokio::spawn(async move { client.write(&payload).await })
        });
        InFlight { batch, answer }
    }

    /// Finishes `batch` after the server's first answer to its whole body (retries, splits,
    /// dead letters) and moves the cursor past it. False if stopped first or the store is gone.
    async fn settle(
        &mut self,
        batch: Prepared,
        first: Option<WriteOutcome>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let (Some(last), store_last_seq) = (batch.last(), batch.store_last_seq) else {
            return true;
        };
        let Some(dead) = self.deliver_batch(batch, first, shutdown).await else {
            return false;
        };
        if !self.commit(last, dead, shutdown).await {
            return false;
        }
        self.cursor = last;
        self.stats.set_cursor(last);
        self.observe_backlog(store_last_seq);
        true
    }

    /// Registers the sink (a new one starts at the oldest retained record) and reads its
    /// cursor; `None` if asked to stop first.
    async fn start(&mut self, shutdown: &mut watch::Receiver<bool>) -> Option<u64> {
        loop {
            let name = self.name.clone();
            let registered = self
                .store
                .call(move |store| {
                    store.register_sink(&name)?;
                    store.cursor(&name)
                })
                .await;
            match registered {
                Ok(Ok(cursor)) => {
                    self.stats.set_cursor(cursor);
                    self.backoff.reset();
                    return Some(cursor);
                }
                Err(StoreError::WriterClosed) => return None,
                Ok(Err(e)) | Err(e) => {
                    let delay = self.backoff.next_delay();
                    tracing::error!(sink = %self.name, "cannot register with the store, retrying in {delay:?}: {e}");
                    if pause(delay, shutdown).await {
                        return None;
                    }
                }
            }
        }
    }

    /// Sends the dead letters an operator queued for this sink, like any batch, and
    /// records the outcome: delivered ones are deleted, refused ones are dead letters again.
    /// Returns false if stopped (or the store closed) first.
    async fn send_queued_dead_letters(&mut self, shutdown: &mut watch::Receiver<bool>) -> bool {
        let name = self.name.clone();
        let queued = match self
            .store
            .call(move |store| store.queued_retries(&name, RETRY_QUEUE_BATCH))
            .await
        {
            Ok(Ok(queued)) => queued,
            Err(StoreError::WriterClosed) => return false,
            Ok(Err(e)) | Err(e) => {
                tracing::error!(sink = %self.name, "cannot read the dead letters queued for retry: {e}");
                return true;
            }
        };
        if queued.is_empty() {
            return true;
        }
        let texts: Vec<(u64, String)> = queued
            .iter()
            .map(|d| (d.id, String::from_utf8_lossy(&d.payload).into_owned()))
            .collect();
        let batch = EncodedBatch::from_lines(texts.iter().map(|(id, t)| (*id, t.as_str())));
        let Some(refused) = self.deliver(&batch, None, None, shutdown).await else {
            return false;
        };
        let refused: Vec<(u64, String)> = refused.into_iter().map(|d| (d.seq, d.reason)).collect();
        let delivered: Vec<u64> = queued
            .iter()
            .map(|d| d.id)
            .filter(|id| !refused.iter().any(|(r, _)| r == id))
            .collect();
        tracing::info!(sink = %self.name, sent = delivered.len(), refused = refused.len(), "dead letters queued for retry sent again");
        let (name, now) = (self.name.clone(), (self.clock)());
        let again = refused.len() as u64;
        match self
            .store
            .call(move |store| store.settle_retries(&name, &delivered, &refused, now))
            .await
        {
            Ok(Ok(())) => {
                self.stats.add_dead_letters(again);
                true
            }
            Err(StoreError::WriterClosed) => false,
            Ok(Err(e)) | Err(e) => {
                // they stay queued and are sent again: the server takes a point twice alike
                tracing::error!(sink = %self.name, "cannot record the dead letters sent again: {e}");
                true
            }
        }
    }

    /// The batch after seq `after`, read and encoded off this task.
    fn prepare_after(
        &self,
        after: u64,
    ) -> impl std::future::Future<Output = Result<Prepared, ReadError>> + Send + 'static {
        let gzip = self.client.gzip();
        prepare(
            self.reader.clone(),
            self.encoder.clone(),
            gzip,
            after,
            self.batch_size,
        )
    }

    /// Delivers or dead-letters every record of `batch`, given the answer to its whole body
    /// if it was sent already; `None` if stopped first.
    async fn deliver_batch(
        &mut self,
        batch: Prepared,
        first: Option<WriteOutcome>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<Vec<DeadLine>> {
        let Prepared {
            records,
            encoded,
            unencodable,
            body,
            ..
        } = batch;
        let mut dead: Vec<DeadLine> = unencodable
            .into_iter()
            .map(|(seq, error)| {
                let record = records.iter().find(|s| s.seq == seq).map(|s| &s.record);
                DeadLine {
                    seq,
                    reason: format!("cannot encode: {error}"),
                    payload: format!("{record:?}").into_bytes(),
                }
            })
            .collect();
        dead.extend(self.deliver(&encoded, body, first, shutdown).await?);
        dead.sort_by_key(|d| d.seq);
        Some(dead)
    }

    /// Sends `batch`, halving any part the server rejects until each bad line stands alone.
    /// Halves go out left first, so lines still arrive in seq order. `body` is the whole
    /// batch's body when it was prepared beforehand, `first` the answer to it if it was sent.
    async fn deliver(
        &mut self,
        batch: &EncodedBatch,
        mut body: Option<super::client::Payload>,
        mut first: Option<WriteOutcome>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<Vec<DeadLine>> {
        let mut rejected = Vec::new();
        let mut pending: Vec<Range<usize>> = Vec::new();
        if !batch.is_empty() {
            pending.push(0..batch.len());
        }
        while let Some(range) = pending.pop() {
            let text = batch.text(range.clone());
            let whole = range.len() == batch.len();
            let payload = match body.take().filter(|_| whole) {
                Some(prepared) => prepared,
                None => payload_of(text, self.client.gzip()),
            };
            let small_line =
                (range.len() == 1 && text.len() <= SURELY_TOO_LARGE_LINE).then_some(text.len());
            let answered = first.take().filter(|_| whole);
            let (status, message) =
                match self.send(&payload, small_line, answered, shutdown).await? {
                    Answer::Accepted => {
                        self.stats.add_delivered(range.len() as u64, (self.clock)());
                        continue;
                    }
                    Answer::Refused { status, message } => (status, message),
                };
            if range.len() == 1 {
                let seq = batch.seq(range.start);
                tracing::warn!(sink = %self.name, seq, status, %message, "the server rejected a record; it goes to the dead-letter table");
                rejected.push(DeadLine {
                    seq,
                    reason: format!("HTTP {status}: {message}"),
                    payload: text.trim_end_matches('\n').as_bytes().to_vec(),
                });
            } else {
                tracing::debug!(sink = %self.name, lines = range.len(), status, "splitting a rejected batch");
                let middle = range.start + range.len() / 2;
                pending.push(middle..range.end);
                pending.push(range.start..middle);
            }
        }
        if !rejected.is_empty() && rejected.len() == batch.len() && batch.len() > 1 {
            tracing::error!(sink = %self.name, lines = batch.len(), "the server rejected every line of a batch; check org, bucket and precision, and the dead-letter table");
        }
        Some(rejected)
    }

    /// Sends `payload` until the server gives a final answer; `None` if stopped while
    /// waiting to retry. `small_line` is the length of a payload of one line short enough
    /// that a 413 on it is a limit to fix, so it is retried like an outage. `answered` is
    /// the answer to a first attempt made already.
    async fn send(
        &mut self,
        payload: &super::client::Payload,
        small_line: Option<usize>,
        mut answered: Option<WriteOutcome>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<Answer> {
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let outcome = match answered.take() {
                Some(outcome) => outcome,
                None => {
                    self.stats.add_request();
                    self.client.write(payload).await
                }
            };
            let (reason, retry_after) = match outcome {
                WriteOutcome::Accepted => break Some(self.answered(attempt, Answer::Accepted)),
                WriteOutcome::Rejected { status, message } => {
                    break Some(self.answered(attempt, Answer::Refused { status, message }))
                }
                WriteOutcome::TooLarge { message } => match small_line {
                    Some(bytes) => (
                        format!(
                            "HTTP 413 on a single line of {bytes} bytes: a body size limit \
                             (the server's, or a proxy's such as nginx client_max_body_size) \
                             is set too low: {message}"
                        ),
                        None,
                    ),
                    None => {
                        let status = 413;
                        break Some(self.answered(attempt, Answer::Refused { status, message }));
                    }
                },
                WriteOutcome::Retry {
                    reason,
                    retry_after,
                } => (reason, retry_after),
            };
            let delay = match retry_after {
                Some(at) => at.delay_from((self.clock)()).min(RETRY_AFTER_LIMIT),
                None => self.backoff.next_delay(),
            };
            self.stats.add_retry();
            // The backlog keeps growing while this body waits; keep the gauge and
            // the warning honest.
            if let Ok(last_seq) = self.reader.last_seq().await {
                self.observe_backlog(last_seq);
            }
            tracing::warn!(sink = %self.name, attempt, "write failed, retrying in {delay:?}: {reason}");
            if pause(delay, shutdown).await {
                break None;
            }
        }
    }

    /// A final answer after `attempt` tries: the backoff starts over.
    fn answered(&mut self, attempt: u32, answer: Answer) -> Answer {
        if attempt > 1 {
            tracing::info!(sink = %self.name, attempt, "the server answers again");
        }
        self.backoff.reset();
        answer
    }

    /// Records the dead letters and moves the cursor to `last`. Returns false if the store
    /// is gone or a stop came while retrying.
    async fn commit(
        &mut self,
        last: u64,
        dead: Vec<DeadLine>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let dead = Arc::new(dead);
        loop {
            let (name, letters, now) = (self.name.clone(), dead.clone(), (self.clock)());
            let recorded = self
                .store
                .call(move |store| {
                    for letter in letters.iter() {
                        let reason = format!("seq {}: {}", letter.seq, letter.reason);
                        store.append_dead_letter(&name, &reason, &letter.payload, now)?;
                    }
                    store.set_cursor(&name, last)
                })
                .await;
            match recorded {
                Ok(Ok(())) => {
                    self.stats.add_dead_letters(dead.len() as u64);
                    return true;
                }
                Err(StoreError::WriterClosed) => {
                    tracing::error!(sink = %self.name, "the store closed before the cursor could move to {last}; that batch will be sent again");
                    return false;
                }
                Ok(Err(e)) | Err(e) => {
                    let delay = self.backoff.next_delay();
                    tracing::error!(sink = %self.name, "cannot record delivery up to seq {last}, retrying in {delay:?}: {e}");
                    if pause(delay, shutdown).await {
                        return false;
                    }
                }
            }
        }
    }

    /// Updates the backlog gauge from the store's last seq.
    fn observe_backlog(&mut self, last_seq: u64) {
        let backlog = last_seq.saturating_sub(self.cursor);
        self.stats.set_backlog(backlog);
        match self.backlog.observe(backlog) {
            Some(BacklogChange::Exceeded) => {
                self.stats.add_backlog_warning();
                tracing::warn!(sink = %self.name, backlog, "records waiting for delivery exceed backlog_warning; the server is down or too slow");
            }
            Some(BacklogChange::Recovered) => {
                tracing::info!(sink = %self.name, backlog, "the delivery backlog is draining");
            }
            None => {}
        }
    }
}
