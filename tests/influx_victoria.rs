//! The InfluxDB sink against a real VictoriaMetrics on loopback: every committed record is
//! queryable with the right tags and values, an outage of the server while records keep
//! being committed loses, reorders and duplicates nothing, and neither does a server stopped
//! while a backlog drains with several requests on the wire.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cemsd::config::influx::InfluxSinkConfig;
use cemsd::model::{Flag, FlagSet, Quantity, Timestamp, Unit};
use cemsd::sink::influx::StatsSnapshot;
use cemsd::store::{Record, RecordKind};
use support::influx::{sink_config, RunningForwarder};
use support::peers::victoria::{labels, Series, VictoriaMetrics};
use support::store::{fill_store, open, Writer};

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn record(kind: RecordKind, ts: i64, stack: &str, device: &str, channel: &str) -> Record {
    Record::new(
        kind,
        Timestamp::from_millis(ts),
        stack.into(),
        device.into(),
        channel.into(),
    )
}

/// (metric name, labels) → points, without the string-field series (`*_note`), whose values
/// VictoriaMetrics does not keep as text.
type Points = BTreeMap<(String, BTreeMap<String, String>), Vec<(i64, f64)>>;

fn points(series: &[Series]) -> Points {
    series
        .iter()
        .filter(|s| !s.name.ends_with("_note"))
        .map(|s| ((s.name.clone(), s.labels.clone()), s.points()))
        .collect()
}

/// Runs a forwarder with `config` on the store `db` (and its writer) until its cursor reaches
/// `last` or `limit` passes, then stops both: whether it got there, and its counters then.
async fn drain(
    config: &InfluxSinkConfig,
    db: &Path,
    last: u64,
    limit: Duration,
) -> (bool, StatsSnapshot) {
    let writer = Writer::start(db);
    let forwarder = RunningForwarder::spawn(config, db, &writer.handle);
    let drained = forwarder.wait_for_cursor(last, limit).await;
    let stats = forwarder.stats.snapshot();
    forwarder.stop().await;
    writer.stop().await;
    (drained, stats)
}

#[tokio::test]
async fn every_record_kind_arrives_with_its_tags_and_values() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let vm = VictoriaMetrics::start(dir.path(), true).await;
    let db = dir.path().join("cems.db");

    let reading = Record {
        quantity: Some(Quantity::SO2),
        unit: Some(Unit::MgPerM3),
        raw: Some(12.5),
        measured: Some(35.75),
        corrected: Some(41.0),
        rate: Some(0.5),
        ..record(RecordKind::Reading, T0, "unit1", "so2-a", "so2")
    };
    let flagged = Record {
        flags: FlagSet::of(Flag::T).with(Flag::C),
        raw: Some(f64::INFINITY),
        measured: None,
        corrected: Some(40.0),
        rate: None,
        ts: Timestamp::from_millis(T0 + 1000),
        ..reading.clone()
    };
    let nox = |kind, ms: i64| Record {
        quantity: Some(Quantity::NOx),
        unit: Some(Unit::MgPerM3),
        end: Some(Timestamp::from_millis(T0 + ms)),
        ..record(kind, T0, "unit1", "nox-a", "nox")
    };
    let minute = Record {
        measured: Some(80.25),
        min: Some(70.0),
        max: Some(95.5),
        count: Some(60),
        ..nox(RecordKind::Minute, 60_000)
    };
    // NOx computed from NO and NO2 is stored as channel "NOx"; it goes out as "nox", the
    // name the profiles give a NOx channel, so minute and hour chart as one channel.
    let hour = Record {
        measured: Some(81.0),
        corrected: Some(120.5),
        count: Some(45),
        channel: "NOx".into(),
        ..nox(RecordKind::Hour, 3_600_000)
    };
    let day = Record {
        measured: Some(79.5),
        count: Some(24),
        ..nox(RecordKind::Day, 86_400_000)
    };
    let gap = Record {
        quantity: Some(Quantity::O2),
        flags: FlagSet::of(Flag::B),
        end: Some(Timestamp::from_millis(T0 + 95_000)),
        note: Some("no answer".into()),
        ..record(RecordKind::Gap, T0 + 5_000, "", "o2-a", "o2")
    };
    let exceedance = Record {
        quantity: Some(Quantity::SO2),
        unit: Some(Unit::MgPerM3),
        measured: Some(120.0),
        note: Some("limit 35".into()),
        ..record(RecordKind::Exceedance, T0 + 7_000, "unit1", "so2-a", "so2")
    };
    let event = Record {
        flags: FlagSet::of(Flag::M),
        note: Some("maintenance \"door\" open".into()),
        ..record(
            RecordKind::Event,
            T0 + 9_000,
            "unit 1",
            "analyser 2,b",
            "o2=x",
        )
    };
    let records = vec![reading, flagged, minute, hour, day, gap, exceedance, event];
    let last = fill_store(&db, &records);
    assert_eq!(last, 8);

    let (drained, stats) = drain(
        &sink_config("vm", &vm.url()),
        &db,
        last,
        Duration::from_secs(30),
    )
    .await;
    assert!(drained, "cursor stuck at {}", stats.cursor);
    assert_eq!(stats.points_delivered, 8);
    assert_eq!(stats.dead_letters, 0);

    let series = vm.export(r#"{__name__=~"cems_.*"}"#).await;
    // No flag label: the reading flagged C is a point of the same series as the one flagged N.
    let so2 = labels(&[
        ("channel", "so2"),
        ("device", "so2-a"),
        ("quantity", "SO2"),
        ("site", "plant-1"),
        ("stack", "unit1"),
        ("unit", "mg/m3"),
    ]);
    let nox = labels(&[
        ("channel", "nox"),
        ("device", "nox-a"),
        ("quantity", "NOx"),
        ("site", "plant-1"),
        ("stack", "unit1"),
        ("unit", "mg/m3"),
    ]);
    // The gap has no stack (empty) and no unit: those tags are absent.
    let o2 = labels(&[
        ("channel", "o2"),
        ("device", "o2-a"),
        ("quantity", "O2"),
        ("site", "plant-1"),
    ]);
    // Escaped space, comma and equals sign come back as written.
    let odd = labels(&[
        ("channel", "o2=x"),
        ("device", "analyser 2,b"),
        ("site", "plant-1"),
        ("stack", "unit 1"),
    ]);
    let expect: Vec<(&str, BTreeMap<String, String>, i64, f64)> = vec![
        ("cems_reading_flag_code", so2.clone(), T0, 0.0),
        ("cems_reading_raw", so2.clone(), T0, 12.5),
        ("cems_reading_measured", so2.clone(), T0, 35.75),
        ("cems_reading_corrected", so2.clone(), T0, 41.0),
        ("cems_reading_rate", so2.clone(), T0, 0.5),
        // {T, C} reports C (rank 3); the infinite raw value and the missing ones are absent.
        ("cems_reading_flag_code", so2.clone(), T0 + 1000, 3.0),
        ("cems_reading_corrected", so2.clone(), T0 + 1000, 40.0),
        ("cems_minute_flag_code", nox.clone(), T0, 0.0),
        ("cems_minute_measured", nox.clone(), T0, 80.25),
        ("cems_minute_min", nox.clone(), T0, 70.0),
        ("cems_minute_max", nox.clone(), T0, 95.5),
        ("cems_minute_count", nox.clone(), T0, 60.0),
        ("cems_minute_duration_ms", nox.clone(), T0, 60_000.0),
        ("cems_hour_flag_code", nox.clone(), T0, 0.0),
        ("cems_hour_measured", nox.clone(), T0, 81.0),
        ("cems_hour_corrected", nox.clone(), T0, 120.5),
        ("cems_hour_count", nox.clone(), T0, 45.0),
        ("cems_hour_duration_ms", nox.clone(), T0, 3_600_000.0),
        ("cems_day_flag_code", nox.clone(), T0, 0.0),
        ("cems_day_measured", nox.clone(), T0, 79.5),
        ("cems_day_count", nox.clone(), T0, 24.0),
        ("cems_day_duration_ms", nox.clone(), T0, 86_400_000.0),
        // B is rank 7; the gap lasted 95 000 - 5 000 = 90 000 ms, so it is closed.
        ("cems_gap_flag_code", o2.clone(), T0 + 5_000, 7.0),
        ("cems_gap_duration_ms", o2.clone(), T0 + 5_000, 90_000.0),
        ("cems_gap_closed", o2.clone(), T0 + 5_000, 1.0),
        // without an end the exceedance and the event are still open
        ("cems_exceedance_flag_code", so2.clone(), T0 + 7_000, 0.0),
        ("cems_exceedance_measured", so2.clone(), T0 + 7_000, 120.0),
        ("cems_exceedance_closed", so2.clone(), T0 + 7_000, 0.0),
        // M is rank 4.
        ("cems_event_flag_code", odd.clone(), T0 + 9_000, 4.0),
        ("cems_event_closed", odd.clone(), T0 + 9_000, 0.0),
    ];
    let mut expected = Points::new();
    for (name, labels, ts, value) in expect {
        expected
            .entry((name.to_string(), labels))
            .or_default()
            .push((ts, value));
    }
    assert_eq!(points(&series), expected);

    // The string fields got through (VictoriaMetrics keeps a number for them, not the text).
    let notes: Vec<(&str, &BTreeMap<String, String>, &[i64])> = series
        .iter()
        .filter(|s| s.name.ends_with("_note"))
        .map(|s| (s.name.as_str(), &s.labels, s.timestamps.as_slice()))
        .collect();
    assert_eq!(
        notes,
        vec![
            ("cems_event_note", &odd, &[T0 + 9_000][..]),
            ("cems_exceedance_note", &so2, &[T0 + 7_000][..]),
            ("cems_gap_note", &o2, &[T0 + 5_000][..]),
        ]
    );
}

/// Readings of four channels, one per second each; the value encodes channel and index.
fn readings(from: usize, count: usize) -> Vec<Record> {
    let channels = [
        ("so2", Quantity::SO2),
        ("nox", Quantity::NOx),
        ("o2", Quantity::O2),
        ("dust", Quantity::Dust),
    ];
    (from..from + count)
        .map(|i| {
            let (channel, quantity) = channels[i % 4];
            let second = (i / 4) as i64;
            Record {
                quantity: Some(quantity),
                unit: Some(Unit::MgPerM3),
                raw: Some(expected_value(i)),
                ..record(
                    RecordKind::Reading,
                    T0 + second * 1000,
                    "unit1",
                    "multi",
                    channel,
                )
            }
        })
        .collect()
}

fn expected_value(i: usize) -> f64 {
    (i % 4) as f64 * 1000.0 + (i / 4) as f64 * 0.25
}

/// What export must hold for readings 0..n: per channel, every second's value in order.
fn expected_raw(n: usize) -> BTreeMap<String, Vec<(i64, f64)>> {
    let mut out: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    let names = ["so2", "nox", "o2", "dust"];
    for i in 0..n {
        out.entry(names[i % 4].to_string())
            .or_default()
            .push((T0 + (i / 4) as i64 * 1000, expected_value(i)));
    }
    out
}

fn exported_raw(series: &[Series]) -> BTreeMap<String, Vec<(i64, f64)>> {
    series
        .iter()
        .filter(|s| s.name == "cems_reading_raw")
        .map(|s| {
            let channel = s.labels.get("channel").cloned().unwrap_or_default();
            (channel, s.points())
        })
        .collect()
}

#[tokio::test]
async fn an_outage_while_records_keep_coming_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let mut vm = VictoriaMetrics::start(dir.path(), true).await;
    let db = dir.path().join("cems.db");
    fill_store(&db, &[]);
    let writer = Writer::start(&db);
    let mut config = sink_config("vm", &vm.url());
    config.batch_size = 200;
    config.backlog_warning = 300;
    let forwarder = RunningForwarder::spawn(&config, &db, &writer.handle);

    // 150 commits of 8 readings every 20 ms (≈ 3 s); the server is down for the middle 1.5 s.
    const COMMITS: usize = 150;
    const PER_COMMIT: usize = 8;
    let handle = writer.handle.clone();
    let producer = tokio::spawn(async move {
        for n in 0..COMMITS {
            let committed = handle.append(readings(n * PER_COMMIT, PER_COMMIT)).await;
            assert!(committed.is_ok(), "commit {n}: {committed:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    let before_outage = forwarder.stats.snapshot();
    vm.stop();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let during_outage = forwarder.stats.snapshot();
    vm.restart().await;
    assert!(producer.await.is_ok(), "producer");
    let total = (COMMITS * PER_COMMIT) as u64;
    let drained = forwarder
        .wait_for_cursor(total, Duration::from_secs(30))
        .await;
    let after = forwarder.stats.snapshot();
    let stats = Arc::clone(&forwarder.stats);
    forwarder.stop().await;
    writer.stop().await;

    assert!(drained, "cursor stuck at {} of {total}", after.cursor);
    assert!(
        before_outage.cursor > 0,
        "something was delivered before the outage"
    );
    assert!(
        during_outage.retries > before_outage.retries,
        "the outage was noticed: {during_outage:?}"
    );
    // 1.5 s of 8 readings per 20 ms is about 600 waiting records, above the 300 threshold.
    assert!(
        during_outage.backlog_warnings >= 1,
        "backlog warning raised: {during_outage:?}"
    );
    assert_eq!(stats.snapshot().dead_letters, 0);

    let series = vm.export(r#"{__name__="cems_reading_raw"}"#).await;
    assert_eq!(exported_raw(&series), expected_raw(COMMITS * PER_COMMIT));
}

#[tokio::test]
async fn a_large_store_arrives_complete_in_gzip_batches() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let vm = VictoriaMetrics::start(dir.path(), true).await;
    let db = dir.path().join("cems.db");
    const N: usize = 20_000;
    let last = fill_store(&db, &readings(0, N));
    let mut config = sink_config("vm", &vm.url());
    config.batch_size = 3000; // 6 full batches and a partial one
    let (drained, stats) = drain(&config, &db, last, Duration::from_secs(60)).await;
    assert!(drained, "cursor stuck at {}", stats.cursor);
    // 20 000 / 3 000 = 6 full batches and one of 2 000: 7 requests, no retries.
    assert_eq!((stats.requests, stats.retries), (7, 0));
    let series = vm.export(r#"{__name__="cems_reading_raw"}"#).await;
    assert_eq!(exported_raw(&series), expected_raw(N));
}

#[tokio::test]
async fn a_server_stopped_with_requests_on_the_wire_gets_every_point_once_and_the_cursor_waits() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let mut vm = VictoriaMetrics::start(dir.path(), true).await;
    let db = dir.path().join("cems.db");
    const N: usize = 60_000;
    let last = fill_store(&db, &readings(0, N));
    let mut config = sink_config("vm", &vm.url());
    config.batch_size = 1000;
    config.requests_in_flight = 3;
    let writer = Writer::start(&db);
    let forwarder = RunningForwarder::spawn(&config, &db, &writer.handle);
    // stop the server a few batches into the drain, requests on the wire
    assert!(
        forwarder
            .wait_for_cursor(5_000, Duration::from_secs(60))
            .await,
        "the drain did not start"
    );
    vm.stop();
    let at_stop = forwarder.stats.snapshot();
    // the forwarder notices, and is stopped while it waits to retry
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while forwarder.stats.snapshot().retries == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let in_outage = forwarder.stats.snapshot();
    forwarder.stop().await;
    writer.stop().await;
    assert!(
        in_outage.retries > 0,
        "the outage went unnoticed: {in_outage:?}"
    );
    assert!(at_stop.cursor < last, "the drain was over before the stop");
    let cursor = open(&db)
        .cursor("influx:vm")
        .unwrap_or_else(|e| panic!("cursor: {e}"));
    assert_eq!(cursor, in_outage.cursor);
    assert_eq!(cursor % 1000, 0, "the cursor ends a batch: {cursor}");

    // Everything up to the cursor is on the server, with its values: it never moved past a
    // batch the server had not taken. Readings 0.. have seqs 1..
    vm.restart().await;
    let held = exported_raw(&vm.export(r#"{__name__="cems_reading_raw"}"#).await);
    let wanted = expected_raw(cursor as usize);
    for (channel, points) in &wanted {
        let got = held.get(channel).map(Vec::as_slice).unwrap_or_default();
        assert!(
            got.len() >= points.len() && got[..points.len()] == points[..],
            "{channel}: {} points up to the cursor, {} held",
            points.len(),
            got.len()
        );
    }

    // Resumed, the sink sends the rest: each (series, time) once, with its value.
    let (drained, stats) = drain(&config, &db, last, Duration::from_secs(60)).await;
    assert!(drained, "cursor stuck at {}", stats.cursor);
    let series = vm.export(r#"{__name__="cems_reading_raw"}"#).await;
    assert_eq!(exported_raw(&series), expected_raw(N));
}

/// A parameter change from the audit trail arrives as a point of its own measurement,
/// `cems_audit`, tagged with what changed and how, its values as string fields.
#[tokio::test]
async fn an_audit_entry_arrives_as_its_own_measurement() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let vm = VictoriaMetrics::start(dir.path(), true).await;
    let db = dir.path().join("cems.db");
    let entry = cemsd::store::AuditEntry {
        ts: T0 + 11_000,
        source: "site".into(),
        how: cemsd::store::AuditHow::Reload,
        item: "stack.unit1.reference_o2".into(),
        old: Some("6.0".into()),
        new: Some("8.0".into()),
        file: Some("/etc/cemsd/cemsd.toml".into()),
        checksum: Some("0123abcd".into()),
    };
    let last = fill_store(&db, &[entry.to_record("unit1")]);

    let (drained, _) = drain(
        &sink_config("vm", &vm.url()),
        &db,
        last,
        Duration::from_secs(30),
    )
    .await;
    assert!(drained, "cursor stuck");

    let series = vm.export(r#"{__name__=~"cems_.*"}"#).await;
    let tags = labels(&[
        ("how", "reload"),
        ("item", "stack.unit1.reference_o2"),
        ("site", "plant-1"),
        ("source", "site"),
        ("stack", "unit1"),
    ]);
    let got: Vec<(&str, &BTreeMap<String, String>, &[i64])> = series
        .iter()
        .map(|s| (s.name.as_str(), &s.labels, s.timestamps.as_slice()))
        .collect();
    let at = [T0 + 11_000];
    assert_eq!(
        got,
        vec![
            ("cems_audit_changed", &tags, &at[..]),
            ("cems_audit_checksum", &tags, &at[..]),
            ("cems_audit_file", &tags, &at[..]),
            ("cems_audit_new", &tags, &at[..]),
            ("cems_audit_old", &tags, &at[..]),
        ]
    );
    assert_eq!(series[0].points(), vec![(T0 + 11_000, 1.0)]);
}
