//! A small client for the InfluxDB v2 write API (`POST /api/v2/write`), which InfluxDB 2.x,
//! InfluxDB 3.x and VictoriaMetrics all accept. It only sends and classifies: what to do
//! about each answer (split, retry, dead-letter) is the forwarder's business.

use std::time::Duration;

use bytes::Bytes;
use chrono::DateTime;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{StatusCode, Url};

use crate::model::Timestamp;

use crate::config::influx::InfluxSinkConfig;
use crate::config::secret::Secret;

pub struct WriteClient {
    http: reqwest::Client,
    url: Url,
    auth: HeaderValue,
    gzip: bool,
}

impl std::fmt::Debug for WriteClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteClient")
            .field("url", &self.url.as_str())
            .field("gzip", &self.gzip)
            .finish_non_exhaustive()
    }
}

/// A request body ready to send, compressed once however often it is retried. Shared, not
/// copied, by every request that sends it.
#[derive(Debug, Clone)]
pub struct Payload {
    body: Bytes,
    gzip: bool,
}

impl Payload {
    pub fn len(&self) -> usize {
        self.body.len()
    }

    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }

    /// The bytes on the wire (compressed if gzip is on).
    pub fn bytes(&self) -> &[u8] {
        &self.body
    }
}

/// What the server made of one write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// 2xx: every line is stored.
    Accepted,
    /// 400 or 422: at least one line is bad. InfluxDB may have stored the good ones; they
    /// are idempotent, so sending them again is harmless.
    Rejected { status: u16, message: String },
    /// 413: the body is too big for the server.
    TooLarge { message: String },
    /// Anything else: the server is down, busy, or not yet configured (401/403 token,
    /// 404 org/bucket, 5xx). The same body should be sent again later.
    Retry {
        reason: String,
        retry_after: Option<RetryAfter>,
    },
}

/// A `Retry-After` header: a number of seconds or an HTTP date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    Delay(Duration),
    At(Timestamp),
}

impl RetryAfter {
    /// How long to wait from `now`; a date in the past means "now".
    pub fn delay_from(self, now: Timestamp) -> Duration {
        match self {
            RetryAfter::Delay(d) => d,
            RetryAfter::At(at) => {
                Duration::from_millis(u64::try_from(at.millis() - now.millis()).unwrap_or(0))
            }
        }
    }
}

/// Reads a `Retry-After` value (RFC 9110 §10.2.3): delay-seconds or an IMF-fixdate.
pub fn parse_retry_after(value: &str) -> Option<RetryAfter> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(RetryAfter::Delay(Duration::from_secs(seconds)));
    }
    DateTime::parse_from_rfc2822(value)
        .ok()
        .map(|date| RetryAfter::At(Timestamp::from_datetime(date.to_utc())))
}

/// Why a sink's `url` gives no write endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("{0}")]
    Parse(String),
    #[error("it cannot have a path")]
    NoPath,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("influx sink {sink:?}: {url:?} is not a usable URL: {reason}")]
    Url {
        sink: String,
        url: String,
        reason: UrlError,
    },
    #[error("influx sink {sink:?}: the token cannot be sent in an HTTP header")]
    Token { sink: String },
    #[error("influx sink {sink:?}: cannot build the HTTP client: {reason}")]
    Build { sink: String, reason: String },
}

/// reqwest is built without a bundled crypto provider, so that TLS uses ring (Rust and
/// assembly; no OpenSSL, no CMake) instead of aws-lc. Any reqwest client in the process
/// needs this first, or building it panics. Installing twice is harmless.
pub fn install_crypto_provider() {
    // Err only means a provider is already installed, which is just as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Server messages beyond this are cut: they go into logs and the dead-letter table.
const MAX_MESSAGE_BYTES: usize = 2048;

impl WriteClient {
    pub fn new(config: &InfluxSinkConfig, token: &Secret) -> Result<WriteClient, ClientError> {
        let sink = config.id.clone();
        let url = write_url(config).map_err(|reason| ClientError::Url {
            sink: sink.clone(),
            url: config.url.clone(),
            reason,
        })?;
        let mut auth = HeaderValue::from_str(&format!("Token {}", token.expose()))
            .map_err(|_| ClientError::Token { sink: sink.clone() })?;
        auth.set_sensitive(true);
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(config.timeout.0)
            .user_agent(concat!("cemsd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Build {
                sink,
                reason: error_chain(&e),
            })?;
        Ok(WriteClient {
            http,
            url,
            auth,
            gzip: config.gzip,
        })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Whether bodies go out gzip-compressed.
    pub fn gzip(&self) -> bool {
        self.gzip
    }

    /// Sends one write request and classifies the answer. Never fails: a transport error is
    /// an answer too ("retry").
    pub async fn write(&self, payload: &Payload) -> WriteOutcome {
        let mut request = self
            .http
            .post(self.url.clone())
            .header(AUTHORIZATION, self.auth.clone())
            .header(CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(payload.body.clone());
        if payload.gzip {
            request = request.header(CONTENT_ENCODING, "gzip");
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                return WriteOutcome::Retry {
                    reason: error_chain(&e),
                    retry_after: None,
                }
            }
        };
        let status = response.status();
        if status.is_success() {
            return WriteOutcome::Accepted;
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let message = match response.text().await {
            Ok(text) => truncate(text.trim(), MAX_MESSAGE_BYTES).to_string(),
            Err(e) => format!("(body unreadable: {})", error_chain(&e)),
        };
        classify(status, message, retry_after)
    }
}

fn classify(status: StatusCode, message: String, retry_after: Option<RetryAfter>) -> WriteOutcome {
    match status.as_u16() {
        400 | 422 => WriteOutcome::Rejected {
            status: status.as_u16(),
            message,
        },
        413 => WriteOutcome::TooLarge { message },
        code => {
            let hint = match code {
                401 | 403 => " (check the token and its write permission)",
                404 => " (check org and bucket)",
                _ => "",
            };
            WriteOutcome::Retry {
                reason: format!("HTTP {status}{hint}: {message}"),
                // Only these two promise that waiting that long helps.
                retry_after: retry_after.filter(|_| matches!(code, 429 | 503)),
            }
        }
    }
}

/// `<base>/api/v2/write?org=…&bucket=…&precision=…`, keeping any path prefix of the base
/// (a server behind a reverse proxy).
fn write_url(config: &InfluxSinkConfig) -> Result<Url, UrlError> {
    let mut url = Url::parse(&config.url).map_err(|e| UrlError::Parse(e.to_string()))?;
    url.path_segments_mut()
        .map_err(|()| UrlError::NoPath)?
        .pop_if_empty()
        .extend(["api", "v2", "write"]);
    {
        let mut query = url.query_pairs_mut();
        if let Some(org) = &config.org {
            query.append_pair("org", org);
        }
        query.append_pair("bucket", &config.bucket);
        query.append_pair("precision", config.precision.as_str());
    }
    Ok(url)
}

/// reqwest's top-level message is often just "error sending request"; the cause is below.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn truncate(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `lines` as a request body, gzip-compressed if `gzip`. Level 1: cemsd's lines repeat their
/// tags, so it already shrinks them about ninefold, and the higher levels cost several times
/// the CPU for a few percent less, which a gateway's core needs more than a LAN or loopback
/// needs the bytes. miniz_oxide's level 1 takes about half the CPU of zlib-rs's (whose
/// hash-table slide cost more than the compression on 1 MB bodies) for a smaller body.
pub fn payload_of(lines: &str, gzip: bool) -> Payload {
    let bytes = lines.as_bytes();
    if gzip {
        return Payload {
            body: Bytes::from(gzip_member(bytes)),
            gzip: true,
        };
    }
    Payload {
        body: Bytes::copy_from_slice(bytes),
        gzip: false,
    }
}

/// One gzip member (RFC 1952 §2.3): the 10-byte header (ID1 ID2 0x1f 0x8b, CM 8 = deflate,
/// no flags, MTIME 0 = none, XFL 4 = fastest algorithm, OS 255 = unknown), the raw deflate
/// stream, then CRC-32 and ISIZE (the input length modulo 2^32), both little-endian.
fn gzip_member(data: &[u8]) -> Vec<u8> {
    const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255];
    let deflated = miniz_oxide::deflate::compress_to_vec(data, 1);
    let mut member = Vec::with_capacity(HEADER.len() + deflated.len() + 8);
    member.extend_from_slice(&HEADER);
    member.extend_from_slice(&deflated);
    member.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    // ISIZE is defined modulo 2^32: the truncation is the format's.
    member.extend_from_slice(&(data.len() as u32).to_le_bytes());
    member
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::influx::Precision;
    use crate::config::Interval;

    fn config(url: &str) -> InfluxSinkConfig {
        InfluxSinkConfig {
            id: "main".into(),
            url: url.into(),
            org: Some("my org".into()),
            bucket: "cems&co".into(),
            token_file: None,
            token_env: Some("T".into()),
            precision: Precision::Ms,
            measurement_prefix: "cems".into(),
            requests_in_flight: 2,
            batch_size: 10,
            flush_interval: Interval(Duration::from_secs(1)),
            gzip: true,
            timeout: Interval(Duration::from_secs(1)),
            max_backoff: Interval(Duration::from_secs(10)),
            backlog_warning: 10,
        }
    }

    /// Any gzip reader (flate2's checks the CRC-32 and length at the end) gets the lines back,
    /// from a body several times smaller; an empty body is a valid member too.
    #[test]
    fn a_gzip_body_inflates_to_the_lines_it_was_made_of() {
        use std::io::Read as _;
        let lines = "cems_reading,channel=so2,device=a flag_code=0i,raw=12.5 1767225600000\n"
            .repeat(2_000)
            + "cems_gap,channel=x,device=b flag_code=6i,closed=0i 1767225600001\n";
        for text in [lines.as_str(), ""] {
            let payload = payload_of(text, true);
            assert!(payload.gzip);
            let body = payload.bytes();
            assert_eq!(body[..3], [0x1f, 0x8b, 8]);
            let mut inflated = String::new();
            flate2::read::GzDecoder::new(body)
                .read_to_string(&mut inflated)
                .unwrap_or_else(|e| panic!("inflate: {e}"));
            assert_eq!(inflated, text);
        }
        assert!(payload_of(&lines, true).len() * 8 < lines.len());
        let plain = payload_of(&lines, false);
        assert!(!plain.gzip);
        assert_eq!(plain.bytes(), lines.as_bytes());
    }

    #[test]
    fn the_write_url_keeps_a_path_prefix_and_encodes_the_query() {
        let url = |base: &str| write_url(&config(base)).map(String::from);
        assert_eq!(
            url("http://127.0.0.1:8086"),
            Ok(
                "http://127.0.0.1:8086/api/v2/write?org=my+org&bucket=cems%26co&precision=ms"
                    .into()
            )
        );
        assert_eq!(
            url("https://db.example/influx/"),
            Ok(
                "https://db.example/influx/api/v2/write?org=my+org&bucket=cems%26co&precision=ms"
                    .into()
            )
        );
        let mut no_org = config("http://h:1");
        no_org.org = None;
        no_org.precision = Precision::S;
        assert_eq!(
            write_url(&no_org).map(String::from),
            Ok("http://h:1/api/v2/write?bucket=cems%26co&precision=s".into())
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        assert_eq!(
            parse_retry_after(" 120 "),
            Some(RetryAfter::Delay(Duration::from_secs(120)))
        );
        // RFC 9110's example date: Fri, 31 Dec 1999 23:59:59 GMT = 946684799 s after the epoch.
        let at = parse_retry_after("Fri, 31 Dec 1999 23:59:59 GMT");
        assert_eq!(
            at,
            Some(RetryAfter::At(Timestamp::from_millis(946_684_799_000)))
        );
        let now = Timestamp::from_millis(946_684_789_500);
        assert_eq!(
            at.map(|a| a.delay_from(now)),
            Some(Duration::from_millis(9_500))
        );
        let later = Timestamp::from_millis(946_684_800_000);
        assert_eq!(at.map(|a| a.delay_from(later)), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("-5"), None);
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn statuses_map_to_what_the_forwarder_must_do() {
        let wait = Some(RetryAfter::Delay(Duration::from_secs(3)));
        let of = |code: u16| {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::IM_A_TEAPOT);
            classify(status, "msg".into(), wait)
        };
        assert_eq!(
            of(400),
            WriteOutcome::Rejected {
                status: 400,
                message: "msg".into()
            }
        );
        assert_eq!(
            of(422),
            WriteOutcome::Rejected {
                status: 422,
                message: "msg".into()
            }
        );
        assert_eq!(
            of(413),
            WriteOutcome::TooLarge {
                message: "msg".into()
            }
        );
        for code in [429, 503] {
            assert!(
                matches!(of(code), WriteOutcome::Retry { retry_after, .. } if retry_after == wait),
                "{code} honours Retry-After"
            );
        }
        for code in [401, 403, 404, 500, 502, 504] {
            assert!(
                matches!(
                    of(code),
                    WriteOutcome::Retry {
                        retry_after: None,
                        ..
                    }
                ),
                "{code} retries on the sink's own backoff"
            );
        }
        assert!(matches!(of(401), WriteOutcome::Retry { reason, .. } if reason.contains("token")));
    }

    #[test]
    fn gzip_payloads_decompress_to_the_lines() {
        use std::io::Read as _;
        let token = Secret::new("t");
        let lines = "m,t=a f=1i 1\n".repeat(100);
        let client = WriteClient::new(&config("http://h:1"), &token);
        assert!(client.is_ok_and(|c| c.gzip()), "gzip is the default");
        let gzip = payload_of(&lines, true);
        assert!(gzip.gzip);
        assert!(gzip.len() < lines.len() / 5, "{} bytes", gzip.len());
        let mut back = String::new();
        flate2::read::GzDecoder::new(&gzip.body[..])
            .read_to_string(&mut back)
            .unwrap_or_else(|e| panic!("gunzip: {e}"));
        assert_eq!(back, lines);

        let plain = payload_of(&lines, false);
        assert!(!plain.gzip);
        assert_eq!(plain.body, lines.as_bytes());
    }

    #[test]
    fn debug_never_shows_the_token_and_long_messages_are_cut_on_a_char_boundary() {
        let client = WriteClient::new(&config("http://h:1"), &Secret::new("s3cr3t"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!format!("{client:?}").contains("s3cr3t"));
        assert!(matches!(
            WriteClient::new(&config("http://h:1"), &Secret::new("bad\ntoken")),
            Err(ClientError::Token { .. })
        ));
        // "é" is two bytes: cutting at 3 must not split the second one.
        assert_eq!(truncate("éé", 3), "é");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
