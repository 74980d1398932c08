//! The only writer of ingested data. Every collector hands it [`Batch`]es; it dedupes what
//! a redelivering source sent twice, runs samples through the [`Processor`], lets
//! wall-clock time pass once a second, updates the live board, commits, keeps dead letters,
//! and only then answers the batches' receipts, so a source acknowledges its upstream (MQTT
//! PUBACK, HJ 212 9014) after its data is durable.
//!
//! Time sanity comes first: a reading or record stamped further ahead of the receiving
//! clock than the configured tolerance is refused as `future` before anything per channel
//! sees it (dedupe high-water mark, quality, aggregation, gap detection), so one wrong
//! clock cannot hold a channel's later readings back until its date comes.
//!
//! Order does not matter: a reading is taken once per (device, channel, time), whenever it
//! comes. One newer than its channel's newest is taken at once; an older one (a broker that
//! restarted and redelivered, a logger's backlog) is looked up in the store, after every
//! commit in flight, and among the records gathered for the next commit: a copy is dropped,
//! anything else is taken with the inputs of its own time ([`Processor::push_late`]). A
//! reading that falls into a closed minute re-opens it, and its hour and day where closed;
//! they are stored again as revisions in the commit that holds the reading. Only readings
//! further back than the lateness horizon are refused, as `too_late`.

pub mod cadence;
mod dedupe;
pub mod live;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::collect::batch::{Batch, DeadLetter, Message, Origin, Receipt, RECEIVE_TIME_NOTE};
use crate::model::time::Clock;
use crate::model::{Sample, Timestamp};
use crate::pipeline::live::Live;
use crate::process::{Processor, Window};
use crate::store::{Query, Record, RecordKind, Store, StoreError, StoreHandle, Stored};

use dedupe::HighWater;

/// Most records gathered before one commit, so a burst becomes one transaction.
const MAX_RECORDS_PER_COMMIT: usize = 10_000;

/// How often periods are closed and silence is looked for when no sample arrives.
const TICK: Duration = Duration::from_secs(1);

/// Longest wait between two tries of a store write that failed (disk full, I/O error).
const MAX_RETRY_DELAY: Duration = Duration::from_secs(10);

/// Commits queued at the store writer at once: the pipeline prepares the next while the
/// store writes the last, and the writer joins what is queued into one transaction.
const MAX_COMMITS_IN_FLIGHT: usize = 2;

/// Records gathered while the store refuses commits, waiting for it.
pub const SPILLED: &str = "cemsd_ingest_spilled_records";

/// Readings and records refused before processing, by origin (`modbus`, `mqtt`, `hj212`) and
/// reason (`future`, `too_late`).
pub const REFUSED: &str = "cemsd_ingest_refused_total";

/// Readings taken after later ones of their channel, by origin; their periods were revised.
pub const LATE_TAKEN: &str = "cemsd_ingest_late_readings_total";

/// How far ahead of the receiving clock a reading may be stamped unless configured.
pub const DEFAULT_FUTURE_TOLERANCE: Duration = Duration::from_secs(300);

/// How far back a reading may arrive after later ones unless configured.
pub const DEFAULT_LATENESS_HORIZON: Duration = Duration::from_secs(3 * 86_400);

/// A reading's identity: device, channel and time; the store holds one of each.
type ReadingKey = (Arc<str>, Arc<str>, Timestamp);

/// What the store writer answers to an append: the seq range the records got.
type Appended = Result<Option<(u64, u64)>, StoreError>;

/// Records handed to the store writer, and the batches to settle once they are durable.
struct Commit {
    records: Arc<Vec<Record>>,
    done: Pin<Box<dyn Future<Output = Appended> + Send>>,
    settle: Vec<Settle>,
    /// Times the store refused it.
    refusals: u32,
}

/// Resolves at `deadline`; never without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Resolves with the outcome of the oldest commit in flight; never while none is.
async fn oldest(in_flight: &mut VecDeque<Commit>) -> Appended {
    match in_flight.front_mut() {
        Some(commit) => (&mut commit.done).await,
        None => std::future::pending().await,
    }
}

/// A pipeline on its own thread; resolves once it has committed everything it received.
pub struct Running {
    finished: oneshot::Receiver<()>,
}

impl Future for Running {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // an error means the thread is gone (it panicked): there is nothing left to wait for
        Pin::new(&mut self.finished).poll(cx).map(|_| ())
    }
}

/// What a batch still needs once the commit holding its records is done.
struct Settle {
    receipt: Option<oneshot::Sender<Receipt>>,
    readings: usize,
    origin: Origin,
    dead_letters: Vec<DeadLetter>,
    /// Readings dropped as copies of stored ones.
    duplicates: usize,
    /// Why readings of the batch were refused as stamped in the future.
    future: Option<String>,
    /// Why readings of the batch were refused as older than the lateness horizon.
    too_late: Option<String>,
}

/// Readings and records of one batch refused before processing.
struct Refused {
    count: usize,
    /// "2 reading(s)", "1 record(s)", …
    what: String,
    /// The first of them: device/channel at time.
    first: String,
    /// One line per refused reading or record, kept as the dead letter's payload when the
    /// batch came without a message of its own.
    listing: String,
}

impl Refused {
    /// Counts the refusal and makes its dead letter: the batch's message as received, or
    /// else the listing of what was refused.
    fn letter(
        &self,
        origin: &Origin,
        reason: &'static str,
        detail: &str,
        message: Option<&Message>,
        now: Timestamp,
    ) -> DeadLetter {
        metrics::counter!(REFUSED, "origin" => origin.kind(), "reason" => reason)
            .increment(self.count as u64);
        let (payload, address) = match message {
            Some(m) => (m.payload.clone(), format!(" (topic {})", m.topic)),
            None => (self.listing.clone().into_bytes(), String::new()),
        };
        DeadLetter {
            reason: format!("{reason}: {detail}{address}"),
            payload,
            received: now,
        }
    }

    fn of(samples: &[Sample], records: &[Record]) -> Option<Refused> {
        let count = samples.len() + records.len();
        if count == 0 {
            return None;
        }
        let mut lines: Vec<String> = samples
            .iter()
            .map(|s| format!("{}/{} at {} value {}", s.device, s.channel, s.ts, s.value))
            .collect();
        lines.extend(
            records
                .iter()
                .map(|r| format!("{}/{} {} at {}", r.device, r.channel, r.kind.as_str(), r.ts)),
        );
        let what = match (samples.len(), records.len()) {
            (n, 0) => format!("{n} reading(s)"),
            (0, m) => format!("{m} record(s)"),
            (n, m) => format!("{n} reading(s) and {m} record(s)"),
        };
        let first = samples
            .iter()
            .map(|s| format!("{}/{} at {}", s.device, s.channel, s.ts))
            .chain(
                records
                    .iter()
                    .map(|r| format!("{}/{} at {}", r.device, r.channel, r.ts)),
            )
            .next()
            .unwrap_or_default();
        Some(Refused {
            count,
            what,
            first,
            listing: lines.join("\n"),
        })
    }
}

pub struct Pipeline {
    processor: Processor,
    store: StoreHandle,
    live: Arc<Live>,
    high_water: HighWater,
    /// The receiving clock: judges timestamps and lets wall-clock time pass.
    clock: Clock,
    future_tolerance: Duration,
    lateness_horizon: Duration,
    spill_records: usize,
    /// How long records nobody waits for (polls of Modbus devices: no receipt) may gather
    /// before they are committed together; see [`Pipeline::with_commit_delay`].
    commit_delay: Duration,
}

impl Pipeline {
    pub fn new(processor: Processor, store: StoreHandle, live: Arc<Live>) -> Self {
        Pipeline {
            processor,
            store,
            live,
            high_water: HighWater::new(),
            clock: crate::model::time::system_clock(),
            future_tolerance: DEFAULT_FUTURE_TOLERANCE,
            lateness_horizon: DEFAULT_LATENESS_HORIZON,
            spill_records: crate::config::DEFAULT_SPILL_RECORDS,
            commit_delay: Duration::ZERO,
        }
    }

    /// Gathers records for up to `delay` before committing them, while no batch among them
    /// waits for its receipt (an MQTT ack, an HJ 212 9014: those commit at once, taking what
    /// gathered with them). Each commit rewrites the pages at the end of the table and its
    /// indexes, so one commit of many polls writes far less to the flash than one per poll;
    /// the cost is that a kill loses up to `delay` of device polls, which no one had been
    /// told were stored, and the restart records as a gap.
    pub fn with_commit_delay(mut self, delay: Duration) -> Self {
        self.commit_delay = delay;
        self
    }

    /// Holds up to `records` in memory while the store refuses commits.
    pub fn with_spill(mut self, records: usize) -> Self {
        self.spill_records = records;
        self
    }

    /// Reads time from `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Refuses readings stamped more than `tolerance` ahead of the clock.
    pub fn with_future_tolerance(mut self, tolerance: Duration) -> Self {
        self.future_tolerance = tolerance;
        self
    }

    /// Takes readings up to `horizon` older than the newest of their channel.
    pub fn with_lateness_horizon(mut self, horizon: Duration) -> Self {
        self.lateness_horizon = horizon;
        self
    }

    /// Learns the newest stored reading of every channel, so a redelivery after a restart
    /// is recognised as one.
    pub async fn warm_up(mut self) -> Result<Self, StoreError> {
        let latest = self.store.call(|s: &mut Store| s.latest()).await??;
        for stored in latest {
            let r = stored.record;
            self.high_water.remember(r.device, r.channel, r.ts);
        }
        Ok(self)
    }

    /// Runs the pipeline on a thread of its own until every sender is dropped. It is the
    /// one point all ingested data passes, so it must not wait behind the tasks it serves:
    /// on a runtime shared with 1000 logger connections it handled 27k uploads/s, on its own
    /// thread 38k (`cargo bench --bench hj212_listener`).
    pub fn spawn(self, batches: mpsc::Receiver<Batch>) -> std::io::Result<Running> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()?;
        let (done, finished) = oneshot::channel();
        std::thread::Builder::new()
            .name("cemsd-pipeline".to_string())
            .spawn(move || {
                runtime.block_on(self.run(batches));
                // nobody may be waiting any more (a stop that timed out); the work is done
                let _ = done.send(());
            })?;
        Ok(Running { finished })
    }

    /// Runs until every sender is dropped, committing all it received.
    pub async fn run(mut self, mut batches: mpsc::Receiver<Batch>) {
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut records = Vec::new();
        let mut settle = Vec::new();
        let mut in_flight = VecDeque::new();
        let mut open = true;
        // when the records gathered now must be committed at the latest
        let mut commit_by: Option<tokio::time::Instant> = None;
        while open || !in_flight.is_empty() {
            // while the store refuses the oldest commit, batches are still taken (and periods
            // closed) into memory, up to the spill; the commits wait in order
            let refused = in_flight.front().is_some_and(|c: &Commit| c.refusals > 0);
            if refused {
                metrics::gauge!(SPILLED).set(records.len() as f64);
            }
            let room = in_flight.len() < MAX_COMMITS_IN_FLIGHT
                || (refused && records.len() < self.spill_records);
            tokio::select! {
                batch = batches.recv(), if open && room => match batch {
                    // each batch is processed on its own (see Processor::push); what queued
                    // up meanwhile is committed together
                    Some(batch) => {
                        self.take(batch, &mut records, &mut settle).await;
                    }
                    None => open = false,
                },
                _ = ticker.tick(), if open => self.processor.tick((self.clock)(), &mut records),
                _ = sleep_until(commit_by), if commit_by.is_some() => {}
                result = oldest(&mut in_flight) => {
                    if let Some(commit) = in_flight.pop_front() {
                        match result {
                            Ok(_) => self.finish(commit).await,
                            Err(e) => in_flight.push_front(self.again(commit, &e, records.len())),
                        }
                    }
                }
            }
            if in_flight.len() >= MAX_COMMITS_IN_FLIGHT {
                continue;
            }
            while open && records.len() < MAX_RECORDS_PER_COMMIT {
                match batches.try_recv() {
                    Ok(batch) => {
                        self.take(batch, &mut records, &mut settle).await;
                    }
                    Err(_) => break,
                }
            }
            if self.processor.has_pending_revisions() {
                self.revise(&mut records).await;
            }
            let now = tokio::time::Instant::now();
            let gathering = !records.is_empty() || !settle.is_empty();
            // the delay counts from the first record gathered since the last commit
            let due = gathering.then(|| *commit_by.get_or_insert(now + self.commit_delay));
            let hold = open
                && due.is_some_and(|due| now < due)
                && records.len() < MAX_RECORDS_PER_COMMIT
                && settle.iter().all(|s| s.receipt.is_none());
            if !hold {
                self.commit(&mut records, &mut settle, &mut in_flight);
                commit_by = None;
            }
        }
    }

    /// Hands what was gathered to the store writer as one commit.
    fn commit(
        &self,
        records: &mut Vec<Record>,
        settle: &mut Vec<Settle>,
        in_flight: &mut VecDeque<Commit>,
    ) {
        if records.is_empty() && settle.is_empty() {
            return;
        }
        self.live.record_readings(records);
        let records = Arc::new(std::mem::take(records));
        in_flight.push_back(Commit {
            done: Box::pin(self.store.append_shared(records.clone())),
            records,
            settle: std::mem::take(settle),
            refusals: 0,
        });
    }

    /// A commit the store refused, to be tried again after a delay that doubles with each
    /// refusal (at most `MAX_RETRY_DELAY`); its batches stay unanswered until it is durable.
    fn again(&self, mut commit: Commit, error: &StoreError, held: usize) -> Commit {
        commit.refusals = commit.refusals.saturating_add(1);
        let delay = Duration::from_millis(100)
            .saturating_mul(1 << commit.refusals.min(10))
            .min(MAX_RETRY_DELAY);
        tracing::error!(
            "store commit of {} records failed, retrying in {delay:?}; {held} more records held in memory (at most {}): {error}",
            commit.records.len(),
            self.spill_records
        );
        let (store, records) = (self.store.clone(), commit.records.clone());
        commit.done = Box::pin(async move {
            tokio::time::sleep(delay).await;
            store.append_shared(records).await
        });
        commit
    }

    /// Completes the oldest commit, now durable: settles its batches.
    async fn finish(&self, commit: Commit) {
        metrics::gauge!(SPILLED).set(0.0);
        self.live.add_committed(commit.records.len() as u64);
        for done in commit.settle {
            self.settle(done).await;
        }
    }

    async fn take(&mut self, batch: Batch, records: &mut Vec<Record>, settle: &mut Vec<Settle>) {
        let Batch {
            origin,
            samples,
            records: computed,
            mut dead_letters,
            receive_time,
            message,
            receipt,
        } = batch;
        let now = (self.clock)();
        let limit = now.plus(self.future_tolerance);
        let (samples, future_samples): (Vec<Sample>, Vec<Sample>) =
            samples.into_iter().partition(|s| s.ts <= limit);
        let (computed, future_records): (Vec<Record>, Vec<Record>) =
            computed.into_iter().partition(|r| r.ts <= limit);
        let future = Refused::of(&future_samples, &future_records).map(|refused| {
            let detail = format!(
                "{} stamped more than {} ahead of the receiving clock ({now}), first {}; the rest of the batch is stored",
                refused.what,
                humantime::format_duration(self.future_tolerance),
                refused.first
            );
            dead_letters.push(refused.letter(&origin, "future", &detail, message.as_ref(), now));
            detail
        });
        let (samples, not_newer) = if origin.redelivers() {
            self.high_water.admit(samples)
        } else {
            (samples, Vec::new())
        };
        let oldest = now.minus(self.lateness_horizon);
        let (late, too_late): (Vec<Sample>, Vec<Sample>) =
            not_newer.into_iter().partition(|s| s.ts >= oldest);
        let too_late = Refused::of(&too_late, &[]).map(|refused| {
            let detail = format!(
                "{} older than the lateness horizon of {} before the receiving clock ({now}) and not stored before, first {}; the rest of the batch is stored",
                refused.what,
                humantime::format_duration(self.lateness_horizon),
                refused.first
            );
            dead_letters.push(refused.letter(&origin, "too_late", &detail, message.as_ref(), now));
            detail
        });
        if !matches!(origin, Origin::Modbus) {
            let uploads = samples
                .iter()
                .chain(&late)
                .map(|s| (&s.device, RecordKind::Reading, s.ts))
                .chain(computed.iter().map(|r| (&r.device, r.kind, r.ts)));
            self.live.delivered(origin.kind(), now, uploads);
        }
        let first = records.len();
        self.processor.push(&samples, records);
        if let Some(at) = receive_time {
            for record in &mut records[first..] {
                if record.kind == RecordKind::Reading && record.ts == at {
                    record.note = Some(RECEIVE_TIME_NOTE.to_string());
                }
            }
        }
        let mut taken = samples.len();
        let mut duplicates = 0;
        if !late.is_empty() {
            let (outcome, mut taken_late) = self.take_late(&late, &origin, records).await;
            records.append(&mut taken_late);
            taken += outcome.taken;
            duplicates = outcome.duplicates;
        }
        if !computed.is_empty() {
            self.live.record_uploads(&computed);
            records.extend(computed);
        }
        if receipt.is_some() || !dead_letters.is_empty() {
            settle.push(Settle {
                receipt,
                readings: taken,
                origin,
                dead_letters,
                duplicates,
                future,
                too_late,
            });
        }
    }

    /// Takes readings older than their channel's newest. Their copies and the input
    /// readings around them are looked up where they may be: in the store, read after every
    /// commit in flight, and among the records gathered for the next commit.
    async fn take_late(
        &mut self,
        late: &[Sample],
        origin: &Origin,
        records: &[Record],
    ) -> (crate::process::LateOutcome, Vec<Record>) {
        let windows = Arc::new(self.processor.late_windows(late));
        let keys: Arc<Vec<ReadingKey>> = Arc::new(
            late.iter()
                .map(|s| (s.device.clone(), s.channel.clone(), s.ts))
                .collect(),
        );
        let mut stored = {
            let (windows, keys) = (windows.clone(), keys.clone());
            self.retry("read for late readings", move |store| {
                let (windows, keys) = (windows.clone(), keys.clone());
                async move {
                    store
                        .call(move |s: &mut Store| read_late(s, &keys, &windows))
                        .await?
                }
            })
            .await
        };
        stored.extend(
            records
                .iter()
                .filter(|r| {
                    r.kind == RecordKind::Reading
                        && keys
                            .iter()
                            .any(|(d, c, ts)| (d, c, ts) == (&r.device, &r.channel, &r.ts))
                })
                .map(|r| Stored {
                    seq: 0,
                    record: r.clone(),
                }),
        );
        stored.extend(gathered_within(records, &windows));
        let mut out = Vec::new();
        let outcome = self.processor.push_late(late, &stored, &mut out);
        metrics::counter!(LATE_TAKEN, "origin" => origin.kind()).increment(outcome.taken as u64);
        (outcome, out)
    }

    /// Adds the revisions of the minutes that readings gathered for this commit re-opened.
    /// Every reading of such a minute is either stored (the read below comes after every
    /// commit in flight) or among `records`, so the revisions go into the same commit as
    /// the readings that caused them: a crash leaves both or neither.
    async fn revise(&mut self, records: &mut Vec<Record>) {
        let windows = Arc::new(self.processor.pending_windows());
        let mut stored = {
            let windows = windows.clone();
            self.retry("read for revisions", move |store| {
                let windows = windows.clone();
                async move {
                    store
                        .call(move |s: &mut Store| read_windows(s, &windows))
                        .await?
                }
            })
            .await
        };
        stored.extend(gathered_within(records, &windows));
        self.processor.revise_pending(&stored, records);
    }

    /// Keeps the batch's dead letters, then answers its receipt.
    async fn settle(&self, done: Settle) {
        let source = done.origin.dead_letter_source();
        for letter in done.dead_letters {
            let source = source.clone();
            self.retry("dead letter", move |store| {
                let (source, letter) = (source.clone(), letter.clone());
                async move {
                    store
                        .append_dead_letter(
                            &source,
                            &letter.reason,
                            letter.payload,
                            letter.received,
                        )
                        .await
                        .map(|_| ())
                }
            })
            .await;
        }
        let receipt = Receipt {
            readings: done.readings,
            duplicates: done.duplicates,
            future: done.future,
            too_late: done.too_late,
        };
        if let Some(tx) = done.receipt {
            // the source may have stopped waiting (shutting down); the data is stored
            let _ = tx.send(receipt);
        }
    }

    /// Runs a store operation until it succeeds, with a growing pause after each failure.
    async fn retry<T, F, Fut>(&self, what: &str, mut attempt: F) -> T
    where
        F: FnMut(StoreHandle) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut delay = Duration::from_millis(100);
        loop {
            match attempt(self.store.clone()).await {
                Ok(value) => return value,
                Err(e) => {
                    tracing::error!("{what} failed, retrying in {delay:?}: {e}");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_RETRY_DELAY);
                }
            }
        }
    }
}

/// The stored records of each window, in store order within it.
fn read_windows(store: &mut Store, windows: &[Window]) -> Result<Vec<Stored>, StoreError> {
    let mut rows = Vec::new();
    for w in windows {
        rows.extend(store.query(&Query {
            kind: Some(w.kind),
            stack: Some(w.stack.to_string()),
            quantity: Some(w.quantity),
            from: Some(w.from),
            to: Some(w.to),
            ..Query::default()
        })?);
    }
    Ok(rows)
}

/// Records gathered for the next commit that fall into `windows`, as if stored, in order.
fn gathered_within(records: &[Record], windows: &[Window]) -> Vec<Stored> {
    records
        .iter()
        .filter(|r| {
            windows.iter().any(|w| {
                w.kind == r.kind
                    && *w.stack == *r.stack
                    && r.quantity == Some(w.quantity)
                    && (w.from..w.to).contains(&r.ts)
            })
        })
        .map(|r| Stored {
            seq: 0,
            record: r.clone(),
        })
        .collect()
}

/// The stored copy of each (device, channel, time) that has one, then the records of
/// `windows`. A copy is found through the time index in a few page reads.
fn read_late(
    store: &mut Store,
    keys: &[ReadingKey],
    windows: &[Window],
) -> Result<Vec<Stored>, StoreError> {
    let mut rows = Vec::new();
    for (device, channel, ts) in keys {
        rows.extend(store.query(&Query {
            kind: Some(RecordKind::Reading),
            device: Some(device.to_string()),
            channel: Some(channel.to_string()),
            from: Some(*ts),
            to: Some(Timestamp(ts.0.saturating_add(1))),
            limit: Some(1),
            ..Query::default()
        })?);
    }
    rows.extend(read_windows(store, windows)?);
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use crate::model::{Basis, FlagSet, Quantity, Unit};
    use crate::store::{Store, StoreOptions, StoreWriter, WriterOptions};

    const SITE: &str = r#"
[site]
id = "t"
[[stack]]
id = "unit1"
source_type = "coal_boiler"
[[mqtt]]
id = "m"
url = "mqtt://127.0.0.1"
client_id = "c"
[[mqtt.subscribe]]
filter = "x/#"
format = "plain"
topic = "x/{device}/{channel}"
[[mqtt.device]]
id = "dtu"
stack = "unit1"
interval = "10s"
channels = { O2 = { unit = "%vol" } }
"#;

    fn o2(ts: i64) -> Sample {
        Sample {
            device: Arc::from("dtu"),
            channel: Arc::from("O2"),
            quantity: Quantity::O2,
            unit: Unit::PercentVol,
            basis: Basis::Dry,
            value: 6.0,
            status: FlagSet::EMPTY,
            ts: Timestamp(ts),
        }
    }

    /// A pipeline on a fresh store, with a second connection to see only committed rows.
    struct Harness {
        dir: tempfile::TempDir,
        live: Arc<Live>,
        tx: mpsc::Sender<Batch>,
        pipeline: tokio::task::JoinHandle<()>,
        handle: StoreHandle,
        thread: std::thread::JoinHandle<Store>,
    }

    impl Harness {
        async fn start() -> Harness {
            Harness::start_with(crate::model::time::system_clock()).await
        }

        async fn start_with(clock: crate::model::time::Clock) -> Harness {
            Harness::start_holding(clock, Duration::ZERO).await
        }

        /// With polls no one waits for held up to `commit_delay` before their commit.
        async fn start_holding(
            clock: crate::model::time::Clock,
            commit_delay: Duration,
        ) -> Harness {
            let loaded = config::parse(std::path::Path::new("t.toml"), SITE)
                .unwrap_or_else(|e| panic!("{e}"));
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let store = Store::open(&dir.path().join("t.db"), StoreOptions::default())
                .unwrap_or_else(|e| panic!("{e}"));
            let (handle, thread) = StoreWriter::spawn(store, WriterOptions::default())
                .unwrap_or_else(|e| panic!("{e}"));
            let processor = Processor::new(&loaded.config, &loaded.profiles);
            let live = Live::new();
            let (tx, rx) = mpsc::channel(8);
            let pipeline = Pipeline::new(processor, handle.clone(), live.clone())
                .with_clock(clock)
                .with_commit_delay(commit_delay)
                .warm_up()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let pipeline = tokio::spawn(pipeline.run(rx));
            Harness {
                dir,
                live,
                tx,
                pipeline,
                handle,
                thread,
            }
        }

        async fn send(&self, batch: Batch) -> oneshot::Receiver<Receipt> {
            let (batch, receipt) = batch.with_receipt();
            self.tx
                .send(batch)
                .await
                .unwrap_or_else(|_| panic!("pipeline gone"));
            receipt
        }

        fn committed(&self, kind: RecordKind, device: &str) -> Vec<Stored> {
            let reader = Store::open(&self.dir.path().join("t.db"), StoreOptions::default())
                .unwrap_or_else(|e| panic!("{e}"));
            reader
                .query(&Query {
                    kind: Some(kind),
                    device: Some(device.into()),
                    ..Query::default()
                })
                .unwrap_or_else(|e| panic!("{e}"))
        }

        /// Ends the input and waits for everything to be committed; the store's folder is
        /// handed back for a last look.
        async fn stop(self) -> tempfile::TempDir {
            drop(self.tx);
            self.pipeline.await.unwrap_or_else(|e| panic!("{e}"));
            self.handle
                .shutdown()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let _ = self.thread.join();
            self.dir
        }
    }

    fn mqtt() -> Origin {
        Origin::Mqtt {
            source: Arc::from("m"),
        }
    }

    // 2026-01-01T04:00:00Z and one second later
    const T0: i64 = 1_767_240_000_000;
    const T1: i64 = 1_767_240_001_000;

    #[tokio::test]
    async fn receipts_come_after_the_commit_and_notes_mark_receive_times() {
        let h = Harness::start().await;
        let first = h.send(Batch::readings(mqtt(), vec![o2(T0)])).await;
        let second = h
            .send(Batch {
                samples: vec![o2(T1)],
                receive_time: Some(Timestamp(T1)),
                ..Batch::new(mqtt())
            })
            .await;
        // nothing to store: answered once the earlier ones are committed
        let empty = h.send(Batch::new(mqtt())).await;
        for (receipt, at_least) in [(first, 1), (second, 2), (empty, 2)] {
            receipt
                .await
                .unwrap_or_else(|_| panic!("a batch was never answered"));
            assert!(
                h.committed(RecordKind::Reading, "dtu").len() >= at_least,
                "answered before its commit"
            );
        }
        let got: Vec<_> = h
            .committed(RecordKind::Reading, "dtu")
            .iter()
            .map(|r| (r.record.ts.0, r.record.note.clone()))
            .collect();
        assert_eq!(
            got,
            vec![(T0, None), (T1, Some(RECEIVE_TIME_NOTE.to_string()))]
        );
        let board = h.live.snapshot();
        let dtu = board
            .get("dtu")
            .unwrap_or_else(|| panic!("dtu not on the live board"));
        assert!(dtu.connected);
        assert_eq!(dtu.polls, 3 - 1, "two batches carried dtu's readings");
        assert_eq!(dtu.values.get("O2").map(|v| v.ts), Some(Timestamp(T1)));
        h.stop().await;
    }

    /// Polls no one waits for gather until a batch with a receipt comes, which commits them
    /// with it in one transaction; the end of input commits what is held.
    #[tokio::test]
    async fn polls_without_receipts_wait_for_the_commit_delay_and_go_with_the_next_receipt() {
        let h = Harness::start_holding(
            crate::model::time::system_clock(),
            Duration::from_secs(3600),
        )
        .await;
        let transactions = || h.handle.stats().transactions;
        let before = transactions();
        for ts in [T0, T1] {
            h.tx.send(Batch::readings(mqtt(), vec![o2(ts)]))
                .await
                .unwrap_or_else(|_| panic!("pipeline gone"));
        }
        // neither committed within the hour's delay
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(h.committed(RecordKind::Reading, "dtu").is_empty());
        assert_eq!(transactions(), before);

        let waited = h.send(Batch::readings(mqtt(), vec![o2(T1 + 1000)])).await;
        waited
            .await
            .unwrap_or_else(|_| panic!("the batch with a receipt was never answered"));
        assert_eq!(h.committed(RecordKind::Reading, "dtu").len(), 3);
        assert_eq!(transactions(), before + 1, "one commit for all three");

        h.tx.send(Batch::readings(mqtt(), vec![o2(T1 + 2000)]))
            .await
            .unwrap_or_else(|_| panic!("pipeline gone"));
        let dir = h.stop().await;
        let reader = Store::open(&dir.path().join("t.db"), StoreOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            reader
                .query(&Query {
                    kind: Some(RecordKind::Reading),
                    ..Query::default()
                })
                .map(|rows| rows.len())
                .unwrap_or(0),
            4,
            "the poll held at the end of input is committed"
        );
    }

    #[tokio::test]
    async fn a_redelivery_is_dropped_an_older_reading_taken_and_one_past_the_horizon_refused() {
        let h = Harness::start_with(Arc::new(|| Timestamp(T1 + 60_000))).await;
        let first = h.send(Batch::readings(mqtt(), vec![o2(T1)])).await;
        assert_eq!(first.await.ok().map(|r| r.readings), Some(1));
        // the same reading again (a lost PUBACK), one older than it (a broker that
        // restarted), and one from four days back, past the default horizon of three
        let four_days = T0 - 4 * 86_400_000;
        let again = h
            .send(Batch {
                samples: vec![o2(T1), o2(T0), o2(four_days)],
                message: Some(Message {
                    topic: "x/dtu/O2".into(),
                    payload: b"6.0".to_vec(),
                    received: Timestamp(T1),
                }),
                ..Batch::new(mqtt())
            })
            .await;
        let receipt = again.await.unwrap_or_else(|_| panic!("never answered"));
        assert_eq!((receipt.readings, receipt.duplicates), (1, 1));
        let too_late = receipt
            .too_late
            .unwrap_or_else(|| panic!("nothing refused"));
        assert!(too_late.contains("dtu/O2 at 2025-12-28"), "{too_late}");
        let stored: Vec<i64> = h
            .committed(RecordKind::Reading, "dtu")
            .iter()
            .map(|r| r.record.ts.0)
            .collect();
        assert_eq!(stored, vec![T0, T1]);
        // a second delivery of the late one is a copy now
        let again = h.send(Batch::readings(mqtt(), vec![o2(T0)])).await;
        let receipt = again.await.unwrap_or_else(|_| panic!("never answered"));
        assert_eq!((receipt.readings, receipt.duplicates), (0, 1));
        let letters = dead_letters(&h).await;
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].source, "mqtt:m");
        assert!(
            letters[0].reason.starts_with("too_late: "),
            "{}",
            letters[0].reason
        );
        assert!(letters[0].reason.ends_with("(topic x/dtu/O2)"));
        h.stop().await;
    }

    #[tokio::test]
    async fn readings_in_reverse_order_revise_their_closed_minutes() {
        // the clock is two minutes past the readings: ticks close what they reach
        let h = Harness::start_with(Arc::new(|| Timestamp(T0 + 180_000))).await;
        let mut values = Vec::new();
        // 04:01:50, 04:01:40, … 04:00:00 — newest first; 6.0 + i/10 %
        for i in (0..12).rev() {
            let mut reading = o2(T0 + i * 10_000);
            reading.value = 6.0 + i as f64 / 10.0;
            values.push(reading.value);
            let receipt = h.send(Batch::readings(mqtt(), vec![reading])).await;
            let receipt = receipt.await.unwrap_or_else(|_| panic!("never answered"));
            assert_eq!((receipt.readings, receipt.duplicates), (1, 0));
        }
        // let ticks close the last minute: the first after a delivery leaves it open
        tokio::time::sleep(Duration::from_millis(2_200)).await;
        let _ = h.send(Batch::new(mqtt())).await.await;
        assert_eq!(h.committed(RecordKind::Reading, "dtu").len(), 12);
        let reader = Store::open(&h.dir.path().join("t.db"), StoreOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let minutes = reader
            .query(&Query {
                kind: Some(RecordKind::Minute),
                ..Query::default()
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let mut newest: std::collections::BTreeMap<i64, &Record> = Default::default();
        for m in &minutes {
            newest.insert(m.record.ts.0, &m.record);
        }
        assert_eq!(newest.len(), 2, "{minutes:?}");
        // 04:00 holds 6.0 … 6.5, 04:01 holds 6.6 … 7.1, whatever the order
        for (start, want) in [(T0, 6.25), (T0 + 60_000, 6.85)] {
            let minute = newest[&start];
            assert_eq!(minute.count, Some(6), "{minute:?}");
            let avg = minute.measured.unwrap_or(f64::NAN);
            assert!((avg - want).abs() < 1e-9, "{start}: {avg} ≠ {want}");
        }
        // revisions were stored beside the first versions, numbered
        let revisions: Vec<u32> = minutes
            .iter()
            .filter(|m| m.record.ts.0 == T0)
            .map(|m| m.record.revision)
            .collect();
        assert_eq!(revisions, (0..revisions.len() as u32).collect::<Vec<_>>());
        assert!(revisions.len() > 1, "{minutes:?}");
        h.stop().await;
    }

    #[tokio::test]
    async fn a_backlog_paused_long_enough_for_its_minute_to_close_revises_it() {
        // the readings are six hours old: ticks close their minute and hour at once (the
        // day, 12:00 to 18:00 local time, is still open)
        let h = Harness::start_with(Arc::new(|| Timestamp(T0 + 6 * 3_600_000))).await;
        let first = h.send(Batch::readings(mqtt(), vec![o2(T0)])).await;
        first.await.unwrap_or_else(|_| panic!("never answered"));
        // a pause (a broker restart) long enough for two ticks
        tokio::time::sleep(Duration::from_millis(2_200)).await;
        let mut next = o2(T0 + 10_000);
        next.value = 7.0;
        let second = h.send(Batch::readings(mqtt(), vec![next])).await;
        let receipt = second.await.unwrap_or_else(|_| panic!("never answered"));
        assert_eq!((receipt.readings, receipt.duplicates), (1, 0));
        for kind in [RecordKind::Minute, RecordKind::Hour] {
            let reader = Store::open(&h.dir.path().join("t.db"), StoreOptions::default())
                .unwrap_or_else(|e| panic!("{e}"));
            let rows = reader
                .query(&Query {
                    kind: Some(kind),
                    ..Query::default()
                })
                .unwrap_or_else(|e| panic!("{e}"));
            let got: Vec<(u32, Option<u32>, Option<f64>)> = rows
                .iter()
                .map(|r| (r.record.revision, r.record.count, r.record.measured))
                .collect();
            // the first version from 6.0 alone, then the revision from 6.0 and 7.0; the
            // hour counts its one valid minute
            let counts = if kind == RecordKind::Minute {
                (1, 2)
            } else {
                (1, 1)
            };
            assert_eq!(
                got,
                vec![
                    (0, Some(counts.0), Some(6.0)),
                    (1, Some(counts.1), Some(6.5))
                ],
                "{kind:?}"
            );
        }
        h.stop().await;
    }

    #[tokio::test]
    async fn a_loggers_records_are_stored_as_sent_and_shown_on_the_live_board() {
        let h = Harness::start().await;
        let minute = Record {
            end: Some(Timestamp(T0 + 60_000)),
            quantity: Some(Quantity::SO2),
            unit: Some(Unit::MgPerM3),
            measured: Some(18.5),
            corrected: Some(20.1),
            ..Record::new(
                RecordKind::Minute,
                Timestamp(T0),
                Arc::from("unit1"),
                Arc::from("010000A8900016F000169DC0"),
                Arc::from("a21026"),
            )
        };
        let receipt = h
            .send(Batch {
                records: vec![minute.clone()],
                ..Batch::new(Origin::Hj212 {
                    mn: Arc::from("010000A8900016F000169DC0"),
                })
            })
            .await;
        receipt.await.unwrap_or_else(|_| panic!("never answered"));
        let stored = h.committed(RecordKind::Minute, "010000A8900016F000169DC0");
        assert_eq!(stored.len(), 1, "committed before the receipt");
        assert_eq!(stored[0].record, minute);
        let board = h.live.snapshot();
        let logger = board
            .get("010000A8900016F000169DC0")
            .unwrap_or_else(|| panic!("the logger is not on the live board"));
        assert!(logger.connected);
        let so2 = logger
            .values
            .get("a21026")
            .unwrap_or_else(|| panic!("no a21026 on the board"));
        assert_eq!((so2.value, so2.corrected), (18.5, Some(20.1)));
        h.stop().await;
    }

    async fn dead_letters(h: &Harness) -> Vec<crate::store::DeadLetter> {
        h.handle
            .call(|s: &mut Store| s.dead_letters(10))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    // 2090-01-01T00:00:00Z
    const Y2090: i64 = 3_786_912_000_000;

    #[tokio::test]
    async fn a_reading_from_the_future_is_refused_and_holds_nothing_back() {
        let clock_ms = Arc::new(std::sync::atomic::AtomicI64::new(T1));
        let clock: crate::model::time::Clock = {
            let clock_ms = clock_ms.clone();
            Arc::new(move || Timestamp(clock_ms.load(std::sync::atomic::Ordering::Relaxed)))
        };
        let h = Harness::start_with(clock).await;
        let first = h.send(Batch::readings(mqtt(), vec![o2(T0)])).await;
        assert_eq!(first.await.ok().map(|r| r.readings), Some(1));
        // a publisher's clock jumped to 2090
        let wrong = h
            .send(Batch {
                samples: vec![o2(Y2090)],
                message: Some(Message {
                    topic: "x/dtu/O2".into(),
                    payload: b"{\"time\":\"2090-01-01T00:00:00Z\"}".to_vec(),
                    received: Timestamp(T1),
                }),
                ..Batch::new(mqtt())
            })
            .await;
        let receipt = wrong.await.unwrap_or_else(|_| panic!("never answered"));
        assert_eq!((receipt.readings, receipt.too_late), (0, None));
        let detail = receipt.future.unwrap_or_else(|| panic!("not refused"));
        assert!(detail.contains("dtu/O2 at 2090-01-01"), "{detail}");
        // 4 min 59 s ahead is within the default tolerance of 5 min
        let skewed = T1 + 299_000;
        // the channel's correct readings go on being stored, not refused as late
        for ts in [T1, T1 + 10_000, skewed] {
            let receipt = h.send(Batch::readings(mqtt(), vec![o2(ts)])).await;
            let receipt = receipt.await.unwrap_or_else(|_| panic!("never answered"));
            assert_eq!(
                (receipt.readings, receipt.too_late, receipt.future),
                (1, None, None)
            );
        }
        // every origin is checked: a Modbus reading and an HJ 212 logger's minute record
        let modbus = h
            .send(Batch::readings(Origin::Modbus, vec![o2(skewed + 2_000)]))
            .await;
        let modbus = modbus.await.unwrap_or_else(|_| panic!("never answered"));
        assert!(modbus.future.is_some(), "{modbus:?}");
        let minute = Record::new(
            RecordKind::Minute,
            Timestamp(Y2090),
            Arc::from("unit1"),
            Arc::from("010000A8900016F000169DC0"),
            Arc::from("a21026"),
        );
        let upload = h
            .send(Batch {
                records: vec![minute],
                ..Batch::new(Origin::Hj212 {
                    mn: Arc::from("010000A8900016F000169DC0"),
                })
            })
            .await;
        let upload = upload.await.unwrap_or_else(|_| panic!("never answered"));
        assert!(upload.future.is_some(), "{upload:?}");

        let stored: Vec<i64> = h
            .committed(RecordKind::Reading, "dtu")
            .iter()
            .map(|r| r.record.ts.0)
            .collect();
        assert_eq!(stored, vec![T0, T1, T1 + 10_000, skewed]);
        assert!(h
            .committed(RecordKind::Minute, "010000A8900016F000169DC0")
            .is_empty());
        let letters = dead_letters(&h).await;
        let reasons: Vec<(&str, &str)> = letters
            .iter()
            .map(|l| (l.source.as_str(), l.reason.as_str()))
            .collect();
        assert_eq!(letters.len(), 3, "{reasons:?}");
        assert!(
            letters.iter().all(|l| l.reason.starts_with("future: ")),
            "{reasons:?}"
        );
        let mqtt_letter = letters
            .iter()
            .find(|l| l.source == "mqtt:m")
            .unwrap_or_else(|| panic!("{reasons:?}"));
        assert!(mqtt_letter.reason.ends_with("(topic x/dtu/O2)"));
        assert_eq!(mqtt_letter.payload, b"{\"time\":\"2090-01-01T00:00:00Z\"}");
        let logger = letters
            .iter()
            .find(|l| l.source.starts_with("hj212:"))
            .unwrap_or_else(|| panic!("{reasons:?}"));
        assert!(
            String::from_utf8_lossy(&logger.payload).contains("a21026 minute at 2090"),
            "{:?}",
            String::from_utf8_lossy(&logger.payload)
        );

        // time passes with the channel silent: the gap opened reaches the clock, not 2090
        clock_ms.store(T1 + 600_000, std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let _ = h.send(Batch::new(mqtt())).await.await;
        let reader = Store::open(&h.dir.path().join("t.db"), StoreOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let all = reader
            .query(&Query::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            all.iter().any(|r| r.record.kind == RecordKind::Gap),
            "no gap opened on the silent channel"
        );
        for row in &all {
            let r = &row.record;
            assert!(
                r.ts.0 < Y2090 / 2 && r.end.is_none_or(|e| e.0 < Y2090 / 2),
                "{:?} {} reaches the refused time: {:?}",
                r.kind,
                r.channel,
                r.end
            );
        }
        h.stop().await;
    }
}
