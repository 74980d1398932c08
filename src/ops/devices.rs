//! Every device the daemon knows of, whichever collector feeds it: polled `[[device]]`s,
//! `[[mqtt.device]]` bindings, `[[hj212_listener.device]]` loggers (by MN), and any device
//! the live model has seen data from without a binding (a payload naming its own stack).
//! The status page, `/health` and `/metrics` all list devices from here, so none of them
//! can miss a device the others show.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Position, SiteConfig};
use crate::model::Timestamp;
use crate::pipeline::live::{DeviceLive, MODBUS};

#[derive(Debug, Clone, PartialEq)]
pub struct KnownDevice {
    pub id: String,
    pub stack: String,
    /// `modbus`, `mqtt`, `hj212`; the live model's word once data arrived, else the
    /// config's.
    pub source: &'static str,
    /// The register map of a polled device.
    pub profile: Option<String>,
    /// Endpoint or serial bus of a polled device.
    pub address: Option<String>,
    pub position: Position,
    /// How often a bound MQTT device publishes each channel, or an HJ 212 logger uploads,
    /// as configured.
    pub interval: Option<Duration>,
}

/// [`KnownDevice::source`] of an HJ 212 data logger.
pub const HJ212: &str = "hj212";

/// Publishing intervals without a delivery after which a publishing device counts as down…
pub const SILENT_INTERVALS: u32 = 3;
/// …but never before a minute (the MQTT sources' default `stall_after`), so a fast
/// publisher is not called down over a broker's hiccup.
pub const MIN_SILENCE: Duration = Duration::from_secs(60);

/// Marks down, with the reason, every device that delivers at a known interval and has
/// delivered nothing for [`SILENT_INTERVALS`] of them (at least [`MIN_SILENCE`]) by `now`:
/// its own link is not watched, so silence is how it shows it is gone. The interval is the
/// configured one, else, for an HJ 212 logger, the one learned from its uploads; a device
/// of neither is never called down for silence. Polled devices keep what their polls said.
pub fn judge_silence(
    known: &[KnownDevice],
    live: &mut BTreeMap<Arc<str>, DeviceLive>,
    now: Timestamp,
) {
    for device in known {
        let Some(state) = live.get_mut(device.id.as_str()) else {
            continue;
        };
        let learned = (device.source == HJ212).then(|| state.cadence.interval());
        let (Some(interval), Some(delivered)) =
            (device.interval.or(learned.flatten()), state.last_delivery)
        else {
            continue;
        };
        let silent = Duration::from_millis(u64::try_from(now.0 - delivered.0).unwrap_or(0));
        if silent > (interval * SILENT_INTERVALS).max(MIN_SILENCE) {
            let verb = if device.source == HJ212 {
                "uploads"
            } else {
                "publishes"
            };
            state.connected = false;
            state.last_error = Some(format!(
                "no data for {} ({verb} every {})",
                humantime::format_duration(Duration::from_secs(silent.as_secs())),
                humantime::format_duration(interval)
            ));
        }
    }
}

/// Configured devices in config order, then those only the live model knows, by id.
pub fn known_devices(
    config: &SiteConfig,
    live: &BTreeMap<Arc<str>, DeviceLive>,
) -> Vec<KnownDevice> {
    let polled = config.devices.iter().map(|d| KnownDevice {
        id: d.id.clone(),
        stack: d.stack.clone(),
        source: MODBUS,
        profile: Some(d.profile.clone()),
        address: d.address.clone().or_else(|| d.bus.clone()),
        position: d.position,
        interval: None,
    });
    let published = config.mqtt.iter().flat_map(|m| {
        m.devices.iter().map(|d| KnownDevice {
            id: d.id.clone(),
            stack: d.stack.clone(),
            source: "mqtt",
            profile: None,
            address: None,
            position: d.position,
            interval: Some(d.interval.0),
        })
    });
    let uploading = config.hj212_listener.iter().flat_map(|l| {
        l.all_devices().map(|d| KnownDevice {
            id: d.mn.clone(),
            stack: d.stack.clone(),
            source: HJ212,
            profile: None,
            address: None,
            position: Position::Outlet,
            interval: d.upload_interval.map(|i| i.0),
        })
    });
    let mut seen = BTreeSet::new();
    let mut known: Vec<KnownDevice> = polled
        .chain(published)
        .chain(uploading)
        .filter(|d| seen.insert(d.id.clone()))
        .collect();
    for device in &mut known {
        if let Some(source) = live.get(device.id.as_str()).and_then(|d| d.source) {
            device.source = source;
        }
    }
    let unbound = live
        .iter()
        .filter(|(id, _)| !seen.contains(&***id))
        .map(|(id, d)| KnownDevice {
            id: id.to_string(),
            stack: d.stack.as_deref().unwrap_or_default().to_string(),
            source: d.source.unwrap_or("mqtt"),
            profile: None,
            address: None,
            position: Position::Outlet,
            interval: None,
        });
    known.extend(unbound);
    known
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Record, RecordKind};

    const CONFIG: &str = r#"
[site]
id = "bureau"

[[stack]]
id = "u1"

[[device]]
id = "so2"
profile = "thermo-43i"
stack = "u1"
transport = "tcp"
address = "127.0.0.1:1502"

[[mqtt]]
id = "broker"
url = "mqtt://127.0.0.1:1883"
client_id = "cemsd"

[[mqtt.subscribe]]
filter = "cems/#"
format = "json"

[[mqtt.device]]
id = "gateway"
stack = "u1"
interval = "10s"
channels = { SO2 = { unit = "mg/m3" } }
"#;

    #[test]
    fn every_collector_s_devices_are_listed_once_with_their_source_and_stack() {
        let config = match crate::config::parse(std::path::Path::new("site.toml"), CONFIG) {
            Ok(l) => l.config,
            Err(e) => panic!("test config: {e}"),
        };
        let live = crate::pipeline::live::Live::new();
        let gateway: Arc<str> = Arc::from("gateway");
        let logger: Arc<str> = Arc::from("010000A8900016F000169DC1");
        live.delivered(
            "mqtt",
            Timestamp(50_000),
            [(&gateway, RecordKind::Reading, Timestamp(49_000))].into_iter(),
        );
        live.delivered(
            "hj212",
            Timestamp(50_000),
            [(&logger, RecordKind::Minute, Timestamp(0))].into_iter(),
        );
        // The logger's upload names its stack; nothing in the config binds it.
        let mut upload = Record::new(
            RecordKind::Minute,
            Timestamp(60_000),
            "u9".into(),
            logger.clone(),
            "so2".into(),
        );
        upload.unit = Some(crate::model::Unit::MgPerM3);
        live.record_uploads(&[upload]);
        let known = known_devices(&config, &live.snapshot());
        let rows: Vec<(&str, &str, &str)> = known
            .iter()
            .map(|d| (d.id.as_str(), d.stack.as_str(), d.source))
            .collect();
        assert_eq!(
            rows,
            vec![
                ("so2", "u1", "modbus"),
                ("gateway", "u1", "mqtt"),
                ("010000A8900016F000169DC1", "u9", "hj212"),
            ]
        );
    }

    #[test]
    fn a_publisher_silent_for_three_intervals_is_down_and_says_so() {
        let config = match crate::config::parse(std::path::Path::new("site.toml"), CONFIG) {
            Ok(l) => l.config,
            Err(e) => panic!("test config: {e}"),
        };
        let live = crate::pipeline::live::Live::new();
        let gateway: Arc<str> = Arc::from("gateway");
        live.delivered(
            "mqtt",
            Timestamp(100_000),
            [(&gateway, RecordKind::Reading, Timestamp(99_000))].into_iter(),
        );
        let known = known_devices(&config, &live.snapshot());
        // publishes every 10 s: down once more than 30 s, raised to the 1 min floor, passed
        // without a delivery
        let at = |now: i64| {
            let mut snapshot = live.snapshot();
            judge_silence(&known, &mut snapshot, Timestamp(now));
            let d = &snapshot["gateway"];
            (d.connected, d.last_error.clone())
        };
        assert_eq!(at(160_000), (true, None));
        assert_eq!(
            at(161_000),
            (
                false,
                Some("no data for 1m 1s (publishes every 10s)".to_string())
            )
        );
    }

    const BUREAU: &str = r#"
[site]
id = "bureau"

[hj212_listener]
listen = "127.0.0.1:9001"

[[hj212_listener.device]]
mn = "SET"
password = { env = "PW" }
stack = "p1"
upload_interval = "10m"

[[hj212_listener.device]]
mn = "LEARNED"
password = { env = "PW" }
stack = "p2"
"#;

    #[test]
    fn a_logger_silent_for_three_of_its_intervals_is_down_configured_or_learned() {
        let config = match crate::config::parse(std::path::Path::new("site.toml"), BUREAU) {
            Ok(l) => l.config,
            Err(e) => panic!("test config: {e}"),
        };
        const MINUTE: i64 = 60_000;
        let live = crate::pipeline::live::Live::new();
        let set: Arc<str> = Arc::from("SET");
        let learned: Arc<str> = Arc::from("LEARNED");
        // one upload each at 0; LEARNED's minute data then steps by 5 min
        live.delivered(
            "hj212",
            Timestamp(0),
            [
                (&set, RecordKind::Minute, Timestamp(-MINUTE)),
                (&learned, RecordKind::Minute, Timestamp(-MINUTE)),
            ]
            .into_iter(),
        );
        let state_at = |now: i64| {
            let mut snapshot = live.snapshot();
            let known = known_devices(&config, &snapshot);
            judge_silence(&known, &mut snapshot, Timestamp(now));
            let of = |id: &str| (snapshot[id].connected, snapshot[id].last_error.clone());
            (of("SET"), of("LEARNED"))
        };
        // nothing learned yet: LEARNED is never called down for silence
        assert_eq!(state_at(120 * MINUTE).1, (true, None));
        // SET uploads every 10 m: down once more than 30 m passed
        assert_eq!(state_at(30 * MINUTE).0, (true, None));
        assert_eq!(
            state_at(31 * MINUTE).0,
            (
                false,
                Some("no data for 31m (uploads every 10m)".to_string())
            )
        );
        live.delivered(
            "hj212",
            Timestamp(5 * MINUTE),
            [(&learned, RecordKind::Minute, Timestamp(4 * MINUTE))].into_iter(),
        );
        assert_eq!(state_at(20 * MINUTE).1, (true, None));
        assert_eq!(
            state_at(21 * MINUTE).1,
            (
                false,
                Some("no data for 16m (uploads every 5m)".to_string())
            )
        );
        // its next upload brings it back
        live.delivered(
            "hj212",
            Timestamp(22 * MINUTE),
            [(&learned, RecordKind::Minute, Timestamp(21 * MINUTE))].into_iter(),
        );
        assert_eq!(state_at(22 * MINUTE).1, (true, None));
    }
}
