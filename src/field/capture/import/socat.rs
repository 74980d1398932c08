//! `socat -x -v` (socat 1.7.4): one header per chunk relayed, then its bytes in hex, 16 a
//! line, optionally followed by an ASCII column and a `--` line:
//!
//! ```text
//! > 2026/11/22 14:35:27.000338320  length=8 from=0 to=7
//!  01 03 00 00 00 02 c4 0b                          ........
//! --
//! ```
//!
//! `>` is data from socat's first address to its second. Technicians put the master side
//! (the port cemsd or the DAU opens) first, so `>` is taken as outbound (requests) and `<`
//! as inbound. Times are local, at the site's offset. socat 1.7.4 prints the microseconds
//! zero-padded to nine digits (`.000338320` is 338 320 µs); a file whose nine-digit
//! fractions all start with `000` is read that way, any other as nanoseconds.

use chrono::{FixedOffset, NaiveDateTime, TimeZone};

use super::text::{hex_bytes, lines, show, Chunks, LineError};
use super::{ImportOptions, Imported, Skipped};
use crate::field::capture::Direction;

struct Header {
    direction: Direction,
    /// Local date and time to the second.
    at: NaiveDateTime,
    fraction: Vec<u8>,
    length: Option<usize>,
}

fn parse_header(line: &[u8]) -> Option<Header> {
    let direction = match line.first()? {
        b'>' => Direction::Outbound,
        b'<' => Direction::Inbound,
        _ => return None,
    };
    let text = std::str::from_utf8(line.get(1..)?).ok()?;
    let mut fields = text.split_whitespace();
    let date = fields.next()?;
    let time = fields.next()?;
    let (whole, fraction) = time.split_once('.')?;
    let at = NaiveDateTime::parse_from_str(&format!("{date} {whole}"), "%Y/%m/%d %H:%M:%S").ok()?;
    if fraction.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let length = fields
        .find_map(|f| f.strip_prefix("length="))
        .and_then(|n| n.parse().ok());
    Some(Header {
        direction,
        at,
        fraction: fraction.as_bytes().to_vec(),
        length,
    })
}

pub fn is_header(line: &[u8]) -> bool {
    parse_header(line).is_some()
}

/// The hex part of a data line: after the leading space, up to the ASCII column (which
/// starts after a run of spaces).
fn data_bytes(line: &[u8]) -> Option<Result<Vec<u8>, LineError>> {
    let rest = line.strip_prefix(b" ")?;
    let end = rest
        .windows(2)
        .position(|w| w == b"  ")
        .unwrap_or(rest.len());
    Some(hex_bytes(&rest[..end]))
}

/// Microseconds within the second from the fraction digits.
fn micros(fraction: &[u8], nine_digit_micros: bool) -> i64 {
    let digits: i64 = fraction
        .iter()
        .take(9)
        .fold(0, |acc, d| acc * 10 + i64::from(d - b'0'));
    let n = fraction.len().min(9) as u32;
    if n == 9 && nine_digit_micros {
        digits
    } else {
        // scale to nine digits (nanoseconds), then to microseconds
        digits * 10i64.pow(9 - n) / 1000
    }
}

struct Chunk {
    line: usize,
    header: Header,
    bytes: Vec<u8>,
}

pub fn read(bytes: &[u8], options: &ImportOptions, out: &mut Imported) {
    let mut chunks: Vec<Chunk> = Vec::new();
    for line in lines(bytes) {
        if let Some(header) = parse_header(line.bytes) {
            chunks.push(Chunk {
                line: line.number,
                header,
                bytes: Vec::new(),
            });
            continue;
        }
        if line.bytes == b"--" {
            continue;
        }
        match (data_bytes(line.bytes), chunks.last_mut()) {
            (Some(Ok(data)), Some(chunk)) => chunk.bytes.extend(data),
            (Some(Ok(_)), None) => out.skipped.push(Skipped {
                line: line.number,
                reason: "data before the first header".into(),
            }),
            (Some(Err(e)), _) => out.skipped.push(Skipped {
                line: line.number,
                reason: e.to_string(),
            }),
            (None, _) => out.skipped.push(Skipped {
                line: line.number,
                reason: format!("not a socat header or data line: {:?}", show(line.bytes)),
            }),
        }
    }
    let nine_digit_micros = chunks
        .iter()
        .filter(|c| c.header.fraction.len() == 9)
        .all(|c| c.header.fraction.starts_with(b"000"));
    let mut cut = Chunks::new();
    for chunk in chunks {
        if let Some(length) = chunk.header.length.filter(|&n| n != chunk.bytes.len()) {
            out.skipped.push(Skipped {
                line: chunk.line,
                reason: format!(
                    "header says {length} bytes, {} follow; the bytes are kept",
                    chunk.bytes.len()
                ),
            });
        }
        let Some(local) = local_to_utc_us(chunk.header.at, options.utc_offset) else {
            continue;
        };
        let ts_us = local + micros(&chunk.header.fraction, nine_digit_micros);
        cut.push(chunk.line, ts_us, chunk.header.direction, &chunk.bytes, out);
    }
    cut.finish(out);
}

/// A local date and time at `offset` as µs since the epoch.
pub fn local_to_utc_us(at: NaiveDateTime, offset: FixedOffset) -> Option<i64> {
    offset
        .from_local_datetime(&at)
        .single()
        .map(|t| t.timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_of_both_socat_styles() {
        // socat 1.7.4: 000338320 is 338 320 µs; elsewhere nine digits are nanoseconds
        assert_eq!(micros(b"000338320", true), 338_320);
        assert_eq!(micros(b"338320123", false), 338_320);
        assert_eq!(micros(b"338320", false), 338_320);
        assert_eq!(micros(b"5", false), 500_000);
    }

    #[test]
    fn header_fields() {
        let h = parse_header(b"< 2026/11/22 14:35:27.000338320  length=9 from=8 to=16")
            .unwrap_or_else(|| panic!("not a header"));
        assert_eq!(h.direction, Direction::Inbound);
        assert_eq!(h.length, Some(9));
        assert_eq!(h.at.to_string(), "2026-11-22 14:35:27");
        assert!(parse_header(b"2026/11/26 01:25:22 socat[11767] E read(6").is_none());
    }
}
