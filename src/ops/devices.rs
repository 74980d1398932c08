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
    /// How often a bound MQTT device publishes each channel.
    pub interval: Option<Duration>,
}

/// Publishing intervals without a delivery after which a publishing device counts as down…
pub const SILENT_INTERVALS: u32 = 3;
/// …but never before a minute (the MQTT sources' default `stall_after`), so a fast
/// publisher is not called down over a broker's hiccup.
pub const MIN_SILENCE: Duration = Duration::from_secs(60);

/// Marks down, with the reason, every device that publishes at a known interval and has
/// delivered nothing for [`SILENT_INTERVALS`] of them (at least [`MIN_SILENCE`]) by `now`:
/// its own link is not watched, so silence is how it shows it is gone. Polled devices keep
/// what their polls said.
pub fn judge_silence(
    known: &[KnownDevice],
    live: &mut BTreeMap<Arc<str>, DeviceLive>,
    now: Timestamp,
) {
    for device in known {
        let (Some(interval), Some(state)) = (device.interval, live.get_mut(device.id.as_str()))
        else {
            continue;
        };
        let Some(delivered) = state.last_delivery else {
            continue;
        };
        let silent = Duration::from_millis(u64::try_from(now.0 - delivered.0).unwrap_or(0));
        if silent > (interval * SILENT_INTERVALS).max(MIN_SILENCE) {
            state.connected = false;
            state.last_error = Some(format!(
                "no data for {} (publishes every {})",
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
        l.devices.iter().map(|d| KnownDevice {
            id: d.mn.clone(),
            stack: d.stack.clone(),
            source: "hj212",
            profile: None,
            address: None,
            position: Position::Outlet,
            interval: None,
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
        live.delivered("mqtt", Timestamp(50_000), [&gateway].into_iter());
        live.delivered("hj212", Timestamp(50_000), [&logger].into_iter());
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
        live.delivered("mqtt", Timestamp(100_000), [&gateway].into_iter());
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
}
