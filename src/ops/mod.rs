//! Running cemsd as a service: systemd notification and watchdog, signals and config reload,
//! health, Prometheus metrics, the live status page, and log output.

pub mod devices;
pub mod health;
pub mod host;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod open_files;
mod page_assets;
pub mod process_metrics;
pub mod reload;
pub mod series;
pub mod signals;
pub mod stack_detail;
pub mod state;
pub mod status;
pub mod systemd;
pub mod terminal;
