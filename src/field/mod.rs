//! Technicians' tools: frame captures, replay of captured logs, the analyser simulator.

pub mod capture;
pub mod replay;
pub mod sim;
