//! `[[mqtt]]` config mistakes are reported at their key with a fix, like the rest of the
//! site config.

use std::path::Path;

use cemsd::config;

const GOOD: &str = r#"[site]
id = "plant"

[[stack]]
id = "unit1"
source_type = "coal_boiler"

[[device]]
id = "so2"
profile = "thermo-43i"
stack = "unit1"
transport = "tcp"
address = "127.0.0.1:5020"

[[mqtt]]
id = "plant"
url = "mqtts://broker.example:8884"
client_id = "cemsd-plant"
username = "cemsd"
password_env = "CEMSD_MQTT_PASSWORD"
ca_file = "ca.pem"

[[mqtt.subscribe]]
filter = "plant/+/+/+"
qos = 1
format = "plain"
topic = "plant/{site}/{device}/{channel}"

[[mqtt.device]]
id = "dtu"
stack = "unit1"
interval = "10s"
channels = { SO2 = { unit = "mg/m3" }, h2o = { quantity = "humidity", unit = "%vol" } }
"#;

fn error_of(text: &str) -> String {
    match config::parse(Path::new("site.toml"), text) {
        Ok(_) => panic!("config should have been rejected:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// `GOOD` with one line replaced (or, with an empty `from`, `to` appended).
fn with(from: &str, to: &str) -> String {
    if from.is_empty() {
        return format!("{GOOD}{to}");
    }
    assert!(GOOD.contains(from), "{from:?} not in GOOD");
    GOOD.replacen(from, to, 1)
}

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
fn the_good_config_parses_with_its_defaults() {
    let loaded = config::parse(Path::new("site.toml"), GOOD).unwrap_or_else(|e| panic!("{e}"));
    let source = &loaded.config.mqtt[0];
    assert_eq!(
        (source.url.host.as_str(), source.url.port, source.url.tls),
        ("broker.example", 8884, true)
    );
    assert!(!source.clean_session, "sessions persist by default");
    assert_eq!(source.keep_alive.0.as_secs(), 30);
    assert_eq!(source.subscriptions[0].qos, 1);
    assert_eq!(source.devices[0].channels.len(), 2);
}

#[test]
fn url_filter_and_template_errors_point_at_their_value() {
    let e = error_of(&with(
        "url = \"mqtts://broker.example:8884\"",
        "url = \"tcp://broker:1883\"",
    ));
    assert_points_at(&e, 17, "url", "mqtt://host[:port]");
    let e = error_of(&with("filter = \"plant/+/+/+\"", "filter = \"plant/#/x\""));
    assert_points_at(&e, 24, "filter", "'#' as the whole last level");
    let e = error_of(&with(
        "topic = \"plant/{site}/{device}/{channel}\"",
        "topic = \"plant/{device}/{channel}\"",
    ));
    assert_points_at(
        &e,
        27,
        "mqtt[0].subscribe[0].topic",
        "one level per filter level",
    );
    let e = error_of(&with("qos = 1", "qos = 3"));
    assert_points_at(&e, 25, "mqtt[0].subscribe[0].qos", "at least once");
    let e = error_of(&with("qos = 1", "qos = 2"));
    assert_points_at(&e, 25, "mqtt[0].subscribe[0].qos", "use qos = 1");
}

#[test]
fn device_errors_name_the_device_key() {
    let e = error_of(&with(
        "stack = \"unit1\"\ninterval",
        "stack = \"unit9\"\ninterval",
    ));
    assert_points_at(&e, 31, "mqtt[0].device[0].stack", "unit1");
    let e = error_of(&with("id = \"dtu\"", "id = \"so2\""));
    assert_points_at(&e, 30, "mqtt[0].device[0].id", "Modbus or MQTT");
    let e = error_of(&with(
        "h2o = { quantity = \"humidity\", unit = \"%vol\" }",
        "h2o = { unit = \"%vol\" }",
    ));
    assert_points_at(&e, 33, "mqtt[0].device[0].channels.h2o", "quantity = ");
    let e = error_of(&with(
        "h2o = { quantity",
        "v = { quantity = \"velocity\", unit = \"m/s\" }, h2o = { quantity",
    ));
    assert_points_at(&e, 33, "mqtt[0].device[0].channels.v", "duct_area_m2");
    let e = error_of(&with("unit = \"mg/m3\" }", "unit = \"mg/m³\" }"));
    assert_points_at(&e, 33, "device[0].channels", "`mg/m3`");
}

#[test]
fn credential_and_tls_combinations_are_checked() {
    let e = error_of(&with("username = \"cemsd\"\n", ""));
    assert_points_at(&e, 19, "mqtt[0].password_env", "username");
    let e = error_of(&with(
        "ca_file = \"ca.pem\"",
        "ca_file = \"ca.pem\"\nclient_cert = \"c.pem\"",
    ));
    assert_points_at(&e, 22, "mqtt[0].client_cert", "client_key");
    let e = error_of(&with(
        "url = \"mqtts://broker.example:8884\"",
        "url = \"mqtt://broker.example\"",
    ));
    assert_points_at(&e, 21, "mqtt[0].ca_file", "mqtts://");
    let e = error_of(&with(
        "format = \"plain\"",
        "format = \"plain\"\njson = { value = \"v\" }",
    ));
    assert_points_at(&e, 27, "mqtt[0].subscribe[0].json", "format = \"json\"");
}
