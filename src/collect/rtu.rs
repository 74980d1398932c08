//! Modbus RTU transactions over any byte stream (serial port, pty, TCP socket to a serial
//! device server): one request at a time, with the line's silent intervals kept, stale input
//! discarded before each request, and a reply accepted only if it answers that request.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{sleep_until, timeout, timeout_at, Instant};

use super::link::{ByteStream, Link, TransactionError};
use super::modbus::frame::{
    block_data, classify_skipped, encode_read, scan_reply, Expected, Reply, Scan, MAX_FRAME_LEN,
};
use super::modbus::plan::{BlockData, ReadBlock};
use super::stats::CommEvent;

/// A reply longer than this many frames' worth of bytes means the line is babbling.
const MAX_BUFFERED: usize = 4 * MAX_FRAME_LEN;

/// The least quiet time that ends a drain, so a frame still in flight is caught whole even
/// where the line's own inter-frame time is tiny (RTU over TCP, fast baud rates).
const MIN_DRAIN_QUIET: Duration = Duration::from_millis(10);

/// Longest a drain may take on a line that never goes quiet.
const MAX_DRAIN: Duration = Duration::from_millis(500);

/// Timing of the line an RTU link runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtuTiming {
    /// Wire time of one character; zero where the serial line is not ours to time (RTU over
    /// TCP, where the device server does the serial timing).
    pub char_time: Duration,
    /// Silence kept before each request (the spec's 3.5 character times).
    pub inter_frame: Duration,
    /// Extra pause after a reply before the next request.
    pub turnaround: Duration,
}

impl RtuTiming {
    /// For a socket to a serial device server: no local serial timing at all.
    pub const NETWORK: RtuTiming = RtuTiming {
        char_time: Duration::ZERO,
        inter_frame: Duration::ZERO,
        turnaround: Duration::ZERO,
    };

    fn wire_time(&self, bytes: usize) -> Duration {
        self.char_time
            .saturating_mul(u32::try_from(bytes).unwrap_or(u32::MAX))
    }
}

/// An RTU master on one byte stream.
pub struct RtuLink<S> {
    stream: S,
    timing: RtuTiming,
    /// When the line last carried a byte (for our own requests: when the last byte left).
    quiet_since: Instant,
    broken: bool,
    received: Vec<u8>,
}

impl<S: ByteStream> RtuLink<S> {
    pub fn new(stream: S, timing: RtuTiming) -> RtuLink<S> {
        RtuLink {
            stream,
            timing,
            quiet_since: Instant::now(),
            broken: false,
            received: Vec::with_capacity(MAX_FRAME_LEN),
        }
    }

    pub fn into_inner(self) -> S {
        self.stream
    }

    fn fail(&mut self, error: std::io::Error, events: &mut Vec<CommEvent>) -> TransactionError {
        self.broken = true;
        events.push(CommEvent::IoError);
        TransactionError::Io(error.to_string())
    }

    /// Discards whatever already waits in the input: a late reply, noise, an echo.
    async fn discard_pending(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; MAX_FRAME_LEN];
        let mut discarded = 0;
        // a zero timeout polls the read once: it takes what is there and never waits
        while let Ok(read) = timeout(Duration::ZERO, self.stream.read(&mut chunk)).await {
            match read? {
                0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                n => discarded += n,
            }
        }
        Ok(discarded)
    }

    /// Reads and discards until the line has been silent for a while, so the rest of a
    /// corrupted or unexpected frame cannot be taken for the start of the next reply.
    async fn drain_until_quiet(&mut self) -> std::io::Result<usize> {
        let quiet = self.timing.inter_frame.max(MIN_DRAIN_QUIET);
        let give_up = Instant::now() + MAX_DRAIN;
        let mut chunk = [0u8; MAX_FRAME_LEN];
        let mut discarded = 0;
        loop {
            let until = (Instant::now() + quiet).min(give_up);
            match timeout_at(until, self.stream.read(&mut chunk)).await {
                Err(_) => return Ok(discarded),
                Ok(read) => match read? {
                    0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                    n => {
                        discarded += n;
                        self.quiet_since = Instant::now();
                    }
                },
            }
            if Instant::now() >= give_up {
                return Ok(discarded);
            }
        }
    }

    async fn transact(
        &mut self,
        unit: u8,
        block: &ReadBlock,
        reply_timeout: Duration,
        events: &mut Vec<CommEvent>,
    ) -> Result<BlockData, TransactionError> {
        if self.broken {
            return Err(TransactionError::Io(
                "the link was closed after an error".into(),
            ));
        }
        sleep_until(self.quiet_since + self.timing.inter_frame + self.timing.turnaround).await;
        match self.discard_pending().await {
            Ok(0) => {}
            Ok(n) => events.push(CommEvent::Stale(n)),
            Err(e) => return Err(self.fail(e, events)),
        }

        let request = encode_read(unit, block);
        let expected = Expected::for_read(unit, block);
        let write = async {
            self.stream.write_all(&request).await?;
            self.stream.flush().await
        };
        match timeout(reply_timeout, write).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(self.fail(e, events)),
            Err(_) => {
                let stalled = std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the port did not take the request",
                );
                return Err(self.fail(stalled, events));
            }
        }
        events.push(CommEvent::Request);
        let request_end = Instant::now() + self.timing.wire_time(request.len());
        self.quiet_since = request_end;
        let deadline = request_end + reply_timeout + self.timing.wire_time(expected.reply_len());

        self.received.clear();
        let mut chunk = [0u8; MAX_FRAME_LEN];
        while let Ok(read) = timeout_at(deadline, self.stream.read(&mut chunk)).await {
            let n = match read {
                Ok(0) => return Err(self.fail(std::io::ErrorKind::UnexpectedEof.into(), events)),
                Ok(n) => n,
                Err(e) => return Err(self.fail(e, events)),
            };
            self.received.extend_from_slice(&chunk[..n]);
            self.quiet_since = Instant::now();
            match scan_reply(&self.received, &expected) {
                Scan::Found {
                    reply,
                    at,
                    len,
                    foreign,
                    noise,
                } => {
                    if foreign > 0 {
                        events.push(CommEvent::Foreign(foreign));
                    }
                    if noise > 0 {
                        events.push(CommEvent::Noise(noise));
                    }
                    let trailing = self.received.len() - at - len;
                    if trailing > 0 {
                        events.push(CommEvent::Stale(trailing));
                    }
                    return match reply {
                        Reply::Data(data) => match block_data(block, &data) {
                            BlockData::Missing => {
                                events.push(CommEvent::Garbled);
                                Err(TransactionError::Malformed(format!(
                                    "{} data bytes for {block:?}",
                                    data.len()
                                )))
                            }
                            values => {
                                events.push(CommEvent::Reply);
                                Ok(values)
                            }
                        },
                        Reply::Exception(code) => {
                            events.push(CommEvent::Exception(code));
                            Err(TransactionError::Exception(code))
                        }
                    };
                }
                Scan::BadCrc => {
                    events.push(CommEvent::BadCrc);
                    return self.after_noise(TransactionError::BadCrc, events).await;
                }
                Scan::Incomplete if self.received.len() > MAX_BUFFERED => break,
                Scan::Incomplete => {}
            }
        }

        if self.received.is_empty() {
            events.push(CommEvent::Timeout);
            return Err(TransactionError::Timeout);
        }
        let (foreign, noise) = classify_skipped(&self.received);
        if foreign > 0 {
            events.push(CommEvent::Foreign(foreign));
        }
        if noise == 0 {
            // only answers to something else came: for this request, silence
            events.push(CommEvent::Timeout);
            return Err(TransactionError::Timeout);
        }
        events.push(CommEvent::Noise(noise));
        events.push(CommEvent::Garbled);
        self.after_noise(TransactionError::Garbled, events).await
    }

    /// Lets the line settle after a damaged reply, then reports `error`.
    async fn after_noise(
        &mut self,
        error: TransactionError,
        events: &mut Vec<CommEvent>,
    ) -> Result<BlockData, TransactionError> {
        match self.drain_until_quiet().await {
            Ok(0) => {}
            Ok(n) => events.push(CommEvent::Stale(n)),
            Err(e) => return Err(self.fail(e, events)),
        }
        Err(error)
    }
}

impl<S: ByteStream> Link for RtuLink<S> {
    fn read<'a>(
        &'a mut self,
        unit: u8,
        block: &'a ReadBlock,
        timeout: Duration,
        events: &'a mut Vec<CommEvent>,
    ) -> impl std::future::Future<Output = Result<BlockData, TransactionError>> + Send + 'a {
        self.transact(unit, block, timeout, events)
    }

    fn is_broken(&self) -> bool {
        self.broken
    }
}
