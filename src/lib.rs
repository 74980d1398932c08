//! cemsd: continuous emissions monitoring daemon.
//!
//! Data flows one way through the modules, each layer depending only on those above it here:
//! `model` (samples, records, time) → `config` (site schema, profiles, secrets) → `protocol`
//! (Modbus and HJ 212 codecs) → `collect` (devices, brokers, loggers → one batch type) →
//! `process` (HJ 75 normalisation, quality, aggregation) → `pipeline` (the only writer of
//! ingested data) → `store` → `audit` (the trail of parameter changes) → `sink` (InfluxDB, HJ 212 uplinks); `report`, `field` (capture,
//! replay, simulator) and `ops` (live board, HTTP, systemd) read from them; `app` wires it all.

pub mod app;
pub mod audit;
pub mod collect;
pub mod config;
pub mod field;
pub mod model;
pub mod ops;
pub mod pipeline;
pub mod process;
pub mod protocol;
pub mod report;
pub mod sink;
pub mod store;
