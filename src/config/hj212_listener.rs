//! `[hj212_listener]`: where data loggers (or analysers on a serial line) deliver HJ 212
//! uploads, which MNs may, with which password, and for which measuring point.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::diagnostic::{Seg, SourceError, SourceText};
use crate::config::secret::PasswordSource;
use crate::config::{Interval, Parity};
use crate::model::time::UtcOffset;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// TCP address data loggers connect to; none for a serial-only listener.
    pub listen: Option<SocketAddr>,
    /// Connections held open at once; more are closed at once (and counted).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// A connection that sends nothing for this long is closed, so dead peers behind a NAT
    /// do not hold a slot forever.
    #[serde(default = "fifteen_minutes")]
    pub idle_timeout: Interval,
    /// A packet must be complete this long after its first byte arrived, else the
    /// connection is closed: a peer trickling one byte a second is never idle, but it cannot
    /// hold a slot past this (a 1 KiB packet takes about 1 s even at 9600 baud).
    #[serde(default = "ten_seconds")]
    pub packet_deadline: Interval,
    /// Connections held open at once from one source address (an IPv6 /64 counts as one);
    /// more are closed at once (and counted), so one host cannot take every slot.
    #[serde(default = "default_max_connections_per_ip")]
    pub max_connections_per_ip: usize,
    /// Connections come through a TCP proxy (HAProxy with `send-proxy`) that starts each with
    /// a PROXY protocol v1 header: the address it names counts for `max_connections_per_ip`
    /// and the lockouts instead of the proxy's. A connection without one is closed, so only
    /// the proxy may reach `listen`.
    #[serde(default)]
    pub proxy_protocol: bool,
    /// Wrong passwords (or unknown MNs) from one source address, or against one MN, within
    /// `auth_lockout` before the address or MN is locked out for `auth_lockout`.
    #[serde(default = "default_auth_lockout_after")]
    pub auth_lockout_after: u32,
    /// How long a lockout lasts, and how long failures are remembered.
    #[serde(default = "fifteen_minutes")]
    pub auth_lockout: Interval,
    /// Uploads whose DataTime lies further back than this are refused (9011 QnRtn=2): a
    /// logger keeps about a year of data, and a wrong clock (1970) must not be stored or
    /// move the history pulls. Uploads ahead of the clock by more than
    /// `[ingest] future_tolerance` are refused the same way.
    #[serde(default = "one_year")]
    pub data_time_horizon: Interval,
    /// Local time of DataTime for devices that do not set their own; default the site's.
    pub utc_offset: Option<UtcOffset>,
    /// Ask a logger for the days (2031), hours (2061) or minutes (2051) missing before an
    /// upload.
    #[serde(default = "yes")]
    pub history_pull: bool,
    /// Minute data missing for longer than this is pulled; shorter holes are left alone,
    /// since loggers often skip a minute around restarts.
    #[serde(default = "ten_minutes")]
    pub minute_gap: Interval,
    /// Never ask for more than this before the upload that revealed a gap.
    #[serde(default = "seven_days")]
    pub history_max: Interval,
    #[serde(rename = "device", default)]
    pub devices: Vec<ListenerDevice>,
    /// A directory of logger files (`*.toml`, each with `[[logger]]` tables), relative to
    /// the config: a bureau adds, changes and retires loggers there and sends SIGHUP, and
    /// the listener takes the change without dropping the other loggers' connections.
    pub registry: Option<PathBuf>,
    /// Not written in the file: the loggers read from `registry` when the config is loaded.
    #[serde(skip)]
    pub registered: Vec<ListenerDevice>,
    #[serde(rename = "serial", default)]
    pub serial: Vec<ListenerSerial>,
}

/// One data logger that may upload.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerDevice {
    /// HJ 212 device id, up to 24 characters.
    pub mn: String,
    /// `{ file = "…" }` or `{ env = "…" }`; never written in the config itself.
    pub password: PasswordSource,
    /// The measuring point its records are stored under.
    pub stack: String,
    /// The logger's local time, when it differs from the listener's.
    pub utc_offset: Option<UtcOffset>,
    /// How often the logger uploads (its real-time interval `RtdInterval`, set and read by
    /// CN 1062/1061, or its minute-data interval `MinInterval`, CN 1064/1063, HJ 212-2017
    /// appendix C, whichever is shorter). Silent for three of these (at least a minute), it
    /// counts as down. When absent it is learned from the logger's own uploads.
    pub upload_interval: Option<Interval>,
    /// Not written in the file: the registry file it was read from, which a relative
    /// password file is relative to; none for a device of the site config.
    #[serde(skip)]
    pub defined_in: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerSerial {
    pub port: String,
    #[serde(default = "baud_9600")]
    pub baud: u32,
    #[serde(default)]
    pub parity: Parity,
    #[serde(default = "one")]
    pub stop_bits: u8,
}

impl ListenerConfig {
    /// Local offset of DataTime for `device`: its own, the listener's, else the site's.
    pub fn zone_of(&self, device: &ListenerDevice, site: UtcOffset) -> UtcOffset {
        device.utc_offset.or(self.utc_offset).unwrap_or(site)
    }

    /// Every logger that may upload: the site config's, then the registry's.
    pub fn all_devices(&self) -> impl Iterator<Item = &ListenerDevice> {
        self.devices.iter().chain(&self.registered)
    }
}

/// HJ 212-2017: MN is at most 24 characters.
pub const MAX_MN_LEN: usize = 24;
/// Bounds of `upload_interval`: day data (CN 2031) is the rarest upload a logger sends
/// on its own.
pub const MIN_UPLOAD_INTERVAL: Duration = Duration::from_secs(1);
pub const MAX_UPLOAD_INTERVAL: Duration = Duration::from_secs(86_400);
/// Far above what one host serves, low enough that a typo (an extra zero) is caught.
const MAX_CONNECTIONS: usize = 100_000;

fn default_max_connections() -> usize {
    2000
}

/// Enough for a plant whose loggers leave through one NAT address; a host with more must be
/// listed explicitly, so 2,000 idle sockets from one address cannot lock the others out.
fn default_max_connections_per_ip() -> usize {
    64
}

fn default_auth_lockout_after() -> u32 {
    10
}

fn ten_seconds() -> Interval {
    Interval(Duration::from_secs(10))
}

fn one_year() -> Interval {
    Interval(Duration::from_secs(366 * 86_400))
}

fn fifteen_minutes() -> Interval {
    Interval(Duration::from_secs(15 * 60))
}

fn ten_minutes() -> Interval {
    Interval(Duration::from_secs(10 * 60))
}

fn seven_days() -> Interval {
    Interval(Duration::from_secs(7 * 24 * 3600))
}

fn yes() -> bool {
    true
}

fn baud_9600() -> u32 {
    9600
}

fn one() -> u8 {
    1
}

/// Checks what serde cannot: unique, well-formed MNs, a source of packets, sane limits.
/// `taken` are addresses other parts of the config listen on.
pub fn validate(
    src: &SourceText,
    listener: Option<&ListenerConfig>,
    taken: &[SocketAddr],
) -> Result<(), SourceError> {
    let Some(listener) = listener else {
        return Ok(());
    };
    const TABLE: Seg = Seg::Key("hj212_listener");
    let at = |key| [TABLE, Seg::Key(key)];
    if listener.listen.is_none() && listener.serial.is_empty() {
        return Err(src.error_at_path(
            &[TABLE],
            "the HJ 212 listener has neither a TCP address nor a serial port",
            Some("add listen = \"0.0.0.0:9001\" or a [[hj212_listener.serial]] port".into()),
        ));
    }
    if let Some(listen) = listener.listen.filter(|l| taken.contains(l)) {
        return Err(src.error_at_path(
            &at("listen"),
            format!("{listen} is already used by another part of this config"),
            Some("give the HJ 212 listener its own port".into()),
        ));
    }
    if listener.max_connections == 0 || listener.max_connections > MAX_CONNECTIONS {
        return Err(src.error_at_path(
            &at("max_connections"),
            format!(
                "max_connections = {} is outside 1..={MAX_CONNECTIONS}",
                listener.max_connections
            ),
            Some("a bureau serving a few hundred plants needs e.g. 2000".into()),
        ));
    }
    if listener.idle_timeout.0 < Duration::from_secs(1) {
        return Err(src.error_at_path(
            &at("idle_timeout"),
            "an idle timeout under 1s would cut loggers between uploads",
            Some("loggers send at least every minute: use e.g. \"15m\"".into()),
        ));
    }
    if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&listener.packet_deadline.0) {
        return Err(src.error_at_path(
            &at("packet_deadline"),
            "the packet deadline must be between 1s and 1h",
            Some("a packet of 1 KiB takes about 1 s at 9600 baud: use e.g. \"10s\"".into()),
        ));
    }
    if listener.max_connections_per_ip == 0 || listener.max_connections_per_ip > MAX_CONNECTIONS {
        return Err(src.error_at_path(
            &at("max_connections_per_ip"),
            format!(
                "max_connections_per_ip = {} is outside 1..={MAX_CONNECTIONS}",
                listener.max_connections_per_ip
            ),
            Some(
                "e.g. 64; raise it only for a carrier gateway that all loggers come through".into(),
            ),
        ));
    }
    if listener.auth_lockout_after == 0 {
        return Err(src.error_at_path(
            &at("auth_lockout_after"),
            "auth_lockout_after = 0 would lock out every logger at its first packet",
            Some("use e.g. 10".into()),
        ));
    }
    if listener.auth_lockout.0 < Duration::from_secs(1) {
        return Err(src.error_at_path(
            &at("auth_lockout"),
            "a lockout under 1s does not slow a guesser down",
            Some("use e.g. \"15m\"".into()),
        ));
    }
    if listener.history_pull && listener.minute_gap.0 < Duration::from_secs(60) {
        return Err(src.error_at_path(
            &at("minute_gap"),
            "a minute gap under 1m would pull history for every upload",
            Some("use e.g. \"10m\"".into()),
        ));
    }
    if listener.history_pull && listener.history_max.0 < Duration::from_secs(3600) {
        return Err(src.error_at_path(
            &at("history_max"),
            "history_max under 1h cannot cover a single missing hour",
            Some("use e.g. \"7d\"".into()),
        ));
    }
    if listener.data_time_horizon.0 < listener.history_max.0 {
        return Err(src.error_at_path(
            &at("data_time_horizon"),
            format!(
                "data_time_horizon ({}) is shorter than history_max ({}): the answers to history pulls would be refused",
                humantime::format_duration(listener.data_time_horizon.0),
                humantime::format_duration(listener.history_max.0)
            ),
            Some("use e.g. \"366d\" (the default)".into()),
        ));
    }
    if listener.devices.is_empty() && listener.registry.is_none() {
        return Err(src.error_at_path(
            &[TABLE],
            "no [[hj212_listener.device]] and no registry: every upload would be refused",
            Some(
                "add a device with mn, password and stack, or registry = \"loggers.d\" (a directory of [[logger]] files)".into(),
            ),
        ));
    }
    let mut mns = HashSet::new();
    for (i, device) in listener.devices.iter().enumerate() {
        let at = [TABLE, Seg::Key("device"), Seg::Index(i)];
        validate_device(src, &at, device)?;
        if !mns.insert(device.mn.as_str()) {
            return Err(src.error_at_path(
                &[TABLE, Seg::Key("device"), Seg::Index(i), Seg::Key("mn")],
                format!("MN {:?} is listed twice", device.mn),
                Some("each data logger is listed once; give it one stack".into()),
            ));
        }
    }
    let mut ports = HashSet::new();
    for (i, serial) in listener.serial.iter().enumerate() {
        let at = |key| [TABLE, Seg::Key("serial"), Seg::Index(i), Seg::Key(key)];
        if serial.port.trim().is_empty() {
            return Err(src.error_at_path(
                &at("port"),
                "the serial port is empty",
                Some("e.g. port = \"/dev/ttyS1\"".into()),
            ));
        }
        if !ports.insert(serial.port.as_str()) {
            return Err(src.error_at_path(
                &at("port"),
                format!("serial port {:?} is listed twice", serial.port),
                Some("one [[hj212_listener.serial]] per port".into()),
            ));
        }
        if serial.baud == 0 {
            return Err(src.error_at_path(
                &at("baud"),
                "baud must be above zero",
                Some("e.g. 9600".into()),
            ));
        }
        if !matches!(serial.stop_bits, 1 | 2) {
            return Err(src.error_at_path(
                &at("stop_bits"),
                format!("stop_bits = {} is not supported", serial.stop_bits),
                Some("use 1 or 2".into()),
            ));
        }
    }
    Ok(())
}

/// Checks one logger wherever it is written (`[[hj212_listener.device]]` or a registry
/// file): a password source, an MN a packet can carry, a stack. `at` is its table's path.
pub fn validate_device(
    src: &SourceText,
    at: &[Seg],
    device: &ListenerDevice,
) -> Result<(), SourceError> {
    let key = |key| [at, &[Seg::Key(key)]].concat();
    device.password.validate(src, &key("password"))?;
    let mn = device.mn.as_str();
    let length = mn.chars().count();
    if length == 0 || length > MAX_MN_LEN {
        return Err(src.error_at_path(
            &key("mn"),
            format!("MN {mn:?} has {length} characters; HJ 212 allows 1 to {MAX_MN_LEN}"),
            Some("copy the MN from the data logger's settings".into()),
        ));
    }
    if !mn
        .bytes()
        .all(|b| b.is_ascii_graphic() && !b";,&=".contains(&b))
    {
        return Err(src.error_at_path(
            &key("mn"),
            format!("MN {mn:?} contains a character a packet cannot carry"),
            Some("an MN is printable ASCII without `;` `,` `&` `=`".into()),
        ));
    }
    if device.stack.trim().is_empty() {
        return Err(src.error_at_path(
            &key("stack"),
            "the stack is empty",
            Some("name the measuring point, e.g. stack = \"plant-a.unit1\"".into()),
        ));
    }
    if let Some(interval) = device.upload_interval {
        if !(MIN_UPLOAD_INTERVAL..=MAX_UPLOAD_INTERVAL).contains(&interval.0) {
            return Err(src.error_at_path(
                &key("upload_interval"),
                format!(
                    "upload_interval = \"{}\" is outside 1s..=1d",
                    humantime::format_duration(interval.0)
                ),
                Some(
                    "write the logger's shortest upload interval, e.g. \"30s\" (RtdInterval) or \"10m\" (MinInterval); leave it out to learn it from the uploads".into(),
                ),
            ));
        }
    }
    Ok(())
}
