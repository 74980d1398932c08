//! The built binary on a stack without an O2 analyser, as the package installs it and as a
//! site with one analyser runs it: `cemsd check` warns (with file and line) and still passes;
//! `cemsd run` stores the measured value with the analyser's own flag N, no corrected value
//! and the reason, and /api/status shows the same.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cemsd::model::{Flag, Quantity};
use cemsd::store::{Query, RecordKind, Stored};
use support::daemon::Daemon;
use support::http::http_get;
use support::ports::free_port;
use support::store::try_open;
use support::time::eventually;

/// A site with one dry SO2 analyser (聚光 CEMS-2000D, served by the daemon's simulator) and
/// nothing else on its stack.
const ONE_ANALYSER: &str = r#"[site]
id = "one"

[http]
listen = "127.0.0.1:HTTP"

[store]
path = "data/cemsd.db"

[[stack]]
id = "unit1"

[[simulate]]
profile = "juguang-cems-2000d"
listen = "127.0.0.1:SIM"
seed = 3

[[device]]
id = "u1-so2"
profile = "juguang-cems-2000d"
stack = "unit1"
transport = "tcp"
address = "127.0.0.1:SIM"
poll_interval = "1s"
timeout = "300ms"
"#;

/// The packaged config, with its store, status page and simulator moved where a test may
/// run them.
fn packaged(http: u16, sim: u16) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/cemsd.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    let moved = text
        .replace("/var/lib/cemsd/cemsd.db", "data/cemsd.db")
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{http}"))
        .replace("127.0.0.1:15021", &format!("127.0.0.1:{sim}"));
    assert_ne!(moved, text);
    moved
}

/// `cemsd check` passes and warns at the `[[stack]]` of unit1.
fn check_warns(config: &Path, text: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_cemsd"))
        .args(["check", "--config"])
        .arg(config)
        .output()
        .unwrap_or_else(|e| panic!("cemsd check: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let line = text
        .lines()
        .position(|l| l.trim() == "[[stack]]")
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("no [[stack]] in\n{text}"));
    let at = format!("warning: {}:{line}:", config.display());
    assert!(
        stderr.lines().any(|l| l.starts_with(&at)
            && l.contains("stack[0]")
            && l.contains("stack \"unit1\" has no O2 source")),
        "expected {at}… stack[0] … no O2 source in:\n{stderr}"
    );
}

/// Runs the daemon until it has stored a few SO2 readings; returns them and /api/status.
fn run_until_stored(config: &Path, dir: &Path, http: u16) -> (Vec<Stored>, serde_json::Value) {
    let mut daemon = Daemon::start(config, dir, &[]);
    let db = dir.join("data/cemsd.db");
    let so2 = || {
        try_open(&db)
            .and_then(|s| {
                s.query(&Query {
                    kind: Some(RecordKind::Reading),
                    device: Some("u1-so2".into()),
                    ..Query::default()
                })
                .ok()
            })
            .unwrap_or_default()
    };
    assert!(
        eventually(Duration::from_secs(40), || so2().len() >= 2),
        "no SO2 readings stored:\n{}",
        daemon.log_text()
    );
    let (code, body) = http_get(http, "/api/status").unwrap_or_else(|| panic!("GET /api/status"));
    assert_eq!(code, 200, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}"));
    let log = daemon.log_text();
    assert!(
        log.contains("has no O2 source"),
        "the start is logged:\n{log}"
    );
    daemon.signal("TERM");
    let (code, _) = daemon.wait_exit(Duration::from_secs(15));
    assert_eq!(code, Some(0));
    (so2(), status)
}

/// Every SO2 reading: a measured value, flag N, no corrected value, the reason.
fn assert_measured_without_o2(rows: &[Stored], status: &serde_json::Value) {
    for row in rows {
        let r = &row.record;
        assert_eq!(r.quantity, Some(Quantity::SO2), "{r:?}");
        assert!(r.measured.is_some_and(f64::is_finite), "{r:?}");
        assert_eq!(r.flags.primary(), Flag::N, "{r:?}");
        assert_eq!(r.corrected, None, "{r:?}");
        assert_eq!(r.note.as_deref(), Some("no O2 source"), "{r:?}");
        assert_eq!(r.unit.map(|u| u.symbol()), Some("mg/m3"), "{r:?}");
    }
    let device = &status["stacks"][0]["devices"][0];
    assert_eq!(device["id"], "u1-so2", "{status}");
    assert_eq!(device["connection"], "connected", "{status}");
    let value = &device["values"][0];
    assert_eq!(value["kind"], "measured", "{status}");
    assert_eq!(value["unit"], "mg/m3", "{status}");
    assert_eq!(value["flag"], "N", "{status}");
    assert_eq!(value["note"], "no O2 source", "{status}");
    let shown = value["value"].as_f64().unwrap_or(f64::NAN);
    let seq = value["seq"].as_u64().unwrap_or(0);
    let stored = rows
        .iter()
        .find(|r| r.seq == seq)
        .unwrap_or_else(|| panic!("seq {seq} is not among {rows:?}"));
    // (JSON numbers read back to within the last bit)
    let measured = stored.record.measured.unwrap_or(f64::NAN);
    assert!(
        (shown - measured).abs() <= 1e-12 * measured.abs(),
        "{status}"
    );
}

#[test]
fn the_packaged_config_stores_measured_so2_with_flag_n_and_says_why_it_is_not_corrected() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let http = free_port();
    let text = packaged(http, free_port());
    let config = dir.path().join("cemsd.toml");
    std::fs::write(&config, &text).unwrap_or_else(|e| panic!("{e}"));
    check_warns(&config, &text);
    let (rows, status) = run_until_stored(&config, dir.path(), http);
    assert_measured_without_o2(&rows, &status);
}

#[test]
fn one_analyser_without_o2_stores_measured_so2_with_flag_n_and_says_why() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let http = free_port();
    let text = ONE_ANALYSER
        .replace("HTTP", &http.to_string())
        .replace("SIM", &free_port().to_string());
    let config = dir.path().join("site.toml");
    std::fs::write(&config, &text).unwrap_or_else(|e| panic!("{e}"));
    check_warns(&config, &text);
    let (rows, status) = run_until_stored(&config, dir.path(), http);
    assert_measured_without_o2(&rows, &status);
}
