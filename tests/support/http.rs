//! HTTP against the daemon's loopback endpoints: GET, and `/metrics` parsed by an
//! independent Prometheus text parser.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A GET on loopback; returns the status code and body.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http_get_as(port, path, "127.0.0.1")
}

/// A GET on loopback naming `host` in its `Host` header; the status code and body.
pub fn http_get_as(port: u16, path: &str, host: &str) -> Option<(u16, String)> {
    let text = String::from_utf8(exchange(port, path, host, "")?).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Some((
        code,
        if chunked {
            dechunk(body)?
        } else {
            body.to_string()
        },
    ))
}

/// One GET on a connection of its own (closed after the answer): the raw response.
fn exchange(port: u16, path: &str, host: &str, headers: &str) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{headers}\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    Some(raw)
}

/// A GET on loopback with `headers` (each line ending in CRLF) added; the response's head
/// and its body as bytes (not chunked: the daemon sends fixed bodies with a length).
pub fn http_get_raw(port: u16, path: &str, headers: &str) -> Option<(String, Vec<u8>)> {
    let raw = exchange(port, path, "127.0.0.1", headers)?;
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    Some((head, raw[end + 4..].to_vec()))
}

fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        body = rest.get(size + 2..)?;
    }
}

/// The samples of a Prometheus text exposition, parsed by an independent implementation.
pub fn scrape(port: u16) -> prometheus_parse::Scrape {
    let (code, body) = http_get(port, "/metrics").unwrap_or_else(|| panic!("GET /metrics failed"));
    assert_eq!(code, 200, "{body}");
    let lines = body.lines().map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines)
        .unwrap_or_else(|e| panic!("not Prometheus text: {e}\n{body}"))
}

/// Value of the sample `name` whose labels include all of `labels`.
pub fn metric(
    scrape: &prometheus_parse::Scrape,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}
