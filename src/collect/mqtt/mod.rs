//! MQTT collector: subscribes to a broker and turns JSON, InfluxDB line protocol, plain
//! number and HJ 212 payloads into samples. QoS 1 messages are acknowledged only after
//! their readings (or their dead letter) are committed, with a persistent session, so a
//! broker, network or cemsd restart means redelivery, never loss; redelivered readings are
//! recognised (see [`dedupe`]) so each is stored once.
//!
//! Retained messages the broker sends on subscribing are skipped (and acknowledged): they
//! are copies of earlier messages, and for payloads without a time their reading time is
//! unknown.

mod decode;
mod hj212_packet;
mod json;
mod line_protocol;
pub mod payload;
mod plain;
mod source;
pub mod stats;
mod tls;

pub use decode::{Decoded, Decoder};
pub use source::MqttSource;
pub use stats::{SourceSnapshot, SourceStats};
