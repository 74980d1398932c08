//! `[[mqtt]]` sections of the site config: one broker connection each, its subscriptions with
//! how to read their payloads, and the devices that publish through it with the stack each
//! one measures. Validation reports every mistake at its key, before anything connects.

pub mod credentials;
pub mod partition;
pub mod size;
pub mod time;
pub mod topic;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

use crate::config::diagnostic::{Seg, SourceError, SourceText};
use crate::config::stack::{FlowSource, StackParams};
use crate::config::{Interval, Position};
use crate::model::time::UtcOffset;
use crate::model::{Basis, Flag, Quantity, Unit};
use crate::protocol::hj212::codes::quantity_of;

use size::ByteSize;
use time::TimeFormat;
use topic::{Filter, Template};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSourceConfig {
    /// Names the source in logs, statistics and dead letters.
    pub id: String,
    /// `mqtt://host[:port]` (1883) or `mqtts://host[:port]` (8883, TLS).
    pub url: BrokerUrl,
    /// Must be stable across restarts: the broker keeps the persistent session under it.
    pub client_id: String,
    #[serde(default = "thirty_seconds")]
    pub keep_alive: Interval,
    /// false keeps the session (subscriptions and unacknowledged QoS 1 messages) at the
    /// broker while cemsd is away, so nothing published meanwhile is lost.
    #[serde(default)]
    pub clean_session: bool,
    pub username: Option<String>,
    /// File holding the password (trailing newline ignored); relative to the config file.
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the password.
    pub password_env: Option<String>,
    /// PEM CA certificates that sign the broker's certificate; the system roots when absent.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain and key for mutual TLS.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// First wait after a failed connection; doubles up to `reconnect_max`, with jitter.
    #[serde(default = "half_a_second")]
    pub reconnect_min: Interval,
    #[serde(default = "thirty_seconds")]
    pub reconnect_max: Interval,
    /// Largest MQTT packet the client takes; a bigger one is a protocol error that closes
    /// the connection, after which the broker delivers it again. Default: the MQTT maximum
    /// (268435455 bytes), which is also mosquitto's default, so a message the broker
    /// accepted is never one the client cannot read.
    #[serde(default = "mqtt_maximum_packet")]
    pub max_packet_size: ByteSize,
    /// Messages with a larger payload are acknowledged and kept in the dead letters as
    /// `too_large` (with their size, topic and the payload's first bytes), never decoded.
    #[serde(default = "one_mebibyte")]
    pub max_payload: ByteSize,
    /// A source that cannot make progress this long (not connected, losing its connection
    /// again and again without taking a message, or waiting for a commit) makes `/health`
    /// degraded with the reason.
    #[serde(default = "one_minute")]
    pub stall_after: Interval,
    /// This instance's share of the devices when several instances split them; see
    /// [`partition`].
    pub partition: Option<partition::Partition>,
    #[serde(rename = "subscribe", default)]
    pub subscriptions: Vec<SubscriptionConfig>,
    #[serde(rename = "device", default)]
    pub devices: Vec<MqttDeviceConfig>,
}

/// Broker address from `mqtt://` or `mqtts://` URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BrokerUrl {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl BrokerUrl {
    pub fn parse(text: &str) -> Result<BrokerUrl, String> {
        let (tls, rest) = if let Some(rest) = text.strip_prefix("mqtts://") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("mqtt://") {
            (false, rest)
        } else {
            return Err(format!(
                "{text:?} is not a broker URL: expected mqtt://host[:port] or mqtts://host[:port]"
            ));
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains('/') || authority.contains('@') || authority.contains('?') {
            return Err(format!(
                "{text:?} has more than host and port: expected mqtt://host[:port]; credentials go in username and password_file"
            ));
        }
        let default_port = if tls { 8883 } else { 1883 };
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') && host.contains(':') => {
                return Err(format!(
                    "{text:?} has an IPv6 address without brackets: expected e.g. mqtt://[::1]:{port}"
                ));
            }
            Some((host, port)) => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| {
                        format!("{text:?}: {port:?} is not a port number: expected 1 to 65535")
                    })?;
                (host, port)
            }
            None => (authority, default_port),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains(' ') {
            return Err(format!(
                "{text:?} names no host: expected mqtt://host[:port]"
            ));
        }
        Ok(BrokerUrl {
            host: host.to_string(),
            port,
            tls,
        })
    }
}

impl<'de> Deserialize<'de> for BrokerUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        BrokerUrl::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The wire formats a subscription's payloads can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadFormat {
    Json,
    LineProtocol,
    /// One number; device and channel come from the topic or the subscription.
    Plain,
    /// One HJ 212 real-time data packet (CN 2011).
    Hj212,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionConfig {
    /// Topic filter with `+` and `#`; `$share/GROUP/filter` splits the messages among all
    /// clients subscribed with the same group.
    pub filter: Filter,
    #[serde(default = "qos_one")]
    pub qos: u8,
    pub format: PayloadFormat,
    /// Names parts of the topic, e.g. `plant/{site}/{device}/{channel}`; `{device}` and
    /// `{channel}` are used when the payload does not name them.
    pub topic: Option<Template>,
    /// The device of every message on this subscription, when neither payload nor topic
    /// names one.
    pub device: Option<String>,
    /// How payload timestamps are written; see `TimeFormat`.
    pub time_format: Option<TimeFormat>,
    /// Zone of timestamps written without one (local-time patterns, HJ 212 DataTime); the
    /// site's utc_offset when absent.
    pub time_zone: Option<UtcOffset>,
    /// Status values the publisher uses, mapped to HJ 212 flags, e.g. `{ "0" = "N", "2" = "M" }`;
    /// without it a status must be an HJ 212 flag letter.
    #[serde(default)]
    pub status_map: BTreeMap<String, Flag>,
    pub json: Option<JsonMapping>,
    pub line_protocol: Option<LineProtocolMapping>,
}

impl SubscriptionConfig {
    pub fn time_format(&self) -> TimeFormat {
        self.time_format.clone().unwrap_or(match self.format {
            PayloadFormat::LineProtocol => TimeFormat::UnixNanos,
            PayloadFormat::Hj212 => TimeFormat::Hj212,
            PayloadFormat::Json | PayloadFormat::Plain => TimeFormat::Rfc3339,
        })
    }
}

/// Where a JSON payload keeps each part of a reading, as dotted paths (`data.0.v`; a
/// numeric part indexes an array). A missing optional part falls back to the message
/// (for array elements), then the topic, then the subscription; a missing time means the
/// receive time.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JsonMapping {
    /// Array of reading objects; without it (and without `values`) the message is one reading.
    pub readings: Option<String>,
    /// Object of channel → number, e.g. `{"SO2": 12.3, "O2": 6.1}`, for publishers that send
    /// one field per channel.
    pub values: Option<String>,
    pub value: String,
    pub time: String,
    pub device: String,
    pub channel: String,
    pub unit: String,
    pub status: String,
}

impl Default for JsonMapping {
    fn default() -> Self {
        JsonMapping {
            readings: None,
            values: None,
            value: "value".into(),
            time: "time".into(),
            device: "device".into(),
            channel: "channel".into(),
            unit: "unit".into(),
            status: "status".into(),
        }
    }
}

/// How InfluxDB line protocol maps to readings: every numeric field is a channel.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LineProtocolMapping {
    /// Tag naming the device.
    pub device_tag: String,
    /// A string field `<channel><suffix>` carries that channel's status, e.g. `SO2_flag="M"`.
    pub status_suffix: String,
}

impl Default for LineProtocolMapping {
    fn default() -> Self {
        LineProtocolMapping {
            device_tag: "device".into(),
            status_suffix: "_flag".into(),
        }
    }
}

/// A device that publishes through this source, bound to the stack it measures.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttDeviceConfig {
    /// Id in the store, unique among all devices of the site.
    pub id: String,
    /// The name payloads and topics use for it (e.g. an HJ 212 MN), when not `id`.
    pub published_as: Option<String>,
    pub stack: String,
    #[serde(default)]
    pub position: Position,
    /// How often it publishes each channel; silence for the stack's gap_missed_polls
    /// intervals opens a gap.
    pub interval: Interval,
    /// Channels as published → what they measure.
    pub channels: BTreeMap<String, MqttChannelConfig>,
}

impl MqttDeviceConfig {
    pub fn published_name(&self) -> &str {
        self.published_as.as_deref().unwrap_or(&self.id)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttChannelConfig {
    /// Defaults to the channel name read as a quantity (`SO2`) or an HJ 212 factor code
    /// (`a21026`).
    pub quantity: Option<Quantity>,
    pub unit: Unit,
    #[serde(default)]
    pub basis: Basis,
    /// Measuring range in `unit`; above it readings are flagged T.
    pub range: Option<[f64; 2]>,
}

impl MqttChannelConfig {
    /// The quantity this channel measures; validation guarantees one for loaded configs.
    pub fn quantity_of(&self, name: &str) -> Option<Quantity> {
        self.quantity.or_else(|| {
            name.parse()
                .ok()
                .or_else(|| quantity_of(name).map(|(q, _)| q))
        })
    }
}

fn thirty_seconds() -> Interval {
    Interval(std::time::Duration::from_secs(30))
}

/// Largest remaining length MQTT can encode (four length bytes): 256 MiB − 1.
pub const MQTT_MAXIMUM_PACKET: u64 = 268_435_455;

fn mqtt_maximum_packet() -> ByteSize {
    ByteSize(MQTT_MAXIMUM_PACKET)
}

fn one_mebibyte() -> ByteSize {
    ByteSize(ByteSize::MIB)
}

fn one_minute() -> Interval {
    Interval(std::time::Duration::from_secs(60))
}

fn half_a_second() -> Interval {
    Interval(std::time::Duration::from_millis(500))
}

fn qos_one() -> u8 {
    1
}

/// Checks what serde cannot: references between keys and combinations of keys.
/// `other_device_ids` are the site's non-MQTT devices.
pub fn validate(
    src: &SourceText,
    sources: &[MqttSourceConfig],
    stacks: &[StackParams],
    other_device_ids: &HashSet<&str>,
) -> Result<(), SourceError> {
    let stack_ids: HashSet<&str> = stacks.iter().map(|s| s.id.as_str()).collect();
    let mut source_ids = HashSet::new();
    let mut client_ids = HashSet::new();
    let mut device_ids = HashSet::new();
    for (i, source) in sources.iter().enumerate() {
        let at = |key| [Seg::Key("mqtt"), Seg::Index(i), Seg::Key(key)];
        if !source_ids.insert(source.id.as_str()) {
            return Err(src.error_at_path(
                &at("id"),
                format!("mqtt source id {:?} is used twice", source.id),
                Some("give every [[mqtt]] its own id".into()),
            ));
        }
        if source.client_id.is_empty() {
            return Err(src.error_at_path(
                &at("client_id"),
                "the client id is empty",
                Some("use a stable name such as \"cemsd-plant1\": the broker keeps the session under it".into()),
            ));
        }
        if !client_ids.insert((&source.url, source.client_id.as_str())) {
            return Err(src.error_at_path(
                &at("client_id"),
                format!("two sources connect to the same broker as {:?}", source.client_id),
                Some("a broker drops the older of two connections with one client id; give each its own".into()),
            ));
        }
        if source.password_file.is_some() && source.password_env.is_some() {
            return Err(src.error_at_path(
                &at("password_env"),
                "password_file and password_env are both set",
                Some("keep one of them".into()),
            ));
        }
        if (source.password_file.is_some() || source.password_env.is_some())
            && source.username.is_none()
        {
            return Err(src.error_at_path(
                &at(if source.password_file.is_some() {
                    "password_file"
                } else {
                    "password_env"
                }),
                "a password without a username",
                Some("add username = \"…\"".into()),
            ));
        }
        if !source.url.tls {
            for key in ["ca_file", "client_cert", "client_key"] {
                let set = match key {
                    "ca_file" => source.ca_file.is_some(),
                    "client_cert" => source.client_cert.is_some(),
                    _ => source.client_key.is_some(),
                };
                if set {
                    return Err(src.error_at_path(
                        &at(key),
                        format!("{key} is set but the url is mqtt://, which does not use TLS"),
                        Some("use an mqtts:// url, or remove the TLS keys".into()),
                    ));
                }
            }
        }
        if source.client_cert.is_some() != source.client_key.is_some() {
            let missing = if source.client_cert.is_some() {
                "client_key"
            } else {
                "client_cert"
            };
            return Err(src.error_at_path(
                &at(if missing == "client_key" {
                    "client_cert"
                } else {
                    "client_key"
                }),
                format!("mutual TLS needs both client_cert and client_key; {missing} is missing"),
                Some(format!("add {missing} = \"path/to/file.pem\"")),
            ));
        }
        if source.keep_alive.0 < std::time::Duration::from_secs(5) {
            return Err(src.error_at_path(
                &at("keep_alive"),
                "a keep-alive under 5s is not supported",
                Some("use e.g. \"30s\"; the broker drops the connection after 1.5 keep-alives of silence".into()),
            ));
        }
        if source.reconnect_min.0.is_zero() || source.reconnect_min.0 > source.reconnect_max.0 {
            return Err(src.error_at_path(
                &at("reconnect_min"),
                "reconnect_min must be above zero and at most reconnect_max",
                Some("e.g. reconnect_min = \"500ms\", reconnect_max = \"30s\"".into()),
            ));
        }
        if !(1024..=MQTT_MAXIMUM_PACKET).contains(&source.max_packet_size.bytes()) {
            return Err(src.error_at_path(
                &at("max_packet_size"),
                format!(
                    "max_packet_size must be between 1KiB and {MQTT_MAXIMUM_PACKET} bytes (the MQTT maximum)"
                ),
                Some("leave it out: the default is the MQTT maximum, as mosquitto's; a packet over the limit costs the connection and comes again".into()),
            ));
        }
        if source.max_payload.bytes() == 0 || source.max_payload > source.max_packet_size {
            return Err(src.error_at_path(
                &at("max_payload"),
                format!(
                    "max_payload must be above zero and at most max_packet_size ({})",
                    source.max_packet_size
                ),
                Some("e.g. max_payload = \"1MiB\" (the default); larger payloads are dead-lettered as too_large".into()),
            ));
        }
        if source.stall_after.0 < std::time::Duration::from_secs(5) {
            return Err(src.error_at_path(
                &at("stall_after"),
                "a stall_after under 5s would report every reconnect as a stall",
                Some("e.g. stall_after = \"1m\" (the default)".into()),
            ));
        }
        if source.subscriptions.is_empty() {
            return Err(src.error_at_path(
                &[Seg::Key("mqtt"), Seg::Index(i)],
                format!("mqtt source {:?} subscribes to nothing", source.id),
                Some("add a [[mqtt.subscribe]] with a filter and a format".into()),
            ));
        }
        for (j, sub) in source.subscriptions.iter().enumerate() {
            validate_subscription(src, i, j, sub)?;
        }
        partition::validate(src, i, source)?;
        let mut published = HashSet::new();
        for (j, device) in source.devices.iter().enumerate() {
            let at = |key| {
                [
                    Seg::Key("mqtt"),
                    Seg::Index(i),
                    Seg::Key("device"),
                    Seg::Index(j),
                    Seg::Key(key),
                ]
            };
            if other_device_ids.contains(device.id.as_str())
                || !device_ids.insert(device.id.as_str())
            {
                return Err(src.error_at_path(
                    &at("id"),
                    format!("device id {:?} is used twice", device.id),
                    Some("every device of the site, Modbus or MQTT, needs its own id".into()),
                ));
            }
            if !published.insert(device.published_name()) {
                return Err(src.error_at_path(
                    &at(if device.published_as.is_some() {
                        "published_as"
                    } else {
                        "id"
                    }),
                    format!(
                        "two devices of this source publish as {:?}",
                        device.published_name()
                    ),
                    Some("published_as must tell the devices apart".into()),
                ));
            }
            if !stack_ids.contains(device.stack.as_str()) {
                let mut names: Vec<_> = stack_ids.iter().copied().collect();
                names.sort_unstable();
                return Err(src.error_at_path(
                    &at("stack"),
                    format!(
                        "device {:?} is bound to stack {:?}, which is not defined",
                        device.id, device.stack
                    ),
                    Some(if names.is_empty() {
                        format!("add a [[stack]] with id = {:?}", device.stack)
                    } else {
                        format!("use one of: {}", names.join(", "))
                    }),
                ));
            }
            if device.interval.0 < std::time::Duration::from_millis(100) {
                return Err(src.error_at_path(
                    &at("interval"),
                    "an interval under 100ms is not supported",
                    Some("write how often the device publishes each channel, e.g. \"10s\"".into()),
                ));
            }
            if device.channels.is_empty() {
                return Err(src.error_at_path(
                    &at("channels"),
                    format!("device {:?} declares no channels", device.id),
                    Some(
                        "e.g. channels = { SO2 = { unit = \"mg/m3\" }, O2 = { unit = \"%vol\" } }"
                            .into(),
                    ),
                ));
            }
            let stack = stacks.iter().find(|s| s.id == device.stack);
            for (name, channel) in &device.channels {
                let path = [
                    Seg::Key("mqtt"),
                    Seg::Index(i),
                    Seg::Key("device"),
                    Seg::Index(j),
                    Seg::Key("channels"),
                    Seg::Key(name),
                ];
                if channel.quantity_of(name).is_none() {
                    return Err(src.error_at_path(
                        &path,
                        format!("channel {name:?} names no quantity"),
                        Some(format!(
                            "add quantity = \"SO2\" (or another of: {})",
                            Quantity::ALL
                                .iter()
                                .map(|q| q.name())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )),
                    ));
                }
                let needs_area = stack.is_some_and(|s| {
                    s.flow_from == FlowSource::Velocity && s.duct_area_m2.is_none()
                });
                if needs_area && channel.quantity_of(name) == Some(Quantity::Velocity) {
                    return Err(src.error_at_path(
                        &path,
                        format!("stack {:?} gets flue-gas velocity from this channel but has no duct area to turn it into flow", device.stack),
                        Some("add duct_area_m2 (m2 at the measuring point) to the [[stack]], or set its flow_from to \"actual_flow\" or \"standard_dry_flow\"".into()),
                    ));
                }
                if let Some([lo, hi]) = channel.range {
                    if !(lo.is_finite() && hi.is_finite() && hi > lo) {
                        return Err(src.error_at_path(
                            &path,
                            format!("range [{lo}, {hi}] must be two finite numbers, low then high"),
                            None,
                        ));
                    }
                }
            }
        }
        if source.devices.is_empty() {
            return Err(src.error_at_path(
                &[Seg::Key("mqtt"), Seg::Index(i)],
                format!("mqtt source {:?} declares no devices", source.id),
                Some("add a [[mqtt.device]] with id, stack, interval and channels for each publisher".into()),
            ));
        }
    }
    Ok(())
}

fn validate_subscription(
    src: &SourceText,
    i: usize,
    j: usize,
    sub: &SubscriptionConfig,
) -> Result<(), SourceError> {
    let at = |key| {
        [
            Seg::Key("mqtt"),
            Seg::Index(i),
            Seg::Key("subscribe"),
            Seg::Index(j),
            Seg::Key(key),
        ]
    };
    match sub.qos {
        0 | 1 => {}
        2 => {
            return Err(src.error_at_path(
                &at("qos"),
                "QoS 2 is not supported: a QoS 2 handshake cut by a cemsd restart cannot be resumed by the MQTT client library, which would then refuse the broker's PUBREL on every reconnect",
                Some("use qos = 1: the broker delivers QoS 2 messages at QoS 1, and cemsd stores each reading once anyway (see deploy/mqtt.md)".into()),
            ))
        }
        other => {
            return Err(src.error_at_path(
                &at("qos"),
                format!("QoS {other} does not exist"),
                Some("use 1 (at least once; cemsd stores each reading once) or 0 (may lose messages)".into()),
            ))
        }
    }
    if let Some(template) = &sub.topic {
        if !template.fits(&sub.filter) {
            return Err(src.error_at_path(
                &at("topic"),
                format!(
                    "the topic template has {} levels but the filter {:?} matches topics of another shape",
                    template.levels(),
                    sub.filter.as_str()
                ),
                Some("give the template one level per filter level, e.g. filter \"plant/+/+/+\" with topic \"plant/{site}/{device}/{channel}\"".into()),
            ));
        }
    }
    let wrong_key = match sub.format {
        PayloadFormat::Json => sub.line_protocol.as_ref().map(|_| "line_protocol"),
        PayloadFormat::LineProtocol => sub.json.as_ref().map(|_| "json"),
        PayloadFormat::Plain | PayloadFormat::Hj212 => sub
            .json
            .as_ref()
            .map(|_| "json")
            .or(sub.line_protocol.as_ref().map(|_| "line_protocol")),
    };
    if let Some(key) = wrong_key {
        return Err(src.error_at_path(
            &at(key),
            format!(
                "[{key}] does not apply to format {:?}",
                format_name(sub.format)
            ),
            Some(format!("remove it, or set format = {key:?}")),
        ));
    }
    if sub.format == PayloadFormat::Plain {
        let names_channel = sub.topic.as_ref().is_some_and(|t| t.has("channel"));
        if !names_channel {
            return Err(src.error_at_path(
                &at("topic"),
                "a plain number payload needs the channel from the topic",
                Some("add e.g. topic = \"plant/{site}/{device}/{channel}\"".into()),
            ));
        }
        if sub.time_format.is_some() {
            return Err(src.error_at_path(
                &at("time_format"),
                "a plain number payload carries no time; readings get the receive time",
                Some("remove time_format".into()),
            ));
        }
    }
    if let Some(json) = &sub.json {
        let paths = [
            ("readings", json.readings.as_deref()),
            ("values", json.values.as_deref()),
            ("value", Some(json.value.as_str())),
            ("time", Some(json.time.as_str())),
            ("device", Some(json.device.as_str())),
            ("channel", Some(json.channel.as_str())),
            ("unit", Some(json.unit.as_str())),
            ("status", Some(json.status.as_str())),
        ];
        for (key, path) in paths {
            if path.is_some_and(|p| p.is_empty() || p.split('.').any(str::is_empty)) {
                return Err(src.error_at_path(
                    &[
                        Seg::Key("mqtt"),
                        Seg::Index(i),
                        Seg::Key("subscribe"),
                        Seg::Index(j),
                        Seg::Key("json"),
                        Seg::Key(key),
                    ],
                    "a JSON path needs names separated by single dots",
                    Some("e.g. \"data.value\" or \"readings.0.v\"".into()),
                ));
            }
        }
        if json.readings.is_some() && json.values.is_some() {
            return Err(src.error_at_path(
                &[Seg::Key("mqtt"), Seg::Index(i), Seg::Key("subscribe"), Seg::Index(j), Seg::Key("json"), Seg::Key("values")],
                "readings and values are both set",
                Some("use readings for an array of reading objects, values for an object of channel → number".into()),
            ));
        }
    }
    Ok(())
}

fn format_name(format: PayloadFormat) -> &'static str {
    match format {
        PayloadFormat::Json => "json",
        PayloadFormat::LineProtocol => "line_protocol",
        PayloadFormat::Plain => "plain",
        PayloadFormat::Hj212 => "hj212",
    }
}
