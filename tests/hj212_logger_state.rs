//! An HJ 212 data logger's state as `cemsd run` shows it. One that falls silent for three of
//! its upload intervals (configured, or learned from the data times of its uploads) is
//! down with the reason on `/health`, `/api/status` and `cemsd_device_connected`, and up
//! again at its next upload; one whose interval is not known yet is never called down for
//! silence. After a restart, a logger's last uploaded values and data time are shown before
//! it speaks again, and it is waiting, not connected.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use cemsd::protocol::hj212::Packet;
use support::daemon::{write_config, Daemon};
use support::hj212_logger::{is_ack_of, minute_upload, plant_minute, realtime_upload, TestLogger};
use support::http::{http_get, metric, scrape};
use support::ports::{free_port, listening_within};
use support::site::bureau_listener;
use support::time::eventually;

const PASSWORD: &str = "logger-pw";
const WAIT: Duration = Duration::from_secs(30);
/// Three intervals of the loggers below are under a minute, so silence turns them down
/// after the one-minute floor; this leaves that minute room.
const SILENCE_WAIT: Duration = Duration::from_secs(120);

/// Uploads every 5 s, as its config says.
const SET: &str = "LOGGER-SET";
/// Its real-time data times step by 10 s: that is learned.
const LEARNED: &str = "LOGGER-LEARNED";
/// One upload only: nothing to learn from.
const ONCE: &str = "LOGGER-ONCE";

/// A bureau listening for the loggers `devices` (TOML of `[[hj212_listener.device]]`
/// tables), with its status page; started on `dir` (same store on every call).
fn start(dir: &Path, tcp_port: u16, http_port: u16, devices: &str) -> Daemon {
    let config = bureau_listener(http_port, tcp_port)
        + &format!(
            r#"history_pull = false
# the uploads are dated 2026-01-01: inside the window whatever the calendar says
data_time_horizon = "20y"
{devices}"#
        );
    let config = write_config(dir, "bureau.toml", &config);
    let daemon = Daemon::start(&config, dir, &[("LOGGER_PW", PASSWORD.to_string())]);
    assert!(
        listening_within(tcp_port, WAIT) && listening_within(http_port, WAIT),
        "daemon did not come up:\n{}",
        daemon.log_text()
    );
    daemon
}

fn device(mn: &str, keys: &str) -> String {
    format!(
        "\n[[hj212_listener.device]]\nmn = \"{mn}\"\npassword = {{ env = \"LOGGER_PW\" }}\nstack = \"plant-{mn}\"\n{keys}"
    )
}

/// Sends `packet` and asserts its 9014 comes back: the upload is committed.
fn upload(logger: &mut TestLogger, packet: &Packet, log: &dyn Fn() -> String) {
    let qn = packet.qn.clone().unwrap_or_default();
    logger.send(packet);
    let reply = logger.receive(WAIT);
    assert!(
        reply.as_ref().is_some_and(|p| is_ack_of(p, &qn)),
        "no ack for {qn}, got {reply:?}\n{}",
        log()
    );
}

fn connected(http_port: u16, mn: &str) -> Option<f64> {
    metric(
        &scrape(http_port),
        "cemsd_device_connected",
        &[("device", mn)],
    )
}

fn json(http_port: u16, path: &str) -> (u16, serde_json::Value) {
    let (code, body) = http_get(http_port, path).unwrap_or_else(|| panic!("GET {path}"));
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (code, value)
}

/// The device `mn` in `/api/status`.
fn status_of(http_port: u16, mn: &str) -> serde_json::Value {
    let (code, status) = json(http_port, "/api/status");
    assert_eq!(code, 200, "{status}");
    status["stacks"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["devices"].as_array().into_iter().flatten())
        .find(|d| d["id"] == mn)
        .cloned()
        .unwrap_or_else(|| panic!("{mn} not in {status}"))
}

/// The `/health` check of `device:MN`, if it did not pass.
fn failing_check(health: &serde_json::Value, mn: &str) -> Option<serde_json::Value> {
    health["failing"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["component"] == format!("device:{mn}"))
        .cloned()
}

#[test]
fn a_silent_logger_turns_down_with_its_reason_and_up_at_its_next_upload() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let (tcp_port, http_port) = (free_port(), free_port());
    let devices =
        device(SET, "upload_interval = \"5s\"\n") + &device(LEARNED, "") + &device(ONCE, "");
    let daemon = start(dir.path(), tcp_port, http_port, &devices);
    let log = || daemon.log_text();
    let address: SocketAddr = ([127, 0, 0, 1], tcp_port).into();
    let mut set = TestLogger::connect(address);
    let mut learned = TestLogger::connect(address);
    let mut once = TestLogger::connect(address);
    upload(
        &mut set,
        &realtime_upload(SET, PASSWORD, "1", "20260101120000", "30"),
        &log,
    );
    upload(
        &mut once,
        &realtime_upload(ONCE, PASSWORD, "2", "20260101120000", "30"),
        &log,
    );
    upload(
        &mut learned,
        &realtime_upload(LEARNED, PASSWORD, "3", "20260101120000", "30"),
        &log,
    );
    upload(
        &mut learned,
        &realtime_upload(LEARNED, PASSWORD, "4", "20260101120010", "31"),
        &log,
    );
    for mn in [SET, LEARNED, ONCE] {
        assert_eq!(connected(http_port, mn), Some(1.0), "{mn}\n{}", log());
    }

    // Silent, their connections open: SET and LEARNED turn down once a minute (more than
    // three of their intervals) passed.
    let both_down = eventually(SILENCE_WAIT, || {
        connected(http_port, SET) == Some(0.0) && connected(http_port, LEARNED) == Some(0.0)
    });
    assert!(both_down, "{}", log());
    let (code, health) = json(http_port, "/health");
    assert_eq!(
        code, 200,
        "a down device degrades, it does not fail: {health}"
    );
    assert_eq!(health["status"], "degraded", "{health}");
    for (mn, every) in [(SET, "5s"), (LEARNED, "10s")] {
        let check = failing_check(&health, mn).unwrap_or_else(|| panic!("{mn}: {health}"));
        let reason = check["reason"].as_str().unwrap_or_default();
        assert!(
            reason.starts_with(&format!("device {mn} down: no data for 1m"))
                && reason.ends_with(&format!("(uploads every {every})")),
            "{reason}"
        );
        let shown = status_of(http_port, mn);
        assert_eq!(shown["connection"], "down", "{shown}");
        assert!(
            shown["last_error"]
                .as_str()
                .is_some_and(|e| e.ends_with(&format!("(uploads every {every})"))),
            "{shown}"
        );
    }
    // ONCE gave no interval to learn: silent as long, it is not called down.
    assert_eq!(connected(http_port, ONCE), Some(1.0));
    assert_eq!(failing_check(&health, ONCE), None, "{health}");
    assert_eq!(status_of(http_port, ONCE)["connection"], "connected");

    // SET speaks again: up at once, its check passes.
    upload(
        &mut set,
        &realtime_upload(SET, PASSWORD, "5", "20260101120200", "32"),
        &log,
    );
    assert_eq!(connected(http_port, SET), Some(1.0), "{}", log());
    let (_, health) = json(http_port, "/health");
    assert_eq!(failing_check(&health, SET), None, "{health}");
    assert!(failing_check(&health, LEARNED).is_some(), "{health}");
    assert_eq!(status_of(http_port, SET)["connection"], "connected");
}

/// 2026-01-01 12:00 at +08:00 (the site's default offset), in ms since the epoch.
const NOON_LOCAL_MS: i64 = 1_767_240_000_000;

#[test]
fn after_a_restart_a_logger_shows_its_last_uploaded_values_before_it_speaks() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let (tcp_port, http_port) = (free_port(), free_port());
    let devices = device(SET, "");
    let mut daemon = start(dir.path(), tcp_port, http_port, &devices);
    let address: SocketAddr = ([127, 0, 0, 1], tcp_port).into();
    {
        let log = || daemon.log_text();
        let mut logger = TestLogger::connect(address);
        // minute 12:00: SO2 31.25 mg/m3 and O2 6.2 %; minute 12:01: SO2 40.5 only
        upload(&mut logger, &plant_minute(SET, PASSWORD, 0), &log);
        upload(
            &mut logger,
            &minute_upload(SET, PASSWORD, "20260101120200001", "20260101120100", "40.5"),
            &log,
        );
    }
    let expected = |shown: &serde_json::Value| {
        let value = |quantity: &str| {
            let v = shown["values"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|v| v["quantity"] == quantity)
                .unwrap_or_else(|| panic!("no {quantity} in {shown}"));
            (v["value"].as_f64(), v["unit"].clone(), v["ts"].as_i64())
        };
        assert_eq!(
            value("SO2"),
            (Some(40.5), "mg/m3".into(), Some(NOON_LOCAL_MS + 60_000)),
            "{shown}"
        );
        assert_eq!(
            value("O2"),
            (Some(6.2), "%vol".into(), Some(NOON_LOCAL_MS)),
            "{shown}"
        );
        assert_eq!(shown["last_seen"], NOON_LOCAL_MS + 60_000, "{shown}");
    };
    let before = status_of(http_port, SET);
    assert_eq!(before["connection"], "connected", "{before}");
    expected(&before);
    daemon.stop(WAIT);

    let daemon = start(dir.path(), tcp_port, http_port, &devices);
    let after = status_of(http_port, SET);
    expected(&after);
    // not heard from since the start: waiting, neither connected nor down
    assert_eq!(after["connection"], "waiting", "{after}");
    assert_eq!(connected(http_port, SET), None, "{}", daemon.log_text());
    assert_eq!(
        metric(
            &scrape(http_port),
            "cemsd_device_last_data_timestamp_seconds",
            &[("device", SET)]
        ),
        Some((NOON_LOCAL_MS + 60_000) as f64 / 1000.0)
    );
    let (_, health) = json(http_port, "/health");
    assert_eq!(failing_check(&health, SET), None, "{health}");
}
