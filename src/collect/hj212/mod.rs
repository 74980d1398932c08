//! HJ 212 listener: data loggers at plants (or analysers on a serial line) send their uploads
//! here; each upload is committed to the store, then acknowledged with 9014, and holes in a
//! logger's day, hour or minute data are asked for again with history requests.

pub mod deadline;
pub mod devices;
pub mod gaps;
pub mod info;
pub mod listener;
pub mod per_source;
pub mod proxy_header;
pub mod records;
pub mod reply;
pub mod session;
pub mod stats;
pub mod throttle;

pub use devices::{Device, Devices, RegistryChange};
pub use listener::Hj212Listener;
