//! Committed readings per second into the store: WAL, synchronous=NORMAL, one transaction
//! per batch, realistic rows (four series rotating, every value field set); and minute
//! records the way a bureau's listener commits them, 6000 series written in turn.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};

use cemsd::model::{Flag, FlagSet, Quantity, Timestamp, Unit};
use cemsd::store::{Record, RecordKind, Store, StoreOptions, StoreWriter, WriterOptions};

struct Series {
    stack: Arc<str>,
    device: Arc<str>,
    channel: Arc<str>,
    quantity: Quantity,
    unit: Unit,
}

fn series() -> Vec<Series> {
    [
        ("so2", Quantity::SO2, Unit::MgPerM3),
        ("nox", Quantity::NOx, Unit::MgPerM3),
        ("o2", Quantity::O2, Unit::PercentVol),
        ("dust", Quantity::Dust, Unit::MgPerM3),
    ]
    .into_iter()
    .map(|(channel, quantity, unit)| Series {
        stack: "stack-1".into(),
        device: "analyser-1".into(),
        channel: channel.into(),
        quantity,
        unit,
    })
    .collect()
}

/// `n` readings continuing at `*next_ts`, one per series per second.
fn readings(series: &[Series], next_ts: &mut i64, n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let s = &series[i % series.len()];
            if i % series.len() == 0 {
                *next_ts += 1000;
            }
            let v = (*next_ts % 997) as f64 * 0.1;
            Record {
                quantity: Some(s.quantity),
                unit: Some(s.unit),
                flags: FlagSet::of(Flag::N),
                raw: Some(v),
                measured: Some(v * 2.86),
                corrected: Some(v * 3.1),
                rate: Some(v * 0.004),
                min: Some(v - 0.5),
                max: Some(v + 0.5),
                count: Some(1),
                ..Record::new(
                    RecordKind::Reading,
                    Timestamp::from_millis(*next_ts),
                    s.stack.clone(),
                    s.device.clone(),
                    s.channel.clone(),
                )
            }
        })
        .collect()
}

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(&dir.path().join("bench.db"), StoreOptions::default())
        .unwrap_or_else(|e| panic!("open bench store: {e}"))
}

fn append_batches(c: &mut Criterion) {
    let series = series();
    let mut group = c.benchmark_group("store_append");
    group.measurement_time(Duration::from_secs(10));
    for batch in [1_000usize, 10_000] {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let mut store = open(&dir);
        let mut next_ts = 1_767_225_600_000_i64;
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(BenchmarkId::from_parameter(batch), |b| {
            b.iter_batched(
                || readings(&series, &mut next_ts, batch),
                |records| black_box(store.append(&records)),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

/// Through the writer thread: ten callers' 1,000-record batches, the last one awaited,
/// so the measured time ends when all of them are committed.
fn writer_coalesced(c: &mut Criterion) {
    let series = series();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let (handle, writer) = StoreWriter::spawn(open(&dir), WriterOptions::default())
        .unwrap_or_else(|e| panic!("spawn writer: {e}"));
    let mut next_ts = 1_767_225_600_000_i64;
    let mut group = c.benchmark_group("store_writer");
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("10x1000", |b| {
        b.iter_batched(
            || {
                (0..10)
                    .map(|_| readings(&series, &mut next_ts, 1_000))
                    .collect::<Vec<_>>()
            },
            |mut batches| {
                let last = batches.pop().unwrap_or_default();
                for batch in batches {
                    if let Err(e) = handle.submit(batch) {
                        panic!("submit: {e}");
                    }
                }
                runtime.block_on(handle.append(last))
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
    drop(handle);
    if writer.join().is_err() {
        panic!("writer thread panicked");
    }
}

/// A bureau's shape: 1000 loggers of 6 factors, each logger's minute in turn, 250 loggers'
/// uploads (1500 records) per commit. Every series gets one row per commit, so an index
/// led by series would put each row on a page of its own; one led by time does not.
fn bureau_minutes(c: &mut Criterion) {
    const LOGGERS: usize = 1000;
    const FACTORS: [(&str, Quantity, Unit); 6] = [
        ("a21026", Quantity::SO2, Unit::MgPerM3),
        ("a21002", Quantity::NOx, Unit::MgPerM3),
        ("a34013", Quantity::Dust, Unit::MgPerM3),
        ("a19001", Quantity::O2, Unit::PercentVol),
        ("a01012", Quantity::Temperature, Unit::DegC),
        ("a01011", Quantity::Velocity, Unit::MetrePerSecond),
    ];
    const UPLOADS_PER_COMMIT: usize = 250;
    let loggers: Vec<(Arc<str>, Arc<str>)> = (0..LOGGERS)
        .map(|i| {
            (
                format!("plant{i}.unit1").into(),
                format!("MN{i:022}").into(),
            )
        })
        .collect();
    let channels: Vec<Arc<str>> = FACTORS.iter().map(|(code, _, _)| (*code).into()).collect();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let mut store = open(&dir);
    let mut uploads_sent = 0usize;
    let mut next_commit = || -> Vec<Record> {
        let mut records = Vec::with_capacity(UPLOADS_PER_COMMIT * FACTORS.len());
        for upload in uploads_sent..uploads_sent + UPLOADS_PER_COMMIT {
            let (stack, device) = &loggers[upload % LOGGERS];
            let minute = (upload / LOGGERS) as i64;
            let ts = Timestamp::from_millis(1_767_225_600_000 + minute * 60_000);
            for ((_, quantity, unit), channel) in FACTORS.iter().zip(&channels) {
                let v = (upload % 97) as f64 * 0.5;
                records.push(Record {
                    end: Some(Timestamp::from_millis(ts.millis() + 60_000)),
                    quantity: Some(*quantity),
                    unit: Some(*unit),
                    flags: FlagSet::of(Flag::N),
                    measured: Some(v),
                    min: Some(v - 1.0),
                    max: Some(v + 1.0),
                    ..Record::new(
                        RecordKind::Minute,
                        ts,
                        stack.clone(),
                        device.clone(),
                        channel.clone(),
                    )
                });
            }
        }
        uploads_sent += UPLOADS_PER_COMMIT;
        records
    };
    // A day of minutes first, so the indexes have the depth they have in service.
    for _ in 0..LOGGERS * 60 * 24 / UPLOADS_PER_COMMIT {
        if let Err(e) = store.append(&next_commit()) {
            panic!("fill: {e}");
        }
    }
    let mut group = c.benchmark_group("store_append");
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(
        (UPLOADS_PER_COMMIT * FACTORS.len()) as u64,
    ));
    group.bench_function("bureau_6000_series_minutes", |b| {
        b.iter_batched(
            &mut next_commit,
            |records| black_box(store.append(&records)),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, append_batches, writer_coalesced, bureau_minutes);
criterion_main!(benches);
