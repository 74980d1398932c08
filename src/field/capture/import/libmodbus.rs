//! libmodbus debug output (`modbus_set_debug(ctx, TRUE)`, printed by mbpoll and other
//! libmodbus tools): a sent frame as `[01][03][00][00][00][02][C4][0B]`, a received one as
//! `<01><03><04>…`, between chatter lines such as `Waiting for a confirmation...`. No times
//! are printed: they are made up (see [`UntimedClock`]).

use super::text::{hex_byte, lines, show, Chunks, LineError, UntimedClock};
use super::{Imported, Skipped};
use crate::field::capture::Direction;

/// Lines libmodbus prints around frames that carry no bytes.
const CHATTER: [&str; 8] = [
    "Waiting for",
    "Opening ",
    "Bytes flushed",
    "ERROR",
    "Sleeping",
    "Connecting",
    "Confirmation to ignore",
    "Set ",
];

/// `(direction, bytes)` of a line made only of bracketed hex bytes.
fn parse(line: &[u8]) -> Option<Result<(Direction, Vec<u8>), LineError>> {
    let line = line.trim_ascii();
    let (open, close, direction) = match line.first()? {
        b'[' => (b'[', b']', Direction::Outbound),
        b'<' => (b'<', b'>', Direction::Inbound),
        _ => return None,
    };
    let mut bytes = Vec::new();
    let mut rest = line;
    while !rest.is_empty() {
        let token = rest.strip_prefix(&[open]).and_then(|r| {
            r.get(..3)
                .filter(|t| t[2] == close)
                .map(|t| (&t[..2], &r[3..]))
        });
        match token {
            Some((hex, after)) => match hex_byte(hex) {
                Ok(b) => {
                    bytes.push(b);
                    rest = after;
                }
                Err(e) => return Some(Err(e)),
            },
            None => return Some(Err(LineError::Unreadable(show(rest)))),
        }
    }
    Some(Ok((direction, bytes)))
}

pub fn is_frame_line(line: &[u8]) -> bool {
    matches!(parse(line), Some(Ok(_)))
}

pub fn read(bytes: &[u8], start_us: i64, out: &mut Imported) {
    let mut clock = UntimedClock::new(start_us);
    let mut cut = Chunks::new();
    for line in lines(bytes) {
        match parse(line.bytes) {
            Some(Ok((direction, data))) => {
                let ts = clock.next(direction);
                cut.push(line.number, ts, direction, &data, out);
            }
            Some(Err(reason)) => out.skipped.push(Skipped {
                line: line.number,
                reason: reason.to_string(),
            }),
            None => {
                let text = String::from_utf8_lossy(line.bytes);
                if !CHATTER.iter().any(|c| text.trim_start().starts_with(c)) {
                    out.skipped.push(Skipped {
                        line: line.number,
                        reason: format!("not a libmodbus frame line: {:?}", show(line.bytes)),
                    });
                }
            }
        }
    }
    cut.finish(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_directions_and_damage() {
        assert_eq!(
            parse(b"[01][03][00][00][00][02][C4][0B]"),
            Some(Ok((
                Direction::Outbound,
                vec![1, 3, 0, 0, 0, 2, 0xC4, 0x0B]
            )))
        );
        assert_eq!(
            parse(b"<01><83><02>"),
            Some(Ok((Direction::Inbound, vec![1, 0x83, 2])))
        );
        assert!(matches!(parse(b"[01][03"), Some(Err(_))));
        assert!(matches!(parse(b"<01>[03]"), Some(Err(_))));
        assert_eq!(parse(b"Waiting for a confirmation..."), None);
    }
}
