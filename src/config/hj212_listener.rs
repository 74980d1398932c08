//! `[hj212_listener]`: where data loggers (or analysers on a serial line) deliver HJ 212
//! uploads, which MNs may, with which password, and for which measuring point.

use std::collections::HashSet;
use std::net::SocketAddr;
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
    /// Local time of DataTime for devices that do not set their own; default the site's.
    pub utc_offset: Option<UtcOffset>,
    /// Ask a logger for the hours (2061) or minutes (2051) missing before an upload.
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
}

/// HJ 212-2017: MN is at most 24 characters.
pub const MAX_MN_LEN: usize = 24;
/// Far above what one host serves, low enough that a typo (an extra zero) is caught.
const MAX_CONNECTIONS: usize = 100_000;

fn default_max_connections() -> usize {
    2000
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
    if listener.devices.is_empty() {
        return Err(src.error_at_path(
            &[TABLE],
            "no [[hj212_listener.device]]: every upload would be refused",
            Some("add a device with mn, password and stack".into()),
        ));
    }
    let mut mns = HashSet::new();
    for (i, device) in listener.devices.iter().enumerate() {
        let at = |key| [TABLE, Seg::Key("device"), Seg::Index(i), Seg::Key(key)];
        device.password.validate(src, &at("password"))?;
        let mn = device.mn.as_str();
        let length = mn.chars().count();
        if length == 0 || length > MAX_MN_LEN {
            return Err(src.error_at_path(
                &at("mn"),
                format!("MN {mn:?} has {length} characters; HJ 212 allows 1 to {MAX_MN_LEN}"),
                Some("copy the MN from the data logger's settings".into()),
            ));
        }
        if !mn
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b";,&=".contains(&b))
        {
            return Err(src.error_at_path(
                &at("mn"),
                format!("MN {mn:?} contains a character a packet cannot carry"),
                Some("an MN is printable ASCII without `;` `,` `&` `=`".into()),
            ));
        }
        if !mns.insert(mn) {
            return Err(src.error_at_path(
                &at("mn"),
                format!("MN {mn:?} is listed twice"),
                Some("each data logger is listed once; give it one stack".into()),
            ));
        }
        if device.stack.trim().is_empty() {
            return Err(src.error_at_path(
                &at("stack"),
                "the stack is empty",
                Some("name the measuring point, e.g. stack = \"plant-a.unit1\"".into()),
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
