//! `cemsd run` draining a large backlog into VictoriaMetrics is SIGKILLed at random moments
//! 20 times and restarted each time; in the end the server holds exactly what the store
//! holds: nothing lost, nothing extra (resent batches collapse under dedup).

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cemsd::model::{Quantity, Timestamp, Unit};
use cemsd::store::{AuditHow, Record, RecordKind, Store};
use support::daemon::{write_config, Daemon};
use support::influx::TEST_TOKEN;
use support::peers::victoria::{Series, VictoriaMetrics};
use support::rng::Rng;
use support::site::head;
use support::store::{fill_store, open, Writer};
use support::time::eventually;

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const RECORDS: usize = 210_000;
const KILLS: usize = 20;
/// The sink's batch_size in the config below.
const BATCH_SIZE: u64 = 2000;
const SINK: &str = "influx:vm";
const TOKEN_ENV: &str = "CEMSD_TEST_INFLUX_TOKEN";
const CHANNELS: [(&str, Quantity); 4] = [
    ("so2", Quantity::SO2),
    ("nox", Quantity::NOx),
    ("o2", Quantity::O2),
    ("dust", Quantity::Dust),
];

fn value(i: usize) -> f64 {
    (i % 4) as f64 * 1000.0 + (i / 4) as f64 * 0.5
}

fn ts(i: usize) -> i64 {
    T0 + (i / 4) as i64 * 1000
}

fn records() -> Vec<Record> {
    (0..RECORDS)
        .map(|i| {
            let (channel, quantity) = CHANNELS[i % 4];
            Record {
                quantity: Some(quantity),
                unit: Some(Unit::MgPerM3),
                raw: Some(value(i)),
                ..Record::new(
                    RecordKind::Reading,
                    Timestamp::from_millis(ts(i)),
                    "unit1".into(),
                    "multi".into(),
                    channel.into(),
                )
            }
        })
        .collect()
}

fn site(dir: &Path, vm_url: &str) -> PathBuf {
    let text = head("plant-1", "", "data/cemsd.db")
        + &format!(
            r#"
[[influx]]
id = "vm"
url = "{vm_url}"
bucket = "cems"
token_env = "{TOKEN_ENV}"
batch_size = {BATCH_SIZE}
flush_interval = "50ms"
"#
        );
    write_config(dir, "site.toml", &text)
}

fn start(config: &Path, dir: &Path) -> Daemon {
    Daemon::start(config, dir, &[(TOKEN_ENV, TEST_TOKEN.to_string())])
}

/// The sink's cursor as the store has it (0 before the sink registered).
fn cursor(store: &Store) -> u64 {
    store.cursor(SINK).unwrap_or(0)
}

/// Polls until `done(cursor)`, for at most `limit`; returns the last cursor seen.
fn wait_cursor(store: &Store, limit: Duration, done: impl Fn(u64) -> bool) -> u64 {
    let deadline = Instant::now() + limit;
    loop {
        let c = cursor(store);
        if done(c) || Instant::now() >= deadline {
            return c;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_backlog_drain_twenty_times_loses_and_adds_nothing() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let vm = VictoriaMetrics::start(dir.path(), true).await;
    let db = dir.path().join("data/cemsd.db");
    assert_eq!(fill_store(&db, &records()), RECORDS as u64);
    let config = site(dir.path(), &vm.url());
    // the daemon records its config in the audit trail at its first start; recorded here
    // first, so the backlog to drain is fixed before the kills
    let writer = Writer::start(&db);
    let loaded = cemsd::config::load(&config).unwrap_or_else(|e| panic!("{e}"));
    let recorded = cemsd::audit::record_changes(&writer.handle, &loaded, AuditHow::Start, 0).await;
    assert!(recorded.is_ok_and(|entries| !entries.is_empty()));
    writer.stop().await;
    let store = open(&db);
    let last = store.last_seq().unwrap_or(0);

    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    let mut rng = Rng(seed);
    let mut cursors = Vec::new();
    for round in 0..KILLS {
        let before = cursor(&store);
        let mut daemon = start(&config, dir.path());
        // Kill only once this run has delivered something, then after a random extra moment,
        // so kills land at every stage: mid-request, between request and cursor update, idle.
        // Once everything is delivered no progress can come: the kill then waits only for
        // the forwarder to run (idle), not out the 30 s. The random moment ends early once
        // two more batches went through, so a fast machine does not drain the whole backlog
        // in the first few rounds.
        let seen = if before == last {
            let _ = eventually(Duration::from_secs(30), || {
                daemon.log_text().contains("influx forwarder started")
            });
            cursor(&store)
        } else {
            wait_cursor(&store, Duration::from_secs(30), |c| c > before)
        };
        assert!(
            seen > before || before == last,
            "round {round} (seed {seed}): no progress from {before}"
        );
        let extra = Duration::from_millis(rng.below(150));
        wait_cursor(&store, extra, |c| c >= seen + 2 * BATCH_SIZE);
        daemon.kill();
        cursors.push(cursor(&store));
    }
    eprintln!("seed {seed}: cursor after each kill: {cursors:?}");
    let mid_drain = cursors.iter().filter(|c| **c < last).count();
    assert!(
        mid_drain >= KILLS / 2,
        "seed {seed}: only {mid_drain} kills landed during the drain: {cursors:?}"
    );
    assert!(
        cursors.windows(2).all(|w| w[0] <= w[1]),
        "the cursor never moves back: {cursors:?}"
    );

    let mut daemon = start(&config, dir.path());
    // A SIGTERM before the daemon has its signal handlers would meet the default action and
    // kill it, which says nothing about how cemsd stops.
    assert!(
        eventually(Duration::from_secs(30), || daemon
            .log_text()
            .contains("store open")),
        "cemsd did not open its store:\n{}",
        daemon.log_text()
    );
    let final_cursor = wait_cursor(&store, Duration::from_secs(120), |c| c == last);
    daemon.signal("TERM");
    let (code, _) = daemon.wait_exit(Duration::from_secs(30));
    assert_eq!(final_cursor, last, "seed {seed}: drain did not finish");
    assert_eq!(code, Some(0), "cemsd must stop cleanly on SIGTERM");

    // Every point was acknowledged (204) before the cursor passed it; VictoriaMetrics makes
    // acknowledged points searchable with some delay when the machine is busy, so the exact
    // comparison is retried for a while before it counts as a loss.
    let mut difference = None;
    for _ in 0..30 {
        let series = vm.export(r#"{__name__=~"cems_.*"}"#).await;
        difference = first_difference(&expected(), &exported(&series));
        if difference.is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    if let Some(difference) = difference {
        panic!("seed {seed}: the export differs from the store: {difference}");
    }
    assert!(
        store.dead_letters(1).is_ok_and(|d| d.is_empty()),
        "no dead letters"
    );
}

/// (metric, channel) → points.
type Points = BTreeMap<(String, String), Vec<(i64, f64)>>;

fn expected() -> Points {
    let mut out = Points::new();
    for i in 0..RECORDS {
        let channel = CHANNELS[i % 4].0.to_string();
        out.entry(("cems_reading_raw".into(), channel.clone()))
            .or_default()
            .push((ts(i), value(i)));
        out.entry(("cems_reading_flag_code".into(), channel))
            .or_default()
            .push((ts(i), 0.0));
    }
    out
}

/// The readings' points (the audit trail's `cems_audit` aside).
fn exported(series: &[Series]) -> Points {
    series
        .iter()
        .filter(|s| !s.name.starts_with("cems_audit_"))
        .map(|s| {
            let channel = s.labels.get("channel").cloned().unwrap_or_default();
            ((s.name.clone(), channel), s.points())
        })
        .collect()
}

/// Where two point sets first differ, briefly (the full sets are 420 000 points).
fn first_difference(want: &Points, got: &Points) -> Option<String> {
    let want_keys: Vec<_> = want.keys().collect();
    let got_keys: Vec<_> = got.keys().collect();
    if want_keys != got_keys {
        return Some(format!("series {got_keys:?}, expected {want_keys:?}"));
    }
    for (key, want_points) in want {
        let got_points = &got[key];
        if got_points.len() != want_points.len() {
            return Some(format!(
                "{key:?}: {} points, expected {}",
                got_points.len(),
                want_points.len()
            ));
        }
        if let Some(i) = (0..want_points.len()).find(|&i| got_points[i] != want_points[i]) {
            return Some(format!(
                "{key:?} point {i}: {:?}, expected {:?}",
                got_points[i], want_points[i]
            ));
        }
    }
    None
}
