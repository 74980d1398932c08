//! A local day through the live processing path into a real store, then the day's HJ 75
//! table (`report::build_table`) and its events (`report::build`): hourly averages, an
//! exceedance that opens and closes, FGD efficiency and emitted mass, each checked against
//! numbers worked out by hand from HJ 75-2017.

use std::path::Path;
use std::sync::Arc;

use cemsd::app::resume::resume;
use cemsd::config;
use cemsd::model::{Basis, FlagSet, Quantity, Sample, Timestamp, Unit};
use cemsd::process::Processor;
use cemsd::report;
use cemsd::report::table::{PollutantCells, StackTable, Value};
use cemsd::store::{Query, RecordKind, Store, StoreOptions};
use chrono::NaiveDate;

const CONFIG: &str = r#"[site]
id = "plant"
utc_offset = "+08:00"

[[stack]]
id = "u1"
source_type = "coal_boiler"
duct_area_m2 = 20.0
limits = { preset = "ultra_low" }
frozen_after = "off"
nox = "no_only"

[[device]]
id = "out"
profile = "sdl-scs900-plc"
stack = "u1"
transport = "tcp"
address = "127.0.0.1:1502"

[[device]]
id = "in"
profile = "sdl-scs900-plc"
stack = "u1"
transport = "tcp"
address = "127.0.0.1:1503"
position = "inlet"
"#;

/// 2026-03-10 00:00 local (UTC+8).
const DAY_START: i64 = 1_773_072_000_000;
const HOUR: i64 = 3_600_000;

fn sample(
    device: &str,
    channel: &str,
    quantity: Quantity,
    unit: Unit,
    value: f64,
    ts: i64,
) -> Sample {
    Sample {
        device: Arc::from(device),
        channel: Arc::from(channel),
        quantity,
        unit,
        basis: Basis::Dry,
        value,
        status: FlagSet::EMPTY,
        ts: Timestamp(ts),
    }
}

/// One poll of a device: O2 6 %, moisture 10 %, 10 m/s at 50 °C and 0 Pa gauge, and `so2`.
fn poll(device: &str, so2: f64, ts: i64) -> Vec<Sample> {
    vec![
        sample(device, "o2", Quantity::O2, Unit::PercentVol, 6.0, ts),
        sample(
            device,
            "h2o",
            Quantity::Humidity,
            Unit::PercentVol,
            10.0,
            ts,
        ),
        sample(
            device,
            "velocity",
            Quantity::Velocity,
            Unit::MetrePerSecond,
            10.0,
            ts,
        ),
        sample(device, "temp", Quantity::Temperature, Unit::DegC, 50.0, ts),
        sample(device, "pressure", Quantity::Pressure, Unit::Pa, 0.0, ts),
        sample(device, "so2", Quantity::SO2, Unit::MgPerM3, so2, ts),
    ]
}

fn day_table(
    store: &Store,
    config: &config::SiteConfig,
    day: NaiveDate,
    now: Timestamp,
) -> report::TableReport {
    report::build_table(store, config, report::ReportPeriod::Day(day), None, now)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The SO2 cells of the hour labelled `hour` ("02").
fn so2_cells(stack: &StackTable, hour: &str) -> PollutantCells {
    let column = stack.pollutants.iter().position(|q| *q == Quantity::SO2);
    let row = stack.rows.iter().find(|r| r.label == hour);
    match (column, row) {
        (Some(column), Some(row)) => row.pollutants[column].clone(),
        _ => panic!("no SO2 column or no row {hour}: {stack:?}"),
    }
}

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-6 * want.abs().max(1.0)
}

#[test]
fn a_day_with_an_exceedance_and_an_fgd_pair() {
    let loaded = config::parse(Path::new("site.toml"), CONFIG).unwrap_or_else(|e| panic!("{e}"));
    let mut processor = Processor::new(&loaded.config, &loaded.profiles);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut store = Store::open(&dir.path().join("c.db"), StoreOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));

    // 01:00–04:00 local, a poll every 10 s; outlet SO2 20, then 40 in the second hour, then 20;
    // inlet SO2 2000 throughout.
    let mut records = Vec::new();
    let from = DAY_START + HOUR;
    let mut ts = from;
    while ts < from + 3 * HOUR {
        let outlet_so2 = if ts >= from + HOUR && ts < from + 2 * HOUR {
            40.0
        } else {
            20.0
        };
        processor.push(&poll("out", outlet_so2, ts), &mut records);
        processor.push(&poll("in", 2000.0, ts), &mut records);
        ts += 10_000;
    }
    processor.finish(Timestamp(from + 3 * HOUR + 60_000), &mut records);
    store.append(&records).unwrap_or_else(|e| panic!("{e}"));

    let day = NaiveDate::from_ymd_opt(2026, 3, 10).unwrap_or_default();
    let now = Timestamp(DAY_START + 24 * HOUR);
    let table = day_table(&store, &loaded.config, day, now);
    let u1_table = &table.stacks[0];
    let built = report::build(&store, &loaded.config, day).unwrap_or_else(|e| panic!("{e}"));
    let u1 = &built.stacks[0];

    // Q_s = 10 m/s × 20 m2 × 3600 = 720000 m3/h
    // Q_sn = 720000 × 273.15/(273.15+50) × (101325+0)/101325 × (1 − 0.10) = 547736.9 m3/h
    let q_sn = 720_000.0 * 273.15 / 323.15 * 0.9;
    // O2 6 % at a 6 % reference: corrected = measured; G = C × Q_sn × 1e-6 kg/h.
    assert!(matches!(
        so2_cells(u1_table, "00").corrected,
        Value::Missing
    ));
    for (hour, want) in [("01", 20.0), ("02", 40.0), ("03", 20.0)] {
        let cells = so2_cells(u1_table, hour);
        match (cells.corrected, cells.emission) {
            (Value::Valid(corrected), Value::Valid(rate)) => {
                assert!(close(corrected, want), "{hour}: {cells:?}");
                assert!(close(rate, want * q_sn * 1e-6), "{hour}: {cells:?}");
            }
            _ => panic!("{hour}: {cells:?}"),
        }
    }

    // 40 > 35 (ultra-low SO2) in the 02:00 hour only: one event, 02:00 .. 03:00, peak 40.
    assert_eq!(u1.exceedances.len(), 1, "{:?}", u1.exceedances);
    let event = &u1.exceedances[0];
    assert_eq!(event.quantity, "SO2");
    assert_eq!(event.start, "2026-03-10 02:00");
    assert_eq!(event.end.as_deref(), Some("2026-03-10 03:00"));
    assert!(close(event.peak.unwrap_or(0.0), 40.0));

    // FGD: inlet 3 h × 2000 × Q_sn × 1e-6; outlet (20 + 40 + 20) × Q_sn × 1e-6.
    let fgd = u1_table
        .fgd
        .as_ref()
        .unwrap_or_else(|| panic!("no FGD pair"));
    let inlet_kg = 3.0 * 2000.0 * q_sn * 1e-6;
    let outlet_kg = 80.0 * q_sn * 1e-6;
    assert!(close(fgd.inlet_kg, inlet_kg), "{fgd:?}");
    assert!(close(fgd.outlet_kg, outlet_kg), "{fgd:?}");
    assert!(close(fgd.removed_kg, inlet_kg - outlet_kg), "{fgd:?}");
    // (6000 − 80) / 6000 = 0.986667
    assert!(
        close(fgd.efficiency.unwrap_or(0.0), 5920.0 / 6000.0),
        "{fgd:?}"
    );
    assert_eq!((fgd.valid_hours, fgd.expected_hours), (3, 24));

    // Emitted SO2 over the day: the three valid hours; the other 21 are missing and none is
    // substituted (00:00 has no valid hour before it, the hours after 03:00 no valid hour
    // after them within the day's reach).
    let so2_total = u1_table.totals.iter().find(|t| t.quantity == Quantity::SO2);
    let so2_total = so2_total.unwrap_or_else(|| panic!("no SO2 total: {:?}", u1_table.totals));
    assert!(close(so2_total.measured_kg, outlet_kg), "{so2_total:?}");
    assert_eq!(
        (
            so2_total.valid_hours,
            so2_total.invalid_hours,
            so2_total.missing_hours,
            so2_total.substituted_hours
        ),
        (3, 0, 21, 0)
    );

    let text = report::render_events(&built, report::Lang::En);
    assert!(text.contains("== stack u1"), "{text}");
    assert!(
        text.contains("  SO2 2026-03-10 02:00 .. 2026-03-10 03:00 peak 40.00 mg/m3, 1 h"),
        "{text}"
    );
}

/// A restart in the middle of an exceedance: the event open when the daemon stops goes on (one
/// event 01:00–04:00 over three hours, not a second one opening at 03:00), and the minutes and
/// hours the first run closed are not written again by the second.
#[test]
fn a_restart_continues_open_exceedances_and_stores_each_period_once() {
    let loaded = config::parse(Path::new("site.toml"), CONFIG).unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut store = Store::open(&dir.path().join("c.db"), StoreOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let from = DAY_START + HOUR;
    // Outlet SO2 40 > 35 from 01:00; the run stops at 03:00 with the event open.
    let run = |processor: &mut Processor, store: &mut Store, start: i64, hours: i64, so2: f64| {
        let mut records = Vec::new();
        let mut ts = start;
        while ts < start + hours * HOUR {
            processor.push(&poll("out", so2, ts), &mut records);
            ts += 10_000;
        }
        processor.finish(Timestamp(start + hours * HOUR + 60_000), &mut records);
        store.append(&records).unwrap_or_else(|e| panic!("{e}"));
    };
    let mut first = Processor::new(&loaded.config, &loaded.profiles);
    run(&mut first, &mut store, from, 2, 40.0);
    drop(first);

    let restarted = resume(
        &mut store,
        Processor::new(&loaded.config, &loaded.profiles),
        &loaded.config,
        Timestamp(from + 2 * HOUR + 60_000),
    );
    let mut second = restarted.unwrap_or_else(|e| panic!("{e}"));
    // 03:00 still 40, 04:00 back to 20: the event closes at 04:00 after 3 hours.
    run(&mut second, &mut store, from + 2 * HOUR, 1, 40.0);
    run(&mut second, &mut store, from + 3 * HOUR, 1, 20.0);

    let day = NaiveDate::from_ymd_opt(2026, 3, 10).unwrap_or_default();
    let built = report::build(&store, &loaded.config, day).unwrap_or_else(|e| panic!("{e}"));
    let events = &built.stacks[0].exceedances;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].start, "2026-03-10 01:00");
    assert_eq!(events[0].end.as_deref(), Some("2026-03-10 04:00"));
    assert_eq!(events[0].hours, Some(3));
    assert!(close(events[0].peak.unwrap_or(0.0), 40.0), "{events:?}");

    // Each SO2 hour and minute of the outlet is stored once, across the restart too.
    for (kind, expected) in [(RecordKind::Hour, 4), (RecordKind::Minute, 4 * 60)] {
        let rows = store
            .query(&Query {
                kind: Some(kind),
                stack: Some("u1".into()),
                ..Query::default()
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let starts: Vec<i64> = rows
            .iter()
            .filter(|r| r.record.quantity == Some(Quantity::SO2))
            .map(|r| r.record.ts.0)
            .collect();
        let distinct: std::collections::BTreeSet<i64> = starts.iter().copied().collect();
        assert_eq!(starts.len(), expected, "{kind}: {starts:?}");
        assert_eq!(distinct.len(), expected, "{kind} stored twice: {starts:?}");
    }
}

/// An hour invalidated by a communication failure is listed among the gaps: one whose
/// failed reads opened a gap record, and one uploaded by a data logger flagged B, which
/// comes with no gap record at all (the report said "Gaps: none" beside such an hour).
#[test]
fn an_hour_invalidated_by_a_communication_failure_is_among_the_gaps() {
    use cemsd::model::Flag;
    use cemsd::store::Record;

    let loaded = config::parse(Path::new("site.toml"), CONFIG).unwrap_or_else(|e| panic!("{e}"));
    let mut processor = Processor::new(&loaded.config, &loaded.profiles);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut store = Store::open(&dir.path().join("c.db"), StoreOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));

    // 01:00–02:00 local answered, 02:00–03:00 every read of the outlet analyser failed
    // (the collector hands over B-flagged samples without a value), 03:00–04:00 answered.
    let mut records = Vec::new();
    let from = DAY_START + HOUR;
    let mut ts = from;
    while ts < from + 3 * HOUR {
        let mut samples = poll("out", 20.0, ts);
        if ts >= from + HOUR && ts < from + 2 * HOUR {
            for s in &mut samples {
                s.value = f64::NAN;
                s.status = FlagSet::of(Flag::B);
            }
        }
        processor.push(&samples, &mut records);
        ts += 10_000;
    }
    processor.finish(Timestamp(from + 3 * HOUR + 60_000), &mut records);
    // 00:00–01:00: an SO2 hour a data logger uploaded with flag B, nothing else. (From
    // 03:59:50 the analyser is silent, a gap still open at the end of the day.)
    let mut uploaded = Record::new(
        RecordKind::Hour,
        Timestamp(DAY_START),
        Arc::from("u1"),
        Arc::from(""),
        Arc::from(""),
    );
    uploaded.end = Some(Timestamp(DAY_START + HOUR));
    uploaded.quantity = Some(Quantity::SO2);
    uploaded.unit = Some(Unit::MgPerM3);
    uploaded.flags = FlagSet::of(Flag::B);
    uploaded.count = Some(0);
    records.push(uploaded);
    store.append(&records).unwrap_or_else(|e| panic!("{e}"));

    let day = NaiveDate::from_ymd_opt(2026, 3, 10).unwrap_or_default();
    let table = day_table(
        &store,
        &loaded.config,
        day,
        Timestamp(DAY_START + 24 * HOUR),
    );
    assert_eq!(
        so2_cells(&table.stacks[0], "02").measured,
        Value::Invalid('B')
    );
    assert_eq!(
        so2_cells(&table.stacks[0], "00").measured,
        Value::Invalid('B')
    );
    let built = report::build(&store, &loaded.config, day).unwrap_or_else(|e| panic!("{e}"));
    let u1 = &built.stacks[0];

    // the failed reads: the gap records of the outlet analyser's channels, 02:00 .. 03:00
    let failed: Vec<_> = u1
        .gaps
        .iter()
        .filter(|g| g.device == "out" && g.cause == "communication_failure")
        .collect();
    assert!(
        failed
            .iter()
            .any(|g| g.channel == "so2" && g.start.starts_with("2026-03-10 01:59:50")),
        "{:#?}",
        u1.gaps
    );
    // the uploaded B hour, which no gap record covers
    let uploaded: Vec<_> = u1
        .gaps
        .iter()
        .filter(|g| g.cause == report::B_HOURS_CAUSE)
        .collect();
    assert_eq!(uploaded.len(), 1, "{:#?}", u1.gaps);
    assert_eq!(
        (
            uploaded[0].channel.as_str(),
            uploaded[0].start.as_str(),
            uploaded[0].end.as_deref()
        ),
        ("SO2", "2026-03-10 00:00:00", Some("2026-03-10 01:00:00"))
    );

    let text = report::render_events(&built, report::Lang::En);
    assert!(!text.contains("Gaps: none"), "{text}");
    assert!(
        text.contains("u1 SO2 2026-03-10 00:00:00 .. 2026-03-10 01:00:00 (hour invalid, flag B"),
        "{text}"
    );
}
