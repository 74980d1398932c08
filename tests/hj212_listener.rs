//! The HJ 212 listener as a bureau runs it: `cemsd run` with `[hj212_listener]`, data loggers
//! played by the test with the crate's codec on 127.0.0.1 (and on a pty pair for the serial
//! path). Checks rows against hand values, acks against the store, refusals in /metrics.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cemsd::model::{Flag, FlagSet, Quantity, Timestamp, Unit};
use cemsd::protocol::hj212::{
    encode, CommandCode, CommandParams, Factor, FieldKind, Framer, Packet, PacketFlag, SystemCode,
};
use cemsd::store::{Query, Record, RecordKind};
use support::daemon::{write_config, Daemon};
use support::http::{metric, scrape};
use support::ports::{free_port, listening_within};
use support::site::bureau_listener;
use support::store::open;
use support::time::eventually;

const MN: &str = "010000A8900016F000169DC0";
const PW: &str = "123456";
const STACK: &str = "plant-a.unit1";
const HOUR: i64 = 3_600_000;
/// 2026-01-01 12:00:00 at +08:00 (the site default) = 04:00:00Z.
const NOON_CST: i64 = 1_767_240_000_000;

struct Site {
    dir: tempfile::TempDir,
    tcp_port: u16,
    http_port: u16,
    daemon: Daemon,
}

impl Site {
    /// Starts `cemsd run` with a listener on a free port; `extra` goes after the device table
    /// (e.g. a serial port).
    fn start(extra: &str) -> Site {
        Site::start_with("", extra)
    }

    /// As `start`, with `keys` added to `[hj212_listener]` itself.
    fn start_with(keys: &str, extra: &str) -> Site {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let (tcp_port, http_port) = (free_port(), free_port());
        std::fs::write(dir.path().join("plant-a.pw"), format!("{PW}\n"))
            .unwrap_or_else(|e| panic!("write password: {e}"));
        let text = bureau_listener(http_port, tcp_port)
            + &format!(
                r#"minute_gap = "10m"
# the fixtures are dated 2026-01-01: inside the window whatever the calendar says
data_time_horizon = "20y"
{keys}

[[hj212_listener.device]]
mn = "{MN}"
password = {{ file = "plant-a.pw" }}
stack = "{STACK}"
{extra}
"#
            );
        let config = write_config(dir.path(), "bureau.toml", &text);
        let daemon = Daemon::start(&config, dir.path(), &[]);
        let site = Site {
            dir,
            tcp_port,
            http_port,
            daemon,
        };
        let up = listening_within(tcp_port, Duration::from_secs(30));
        assert!(up, "listener did not come up:\n{}", site.daemon.log_text());
        site
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("data/cemsd.db")
    }

    fn logger(&self) -> Logger<TcpStream> {
        let stream = TcpStream::connect(("127.0.0.1", self.tcp_port))
            .unwrap_or_else(|e| panic!("connect: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap_or_else(|e| panic!("timeout: {e}"));
        Logger::new(stream)
    }

    fn rows(&self, kind: RecordKind) -> Vec<Record> {
        rows_in(&self.db(), kind)
    }

    fn connections(&self, outcome: &str) -> f64 {
        metric(
            &scrape(self.http_port),
            "cemsd_hj212_listener_connections_total",
            &[("outcome", outcome)],
        )
        .unwrap_or(0.0)
    }

    fn rejected(&self, reason: &str) -> f64 {
        metric(
            &scrape(self.http_port),
            "cemsd_hj212_listener_rejected_total",
            &[("reason", reason)],
        )
        .unwrap_or(0.0)
    }

    fn stop(mut self) {
        self.daemon.stop(Duration::from_secs(20));
    }
}

fn rows_in(db: &Path, kind: RecordKind) -> Vec<Record> {
    open(db)
        .query(&Query {
            kind: Some(kind),
            device: Some(MN.into()),
            ..Query::default()
        })
        .unwrap_or_else(|e| panic!("query: {e}"))
        .into_iter()
        .map(|s| s.record)
        .collect()
}

/// A data logger's end of the link: sends uploads, collects whatever the listener writes.
struct Logger<S> {
    stream: S,
    framer: Framer,
}

impl<S: Read + Write> Logger<S> {
    fn new(stream: S) -> Logger<S> {
        Logger {
            stream,
            framer: Framer::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("send: {e}"));
        self.stream.flush().unwrap_or_else(|e| panic!("flush: {e}"));
    }

    /// The next packet from the listener, waiting at most `limit`.
    fn receive(&mut self, limit: Duration) -> Option<Packet> {
        let deadline = Instant::now() + limit;
        let mut buf = [0u8; 2048];
        loop {
            if let Some(found) = self.framer.next_packet() {
                let frame = found.unwrap_or_else(|e| panic!("listener sent a bad packet: {e}"));
                return Some(frame.packet);
            }
            if Instant::now() >= deadline {
                return None;
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.framer.push(&buf[..n]),
                Err(_) => {} // read timeout: look at the deadline again
            }
        }
    }
}

fn upload(cn: CommandCode, qn: &str, data_time: &str, factors: Vec<Factor>) -> Packet {
    let mut cp = CommandParams::new().with_data_time(data_time);
    for factor in factors {
        cp = cp.with_factor(factor);
    }
    Packet {
        qn: Some(qn.into()),
        pw: Some(PW.into()),
        flag: Some(PacketFlag::hj212_2017(true)),
        cp,
        ..Packet::new(SystemCode::AirPollutionSource, cn, MN)
    }
}

fn wire(packet: &Packet) -> Vec<u8> {
    encode(packet).unwrap_or_else(|e| panic!("encode: {e}"))
}

fn minute_upload(qn: &str, data_time: &str, so2: &str) -> Packet {
    upload(
        CommandCode::MinuteData,
        qn,
        data_time,
        vec![Factor::new("a21026")
            .with(FieldKind::Avg, so2)
            .with_flag(Flag::N)],
    )
}

fn hour_upload(qn: &str, data_time: &str) -> Packet {
    upload(
        CommandCode::HourData,
        qn,
        data_time,
        vec![Factor::new("a21026")
            .with(FieldKind::Avg, "30")
            .with_flag(Flag::N)],
    )
}

/// Asserts `packet` is the 9014 for `qn` in HJ 212-2017's form (Table C.14: the upload's QN in
/// the header, `CP=&&&&`); `_cn` names the upload acked, for the reader.
fn assert_ack(packet: Option<Packet>, qn: &str, _cn: CommandCode) {
    let packet = packet.unwrap_or_else(|| panic!("no ack for {qn}"));
    assert_eq!(packet.cn, CommandCode::DataResponse, "{packet:?}");
    assert_eq!(packet.st, SystemCode::SystemInteraction);
    assert_eq!(packet.qn.as_deref(), Some(qn));
    assert_eq!(packet.mn.as_deref(), Some(MN));
    assert_eq!(packet.pw.as_deref(), Some(PW));
    assert_eq!(packet.flag, Some(PacketFlag::hj212_2017(false)));
    assert_eq!(packet.cp.groups, vec![], "CP=&&&&");
}

/// True once the listener has closed `stream` (end of file within `limit`).
fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 64];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => {} // read timeout
        }
    }
    false
}

#[test]
fn connections_over_the_limit_are_refused_and_silent_ones_closed() {
    let site = Site::start_with("max_connections = 2\nidle_timeout = \"3s\"", "");
    // The start-up probe's connection must have given its slot back first.
    let open = || {
        metric(
            &scrape(site.http_port),
            "cemsd_hj212_listener_connections",
            &[],
        )
    };
    assert!(
        eventually(Duration::from_secs(5), || open() == Some(0.0)),
        "open connections: {:?}",
        open()
    );
    let mut first = site.logger();
    let mut second = site.logger();
    // Both slots are taken once the first upload on each is acked.
    first.send(&wire(&minute_upload(
        "20260101120100001",
        "20260101120000",
        "30",
    )));
    assert_ack(
        first.receive(Duration::from_secs(10)),
        "20260101120100001",
        CommandCode::MinuteData,
    );
    second.send(&wire(&minute_upload(
        "20260101120200001",
        "20260101120100",
        "31",
    )));
    assert_ack(
        second.receive(Duration::from_secs(10)),
        "20260101120200001",
        CommandCode::MinuteData,
    );

    // Closed at once, well before the 3 s idle timeout could have done it.
    let mut third = site.logger();
    assert!(
        closed_within(&mut third.stream, Duration::from_secs(1)),
        "a third connection over max_connections = 2 stayed open"
    );
    assert!(
        eventually(Duration::from_secs(5), || site.connections("refused")
            >= 1.0),
        "the refusal was not counted"
    );

    // Silent for idle_timeout: both are closed, which frees their slots.
    assert!(closed_within(&mut first.stream, Duration::from_secs(8)));
    assert!(closed_within(&mut second.stream, Duration::from_secs(2)));
    let mut again = site.logger();
    again.send(&wire(&minute_upload(
        "20260101120300001",
        "20260101120200",
        "32",
    )));
    assert_ack(
        again.receive(Duration::from_secs(10)),
        "20260101120300001",
        CommandCode::MinuteData,
    );
    assert_eq!(site.rows(RecordKind::Minute).len(), 3);
    site.stop();
}

#[test]
fn uploads_are_committed_before_their_ack_with_every_value() {
    let site = Site::start("");
    let mut logger = site.logger();
    let packet = upload(
        CommandCode::HourData,
        "20260101130000001",
        "20260101120000",
        vec![
            Factor::new("a21026")
                .with(FieldKind::Avg, "31.25")
                .with(FieldKind::ZsAvg, "40.5")
                .with(FieldKind::Min, "20")
                .with(FieldKind::Max, "44.125")
                .with(FieldKind::ZsMin, "26")
                .with(FieldKind::ZsMax, "57.75")
                .with(FieldKind::Cou, "0.4375")
                .with_flag(Flag::T),
            Factor::new("a19001")
                .with(FieldKind::Avg, "6.2")
                .with_flag(Flag::N),
        ],
    );
    logger.send(&wire(&packet));
    let ack = logger.receive(Duration::from_secs(10));
    // Read the store the moment the ack is in: the rows must already be there.
    let rows = site.rows(RecordKind::Hour);
    assert_ack(ack, "20260101130000001", CommandCode::HourData);
    let end = Some(Timestamp(NOON_CST + HOUR));
    let so2 = Record {
        end,
        quantity: Some(Quantity::SO2),
        unit: Some(Unit::MgPerM3),
        flags: FlagSet::of(Flag::T),
        measured: Some(31.25),
        corrected: Some(40.5),
        min: Some(20.0),
        max: Some(44.125),
        corrected_min: Some(26.0),
        corrected_max: Some(57.75),
        note: Some("cou=0.4375".into()),
        ..Record::new(
            RecordKind::Hour,
            Timestamp(NOON_CST),
            STACK.into(),
            MN.into(),
            "a21026".into(),
        )
    };
    let o2 = Record {
        end,
        quantity: Some(Quantity::O2),
        unit: Some(Unit::PercentVol),
        flags: FlagSet::of(Flag::N),
        measured: Some(6.2),
        ..Record::new(
            RecordKind::Hour,
            Timestamp(NOON_CST),
            STACK.into(),
            MN.into(),
            "a19001".into(),
        )
    };
    assert_eq!(rows, vec![so2, o2]);

    // HJ/T 212-2005 codes as TianHong loggers send them: `02` is SO2, `S01` O2.
    let old = upload(
        CommandCode::RealTimeData,
        "20260101120000500",
        "20260101120000",
        vec![
            Factor::new("02")
                .with(FieldKind::Rtd, "0035")
                .with(FieldKind::ZsRtd, "0041")
                .with_flag(Flag::N),
            Factor::new("S01").with(FieldKind::Rtd, "20.9"),
        ],
    );
    logger.send(&wire(&old));
    assert_ack(
        logger.receive(Duration::from_secs(10)),
        "20260101120000500",
        CommandCode::RealTimeData,
    );
    let readings = site.rows(RecordKind::Reading);
    let summary: Vec<_> = readings
        .iter()
        .map(|r| (r.channel.to_string(), r.quantity, r.raw, r.corrected))
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "02".to_string(),
                Some(Quantity::SO2),
                Some(35.0),
                Some(41.0)
            ),
            ("S01".to_string(), Some(Quantity::O2), Some(20.9), None),
        ]
    );
    site.stop();
}

/// A real 2061 hour upload of another data logger (quoted in a public PHP HJ 212 parser's
/// test controller, `app\api\controller\Test`, 2024-01-23), sent as published: flow a00000 in
/// m3/s (HJ 212-2017 Table B.2) is stored in m3/h, its volume kept as sent.
#[test]
fn a_real_loggers_flow_in_m3_per_s_is_stored_in_m3_per_h() {
    const OTHER_MN: &str = "81733553216103";
    let site = Site::start(&format!(
        "[[hj212_listener.device]]\nmn = \"{OTHER_MN}\"\npassword = {{ file = \"plant-a.pw\" }}\nstack = \"plant-b.unit1\"\n"
    ));
    let mut logger = site.logger();
    logger.send(b"##0612QN=20240123101501421;ST=31;CN=2061;PW=123456;MN=81733553216103;Flag=4;CP=&&DataTime=20240122170000;a00000-Cou=19191.973,a00000-Min=5.051,a00000-Avg=5.331,a00000-Max=5.617,a00000-Flag=N;a01011-Min=6.686,a01011-Avg=7.029,a01011-Max=7.425,a01011-Flag=N;a01013-Min=-0.041,a01013-Avg=-0.026,a01013-Max=0.011,a01013-Flag=N;a01012-Min=8.074,a01012-Avg=8.524,a01012-Max=8.789,a01012-Flag=N;a24088-Cou=0.018,a24088-Min=0.665,a24088-Avg=0.933,a24088-Max=1.418,a24088-Flag=N;a05002-Cou=0.000,a05002-Min=0.000,a05002-Avg=0.000,a05002-Max=0.000,a05002-Flag=N;a01014-Min=0.828,a01014-Avg=1.040,a01014-Max=1.239,a01014-Flag=N&&0E40\r\n");
    let rows = || -> Vec<Record> {
        open(&site.db())
            .query(&Query {
                kind: Some(RecordKind::Hour),
                device: Some(OTHER_MN.into()),
                ..Query::default()
            })
            .unwrap_or_else(|e| panic!("query: {e}"))
            .into_iter()
            .map(|s| s.record)
            .collect()
    };
    let mut stored = Vec::new();
    let arrived = eventually(Duration::from_secs(20), || {
        stored = rows();
        stored.len() == 7
    });
    assert!(arrived, "{stored:?}\n{}", site.daemon.log_text());
    let flow = stored
        .iter()
        .find(|r| &*r.channel == "a00000")
        .unwrap_or_else(|| panic!("no flow in {stored:?}"));
    assert_eq!(flow.quantity, Some(Quantity::Flow));
    assert_eq!(flow.unit, Some(Unit::CubicMetrePerHour));
    // 5.331 × 3600 = 19 191.6; 5.051 × 3600 = 18 183.6; 5.617 × 3600 = 20 221.2 m3/h
    for (got, want) in [
        (flow.measured, 19_191.6),
        (flow.min, 18_183.6),
        (flow.max, 20_221.2),
    ] {
        let got = got.unwrap_or(f64::NAN);
        assert!((got - want).abs() <= 1e-9 * want, "{got} m3/h, want {want}");
    }
    assert_eq!(flow.note.as_deref(), Some("cou=19191.973"));
    let pressure = stored
        .iter()
        .find(|r| &*r.channel == "a01013")
        .unwrap_or_else(|| panic!("no pressure in {stored:?}"));
    assert_eq!(
        (pressure.unit, pressure.measured),
        (Some(Unit::KPa), Some(-0.026))
    );
    assert_eq!(&*flow.stack, "plant-b.unit1");
    site.stop();
}

#[test]
fn bad_packets_are_counted_and_the_good_ones_around_them_stored() {
    let site = Site::start("");
    let mut logger = site.logger();
    let good_1 = wire(&minute_upload("20260101120100001", "20260101120000", "1"));
    let mut bad_crc = wire(&minute_upload("20260101120100002", "20260101120100", "2"));
    let crc_at = bad_crc.len() - 3; // last CRC digit, before CRLF
    bad_crc[crc_at] = if bad_crc[crc_at] == b'0' { b'1' } else { b'0' };
    let mut wrong_pw = minute_upload("20260101120100003", "20260101120200", "3");
    wrong_pw.pw = Some("654321".into());
    let mut unknown_mn = minute_upload("20260101120100004", "20260101120300", "4");
    unknown_mn.mn = Some("NOTCONFIGURED".into());
    let good_5 = wire(&minute_upload("20260101120100005", "20260101120400", "5"));
    // A message in two parts (PNUM=2) sharing one QN, as HJ/T 212-2005-era loggers send
    // them: joined by MN, CN and DataTime all the same, each part acked.
    let mut part_1 = minute_upload("20260101120100006", "20260101120500", "6");
    part_1.flag = Some(PacketFlag::from_bits(7));
    part_1.pnum = Some(2);
    part_1.pno = Some(1);
    let mut part_2 = part_1.clone();
    part_2.pno = Some(2);
    part_2.cp = CommandParams::new()
        .with_data_time("20260101120500")
        .with_factor(Factor::new("a19001").with(FieldKind::Avg, "6.5"));

    let mut stream = good_1.clone();
    stream.extend_from_slice(&bad_crc);
    stream.extend_from_slice(b"AT+CSQ noise\r\n");
    stream.extend_from_slice(&wire(&wrong_pw));
    stream.extend_from_slice(&wire(&unknown_mn));
    logger.send(&stream);
    // The next packet arrives in two writes, cut in the middle.
    logger.send(&good_5[..40]);
    std::thread::sleep(Duration::from_millis(100));
    logger.send(&good_5[40..]);
    logger.send(&wire(&part_1));
    logger.send(&wire(&part_2));

    assert_ack(
        logger.receive(Duration::from_secs(10)),
        "20260101120100001",
        CommandCode::MinuteData,
    );
    assert_ack(
        logger.receive(Duration::from_secs(10)),
        "20260101120100005",
        CommandCode::MinuteData,
    );
    for _part in 1..=2 {
        assert_ack(
            logger.receive(Duration::from_secs(10)),
            "20260101120100006",
            CommandCode::MinuteData,
        );
    }
    assert!(
        logger.receive(Duration::from_millis(500)).is_none(),
        "refused packets get no reply"
    );
    let rows = site.rows(RecordKind::Minute);
    let stored: Vec<_> = rows
        .iter()
        .map(|r| (r.ts.0, r.channel.to_string(), r.measured))
        .collect();
    let minute = |m: i64| NOON_CST + m * 60_000;
    assert_eq!(
        stored,
        vec![
            (minute(0), "a21026".to_string(), Some(1.0)),
            (minute(4), "a21026".to_string(), Some(5.0)),
            (minute(5), "a21026".to_string(), Some(6.0)),
            (minute(5), "a19001".to_string(), Some(6.5)),
        ]
    );
    for reason in ["crc", "garbage", "bad_password", "unknown_mn"] {
        assert_eq!(site.rejected(reason), 1.0, "reason {reason}");
    }
    let log = site.daemon.log_text();
    assert!(log.contains("CRC mismatch"), "{log}");
    // Refusals are logged with the packet, its password masked.
    assert!(log.contains("PW=******"), "{log}");
    assert!(!log.contains("654321"), "{log}");
    site.stop();
}

#[test]
fn a_hole_in_hour_data_is_pulled_and_the_answers_stored() {
    let site = Site::start("");
    let mut logger = site.logger();
    logger.send(&wire(&hour_upload("20260101110000001", "20260101100000")));
    assert_ack(
        logger.receive(Duration::from_secs(10)),
        "20260101110000001",
        CommandCode::HourData,
    );
    // 13:00 after 10:00: 11:00 and 12:00 are missing.
    logger.send(&wire(&hour_upload("20260101140000001", "20260101130000")));
    assert_ack(
        logger.receive(Duration::from_secs(10)),
        "20260101140000001",
        CommandCode::HourData,
    );
    let request = logger
        .receive(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no history request:\n{}", site.daemon.log_text()));
    assert_eq!(request.cn, CommandCode::HourData);
    assert_eq!(request.st, SystemCode::AirPollutionSource);
    assert_eq!(request.flag, Some(PacketFlag::hj212_2017(true)));
    assert_eq!(request.pw.as_deref(), Some(PW));
    assert_eq!(request.cp.param("BeginTime"), Some("20260101110000"));
    assert_eq!(request.cp.param("EndTime"), Some("20260101120000"));

    // The logger answers as the standard says: 9011, the periods, 9012.
    let qn = request.qn.clone().unwrap_or_default();
    let reply = |cn: CommandCode, key: &str| Packet {
        qn: Some(qn.clone()),
        pw: Some(PW.into()),
        flag: Some(PacketFlag::hj212_2017(false)),
        cp: CommandParams::new().with_param(key, "1"),
        ..Packet::new(SystemCode::SystemInteraction, cn, MN)
    };
    let ready = wire(&reply(CommandCode::RequestResponse, "QnRtn"));
    let done = wire(&reply(CommandCode::ExecutionResult, "ExeRtn"));
    logger.send(&ready);
    for (qn, data_time) in [
        ("20260101140000101", "20260101110000"),
        ("20260101140000102", "20260101120000"),
    ] {
        logger.send(&wire(&hour_upload(qn, data_time)));
        assert_ack(
            logger.receive(Duration::from_secs(10)),
            qn,
            CommandCode::HourData,
        );
    }
    logger.send(&done);
    let hours: Vec<i64> = site
        .rows(RecordKind::Hour)
        .iter()
        .map(|r| (r.ts.0 - NOON_CST) / HOUR)
        .collect();
    // 10:00 .. 13:00 local are -2 .. +1 hours from noon.
    assert_eq!(hours, vec![-2, -1, 0, 1]);
    assert!(
        logger.receive(Duration::from_millis(500)).is_none(),
        "the answers fill the hole: no second request"
    );
    let pulls = metric(
        &scrape(site.http_port),
        "cemsd_hj212_listener_history_pulls_total",
        &[("cn", "2061")],
    );
    assert_eq!(pulls, Some(1.0));
    site.stop();
}

fn day_upload(qn: &str, data_time: &str) -> Packet {
    upload(
        CommandCode::DayData,
        qn,
        data_time,
        vec![Factor::new("a21026")
            .with(FieldKind::Avg, "28")
            .with_flag(Flag::N)],
    )
}

#[test]
fn a_hole_in_day_data_is_pulled_with_2031_and_the_answers_stored() {
    let site = Site::start("");
    let mut logger = site.logger();
    logger.send(&wire(&day_upload("20260102000100001", "20260101000000")));
    assert_ack(
        logger.receive(Duration::from_secs(10)),
        "20260102000100001",
        CommandCode::DayData,
    );
    // The 4th after the 1st: the 2nd and the 3rd are missing.
    logger.send(&wire(&day_upload("20260105000100001", "20260104000000")));
    assert_ack(
        logger.receive(Duration::from_secs(10)),
        "20260105000100001",
        CommandCode::DayData,
    );
    let request = logger
        .receive(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no history request:\n{}", site.daemon.log_text()));
    assert_eq!(request.cn, CommandCode::DayData);
    assert_eq!(request.flag, Some(PacketFlag::hj212_2017(true)));
    assert_eq!(request.cp.param("BeginTime"), Some("20260102000000"));
    assert_eq!(request.cp.param("EndTime"), Some("20260103000000"));
    for (qn, data_time) in [
        ("20260105000100101", "20260102000000"),
        ("20260105000100102", "20260103000000"),
    ] {
        logger.send(&wire(&day_upload(qn, data_time)));
        assert_ack(
            logger.receive(Duration::from_secs(10)),
            qn,
            CommandCode::DayData,
        );
    }
    // Local midnights of the 1st..4th: 16:00Z the day before, 12 hours before noon.
    let days: Vec<i64> = site
        .rows(RecordKind::Day)
        .iter()
        .map(|r| (r.ts.0 - NOON_CST) / HOUR)
        .collect();
    assert_eq!(days, vec![-12, 12, 36, 60]);
    assert!(
        logger.receive(Duration::from_millis(500)).is_none(),
        "the answers fill the hole: no second request"
    );
    let pulls = metric(
        &scrape(site.http_port),
        "cemsd_hj212_listener_history_pulls_total",
        &[("cn", "2031")],
    );
    assert_eq!(pulls, Some(1.0));
    site.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_line_uploads_are_acked_on_the_line() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_serial::{SerialPort, SerialStream};

    let (mut master, slave) = SerialStream::pair().unwrap_or_else(|e| panic!("pty pair: {e}"));
    let port = slave
        .name()
        .unwrap_or_else(|| panic!("the pty slave has no path"));
    drop(slave);
    let site = tokio::task::spawn_blocking(move || {
        Site::start(&format!(
            "\n[[hj212_listener.serial]]\nport = \"{port}\"\nbaud = 9600\n"
        ))
    })
    .await
    .unwrap_or_else(|e| panic!("start: {e}"));
    let packet = wire(&minute_upload("20260101120100009", "20260101120000", "7.5"));
    let mut framer = Framer::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut ack = None;
    let mut buf = [0u8; 1024];
    // The daemon opens the port shortly after it listens on TCP: resend until it answers,
    // as a logger would.
    while ack.is_none() && Instant::now() < deadline {
        // Fails while nobody has the other end open yet; the next round tries again.
        let _ = AsyncWriteExt::write_all(&mut master, &packet).await;
        let read = tokio::time::timeout(
            Duration::from_millis(500),
            AsyncReadExt::read(&mut master, &mut buf),
        )
        .await;
        if let Ok(Ok(n)) = read {
            framer.push(&buf[..n]);
        }
        while let Some(found) = framer.next_packet() {
            ack = found.ok().map(|f| f.packet);
        }
    }
    assert_ack(ack, "20260101120100009", CommandCode::MinuteData);
    let db = site.db();
    let rows = tokio::task::spawn_blocking(move || rows_in(&db, RecordKind::Minute))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!rows.is_empty(), "no rows from the serial line");
    assert!(rows
        .iter()
        .all(|r| r.measured == Some(7.5) && r.ts == Timestamp(NOON_CST)));
    tokio::task::spawn_blocking(move || site.stop())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn uploads_dated_far_off_are_refused_unstored_and_holes_are_still_pulled() {
    let site = Site::start("");
    let mut logger = site.logger();
    let send = |logger: &mut Logger<TcpStream>, qn: &str, data_time: &str| {
        logger.send(&wire(&hour_upload(qn, data_time)));
        logger.receive(Duration::from_secs(10))
    };
    let hour_10 = send(&mut logger, "20260101110000001", "20260101100000");
    assert_ack(hour_10, "20260101110000001", CommandCode::HourData);
    // loggers whose clocks jumped to 2090, 9999 or back to 1970: refused with 9011 QnRtn=2
    // (HJ 212-2017 Table 7: request refused) under their QN, no 9014, nothing stored
    for (qn, data_time) in [
        ("20900101110000001", "20900101100000"),
        ("99991224110000001", "99991224100000"),
        ("19700101110000001", "19700101100000"),
    ] {
        let answer = send(&mut logger, qn, data_time)
            .unwrap_or_else(|| panic!("no answer to {data_time}:\n{}", site.daemon.log_text()));
        assert_eq!(answer.cn, CommandCode::RequestResponse, "{answer:?}");
        assert_eq!(answer.qn.as_deref(), Some(qn));
        assert_eq!(answer.cp.param("QnRtn"), Some("2"), "{answer:?}");
    }
    // 13:00 after 10:00: neither the 1970 nor the later hours moved what the pulls start from
    let hour_13 = send(&mut logger, "20260101140000001", "20260101130000");
    assert_ack(hour_13, "20260101140000001", CommandCode::HourData);
    let request = logger
        .receive(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no history request:\n{}", site.daemon.log_text()));
    assert_eq!(request.cn, CommandCode::HourData);
    assert_eq!(request.cp.param("BeginTime"), Some("20260101110000"));
    assert_eq!(request.cp.param("EndTime"), Some("20260101120000"));
    let hours: Vec<i64> = site.rows(RecordKind::Hour).iter().map(|r| r.ts.0).collect();
    assert_eq!(hours, vec![NOON_CST - 2 * HOUR, NOON_CST + HOUR]);
    assert_eq!(site.rejected("data_time"), 3.0);
    let letters = open(&site.db())
        .dead_letters(10)
        .unwrap_or_else(|e| panic!("dead letters: {e}"));
    assert!(
        letters.is_empty(),
        "refused before the pipeline: {letters:?}"
    );
    site.stop();
}

#[test]
fn an_upload_whose_qn_a_9014_cannot_carry_is_refused_unstored() {
    let site = Site::start("");
    let mut logger = site.logger();
    // a QN of 200 digits (HJ 212-2017: YYYYMMDDhhmmsszzz, 17), framed by hand since the
    // crate's encoder refuses it
    let qn = "2".repeat(200);
    let data = format!(
        "QN={qn};ST=31;CN=2061;PW={PW};MN={MN};Flag=5;CP=&&DataTime=20260101120000;a21026-Avg=30,a21026-Flag=N&&"
    );
    let packet = format!(
        "##{:04}{data}{:04X}\r\n",
        data.len(),
        cemsd::protocol::hj212::crc16_hj212(data.as_bytes())
    );
    for _resent in 0..3 {
        logger.send(packet.as_bytes());
    }
    // the upload after them is taken as usual
    logger.send(&wire(&hour_upload("20260101140000001", "20260101130000")));
    assert_ack(
        logger.receive(Duration::from_secs(10)),
        "20260101140000001",
        CommandCode::HourData,
    );
    let hours: Vec<i64> = site.rows(RecordKind::Hour).iter().map(|r| r.ts.0).collect();
    assert_eq!(
        hours,
        vec![NOON_CST + HOUR],
        "the unackable upload was stored"
    );
    assert_eq!(site.rejected("unackable"), 3.0);
    site.stop();
}

/// Sends `bytes` one at a time every 250 ms, as a trickling client does, until the listener
/// closes the connection; how long it stayed open, `None` when still open after `limit`.
fn trickle(stream: &mut TcpStream, bytes: &[u8], limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    for byte in bytes.iter().cycle() {
        if started.elapsed() > limit {
            return None;
        }
        if stream.write_all(&[*byte]).is_err() || closed_within(stream, Duration::from_millis(250))
        {
            return Some(started.elapsed());
        }
    }
    None
}

#[test]
fn a_trickled_packet_is_cut_at_the_packet_deadline_and_quiet_loggers_are_not() {
    let site = Site::start_with("packet_deadline = \"2s\"", "");
    // silence between packets is not a packet: a logger uploading every 3 s stays connected
    let mut logger = site.logger();
    for (qn, data_time) in [
        ("20260101120100001", "20260101120000"),
        ("20260101120200001", "20260101120100"),
    ] {
        logger.send(&wire(&minute_upload(qn, data_time, "30")));
        assert_ack(
            logger.receive(Duration::from_secs(10)),
            qn,
            CommandCode::MinuteData,
        );
        std::thread::sleep(Duration::from_secs(3));
    }
    // a packet that never ends, and noise that never makes one: both cut near 2 s, long
    // before the 15 min idle timeout (one byte every 250 ms resets that)
    let never_ending = b"##1024QN=20260101120300001;ST=31;CN=2051;PW=123456;MN=";
    for bytes in [&never_ending[..], b"AT+CSQ\r\n"] {
        let mut trickler = site.logger();
        let open_for = trickle(&mut trickler.stream, bytes, Duration::from_secs(20));
        let open_for = open_for.unwrap_or_else(|| panic!("a trickling client stayed open 20 s"));
        eprintln!("trickling client closed after {open_for:?}");
        assert!(
            open_for >= Duration::from_secs(2),
            "cut before its deadline: {open_for:?}"
        );
    }
    assert_eq!(site.rejected("packet_deadline"), 2.0);
    // the logger that paused is still served on its connection
    logger.send(&wire(&minute_upload(
        "20260101120300001",
        "20260101120200",
        "30",
    )));
    assert_ack(
        logger.receive(Duration::from_secs(10)),
        "20260101120300001",
        CommandCode::MinuteData,
    );
    assert_eq!(site.rows(RecordKind::Minute).len(), 3);
    site.stop();
}

/// A connection to the listener from `source` (127.0.0.x: every loopback address is local).
fn connect_from(source: [u8; 4], port: u16) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let stream = runtime
        .block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind((source, 0).into())?;
            socket
                .connect(([127, 0, 0, 1], port).into())
                .await?
                .into_std()
        })
        .unwrap_or_else(|e| panic!("connect from {source:?}: {e}"));
    stream
        .set_nonblocking(false)
        .unwrap_or_else(|e| panic!("blocking: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap_or_else(|e| panic!("timeout: {e}"));
    stream
}

#[test]
fn one_address_cannot_take_every_slot() {
    let site = Site::start_with("max_connections = 8\nmax_connections_per_ip = 4", "");
    // the start-up probe's connection must have given its slot back first
    assert!(eventually(Duration::from_secs(5), || metric(
        &scrape(site.http_port),
        "cemsd_hj212_listener_connections",
        &[]
    ) == Some(0.0)));
    let mut idle: Vec<TcpStream> = (0..20).map(|_| site.logger().stream).collect();
    assert!(
        eventually(Duration::from_secs(10), || site
            .rejected("source_connection_limit")
            == 16.0),
        "refused: {}",
        site.rejected("source_connection_limit")
    );
    let closed = idle
        .iter_mut()
        .map(|s| closed_within(s, Duration::from_millis(300)))
        .filter(|closed| *closed)
        .count();
    assert_eq!(
        closed, 16,
        "idle sockets from one address beyond 4 are closed"
    );
    // a logger from another address still gets in and is served
    let mut logger = Logger::new(connect_from([127, 0, 0, 2], site.tcp_port));
    logger.send(&wire(&minute_upload(
        "20260101120100001",
        "20260101120000",
        "30",
    )));
    assert_ack(
        logger.receive(Duration::from_secs(10)),
        "20260101120100001",
        CommandCode::MinuteData,
    );
    assert_eq!(
        site.connections("accepted"),
        5.0 + 1.0,
        "with the start-up probe"
    );
    site.stop();
}

#[test]
fn password_guessing_is_slowed_then_locked_out_without_cutting_the_logger_off() {
    let site = Site::start_with("auth_lockout_after = 3\nauth_lockout = \"15m\"", "");
    let metric_of = |name: &str, label: (&str, &str)| {
        metric(&scrape(site.http_port), name, &[label]).unwrap_or(0.0)
    };
    // the plant's logger, from its own address, authenticates first
    let mut logger = Logger::new(connect_from([127, 0, 0, 2], site.tcp_port));
    let send = |logger: &mut Logger<TcpStream>, qn: &str, data_time: &str| {
        logger.send(&wire(&minute_upload(qn, data_time, "30")));
        logger.receive(Duration::from_secs(10))
    };
    let first = send(&mut logger, "20260101120100001", "20260101120000");
    assert_ack(first, "20260101120100001", CommandCode::MinuteData);

    // a guesser sends 1,000 wrong passwords at once on one connection, the right one last
    let mut guesser = site.logger();
    let mut guesses = Vec::new();
    for i in 0..1000 {
        let mut guess = minute_upload("20260101120200001", "20260101120100", "99");
        guess.pw = Some(format!("{:06}", 200_000 + i));
        guesses.extend(wire(&guess));
    }
    guesses.extend(wire(&minute_upload(
        "20260101120200001",
        "20260101120100",
        "99",
    )));
    guesser.send(&guesses);
    assert!(
        closed_within(&mut guesser.stream, Duration::from_secs(10)),
        "the guessing connection stayed open"
    );
    assert!(guesser.receive(Duration::from_millis(200)).is_none());
    let failures = metric_of(
        "cemsd_hj212_listener_auth_failures_total",
        ("reason", "bad_password"),
    );
    assert_eq!(failures, 3.0, "checked after the lockout");
    let lockouts = "cemsd_hj212_listener_lockouts_total";
    assert_eq!(metric_of(lockouts, ("scope", "source")), 1.0);
    assert_eq!(metric_of(lockouts, ("scope", "mn")), 1.0);

    // the locked address gets no connection
    let mut again = site.logger();
    assert!(closed_within(&mut again.stream, Duration::from_secs(2)));
    // from a third address even the right password is not confirmed while the MN is locked
    let mut third = Logger::new(connect_from([127, 0, 0, 3], site.tcp_port));
    let right = send(&mut third, "20260101120300001", "20260101120200");
    assert!(
        right.is_none(),
        "a locked MN confirmed a password: {right:?}"
    );
    // the logger's own address is still served
    let second = send(&mut logger, "20260101120400001", "20260101120300");
    assert_ack(second, "20260101120400001", CommandCode::MinuteData);
    assert_eq!(site.rows(RecordKind::Minute).len(), 2);
    assert!(
        metric_of(
            "cemsd_hj212_listener_auth_failures_total",
            ("reason", "locked_out")
        ) >= 2.0
    );
    // one refusal line for the address in this minute, not one per guess
    let log = site.daemon.log_text();
    assert_eq!(log.matches("wrong password").count(), 1, "{log}");
    assert!(log.contains("address locked out"), "{log}");
    site.stop();
}
