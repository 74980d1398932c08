//! Ordinary field faults through a real mosquitto and `cemsd run` into the store: a reading
//! stamped in 2090 is refused as `future` and holds nothing back, a message over 1 MiB is
//! refused as `too_large` and the messages after it are stored, and a message the client
//! cannot read at all (over `max_packet_size`) makes `/health` fail (503) naming the source and why.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cemsd::store::{Query, Store, StoreOptions};
use support::daemon::Daemon;
use support::http::{http_get, metric, scrape};
use support::mqtt::stored_ids;
use support::peers::mosquitto::{publish, Broker};
use support::ports::free_port;
use support::time::{eventually, now_ms};

/// 2090-01-01T00:00:00Z
const Y2090_MS: i64 = 3_786_912_000_000;

/// A site storing JSON readings of `d1` published under `plant/#`; `extra` goes into the
/// `[[mqtt]]` table.
fn site(dir: &Path, broker: u16, http: u16, extra: &str) -> PathBuf {
    let text = format!(
        r#"[site]
id = "mqtt-faults"

[store]
path = "data/cemsd.db"

[http]
listen = "127.0.0.1:{http}"

[[stack]]
id = "unit1"
source_type = "coal_boiler"

[[mqtt]]
id = "plant"
url = "mqtt://127.0.0.1:{broker}"
client_id = "cemsd-faults"
keep_alive = "5s"
reconnect_min = "100ms"
reconnect_max = "500ms"
{extra}

[[mqtt.subscribe]]
filter = "plant/#"
qos = 1
format = "json"
time_format = "unix_ms"

[[mqtt.device]]
id = "d1"
stack = "unit1"
interval = "1s"
channels = {{ SO2 = {{ unit = "mg/m3" }} }}
"#
    );
    let path = dir.join("site.toml");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write config: {e}"));
    path
}

fn reading(value: u64, time_ms: i64) -> (String, Vec<u8>) {
    let payload = format!(r#"{{"device":"d1","channel":"SO2","value":{value},"time":{time_ms}}}"#);
    ("plant/a".to_string(), payload.into_bytes())
}

fn dead_letters(db: &Path) -> Vec<cemsd::store::DeadLetter> {
    Store::open(db, StoreOptions::default())
        .and_then(|s| s.dead_letters(100))
        .unwrap_or_default()
}

/// Starts cemsd and waits until its subscription exists (its first connection).
fn start(config: &Path, dir: &Path, http: u16) -> Daemon {
    let cemsd = Daemon::start_logged(config, &dir.join("cemsd.log"), &[]);
    assert!(
        eventually(Duration::from_secs(20), || http_get(http, "/health")
            .is_some_and(|(_, body)| body.contains(r#""connected":true"#))),
        "cemsd never connected:\n{}",
        std::fs::read_to_string(dir.join("cemsd.log")).unwrap_or_default()
    );
    cemsd
}

#[test]
fn a_reading_stamped_2090_is_dead_lettered_future_and_the_next_ones_are_stored() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let http = free_port();
    let config = site(dir.path(), broker.port, http, "");
    let db = dir.path().join("data/cemsd.db");
    let mut cemsd = start(&config, dir.path(), http);

    let base = now_ms() - 5_000;
    let mut messages = vec![reading(0, base), reading(1, Y2090_MS)];
    messages.extend((2..6).map(|i| reading(i, base + i as i64 * 1_000)));
    publish(broker.port, &messages);

    let stored_all = eventually(Duration::from_secs(30), || stored_ids(&db, "d1").len() >= 5);
    // a second, so a silence gap opened by the refused reading would have been written
    std::thread::sleep(Duration::from_millis(2_500));
    cemsd.signal("TERM");
    let _ = cemsd.wait_exit(Duration::from_secs(30));
    let log = std::fs::read_to_string(dir.path().join("cemsd.log")).unwrap_or_default();
    assert!(
        stored_all,
        "the readings after 2090 were not stored:\n{log}"
    );

    let mut ids = stored_ids(&db, "d1");
    ids.sort_unstable();
    assert_eq!(ids, [0, 2, 3, 4, 5], "{log}");
    let letters = dead_letters(&db);
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].source, "mqtt:plant");
    assert!(
        letters[0].reason.starts_with("future: ")
            && letters[0].reason.contains("d1/SO2 at 2090-01-01")
            && letters[0].reason.ends_with("(topic plant/a)"),
        "{}",
        letters[0].reason
    );
    assert_eq!(letters[0].payload, messages[1].1);
    // nothing the store holds reaches 2090: no gap or period was opened by it
    let store = Store::open(&db, StoreOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    for row in store
        .query(&Query::default())
        .unwrap_or_else(|e| panic!("{e}"))
    {
        let r = row.record;
        assert!(
            r.ts.0 < Y2090_MS / 2 && r.end.is_none_or(|e| e.0 < Y2090_MS / 2),
            "{:?} of {}/{} reaches 2090: {} .. {:?}",
            r.kind,
            r.device,
            r.channel,
            r.ts,
            r.end
        );
    }
}

#[test]
fn a_message_over_1_mib_is_dead_lettered_too_large_and_the_next_ones_are_stored() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let http = free_port();
    let config = site(dir.path(), broker.port, http, "");
    let db = dir.path().join("data/cemsd.db");
    let mut cemsd = start(&config, dir.path(), http);

    let base = now_ms() - 5_000;
    publish(broker.port, &[reading(0, base)]);
    // a valid JSON reading padded past the default max_payload of 1 MiB, sent by another
    // client (mosquitto_pub), as a logger with a debug dump would
    let big = format!(
        r#"{{"device":"d1","channel":"SO2","value":1,"time":{},"dump":"{}"}}"#,
        base + 1_000,
        "x".repeat(1_100_000)
    );
    let big_path = dir.path().join("big.json");
    std::fs::write(&big_path, &big).unwrap_or_else(|e| panic!("{e}"));
    let status = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string()])
        .args(["-q", "1", "-t", "plant/a", "-f"])
        .arg(&big_path)
        .status()
        .unwrap_or_else(|e| panic!("mosquitto_pub (apt-get install mosquitto-clients): {e}"));
    assert!(status.success(), "mosquitto_pub failed");
    let after: Vec<_> = (2..6)
        .map(|i| reading(i, base + i as i64 * 1_000))
        .collect();
    publish(broker.port, &after);

    let stored_all = eventually(Duration::from_secs(30), || stored_ids(&db, "d1").len() >= 5);
    let scraped = scrape(http);
    let (_, health) = http_get(http, "/health").unwrap_or_else(|| panic!("GET /health"));
    cemsd.signal("TERM");
    let _ = cemsd.wait_exit(Duration::from_secs(30));
    let log = std::fs::read_to_string(dir.path().join("cemsd.log")).unwrap_or_default();
    assert!(
        stored_all,
        "the messages after the big one were not stored:\n{log}"
    );

    let mut ids = stored_ids(&db, "d1");
    ids.sort_unstable();
    assert_eq!(ids, [0, 2, 3, 4, 5], "{log}");
    let letters = dead_letters(&db);
    assert_eq!(letters.len(), 1, "{letters:?}");
    let reason = &letters[0].reason;
    assert!(
        reason.starts_with("too_large: ")
            && reason.contains(&format!("{} bytes", big.len()))
            && reason.ends_with("(topic plant/a)"),
        "{reason}"
    );
    assert_eq!(letters[0].payload, big.as_bytes()[..1024].to_vec());
    let too_large = [("source", "plant"), ("reason", "too_large")];
    assert_eq!(
        metric(&scraped, "cemsd_mqtt_dead_letters_total", &too_large),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &scraped,
            "cemsd_mqtt_reconnects_total",
            &[("source", "plant")]
        ),
        Some(0.0),
        "the big message cost the connection:\n{log}"
    );
    assert!(health.contains(r#""status":"ok""#), "{health}");
}

#[test]
fn a_source_that_cannot_take_its_next_message_makes_health_fail_naming_it() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let http = free_port();
    // a packet limit below what the broker accepts: the message cannot even be read
    let config = site(
        dir.path(),
        broker.port,
        http,
        "max_packet_size = \"64KiB\"\nmax_payload = \"32KiB\"\nstall_after = \"5s\"",
    );
    let db = dir.path().join("data/cemsd.db");
    let mut cemsd = start(&config, dir.path(), http);

    let base = now_ms() - 5_000;
    let big = format!(
        r#"{{"device":"d1","channel":"SO2","value":0,"time":{base},"dump":"{}"}}"#,
        "x".repeat(100_000)
    );
    let mut messages = vec![("plant/a".to_string(), big.into_bytes())];
    messages.extend((1..4).map(|i| reading(i, base + i as i64 * 1_000)));
    publish(broker.port, &messages);

    let mut last = String::new();
    let mut code = 0;
    let failing = eventually(Duration::from_secs(30), || {
        (code, last) = http_get(http, "/health").unwrap_or_default();
        last.contains(r#""status":"failing""#)
    });
    let scraped = scrape(http);
    cemsd.signal("TERM");
    let _ = cemsd.wait_exit(Duration::from_secs(30));
    let log = std::fs::read_to_string(dir.path().join("cemsd.log")).unwrap_or_default();
    assert!(failing, "/health stayed {last}\n{log}");
    assert_eq!(
        code, 503,
        "a stalled source is a failure a monitor sees by the code"
    );
    let health: serde_json::Value =
        serde_json::from_str(&last).unwrap_or_else(|e| panic!("{e}: {last}"));
    assert_eq!(health["failing"][0]["component"], "mqtt:plant", "{last}");
    let reasons = health["reasons"].to_string();
    assert!(
        reasons.contains("mqtt source plant stalled: lost the connection")
            && reasons.contains("without taking a message"),
        "{reasons}"
    );
    assert!(
        health["mqtt"][0]["stalled"].is_string(),
        "{}",
        health["mqtt"]
    );
    assert_eq!(
        metric(&scraped, "cemsd_mqtt_stalled", &[("source", "plant")]),
        Some(1.0)
    );
    let reconnects = metric(
        &scraped,
        "cemsd_mqtt_reconnects_total",
        &[("source", "plant")],
    );
    assert!(reconnects.unwrap_or(0.0) >= 2.0, "{reconnects:?}");
    // what it could not read is not in the store, and neither is anything behind it
    assert!(stored_ids(&db, "d1").is_empty());
}
