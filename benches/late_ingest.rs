//! What order costs: one MQTT device's readings (SO2 and O2 at 10 s, six hours old) taken by
//! the pipeline into a file store, newest first (every reading after a later one: looked up,
//! normalised with the inputs of its time, its minute, hour and day revised) against oldest
//! first. Time is until every batch's receipt, i.e. until everything is committed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cemsd::collect::batch::{Batch, Origin};
use cemsd::config;
use cemsd::model::{Basis, FlagSet, Quantity, Sample, Timestamp, Unit};
use cemsd::pipeline::live::Live;
use cemsd::pipeline::Pipeline;
use cemsd::process::Processor;
use cemsd::store::{Store, StoreOptions, StoreWriter, WriterOptions};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tokio::sync::mpsc;

const SITE: &str = r#"
[site]
id = "bench"
[[stack]]
id = "unit1"
source_type = "coal_boiler"
[[mqtt]]
id = "m"
url = "mqtt://127.0.0.1"
client_id = "c"
[[mqtt.subscribe]]
filter = "x/#"
format = "json"
[[mqtt.device]]
id = "dtu"
stack = "unit1"
interval = "10s"
channels = { SO2 = { unit = "mg/m3" }, O2 = { unit = "%vol" } }
"#;

/// Messages (one poll of SO2 and O2 each) per run: about 1 h 40 min at 10 s.
const MESSAGES: i64 = 600;

fn poll(t0: i64, i: i64) -> Vec<Sample> {
    let sample = |channel: &str, quantity, unit, value| Sample {
        device: Arc::from("dtu"),
        channel: Arc::from(channel),
        quantity,
        unit,
        basis: Basis::Dry,
        value,
        status: FlagSet::EMPTY,
        ts: Timestamp(t0 + i * 10_000),
    };
    vec![
        sample("SO2", Quantity::SO2, Unit::MgPerM3, 20.0 + (i % 7) as f64),
        sample(
            "O2",
            Quantity::O2,
            Unit::PercentVol,
            6.0 + (i % 3) as f64 / 10.0,
        ),
    ]
}

/// Runs a fresh pipeline on a fresh store over the polls in `order`; returns the time until
/// the last receipt.
fn ingest(runtime: &tokio::runtime::Runtime, newest_first: bool) -> Duration {
    let loaded =
        config::parse(std::path::Path::new("bench.toml"), SITE).unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open(&dir.path().join("bench.db"), StoreOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let (handle, writer) =
        StoreWriter::spawn(store, WriterOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let now = Timestamp(1_767_240_000_000 + 6 * 3_600_000);
    let t0 = 1_767_240_000_000;
    let processor = Processor::new(&loaded.config, &loaded.profiles);
    let elapsed = runtime.block_on(async {
        let pipeline = Pipeline::new(processor, handle.clone(), Live::new())
            .with_clock(Arc::new(move || now))
            .warm_up()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (tx, rx) = mpsc::channel(64);
        let running = pipeline.spawn(rx).unwrap_or_else(|e| panic!("{e}"));
        let order: Vec<i64> = if newest_first {
            (0..MESSAGES).rev().collect()
        } else {
            (0..MESSAGES).collect()
        };
        let start = Instant::now();
        let mut receipts = Vec::with_capacity(order.len());
        for i in order {
            let origin = Origin::Mqtt {
                source: Arc::from("m"),
            };
            let (batch, receipt) = Batch::readings(origin, poll(t0, i)).with_receipt();
            tx.send(batch)
                .await
                .unwrap_or_else(|_| panic!("pipeline gone"));
            receipts.push(receipt);
        }
        for receipt in receipts {
            let taken = receipt.await.unwrap_or_else(|_| panic!("never answered"));
            assert_eq!(taken.readings, 2);
        }
        let elapsed = start.elapsed();
        drop(tx);
        running.await;
        elapsed
    });
    runtime.block_on(async {
        handle.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
    });
    let _ = writer.join();
    elapsed
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut group = c.benchmark_group("late_ingest");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(MESSAGES as u64 * 2));
    for (name, newest_first) in [("oldest_first", false), ("newest_first", true)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| (0..iters).map(|_| ingest(&runtime, newest_first)).sum())
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
