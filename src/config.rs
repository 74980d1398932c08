//! The site config: what a plant or bureau runs, in one TOML file. Every mistake is reported
//! with file, line, column, the key and what is allowed, before anything starts.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::FixedOffset;
use serde::{Deserialize, Deserializer};

use crate::diagnostic::{Seg, SourceError, SourceText};
use crate::profile::{ProfileDirError, ProfileSet};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    pub site: Site,
    #[serde(rename = "stack", default)]
    pub stacks: Vec<StackConfig>,
    #[serde(rename = "device", default)]
    pub devices: Vec<DeviceConfig>,
    #[serde(default)]
    pub store: StoreConfig,
    /// Simulated analysers started inside the daemon, for demos and commissioning.
    #[serde(rename = "simulate", default)]
    pub simulators: Vec<SimulateConfig>,
    /// Extra device profiles for this site, next to the shipped ones; relative to the config file.
    pub profiles_dir: Option<PathBuf>,
    /// Health, metrics and the status page; none served when absent.
    pub http: Option<HttpConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// A loopback address: the endpoints have no authentication.
    pub listen: SocketAddr,
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackConfig {
    pub id: String,
    pub name: Option<String>,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Tcp,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    pub id: String,
    pub profile: String,
    pub stack: String,
    pub transport: Transport,
    /// host:port of a Modbus TCP device.
    pub address: String,
    #[serde(default = "unit_id_one")]
    pub unit_id: u8,
    #[serde(default = "ten_seconds")]
    pub poll_interval: Interval,
    /// How long one request may take before the device counts as silent.
    #[serde(default = "one_second")]
    pub timeout: Interval,
    #[serde(default)]
    pub position: Position,
    /// Only these channels of the profile; all when absent.
    pub channels: Option<Vec<String>>,
    /// Per-site spans of scaled-integer channels, e.g. `spans = { SO2 = [0, 750] }`.
    #[serde(default)]
    pub spans: BTreeMap<String, [f64; 2]>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    #[serde(default = "default_store_path")]
    pub path: PathBuf,
    /// Rows older than this are deleted once every sink has taken them.
    pub retention: Option<Interval>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: default_store_path(),
            retention: None,
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

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map(Interval)
            .map_err(|_| {
                serde::de::Error::custom(format!(
                    "invalid duration {text:?}: expected a number and a unit, e.g. \"10s\", \"500ms\", \"2m\", \"90d\""
                ))
            })
    }
}

/// A fixed offset from UTC written as "+08:00".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcOffset(pub FixedOffset);

impl<'de> Deserialize<'de> for UtcOffset {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_utc_offset(&text).map(UtcOffset).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "invalid UTC offset {text:?}: expected \"+HH:MM\" or \"-HH:MM\", e.g. \"+08:00\""
            ))
        })
    }
}

fn parse_utc_offset(text: &str) -> Option<FixedOffset> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if h > 14 || m > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

/// China Standard Time, which HJ 212 DataTime uses across the country.
const CHINA_STANDARD_TIME: FixedOffset = match FixedOffset::east_opt(8 * 3600) {
    Some(offset) => offset,
    None => panic!("UTC+8 is a valid offset"),
};

fn china_standard_time() -> UtcOffset {
    UtcOffset(CHINA_STANDARD_TIME)
}

fn unit_id_one() -> u8 {
    1
}

fn ten_seconds() -> Interval {
    Interval(Duration::from_secs(10))
}

fn one_second() -> Interval {
    Interval(Duration::from_secs(1))
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
    let config: SiteConfig = toml::from_str(text).map_err(|e| src.from_toml(&e))?;
    let mut profiles = ProfileSet::shipped()?;
    if let Some(dir) = &config.profiles_dir {
        let dir = relative_to(path, dir);
        profiles.load_dir(&dir).map_err(ConfigError::Profiles)?;
    }
    validate(&src, &config, &profiles)?;
    Ok(Loaded {
        path: path.to_path_buf(),
        config,
        profiles,
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
        if !stack_ids.insert(stack.id.as_str()) {
            return Err(src.error_at_path(
                &[Seg::Key("stack"), Seg::Index(i), Seg::Key("id")],
                format!("stack id {:?} is used twice", stack.id),
                Some("give every [[stack]] its own id".into()),
            ));
        }
    }
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
        if device.address.parse::<SocketAddr>().is_err() && !looks_like_host_port(&device.address) {
            return Err(src.error_at_path(
                &at("address"),
                format!("{:?} is not a host:port address", device.address),
                Some("write e.g. \"192.168.1.20:502\"".into()),
            ));
        }
        if device.poll_interval.0 < Duration::from_millis(100) {
            return Err(src.error_at_path(
                &at("poll_interval"),
                "a poll interval under 100ms is not supported",
                Some("analysers update about once a second; use e.g. \"1s\" or \"10s\"".into()),
            ));
        }
        if device.timeout.0.is_zero() || device.timeout.0 >= device.poll_interval.0 {
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
    }
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
    if let Some(retention) = &config.store.retention {
        if retention.0 < Duration::from_secs(3600) {
            return Err(src.error_at_path(
                &[Seg::Key("store"), Seg::Key("retention")],
                "a retention under one hour would delete data before it can be aggregated",
                Some("use e.g. \"90d\"; rows are kept until every sink has them anyway".into()),
            ));
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
