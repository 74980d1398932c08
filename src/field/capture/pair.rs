//! Frames to transactions: each read request with the reply that answers it, as the live RTU
//! link decides it (same unit, same function, the byte count the request implies, valid
//! CRC). Replies nobody asked for in the capture — a bus sniffed while another master polls —
//! come out on their own, for the caller to place by their byte count.

use std::collections::HashSet;

use super::import::find_frames;
use super::{CapturedFrame, Direction};
use crate::protocol::modbus::frame::{crc_ok, frame_len, Direction as Wire, FrameLen};

/// A read of `count` registers or bits from `start` with function `function` (1–4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadRequest {
    pub unit: u8,
    pub function: u8,
    pub start: u16,
    pub count: u16,
    pub ts_us: i64,
}

impl ReadRequest {
    /// Data bytes a reply to this read carries.
    pub fn reply_byte_count(&self) -> usize {
        if matches!(self.function, 0x01 | 0x02) {
            usize::from(self.count).div_ceil(8)
        } else {
            usize::from(self.count) * 2
        }
    }
}

/// What came back for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The data bytes of a valid reply (after the byte count, before the CRC).
    Data(Vec<u8>),
    Exception(u8),
    /// Only damaged bytes: a bad CRC, a truncated reply, noise.
    Damaged,
    /// Nothing before the next request or the end of the capture.
    Silence,
}

/// One transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub unit: u8,
    pub function: u8,
    /// `None` for a reply whose request is not in the capture.
    pub request: Option<ReadRequest>,
    pub answer: Answer,
    /// When the answer arrived; for silence, when the request went out.
    pub ts_us: i64,
}

/// What the frames of a capture were.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PairStats {
    /// Records in the capture.
    pub frames: u64,
    /// Read requests (functions 1–4).
    pub requests: u64,
    /// CRC-valid replies, exceptions included.
    pub replies: u64,
    /// Frame-shaped records whose CRC is wrong.
    pub crc_errors: u64,
    /// Bytes that form no frame.
    pub noise_bytes: u64,
    pub exceptions: u64,
    /// Requests that got nothing at all.
    pub silent: u64,
    /// Replies to no request in the capture: late ones (their request timed out) and, on a
    /// sniffed bus, every reply.
    pub unpaired: u64,
    /// Frames of other functions (writes, diagnostics).
    pub other: u64,
}

struct Pending {
    request: ReadRequest,
    damaged: bool,
}

/// Pairs frames in capture order.
#[derive(Default)]
pub struct Pairer {
    pending: Option<Pending>,
    /// (unit, function) pairs a request was seen for: a reply for one of them without a
    /// pending request is late, not sniffed.
    requested: HashSet<(u8, u8)>,
    stats: PairStats,
}

impl Pairer {
    pub fn new() -> Pairer {
        Pairer::default()
    }

    pub fn stats(&self) -> PairStats {
        self.stats
    }

    pub fn push(&mut self, frame: &CapturedFrame, out: &mut Vec<Exchange>) {
        self.stats.frames += 1;
        let bytes = frame.bytes.as_slice();
        if crc_ok(bytes) {
            self.valid(frame.ts_us, frame.direction, bytes, out);
            return;
        }
        // a record the live splitter could not cut: noise glued to a frame, or damage
        let found = find_frames(bytes);
        let mut next = 0;
        for f in &found {
            self.garbage(&bytes[next..f.offset]);
            let direction = match frame.direction {
                Direction::Unknown => f.direction,
                given => given,
            };
            self.valid(
                frame.ts_us,
                direction,
                &bytes[f.offset..f.offset + f.len],
                out,
            );
            next = f.offset + f.len;
        }
        self.garbage(&bytes[next..]);
    }

    /// Bytes that form no valid frame: a bad CRC if they have a frame's length, else noise.
    /// Either spoils the pending read, as on the live link.
    fn garbage(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let frame_shaped = [Wire::Request, Wire::Response]
            .into_iter()
            .any(|wire| frame_len(bytes, wire) == FrameLen::Known(bytes.len()));
        if frame_shaped {
            self.stats.crc_errors += 1;
        } else {
            self.stats.noise_bytes += bytes.len() as u64;
        }
        if let Some(pending) = &mut self.pending {
            pending.damaged = true;
        }
    }

    fn valid(&mut self, ts_us: i64, direction: Direction, bytes: &[u8], out: &mut Vec<Exchange>) {
        let unit = bytes[0];
        let function = bytes[1];
        let is_request = match direction {
            Direction::Outbound => true,
            Direction::Inbound => false,
            Direction::Unknown => {
                !self.answers_pending(bytes)
                    && frame_len(bytes, Wire::Request) == FrameLen::Known(bytes.len())
            }
        };
        if is_request {
            self.close(out);
            if matches!(function, 0x01..=0x04) && bytes.len() == 8 {
                let request = ReadRequest {
                    unit,
                    function,
                    start: u16::from_be_bytes([bytes[2], bytes[3]]),
                    count: u16::from_be_bytes([bytes[4], bytes[5]]),
                    ts_us,
                };
                self.stats.requests += 1;
                self.requested.insert((unit, function));
                self.pending = Some(Pending {
                    request,
                    damaged: false,
                });
            } else {
                self.stats.other += 1;
            }
            return;
        }
        let base = function & 0x7F;
        let answer = if function & 0x80 != 0 && bytes.len() == 5 {
            self.stats.exceptions += 1;
            Answer::Exception(bytes[2])
        } else if matches!(function, 0x01..=0x04) && bytes.len() == 5 + usize::from(bytes[2]) {
            Answer::Data(bytes[3..bytes.len() - 2].to_vec())
        } else {
            self.stats.other += 1;
            return;
        };
        self.stats.replies += 1;
        if self.answers_pending(bytes) {
            if let Some(pending) = self.pending.take() {
                out.push(Exchange {
                    unit,
                    function: base,
                    request: Some(pending.request),
                    answer,
                    ts_us,
                });
            }
            return;
        }
        self.stats.unpaired += 1;
        if !self.requested.contains(&(unit, base)) {
            out.push(Exchange {
                unit,
                function: base,
                request: None,
                answer,
                ts_us,
            });
        }
    }

    /// Whether `bytes` (CRC-valid) is the reply the pending request waits for.
    fn answers_pending(&self, bytes: &[u8]) -> bool {
        let Some(pending) = &self.pending else {
            return false;
        };
        let request = &pending.request;
        if bytes[0] != request.unit {
            return false;
        }
        if bytes[1] == request.function | 0x80 {
            return bytes.len() == 5;
        }
        bytes[1] == request.function
            && usize::from(bytes[2]) == request.reply_byte_count()
            && bytes.len() == 5 + request.reply_byte_count()
    }

    /// The pending request got no valid answer.
    fn close(&mut self, out: &mut Vec<Exchange>) {
        if let Some(pending) = self.pending.take() {
            let answer = if pending.damaged {
                Answer::Damaged
            } else {
                self.stats.silent += 1;
                Answer::Silence
            };
            out.push(Exchange {
                unit: pending.request.unit,
                function: pending.request.function,
                request: Some(pending.request),
                answer,
                ts_us: pending.request.ts_us,
            });
        }
    }

    /// Ends the capture: a request still waiting got nothing.
    pub fn finish(&mut self, out: &mut Vec<Exchange>) {
        self.close(out);
    }
}

/// Every exchange of `frames`, with the counts.
pub fn pair(frames: &[CapturedFrame]) -> (Vec<Exchange>, PairStats) {
    let mut pairer = Pairer::new();
    let mut out = Vec::with_capacity(frames.len() / 2 + 1);
    for frame in frames {
        pairer.push(frame, &mut out);
    }
    pairer.finish(&mut out);
    (out, pairer.stats())
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: [u8; 8] = [1, 3, 0, 0, 0, 2, 0xC4, 0x0B];
    const REPLY: [u8; 9] = [1, 3, 4, 0x1C, 0xD5, 0x3F, 0x8E, 0x7D, 0xCF];

    fn frame(ts_us: i64, direction: Direction, bytes: &[u8]) -> CapturedFrame {
        CapturedFrame {
            ts_us,
            direction,
            bytes: bytes.to_vec(),
        }
    }

    fn with_crc(body: &[u8]) -> Vec<u8> {
        let crc = crate::protocol::modbus::frame::crc16(body);
        [body, &crc.to_le_bytes()].concat()
    }

    #[test]
    fn request_and_reply_pair_and_silence_is_reported() {
        let request_2 = with_crc(&[2, 3, 0, 0, 0, 2]);
        let (exchanges, stats) = pair(&[
            frame(0, Direction::Outbound, &REQUEST),
            frame(40, Direction::Inbound, &REPLY),
            frame(100, Direction::Outbound, &request_2),
        ]);
        assert_eq!(exchanges.len(), 2);
        assert_eq!(
            exchanges[0].answer,
            Answer::Data(vec![0x1C, 0xD5, 0x3F, 0x8E])
        );
        assert_eq!(exchanges[0].ts_us, 40);
        assert_eq!(
            exchanges[0].request.map(|r| (r.start, r.count)),
            Some((0, 2))
        );
        assert_eq!(exchanges[1].answer, Answer::Silence);
        assert_eq!(exchanges[1].unit, 2);
        assert_eq!(
            (stats.frames, stats.requests, stats.replies, stats.silent),
            (3, 2, 1, 1)
        );
    }

    #[test]
    fn damage_exceptions_and_late_replies_are_counted() {
        let mut bad = REPLY;
        bad[8] ^= 0xA5;
        let exception = with_crc(&[1, 0x83, 2]);
        let (exchanges, stats) = pair(&[
            frame(0, Direction::Outbound, &REQUEST),
            frame(10, Direction::Inbound, &bad),
            frame(20, Direction::Outbound, &REQUEST),
            frame(30, Direction::Inbound, &exception),
            frame(40, Direction::Outbound, &REQUEST),
            // noise glued to the reply in one record: the reply is still found
            frame(
                50,
                Direction::Inbound,
                &[&[0x00, 0xFF][..], &REPLY].concat(),
            ),
            // a second copy arrives late: its request was answered already
            frame(60, Direction::Inbound, &REPLY),
        ]);
        let answers: Vec<_> = exchanges.iter().map(|e| e.answer.clone()).collect();
        assert_eq!(
            answers,
            [
                Answer::Damaged,
                Answer::Exception(2),
                Answer::Data(vec![0x1C, 0xD5, 0x3F, 0x8E])
            ]
        );
        assert_eq!(stats.crc_errors, 1);
        assert_eq!(stats.noise_bytes, 2);
        assert_eq!(stats.exceptions, 1);
        assert_eq!(stats.unpaired, 1);
    }

    #[test]
    fn sniffed_replies_without_requests_come_out_alone() {
        let (exchanges, stats) = pair(&[frame(0, Direction::Unknown, &REPLY)]);
        assert_eq!(stats.unpaired, 1);
        assert_eq!(exchanges.len(), 1);
        assert_eq!(exchanges[0].request, None);
        // direction unknown: the request is recognised by its shape, the reply by answering it
        let (exchanges, _) = pair(&[
            frame(0, Direction::Unknown, &REQUEST),
            frame(1, Direction::Unknown, &REPLY),
        ]);
        assert_eq!(exchanges.len(), 1);
        assert!(exchanges[0].request.is_some());
    }
}
