//! What a chart costs: one channel's minute records over 24 h (the status page's day chart)
//! and its raw readings over the last hour (the hour chart), read through `Store::query` as
//! the page reads them, on stores of different width and age:
//!
//! - 24 series × 1 day and 2,000 series × 1 day: does a read pay for the other series?
//! - 24 series × 90 days: does a read pay for the history kept?
//!
//! Every series holds a minute record for each minute of the span and a reading every
//! `READING_STEP_MS`. Each read runs `READS` times on a warm store; the median and the
//! slowest are printed with the rows returned.
//!
//! Run with `cargo bench --bench query_cost` (about a minute, most of it writing the
//! stores). Without `--bench` (as `cargo test --all-targets` runs it) it writes two small
//! stores and checks that the reads return what was written.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cemsd::model::{Flag, FlagSet, Quantity, Timestamp, Unit};
use cemsd::store::{Query, Record, RecordKind, Store, StoreOptions};

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;
/// 2026-03-01 00:00 UTC: every store ends here.
const END_MS: i64 = 1_772_323_200_000;
const READS: usize = 25;
const BATCH: usize = 20_000;

struct Shape {
    series: usize,
    days: i64,
    /// Readings in the last `reading_hours` of the span only: a 90-day store of 1 Hz
    /// readings is more than a bench can write, and only the last hour is charted raw.
    reading_hours: i64,
    reading_step_ms: i64,
}

fn channel_of(series: usize) -> (Arc<str>, Arc<str>, Arc<str>) {
    let stack: Arc<str> = format!("stack{}", series / 10).into();
    let device: Arc<str> = format!("logger{}", series / 10).into();
    let channel: Arc<str> = format!("ch{}", series % 10).into();
    (stack, device, channel)
}

fn record(kind: RecordKind, ts: i64, series: usize) -> Record {
    let (stack, device, channel) = channel_of(series);
    let v = ((ts / 1000 + series as i64) % 997) as f64 * 0.1;
    Record {
        quantity: Some(Quantity::SO2),
        unit: Some(Unit::MgPerM3),
        flags: FlagSet::of(Flag::N),
        raw: Some(v),
        measured: Some(v * 2.86),
        corrected: Some(v * 3.1),
        min: Some(v - 0.5),
        max: Some(v + 0.5),
        count: Some(1),
        ..Record::new(kind, Timestamp::from_millis(ts), stack, device, channel)
    }
}

/// Writes the shape in time order, every series at each step, as a plant or a bureau does.
fn write(store: &mut Store, shape: &Shape) -> u64 {
    let start = END_MS - shape.days * DAY_MS;
    let readings_from = END_MS - shape.reading_hours * HOUR_MS;
    let mut batch = Vec::with_capacity(BATCH);
    let mut written = 0u64;
    let mut flush = |batch: &mut Vec<Record>, store: &mut Store| {
        if let Err(e) = store.append(batch) {
            panic!("append: {e}");
        }
        written += batch.len() as u64;
        batch.clear();
    };
    let mut minute = start;
    while minute < END_MS {
        let mut ts = minute.max(readings_from);
        while ts < minute + MINUTE_MS {
            for s in 0..shape.series {
                batch.push(record(RecordKind::Reading, ts, s));
            }
            ts += shape.reading_step_ms;
            if batch.len() >= BATCH {
                flush(&mut batch, store);
            }
        }
        for s in 0..shape.series {
            batch.push(record(RecordKind::Minute, minute, s));
        }
        if batch.len() >= BATCH {
            flush(&mut batch, store);
        }
        minute += MINUTE_MS;
    }
    flush(&mut batch, store);
    written
}

fn chart_query(kind: RecordKind, series: usize, span_ms: i64) -> Query {
    let (stack, device, channel) = channel_of(series);
    Query {
        kind: Some(kind),
        stack: Some(stack.to_string()),
        device: Some(device.to_string()),
        channel: Some(channel.to_string()),
        from: Some(Timestamp::from_millis(END_MS - span_ms)),
        to: Some(Timestamp::from_millis(END_MS)),
        ..Query::default()
    }
}

/// Median and slowest of `READS` runs, and the rows the read returned.
fn time_reads(store: &Store, q: &Query) -> (Duration, Duration, usize) {
    let mut times = Vec::with_capacity(READS);
    let mut rows = 0;
    for _ in 0..READS {
        let started = Instant::now();
        rows = match store.query(q) {
            Ok(found) => found.len(),
            Err(e) => panic!("query: {e}"),
        };
        times.push(started.elapsed());
    }
    times.sort();
    (times[READS / 2], times[READS - 1], rows)
}

fn measure(shape: &Shape, full: bool) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let mut store = Store::open(&dir.path().join("bench.db"), StoreOptions::default())
        .unwrap_or_else(|e| panic!("open: {e}"));
    let started = Instant::now();
    let written = write(&mut store, shape);
    let write_time = started.elapsed();
    // A series in the middle of the id range, so neither end of any index favours it.
    let target = shape.series / 2;
    let day = chart_query(RecordKind::Minute, target, DAY_MS.min(shape.days * DAY_MS));
    let hour = chart_query(RecordKind::Reading, target, HOUR_MS);
    let (day_median, day_max, day_rows) = time_reads(&store, &day);
    let (hour_median, hour_max, hour_rows) = time_reads(&store, &hour);
    let minutes_expected = (DAY_MS.min(shape.days * DAY_MS) / MINUTE_MS) as usize;
    let readings_expected = (HOUR_MS / shape.reading_step_ms) as usize;
    assert_eq!(day_rows, minutes_expected, "minute records of one channel");
    assert_eq!(hour_rows, readings_expected, "readings of one channel");
    if full {
        println!(
            "{:>5} series × {:>2} d ({:>9} records, written in {:>5.1} s): \
             24 h of minutes {:>4} rows median {:>7.2} ms max {:>7.2} ms; \
             1 h of readings {:>4} rows median {:>7.2} ms max {:>7.2} ms",
            shape.series,
            shape.days,
            written,
            write_time.as_secs_f64(),
            day_rows,
            day_median.as_secs_f64() * 1e3,
            day_max.as_secs_f64() * 1e3,
            hour_rows,
            hour_median.as_secs_f64() * 1e3,
            hour_max.as_secs_f64() * 1e3,
        );
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let shapes: &[Shape] = if full {
        &[
            Shape {
                series: 24,
                days: 1,
                reading_hours: 24,
                reading_step_ms: 1_000,
            },
            Shape {
                series: 2_000,
                days: 1,
                reading_hours: 2,
                reading_step_ms: 5_000,
            },
            Shape {
                series: 24,
                days: 90,
                reading_hours: 24,
                reading_step_ms: 1_000,
            },
        ]
    } else {
        &[
            Shape {
                series: 24,
                days: 1,
                reading_hours: 1,
                reading_step_ms: 10_000,
            },
            Shape {
                series: 200,
                days: 1,
                reading_hours: 1,
                reading_step_ms: 30_000,
            },
        ]
    };
    for shape in shapes {
        measure(shape, full);
    }
}
