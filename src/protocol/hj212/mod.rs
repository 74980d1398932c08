//! HJ 212-2017 packet codec, shared by the uplink sink (plant → bureau platform), the
//! listener collector (bureau side) and the MQTT collector.
//!
//! - [`encode`] writes strict, standard-conforming packets; [`split`] cuts messages over 1024
//!   bytes into PNUM/PNO parts and [`Reassembler`] joins them again.
//! - [`decode`] reads one packet, tolerant of what real loggers send, exact about where a bad
//!   packet goes wrong; [`Framer`] finds packets in a TCP or serial byte stream.
//! - [`describe`] prints a packet field by field for a technician.

pub mod codes;
mod cp;
mod crc;
mod describe;
mod error;
mod framer;
mod packet;
mod split;
mod time;

pub use codes::{CodeEdition, CommandCode, SystemCode};
pub use cp::{CommandParams, CpGroup, Factor, FactorValue, FieldKind};
pub use crc::crc16_hj212;
pub use describe::describe;
pub use error::{DecodeError, DecodeErrorKind, EncodeError};
pub use framer::{Frame, FrameError, Framer};
pub use packet::{decode, decode_with_limit, encode, Packet, PacketFlag};
pub use split::{split, Reassembler, ReassemblyError};
pub use time::{format_data_time, format_qn, parse_data_time, parse_qn};

/// Largest data segment one packet may carry (HJ 212-2017); longer messages are split.
pub const MAX_DATA_LEN: usize = 1024;
