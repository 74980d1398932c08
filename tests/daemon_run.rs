//! The vertical slice as a user runs it: `cemsd run` with in-process simulators polls over
//! Modbus TCP, commits to the store, and on SIGTERM stops with exit 0 having lost nothing.

mod support;

use std::path::{Path, PathBuf};

use cemsd::model::{Flag, Quantity};
use support::daemon::{write_config, Daemon};
use support::ports::free_port;
use support::site::{head, plant_stack, simulated_plc};
use support::store::{open, readings, wait_for};

fn site(dir: &Path, live_port: u16, dead_port: u16) -> PathBuf {
    let text = format!(
        r#"{head}{stack}{plc}
[[device]]
id = "dead"
profile = "thermo-42i"
stack = "unit1"
transport = "tcp"
address = "127.0.0.1:{dead_port}"
poll_interval = "200ms"
timeout = "100ms"
channels = ["no2"]
"#,
        head = head("test-plant", "", "data/cemsd.db"),
        stack = plant_stack(""),
        plc = simulated_plc(live_port, 0, "200ms", "100ms"),
    );
    write_config(dir, "site.toml", &text)
}

#[test]
fn run_polls_simulators_commits_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let config = site(dir.path(), free_port(), free_port());
    let mut daemon = Daemon::start(&config, dir.path(), &[]);
    let db = dir.path().join("data/cemsd.db");

    // Wait until both live devices have a few polls committed.
    let mut seen = 0;
    let polled = wait_for(&db, |store| {
        seen = store.count().ok().flatten().unwrap_or(0);
        readings(store, "plc").len() >= 50 && !readings(store, "dead").is_empty()
    });
    let code = daemon.terminate();
    assert!(polled, "no readings were committed within 30 s");
    assert_eq!(code, Some(0), "cemsd must exit 0 on SIGTERM");

    let store = open(&db);
    assert!(
        store.count().ok().flatten().unwrap_or(0) >= seen,
        "rows committed before SIGTERM were lost"
    );

    // The live analyser: SO2 normal, dry and O2-corrected, polled on 200 ms boundaries.
    let plc = readings(&store, "plc");
    let so2: Vec<_> = plc
        .iter()
        .filter(|r| r.record.quantity == Some(Quantity::SO2))
        .collect();
    assert!(!so2.is_empty());
    for row in so2 {
        let r = &row.record;
        assert_eq!(r.flags.primary(), Flag::N, "{r:?}");
        let measured = r.measured.unwrap_or(f64::NAN);
        assert!(
            measured > 0.0 && measured < 750.0,
            "implausible SO2 {measured}"
        );
        assert!(
            r.corrected.is_some_and(f64::is_finite),
            "no O2-corrected value: {r:?}"
        );
        // stamped when its reply arrived, just after a 200 ms boundary (timeout 100 ms)
        assert!(
            r.ts.0 % 200 < 100,
            "{} is not just after a poll boundary",
            r.ts
        );
    }
    // The dead analyser: every poll recorded, as B with no value.
    let dead = readings(&store, "dead");
    assert!(
        !dead.is_empty(),
        "a dead device must leave B readings, not silence"
    );
    for row in &dead {
        assert_eq!(row.record.flags.primary(), Flag::B);
        assert_eq!(row.record.raw, None);
        assert_eq!(
            row.record.ts.0 % 200,
            0,
            "a missed poll is recorded at its boundary"
        );
    }
}
