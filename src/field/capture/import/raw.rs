//! A raw byte stream off the line (a binary dump from a serial sniffer or `cat /dev/ttyUSB0`):
//! no boundaries, no directions, no times. Frames are found by their function code, length
//! and CRC; bytes between them are noise.
//!
//! Every offset where a CRC-valid request or response starts is a candidate. Candidates are
//! not taken greedily, because noise before a frame can begin a candidate that runs into it:
//! the chosen frames are the non-overlapping set that covers the most bytes. So a frame is
//! lost only to a chance frame that overlaps it and itself has a valid CRC (1 in 65 536 per
//! offset and reading), where the bytes are ambiguous anyway.

use super::text::UntimedClock;
use super::{Imported, Skipped};
use crate::field::capture::{CapturedFrame, Direction};
use crate::protocol::modbus::frame::{crc_ok, frame_len, Direction as Wire, FrameLen};

/// One frame found in a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub offset: usize,
    pub len: usize,
    pub direction: Direction,
}

/// CRC-valid frames starting at `at`, as (length, direction).
fn candidates(bytes: &[u8], at: usize) -> impl Iterator<Item = (usize, Direction)> + '_ {
    let rest = &bytes[at..];
    [
        (Wire::Request, Direction::Outbound),
        (Wire::Response, Direction::Inbound),
    ]
    .into_iter()
    .filter_map(move |(wire, direction)| match frame_len(rest, wire) {
        FrameLen::Known(len) if rest.get(..len).is_some_and(crc_ok) => Some((len, direction)),
        _ => None,
    })
}

/// The frames in `bytes`: the non-overlapping CRC-valid frames covering the most bytes.
/// Where one frame reads both as a request and as a response (same bytes, same length),
/// it is a response if the frame before it is a request of the same unit and function.
pub fn find_frames(bytes: &[u8]) -> Vec<Found> {
    let n = bytes.len();
    // best[i]: most bytes of bytes[i..] covered by frames; choice[i]: the frame taken at i
    // when taking one covers at least as much as skipping the byte
    let mut best = vec![0usize; n + 1];
    let mut choice: Vec<Option<(usize, Direction, bool)>> = vec![None; n + 1];
    for at in (0..n).rev() {
        best[at] = best[at + 1];
        let found: Vec<_> = candidates(bytes, at).collect();
        for &(len, direction) in &found {
            let covered = len + best[at + len];
            if covered > best[at] || (covered == best[at] && choice[at].is_none()) {
                best[at] = covered;
                let both_readings = found.iter().filter(|(l, _)| *l == len).count() > 1;
                choice[at] = Some((len, direction, both_readings));
            }
        }
    }
    let mut frames: Vec<Found> = Vec::new();
    let mut at = 0;
    while at < n {
        let Some((len, direction, both_readings)) = choice[at] else {
            at += 1;
            continue;
        };
        let answers_previous = frames.last().is_some_and(|prev| {
            prev.direction == Direction::Outbound
                && bytes[prev.offset..prev.offset + 2] == bytes[at..at + 2]
        });
        let direction = match (both_readings, answers_previous) {
            (false, _) => direction,
            (true, true) => Direction::Inbound,
            (true, false) => Direction::Outbound,
        };
        frames.push(Found {
            offset: at,
            len,
            direction,
        });
        at += len;
    }
    frames
}

pub fn read(bytes: &[u8], start_us: i64, out: &mut Imported) {
    let mut clock = UntimedClock::new(start_us);
    let mut next = 0;
    for f in find_frames(bytes) {
        if f.offset > next {
            out.skipped.push(Skipped {
                line: next,
                reason: format!("{} bytes that form no frame", f.offset - next),
            });
        }
        out.frames.push(CapturedFrame {
            ts_us: clock.next(f.direction),
            direction: f.direction,
            bytes: bytes[f.offset..f.offset + f.len].to_vec(),
        });
        next = f.offset + f.len;
    }
    if bytes.len() > next {
        out.skipped.push(Skipped {
            line: next,
            reason: format!("{} bytes that form no frame", bytes.len() - next),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: [u8; 8] = [1, 3, 0, 0, 0, 2, 0xC4, 0x0B];
    const REPLY: [u8; 9] = [1, 3, 4, 0x1C, 0xD5, 0x3F, 0x8E, 0x7D, 0xCF];

    #[test]
    fn frames_between_noise_are_found_with_their_direction() {
        let stream = [&[0xFF, 0x00][..], &REQUEST, &[0x13], &REPLY, &[0x37]].concat();
        let found = find_frames(&stream);
        assert_eq!(
            found,
            [
                Found {
                    offset: 2,
                    len: 8,
                    direction: Direction::Outbound
                },
                Found {
                    offset: 11,
                    len: 9,
                    direction: Direction::Inbound
                }
            ]
        );
    }

    #[test]
    fn a_cut_frame_is_noise_and_the_next_one_is_found() {
        let stream = [&REPLY[..6], &REPLY[..]].concat();
        let found = find_frames(&stream);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].offset, 6);
    }
}
