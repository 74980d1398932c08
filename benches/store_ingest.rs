//! Committed readings per second into the store: WAL, synchronous=NORMAL, one transaction
//! per batch, realistic rows (four series rotating, every value field set).

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

criterion_group!(benches, append_batches, writer_coalesced);
criterion_main!(benches);
