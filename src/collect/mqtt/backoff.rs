//! The MQTT source reconnects with the crate's one backoff.

pub use crate::model::backoff::Backoff;
