//! Modbus Poll's "Communication traffic" window, saved or copied:
//!
//! ```text
//! Tx:000001-01 03 00 00 00 0A C5 CD
//! Rx:000002-01 03 14 00 00 …
//! ```
//!
//! (some versions put the counter first: `000001-Tx:01 03 …`). Tx is outbound, Rx inbound.
//! No times are printed: they are made up (see [`UntimedClock`]).

use super::text::{hex_bytes, lines, show, Chunks, UntimedClock};
use super::{Imported, Skipped};
use crate::field::capture::Direction;

fn direction_of(tag: &[u8]) -> Option<Direction> {
    match tag {
        b"Tx" | b"TX" => Some(Direction::Outbound),
        b"Rx" | b"RX" => Some(Direction::Inbound),
        _ => None,
    }
}

/// `(direction, hex text)` of a traffic line in either layout.
fn split(line: &[u8]) -> Option<(Direction, &[u8])> {
    let line = line.trim_ascii();
    let counter = |c: &[u8]| !c.is_empty() && c.iter().all(u8::is_ascii_digit);
    // Tx:000001-01 03 …
    if let (Some(tag), Some(b':')) = (line.get(..2), line.get(2)) {
        let direction = direction_of(tag)?;
        let rest = &line[3..];
        let dash = rest.iter().position(|&b| b == b'-')?;
        return counter(&rest[..dash]).then_some((direction, &rest[dash + 1..]));
    }
    // 000001-Tx:01 03 …
    let dash = line.iter().position(|&b| b == b'-')?;
    let rest = &line[dash + 1..];
    let direction = direction_of(rest.get(..2)?)?;
    (counter(&line[..dash]) && rest.get(2) == Some(&b':')).then_some((direction, &rest[3..]))
}

pub fn is_frame_line(line: &[u8]) -> bool {
    split(line).is_some_and(|(_, hex)| hex_bytes(hex).is_ok())
}

pub fn read(bytes: &[u8], start_us: i64, out: &mut Imported) {
    let mut clock = UntimedClock::new(start_us);
    let mut cut = Chunks::new();
    for line in lines(bytes) {
        let Some((direction, hex)) = split(line.bytes) else {
            out.skipped.push(Skipped {
                line: line.number,
                reason: format!("not a Modbus Poll traffic line: {:?}", show(line.bytes)),
            });
            continue;
        };
        match hex_bytes(hex) {
            Ok(data) if !data.is_empty() => {
                let ts = clock.next(direction);
                cut.push(line.number, ts, direction, &data, out);
            }
            Ok(_) => {}
            Err(reason) => out.skipped.push(Skipped {
                line: line.number,
                reason: reason.to_string(),
            }),
        }
    }
    cut.finish(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_layouts() {
        let want = Some((Direction::Outbound, b"01 03".as_slice()));
        assert_eq!(split(b"Tx:000001-01 03"), want);
        assert_eq!(split(b"000001-Tx:01 03"), want);
        assert_eq!(
            split(b"Rx:000002-01").map(|s| s.0),
            Some(Direction::Inbound)
        );
        assert_eq!(split(b"Qx:000001-01 03"), None);
        assert_eq!(split(b"Tx:0a-01 03"), None);
    }
}
