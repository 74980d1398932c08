//! MQTT messages that identify themselves, the site that stores them, and the check that
//! each arrived exactly once.

use std::path::{Path, PathBuf};

use super::daemon::write_config;
use super::site::{head, stack};
use super::store::{readings, try_open};

/// JSON messages on `topic`, message i carrying value i and time `base_ms + i × step_ms`, so
/// both identify it in the store.
pub fn numbered_json(
    topic: &str,
    device: &str,
    range: std::ops::Range<u64>,
    base_ms: i64,
    step_ms: i64,
) -> Vec<(String, Vec<u8>)> {
    range
        .map(|i| {
            let payload = format!(
                r#"{{"device":"{device}","channel":"SO2","value":{i},"time":{}}}"#,
                base_ms + i as i64 * step_ms
            );
            (topic.to_string(), payload.into_bytes())
        })
        .collect()
}

/// The site config of a cemsd that stores JSON readings of device `d1` published under
/// `filter` on the broker at `port`.
pub fn json_site(dir: &Path, port: u16, client_id: &str, filter: &str) -> PathBuf {
    let text = head("mqtt-test", "", "data/cemsd.db")
        + &stack("")
        + &broker(
            "plant",
            &format!("mqtt://127.0.0.1:{port}"),
            client_id,
            "keep_alive = \"5s\"\nreconnect_min = \"100ms\"\nreconnect_max = \"1s\"\n",
        )
        + &json_readings(filter, "qos = 1\n");
    write_config(dir, "site.toml", &text)
}

/// An `[[mqtt]]` source `id` connecting to `url` as `client_id`, with `keys`.
pub fn broker(id: &str, url: &str, client_id: &str, keys: &str) -> String {
    format!(
        r#"
[[mqtt]]
id = "{id}"
url = "{url}"
client_id = "{client_id}"
{keys}"#
    )
}

/// A `[[mqtt.subscribe]]` of JSON readings under `filter` (with `keys`, e.g. a QoS), and
/// the device "d1" of stack "unit1" whose SO2 they carry.
pub fn json_readings(filter: &str, keys: &str) -> String {
    format!(
        r#"
[[mqtt.subscribe]]
filter = "{filter}"
{keys}format = "json"
time_format = "unix_ms"

[[mqtt.device]]
id = "d1"
stack = "unit1"
interval = "1s"
channels = {{ SO2 = {{ unit = "mg/m3" }} }}
"#
    )
}

/// Raw values of the readings of `device`, which the tests use as message ids.
pub fn stored_ids(db: &Path, device: &str) -> Vec<u64> {
    let Some(store) = try_open(db) else {
        return Vec::new();
    };
    readings(&store, device)
        .iter()
        .filter_map(|s| s.record.raw)
        .map(|v| v as u64)
        .collect()
}

/// Ids that are missing from or repeated in `ids`, against 0..n.
pub fn missing_and_repeated(ids: &[u64], n: u64) -> (Vec<u64>, Vec<u64>) {
    let mut count = vec![0u32; n as usize];
    let mut repeated = Vec::new();
    for &id in ids {
        match count.get_mut(id as usize) {
            Some(c) => {
                *c += 1;
                if *c == 2 {
                    repeated.push(id);
                }
            }
            None => repeated.push(id),
        }
    }
    let missing = (0..n).filter(|&i| count[i as usize] == 0).collect();
    (missing, repeated)
}
