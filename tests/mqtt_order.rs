//! Order does not matter: a publisher that sends a channel's readings newest first (a
//! logger draining its buffer backwards, a broker redelivering after a restart) gets every
//! reading stored once, and the minutes and hours they fall into equal a computation by
//! hand over all of them, in the store and at VictoriaMetrics.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cemsd::store::{Query, RecordKind, Store};
use support::daemon::{write_config, Daemon};
use support::influx::TEST_TOKEN;
use support::mqtt::{broker, json_readings, numbered_json, stored_ids};
use support::peers::mosquitto::{publish, Broker};
use support::peers::victoria::{Series, VictoriaMetrics};
use support::site::{head, stack};
use support::store::{open, wait_for};
use support::time::now_ms;

const HOUR_MS: i64 = 3_600_000;
const STEP_MS: i64 = 10_000;
/// An hour of readings at 10 s and two minutes of the next, so the hour closes.
const N: u64 = 372;
const TOKEN_ENV: &str = "CEMSD_TEST_INFLUX_TOKEN";

/// Newest revision of each period of `kind` in the store, by start: (count, measured,
/// revision).
fn newest(store: &Store, kind: RecordKind) -> BTreeMap<i64, (Option<u32>, Option<f64>, u32)> {
    let rows = store
        .query(&Query {
            kind: Some(kind),
            ..Query::default()
        })
        .unwrap_or_else(|e| panic!("query: {e}"));
    rows.into_iter()
        .map(|r| {
            let r = r.record;
            (r.ts.millis(), (r.count, r.measured, r.revision))
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_published_newest_first_give_the_hours_a_hand_computation_gives() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let mqtt = Broker::start();
    let vm = VictoriaMetrics::start(dir.path(), false).await;
    let text = head("order-test", "", "data/cemsd.db")
        + &stack("")
        + &broker(
            "plant",
            &format!("mqtt://127.0.0.1:{}", mqtt.port),
            "cemsd-order",
            "reconnect_min = \"100ms\"\nreconnect_max = \"1s\"\n",
        )
        + &json_readings("plant/#", "qos = 1\n")
        + &format!(
            r#"
[[influx]]
id = "vm"
url = "{}"
bucket = "cems"
token_env = "{TOKEN_ENV}"
flush_interval = "50ms"
"#,
            vm.url()
        );
    let config = write_config(dir.path(), "site.toml", &text);
    let db = dir.path().join("data/cemsd.db");
    let mut cemsd = Daemon::start(&config, dir.path(), &[(TOKEN_ENV, TEST_TOKEN.into())]);
    std::thread::sleep(Duration::from_millis(1500));

    // an hour starting three hours ago (whole hours in UTC are whole hours at UTC+8)
    let hour = (now_ms() - 3 * HOUR_MS).div_euclid(HOUR_MS) * HOUR_MS;
    let mut messages = numbered_json("plant/a", "d1", 0..N, hour, STEP_MS);
    messages.reverse();
    let port = mqtt.port;
    tokio::task::spawn_blocking(move || publish(port, &messages))
        .await
        .unwrap_or_else(|e| panic!("publisher: {e}"));

    let all_in = wait_for(&db, |store| {
        let hours = newest(store, RecordKind::Hour);
        // the last minute closes by the clock once nothing more comes
        let last_minute = hour + 61 * 60_000;
        stored_ids(&db, "d1").len() as u64 == N
            && hours.get(&hour).is_some_and(|h| h.0 == Some(60))
            && newest(store, RecordKind::Minute).contains_key(&last_minute)
    });
    let log = cemsd.log_text();
    assert!(all_in, "not all readings and the hour arrived\n{log}");
    let mut ids = stored_ids(&db, "d1");
    ids.sort_unstable();
    assert_eq!(ids, (0..N).collect::<Vec<_>>(), "each reading once");

    // By hand: reading i has value i; minute m holds readings 6m … 6m+5, so its average is
    // 6m + 2.5; the hour averages its 60 minutes: 6 × 29.5 + 2.5 = 179.5.
    let store = open(&db);
    let minutes = newest(&store, RecordKind::Minute);
    for m in 0..62i64 {
        let start = hour + m * 60_000;
        let (count, measured, _) = minutes
            .get(&start)
            .copied()
            .unwrap_or_else(|| panic!("no minute {m}"));
        assert_eq!(count, Some(6), "minute {m}");
        let want = 6.0 * m as f64 + 2.5;
        assert!(
            measured.is_some_and(|v| close(v, want)),
            "minute {m}: {measured:?}, want {want}"
        );
    }
    let (count, measured, revision) = newest(&store, RecordKind::Hour)[&hour];
    assert_eq!(count, Some(60));
    assert!(
        measured.is_some_and(|v| close(v, 179.5)),
        "hour: {measured:?}"
    );
    assert!(revision > 0, "the hour was never revised");

    // the forwarder sent the revision: VictoriaMetrics holds the hand-computed hour, with
    // the revision number of the newest version, at the hour's start
    let at_hour = |series: &[Series]| -> Vec<f64> {
        series
            .iter()
            .flat_map(|s| s.points())
            .filter(|(ts, _)| *ts == hour)
            .map(|(_, v)| v)
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut reached = false;
    while !reached && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let measured = at_hour(&vm.export("cems_hour_measured").await);
        let revisions = at_hour(&vm.export("cems_hour_revision").await);
        reached =
            measured.iter().any(|v| close(*v, 179.5)) && revisions.contains(&f64::from(revision));
    }
    let _ = cemsd.terminate();
    assert!(
        reached,
        "the revised hour did not reach VictoriaMetrics\n{}",
        cemsd.log_text()
    );
}
