//! The `Host` check of the loopback HTTP server. The endpoints have no authentication and
//! trust that only this machine reaches them; a web page in a browser on this machine can
//! still reach them by DNS rebinding (its own name made to resolve to 127.0.0.1), and then
//! reads `/api/status`. Such a request carries the page's name in `Host`, so requests are
//! answered only for the names this server is: the listen address as an IP literal,
//! `localhost`, and the names in `[http] allowed_hosts` (what a reverse proxy forwards).

use std::net::{IpAddr, SocketAddr};

/// Whether a request with this `Host` header is for us. The port is not compared: a
/// rebinding page can use ours, and a reverse proxy may forward its own.
pub fn allowed(host: Option<&str>, listen: SocketAddr, allowed_hosts: &[String]) -> bool {
    let Some(name) = host.map(str::trim).and_then(host_name) else {
        return false;
    };
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    if let Ok(ip) = name.parse::<IpAddr>() {
        return ip == listen.ip() || (listen.ip().is_unspecified() && ip.is_loopback());
    }
    allowed_hosts.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// The name of `host[:port]`, without the brackets of an IPv6 literal.
fn host_name(host: &str) -> Option<&str> {
    if let Some(rest) = host.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        return (after.is_empty() || after.starts_with(':')).then_some(ip);
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        Some(_) => return None,
        None => host,
    };
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(host: &str) -> bool {
        let listen: SocketAddr = "127.0.0.1:8080".parse().unwrap_or_else(|e| panic!("{e}"));
        allowed(Some(host), listen, &["cems-gw.plant.local".to_string()])
    }

    #[test]
    fn the_listen_address_localhost_and_configured_names_are_allowed_with_any_port() {
        for host in [
            "127.0.0.1",
            "127.0.0.1:8080",
            "localhost",
            "LOCALHOST:8080",
            "cems-gw.plant.local",
            "Cems-GW.plant.local:443",
        ] {
            assert!(ok(host), "{host}");
        }
    }

    #[test]
    fn other_names_other_addresses_and_no_host_are_refused() {
        for host in [
            "attacker.example",
            "attacker.example:8080",
            "127.0.0.1.nip.io:8080",
            "127.0.0.2:8080",
            "[::1]:8080",
            "",
            ":8080",
            "localhost:http",
        ] {
            assert!(!ok(host), "{host}");
        }
        let listen: SocketAddr = "127.0.0.1:8080".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(!allowed(None, listen, &[]));
    }

    #[test]
    fn ipv6_literals_are_read_in_brackets() {
        let listen: SocketAddr = "[::1]:8080".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(allowed(Some("[::1]:8080"), listen, &[]));
        assert!(allowed(Some("[::1]"), listen, &[]));
        assert!(!allowed(Some("[::1]x"), listen, &[]));
        assert!(!allowed(Some("127.0.0.1"), listen, &[]));
    }
}
