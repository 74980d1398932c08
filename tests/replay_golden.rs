//! Replay of a committed capture: four analysers on one bus for 20 minutes, with a
//! calibration, a fault, a dead analyser, line noise and damaged CRCs. The records must equal
//! the committed golden output byte for byte, twice in a row, through the library and the
//! command line; a few of them are checked by hand below.
//!
//! The capture was made by `replay::synthetic` from the cemsd simulator (see the README in
//! the fixture folder). To make it again: `CEMSD_REGENERATE_FIXTURES=1 cargo test --test
//! replay_golden -- --ignored`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cemsd::config::{self, Loaded};
use cemsd::field::capture::{read_file, CaptureWriter, CapturedFrame, Direction};
use cemsd::field::replay::synthetic::{SteppedClock, SyntheticBus};
use cemsd::field::replay::{replay_all, OutputFormat, RecordWriter, Summary};
use cemsd::field::sim::{Scenario, Simulator};
use cemsd::model::Flag;
use cemsd::sink::influx::SiteFacts;
use cemsd::store::{Record, RecordKind};

/// 2026-03-01T02:00:00Z, 10:00 at the site (UTC+8).
const START_US: i64 = 1_772_330_400_000_000;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/serial")
        .join(name)
}

fn site() -> Loaded {
    config::load(&fixture("site.toml")).unwrap_or_else(|e| panic!("{e}"))
}

fn capture() -> Vec<CapturedFrame> {
    let (frames, damage) =
        read_file(&fixture("bus-20min.pcapng")).unwrap_or_else(|e| panic!("{e}"));
    assert!(damage.is_none(), "{damage:?}");
    frames
}

fn replayed() -> (Vec<Record>, Summary) {
    let site = site();
    replay_all(capture(), &site.config, &site.profiles, None).unwrap_or_else(|e| panic!("{e}"))
}

fn csv(records: &[Record]) -> String {
    let mut writer = RecordWriter::new(
        Vec::new(),
        OutputFormat::Csv,
        true,
        SiteFacts::named("fixture"),
    );
    writer.write(records).unwrap_or_else(|e| panic!("{e}"));
    let bytes = writer.into_inner().unwrap_or_else(|e| panic!("{e}"));
    String::from_utf8(bytes).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
#[ignore = "writes the fixtures; run with CEMSD_REGENERATE_FIXTURES=1"]
fn regenerate_fixtures() {
    if std::env::var_os("CEMSD_REGENERATE_FIXTURES").is_none() {
        return;
    }
    let site = site();
    let clock = SteppedClock::new();
    let simulator = |unit: u8, device: &str| {
        let profile_name = &site
            .config
            .devices
            .iter()
            .find(|d| d.id == device)
            .unwrap_or_else(|| panic!("{device}"))
            .profile;
        let profile = site
            .profiles
            .get(profile_name)
            .unwrap_or_else(|| panic!("{profile_name}"))
            .clone();
        let scenario = Scenario::load(&fixture(&format!("scenarios/{device}.toml")), &profile)
            .unwrap_or_else(|e| panic!("{e}"));
        Simulator::new(profile, scenario, 7, clock.clone()).with_unit_id(unit)
    };
    let sims = [
        simulator(1, "so2-1"),
        simulator(2, "nox-1"),
        simulator(3, "mcs-1"),
    ];
    let mut bus = SyntheticBus::new(
        &site.config,
        &site.profiles,
        None,
        sims.iter().map(|s| (s.unit_id().unwrap_or(0), s)).collect(),
        clock.clone(),
    );
    bus.corrupt_every = Some(97);
    bus.noise_every = Some(50);
    let file = std::fs::File::create(fixture("bus-20min.pcapng")).unwrap_or_else(|e| panic!("{e}"));
    let mut writer =
        CaptureWriter::new(std::io::BufWriter::new(file)).unwrap_or_else(|e| panic!("{e}"));
    bus.run(START_US, Duration::from_secs(20 * 60), |frame| {
        writer.write(&frame).unwrap_or_else(|e| panic!("{e}"))
    });
    drop(writer);
    let (records, _) = replayed();
    std::fs::write(fixture("bus-20min.expected.csv"), csv(&records))
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn replay_equals_the_golden_output_every_time() {
    let golden = std::fs::read_to_string(fixture("bus-20min.expected.csv"))
        .unwrap_or_else(|e| panic!("{e}"));
    let (first, summary) = replayed();
    let (second, again) = replayed();
    assert_eq!(csv(&first), golden, "replay differs from the golden output");
    assert_eq!(csv(&second), golden, "a second replay differs");
    assert_eq!(summary, again);

    // 20 min at 5 s, first boundary 5 s after the start: 239 boundaries per device
    assert_eq!(
        summary.assembly.polls + summary.assembly.holes,
        4 * 239,
        "{summary:?}"
    );
    // the dead unit 4 is tried at boundaries 1, 2, 4, 8, 16, 32, 64 (backoff doubles from
    // 10 s), then every 300 s = 60 boundaries: 124, 184 → 9 tries, all silent
    assert_eq!(summary.frames.silent, 9, "{summary:?}");
    assert!(
        summary.frames.crc_errors > 0 && summary.frames.noise_bytes > 0,
        "{summary:?}"
    );
    assert_eq!(summary.frames.exceptions, 0);
}

fn readings<'a>(records: &'a [Record], device: &str, channel: &str) -> Vec<&'a Record> {
    records
        .iter()
        .filter(|r| r.kind == RecordKind::Reading && &*r.device == device && &*r.channel == channel)
        .collect()
}

#[test]
fn hand_checked_readings_flags_and_holes() {
    let frames = capture();
    // the first reply of unit 1: 01 03 04 00 00 41 48 + CRC. CDAB: low word 0x0000 first,
    // then 0x4148 → 0x41480000 = 2^(0x82−127) × (1 + 0x480000/2^23) = 8 × 1.5625 = 12.5
    let reply = frames
        .iter()
        .find(|f| f.direction == Direction::Inbound && f.bytes.first() == Some(&1))
        .unwrap_or_else(|| panic!("no reply from unit 1"));
    assert_eq!(
        &reply.bytes[..7],
        &[0x01, 0x03, 0x04, 0x00, 0x00, 0x41, 0x48]
    );

    let (records, _) = replayed();
    let so2 = readings(&records, "so2-1", "so2");
    assert_eq!(so2.len(), 239);
    // the first poll reads unit 1 before the O2 analyser has ever been read: no O2 to
    // correct with, so the measured value is kept with the analyser's own flag, the
    // corrected one is left out and the note says why, as live (it was flagged B, as if the
    // link to the SO2 analyser had failed)
    assert_eq!(so2[0].measured, Some(12.5));
    assert_eq!((so2[0].corrected, so2[0].flags.primary()), (None, Flag::N));
    assert_eq!(so2[0].note.as_deref(), Some("no fresh O2 reading"));
    // from then on: 12.5 mg/m3 dry; O2 from mcs-1: 8 %vol wet with 10 % moisture →
    // 8 / (1 − 0.10) = 8.888… % dry; at the coal boiler's 6 % reference:
    // 12.5 × (21 − 6) / (21 − 8.888…) = 12.5 × 15 / 12.111… = 15.4817…
    let second = so2[1];
    assert_eq!((second.raw, second.measured), (Some(12.5), Some(12.5)));
    let corrected = second.corrected.unwrap_or(f64::NAN);
    assert!((corrected - 15.4817).abs() < 1e-3, "{corrected}");
    assert_eq!(second.flags.primary(), Flag::N);
    assert_eq!(
        second.ts.0,
        START_US / 1000 + 10_034,
        "read 34 ms after the 10 s boundary"
    );

    // mcs-1 in calibration from minute 5 to 8 of the simulator's clock: flagged C; in fault
    // from 12 to 14: flagged D
    let o2 = readings(&records, "mcs-1", "o2");
    let minute = |r: &Record| (r.ts.0 - START_US / 1000) / 60_000;
    for r in &o2 {
        let want = match minute(r) {
            5..=7 => Flag::C,
            12..=13 => Flag::D,
            _ => Flag::N,
        };
        assert_eq!(r.flags.primary(), want, "o2 at {}", r.ts);
    }

    // the dead backup analyser: 239 B-flagged readings without a value, on the 5 s boundaries
    let dead = readings(&records, "so2-backup", "so2");
    assert_eq!(dead.len(), 239);
    assert!(dead
        .iter()
        .all(|r| r.flags.primary() == Flag::B && r.ts.0 % 5_000 == 0));
    // and a gap record opens on it
    assert!(records
        .iter()
        .any(|r| r.kind == RecordKind::Gap && &*r.device == "so2-backup"));
}

#[test]
fn the_command_line_replays_the_fixture_deterministically() {
    let golden = std::fs::read_to_string(fixture("bus-20min.expected.csv"))
        .unwrap_or_else(|e| panic!("{e}"));
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_cemsd"))
            .arg("replay")
            .arg(fixture("bus-20min.pcapng"))
            .arg("--config")
            .arg(fixture("site.toml"))
            .args(["--output", "csv", "--all"])
            .output()
            .unwrap_or_else(|e| panic!("cemsd: {e}"))
    };
    let (a, b) = (run(), run());
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert_eq!(a.stdout, b.stdout, "two runs differ");
    assert_eq!(String::from_utf8_lossy(&a.stdout), golden);
    let summary = String::from_utf8_lossy(&a.stderr);
    assert!(summary.contains("requests:"), "{summary}");
    assert!(summary.contains("readings:    1912"), "{summary}");
}

#[test]
fn a_real_device_exchange_decodes_as_the_data_logger_did() {
    // 聚光 CEMS-2000D, from the device research notes: request 01 03 00 00 00 02 C4 0B,
    // reply 01 03 04 1C D5 3F 8E 7D CF. CDAB: 0x3F8E1CD5 = 1 + 0x0E1CD5 / 2^23
    // = 1 + 924 885 / 8 388 608 = 1.110255… mg/m3
    let site = site();
    let frames = [
        (
            START_US + 2_000,
            Direction::Outbound,
            vec![1, 3, 0, 0, 0, 2, 0xC4, 0x0B],
        ),
        (
            START_US + 40_000,
            Direction::Inbound,
            vec![1, 3, 4, 0x1C, 0xD5, 0x3F, 0x8E, 0x7D, 0xCF],
        ),
    ]
    .map(|(ts_us, direction, bytes)| CapturedFrame {
        ts_us,
        direction,
        bytes,
    });
    let (records, summary) =
        replay_all(frames, &site.config, &site.profiles, None).unwrap_or_else(|e| panic!("{e}"));
    let so2 = readings(&records, "so2-1", "so2");
    assert_eq!(so2.len(), 1, "{summary:?}");
    let value = so2[0].measured.unwrap_or(f64::NAN);
    assert!((value - 1.110_255).abs() < 1e-6, "{value}");
    // stamped when the reply arrived: 40 ms after the boundary
    assert_eq!(so2[0].ts.0, START_US / 1000 + 40);
}
