//! Backlog drain rate of the InfluxDB sink into VictoriaMetrics on loopback, in points
//! (records) per second, next to curl posting the same bodies (the forwarder's batches,
//! plain, and gzipped at the forwarder's level) over one kept-alive connection: the
//! forwarder's overhead over the bare HTTP path (store reads, encoding, gzip, cursor commits).
//! The forwarder keeps its default `requests_in_flight` (2), so it may use two connections.
//! After criterion's figures it runs curl and the forwarder in turns and prints the ratios
//! plain / curl plain and gzip / curl gzip: on a machine whose load changes, pairs compare
//! like with like where separate runs a minute apart do not.
//!
//! On loopback the server shares the cores with the client, so every cycle the forwarder
//! spends slows the server: the ratio is then one of CPU per point. `CEMSD_DRAIN_CORES=split`
//! runs the server on the second core and everything else (the forwarder, its store, curl) on
//! the first, as if the server were a machine of its own: the ratio then shows whether the
//! forwarder keeps a server busy.
//!
//! Needs /usr/bin/victoria-metrics, curl and taskset. Run: `cargo bench --bench influx_drain`.

#[path = "../tests/support/mod.rs"]
mod influx_support;

use std::cell::Cell;
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
/// Curl and forwarder drains run in turns for the ratio.
const PAIRED_ROUNDS: usize = 30;
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

/// What a drain needs: the server, the store and its writer, and a count of the sinks
/// made so far (each drain is a new sink, so the whole store is its backlog).
struct Bench {
    runtime: tokio::runtime::Runtime,
    vm: VictoriaMetrics,
    db: PathBuf,
    writer: Writer,
    sinks: Cell<u32>,
    /// The bodies curl posts: plain, and gzipped.
    files: [Vec<PathBuf>; 2],
}

impl Bench {
    fn curl(&self, gzip: bool) -> Duration {
        curl_all(&self.vm.url(), &self.files[usize::from(gzip)], gzip)
    }

    /// The time a new sink takes from its start to the cursor past the last record.
    fn forwarder(&self, gzip: bool) -> Duration {
        self.sinks.set(self.sinks.get() + 1);
        let mut config = sink_config(&format!("bench{}", self.sinks.get()), &self.vm.url());
        config.batch_size = BATCH;
        config.gzip = gzip;
        self.runtime.block_on(async {
            let started = Instant::now();
            let forwarder = RunningForwarder::spawn(&config, &self.db, &self.writer.handle);
            let drained = forwarder
                .wait_for_cursor(POINTS as u64, Duration::from_secs(120))
                .await;
            let took = started.elapsed();
            forwarder.stop().await;
            assert!(drained, "backlog not drained");
            took
        })
    }

    /// Curl and the forwarder in turns, each pair back to back, so both see the same load
    /// of a shared machine; prints the median rates and the median and range of the
    /// per-pair ratios.
    fn paired(&self, gzip: bool) {
        let (mut curl, mut forwarder, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        // CPU seconds over all rounds: [forwarder's drains, curl's drains] of each process.
        let (mut own, mut children, mut server) = ([0.0; 2], [0.0; 2], [0.0; 2]);
        let mut timed = |curl_turn: bool| {
            let before = self.cpu();
            let took = if curl_turn {
                self.curl(gzip)
            } else {
                self.forwarder(gzip)
            };
            let after = self.cpu();
            let turn = usize::from(curl_turn);
            own[turn] += after.own - before.own;
            children[turn] += after.children - before.children;
            server[turn] += after.server - before.server;
            took
        };
        for round in 0..PAIRED_ROUNDS {
            // Alternating which goes first cancels a load that rises or falls.
            let (c, f) = if round % 2 == 0 {
                let c = timed(true);
                (c, timed(false))
            } else {
                let f = timed(false);
                (timed(true), f)
            };
            curl.push(rate(c));
            forwarder.push(rate(f));
            ratios.push(c.as_secs_f64() / f.as_secs_f64());
        }
        let ratio_median = median(&mut ratios);
        println!(
            "influx_drain {}, {PAIRED_ROUNDS} paired rounds: curl {:.0} k points/s, forwarder \
             {:.0} k points/s (medians); forwarder / curl {ratio_median:.2}x (median, \
             {:.2}–{:.2}x)",
            if gzip { "gzip" } else { "plain" },
            median(&mut curl) / 1e3,
            median(&mut forwarder) / 1e3,
            ratios[0],
            ratios[ratios.len() - 1],
        );
        let per_thousand_points = |cpu: f64| cpu / (PAIRED_ROUNDS * POINTS) as f64 * 1e6;
        println!(
            "  CPU per 1,000 points: forwarder {:.2} ms (the whole process: store reads, \
             encoding, HTTP, cursor commits) and VictoriaMetrics {:.2} ms; curl {:.2} ms and \
             VictoriaMetrics {:.2} ms",
            per_thousand_points(own[0]),
            per_thousand_points(server[0]),
            per_thousand_points(children[1]),
            per_thousand_points(server[1]),
        );
    }

    fn cpu(&self) -> CpuSeconds {
        let own = stat_fields("self");
        let server = self.vm.pid().map(|pid| stat_fields(&pid.to_string()));
        let seconds = |fields: &[f64], first: usize| (fields[first] + fields[first + 1]) / 100.0;
        CpuSeconds {
            own: seconds(&own, 11),
            children: seconds(&own, 13),
            server: server.map_or(0.0, |fields| seconds(&fields, 11)),
        }
    }
}

/// CPU time, user and system, in seconds.
struct CpuSeconds {
    /// This process: the forwarder, its store writer, the bench's own waiting.
    own: f64,
    /// Children waited for: curl.
    children: f64,
    /// VictoriaMetrics.
    server: f64,
}

/// /proc/<pid>/stat from its third field on, as numbers; fields 14 to 17 (index 11 to 14)
/// are utime, stime, cutime and cstime in ticks of 1/100 s (USER_HZ).
fn stat_fields(pid: &str) -> Vec<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/stat: {e}"));
    // The command name may hold spaces; the fields after it do not.
    let after_name = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
    after_name
        .split(' ')
        .map(|field| field.parse().unwrap_or(0.0))
        .collect()
}

/// Points per second of a drain that took `took`.
fn rate(took: Duration) -> f64 {
    POINTS as f64 / took.as_secs_f64()
}

/// Sorts `values` and returns the middle one.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Puts every thread of `pid` on `core` (its later threads and children follow).
fn pin(pid: u32, core: u32) {
    let status = Command::new("taskset")
        .args([
            "--all-tasks",
            "--pid",
            "--cpu-list",
            &core.to_string(),
            &pid.to_string(),
        ])
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("taskset: {e}"));
    assert!(status.success(), "taskset {pid} to core {core}: {status}");
}

fn drain(c: &mut Criterion) {
    let split = std::env::var("CEMSD_DRAIN_CORES").is_ok_and(|v| v == "split");
    if split {
        pin(std::process::id(), 0);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let vm = runtime.block_on(VictoriaMetrics::start(dir.path(), true));
    if split {
        let server = vm
            .pid()
            .unwrap_or_else(|| panic!("VictoriaMetrics has no pid"));
        pin(server, 1);
        println!("influx_drain: VictoriaMetrics on core 1, the forwarder and curl on core 0");
    }
    let db = dir.path().join("cems.db");
    fill_store(&db, &records());
    let files = [
        body_files(&db, dir.path(), false),
        body_files(&db, dir.path(), true),
    ];
    let writer = runtime.block_on(async { Writer::start(&db) });
    let bench = Bench {
        runtime,
        vm,
        db,
        writer,
        sinks: Cell::new(0),
        files,
    };

    let mut group = c.benchmark_group("influx_drain");
    group.sample_size(10);
    group.throughput(Throughput::Elements(POINTS as u64));
    for gzip in [false, true] {
        let name = if gzip { "gzip" } else { "plain" };
        group.bench_function(BenchmarkId::new("curl", name), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| bench.curl(gzip)).sum());
        });
        group.bench_function(BenchmarkId::new("forwarder", name), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| bench.forwarder(gzip)).sum());
        });
    }
    group.finish();
    for gzip in [false, true] {
        bench.paired(gzip);
    }
    let Bench {
        runtime, writer, ..
    } = bench;
    runtime.block_on(writer.stop());
}

criterion_group!(benches, drain);
criterion_main!(benches);
