//! One `[[hj212]]` table of the site config: a bureau platform to upload to over HJ 212-2017.
//! The password is never written in the config itself, only where to find it.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::config::diagnostic::{Seg, SourceError, SourceText};
use crate::config::secret::{PasswordSource, Secret, SecretError};
use crate::config::stack::StackParams;
use crate::config::{Interval, Site};
use crate::protocol::hj212::SystemCode;
use crate::store::RecordKind;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hj212SinkConfig {
    /// Names the sink's cursor in the store (`hj212:<name>`), so it must stay the same.
    pub name: String,
    /// host:port of the platform.
    pub address: String,
    pub password: PasswordSource,
    /// ST of the uploads: 31 (air pollution source) unless the platform wants another.
    #[serde(default = "air_pollution_source")]
    pub system_code: u8,
    /// Cadence of 2011 real-time uploads; absent or "0s" for none.
    pub realtime_interval: Option<Interval>,
    /// Whether real-time uploads ask for a 9014 (Flag=5) or not (Flag=4).
    #[serde(default = "yes")]
    pub realtime_ack: bool,
    #[serde(default = "all_periods")]
    pub upload: Vec<UploadPeriod>,
    /// How long to wait for the 9014 of an upload before sending it again.
    #[serde(default = "ten_seconds")]
    pub ack_timeout: Interval,
    /// Resends of an unanswered upload before the connection counts as broken.
    #[serde(default = "three")]
    pub retries: u32,
    /// Measuring points (stack ids) to upload; every stack when absent.
    pub points: Option<Vec<String>>,
}

/// Aggregate periods a sink uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UploadPeriod {
    Minute,
    Hour,
    Day,
}

impl UploadPeriod {
    pub fn record_kind(self) -> RecordKind {
        match self {
            UploadPeriod::Minute => RecordKind::Minute,
            UploadPeriod::Hour => RecordKind::Hour,
            UploadPeriod::Day => RecordKind::Day,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("hj212 sink {sink:?}: {source}")]
    Unreadable {
        sink: String,
        #[source]
        source: SecretError,
    },
    #[error("hj212 sink {sink:?}: set password = {{ file = \"…\" }} or {{ env = \"…\" }}")]
    Missing { sink: String },
}

impl Hj212SinkConfig {
    /// The name of this sink's cursor in the store.
    pub fn store_name(&self) -> String {
        format!("hj212:{}", self.name)
    }

    pub fn system_code(&self) -> SystemCode {
        SystemCode::from_code(self.system_code)
    }

    /// `None` when no real-time data is uploaded.
    pub fn realtime_interval(&self) -> Option<Duration> {
        self.realtime_interval.map(|i| i.0).filter(|d| !d.is_zero())
    }

    pub fn uploads(&self, kind: RecordKind) -> bool {
        self.upload.iter().any(|p| p.record_kind() == kind)
    }

    /// Reads the password from its file (relative to `config_path`) or environment variable.
    pub fn load_password(&self, config_path: &Path) -> Result<Secret, PasswordError> {
        let sink = self.name.clone();
        let source = self
            .password
            .source()
            .ok_or(PasswordError::Missing { sink: sink.clone() })?;
        source
            .load(config_path)
            .map_err(|source| PasswordError::Unreadable { sink, source })
    }

    /// The measuring points this sink uploads with their MN, in config order. Validation has
    /// made sure every one has an MN.
    pub fn point_mns(&self, site: &Site, stacks: &[StackParams]) -> Vec<(String, String)> {
        stacks
            .iter()
            .filter(|s| self.points.as_ref().is_none_or(|p| p.contains(&s.id)))
            .filter_map(|s| stack_mn(site, stacks, s).map(|mn| (s.id.clone(), mn.to_string())))
            .collect()
    }
}

/// A stack's own MN, else the site's when the site has this one stack only.
fn stack_mn<'a>(site: &'a Site, stacks: &[StackParams], stack: &'a StackParams) -> Option<&'a str> {
    stack
        .mn
        .as_deref()
        .or_else(|| site.mn.as_deref().filter(|_| stacks.len() == 1))
}

fn air_pollution_source() -> u8 {
    31
}

fn yes() -> bool {
    true
}

fn all_periods() -> Vec<UploadPeriod> {
    vec![UploadPeriod::Minute, UploadPeriod::Hour, UploadPeriod::Day]
}

fn ten_seconds() -> Interval {
    Interval(Duration::from_secs(10))
}

fn three() -> u32 {
    3
}

/// The standard allows MN up to 24 characters.
const MAX_MN_LEN: usize = 24;

/// Checks what serde cannot: unique names, a host:port address, one password source, MNs for
/// every uploaded point, sane timing.
pub fn validate(
    src: &SourceText,
    sinks: &[Hj212SinkConfig],
    site: &Site,
    stacks: &[StackParams],
) -> Result<(), SourceError> {
    for (i, stack) in stacks.iter().enumerate() {
        if let Some(mn) = &stack.mn {
            if let Some(problem) = mn_problem(mn) {
                return Err(src.error_at_path(
                    &[Seg::Key("stack"), Seg::Index(i), Seg::Key("mn")],
                    format!("MN {mn:?} {problem}"),
                    Some("use the device id the bureau assigned, e.g. \"88888880000001\"".into()),
                ));
            }
        }
    }
    if let Some(problem) = site.mn.as_deref().and_then(mn_problem) {
        return Err(src.error_at_path(
            &[Seg::Key("site"), Seg::Key("mn")],
            format!("MN {problem}"),
            Some("use the device id the bureau assigned, e.g. \"88888880000001\"".into()),
        ));
    }
    let mut names = HashSet::new();
    for (i, sink) in sinks.iter().enumerate() {
        let at = |key| [Seg::Key("hj212"), Seg::Index(i), Seg::Key(key)];
        if sink.name.trim().is_empty() {
            return Err(src.error_at_path(
                &at("name"),
                "the sink name is empty",
                Some(
                    "name the platform, e.g. name = \"province\"; it keys the upload cursor".into(),
                ),
            ));
        }
        if !names.insert(sink.name.as_str()) {
            return Err(src.error_at_path(
                &at("name"),
                format!("hj212 sink name {:?} is used twice", sink.name),
                Some("give every [[hj212]] its own name".into()),
            ));
        }
        if !is_host_port(&sink.address) {
            return Err(src.error_at_path(
                &at("address"),
                format!("{:?} is not a host:port address", sink.address),
                Some("write e.g. \"10.1.2.3:8001\" or \"platform.example.gov.cn:8001\"".into()),
            ));
        }
        sink.password.validate(src, &at("password"))?;
        if !(1..=99).contains(&sink.system_code) {
            return Err(src.error_at_path(
                &at("system_code"),
                format!("ST {} is not a two-digit system code", sink.system_code),
                Some("31 is air pollution source, what CEMS upload".into()),
            ));
        }
        if sink.ack_timeout.0 < Duration::from_millis(10) {
            return Err(src.error_at_path(
                &at("ack_timeout"),
                "an ack timeout under 10ms would resend before any platform can answer",
                Some("use e.g. \"10s\"".into()),
            ));
        }
        if sink
            .realtime_interval()
            .is_some_and(|d| d < Duration::from_secs(1))
        {
            return Err(src.error_at_path(
                &at("realtime_interval"),
                "real-time data more often than once a second floods the platform",
                Some("use e.g. \"30s\", or \"0s\" for no real-time upload".into()),
            ));
        }
        if let Some(points) = &sink.points {
            for (j, point) in points.iter().enumerate() {
                if !stacks.iter().any(|s| &s.id == point) {
                    return Err(src.error_at_path(
                        &[
                            Seg::Key("hj212"),
                            Seg::Index(i),
                            Seg::Key("points"),
                            Seg::Index(j),
                        ],
                        format!("point {point:?} is not a stack"),
                        Some(format!(
                            "use stack ids: {}",
                            stacks
                                .iter()
                                .map(|s| s.id.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )),
                    ));
                }
            }
        }
        let uploaded: Vec<(usize, &StackParams)> = stacks
            .iter()
            .enumerate()
            .filter(|(_, s)| sink.points.as_ref().is_none_or(|p| p.contains(&s.id)))
            .collect();
        if uploaded.is_empty() {
            return Err(src.error_at_path(
                &[Seg::Key("hj212"), Seg::Index(i)],
                format!(
                    "hj212 sink {:?} has no measuring point to upload",
                    sink.name
                ),
                Some("add a [[stack]] with an mn".into()),
            ));
        }
        let mut mns = HashSet::new();
        for (index, stack) in uploaded {
            let Some(mn) = stack_mn(site, stacks, stack) else {
                return Err(src.error_at_path(
                    &[Seg::Key("stack"), Seg::Index(index)],
                    format!(
                        "stack {:?} is uploaded by hj212 sink {:?} but has no MN",
                        stack.id, sink.name
                    ),
                    Some(if stacks.len() == 1 {
                        "add mn = \"…\" to the stack or to [site]".into()
                    } else {
                        "add mn = \"…\" to the stack (site.mn only serves a site with one stack), or leave it out of points".into()
                    }),
                ));
            };
            if !mns.insert(mn) {
                return Err(src.error_at_path(
                    &[Seg::Key("stack"), Seg::Index(index), Seg::Key("mn")],
                    format!("MN {mn:?} is used by two uploaded stacks"),
                    Some("every measuring point has its own MN".into()),
                ));
            }
        }
    }
    Ok(())
}

fn mn_problem(mn: &str) -> Option<String> {
    let len = mn.chars().count();
    if len == 0 || len > MAX_MN_LEN {
        return Some(format!(
            "is {len} characters; HJ 212 allows 1 to {MAX_MN_LEN}"
        ));
    }
    if !mn
        .chars()
        .all(|c| c.is_ascii_graphic() && !";,&=".contains(c))
    {
        return Some("may only hold printable ASCII without `;` `,` `&` `=`".into());
    }
    None
}

fn is_host_port(address: &str) -> bool {
    if address.parse::<SocketAddr>().is_ok() {
        return true;
    }
    match address.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && !host.contains([' ', ':', '/'])
                && port.parse::<u16>().is_ok_and(|p| p > 0)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_addresses() {
        for good in [
            "10.1.2.3:8001",
            "platform.example.gov.cn:8001",
            "[::1]:9000",
        ] {
            assert!(is_host_port(good), "{good}");
        }
        for bad in [
            "10.1.2.3",
            "http://x:80",
            "host:0",
            ":8001",
            "a b:1",
            "host:99999",
        ] {
            assert!(!is_host_port(bad), "{bad}");
        }
    }

    #[test]
    fn mn_rules() {
        assert_eq!(mn_problem("88888880000001"), None);
        assert!(mn_problem("").is_some());
        assert!(
            mn_problem("0123456789012345678901234").is_some(),
            "25 characters"
        );
        assert!(mn_problem("MN;CN=9014").is_some());
    }
}
