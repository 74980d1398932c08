//! MQTT scale-out at the bureau: two `cemsd run` instances split the stacks of one broker
//! with `[mqtt.partition]`, each subscribing to its own devices' topics, beside a single
//! instance that takes everything. Every device's minute and hour records must equal the
//! single instance's, and come from one instance only: a stack's devices stay together
//! (stack plant-1 has an SO2 and an O2 analyser, and its corrected SO2 needs both).

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cemsd::model::{Quantity, Timestamp};
use cemsd::store::{Query, Record, RecordKind};
use support::daemon::{write_config, Daemon};
use support::mqtt::broker;
use support::site::head;
use support::store::{open, wait_for};
use support::time::{eventually, now_ms};
use support::{publish, Broker};

const HOUR_MS: i64 = 3_600_000;
const STEP_MS: i64 = 10_000;
/// 62 minutes of readings every 10 s: the hour and the first minutes of the next, which
/// close it.
const READINGS: i64 = 62 * 6;
/// (device, stack, channel, unit) of every publisher.
const DEVICES: [(&str, &str, &str, &str); 5] = [
    ("d1", "plant-1", "SO2", "mg/m3"),
    ("o1", "plant-1", "O2", "%vol"),
    ("d2", "plant-2", "SO2", "mg/m3"),
    ("d3", "plant-3", "SO2", "mg/m3"),
    ("d4", "plant-4", "SO2", "mg/m3"),
];

/// A bureau site taking the five devices from the broker at `port` as `client_id`, with
/// `partition` keys (none: the single instance).
fn site(dir: &Path, port: u16, client_id: &str, partition: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir: {e}"));
    let mut text = head("bureau", "", "data/cemsd.db");
    for stack in ["plant-1", "plant-2", "plant-3", "plant-4"] {
        text += &format!("\n[[stack]]\nid = \"{stack}\"\nsource_type = \"coal_boiler\"\n");
    }
    text += &broker(
        "central",
        &format!("mqtt://127.0.0.1:{port}"),
        client_id,
        "reconnect_min = \"100ms\"\nreconnect_max = \"1s\"\n",
    );
    text += partition;
    text += r#"
[[mqtt.subscribe]]
filter = "plant/+/json"
topic = "plant/{device}/json"
qos = 1
format = "json"
time_format = "unix_ms"
"#;
    for (device, stack, channel, unit) in DEVICES {
        text += &format!(
            "\n[[mqtt.device]]\nid = \"{device}\"\nstack = \"{stack}\"\ninterval = \"10s\"\nchannels = {{ {channel} = {{ unit = \"{unit}\" }} }}\n"
        );
    }
    write_config(dir, "bureau.toml", &text)
}

/// Reading i of a device: SO2 varying around 20 + 5 × its number, O2 around 6 %.
fn messages(hour: i64) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for i in 0..READINGS {
        for (n, (device, _, channel, _)) in DEVICES.iter().enumerate() {
            let value = if *channel == "O2" {
                6.0 + (i % 5) as f64 * 0.2
            } else {
                20.0 + 5.0 * n as f64 + (i % 7) as f64
            };
            let payload = format!(
                r#"{{"device":"{device}","channel":"{channel}","value":{value},"time":{}}}"#,
                hour + i * STEP_MS
            );
            out.push((format!("plant/{device}/json"), payload.into_bytes()));
        }
    }
    out
}

/// The minute and hour records of `stack` in the store at `db`, in time order.
fn periods(db: &Path, stack: &str) -> Vec<Record> {
    let store = open(db);
    let mut rows = Vec::new();
    for kind in [RecordKind::Minute, RecordKind::Hour] {
        rows.extend(
            store
                .query(&Query {
                    kind: Some(kind),
                    stack: Some(stack.to_string()),
                    ..Query::default()
                })
                .unwrap_or_else(|e| panic!("query: {e}"))
                .into_iter()
                .map(|s| s.record),
        );
    }
    rows.sort_by(|a, b| {
        let name = |r: &Record| r.quantity.map(|q| q.name());
        (a.kind.as_str(), name(a), a.ts.0, a.revision).cmp(&(
            b.kind.as_str(),
            name(b),
            b.ts.0,
            b.revision,
        ))
    });
    rows
}

/// Whether the store at `db` holds, for every channel of `stacks`, the closed hour and the
/// last minute (closed by the clock once nothing more comes): all there will be.
fn hours_closed(db: &Path, stacks: &[&str], hour: i64) -> bool {
    let last_minute = hour + 61 * 60_000;
    wait_for(db, |store| {
        let closed = |kind, ts: i64, count: u32| {
            let rows: BTreeMap<(String, String), u32> = store
                .query(&Query {
                    kind: Some(kind),
                    from: Some(Timestamp(ts)),
                    to: Some(Timestamp(ts + 1)),
                    ..Query::default()
                })
                .unwrap_or_default()
                .into_iter()
                .map(|s| {
                    let r = s.record;
                    let quantity = r.quantity.map(|q| q.name().to_lowercase());
                    (
                        (r.stack.to_string(), quantity.unwrap_or_default()),
                        r.count.unwrap_or(0),
                    )
                })
                .collect();
            DEVICES
                .iter()
                .filter(|(_, stack, ..)| stacks.contains(stack))
                .all(|(_, stack, channel, _)| {
                    rows.get(&(stack.to_string(), channel.to_lowercase())) == Some(&count)
                })
        };
        closed(RecordKind::Hour, hour, 60) && closed(RecordKind::Minute, last_minute, 6)
    })
}

/// Rows per (kind, stack, channel), for failure messages.
fn summary(db: &Path) -> BTreeMap<(String, String, String), usize> {
    let mut out = BTreeMap::new();
    for s in support::store::all(db) {
        let r = s.record;
        *out.entry((
            r.kind.as_str().to_string(),
            r.stack.to_string(),
            r.quantity
                .map(|q| q.name())
                .unwrap_or(&r.channel)
                .to_string(),
        ))
        .or_insert(0) += 1;
    }
    out
}

#[test]
fn two_partitioned_instances_give_every_device_the_records_of_a_single_one() {
    let mqtt = Broker::start();
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let dirs = ["single", "instance-1", "instance-2"].map(|d| root.path().join(d));
    let partition = |k| format!("\n[mqtt.partition]\ninstance = {k}\ninstances = 2\n");
    let configs = [
        site(&dirs[0], mqtt.port, "cemsd-single", ""),
        site(&dirs[1], mqtt.port, "cemsd-bureau-1", &partition(1)),
        site(&dirs[2], mqtt.port, "cemsd-bureau-2", &partition(2)),
    ];
    let daemons: Vec<Daemon> = configs
        .iter()
        .zip(&dirs)
        .map(|(config, dir)| Daemon::start(config, dir, &[]))
        .collect();
    for daemon in &daemons {
        assert!(
            eventually(Duration::from_secs(30), || daemon
                .log_text()
                .contains("connected")),
            "no connection to the broker:\n{}",
            daemon.log_text()
        );
    }
    // the subscriptions follow the connection
    std::thread::sleep(Duration::from_millis(1500));

    // an hour starting three hours ago (whole hours in UTC are whole hours at UTC+8)
    let hour = (now_ms() - 3 * HOUR_MS).div_euclid(HOUR_MS) * HOUR_MS;
    publish(mqtt.port, &messages(hour));

    let db = |i: usize| dirs[i].join("data/cemsd.db");
    let stacks = ["plant-1", "plant-2", "plant-3", "plant-4"];
    let log = |i: usize| daemons[i].log_text();
    assert!(
        hours_closed(&db(0), &stacks, hour),
        "the single instance did not close every hour: {:?}\n{}",
        summary(&db(0)),
        log(0)
    );
    // Stacks plant-1 and plant-2 are instance 2's, plant-3 and plant-4 instance 1's (the
    // rendezvous owners, fixed by the stack ids).
    let owned = [["plant-3", "plant-4"], ["plant-1", "plant-2"]];
    for (i, stacks) in owned.iter().enumerate() {
        assert!(
            hours_closed(&db(i + 1), stacks, hour),
            "instance {} did not close the hours of {stacks:?}: {:?}\n{}",
            i + 1,
            summary(&db(i + 1)),
            log(i + 1)
        );
    }
    for stack in stacks {
        let single = periods(&db(0), stack);
        let by_instance = [periods(&db(1), stack), periods(&db(2), stack)];
        let owner = owned
            .iter()
            .position(|stacks| stacks.contains(&stack))
            .unwrap_or_else(|| panic!("{stack} has no owner"));
        assert!(
            single.len() > 62 + 1,
            "{stack}: {} periods in the single instance",
            single.len()
        );
        assert_eq!(
            by_instance[owner],
            single,
            "{stack}: instance {} differs from the single instance",
            owner + 1
        );
        assert_eq!(
            by_instance[1 - owner],
            vec![],
            "{stack} was also handled by instance {}",
            2 - owner
        );
    }
    // the corrected SO2 of plant-1 needed the O2 of another device of its stack
    let corrected: Vec<Option<f64>> = periods(&db(2), "plant-1")
        .iter()
        .filter(|r| r.kind == RecordKind::Hour && r.quantity == Some(Quantity::SO2))
        .map(|r| r.corrected)
        .collect();
    assert!(
        corrected.first().is_some_and(|c| c.is_some()),
        "no corrected SO2 hour on plant-1: {corrected:?}"
    );
    for mut daemon in daemons {
        daemon.stop(Duration::from_secs(20));
    }
}
