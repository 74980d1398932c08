//! Throughput of normalise → quality → aggregate on one core: eight stacks with nine analyser
//! channels each (O2, humidity, temperature, pressure, velocity, NO2, SO2, NO wet, dust), polled
//! every second, plus the derived NOx and flow readings. Outputs are drained after every poll
//! round and every stack is ticked once a second, as the daemon does.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use cemsd::config::stack::{Limits, PlantStop, SourceType, StackParams};
use cemsd::model::time::UtcOffset;
use cemsd::model::{Basis, FlagSet, Quantity, Reading, Sample, Timestamp, Unit};
use cemsd::process::aggregate::{Aggregate, Aggregator};
use cemsd::process::normalise::Normaliser;
use cemsd::process::quality::{ChannelSpec, Gap, Quality};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const STACKS: usize = 8;
const SECONDS: i64 = 1800;
/// 2026-01-01 00:00 at UTC+8.
const T0: i64 = 1_767_196_800_000;

const CHANNELS: [(Quantity, Unit, Basis, f64); 9] = [
    (Quantity::O2, Unit::PercentVol, Basis::Dry, 6.5),
    (Quantity::Humidity, Unit::PercentVol, Basis::Dry, 9.0),
    (Quantity::Temperature, Unit::DegC, Basis::Dry, 52.0),
    (Quantity::Pressure, Unit::KPa, Basis::Dry, -0.8),
    (Quantity::Velocity, Unit::MetrePerSecond, Basis::Dry, 11.0),
    (Quantity::NO2, Unit::Ppm, Basis::Dry, 1.2),
    (Quantity::SO2, Unit::Ppm, Basis::Dry, 9.0),
    (Quantity::NO, Unit::Ppm, Basis::Wet, 14.0),
    (Quantity::Dust, Unit::MgPerM3, Basis::Dry, 3.0),
];

fn params(id: &str) -> StackParams {
    let mut p = StackParams::new(id, SourceType::CoalBoiler);
    p.duct_area_m2 = Some(22.0);
    p.limits = Limits::ULTRA_LOW;
    p.plant_stop = Some(PlantStop {
        quantity: Quantity::Velocity,
        below: 1.0,
    });
    p
}

struct StackLine {
    normaliser: Normaliser,
    quality: Quality,
    aggregator: Aggregator,
}

fn lines(ids: &[Arc<str>], channel_names: &[Arc<str>], device: &Arc<str>) -> Vec<StackLine> {
    ids.iter()
        .map(|id| {
            let p = params(id);
            let mut quality = Quality::new(Arc::clone(id), &p);
            for name in channel_names {
                quality.add_channel(
                    Arc::clone(device),
                    Arc::clone(name),
                    ChannelSpec {
                        expected_interval: Duration::from_secs(1),
                        range: Some([0.0, 1000.0]),
                    },
                );
            }
            StackLine {
                normaliser: Normaliser::new(Arc::clone(id), &p),
                quality,
                aggregator: Aggregator::new(Arc::clone(id), &p, UtcOffset::CHINA),
            }
        })
        .collect()
}

/// Poll rounds: for every second, every stack's nine samples with some noise.
fn samples(device: &Arc<str>, channel_names: &[Arc<str>]) -> Vec<Vec<Vec<Sample>>> {
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut noise = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % 1000) as f64 / 1000.0 - 0.5
    };
    (0..SECONDS)
        .map(|s| {
            (0..STACKS)
                .map(|_| {
                    CHANNELS
                        .iter()
                        .zip(channel_names)
                        .map(|((q, unit, basis, base), name)| Sample {
                            device: Arc::clone(device),
                            channel: Arc::clone(name),
                            quantity: *q,
                            unit: *unit,
                            basis: *basis,
                            value: base * (1.0 + 0.05 * noise()),
                            status: FlagSet::EMPTY,
                            ts: Timestamp(T0 + s * 1000),
                        })
                        .collect()
                })
                .collect()
        })
        .collect()
}

/// Runs every round through the stack lines; returns the number of readings produced.
fn run(lines: &mut [StackLine], rounds: &[Vec<Vec<Sample>>]) -> usize {
    let mut readings: Vec<Reading> = Vec::with_capacity(64);
    let mut gaps: Vec<Gap> = Vec::new();
    let mut aggregates: Vec<Aggregate> = Vec::with_capacity(64);
    let mut produced = 0;
    for round in rounds {
        for (line, polled) in lines.iter_mut().zip(round) {
            for sample in polled {
                line.normaliser.push(sample, &mut readings);
            }
            for reading in &mut readings {
                line.quality.check(reading, &mut gaps);
                line.aggregator.push(reading, &mut aggregates);
            }
            if let Some(first) = polled.first() {
                let now = Timestamp(first.ts.millis() + 500);
                line.quality.tick(now, &mut gaps);
                line.aggregator.tick(now, &mut aggregates);
            }
            produced += readings.len();
            black_box((&readings, &aggregates, &gaps));
            readings.clear();
            aggregates.clear();
            gaps.clear();
        }
    }
    produced
}

/// The measured path is the normal one: every reading valid, every hour about to be valid.
fn assert_all_valid(lines: &mut [StackLine], rounds: &[Vec<Vec<Sample>>]) {
    let mut readings = Vec::new();
    let mut gaps = Vec::new();
    let mut aggregates = Vec::new();
    for round in rounds {
        for (line, polled) in lines.iter_mut().zip(round) {
            for sample in polled {
                line.normaliser.push(sample, &mut readings);
            }
            for reading in &mut readings {
                line.quality.check(reading, &mut gaps);
                line.aggregator.push(reading, &mut aggregates);
                assert!(reading.flags.is_empty(), "{reading:?}");
            }
            readings.clear();
        }
    }
    assert!(gaps.is_empty(), "{gaps:?}");
    assert!(aggregates.iter().all(|a| a.valid), "{aggregates:?}");
}

fn pipeline(c: &mut Criterion) {
    let device: Arc<str> = Arc::from("analyser");
    let channel_names: Vec<Arc<str>> = CHANNELS.iter().map(|c| Arc::from(c.0.name())).collect();
    let ids: Vec<Arc<str>> = (0..STACKS)
        .map(|i| Arc::from(format!("stack{i}")))
        .collect();
    let rounds = samples(&device, &channel_names);
    assert_all_valid(&mut lines(&ids, &channel_names, &device), &rounds[..120]);
    let per_run = run(&mut lines(&ids, &channel_names, &device), &rounds);

    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(per_run as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("normalise_quality_aggregate", |b| {
        b.iter_batched(
            || lines(&ids, &channel_names, &device),
            |mut fresh| run(&mut fresh, &rounds),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
