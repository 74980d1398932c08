//! `[store] retention` is applied by a running daemon: rows older than it go while the
//! collectors keep committing, younger ones stay, and the store still verifies. (Before, retention was configured and
//! documented but nothing ever ran it, so the store grew without end.) The rows held are
//! counted as they come and go, also on a store from before that counter.

mod support;

use std::time::Duration;

use cemsd::model::{Quantity, Timestamp, Unit};
use cemsd::store::{Query, Record, RecordKind, Store};
use support::daemon::{write_config, Daemon};
use support::ports::free_port;
use support::site;
use support::store::{count_readings, fill_store, wait_for};
use support::time::now_ms;

const DAY: i64 = 86_400_000;

/// `n` readings of `device` a minute apart from `start`, and an hour record at `start`.
fn history(device: &str, start: i64, n: i64) -> Vec<Record> {
    let mut records: Vec<Record> = (0..n)
        .map(|i| Record {
            quantity: Some(Quantity::SO2),
            unit: Some(Unit::MgPerM3),
            measured: Some(20.0),
            ..Record::new(
                RecordKind::Reading,
                Timestamp::from_millis(start + i * 60_000),
                "unit1".into(),
                device.into(),
                "SO2".into(),
            )
        })
        .collect();
    records.push(Record {
        quantity: Some(Quantity::SO2),
        unit: Some(Unit::MgPerM3),
        ..Record::new(
            RecordKind::Hour,
            Timestamp::from_millis(start),
            "unit1".into(),
            device.into(),
            "SO2".into(),
        )
    });
    records
}

fn hours_of(store: &Store, device: &str) -> usize {
    store
        .query(&Query {
            kind: Some(RecordKind::Hour),
            device: Some(device.into()),
            ..Query::default()
        })
        .map_or(usize::MAX, |rows| rows.len())
}

#[test]
fn a_running_daemon_deletes_what_is_older_than_its_retention_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let db = dir.path().join("cems.db");
    let now = now_ms();
    let mut old = history("gone", now - 40 * DAY, 3000);
    old.extend(history("kept", now - 10 * DAY, 3000));
    fill_store(&db, &old);
    // as a store from before the row counter: its rows known to no count
    let sql = |statement: &str| -> i64 {
        rusqlite::Connection::open(&db)
            .and_then(|conn| conn.query_row(statement, [], |row| row.get(0)))
            .unwrap_or_else(|e| panic!("{statement}: {e}"))
    };
    sql("UPDATE seq_counter SET rows = 0, uncounted_to = last_seq RETURNING uncounted_to");

    let port = free_port();
    let config = write_config(
        dir.path(),
        "site.toml",
        &format!(
            "{}retention = \"30d\"\nmax_size = \"1GiB\"\n{}{}",
            site::head("plant", "", &db.display().to_string()),
            site::plant_stack(""),
            site::simulated_plc(port, 7, "1s", "500ms"),
        ),
    );
    let mut daemon = Daemon::start(&config, dir.path(), &[]);

    let pruned = wait_for(&db, |store| {
        support::store::readings(store, "gone").is_empty() && hours_of(store, "gone") == 0
    });
    let log = daemon.log_text();
    assert!(pruned, "40-day-old rows still there after 30 s\n{log}");
    assert!(log.contains("retention deleted records"), "{log}");
    // younger than the retention: all there; the live plant goes on committing
    assert_eq!(count_readings(&db, "kept"), 3000);
    assert!(wait_for(&db, |store| hours_of(store, "kept") == 1));
    assert!(
        wait_for(&db, |store| !support::store::readings(store, "plc")
            .is_empty()),
        "the simulated plant's readings are committed beside the pruning\n{log}"
    );
    daemon.stop(Duration::from_secs(30));
    // the old and the kept rows were one commit: retention took half of it and the tamper
    // chain still adds up
    let verification = support::store::open(&db)
        .verify()
        .unwrap_or_else(|e| panic!("verify: {e}"));
    assert!(verification.is_intact(), "{:?}", verification.broken);
    assert!(verification.rows > 3000, "{verification:?}");
    // the old rows were counted after the start, the deleted ones taken off, the new ones added
    let held = sql("SELECT count(*) FROM record");
    let counted = support::store::open(&db)
        .count()
        .unwrap_or_else(|e| panic!("count: {e}"));
    assert_eq!(counted, u64::try_from(held).ok());
}
