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
        // The bytes as text for a log line, the password masked.
        const SHOWN: usize = 120;
        let text = super::masked::masked(&self.raw, SHOWN);
        write!(f, "{} in {text:?}", self.error)
    }
}

impl std::error::Error for FrameError {}

/// Streaming packet finder. Memory stays within one maximal packet plus the last pushed
/// chunk: bytes before a `##` are dropped at once, and a length over the limit is refused
/// before anything is buffered for it.
///
/// On a live link a packet may always be completed by the next read, so bytes that do not
/// make a packet yet are kept. Once [`Framer::finish`] says the input is complete, whatever
/// is left is reported for what it is: a packet cut short, one without its CRC, one whose
/// length field is larger than its data.
pub struct Framer {
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    base: usize,
    max_data_len: usize,
    discarded: u64,
    /// No more bytes will come: the end of the buffer ends the last candidate.
    closed: bool,
    /// Report skipped bytes as [`DecodeErrorKind::NotAPacket`] errors.
    report_skipped: bool,
    /// Stream offset up to which skipped bytes were already reported as part of a rejected
    /// header.
    reported_until: usize,
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
            closed: false,
            report_skipped: false,
            reported_until: 0,
        }
    }

    /// Also report every run of bytes that belongs to no packet (line noise, binary garbage,
    /// text without `##`) as an error with its offset, instead of only counting it in
    /// [`Framer::discarded_bytes`]. For a technician reading a capture.
    pub fn reporting_skipped(mut self) -> Framer {
        self.report_skipped = true;
        self
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The input is complete: the packet still buffered will get no more bytes, so the
    /// following calls to [`Framer::next_packet`] report it instead of waiting.
    pub fn finish(&mut self) {
        self.closed = true;
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

    /// The next packet or failed candidate, `None` when more bytes are needed (or, after
    /// [`Framer::finish`], when nothing is left). Call until it returns `None` after each
    /// `push`.
    pub fn next_packet(&mut self) -> Option<Result<Frame, FrameError>> {
        loop {
            match find_header(&self.buf) {
                Some(start) => {
                    if let Some(skipped) = self.skip(start) {
                        return Some(Err(skipped));
                    }
                }
                None => {
                    // A trailing `#` may be the first half of the next header.
                    let keep = usize::from(self.buf.last() == Some(&b'#') && !self.closed);
                    let skipped = self.skip(self.buf.len() - keep);
                    return skipped.map(Err);
                }
            }
            // `###0101…`: the first `#` is noise before the real header.
            if self.buf.get(2) == Some(&b'#') {
                if let Some(skipped) = self.skip(1) {
                    return Some(Err(skipped));
                }
                continue;
            }
            break;
        }
        let header = self.buf.len().min(6);
        if let Some(bad) = self.buf[2..header].iter().position(|b| !b.is_ascii_digit()) {
            return Some(self.reject(2 + bad + 1, 2 + bad, DecodeErrorKind::BadLengthDigits));
        }
        if self.buf.len() < 6 {
            if !self.closed {
                return None;
            }
            // `##` or `##01` at the very end: the length field is cut short.
            let at = self.buf.len();
            return Some(self.reject(at, at, DecodeErrorKind::BadLengthDigits));
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
            if !self.closed {
                return None;
            }
            return Some(Err(self.cut_at_end(declared)));
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
                    None => match self.longer_than_declared(frame_len, &error) {
                        // The CRC was looked for inside the data: the length field is short.
                        Some(end) => (
                            end,
                            DecodeError {
                                kind: DecodeErrorKind::BadLength {
                                    declared,
                                    actual: end - 10,
                                },
                                position: 2,
                            },
                        ),
                        None => (frame_len, error),
                    },
                };
                error.position = error.position.saturating_add(offset);
                let raw = self.buf[..end].to_vec();
                self.drop_front(end, false);
                Some(Err(FrameError { error, raw }))
            }
        }
    }

    /// Where the packet in the buffer really ends when the CRC check of its declared window
    /// failed because the data runs on past it: the line ends (or the next `##`, or the end
    /// of a finished input) after the window, and the bytes up to there end like a packet
    /// (`&&` and 4 hex digits). `None` when that cannot be told.
    fn longer_than_declared(&self, frame_len: usize, error: &DecodeError) -> Option<usize> {
        if !matches!(
            error.kind,
            DecodeErrorKind::BadCrc { .. } | DecodeErrorKind::BadCrcDigits
        ) {
            return None;
        }
        let limit = self.buf.len().min(6 + self.max_data_len + 4);
        let line_end = self.buf[6..limit]
            .iter()
            .position(|b| *b == b'\r' || *b == b'\n')
            .map(|i| i + 6);
        let next_header = find_header(&self.buf[2..limit]).map(|i| i + 2);
        let end = match (line_end.into_iter().chain(next_header).min(), self.closed) {
            (Some(end), _) => end,
            (None, true) => trim_end(&self.buf[..limit]),
            (None, false) => return None,
        };
        (end > frame_len && ends_like_a_packet(&self.buf[..end])).then_some(end)
    }

    /// The error for the rest of a finished input that starts with a header but is shorter
    /// than its length field says; consumes it up to the next `##` (or the end).
    fn cut_at_end(&mut self, declared: usize) -> FrameError {
        let end = find_header(&self.buf[2..])
            .map(|i| i + 2)
            .unwrap_or(self.buf.len());
        let candidate = &self.buf[..trim_end(&self.buf[..end]).max(6)];
        let data = &candidate[6..];
        let (kind, at) = if data.ends_with(b"&&") {
            (DecodeErrorKind::MissingCrc, candidate.len())
        } else if ends_like_a_packet(candidate) {
            let actual = data.len() - 4;
            (DecodeErrorKind::BadLength { declared, actual }, 2)
        } else {
            let received = data.len();
            (
                DecodeErrorKind::Truncated { declared, received },
                candidate.len(),
            )
        };
        let error = DecodeError {
            kind,
            position: self.base.saturating_add(at),
        };
        let raw = self.buf[..end].to_vec();
        self.drop_front(end, false);
        FrameError { error, raw }
    }

    /// Drops `n` bytes that belong to no packet; with [`Framer::reporting_skipped`], returns
    /// them as an error unless they are whitespace or were reported already.
    fn skip(&mut self, n: usize) -> Option<FrameError> {
        let start = self.base;
        let fresh = self.reported_until.saturating_sub(start).min(n);
        let report =
            self.report_skipped && self.buf[fresh..n].iter().any(|b| !b.is_ascii_whitespace());
        let found = report.then(|| {
            // From the first byte that is not whitespace to the last one.
            let run = &self.buf[fresh..n];
            let first = run
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .unwrap_or(0);
            let last = run
                .iter()
                .rposition(|b| !b.is_ascii_whitespace())
                .map_or(run.len(), |i| i + 1);
            FrameError {
                error: DecodeError {
                    kind: DecodeErrorKind::NotAPacket { len: last - first },
                    position: start + fresh + first,
                },
                raw: run[first..last].to_vec(),
            }
        });
        self.drop_front(n, true);
        found
    }

    /// Reports a header that cannot start a packet and drops one byte, so a `##` that begins
    /// inside the rejected bytes (`###0101…`) is still found. The bytes up to that next `##`
    /// count as reported.
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
        let next = self
            .buf
            .get(1..)
            .and_then(find_header)
            .map_or(self.buf.len(), |i| i + 1);
        self.reported_until = self.base.saturating_add(next);
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

/// Length of `bytes` without trailing whitespace (the CRLF after a packet).
fn trim_end(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1)
}

/// Whether `frame` (from `##`) ends as a whole packet does: the closing `&&` of CP, then 4
/// hexadecimal CRC digits.
fn ends_like_a_packet(frame: &[u8]) -> bool {
    frame.len() >= 6 + 6
        && frame[frame.len() - 6..frame.len() - 4] == *b"&&"
        && frame[frame.len() - 4..].iter().all(u8::is_ascii_hexdigit)
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

    /// What a finished input gave: a packet's offset, or an error's kind and position.
    type Found = Result<usize, (DecodeErrorKind, usize)>;

    /// Feeds `input` as a whole finished input and returns what the framer reports.
    fn finished(input: &[u8]) -> Vec<Found> {
        let mut framer = Framer::new().reporting_skipped();
        framer.push(input);
        framer.finish();
        drain(&mut framer)
            .into_iter()
            .map(|r| {
                r.map(|f| f.offset)
                    .map_err(|e| (e.error.kind, e.error.position))
            })
            .collect()
    }

    #[test]
    fn the_end_of_a_finished_input_is_reported_for_what_it_is() {
        let whole = &EXAMPLE[..EXAMPLE.len() - 2]; // without CRLF: 111 bytes
        let with = |length: &str| {
            let mut v = format!("##{length}").into_bytes();
            v.extend_from_slice(&whole[6..]);
            v
        };
        let cases: Vec<(Vec<u8>, Vec<Found>)> = vec![
            // cut after 60 bytes: 54 of the 101 data bytes
            (
                whole[..60].to_vec(),
                vec![Err((
                    DecodeErrorKind::Truncated {
                        declared: 101,
                        received: 54,
                    },
                    60,
                ))],
            ),
            // no CRC after `&&`
            (
                whole[..107].to_vec(),
                vec![Err((DecodeErrorKind::MissingCrc, 107))],
            ),
            // no `##`
            (
                whole[2..].to_vec(),
                vec![Err((DecodeErrorKind::NotAPacket { len: 109 }, 0))],
            ),
            (
                b"##".to_vec(),
                vec![Err((DecodeErrorKind::BadLengthDigits, 2))],
            ),
            (
                b"##01".to_vec(),
                vec![Err((DecodeErrorKind::BadLengthDigits, 4))],
            ),
            (
                b"\x00\xff\x13 #\x80".to_vec(),
                vec![Err((DecodeErrorKind::NotAPacket { len: 6 }, 0))],
            ),
            // length one too large: the data ends before the window
            (
                with("0102"),
                vec![Err((
                    DecodeErrorKind::BadLength {
                        declared: 102,
                        actual: 101,
                    },
                    2,
                ))],
            ),
            // length one too small: the CRC was looked for inside the data
            (
                with("0100"),
                vec![Err((
                    DecodeErrorKind::BadLength {
                        declared: 100,
                        actual: 101,
                    },
                    2,
                ))],
            ),
            (b"\r\n  \r\n".to_vec(), vec![]),
            (EXAMPLE.to_vec(), vec![Ok(0)]),
        ];
        for (input, expected) in cases {
            assert_eq!(
                finished(&input),
                expected,
                "{:?}",
                String::from_utf8_lossy(&input)
            );
        }
    }

    #[test]
    fn a_short_length_field_is_named_on_a_live_line_too() {
        // CRLF ends the packet: the length field, not the CRC, is wrong.
        let mut stream = b"##0100".to_vec();
        stream.extend_from_slice(&EXAMPLE[6..]);
        stream.extend_from_slice(EXAMPLE);
        let mut framer = Framer::new();
        framer.push(&stream);
        let results = drain(&mut framer);
        assert_eq!(results.len(), 2, "{results:?}");
        let err = results[0].as_ref().expect_err("short length");
        assert_eq!(
            err.error.kind,
            DecodeErrorKind::BadLength {
                declared: 100,
                actual: 101
            }
        );
        assert_eq!(err.error.position, 2);
        assert!(matches!(&results[1], Ok(frame) if frame.offset == 113));
        assert_eq!(framer.discarded_bytes(), 0, "the CRLF is not noise");
    }

    #[test]
    fn skipped_bytes_are_reported_once_with_their_offset() {
        // Noise, a header with a bad digit (reported as such, not again as noise), a packet.
        let mut stream = b"noise ##01x1 ".to_vec();
        stream.extend_from_slice(EXAMPLE);
        let found = finished(&stream);
        assert_eq!(
            found,
            vec![
                Err((DecodeErrorKind::NotAPacket { len: 5 }, 0)),
                Err((DecodeErrorKind::BadLengthDigits, 10)),
                Ok(13),
            ]
        );
        // Without reporting, the framer only counts them, as the listener wants.
        let mut framer = Framer::new();
        framer.push(&stream);
        let results = drain(&mut framer);
        assert_eq!(results.len(), 2, "{results:?}");
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
