//! A restart rebuilds the periods open at the stop from what the last run stored, and the
//! store ends with the same minutes, hours and days as a run that never stopped — also when
//! the stop falls in one local day and the restart in the next.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use cemsd::app::resume::resume;
use cemsd::config;
use cemsd::model::{Basis, FlagSet, Quantity, Sample, Timestamp, Unit};
use cemsd::process::Processor;
use cemsd::store::{Query, RecordKind, Store, StoreOptions};

const CONFIG: &str = r#"[site]
id = "plant"
utc_offset = "+08:00"

[[stack]]
id = "unit1"
source_type = "coal_boiler"
frozen_after = "off"

[[mqtt]]
id = "m"
url = "mqtt://127.0.0.1"
client_id = "c"
[[mqtt.subscribe]]
filter = "plant/#"
format = "json"
[[mqtt.device]]
id = "dtu"
stack = "unit1"
interval = "10s"
channels = { SO2 = { unit = "mg/m3" }, O2 = { unit = "%vol" } }
"#;

/// 2026-03-10 00:00 local (UTC+8).
const DAY_START: i64 = 1_773_072_000_000;
const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

/// One poll of SO2 and O2 at `ts`; SO2 varies with time so every minute differs.
fn poll(ts: i64) -> Vec<Sample> {
    let sample = |channel: &str, quantity, unit, value| Sample {
        device: Arc::from("dtu"),
        channel: Arc::from(channel),
        quantity,
        unit,
        basis: Basis::Dry,
        value,
        status: FlagSet::EMPTY,
        ts: Timestamp(ts),
    };
    let step = (ts - DAY_START) / 10_000;
    vec![
        sample(
            "SO2",
            Quantity::SO2,
            Unit::MgPerM3,
            20.0 + (step % 13) as f64,
        ),
        sample(
            "O2",
            Quantity::O2,
            Unit::PercentVol,
            6.0 + (step % 5) as f64 / 10.0,
        ),
    ]
}

/// Polls every 10 s in [from, to), ticking every minute as the daemon's clock would.
fn run(processor: &mut Processor, store: &mut Store, from: i64, to: i64) {
    let mut records = Vec::new();
    let mut ts = from;
    while ts < to {
        processor.push(&poll(ts), &mut records);
        if ts % MINUTE == 0 {
            processor.tick(Timestamp(ts), &mut records);
        }
        ts += 10_000;
    }
    store.append(&records).unwrap_or_else(|e| panic!("{e}"));
}

fn finish(processor: &mut Processor, store: &mut Store, now: i64) {
    let mut records = Vec::new();
    processor.finish(Timestamp(now), &mut records);
    store.append(&records).unwrap_or_else(|e| panic!("{e}"));
}

/// The newest revision of every period: (kind, quantity, start) → (flag, count, measured,
/// corrected), and how many rows each period has.
type Key = (&'static str, String, i64);
type Periods = BTreeMap<Key, (String, Option<u32>, Option<i64>, Option<i64>)>;

fn periods(store: &Store) -> (Periods, BTreeMap<Key, usize>) {
    let mut newest = Periods::new();
    let mut rows = BTreeMap::new();
    for kind in [RecordKind::Minute, RecordKind::Hour, RecordKind::Day] {
        for stored in store
            .query(&Query {
                kind: Some(kind),
                ..Query::default()
            })
            .unwrap_or_else(|e| panic!("{e}"))
        {
            let r = stored.record;
            let key = (kind.as_str(), format!("{:?}", r.quantity), r.ts.millis());
            // values to 1e-9, so a sum taken in another order compares equal
            let fixed = |v: Option<f64>| v.map(|v| (v * 1e9).round() as i64);
            newest.insert(
                key.clone(),
                (
                    format!("{:?}", r.flags.primary()),
                    r.count,
                    fixed(r.measured),
                    fixed(r.corrected),
                ),
            );
            *rows.entry(key).or_insert(0) += 1;
        }
    }
    (newest, rows)
}

/// A run stopped at `stop` and restarted at `restart` (no data in between) against one that
/// never stopped over the same input; both run on to `end`.
fn compare_with_uninterrupted(start: i64, stop: i64, restart: i64, end: i64) {
    let loaded = config::parse(Path::new("site.toml"), CONFIG).unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let open = |name: &str| {
        Store::open(&dir.path().join(name), StoreOptions::default())
            .unwrap_or_else(|e| panic!("{e}"))
    };

    let mut whole = open("whole.db");
    let mut once = Processor::new(&loaded.config, &loaded.profiles);
    run(&mut once, &mut whole, start, stop);
    run(&mut once, &mut whole, restart, end);
    finish(&mut once, &mut whole, end + 2 * 24 * HOUR);

    let mut stopped = open("stopped.db");
    let mut first = Processor::new(&loaded.config, &loaded.profiles);
    run(&mut first, &mut stopped, start, stop);
    // killed: what was open is lost from memory, what was committed stays
    drop(first);
    let mut second = resume(
        &mut stopped,
        Processor::new(&loaded.config, &loaded.profiles),
        &loaded.config,
        Timestamp(restart),
    )
    .unwrap_or_else(|e| panic!("resume: {e}"));
    run(&mut second, &mut stopped, restart, end);
    finish(&mut second, &mut stopped, end + 2 * 24 * HOUR);

    let (expected, _) = periods(&whole);
    let (got, rows) = periods(&stopped);
    let differing: Vec<_> = expected
        .iter()
        .filter(|(key, value)| got.get(key) != Some(value))
        .map(|(key, value)| (key, value, got.get(key)))
        .collect();
    assert!(differing.is_empty(), "periods differ: {differing:#?}");
    assert_eq!(
        expected.len(),
        got.len(),
        "periods only in the restarted store"
    );
    let twice: Vec<_> = rows.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "periods stored more than once: {twice:?}");
}

/// Stop at 13:37:20 with the minute, the hour and the day open; restart 40 s later.
#[test]
fn a_restart_within_the_day_ends_with_the_periods_of_a_run_that_never_stopped() {
    let stop = DAY_START + 13 * HOUR + 37 * MINUTE + 20_000;
    compare_with_uninterrupted(
        DAY_START + 10 * HOUR,
        stop,
        stop + 40_000,
        DAY_START + 15 * HOUR,
    );
}

/// Stop at 23:40:30, restart at 00:20 of the next day: the hour 23:00 and the day of the
/// stop are closed with what the first run stored of them, as an uninterrupted run closes
/// them (a rebuild from the day of the restart alone never emits them).
#[test]
fn a_restart_on_the_next_day_closes_the_hour_and_day_open_at_the_stop() {
    compare_with_uninterrupted(
        DAY_START + 21 * HOUR,
        DAY_START + 23 * HOUR + 40 * MINUTE + 30_000,
        DAY_START + 24 * HOUR + 20 * MINUTE,
        DAY_START + 25 * HOUR,
    );
}
