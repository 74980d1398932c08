//! A bureau-sized site in a real browser: 500 devices across Modbus analysers (simulators
//! served by the daemon), MQTT publishers (mosquitto) and HJ 212 data loggers (played by
//! the test). Every device appears on the status page with its state, whichever collector
//! feeds it; a stack's detail opens with its readings and charts; screenshots in zh-CN and
//! English are saved in the test output directory. `/metrics`, read by Python's
//! prometheus-client parser, and `/health` list the same 500 devices.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use cemsd::protocol::hj212::CommandCode;
use cemsd::store::{Query, RecordKind};
use support::browser::chromium;
use support::daemon::{write_config, Daemon};
use support::hj212_logger::{plant_minute, TestLogger};
use support::http::{http_get, metric, scrape};
use support::mqtt::{broker, numbered_json};
use support::peers::mosquitto::{publish, Broker};
use support::ports::{free_port, listening_within};
use support::site::head;
use support::store::{open, try_open};
use support::time::{eventually, now_ms};

const WAIT: Duration = Duration::from_secs(120);
/// Devices per stack, and stacks per kind of collector: 2 × 5 polled analysers,
/// 49 × 5 MQTT publishers, 49 × 5 HJ 212 loggers.
const PER_STACK: usize = 5;
const MODBUS_STACKS: usize = 2;
const MQTT_STACKS: usize = 49;
const LOGGER_STACKS: usize = 49;
const PW: &str = "654321";

fn modbus_id(i: usize) -> String {
    format!("an-{i:02}")
}

fn mqtt_id(i: usize) -> String {
    format!("mq-{i:03}")
}

/// A 24-character MN, the longest HJ 212-2017 allows.
fn logger_mn(i: usize) -> String {
    format!("SCALE{i:019}")
}

fn stack_of(kind: &str, i: usize) -> String {
    format!("{kind}-{:02}", i / PER_STACK)
}

/// The site: its text, and (device, stack, source) of each of its 500 devices.
fn site(
    dir: &Path,
    http: u16,
    mqtt_port: u16,
    listener: u16,
) -> (String, Vec<(String, String, &'static str)>) {
    let mut text = head("bureau-scale", "", "data/cemsd.db")
        + &format!("\n[http]\nlisten = \"127.0.0.1:{http}\"\n");
    let mut devices = Vec::new();
    for (kind, stacks) in [
        ("plant", MODBUS_STACKS),
        ("gateway", MQTT_STACKS),
        ("logger", LOGGER_STACKS),
    ] {
        for s in 0..stacks {
            text += &format!("\n[[stack]]\nid = \"{kind}-{s:02}\"\nname = \"{kind} {s}\"\nlimits = {{ preset = \"ultra_low\" }}\n");
        }
    }
    for i in 0..MODBUS_STACKS * PER_STACK {
        let port = free_port();
        let (id, stack) = (modbus_id(i), stack_of("plant", i));
        text += &format!(
            r#"
[[simulate]]
profile = "thermo-43i"
listen = "127.0.0.1:{port}"
seed = {i}

[[device]]
id = "{id}"
profile = "thermo-43i"
stack = "{stack}"
transport = "tcp"
address = "127.0.0.1:{port}"
poll_interval = "2s"
timeout = "500ms"
"#
        );
        devices.push((id, stack, "modbus"));
    }
    text += &broker(
        "bureau",
        &format!("mqtt://127.0.0.1:{mqtt_port}"),
        "status-page-scale",
        "keep_alive = \"5s\"\nreconnect_min = \"100ms\"\nreconnect_max = \"1s\"\n",
    );
    text += "\n[[mqtt.subscribe]]\nfilter = \"scale/#\"\nqos = 1\nformat = \"json\"\ntime_format = \"unix_ms\"\n";
    for i in 0..MQTT_STACKS * PER_STACK {
        let (id, stack) = (mqtt_id(i), stack_of("gateway", i));
        text += &format!(
            "\n[[mqtt.device]]\nid = \"{id}\"\nstack = \"{stack}\"\ninterval = \"1m\"\nchannels = {{ SO2 = {{ unit = \"mg/m3\" }} }}\n"
        );
        devices.push((id, stack, "mqtt"));
    }
    std::fs::write(dir.join("logger.pw"), format!("{PW}\n"))
        .unwrap_or_else(|e| panic!("write password: {e}"));
    text += &format!(
        r#"
[hj212_listener]
listen = "127.0.0.1:{listener}"
history_pull = false
# every logger stays connected from the same address until the metrics are read
max_connections_per_ip = 300
# the uploads are dated 2026-01-01: inside the window whatever the calendar says
data_time_horizon = "20y"
"#
    );
    for i in 0..LOGGER_STACKS * PER_STACK {
        let (mn, stack) = (logger_mn(i), stack_of("logger", i));
        text += &format!(
            "\n[[hj212_listener.device]]\nmn = \"{mn}\"\npassword = {{ file = \"logger.pw\" }}\nstack = \"{stack}\"\n"
        );
        devices.push((mn, stack, "hj212"));
    }
    (text, devices)
}

/// Devices with at least one stored record of `kind`.
fn devices_with(db: &Path, kind: RecordKind) -> BTreeSet<String> {
    try_open(db)
        .and_then(|s| {
            s.query(&Query {
                kind: Some(kind),
                ..Query::default()
            })
            .ok()
        })
        .map_or_else(BTreeSet::new, |rows| {
            rows.iter().map(|r| r.record.device.to_string()).collect()
        })
}

/// `(device, stack, connection)` of every `<tr class="device-row">` of the page.
fn listed(dom: &str) -> Vec<(String, String, String)> {
    dom.split("<tr class=\"device-row\"")
        .skip(1)
        .map(|row| {
            let tag = &row[..row.find('>').unwrap_or(0)];
            let get = |name: &str| {
                let start = tag
                    .find(&format!(" {name}=\""))
                    .map(|s| s + name.len() + 3)
                    .unwrap_or_else(|| panic!("no {name} in {tag}"));
                let len = tag[start..].find('"').unwrap_or(0);
                tag[start..start + len].to_string()
            };
            (
                get("data-device"),
                get("data-stack"),
                get("data-connection"),
            )
        })
        .collect()
}

fn screenshot(url: &str, name: &str) {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_file(&path);
    chromium(url, &format!("--screenshot={}", path.display()));
    assert!(path.exists(), "no screenshot at {}", path.display());
    println!("screenshot: {}", path.display());
}

/// One sample's labels and value.
type Sample = (BTreeMap<String, String>, f64);

/// `/metrics` parsed by Python's prometheus-client: sample name → [(labels, value)].
fn parsed_by_prometheus_client(body: &str) -> BTreeMap<String, Vec<Sample>> {
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.setdefault(s.name, []).append([s.labels, s.value])
print(json.dumps(out))
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("python3: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        stdin
            .write_all(body.as_bytes())
            .unwrap_or_else(|e| panic!("to python3: {e}"));
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("python3: {e}"));
    assert!(out.status.success(), "prometheus-client refused /metrics");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("parser output: {e}"))
}

#[test]
fn five_hundred_devices_from_three_collectors_all_appear_with_their_state() {
    let mosquitto = Broker::start();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let (http, listener) = (free_port(), free_port());
    let (text, devices) = site(dir.path(), http, mosquitto.port, listener);
    assert_eq!(devices.len(), 500);
    let config = write_config(dir.path(), "site.toml", &text);
    let mut daemon = Daemon::start(&config, dir.path(), &[]);
    assert!(
        listening_within(http, WAIT),
        "no http:\n{}",
        daemon.log_text()
    );
    assert!(
        listening_within(listener, WAIT),
        "no listener:\n{}",
        daemon.log_text()
    );
    let db = dir.path().join("data/cemsd.db");

    // Every logger uploads one minute and gets its 9014 once it is committed; each stays
    // connected, online, until the metrics are read.
    let mut connections = Vec::new();
    for i in 0..LOGGER_STACKS * PER_STACK {
        let mut logger = TestLogger::on_port(listener);
        logger.send(&plant_minute(&logger_mn(i), PW, 0));
        let ack = logger.receive(Duration::from_secs(20));
        let ack = ack.unwrap_or_else(|| panic!("no ack for logger {i}:\n{}", daemon.log_text()));
        assert_eq!(ack.cn, CommandCode::DataResponse);
        connections.push(logger);
    }
    // Every MQTT device publishes one reading; publish until the source has subscribed.
    let messages: Vec<(String, Vec<u8>)> = (0..MQTT_STACKS * PER_STACK)
        .flat_map(|i| {
            numbered_json(
                &format!("scale/{}", mqtt_id(i)),
                &mqtt_id(i),
                0..1,
                now_ms() - 5_000,
                1,
            )
        })
        .collect();
    let mqtt_ids: BTreeSet<String> = (0..MQTT_STACKS * PER_STACK).map(mqtt_id).collect();
    let modbus_ids: BTreeSet<String> = (0..MODBUS_STACKS * PER_STACK).map(modbus_id).collect();
    assert!(
        eventually(WAIT, || {
            let stored = devices_with(&db, RecordKind::Reading);
            let missing =
                mqtt_ids.difference(&stored).count() + modbus_ids.difference(&stored).count();
            if missing > 0 {
                publish(mosquitto.port, &messages);
            }
            missing == 0
        }),
        "not every MQTT and Modbus device committed a reading:\n{}",
        daemon.log_text()
    );

    // A payload that is not JSON is refused to the dead letters, and the page lists it.
    let garbage = (format!("scale/{}", mqtt_id(0)), b"{\"device\": ".to_vec());
    assert!(
        eventually(WAIT, || {
            let refused = open(&db)
                .dead_letters(10)
                .unwrap_or_else(|e| panic!("dead letters: {e}"));
            if refused.is_empty() {
                publish(mosquitto.port, std::slice::from_ref(&garbage));
            }
            !refused.is_empty()
        }),
        "the malformed payload was not dead-lettered:\n{}",
        daemon.log_text()
    );

    // The overview lists all 500, each under its stack, each connected.
    let url = format!("http://127.0.0.1:{http}/");
    let overview = chromium(&format!("{url}?lang=zh"), "--dump-dom");
    let dead_letters = overview
        .split("<section id=\"dead-letters\">")
        .nth(1)
        .unwrap_or_else(|| panic!("no dead-letter panel shown:\n{overview}"));
    let dead_letters = &dead_letters[..dead_letters.find("</section>").unwrap_or(0)];
    assert!(
        dead_letters.contains("死信")
            && dead_letters.contains("class=\"dead-letter-row\"")
            && dead_letters.contains("mqtt:bureau")
            && dead_letters.contains("{\"device\": "),
        "the refused payload, its source and the panel's Chinese title:\n{dead_letters}"
    );
    let shown: BTreeSet<(String, String, String)> = listed(&overview).into_iter().collect();
    let expected: BTreeSet<(String, String, String)> = devices
        .iter()
        .map(|(id, stack, _)| (id.clone(), stack.clone(), "connected".to_string()))
        .collect();
    assert_eq!(shown.len(), 500, "rows listed");
    assert_eq!(
        expected.difference(&shown).take(10).collect::<Vec<_>>(),
        Vec::<&(String, String, String)>::new(),
        "devices missing or not connected on the page"
    );
    assert!(
        overview.contains("500/500 台设备在线"),
        "zh-CN summary:\n{}",
        &overview[..overview.len().min(4000)]
    );
    assert!(
        overview.contains("class=\"stack-row\" data-stack=\"logger-48\""),
        "a stack row per stack"
    );
    // One stack opens with its readings and charts, never all 100 stacks' at once.
    let plant = chromium(&format!("{url}?lang=en#stack=plant-00"), "--dump-dom");
    assert!(
        plant.matches("class=\"reading\"").count() >= PER_STACK,
        "readings of plant-00:\n{plant}"
    );
    assert!(
        plant.contains("data-key=\"plant-00/an-00/so2\""),
        "no SO2 chart:\n{plant}"
    );
    assert!(plant.contains("class=\"mean"), "no chart drawn:\n{plant}");
    assert!(
        !plant.contains("data-stack=\"plant-01\" data-device"),
        "another stack's readings"
    );
    // A logger's uploaded minute shows as its latest value (31.25 mg/m3 SO2, measured).
    let logger = chromium(&format!("{url}?lang=en#stack=logger-00"), "--dump-dom");
    let row = logger
        .split("<tr class=\"reading\" data-stack=\"logger-00\" data-device=\"SCALE0000000000000000000\" data-channel=\"a21026\"")
        .nth(1)
        .unwrap_or_else(|| panic!("no SO2 row of the first logger:\n{logger}"));
    assert!(
        row[..row.find("</tr>").unwrap_or(0)].contains(">31.25<"),
        "{row}"
    );

    for (lang, name) in [("zh", "zh-CN"), ("en", "en")] {
        screenshot(
            &format!("{url}?lang={lang}"),
            &format!("status-500-overview-{name}.png"),
        );
        screenshot(
            &format!("{url}?lang={lang}#stack=plant-00"),
            &format!("status-500-stack-{name}.png"),
        );
    }

    // /metrics and /health know the same 500 devices.
    let (code, body) = http_get(http, "/metrics").unwrap_or_else(|| panic!("GET /metrics"));
    assert_eq!(code, 200);
    let metrics = parsed_by_prometheus_client(&body);
    let info: BTreeSet<(String, String)> = metrics
        .get("cemsd_device_info")
        .map(|samples| {
            samples
                .iter()
                .map(|(l, _)| (l["device"].clone(), l["stack"].clone()))
                .collect()
        })
        .unwrap_or_default();
    let bound: BTreeSet<(String, String)> = devices
        .iter()
        .map(|(d, s, _)| (d.clone(), s.clone()))
        .collect();
    assert_eq!(
        info, bound,
        "cemsd_device_info names every device with its stack"
    );
    let connected = metrics
        .get("cemsd_device_connected")
        .cloned()
        .unwrap_or_default();
    for (device, _, source) in [&devices[0], &devices[10], &devices[499]] {
        let value = connected
            .iter()
            .find(|(l, _)| l["device"] == *device)
            .map(|(_, v)| *v);
        assert_eq!(
            value,
            Some(1.0),
            "{source} device {device} connected in /metrics"
        );
    }
    // What the scripted run did, family by family: 245 loggers each connected once (after
    // the probe that waited for the port) and sent one minute upload; the MQTT source is connected; logger 0's newest data is its
    // minute 2026-01-01 12:00 +08:00 = 1767240000 s.
    let value = |name: &str, labels: &[(&str, &str)]| {
        metrics.get(name).and_then(|samples| {
            samples
                .iter()
                .find(|(l, _)| {
                    labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
                })
                .map(|(_, v)| *v)
        })
    };
    let loggers = (LOGGER_STACKS * PER_STACK) as f64;
    assert_eq!(
        value("cemsd_hj212_listener_packets_total", &[("cn", "2051")]),
        Some(loggers)
    );
    assert_eq!(
        value(
            "cemsd_hj212_listener_connections_total",
            &[("outcome", "accepted")]
        ),
        Some(loggers + 1.0)
    );
    assert_eq!(
        value("cemsd_hj212_listener_loggers_online", &[]),
        Some(loggers)
    );
    drop(connections);
    assert!(
        eventually(WAIT, || metric(
            &scrape(http),
            "cemsd_hj212_listener_loggers_online",
            &[]
        ) == Some(0.0)),
        "loggers that hung up are no longer online"
    );
    assert_eq!(
        value("cemsd_mqtt_connected", &[("source", "bureau")]),
        Some(1.0)
    );
    assert!(
        value("cemsd_mqtt_readings_total", &[("source", "bureau")])
            .is_some_and(|n| n >= (MQTT_STACKS * PER_STACK) as f64),
        "every MQTT device's reading counted"
    );
    assert_eq!(
        value(
            "cemsd_device_last_data_timestamp_seconds",
            &[("device", &logger_mn(0))]
        ),
        Some(1_767_240_000.0)
    );
    assert!(value("cemsd_build_info", &[]).is_some(), "build info");
    assert!(
        value("process_resident_memory_bytes", &[]).is_some_and(|b| b > 0.0),
        "process metrics"
    );
    let (code, health) = http_get(http, "/health").unwrap_or_else(|| panic!("GET /health"));
    assert_eq!(code, 200, "{health}");
    let health: serde_json::Value = serde_json::from_str(&health).unwrap_or_else(|e| panic!("{e}"));
    let in_health = health["devices"].as_array().map_or(0, Vec::len);
    assert_eq!(in_health, 500, "/health lists every device");

    daemon.stop(Duration::from_secs(30));
}
