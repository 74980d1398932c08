//! HJ 212-2017 packet codec, shared by the uplink sink (plant → bureau platform), the
//! listener collector (bureau side) and the MQTT collector.
//!
//! - [`encode`] writes strict, standard-conforming packets; [`split`] cuts messages over 1024
//!   bytes into PNUM/PNO parts, each with its own QN, and [`Reassembler`] joins them again.
//! - [`factor_table`] is the code table (codes, names, units, data types) both sides use;
//!   [`DataType`] writes a value in its code's type.
//! - [`masked`] is a packet's text for a log line, with the password hidden.
//! - [`decode`] reads one packet, tolerant of what real loggers send, exact about where a bad
//!   packet goes wrong; [`Framer`] finds packets in a TCP or serial byte stream.
//! - [`describe`] prints a packet field by field for a technician.

pub mod codes;
mod cp;
mod crc;
mod data_type;
mod describe;
mod error;
pub mod factor_table;
mod framer;
mod masked;
mod packet;
mod split;
mod time;

pub use codes::{CodeEdition, CommandCode, SystemCode};
pub use cp::{CommandParams, CpGroup, Factor, FactorValue, FieldKind};
pub use crc::crc16_hj212;
pub use data_type::{DataType, DoesNotFit};
pub use describe::describe;
pub use error::{DecodeError, DecodeErrorKind, EncodeError};
pub use framer::{Frame, FrameError, Framer};
pub use masked::masked;
pub use packet::{decode, decode_with_limit, encode, Packet, PacketFlag};
pub use split::{split, Incomplete, PartsKey, Pushed, Reassembler, ReassemblyError};
pub use time::{format_data_time, format_qn, parse_data_time, parse_qn};

/// Largest data segment one packet may carry (HJ 212-2017); longer messages are split.
pub const MAX_DATA_LEN: usize = 1024;
