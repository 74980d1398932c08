//! HJ 212 between two `cemsd run` processes on 127.0.0.1: a plant (a simulated SCS-900 PLC
//! polled over Modbus TCP, `[[hj212]]` uplink) and a bureau (`[hj212_listener]` with the
//! plant's MN and password). Nothing in between is played by the test.
//!
//! Hours of past data come from the replay tooling, not from hand-written rows: a synthetic
//! capture of the same analyser on an RS-485 bus (2026-03-01 21:00–01:05 at +08:00, polled
//! every 10 s) goes through the live decoding, normalisation and aggregation, and its
//! records are appended to the plant's store before it starts. The PLC reads its pressure
//! in Pa, so every a01013 value also checks the conversion to the HJ 212 unit (kPa).
//!
//! "A platform that drops every other ack still gets every record once acked" is covered
//! against the test platform in tests/hj212_uplink.rs.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use cemsd::collect::hj212::records::from_hj212_unit;
use cemsd::model::time::UtcOffset;
use cemsd::model::Timestamp;
use cemsd::protocol::hj212::codes::code_2017;
use cemsd::protocol::hj212::codes::data_type;
use cemsd::protocol::hj212::{FieldKind, SystemCode};
use cemsd::sink::hj212::upload::UploadHeader;
use cemsd::sink::hj212::upload::{
    group_periods, period_packet, to_hj212_unit, to_wire, QnSequence,
};
use cemsd::store::{Record, RecordKind, Stored};
use support::daemon::{write_config, Daemon};
use support::http::http_get;
use support::ports::{free_port, listening_within};
use support::replayed::polled_on_a_bus;
use support::site::{head, hj212_uplink, plant_stack, simulated_plc};
use support::store::{all, append, open};
use support::time::eventually;

const MN: &str = "88888880000001";
const PASSWORD: &str = "plant-pw-42";
const POINT: &str = "unit1";
const SINK: &str = "hj212:bureau";
const HOUR_MS: i64 = 3_600_000;
/// 2026-03-01 21:00:00 at +08:00 = 13:00:00Z.
const REPLAY_START_MS: i64 = 1_772_370_000_000;
const REPLAY_HOURS: i64 = 4;
/// Local 22:00 and 00:00 of that night: the bureau of the history test loses what ends
/// between them.
const LOST_FROM_MS: i64 = REPLAY_START_MS + HOUR_MS;
const LOST_TO_MS: i64 = REPLAY_START_MS + 3 * HOUR_MS;

/// The records a night of polling the PLC on an RS-485 bus produces, through `Replayer`.
fn replayed_night() -> Vec<Record> {
    let text = format!(
        r#"[site]
id = "plant"
utc_offset = "+08:00"
{stack}
[[bus]]
id = "rs485-1"
port = "/dev/ttyS1"
baud = 9600

[[device]]
id = "plc"
profile = "sdl-scs900-plc"
stack = "unit1"
transport = "rtu"
bus = "rs485-1"
unit_id = 1
poll_interval = "10s"
"#,
        stack = plant_stack(&format!("mn = \"{MN}\"\n")),
    );
    // Five minutes past the last hour, so the tick at 01:00 closes the hour 00:00.
    let hours = u64::try_from(REPLAY_HOURS).unwrap_or(0);
    polled_on_a_bus(
        &text,
        "sdl-scs900-plc",
        "",
        7,
        REPLAY_START_MS,
        Duration::from_secs(hours * 3600 + 300),
    )
}

/// When a replayed record became final: the end of its period, or its time.
fn final_at(record: &Record) -> i64 {
    record.end.unwrap_or(record.ts).0
}

fn is_upload(record: &Record) -> bool {
    matches!(
        record.kind,
        RecordKind::Minute | RecordKind::Hour | RecordKind::Day
    ) && &*record.stack == POINT
        && record.quantity.and_then(code_2017).is_some()
}

fn cursor(db: &Path) -> u64 {
    open(db).cursor(SINK).unwrap_or(0)
}

/// Relative closeness for values that went through text: 1e-9 of the larger magnitude.
fn same(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-300),
        _ => false,
    }
}

/// Whether `got` (the bureau's row) carries `sent` (the plant's aggregate): every value
/// crossed the wire in the unit of its HJ 212 code (flow in m3/s, pressure in kPa) and the
/// listener stored it in the unit cemsd keeps that quantity in (flow in m3/h, pressure in kPa).
fn carries(got: &Record, sent: &Record) -> bool {
    let Some((quantity, code)) = sent.quantity.and_then(|q| code_2017(q).map(|c| (q, c))) else {
        return false;
    };
    // What the bureau reads back: the value in the code's unit, written in its data type
    // (HJ 212-2017 Table B.2), in the store's unit again.
    let hj = |v: Option<f64>| {
        v.and_then(|v| to_hj212_unit(quantity, sent.unit, v))
            .and_then(|wire| data_type(code)?.format(wire).ok()?.parse().ok())
            .and_then(|wire| from_hj212_unit(code, wire))
            .map(|(stored, _)| stored)
    };
    got.kind == sent.kind
        && got.ts == sent.ts
        && got.end == sent.end
        && got.quantity == sent.quantity
        && got.flags.primary() == sent.flags.primary()
        && same(got.measured, hj(sent.measured))
        && same(got.corrected, hj(sent.corrected))
        && same(got.min, hj(sent.min))
        && same(got.max, hj(sent.max))
        && same(got.corrected_min, hj(sent.corrected_min))
        && same(got.corrected_max, hj(sent.corrected_max))
}

/// The plant's uploadable records the bureau does not hold (by value), at most `limit`.
fn missing(plant: &[Stored], bureau: &[Stored], limit: usize) -> Vec<Record> {
    plant
        .iter()
        .map(|s| &s.record)
        .filter(|r| is_upload(r))
        .filter(|r| !bureau.iter().any(|b| carries(&b.record, r)))
        .take(limit)
        .cloned()
        .collect()
}

struct Bureau {
    dir: PathBuf,
    daemon: Daemon,
}

impl Bureau {
    fn config(dir: &Path, port: u16) -> PathBuf {
        std::fs::write(dir.join("plant.pw"), format!("{PASSWORD}\n"))
            .unwrap_or_else(|e| panic!("write password: {e}"));
        let text = head("bureau", "utc_offset = \"+08:00\"\n", "data/cemsd.db")
            + &format!(
                r#"
[hj212_listener]
listen = "127.0.0.1:{port}"
minute_gap = "10m"
history_max = "400d"
# the fixtures are dated 2026-03-01: inside the window whatever the calendar says
data_time_horizon = "20y"

[[hj212_listener.device]]
mn = "{MN}"
password = {{ file = "plant.pw" }}
stack = "unit1"
"#
            );
        write_config(dir, "bureau.toml", &text)
    }

    fn start(dir: &Path, port: u16) -> Bureau {
        let config = Bureau::config(dir, port);
        let daemon = Daemon::start(&config, dir, &[]);
        let bureau = Bureau {
            dir: dir.to_path_buf(),
            daemon,
        };
        let up = listening_within(port, Duration::from_secs(30));
        assert!(up, "bureau did not listen:\n{}", bureau.daemon.log_text());
        bureau
    }

    fn db(&self) -> PathBuf {
        self.dir.join("data/cemsd.db")
    }

    fn stop(mut self) -> PathBuf {
        self.daemon.stop(Duration::from_secs(20));
        self.dir
    }
}

struct Plant {
    dir: PathBuf,
    daemon: Daemon,
    /// Its status page, `/health` and `/metrics`.
    http: u16,
}

impl Plant {
    fn db_in(dir: &Path) -> PathBuf {
        dir.join("data/cemsd.db")
    }

    /// `cemsd run` uploading to the bureau on `bureau_port`; with `live`, also polling a
    /// simulated PLC over Modbus TCP (with real-time data every 2 s).
    fn start(dir: &Path, bureau_port: u16, live: bool) -> Plant {
        let sim_port = free_port();
        let devices = if live {
            simulated_plc(sim_port, 3, "1s", "500ms")
        } else {
            String::new()
        };
        let realtime = if live {
            "realtime_interval = \"2s\"\n"
        } else {
            ""
        };
        let text = head("plant", "utc_offset = \"+08:00\"\n", "data/cemsd.db")
            + &plant_stack(&format!("mn = \"{MN}\"\n"))
            + &devices
            + &hj212_uplink(
                dir,
                "bureau",
                &format!("127.0.0.1:{bureau_port}"),
                PASSWORD,
                &format!("ack_timeout = \"2s\"\n{realtime}"),
            );
        let http = free_port();
        let text = text + &format!("\n[http]\nlisten = \"127.0.0.1:{http}\"\n");
        let path = write_config(dir, "plant.toml", &text);
        Plant {
            dir: dir.to_path_buf(),
            daemon: Daemon::start(&path, dir, &[]),
            http,
        }
    }

    fn db(&self) -> PathBuf {
        Plant::db_in(&self.dir)
    }

    fn stop(mut self) {
        self.daemon.stop(Duration::from_secs(30));
    }
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
}

fn kinds(records: &[Record]) -> [usize; 3] {
    [RecordKind::Minute, RecordKind::Hour, RecordKind::Day].map(|k| {
        records
            .iter()
            .filter(|r| r.kind == k && is_upload(r))
            .count()
    })
}

#[test]
fn minute_hour_and_day_data_arrive_in_hj212_units_and_the_cursor_follows_the_acks() {
    let night = replayed_night();
    let [minutes, hours, days] = kinds(&night);
    // 4 h of minutes, the hours 21:00..00:00 and the day of 2026-03-01, per quantity.
    assert!(
        minutes >= 240 && hours >= 4 && days >= 1,
        "{minutes} {hours} {days}"
    );
    // A minute of the PLC's ten quantities, every value in its code's data type, fits one
    // packet: at full f64 precision it was twice as long and went out split. (Split
    // uploads both ways are in hj212_conformance.rs.)
    let stored: Vec<Stored> = night
        .iter()
        .enumerate()
        .map(|(i, r)| Stored {
            seq: i as u64 + 1,
            record: r.clone(),
        })
        .collect();
    let first_minute = group_periods(
        stored
            .iter()
            .filter(|s| s.record.kind == RecordKind::Minute),
    )
    .into_iter()
    .next()
    .unwrap_or_else(|| panic!("no minute replayed"));
    let header = UploadHeader {
        st: SystemCode::AirPollutionSource,
        password: PASSWORD.into(),
        mn: MN.into(),
        ack_required: true,
    };
    let encoded = period_packet(
        &header,
        "20260101000000000",
        &first_minute,
        UtcOffset::CHINA,
    );
    let mut qns = QnSequence::new();
    let parts = to_wire(&encoded.packet, || qns.next(Timestamp(0), UtcOffset::CHINA))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parts.len(), 1, "one minute in {} parts", parts.len());

    let (plant_dir, bureau_dir) = (tempdir(), tempdir());
    let (_, seeded_last) = append(&Plant::db_in(plant_dir.path()), &night);
    let port = free_port();
    let bureau = Bureau::start(bureau_dir.path(), port);
    let started = chrono::Utc::now().timestamp_millis();
    let plant = Plant::start(plant_dir.path(), port, true);

    // Everything replayed, then at least one minute of the live run, arrives.
    let mut last = (Vec::new(), Vec::new());
    let arrived = eventually(Duration::from_secs(180), || {
        let (p, b) = (all(&plant.db()), all(&bureau.db()));
        let live_minute = p.iter().any(|s| {
            s.record.kind == RecordKind::Minute && s.record.ts.0 >= started && is_upload(&s.record)
        });
        let done = live_minute && missing(&p, &b, 1).is_empty();
        last = (p, b);
        done
    });
    let (plant_rows, bureau_rows) = &last;
    assert!(
        arrived,
        "missing at the bureau: {:?}\nplant log:\n{}\nbureau log:\n{}",
        missing(plant_rows, bureau_rows, 3),
        plant.daemon.log_text(),
        bureau.daemon.log_text()
    );
    let last_upload = plant_rows
        .iter()
        .filter(|s| is_upload(&s.record))
        .map(|s| s.seq)
        .max()
        .unwrap_or(0);
    assert!(last_upload > seeded_last, "a live minute was uploaded");
    let moved = eventually(Duration::from_secs(20), || {
        cursor(&plant.db()) >= last_upload
    });
    assert!(
        moved,
        "cursor {} short of the last upload {last_upload}",
        cursor(&plant.db())
    );
    // The status page's uplink row: connected, the bureau's last 9014 during this run.
    let (code, body) = http_get(plant.http, "/api/status").unwrap_or_else(|| panic!("GET"));
    assert_eq!(code, 200, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}"));
    let uplink = status["sinks"]
        .as_array()
        .and_then(|sinks| {
            sinks
                .iter()
                .find(|s| s["name"].as_str().is_some_and(|n| n.contains("bureau")))
        })
        .unwrap_or_else(|| panic!("no uplink in {body}"));
    assert_eq!(uplink["connected"], true, "{uplink}");
    assert!(
        uplink["last_ack"].as_i64().is_some_and(|t| t >= started),
        "last ack during this run: {uplink}"
    );

    // Pressure travelled in kPa: the PLC reads it in Pa (around 101 kPa absolute or a few
    // hundred Pa gauge), the bureau holds the Pa value / 1000 written in a01013's N5.3.
    let pressure = bureau_rows
        .iter()
        .find(|s| s.record.channel.as_ref() == "a01013" && s.record.kind == RecordKind::Hour)
        .unwrap_or_else(|| panic!("no hourly pressure at the bureau"));
    let sent = plant_rows
        .iter()
        .find(|s| {
            s.record.kind == RecordKind::Hour
                && s.record.ts == pressure.record.ts
                && s.record.quantity == pressure.record.quantity
        })
        .unwrap_or_else(|| panic!("the plant's hour of {:?}", pressure.record.ts));
    assert_eq!(sent.record.unit.map(|u| u.symbol()), Some("Pa"));
    assert_eq!(pressure.record.unit.map(|u| u.symbol()), Some("kPa"));
    let (pa, kpa) = (
        sent.record.measured.unwrap_or(f64::NAN),
        pressure.record.measured.unwrap_or(f64::NAN),
    );
    let typed = |code: &str, x: f64| -> f64 {
        data_type(code)
            .and_then(|t| t.format(x).ok())
            .and_then(|text| text.parse().ok())
            .unwrap_or(f64::NAN)
    };
    assert_eq!(kpa, typed("a01013", pa / 1000.0), "{pa} Pa → {kpa} kPa");

    // Flow travelled in m3/s (HJ 212-2017 Table B.2, a00000, N6.1): the plant stores m3/h
    // and uploads the value / 3600 to one decimal, the bureau multiplies it back and stores
    // m3/h again.
    let flow = bureau_rows
        .iter()
        .find(|s| s.record.channel.as_ref() == "a00000" && s.record.kind == RecordKind::Hour)
        .unwrap_or_else(|| panic!("no hourly flow at the bureau"));
    let sent = plant_rows
        .iter()
        .find(|s| {
            s.record.kind == RecordKind::Hour
                && s.record.ts == flow.record.ts
                && s.record.quantity == flow.record.quantity
        })
        .unwrap_or_else(|| panic!("the plant's hour of {:?}", flow.record.ts));
    assert_eq!(sent.record.unit.map(|u| u.symbol()), Some("m3/h"));
    assert_eq!(flow.record.unit.map(|u| u.symbol()), Some("m3/h"));
    let (plant_m3h, bureau_m3h) = (
        sent.record.measured.unwrap_or(f64::NAN),
        flow.record.measured.unwrap_or(f64::NAN),
    );
    assert!(
        (bureau_m3h - typed("a00000", plant_m3h / 3600.0) * 3600.0).abs() <= 1e-9 * bureau_m3h
            && plant_m3h > 1000.0,
        "{plant_m3h} m3/h at the plant, {bureau_m3h} m3/h at the bureau"
    );
    let hour = group_periods(std::iter::once(sent));
    let packet = period_packet(&header, "1", &hour[0], UtcOffset::CHINA).packet;
    let a00000 = packet
        .cp
        .factors()
        .find(|f| f.code == "a00000")
        .and_then(|f| f.get(&FieldKind::Avg))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(f64::NAN);
    assert_eq!(
        a00000,
        typed("a00000", plant_m3h / 3600.0),
        "a00000-Avg={a00000} for {plant_m3h} m3/h"
    );

    // Real-time data arrived too, as readings under the MN.
    let realtime = bureau_rows
        .iter()
        .filter(|s| s.record.kind == RecordKind::Reading)
        .count();
    assert!(realtime > 0, "no 2011 real-time data stored at the bureau");
    plant.stop();
    bureau.stop();
}

#[test]
fn a_bureau_killed_mid_upload_gets_every_period_and_the_cursor_passes_only_acked_records() {
    let night = replayed_night();
    let (plant_dir, bureau_dir) = (tempdir(), tempdir());
    append(&Plant::db_in(plant_dir.path()), &night);
    let port = free_port();
    let mut bureau = Bureau::start(bureau_dir.path(), port);
    let plant = Plant::start(plant_dir.path(), port, true);
    let total = night.iter().filter(|r| is_upload(r)).count();

    // Cut the bureau while uploads are under way.
    let under_way = eventually(Duration::from_secs(60), || {
        let stored = all(&bureau.db())
            .iter()
            .filter(|s| s.record.kind == RecordKind::Minute)
            .count();
        stored >= 40
    });
    assert!(
        under_way,
        "no uploads arrived:\n{}",
        plant.daemon.log_text()
    );
    bureau.daemon.signal("KILL");
    let _ = bureau.daemon.wait_exit(Duration::from_secs(10));

    // Every record behind the plant's cursor is committed at the bureau: the cursor moved
    // over acked uploads only, and an ack follows the commit.
    let cut_cursor = cursor(&plant.db());
    let plant_rows = all(&plant.db());
    let bureau_rows = all(&bureau.db());
    let behind: Vec<Stored> = plant_rows
        .iter()
        .filter(|s| s.seq <= cut_cursor)
        .cloned()
        .collect();
    assert!(
        missing(&behind, &bureau_rows, 3).is_empty(),
        "behind cursor {cut_cursor} but not at the bureau: {:?}",
        missing(&behind, &bureau_rows, 3)
    );
    let delivered = plant_rows
        .iter()
        .filter(|s| is_upload(&s.record))
        .filter(|s| bureau_rows.iter().any(|b| carries(&b.record, &s.record)))
        .count();
    eprintln!("cut after {delivered} of {total} records, cursor {cut_cursor}");
    assert!(
        delivered < total,
        "the cut came after all {total} records; make the night longer"
    );

    // Same port, same store: the plant reconnects and delivers the rest.
    bureau = Bureau::start(bureau_dir.path(), port);
    let mut last = Vec::new();
    let complete = eventually(Duration::from_secs(120), || {
        let p = all(&plant.db());
        let done = missing(&p, &all(&bureau.db()), 1).is_empty();
        last = p;
        done
    });
    assert!(
        complete,
        "missing after the restart: {:?}\nplant log:\n{}",
        missing(&last, &all(&bureau.db()), 3),
        plant.daemon.log_text()
    );
    plant.stop();
    bureau.stop();
}

/// Copies a stopped daemon's store (the database and any WAL beside it).
fn copy_store(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("mkdir: {e}"));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{from:?}: {e}")) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        if let Some(name) = path.file_name() {
            std::fs::copy(&path, to.join(name)).unwrap_or_else(|e| panic!("copy: {e}"));
        }
    }
}

#[test]
fn a_bureau_restored_from_an_old_backup_pulls_the_lost_hours_from_the_plant() {
    let night = replayed_night();
    // What became final in (from, to]: the hour 21:00 (final at 22:00) is the last one
    // the backup holds.
    let part = |from: i64, to: i64| -> Vec<Record> {
        night
            .iter()
            .filter(|r| final_at(r) > from && final_at(r) <= to)
            .cloned()
            .collect()
    };
    let before = part(i64::MIN, LOST_FROM_MS);
    let lost = part(LOST_FROM_MS, LOST_TO_MS);
    let after = part(LOST_TO_MS, i64::MAX);
    let (plant_dir, bureau_dir, backup_dir) = (tempdir(), tempdir(), tempdir());
    let plant_db = Plant::db_in(plant_dir.path());
    let port = free_port();

    // 1. The plant delivers the evening up to 22:00; the bureau is backed up.
    append(&plant_db, &before);
    let bureau = Bureau::start(bureau_dir.path(), port);
    let plant = Plant::start(plant_dir.path(), port, false);
    let delivered = |bureau: &Bureau| {
        let p = all(&plant.db());
        missing(&p, &all(&bureau.db()), 1).is_empty()
            && cursor(&plant.db()) >= p.last().map_or(0, |s| s.seq)
    };
    assert!(
        eventually(Duration::from_secs(60), || delivered(&bureau)),
        "evening not delivered:\n{}",
        plant.daemon.log_text()
    );
    let bureau_dir_path = bureau.stop();
    copy_store(&bureau_dir_path.join("data"), backup_dir.path());

    // 2. 22:00–00:00 is delivered and acked: the plant's cursor passes it.
    let bureau = Bureau::start(bureau_dir.path(), port);
    append(&plant_db, &lost);
    assert!(
        eventually(Duration::from_secs(60), || delivered(&bureau)),
        "22:00-00:00 not delivered:\n{}",
        plant.daemon.log_text()
    );
    let bureau_dir_path = bureau.stop();

    // 3. The bureau's disk is replaced and restored from the backup of step 1; then 00:00
    //    arrives, the bureau sees the hole and pulls 22:00 and 23:00 (2061) and the minutes
    //    (2051) from the plant, which answers from its store.
    let data = bureau_dir_path.join("data");
    std::fs::remove_dir_all(&data).unwrap_or_else(|e| panic!("rm: {e}"));
    copy_store(backup_dir.path(), &data);
    let restored = all(&bureau_db_of(&bureau_dir_path));
    assert!(
        lost.iter()
            .filter(|r| is_upload(r))
            .all(|r| !restored.iter().any(|b| carries(&b.record, r))),
        "the backup holds some of 22:00-00:00"
    );
    let bureau = Bureau::start(bureau_dir.path(), port);
    append(&plant_db, &after);
    let mut last = Vec::new();
    // The listener pulls hours and minutes; the lost day record is not asked for.
    let pulled: Vec<Stored> = all(&plant.db())
        .into_iter()
        .filter(|s| s.record.kind != RecordKind::Day)
        .collect();
    let complete = eventually(Duration::from_secs(90), || {
        let b = all(&bureau.db());
        let done = missing(&pulled, &b, 1).is_empty();
        last = b;
        done
    });
    let lost_hours: Vec<&Record> = lost
        .iter()
        .filter(|r| r.kind == RecordKind::Hour && is_upload(r))
        .collect();
    assert!(
        lost_hours.len() >= 2,
        "22:00 and 23:00 for each quantity: {}",
        lost_hours.len()
    );
    assert!(
        complete,
        "not pulled: {:?}\nbureau log:\n{}\nplant log:\n{}",
        missing(&pulled, &last, 3),
        bureau.daemon.log_text(),
        plant.daemon.log_text()
    );
    // 22:00 and 23:00 at +08:00 are 14:00Z and 15:00Z.
    let log = bureau.daemon.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("asked an HJ 212 logger for missing periods")
                && l.contains("cn=2061")
                && l.contains("begin=2026-03-01T14:00:00.000Z end=2026-03-01T15:00:00.000Z")),
        "{log}"
    );
    plant.stop();
    bureau.stop();
}

fn bureau_db_of(dir: &Path) -> PathBuf {
    dir.join("data/cemsd.db")
}
