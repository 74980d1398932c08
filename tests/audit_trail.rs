//! Evidence: `cemsd run` commits a simulated plant, then the store is edited, added to and
//! deleted from with the sqlite3 shell behind cemsd's back, and `cemsd verify` must name the
//! first broken commit each time (an untouched copy verifies). And a data logger's CN 3020
//! field-information upload, a third-party packet, is decoded and stored in the trail.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cemsd::protocol::hj212::{CommandCode, Framer};
use cemsd::store::AuditHow;
use support::daemon::{write_config, Daemon};
use support::http::http_get;
use support::ports::{free_port, listening_within};
use support::site::{bureau_listener, head, plant_stack, simulated_plc};
use support::store::{open, wait_for};

/// Runs `sqlite3 db sql` and returns its output, trimmed.
fn sqlite3(db: &Path, sql: &str) -> String {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .unwrap_or_else(|e| panic!("cannot run sqlite3: {e}"));
    assert!(
        out.status.success(),
        "sqlite3 {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `cemsd verify --store db`: exit code and stdout.
fn verify(db: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cemsd"))
        .args(["verify", "--store"])
        .arg(db)
        .output()
        .unwrap_or_else(|e| panic!("cannot run cemsd verify: {e}"));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

/// A store a real daemon wrote: a simulated SCS-900 polled every 100 ms, committed every
/// 200 ms, until it holds at least ten commits; checkpointed into one file.
fn plant_store(dir: &Path) -> PathBuf {
    let port = free_port();
    let text = head("evidence", "", "data/cemsd.db")
        + "commit_delay = \"200ms\"\n"
        + &plant_stack("")
        + &simulated_plc(port, 7, "100ms", "50ms");
    let config = write_config(dir, "site.toml", &text);
    let mut daemon = Daemon::start(&config, dir, &[]);
    let db = dir.join("data/cemsd.db");
    let committed = wait_for(&db, |store| {
        store.chain_head().map(|(id, _)| id >= 10).unwrap_or(false)
    });
    daemon.stop(Duration::from_secs(20));
    assert!(committed, "no ten commits:\n{}", daemon.log_text());
    sqlite3(&db, "PRAGMA wal_checkpoint(TRUNCATE)");
    db
}

/// A copy of `db` to tamper with.
fn copy(db: &Path, name: &str) -> PathBuf {
    let to = db.with_file_name(name);
    std::fs::copy(db, &to).unwrap_or_else(|e| panic!("copy: {e}"));
    to
}

/// The commit whose seq range holds `seq`.
fn commit_of(db: &Path, seq: i64) -> i64 {
    sqlite3(
        db,
        &format!("SELECT id FROM record_commit WHERE {seq} BETWEEN first_seq AND last_seq"),
    )
    .parse()
    .unwrap_or_else(|e| panic!("commit of seq {seq}: {e}"))
}

/// The first line naming a broken commit.
fn first_broken(out: &str) -> &str {
    out.lines()
        .find(|l| l.starts_with("BROKEN"))
        .unwrap_or_else(|| panic!("nothing broken:\n{out}"))
}

#[test]
fn rows_edited_inserted_or_deleted_behind_cemsds_back_fail_verify_at_their_commit() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let db = plant_store(dir.path());

    let (code, out) = verify(&db);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("intact: every commit adds up"), "{out}");
    let commits: i64 = sqlite3(&db, "SELECT count(*) FROM record_commit")
        .parse()
        .unwrap_or(0);
    assert!(
        out.contains(&format!("commits checked: {commits}\n")),
        "{out}"
    );

    // an hour's value "corrected" in the middle of the history: the seq of the fifth commit
    let seq: i64 = sqlite3(&db, "SELECT first_seq FROM record_commit WHERE id = 5")
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let edited = copy(&db, "edited.db");
    sqlite3(
        &edited,
        &format!("UPDATE record SET measured = coalesce(measured, 0) + 1 WHERE seq = {seq}"),
    );
    let (code, out) = verify(&edited);
    assert_eq!(code, Some(4), "{out}");
    let line = first_broken(&out);
    assert!(
        line.starts_with(&format!("BROKEN commit {} ", commit_of(&edited, seq))),
        "{out}"
    );
    assert!(line.contains("rows edited; periods affected 20"), "{out}");

    // one row of the seventh commit deleted
    let deleted = copy(&db, "deleted.db");
    let seq: i64 = sqlite3(&deleted, "SELECT last_seq FROM record_commit WHERE id = 7")
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    sqlite3(&deleted, &format!("DELETE FROM record WHERE seq = {seq}"));
    let (code, out) = verify(&deleted);
    assert_eq!(code, Some(4), "{out}");
    assert!(
        first_broken(&out).starts_with("BROKEN commit 7 ")
            && first_broken(&out).contains("1 of its"),
        "{out}"
    );

    // a reading made up and added after the last commit, as the next seq
    let inserted = copy(&db, "inserted.db");
    sqlite3(
        &inserted,
        "INSERT INTO record (seq, kind, series, ts, flags, measured)
         SELECT max(seq) + 1, 0, min(series), max(ts) + 1000, 0, 12.5 FROM record",
    );
    let (code, out) = verify(&inserted);
    assert_eq!(code, Some(4), "{out}");
    assert!(
        first_broken(&out).starts_with(&format!("BROKEN commit {} ", commits + 1))
            && first_broken(&out).contains("1 rows after the newest commit"),
        "{out}"
    );

    // the untouched store still verifies, through the config as well
    let (code, out) = verify(&db);
    assert_eq!(code, Some(0), "{out}");
    let out = Command::new(env!("CARGO_BIN_EXE_cemsd"))
        .args(["verify", "--config"])
        .arg(dir.path().join("site.toml"))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(0));
}

// ------------------------------------------------------------- CN 3020 from a data logger

/// A logger's device-state upload from public code: the test of a Java HJ 212 parser
/// (`TrafficPackageTest.java`, package `com.chada.ems.common.domain.traffic`, 2019), a
/// surface-water station (ST=21) stating i12001 (work state) and i12002 for four factors,
/// each `PolId` in one group with its values. Its CRC (FB41) is the packet's own.
const PUBLIC_3020: &str = "##0262QN=20190430101750562;ST=21;CN=3020;PW=624930;MN=A140100_2006;Flag=9;CP=&&DataTime=20190430101750;PolId=w01019,i12001-Info=0,i12002-Info=0;PolId=w21001,i12001-Info=0,i12002-Info=0;PolId=w21003,i12001-Info=0,i12002-Info=0;PolId=w21011,i12001-Info=0,i12002-Info=0&&FB41\r\n";

#[test]
fn a_third_party_3020_packet_is_decoded_stored_under_its_logger_and_acked() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (tcp_port, http_port) = (free_port(), free_port());
    std::fs::write(dir.path().join("station.pw"), "624930\n").unwrap_or_else(|e| panic!("{e}"));
    let text = bureau_listener(http_port, tcp_port)
        + r#"data_time_horizon = "20y"

[[hj212_listener.device]]
mn = "A140100_2006"
password = { file = "station.pw" }
stack = "station"
"#;
    let config = write_config(dir.path(), "bureau.toml", &text);
    let mut daemon = Daemon::start(&config, dir.path(), &[]);
    assert!(
        listening_within(tcp_port, Duration::from_secs(30)),
        "{}",
        daemon.log_text()
    );

    let mut logger =
        TcpStream::connect(("127.0.0.1", tcp_port)).unwrap_or_else(|e| panic!("connect: {e}"));
    logger
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap_or_else(|e| panic!("{e}"));
    logger
        .write_all(PUBLIC_3020.as_bytes())
        .unwrap_or_else(|e| panic!("send: {e}"));
    // Flag=9 asks for an answer: the 9014 comes once the trail is committed
    let mut framer = Framer::new();
    let mut buf = [0u8; 1024];
    let ack = loop {
        let n = logger.read(&mut buf).unwrap_or(0);
        assert!(n > 0, "no 9014:\n{}", daemon.log_text());
        framer.push(&buf[..n]);
        if let Some(Ok(frame)) = framer.next_packet() {
            break frame.packet;
        }
    };
    assert_eq!(ack.cn, CommandCode::DataResponse);
    assert_eq!(ack.qn.as_deref(), Some("20190430101750562"));

    let db = dir.path().join("data/cemsd.db");
    // 2019-04-30 10:17:50 at +08:00
    let at = 1_556_590_670_000;
    let entries = open(&db)
        .audit_entries(at, at + 1)
        .unwrap_or_else(|e| panic!("{e}"));
    let got: Vec<(&str, &str, Option<&str>)> = entries
        .iter()
        .map(|e| (e.source.as_str(), e.item.as_str(), e.new.as_deref()))
        .collect();
    let mut expected = Vec::new();
    for factor in ["w21011", "w21003", "w21001", "w01019"] {
        for code in ["i12002", "i12001"] {
            expected.push(("A140100_2006", format!("{factor}.{code}")));
        }
    }
    let expected: Vec<(&str, &str, Option<&str>)> = expected
        .iter()
        .map(|(mn, item)| (*mn, item.as_str(), Some("0")))
        .collect();
    assert_eq!(got, expected, "newest (last in the packet) first");
    assert!(entries
        .iter()
        .all(|e| e.how == AuditHow::Upload && e.old.is_none()));

    // per logger on the status page's feed
    let (status, body) = http_get(http_port, &format!("/api/audit?from={at}&to={}", at + 1))
        .unwrap_or_else(|| panic!("no answer from /api/audit"));
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}"));
    let first = &json["entries"][0];
    assert_eq!(first["source"], "A140100_2006", "{body}");
    assert_eq!(first["how"], "upload", "{body}");
    assert_eq!(first["item"], "w21011.i12002", "{body}");
    assert_eq!(first["new"], "0", "{body}");
    assert_eq!(first["ts"], at, "{body}");
    assert!(first["old"].is_null() && first["file"].is_null(), "{body}");
    assert_eq!(json["entries"].as_array().map(Vec::len), Some(8), "{body}");

    // the same states again are not a change: nothing more is recorded
    logger
        .write_all(PUBLIC_3020.as_bytes())
        .unwrap_or_else(|e| panic!("send: {e}"));
    let _ = logger.read(&mut buf);
    daemon.stop(Duration::from_secs(20));
    let total = open(&db)
        .audit_entries(0, i64::MAX)
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .filter(|e| e.how == AuditHow::Upload)
        .count();
    assert_eq!(total, 8);
}
