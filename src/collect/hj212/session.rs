//! One connection from a data logger (a TCP socket or a serial port): frames packets out of
//! the byte stream, checks who sent them, hands uploads to the pipeline, acks each once the
//! pipeline's receipt says it is committed, and asks for the history a hole in the data
//! calls for.
//!
//! Packets are handled one after the other, so a logger sees its acks in the order it sent
//! its uploads; throughput comes from many connections committing together (the pipeline
//! commits every batch queued at that moment in one transaction). A bad packet is
//! counted, logged with the peer and its stream offset, and skipped: it never takes the
//! packets around it down with it.
//!
//! Replies, following HJ 212-2017's roles (the platform answers, the logger retries):
//! - an upload with the Flag A bit set gets its 9014 (Table C.14: same QN, `CP=&&&&`) only
//!   after its records are committed;
//! - a split upload (PNUM/PNO) is taken as Table C.50 sends it: every part has its own QN and
//!   gets its own 9014; parts are joined by MN, CN, DataTime and PNUM in any order, a resent
//!   part is acked again and taken once, and the whole upload is committed once, before the
//!   part that completed it is acked. The logger waits for each part's 9014 before it sends
//!   the next (C.50 steps 5-8), so the parts before the last are acked when held, not when
//!   committed: a bureau that stops between two parts loses the parts it held, and the
//!   upload is counted as incomplete. Parts missing after `PART_TIMEOUT` are counted too;
//! - a minute, hour or day upload whose DataTime is not the start of its period (C.16-C.18:
//!   DataTime is "一个时间段的开始时间点") is refused with 9011 QnRtn=2 (request refused,
//!   Table 7) under its QN, and never stored as an overlapping period;
//! - an upload whose DataTime lies outside [now − `data_time_horizon`, now +
//!   `[ingest] future_tolerance`] (a logger clock at 1970 or 2099) is refused the same way,
//!   before anything is stored, so it never moves the history pulls;
//! - an upload asking for a 9014 that cannot be written (a QN longer than the 20 characters
//!   the encoder allows; HJ 212-2017's data segment gives QN as `YYYYMMDDhhmmsszzz`, 17) is
//!   refused before it is stored: stored and never acked, the logger would send it again
//!   forever, each copy stored again;
//! - a bad CRC, an unknown MN, a wrong password, an unsupported command or unreadable data
//!   get no reply at all: a missing 9014 is what makes a logger send again (after the plant
//!   fixes its settings). Each is logged with the packet, its password masked; wrong
//!   passwords and unknown MNs are throttled (see [`super::throttle`]);
//! - 9011/9012 from a logger answer our history requests and are only logged.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use crate::collect::batch::{Batch, IngestPort, Origin};
use crate::model::time::Clock;
use crate::model::Timestamp;
use crate::protocol::hj212::{
    masked, CommandCode, DecodeErrorKind, Frame, FrameError, Framer, Incomplete, Packet, Pushed,
    Reassembler,
};
use crate::store::{Query, RecordKind, Store, StoreError, StoreHandle};

use super::deadline::PacketDeadline;
use super::devices::{Device, Devices};
use super::gaps::GapTracker;
use super::info;
use super::records::{kind_of, not_a_period_start, records_of, ChannelNames};
use super::reply;
use super::stats::{self, Reject};
use super::throttle::AuthThrottle;

/// What every connection of one listener shares.
pub struct Context {
    /// The loggers that may upload, replaced whole when a reload changes the registry: each
    /// packet is checked against the current set, so a changed password applies from the
    /// logger's next packet.
    pub devices: watch::Sender<Arc<Devices>>,
    /// Where uploads go: the current pipeline.
    pub ingest: IngestPort,
    /// Read only, to find the newest stored periods when pulling history.
    pub store: StoreHandle,
    /// `None` when history pulls are off.
    pub gaps: Option<Mutex<GapTracker>>,
    pub history_max: Duration,
    /// Which DataTimes an upload may carry.
    pub data_time: DataTimeWindow,
    /// Password guessing, slowed and locked out per address and MN.
    pub throttle: Mutex<AuthThrottle>,
    pub clock: Clock,
}

impl Context {
    /// The loggers as they are now.
    pub fn devices(&self) -> Arc<Devices> {
        self.devices.borrow().clone()
    }

    pub fn throttle(&self) -> MutexGuard<'_, AuthThrottle> {
        self.throttle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An upload's DataTime must lie within [now − `horizon`, now + `tolerance`].
#[derive(Debug, Clone, Copy)]
pub struct DataTimeWindow {
    pub horizon: Duration,
    pub tolerance: Duration,
}

impl DataTimeWindow {
    fn admits(&self, ts: Timestamp, now: Timestamp) -> bool {
        now.minus(self.horizon) <= ts && ts <= now.plus(self.tolerance)
    }
}

/// Time limits of a TCP connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Closed after this long without a byte.
    pub idle: Duration,
    /// See [`PacketDeadline`].
    pub packet_deadline: Duration,
}

/// Split messages one connection may have half-received; a logger sends one at a time.
const MAX_PENDING_MESSAGES: usize = 4;
const MAX_PENDING_PARTS: usize = 256;
/// How long the parts of a split upload may take to arrive; HJ 212-2017 Table 1 gives a
/// sender 5 s × 3 resends per part by default, so this leaves room for many parts.
const PART_TIMEOUT: Duration = Duration::from_secs(300);
const READ_BUFFER: usize = 8192;
/// Characters of a refused packet shown in its log line.
const LOGGED_CHARS: usize = 300;

/// Serves one connection until the peer closes it, it stays silent for `limits.idle`, a
/// packet misses `limits.packet_deadline`, its address is locked out, a write fails, or
/// `shutdown` turns true (after finishing the packets already read). `source` is the
/// address throttling counts by (none on a serial line).
pub async fn serve<S>(
    stream: S,
    peer: &str,
    source: Option<IpAddr>,
    context: &Context,
    limits: Option<Limits>,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut session = Session {
        peer,
        context,
        framer: Framer::new(),
        reassembler: Reassembler::new(MAX_PENDING_MESSAGES, MAX_PENDING_PARTS, PART_TIMEOUT),
        channels: ChannelNames::new(),
        discarded: 0,
        ingest: context.ingest.clone(),
        source,
        auth_failures: 0,
        authenticated: None,
        online: None,
        locked_out: false,
    };
    let mut registry = context.devices.subscribe();
    let mut buffer = vec![0u8; READ_BUFFER];
    let mut deadline = limits.map(|l| PacketDeadline::new(l.packet_deadline, Instant::now()));
    loop {
        let buffered = session.framer.buffered() > 0;
        let wait = limits.map(|limits| {
            deadline
                .as_ref()
                .and_then(|d| d.remaining(buffered, Instant::now()))
                .map_or(limits.idle, |remaining| remaining.min(limits.idle))
        });
        let read = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => {
                session.abandon_parts();
                return;
            }
            Ok(()) = registry.changed() => {
                if session.logger_removed() {
                    stats::logger_removed();
                    tracing::info!(peer, mn = ?session.authenticated, "HJ 212 connection closed: its logger was removed from the registry");
                    session.abandon_parts();
                    return;
                }
                continue;
            }
            read = read_within(&mut reader, &mut buffer, wait) => read,
        };
        let n = match read {
            Ok(0) => {
                tracing::debug!(peer, "HJ 212 peer closed the connection");
                session.abandon_parts();
                return;
            }
            Ok(n) => n,
            Err(ReadEnd::Idle(_))
                if buffered && deadline.as_ref().is_some_and(|d| d.passed(Instant::now())) =>
            {
                session.missed_deadline(limits);
                return;
            }
            Err(ReadEnd::Idle(after)) => {
                tracing::info!(peer, ?after, "HJ 212 connection idle, closing it");
                session.abandon_parts();
                return;
            }
            Err(ReadEnd::Io(error)) => {
                tracing::info!(peer, %error, "HJ 212 connection lost");
                session.abandon_parts();
                return;
            }
        };
        let read_at = Instant::now();
        session.framer.push(&buffer[..n]);
        let (mut valid, mut refused) = (false, false);
        while let Some(result) = session.framer.next_packet() {
            let handled = match result {
                Ok(frame) => {
                    valid = true;
                    session.handle(frame, &mut writer).await
                }
                Err(error) => {
                    refused = true;
                    session.refuse_frame(&error);
                    Ok(())
                }
            };
            if let Err(error) = handled {
                tracing::info!(peer, %error, "HJ 212 connection lost while replying");
                session.abandon_parts();
                return;
            }
            if session.locked_out {
                tracing::info!(peer, "HJ 212 connection closed: its address is locked out");
                session.abandon_parts();
                return;
            }
        }
        let garbage = session.count_garbage();
        let leftover = session.framer.buffered() > 0 || garbage || refused;
        if let Some(deadline) = &mut deadline {
            if deadline.read(read_at, valid, leftover) {
                session.missed_deadline(limits);
                return;
            }
        }
    }
}

enum ReadEnd {
    Idle(Duration),
    Io(std::io::Error),
}

async fn read_within<R: AsyncRead + Unpin>(
    reader: &mut R,
    buffer: &mut [u8],
    idle: Option<Duration>,
) -> Result<usize, ReadEnd> {
    match idle {
        Some(limit) => match tokio::time::timeout(limit, reader.read(buffer)).await {
            Ok(read) => read.map_err(ReadEnd::Io),
            Err(_) => Err(ReadEnd::Idle(limit)),
        },
        None => reader.read(buffer).await.map_err(ReadEnd::Io),
    }
}

struct Session<'a> {
    peer: &'a str,
    context: &'a Context,
    framer: Framer,
    reassembler: Reassembler,
    channels: ChannelNames,
    /// Garbage bytes already reported.
    discarded: u64,
    ingest: IngestPort,
    /// The address throttling counts by; none on a serial line.
    source: Option<IpAddr>,
    /// Wrong passwords and unknown MNs on this connection.
    auth_failures: u32,
    /// The MN last authenticated on this connection, already told to the throttle.
    authenticated: Option<Arc<str>>,
    /// The logger that last authenticated here, counted online while the connection lasts.
    online: Option<stats::Online>,
    /// The address got locked out: the connection ends after this packet.
    locked_out: bool,
}

impl Session<'_> {
    async fn handle<W: AsyncWrite + Unpin>(
        &mut self,
        frame: Frame,
        writer: &mut W,
    ) -> std::io::Result<()> {
        let received = Instant::now();
        let peer = self.peer;
        let offset = frame.offset;
        let text = || masked(&frame.raw, LOGGED_CHARS);
        let packet = frame.packet;
        stats::packet(packet.cn);
        if matches!(
            packet.cn,
            CommandCode::RequestResponse | CommandCode::ExecutionResult
        ) {
            tracing::info!(peer, mn = ?packet.mn, cn = %packet.cn, qn = ?packet.qn, cp = ?packet.cp.groups, "HJ 212 logger answered a request");
            return Ok(());
        }
        let context = self.context;
        let devices = context.devices();
        let device = packet.mn.as_deref().and_then(|mn| devices.get(mn));
        let refusal = match device {
            _ if self.source_locked() => Some(Reject::LockedOut),
            None => Some(Reject::UnknownMn),
            Some(device) if self.mn_locked(&device.mn) => Some(Reject::LockedOut),
            Some(device) if packet.pw.as_deref() != Some(device.password.expose()) => {
                Some(Reject::BadPassword)
            }
            Some(_) => None,
        };
        let Some(device) = device.filter(|_| refusal.is_none()) else {
            let reason = refusal.unwrap_or(Reject::UnknownMn);
            self.refuse_auth(reason, device, offset, &packet, &text)
                .await;
            return Ok(());
        };
        self.authenticated(&device.mn);
        if packet.cn == CommandCode::GetInfo {
            // logs, states and parameters: to the audit trail, then the 9014
            let ack = (packet.flag.is_some_and(|f| f.ack_required))
                .then(|| reply::data_response(&packet));
            return match info::store_information(&context.store, device, &packet).await {
                Ok(entries) => {
                    stats::committed(entries);
                    self.write_ack(ack, device, received, writer).await
                }
                Err(error) => {
                    stats::rejected(Reject::BadData);
                    tracing::warn!(peer, offset, mn = %device.mn, %error, packet = %text(), "HJ 212 3020 information not stored, not acked");
                    Ok(())
                }
            };
        }
        let Some((kind, period)) = kind_of(packet.cn) else {
            stats::rejected(Reject::UnsupportedCommand);
            tracing::warn!(peer, offset, mn = %device.mn, cn = %packet.cn, packet = %text(), "HJ 212 command not handled by the listener, ignored");
            return Ok(());
        };
        let ack_required = packet.flag.is_some_and(|f| f.ack_required);
        if let Some(error) = period.and_then(|p| not_a_period_start(&packet, p)) {
            stats::rejected(Reject::NotPeriodStart);
            tracing::warn!(peer, offset, mn = %device.mn, %error, packet = %text(), "HJ 212 upload refused: not stored as an overlapping period");
            return self.answer_refused(&packet, device, writer).await;
        }
        // The 9014 of this very packet: a part is acked under its own QN (Table C.50).
        let ack = match ack_required.then(|| reply::data_response(&packet)) {
            Some(Err(error)) => {
                stats::rejected(Reject::Unackable);
                tracing::warn!(peer, offset, mn = %device.mn, %error, packet = %text(), "HJ 212 upload refused: its 9014 cannot be written, so it is not stored");
                return Ok(());
            }
            ack => ack,
        };
        let pushed = self.reassembler.push(packet, received);
        self.count_incomplete();
        let whole = match pushed {
            Ok(Pushed::Whole(whole)) => whole,
            Ok(Pushed::Held) => {
                tracing::debug!(peer, mn = %device.mn, "HJ 212 part held until the others arrive");
                return self.write_ack(ack, device, received, writer).await;
            }
            Ok(Pushed::Repeat) => {
                stats::repeated_part();
                tracing::info!(peer, mn = %device.mn, packet = %text(), "HJ 212 part received again (a lost 9014?), acked again and taken once");
                return self.write_ack(ack, device, received, writer).await;
            }
            Err(error) => {
                stats::rejected(Reject::Split);
                tracing::warn!(peer, offset, mn = %device.mn, %error, packet = %text(), "HJ 212 split packet refused");
                return Ok(());
            }
        };
        let records = match records_of(
            &whole,
            &device.stack,
            &device.mn,
            device.zone,
            &mut self.channels,
        ) {
            Ok(records) => records,
            Err(error) => {
                stats::rejected(Reject::BadData);
                tracing::warn!(peer, offset, mn = %device.mn, %error, packet = %text(), "HJ 212 upload not readable, not acked");
                return Ok(());
            }
        };
        let now = (context.clock)();
        if let Some(record) = records
            .iter()
            .find(|r| !context.data_time.admits(r.ts, now))
        {
            stats::rejected(Reject::DataTime);
            tracing::warn!(peer, offset, mn = %device.mn, data_time = %record.ts, %now, horizon = %humantime::format_duration(context.data_time.horizon), tolerance = %humantime::format_duration(context.data_time.tolerance), packet = %text(), "HJ 212 upload refused: its DataTime is outside the window the listener takes, nothing of it stored");
            return self.answer_refused(&whole, device, writer).await;
        }
        let mut period_start = records.first().map(|r| r.ts);
        let count = records.len();
        if count > 0 {
            let (batch, receipt) = Batch {
                records,
                ..Batch::new(Origin::Hj212 {
                    mn: device.mn.clone(),
                })
            }
            .with_receipt();
            let receipt = match self.ingest.send(batch).await {
                Ok(()) => receipt.await.ok(),
                Err(_) => None,
            };
            let Some(receipt) = receipt else {
                stats::rejected(Reject::Store);
                tracing::error!(peer, mn = %device.mn, "HJ 212 upload not committed (cemsd is stopping), not acked");
                return Ok(());
            };
            if receipt.future.is_some() {
                // dead-lettered, not stored: a wrong logger clock must not move the newest
                // period the history pulls start from
                period_start = None;
            }
            stats::committed(count);
        }
        self.write_ack(ack, device, received, writer).await?;
        if let Some(ts) = period_start {
            self.pull_history(device, kind, ts, &whole, writer).await?;
        }
        Ok(())
    }

    /// 9011 QnRtn=2 (request refused) to an upload read but not taken, when it asked for an
    /// answer: the logger stops resending what would be refused again.
    async fn answer_refused<W: AsyncWrite + Unpin>(
        &self,
        upload: &Packet,
        device: &Device,
        writer: &mut W,
    ) -> std::io::Result<()> {
        if !upload.flag.is_some_and(|f| f.ack_required) {
            return Ok(());
        }
        match reply::request_refused(upload) {
            Ok(refusal) => writer.write_all(&refusal).await,
            Err(error) => {
                tracing::warn!(peer = self.peer, mn = %device.mn, %error, "cannot answer this HJ 212 upload");
                Ok(())
            }
        }
    }

    /// The logger this connection authenticated as is no longer in the registry.
    fn logger_removed(&self) -> bool {
        self.authenticated
            .as_ref()
            .is_some_and(|mn| self.context.devices().get(mn).is_none())
    }

    fn source_locked(&self) -> bool {
        self.source.is_some_and(|source| {
            self.context
                .throttle()
                .source_locked(source, Instant::now())
        })
    }

    fn mn_locked(&self, mn: &str) -> bool {
        self.source.is_some_and(|source| {
            self.context
                .throttle()
                .mn_locked(mn, source, Instant::now())
        })
    }

    /// Counts `mn` online while this connection lasts, and tells the throttle once per
    /// connection and MN that `mn` authenticated from here.
    fn authenticated(&mut self, mn: &Arc<str>) {
        if self.online.as_ref().is_none_or(|o| o.mn() != mn) {
            self.online = Some(stats::Online::new(mn.clone()));
        }
        let Some(source) = self.source else {
            return;
        };
        if self.authenticated.as_ref() != Some(mn) {
            self.context.throttle().succeeded(mn, source);
            self.authenticated = Some(mn.clone());
        }
    }

    /// Counts a refusal of authentication, logs it unless its address was logged within the
    /// last minute, and waits as the throttle says before the next packet is read.
    async fn refuse_auth(
        &mut self,
        reason: Reject,
        device: Option<&Device>,
        offset: usize,
        packet: &Packet,
        text: &impl Fn() -> String,
    ) {
        stats::rejected(reason);
        stats::auth_failure(reason);
        let peer = self.peer;
        let what = match reason {
            Reject::UnknownMn => "HJ 212 packet from an MN not configured, ignored",
            Reject::LockedOut => {
                "HJ 212 packet from a locked-out address or for a locked-out MN, ignored unchecked"
            }
            _ => "HJ 212 packet with a wrong password, ignored",
        };
        let Some(source) = self.source else {
            tracing::warn!(peer, offset, mn = ?packet.mn, cn = %packet.cn, packet = %text(), "{what}");
            return;
        };
        self.auth_failures = self.auth_failures.saturating_add(1);
        let failure = self.context.throttle().failed(
            device.map(|d| &d.mn),
            source,
            self.auth_failures,
            Instant::now(),
        );
        match failure.log {
            Some(0) => {
                tracing::warn!(peer, offset, mn = ?packet.mn, cn = %packet.cn, packet = %text(), "{what}")
            }
            Some(unlogged) => {
                tracing::warn!(peer, offset, mn = ?packet.mn, cn = %packet.cn, packet = %text(), "{what}; {unlogged} more refusals from {source} in the last minute")
            }
            None => {}
        }
        if failure.source_locked {
            stats::lockout("source");
            tracing::warn!(peer, %source, "HJ 212 authentication failures: address locked out");
        }
        if failure.mn_locked {
            stats::lockout("mn");
            tracing::warn!(peer, mn = ?packet.mn, "HJ 212 authentication failures: MN locked out, except from the addresses it last authenticated from");
        }
        self.locked_out = failure.source_locked || self.source_locked();
        if !self.locked_out {
            tokio::time::sleep(failure.delay).await;
        }
    }

    /// Bytes kept coming without making a valid packet for `packet_deadline`.
    fn missed_deadline(&mut self, limits: Option<Limits>) {
        stats::rejected(Reject::PacketDeadline);
        tracing::warn!(peer = self.peer, buffered = self.framer.buffered(), deadline = ?limits.map(|l| l.packet_deadline), "HJ 212 connection closed: no complete packet within the packet deadline");
        self.abandon_parts();
    }

    async fn write_ack<W: AsyncWrite + Unpin>(
        &self,
        ack: Option<Result<Vec<u8>, crate::protocol::hj212::EncodeError>>,
        device: &Device,
        received: Instant,
        writer: &mut W,
    ) -> std::io::Result<()> {
        match ack {
            Some(Ok(ack)) => {
                writer.write_all(&ack).await?;
                stats::acked(received.elapsed());
            }
            Some(Err(error)) => {
                tracing::warn!(peer = self.peer, mn = %device.mn, %error, "cannot ack this HJ 212 upload")
            }
            None => {}
        }
        Ok(())
    }

    /// Counts and logs the split uploads given up on.
    fn count_incomplete(&mut self) {
        let dropped = self.reassembler.take_incomplete();
        self.report_incomplete(dropped);
    }

    /// The connection ends: split uploads still missing parts will not complete.
    fn abandon_parts(&mut self) {
        let dropped = self.reassembler.abandon();
        self.report_incomplete(dropped);
    }

    fn report_incomplete(&self, dropped: Vec<Incomplete>) {
        for incomplete in dropped {
            stats::rejected(Reject::SplitIncomplete);
            tracing::warn!(peer = self.peer, upload = %incomplete.key, received = ?incomplete.received, "HJ 212 split upload incomplete: its missing parts did not arrive in time, nothing of it stored");
        }
    }

    async fn pull_history<W: AsyncWrite + Unpin>(
        &self,
        device: &Device,
        kind: RecordKind,
        ts: Timestamp,
        upload: &Packet,
        writer: &mut W,
    ) -> std::io::Result<()> {
        let Some(gaps) = &self.context.gaps else {
            return Ok(());
        };
        let lock = || gaps.lock().unwrap_or_else(|e| e.into_inner());
        if lock().needs_warm_up(&device.mn, kind) {
            let (mn, reach) = (device.mn.clone(), self.context.history_max);
            let newest = self
                .context
                .store
                .call(move |store| newest_before(store, &mn, kind, ts, reach))
                .await;
            match newest {
                Ok(Ok(newest)) => lock().warm_up(&device.mn, kind, newest),
                Ok(Err(error)) | Err(error) => {
                    tracing::warn!(mn = %device.mn, %error, "cannot look up earlier HJ 212 uploads; holes before this one are not pulled");
                    lock().warm_up(&device.mn, kind, None);
                }
            }
        }
        let Some(pull) = lock().committed(&device.mn, kind, ts) else {
            return Ok(());
        };
        let now = (self.context.clock)();
        match reply::history_request(
            &pull,
            upload.st,
            &device.mn,
            device.password.expose(),
            device.zone,
            now,
        ) {
            Ok(request) => {
                writer.write_all(&request).await?;
                stats::history_pull(pull.cn);
                tracing::info!(peer = self.peer, mn = %device.mn, cn = %pull.cn, begin = %pull.begin, end = %pull.end, "asked an HJ 212 logger for missing periods");
            }
            Err(error) => {
                tracing::warn!(mn = %device.mn, %error, "cannot build an HJ 212 history request")
            }
        }
        Ok(())
    }

    fn refuse_frame(&self, error: &FrameError) {
        let reason = match error.error.kind {
            DecodeErrorKind::BadCrc { .. }
            | DecodeErrorKind::BadCrcDigits
            | DecodeErrorKind::MissingCrc => Reject::Crc,
            DecodeErrorKind::BadLength { .. }
            | DecodeErrorKind::BadLengthDigits
            | DecodeErrorKind::TooLong { .. }
            | DecodeErrorKind::Truncated { .. } => Reject::Length,
            DecodeErrorKind::BadHeader | DecodeErrorKind::NotAPacket { .. } => Reject::Garbage,
            DecodeErrorKind::MissingCpDelimiter
            | DecodeErrorKind::UnknownCommand(_)
            | DecodeErrorKind::MissingField(_)
            | DecodeErrorKind::BadField { .. } => Reject::Syntax,
        };
        stats::rejected(reason);
        tracing::warn!(peer = self.peer, position = error.error.position, error = %error.error, packet = %masked(&error.raw, LOGGED_CHARS), "HJ 212 packet refused");
    }

    /// Counts and logs garbage skipped since the last call; true when there was some.
    fn count_garbage(&mut self) -> bool {
        let discarded = self.framer.discarded_bytes();
        if discarded <= self.discarded {
            return false;
        }
        stats::rejected(Reject::Garbage);
        tracing::warn!(
            peer = self.peer,
            bytes = discarded - self.discarded,
            "bytes that are not HJ 212 packets skipped"
        );
        self.discarded = discarded;
        true
    }
}

/// Start of the newest period of `kind` stored for `mn` before `ts`, at most `reach` back.
fn newest_before(
    store: &Store,
    mn: &str,
    kind: RecordKind,
    ts: Timestamp,
    reach: Duration,
) -> Result<Option<Timestamp>, StoreError> {
    let reach = i64::try_from(reach.as_millis()).unwrap_or(i64::MAX);
    store.newest_ts(&Query {
        kind: Some(kind),
        device: Some(mn.to_string()),
        from: Some(Timestamp(ts.0.saturating_sub(reach))),
        to: Some(ts),
        ..Query::default()
    })
}
