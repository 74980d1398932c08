//! Serial buses and network endpoints in the site config: defaults from the Modbus serial
//! line spec, and every wiring mistake reported at its file, line and column.

use std::path::Path;
use std::time::Duration;

use cemsd::config::{self, Parity, Transport};

const GOOD: &str = r#"[site]
id = "plant"

[[stack]]
id = "unit1"

[[bus]]
id = "rs485-1"
port = "/dev/ttyUSB0"
baud = 9600
parity = "even"

[[bus]]
id = "rs485-2"
port = "/dev/ttyUSB1"
baud = 38400

[[device]]
id = "so2"
profile = "thermo-43i"
stack = "unit1"
transport = "rtu"
bus = "rs485-1"
unit_id = 1

[[device]]
id = "nox"
profile = "thermo-42i"
stack = "unit1"
transport = "rtu"
bus = "rs485-1"
unit_id = 2

[[device]]
id = "dtu"
profile = "thermo-43i"
stack = "unit1"
transport = "rtu-over-tcp"
address = "127.0.0.1:4001"
unit_id = 3
max_connections = 1
close_after_poll = true
"#;

fn error_of(text: &str) -> String {
    match config::parse(Path::new("site.toml"), text) {
        Ok(_) => panic!("config should have been rejected:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// The message starts with `site.toml:LINE:`, names `key` and has a help line with `help`.
fn assert_points_at(message: &str, line: usize, key: &str, help: &str) {
    assert!(
        message.starts_with(&format!("site.toml:{line}:")),
        "expected line {line} in: {message}"
    );
    assert!(message.contains(key), "expected key {key} in: {message}");
    assert!(
        message.contains("help:") && message.contains(help),
        "expected help containing {help:?} in: {message}"
    );
}

#[test]
fn buses_parse_with_spec_timing() {
    let loaded = config::parse(Path::new("site.toml"), GOOD).unwrap_or_else(|e| panic!("{e}"));
    let [even, fast] = &loaded.config.buses[..] else {
        panic!("two buses expected");
    };
    assert_eq!(even.parity, Parity::Even);
    // 8E1: start + 8 data + parity + stop = 11 bits; 11 / 9600 s = 1145.83 µs per character
    assert_eq!(even.bits_per_char(), 11);
    assert_eq!(even.char_time(), Duration::from_nanos(1_145_833));
    // 3.5 characters = 4010.42 µs
    let t35 = even.inter_frame().as_nanos();
    assert!((4_010_400..=4_010_420).contains(&t35), "{t35} ns");
    // above 19200 baud the spec fixes 1.75 ms
    assert_eq!(fast.inter_frame(), Duration::from_micros(1_750));
    assert_eq!(fast.bits_per_char(), 10);
    assert_eq!(even.response_timeout.0, Duration::from_millis(500));
    assert!(!even.capture);

    let devices = &loaded.config.devices;
    assert_eq!(devices[0].transport, Transport::Rtu);
    // an rtu device without its own timeout uses the bus's response timeout
    assert_eq!(
        devices[0].effective_timeout(&loaded.config.buses),
        Duration::from_millis(500)
    );
    assert_eq!(devices[2].transport, Transport::RtuOverTcp);
    assert_eq!(
        devices[2].effective_timeout(&loaded.config.buses),
        Duration::from_secs(1)
    );
}

#[test]
fn device_on_a_missing_bus() {
    let text = GOOD.replacen(
        "bus = \"rs485-1\"\nunit_id = 2",
        "bus = \"rs485-9\"\nunit_id = 2",
        1,
    );
    let msg = error_of(&text);
    assert_points_at(&msg, 31, "device[1].bus", "rs485-1, rs485-2");
}

#[test]
fn two_buses_on_one_port() {
    let text = GOOD.replace("/dev/ttyUSB1", "/dev/ttyUSB0");
    let msg = error_of(&text);
    assert_points_at(&msg, 15, "bus[1].port", "one serial port is one bus");
}

#[test]
fn rtu_device_with_an_address() {
    let text = GOOD.replacen(
        "bus = \"rs485-1\"\nunit_id = 1",
        "bus = \"rs485-1\"\naddress = \"10.0.0.5:502\"\nunit_id = 1",
        1,
    );
    let msg = error_of(&text);
    assert_points_at(&msg, 24, "device[0].address", "rtu-over-tcp");
}

#[test]
fn rtu_device_without_a_bus() {
    let text = GOOD.replacen("bus = \"rs485-1\"\nunit_id = 1\n", "unit_id = 1\n", 1);
    let msg = error_of(&text);
    // no bus key: the error points at the device's table
    assert!(msg.starts_with("site.toml:18:"), "{msg}");
    assert!(
        msg.contains("device[0].bus") && msg.contains("names no bus"),
        "{msg}"
    );
}

#[test]
fn network_device_without_an_address_or_with_a_bus() {
    let text = GOOD.replace("address = \"127.0.0.1:4001\"\n", "");
    let msg = error_of(&text);
    assert!(
        msg.contains("device[2].address") && msg.contains("has no address"),
        "{msg}"
    );
    let text = GOOD.replace(
        "address = \"127.0.0.1:4001\"\n",
        "address = \"127.0.0.1:4001\"\nbus = \"rs485-1\"\n",
    );
    let msg = error_of(&text);
    assert_points_at(&msg, 40, "device[2].bus", "remove bus");
}

#[test]
fn one_unit_id_twice_on_a_bus() {
    let text = GOOD.replacen("unit_id = 2", "unit_id = 1", 1);
    let msg = error_of(&text);
    assert_points_at(&msg, 32, "device[1].unit_id", "own unit_id");
    assert!(msg.contains("by device \"so2\""), "{msg}");
}

#[test]
fn broadcast_unit_on_a_bus() {
    let text = GOOD.replacen("unit_id = 1", "unit_id = 0", 1);
    let msg = error_of(&text);
    assert_points_at(&msg, 24, "device[0].unit_id", "1 to 247");
}

#[test]
fn serial_settings_out_of_range() {
    let msg = error_of(&GOOD.replace("baud = 38400", "baud = 38400\ndata_bits = 7"));
    assert_points_at(&msg, 17, "bus[1].data_bits", "data_bits = 8");
    let msg = error_of(&GOOD.replace("baud = 38400", "baud = 38400\nstop_bits = 3"));
    assert_points_at(&msg, 17, "bus[1].stop_bits", "1 or 2");
    let msg = error_of(&GOOD.replace("baud = 38400", "baud = 0"));
    assert_points_at(&msg, 16, "bus[1].baud", "9600");
    let msg = error_of(&GOOD.replace("parity = \"even\"", "parity = \"mark\""));
    assert_points_at(&msg, 11, "bus[0].parity", "none");
}

#[test]
fn connection_options_on_a_serial_device() {
    let text = GOOD.replacen("unit_id = 1\n", "unit_id = 1\nclose_after_poll = true\n", 1);
    let msg = error_of(&text);
    assert_points_at(&msg, 25, "device[0].close_after_poll", "one owner");
}

const SECOND_DTU_DEVICE: &str = r#"
[[device]]
id = "dtu2"
profile = "thermo-42i"
stack = "unit1"
transport = "rtu-over-tcp"
address = "127.0.0.1:4001"
unit_id = 4
"#;

#[test]
fn devices_behind_one_endpoint_must_agree() {
    let ok = format!("{GOOD}{SECOND_DTU_DEVICE}");
    config::parse(Path::new("site.toml"), &ok).unwrap_or_else(|e| panic!("{e}"));

    let text = format!(
        "{GOOD}{}",
        SECOND_DTU_DEVICE.replace("unit_id = 4", "unit_id = 4\nclose_after_poll = false")
    );
    let msg = error_of(&text);
    assert_points_at(&msg, 51, "device[3].close_after_poll", "same value");

    let text = format!(
        "{GOOD}{}",
        SECOND_DTU_DEVICE.replace("\"rtu-over-tcp\"", "\"tcp\"")
    );
    let msg = error_of(&text);
    assert_points_at(&msg, 48, "device[3].transport", "rtu-over-tcp");
}

#[test]
fn request_shaping_limits() {
    let text = GOOD.replacen("unit_id = 1\n", "unit_id = 1\nmax_registers = 200\n", 1);
    let msg = error_of(&text);
    assert_points_at(&msg, 25, "device[0].max_registers", "125");
    let text = GOOD.replace("max_connections = 1", "max_connections = 0");
    let msg = error_of(&text);
    assert_points_at(&msg, 41, "device[2].max_connections", "single client");
}
