//! Collectors: each talks to one kind of source and emits samples, never normalising them.

pub mod modbus;
pub mod mqtt;
pub mod tcp;
