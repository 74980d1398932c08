//! What the text importers share: numbered lines, hex bytes, cutting chunks into frames, and
//! the made-up clock of logs that print no times.

use std::time::Duration;

use super::{Imported, Skipped};
use crate::field::capture::{Direction, FrameSplitter};

pub struct Line<'a> {
    /// 1-based.
    pub number: usize,
    /// Without the line ending.
    pub bytes: &'a [u8],
}

/// The non-blank lines of `bytes`, numbered as an editor shows them; `\r\n` endings too.
pub fn lines(bytes: &[u8]) -> impl Iterator<Item = Line<'_>> {
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, bytes)| Line {
            number: i + 1,
            bytes: bytes.strip_suffix(b"\r").unwrap_or(bytes),
        })
        .filter(|l| !l.bytes.iter().all(u8::is_ascii_whitespace))
}

/// Text is mostly printable: a binary dump of RTU frames is mostly not.
pub fn looks_like_text(bytes: &[u8]) -> bool {
    let sample = &bytes[..bytes.len().min(4096)];
    let control = sample
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t'))
        .count();
    control * 20 < sample.len()
}

/// Why the bytes of a log line could not be read; the importers report it with the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("{0:?} is not a hex byte")]
    NotHex(String),
    #[error("cannot read {0:?}")]
    Unreadable(String),
    #[error("unexpected text {0:?}")]
    Unexpected(String),
    #[error("no hex bytes")]
    NoHex,
}

/// Bytes written as two-digit hex numbers separated by spaces: `01 03 0a`.
pub fn hex_bytes(text: &[u8]) -> Result<Vec<u8>, LineError> {
    text.split(|b| b.is_ascii_whitespace())
        .filter(|t| !t.is_empty())
        .map(hex_byte)
        .collect()
}

pub fn hex_byte(token: &[u8]) -> Result<u8, LineError> {
    let digit = |b: u8| char::from(b).to_digit(16);
    match token {
        [hi, lo] => match (digit(*hi), digit(*lo)) {
            (Some(h), Some(l)) => Ok((h * 16 + l) as u8),
            _ => Err(LineError::NotHex(show(token))),
        },
        _ => Err(LineError::NotHex(show(token))),
    }
}

/// A piece of a line for messages, whatever its encoding.
pub fn show(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.chars().take(60).collect()
}

/// Gathers the byte chunks a log shows, in order, and cuts them into frames the way the
/// live capture does ([`FrameSplitter`]): a frame ends where its length and CRC say, and
/// bytes that form no frame end at the next silence or change of direction.
pub struct Chunks {
    splitter: FrameSplitter,
    last_us: Option<i64>,
}

impl Chunks {
    pub fn new() -> Chunks {
        Chunks {
            // a log has no line timing of its own; the splitter keeps its 20 ms minimum
            splitter: FrameSplitter::new(Duration::ZERO),
            last_us: None,
        }
    }

    /// A chunk of `bytes` that went `direction` at `ts_us`. Times going backwards (a clock
    /// step on the logging PC) are reported and held at the last time, so order is kept.
    pub fn push(
        &mut self,
        line: usize,
        ts_us: i64,
        direction: Direction,
        bytes: &[u8],
        out: &mut Imported,
    ) {
        let ts_us = match self.last_us {
            Some(last) if ts_us < last => {
                out.skipped.push(Skipped {
                    line,
                    reason: format!(
                        "time goes back {} ms; kept in order at the previous time",
                        (last - ts_us) / 1000
                    ),
                });
                last
            }
            _ => ts_us,
        };
        self.last_us = Some(ts_us);
        out.frames
            .extend(self.splitter.push(ts_us, direction, bytes));
    }

    pub fn finish(mut self, out: &mut Imported) {
        out.frames.extend(self.splitter.flush());
    }
}

/// Times for a log that prints none: request n at `start + n` seconds (most polling tools
/// poll once a second), everything received after it 10 ms later, 1 ms apart. Only the
/// order of frames is real.
pub struct UntimedClock {
    start_us: i64,
    requests: i64,
    replies: i64,
}

/// Where a synthesized reply is put after its request.
pub const SYNTHETIC_REPLY_DELAY_US: i64 = 10_000;

impl UntimedClock {
    pub fn new(start_us: i64) -> UntimedClock {
        UntimedClock {
            start_us,
            requests: -1,
            replies: 0,
        }
    }

    pub fn next(&mut self, direction: Direction) -> i64 {
        if direction == Direction::Outbound || self.requests < 0 {
            self.requests += 1;
            self.replies = 0;
            if direction == Direction::Outbound {
                return self.start_us + self.requests * 1_000_000;
            }
        }
        let at = self.start_us
            + self.requests * 1_000_000
            + SYNTHETIC_REPLY_DELAY_US
            + self.replies * 1_000;
        self.replies += 1;
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_bytes_take_either_case_and_refuse_anything_else() {
        assert_eq!(hex_bytes(b" 01 03 c4 0B "), Ok(vec![1, 3, 0xC4, 0x0B]));
        assert!(hex_bytes(b"01 3").is_err());
        assert!(hex_bytes(b"01 0g").is_err());
    }

    #[test]
    fn untimed_clock_spaces_requests_a_second_apart() {
        let mut clock = UntimedClock::new(1_000_000);
        assert_eq!(clock.next(Direction::Outbound), 1_000_000);
        assert_eq!(clock.next(Direction::Inbound), 1_010_000);
        assert_eq!(clock.next(Direction::Inbound), 1_011_000);
        assert_eq!(clock.next(Direction::Outbound), 2_000_000);
        // a log that starts with a reply: it belongs to a request before the log began
        let mut clock = UntimedClock::new(0);
        assert_eq!(clock.next(Direction::Inbound), 10_000);
        assert_eq!(clock.next(Direction::Outbound), 1_000_000);
    }

    #[test]
    fn lines_are_numbered_as_an_editor_shows_them() {
        let numbered: Vec<_> = lines(b"a\r\n\r\nb\nc")
            .map(|l| (l.number, l.bytes.to_vec()))
            .collect();
        assert_eq!(
            numbered,
            [(1, b"a".to_vec()), (3, b"b".to_vec()), (4, b"c".to_vec())]
        );
    }
}
