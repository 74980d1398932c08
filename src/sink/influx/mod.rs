//! The InfluxDB v2 write-API sink: line-protocol encoding, a small HTTP client and the
//! store-and-forward loop, one forwarder task per `[[influx]]` table.

mod client;
mod encode;
mod forwarder;
mod point;
mod prepared;
mod site_facts;
mod stats;

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::influx::TokenError;
use crate::config::SiteConfig;
use crate::model::time::system_clock;
use crate::sink::stop::join_within;
use crate::store::StoreHandle;

pub use client::{
    install_crypto_provider, parse_retry_after, payload_of, ClientError, Payload, RetryAfter,
    WriteClient, WriteOutcome,
};
pub use encode::{flag_code, EncodeError, EncodedBatch, Encoder};
pub use forwarder::Forwarder;
pub use site_facts::SiteFacts;
pub use stats::{ForwarderStats, StatsSnapshot};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// The running forwarders of `cemsd run`.
pub struct InfluxSinks {
    tasks: JoinSet<()>,
    stats: Vec<(String, Arc<ForwarderStats>)>,
    /// The longest request timeout: how long a forwarder may need to finish after a stop.
    longest_request: Duration,
}

impl InfluxSinks {
    /// Starts one forwarder per sink. Every token is read and every client built before any
    /// starts, so a mistake stops the daemon at once instead of failing later in a log.
    pub fn start(
        config: &SiteConfig,
        config_path: &Path,
        store_path: &Path,
        store: &StoreHandle,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<InfluxSinks, StartError> {
        let clock = system_clock();
        let facts = SiteFacts::of(config);
        let sinks = &config.influx;
        let mut forwarders = Vec::new();
        for sink in sinks {
            let token = sink.load_token(config_path)?;
            let seed = RandomState::new().hash_one(&sink.id);
            let forwarder = Forwarder::new(
                sink,
                facts.clone(),
                &token,
                PathBuf::from(store_path),
                store.clone(),
                clock.clone(),
                seed,
            )?;
            forwarders.push((sink.store_name(), forwarder));
        }
        let mut tasks = JoinSet::new();
        let mut stats = Vec::new();
        for (name, forwarder) in forwarders {
            stats.push((name, forwarder.stats()));
            tasks.spawn(forwarder.run(shutdown.clone()));
        }
        let longest_request = sinks.iter().map(|s| s.timeout.0).max().unwrap_or_default();
        Ok(InfluxSinks {
            tasks,
            stats,
            longest_request,
        })
    }

    /// Each forwarder's store name and live counters.
    pub fn stats(&self) -> &[(String, Arc<ForwarderStats>)] {
        &self.stats
    }

    /// Waits for the forwarders to finish their current request after the shutdown signal,
    /// then aborts any that hang; whatever they had not recorded is sent again next start.
    pub async fn stopped(mut self) {
        let limit = self.longest_request + Duration::from_secs(5);
        join_within(&mut self.tasks, limit, "influx forwarders").await;
        for (name, stats) in &self.stats {
            let s = stats.snapshot();
            tracing::info!(sink = %name, cursor = s.cursor, delivered = s.points_delivered, dead_letters = s.dead_letters, backlog = s.backlog, "influx sink totals");
        }
    }
}
