//! The test harness shared by the integration tests (`mod support;`) and some benches
//! (`#[path = "../tests/support/mod.rs"]`).
//!
//! - [`ports`], [`time`], [`rng`], [`process`]: loopback ports, bounded waits, reproducible
//!   randomness, child processes signalled and reaped.
//! - [`daemon`]: `cemsd run` as a child process, the one way the tests start the daemon;
//!   [`http`] for its loopback endpoints; [`hj212_logger`] plays a data logger at a bureau.
//! - [`browser`]: headless Chromium on a page (DOM, screenshot, PDF).
//! - [`store`]: the SQLite store opened, filled and queried; [`replayed`]: hours of past
//!   records made by the replay tooling.
//! - [`peers`]: mosquitto, VictoriaMetrics, pymodbus, a fault-injecting write endpoint,
//!   simulators over Modbus TCP, a serial line between pty pairs.
//! - [`hj212_logger`]: a data logger on an HJ 212 link, for the listener tests;
//!   [`netns`]: hosts in network namespaces on one bridge, for the bureau topology.
//! - [`analyser`] (the test analyser, tests/fixtures/profiles/two-floats.toml) and
//!   [`collectors`] for the Modbus tests; [`site`] for pieces of site configs;
//!   [`influx`] and [`mqtt`] for the sink and source tests; [`monitored`] for a plant that
//!   forwards to VictoriaMetrics and is scraped by it (alerts, dashboards).
#![allow(dead_code, unused_imports)] // each test binary uses its own subset

pub mod analyser;
pub mod browser;
pub mod collectors;
pub mod daemon;
pub mod hj212_logger;
pub mod http;
pub mod influx;
pub mod monitored;
pub mod mqtt;
pub mod netns;
pub mod peers;
pub mod ports;
pub mod process;
pub mod replayed;
pub mod rng;
pub mod site;
pub mod store;
pub mod time;

// What the benches import from the root of the tree they mount.
pub use analyser::SimBus;
pub use influx::{sink_config, RunningForwarder};
pub use peers::mosquitto::{publish, Broker, BrokerSetup};
pub use peers::pty::{Line, WireSetup};
pub use peers::victoria::VictoriaMetrics;
pub use store::{fill_store, Writer};
pub use time::now_ms;
