//! Captured serial traffic: every RTU frame on a bus with its time and direction, in pcapng
//! files a technician can open in Wireshark and a test can replay.
//!
//! The format: pcapng, one interface of link type USER0 (147) with nanosecond timestamps,
//! one Enhanced Packet Block per RTU frame holding its raw bytes including the CRC. Direction
//! is the standard EPB flags word (bits 0–1: 01 inbound = from a device to cemsd, 10 outbound
//! = a request cemsd sent), which Wireshark shows and classic pcap cannot carry. Classic pcap
//! files with link type 147, as modbus-sniffer writes them, are read too, with direction
//! unknown. In Wireshark, map DLT User 0 to `mbrtu` to decode the frames.

pub mod import;
pub mod pair;
mod reader;
mod rotate;
mod split;
mod tee;
mod writer;

pub use reader::{read_file, CaptureError, CaptureReader};
pub use rotate::{capture_file_name, CaptureSink, DailyCapture};
pub use split::FrameSplitter;
pub use tee::CaptureStream;
pub use writer::CaptureWriter;

/// Link type USER0: the value modbus-sniffer writes for raw RTU frames.
pub const LINKTYPE_USER0: u32 = 147;

/// Which way a frame went, seen from cemsd as the bus master.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From cemsd onto the bus: requests.
    Outbound,
    /// From the bus to cemsd: replies, noise, other masters' traffic.
    Inbound,
    /// The capture does not say (a passive sniffer's classic pcap).
    Unknown,
}

/// One frame as it crossed the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedFrame {
    /// Microseconds since the Unix epoch, UTC.
    pub ts_us: i64,
    pub direction: Direction,
    /// Raw bytes, CRC included, exactly as on the wire.
    pub bytes: Vec<u8>,
}
