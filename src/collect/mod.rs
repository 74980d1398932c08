//! Collectors: each talks to one kind of source and emits samples, never normalising them.
//!
//! Modbus: one owner task per line (a serial bus, or a connection to a network endpoint)
//! polls that line's devices in turn on their schedule, so transactions never interleave on
//! a shared RS-485 pair and a dead analyser costs only its own timeout.

pub mod device;
pub mod hj212;
pub mod line;
pub mod link;
pub mod modbus;
pub mod mqtt;
pub mod rtu;
pub mod schedule;
pub mod serial;
pub mod start;
pub mod stats;
pub mod tcp;
