//! `cemsd run`: wires simulators, collectors, the pipeline and the store writer together and
//! stops them in the order that commits everything already read. The store stays open for
//! the whole run; the rest (the [`Workers`]) is replaced when SIGHUP brings a new config.

use std::collections::{BTreeMap, HashSet};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::app::cli::Failure;
use crate::app::resume::resume;
use crate::app::retention;
use crate::collect::batch::{Batch, BatchSender, IngestPort, IngestSwitch};
use crate::collect::modbus::start::start as start_collectors;
use crate::collect::mqtt::{MqttSource, SourceStats};
use crate::config::{self, Loaded};
use crate::field::capture::DailyCapture;
use crate::field::sim;
use crate::ops;
use crate::ops::devices::known_devices;
use crate::ops::signals::{Request, Signals};
use crate::ops::state::{Generation, OpsState, UplinkState};
use crate::ops::status::StackLimits;
use crate::pipeline::live::Live;
use crate::pipeline::Pipeline;
use crate::process::Processor;
use crate::sink::influx::{ClientError, StartError};
use crate::store::{
    AuditHow, LockError, Store, StoreError, StoreHandle, StoreLock, StoreOptions, StoreReader,
    StoreWriter, WriterOptions,
};

/// How long collectors and the pipeline get to finish after a stop signal.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

pub async fn run(loaded: Loaded) -> Result<(), Failure> {
    // First, so a stop or reload during start-up waits for the loop below.
    let mut signals = Signals::install()
        .map_err(|e| Failure::runtime(format!("cannot watch for signals: {e}")))?;
    let store_path = config::relative_to(&loaded.path, &loaded.config.store.path);
    // Held until this function returns: one daemon per store.
    let _lock = StoreLock::acquire(&store_path).map_err(|e| {
        let help = match &e {
            LockError::Held { .. } => {
                "\n  help: stop the other daemon first, or give this config its own [store] path"
            }
            _ => "",
        };
        Failure::store(format!("{e}{help}"), e.needs_operator())
    })?;
    let budget = loaded.config.store.max_size.or_else(|| {
        store_path
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .map_or_else(
                || retention::default_budget(Path::new(".")),
                retention::default_budget,
            )
    });
    let store = Store::open(
        &store_path,
        StoreOptions {
            retention: loaded.config.store.retention.map(|r| r.0),
            max_size: budget.map(|b| b.0),
            ..StoreOptions::default()
        },
    )
    .map_err(|e| {
        Failure::store(
            format!("{}: cannot open the store: {e}", store_path.display()),
            e.needs_operator(),
        )
    })?;
    let (store_handle, store_thread) = StoreWriter::spawn(store, WriterOptions::default())
        .map_err(|e| Failure::runtime(format!("cannot start the store writer: {e}")))?;
    let reader = StoreReader::open(&store_path).map_err(|e| {
        Failure::store(
            format!("{}: cannot read the store: {e}", store_path.display()),
            e.needs_operator(),
        )
    })?;
    tracing::info!(
        store = %store_path.display(),
        budget = %budget.map_or_else(|| "none".to_string(), |b| b.to_string()),
        "store open"
    );
    let metrics = ops::metrics::install()
        .map_err(|e| tracing::warn!("{e}; /metrics stays empty"))
        .ok();

    // Bound before anything polls, so a taken port stops the start with nothing read yet.
    let http_listener = match &loaded.config.http {
        Some(http) => {
            let listener = tokio::net::TcpListener::bind(http.listen)
                .await
                .map_err(|e| {
                    Failure::runtime(format!("cannot serve http on {}: {e}", http.listen))
                })?;
            tracing::info!(listen = %http.listen, "status page, /health and /metrics served");
            Some(listener)
        }
        None => None,
    };
    // before anything is read: what was changed while the daemon was stopped applies from now
    record_audit(&store_handle, &loaded, AuditHow::Start).await;
    let mut sinks = Sinks::start(&loaded, &store_path, &store_handle)?;
    let (ingest, ingest_port) = IngestSwitch::new();
    let hj212_listener = start_hj212_listener(&loaded, &store_handle, ingest_port).await?;
    let mut workers = Workers::start(&loaded, &store_handle, &sinks).await?;
    ingest.connect(workers.ingest.take());
    let (generation_tx, generation_rx) = watch::channel(workers.generation.clone());
    let state = OpsState::new(generation_rx, store_handle.clone(), reader, metrics);
    let (ops_stop_tx, ops_stop_rx) = watch::channel(false);
    let mut ops_tasks = JoinSet::new();
    if let Some(listener) = http_listener {
        ops_tasks.spawn(ops::http::serve(
            listener,
            state.clone(),
            ops_stop_rx.clone(),
        ));
    }
    let watchdog = ops::systemd::watchdog_period(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    );
    ops_tasks.spawn(retention::run(
        store_handle.clone(),
        budget,
        loaded.config.store.retention.map(|r| r.0),
        ops_stop_rx.clone(),
    ));
    ops_tasks.spawn(ops::systemd::supervise(state, watchdog, ops_stop_rx));
    ops::systemd::ready(&format!("polling {} devices", loaded.config.devices.len()));

    let mut running = loaded;
    while signals.next().await == Request::Reload {
        ops::systemd::reloading();
        let reloaded = ops::reload::load(&running.path, &running.config).ok();
        if let Some(new) =
            reloaded.and_then(|new| ops::reload::apply_loggers(hj212_listener.as_ref(), new))
        {
            // the listener's uploads wait while the pipelines are swapped
            ingest.connect(None);
            workers.stop().await;
            sinks.stop().await;
            let started = match Sinks::start(&new, &store_path, &store_handle) {
                Ok(new_sinks) => Workers::start(&new, &store_handle, &new_sinks)
                    .await
                    .map(|workers| (workers, new_sinks)),
                Err(failure) => Err(failure),
            };
            (workers, sinks) = match started {
                Ok(started) => {
                    ops::metrics::config_reloaded(true);
                    tracing::info!(devices = new.config.devices.len(), "config reloaded");
                    record_audit(&store_handle, &new, AuditHow::Reload).await;
                    running = new;
                    started
                }
                Err(failure) => {
                    ops::metrics::config_reloaded(false);
                    tracing::error!(
                        "reload failed, going back to the running config: {}",
                        failure.message
                    );
                    let sinks = Sinks::start(&running, &store_path, &store_handle)?;
                    (
                        Workers::start(&running, &store_handle, &sinks).await?,
                        sinks,
                    )
                }
            };
            ingest.connect(workers.ingest.take());
            generation_tx.send_replace(workers.generation.clone());
        }
        ops::systemd::ready(&format!("polling {} devices", running.config.devices.len()));
    }

    ops::systemd::stopping();
    tracing::info!("stopping: finishing current polls and committing");
    // the listener first: its connections commit and ack what they read through the pipeline
    if let Some(listener) = hj212_listener {
        listener.stop().await;
    }
    ingest.connect(None);
    workers.stop().await;
    sinks.stop().await;
    let _ = ops_stop_tx.send(true);
    while ops_tasks.join_next().await.is_some() {}
    let committed = store_handle.shutdown().await;
    let joined = tokio::task::spawn_blocking(move || store_thread.join()).await;
    match (committed, joined) {
        (Ok(()), Ok(Ok(_store))) => {
            tracing::info!(
                records = store_handle.stats().records_committed,
                "stopped cleanly: every record read was committed"
            );
            Ok(())
        }
        (Err(e), _) => Err(Failure::runtime(format!("store writer failed: {e}"))),
        (_, _) => Err(Failure::runtime("store writer thread did not finish")),
    }
}

/// Records in the audit trail what changed in the config and profiles now in force. A
/// failure is logged and counted; it does not stop the daemon, whose data stays chained.
async fn record_audit(store: &StoreHandle, loaded: &Loaded, how: AuditHow) {
    let now = crate::model::time::now().millis();
    match crate::audit::record_changes(store, loaded, how, now).await {
        Ok(entries) => {
            // the first start records every item once: one line for them
            let each = how != AuditHow::Start || entries.len() <= 20;
            if !each {
                tracing::info!(
                    entries = entries.len(),
                    "audit trail: parameters recorded at start"
                );
            }
            for e in entries.iter().filter(|_| each) {
                tracing::info!(
                    item = %e.item,
                    old = e.old.as_deref().unwrap_or("-"),
                    new = e.new.as_deref().unwrap_or("-"),
                    how = %how,
                    "parameter change recorded"
                );
            }
            ops::metrics::audit_recorded(how.as_str(), Some(entries.len()));
        }
        Err(e) => {
            tracing::error!("{e}");
            ops::metrics::audit_recorded(how.as_str(), None);
        }
    }
}

/// The store's readers towards InfluxDB and the bureau platforms. A reload restarts them with
/// the new config; they go on from their stored cursors, so nothing is skipped, and what was
/// in flight is sent again (InfluxDB overwrites the same point, a platform acks a resend).
struct Sinks {
    stop: watch::Sender<bool>,
    influx: crate::sink::influx::InfluxSinks,
    hj212: crate::sink::hj212::Hj212Uplinks,
}

impl Sinks {
    /// A secret or URL the config names that cannot be used stops the start as a config
    /// error ([`crate::app::cli::EXIT_CONFIG`]).
    fn start(loaded: &Loaded, store_path: &Path, store: &StoreHandle) -> Result<Sinks, Failure> {
        let (stop, stop_rx) = watch::channel(false);
        let influx = crate::sink::influx::InfluxSinks::start(
            &loaded.config,
            &loaded.path,
            store_path,
            store,
            &stop_rx,
        )
        .map_err(|e| match e {
            // what the config names: a token file or variable, a URL
            StartError::Token(_)
            | StartError::Client(ClientError::Url { .. } | ClientError::Token { .. }) => {
                Failure::usage(e.to_string())
            }
            StartError::Client(ClientError::Build { .. }) => Failure::runtime(e.to_string()),
        })?;
        // a password file or variable the config names
        let hj212 = crate::sink::hj212::Hj212Uplinks::start(
            &loaded.config,
            &loaded.path,
            store_path,
            store,
            &stop_rx,
        )
        .map_err(|e| Failure::usage(e.to_string()))?;
        Ok(Sinks {
            stop,
            influx,
            hj212,
        })
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        self.influx.stopped().await;
        self.hj212.stopped().await;
    }
}

/// The HJ 212 listener runs for the whole process: a reload hands it the new loggers
/// ([`ops::reload::apply_loggers`]) and cuts only the connections of loggers removed.
async fn start_hj212_listener(
    loaded: &Loaded,
    store: &StoreHandle,
    ingest: IngestPort,
) -> Result<Option<crate::collect::hj212::Hj212Listener>, Failure> {
    use crate::collect::hj212::{Devices, Hj212Listener};
    let Some(config) = &loaded.config.hj212_listener else {
        return Ok(None);
    };
    let devices = Devices::load(config, loaded.config.site.utc_offset, &loaded.path)
        .map_err(|e| Failure::usage(e.to_string()))?;
    let clock = crate::model::time::system_clock();
    let future_tolerance = loaded.config.ingest.future_tolerance.0;
    Hj212Listener::start(
        config,
        future_tolerance,
        devices,
        ingest,
        store.clone(),
        clock,
    )
    .await
    .map(Some)
    .map_err(|e| Failure::runtime(e.to_string()))
}

/// Everything that runs from one config: simulators, collectors, the pipeline into the
/// store, and the terminal view.
struct Workers {
    generation: Arc<Generation>,
    shutdown: watch::Sender<bool>,
    simulators: JoinSet<std::io::Result<()>>,
    collectors: JoinSet<()>,
    captures: Vec<std::thread::JoinHandle<DailyCapture>>,
    mqtt_stats: Vec<(String, Arc<SourceStats>)>,
    /// The pipeline's input for the HJ 212 listener, handed to the ingest switch once.
    ingest: Option<BatchSender>,
    pipeline: crate::pipeline::Running,
    console: JoinHandle<()>,
}

impl Workers {
    /// `sinks` are the running forwarders and uplinks, whose counters the status page shows.
    async fn start(
        loaded: &Loaded,
        store: &StoreHandle,
        sinks: &Sinks,
    ) -> Result<Workers, Failure> {
        let Loaded {
            path: config_path,
            config,
            profiles,
            warnings,
        } = loaded;
        for warning in warnings {
            // one line each: a journald line starts with its level
            tracing::warn!("{}", warning.to_string().replace("\n  help: ", "; help: "));
        }
        let mut simulators = JoinSet::new();
        for s in &config.simulators {
            let Some(profile) = profiles.get(&s.profile) else {
                continue; // validated in config::parse
            };
            let scenario = match &s.scenario {
                Some(path) => sim::Scenario::load(&config::relative_to(config_path, path), profile)
                    .map_err(|e| Failure::usage(e.to_string()))?,
                None => sim::Scenario::default(),
            };
            let listener = tokio::net::TcpListener::bind(s.listen).await.map_err(|e| {
                Failure::runtime(format!("simulator cannot listen on {}: {e}", s.listen))
            })?;
            let simulator =
                sim::Simulator::new(profile.clone(), scenario, s.seed, sim::WallClock::start());
            tracing::info!(profile = %profile.name, listen = %s.listen, "simulator started");
            simulators.spawn(sim::serve(listener, simulator));
        }

        let (resumed, newest) = {
            let config = config.clone();
            let processor = Processor::new(&config, profiles);
            store
                .call(move |store| {
                    let resumed = resume(store, processor, &config, crate::model::time::now())?;
                    let mut newest = store.latest()?;
                    newest.extend(store.latest_periods()?);
                    Ok::<_, StoreError>((resumed, newest))
                })
                .await
                .map_err(|e| Failure::runtime(format!("cannot resume from the store: {e}")))?
                .map_err(|e| Failure::runtime(format!("cannot resume from the store: {e}")))?
        };
        let live = Live::new();
        let configured: HashSet<String> = known_devices(config, &BTreeMap::new())
            .into_iter()
            .map(|d| d.id)
            .collect();
        live.seed(&newest, |device| configured.contains(device));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (batches_tx, batches_rx) = mpsc::channel::<Batch>(1024);
        let started = start_collectors(
            config_path,
            config,
            profiles,
            config.site.utc_offset.to_chrono(),
            &batches_tx,
            &shutdown_rx,
            &live,
        )
        .map_err(Failure::runtime)?;
        let mut collectors = started.tasks;
        tracing::info!(
            devices = config.devices.len(),
            lines = started.lines,
            "collectors started"
        );
        let mut mqtt_stats = Vec::new();
        for source in &config.mqtt {
            let source = MqttSource::new(source, config.site.utc_offset, config_path)
                .map_err(|e| Failure::usage(format!("mqtt source {:?}: {e}", source.id)))?;
            mqtt_stats.push((source.id().to_string(), source.stats()));
            collectors.spawn(source.run(batches_tx.clone(), shutdown_rx.clone()));
        }

        let pipeline = Pipeline::new(resumed, store.clone(), live.clone())
            .with_future_tolerance(config.ingest.future_tolerance.0)
            .with_lateness_horizon(config.ingest.lateness_horizon.0)
            .with_spill(config.ingest.spill_records)
            .with_commit_delay(config.store.commit_delay.0)
            .warm_up()
            .await
            .map_err(|e| Failure::runtime(format!("cannot resume from the store: {e}")))?;
        let pipeline = pipeline
            .spawn(batches_rx)
            .map_err(|e| Failure::runtime(format!("cannot start the pipeline thread: {e}")))?;
        let console = tokio::spawn(console(live.clone(), mqtt_stats.clone(), shutdown_rx));
        let limits: StackLimits = config.limits();
        Ok(Workers {
            generation: Arc::new(
                Generation::new(Arc::new(config.clone()), live)
                    .with_limits(limits)
                    .with_mqtt(mqtt_stats.clone())
                    .with_uplinks(
                        sinks
                            .hj212
                            .stats()
                            .iter()
                            .map(|(name, stats)| {
                                (name.clone(), stats.clone() as Arc<dyn UplinkState>)
                            })
                            .collect(),
                    ),
            ),
            shutdown,
            simulators,
            collectors,
            captures: started.captures,
            mqtt_stats,
            ingest: Some(batches_tx),
            pipeline,
            console,
        })
    }

    /// Lets every collector finish its current poll and the pipeline commit what they read,
    /// within [`DRAIN_LIMIT`], then stops the simulators and waits until their ports are free.
    async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        let drained = tokio::time::timeout(DRAIN_LIMIT, async {
            while self.collectors.join_next().await.is_some() {}
            let _ = (&mut self.pipeline).await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                "collectors did not stop within {DRAIN_LIMIT:?}; committing what arrived"
            );
            self.collectors.abort_all();
            // With the collectors gone the pipeline's input closes; let it commit the rest.
            let _ = tokio::time::timeout(DRAIN_LIMIT, &mut self.pipeline).await;
        }
        // stragglers are cut off, so their capture sinks close as well
        self.collectors.shutdown().await;
        // capture threads end once their bus owners are gone, after flushing their files
        for capture in self.captures {
            let _ = tokio::task::spawn_blocking(move || capture.join()).await;
        }
        for (id, stats) in &self.mqtt_stats {
            let s = stats.snapshot();
            let refused: u64 = s.rejected.values().sum();
            tracing::info!(source = %id, messages = s.messages, readings = s.readings, duplicates = s.duplicates, refused, acknowledged = s.acknowledged, "mqtt source stopped");
        }
        self.simulators.abort_all();
        while self.simulators.join_next().await.is_some() {}
        let _ = self.console.await;
    }
}

/// On a terminal, redraws a compact per-device status every two seconds, cut to the
/// terminal's size (read again at each redraw, so a resize is followed).
async fn console(
    live: Arc<Live>,
    mqtt: Vec<(String, Arc<SourceStats>)>,
    mut shutdown: watch::Receiver<bool>,
) {
    use crate::ops::terminal::{size, view, TerminalFacts};
    if !std::io::stdout().is_terminal() {
        return;
    }
    let mut lines_drawn = 0usize;
    let mut every = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.changed() => return,
        }
        let facts = TerminalFacts {
            devices: live.snapshot(),
            lines: live.lines(),
            mqtt: mqtt
                .iter()
                .map(|(id, stats)| (id.clone(), stats.snapshot().summary()))
                .collect(),
            committed: live.committed.load(std::sync::atomic::Ordering::Relaxed),
        };
        let text = size()
            .and_then(|(columns, rows)| view(&facts, columns, rows))
            .unwrap_or_default();
        let mut out = std::io::stdout().lock();
        if lines_drawn > 0 {
            // move up and clear what was drawn last time
            let _ = write!(out, "\x1b[{lines_drawn}A\x1b[J");
        }
        let _ = write!(out, "{text}");
        let _ = out.flush();
        lines_drawn = text.lines().count();
    }
}
