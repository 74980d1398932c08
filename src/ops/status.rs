//! The JSON behind the status page (`/api/status`): per stack and device, the latest committed
//! values with units and flags, and the connection state the collectors report.
//!
//! Values come from the store, not from memory, so the page shows exactly what is kept as
//! evidence (and the corrected values once the pipeline computes them).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;

use super::devices::known_devices;
use crate::config::{Position, SiteConfig};
use crate::model::Quantity;
use crate::pipeline::live::DeviceLive;
use crate::report::notes::NoteWords;
use crate::store::{Record, Stored};

/// Emission limits by stack id and pollutant, in the unit of the corrected values
/// (mg/m3 at standard condition, dry, reference O2).
pub type StackLimits = BTreeMap<(String, Quantity), f64>;

/// Which value of a record is shown: the most processed one present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueKind {
    Raw,
    Measured,
    Corrected,
}

impl ValueKind {
    pub fn of(record: &Record) -> Option<(ValueKind, f64)> {
        record
            .corrected
            .map(|v| (ValueKind::Corrected, v))
            .or(record.measured.map(|v| (ValueKind::Measured, v)))
            .or(record.raw.map(|v| (ValueKind::Raw, v)))
    }

    pub fn value(self, record: &Record) -> Option<f64> {
        match self {
            ValueKind::Corrected => record.corrected,
            ValueKind::Measured => record.measured,
            ValueKind::Raw => record.raw,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusView {
    pub site_id: String,
    pub site_name: Option<String>,
    /// Milliseconds since the epoch when the view was made.
    pub now: i64,
    /// Records the store writer committed since the daemon started.
    pub committed: u64,
    pub stacks: Vec<StackView>,
    /// Every forwarder and uplink reading the store (InfluxDB, HJ 212 platforms).
    pub sinks: Vec<SinkView>,
    /// Every MQTT source.
    pub mqtt: Vec<MqttView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StackView {
    pub id: String,
    pub name: Option<String>,
    /// Emission limits by quantity name, in the unit of the corrected values.
    pub limits: BTreeMap<&'static str, f64>,
    pub devices: Vec<DeviceView>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Connection {
    /// No poll has finished yet, or no data arrived yet, since the start (a device may
    /// show the values and data time the store kept of it meanwhile).
    Waiting,
    Connected,
    Down,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceView {
    pub id: String,
    /// `modbus`, `mqtt`, `hj212`.
    pub source: &'static str,
    pub profile: Option<String>,
    pub address: Option<String>,
    pub position: &'static str,
    pub connection: Connection,
    /// Polls, or deliveries for a device that publishes or uploads.
    pub polls: u64,
    pub errors: u64,
    pub last_error: Option<String>,
    /// Time of its newest reading or uploaded record, from the store until it delivers
    /// after a start.
    pub last_seen: Option<i64>,
    pub values: Vec<ValueView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValueView {
    pub channel: String,
    pub quantity: Option<&'static str>,
    /// The unit of `value`: the record's (mg/m3 for gases) for measured and corrected
    /// values, the one the value arrived in (e.g. ppb) for a raw one; none when unknown.
    pub unit: Option<&'static str>,
    /// `None` when the latest reading carries no value (flag B).
    pub value: Option<f64>,
    pub kind: Option<ValueKind>,
    /// Emission rate in kg/h, where the stack's flow is known.
    pub rate: Option<f64>,
    pub flag: char,
    /// Why a value is missing (e.g. "no O2 source" for a pollutant without a corrected
    /// value) or how it was obtained, from the reading's note.
    pub note: Option<String>,
    /// `note` in words, Chinese and English.
    pub note_words: Option<NoteWords>,
    pub ts: i64,
    /// The stored reading shown; `None` for the latest value of a data logger's upload
    /// (minute, hour), which the store keeps as that period's record, not as a reading.
    pub seq: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SinkView {
    pub name: String,
    pub backlog: u64,
    /// Age of the oldest record not yet delivered, in seconds; 0 when caught up.
    pub lag_seconds: f64,
    /// For an HJ 212 uplink: whether it is connected to its platform, and when the platform
    /// last acknowledged an upload (ms since the epoch).
    pub connected: Option<bool>,
    pub last_ack: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MqttView {
    pub id: String,
    pub connected: bool,
    pub stalled: Option<String>,
    pub messages: u64,
    pub readings: u64,
    pub refused: u64,
}

impl StatusView {
    /// `latest` is the store's latest reading per channel; `live` the collectors' state.
    pub fn build(
        config: &SiteConfig,
        live: &BTreeMap<Arc<str>, DeviceLive>,
        latest: &[Stored],
        committed: u64,
        now: i64,
    ) -> StatusView {
        let mut values: HashMap<(Arc<str>, Arc<str>), Vec<ValueView>> = HashMap::new();
        for stored in latest {
            let r = &stored.record;
            values
                .entry((r.stack.clone(), r.device.clone()))
                .or_default()
                .push(value_view(stored, config));
        }
        let limits = config.limits();
        let mut stacks: Vec<StackView> = config
            .stacks
            .iter()
            .map(|stack| StackView {
                id: stack.id.clone(),
                name: stack.name.clone(),
                limits: limits
                    .iter()
                    .filter(|((id, _), _)| *id == stack.id)
                    .map(|((_, q), limit)| (q.name(), *limit))
                    .collect(),
                devices: Vec::new(),
            })
            .collect();
        for device in known_devices(config, live) {
            let state = live.get(device.id.as_str());
            let key = (
                Arc::from(device.stack.as_str()),
                Arc::from(device.id.as_str()),
            );
            let view = DeviceView {
                source: device.source,
                profile: device.profile,
                address: device.address,
                position: match device.position {
                    Position::Inlet => "inlet",
                    Position::Outlet => "outlet",
                },
                connection: match state {
                    Some(s) if s.polls > 0 && s.connected => Connection::Connected,
                    Some(s) if s.polls > 0 => Connection::Down,
                    _ => Connection::Waiting,
                },
                polls: state.map_or(0, |s| s.polls),
                errors: state.map_or(0, |s| s.errors),
                last_error: state.and_then(|s| s.last_error.clone()),
                last_seen: state.and_then(|s| s.last_seen).map(|t| t.0),
                values: values
                    .remove(&key)
                    .or_else(|| state.map(uploaded_values))
                    .unwrap_or_default(),
                id: device.id,
            };
            match stacks.iter_mut().find(|s| s.id == device.stack) {
                Some(stack) => stack.devices.push(view),
                None => stacks.push(StackView {
                    id: device.stack,
                    name: None,
                    limits: BTreeMap::new(),
                    devices: vec![view],
                }),
            }
        }
        StatusView {
            site_id: config.site.id.clone(),
            site_name: config.site.name.clone(),
            now,
            committed,
            stacks,
            sinks: Vec::new(),
            mqtt: Vec::new(),
        }
    }
}

fn value_view(stored: &Stored, config: &SiteConfig) -> ValueView {
    let r = &stored.record;
    let shown = ValueKind::of(r);
    let unit = match shown {
        Some((ValueKind::Raw, _)) => config.raw_unit(&r.device, &r.channel, r.quantity, r.unit),
        _ => r.unit,
    };
    ValueView {
        channel: r.channel.to_string(),
        quantity: r.quantity.map(Quantity::name),
        unit: unit.map(|u| u.symbol()),
        value: shown.map(|(_, v)| v),
        kind: shown.map(|(k, _)| k),
        rate: r.rate,
        flag: r.flags.primary().code(),
        note: r.note.clone(),
        note_words: NoteWords::of(r.note.as_deref()),
        ts: r.ts.0,
        seq: Some(stored.seq),
    }
}

/// The latest uploaded value of each channel of a device the store has no readings of (an
/// HJ 212 logger uploading minutes and hours), as the live model holds it.
fn uploaded_values(device: &DeviceLive) -> Vec<ValueView> {
    device
        .values
        .iter()
        .map(|(channel, v)| {
            let (value, kind) = match (v.corrected, v.value.is_finite()) {
                (Some(c), _) => (Some(c), Some(ValueKind::Corrected)),
                (None, true) => (Some(v.value), Some(ValueKind::Measured)),
                (None, false) => (None, None),
            };
            ValueView {
                channel: channel.to_string(),
                quantity: v.quantity.map(Quantity::name),
                unit: Some(v.unit.symbol()),
                value,
                kind,
                rate: None,
                flag: v.flag.code(),
                note: None,
                note_words: None,
                ts: v.ts.0,
                seq: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Flag, FlagSet, Timestamp, Unit};
    use crate::store::RecordKind;

    const CONFIG: &str = r#"
[site]
id = "plant"
name = "Plant"

[[stack]]
id = "unit1"
name = "Unit 1"

[[stack]]
id = "unit2"

[[device]]
id = "so2"
profile = "thermo-43i"
stack = "unit1"
transport = "tcp"
address = "127.0.0.1:1502"

[[device]]
id = "o2"
profile = "sdl-model-1080"
stack = "unit1"
transport = "tcp"
address = "127.0.0.1:1503"
position = "inlet"

[[device]]
id = "nox"
profile = "thermo-42i"
stack = "unit2"
transport = "tcp"
address = "127.0.0.1:1504"
"#;

    fn stored(seq: u64, stack: &str, device: &str, channel: &str, q: Quantity) -> Stored {
        let mut record = Record::new(
            RecordKind::Reading,
            Timestamp(1_000 * seq as i64),
            stack.into(),
            device.into(),
            channel.into(),
        );
        record.quantity = Some(q);
        record.unit = Some(Unit::Ppm);
        record.raw = Some(seq as f64 + 0.5);
        Stored { seq, record }
    }

    #[test]
    fn devices_sit_under_their_stacks_with_store_values_and_live_state() {
        let loaded = crate::config::parse(std::path::Path::new("site.toml"), CONFIG);
        let config = match loaded {
            Ok(l) => l.config,
            Err(e) => panic!("test config: {e}"),
        };
        let mut so2 = stored(7, "unit1", "so2", "SO2", Quantity::SO2);
        so2.record.measured = Some(20.25);
        so2.record.corrected = Some(31.0);
        so2.record.unit = Some(Unit::MgPerM3);
        let mut o2 = stored(8, "unit1", "o2", "O2", Quantity::O2);
        o2.record.raw = None;
        o2.record.flags = FlagSet::of(Flag::B);
        let nox = stored(9, "unit2", "nox", "NOx", Quantity::NOx);
        // Same device id on a stack it is no longer bound to: not shown under unit1.
        let moved = stored(3, "unit9", "so2", "SO2", Quantity::SO2);
        let upload = stored(12, "unit3", "mn17", "SO2", Quantity::SO2);
        let latest = vec![so2, o2, nox, moved, upload];

        let mut live = BTreeMap::new();
        live.insert(
            Arc::from("so2"),
            DeviceLive {
                connected: true,
                polls: 4,
                ..DeviceLive::default()
            },
        );
        live.insert(
            Arc::from("o2"),
            DeviceLive {
                connected: false,
                polls: 4,
                errors: 2,
                last_error: Some("no reply within 1s".into()),
                ..DeviceLive::default()
            },
        );
        live.insert(
            Arc::from("mn17"),
            DeviceLive {
                connected: true,
                polls: 1,
                source: Some("hj212"),
                stack: Some(Arc::from("unit3")),
                last_seen: Some(Timestamp(12_000)),
                ..DeviceLive::default()
            },
        );
        // A logger that uploads minutes only: no stored reading, its live values show.
        let mut minute_upload = DeviceLive {
            connected: true,
            polls: 1,
            source: Some("hj212"),
            stack: Some(Arc::from("unit3")),
            ..DeviceLive::default()
        };
        minute_upload.values.insert(
            Arc::from("a21026"),
            crate::pipeline::live::ChannelLive {
                value: 10.0,
                corrected: Some(14.0),
                quantity: Some(Quantity::SO2),
                unit: Unit::MgPerM3,
                flag: Flag::N,
                ts: Timestamp(60_000),
            },
        );
        live.insert(Arc::from("mn18"), minute_upload);
        let view = StatusView::build(&config, &live, &latest, 42, 5_000);
        assert_eq!(view.site_id, "plant");
        assert_eq!(view.committed, 42);
        let stack_ids: Vec<_> = view.stacks.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(stack_ids, vec!["unit1", "unit2", "unit3"]);

        let unit1 = &view.stacks[0];
        let so2 = &unit1.devices[0];
        assert_eq!(so2.connection, Connection::Connected);
        assert_eq!(so2.values.len(), 1, "the unit9 row is not unit1's");
        let v = &so2.values[0];
        assert_eq!(
            (v.value, v.kind, v.unit, v.flag, v.ts, v.seq),
            (
                Some(31.0),
                Some(ValueKind::Corrected),
                Some("mg/m3"),
                'N',
                7_000,
                Some(7)
            )
        );
        let o2 = &unit1.devices[1];
        assert_eq!(
            (o2.connection, o2.errors, o2.position),
            (Connection::Down, 2, "inlet")
        );
        assert_eq!(o2.last_error.as_deref(), Some("no reply within 1s"));
        assert_eq!(
            (o2.values[0].value, o2.values[0].kind, o2.values[0].flag),
            (None, None, 'B')
        );
        // A logger no config line binds shows under the stack its uploads name.
        let logger = &view.stacks[2];
        assert_eq!(
            (logger.id.as_str(), logger.name.as_deref()),
            ("unit3", None)
        );
        let mn17 = &logger.devices[0];
        assert_eq!(
            (
                mn17.id.as_str(),
                mn17.source,
                mn17.connection,
                mn17.last_seen
            ),
            ("mn17", "hj212", Connection::Connected, Some(12_000))
        );
        assert_eq!(mn17.values[0].value, Some(12.5));
        let mn18 = &logger.devices[1].values[0];
        assert_eq!(
            (mn18.value, mn18.kind, mn18.quantity, mn18.seq, mn18.ts),
            (
                Some(14.0),
                Some(ValueKind::Corrected),
                Some("SO2"),
                None,
                60_000
            )
        );
        let nox = &view.stacks[1].devices[0];
        assert_eq!(nox.connection, Connection::Waiting, "never polled this run");
        assert_eq!(nox.values[0].value, Some(9.5));
        assert_eq!(nox.values[0].kind, Some(ValueKind::Raw));
    }

    #[test]
    fn a_raw_value_is_shown_in_the_unit_it_arrived_in_and_a_missing_value_says_why() {
        let loaded = crate::config::parse(std::path::Path::new("site.toml"), CONFIG);
        let config = match loaded {
            Ok(l) => l.config,
            Err(e) => panic!("test config: {e}"),
        };
        // The 43i's SO2 arrived as 6463 ppb on a wet basis and could not be dried: the
        // record's unit is that of measured values (mg/m3), the raw value's is ppb.
        let mut raw = stored(7, "unit1", "so2", "so2", Quantity::SO2);
        raw.record.unit = Some(Unit::MgPerM3);
        raw.record.raw = Some(6463.0);
        raw.record.note = Some("no moisture source".into());
        // The 1080's SO2, dry, without O2 on its stack: measured value, no corrected one.
        let mut measured = stored(8, "unit1", "o2", "so2", Quantity::SO2);
        measured.record.unit = Some(Unit::MgPerM3);
        measured.record.measured = Some(18.5);
        measured.record.note = Some("no O2 source".into());
        let view = StatusView::build(&config, &BTreeMap::new(), &[raw, measured], 2, 9_000);
        let unit1 = &view.stacks[0];
        let raw = &unit1.devices[0].values[0];
        assert_eq!(
            (raw.value, raw.kind, raw.unit, raw.flag),
            (Some(6463.0), Some(ValueKind::Raw), Some("ppb"), 'N')
        );
        assert_eq!(raw.note.as_deref(), Some("no moisture source"));
        let measured = &unit1.devices[1].values[0];
        assert_eq!(
            (measured.value, measured.kind, measured.unit, measured.flag),
            (Some(18.5), Some(ValueKind::Measured), Some("mg/m3"), 'N')
        );
        assert_eq!(measured.note.as_deref(), Some("no O2 source"));
    }
}
