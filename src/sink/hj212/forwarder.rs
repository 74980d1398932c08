//! The store-and-forward state of one HJ 212 uplink, kept across connections: what has been
//! read, what waits for an ack, and the cursor. The connection loop is in `session`.
//!
//! Delivery is at least once: the cursor in the store passes a record only once the upload
//! carrying it is acknowledged, so a crash or a lost connection resends (same QN within a run)
//! and never loses. The platform stores a duplicate as another row; downstream InfluxDB
//! collapses it by series and time.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::secret::Secret;
use crate::model::backoff::Backoff;
use crate::model::time::{Clock, UtcOffset};
use crate::model::Quantity;
use crate::protocol::hj212::{EncodeError, SystemCode};
use crate::sink::hj212::upload::{
    group_periods, period_packet, realtime_packet, to_wire, LeftOut, PeriodGroup,
};
use crate::sink::hj212::upload::{QnSequence, UploadHeader};
use crate::sink::stop::{pause, stop_requested};
use crate::store::{AuditEntry, Record, RecordKind, StoreError, StoreHandle, StoreReader, Stored};

use super::info::info_packet;
use super::progress::{complete_prefix, Progress};
use super::stats::UplinkStats;
use super::window::{Purpose, Upload, Window};
use crate::config::hj212_uplink::Hj212SinkConfig;

/// Uploads on the wire at once; acks may come back in any order.
pub const WINDOW: usize = 8;
/// Records read from the store at a time.
const BATCH: usize = 2000;
/// Store reads in one go before the session looks at the socket again.
const READS_PER_FILL: usize = 8;
/// How often an idle uplink looks for new records.
const POLL: Duration = Duration::from_millis(500);
const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Settings of one uplink, resolved from its config table.
#[derive(Debug, Clone)]
pub struct UplinkSettings {
    pub name: String,
    pub address: String,
    pub st: SystemCode,
    pub password: Secret,
    /// Uploaded points and their MN.
    pub points: Vec<(String, String)>,
    pub kinds: Vec<RecordKind>,
    pub realtime_interval: Option<Duration>,
    pub realtime_ack: bool,
    pub ack_timeout: Duration,
    pub retries: u32,
    pub offset: UtcOffset,
}

impl UplinkSettings {
    pub fn new(
        config: &Hj212SinkConfig,
        password: Secret,
        points: Vec<(String, String)>,
        offset: UtcOffset,
    ) -> UplinkSettings {
        UplinkSettings {
            name: config.store_name(),
            address: config.address.clone(),
            st: config.system_code(),
            password,
            points,
            kinds: [RecordKind::Minute, RecordKind::Hour, RecordKind::Day]
                .into_iter()
                .filter(|k| config.uploads(*k))
                .collect(),
            realtime_interval: config.realtime_interval(),
            realtime_ack: config.realtime_ack,
            ack_timeout: config.ack_timeout.0,
            retries: config.retries,
            offset,
        }
    }

    pub(super) fn mn_of(&self, point: &str) -> Option<&str> {
        self.points
            .iter()
            .find(|(p, _)| p == point)
            .map(|(_, mn)| mn.as_str())
    }

    pub(super) fn point_of(&self, mn: &str) -> Option<&str> {
        self.points
            .iter()
            .find(|(_, m)| m == mn)
            .map(|(p, _)| p.as_str())
    }

    pub(super) fn header(&self, mn: &str, ack_required: bool) -> UploadHeader {
        UploadHeader {
            st: self.st,
            password: self.password.expose().to_string(),
            mn: mn.to_string(),
            ack_required,
        }
    }
}

/// A history pull being answered: its 9012 goes out once every upload is acknowledged.
#[derive(Debug, Clone)]
pub(super) struct HistoryJob {
    pub id: u64,
    pub qn: String,
    pub mn: String,
    pub open: usize,
}

pub struct Uplink {
    pub(super) settings: UplinkSettings,
    pub(super) reader: StoreReader,
    pub(super) store_path: PathBuf,
    pub(super) store: StoreHandle,
    pub(super) clock: Clock,
    pub(super) backoff: Backoff,
    pub(super) stats: Arc<UplinkStats>,
    pub(super) qns: QnSequence,
    pub(super) window: Window,
    pub(super) progress: Progress,
    /// Backlog uploads built and not yet in the window.
    pub(super) backlog: VecDeque<Upload>,
    /// History uploads waiting for the window; they go before the backlog.
    pub(super) history: VecDeque<Upload>,
    pub(super) jobs: Vec<HistoryJob>,
    pub(super) next_job: u64,
    /// Read the store again no earlier than this: it had nothing new, or the session gets a
    /// turn at the socket first.
    pub(super) idle_until: Option<Instant>,
    /// Cursor as recorded in the store.
    pub(super) saved_cursor: u64,
    pub(super) last_seq: u64,
    /// Readings after this seq are new for the next real-time upload.
    pub(super) realtime_after: u64,
}

/// Why a group of stored periods could not become an upload; it goes to the dead letters.
#[derive(Debug, thiserror::Error)]
pub(super) enum UploadError {
    #[error("point {0:?} has no MN")]
    NoMn(String),
    #[error("no value of point {point:?} can be stated in its HJ 212 unit: {left_out}")]
    NothingConvertible { point: String, left_out: String },
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

impl Uplink {
    pub fn new(
        settings: UplinkSettings,
        store_path: PathBuf,
        store: StoreHandle,
        clock: Clock,
        seed: u64,
    ) -> Uplink {
        let stats = Arc::new(UplinkStats::new(settings.name.clone()));
        Uplink {
            reader: StoreReader::new(store_path.clone()),
            store_path,
            store,
            clock,
            backoff: Backoff::new(INITIAL_BACKOFF, MAX_BACKOFF, seed),
            stats,
            qns: QnSequence::new(),
            window: Window::new(WINDOW),
            progress: Progress::new(0),
            backlog: VecDeque::new(),
            history: VecDeque::new(),
            jobs: Vec::new(),
            next_job: 1,
            idle_until: None,
            saved_cursor: 0,
            last_seq: 0,
            realtime_after: 0,
            settings,
        }
    }

    pub fn stats(&self) -> Arc<UplinkStats> {
        self.stats.clone()
    }

    /// Uploads until `shutdown` turns true (or its sender is dropped): connects, runs a
    /// session, and after a lost connection waits a backoff and connects again.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        if !self.start(&mut shutdown).await {
            return;
        }
        tracing::info!(sink = %self.settings.name, address = %self.settings.address, cursor = self.saved_cursor, "hj212 uplink started");
        while !stop_requested(&shutdown) {
            // Set at every attempt, not only when a connection ends: a platform down since
            // start shows 0, and the gauge is renewed before /metrics drops it as idle.
            self.stats.set_connected(false);
            let connect = tokio::time::timeout(
                self.settings.ack_timeout.max(Duration::from_secs(1)),
                tokio::net::TcpStream::connect(self.settings.address.as_str()),
            )
            .await;
            let stream = match connect {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    let delay = self.backoff.next_delay();
                    tracing::warn!(sink = %self.settings.name, address = %self.settings.address, "cannot connect, retrying in {delay:?}: {e}");
                    if pause(delay, &mut shutdown).await {
                        break;
                    }
                    continue;
                }
                Err(_) => {
                    let delay = self.backoff.next_delay();
                    tracing::warn!(sink = %self.settings.name, address = %self.settings.address, "no connection within the ack timeout, retrying in {delay:?}");
                    if pause(delay, &mut shutdown).await {
                        break;
                    }
                    continue;
                }
            };
            // Small packets, each awaited by the platform: do not let Nagle hold them.
            let _ = stream.set_nodelay(true);
            tracing::info!(sink = %self.settings.name, address = %self.settings.address, "connected to the platform");
            self.stats.set_connected(true);
            let end = self.session(stream, &mut shutdown).await;
            self.stats.set_connected(false);
            self.drop_perishable();
            match end {
                super::session::End::Stopped => break,
                super::session::End::Lost(reason) => {
                    self.stats.reconnecting();
                    let delay = self.backoff.next_delay();
                    tracing::warn!(sink = %self.settings.name, "connection lost, reconnecting in {delay:?}: {reason}");
                    if pause(delay, &mut shutdown).await {
                        break;
                    }
                }
            }
        }
        self.save_cursor().await;
        tracing::info!(sink = %self.settings.name, cursor = self.saved_cursor, "hj212 uplink stopped");
    }

    /// Registers the sink and reads its cursor; false if asked to stop first.
    async fn start(&mut self, shutdown: &mut watch::Receiver<bool>) -> bool {
        loop {
            let name = self.settings.name.clone();
            let registered = self
                .store
                .call(move |store| {
                    store.register_sink(&name)?;
                    Ok::<_, StoreError>((store.cursor(&name)?, store.last_seq()?))
                })
                .await;
            match registered {
                Ok(Ok((cursor, last_seq))) => {
                    self.progress = Progress::new(cursor);
                    self.saved_cursor = cursor;
                    self.last_seq = last_seq;
                    // Real-time data starts with what arrives from now on.
                    self.realtime_after = last_seq;
                    self.stats.set_progress(cursor, last_seq);
                    return true;
                }
                Err(StoreError::WriterClosed) => return false,
                Ok(Err(e)) | Err(e) => {
                    let delay = self.backoff.next_delay();
                    tracing::error!(sink = %self.settings.name, "cannot register with the store, retrying in {delay:?}: {e}");
                    if pause(delay, shutdown).await {
                        return false;
                    }
                }
            }
        }
    }

    /// After a connection ends: real-time and history uploads are dropped, backlog uploads stay
    /// to be sent again.
    fn drop_perishable(&mut self) {
        let dropped = self.window.reconnected();
        if !self.jobs.is_empty() || !dropped.is_empty() {
            tracing::debug!(sink = %self.settings.name, uploads = dropped.len() + self.history.len(), pulls = self.jobs.len(), "dropping real-time and history uploads of the lost connection");
        }
        self.history.clear();
        self.jobs.clear();
    }

    /// Moves uploads into the window while it has room, reading the store when the backlog
    /// queue runs dry.
    pub(super) async fn fill(&mut self) {
        let mut reads = 0;
        while self.window.has_room() {
            if let Some(upload) = self.history.pop_front() {
                self.window.push(upload);
                continue;
            }
            if let Some(upload) = self.backlog.pop_front() {
                self.window.push(upload);
                continue;
            }
            if self.idle_until.is_some_and(|t| Instant::now() < t) {
                return;
            }
            if reads == READS_PER_FILL {
                // Records that yield no upload (readings) can run long: let the session answer
                // the platform in between, and come back at once.
                self.idle_until = Some(Instant::now());
                return;
            }
            reads += 1;
            self.idle_until = None;
            if !self.read_backlog().await {
                self.idle_until = Some(Instant::now() + POLL);
                return;
            }
        }
    }

    /// Reads the next batch into backlog uploads; false when there was nothing new (or the
    /// store could not be read).
    async fn read_backlog(&mut self) -> bool {
        let after = self.progress.read_to();
        let batch = match self.reader.read_after(after, BATCH).await {
            Ok(batch) => batch,
            Err(e) => {
                tracing::error!(sink = %self.settings.name, "cannot read the store: {e}");
                return false;
            }
        };
        self.last_seq = batch.last_seq;
        if batch.records.is_empty() {
            self.stats
                .set_progress(self.progress.cursor(), self.last_seq);
            return false;
        }
        let full = batch.records.len() >= BATCH;
        let (take, read_to) = complete_prefix(&batch.records, full);
        let wanted = batch.records[..take].iter().filter(|s| {
            self.settings.kinds.contains(&s.record.kind)
                && self.settings.mn_of(&s.record.stack).is_some()
        });
        let groups = group_periods(wanted);
        let mut firsts = Vec::with_capacity(groups.len());
        for group in &groups {
            if let Some(upload) = self.backlog_upload(group).await {
                firsts.push(group.first_seq());
                self.backlog.push_back(upload);
            }
        }
        // parameter changes of the uploaded points go as 3020 run-log entries
        for stored in &batch.records[..take] {
            let Some(entry) = AuditEntry::from_record(&stored.record) else {
                continue;
            };
            if let Some(upload) = self.info_upload(&stored.record.stack, &entry, stored.seq) {
                firsts.push(stored.seq);
                self.backlog.push_back(upload);
            }
        }
        self.progress.read(read_to, firsts);
        self.stats
            .set_progress(self.progress.cursor(), self.last_seq);
        true
    }

    /// The upload of one period; a period that cannot be encoded goes to the dead-letter table
    /// instead (it would otherwise hold the cursor forever).
    async fn backlog_upload(&mut self, group: &PeriodGroup<'_>) -> Option<Upload> {
        let first_seq = group.first_seq();
        match self.upload_of(group, Purpose::Backlog { first_seq }) {
            Ok(upload) => Some(upload),
            Err(reason) => {
                tracing::error!(sink = %self.settings.name, seq = first_seq, "cannot encode an upload, it goes to the dead-letter table: {reason}");
                let payload = format!("{:?}", group.records).into_bytes();
                let reason = format!("seq {first_seq}: {reason}");
                if let Err(e) = self
                    .store
                    .append_dead_letter(&self.settings.name, &reason, payload, (self.clock)())
                    .await
                {
                    tracing::error!(sink = %self.settings.name, "cannot record the dead letter: {e}");
                }
                None
            }
        }
    }

    /// The 3020 upload of an audit entry on `point`; `None` when the point is not uploaded
    /// here. An entry that cannot be encoded is logged and passed over (its text is cleaned of
    /// delimiters, so only a broken header can fail, and that fails every upload).
    fn info_upload(&mut self, point: &str, entry: &AuditEntry, seq: u64) -> Option<Upload> {
        let mn = self.settings.mn_of(point)?.to_string();
        let header = self.settings.header(&mn, true);
        let qn = self.qns.next((self.clock)(), self.settings.offset);
        let packet = info_packet(&header, &qn, entry, self.settings.offset);
        let (qns, clock, offset) = (&mut self.qns, &self.clock, self.settings.offset);
        match to_wire(&packet, || qns.next(clock(), offset)) {
            Ok(parts) => Some(Upload {
                cn: cn_label(packet.cn.code()),
                parts,
                purpose: Purpose::Backlog { first_seq: seq },
            }),
            Err(e) => {
                tracing::error!(sink = %self.settings.name, seq, "cannot encode the 3020 upload of a parameter change: {e}");
                None
            }
        }
    }

    pub(super) fn upload_of(
        &mut self,
        group: &PeriodGroup<'_>,
        purpose: Purpose,
    ) -> Result<Upload, UploadError> {
        let mn = self
            .settings
            .mn_of(&group.point)
            .ok_or_else(|| UploadError::NoMn(group.point.to_string()))?;
        let header = self.settings.header(mn, true);
        let qn = self.qns.next((self.clock)(), self.settings.offset);
        let encoded = period_packet(&header, &qn, group, self.settings.offset);
        self.count_left_out(&group.point, &encoded.left_out);
        if !encoded.has_factors() {
            return Err(UploadError::NothingConvertible {
                point: group.point.to_string(),
                left_out: format!("{:?}", encoded.left_out),
            });
        }
        let packet = encoded.packet;
        let (qns, clock, offset) = (&mut self.qns, &self.clock, self.settings.offset);
        let parts = to_wire(&packet, || qns.next(clock(), offset))?;
        Ok(Upload {
            cn: cn_label(packet.cn.code()),
            parts,
            purpose,
        })
    }

    /// The 2011 uploads of this tick: the latest reading of each quantity of each point among
    /// the readings committed since the last tick.
    pub(super) async fn realtime_uploads(&mut self) -> Vec<Upload> {
        let mut latest: HashMap<(Arc<str>, Quantity), Record> = HashMap::new();
        loop {
            let batch = match self.reader.read_after(self.realtime_after, BATCH).await {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::error!(sink = %self.settings.name, "cannot read readings for real-time data: {e}");
                    break;
                }
            };
            let Some(last) = batch.records.last().map(|s| s.seq) else {
                break;
            };
            self.realtime_after = last;
            for Stored { record, .. } in batch.records {
                let Some(quantity) = record.quantity else {
                    continue;
                };
                if record.kind != RecordKind::Reading
                    || self.settings.mn_of(&record.stack).is_none()
                {
                    continue;
                }
                let key = (record.stack.clone(), quantity);
                if latest.get(&key).is_none_or(|r| r.ts <= record.ts) {
                    latest.insert(key, record);
                }
            }
            if last >= batch.last_seq {
                break;
            }
        }
        let mut uploads = Vec::new();
        for (point, mn) in self.settings.points.clone() {
            let mut readings: Vec<&Record> = latest
                .iter()
                .filter(|((p, _), _)| **p == *point)
                .map(|(_, r)| r)
                .collect();
            readings.sort_by_key(|r| r.quantity.map(|q| q.name()));
            let header = self.settings.header(&mn, self.settings.realtime_ack);
            let qn = self.qns.next((self.clock)(), self.settings.offset);
            let Some(encoded) = realtime_packet(&header, &qn, &readings, self.settings.offset)
            else {
                continue;
            };
            self.count_left_out(&point, &encoded.left_out);
            if !encoded.has_factors() {
                continue;
            }
            let (qns, clock, offset) = (&mut self.qns, &self.clock, self.settings.offset);
            match to_wire(&encoded.packet, || qns.next(clock(), offset)) {
                Ok(parts) => uploads.push(Upload {
                    cn: cn_label(2011),
                    parts,
                    purpose: Purpose::Realtime,
                }),
                Err(e) => {
                    tracing::warn!(sink = %self.settings.name, point = %point, "cannot encode real-time data: {e}")
                }
            }
        }
        uploads
    }

    /// Counts and logs the factor groups an upload left out: for want of a unit conversion,
    /// or a value that does not fit its code's data type.
    fn count_left_out(&self, point: &str, left_out: &[LeftOut]) {
        for skipped in left_out {
            match skipped {
                LeftOut::Unconvertible { quantity, unit } => {
                    self.stats.unconvertible(*quantity);
                    let unit = unit.map_or("none", |u| u.symbol());
                    tracing::warn!(sink = %self.settings.name, point, quantity = %quantity, unit, "value left out of an HJ 212 upload: no exact conversion to its HJ 212 unit");
                }
                LeftOut::OutOfType {
                    quantity,
                    field,
                    error,
                } => {
                    self.stats.out_of_type(*quantity);
                    tracing::warn!(sink = %self.settings.name, point, quantity = %quantity, field = %field, %error, "value left out of an HJ 212 upload: it does not fit its code's data type");
                }
            }
        }
    }

    /// Records the cursor in the store when acks moved it.
    pub(super) async fn save_cursor(&mut self) {
        let cursor = self.progress.cursor();
        if cursor <= self.saved_cursor {
            return;
        }
        match self.store.set_cursor(&self.settings.name, cursor).await {
            Ok(()) => {
                self.saved_cursor = cursor;
                self.stats.set_progress(cursor, self.last_seq.max(cursor));
            }
            Err(e) => {
                tracing::error!(sink = %self.settings.name, cursor, "cannot record the cursor (the uploads will be sent again after a restart): {e}")
            }
        }
    }
}

/// CN as a static label for metrics.
pub(super) fn cn_label(code: u16) -> &'static str {
    match code {
        1011 => "1011",
        2011 => "2011",
        2031 => "2031",
        2051 => "2051",
        2061 => "2061",
        3020 => "3020",
        9011 => "9011",
        9012 => "9012",
        _ => "other",
    }
}
