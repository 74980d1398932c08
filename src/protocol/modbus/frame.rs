//! Modbus RTU framing (Modbus over Serial Line V1.02, §2.5): the bytes of a read request, and
//! finding the reply to it among whatever else the line delivered — a late reply to an
//! earlier request, another unit's answer, noise — so that nothing but the answer to this
//! request is ever taken as it.

use super::plan::{BlockData, BlockTable, ReadBlock};
use crate::protocol::CRC_A001;

/// Longest RTU frame the spec allows: address, 253 bytes of PDU, CRC.
pub const MAX_FRAME_LEN: usize = 256;

/// CRC-16/MODBUS (reflected polynomial 0xA001, initial value 0xFFFF), one table lookup per
/// byte so a day of captured frames checks in milliseconds.
pub fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0xFFFF, |crc, &b| {
        (crc >> 8) ^ CRC_A001[usize::from((crc ^ u16::from(b)) as u8)]
    })
}

/// Whether the last two bytes of `frame` are the CRC of the rest (sent low byte first).
pub fn crc_ok(frame: &[u8]) -> bool {
    match frame.len().checked_sub(2) {
        Some(body) if body > 0 => {
            crc16(&frame[..body]).to_le_bytes() == [frame[body], frame[body + 1]]
        }
        _ => false,
    }
}

/// The function code that reads `table`.
pub fn function_code(table: BlockTable) -> u8 {
    match table {
        BlockTable::Coils => 0x01,
        BlockTable::DiscreteInputs => 0x02,
        BlockTable::Holding => 0x03,
        BlockTable::Input => 0x04,
    }
}

/// The RTU frame that asks unit `unit` for `block`.
pub fn encode_read(unit: u8, block: &ReadBlock) -> Vec<u8> {
    let [start_hi, start_lo] = block.start.to_be_bytes();
    let [count_hi, count_lo] = block.count.to_be_bytes();
    let mut frame = vec![
        unit,
        function_code(block.table),
        start_hi,
        start_lo,
        count_hi,
        count_lo,
    ];
    let crc = crc16(&frame);
    frame.extend_from_slice(&crc.to_le_bytes());
    frame
}

/// What a correct reply to a read carries: unit, function and data byte count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    pub unit: u8,
    pub function: u8,
    pub byte_count: u8,
}

impl Expected {
    pub fn for_read(unit: u8, block: &ReadBlock) -> Expected {
        let bytes = if block.table.is_bits() {
            block.count.div_ceil(8)
        } else {
            block.count.saturating_mul(2)
        };
        Expected {
            unit,
            function: function_code(block.table),
            // the planner keeps reads within 125 registers / 2000 bits: at most 250 bytes
            byte_count: u8::try_from(bytes).unwrap_or(u8::MAX),
        }
    }

    /// Length of the full data reply: address, function, byte count, data, CRC.
    pub fn reply_len(&self) -> usize {
        5 + usize::from(self.byte_count)
    }
}

/// What the line said in answer to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The data bytes of a valid reply (without address, function, count and CRC).
    Data(Vec<u8>),
    /// A valid exception reply with this code.
    Exception(u8),
}

/// The outcome of looking for the reply in the bytes received so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// The reply occupies `at..at + len`. Before it, `foreign` complete frames that answer
    /// something else (a late reply, another unit) and `noise` bytes that form no frame.
    Found {
        reply: Reply,
        at: usize,
        len: usize,
        foreign: u32,
        noise: usize,
    },
    /// A frame with the reply's header and length arrived with a wrong CRC: the line
    /// corrupted it, and waiting longer cannot repair it.
    BadCrc,
    /// No reply yet; more bytes may complete one.
    Incomplete,
}

/// Looks for the reply that `expected` describes in `received`, which holds every byte that
/// arrived since the request was sent. The first CRC-valid frame with the expected unit,
/// function and byte count (or the matching exception) is the reply; frames and bytes before
/// it are skipped, never mistaken for it.
pub fn scan_reply(received: &[u8], expected: &Expected) -> Scan {
    let exception_function = expected.function | 0x80;
    let mut corrupted = false;
    for at in 0..received.len() {
        let rest = &received[at..];
        if rest.first() != Some(&expected.unit) {
            continue;
        }
        let candidate = match rest.get(1) {
            Some(&f) if f == expected.function => match rest.get(2) {
                Some(&count) if count == expected.byte_count => Some(expected.reply_len()),
                _ => None,
            },
            Some(&f) if f == exception_function => Some(5),
            _ => None,
        };
        let Some(len) = candidate else { continue };
        let Some(frame) = rest.get(..len) else {
            continue;
        };
        if !crc_ok(frame) {
            corrupted = true;
            continue;
        }
        let reply = if frame[1] == exception_function {
            Reply::Exception(frame[2])
        } else {
            Reply::Data(frame[3..len - 2].to_vec())
        };
        let (foreign, noise) = classify_skipped(&received[..at]);
        return Scan::Found {
            reply,
            at,
            len,
            foreign,
            noise,
        };
    }
    if corrupted {
        Scan::BadCrc
    } else {
        Scan::Incomplete
    }
}

/// Splits bytes that preceded a reply into whole CRC-valid response frames (answers to
/// something else) and the rest (noise), for the line's counters.
pub fn classify_skipped(skipped: &[u8]) -> (u32, usize) {
    let mut foreign = 0;
    let mut noise = 0;
    let mut at = 0;
    while at < skipped.len() {
        match frame_len(&skipped[at..], Direction::Response) {
            FrameLen::Known(len) if skipped.get(at..at + len).is_some_and(crc_ok) => {
                foreign += 1;
                at += len;
            }
            _ => {
                noise += 1;
                at += 1;
            }
        }
    }
    (foreign, noise)
}

/// Which way a frame travels on the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Master to device.
    Request,
    /// Device to master.
    Response,
}

/// How long the frame starting at the first byte of `bytes` is, as far as the bytes tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameLen {
    Known(usize),
    /// The length depends on a byte that has not arrived yet.
    NeedMore,
    /// A function code whose frame length this codec does not know.
    Unknown,
}

/// The length of a request or response frame from its function code (and byte count where
/// the function has one), per the Modbus application protocol V1.1b3 §6.
pub fn frame_len(bytes: &[u8], direction: Direction) -> FrameLen {
    let Some(&function) = bytes.get(1) else {
        return FrameLen::NeedMore;
    };
    let counted = |index: usize, fixed: usize| match bytes.get(index) {
        Some(&count) => FrameLen::Known(fixed + usize::from(count)),
        None => FrameLen::NeedMore,
    };
    match (direction, function) {
        (Direction::Request, 0x01..=0x06) => FrameLen::Known(8),
        (Direction::Request, 0x0F | 0x10) => counted(6, 9),
        (Direction::Response, 0x01..=0x04) => counted(2, 5),
        (Direction::Response, 0x05 | 0x06 | 0x0F | 0x10) => FrameLen::Known(8),
        (Direction::Response, 0x81..=0xFF) => FrameLen::Known(5),
        _ => FrameLen::Unknown,
    }
}

/// The block's values from the data bytes of its reply: big-endian registers, or bits
/// least significant first within each byte. Too few bytes give `Missing`.
pub fn block_data(block: &ReadBlock, data: &[u8]) -> BlockData {
    let count = usize::from(block.count);
    if block.table.is_bits() {
        if data.len() * 8 < count {
            return BlockData::Missing;
        }
        BlockData::Bits(
            (0..count)
                .map(|i| data[i / 8] >> (i % 8) & 1 == 1)
                .collect(),
        )
    } else {
        match data.get(..count * 2) {
            Some(bytes) if data.len() == count * 2 => BlockData::Registers(
                bytes
                    .chunks_exact(2)
                    .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                    .collect(),
            ),
            _ => BlockData::Missing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holding(start: u16, count: u16) -> ReadBlock {
        ReadBlock {
            table: BlockTable::Holding,
            start,
            count,
        }
    }

    fn hex(text: &str) -> Vec<u8> {
        text.split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).unwrap_or_else(|e| panic!("{h}: {e}")))
            .collect()
    }

    #[test]
    fn request_bytes_match_a_real_device_exchange() {
        // 聚光 CEMS-2000D poll quoted in the device research notes: 01 03 00 00 00 02 C4 0B
        assert_eq!(
            encode_read(1, &holding(0, 2)),
            hex("01 03 00 00 00 02 C4 0B")
        );
        // SSCOM example from the same notes: 01 03 00 00 00 01 84 0A
        assert_eq!(
            encode_read(1, &holding(0, 1)),
            hex("01 03 00 00 00 01 84 0A")
        );
        // Modbus Poll example: 01 03 00 00 00 0A C5 CD
        assert_eq!(
            encode_read(1, &holding(0, 10)),
            hex("01 03 00 00 00 0A C5 CD")
        );
    }

    #[test]
    fn reply_of_a_real_device_decodes() {
        // 01 03 04 1C D5 3F 8E 7D CF: two registers 0x1CD5 0x3F8E
        let reply = hex("01 03 04 1C D5 3F 8E 7D CF");
        let expected = Expected::for_read(1, &holding(0, 2));
        assert_eq!(expected.reply_len(), 9);
        match scan_reply(&reply, &expected) {
            Scan::Found {
                reply: Reply::Data(data),
                at: 0,
                len: 9,
                foreign: 0,
                noise: 0,
            } => assert_eq!(
                block_data(&holding(0, 2), &data),
                BlockData::Registers(vec![0x1CD5, 0x3F8E])
            ),
            other => panic!("{other:?}"),
        }
    }

    fn reply_frame(unit: u8, function: u8, data: &[u8]) -> Vec<u8> {
        let mut frame = vec![unit, function, data.len() as u8];
        frame.extend_from_slice(data);
        let crc = crc16(&frame);
        frame.extend_from_slice(&crc.to_le_bytes());
        frame
    }

    #[test]
    fn a_late_reply_from_another_unit_is_skipped() {
        let expected = Expected::for_read(3, &holding(0, 2));
        let late = reply_frame(2, 3, &[0, 2, 0, 2]);
        let ours = reply_frame(3, 3, &[0, 3, 0, 3]);
        // the late frame alone is not our reply
        assert_eq!(scan_reply(&late, &expected), Scan::Incomplete);
        let both = [late.clone(), ours].concat();
        assert_eq!(
            scan_reply(&both, &expected),
            Scan::Found {
                reply: Reply::Data(vec![0, 3, 0, 3]),
                at: late.len(),
                len: 9,
                foreign: 1,
                noise: 0
            }
        );
    }

    #[test]
    fn a_reply_to_another_block_of_the_same_unit_is_skipped() {
        // same unit and function, but 6 registers (12 bytes) where 2 were asked for
        let expected = Expected::for_read(1, &holding(0, 2));
        let other_block = reply_frame(1, 3, &[0; 12]);
        assert_eq!(scan_reply(&other_block, &expected), Scan::Incomplete);
    }

    #[test]
    fn noise_before_the_reply_is_counted_and_skipped() {
        let expected = Expected::for_read(1, &holding(0, 2));
        let ours = reply_frame(1, 3, &[0x12, 0x34, 0x56, 0x78]);
        let noisy = [vec![0x00, 0xFF, 0x01, 0x03], ours].concat();
        assert_eq!(
            scan_reply(&noisy, &expected),
            Scan::Found {
                reply: Reply::Data(vec![0x12, 0x34, 0x56, 0x78]),
                at: 4,
                len: 9,
                foreign: 0,
                noise: 4
            }
        );
    }

    #[test]
    fn a_corrupted_crc_is_reported_at_once_and_a_truncated_reply_waits() {
        let expected = Expected::for_read(1, &holding(0, 2));
        let mut frame = reply_frame(1, 3, &[1, 2, 3, 4]);
        assert_eq!(scan_reply(&frame[..7], &expected), Scan::Incomplete);
        frame[8] ^= 0x55;
        assert_eq!(scan_reply(&frame, &expected), Scan::BadCrc);
    }

    #[test]
    fn exceptions_are_found_with_their_code() {
        let expected = Expected::for_read(1, &holding(0, 2));
        let mut frame = vec![1, 0x83, 0x02];
        let crc = crc16(&frame);
        frame.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(
            scan_reply(&frame, &expected),
            Scan::Found {
                reply: Reply::Exception(2),
                at: 0,
                len: 5,
                foreign: 0,
                noise: 0
            }
        );
    }

    #[test]
    fn bits_unpack_least_significant_first() {
        // 10 coils in 2 bytes: 0b1000_0101 → coils 0, 2, 7 on; 0b10 → coil 9 on
        let coils = ReadBlock {
            table: BlockTable::Coils,
            start: 0,
            count: 10,
        };
        assert_eq!(Expected::for_read(1, &coils).byte_count, 2);
        let expected = [
            true, false, true, false, false, false, false, true, false, true,
        ];
        assert_eq!(
            block_data(&coils, &[0b1000_0101, 0b10]),
            BlockData::Bits(expected.to_vec())
        );
        assert_eq!(block_data(&coils, &[0xFF]), BlockData::Missing);
        assert_eq!(block_data(&holding(0, 2), &[0, 1, 2]), BlockData::Missing);
    }

    #[test]
    fn frame_lengths_follow_the_function_code() {
        assert_eq!(
            frame_len(&hex("01 03"), Direction::Request),
            FrameLen::Known(8)
        );
        assert_eq!(
            frame_len(&hex("01 03"), Direction::Response),
            FrameLen::NeedMore
        );
        assert_eq!(
            frame_len(&hex("01 03 04"), Direction::Response),
            FrameLen::Known(9)
        );
        assert_eq!(
            frame_len(&hex("01 10 00 00 00 02 04"), Direction::Request),
            FrameLen::Known(13)
        );
        assert_eq!(
            frame_len(&hex("01 83"), Direction::Response),
            FrameLen::Known(5)
        );
        assert_eq!(
            frame_len(&hex("01 2B"), Direction::Response),
            FrameLen::Unknown
        );
        assert_eq!(
            frame_len(&hex("01"), Direction::Request),
            FrameLen::NeedMore
        );
    }

    #[test]
    fn crc_check_needs_a_body() {
        assert!(!crc_ok(&[]));
        assert!(!crc_ok(&[0xFF, 0xFF]));
        assert!(crc_ok(&hex("01 03 00 00 00 02 C4 0B")));
        assert!(!crc_ok(&hex("01 03 00 00 00 02 0B C4")));
    }
}
