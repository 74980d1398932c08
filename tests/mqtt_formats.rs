//! Every payload format through a real mosquitto and `cemsd run` into the store, and bad
//! payloads into the dead letters without holding up the good ones.

mod support;

use std::time::Duration;

use cemsd::model::{Flag, Timestamp};
use cemsd::protocol::hj212::{
    encode, CommandCode, CommandParams, Factor, FieldKind, Packet, SystemCode,
};
use cemsd::store::Stored;
use support::daemon::{write_config, Daemon};
use support::mqtt::broker;
use support::peers::mosquitto::{publish, Broker};
use support::site::{head, stack};
use support::store::{open, readings, wait_for};

/// 2026-01-01T04:00:00Z, i.e. 12:00 at +08:00.
const NOON_CST_MS: i64 = 1_767_240_000_000;

fn site(port: u16) -> String {
    head("formats", "utc_offset = \"+08:00\"\n", "data/cemsd.db")
        + &stack("")
        + &broker(
            "plant",
            &format!("mqtt://127.0.0.1:{port}"),
            "cemsd-formats",
            "",
        )
        + r#"
[[mqtt.subscribe]]
filter = "json/#"
format = "json"
time_format = "unix_ms"
json = { readings = "data", value = "v", channel = "ch", device = "dev", time = "t", status = "st" }

[[mqtt.subscribe]]
filter = "lp/#"
format = "line_protocol"
time_format = "unix_ms"

[[mqtt.subscribe]]
filter = "plant/+/+/+"
format = "plain"
topic = "plant/{site}/{device}/{channel}"

[[mqtt.subscribe]]
filter = "hj212/#"
format = "hj212"

[[mqtt.device]]
id = "dtu"
stack = "unit1"
interval = "10s"
channels = { SO2 = { unit = "mg/m3" }, O2 = { unit = "%vol" } }

[[mqtt.device]]
id = "plc"
stack = "unit1"
interval = "10s"
channels = { NO = { unit = "ppm" } }

[[mqtt.device]]
id = "logger"
published_as = "MN0001"
stack = "unit1"
interval = "10s"
channels = { a21026 = { unit = "mg/m3" }, a19001 = { unit = "%vol" } }
"#
}

fn summary(stored: &[Stored]) -> Vec<(String, f64, i64, Flag)> {
    let mut out: Vec<_> = stored
        .iter()
        .map(|s| {
            let r = &s.record;
            (
                r.channel.to_string(),
                r.raw.unwrap_or(f64::NAN),
                r.ts.0,
                r.flags.primary(),
            )
        })
        .collect();
    out.sort_by(|a, b| (a.2, &a.0).cmp(&(b.2, &b.0)));
    out
}

#[test]
fn every_payload_format_is_stored_and_bad_ones_are_dead_lettered() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let config = write_config(dir.path(), "site.toml", &site(broker.port));
    let mut cemsd = Daemon::start(&config, dir.path(), &[]);
    std::thread::sleep(Duration::from_millis(1500));

    let hj212 = {
        let mut p = Packet::new(
            SystemCode::from_code(31),
            CommandCode::RealTimeData,
            "MN0001",
        );
        p.cp = CommandParams::new()
            .with_data_time("20260101120001")
            .with_factor(
                Factor::new("a21026")
                    .with(FieldKind::Rtd, "21.5")
                    .with_flag(Flag::N),
            )
            .with_factor(
                Factor::new("a19001")
                    .with(FieldKind::Rtd, "6.5")
                    .with_flag(Flag::C),
            );
        encode(&p).unwrap_or_else(|e| panic!("encode: {e}"))
    };
    let messages: Vec<(String, Vec<u8>)> = vec![
        // one bad message of each kind first: the good ones behind them must still arrive
        ("json/a".into(), b"{\"dev\":".to_vec()),
        ("plant/p1/plc/NO".into(), b"twelve".to_vec()),
        ("json/a".into(), br#"{"dev":"ghost","data":[{"ch":"SO2","v":1}]}"#.to_vec()),
        (
            "json/a".into(),
            format!(
                r#"{{"dev":"dtu","t":{NOON_CST_MS},"data":[{{"ch":"SO2","v":30.5}},{{"ch":"O2","v":6.2,"st":"M"}}]}}"#
            )
            .into_bytes(),
        ),
        (
            "lp/a".into(),
            format!("cems,device=dtu SO2=31.5,O2=6.3,SO2_flag=\"D\" {}", NOON_CST_MS + 2000).into_bytes(),
        ),
        ("plant/p1/plc/NO".into(), b"45.25".to_vec()),
        ("hj212/MN0001".into(), hj212.clone()),
    ];
    publish(broker.port, &messages);

    let db = dir.path().join("data/cemsd.db");
    let arrived = wait_for(&db, |store| {
        readings(store, "dtu").len() >= 4
            && !readings(store, "plc").is_empty()
            && readings(store, "logger").len() >= 2
            && store.dead_letters(10).map(|d| d.len()).unwrap_or(0) >= 3
    });
    let _ = cemsd.terminate();
    let log = cemsd.log_text();
    assert!(arrived, "not everything arrived within 30 s:\n{log}");

    let store = open(&db);
    // JSON: message time for both, status M for O2, which SO2 inherits through its O2
    // correction (HJ 75 quality); line protocol: time in ms, SO2 flag D
    assert_eq!(
        summary(&readings(&store, "dtu")),
        vec![
            ("O2".into(), 6.2, NOON_CST_MS, Flag::M),
            ("SO2".into(), 30.5, NOON_CST_MS, Flag::M),
            ("O2".into(), 6.3, NOON_CST_MS + 2000, Flag::N),
            ("SO2".into(), 31.5, NOON_CST_MS + 2000, Flag::D),
        ]
    );
    // HJ 212: DataTime 12:00:01 at +08:00, flags from -Flag (SO2 inherits O2's C)
    assert_eq!(
        summary(&readings(&store, "logger")),
        vec![
            ("a19001".into(), 6.5, NOON_CST_MS + 1000, Flag::C),
            ("a21026".into(), 21.5, NOON_CST_MS + 1000, Flag::C),
        ]
    );
    // plain: receive time, noted as such on the NO reading and on the NOx derived from it
    let plc = readings(&store, "plc");
    let channels: Vec<_> = plc.iter().map(|s| s.record.channel.to_string()).collect();
    assert_eq!(channels.len(), 2, "{channels:?}");
    assert!(plc
        .iter()
        .all(|s| s.record.note.as_deref() == Some("receive_time")));
    let no = plc
        .iter()
        .find(|s| &*s.record.channel == "NO")
        .unwrap_or_else(|| panic!("no NO reading in {channels:?}"));
    assert_eq!(no.record.raw, Some(45.25));
    let age = support::time::now_ms() - no.record.ts.0;
    assert!(
        (0..60_000).contains(&age),
        "receive time {} is not recent",
        Timestamp(no.record.ts.0)
    );
    assert_eq!(
        readings(&store, "dtu")[0].record.note,
        None,
        "payload times carry no note"
    );

    let mut letters = store
        .dead_letters(10)
        .unwrap_or_else(|e| panic!("dead letters: {e}"));
    letters.reverse();
    let got: Vec<_> = letters
        .iter()
        .map(|d| {
            (
                d.source.as_str(),
                d.reason.split(':').next().unwrap_or(""),
                d.payload.as_slice(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("mqtt:plant", "syntax", &b"{\"dev\":"[..]),
            ("mqtt:plant", "not_a_number", &b"twelve"[..]),
            (
                "mqtt:plant",
                "unknown_device",
                &br#"{"dev":"ghost","data":[{"ch":"SO2","v":1}]}"#[..]
            ),
        ]
    );
    assert!(
        letters[1].reason.ends_with("(topic plant/p1/plc/NO)"),
        "{}",
        letters[1].reason
    );
    assert!(log.contains("refused: \"twelve\" is not a number"), "{log}");
    assert!(log.contains("refused=3"), "{log}");
}
