//! What `cemsd verify` costs on a year of a 20-channel plant: the store's tamper chain walked
//! from its checkpoint, every row read and hashed again.
//!
//! The year is written compactly as minute records (20 channels x 525 600 minutes, 10.5
//! million rows) plus their hours, one commit per minute as a plant committing each minute's
//! records together would make (525 600 commits): per-second readings for a year would be 630
//! million rows, a store this bench cannot write in reasonable time; verification costs the
//! same per row whatever its kind.
//!
//! Run with `cargo bench --bench verify`; the year's store takes about 1.1 GB of disk in the
//! system's temporary directory, `CEMSD_VERIFY_DAYS=60` writes fewer days (verification is
//! one pass over rows and commits, so its time grows linearly with the days). Not a criterion
//! bench: writing the store takes minutes and the figure is one verification.

use std::sync::Arc;
use std::time::Instant;

use cemsd::model::{FlagSet, Quantity, Timestamp, Unit};
use cemsd::store::{Record, RecordKind, Store, StoreOptions};

const CHANNELS: usize = 20;
const MINUTE_MS: i64 = 60_000;
/// 2025-01-01T00:00:00Z
const START: i64 = 1_735_689_600_000;

/// The records of minute `m`: one per channel, and each channel's hour after its last minute.
fn minute(m: i64, names: &[Arc<str>], stack: &Arc<str>, device: &Arc<str>) -> Vec<Record> {
    let ts = START + m * MINUTE_MS;
    let mut records = Vec::with_capacity(CHANNELS * 2);
    for (i, channel) in names.iter().enumerate() {
        let value = 20.0 + (m % 97) as f64 * 0.1 + i as f64;
        let mut record = Record::new(
            RecordKind::Minute,
            Timestamp::from_millis(ts),
            stack.clone(),
            device.clone(),
            channel.clone(),
        );
        record.end = Some(Timestamp::from_millis(ts + MINUTE_MS));
        record.quantity = Some(Quantity::SO2);
        record.unit = Some(Unit::MgPerM3);
        record.flags = FlagSet::default();
        record.measured = Some(value);
        record.corrected = Some(value * 1.1);
        record.min = Some(value - 1.0);
        record.max = Some(value + 1.0);
        record.count = Some(60);
        if m % 60 == 59 {
            let mut hour = record.clone();
            hour.kind = RecordKind::Hour;
            hour.ts = Timestamp::from_millis(ts - 59 * MINUTE_MS);
            hour.count = Some(60);
            records.push(hour);
        }
        records.push(record);
    }
    records
}

fn main() {
    // `cargo test --all-targets` runs benches too, without `--bench`: there one day shows the
    // bench still works
    let measuring = std::env::args().any(|a| a == "--bench");
    let days: i64 = std::env::var("CEMSD_VERIFY_DAYS")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(if measuring { 365 } else { 1 });
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("cems.db");
    let mut store =
        Store::open(&path, StoreOptions::default()).unwrap_or_else(|e| panic!("open: {e}"));
    let names: Vec<Arc<str>> = (0..CHANNELS).map(|i| format!("ch{i}").into()).collect();
    let (stack, device): (Arc<str>, Arc<str>) = ("unit1".into(), "cems".into());
    let written = Instant::now();
    for m in 0..days * 24 * 60 {
        store
            .append(&minute(m, &names, &stack, &device))
            .unwrap_or_else(|e| panic!("append: {e}"));
    }
    let write_s = written.elapsed().as_secs_f64();
    drop(store);
    let store = Store::open(&path, StoreOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let size = std::fs::metadata(&path).map_or(0, |m| m.len())
        + std::fs::metadata(dir.path().join("cems.db-wal")).map_or(0, |m| m.len());
    let started = Instant::now();
    let verification = store.verify().unwrap_or_else(|e| panic!("verify: {e}"));
    let verify_s = started.elapsed().as_secs_f64();
    assert!(verification.is_intact(), "{:?}", verification.broken);
    println!("days  commits    rows        store MiB  write s  verify s  rows/s verified");
    println!(
        "{days:<5} {:<10} {:<11} {:<10.0} {write_s:<8.1} {verify_s:<9.2} {:.0}",
        verification.commits,
        verification.rows,
        size as f64 / (1024.0 * 1024.0),
        verification.rows as f64 / verify_s.max(1e-9)
    );
}
