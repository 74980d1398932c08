//! Replay of 24 h of 1 Hz polling of four analysers on one bus (≈ 690 000 frames), generated
//! once as a pcapng from simulators and read back, then replayed without a store: the time a
//! technician waits for `cemsd replay` on a day's capture.

use std::io::Cursor;
use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};

use cemsd::config;
use cemsd::field::capture::{CaptureReader, CaptureWriter, CapturedFrame};
use cemsd::field::replay::synthetic::{SteppedClock, SyntheticBus};
use cemsd::field::replay::Replayer;
use cemsd::field::sim::{Scenario, Simulator};

/// 2026-03-01T00:00:00Z.
const START_US: i64 = 1_772_323_200_000_000;

const SITE: &str = r#"
[site]
id = "bench"
utc_offset = "+08:00"

[[stack]]
id = "unit1"
source_type = "coal_boiler"

[[bus]]
id = "rs485-1"
port = "/dev/ttyS1"
baud = 9600
response_timeout = "200ms"

[[device]]
id = "so2-1"
profile = "juguang-cems-2000d"
stack = "unit1"
transport = "rtu"
bus = "rs485-1"
unit_id = 1
poll_interval = "1s"

[[device]]
id = "nox-1"
profile = "juguang-cems-2000d-nox"
stack = "unit1"
transport = "rtu"
bus = "rs485-1"
unit_id = 2
poll_interval = "1s"

[[device]]
id = "o2-1"
profile = "sdl-model-1080"
stack = "unit1"
transport = "rtu"
bus = "rs485-1"
unit_id = 3
poll_interval = "1s"

[[device]]
id = "so2-2"
profile = "thermo-43i"
stack = "unit1"
transport = "rtu"
bus = "rs485-1"
unit_id = 4
poll_interval = "1s"
channels = ["so2"]
"#;

fn day_capture(loaded: &config::Loaded) -> Vec<u8> {
    let clock = SteppedClock::new();
    let sims: Vec<Simulator> = loaded
        .config
        .devices
        .iter()
        .map(|d| {
            let profile = loaded
                .profiles
                .get(&d.profile)
                .unwrap_or_else(|| panic!("{}", d.profile))
                .clone();
            Simulator::new(profile, Scenario::default(), 3, clock.clone()).with_unit_id(d.unit_id)
        })
        .collect();
    let bus = SyntheticBus::new(
        &loaded.config,
        &loaded.profiles,
        None,
        sims.iter().map(|s| (s.unit_id().unwrap_or(0), s)).collect(),
        clock.clone(),
    );
    let mut writer = CaptureWriter::new(Vec::new()).unwrap_or_else(|e| panic!("{e}"));
    bus.run(START_US, Duration::from_secs(24 * 3600), |frame| {
        writer.write(&frame).unwrap_or_else(|e| panic!("{e}"))
    });
    writer.into_inner()
}

fn bench(c: &mut Criterion) {
    let loaded = config::parse(Path::new("bench.toml"), SITE).unwrap_or_else(|e| panic!("{e}"));
    let capture = day_capture(&loaded);
    let frames: Vec<CapturedFrame> = CaptureReader::new(Cursor::new(&capture))
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|f| f.unwrap_or_else(|e| panic!("{e}")))
        .collect();
    eprintln!("capture: {} frames, {} bytes", frames.len(), capture.len());
    let mut group = c.benchmark_group("replay");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.bench_function("24h_1hz_4_analysers", |b| {
        b.iter(|| {
            let mut replayer = Replayer::new(&loaded.config, &loaded.profiles, None)
                .unwrap_or_else(|e| panic!("{e}"));
            let mut records = Vec::new();
            let mut readings = 0usize;
            for item in CaptureReader::new(Cursor::new(&capture)).unwrap_or_else(|e| panic!("{e}"))
            {
                let frame = item.unwrap_or_else(|e| panic!("{e}"));
                replayer.push(&frame, &mut records);
                readings += records.len();
                records.clear();
            }
            let summary = replayer.finish(&mut records);
            (readings + records.len(), summary)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
