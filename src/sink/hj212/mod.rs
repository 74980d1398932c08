//! The HJ 212-2017 uplink: from the edge gateway's store to bureau platforms, one task per
//! `[[hj212]]` table, each with its own cursor (`hj212:<name>`), so a platform that is down
//! holds back nobody else.

mod forwarder;
mod history;
pub mod info;
mod progress;
mod requests;
mod session;
mod stats;
pub mod upload;
mod window;

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::hj212_uplink::PasswordError;
use crate::config::SiteConfig;
use crate::model::time::system_clock;
use crate::sink::stop::join_within;
use crate::store::StoreHandle;

pub use forwarder::{Uplink, UplinkSettings, WINDOW};
pub use stats::{UplinkSnapshot, UplinkStats};

/// The running uplinks of `cemsd run`.
pub struct Hj212Uplinks {
    tasks: JoinSet<()>,
    stats: Vec<(String, Arc<UplinkStats>)>,
    longest_timeout: Duration,
}

impl Hj212Uplinks {
    /// Starts one uplink per `[[hj212]]` table. Every password is read before any starts, so a
    /// missing file stops the daemon at once instead of failing later in a log.
    pub fn start(
        config: &SiteConfig,
        config_path: &Path,
        store_path: &Path,
        store: &StoreHandle,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<Hj212Uplinks, PasswordError> {
        let clock = system_clock();
        let mut uplinks = Vec::new();
        for sink in &config.hj212 {
            let password = sink.load_password(config_path)?;
            let settings = UplinkSettings::new(
                sink,
                password,
                sink.point_mns(&config.site, &config.stacks),
                config.site.utc_offset,
            );
            let seed = RandomState::new().hash_one(&sink.name);
            uplinks.push(Uplink::new(
                settings,
                PathBuf::from(store_path),
                store.clone(),
                clock.clone(),
                seed,
            ));
        }
        let mut tasks = JoinSet::new();
        let mut stats = Vec::new();
        for (sink, uplink) in config.hj212.iter().zip(uplinks) {
            stats.push((sink.store_name(), uplink.stats()));
            tasks.spawn(uplink.run(shutdown.clone()));
        }
        let longest_timeout = config
            .hj212
            .iter()
            .map(|s| s.ack_timeout.0)
            .max()
            .unwrap_or_default();
        Ok(Hj212Uplinks {
            tasks,
            stats,
            longest_timeout,
        })
    }

    /// Each uplink's store name and live counters.
    pub fn stats(&self) -> &[(String, Arc<UplinkStats>)] {
        &self.stats
    }

    /// Waits for the uplinks to record their cursors after the shutdown signal, then aborts
    /// any that hang; unacknowledged uploads are sent again next start.
    pub async fn stopped(mut self) {
        let limit = self.longest_timeout + Duration::from_secs(5);
        join_within(&mut self.tasks, limit, "hj212 uplinks").await;
        for (name, stats) in &self.stats {
            let s = stats.snapshot();
            tracing::info!(sink = %name, cursor = s.cursor, sent = s.packets_sent, acks = s.acks, resends = s.resends, backlog = s.backlog, "hj212 uplink totals");
        }
    }
}
