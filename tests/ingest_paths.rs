//! Every collector reaches the store and the live board through the one pipeline: a `cemsd
//! run` fed by a Modbus analyser (the embedded simulator), an MQTT broker (mosquitto) or an
//! HJ 212 data logger (played by the test) shows each device as connected in `/metrics`
//! once its data is committed. The HJ 212 path also proves the ack comes after the commit.

mod support;

use std::path::Path;
use std::time::Duration;

use cemsd::protocol::hj212::CommandCode;
use cemsd::store::{Query, RecordKind};
use support::daemon::{write_config, Daemon};
use support::hj212_logger::{plant_minute, TestLogger};
use support::http::{metric, scrape};
use support::mqtt::{broker, json_readings, numbered_json};
use support::peers::mosquitto::{publish, Broker};
use support::ports::{free_port, listening_within};
use support::site::{head, plant_stack, simulated_plc, stack};
use support::store::{count_readings, open, wait_for};
use support::time::{eventually, now_ms};

const WAIT: Duration = Duration::from_secs(30);

fn http(port: u16) -> String {
    format!("\n[http]\nlisten = \"127.0.0.1:{port}\"\n")
}

/// `cemsd_device_connected{device}` as the daemon on `http_port` reports it now.
fn connected(http_port: u16, device: &str) -> Option<f64> {
    metric(
        &scrape(http_port),
        "cemsd_device_connected",
        &[("device", device)],
    )
}

fn stop(mut daemon: Daemon) {
    daemon.stop(Duration::from_secs(30));
}

#[test]
fn modbus_readings_reach_the_store_and_the_live_board() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let (sim_port, http_port) = (free_port(), free_port());
    let text = head("plant", "", "data/cemsd.db")
        + &plant_stack("")
        + &simulated_plc(sim_port, 7, "1s", "500ms")
        + &http(http_port);
    let config = write_config(dir.path(), "site.toml", &text);
    let daemon = Daemon::start(&config, dir.path(), &[]);
    let db = dir.path().join("data/cemsd.db");
    assert!(
        eventually(WAIT, || db.exists() && count_readings(&db, "plc") > 0),
        "no reading of plc committed:\n{}",
        daemon.log_text()
    );
    assert!(listening_within(http_port, WAIT), "no http");
    assert!(
        eventually(WAIT, || connected(http_port, "plc") == Some(1.0)),
        "plc is not connected on the live board:\n{}",
        daemon.log_text()
    );
    stop(daemon);
}

#[test]
fn mqtt_readings_reach_the_store_and_the_live_board() {
    let broker_peer = Broker::start();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let http_port = free_port();
    let text = head("plant", "", "data/cemsd.db")
        + &stack("")
        + &broker(
            "plant",
            &format!("mqtt://127.0.0.1:{}", broker_peer.port),
            "ingest-paths",
            "keep_alive = \"5s\"\nreconnect_min = \"100ms\"\nreconnect_max = \"1s\"\n",
        )
        + &json_readings("ingest/#", "qos = 1\n")
        + &http(http_port);
    let config = write_config(dir.path(), "site.toml", &text);
    let daemon = Daemon::start(&config, dir.path(), &[]);
    assert!(listening_within(http_port, WAIT), "no http");
    // before any message the MQTT device has not delivered anything
    assert_eq!(connected(http_port, "d1"), None);
    let messages = numbered_json("ingest/d1", "d1", 0..5, now_ms() - 10_000, 1);
    let db = dir.path().join("data/cemsd.db");
    // the source subscribes once it is connected; publish until the first reading is in
    assert!(
        eventually(WAIT, || {
            publish(broker_peer.port, &messages);
            db.exists() && count_readings(&db, "d1") >= 5
        }),
        "the MQTT readings were not committed:\n{}",
        daemon.log_text()
    );
    assert_eq!(
        count_readings(&db, "d1"),
        5,
        "repeated messages are stored once"
    );
    assert_eq!(connected(http_port, "d1"), Some(1.0));
    stop(daemon);
}

const MN: &str = "010000A8900016F000169DC0";
const PW: &str = "123456";

fn minutes(db: &Path) -> usize {
    open(db)
        .query(&Query {
            kind: Some(RecordKind::Minute),
            device: Some(MN.into()),
            ..Query::default()
        })
        .map_or(0, |rows| rows.len())
}

/// A bureau's `cemsd run` with an HJ 212 listener for one logger, and its store path.
fn bureau(dir: &Path, tcp_port: u16, http_port: u16) -> Daemon {
    std::fs::write(dir.join("plant-a.pw"), format!("{PW}\n"))
        .unwrap_or_else(|e| panic!("write password: {e}"));
    let text = head("bureau", "", "data/cemsd.db")
        + &http(http_port)
        + &format!(
            r#"
[hj212_listener]
listen = "127.0.0.1:{tcp_port}"
history_pull = false
# the fixtures are dated 2026-01-01: inside the window whatever the calendar says
data_time_horizon = "20y"

[[hj212_listener.device]]
mn = "{MN}"
password = {{ file = "plant-a.pw" }}
stack = "plant-a.unit1"
"#
        );
    let config = write_config(dir, "bureau.toml", &text);
    let daemon = Daemon::start(&config, dir, &[]);
    assert!(listening_within(tcp_port, WAIT), "{}", daemon.log_text());
    assert!(listening_within(http_port, WAIT), "no http");
    assert!(
        wait_for(&dir.join("data/cemsd.db"), |_| true),
        "no store:\n{}",
        daemon.log_text()
    );
    daemon
}

/// Sends the upload of `minute` and gives the number of minute rows stored the moment its
/// 9014 arrived.
fn upload_and_count_at_ack(logger: &mut TestLogger, minute: u32, db: &Path, log: &str) -> usize {
    logger.send(&plant_minute(MN, PW, minute));
    let ack = logger.receive(Duration::from_secs(10));
    let stored = minutes(db);
    let ack = ack.unwrap_or_else(|| panic!("no ack for minute {minute}:\n{log}"));
    assert_eq!(ack.cn, CommandCode::DataResponse);
    stored
}

#[test]
fn hj212_uploads_are_committed_before_their_ack_and_reach_the_live_board() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let (tcp_port, http_port) = (free_port(), free_port());
    let daemon = bureau(dir.path(), tcp_port, http_port);
    let db = dir.path().join("data/cemsd.db");
    let mut stream = TestLogger::on_port(tcp_port);
    let stored = upload_and_count_at_ack(&mut stream, 0, &db, &daemon.log_text());
    assert_eq!(stored, 2, "acked before its two factors were committed");
    assert_eq!(connected(http_port, MN), Some(1.0));
    stop(daemon);
}

#[test]
fn a_reload_swaps_the_pipeline_under_the_listener_without_dropping_its_loggers() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let (tcp_port, http_port) = (free_port(), free_port());
    let daemon = bureau(dir.path(), tcp_port, http_port);
    let db = dir.path().join("data/cemsd.db");
    let mut stream = TestLogger::on_port(tcp_port);
    assert_eq!(
        upload_and_count_at_ack(&mut stream, 0, &db, &daemon.log_text()),
        2
    );
    daemon.signal("HUP");
    assert!(
        eventually(WAIT, || daemon.log_text().contains("config reloaded")),
        "no reload:\n{}",
        daemon.log_text()
    );
    // the same connection: its next upload goes to the new pipeline, committed before its ack
    assert_eq!(
        upload_and_count_at_ack(&mut stream, 1, &db, &daemon.log_text()),
        4
    );
    stop(daemon);
}
