//! The logger registry under load: `cemsd run` with 500 loggers in a directory of registry
//! files, every one connected and uploading; the registry is edited (a logger added, one
//! removed, one moved to another stack, one password changed) and SIGHUP sent. The loggers
//! left alone go on on the very sockets they had, the removed one's is closed, the new one is
//! taken, the changed ones apply from their next packet.

mod support;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use cemsd::store::{Query, RecordKind};
use support::daemon::{write_config, Daemon};
use support::hj212_logger::{is_ack_of, minute_upload, TestLogger};
use support::http::{metric, scrape};
use support::ports::{free_port, listening_within};
use support::site::bureau_listener;
use support::store::open;
use support::time::eventually;

const LOGGERS: usize = 500;
const FILES: usize = 5;
const PASSWORD: &str = "registry-pw";
/// The logger whose password file changes, the one moved to another stack, the one removed.
const REPASSWORDED: usize = 7;
const MOVED: usize = 8;
const REMOVED: usize = 13;
const WAIT: Duration = Duration::from_secs(30);

fn mn(i: usize) -> String {
    format!("BUREAU-LOGGER-{i:04}")
}

/// One registry file with loggers `range`; `stack_of` gives each its stack, `skip` is left out.
fn registry_file(range: std::ops::Range<usize>, stack_of: impl Fn(usize) -> String) -> String {
    let mut text = String::from("# loggers of one district, exported by the bureau\n");
    for i in range {
        let password = if i == REPASSWORDED {
            format!("{{ file = \"{}.pw\" }}", mn(i))
        } else {
            "{ env = \"LOGGER_PW\" }".to_string()
        };
        let _ = write!(
            text,
            "\n[[logger]]\nmn = \"{}\"\npassword = {password}\nstack = \"{}\"\n",
            mn(i),
            stack_of(i)
        );
    }
    text
}

fn stack(i: usize) -> String {
    format!("plant-{i:04}.unit1")
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Sends minute `minute` (of 2026-01-01 00:mm local) from every logger in `loggers` before
/// reading any ack, then asserts each got its own 9014 on its own socket.
fn upload_round(loggers: &mut [(usize, TestLogger)], minute: usize, log: &dyn Fn() -> String) {
    let qn = |i: usize| format!("20260101{minute:02}{i:07}");
    for (i, logger) in loggers.iter_mut() {
        logger.send(&minute_upload(
            &mn(*i),
            PASSWORD,
            &qn(*i),
            &format!("2026010100{minute:02}00"),
            "30",
        ));
    }
    for (i, logger) in loggers.iter_mut() {
        let reply = logger.receive(WAIT);
        assert!(
            reply.as_ref().is_some_and(|p| is_ack_of(p, &qn(*i))),
            "logger {i}: no ack for minute {minute}, got {reply:?}\n{}",
            log()
        );
    }
}

/// `cemsd run` of a bureau whose listener reads the registry `dir/loggers.d`, up and
/// listening: the daemon, its listener port and its HTTP port.
fn start_bureau(dir: &Path) -> (Daemon, u16, u16) {
    let (tcp_port, http_port) = (free_port(), free_port());
    let config = bureau_listener(http_port, tcp_port)
        + r#"registry = "loggers.d"
# every test logger connects from 127.0.0.1
max_connections_per_ip = 1000
# the uploads are dated 2026-01-01: inside the window whatever the calendar says
data_time_horizon = "20y"
"#;
    let config = write_config(dir, "bureau.toml", &config);
    let daemon = Daemon::start(&config, dir, &[("LOGGER_PW", PASSWORD.to_string())]);
    assert!(
        listening_within(tcp_port, WAIT),
        "listener did not come up:\n{}",
        daemon.log_text()
    );
    (daemon, tcp_port, http_port)
}

fn accepted(http_port: u16) -> f64 {
    metric(
        &scrape(http_port),
        "cemsd_hj212_listener_connections_total",
        &[("outcome", "accepted")],
    )
    .unwrap_or_else(|| panic!("no accepted connections counted"))
}

#[test]
fn a_reload_of_the_registry_keeps_500_connections_and_applies_each_change() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let registry = dir.path().join("loggers.d");
    std::fs::create_dir(&registry).unwrap_or_else(|e| panic!("mkdir: {e}"));
    let per_file = LOGGERS / FILES;
    let file_of = |f: usize| registry.join(format!("district-{f}.toml"));
    for f in 0..FILES {
        write(
            &file_of(f),
            &registry_file(f * per_file..(f + 1) * per_file, stack),
        );
    }
    let password_file = registry.join(format!("{}.pw", mn(REPASSWORDED)));
    write(&password_file, &format!("{PASSWORD}\n"));
    let (daemon, tcp_port, http_port) = start_bureau(dir.path());
    let log = || daemon.log_text();
    let address: SocketAddr = ([127, 0, 0, 1], tcp_port).into();
    let mut loggers: Vec<(usize, TestLogger)> = (0..LOGGERS)
        .map(|i| (i, TestLogger::connect(address)))
        .collect();
    upload_round(&mut loggers, 0, &log);
    let sockets: Vec<SocketAddr> = loggers
        .iter()
        .map(|(_, l)| l.stream.local_addr().unwrap_or_else(|e| panic!("{e}")))
        .collect();

    let accepted_before = accepted(http_port);

    // The bureau edits the registry: a new district file with one logger, one logger
    // retired, one moved to another stack, one password changed in its file.
    let added = LOGGERS;
    write(
        &registry.join("district-new.toml"),
        &registry_file(added..added + 1, stack),
    );
    let first = registry_file(0..per_file, |i| {
        if i == MOVED {
            "plant-moved.unit2".to_string()
        } else {
            stack(i)
        }
    });
    let retired = format!(
        "\n[[logger]]\nmn = \"{}\"\npassword = {{ env = \"LOGGER_PW\" }}\nstack = \"{}\"\n",
        mn(REMOVED),
        stack(REMOVED)
    );
    assert!(first.contains(&retired));
    write(&file_of(0), &first.replace(&retired, ""));
    write(&password_file, "changed-pw\n");
    daemon.signal("HUP");
    assert!(
        eventually(WAIT, || log().contains("HJ 212 loggers reloaded")),
        "no reload:\n{}",
        log()
    );
    assert!(
        log().contains("added=1 changed=2 removed=1"),
        "reload counted wrong:\n{}",
        log()
    );

    // The removed logger's connection is closed by the listener.
    let (_, removed) = &mut loggers[REMOVED];
    assert!(
        removed.closed_within(WAIT),
        "the removed logger's connection stayed open:\n{}",
        log()
    );
    // The old password no longer goes through, the new one does, on the same socket.
    let (_, repassworded) = &mut loggers[REPASSWORDED];
    let qn = "20260101010000000007";
    repassworded.send(&minute_upload(
        &mn(REPASSWORDED),
        PASSWORD,
        qn,
        "20260101000100",
        "30",
    ));
    assert!(
        repassworded.receive(Duration::from_secs(2)).is_none(),
        "an upload with the old password was acked"
    );
    repassworded.send(&minute_upload(
        &mn(REPASSWORDED),
        "changed-pw",
        qn,
        "20260101000100",
        "30",
    ));
    let reply = repassworded.receive(WAIT);
    assert!(
        reply.as_ref().is_some_and(|p| is_ack_of(p, qn)),
        "no ack with the new password: {reply:?}\n{}",
        log()
    );

    // Every other logger goes on on its socket, and the new one is taken.
    let mut others: Vec<(usize, TestLogger)> = loggers
        .into_iter()
        .filter(|(i, _)| *i != REMOVED && *i != REPASSWORDED)
        .collect();
    for (i, logger) in &others {
        let socket = logger.stream.local_addr().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(socket, sockets[*i], "logger {i} changed its socket");
    }
    others.push((added, TestLogger::connect(address)));
    upload_round(&mut others, 1, &log);

    // Since the reload the listener accepted one connection, the new logger's: none of the
    // others had to reconnect.
    assert_eq!(accepted(http_port), accepted_before + 1.0);
    let store = open(&dir.path().join("data/cemsd.db"));
    let minutes = |device: usize| {
        store
            .query(&Query {
                kind: Some(RecordKind::Minute),
                device: Some(mn(device)),
                ..Query::default()
            })
            .unwrap_or_else(|e| panic!("query: {e}"))
            .into_iter()
            .map(|s| (s.record.ts.0, s.record.stack.to_string()))
            .collect::<Vec<_>>()
    };
    // 2026-01-01 00:00 and 00:01 at +08:00.
    let (m0, m1) = (1_767_196_800_000, 1_767_196_860_000);
    assert_eq!(minutes(0), vec![(m0, stack(0)), (m1, stack(0))]);
    assert_eq!(minutes(REMOVED), vec![(m0, stack(REMOVED))]);
    assert_eq!(
        minutes(MOVED),
        vec![(m0, stack(MOVED)), (m1, "plant-moved.unit2".to_string())]
    );
    assert_eq!(
        minutes(REPASSWORDED),
        vec![(m0, stack(REPASSWORDED)), (m1, stack(REPASSWORDED))]
    );
    assert_eq!(minutes(added), vec![(m1, stack(added))]);
    let mut daemon = daemon;
    daemon.stop(WAIT);
}

#[test]
fn a_registry_that_cannot_be_used_is_rejected_and_the_loggers_stay() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let registry = dir.path().join("loggers.d");
    std::fs::create_dir(&registry).unwrap_or_else(|e| panic!("mkdir: {e}"));
    let district = registry.join("district-0.toml");
    write(&district, &registry_file(0..3, stack));
    let (daemon, tcp_port, http_port) = start_bureau(dir.path());
    let log = || daemon.log_text();
    let mut loggers = vec![(0, TestLogger::connect(([127, 0, 0, 1], tcp_port).into()))];
    upload_round(&mut loggers, 0, &log);
    let rejected = || {
        metric(
            &scrape(http_port),
            "cemsd_config_reloads_total",
            &[("result", "rejected")],
        )
        .unwrap_or(0.0)
    };

    // A misspelt key: rejected with the registry file's line and column.
    let good = registry_file(0..3, stack);
    write(&district, &good.replacen("stack =", "stak =", 1));
    daemon.signal("HUP");
    let position = format!("{}:6:1: logger[0].stak", district.display());
    assert!(
        eventually(WAIT, || log().contains(&position)),
        "no positioned error:\n{}",
        log()
    );
    // A password file that cannot be read: rejected, naming the logger.
    write(
        &district,
        &good.replacen("{ env = \"LOGGER_PW\" }", "{ file = \"missing.pw\" }", 1),
    );
    daemon.signal("HUP");
    assert!(
        eventually(WAIT, || rejected() == 2.0),
        "the reload was not rejected:\n{}",
        log()
    );
    assert!(log().contains(&format!("HJ 212 device \"{}\": password", mn(0))));
    // The logger goes on on its connection with the running registry.
    upload_round(&mut loggers, 1, &log);
    let mut daemon = daemon;
    daemon.stop(WAIT);
}
