//! One `[[influx]]` table of the site config: where to write, how to batch, how hard to
//! retry. The token is never written in the config itself, only where to find it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

use crate::config::diagnostic::{Seg, SourceError, SourceText};
use crate::config::secret::{Secret, SecretError, SecretSource};
use crate::config::Interval;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfluxSinkConfig {
    /// Names this sink's cursor in the store, so it must stay the same across restarts.
    pub id: String,
    /// Base URL of the server, e.g. "https://influx.example:8086"; `/api/v2/write` is added.
    pub url: String,
    /// InfluxDB 2 needs it; InfluxDB 3 and VictoriaMetrics ignore it.
    pub org: Option<String>,
    pub bucket: String,
    /// File holding the API token; relative to the config file.
    pub token_file: Option<PathBuf>,
    /// Environment variable holding the API token.
    pub token_env: Option<String>,
    #[serde(default)]
    pub precision: Precision,
    /// Measurements are `<prefix>_reading`, `<prefix>_hour`, … so several applications can
    /// share a bucket.
    #[serde(default = "default_measurement_prefix")]
    pub measurement_prefix: String,
    /// Most records per write request.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Write requests on the wire at once while a backlog drains. Two keep the server busy
    /// while the forwarder records the previous answer; more help a distant server. Batches
    /// in flight together never write the same point.
    #[serde(default = "default_requests_in_flight")]
    pub requests_in_flight: usize,
    /// How long to wait for more records when a batch was not full.
    #[serde(default = "one_second")]
    pub flush_interval: Interval,
    /// Compress request bodies; line protocol shrinks about tenfold, which matters on a
    /// metered uplink.
    #[serde(default = "yes")]
    pub gzip: bool,
    /// Limit for one write request, connection included.
    #[serde(default = "ten_seconds")]
    pub timeout: Interval,
    /// Longest wait between retries during an outage.
    #[serde(default = "one_minute")]
    pub max_backoff: Interval,
    /// Warn (log and counter) when more records than this wait for delivery.
    #[serde(default = "default_backlog_warning")]
    pub backlog_warning: u64,
}

/// Timestamp precision of the written points. The store keeps milliseconds, so `s` merges
/// readings within one second into one point and `us`/`ns` only add zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    Ns,
    Us,
    #[default]
    Ms,
    S,
}

impl Precision {
    /// The value of the `precision` query parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Ns => "ns",
            Precision::Us => "us",
            Precision::Ms => "ms",
            Precision::S => "s",
        }
    }
}

/// Why a sink's token could not be loaded; never carries the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("influx sink {sink:?}: {source}")]
    Unreadable {
        sink: String,
        #[source]
        source: SecretError,
    },
    #[error("influx sink {sink:?}: set token_file or token_env")]
    Missing { sink: String },
}

impl InfluxSinkConfig {
    /// The name of this sink's cursor and dead letters in the store.
    pub fn store_name(&self) -> String {
        format!("influx:{}", self.id)
    }

    /// Where the token is: `token_file` (relative to the config file) or `token_env`.
    pub fn token_source(&self) -> Option<SecretSource> {
        SecretSource::from_keys(self.token_file.as_ref(), self.token_env.as_ref())
    }

    /// Reads the token from its file (relative to `config_path`) or environment variable,
    /// as every secret is read (see [`Secret::from_file`]).
    pub fn load_token(&self, config_path: &Path) -> Result<Secret, TokenError> {
        let sink = self.id.clone();
        let source = self
            .token_source()
            .ok_or(TokenError::Missing { sink: sink.clone() })?;
        source
            .load(config_path)
            .map_err(|source| TokenError::Unreadable { sink, source })
    }
}

fn default_measurement_prefix() -> String {
    "cems".to_string()
}

fn default_batch_size() -> usize {
    5000
}

fn default_requests_in_flight() -> usize {
    2
}

fn default_backlog_warning() -> u64 {
    100_000
}

fn yes() -> bool {
    true
}

fn one_second() -> Interval {
    Interval(Duration::from_secs(1))
}

fn ten_seconds() -> Interval {
    Interval(Duration::from_secs(10))
}

fn one_minute() -> Interval {
    Interval(Duration::from_secs(60))
}

/// Beyond this a single request body gets unwieldy for servers and proxies (InfluxDB's
/// default limit is in the tens of MB); large backlogs simply take more requests.
const MAX_BATCH_SIZE: usize = 100_000;

/// More requests at once only load the server: each already carries thousands of lines.
const MAX_REQUESTS_IN_FLIGHT: usize = 8;

/// Checks what serde cannot: unique ids, a usable URL, exactly one token source, sane sizes.
pub fn validate(src: &SourceText, sinks: &[InfluxSinkConfig]) -> Result<(), SourceError> {
    let mut ids = HashSet::new();
    for (i, sink) in sinks.iter().enumerate() {
        let at = |key| [Seg::Key("influx"), Seg::Index(i), Seg::Key(key)];
        if sink.id.trim().is_empty() {
            return Err(src.error_at_path(
                &at("id"),
                "the sink id is empty",
                Some(
                    "name the sink, e.g. id = \"plant-influx\"; it keys its delivery cursor".into(),
                ),
            ));
        }
        if !ids.insert(sink.id.as_str()) {
            return Err(src.error_at_path(
                &at("id"),
                format!("influx sink id {:?} is used twice", sink.id),
                Some("give every [[influx]] its own id".into()),
            ));
        }
        match Url::parse(&sink.url) {
            Err(e) => {
                return Err(src.error_at_path(
                    &at("url"),
                    format!("{:?} is not a URL: {e}", sink.url),
                    Some(
                        "write e.g. \"http://127.0.0.1:8086\" or \"https://influx.example.com\""
                            .into(),
                    ),
                ))
            }
            Ok(url) if !matches!(url.scheme(), "http" | "https") => {
                return Err(src.error_at_path(
                    &at("url"),
                    format!("URL scheme {:?} is not supported", url.scheme()),
                    Some("use http:// or https://".into()),
                ))
            }
            Ok(url) if url.host_str().is_none_or(str::is_empty) => {
                return Err(src.error_at_path(
                    &at("url"),
                    format!("{:?} names no host", sink.url),
                    Some("write e.g. \"http://127.0.0.1:8086\"".into()),
                ))
            }
            Ok(url) if url.query().is_some() || !url.username().is_empty() => return Err(src
                .error_at_path(
                &at("url"),
                "the URL must not carry a query or credentials",
                Some(
                    "org and bucket have their own keys; the token goes in token_file or token_env"
                        .into(),
                ),
            )),
            Ok(_) => {}
        }
        if sink.bucket.trim().is_empty() {
            return Err(src.error_at_path(
                &at("bucket"),
                "the bucket is empty",
                Some("name the bucket (InfluxDB 3: the database) to write to".into()),
            ));
        }
        match (&sink.token_file, &sink.token_env) {
            (None, None) => {
                return Err(src.error_at_path(
                    &[Seg::Key("influx"), Seg::Index(i)],
                    format!("influx sink {:?} has no token source", sink.id),
                    Some("add token_file = \"influx.token\" or token_env = \"INFLUX_TOKEN\"; tokens are never written in the config".into()),
                ))
            }
            (Some(_), Some(_)) => {
                return Err(src.error_at_path(
                    &at("token_env"),
                    "token_file and token_env are both set",
                    Some("keep one of them".into()),
                ))
            }
            (None, Some(var)) if var.is_empty() || var.contains('=') => {
                return Err(src.error_at_path(
                    &at("token_env"),
                    format!("{var:?} is not an environment variable name"),
                    Some("write e.g. token_env = \"INFLUX_TOKEN\"".into()),
                ))
            }
            _ => {}
        }
        if sink.measurement_prefix.is_empty() {
            return Err(src.error_at_path(
                &at("measurement_prefix"),
                "the measurement prefix is empty",
                Some("use e.g. \"cems\"".into()),
            ));
        }
        if sink.batch_size == 0 || sink.batch_size > MAX_BATCH_SIZE {
            return Err(src.error_at_path(
                &at("batch_size"),
                format!("batch_size must be between 1 and {MAX_BATCH_SIZE}"),
                Some("5000 suits most servers".into()),
            ));
        }
        if sink.requests_in_flight == 0 || sink.requests_in_flight > MAX_REQUESTS_IN_FLIGHT {
            return Err(src.error_at_path(
                &at("requests_in_flight"),
                format!("requests_in_flight must be between 1 and {MAX_REQUESTS_IN_FLIGHT}"),
                Some("2 suits a server on the same network; 1 sends one request at a time".into()),
            ));
        }
        if sink.flush_interval.0 < Duration::from_millis(10) {
            return Err(src.error_at_path(
                &at("flush_interval"),
                "a flush interval under 10ms would poll the store in a busy loop",
                Some("use e.g. \"1s\"".into()),
            ));
        }
        if sink.timeout.0.is_zero() {
            return Err(src.error_at_path(
                &at("timeout"),
                "the request timeout must be above zero",
                Some("use e.g. \"10s\"".into()),
            ));
        }
        if sink.max_backoff.0 < Duration::from_secs(1) {
            return Err(src.error_at_path(
                &at("max_backoff"),
                "a max_backoff under 1s would hammer a server that is down",
                Some("use e.g. \"60s\"".into()),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[site]\nid = \"plant\"\n";

    fn parse(tables: &str) -> Result<Vec<InfluxSinkConfig>, String> {
        let text = format!("{BASE}{tables}");
        crate::config::parse(Path::new("site.toml"), &text)
            .map(|loaded| loaded.config.influx)
            .map_err(|e| e.to_string())
    }

    fn error(tables: &str) -> String {
        match parse(tables) {
            Ok(_) => panic!("should have been rejected:\n{tables}"),
            Err(e) => e,
        }
    }

    #[test]
    fn defaults_fill_everything_but_the_destination() {
        let sinks = parse(
            "[[influx]]\nid = \"main\"\nurl = \"http://127.0.0.1:8086\"\nbucket = \"cems\"\ntoken_env = \"T\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sinks.len(), 1);
        let s = &sinks[0];
        assert_eq!(s.precision, Precision::Ms);
        assert_eq!(s.batch_size, 5000);
        assert_eq!(s.requests_in_flight, 2);
        assert_eq!(s.flush_interval.0, Duration::from_secs(1));
        assert!(s.gzip);
        assert_eq!(s.timeout.0, Duration::from_secs(10));
        assert_eq!(s.max_backoff.0, Duration::from_secs(60));
        assert_eq!(s.backlog_warning, 100_000);
        assert_eq!(s.measurement_prefix, "cems");
        assert_eq!(s.org, None);
        assert_eq!(s.store_name(), "influx:main");
    }

    #[test]
    fn every_key_is_read() {
        let sinks = parse(
            "[[influx]]\nid = \"a\"\nurl = \"https://db.example/influx\"\norg = \"o\"\nbucket = \"b\"\n\
             token_file = \"t\"\nprecision = \"ns\"\nmeasurement_prefix = \"plant\"\nbatch_size = 7\n\
             requests_in_flight = 3\nflush_interval = \"250ms\"\ngzip = false\ntimeout = \"3s\"\nmax_backoff = \"5m\"\n\
             backlog_warning = 9\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let s = &sinks[0];
        assert_eq!(s.org.as_deref(), Some("o"));
        assert_eq!(s.token_file.as_deref(), Some(Path::new("t")));
        assert_eq!(s.precision, Precision::Ns);
        assert_eq!(s.measurement_prefix, "plant");
        assert_eq!(s.batch_size, 7);
        assert_eq!(s.requests_in_flight, 3);
        assert_eq!(s.flush_interval.0, Duration::from_millis(250));
        assert!(!s.gzip);
        assert_eq!(s.timeout.0, Duration::from_secs(3));
        assert_eq!(s.max_backoff.0, Duration::from_secs(300));
        assert_eq!(s.backlog_warning, 9);
    }

    #[test]
    fn a_token_written_inline_is_an_unknown_key() {
        let e = error(
            "[[influx]]\nid = \"a\"\nurl = \"http://h:1\"\nbucket = \"b\"\ntoken = \"secret\"\n",
        );
        assert!(e.starts_with("site.toml:7:"), "{e}");
        assert!(e.contains("unknown field `token`"), "{e}");
        assert!(!e.contains("secret\""), "the value must not be echoed: {e}");
    }

    #[test]
    fn mistakes_are_positioned_with_help() {
        let sink = |extra: &str| {
            format!("[[influx]]\nid = \"a\"\nurl = \"http://h:1\"\nbucket = \"b\"\n{extra}")
        };
        let cases: Vec<(String, &str, &str)> = vec![
            // (tables, "site.toml:LINE:COL: key", help fragment)
            (
                format!("{}{}", sink("token_env = \"T\"\n"), sink("token_env = \"T\"\n")),
                "site.toml:9:6: influx[1].id",
                "its own id",
            ),
            (
                "[[influx]]\nid = \"a\"\nurl = \"ftp://h/x\"\nbucket = \"b\"\ntoken_env = \"T\"\n".into(),
                "site.toml:5:7: influx[0].url",
                "http:// or https://",
            ),
            (
                "[[influx]]\nid = \"a\"\nurl = \"127.0.0.1:8086\"\nbucket = \"b\"\ntoken_env = \"T\"\n".into(),
                "site.toml:5:7: influx[0].url",
                "http://127.0.0.1:8086",
            ),
            (
                "[[influx]]\nid = \"a\"\nurl = \"http://h:1/?org=x\"\nbucket = \"b\"\ntoken_env = \"T\"\n".into(),
                "site.toml:5:7: influx[0].url",
                "their own keys",
            ),
            (sink(""), "site.toml:3:1: influx[0]", "token_file"),
            (
                sink("token_env = \"T\"\ntoken_file = \"f\"\n"),
                "site.toml:7:13: influx[0].token_env",
                "keep one",
            ),
            (
                sink("token_env = \"T\"\nbatch_size = 0\n"),
                "site.toml:8:14: influx[0].batch_size",
                "5000",
            ),
            (
                sink("token_env = \"T\"\nrequests_in_flight = 0\n"),
                "site.toml:8:22: influx[0].requests_in_flight",
                "one request at a time",
            ),
            (
                sink("token_env = \"T\"\nflush_interval = \"1ms\"\n"),
                "site.toml:8:18: influx[0].flush_interval",
                "1s",
            ),
            (
                sink("token_env = \"T\"\nmax_backoff = \"100ms\"\n"),
                "site.toml:8:15: influx[0].max_backoff",
                "60s",
            ),
            (
                sink("token_env = \"T\"\nprecision = \"minutes\"\n"),
                "site.toml:8:13: influx[0].precision",
                "ns",
            ),
        ];
        for (tables, at, help) in cases {
            let e = error(&tables);
            assert!(e.starts_with(at), "expected {at} in:\n{e}\nfor:\n{tables}");
            assert!(
                e.contains("help:") && e.contains(help),
                "expected help {help:?} in:\n{e}"
            );
        }
    }

    #[test]
    fn token_debug_is_redacted_and_loading_drops_the_line_break() {
        let token = Secret::new("s3cr3t");
        assert_eq!(format!("{token:?}"), "Secret([redacted])");

        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        std::fs::write(dir.path().join("influx.token"), "s3cr3t\n")
            .unwrap_or_else(|e| panic!("write: {e}"));
        let mut sink = parse(
            "[[influx]]\nid = \"a\"\nurl = \"http://h:1\"\nbucket = \"b\"\ntoken_file = \"influx.token\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .remove(0);
        let config_path = dir.path().join("site.toml");
        let loaded = sink
            .load_token(&config_path)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(loaded.expose(), "s3cr3t");

        sink.token_file = Some(PathBuf::from("missing.token"));
        let e = sink.load_token(&config_path).err().map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(|e| e.contains("missing.token")),
            "{e:?}"
        );

        std::fs::write(dir.path().join("blank.token"), " \n")
            .unwrap_or_else(|e| panic!("write: {e}"));
        sink.token_file = Some(PathBuf::from("blank.token"));
        assert!(matches!(
            sink.load_token(&config_path),
            Err(TokenError::Unreadable {
                source: SecretError::EmptyFile(_),
                ..
            })
        ));
    }
}
