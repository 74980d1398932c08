//! Writes captured frames as pcapng (see the module docs for the layout).

use std::borrow::Cow;
use std::io::Write;
use std::time::Duration;

use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::{DataLink, Endianness};

use super::{CapturedFrame, Direction};

/// EPB flags, bits 0–1 (pcapng spec §4.3.1): 01 inbound, 10 outbound, 00 not known.
pub(super) const FLAG_INBOUND: u32 = 0b01;
pub(super) const FLAG_OUTBOUND: u32 = 0b10;
pub(super) const DIRECTION_MASK: u32 = 0b11;

/// if_tsresol 9: timestamps count nanoseconds, the unit the pcap-file crate hands over.
const TSRESOL_NANOS: u8 = 9;

pub struct CaptureWriter<W: Write> {
    inner: PcapNgWriter<W>,
}

impl<W: Write> CaptureWriter<W> {
    /// Starts a capture: section header and the one USER0 interface.
    pub fn new(out: W) -> std::io::Result<CaptureWriter<W>> {
        let mut inner = PcapNgWriter::with_endianness(out, Endianness::Little).map_err(to_io)?;
        let interface = InterfaceDescriptionBlock {
            linktype: DataLink::USER0,
            snaplen: 0,
            options: vec![InterfaceDescriptionOption::IfTsResol(TSRESOL_NANOS)],
        };
        inner.write_pcapng_block(interface).map_err(to_io)?;
        Ok(CaptureWriter { inner })
    }

    pub fn write(&mut self, frame: &CapturedFrame) -> std::io::Result<()> {
        let flags = match frame.direction {
            Direction::Inbound => FLAG_INBOUND,
            Direction::Outbound => FLAG_OUTBOUND,
            Direction::Unknown => 0,
        };
        let options = if flags == 0 {
            Vec::new()
        } else {
            vec![EnhancedPacketOption::Flags(flags)]
        };
        // pcapng cannot place a frame before 1970; such a clock is wrong anyway
        let since_epoch = Duration::from_micros(u64::try_from(frame.ts_us).unwrap_or(0));
        let len = u32::try_from(frame.bytes.len()).unwrap_or(u32::MAX);
        let packet = EnhancedPacketBlock {
            interface_id: 0,
            timestamp: since_epoch,
            original_len: len,
            data: Cow::Borrowed(&frame.bytes),
            options,
        };
        self.inner.write_pcapng_block(packet).map_err(to_io)?;
        Ok(())
    }

    pub fn get_mut(&mut self) -> &mut W {
        self.inner.get_mut()
    }

    pub fn into_inner(self) -> W {
        self.inner.into_inner()
    }
}

fn to_io(error: pcap_file::PcapError) -> std::io::Error {
    match error {
        pcap_file::PcapError::IoError(io) => io,
        other => std::io::Error::other(other.to_string()),
    }
}
