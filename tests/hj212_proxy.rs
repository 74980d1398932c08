//! The listener behind HAProxy with `proxy_protocol = true`: the address a PROXY v1 header
//! names is the logger's, for the lockout after wrong passwords; a connection without the
//! header is closed and counted. All connections come from 127.0.0.1, as through a proxy.

mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use support::daemon::{write_config, Daemon};
use support::hj212_logger::{is_ack_of, minute_upload, TestLogger};
use support::http::{metric, scrape};
use support::ports::{free_port, listening_within};
use support::site::bureau_listener;

const MN: &str = "PROXY-LOGGER-01";
const PASSWORD: &str = "proxy-pw";
const WAIT: Duration = Duration::from_secs(20);

/// A connection as HAProxy opens it for a logger at `source`.
fn through_proxy(listener: SocketAddr, source: &str) -> TestLogger {
    let mut logger = TestLogger::connect(listener);
    let header = format!(
        "PROXY TCP4 {source} 127.0.0.1 40000 {}\r\n",
        listener.port()
    );
    logger
        .stream
        .write_all(header.as_bytes())
        .unwrap_or_else(|e| panic!("header: {e}"));
    logger
}

#[test]
fn the_proxy_header_names_the_address_that_is_locked_out() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let (tcp_port, http_port) = (free_port(), free_port());
    let text = bureau_listener(http_port, tcp_port)
        + &format!(
            r#"proxy_protocol = true
auth_lockout_after = 2
data_time_horizon = "20y"

[[hj212_listener.device]]
mn = "{MN}"
password = {{ env = "LOGGER_PW" }}
stack = "plant-a.unit1"
"#
        );
    let config = write_config(dir.path(), "bureau.toml", &text);
    let mut daemon = Daemon::start(&config, dir.path(), &[("LOGGER_PW", PASSWORD.into())]);
    assert!(
        listening_within(tcp_port, WAIT),
        "no listener:\n{}",
        daemon.log_text()
    );
    let listener: SocketAddr = ([127, 0, 0, 1], tcp_port).into();
    let rejected = |reason: &str| {
        metric(
            &scrape(http_port),
            "cemsd_hj212_listener_rejected_total",
            &[("reason", reason)],
        )
        .unwrap_or(0.0)
    };

    // Without the header: closed, counted.
    let mut direct = TestLogger::connect(listener);
    direct.send(&minute_upload(
        MN,
        PASSWORD,
        "20260101000000001",
        "20260101000000",
        "30",
    ));
    assert!(
        direct.closed_within(WAIT),
        "a connection without a header stayed open"
    );
    assert_eq!(rejected("proxy_header"), 1.0);

    // The logger at 192.0.2.8 comes through the proxy and is served.
    let mut logger = through_proxy(listener, "192.0.2.8");
    let upload = |logger: &mut TestLogger, qn: &str, data_time: &str| {
        logger.send(&minute_upload(MN, PASSWORD, qn, data_time, "30"));
        let reply = logger.receive(WAIT);
        assert!(
            reply.as_ref().is_some_and(|p| is_ack_of(p, qn)),
            "no ack behind the proxy for {qn}: {reply:?}\n{}",
            daemon.log_text()
        );
    };
    upload(&mut logger, "20260101000100001", "20260101000100");

    // A guesser at 192.0.2.7, through the same proxy, gets its address locked out after two
    // wrong passwords (and the MN, except from where it last authenticated).
    let mut guesser = through_proxy(listener, "192.0.2.7");
    for n in 0..2 {
        let qn = format!("2026010100000000{n}");
        guesser.send(&minute_upload(MN, "wrong", &qn, "20260101000000", "30"));
    }
    assert!(guesser.closed_within(WAIT), "the guesser was not cut off");
    let mut again = through_proxy(listener, "192.0.2.7");
    assert!(
        again.closed_within(WAIT),
        "a locked-out address got a connection"
    );
    assert_eq!(rejected("locked_out"), 1.0);

    // The logger, behind the same proxy address, goes on.
    upload(&mut logger, "20260101000200001", "20260101000200");
    daemon.stop(WAIT);
}
