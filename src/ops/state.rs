//! What the operations side (HTTP, watchdog) can see of the running daemon, and the reads
//! that gather it. The running config and its live state form a [`Generation`], replaced
//! whole on a reload, so a reader never sees a new config with the old devices' state.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::watch;

use super::devices::{judge_silence, known_devices, KnownDevice};
use super::health::{SinkFacts, StoreFacts, StoreState, StoreWatch};
use super::status::StackLimits;
use crate::collect::mqtt::{SourceSnapshot, SourceStats};
use crate::config::SiteConfig;
use crate::model::Timestamp;
use crate::pipeline::live::{DeviceLive, Live};
/// The status page reads through the store's reader.
use crate::store::StoreReader;
use crate::store::{Store, StoreError, StoreHandle};

/// One running config and the live state of its collectors.
#[derive(Debug)]
pub struct Generation {
    pub config: Arc<SiteConfig>,
    pub live: Arc<Live>,
    pub limits: StackLimits,
    /// Counters of the MQTT sources, by source id.
    pub mqtt: Vec<(String, Arc<SourceStats>)>,
    /// The HJ 212 uplinks' live state, by store name.
    pub uplinks: Vec<(String, Arc<dyn UplinkState>)>,
}

/// What the status page shows of an HJ 212 uplink, read from its live counters (the
/// uplink implements it, so this module needs nothing of the uplink's).
pub trait UplinkState: Send + Sync + std::fmt::Debug {
    fn connected(&self) -> bool;
    /// When the platform last acknowledged an upload.
    fn last_ack(&self) -> Option<Timestamp>;
}

impl Generation {
    pub fn new(config: Arc<SiteConfig>, live: Arc<Live>) -> Generation {
        Generation {
            config,
            live,
            limits: StackLimits::new(),
            mqtt: Vec::new(),
            uplinks: Vec::new(),
        }
    }

    /// With the counters of the HJ 212 uplinks, for the status page.
    pub fn with_uplinks(mut self, uplinks: Vec<(String, Arc<dyn UplinkState>)>) -> Generation {
        self.uplinks = uplinks;
        self
    }

    /// With the counters of the MQTT sources, for `/health`, `/metrics` and the terminal.
    pub fn with_mqtt(mut self, mqtt: Vec<(String, Arc<SourceStats>)>) -> Generation {
        self.mqtt = mqtt;
        self
    }

    /// A copy of every MQTT source's counters, in config order.
    pub fn mqtt_snapshots(&self) -> Vec<(String, SourceSnapshot)> {
        self.mqtt
            .iter()
            .map(|(id, stats)| (id.clone(), stats.snapshot()))
            .collect()
    }

    /// With emission limits per stack and pollutant, drawn on the status page's charts.
    pub fn with_limits(mut self, limits: StackLimits) -> Generation {
        self.limits = limits;
        self
    }

    /// Every device of every collector with its stack (see [`known_devices`]), and the live
    /// state of each at `now`, publishers silent for too long marked down (see
    /// [`judge_silence`]): what the page, `/health` and `/metrics` all show.
    pub fn devices(&self, now: Timestamp) -> (Vec<KnownDevice>, BTreeMap<Arc<str>, DeviceLive>) {
        let mut live = self.live.snapshot();
        let known = known_devices(&self.config, &live);
        judge_silence(&known, &mut live, now);
        (known, live)
    }
}

/// How long a probe of the store writer may take before it counts as hung.
const WRITER_PROBE_LIMIT: Duration = Duration::from_secs(5);

/// Shared by the HTTP handlers and the watchdog.
pub struct OpsState {
    generation: watch::Receiver<Arc<Generation>>,
    writer: StoreHandle,
    reader: StoreReader,
    store_watch: Mutex<StoreWatch>,
    metrics: Option<PrometheusHandle>,
}

impl OpsState {
    pub fn new(
        generation: watch::Receiver<Arc<Generation>>,
        writer: StoreHandle,
        reader: StoreReader,
        metrics: Option<PrometheusHandle>,
    ) -> Arc<OpsState> {
        Arc::new(OpsState {
            generation,
            writer,
            reader,
            store_watch: Mutex::new(StoreWatch::default()),
            metrics,
        })
    }

    pub fn generation(&self) -> Arc<Generation> {
        self.generation.borrow().clone()
    }

    pub fn writer(&self) -> &StoreHandle {
        &self.writer
    }

    pub fn reader(&self) -> &StoreReader {
        &self.reader
    }

    pub fn metrics(&self) -> Option<&PrometheusHandle> {
        self.metrics.as_ref()
    }

    /// Asks the writer thread for a no-op between its transactions: an answer proves it
    /// is not hung; its counters then tell whether commits succeed.
    pub async fn store_state(&self) -> StoreState {
        let answered = tokio::time::timeout(WRITER_PROBE_LIMIT, self.writer.call(|_| ())).await;
        let stats = self.writer.stats();
        let observed = self
            .store_watch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(stats);
        match answered {
            Ok(Ok(())) => observed,
            _ => StoreState::Unresponsive,
        }
    }
}

/// Size, rows, last seq and every forwarder's backlog. Blocks.
pub fn store_facts(reader: &StoreReader) -> Result<StoreFacts, StoreError> {
    let path = reader.path();
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let size_bytes = size(path) + size(&wal);
    reader.read(|store| {
        let (last_seq, sinks) = sink_facts(store)?;
        Ok(StoreFacts {
            size_bytes,
            rows: store.count()?,
            last_seq,
            sinks,
        })
    })
}

/// The store's last seq and every forwarder's backlog: a few indexed reads whatever the
/// store's size, unlike counting its rows, so the status page can ask every few seconds.
pub fn sink_facts(store: &Store) -> Result<(u64, Vec<SinkFacts>), StoreError> {
    let last_seq = store.last_seq()?;
    let mut sinks = Vec::new();
    for (name, cursor) in store.sinks()? {
        let oldest_pending = store.read_after(cursor, 1)?.first().map(|s| s.record.ts);
        sinks.push(SinkFacts {
            name,
            cursor,
            backlog: last_seq.saturating_sub(cursor),
            oldest_pending,
        });
    }
    Ok((last_seq, sinks))
}
