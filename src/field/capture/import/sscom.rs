//! SSCOM, the serial tool Chinese CEMS engineers paste logs from, with "show time" and
//! "hex display" on:
//!
//! ```text
//! [10:25:13.926]发→◇01 03 00 00 00 01 84 0A □
//! [10:25:13.964]收←◆01 03 02 00 46 39 B6
//! ```
//!
//! 发 (sent) is outbound, 收 (received) inbound. Saved files are UTF-8 or, from the Windows
//! tool, GBK; the markers are recognised in both. Only the time of day is printed, so the
//! caller gives the local date of the first line; a time earlier than the one before it by
//! more than 12 hours is the next day.

use chrono::{Duration, FixedOffset, NaiveDate, NaiveTime};

use super::socat::local_to_utc_us;
use super::text::{hex_bytes, lines, show, Chunks, LineError};
use super::{Imported, Skipped};
use crate::field::capture::Direction;

const SENT: [&[u8]; 2] = ["发".as_bytes(), &[0xB7, 0xA2]];
const RECEIVED: [&[u8]; 2] = ["收".as_bytes(), &[0xCA, 0xD5]];

struct FrameLine<'a> {
    time: NaiveTime,
    direction: Direction,
    /// Everything after the direction marker.
    rest: &'a [u8],
}

fn parse(line: &[u8]) -> Option<FrameLine<'_>> {
    let inner = line.strip_prefix(b"[")?;
    let close = inner.iter().position(|&b| b == b']')?;
    let stamp = std::str::from_utf8(&inner[..close]).ok()?;
    let time = NaiveTime::parse_from_str(stamp, "%H:%M:%S%.3f").ok()?;
    let after = &inner[close + 1..];
    let (direction, rest) = if let Some(rest) = SENT.iter().find_map(|m| after.strip_prefix(*m)) {
        (Direction::Outbound, rest)
    } else {
        let rest = RECEIVED.iter().find_map(|m| after.strip_prefix(*m))?;
        (Direction::Inbound, rest)
    };
    Some(FrameLine {
        time,
        direction,
        rest,
    })
}

pub fn is_frame_line(line: &[u8]) -> bool {
    parse(line).is_some()
}

/// The hex bytes between the arrow and diamond symbols and the trailing box symbol.
fn payload(rest: &[u8]) -> Result<Vec<u8>, LineError> {
    let start = rest
        .iter()
        .position(|b| b.is_ascii_hexdigit())
        .ok_or(LineError::NoHex)?;
    if rest[..start].iter().any(|b| b.is_ascii_graphic()) {
        return Err(LineError::Unexpected(show(&rest[..start])));
    }
    let hex = &rest[start..];
    let end = hex
        .iter()
        .position(|b| !(b.is_ascii_hexdigit() || *b == b' '))
        .unwrap_or(hex.len());
    if hex[end..].iter().any(|b| b.is_ascii_graphic()) {
        return Err(LineError::Unexpected(show(&hex[end..])));
    }
    hex_bytes(&hex[..end])
}

pub fn read(bytes: &[u8], date: NaiveDate, offset: FixedOffset, out: &mut Imported) {
    let mut day = date;
    let mut previous: Option<NaiveTime> = None;
    let mut cut = Chunks::new();
    for line in lines(bytes) {
        let Some(frame) = parse(line.bytes) else {
            out.skipped.push(Skipped {
                line: line.number,
                reason: format!("not an SSCOM frame line: {:?}", show(line.bytes)),
            });
            continue;
        };
        let data = match payload(frame.rest) {
            Ok(data) if !data.is_empty() => data,
            Ok(_) => continue,
            Err(reason) => {
                out.skipped.push(Skipped {
                    line: line.number,
                    reason: reason.to_string(),
                });
                continue;
            }
        };
        if previous.is_some_and(|p| p - frame.time > Duration::hours(12)) {
            day = day.succ_opt().unwrap_or(day);
        }
        previous = Some(frame.time);
        let Some(ts_us) = local_to_utc_us(day.and_time(frame.time), offset) else {
            continue;
        };
        cut.push(line.number, ts_us, frame.direction, &data, out);
    }
    cut.finish(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_and_gbk_lines_read_alike() {
        let utf8 = "[10:25:13.926]发→◇01 03 00 00 00 01 84 0A □".as_bytes();
        let mut gbk = b"[10:25:13.926]".to_vec();
        gbk.extend([0xB7, 0xA2, 0xA1, 0xFA, 0xA1, 0xF3]);
        gbk.extend(b"01 03 00 00 00 01 84 0A ");
        gbk.extend([0xA1, 0xF5]);
        for line in [utf8, gbk.as_slice()] {
            let frame = parse(line).unwrap_or_else(|| panic!("not a frame line"));
            assert_eq!(frame.direction, Direction::Outbound);
            assert_eq!(payload(frame.rest), Ok(vec![1, 3, 0, 0, 0, 1, 0x84, 0x0A]));
        }
        let received = parse("[10:25:13.964]收←◆01 03 02 00 46 39 B6".as_bytes())
            .unwrap_or_else(|| panic!("not a frame line"));
        assert_eq!(received.direction, Direction::Inbound);
        assert!(payload("◆01 03 zz".as_bytes()).is_err());
    }
}
