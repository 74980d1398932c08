//! Network endpoints on loopback against the cemsd simulator and pymodbus: Modbus TCP and
//! RTU over TCP (a serial device server), a server restart mid-run, exception replies
//! counted by code, single-socket devices and several connections to one endpoint.

mod support;

use std::time::Duration;

use cemsd::model::{Flag, Sample};
use support::analyser::{simulator, site_dir, values_of, wire_value, SimBus, SITE_HEAD};
use support::collectors::{run_collectors, Run};
use support::peers::modbus::serve_tcp;
use support::peers::pymodbus::Pymodbus;
use support::ports::{free_port, listen};

const INTERVAL_MS: i64 = 300;

/// Devices `(id, unit)` at `127.0.0.1:port`, polled every 300 ms with a 200 ms timeout.
fn config(transport: &str, port: u16, devices: &[(&str, u8)], extra: &str) -> String {
    let mut text = String::from(SITE_HEAD);
    for (id, unit) in devices {
        text.push_str(&format!(
            "\n[[device]]\nid = \"{id}\"\nprofile = \"two-floats\"\nstack = \"s\"\ntransport = \"{transport}\"\naddress = \"127.0.0.1:{port}\"\nunit_id = {unit}\npoll_interval = \"300ms\"\ntimeout = \"200ms\"\n{extra}"
        ));
    }
    text
}

fn boundary_of(s: &Sample) -> i64 {
    s.ts.0 - s.ts.0.rem_euclid(INTERVAL_MS)
}

/// Every boundary has one sample of `device`: unit `unit`'s value, or a B-flagged hole.
/// Returns (readings, holes).
fn assert_no_silent_boundary(run: &Run, device: &str, unit: u8) -> (usize, usize) {
    let so2 = run.of(device, "so2");
    let boundaries: Vec<i64> = so2.iter().map(|s| boundary_of(s)).collect();
    for pair in boundaries.windows(2) {
        assert_eq!(pair[1] - pair[0], INTERVAL_MS, "{device}: {boundaries:?}");
    }
    let mut counts = (0, 0);
    for s in &so2 {
        if s.value.is_nan() {
            assert_eq!(s.status.primary(), Flag::B, "{s:?}");
            counts.1 += 1;
        } else {
            assert_eq!(s.value, wire_value(values_of(unit).0), "{s:?}");
            counts.0 += 1;
        }
    }
    counts
}

/// Readings before the outage, holes during it, readings again after the restart.
fn assert_outage_survived(run: &Run, device: &str, unit: u8, line: &str) {
    let (readings, holes) = assert_no_silent_boundary(run, device, unit);
    assert!(holes >= 2, "{holes} holes during the outage");
    let so2 = run.of(device, "so2");
    let last_hole = so2.iter().rposition(|s| s.value.is_nan()).unwrap_or(0);
    let first_hole = so2.iter().position(|s| s.value.is_nan()).unwrap_or(0);
    assert!(first_hole >= 2, "no readings before the outage");
    assert!(
        so2.len() - last_hole > 3,
        "readings did not resume: {readings} readings, holes up to {last_hole} of {}",
        so2.len()
    );
    let lines = run.live.lines();
    let stats = &lines[line];
    assert!(stats.connects >= 2, "{stats:?}");
    assert!(stats.connect_failures >= 1, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_server_restart_is_survived_simulator() {
    let port = free_port();
    let first = serve_tcp(listen(port).await, SimBus(vec![simulator(1, "")]), false);
    let dir = site_dir();
    let text = config("tcp", port, &[("a1", 1)], "");
    let path = dir.path().to_path_buf();
    let running =
        tokio::spawn(
            async move { run_collectors(&path, &text, Duration::from_millis(4_000)).await },
        );
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    first.abort();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let second = serve_tcp(listen(port).await, SimBus(vec![simulator(1, "")]), false);
    let run = running.await.unwrap_or_else(|e| panic!("{e}"));
    second.abort();
    assert_outage_survived(&run, "a1", 1, &format!("127.0.0.1:{port}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_server_restart_is_survived_pymodbus() {
    let port = free_port();
    let tcp = port.to_string();
    let first = Pymodbus::start(&["--tcp", &tcp], &[1]);
    let dir = site_dir();
    let text = config("tcp", port, &[("a1", 1)], "");
    let path = dir.path().to_path_buf();
    let running =
        tokio::spawn(
            async move { run_collectors(&path, &text, Duration::from_millis(5_000)).await },
        );
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    drop(first);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let second = tokio::task::spawn_blocking(move || Pymodbus::start(&["--tcp", &tcp], &[1]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let run = running.await.unwrap_or_else(|e| panic!("{e}"));
    drop(second);
    assert_outage_survived(&run, "a1", 1, &format!("127.0.0.1:{port}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtu_over_tcp_reads_units_behind_a_device_server_simulator() {
    let port = free_port();
    // units 1 and 3 behind the device server; unit 2 is dead
    let server = serve_tcp(
        listen(port).await,
        SimBus(vec![simulator(1, ""), simulator(3, "")]),
        true,
    );
    let dir = site_dir();
    let text = config("rtu-over-tcp", port, &[("a1", 1), ("a2", 2), ("a3", 3)], "");
    let run = run_collectors(dir.path(), &text, Duration::from_millis(2_000)).await;
    server.abort();
    for (device, unit) in [("a1", 1), ("a3", 3)] {
        let (readings, holes) = assert_no_silent_boundary(&run, device, unit);
        assert!(
            readings >= 4 && holes == 0,
            "{device}: {readings} readings, {holes} holes"
        );
    }
    let (readings, holes) = assert_no_silent_boundary(&run, "a2", 2);
    assert!(
        readings == 0 && holes >= 4,
        "a2: {readings} readings, {holes} holes"
    );
    let lines = run.live.lines();
    let stats = &lines[format!("127.0.0.1:{port}").as_str()];
    assert!(stats.timeouts >= 2, "{stats:?}");
    // a timeout on RTU over TCP does not cost the connection: the late-reply guard is the
    // frame matching, as on a serial bus
    assert_eq!(stats.connects, 1, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtu_over_tcp_counts_exceptions_by_code_pymodbus() {
    let port = free_port();
    let tcp = port.to_string();
    // pymodbus answers unit ids it does not serve with exception 4 (server device failure)
    let _server = Pymodbus::start(&["--tcp", &tcp, "--rtu-framing"], &[1, 3]);
    let dir = site_dir();
    let text = config("rtu-over-tcp", port, &[("a1", 1), ("a2", 2), ("a3", 3)], "");
    let run = run_collectors(dir.path(), &text, Duration::from_millis(2_000)).await;
    for (device, unit) in [("a1", 1), ("a3", 3)] {
        let (readings, holes) = assert_no_silent_boundary(&run, device, unit);
        assert!(
            readings >= 4 && holes == 0,
            "{device}: {readings} readings, {holes} holes"
        );
    }
    let (readings, holes) = assert_no_silent_boundary(&run, "a2", 2);
    assert_eq!(readings, 0);
    let lines = run.live.lines();
    let stats = &lines[format!("127.0.0.1:{port}").as_str()];
    let code_4 = stats.exceptions.get(&4).copied().unwrap_or(0);
    assert!(code_4 >= 2, "{stats:?}");
    assert_eq!(stats.exceptions.len(), 1, "{stats:?}");
    assert!(holes >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_exceptions_are_counted_by_code_and_flag_the_hole_simulator() {
    let port = free_port();
    // for its first second the analyser answers every request with exception 6 (busy)
    let busy = "[[event]]\nkind = \"exception\"\nstart = \"0s\"\nduration = \"1s\"\ncode = 6\n";
    let server = serve_tcp(listen(port).await, SimBus(vec![simulator(1, busy)]), false);
    let dir = site_dir();
    let text = config("tcp", port, &[("a1", 1)], "");
    let run = run_collectors(dir.path(), &text, Duration::from_millis(2_400)).await;
    server.abort();
    let (readings, holes) = assert_no_silent_boundary(&run, "a1", 1);
    assert!(
        holes >= 2 && readings >= 3,
        "{readings} readings, {holes} holes"
    );
    let lines = run.live.lines();
    let stats = &lines[format!("127.0.0.1:{port}").as_str()];
    assert_eq!(
        stats.exceptions.get(&6).copied(),
        Some(holes as u64),
        "{stats:?}"
    );
    // an exception is an answer: the connection stays
    assert_eq!(stats.connects, 1, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_after_poll_opens_one_connection_per_poll() {
    let port = free_port();
    let server = serve_tcp(listen(port).await, SimBus(vec![simulator(1, "")]), false);
    let dir = site_dir();
    let text = config("tcp", port, &[("a1", 1)], "close_after_poll = true\n");
    let run = run_collectors(dir.path(), &text, Duration::from_millis(1_700)).await;
    server.abort();
    let (readings, holes) = assert_no_silent_boundary(&run, "a1", 1);
    assert!(
        readings >= 4 && holes == 0,
        "{readings} readings, {holes} holes"
    );
    let lines = run.live.lines();
    let stats = &lines[format!("127.0.0.1:{port}").as_str()];
    assert_eq!(stats.connects, readings as u64, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_behind_one_endpoint_share_max_connections() {
    let port = free_port();
    let server = serve_tcp(
        listen(port).await,
        SimBus(vec![simulator(1, ""), simulator(2, ""), simulator(3, "")]),
        false,
    );
    let dir = site_dir();
    let text = config(
        "tcp",
        port,
        &[("a1", 1), ("a2", 2), ("a3", 3)],
        "max_connections = 2\n",
    );
    let run = run_collectors(dir.path(), &text, Duration::from_millis(1_500)).await;
    server.abort();
    for (device, unit) in [("a1", 1), ("a2", 2), ("a3", 3)] {
        let (readings, holes) = assert_no_silent_boundary(&run, device, unit);
        assert!(
            readings >= 3 && holes == 0,
            "{device}: {readings} readings, {holes} holes"
        );
    }
    let lines = run.live.lines();
    let names: Vec<&str> = lines.keys().map(|k| &**k).collect();
    let endpoint = format!("127.0.0.1:{port}");
    assert_eq!(names, [format!("{endpoint}#1"), format!("{endpoint}#2")]);
    // a1 and a3 on the first connection, a2 on the second
    let first = &lines[format!("{endpoint}#1").as_str()];
    let second = &lines[format!("{endpoint}#2").as_str()];
    assert_eq!(first.replies, 2 * second.replies, "{first:?} {second:?}");
}
