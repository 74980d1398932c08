//! No log line carries an HJ 212 password: a real `cemsd run` with a listener and an uplink
//! is sent refused packets holding known passwords (a bad CRC and a wrong length from a
//! logger, an unreadable packet from the platform), and its whole log, at debug level, is
//! searched for them.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use cemsd::protocol::hj212::{
    encode, CommandCode, CommandParams, Factor, FieldKind, Packet, SystemCode,
};
use support::daemon::{write_config, Daemon};
use support::ports::{free_port, listening_within};
use support::site::{head, hj212_uplink, stack};
use support::time::eventually;

const LOGGER_MN: &str = "010000A8900016F000169DC0";
const LOGGER_PW: &str = "Lsn-Pw-918273";
const UPLINK_MN: &str = "88888880000001";
const UPLINK_PW: &str = "Upl-Pw-564738";

/// A minute upload from the logger, as it is on the wire.
fn minute_upload() -> Vec<u8> {
    let mut packet = Packet::new(
        SystemCode::from_code(31),
        CommandCode::MinuteData,
        LOGGER_MN,
    );
    packet.pw = Some(LOGGER_PW.to_string());
    packet.qn = Some("20260101120000000".to_string());
    packet.cp = CommandParams::new()
        .with_data_time("20260101120000")
        .with_factor(Factor::new("a21026").with(FieldKind::Avg, "12.5"));
    encode(&packet).unwrap_or_else(|e| panic!("encode: {e}"))
}

/// `wire` with its 4 CRC digits replaced by a wrong checksum.
fn with_bad_crc(mut wire: Vec<u8>) -> Vec<u8> {
    let crc_at = wire.len() - 6;
    let wrong = if &wire[crc_at..crc_at + 4] == b"0000" {
        b"FFFF"
    } else {
        b"0000"
    };
    wire[crc_at..crc_at + 4].copy_from_slice(wrong);
    wire
}

/// `wire` with a length field one byte short of its data segment.
fn with_bad_length(mut wire: Vec<u8>) -> Vec<u8> {
    let declared: usize = std::str::from_utf8(&wire[2..6])
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no length field in {wire:?}"));
    let field = format!("{:04}", declared - 1);
    wire[2..6].copy_from_slice(field.as_bytes());
    wire
}

#[test]
fn refused_packets_are_logged_with_their_passwords_masked() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let platform = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let platform_address = platform
        .local_addr()
        .unwrap_or_else(|e| panic!("address: {e}"));
    let listener_port = free_port();
    std::fs::write(dir.path().join("logger.pw"), format!("{LOGGER_PW}\n"))
        .unwrap_or_else(|e| panic!("write password: {e}"));
    let text = head("bureau", "", "data/cemsd.db")
        + &stack(&format!("mn = \"{UPLINK_MN}\""))
        + &hj212_uplink(
            dir.path(),
            "province",
            &platform_address.to_string(),
            UPLINK_PW,
            "",
        )
        + &format!(
            r#"
[hj212_listener]
listen = "127.0.0.1:{listener_port}"
# the fixtures are dated 2026-01-01: inside the window whatever the calendar says
data_time_horizon = "20y"

[[hj212_listener.device]]
mn = "{LOGGER_MN}"
password = {{ file = "logger.pw" }}
stack = "plant-a.unit1"
"#
        );
    let config = write_config(dir.path(), "bureau.toml", &text);
    let mut daemon = Daemon::start(&config, dir.path(), &[("CEMSD_LOG", "debug".into())]);
    assert!(
        listening_within(listener_port, Duration::from_secs(30)),
        "listener did not come up:\n{}",
        daemon.log_text()
    );

    // The logger: a bad CRC, then a wrong length, each holding its password.
    let mut logger =
        TcpStream::connect(("127.0.0.1", listener_port)).unwrap_or_else(|e| panic!("connect: {e}"));
    for wire in [
        with_bad_crc(minute_upload()),
        with_bad_length(minute_upload()),
    ] {
        logger
            .write_all(&wire)
            .and_then(|()| logger.write_all(b"\r\n"))
            .unwrap_or_else(|e| panic!("send: {e}"));
    }

    // The platform: an unreadable packet with the uplink's password.
    platform
        .set_nonblocking(false)
        .unwrap_or_else(|e| panic!("blocking: {e}"));
    let (mut uplink, _) = platform
        .accept()
        .unwrap_or_else(|e| panic!("the uplink did not connect: {e}"));
    let mut request = Packet::new(SystemCode::from_code(91), CommandCode::GetTime, UPLINK_MN);
    request.pw = Some(UPLINK_PW.to_string());
    request.qn = Some("20260101121500000".to_string());
    let request = with_bad_crc(encode(&request).unwrap_or_else(|e| panic!("encode: {e}")));
    uplink
        .write_all(&request)
        .and_then(|()| uplink.write_all(b"\r\n"))
        .unwrap_or_else(|e| panic!("send to the uplink: {e}"));

    let logged = eventually(Duration::from_secs(30), || {
        let log = daemon.log_text();
        log.matches("HJ 212 packet refused").count() >= 2
            && log.contains("unreadable packet from the platform")
    });
    let code = daemon.terminate();
    let log = daemon.log_text();
    assert!(logged, "the refusals were not logged:\n{log}");
    assert_eq!(code, Some(0), "{log}");
    // the excerpts are there, masked
    assert!(log.contains("PW=******"), "{log}");
    for password in [LOGGER_PW, UPLINK_PW] {
        assert!(
            !log.contains(password),
            "password {password:?} in the log:\n{log}"
        );
    }
    // the uplink's socket stays readable to the end; nothing else is expected on it
    let _ = uplink.set_read_timeout(Some(Duration::from_millis(10)));
    let _ = uplink.read(&mut [0u8; 64]);
}
