//! Cuts the bytes a port read and wrote into RTU frames. A frame ends where its function code
//! and byte count say it ends and its CRC checks; bytes that form no such frame (noise, a
//! truncated reply) end at the next silence or change of direction, so they are kept as one
//! record instead of being lost.

use std::time::Duration;

use super::{CapturedFrame, Direction};
use crate::protocol::modbus::frame::{self, crc_ok, frame_len, FrameLen};

/// The least silence that separates two pieces of noise: USB serial adapters deliver one
/// frame in chunks up to 16 ms apart, far above 3.5 characters at most baud rates.
const MIN_SILENCE: Duration = Duration::from_millis(20);

#[derive(Debug)]
struct Pending {
    direction: Direction,
    last_us: i64,
    bytes: Vec<u8>,
}

/// Pure: the caller passes each chunk's time.
#[derive(Debug)]
pub struct FrameSplitter {
    silence_us: i64,
    pending: Option<Pending>,
}

impl FrameSplitter {
    /// `inter_frame` is the line's own silent interval; the splitter uses at least 20 ms.
    pub fn new(inter_frame: Duration) -> FrameSplitter {
        let silence = inter_frame.max(MIN_SILENCE);
        FrameSplitter {
            silence_us: i64::try_from(silence.as_micros()).unwrap_or(i64::MAX),
            pending: None,
        }
    }

    /// Takes `bytes` that went `direction` at `ts_us`; returns the frames they completed.
    pub fn push(&mut self, ts_us: i64, direction: Direction, bytes: &[u8]) -> Vec<CapturedFrame> {
        let mut done = Vec::new();
        if let Some(p) = &self.pending {
            if p.direction != direction || ts_us - p.last_us > self.silence_us {
                done.extend(self.flush());
            }
        }
        let pending = self.pending.get_or_insert_with(|| Pending {
            direction,
            last_us: ts_us,
            bytes: Vec::new(),
        });
        pending.last_us = ts_us;
        pending.bytes.extend_from_slice(bytes);
        let wire = match direction {
            Direction::Outbound => frame::Direction::Request,
            Direction::Inbound | Direction::Unknown => frame::Direction::Response,
        };
        while let FrameLen::Known(len) = frame_len(&pending.bytes, wire) {
            match pending.bytes.get(..len) {
                Some(candidate) if crc_ok(candidate) => {
                    let rest = pending.bytes.split_off(len);
                    done.push(CapturedFrame {
                        ts_us,
                        direction,
                        bytes: std::mem::replace(&mut pending.bytes, rest),
                    });
                }
                _ => break,
            }
        }
        if pending.bytes.is_empty() {
            self.pending = None;
        }
        done
    }

    /// Whatever is pending, as one record (a truncated frame, noise).
    pub fn flush(&mut self) -> Option<CapturedFrame> {
        self.pending.take().map(|p| CapturedFrame {
            ts_us: p.last_us,
            direction: p.direction,
            bytes: p.bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: [u8; 8] = [1, 3, 0, 0, 0, 2, 0xC4, 0x0B];
    const REPLY: [u8; 9] = [1, 3, 4, 0x1C, 0xD5, 0x3F, 0x8E, 0x7D, 0xCF];

    fn splitter() -> FrameSplitter {
        FrameSplitter::new(Duration::from_micros(4_010))
    }

    #[test]
    fn a_reply_in_chunks_becomes_one_frame_at_its_last_byte() {
        let mut s = splitter();
        assert_eq!(s.push(0, Direction::Outbound, &REQUEST).len(), 1);
        assert_eq!(s.push(10_000, Direction::Inbound, &REPLY[..3]), []);
        let done = s.push(14_000, Direction::Inbound, &REPLY[3..]);
        assert_eq!(
            done,
            [CapturedFrame {
                ts_us: 14_000,
                direction: Direction::Inbound,
                bytes: REPLY.to_vec()
            }]
        );
        assert_eq!(s.flush(), None);
    }

    #[test]
    fn back_to_back_frames_in_one_chunk_are_separated() {
        let mut s = splitter();
        let both = [REPLY.as_slice(), REPLY.as_slice()].concat();
        let done = s.push(5, Direction::Inbound, &both);
        assert_eq!(done.len(), 2);
        assert!(done.iter().all(|f| f.bytes == REPLY));
    }

    #[test]
    fn a_truncated_reply_is_kept_when_the_next_request_goes_out() {
        let mut s = splitter();
        assert_eq!(s.push(0, Direction::Inbound, &REPLY[..5]), []);
        let done = s.push(500_000, Direction::Outbound, &REQUEST);
        assert_eq!(
            done,
            [
                CapturedFrame {
                    ts_us: 0,
                    direction: Direction::Inbound,
                    bytes: REPLY[..5].to_vec()
                },
                CapturedFrame {
                    ts_us: 500_000,
                    direction: Direction::Outbound,
                    bytes: REQUEST.to_vec()
                }
            ]
        );
    }

    #[test]
    fn noise_ends_at_silence() {
        let mut s = splitter();
        assert_eq!(s.push(0, Direction::Inbound, &[0x00, 0xFF]), []);
        // 30 ms later (> 20 ms) a clean reply: the noise is its own record
        let done = s.push(30_000, Direction::Inbound, &REPLY);
        assert_eq!(done.len(), 2);
        assert_eq!(done[0].bytes, [0x00, 0xFF]);
        assert_eq!(done[1].bytes, REPLY);
    }
}
