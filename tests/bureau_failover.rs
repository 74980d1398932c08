//! The bureau topology of deploy/bureau-ha on real engines: HAProxy in front of two cemsd
//! listener hosts, each in its own network namespace, both forwarding to one
//! VictoriaMetrics (deduplicating) in a third. 200 test loggers, each from its own
//! address, upload minutes through HAProxy, which names their addresses to the hosts in a
//! PROXY header; midway one host is cut off the network. Its loggers are disconnected by
//! HAProxy, reconnect to the other host and send again what was not acked; the cut host
//! comes back at the end and forwards what it had committed. VictoriaMetrics must end with
//! every minute of every logger exactly once.
//!
//! Needs root for `ip netns`; where namespaces cannot be created the test says so and
//! passes without running.

mod support;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cemsd::protocol::hj212::format_data_time;
use cemsd::store::{Query, RecordKind};
use support::daemon::{write_config, Daemon};
use support::hj212_logger::{is_ack_of, minute_upload, TestLogger};
use support::netns::{Host, Lan};
use support::ports::free_port;
use support::process::Owned;
use support::time::{eventually, now_ms};
use support::VictoriaMetrics;

const LOGGERS: usize = 200;
const MINUTES: usize = 20;
/// Minutes every logger has had acked before the cut.
const CUT_AFTER: usize = 6;
const PASSWORD: &str = "bureau-pw";
const LISTEN_PORT: u16 = 9001;
const WAIT: Duration = Duration::from_secs(120);

fn mn(i: usize) -> String {
    format!("HA-LOGGER-{i:04}")
}

fn stack(i: usize) -> String {
    format!("plant-{i:04}.unit1")
}

/// The registry both hosts read: every logger, its own stack.
fn registry(dir: &Path) {
    let mut text = String::new();
    for i in 0..LOGGERS {
        let _ = write!(
            text,
            "[[logger]]\nmn = \"{}\"\npassword = {{ env = \"LOGGER_PW\" }}\nstack = \"{}\"\n\n",
            mn(i),
            stack(i)
        );
    }
    std::fs::create_dir_all(dir.join("loggers.d")).unwrap_or_else(|e| panic!("mkdir: {e}"));
    write_config(&dir.join("loggers.d"), "province.toml", &text);
}

/// A listener host as deploy/bureau-ha/host-a.toml has it, on `host`'s address, forwarding
/// to VictoriaMetrics at `vm`.
fn host_config(dir: &Path, host: &Host, vm: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir: {e}"));
    registry(dir);
    let text = format!(
        r#"[site]
id = "bureau"

[store]
path = "data/cemsd.db"

[hj212_listener]
listen = "{}:{LISTEN_PORT}"
registry = "loggers.d"
max_connections = 1000
# as shipped: HAProxy names each logger's address, so the per-address limit (64) holds
proxy_protocol = true

[[influx]]
id = "central"
url = "{vm}"
bucket = "cems"
token_env = "VM_TOKEN"
flush_interval = "200ms"
max_backoff = "1s"
"#,
        host.address
    );
    write_config(dir, "host.toml", &text)
}

/// HAProxy with the health checks and session shutdown of deploy/bureau-ha/haproxy.cfg,
/// faster, on 127.0.0.1:`port`.
fn haproxy(dir: &Path, port: u16, hosts: &[&Host]) -> Owned {
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/bureau-ha/haproxy.cfg"),
    )
    .unwrap_or_else(|e| panic!("haproxy.cfg: {e}"));
    // the shipped file with this test's addresses and quicker checks
    let mut text = shipped
        .replace("    log /dev/log local0\n", "")
        // within the open-files limit of a test run
        .replace("maxconn 20000", "maxconn 2000")
        .replace("bind :9001", &format!("bind 127.0.0.1:{port}"))
        .replace("inter 2s fall 3 rise 2", "inter 300ms fall 2 rise 2")
        .replace("timeout connect 3s", "timeout connect 1s");
    let servers = text
        .find("    server host-a")
        .unwrap_or_else(|| panic!("no servers in the shipped haproxy.cfg"));
    text.truncate(servers);
    for (name, host) in ["host-a", "host-b"].iter().zip(hosts) {
        let _ = writeln!(text, "    server {name} {}:{LISTEN_PORT}", host.address);
    }
    let config = write_config(dir, "haproxy.cfg", &text);
    let log = std::fs::File::create(dir.join("haproxy.log"))
        .unwrap_or_else(|e| panic!("haproxy log: {e}"));
    Owned::spawn(
        Command::new("/usr/sbin/haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log),
        "haproxy",
    )
}

/// Logger i's own address: 200 loggers behind HAProxy are more than one address may hold.
fn source_of(i: usize) -> IpAddr {
    IpAddr::from([127, 1, (i / 250) as u8, (i % 250 + 1) as u8])
}

/// One logger: uploads its minutes one by one, each until acked; a connection that breaks
/// or stays silent for 5 s is opened again (through HAProxy) and the minute sent again.
fn run_logger(i: usize, proxy: SocketAddr, first_minute: i64, acked: &AtomicUsize) -> usize {
    let mut reconnects = 0;
    let mut logger: Option<TestLogger> = None;
    let deadline = Instant::now() + WAIT;
    for minute in 0..MINUTES {
        let ts = first_minute + minute as i64 * 60_000;
        let data_time = format_data_time(
            cemsd::model::time::UtcOffset::CHINA.local_time(cemsd::model::Timestamp(ts)),
        );
        let qn = format!("{}{minute:02}{i:04}", &data_time[..12]);
        let value = format!("{}", 10 + (i + minute) % 40);
        loop {
            assert!(
                Instant::now() < deadline,
                "logger {i} stuck at minute {minute}"
            );
            let connection = match logger.as_mut() {
                Some(connection) => connection,
                None => match TestLogger::try_connect_from(source_of(i), proxy) {
                    Ok(connection) => logger.insert(connection),
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(200));
                        continue;
                    }
                },
            };
            let upload = minute_upload(&mn(i), PASSWORD, &qn, &data_time, &value);
            let answered = connection.try_send(&upload).is_ok()
                && std::iter::from_fn(|| connection.receive(Duration::from_secs(5)))
                    .any(|reply| is_ack_of(&reply, &qn));
            if answered {
                break;
            }
            logger = None;
            reconnects += 1;
        }
        acked.fetch_add(1, Ordering::Relaxed);
    }
    reconnects
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_cut_off_loses_no_minute_and_victoria_metrics_holds_each_once() {
    let mut lan = match Lan::create() {
        Ok(lan) => lan,
        Err(why) => {
            eprintln!("SKIPPED: network namespaces cannot be created here ({why})");
            return;
        }
    };
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let host_a = lan.add_host("a", 11);
    let host_b = lan.add_host("b", 12);
    let central = lan.add_host("v", 21);
    let vm = VictoriaMetrics::start_in_namespace(
        &root.path().join("vm"),
        &central.namespace,
        central.address.into(),
    )
    .await;
    let env = [
        ("LOGGER_PW", PASSWORD.to_string()),
        ("VM_TOKEN", "unused".to_string()),
    ];
    let daemons: Vec<Daemon> = [(&host_a, "host-a"), (&host_b, "host-b")]
        .iter()
        .map(|(host, name)| {
            let dir = root.path().join(name);
            let config = host_config(&dir, host, &vm.url());
            Daemon::start_in_namespace(&host.namespace, &config, &dir, &env)
        })
        .collect();
    for daemon in &daemons {
        assert!(
            eventually(WAIT, || daemon
                .log_text()
                .contains("HJ 212 listener accepting")),
            "listener did not come up:\n{}",
            daemon.log_text()
        );
    }
    let proxy_port = free_port();
    let _haproxy = haproxy(root.path(), proxy_port, &[&host_a, &host_b]);
    let proxy: SocketAddr = ([127, 0, 0, 1], proxy_port).into();
    assert!(
        eventually(WAIT, || std::net::TcpStream::connect(proxy).is_ok()),
        "HAProxy did not come up: {}",
        std::fs::read_to_string(root.path().join("haproxy.log")).unwrap_or_default()
    );

    // minutes of two hours ago, so every one is a whole minute in the past
    let first_minute = (now_ms() - 2 * 3_600_000).div_euclid(60_000) * 60_000;
    let acked = Arc::new(AtomicUsize::new(0));
    let loggers: Vec<_> = (0..LOGGERS)
        .map(|i| {
            let acked = acked.clone();
            std::thread::spawn(move || run_logger(i, proxy, first_minute, &acked))
        })
        .collect();
    let progress = acked.clone();
    let midway = tokio::task::spawn_blocking(move || {
        eventually(WAIT, || {
            progress.load(Ordering::Relaxed) >= LOGGERS * CUT_AFTER
        })
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(midway, "the loggers did not get going");
    lan.cut(&host_a);
    let reconnects: usize = tokio::task::spawn_blocking(move || {
        loggers
            .into_iter()
            .map(|l| l.join().unwrap_or_else(|_| panic!("a logger failed")))
            .sum()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        reconnects > 0,
        "no logger had to move: the cut did not hit any connection"
    );
    // host A comes back and forwards what it committed before the cut
    lan.restore(&host_a);

    let want: Vec<i64> = (0..MINUTES as i64)
        .map(|m| first_minute + m * 60_000)
        .collect();
    let deadline = Instant::now() + WAIT;
    let mut series = Vec::new();
    while Instant::now() < deadline {
        series = vm.export(r#"{__name__="cems_minute_measured"}"#).await;
        let complete =
            series.len() == LOGGERS && series.iter().all(|s| s.timestamps.len() >= MINUTES);
        if complete {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(series.len(), LOGGERS, "stacks in VictoriaMetrics");
    for s in &series {
        let stack = s.labels.get("stack").cloned().unwrap_or_default();
        let i: usize = stack
            .trim_start_matches("plant-")
            .trim_end_matches(".unit1")
            .parse()
            .unwrap_or_else(|e| panic!("{stack}: {e}"));
        assert_eq!(s.timestamps, want, "{stack}: every minute once");
        let values: Vec<f64> = (0..MINUTES).map(|m| (10 + (i + m) % 40) as f64).collect();
        assert_eq!(s.values, values, "{stack}: the values sent");
    }
    for mut daemon in daemons {
        daemon.stop(Duration::from_secs(30));
    }
    // what both hosts stored (acked by one, its ack lost in the cut, sent again to the
    // other): VictoriaMetrics merged these
    let stored = |name: &str| -> BTreeSet<(String, i64)> {
        support::store::open(&root.path().join(name).join("data/cemsd.db"))
            .query(&Query {
                kind: Some(RecordKind::Minute),
                ..Query::default()
            })
            .unwrap_or_else(|e| panic!("query: {e}"))
            .into_iter()
            .map(|s| (s.record.stack.to_string(), s.record.ts.0))
            .collect()
    };
    let (a, b) = (stored("host-a"), stored("host-b"));
    assert_eq!(
        a.union(&b).count(),
        LOGGERS * MINUTES,
        "the hosts' stores together"
    );
    eprintln!(
        "{reconnects} reconnects after the cut; host A stored {} minutes, host B {}, both {}",
        a.len(),
        b.len(),
        a.intersection(&b).count()
    );
}

/// The files of deploy/bureau-ha as shipped: both host configs (with the registry beside
/// them) load, and HAProxy accepts its config.
#[test]
fn the_shipped_bureau_topology_checks() {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/bureau-ha");
    for host in ["host-a.toml", "host-b.toml"] {
        let loaded =
            cemsd::config::load(&deploy.join(host)).unwrap_or_else(|e| panic!("{host}: {e}"));
        let listener = loaded
            .config
            .hj212_listener
            .unwrap_or_else(|| panic!("{host}: no listener"));
        assert_eq!(listener.registered.len(), 2, "{host}: the sample registry");
    }
    let checked = Command::new("/usr/sbin/haproxy")
        .arg("-c")
        .arg("-f")
        .arg(deploy.join("haproxy.cfg"))
        .output()
        .unwrap_or_else(|e| panic!("haproxy (scripts/test installs it): {e}"));
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
}
