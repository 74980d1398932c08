//! Reads captures: cemsd's pcapng, and classic pcap as modbus-sniffer writes it.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::Block;
use pcap_file::pcapng::PcapNgReader;
use pcap_file::DataLink;

use super::writer::{DIRECTION_MASK, FLAG_INBOUND, FLAG_OUTBOUND};
use super::{CapturedFrame, Direction, LINKTYPE_USER0};

/// First four bytes of a pcapng file (the section header block type).
const PCAPNG_MAGIC: [u8; 4] = [0x0A, 0x0D, 0x0D, 0x0A];

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("not a pcap or pcapng capture: {0}")]
    NotACapture(String),
    #[error("link type {0} is not raw Modbus RTU (USER0, 147)")]
    WrongLinkType(u32),
    #[error("damaged capture after {frames} frames: {detail}")]
    Damaged { frames: usize, detail: String },
}

enum Format<R: Read> {
    Pcap(PcapReader<R>),
    PcapNg(PcapNgReader<R>),
}

/// Frames of one capture, in file order. Stops at the first damaged record (typically the
/// tail of a file whose writer was killed), after yielding the error once.
pub struct CaptureReader<R: Read> {
    format: Format<std::io::Chain<std::io::Cursor<[u8; 4]>, R>>,
    frames: usize,
    done: bool,
}

impl<R: Read> CaptureReader<R> {
    pub fn new(mut input: R) -> Result<CaptureReader<R>, CaptureError> {
        let mut magic = [0u8; 4];
        input
            .read_exact(&mut magic)
            .map_err(|e| CaptureError::NotACapture(format!("cannot read the header: {e}")))?;
        let input = std::io::Cursor::new(magic).chain(input);
        let format = if magic == PCAPNG_MAGIC {
            Format::PcapNg(
                PcapNgReader::new(input).map_err(|e| CaptureError::NotACapture(e.to_string()))?,
            )
        } else {
            let reader =
                PcapReader::new(input).map_err(|e| CaptureError::NotACapture(e.to_string()))?;
            let link = u32::from(reader.header().datalink);
            if link != LINKTYPE_USER0 {
                return Err(CaptureError::WrongLinkType(link));
            }
            Format::Pcap(reader)
        };
        Ok(CaptureReader {
            format,
            frames: 0,
            done: false,
        })
    }

    fn damaged(&mut self, detail: String) -> Option<Result<CapturedFrame, CaptureError>> {
        self.done = true;
        Some(Err(CaptureError::Damaged {
            frames: self.frames,
            detail,
        }))
    }
}

impl<R: Read> Iterator for CaptureReader<R> {
    type Item = Result<CapturedFrame, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let frame = match &mut self.format {
            Format::Pcap(reader) => match reader.next_packet()? {
                Ok(packet) => CapturedFrame {
                    ts_us: micros(packet.timestamp.as_micros()),
                    direction: Direction::Unknown,
                    bytes: packet.data.into_owned(),
                },
                Err(e) => return self.damaged(e.to_string()),
            },
            Format::PcapNg(reader) => loop {
                let block = match reader.next_block()? {
                    Ok(block) => block.into_owned(),
                    Err(e) => return self.damaged(e.to_string()),
                };
                let Block::EnhancedPacket(packet) = block else {
                    continue;
                };
                let Some(interface) = reader.packet_interface(&packet) else {
                    let detail = format!("packet on undeclared interface {}", packet.interface_id);
                    return self.damaged(detail);
                };
                let link = u32::from(interface.linktype);
                if interface.linktype != DataLink::USER0 {
                    self.done = true;
                    return Some(Err(CaptureError::WrongLinkType(link)));
                }
                let resolution = interface.options.iter().find_map(|o| match o {
                    InterfaceDescriptionOption::IfTsResol(r) => Some(*r),
                    _ => None,
                });
                // the crate hands the raw timestamp units over as nanoseconds
                let Some(ts_us) = units_to_micros(packet.timestamp.as_nanos(), resolution) else {
                    return self.damaged(format!("unusable timestamp resolution {resolution:?}"));
                };
                let flags = packet.options.iter().find_map(|o| match o {
                    EnhancedPacketOption::Flags(f) => Some(f),
                    _ => None,
                });
                let direction = match flags.map(|f| f & DIRECTION_MASK) {
                    Some(FLAG_INBOUND) => Direction::Inbound,
                    Some(FLAG_OUTBOUND) => Direction::Outbound,
                    _ => Direction::Unknown,
                };
                break CapturedFrame {
                    ts_us,
                    direction,
                    bytes: packet.data.into_owned(),
                };
            },
        };
        self.frames += 1;
        Some(Ok(frame))
    }
}

fn micros(us: u128) -> i64 {
    i64::try_from(us).unwrap_or(i64::MAX)
}

/// Timestamp units to microseconds under pcapng's `if_tsresol` (default 6, i.e. µs): the
/// high bit chooses powers of two, else powers of ten.
fn units_to_micros(units: u128, resolution: Option<u8>) -> Option<i64> {
    let resolution = resolution.unwrap_or(6);
    let exponent = u32::from(resolution & 0x7F);
    let us = if resolution & 0x80 != 0 {
        let per_second = 1u128.checked_shl(exponent)?;
        units.checked_mul(1_000_000)? / per_second
    } else if exponent >= 6 {
        units / 10u128.checked_pow(exponent - 6)?
    } else {
        units.checked_mul(10u128.checked_pow(6 - exponent)?)?
    };
    i64::try_from(us).ok()
}

/// Every frame of the capture at `path`. A damaged tail ends the list without failing it;
/// the error says how many frames came before it.
pub fn read_file(path: &Path) -> Result<(Vec<CapturedFrame>, Option<CaptureError>), CaptureError> {
    let file = File::open(path).map_err(|e| CaptureError::Io(path.to_path_buf(), e))?;
    let mut frames = Vec::new();
    for item in CaptureReader::new(BufReader::new(file))? {
        match item {
            Ok(frame) => frames.push(frame),
            Err(error) => return Ok((frames, Some(error))),
        }
    }
    Ok((frames, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::capture::CaptureWriter;
    use proptest::prelude::*;

    fn frame(ts_us: i64, direction: Direction, bytes: &[u8]) -> CapturedFrame {
        CapturedFrame {
            ts_us,
            direction,
            bytes: bytes.to_vec(),
        }
    }

    fn written(frames: &[CapturedFrame]) -> Vec<u8> {
        let mut writer = CaptureWriter::new(Vec::new()).unwrap_or_else(|e| panic!("writer: {e}"));
        for f in frames {
            writer.write(f).unwrap_or_else(|e| panic!("write: {e}"));
        }
        writer.into_inner()
    }

    fn read_all(bytes: &[u8]) -> Vec<Result<CapturedFrame, String>> {
        match CaptureReader::new(bytes) {
            Ok(reader) => reader.map(|r| r.map_err(|e| e.to_string())).collect(),
            Err(e) => vec![Err(e.to_string())],
        }
    }

    #[test]
    fn frames_round_trip_with_time_and_direction() {
        // 2026-01-01T00:00:00.000123Z and a reply 38.2 ms later
        let frames = [
            frame(
                1_767_225_600_000_123,
                Direction::Outbound,
                &[1, 3, 0, 0, 0, 2, 0xC4, 0x0B],
            ),
            frame(
                1_767_225_600_038_323,
                Direction::Inbound,
                &[1, 3, 4, 0x1C, 0xD5, 0x3F, 0x8E, 0x7D, 0xCF],
            ),
            frame(1_767_225_600_050_000, Direction::Unknown, &[0xFF]),
        ];
        let bytes = written(&frames);
        assert_eq!(&bytes[..4], &PCAPNG_MAGIC);
        let back: Vec<_> = read_all(&bytes);
        assert_eq!(back, frames.iter().cloned().map(Ok).collect::<Vec<_>>());
    }

    /// A classic pcap as modbus-sniffer writes it, built byte by byte from the libpcap file
    /// format: global header (magic a1b2c3d4 little-endian, v2.4, snaplen 65535, link 147),
    /// then per record ts_sec, ts_usec, incl_len, orig_len and the bytes.
    fn classic_pcap(link: u32, records: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&0xA1B2_C3D4u32.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        for word in [0u32, 0, 65_535, link] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        for (sec, usec, data) in records {
            let len = data.len() as u32;
            for word in [*sec, *usec, len, len] {
                out.extend_from_slice(&word.to_le_bytes());
            }
            out.extend_from_slice(data);
        }
        out
    }

    #[test]
    fn classic_pcap_from_a_sniffer_reads_with_unknown_direction() {
        let request = [1u8, 3, 0, 0, 0, 2, 0xC4, 0x0B];
        let bytes = classic_pcap(147, &[(1_767_225_600, 123, &request)]);
        assert_eq!(
            read_all(&bytes),
            [Ok(frame(
                1_767_225_600_000_123,
                Direction::Unknown,
                &request
            ))]
        );
        let ethernet = classic_pcap(1, &[]);
        assert_eq!(
            read_all(&ethernet),
            [Err(
                "link type 1 is not raw Modbus RTU (USER0, 147)".to_string()
            )]
        );
    }

    #[test]
    fn a_cut_off_tail_keeps_the_frames_before_it() {
        let frames = [
            frame(
                1_000_000,
                Direction::Outbound,
                &[1, 3, 0, 0, 0, 2, 0xC4, 0x0B],
            ),
            frame(2_000_000, Direction::Inbound, &[1, 0x83, 2, 0xC0, 0xF1]),
        ];
        let bytes = written(&frames);
        let cut = &bytes[..bytes.len() - 5];
        let back = read_all(cut);
        assert_eq!(back.len(), 2, "{back:?}");
        assert_eq!(back[0], Ok(frames[0].clone()));
        assert!(
            back[1]
                .as_ref()
                .is_err_and(|e| e.contains("after 1 frames")),
            "{back:?}"
        );
    }

    #[test]
    fn timestamp_resolutions_convert_to_micros() {
        assert_eq!(units_to_micros(1_500_000_000, Some(9)), Some(1_500_000));
        assert_eq!(units_to_micros(1_500_000, None), Some(1_500_000));
        assert_eq!(units_to_micros(15, Some(1)), Some(1_500_000));
        // 2^-10 s units: 1024 units = 1 s
        assert_eq!(units_to_micros(1024, Some(0x80 | 10)), Some(1_000_000));
        assert_eq!(units_to_micros(u128::MAX, Some(0)), None);
    }

    proptest! {
        /// Whatever the bytes, reading never panics: frames or a typed error.
        #[test]
        fn arbitrary_bytes_never_panic(
            header in prop_oneof![Just(PCAPNG_MAGIC.to_vec()), Just(vec![0xD4, 0xC3, 0xB2, 0xA1])],
            body in prop::collection::vec(any::<u8>(), 0..400),
        ) {
            let bytes = [header, body].concat();
            let _ = read_all(&bytes);
        }

        /// Damage after a valid prefix: every frame before it is still read.
        #[test]
        fn truncation_keeps_whole_frames(cut in 0usize..200) {
            let frames: Vec<CapturedFrame> = (0..5)
                .map(|i| frame(i * 1_000, Direction::Inbound, &[1, 3, 2, 0, i as u8, 0, 0]))
                .collect();
            let bytes = written(&frames);
            let keep = bytes.len().saturating_sub(cut);
            let back = read_all(&bytes[..keep]);
            let good: Vec<_> = back.iter().filter_map(|r| r.as_ref().ok()).cloned().collect();
            prop_assert_eq!(&good[..], &frames[..good.len()]);
        }
    }
}
