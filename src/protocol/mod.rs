//! The codecs of the wire protocols; they depend on the model and profiles only.

pub mod hj212;
pub mod modbus;
