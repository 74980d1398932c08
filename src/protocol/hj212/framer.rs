//! Finds packets in a byte stream (TCP, serial) where reads split and join packets at random
//! and line noise or a restarted peer leaves garbage between them.

use super::error::{DecodeError, DecodeErrorKind};
use super::packet::{decode_with_limit, Packet};
use super::MAX_DATA_LEN;

/// A packet found in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Stream offset of its `##`.
    pub offset: usize,
    /// The bytes from `##` to the CRC, without the CRLF.
    pub raw: Vec<u8>,
    pub packet: Packet,
}

/// A candidate packet that failed; `error.position` is a stream offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    pub error: DecodeError,
    /// The bytes given up on, for the log.
    pub raw: Vec<u8>,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const SHOWN: usize = 120;
        let text = String::from_utf8_lossy(&self.raw[..self.raw.len().min(SHOWN)]);
        let more = if self.raw.len() > SHOWN { "…" } else { "" };
        write!(f, "{} in {text:?}{more}", self.error)
    }
}

impl std::error::Error for FrameError {}

/// Streaming packet finder. Memory stays within one maximal packet plus the last pushed
/// chunk: bytes before a `##` are dropped at once, and a length over the limit is refused
/// before anything is buffered for it.
pub struct Framer {
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    base: usize,
    max_data_len: usize,
    discarded: u64,
}

impl Default for Framer {
    fn default() -> Self {
        Framer::new()
    }
}

impl Framer {
    pub fn new() -> Framer {
        Framer::with_max_data_len(MAX_DATA_LEN)
    }

    pub fn with_max_data_len(max_data_len: usize) -> Framer {
        Framer {
            buf: Vec::new(),
            base: 0,
            max_data_len,
            discarded: 0,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Non-whitespace bytes skipped while looking for `##` (line noise, partial packets from
    /// before a reconnect). CRLF between packets is not counted.
    pub fn discarded_bytes(&self) -> u64 {
        self.discarded
    }

    /// Bytes held waiting for the rest of a packet.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next packet or failed candidate, `None` when more bytes are needed. Call until it
    /// returns `None` after each `push`.
    pub fn next_packet(&mut self) -> Option<Result<Frame, FrameError>> {
        loop {
            match find_header(&self.buf) {
                Some(start) => self.drop_front(start, true),
                None => {
                    // A trailing `#` may be the first half of the next header.
                    let keep = usize::from(self.buf.last() == Some(&b'#'));
                    self.drop_front(self.buf.len() - keep, true);
                    return None;
                }
            }
            // `###0101…`: the first `#` is noise before the real header.
            if self.buf.get(2) == Some(&b'#') {
                self.drop_front(1, true);
                continue;
            }
            break;
        }
        if self.buf.len() < 6 {
            return None;
        }
        if let Some(bad) = self.buf[2..6].iter().position(|b| !b.is_ascii_digit()) {
            return Some(self.reject(2 + bad + 1, 2 + bad, DecodeErrorKind::BadLengthDigits));
        }
        let declared = self.buf[2..6]
            .iter()
            .fold(0usize, |n, b| n * 10 + usize::from(b - b'0'));
        if declared > self.max_data_len {
            let kind = DecodeErrorKind::TooLong {
                declared,
                max: self.max_data_len,
            };
            return Some(self.reject(6, 2, kind));
        }
        let frame_len = 6 + declared + 4;
        if self.buf.len() < frame_len {
            return None;
        }
        let offset = self.base;
        match decode_with_limit(&self.buf[..frame_len], self.max_data_len) {
            Ok(packet) => {
                let raw: Vec<u8> = self.buf[..frame_len].to_vec();
                self.drop_front(frame_len, false);
                Some(Ok(Frame {
                    offset,
                    raw,
                    packet,
                }))
            }
            Err(error) => {
                // A packet cut short shows the next `##` inside its window: report the cut
                // packet as what it is and resume at the next one.
                let cut = find_header(&self.buf[2..frame_len]).map(|i| i + 2);
                let (end, mut error) = match cut {
                    Some(end) => (
                        end,
                        decode_with_limit(&self.buf[..end], self.max_data_len)
                            .err()
                            .unwrap_or(error),
                    ),
                    None => (frame_len, error),
                };
                error.position = error.position.saturating_add(offset);
                let raw = self.buf[..end].to_vec();
                self.drop_front(end, false);
                Some(Err(FrameError { error, raw }))
            }
        }
    }

    /// Reports a header that cannot start a packet and drops one byte, so a `##` that begins
    /// inside the rejected bytes (`###0101…`) is still found.
    fn reject(
        &mut self,
        shown: usize,
        at: usize,
        kind: DecodeErrorKind,
    ) -> Result<Frame, FrameError> {
        let raw = self.buf[..shown.min(self.buf.len())].to_vec();
        let error = DecodeError {
            kind,
            position: self.base.saturating_add(at),
        };
        self.drop_front(1, false);
        Err(FrameError { error, raw })
    }

    fn drop_front(&mut self, n: usize, count_as_garbage: bool) {
        if count_as_garbage {
            let garbage = self.buf[..n]
                .iter()
                .filter(|b| !b.is_ascii_whitespace())
                .count();
            self.discarded += garbage as u64;
        }
        self.buf.drain(..n);
        self.base = self.base.saturating_add(n);
    }
}

/// Where `##` starts in `haystack`.
fn find_header(haystack: &[u8]) -> Option<usize> {
    haystack
        .windows(2)
        .position(|w| w[0] == b'#' && w[1] == b'#')
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &[u8] = b"##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80\r\n";

    fn drain(framer: &mut Framer) -> Vec<Result<Frame, FrameError>> {
        std::iter::from_fn(|| framer.next_packet()).collect()
    }

    #[test]
    fn byte_by_byte_delivery() {
        let mut framer = Framer::new();
        let mut found = Vec::new();
        for &b in EXAMPLE.iter().chain(EXAMPLE) {
            framer.push(&[b]);
            found.extend(drain(&mut framer));
        }
        assert_eq!(found.len(), 2);
        let offsets: Vec<_> = found
            .iter()
            .map(|r| r.as_ref().map(|f| f.offset).unwrap_or(usize::MAX))
            .collect();
        // Second packet starts after 6 + 101 + 4 + 2 = 113 bytes.
        assert_eq!(offsets, vec![0, 113]);
        assert_eq!(framer.discarded_bytes(), 0);
        assert_eq!(framer.buffered(), 0);
    }

    #[test]
    fn resyncs_after_garbage_and_a_cut_packet() {
        let mut stream = b"noise\r\n".to_vec(); // 7 bytes, 5 of them garbage
        stream.extend_from_slice(&EXAMPLE[..50]); // packet cut short, at offset 7
        stream.extend_from_slice(EXAMPLE); // whole packet at offset 57
        let mut framer = Framer::new();
        framer.push(&stream);
        let results = drain(&mut framer);
        assert_eq!(results.len(), 2, "{results:?}");
        let cut = results[0].as_ref().expect_err("cut packet is reported");
        // 50 bytes = 6 header + 40 data + 4 taken as CRC.
        assert_eq!(
            cut.error.kind,
            DecodeErrorKind::BadLength {
                declared: 101,
                actual: 40
            }
        );
        assert_eq!(cut.error.position, 7 + 2, "length field of the cut packet");
        assert_eq!(cut.raw, EXAMPLE[..50].to_vec());
        let good = results[1].as_ref().expect("next packet is found");
        assert_eq!(good.offset, 57);
        assert_eq!(good.packet.cp.param("RtdInterval"), Some("30"));
        assert_eq!(framer.discarded_bytes(), 5);
    }

    #[test]
    fn oversized_length_is_refused_without_buffering() {
        let mut framer = Framer::new();
        framer.push(b"##9999QN=");
        let result = framer.next_packet().expect("reported at once");
        let err = result.expect_err("too long");
        assert_eq!(
            err.error.kind,
            DecodeErrorKind::TooLong {
                declared: 9999,
                max: 1024
            }
        );
        assert_eq!(err.error.position, 2);
        assert_eq!(framer.next_packet().map(|r| r.is_ok()), None);
        framer.push(EXAMPLE);
        assert!(matches!(framer.next_packet(), Some(Ok(_))));
    }

    #[test]
    fn triple_hash_finds_the_real_header() {
        let mut stream = b"#".to_vec();
        stream.extend_from_slice(EXAMPLE);
        let mut framer = Framer::new();
        framer.push(&stream);
        let results = drain(&mut framer);
        assert_eq!(results.len(), 1, "{results:?}");
        assert!(matches!(&results[0], Ok(frame) if frame.offset == 1));
        assert_eq!(framer.discarded_bytes(), 1);
    }

    #[test]
    fn bad_length_digits_are_reported_and_skipped() {
        let mut stream = b"##01x1".to_vec();
        stream.extend_from_slice(EXAMPLE);
        let mut framer = Framer::new();
        framer.push(&stream);
        let results = drain(&mut framer);
        assert_eq!(results.len(), 2, "{results:?}");
        let err = results[0].as_ref().expect_err("bad digits");
        assert_eq!(err.error.kind, DecodeErrorKind::BadLengthDigits);
        assert_eq!(err.error.position, 4, "the `x`");
        assert!(matches!(&results[1], Ok(frame) if frame.offset == 6));
    }
}
