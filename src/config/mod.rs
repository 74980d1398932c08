//! The site config: what a plant or bureau runs, in one TOML file. Every mistake is reported
//! with file, line, column, the key and what is allowed, before anything starts.

pub mod byte_size;
pub mod diagnostic;
pub mod environment;
pub mod hj212_listener;
pub mod hj212_uplink;
pub mod influx;
pub mod logger_registry;
pub mod mqtt;
pub mod profile;
pub mod secret;
pub mod stack;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::config::diagnostic::{Seg, SourceError, SourceText};
use crate::config::profile::{ProfileDirError, ProfileSet, MAX_REGISTERS_PER_READ};
use crate::config::stack::{FlowSource, NoxMethod, StackParams, DERIVED_NOX_CHANNEL};
use crate::model::time::UtcOffset;
use crate::model::{Basis, Quantity, Unit};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    pub site: Site,
    #[serde(rename = "stack", default)]
    pub stacks: Vec<StackParams>,
    /// Serial RS-485 buses, each owned by one task; `transport = "rtu"` devices name theirs.
    #[serde(rename = "bus", default)]
    pub buses: Vec<BusConfig>,
    #[serde(rename = "device", default)]
    pub devices: Vec<DeviceConfig>,
    #[serde(default)]
    pub store: StoreConfig,
    /// Simulated analysers started inside the daemon, for demos and commissioning.
    #[serde(rename = "simulate", default)]
    pub simulators: Vec<SimulateConfig>,
    /// Extra device profiles for this site, next to the shipped ones; relative to the config file.
    pub profiles_dir: Option<PathBuf>,
    /// InfluxDB v2 write-API sinks.
    #[serde(rename = "influx", default)]
    pub influx: Vec<crate::config::influx::InfluxSinkConfig>,
    /// HJ 212-2017 uplinks to bureau platforms.
    #[serde(rename = "hj212", default)]
    pub hj212: Vec<crate::config::hj212_uplink::Hj212SinkConfig>,
    /// MQTT brokers to subscribe to, with the devices that publish through them.
    #[serde(rename = "mqtt", default)]
    pub mqtt: Vec<crate::config::mqtt::MqttSourceConfig>,
    /// Health, metrics and the status page; none served when absent.
    pub http: Option<HttpConfig>,
    /// Receives HJ 212 uploads from data loggers (bureau side).
    pub hj212_listener: Option<crate::config::hj212_listener::ListenerConfig>,
    /// Not written in the file: the unit each device channel's values arrive in, by (device,
    /// channel), resolved from the profiles when the config is loaded. Raw values, stored as
    /// they arrived, are shown in it.
    #[serde(skip)]
    pub wire_units: BTreeMap<(String, String), Unit>,
    /// What every collector's data must satisfy before it is processed.
    #[serde(default)]
    pub ingest: IngestConfig,
}

impl SiteConfig {
    /// The unit the raw values of a device channel are in; see [`raw_unit`].
    pub fn raw_unit(
        &self,
        device: &str,
        channel: &str,
        quantity: Option<Quantity>,
        record_unit: Option<Unit>,
    ) -> Option<Unit> {
        let key = (device.to_string(), channel.to_string());
        raw_unit(self.wire_units.get(&key).copied(), quantity, record_unit)
    }

    /// Emission limit (mg/m3, O2-corrected) of each stack and limited pollutant.
    pub fn limits(&self) -> BTreeMap<(String, Quantity), f64> {
        self.stacks
            .iter()
            .flat_map(|s| s.limits.limited().map(move |(q, l)| ((s.id.clone(), q), l)))
            .collect()
    }
}

/// The unit the raw values of a device channel are in: the channel's wire unit (`wire`, from
/// `SiteConfig::wire_units`). Without one, a record's own unit (`record_unit`), that of its
/// measured value, which is the raw one's too except for gases read in ppm or ppb; for a gas
/// whose channel is unknown, no unit rather than a wrong one.
pub fn raw_unit(
    wire: Option<Unit>,
    quantity: Option<Quantity>,
    record_unit: Option<Unit>,
) -> Option<Unit> {
    if wire.is_some() {
        return wire;
    }
    let unit = record_unit?;
    (unit != Unit::MgPerM3 || quantity == Some(Quantity::Dust)).then_some(unit)
}

/// Checks the pipeline makes on everything collected, whatever the source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Readings (and uploaded records) stamped further than this ahead of the receiving
    /// clock are refused as `future` to the dead letters: a wrong clock at a publisher must
    /// not hold the channel's correct readings back until its date comes.
    #[serde(default = "five_minutes")]
    pub future_tolerance: Interval,
    /// How far back a reading may still arrive after later ones of its channel (a broker
    /// restart, a logger's backlog) and be taken, re-opening its minute, hour and day as
    /// revisions; older ones go to the dead letters as `too_late`.
    #[serde(default = "three_days")]
    pub lateness_horizon: Interval,
    /// Records held in memory while the store refuses commits (a full disk): collectors keep
    /// polling into them; past it they wait and the polls they miss show as gaps.
    #[serde(default = "default_spill_records")]
    pub spill_records: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            future_tolerance: five_minutes(),
            lateness_horizon: three_days(),
            spill_records: default_spill_records(),
        }
    }
}

fn default_spill_records() -> usize {
    DEFAULT_SPILL_RECORDS
}

/// Records held in memory while the store refuses commits (a full disk) unless configured:
/// collectors keep polling into them; past it they wait, and the polls they miss show as
/// gaps. A record takes a few hundred bytes, so 100,000 hold some tens of MB: at 400
/// readings a second (20 analysers of 20 channels polled every second) about four minutes.
pub const DEFAULT_SPILL_RECORDS: usize = 100_000;

fn five_minutes() -> Interval {
    Interval(Duration::from_secs(300))
}

/// Longer than a weekend's broker or link outage, which a site expects to recover whole.
fn three_days() -> Interval {
    Interval(Duration::from_secs(3 * 86_400))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// A loopback address: the endpoints have no authentication.
    pub listen: SocketAddr,
    /// Host names requests may carry besides the listen address and `localhost`: the name
    /// a reverse proxy forwards. Any other `Host` is refused (DNS rebinding).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Site {
    pub id: String,
    pub name: Option<String>,
    /// HJ 212 device id (MN) of this data logger.
    pub mn: Option<String>,
    /// Local time of the site, for day boundaries and HJ 212 DataTime.
    #[serde(default = "china_standard_time")]
    pub utc_offset: UtcOffset,
}

/// Where an analyser samples relative to the desulfurisation unit; inlet readings feed the
/// FGD efficiency only and are never reported as the stack's emissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Position {
    Inlet,
    #[default]
    Outlet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// Modbus TCP (MBAP header) to `address`.
    Tcp,
    /// Modbus RTU on the serial `bus`.
    Rtu,
    /// Modbus RTU frames over a TCP socket to `address`: a serial device server or DTU.
    RtuOverTcp,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Rtu => "rtu",
            Transport::RtuOverTcp => "rtu-over-tcp",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Parity {
    /// Most analysers ship set to 8N1, so that is the default, although the Modbus serial
    /// line spec names even parity as its default.
    #[default]
    None,
    Even,
    Odd,
}

/// One serial RS-485 (or RS-232) port and the timing of the Modbus RTU line on it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusConfig {
    pub id: String,
    /// Device path, e.g. "/dev/ttyUSB0" or "/dev/serial/by-id/…".
    pub port: String,
    #[serde(default = "baud_9600")]
    pub baud: u32,
    #[serde(default = "eight")]
    pub data_bits: u8,
    #[serde(default)]
    pub parity: Parity,
    #[serde(default = "one")]
    pub stop_bits: u8,
    /// How long a device may take to start answering; the wire time of the request and the
    /// reply at this baud rate is added on top. Devices may override it with `timeout`.
    #[serde(default = "half_a_second")]
    pub response_timeout: Interval,
    /// Silence before each request; default 3.5 character times, 1.75 ms above 19200 baud.
    pub inter_frame_delay: Option<Interval>,
    /// Extra pause after each reply before the next request, for slow devices.
    pub turnaround_delay: Option<Interval>,
    /// Write every frame on this bus to a daily pcapng file in `capture_dir`.
    #[serde(default)]
    pub capture: bool,
    /// Where capture files go, relative to the config file; default "capture".
    pub capture_dir: Option<PathBuf>,
}

impl BusConfig {
    /// Bits one character takes on the wire: start, data, parity, stop.
    pub fn bits_per_char(&self) -> u32 {
        let parity = u32::from(self.parity != Parity::None);
        1 + u32::from(self.data_bits) + parity + u32::from(self.stop_bits)
    }

    /// Time one character takes at the configured baud rate.
    pub fn char_time(&self) -> Duration {
        Duration::from_secs_f64(f64::from(self.bits_per_char()) / f64::from(self.baud.max(1)))
    }

    /// The Modbus serial line spec (V1.02 §2.5.1.1): frames are separated by 3.5 character
    /// times of silence, fixed at 1.75 ms above 19200 baud.
    pub fn inter_frame(&self) -> Duration {
        match self.inter_frame_delay {
            Some(delay) => delay.0,
            None if self.baud > 19_200 => Duration::from_micros(1_750),
            None => self.char_time().mul_f64(3.5),
        }
    }

    pub fn turnaround(&self) -> Duration {
        self.turnaround_delay.map_or(Duration::ZERO, |d| d.0)
    }

    /// The directory capture files are written to.
    pub fn capture_dir(&self, config_path: &Path) -> PathBuf {
        relative_to(
            config_path,
            self.capture_dir
                .as_deref()
                .unwrap_or_else(|| Path::new("capture")),
        )
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    pub id: String,
    pub profile: String,
    pub stack: String,
    pub transport: Transport,
    /// host:port of a Modbus TCP device or of the serial device server in front of an RTU one.
    pub address: Option<String>,
    /// The `[[bus]]` an RTU device hangs on.
    pub bus: Option<String>,
    #[serde(default = "unit_id_one")]
    pub unit_id: u8,
    #[serde(default = "ten_seconds")]
    pub poll_interval: Interval,
    /// How long one request may take before the device counts as silent; default 1 s, or the
    /// bus's `response_timeout` for RTU devices.
    pub timeout: Option<Interval>,
    /// Sockets cemsd may hold open to this device's endpoint at once (TCP transports); the
    /// devices behind one endpoint are spread over them. Default 1.
    pub max_connections: Option<u16>,
    /// Close the socket after every poll, for devices that accept a single client and must
    /// leave it to other masters in between.
    pub close_after_poll: Option<bool>,
    /// For devices that answer only single-value reads.
    #[serde(default)]
    pub one_value_per_request: bool,
    /// Largest read this device gets, at most 125 (and the profile's own limit).
    pub max_registers: Option<u16>,
    /// Unused registers a read may span to join two values into one request.
    pub max_hole: Option<u16>,
    #[serde(default)]
    pub position: Position,
    /// Only these channels of the profile; all when absent.
    pub channels: Option<Vec<String>>,
    /// Per-site spans of scaled-integer channels, e.g. `spans = { SO2 = [0, 750] }`.
    #[serde(default)]
    pub spans: BTreeMap<String, [f64; 2]>,
    /// Site status bindings added to the profile's `[[status]]`, same keys, addresses as the
    /// profile writes them: e.g. a DCS/PLC input that says the analyser is calibrating,
    /// `status = [{ table = "discrete_input", address = 12, flag = "C" }]`.
    #[serde(default)]
    pub status: Vec<crate::config::profile::StatusBit>,
    /// Overrides the profile's wet/dry basis: `basis = "dry"` for every channel (a cold-dry
    /// extractive system, whose analyser already sees dried gas), or per channel,
    /// `basis = { so2 = "dry" }`.
    pub basis: Option<BasisOverride>,
}

impl DeviceConfig {
    /// The basis `channel` is measured on at this site: the override, else the profile's.
    pub fn basis_of(&self, channel: &str, profile_basis: Basis) -> Basis {
        match &self.basis {
            Some(BasisOverride::All(basis)) => *basis,
            Some(BasisOverride::Channels(map)) => {
                map.get(channel).copied().unwrap_or(profile_basis)
            }
            None => profile_basis,
        }
    }
}

/// A device's `basis` key: one basis for all its channels, or one per channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BasisOverride {
    All(Basis),
    Channels(BTreeMap<String, Basis>),
}

impl<'de> Deserialize<'de> for BasisOverride {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = BasisOverride;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"wet\", \"dry\" or a table of channel = \"wet\" or \"dry\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<BasisOverride, E> {
                basis_named(v).map(BasisOverride::All)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<BasisOverride, A::Error> {
                let mut channels = BTreeMap::new();
                while let Some((channel, basis)) = map.next_entry::<String, String>()? {
                    channels.insert(channel, basis_named(&basis)?);
                }
                Ok(BasisOverride::Channels(channels))
            }
        }
        d.deserialize_any(Visitor)
    }
}

fn basis_named<E: serde::de::Error>(name: &str) -> Result<Basis, E> {
    match name {
        "wet" => Ok(Basis::Wet),
        "dry" => Ok(Basis::Dry),
        other => Err(E::custom(format!(
            "unknown basis {other:?}, expected one of `wet`, `dry`"
        ))),
    }
}

/// The smallest `[store] max_size` accepted: a day of 20 channels at 1 Hz takes about 120 MiB.
const MIN_STORE_SIZE: u64 = 64 << 20;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    #[serde(default = "default_store_path")]
    pub path: PathBuf,
    /// Rows older than this are deleted once every sink has taken them.
    pub retention: Option<Interval>,
    /// The most the store may use on disk; past it the oldest readings (then minute records)
    /// every sink has taken are deleted before their retention. Unset: half of the file
    /// system the store lies on, as measured at start.
    pub max_size: Option<byte_size::ByteSize>,
    /// How long polls no one waits for may gather before they are committed together (see
    /// `Pipeline::with_commit_delay`); "0s" commits each poll on its own.
    #[serde(default = "default_commit_delay")]
    pub commit_delay: Interval,
}

fn default_commit_delay() -> Interval {
    Interval(DEFAULT_COMMIT_DELAY)
}

/// Gathering polls for this long cuts what a 24-channel plant polled every second writes to
/// the flash from about 1.1 KB to under 400 bytes per record (`cargo bench --bench
/// flash_writes`).
pub const DEFAULT_COMMIT_DELAY: Duration = Duration::from_secs(5);

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: default_store_path(),
            retention: None,
            max_size: None,
            commit_delay: default_commit_delay(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulateConfig {
    pub profile: String,
    pub listen: SocketAddr,
    /// Scenario file, relative to the config file.
    pub scenario: Option<PathBuf>,
    #[serde(default)]
    pub seed: u64,
}

/// A duration written as "10s", "500ms", "2m", "90d".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval(pub Duration);

/// Reads a duration as configs and scenarios write it (humantime: "500ms", "10s", "2m",
/// "1h 30m", "90d"); the one parser behind [`Interval`], [`duration`] and [`duration_or_off`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| {
        format!(
            "invalid duration {text:?} ({e}): expected a number and a unit, e.g. \"10s\", \"500ms\", \"2m\", \"90d\""
        )
    })
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text)
            .map(Interval)
            .map_err(serde::de::Error::custom)
    }
}

/// For a plain `Duration` field: `#[serde(deserialize_with = "crate::config::duration")]`.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    Interval::deserialize(d).map(|i| i.0)
}

/// For an optional `Duration` field, absent when not written:
/// `#[serde(default, deserialize_with = "crate::config::optional_duration")]`.
pub fn optional_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// A duration, or "off" for none.
pub fn duration_or_off<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    if text == "off" {
        return Ok(None);
    }
    parse_duration(&text)
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("{e}, or \"off\"")))
}

fn china_standard_time() -> UtcOffset {
    UtcOffset::CHINA
}

fn unit_id_one() -> u8 {
    1
}

fn baud_9600() -> u32 {
    9600
}

fn eight() -> u8 {
    8
}

fn one() -> u8 {
    1
}

fn half_a_second() -> Interval {
    Interval(Duration::from_millis(500))
}

fn ten_seconds() -> Interval {
    Interval(Duration::from_secs(10))
}

/// Reply timeout of network devices that do not set one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

impl DeviceConfig {
    /// The request timeout in force: the device's own, else its bus's, else 1 s.
    pub fn effective_timeout(&self, buses: &[BusConfig]) -> Duration {
        match (self.timeout, self.transport, &self.bus) {
            (Some(timeout), _, _) => timeout.0,
            (None, Transport::Rtu, Some(bus)) => buses
                .iter()
                .find(|b| &b.id == bus)
                .map_or(DEFAULT_TIMEOUT, |b| b.response_timeout.0),
            _ => DEFAULT_TIMEOUT,
        }
    }
}

fn default_store_path() -> PathBuf {
    PathBuf::from("cemsd-data/cemsd.db")
}

/// A validated config with everything it refers to resolved.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub path: PathBuf,
    pub config: SiteConfig,
    pub profiles: ProfileSet,
    /// What the config allows but leaves the data short of (see [`warnings`]): `cemsd check`
    /// prints them and the daemon logs them at start; neither refuses the config.
    pub warnings: Vec<SourceError>,
}

#[derive(Debug)]
pub enum ConfigError {
    Unreadable(PathBuf, std::io::Error),
    Invalid(SourceError),
    Profiles(ProfileDirError),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Unreadable(path, err) => write!(
                f,
                "{}: cannot read the config: {err}\n  help: pass the path of a site config, e.g. --config deploy/demo.toml",
                path.display()
            ),
            ConfigError::Invalid(err) => write!(f, "{err}"),
            ConfigError::Profiles(err) => write!(f, "{err}"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl From<SourceError> for ConfigError {
    fn from(err: SourceError) -> Self {
        ConfigError::Invalid(err)
    }
}

/// Reads, parses and validates a site config.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| ConfigError::Unreadable(path.into(), e))?;
    parse(path, &text)
}

/// Parses and validates config text; `path` is used for messages and relative paths.
pub fn parse(path: &Path, text: &str) -> Result<Loaded, ConfigError> {
    let src = SourceText::new(path, text);
    let mut config: SiteConfig = toml::from_str(text).map_err(|e| src.from_toml(&e))?;
    let mut profiles = ProfileSet::shipped()?;
    if let Some(dir) = &config.profiles_dir {
        let dir = relative_to(path, dir);
        profiles.load_dir(&dir).map_err(ConfigError::Profiles)?;
    }
    validate(&src, &config, &profiles)?;
    if let Some(listener) = &mut config.hj212_listener {
        logger_registry::load_into(&src, listener)?;
    }
    for source in &mut config.mqtt {
        mqtt::partition::keep_own_devices(source);
    }
    let warnings = warnings(&src, &config, &profiles);
    config.wire_units = bound_channels(&config, &profiles)
        .into_iter()
        .map(|c| ((c.device.to_string(), c.channel.to_string()), c.unit))
        .collect();
    Ok(Loaded {
        path: path.to_path_buf(),
        config,
        profiles,
        warnings,
    })
}

/// Paths in a config are relative to the config file, so a site directory can be moved whole.
pub fn relative_to(config_path: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    config_path
        .parent()
        .map(|dir| dir.join(path))
        .unwrap_or_else(|| path.to_path_buf())
}

fn one_of<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<_> = names.collect();
    if names.is_empty() {
        "none are defined".into()
    } else {
        format!("one of: {}", names.join(", "))
    }
}

fn validate(
    src: &SourceText,
    config: &SiteConfig,
    profiles: &ProfileSet,
) -> Result<(), SourceError> {
    let mut stack_ids = HashSet::new();
    for (i, stack) in config.stacks.iter().enumerate() {
        if let Err(e) = stack.validate() {
            return Err(src.error_at_path(
                &[Seg::Key("stack"), Seg::Index(i), Seg::Key(e.key)],
                e.message,
                e.help,
            ));
        }
        if !stack_ids.insert(stack.id.as_str()) {
            return Err(src.error_at_path(
                &[Seg::Key("stack"), Seg::Index(i), Seg::Key("id")],
                format!("stack id {:?} is used twice", stack.id),
                Some("give every [[stack]] its own id".into()),
            ));
        }
    }
    validate_buses(src, &config.buses)?;
    let mut device_ids = HashSet::new();
    for (i, device) in config.devices.iter().enumerate() {
        let at = |key| [Seg::Key("device"), Seg::Index(i), Seg::Key(key)];
        if !device_ids.insert(device.id.as_str()) {
            return Err(src.error_at_path(
                &at("id"),
                format!("device id {:?} is used twice", device.id),
                Some("give every [[device]] its own id".into()),
            ));
        }
        if !stack_ids.contains(device.stack.as_str()) {
            return Err(src.error_at_path(
                &at("stack"),
                format!(
                    "device {:?} is bound to stack {:?}, which is not defined",
                    device.id, device.stack
                ),
                Some(format!(
                    "use {}, or add a [[stack]] with id = {:?}",
                    one_of(config.stacks.iter().map(|s| s.id.as_str())),
                    device.stack
                )),
            ));
        }
        let Some(profile) = profiles.get(&device.profile) else {
            return Err(src.error_at_path(
                &at("profile"),
                format!("unknown profile {:?}", device.profile),
                Some(format!(
                    "use {} (list them with `cemsd profiles list`), or add the profile to profiles_dir",
                    one_of(profiles.names())
                )),
            ));
        };
        validate_transport(src, config, i, device)?;
        if device.poll_interval.0 < Duration::from_millis(100) {
            return Err(src.error_at_path(
                &at("poll_interval"),
                "a poll interval under 100ms is not supported",
                Some("analysers update about once a second; use e.g. \"1s\" or \"10s\"".into()),
            ));
        }
        let timeout = device.effective_timeout(&config.buses);
        if timeout.is_zero() || timeout >= device.poll_interval.0 {
            return Err(src.error_at_path(
                &at("timeout"),
                "the timeout must be above zero and shorter than the poll interval",
                Some("e.g. timeout = \"1s\" with poll_interval = \"10s\"".into()),
            ));
        }
        let channel_names = || profile.channels.iter().map(|c| c.name.as_str());
        if let Some(channels) = &device.channels {
            for (j, name) in channels.iter().enumerate() {
                if profile.channel(name).is_none() {
                    return Err(src.error_at_path(
                        &[
                            Seg::Key("device"),
                            Seg::Index(i),
                            Seg::Key("channels"),
                            Seg::Index(j),
                        ],
                        format!("profile {:?} has no channel {:?}", profile.name, name),
                        Some(format!("use {}", one_of(channel_names()))),
                    ));
                }
            }
        }
        crate::config::profile::validate_status(
            src,
            &[Seg::Key("device"), Seg::Index(i)],
            profile.address_base,
            &device.status,
        )?;
        for (name, [lo, hi]) in &device.spans {
            let path = [
                Seg::Key("device"),
                Seg::Index(i),
                Seg::Key("spans"),
                Seg::Key(name),
            ];
            match profile.channel(name) {
                None => {
                    return Err(src.error_at_path(
                        &path,
                        format!("profile {:?} has no channel {:?}", profile.name, name),
                        Some(format!("use {}", one_of(channel_names()))),
                    ))
                }
                Some(ch) if ch.raw_range.is_none() => {
                    return Err(src.error_at_path(
                        &path,
                        format!(
                            "channel {name:?} is not a scaled-integer channel, so it has no span"
                        ),
                        Some("spans apply to channels with raw_range in the profile".into()),
                    ))
                }
                Some(_) if !(lo.is_finite() && hi.is_finite() && hi > lo) => {
                    return Err(src.error_at_path(
                        &path,
                        format!("span [{lo}, {hi}] must be two finite numbers, low then high"),
                        None,
                    ))
                }
                Some(_) => {}
            }
        }
        if let Some(BasisOverride::Channels(map)) = &device.basis {
            if let Some(name) = map.keys().find(|name| profile.channel(name).is_none()) {
                return Err(src.error_at_path(
                    &[
                        Seg::Key("device"),
                        Seg::Index(i),
                        Seg::Key("basis"),
                        Seg::Key(name),
                    ],
                    format!("profile {:?} has no channel {:?}", profile.name, name),
                    Some(format!("use {}", one_of(channel_names()))),
                ));
            }
        }
    }
    for (i, stack) in config.stacks.iter().enumerate() {
        let measures_velocity = config.devices.iter().any(|d| {
            d.stack == stack.id
                && profiles.get(&d.profile).is_some_and(|p| {
                    p.channels.iter().any(|c| {
                        c.quantity == Quantity::Velocity
                            && d.channels.as_ref().is_none_or(|w| w.contains(&c.name))
                    })
                })
        });
        if measures_velocity
            && stack.flow_from == FlowSource::Velocity
            && stack.duct_area_m2.is_none()
        {
            return Err(src.error_at_path(
                &[Seg::Key("stack"), Seg::Index(i)],
                format!("stack {:?} measures flue-gas velocity but has no duct area to turn it into flow", stack.id),
                Some("add duct_area_m2 (m2 at the measuring point), or set flow_from to \"actual_flow\" or \"standard_dry_flow\"".into()),
            ));
        }
    }
    validate_endpoints(src, config)?;
    let mut listens = HashSet::new();
    for (i, sim) in config.simulators.iter().enumerate() {
        let at = |key| [Seg::Key("simulate"), Seg::Index(i), Seg::Key(key)];
        if profiles.get(&sim.profile).is_none() {
            return Err(src.error_at_path(
                &at("profile"),
                format!("unknown profile {:?}", sim.profile),
                Some(format!("use {}", one_of(profiles.names()))),
            ));
        }
        if !listens.insert(sim.listen) {
            return Err(src.error_at_path(
                &at("listen"),
                format!("two simulators listen on {}", sim.listen),
                Some("give each [[simulate]] its own port".into()),
            ));
        }
    }
    crate::config::influx::validate(src, &config.influx)?;
    crate::config::hj212_uplink::validate(src, &config.hj212, &config.site, &config.stacks)?;
    crate::config::mqtt::validate(src, &config.mqtt, &config.stacks, &device_ids)?;
    let taken: Vec<SocketAddr> = config
        .http
        .iter()
        .map(|h| h.listen)
        .chain(listens.iter().copied())
        .collect();
    crate::config::hj212_listener::validate(src, config.hj212_listener.as_ref(), &taken)?;
    if let Some(http) = config
        .http
        .as_ref()
        .filter(|h| !h.listen.ip().is_loopback())
    {
        return Err(src.error_at_path(
            &[Seg::Key("http"), Seg::Key("listen")],
            format!("{} is not a loopback address", http.listen),
            Some("the status page and metrics have no authentication: listen on e.g. \"127.0.0.1:8080\" and put a reverse proxy with authentication in front".into()),
        ));
    }
    let tolerance = config.ingest.future_tolerance.0;
    if !(Duration::from_secs(1)..=Duration::from_secs(86_400)).contains(&tolerance) {
        return Err(src.error_at_path(
            &[Seg::Key("ingest"), Seg::Key("future_tolerance")],
            "the future tolerance must be between 1s and 1d",
            Some("use e.g. \"5m\" (the default): enough for clocks that drift, short enough that a wrong one is caught".into()),
        ));
    }
    let horizon = config.ingest.lateness_horizon.0;
    if !(Duration::from_secs(3600)..=Duration::from_secs(31 * 86_400)).contains(&horizon) {
        return Err(src.error_at_path(
            &[Seg::Key("ingest"), Seg::Key("lateness_horizon")],
            "the lateness horizon must be between 1h and 31d",
            Some("use e.g. \"3d\" (the default): longer than any outage after which delayed readings should still count".into()),
        ));
    }
    if !(1000..=10_000_000).contains(&config.ingest.spill_records) {
        return Err(src.error_at_path(
            &[Seg::Key("ingest"), Seg::Key("spill_records")],
            format!(
                "spill_records = {} is outside 1000..=10000000",
                config.ingest.spill_records
            ),
            Some("use e.g. 100000 (the default, about 25 MB of memory)".into()),
        ));
    }
    if let Some(retention) = config.store.retention.as_ref().filter(|r| r.0 < horizon) {
        return Err(src.error_at_path(
            &[Seg::Key("ingest"), Seg::Key("lateness_horizon")],
            format!(
                "the lateness horizon ({}) is longer than the store's retention ({}): a late reading could re-open a day whose readings are deleted",
                humantime::format_duration(horizon),
                humantime::format_duration(retention.0)
            ),
            Some("shorten [ingest] lateness_horizon or lengthen [store] retention".into()),
        ));
    }
    if let Some(retention) = &config.store.retention {
        if retention.0 < Duration::from_secs(3600) {
            return Err(src.error_at_path(
                &[Seg::Key("store"), Seg::Key("retention")],
                "a retention under one hour would delete data before it can be aggregated",
                Some("use e.g. \"90d\"; rows are kept until every sink has them anyway".into()),
            ));
        }
    }
    if config.store.commit_delay.0 > Duration::from_secs(60) {
        return Err(src.error_at_path(
            &[Seg::Key("store"), Seg::Key("commit_delay")],
            "a commit delay over a minute puts that much of every device's polls at risk in a crash",
            Some("use e.g. \"5s\", or \"0s\" to commit each poll on its own".into()),
        ));
    }
    if let Some(max_size) = config.store.max_size.filter(|m| m.0 < MIN_STORE_SIZE) {
        return Err(src.error_at_path(
            &[Seg::Key("store"), Seg::Key("max_size")],
            format!("a store budget of {max_size} cannot hold a day of even a small plant"),
            Some("use at least \"64MiB\", e.g. \"4GiB\" on an 8 GB gateway".into()),
        ));
    }
    Ok(())
}

/// Where a device is written in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceAt {
    /// `device[i]`, a polled device.
    Polled(usize),
    /// `mqtt[i].device[j]`.
    Mqtt(usize, usize),
}

impl DeviceAt {
    fn path(self) -> Vec<Seg<'static>> {
        match self {
            DeviceAt::Polled(i) => vec![Seg::Key("device"), Seg::Index(i)],
            DeviceAt::Mqtt(i, j) => vec![
                Seg::Key("mqtt"),
                Seg::Index(i),
                Seg::Key("device"),
                Seg::Index(j),
            ],
        }
    }
}

/// One device channel as processing sees it: the config's binding resolved against the
/// device's profile (polled devices) or its MQTT channel table.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundChannel<'a> {
    pub device: &'a str,
    pub at: DeviceAt,
    pub stack: &'a str,
    pub position: Position,
    /// How often the channel delivers a value: the poll or publishing interval.
    pub interval: Duration,
    pub channel: &'a str,
    pub quantity: Quantity,
    /// The unit values arrive in (raw values are stored in it).
    pub unit: Unit,
    /// Wet or dry, after the device's `basis` override.
    pub basis: Basis,
    /// Measuring range in `unit`.
    pub range: Option<[f64; 2]>,
}

/// Every channel of every device, polled ones first, in config order. Devices whose profile
/// is unknown are left out (a loaded config has none).
pub fn bound_channels<'a>(
    config: &'a SiteConfig,
    profiles: &'a ProfileSet,
) -> Vec<BoundChannel<'a>> {
    let mut out = Vec::new();
    for (i, device) in config.devices.iter().enumerate() {
        let Some(profile) = profiles.get(&device.profile) else {
            continue;
        };
        let wanted = profile
            .channels
            .iter()
            .filter(|c| device.channels.as_ref().is_none_or(|w| w.contains(&c.name)));
        out.extend(wanted.map(|c| BoundChannel {
            device: &device.id,
            at: DeviceAt::Polled(i),
            stack: &device.stack,
            position: device.position,
            interval: device.poll_interval.0,
            channel: &c.name,
            quantity: c.quantity,
            unit: c.unit,
            basis: device.basis_of(&c.name, c.basis),
            range: c.range,
        }));
    }
    for (i, source) in config.mqtt.iter().enumerate() {
        for (j, device) in source.devices.iter().enumerate() {
            for (name, c) in &device.channels {
                let Some(quantity) = c.quantity_of(name) else {
                    continue;
                };
                out.push(BoundChannel {
                    device: &device.id,
                    at: DeviceAt::Mqtt(i, j),
                    stack: &device.stack,
                    position: device.position,
                    interval: device.interval.0,
                    channel: name,
                    quantity,
                    unit: c.unit,
                    basis: c.basis,
                    range: c.range,
                });
            }
        }
    }
    out
}

/// What a valid config leaves the data short of, one warning per cause:
/// - an outlet with pollutant channels but no O2 channel: its pollutants cannot be corrected
///   to the reference O2 (HJ 75-2017 has no set value for O2), so they are stored without the
///   value the limits apply to;
/// - a wet-basis concentration at a measuring point with neither a moisture channel nor the
///   stack's `moisture_set_percent`: it cannot be made dry, so it is stored raw only;
/// - `moisture_set_percent` on a stack that measures moisture: the set value is not used;
/// - a stack that derives NOx from NO while an analyser on it delivers NOx too: two NOx
///   series reach the reports and the bureau.
pub fn warnings(src: &SourceText, config: &SiteConfig, profiles: &ProfileSet) -> Vec<SourceError> {
    let channels = bound_channels(config, profiles);
    let mut out = Vec::new();
    for (i, stack) in config.stacks.iter().enumerate() {
        let at_point = |position: Position| {
            channels
                .iter()
                .filter(move |c| c.stack == stack.id && c.position == position)
        };
        let has = |position: Position, q: Quantity| at_point(position).any(|c| c.quantity == q);
        let stack_path = [Seg::Key("stack"), Seg::Index(i)];
        let pollutants = at_point(Position::Outlet).any(|c| c.quantity.is_pollutant());
        if pollutants && !has(Position::Outlet, Quantity::O2) {
            out.push(src.error_at_path(
                &stack_path,
                format!(
                    "stack {:?} has no O2 source: its pollutants get no O2-corrected value, the value the emission limits apply to; their readings are stored with the measured value and the note \"no O2 source\"",
                    stack.id
                ),
                Some("bind the O2 analyser (or its channel) to this stack; HJ 75-2017 allows no set value for O2 in the correction".into()),
            ));
        }
        if stack.nox != NoxMethod::Direct {
            for position in [Position::Outlet, Position::Inlet] {
                let Some(delivered) = at_point(position).find(|c| c.quantity == Quantity::NOx)
                else {
                    continue;
                };
                if !has(position, Quantity::NO) {
                    continue;
                }
                let mut path = stack_path.to_vec();
                path.push(Seg::Key("id"));
                out.push(src.error_at_path(
                    &path,
                    format!(
                        "stack {:?} derives NOx from NO (nox = {:?}) and device {:?} delivers NOx itself (channel {:?}): both are stored, as channel {:?} and channel {:?}, and both go to the reports, InfluxDB and the HJ 212 uplink as NOx",
                        stack.id,
                        stack.nox.name(),
                        delivered.device,
                        delivered.channel,
                        DERIVED_NOX_CHANNEL,
                        delivered.channel
                    ),
                    Some(format!(
                        "set nox = \"direct\" on the stack to use the analyser's NOx, or list the device's channels without {:?} (channels = [...]) to keep the derived one",
                        delivered.channel
                    )),
                ));
            }
        }
        let points: Vec<Position> = [Position::Outlet, Position::Inlet]
            .into_iter()
            .filter(|p| at_point(*p).next().is_some())
            .collect();
        let measured_everywhere = points.iter().all(|p| has(*p, Quantity::Humidity));
        if stack.moisture_set_percent.is_some() && !points.is_empty() && measured_everywhere {
            let mut path = stack_path.to_vec();
            path.push(Seg::Key("moisture_set_percent"));
            out.push(src.error_at_path(
                &path,
                format!(
                    "stack {:?} measures moisture, so the set value is not used",
                    stack.id
                ),
                Some("remove moisture_set_percent, or the moisture channel if it is not in service".into()),
            ));
        }
        for position in points {
            if has(position, Quantity::Humidity) || stack.moisture_set_percent.is_some() {
                continue;
            }
            let point = match position {
                Position::Outlet => format!("stack {:?}", stack.id),
                Position::Inlet => format!("the FGD inlet of stack {:?}", stack.id),
            };
            let mut wet: Vec<&BoundChannel> = at_point(position)
                .filter(|c| {
                    c.basis == Basis::Wet
                        && (c.quantity.is_pollutant() || c.quantity == Quantity::O2)
                })
                .collect();
            while let Some(first) = wet.first().copied() {
                let (of_device, rest): (Vec<_>, Vec<_>) =
                    wet.into_iter().partition(|c| c.device == first.device);
                wet = rest;
                let names: Vec<String> = of_device
                    .iter()
                    .map(|c| format!("{:?}", c.channel))
                    .collect();
                let mut path = first.at.path();
                path.push(match first.at {
                    DeviceAt::Polled(_) => Seg::Key("profile"),
                    DeviceAt::Mqtt(..) => Seg::Key("channels"),
                });
                out.push(src.error_at_path(
                    &path,
                    format!(
                        "device {:?} measures {} on a wet basis, but {point} has no moisture source: those values cannot be made dry and are stored raw only, with the note \"no moisture source\"",
                        first.device,
                        names.join(", ")
                    ),
                    Some("for a cold-dry extractive analyser set basis = \"dry\" on the device; otherwise bind a moisture channel to the stack, or set moisture_set_percent where a set value is allowed".into()),
                ));
            }
        }
    }
    out
}

fn validate_buses(src: &SourceText, buses: &[BusConfig]) -> Result<(), SourceError> {
    let mut ids = HashSet::new();
    let mut ports: Vec<(&str, Option<PathBuf>)> = Vec::new();
    for (i, bus) in buses.iter().enumerate() {
        let at = |key| [Seg::Key("bus"), Seg::Index(i), Seg::Key(key)];
        if !ids.insert(bus.id.as_str()) {
            return Err(src.error_at_path(
                &at("id"),
                format!("bus id {:?} is used twice", bus.id),
                Some("give every [[bus]] its own id".into()),
            ));
        }
        // the same device may be written two ways (a by-id link and /dev/ttyUSB0)
        let resolved = std::fs::canonicalize(&bus.port).ok();
        if let Some((other, _)) = ports
            .iter()
            .find(|(port, real)| *port == bus.port || (resolved.is_some() && *real == resolved))
        {
            return Err(src.error_at_path(
                &at("port"),
                format!(
                    "port {:?} is already used by another bus ({other:?})",
                    bus.port
                ),
                Some(
                    "one serial port is one bus: put every device on it under the same [[bus]] \
                     and give them different unit_id values"
                        .into(),
                ),
            ));
        }
        ports.push((&bus.port, resolved));
        if !(50..=4_000_000).contains(&bus.baud) {
            return Err(src.error_at_path(
                &at("baud"),
                format!("baud rate {} is out of range", bus.baud),
                Some("use the analyser's setting, e.g. 9600, 19200 or 38400".into()),
            ));
        }
        if bus.data_bits != 8 {
            return Err(src.error_at_path(
                &at("data_bits"),
                format!("{} data bits cannot carry Modbus RTU", bus.data_bits),
                Some("RTU frames are 8-bit bytes: data_bits = 8 (or remove the key)".into()),
            ));
        }
        if !(1..=2).contains(&bus.stop_bits) {
            return Err(src.error_at_path(
                &at("stop_bits"),
                format!("{} stop bits is not a serial setting", bus.stop_bits),
                Some("use 1 or 2".into()),
            ));
        }
        if bus.response_timeout.0.is_zero() {
            return Err(src.error_at_path(
                &at("response_timeout"),
                "a response timeout of zero would fail every request",
                Some("analysers answer within 50–500 ms; use e.g. \"500ms\"".into()),
            ));
        }
    }
    Ok(())
}

/// The keys a device needs and must not have for its transport.
fn validate_transport(
    src: &SourceText,
    config: &SiteConfig,
    i: usize,
    device: &DeviceConfig,
) -> Result<(), SourceError> {
    let at = |key| [Seg::Key("device"), Seg::Index(i), Seg::Key(key)];
    let transport = device.transport.name();
    match device.transport {
        Transport::Rtu => {
            if device.address.is_some() {
                return Err(src.error_at_path(
                    &at("address"),
                    "an rtu device is reached through its bus, not an address",
                    Some("remove address and set bus = \"<id of a [[bus]]>\"; for a serial device server use transport = \"rtu-over-tcp\"".into()),
                ));
            }
            let Some(bus) = &device.bus else {
                return Err(src.error_at_path(
                    &at("bus"),
                    format!(
                        "device {:?} uses transport \"rtu\" but names no bus",
                        device.id
                    ),
                    Some(format!(
                        "add bus = \"…\" with {}",
                        one_of(config.buses.iter().map(|b| b.id.as_str()))
                    )),
                ));
            };
            if !config.buses.iter().any(|b| &b.id == bus) {
                return Err(src.error_at_path(
                    &at("bus"),
                    format!(
                        "device {:?} is on bus {bus:?}, which is not defined",
                        device.id
                    ),
                    Some(format!(
                        "use {}, or add a [[bus]] with id = {bus:?}",
                        one_of(config.buses.iter().map(|b| b.id.as_str()))
                    )),
                ));
            }
            if !(1..=247).contains(&device.unit_id) {
                return Err(src.error_at_path(
                    &at("unit_id"),
                    format!("unit id {} cannot be polled on a serial bus", device.unit_id),
                    Some("serial devices have addresses 1 to 247 (0 is broadcast, which gets no reply)".into()),
                ));
            }
            for key in ["max_connections", "close_after_poll"] {
                let set = match key {
                    "max_connections" => device.max_connections.is_some(),
                    _ => device.close_after_poll.is_some(),
                };
                if set {
                    return Err(src.error_at_path(
                        &at(key),
                        format!("{key} applies to network connections, not to a serial bus"),
                        Some(
                            "remove it; a bus has one owner that polls its devices in turn".into(),
                        ),
                    ));
                }
            }
        }
        Transport::Tcp | Transport::RtuOverTcp => {
            if device.bus.is_some() {
                return Err(src.error_at_path(
                    &at("bus"),
                    format!("a {transport} device is reached at its address, not on a bus"),
                    Some(
                        "remove bus, or use transport = \"rtu\" for a device wired to a [[bus]]"
                            .into(),
                    ),
                ));
            }
            let Some(address) = &device.address else {
                return Err(src.error_at_path(
                    &at("address"),
                    format!(
                        "device {:?} uses transport \"{transport}\" but has no address",
                        device.id
                    ),
                    Some("add address = \"host:port\", e.g. \"192.168.1.20:502\"".into()),
                ));
            };
            if address.parse::<SocketAddr>().is_err() && !looks_like_host_port(address) {
                return Err(src.error_at_path(
                    &at("address"),
                    format!("{address:?} is not a host:port address"),
                    Some("write e.g. \"192.168.1.20:502\"".into()),
                ));
            }
            if device.max_connections == Some(0) {
                return Err(src.error_at_path(
                    &at("max_connections"),
                    "at least one connection is needed to poll the device",
                    Some("use 1 for devices that accept a single client".into()),
                ));
            }
        }
    }
    if let Some(max) = device.max_registers {
        if !(1..=MAX_REGISTERS_PER_READ).contains(&max) {
            return Err(src.error_at_path(
                &at("max_registers"),
                format!("max_registers = {max} is outside 1..=125"),
                Some("Modbus reads at most 125 registers at a time".into()),
            ));
        }
    }
    Ok(())
}

/// Devices that share a line must agree on it: one unit id per device on a bus, one transport
/// and one set of connection options per network endpoint.
fn validate_endpoints(src: &SourceText, config: &SiteConfig) -> Result<(), SourceError> {
    for (i, device) in config.devices.iter().enumerate() {
        let at = |key| [Seg::Key("device"), Seg::Index(i), Seg::Key(key)];
        for other in &config.devices[..i] {
            match (&device.bus, &other.bus) {
                (Some(bus), Some(other_bus))
                    if bus == other_bus && device.unit_id == other.unit_id =>
                {
                    return Err(src.error_at_path(
                        &at("unit_id"),
                        format!(
                            "unit id {} is already used on bus {bus:?} by device {:?}",
                            device.unit_id, other.id
                        ),
                        Some("every device on one bus needs its own unit_id; set the analyser's Modbus address to a free one".into()),
                    ));
                }
                _ => {}
            }
            let (Some(address), Some(other_address)) = (&device.address, &other.address) else {
                continue;
            };
            if address != other_address {
                continue;
            }
            if device.transport != other.transport {
                return Err(src.error_at_path(
                    &at("transport"),
                    format!(
                        "{address} is reached with {} by device {:?}; one endpoint speaks one protocol",
                        other.transport.name(),
                        other.id
                    ),
                    Some(format!("use transport = \"{}\"", other.transport.name())),
                ));
            }
            let conflicts = [
                (
                    "max_connections",
                    device.max_connections.is_some()
                        && other.max_connections.is_some()
                        && device.max_connections != other.max_connections,
                ),
                (
                    "close_after_poll",
                    device.close_after_poll.is_some()
                        && other.close_after_poll.is_some()
                        && device.close_after_poll != other.close_after_poll,
                ),
            ];
            if let Some((key, _)) = conflicts.into_iter().find(|(_, differ)| *differ) {
                return Err(src.error_at_path(
                    &at(key),
                    format!(
                        "device {:?} at the same address {address} sets {key} differently",
                        other.id
                    ),
                    Some("connection options belong to the endpoint: give every device behind it the same value, or set it on one only".into()),
                ));
            }
        }
    }
    Ok(())
}

fn looks_like_host_port(address: &str) -> bool {
    match address.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty() && !host.contains(' ') && port.parse::<u16>().is_ok()
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Durations {
        interval: Option<Interval>,
        #[serde(default, deserialize_with = "duration_or_off")]
        frozen_after: Option<Duration>,
        #[serde(default = "zero", deserialize_with = "duration")]
        start: Duration,
    }

    fn zero() -> Duration {
        Duration::ZERO
    }

    fn parse(text: &str) -> Result<Durations, String> {
        toml::from_str(text).map_err(|e| e.message().to_string())
    }

    /// Sites, stacks and scenarios parsed durations with three messages and two sets of
    /// examples; every duration key now reads the same forms and fails with one message.
    #[test]
    fn every_duration_key_reads_the_same_forms_and_fails_the_same_way() {
        for (text, expected) in [
            ("500ms", Duration::from_millis(500)),
            ("10s", Duration::from_secs(10)),
            ("2m", Duration::from_secs(120)),
            ("1h 30m", Duration::from_secs(5400)),
            ("90d", Duration::from_secs(90 * 86_400)),
        ] {
            assert_eq!(parse_duration(text), Ok(expected));
            let parsed = parse(&format!(
                "interval = {text:?}\nfrozen_after = {text:?}\nstart = {text:?}\n"
            ));
            let parsed = parsed.unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(parsed.interval, Some(Interval(expected)));
            assert_eq!(parsed.frozen_after, Some(expected));
            assert_eq!(parsed.start, expected);
        }
        assert_eq!(
            parse("frozen_after = \"off\"").map(|d| d.frozen_after),
            Ok(None)
        );
        let message = parse_duration("soon").err().unwrap_or_default();
        assert!(
            message.starts_with("invalid duration \"soon\" (")
                && message.ends_with("e.g. \"10s\", \"500ms\", \"2m\", \"90d\""),
            "{message}"
        );
        assert_eq!(parse("interval = \"soon\"").err(), Some(message.clone()));
        assert_eq!(parse("start = \"soon\"").err(), Some(message.clone()));
        assert_eq!(
            parse("frozen_after = \"soon\"").err(),
            Some(format!("{message}, or \"off\""))
        );
    }

    const SITE: &str = "[site]\nid = \"p\"\n\n[[stack]]\nid = \"u1\"\n\n[[device]]\nid = \"so2\"\nprofile = \"thermo-43i\"\nstack = \"u1\"\ntransport = \"tcp\"\naddress = \"127.0.0.1:502\"\n";

    fn loaded(text: &str) -> Result<Loaded, String> {
        super::parse(Path::new("site.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_device_basis_overrides_the_profiles() {
        let basis = |text: &str| {
            let loaded = loaded(text).unwrap_or_else(|e| panic!("{e}"));
            let channel = bound_channels(&loaded.config, &loaded.profiles)
                .into_iter()
                .find(|c| c.channel == "so2")
                .map(|c| (c.basis, c.unit));
            channel.unwrap_or_else(|| panic!("no so2 channel"))
        };
        // the 43i's profile says wet, in ppb
        assert_eq!(basis(SITE), (Basis::Wet, Unit::Ppb));
        assert_eq!(
            basis(&format!("{SITE}basis = \"dry\"\n")),
            (Basis::Dry, Unit::Ppb)
        );
        assert_eq!(
            basis(&format!("{SITE}basis = {{ so2 = \"dry\" }}\n")),
            (Basis::Dry, Unit::Ppb)
        );
        let err = loaded(&format!("{SITE}basis = {{ so3 = \"dry\" }}\n")).err();
        let err = err.unwrap_or_default();
        assert!(
            err.starts_with("site.toml:13:17:") && err.contains("device[0].basis.so3"),
            "{err}"
        );
        let err = loaded(&format!("{SITE}basis = \"damp\"\n")).err();
        assert!(
            err.as_deref()
                .unwrap_or_default()
                .contains("unknown basis \"damp\""),
            "{err:?}"
        );
    }

    #[test]
    fn a_stack_without_o2_or_moisture_is_warned_about_not_refused() {
        let warnings = |text: &str| -> Vec<String> {
            let loaded = loaded(text).unwrap_or_else(|e| panic!("{e}"));
            loaded.warnings.iter().map(|w| w.to_string()).collect()
        };
        let both = warnings(SITE);
        assert_eq!(both.len(), 2, "{both:?}");
        assert!(both[0].starts_with("site.toml:4:1: stack[0]: stack \"u1\" has no O2 source"));
        assert!(both[1].starts_with(
            "site.toml:9:11: device[0].profile: device \"so2\" measures \"so2\" on a wet basis"
        ));
        // dry, or with a set moisture: only the O2 warning is left
        for fix in ["basis = \"dry\"\n", ""] {
            let text = if fix.is_empty() {
                SITE.replace("id = \"u1\"\n", "id = \"u1\"\nmoisture_set_percent = 8.5\n")
            } else {
                format!("{SITE}{fix}")
            };
            let left = warnings(&text);
            assert_eq!(left.len(), 1, "{left:?}");
            assert!(left[0].contains("has no O2 source"), "{left:?}");
        }
        // an analyser with O2 and moisture on the stack: nothing to say
        let full = SITE
            .replace("thermo-43i", "sdl-scs900-plc")
            .replace("id = \"u1\"\n", "id = \"u1\"\nduct_area_m2 = 20\n");
        assert_eq!(warnings(&full), Vec::<String>::new());
    }

    #[test]
    fn an_analyser_delivering_nox_on_a_stack_that_derives_it_is_warned_about() {
        let nox_warnings = |text: &str| -> Vec<String> {
            let loaded = loaded(text).unwrap_or_else(|e| panic!("{e}"));
            loaded
                .warnings
                .iter()
                .map(|w| w.to_string())
                .filter(|w| w.contains("NOx"))
                .collect()
        };
        // the 1080 delivers SO2, NO, O2, NO2 and NOx
        let sdl = SITE.replace("thermo-43i", "sdl-model-1080");
        let found = nox_warnings(&sdl);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("site.toml:5:6: stack[0].id: stack \"u1\" derives NOx from NO (nox = \"no_plus_no2\") and device \"so2\" delivers NOx itself (channel \"nox\")"),
            "{found:?}"
        );
        // either fix silences it: the analyser's NOx, or the channel left out
        let direct = sdl.replace("id = \"u1\"\n", "id = \"u1\"\nnox = \"direct\"\n");
        assert_eq!(nox_warnings(&direct), Vec::<String>::new());
        let without = format!("{sdl}channels = [\"so2\", \"no\", \"o2\", \"no2\"]\n");
        assert_eq!(nox_warnings(&without), Vec::<String>::new());
    }

    #[test]
    fn the_future_tolerance_defaults_to_five_minutes_and_is_checked_at_its_key() {
        let site = "[site]\nid = \"t\"\n";
        let loaded = super::parse(Path::new("site.toml"), site).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            loaded.config.ingest.future_tolerance,
            Interval(Duration::from_secs(300))
        );
        let text = format!("{site}\n[ingest]\nfuture_tolerance = \"30s\"\n");
        let loaded = super::parse(Path::new("site.toml"), &text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            loaded.config.ingest.future_tolerance,
            Interval(Duration::from_secs(30))
        );
        let text = format!("{site}\n[ingest]\nfuture_tolerance = \"0s\"\n");
        let message = super::parse(Path::new("site.toml"), &text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            message.starts_with("site.toml:5:20: ingest.future_tolerance: "),
            "{message}"
        );
    }

    #[test]
    fn the_lateness_horizon_defaults_to_three_days_and_fits_the_retention() {
        let site = "[site]\nid = \"t\"\n";
        let loaded = super::parse(Path::new("site.toml"), site).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            loaded.config.ingest.lateness_horizon,
            Interval(Duration::from_secs(3 * 86_400))
        );
        let error = |text: &str| {
            super::parse(Path::new("site.toml"), text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let message = error(&format!("{site}\n[ingest]\nlateness_horizon = \"10m\"\n"));
        assert!(
            message.starts_with("site.toml:5:20: ingest.lateness_horizon: "),
            "{message}"
        );
        let message = error(&format!(
            "{site}\n[store]\nretention = \"2d\"\n[ingest]\nlateness_horizon = \"3d\"\n"
        ));
        assert!(
            message.contains("longer than the store's retention (2days)"),
            "{message}"
        );
    }
}
