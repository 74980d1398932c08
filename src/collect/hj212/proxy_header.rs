//! The PROXY protocol header (version 1, text) a TCP proxy such as HAProxy (`send-proxy`)
//! writes before the client's bytes, so the listener learns the data logger's own address
//! behind the proxy and its per-address limits and lockouts count loggers, not the proxy.
//! Format (HAProxy's proxy-protocol.txt, section 2.1): `PROXY TCP4|TCP6 <src> <dst> <sport>
//! <dport>\r\n`, at most 107 bytes; `PROXY UNKNOWN …\r\n` means the proxy does not know the
//! source, and the connection's own address stands.

use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncRead, AsyncReadExt};

/// The longest v1 header, CRLF included (proxy-protocol.txt, 2.1).
const MAX_HEADER: usize = 107;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyHeaderError {
    /// The connection ended before a byte: a proxy's health check, not an error.
    #[error("closed before the PROXY header")]
    Closed,
    #[error("no PROXY protocol v1 header: {0}")]
    Malformed(String),
    #[error("cannot read the PROXY header: {0}")]
    Io(String),
}

/// Reads the header off `stream` byte by byte, so nothing after it is consumed; returns the
/// client's address, or none for `UNKNOWN`.
pub async fn read<R: AsyncRead + Unpin>(
    stream: &mut R,
) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let mut line = Vec::with_capacity(MAX_HEADER);
    loop {
        let byte = match stream.read_u8().await {
            Ok(byte) => byte,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && line.is_empty() => {
                return Err(ProxyHeaderError::Closed)
            }
            Err(e) => return Err(ProxyHeaderError::Io(e.to_string())),
        };
        line.push(byte);
        if line.ends_with(b"\r\n") {
            return parse(&line[..line.len() - 2]);
        }
        if line.len() >= MAX_HEADER {
            return Err(ProxyHeaderError::Malformed(format!(
                "no CRLF within {MAX_HEADER} bytes"
            )));
        }
    }
}

/// The header without its CRLF.
fn parse(line: &[u8]) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let malformed = |why: &str| {
        ProxyHeaderError::Malformed(format!(
            "{why} in {:?}",
            String::from_utf8_lossy(&line[..line.len().min(60)])
        ))
    };
    let text = std::str::from_utf8(line).map_err(|_| malformed("not text"))?;
    let mut fields = text.split(' ');
    if fields.next() != Some("PROXY") {
        return Err(malformed("no PROXY"));
    }
    let family = fields.next().ok_or_else(|| malformed("no protocol"))?;
    if family == "UNKNOWN" {
        return Ok(None);
    }
    let parts: Vec<&str> = fields.collect();
    let [source, _destination, port, _destination_port] = parts[..] else {
        return Err(malformed("not four addresses and ports"));
    };
    let ip: IpAddr = source
        .parse()
        .map_err(|_| malformed("a bad source address"))?;
    let port: u16 = port.parse().map_err(|_| malformed("a bad source port"))?;
    match (family, ip) {
        ("TCP4", IpAddr::V4(_)) | ("TCP6", IpAddr::V6(_)) => Ok(Some(SocketAddr::new(ip, port))),
        _ => Err(malformed("an address of another family")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(bytes: &[u8]) -> (Result<Option<SocketAddr>, ProxyHeaderError>, Vec<u8>) {
        let mut stream = bytes;
        let header = read(&mut stream).await;
        (header, stream.to_vec())
    }

    #[tokio::test]
    async fn the_specs_examples_give_the_clients_address_and_leave_its_bytes() {
        // proxy-protocol.txt 2.1 examples
        let (header, rest) =
            read_all(b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n##0101QN=").await;
        assert_eq!(
            header,
            Ok(Some(
                "255.255.255.255:65535"
                    .parse()
                    .unwrap_or_else(|e| panic!("{e}"))
            ))
        );
        assert_eq!(rest, b"##0101QN=");
        let (header, _) = read_all(b"PROXY TCP6 ffff:f:ffff:ffff:ffff:ffff:ffff:ffff ffff:f:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n").await;
        assert_eq!(
            header,
            Ok(Some(
                "[ffff:f:ffff:ffff:ffff:ffff:ffff:ffff]:65535"
                    .parse()
                    .unwrap_or_else(|e| panic!("{e}"))
            ))
        );
        let (header, _) = read_all(b"PROXY UNKNOWN\r\n").await;
        assert_eq!(header, Ok(None));
    }

    #[tokio::test]
    async fn anything_else_is_refused() {
        assert_eq!(read_all(b"").await.0, Err(ProxyHeaderError::Closed));
        for bad in [
            &b"##0101QN=20260101;ST=31\r\n"[..],
            b"PROXY TCP4 10.0.0.1 10.0.0.2 1234\r\n",
            b"PROXY TCP6 10.0.0.1 10.0.0.2 1234 9001\r\n",
            b"PROXY TCP4 10.0.0.1 10.0.0.2 99999 9001\r\n",
            &[b'P'; 200][..],
            b"PROXY TCP4 10.0.0.1",
        ] {
            let (header, _) = read_all(bad).await;
            assert!(
                matches!(
                    header,
                    Err(ProxyHeaderError::Malformed(_) | ProxyHeaderError::Io(_))
                ),
                "{:?}: {header:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
