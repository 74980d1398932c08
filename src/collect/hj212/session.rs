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
//! - an upload with the Flag A bit set gets its 9014 only after its records are committed;
//! - a bad CRC, an unknown MN, a wrong password, an unsupported command or unreadable data
//!   get no reply at all: 9011's QnRtn codes answer requests *to* a logger, and a missing
//!   9014 is what makes a logger send again (after the plant fixes its settings);
//! - a split upload (PNUM/PNO) is acked once, by QN, when its last part is committed;
//! - 9011/9012 from a logger answer our history requests and are only logged.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use crate::collect::batch::{Batch, IngestPort, Origin};
use crate::model::time::Clock;
use crate::model::Timestamp;
use crate::protocol::hj212::{
    CommandCode, DecodeErrorKind, Frame, FrameError, Framer, Packet, Reassembler,
};
use crate::store::{Query, RecordKind, Store, StoreError, StoreHandle};

use super::devices::{Device, Devices};
use super::gaps::GapTracker;
use super::records::{kind_of, records_of, ChannelNames};
use super::reply;
use super::stats::{self, Reject};

/// What every connection of one listener shares.
pub struct Context {
    pub devices: Devices,
    /// Where uploads go: the current pipeline.
    pub ingest: IngestPort,
    /// Read only, to find the newest stored periods when pulling history.
    pub store: StoreHandle,
    /// `None` when history pulls are off.
    pub gaps: Option<Mutex<GapTracker>>,
    pub history_max: Duration,
    pub clock: Clock,
}

/// Split messages one connection may have half-received; a logger sends one at a time.
const MAX_PENDING_MESSAGES: usize = 4;
const MAX_PENDING_PARTS: usize = 256;
const READ_BUFFER: usize = 8192;

/// Serves one connection until the peer closes it, it stays silent for `idle`, a write
/// fails, or `shutdown` turns true (after finishing the packets already read).
pub async fn serve<S>(
    stream: S,
    peer: &str,
    context: &Context,
    idle: Option<Duration>,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut session = Session {
        peer,
        context,
        framer: Framer::new(),
        reassembler: Reassembler::new(MAX_PENDING_MESSAGES, MAX_PENDING_PARTS),
        channels: ChannelNames::new(),
        discarded: 0,
        ingest: context.ingest.clone(),
    };
    let mut buffer = vec![0u8; READ_BUFFER];
    loop {
        let read = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => return,
            read = read_within(&mut reader, &mut buffer, idle) => read,
        };
        let n = match read {
            Ok(0) => {
                tracing::debug!(peer, "HJ 212 peer closed the connection");
                return;
            }
            Ok(n) => n,
            Err(ReadEnd::Idle(after)) => {
                tracing::info!(peer, ?after, "HJ 212 connection idle, closing it");
                return;
            }
            Err(ReadEnd::Io(error)) => {
                tracing::info!(peer, %error, "HJ 212 connection lost");
                return;
            }
        };
        session.framer.push(&buffer[..n]);
        while let Some(result) = session.framer.next_packet() {
            let handled = match result {
                Ok(frame) => session.handle(frame, &mut writer).await,
                Err(error) => {
                    session.refuse_frame(&error);
                    Ok(())
                }
            };
            if let Err(error) = handled {
                tracing::info!(peer, %error, "HJ 212 connection lost while replying");
                return;
            }
        }
        session.count_garbage();
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
        let Some(device) = packet.mn.as_deref().and_then(|mn| context.devices.get(mn)) else {
            stats::rejected(Reject::UnknownMn);
            tracing::warn!(peer, offset, mn = ?packet.mn, cn = %packet.cn, "HJ 212 packet from an MN not configured, ignored");
            return Ok(());
        };
        if packet.pw.as_deref() != Some(device.password.expose()) {
            stats::rejected(Reject::BadPassword);
            tracing::warn!(peer, offset, mn = %device.mn, "HJ 212 packet with a wrong password, ignored");
            return Ok(());
        }
        let Some((kind, _)) = kind_of(packet.cn) else {
            stats::rejected(Reject::UnsupportedCommand);
            tracing::warn!(peer, offset, mn = %device.mn, cn = %packet.cn, "HJ 212 command not handled by the listener, ignored");
            return Ok(());
        };
        let whole = match self.reassembler.push(packet) {
            Ok(Some(whole)) => whole,
            Ok(None) => return Ok(()),
            Err(error) => {
                stats::rejected(Reject::Split);
                tracing::warn!(peer, offset, mn = %device.mn, %error, "HJ 212 split packet refused");
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
                tracing::warn!(peer, offset, mn = %device.mn, %error, "HJ 212 upload not readable, not acked");
                return Ok(());
            }
        };
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
        if whole.flag.is_some_and(|f| f.ack_required) {
            match reply::data_response(&whole) {
                Ok(ack) => {
                    writer.write_all(&ack).await?;
                    stats::acked(received.elapsed());
                }
                Err(error) => {
                    tracing::warn!(peer, mn = %device.mn, %error, "cannot ack this HJ 212 upload")
                }
            }
        }
        if let Some(ts) = period_start {
            self.pull_history(device, kind, ts, &whole, writer).await?;
        }
        Ok(())
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
        tracing::warn!(peer = self.peer, position = error.error.position, %error, "HJ 212 packet refused");
    }

    fn count_garbage(&mut self) {
        let discarded = self.framer.discarded_bytes();
        if discarded > self.discarded {
            stats::rejected(Reject::Garbage);
            tracing::warn!(
                peer = self.peer,
                bytes = discarded - self.discarded,
                "bytes that are not HJ 212 packets skipped"
            );
            self.discarded = discarded;
        }
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
