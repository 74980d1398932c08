//! `cemsd run`: wires simulators, collectors, the pipeline and the store writer together and
//! stops them in the order that commits everything already read.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::cli::Failure;
use crate::collect::mqtt::MqttSource;
use chrono::Utc;

use crate::aggregate::{period_start, Period};
use crate::collect::start::start as start_collectors;
use crate::config::{self, Loaded, SiteConfig};
use crate::live::Live;
use crate::model::{Reading, Sample, Timestamp};
use crate::pipeline::{reading_of, Delivery, Pipeline};
use crate::process::Processor;
use crate::sim;
use crate::store::{
    Query, RecordKind, Store, StoreError, StoreOptions, StoreWriter, WriterOptions,
};

/// How long collectors and the pipeline get to finish after a stop signal.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

pub async fn run(loaded: Loaded) -> Result<(), Failure> {
    let Loaded {
        path: config_path,
        config,
        profiles,
    } = loaded;
    let store_path = config::relative_to(&config_path, &config.store.path);
    let mut store = Store::open(
        &store_path,
        StoreOptions {
            retention: config.store.retention.map(|r| r.0),
            ..StoreOptions::default()
        },
    )
    .map_err(|e| {
        Failure::runtime(format!(
            "{}: cannot open the store: {e}",
            store_path.display()
        ))
    })?;
    let processor =
        resume(&mut store, Processor::new(&config, &profiles), &config).map_err(|e| {
            Failure::runtime(format!(
                "{}: cannot resume from the store: {e}",
                store_path.display()
            ))
        })?;
    let (store_handle, store_thread) = StoreWriter::spawn(store, WriterOptions::default())
        .map_err(|e| Failure::runtime(format!("cannot start the store writer: {e}")))?;
    tracing::info!(store = %store_path.display(), "store open");

    let mut simulators = JoinSet::new();
    for s in &config.simulators {
        let Some(profile) = profiles.get(&s.profile) else {
            continue; // validated in config::parse
        };
        let scenario = match &s.scenario {
            Some(path) => sim::Scenario::load(&config::relative_to(&config_path, path), profile)
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

    let live = Live::new();
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let influx = crate::sink::influx::InfluxSinks::start(
        &config.influx,
        &config.site.id,
        &config_path,
        &store_path,
        &store_handle,
        &shutdown_rx,
    )
    .map_err(|e| Failure::runtime(e.to_string()))?;
    let (samples_tx, samples_rx) = mpsc::channel::<Vec<Sample>>(1024);
    let started = start_collectors(
        &config_path,
        &config,
        &profiles,
        config.site.utc_offset.to_chrono(),
        &samples_tx,
        &shutdown_rx,
        &live,
    )
    .map_err(Failure::runtime)?;
    let mut collectors = started.tasks;
    drop(samples_tx);
    tracing::info!(
        devices = config.devices.len(),
        lines = started.lines,
        "collectors started"
    );
    let (deliveries_tx, deliveries_rx) = mpsc::channel::<Delivery>(1024);
    let mut mqtt_stats = Vec::new();
    for source in &config.mqtt {
        let source = MqttSource::new(source, config.site.utc_offset, &config_path)
            .map_err(|e| Failure::usage(format!("mqtt source {:?}: {e}", source.id)))?;
        mqtt_stats.push((source.id().to_string(), source.stats()));
        collectors.spawn(source.run(
            deliveries_tx.clone(),
            store_handle.clone(),
            shutdown_rx.clone(),
        ));
    }
    drop(deliveries_tx);

    let pipeline =
        Pipeline::new(processor, store_handle.clone(), live.clone()).with_deliveries(deliveries_rx);
    let pipeline_task = tokio::spawn(pipeline.run(samples_rx));
    let console = tokio::spawn(console(live.clone(), shutdown_rx.clone()));

    wait_for_stop_signal().await;
    tracing::info!("stopping: finishing current polls and committing");
    let _ = shutdown_tx.send(true);
    let drained = tokio::time::timeout(DRAIN_LIMIT, async {
        while collectors.join_next().await.is_some() {}
        let _ = pipeline_task.await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!("collectors did not stop within {DRAIN_LIMIT:?}; committing what arrived");
    }
    // stragglers are cut off, so their capture sinks close as well
    collectors.shutdown().await;
    simulators.abort_all();
    // capture threads end once their bus owners are gone, after flushing their files
    for capture in started.captures {
        let _ = tokio::task::spawn_blocking(move || capture.join()).await;
    }
    for (id, stats) in &mqtt_stats {
        let s = stats.snapshot();
        let refused: u64 = s.rejected.values().sum();
        tracing::info!(source = %id, messages = s.messages, readings = s.readings, duplicates = s.duplicates, refused, acknowledged = s.acknowledged, "mqtt source stopped");
    }
    let _ = console.await;
    influx.stopped().await;
    let committed = store_handle.shutdown().await;
    let joined = tokio::task::spawn_blocking(move || store_thread.join()).await;
    match (committed, joined) {
        (Ok(()), Ok(Ok(_store))) => {
            tracing::info!("stopped cleanly");
            Ok(())
        }
        (Err(e), _) => Err(Failure::runtime(format!("store writer failed: {e}"))),
        (_, _) => Err(Failure::runtime("store writer thread did not finish")),
    }
}

/// Picks up where the last run stopped: the downtime becomes gap records, and the hour and
/// day in progress are rebuilt from the readings already stored.
fn resume(
    store: &mut Store,
    mut processor: Processor,
    config: &SiteConfig,
) -> Result<Processor, StoreError> {
    let now = Timestamp::from_datetime(Utc::now());
    let mut last_of_point: HashMap<Arc<str>, Timestamp> = HashMap::new();
    for stored in store.latest()? {
        let last = last_of_point
            .entry(stored.record.stack.clone())
            .or_insert(stored.record.ts);
        *last = (*last).max(stored.record.ts);
    }
    let today = period_start(now, Period::Day, config.site.utc_offset);
    let readings: Vec<Reading> = store
        .query(&Query {
            kind: Some(RecordKind::Reading),
            from: Some(today),
            ..Query::default()
        })?
        .iter()
        .filter_map(reading_of)
        .collect();
    processor.warm_up(&readings);
    let mut gaps = Vec::new();
    processor.restart(|point| last_of_point.get(point).copied(), now, &mut gaps);
    if !gaps.is_empty() {
        tracing::info!(
            gaps = gaps.len(),
            "recorded the downtime since the last run as gaps"
        );
        store.append(&gaps)?;
    }
    Ok(processor)
}

async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!("cannot watch SIGTERM ({e}); stopping on Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// On a terminal, redraws a compact per-device status every two seconds.
async fn console(live: Arc<Live>, mut shutdown: watch::Receiver<bool>) {
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
        let text = live.render();
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
