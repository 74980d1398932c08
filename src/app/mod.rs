//! The command line and the daemon that wires collectors, pipeline, store and sinks.

pub mod cli;
pub mod daemon;
pub mod dead_letters;
pub mod resume;
pub mod retention;
pub mod verify;
