//! Modbus collection: one task per line, device polling, schedules and line statistics.

pub mod device;
pub mod line;
pub mod link;
pub mod poll_metrics;
pub mod rtu;
pub mod schedule;
pub mod serial;
pub mod start;
pub mod tcp;
