//! No loss and no duplicate through broker restarts, cemsd crashes and scale-out: every
//! message carries an id (its value and time), and each id must be in the store exactly once.

mod support;

use std::time::{Duration, Instant};

use support::daemon::Daemon;
use support::mqtt::{json_site, missing_and_repeated, numbered_json, stored_ids};
use support::peers::mosquitto::{publish, Broker};
use support::rng::Rng;
use support::time::now_ms;

/// Polls until `n` distinct ids are stored in `db` or `limit` passes; returns the ids.
fn wait_for_ids(dbs: &[&std::path::Path], n: u64, limit: Duration) -> Vec<u64> {
    let deadline = Instant::now() + limit;
    loop {
        let ids: Vec<u64> = dbs.iter().flat_map(|db| stored_ids(db, "d1")).collect();
        let (missing, _) = missing_and_repeated(&ids, n);
        if missing.is_empty() || Instant::now() > deadline {
            return ids;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A broker, and a cemsd subscribed to it (log `cemsd-0.log`) that the test will kill, with
/// the seed of the kill moments printed.
struct KillRig {
    broker: Broker,
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
    db: std::path::PathBuf,
    seed: u64,
    rng: Rng,
    cemsd: Daemon,
}

impl KillRig {
    fn start(client_id: &str) -> KillRig {
        let broker = Broker::start();
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let config = json_site(dir.path(), broker.port, client_id, "plant/#");
        let db = dir.path().join("data/cemsd.db");
        let seed = now_ms() as u64;
        println!("kill seed {seed}");
        let cemsd = Daemon::start_logged(&config, &dir.path().join("cemsd-0.log"), &[]);
        // the persistent session exists once cemsd has subscribed
        std::thread::sleep(Duration::from_millis(1500));
        KillRig {
            broker,
            dir,
            config,
            db,
            seed,
            rng: Rng(seed),
            cemsd,
        }
    }
}

fn assert_exactly_once(ids: &[u64], n: u64, log: &str) {
    let (missing, repeated) = missing_and_repeated(ids, n);
    assert!(
        missing.is_empty() && repeated.is_empty(),
        "{} of {n} ids missing (first {:?}), {} stored twice (first {:?})\n{log}",
        missing.len(),
        missing.first(),
        repeated.len(),
        repeated.first()
    );
    assert_eq!(ids.len() as u64, n);
}

#[test]
fn broker_restart_mid_stream_loses_and_repeats_nothing() {
    let mut broker = Broker::start();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let config = json_site(dir.path(), broker.port, "cemsd-restart", "plant/#");
    let mut cemsd = Daemon::start(&config, dir.path(), &[]);
    let db = dir.path().join("data/cemsd.db");
    // the persistent session exists once cemsd has subscribed
    std::thread::sleep(Duration::from_millis(1500));

    let base = now_ms();
    let n: u64 = 4000;
    publish(
        broker.port,
        &numbered_json("plant/a", "d1", 0..n / 2, base, 1),
    );
    // cemsd is still taking the first half (20 messages in flight per commit round trip)
    broker.restart(Duration::from_millis(500));
    publish(
        broker.port,
        &numbered_json("plant/a", "d1", n / 2..n, base, 1),
    );

    let ids = wait_for_ids(&[&db], n, Duration::from_secs(60));
    let _ = cemsd.terminate();
    let cemsd_log = cemsd.log_text();
    println!("{cemsd_log}");
    assert_exactly_once(&ids, n, &cemsd_log);
    assert!(
        cemsd_log.matches("INFO connected").count() >= 2,
        "cemsd did not reconnect:\n{cemsd_log}"
    );
}

#[test]
fn sigkill_between_receive_and_commit_redelivers_and_stores_once() {
    let KillRig {
        broker,
        dir,
        config,
        db,
        seed,
        mut rng,
        mut cemsd,
    } = KillRig::start("cemsd-kill");
    let base = now_ms();
    let n: u64 = 6000;
    let port = broker.port;
    let publisher = std::thread::spawn(move || {
        // 30 bursts of 200 over at least 3 s, so messages keep arriving while cemsd is
        // killed and restarted
        for burst in 0..30u64 {
            publish(
                port,
                &numbered_json("plant/a", "d1", burst * 200..(burst + 1) * 200, base, 1),
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let mut killed_while_publishing = true;
    for kill in 1..=5 {
        std::thread::sleep(Duration::from_millis(300 + rng.below(700)));
        if kill == 1 {
            killed_while_publishing = !publisher.is_finished();
        }
        cemsd.kill();
        std::thread::sleep(Duration::from_millis(rng.below(300)));
        cemsd = Daemon::start_logged(&config, &dir.path().join(format!("cemsd-{kill}.log")), &[]);
    }
    publisher
        .join()
        .unwrap_or_else(|_| panic!("publisher failed"));

    let ids = wait_for_ids(&[&db], n, Duration::from_secs(60));
    let _ = cemsd.terminate();
    let last_log = std::fs::read_to_string(dir.path().join("cemsd-5.log")).unwrap_or_default();
    println!("{last_log}");
    assert!(
        killed_while_publishing,
        "the kills ended after the last message was published"
    );
    assert_exactly_once(&ids, n, &format!("seed {seed}"));
}

#[test]
fn twenty_thousand_readings_through_a_broker_restart_and_five_kills_are_stored_once() {
    let KillRig {
        mut broker,
        dir,
        config,
        db,
        seed,
        mut rng,
        mut cemsd,
    } = KillRig::start("cemsd-field");

    // a device's readings at 1 s, the last one a minute ago: five and a half hours of
    // backlog as a logger would send after an outage, so messages redelivered around a
    // restart land in minutes and hours already stored
    let n: u64 = 20_000;
    let base = now_ms() - 60_000 - n as i64 * 1000;
    let (mut kills, mut restarted) = (0, false);
    for burst in 0..100u64 {
        publish(
            broker.port,
            &numbered_json("plant/a", "d1", burst * 200..(burst + 1) * 200, base, 1000),
        );
        if burst == 50 {
            broker.restart(Duration::from_millis(500));
            restarted = true;
        }
        if burst % 20 == 7 {
            std::thread::sleep(Duration::from_millis(rng.below(400)));
            cemsd.kill();
            kills += 1;
            cemsd =
                Daemon::start_logged(&config, &dir.path().join(format!("cemsd-{kills}.log")), &[]);
        }
    }
    assert_eq!((kills, restarted), (5, true));
    let ids = wait_for_ids(&[&db], n, Duration::from_secs(300));
    let _ = cemsd.terminate();
    let last_log =
        std::fs::read_to_string(dir.path().join(format!("cemsd-{kills}.log"))).unwrap_or_default();
    println!("{last_log}");
    assert_exactly_once(&ids, n, &format!("seed {seed}"));
    let store = support::store::open(&db);
    let letters = store
        .dead_letters(10)
        .unwrap_or_else(|e| panic!("dead letters: {e}"));
    assert!(letters.is_empty(), "dead-lettered: {letters:?}");
    // every closed minute holds its readings, whatever order they came in: the newest
    // revision of each minute counts 60 (or what the first and last minute hold)
    let minutes = store
        .query(&cemsd::store::Query {
            kind: Some(cemsd::store::RecordKind::Minute),
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("minutes: {e}"));
    let mut newest = std::collections::BTreeMap::new();
    for m in &minutes {
        newest.insert(m.record.ts.millis(), m.record.count.unwrap_or(0));
    }
    let counted: u64 = newest.values().map(|&c| u64::from(c)).sum();
    // a restart rebuilds the open minute from what was stored of it, on whichever local day;
    // only the minute still open when cemsd stopped may be missing
    assert!(
        counted <= n && counted + 60 >= n,
        "{counted} of {n} readings in the newest minutes"
    );
}

#[test]
fn two_instances_on_a_shared_subscription_store_each_message_once() {
    let broker = Broker::start();
    let dirs: Vec<_> = (0..2)
        .map(|_| tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}")))
        .collect();
    let mut instances = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let config = json_site(
            dir.path(),
            broker.port,
            &format!("cemsd-bureau-{i}"),
            "$share/cemsd/plant/#",
        );
        instances.push(Daemon::start(&config, dir.path(), &[]));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let n: u64 = 4000;
    publish(
        broker.port,
        &numbered_json("plant/a", "d1", 0..n, now_ms(), 1),
    );

    let dbs: Vec<_> = dirs
        .iter()
        .map(|d| d.path().join("data/cemsd.db"))
        .collect();
    let db_refs: Vec<&std::path::Path> = dbs.iter().map(|p| p.as_path()).collect();
    let ids = wait_for_ids(&db_refs, n, Duration::from_secs(60));
    for daemon in &mut instances {
        let _ = daemon.terminate();
    }
    assert_exactly_once(&ids, n, "");
    for db in &dbs {
        let share = stored_ids(db, "d1").len();
        assert!(
            share > 0,
            "{} stored nothing: the broker did not split the messages",
            db.display()
        );
    }
}
