//! `cemsd run` on an RS-485 bus made of socat ptys, against pymodbus: an analyser that falls
//! silent and answers again, and a serial port that vanishes and comes back, are read with
//! flag N at the first poll boundary after they return (the store's rows say so), whatever
//! the length of the outage; and a noisy run shows CRC errors, timeouts and exception code 2
//! as separate series in /metrics.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cemsd::model::Flag;
use cemsd::store::{Query, RecordKind};
use support::analyser::{site_dir, values_of, wire_value};
use support::daemon::Daemon;
use support::http::{metric, scrape};
use support::peers::pty::{Fault, Line, WireSetup};
use support::peers::pymodbus::Pymodbus;
use support::ports::free_port;
use support::store::try_open;
use support::time::eventually;

const INTERVAL_MS: i64 = 1_000;

/// A pair of ptys joined by socat, reached through two links in a directory. Stopped with
/// SIGTERM, socat removes the links: the port is gone, as a USB adapter pulled out.
struct Socat {
    child: Child,
}

impl Socat {
    fn start(bus: &Path, device: &Path) -> Socat {
        let end = |link: &Path| format!("pty,raw,echo=0,link={}", link.display());
        let child = Command::new("socat")
            .args([end(bus), end(device)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start socat (apt-get install socat): {e}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(bus.exists() && device.exists()) {
            assert!(Instant::now() < deadline, "socat made no ptys");
            std::thread::sleep(Duration::from_millis(20));
        }
        Socat { child }
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Socat {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// One analyser `a1` (unit 1) on bus `rs485` at `port`, polled every second.
fn one_analyser(dir: &Path, port: &Path, http: u16) -> PathBuf {
    let text = format!(
        r#"profiles_dir = "profiles"

[site]
id = "recovery"
utc_offset = "+00:00"

[store]
path = "data/cemsd.db"

[http]
listen = "127.0.0.1:{http}"

[[stack]]
id = "s"

[[bus]]
id = "rs485"
port = "{port}"
baud = 9600
response_timeout = "200ms"

[[device]]
id = "a1"
profile = "two-floats"
stack = "s"
transport = "rtu"
bus = "rs485"
unit_id = 1
poll_interval = "1s"
"#,
        port = port.display()
    );
    let path = dir.join("site.toml");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write config: {e}"));
    path
}

/// (boundary, flag, value) of every so2 reading of `device`, oldest first.
fn so2_rows(db: &Path, device: &str) -> Vec<(i64, Flag, Option<f64>)> {
    let Some(store) = try_open(db) else {
        return Vec::new();
    };
    let rows = store
        .query(&Query {
            kind: Some(RecordKind::Reading),
            device: Some(device.into()),
            channel: Some("so2".into()),
            ..Query::default()
        })
        .unwrap_or_default();
    rows.iter()
        .map(|s| {
            let ts = s.record.ts.0;
            (
                ts - ts.rem_euclid(INTERVAL_MS),
                s.record.flags.primary(),
                s.record.raw,
            )
        })
        .collect()
}

fn readings_n(db: &Path) -> usize {
    so2_rows(db, "a1")
        .iter()
        .filter(|(_, flag, _)| *flag == Flag::N)
        .count()
}

/// The rows around an outage that ended when the analyser was back at `back_ms`: holes
/// flagged B during it, and the first boundary after `back_ms` read with flag N, as is
/// every one after it; no boundary is left out.
fn assert_read_at_the_first_boundary_after(rows: &[(i64, Flag, Option<f64>)], back_ms: i64) {
    let table = format!("{rows:?}");
    for pair in rows.windows(2) {
        assert_eq!(
            pair[1].0 - pair[0].0,
            INTERVAL_MS,
            "a boundary was skipped: {table}"
        );
    }
    let holes = rows.iter().filter(|(_, flag, _)| *flag == Flag::B).count();
    assert!(holes >= 5, "{holes} holes during the outage: {table}");
    let first_after = back_ms - back_ms.rem_euclid(INTERVAL_MS) + INTERVAL_MS;
    let after: Vec<_> = rows.iter().filter(|(b, _, _)| *b >= first_after).collect();
    assert!(
        after.len() >= 2,
        "no readings after the return at {back_ms}: {table}"
    );
    assert_eq!(
        after[0].0, first_after,
        "the first boundary after the return ({first_after}) has no row: {table}"
    );
    let so2 = wire_value(values_of(1).0);
    for (boundary, flag, value) in after {
        assert_eq!(
            (*flag, *value),
            (Flag::N, Some(so2)),
            "at {boundary}, back at {back_ms}: {table}"
        );
    }
}

fn stop(mut daemon: Daemon) -> String {
    daemon.signal("TERM");
    let (code, _) = daemon.wait_exit(Duration::from_secs(15));
    assert_eq!(code, Some(0), "{}", daemon.log_text());
    daemon.log_text()
}

#[test]
fn an_analyser_silent_for_20_s_is_read_with_flag_n_at_the_first_boundary_after_it_answers() {
    let dir = site_dir();
    let (bus, device) = (dir.path().join("bus"), dir.path().join("device"));
    let _socat = Socat::start(&bus, &device);
    let serve = |device: &Path| Pymodbus::start(&["--serial", &device.display().to_string()], &[1]);
    let peer = serve(&device);
    let http = free_port();
    let config = one_analyser(dir.path(), &bus, http);
    let db = dir.path().join("data/cemsd.db");
    let daemon = Daemon::start(&config, dir.path(), &[]);
    assert!(
        eventually(Duration::from_secs(20), || readings_n(&db) >= 3),
        "no readings:\n{}",
        daemon.log_text()
    );

    // silent: nothing answers on the line. With the backoff of old (doubling up to 300 s)
    // an outage of 20 s left the analyser unpolled until 32 s, 10 minutes up to 5 minutes.
    drop(peer);
    std::thread::sleep(Duration::from_secs(20));
    let _peer = serve(&device);
    let back = now_ms();
    std::thread::sleep(Duration::from_millis(3_500));
    let log = stop(daemon);

    let rows = so2_rows(&db, "a1");
    assert_read_at_the_first_boundary_after(&rows, back);
    assert!(log.contains("answering again after"), "{log}");
    // a failure every second, logged at the 1st, 2nd, 4th, 8th and 16th only
    let logged = log.matches("poll: no reply in time").count();
    assert!((4..=6).contains(&logged), "{logged} failure lines:\n{log}");
}

#[test]
fn a_serial_port_that_vanishes_is_reopened_at_the_first_boundary_after_it_returns() {
    let dir = site_dir();
    let (bus, device) = (dir.path().join("bus"), dir.path().join("device"));
    let socat = Socat::start(&bus, &device);
    let serve = |device: &Path| Pymodbus::start(&["--serial", &device.display().to_string()], &[1]);
    let peer = serve(&device);
    let http = free_port();
    let config = one_analyser(dir.path(), &bus, http);
    let db = dir.path().join("data/cemsd.db");
    let daemon = Daemon::start(&config, dir.path(), &[]);
    assert!(
        eventually(Duration::from_secs(20), || readings_n(&db) >= 3),
        "no readings:\n{}",
        daemon.log_text()
    );

    // the adapter is pulled out: the port and the analyser behind it are gone
    socat.stop();
    drop(peer);
    assert!(!bus.exists(), "socat left its link behind");
    std::thread::sleep(Duration::from_secs(15));
    let _socat = Socat::start(&bus, &device);
    let _peer = serve(&device);
    let back = now_ms();
    std::thread::sleep(Duration::from_millis(3_500));
    let scraped = scrape(http);
    let log = stop(daemon);

    let rows = so2_rows(&db, "a1");
    assert_read_at_the_first_boundary_after(&rows, back);
    // one attempt to open the port at every boundary it was missing
    let line = [("line", "rs485")];
    let attempts = metric(&scraped, "cemsd_modbus_line_connect_failures_total", &line);
    assert!(
        attempts.is_some_and(|n| (12.0..=17.0).contains(&n)),
        "{attempts:?} failed opens in 15 s:\n{log}"
    );
    assert_eq!(
        metric(&scraped, "cemsd_modbus_line_reconnects_total", &line),
        Some(1.0)
    );
    assert!(log.contains("open again after"), "{log}");
}

/// A register map that reads holding register 100, which pymodbus does not serve: every
/// read is answered with exception 2 (illegal data address).
const FAR_PROFILE: &str = r#"vendor = "Test"
model = "far float"
source = "integration test"
verified = false

[[channel]]
name = "so2"
quantity = "SO2"
unit = "mg/m3"
table = "holding"
address = 100
type = "f32"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_noisy_run_shows_crc_errors_timeouts_and_exception_2_as_separate_series() {
    // unit 1: a reply with a bad CRC and one after noise; unit 2: dead; unit 3: exception 2
    let line = Line::new(WireSetup {
        dead: vec![2],
        faults: vec![
            (1, 2, Fault::CorruptCrc),
            (1, 4, Fault::NoiseBefore(vec![0x00, 0xFF, 0x13, 0x37])),
        ],
        ..WireSetup::default()
    });
    let device_port = line.device_port.clone();
    let _peer =
        tokio::task::spawn_blocking(move || Pymodbus::start(&["--serial", &device_port], &[1, 3]))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    let dir = site_dir();
    std::fs::write(dir.path().join("profiles/far-float.toml"), FAR_PROFILE)
        .unwrap_or_else(|e| panic!("write profile: {e}"));
    let http = free_port();
    let mut text = format!(
        "profiles_dir = \"profiles\"\n\n[site]\nid = \"noisy\"\nutc_offset = \"+00:00\"\n\n[store]\npath = \"data/cemsd.db\"\n\n[http]\nlisten = \"127.0.0.1:{http}\"\n\n[[stack]]\nid = \"s\"\n\n[[bus]]\nid = \"rs485\"\nport = \"{}\"\nbaud = 9600\nresponse_timeout = \"150ms\"\n",
        line.bus_port
    );
    for (unit, profile) in [(1, "two-floats"), (2, "two-floats"), (3, "far-float")] {
        text.push_str(&format!(
            "\n[[device]]\nid = \"a{unit}\"\nprofile = \"{profile}\"\nstack = \"s\"\ntransport = \"rtu\"\nbus = \"rs485\"\nunit_id = {unit}\npoll_interval = \"1s\"\n"
        ));
    }
    let config = dir.path().join("site.toml");
    std::fs::write(&config, text).unwrap_or_else(|e| panic!("write config: {e}"));
    let db = dir.path().join("data/cemsd.db");
    let daemon = Daemon::start(&config, dir.path(), &[]);
    let mut waited = 0;
    while so2_rows(&db, "a1").len() < 6 && waited < 300 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    let scraped = tokio::task::spawn_blocking(move || scrape(http))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let log = tokio::task::spawn_blocking(move || stop(daemon))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // rows: a1 read at every boundary (the damaged replies were read again at once), a2 and
    // a3 holes flagged B
    let a1 = so2_rows(&db, "a1");
    assert!(a1.len() >= 6, "{a1:?}\n{log}");
    assert!(a1.iter().all(|(_, flag, _)| *flag == Flag::N), "{a1:?}");
    for device in ["a2", "a3"] {
        let rows = so2_rows(&db, device);
        assert!(rows.len() >= 5, "{device}: {rows:?}");
        assert!(
            rows.iter()
                .all(|(_, flag, v)| *flag == Flag::B && v.is_none()),
            "{device}: {rows:?}"
        );
    }

    let line_ = [("line", "rs485")];
    let series =
        |name: &str, labels: &[(&str, &str)]| metric(&scraped, name, labels).unwrap_or(0.0);
    assert_eq!(series("cemsd_modbus_line_crc_errors_total", &line_), 1.0);
    assert!(series("cemsd_modbus_line_noise_bytes_total", &line_) >= 4.0);
    assert!(series("cemsd_modbus_line_timeouts_total", &line_) >= 5.0);
    let exception_2 = [("line", "rs485"), ("code", "2")];
    assert!(series("cemsd_modbus_line_exceptions_total", &exception_2) >= 5.0);
    // and per device
    assert_eq!(
        series("cemsd_modbus_device_crc_errors_total", &[("device", "a1")]),
        1.0
    );
    assert!(series("cemsd_modbus_device_timeouts_total", &[("device", "a2")]) >= 5.0);
    assert_eq!(
        series("cemsd_modbus_device_timeouts_total", &[("device", "a1")]),
        0.0
    );
    let a3_exception_2 = [("device", "a3"), ("code", "2")];
    assert!(series("cemsd_modbus_device_exceptions_total", &a3_exception_2) >= 5.0);
    // the failed polls by kind: the dead unit timed out, the refusing one answered
    assert!(
        series(
            "cemsd_poll_errors_total",
            &[("device", "a2"), ("kind", "timeout")]
        ) >= 5.0
    );
    assert!(
        series(
            "cemsd_poll_errors_total",
            &[("device", "a3"), ("kind", "exception")]
        ) >= 5.0
    );
    // an analyser that answers, if only with exceptions, is connected; the dead one is not
    assert_eq!(series("cemsd_device_connected", &[("device", "a3")]), 1.0);
    assert_eq!(
        metric(&scraped, "cemsd_device_connected", &[("device", "a2")]),
        Some(0.0)
    );
    assert_eq!(series("cemsd_device_connected", &[("device", "a1")]), 1.0);
}
