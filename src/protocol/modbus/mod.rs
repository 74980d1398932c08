//! Modbus collection, pure parts: `plan` decides which reads cover a profile, `decode` turns
//! the words those reads return into values and flags, `frame` is the RTU wire format. The
//! transports only move frames.

pub mod decode;
pub mod frame;
pub mod plan;

pub use decode::{
    channel_value, decode_words, encode_channel, encode_value, status_flags, StatusData,
};
pub use plan::{plan, BlockData, BlockTable, PlanOptions, PollPlan, ReadBlock};
