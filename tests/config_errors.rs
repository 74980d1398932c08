//! Every kind of config mistake a technician makes must name file, line, column, key and the
//! fix, and `cemsd check` must exit 2 on it.

use std::path::Path;
use std::process::Command;

use cemsd::config;

const GOOD: &str = r#"[site]
id = "plant"

[[stack]]
id = "unit1"
source_type = "coal_boiler"
duct_area_m2 = 12.5

[[device]]
id = "so2"
profile = "thermo-43i"
stack = "unit1"
transport = "tcp"
address = "127.0.0.1:5020"
poll_interval = "10s"

[[device]]
id = "plc"
profile = "sdl-scs900-plc"
stack = "unit1"
transport = "tcp"
address = "127.0.0.1:5021"
spans = { so2 = [0, 750] }
"#;

/// Parses `text` and returns the error message, failing the test if it parsed.
fn error_of(text: &str) -> String {
    match config::parse(Path::new("site.toml"), text) {
        Ok(_) => panic!("config should have been rejected:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// Asserts the message starts with `site.toml:LINE:` and names the key and a help text.
fn assert_points_at(message: &str, line: usize, key: &str, help_contains: &str) {
    assert!(
        message.starts_with(&format!("site.toml:{line}:")),
        "expected line {line} in: {message}"
    );
    assert!(message.contains(key), "expected key {key} in: {message}");
    assert!(
        message.contains("help:") && message.contains(help_contains),
        "expected help containing {help_contains:?} in: {message}"
    );
}

#[test]
fn the_good_config_parses() {
    let loaded = config::parse(Path::new("site.toml"), GOOD).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.config.devices.len(), 2);
    assert_eq!(
        loaded.config.devices[0].poll_interval.0,
        std::time::Duration::from_secs(10)
    );
}

#[test]
fn unknown_key() {
    let text = GOOD.replace("poll_interval = \"10s\"", "pol_interval = \"10s\"");
    let msg = error_of(&text);
    assert_points_at(&msg, 15, "device[0].pol_interval", "poll_interval");
}

#[test]
fn wrong_type() {
    let text = GOOD.replace("id = \"plant\"", "id = 7");
    let msg = error_of(&text);
    assert_points_at(&msg, 2, "site.id", "type");
}

#[test]
fn bad_duration() {
    let text = GOOD.replace("\"10s\"", "\"10 parsecs\"");
    let msg = error_of(&text);
    assert_points_at(&msg, 15, "device[0].poll_interval", "");
    assert!(msg.contains("\"500ms\""), "{msg}");
}

#[test]
fn unknown_profile() {
    let text = GOOD.replace("\"thermo-43i\"", "\"thermo-43x\"");
    let msg = error_of(&text);
    assert_points_at(&msg, 11, "device[0].profile", "thermo-43i");
}

#[test]
fn duplicate_device_id() {
    let text = GOOD.replace("id = \"plc\"", "id = \"so2\"");
    let msg = error_of(&text);
    assert_points_at(&msg, 18, "device[1].id", "own id");
}

#[test]
fn device_bound_to_missing_stack() {
    let text = GOOD.replacen("stack = \"unit1\"", "stack = \"unit9\"", 1);
    let msg = error_of(&text);
    assert_points_at(&msg, 12, "device[0].stack", "unit1");
}

#[test]
fn span_for_a_register_not_in_the_profile() {
    let text = GOOD.replace("spans = { so2", "spans = { so3");
    let msg = error_of(&text);
    assert_points_at(&msg, 23, "device[1].spans.so3", "so2");
}

#[test]
fn channel_not_in_the_profile() {
    let text = GOOD.replace(
        "poll_interval = \"10s\"",
        "poll_interval = \"10s\"\nchannels = [\"SO2\"]",
    );
    let msg = error_of(&text);
    assert_points_at(&msg, 16, "device[0].channels[0]", "so2");
}

#[test]
fn bad_enum_value() {
    let text = GOOD.replacen("transport = \"tcp\"", "transport = \"udp\"", 1);
    let msg = error_of(&text);
    assert_points_at(&msg, 13, "device[0].transport", "tcp");
}

#[test]
fn missing_required_key() {
    let text = GOOD.replacen("address = \"127.0.0.1:5020\"\n", "", 1);
    let msg = error_of(&text);
    assert!(msg.contains("address"), "{msg}");
    assert!(msg.contains("help:"), "{msg}");
}

#[test]
fn timeout_not_shorter_than_interval() {
    let text = GOOD.replace(
        "poll_interval = \"10s\"",
        "poll_interval = \"10s\"\ntimeout = \"10s\"",
    );
    let msg = error_of(&text);
    assert_points_at(&msg, 16, "device[0].timeout", "shorter");
}

#[test]
fn velocity_without_duct_area() {
    let text = GOOD.replace("duct_area_m2 = 12.5\n", "");
    let msg = error_of(&text);
    assert_points_at(&msg, 4, "stack[0]", "duct_area_m2");
}

#[test]
fn stack_parameter_out_of_range() {
    let text = GOOD.replace(
        "duct_area_m2 = 12.5",
        "duct_area_m2 = 12.5\nhour_min_valid_minutes = 61",
    );
    let msg = error_of(&text);
    assert_points_at(&msg, 8, "stack[0].hour_min_valid_minutes", "");
}

#[test]
fn check_exits_2_and_prints_the_position() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, GOOD.replace("\"thermo-43i\"", "\"nope\""))
        .unwrap_or_else(|e| panic!("write: {e}"));
    let out = Command::new(env!("CARGO_BIN_EXE_cemsd"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("run cemsd: {e}"));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.toml:11:"), "{stderr}");
    assert!(stderr.contains("device[0].profile"), "{stderr}");
}

#[test]
fn every_sample_config_in_deploy_checks_ok() {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let mut checked = 0;
    for entry in std::fs::read_dir(&deploy).unwrap_or_else(|e| panic!("deploy/: {e}")) {
        let path = entry.unwrap_or_else(|e| panic!("deploy/: {e}")).path();
        if path.extension().is_some_and(|x| x == "toml") {
            if let Err(e) = config::load(&path) {
                panic!("{e}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 1, "no sample configs found in deploy/");
}

/// GOOD with an HJ 212 uplink: `stack_mn` is line 8 when given, and `[[hj212]]` is line 26
/// with it (name 27, address 28, password 29, extra keys from 30).
fn with_uplink(stack_mn: &str, sink: &str) -> String {
    let text = GOOD.replace(
        "duct_area_m2 = 12.5\n",
        &format!("duct_area_m2 = 12.5\n{stack_mn}"),
    );
    format!("{text}\n[[hj212]]\n{sink}")
}

const UPLINK: &str = r#"name = "province"
address = "10.1.2.3:8001"
password = { file = "hj212.pw" }
"#;

#[test]
fn an_uplink_with_a_stack_mn_parses() {
    let text = with_uplink("mn = \"88888880000001\"\n", UPLINK);
    let loaded = config::parse(Path::new("site.toml"), &text).unwrap_or_else(|e| panic!("{e}"));
    let sink = &loaded.config.hj212[0];
    assert_eq!(sink.store_name(), "hj212:province");
    assert_eq!(sink.system_code, 31);
    assert_eq!(sink.retries, 3);
    assert_eq!(sink.realtime_interval(), None);
    assert_eq!(
        sink.point_mns(&loaded.config.site, &loaded.config.stacks),
        vec![("unit1".to_string(), "88888880000001".to_string())]
    );
}

#[test]
fn uploaded_stack_without_an_mn() {
    let msg = error_of(&with_uplink("", UPLINK));
    assert_points_at(&msg, 4, "stack[0]", "mn");
}

#[test]
fn site_mn_serves_a_single_stack() {
    let text = with_uplink("", UPLINK)
        .replace("id = \"plant\"", "id = \"plant\"\nmn = \"88888880000001\"");
    let loaded = config::parse(Path::new("site.toml"), &text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        loaded.config.hj212[0].point_mns(&loaded.config.site, &loaded.config.stacks)[0].1,
        "88888880000001"
    );
}

#[test]
fn mn_too_long() {
    let msg = error_of(&with_uplink("mn = \"0123456789012345678901234\"\n", UPLINK));
    assert_points_at(&msg, 8, "stack[0].mn", "bureau");
}

#[test]
fn uplink_address_without_a_port() {
    let sink = UPLINK.replace("10.1.2.3:8001", "10.1.2.3");
    let msg = error_of(&with_uplink("mn = \"MN1\"\n", &sink));
    assert_points_at(&msg, 28, "hj212[0].address", "10.1.2.3:8001");
}

#[test]
fn uplink_names_used_twice() {
    let text = format!(
        "{}\n[[hj212]]\n{UPLINK}",
        with_uplink("mn = \"MN1\"\n", UPLINK)
    );
    let msg = error_of(&text);
    assert_points_at(&msg, 32, "hj212[1].name", "own name");
}

#[test]
fn uplink_password_in_two_places() {
    let sink = UPLINK.replace(
        "{ file = \"hj212.pw\" }",
        "{ file = \"hj212.pw\", env = \"PW\" }",
    );
    let msg = error_of(&with_uplink("mn = \"MN1\"\n", &sink));
    assert_points_at(&msg, 29, "hj212[0].password", "one of them");
}

#[test]
fn uplink_point_that_is_not_a_stack() {
    let sink = format!("{UPLINK}points = [\"unit9\"]\n");
    let msg = error_of(&with_uplink("mn = \"MN1\"\n", &sink));
    assert_points_at(&msg, 30, "hj212[0].points[0]", "unit1");
}

#[test]
fn uplink_unknown_key() {
    let sink = format!("{UPLINK}retry = 3\n");
    let msg = error_of(&with_uplink("mn = \"MN1\"\n", &sink));
    assert_points_at(&msg, 30, "hj212[0].retry", "retries");
}

#[test]
fn the_commented_hj212_example_in_deploy_checks_ok() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/cemsd.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    let (before, rest) = text
        .split_once("# BEGIN hj212 example\n")
        .unwrap_or_else(|| panic!("no hj212 example in {}", path.display()));
    let (example, _) = rest
        .split_once("# END hj212 example")
        .unwrap_or_else(|| panic!("hj212 example not closed"));
    let uncommented: String = example
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("# ").unwrap_or(l)))
        .collect();
    let loaded =
        config::parse(&path, &format!("{before}{uncommented}")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.config.hj212.len(), 1);
}

/// GOOD plus a listener for two loggers; line 25 is `[hj212_listener]`.
fn with_listener() -> String {
    format!(
        r#"{GOOD}
[hj212_listener]
listen = "0.0.0.0:9001"

[[hj212_listener.device]]
mn = "010000A8900016F000169DC0"
password = {{ env = "CEMSD_HJ212_PW_PLANT_A" }}
stack = "plant-a.unit1"

[[hj212_listener.device]]
mn = "010000A8900016F000169DC1"
password = {{ file = "plant-b.pw" }}
stack = "plant-b.unit1"
"#
    )
}

#[test]
fn hj212_listener_good_config_parses() {
    let loaded =
        config::parse(Path::new("site.toml"), &with_listener()).unwrap_or_else(|e| panic!("{e}"));
    let listener = loaded
        .config
        .hj212_listener
        .unwrap_or_else(|| panic!("no listener"));
    assert_eq!(listener.devices.len(), 2);
    assert_eq!(listener.max_connections, 2000);
    assert_eq!(listener.idle_timeout.0, std::time::Duration::from_secs(900));
    assert_eq!(listener.max_connections_per_ip, 64);
    assert_eq!(
        listener.packet_deadline.0,
        std::time::Duration::from_secs(10)
    );
    assert_eq!(listener.auth_lockout_after, 10);
    assert_eq!(listener.auth_lockout.0, std::time::Duration::from_secs(900));
    assert_eq!(
        listener.data_time_horizon.0,
        std::time::Duration::from_secs(366 * 86_400)
    );
}

#[test]
fn a_spill_too_small_to_hold_a_poll_round_is_refused() {
    let msg = error_of(&format!("{GOOD}\n[ingest]\nspill_records = 10\n"));
    assert!(msg.contains("ingest.spill_records"), "{msg}");
    assert!(
        msg.contains("outside 1000..=10000000") && msg.contains("help:"),
        "{msg}"
    );
}

#[test]
fn hj212_listener_limits_are_checked_at_their_line() {
    let with = |keys: &str| {
        with_listener().replace(
            "listen = \"0.0.0.0:9001\"",
            &format!("listen = \"0.0.0.0:9001\"\n{keys}"),
        )
    };
    let msg = error_of(&with("packet_deadline = \"500ms\""));
    assert_points_at(&msg, 27, "hj212_listener.packet_deadline", "10s");
    let msg = error_of(&with("max_connections_per_ip = 0"));
    assert_points_at(&msg, 27, "hj212_listener.max_connections_per_ip", "64");
    let msg = error_of(&with("auth_lockout_after = 0"));
    assert_points_at(&msg, 27, "hj212_listener.auth_lockout_after", "10");
    let msg = error_of(&with("auth_lockout = \"0s\""));
    assert_points_at(&msg, 27, "hj212_listener.auth_lockout", "15m");
    let msg = error_of(&with("history_max = \"30d\"\ndata_time_horizon = \"7d\""));
    assert_points_at(&msg, 28, "hj212_listener.data_time_horizon", "366d");
}

#[test]
fn hj212_listener_duplicate_mn() {
    let text = with_listener().replace("169DC1", "169DC0");
    let msg = error_of(&text);
    assert_points_at(&msg, 34, "hj212_listener.device[1].mn", "listed once");
}

#[test]
fn hj212_listener_mn_over_24_characters() {
    let text = with_listener().replace("169DC0\"", "169DC0X\"");
    let msg = error_of(&text);
    assert_points_at(&msg, 29, "hj212_listener.device[0].mn", "data logger");
    assert!(msg.contains("25 characters"), "{msg}");
}

#[test]
fn hj212_listener_bad_listen_address() {
    let text = with_listener().replace("\"0.0.0.0:9001\"", "\"0.0.0.0\"");
    let msg = error_of(&text);
    assert!(msg.starts_with("site.toml:26:"), "{msg}");
    assert!(msg.contains("hj212_listener.listen"), "{msg}");
}

#[test]
fn hj212_listener_password_needs_file_or_env() {
    let text = with_listener().replace("{ env = \"CEMSD_HJ212_PW_PLANT_A\" }", "\"secret\"");
    let msg = error_of(&text);
    assert!(msg.starts_with("site.toml:30:"), "{msg}");
    assert!(msg.contains("hj212_listener.device[0].password"), "{msg}");
    let text = with_listener().replace("{ file = \"plant-b.pw\" }", "{ path = \"plant-b.pw\" }");
    let msg = error_of(&text);
    assert!(msg.contains("hj212_listener.device[1].password"), "{msg}");
}

#[test]
fn hj212_listener_zero_connections() {
    let text = with_listener().replace(
        "listen = \"0.0.0.0:9001\"",
        "listen = \"0.0.0.0:9001\"\nmax_connections = 0",
    );
    let msg = error_of(&text);
    assert_points_at(&msg, 27, "hj212_listener.max_connections", "2000");
}

#[test]
fn hj212_listener_without_tcp_or_serial() {
    let text = with_listener().replace("listen = \"0.0.0.0:9001\"\n", "");
    let msg = error_of(&text);
    assert_points_at(&msg, 25, "hj212_listener", "serial");
}

#[test]
fn hj212_listener_upload_interval_is_checked_at_its_line() {
    let with = |value: &str| {
        with_listener().replace(
            "stack = \"plant-b.unit1\"",
            &format!("stack = \"plant-b.unit1\"\nupload_interval = {value}"),
        )
    };
    let msg = error_of(&with("\"2d\""));
    assert_points_at(
        &msg,
        37,
        "hj212_listener.device[1].upload_interval",
        "learn it from the uploads",
    );
    assert!(msg.contains("outside 1s..=1d"), "{msg}");
    let msg = error_of(&with("\"ten minutes\""));
    assert!(msg.starts_with("site.toml:37:"), "{msg}");
    assert!(msg.contains("upload_interval"), "{msg}");
    let loaded =
        config::parse(Path::new("site.toml"), &with("\"10m\"")).unwrap_or_else(|e| panic!("{e}"));
    let listener = loaded
        .config
        .hj212_listener
        .unwrap_or_else(|| panic!("no listener"));
    assert_eq!(
        listener.devices[1].upload_interval.map(|i| i.0),
        Some(std::time::Duration::from_secs(600))
    );
    assert_eq!(listener.devices[0].upload_interval, None);
}
