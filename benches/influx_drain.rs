//! Backlog drain rate of the InfluxDB sink into VictoriaMetrics on loopback, in points
//! (records) per second, next to curl posting the same bodies (the forwarder's batches,
//! plain, and gzipped at the forwarder's level) over one kept-alive connection: the
//! forwarder's overhead over the bare HTTP path (store reads, encoding, gzip, cursor commits).
//! The forwarder keeps its default `requests_in_flight` (2), so it may use two connections.
//! At the end it prints the median rates and the ratios plain / curl plain and gzip / curl
//! gzip.
//!
//! Needs /usr/bin/victoria-metrics and curl. Run: `cargo bench --bench influx_drain`.

#[path = "../tests/support/mod.rs"]
mod influx_support;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use cemsd::config::influx::Precision;
use cemsd::model::{Quantity, Timestamp, Unit};
use cemsd::sink::influx::{payload_of, Encoder, SiteFacts};
use cemsd::store::{Record, RecordKind, Store, StoreOptions};
use influx_support::{fill_store, sink_config, RunningForwarder, VictoriaMetrics, Writer};

const POINTS: usize = 50_000;
const BATCH: usize = 5_000;
const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

/// Readings as the pipeline commits them: four channels of one analyser, once a second,
/// with raw, measured and corrected values.
fn records() -> Vec<Record> {
    let channels = [
        ("so2", Quantity::SO2),
        ("nox", Quantity::NOx),
        ("o2", Quantity::O2),
        ("dust", Quantity::Dust),
    ];
    (0..POINTS)
        .map(|i| {
            let (channel, quantity) = channels[i % 4];
            let v = (i % 997) as f64 * 0.1;
            Record {
                quantity: Some(quantity),
                unit: Some(Unit::MgPerM3),
                raw: Some(v),
                measured: Some(v * 2.86),
                corrected: Some(v * 3.1),
                ..Record::new(
                    RecordKind::Reading,
                    Timestamp::from_millis(T0 + (i / 4) as i64 * 1000),
                    "unit1".into(),
                    "analyser-1".into(),
                    channel.into(),
                )
            }
        })
        .collect()
}

/// The store's records as request bodies of `BATCH` lines for curl, one file each, gzipped
/// by the forwarder's own `payload_of` (same level) if `gzip`.
fn body_files(db: &Path, dir: &Path, gzip: bool) -> Vec<PathBuf> {
    let store = Store::open(db, StoreOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let stored = store
        .read_after(0, POINTS)
        .unwrap_or_else(|e| panic!("{e}"));
    let encoder = Encoder::new("cems", SiteFacts::named("plant-1"), Precision::Ms);
    stored
        .chunks(BATCH)
        .enumerate()
        .map(|(n, chunk)| {
            let (batch, failed) = encoder.encode_batch(chunk);
            assert!(failed.is_empty());
            let payload = payload_of(batch.text(0..batch.len()), gzip);
            let extension = if gzip { "lp.gz" } else { "lp" };
            let path = dir.join(format!("batch-{n}.{extension}"));
            std::fs::write(&path, payload.bytes())
                .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            path
        })
        .collect()
}

/// One curl process posting every file over one kept-alive connection, one request at a
/// time; with `Content-Encoding: gzip` if `gzip`.
fn curl_all(url: &str, files: &[PathBuf], gzip: bool) -> Duration {
    let target = format!("{url}/api/v2/write?org=plant-org&bucket=cems&precision=ms");
    let mut command = Command::new("curl");
    for (i, file) in files.iter().enumerate() {
        if i > 0 {
            command.arg("--next");
        }
        command
            .args(["--silent", "--fail", "--output", "/dev/null"])
            .args(["--header", "Authorization: Token t"]);
        if gzip {
            command.args(["--header", "Content-Encoding: gzip"]);
        }
        command
            .arg("--data-binary")
            .arg(format!("@{}", file.display()))
            .arg(&target);
    }
    command.stdout(Stdio::null()).stderr(Stdio::null());
    let started = Instant::now();
    let status = command.status().unwrap_or_else(|e| panic!("curl: {e}"));
    let took = started.elapsed();
    assert!(status.success(), "curl failed: {status}");
    took
}

/// Every drain's time by variant, for the summary after criterion's own report.
#[derive(Default)]
struct Drains(RefCell<BTreeMap<String, Vec<Duration>>>);

impl Drains {
    fn record(&self, variant: &str, took: Duration) -> Duration {
        self.0
            .borrow_mut()
            .entry(variant.to_string())
            .or_default()
            .push(took);
        took
    }

    /// The median drain of `variant` in points per second.
    fn median_rate(&self, variant: &str) -> f64 {
        let mut took = self.0.borrow().get(variant).cloned().unwrap_or_default();
        took.sort();
        match took.get(took.len() / 2) {
            Some(median) => POINTS as f64 / median.as_secs_f64(),
            None => f64::NAN,
        }
    }

    fn print_ratios(&self) {
        for encoding in ["plain", "gzip"] {
            let curl = self.median_rate(&format!("curl/{encoding}"));
            let forwarder = self.median_rate(&format!("forwarder/{encoding}"));
            println!(
                "influx_drain {encoding}: curl {:.0} k points/s, forwarder {:.0} k points/s, \
                 forwarder / curl {:.2}x (medians)",
                curl / 1e3,
                forwarder / 1e3,
                forwarder / curl
            );
        }
    }
}

fn drain(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let vm = runtime.block_on(VictoriaMetrics::start(dir.path(), true));
    let db = dir.path().join("cems.db");
    fill_store(&db, &records());
    let plain_files = body_files(&db, dir.path(), false);
    let gzip_files = body_files(&db, dir.path(), true);
    let drains = Drains::default();
    let writer = runtime.block_on(async { Writer::start(&db) });

    let mut group = c.benchmark_group("influx_drain");
    group.sample_size(10);
    group.throughput(Throughput::Elements(POINTS as u64));
    for (gzip, files) in [(false, &plain_files), (true, &gzip_files)] {
        let name = if gzip { "gzip" } else { "plain" };
        group.bench_function(BenchmarkId::new("curl", name), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        drains.record(&format!("curl/{name}"), curl_all(&vm.url(), files, gzip))
                    })
                    .sum()
            });
        });
    }
    let mut sink_number = 0;
    for gzip in [false, true] {
        let name = if gzip { "gzip" } else { "plain" };
        group.bench_function(BenchmarkId::new("forwarder", name), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // A new sink starts at seq 0: the whole store is its backlog.
                    sink_number += 1;
                    let mut config = sink_config(&format!("bench{sink_number}"), &vm.url());
                    config.batch_size = BATCH;
                    config.gzip = gzip;
                    let took = runtime.block_on(async {
                        let started = Instant::now();
                        let forwarder = RunningForwarder::spawn(&config, &db, &writer.handle);
                        let drained = forwarder
                            .wait_for_cursor(POINTS as u64, Duration::from_secs(120))
                            .await;
                        let took = started.elapsed();
                        forwarder.stop().await;
                        assert!(drained, "backlog not drained");
                        took
                    });
                    total += drains.record(&format!("forwarder/{name}"), took);
                }
                total
            });
        });
    }
    group.finish();
    drains.print_ratios();
    runtime.block_on(writer.stop());
}

criterion_group!(benches, drain);
criterion_main!(benches);
