//! Modbus RTU transactions over any byte stream (serial port, pty, TCP socket to a serial
//! device server): one request at a time, with the line's silent intervals kept, stale input
//! discarded before each request, and a reply accepted only if it answers that request.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{sleep_until, timeout, timeout_at, Instant};

use super::link::{ByteStream, Link, TransactionError};
use crate::model::comm::CommEvent;
use crate::protocol::modbus::frame::{
    block_data, classify_skipped, encode_read, scan_reply, Expected, Reply, Scan, MAX_FRAME_LEN,
};
use crate::protocol::modbus::plan::{BlockData, ReadBlock};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::modbus::frame::crc16;
    use crate::protocol::modbus::plan::BlockTable;
    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};

    const TIMEOUT: Duration = Duration::from_millis(200);

    fn holding(start: u16, count: u16) -> ReadBlock {
        ReadBlock {
            table: BlockTable::Holding,
            start,
            count,
        }
    }

    fn reply(unit: u8, words: &[u16]) -> Vec<u8> {
        let mut frame = vec![unit, 3, (words.len() * 2) as u8];
        for w in words {
            frame.extend_from_slice(&w.to_be_bytes());
        }
        let crc = crc16(&frame);
        frame.extend_from_slice(&crc.to_le_bytes());
        frame
    }

    /// 9600 baud, 11-bit characters: 1.146 ms per character, 3.5 characters = 4.01 ms.
    fn timing() -> RtuTiming {
        let char_time = Duration::from_micros(1_146);
        RtuTiming {
            char_time,
            inter_frame: char_time.mul_f64(3.5),
            turnaround: Duration::ZERO,
        }
    }

    async fn request_from(device: &mut DuplexStream) -> Vec<u8> {
        let mut request = [0u8; 8];
        device
            .read_exact(&mut request)
            .await
            .unwrap_or_else(|e| panic!("device read: {e}"));
        request.to_vec()
    }

    async fn send(device: &mut DuplexStream, bytes: &[u8]) {
        device
            .write_all(bytes)
            .await
            .unwrap_or_else(|e| panic!("device write: {e}"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_reply_is_read_and_the_request_is_on_the_wire() {
        let (master, mut device) = duplex(1024);
        let mut link = RtuLink::new(master, timing());
        let device_task = tokio::spawn(async move {
            let request = request_from(&mut device).await;
            send(&mut device, &reply(1, &[0x1CD5, 0x3F8E])).await;
            (request, device)
        });
        let mut events = Vec::new();
        let data = link.read(1, &holding(0, 2), TIMEOUT, &mut events).await;
        assert_eq!(data, Ok(BlockData::Registers(vec![0x1CD5, 0x3F8E])));
        let (request, _device) = device_task.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(request, [1, 3, 0, 0, 0, 2, 0xC4, 0x0B]);
        assert_eq!(events, [CommEvent::Request, CommEvent::Reply]);
    }

    #[tokio::test(start_paused = true)]
    async fn stale_input_is_discarded_before_the_request() {
        let (master, mut device) = duplex(1024);
        let mut link = RtuLink::new(master, timing());
        // a late reply that arrived while nobody was listening
        send(&mut device, &reply(2, &[7])).await;
        let device_task = tokio::spawn(async move {
            request_from(&mut device).await;
            send(&mut device, &reply(1, &[42])).await;
            device
        });
        let mut events = Vec::new();
        let data = link.read(1, &holding(0, 1), TIMEOUT, &mut events).await;
        assert_eq!(data, Ok(BlockData::Registers(vec![42])));
        // 1 + 1 + 1 + 2 + 2 = 7 stale bytes
        assert_eq!(
            events,
            [CommEvent::Stale(7), CommEvent::Request, CommEvent::Reply]
        );
        drop(device_task);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reply_arriving_after_the_next_request_is_skipped() {
        let (master, mut device) = duplex(1024);
        let mut link = RtuLink::new(master, timing());
        let device_task = tokio::spawn(async move {
            // unit 2's answer to an earlier request turns up just now, then unit 3's own
            request_from(&mut device).await;
            let both = [reply(2, &[2, 2]), reply(3, &[3, 3])].concat();
            send(&mut device, &both).await;
            device
        });
        let mut events = Vec::new();
        let data = link.read(3, &holding(0, 2), TIMEOUT, &mut events).await;
        assert_eq!(data, Ok(BlockData::Registers(vec![3, 3])));
        assert_eq!(
            events,
            [CommEvent::Request, CommEvent::Foreign(1), CommEvent::Reply]
        );
        drop(device_task);
    }

    #[tokio::test(start_paused = true)]
    async fn a_corrupted_crc_fails_the_read_and_the_next_one_works() {
        let (master, mut device) = duplex(1024);
        let mut link = RtuLink::new(master, timing());
        let device_task = tokio::spawn(async move {
            request_from(&mut device).await;
            let mut bad = reply(1, &[9]);
            bad[5] ^= 0xFF;
            send(&mut device, &bad).await;
            request_from(&mut device).await;
            send(&mut device, &reply(1, &[10])).await;
            device
        });
        let mut events = Vec::new();
        let first = link.read(1, &holding(0, 1), TIMEOUT, &mut events).await;
        assert_eq!(first, Err(TransactionError::BadCrc));
        let second = link.read(1, &holding(0, 1), TIMEOUT, &mut events).await;
        assert_eq!(second, Ok(BlockData::Registers(vec![10])));
        assert_eq!(
            events,
            [
                CommEvent::Request,
                CommEvent::BadCrc,
                CommEvent::Request,
                CommEvent::Reply
            ]
        );
        assert!(!link.is_broken());
        drop(device_task);
    }

    #[tokio::test(start_paused = true)]
    async fn silence_times_out_after_the_timeout_plus_wire_time() {
        let (master, _device) = duplex(1024);
        let mut link = RtuLink::new(master, timing());
        let started = Instant::now();
        let mut events = Vec::new();
        let outcome = link.read(1, &holding(0, 2), TIMEOUT, &mut events).await;
        assert_eq!(outcome, Err(TransactionError::Timeout));
        // 4.01 ms inter-frame wait, 8-byte request (9.17 ms), 200 ms, 9-byte reply (10.31 ms)
        // = 223.49 ms; the timer wheel rounds each of the two waits up to a whole millisecond
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_micros(223_490) && waited <= Duration::from_millis(226),
            "{waited:?}"
        );
        assert_eq!(events, [CommEvent::Request, CommEvent::Timeout]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_truncated_reply_is_garbled_not_silent() {
        let (master, mut device) = duplex(1024);
        let mut link = RtuLink::new(master, timing());
        let device_task = tokio::spawn(async move {
            request_from(&mut device).await;
            send(&mut device, &reply(1, &[1, 2])[..5]).await;
            device
        });
        let mut events = Vec::new();
        let outcome = link.read(1, &holding(0, 2), TIMEOUT, &mut events).await;
        assert_eq!(outcome, Err(TransactionError::Garbled));
        assert_eq!(
            events,
            [CommEvent::Request, CommEvent::Noise(5), CommEvent::Garbled]
        );
        drop(device_task);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_keep_the_inter_frame_silence_after_a_reply() {
        let (master, mut device) = duplex(1024);
        let mut link = RtuLink::new(master, timing());
        let device_task = tokio::spawn(async move {
            let mut gaps = Vec::new();
            for _ in 0..2 {
                request_from(&mut device).await;
                send(&mut device, &reply(1, &[1])).await;
                gaps.push(Instant::now());
            }
            gaps
        });
        let mut events = Vec::new();
        for _ in 0..2 {
            let outcome = link.read(1, &holding(0, 1), TIMEOUT, &mut events).await;
            assert!(outcome.is_ok(), "{outcome:?}");
        }
        let replies = device_task.await.unwrap_or_else(|e| panic!("{e}"));
        // the second reply went out no sooner than 3.5 characters after the first
        assert!(replies[1] - replies[0] >= timing().inter_frame);
    }
}
