//! `cemsd run` as systemd runs it: READY and WATCHDOG on the notify socket, SIGTERM under
//! load commits everything and exits 0, SIGHUP swaps a good config and rejects a bad one
//! with positioned errors, `/metrics` parses as Prometheus text and moves, `/health` tells
//! what runs.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::daemon::{write_config, Daemon, NotifySocket};
use support::http::{http_get, metric, scrape};
use support::ports::free_port;
use support::store::{count_readings, try_open};
use support::time::eventually;

/// One `[[device]]` polling a simulator (or nothing) every 100 ms.
fn device(id: &str, profile: &str, port: u16) -> String {
    format!(
        "[[device]]\nid = \"{id}\"\nprofile = \"{profile}\"\nstack = \"unit1\"\ntransport = \"tcp\"\naddress = \"127.0.0.1:{port}\"\npoll_interval = \"100ms\"\ntimeout = \"50ms\"\n\n"
    )
}

fn simulator(profile: &str, port: u16) -> String {
    format!("[[simulate]]\nprofile = \"{profile}\"\nlisten = \"127.0.0.1:{port}\"\n\n")
}

fn header(http_port: Option<u16>) -> String {
    let http = http_port
        .map(|p| format!("[http]\nlisten = \"127.0.0.1:{p}\"\n\n"))
        .unwrap_or_default();
    format!("[site]\nid = \"ops-test\"\n\n{http}[store]\npath = \"data/cemsd.db\"\n\n[[stack]]\nid = \"unit1\"\nmn = \"88888880000001\"\n\n")
}

/// An HJ 212 uplink to a platform on `port`, for the stack `header` writes.
fn uplink(port: u16) -> String {
    format!("[[hj212]]\nname = \"bureau\"\naddress = \"127.0.0.1:{port}\"\npassword = {{ file = \"hj212.pw\" }}\nrealtime_interval = \"1s\"\n\n")
}

/// A platform socket that only counts the uplink connections it is offered.
fn platform() -> (std::net::TcpListener, u16) {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind platform: {e}"));
    listener
        .set_nonblocking(true)
        .unwrap_or_else(|e| panic!("nonblocking: {e}"));
    let port = listener.local_addr().map_or(0, |a| a.port());
    (listener, port)
}

fn write(dir: &Path, text: &str) -> PathBuf {
    write_config(dir, "site.toml", text)
}

#[test]
fn sigterm_under_ingest_commits_everything_read_and_exits_0_in_bounded_time() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    // 12 devices × 10 polls/s on 3 simulators, 5 channels each for the 1080: a steady load
    // of several hundred records a second.
    let ports = [free_port(), free_port(), free_port()];
    let mut text = header(None);
    text += &simulator("sdl-model-1080", ports[0]);
    text += &simulator("thermo-42i", ports[1]);
    text += &simulator("sick-mcs100ft", ports[2]);
    for i in 0..12 {
        let (profile, port) = [
            ("sdl-model-1080", ports[0]),
            ("thermo-42i", ports[1]),
            ("sick-mcs100ft", ports[2]),
        ][i % 3];
        text += &device(&format!("d{i}"), profile, port);
    }
    let config = write(dir.path(), &text);
    let mut notify = NotifySocket::bind(dir.path());
    let mut daemon = Daemon::start(
        &config,
        dir.path(),
        &[
            ("NOTIFY_SOCKET", notify.path.display().to_string()),
            ("WATCHDOG_USEC", "1000000".to_string()),
        ],
    );
    assert!(
        eventually(Duration::from_secs(20), || notify.count("READY=1") == 1),
        "no READY=1 on the notify socket: {:?}\n{}",
        notify.received,
        daemon.log_text()
    );
    let db = dir.path().join("data/cemsd.db");
    let mut seen = 0;
    let loaded = eventually(Duration::from_secs(30), || {
        seen = try_open(&db)
            .and_then(|s| s.count().ok().flatten())
            .unwrap_or(0);
        seen >= 3000
    });
    assert!(
        loaded,
        "only {seen} records after 30 s:\n{}",
        daemon.log_text()
    );
    // Pinged at half the 1 s period while records flow.
    assert!(
        eventually(Duration::from_secs(5), || notify.count("WATCHDOG=1") >= 2),
        "no watchdog pings: {:?}",
        notify.received
    );

    daemon.signal("TERM");
    // 10 s drain limit plus the final commit.
    let (code, took) = daemon.wait_exit(Duration::from_secs(15));
    let log = daemon.log_text();
    assert_eq!(code, Some(0), "exit code after SIGTERM:\n{log}");
    assert!(took < Duration::from_secs(12), "took {took:?} to stop");
    assert_eq!(notify.count("STOPPING=1"), 1, "{:?}", notify.received);

    let store = try_open(&db).unwrap_or_else(|| panic!("reopen the store"));
    let count = store.count().ok().flatten().unwrap_or(0);
    let last_seq = store.last_seq().unwrap_or(0);
    assert!(
        count >= seen,
        "{seen} records were seen committed, {count} remain"
    );
    assert_eq!(count, last_seq, "every seq handed out is in the store");
    // The daemon's own tally of what it committed this run (a fresh store) is all there.
    let reported: u64 = log
        .lines()
        .find(|l| l.contains("stopped cleanly"))
        .and_then(|l| l.split("records=").nth(1))
        .and_then(|n| n.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no 'stopped cleanly … records=N' line:\n{log}"));
    assert_eq!(
        reported, count,
        "committed in the run vs. found in the store"
    );
}

#[test]
fn sighup_swaps_a_good_config_and_rejects_a_bad_one_while_metrics_move() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let http = free_port();
    let (sim_a, sim_b, dead) = (free_port(), free_port(), free_port());
    let ((old_platform, old_port), (new_platform, new_port)) = (platform(), platform());
    std::fs::write(dir.path().join("hj212.pw"), "123456")
        .unwrap_or_else(|e| panic!("write password: {e}"));
    let first = header(Some(http))
        + &simulator("thermo-43i", sim_a)
        + &device("a", "thermo-43i", sim_a)
        + &device("dead", "thermo-42i", dead)
        + &uplink(old_port);
    let config = write(dir.path(), &first);
    let mut daemon = Daemon::start(&config, dir.path(), &[]);
    let db = dir.path().join("data/cemsd.db");
    assert!(
        eventually(Duration::from_secs(30), || count_readings(&db, "a") >= 5),
        "device a never committed:\n{}",
        daemon.log_text()
    );

    // /metrics: parses, and its counters move between two scrapes.
    let before = scrape(http);
    let polls_a = |s: &prometheus_parse::Scrape| {
        metric(
            s,
            "cemsd_polls_total",
            &[("device", "a"), ("outcome", "ok")],
        )
        .unwrap_or(0.0)
    };
    let committed = |s: &prometheus_parse::Scrape| {
        metric(s, "cemsd_store_records_committed_total", &[]).unwrap_or(0.0)
    };
    assert!(polls_a(&before) >= 1.0, "{:?}", before.samples);
    assert!(
        metric(
            &before,
            "cemsd_poll_errors_total",
            &[("device", "dead"), ("kind", "connect")]
        )
        .unwrap_or(0.0)
            >= 1.0,
        "a refused connection counts as a connect error: {:?}",
        before.samples
    );
    assert_eq!(
        metric(&before, "cemsd_device_connected", &[("device", "dead")]),
        Some(0.0)
    );
    assert_eq!(metric(&before, "cemsd_store_writable", &[]), Some(1.0));
    // the figures every exporter gives, under the names dashboards expect
    assert_eq!(
        metric(
            &before,
            "cemsd_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    let own = |name| metric(&before, name, &[]).unwrap_or(0.0);
    assert!(
        own("process_resident_memory_bytes") > 1e6,
        "{:?}",
        before.samples
    );
    assert!(own("process_open_fds") >= 3.0);
    assert!(own("process_max_fds") >= own("process_open_fds"));
    assert!(own("process_cpu_seconds_total") > 0.0);
    let started = own("process_start_time_seconds");
    let now_s = support::time::now_ms() as f64 / 1000.0;
    assert!(
        started > now_s - 120.0 && started <= now_s + 1.0,
        "start time {started} vs now {now_s}"
    );
    // polls of a device are committed together within [store] commit_delay (5 s)
    let mut after = scrape(http);
    let moved = eventually(Duration::from_secs(15), || {
        after = scrape(http);
        committed(&after) > committed(&before)
    });
    assert!(polls_a(&after) > polls_a(&before), "polls did not move");
    assert!(moved, "commits did not move");
    let rows = metric(&after, "cemsd_store_rows", &[]).unwrap_or(0.0);
    assert!(rows >= committed(&before), "rows {rows}");

    // A bad config: rejected with the positioned error, the old devices keep polling.
    let bad = first.replace("profile = \"thermo-42i\"", "profile = \"thermo-42x\"");
    write(dir.path(), &bad);
    let line = bad
        .lines()
        .position(|l| l.contains("thermo-42x"))
        .map_or(0, |i| i + 1);
    let expected =
        format!("site.toml:{line}:11: device[1].profile: unknown profile \"thermo-42x\"");
    daemon.signal("HUP");
    assert!(
        eventually(Duration::from_secs(10), || daemon
            .log_text()
            .contains(&expected)),
        "no {expected:?} in the log:\n{}",
        daemon.log_text()
    );
    let a_then = count_readings(&db, "a");
    assert!(
        eventually(Duration::from_secs(10), || count_readings(&db, "a")
            >= a_then + 5),
        "device a stopped after a rejected reload"
    );
    let rejected = scrape(http);
    assert_eq!(
        metric(
            &rejected,
            "cemsd_config_reloads_total",
            &[("result", "rejected")]
        ),
        Some(1.0)
    );
    let (code, health) = http_get(http, "/health").unwrap_or_else(|| panic!("GET /health"));
    assert_eq!(code, 200, "{health}");
    assert!(
        health.contains("\"id\":\"a\"") && health.contains("\"id\":\"dead\""),
        "{health}"
    );

    assert!(
        eventually(Duration::from_secs(10), || old_platform.accept().is_ok()),
        "the uplink never connected to its platform:\n{}",
        daemon.log_text()
    );

    // A good config: device b on a new simulator replaces a and dead, and the uplink moves
    // to another platform.
    let second = header(Some(http))
        + &simulator("sick-gm32", sim_b)
        + &device("b", "sick-gm32", sim_b)
        + &uplink(new_port);
    write(dir.path(), &second);
    daemon.signal("HUP");
    assert!(
        eventually(Duration::from_secs(30), || count_readings(&db, "b") >= 5),
        "device b never committed after the reload:\n{}",
        daemon.log_text()
    );
    let a_stopped = count_readings(&db, "a");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        count_readings(&db, "a"),
        a_stopped,
        "device a still polled after the reload"
    );
    let (_, health) = http_get(http, "/health").unwrap_or_else(|| panic!("GET /health"));
    assert!(
        health.contains("\"id\":\"b\"") && !health.contains("\"id\":\"a\""),
        "{health}"
    );
    assert!(
        eventually(Duration::from_secs(10), || new_platform.accept().is_ok()),
        "the uplink did not move to the new platform after the reload:\n{}",
        daemon.log_text()
    );
    let applied = scrape(http);
    assert_eq!(
        metric(
            &applied,
            "cemsd_config_reloads_total",
            &[("result", "applied")]
        ),
        Some(1.0)
    );

    daemon.signal("INT");
    let (code, _) = daemon.wait_exit(Duration::from_secs(15));
    assert_eq!(
        code,
        Some(0),
        "exit code after SIGINT:\n{}",
        daemon.log_text()
    );
    let store = try_open(&db).unwrap_or_else(|| panic!("reopen the store"));
    assert_eq!(
        store.count().ok().flatten(),
        store.last_seq().ok(),
        "one store across the reload, no seq lost"
    );
}

#[test]
fn logs_are_json_on_request_and_carry_no_timestamp_under_journald() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let sim = free_port();
    let config = write(
        dir.path(),
        &(header(None) + &simulator("thermo-43i", sim) + &device("a", "thermo-43i", sim)),
    );
    let run = |env: &[(&str, String)]| {
        let mut daemon = Daemon::start(&config, dir.path(), env);
        assert!(
            eventually(Duration::from_secs(20), || daemon
                .log_text()
                .contains("collectors started")),
            "no start-up lines:\n{}",
            daemon.log_text()
        );
        daemon.stop(Duration::from_secs(15));
        daemon.log_text()
    };

    let json = run(&[("CEMSD_LOG_FORMAT", "json".to_string())]);
    let mut messages = Vec::new();
    for line in json.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(value["timestamp"].is_string(), "{line}");
        assert!(value["level"].is_string(), "{line}");
        messages.push(
            value["fields"]["message"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        );
    }
    assert!(
        messages.iter().any(|m| m == "collectors started"),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.starts_with("stopped cleanly")),
        "{messages:?}"
    );

    // an unknown log format is warned about, so the journal holds a warning too
    let journal = run(&[
        ("JOURNAL_STREAM", "8:12345".to_string()),
        ("CEMSD_LOG_FORMAT", "xml".to_string()),
    ]);
    // journald takes a line's priority from a leading <N> (sd-daemon(3)): 3 error, 4
    // warning, 6 info; after it comes the level, not a time (journald stamps each line)
    let mut priorities = std::collections::BTreeSet::new();
    for line in journal.lines() {
        let priority = [("<3>ERROR", 3), ("<4> WARN", 4), ("<6> INFO", 6)]
            .into_iter()
            .find(|(start, _)| line.starts_with(start))
            .map(|(_, p)| p);
        let Some(priority) = priority else {
            panic!("a journald line starts with its priority and level: {line:?}");
        };
        priorities.insert(priority);
    }
    assert!(
        priorities.contains(&4) && priorities.contains(&6),
        "warnings and infos both seen: {journal}"
    );
}
