//! HJ 212-2017 conformance: the exchanges of the standard's Appendix C that cemsd takes part
//! in, replayed as scripts (packets in, packets out) against the listener (cemsd as the
//! platform, 上位机) and the uplink (cemsd as the data logger, 现场机), byte for byte where the
//! standard prints the bytes.
//!
//! Source of every packet here: HJ 212-2017 Appendix C as published in the standard's text
//! (guocay/hj212-protocol, `docs/污染物在线监控（监测）系统数据传输标准.pdf`). The standard
//! prints data segments only; `##`, length and CRC are added here (Appendix A's CRC), and
//! the `;…` with which the examples elide further factors is left out. Its examples use
//! ST=32 and water codes (w01001 …); the listener stores codes it does not know without a
//! quantity, and the uplink is configured with ST=32 so the platform's requests are the
//! standard's bytes.
//!
//! Tables covered: C.2 (get time), C.3 (set time), C.14 (real-time upload and 9014), C.16
//! (minute upload), C.17 (hour upload), C.18 (day upload), C.21/C.48 (hour history pull with
//! acks), C.50 (split hour upload, each part its own QN and 9014), on both sides where cemsd
//! plays the role.

mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cemsd::config::secret::Secret;
use cemsd::model::time::UtcOffset;
use cemsd::model::{unit_of, Flag, FlagSet, Quantity, Timestamp};
use cemsd::protocol::hj212::codes::{code_2017, data_type};
use cemsd::protocol::hj212::{crc16_hj212, FieldKind, Framer, Packet, SystemCode};
use cemsd::sink::hj212::{Uplink, UplinkSettings, UplinkStats};
use cemsd::store::{Query, Record, RecordKind, Store, StoreOptions, StoreWriter, WriterOptions};
use support::daemon::{write_config, Daemon};
use support::http::{metric, scrape};
use support::ports::{free_port, listening_within};
use support::site::bureau_listener;
use support::store::open;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// The MN and password of every Appendix C example.
const MN: &str = "010000A8900016F000169DC0";
const PW: &str = "123456";

/// `##`, length, data segment, CRC, CRLF (HJ 212-2017 6.3.1 and Appendix A).
fn framed(data: &str) -> Vec<u8> {
    format!(
        "##{:04}{data}{:04X}\r\n",
        data.len(),
        crc16_hj212(data.as_bytes())
    )
    .into_bytes()
}

// ------------------------------------------------------------ cemsd as the platform (listener)

/// Table C.14, the logger's real-time upload (its `01018-Rtd` without the `w` as printed).
const C14_UPLOAD: &str = "QN=20160801085857223;ST=32;CN=2011;PW=123456;MN=010000A8900016F000169DC0;Flag=5;CP=&&DataTime=20160801085857;w01001-Rtd=7.1,w01001-Flag=N;w01018-SampleTime=20160801070000,01018-Rtd=2.2,w01018-Flag=N,w01018-EFlag=A01&&";
const C14_ACK: &str =
    "QN=20160801085857223;ST=91;CN=9014;PW=123456;MN=010000A8900016F000169DC0;Flag=4;CP=&&&&";
/// Table C.16, minute data of the 10-minute period from 08:40.
const C16_UPLOAD: &str = "QN=20160801085000001;ST=32;CN=2051;PW=123456;MN=010000A8900016F000169DC0;Flag=5;CP=&&DataTime=20160801084000;w00000-Cou=10.5,w00000-Min=16.4,w00000-Avg=17.5,w00000-Max=20.1,w00000-Flag=N;w01001-Min=7.1,w01001-Avg=7.5,w01001-Max=7.8,w01001-Flag=N;w01018-Cou=10.5,w01018-Min=40.1,w01018-Avg=40.1,w01018-Max=40.1,w01018-Flag=N&&";
const C16_ACK: &str =
    "QN=20160801085000001;ST=91;CN=9014;PW=123456;MN=010000A8900016F000169DC0;Flag=4;CP=&&&&";
/// Table C.17, hour data of 08:00.
const C17_UPLOAD: &str = "QN=20160801090000001;ST=32;CN=2061;PW=123456;MN=010000A8900016F000169DC0;Flag=5;CP=&&DataTime=20160801080000;w00000-Cou=63.0,w00000-Min=16.4,w00000-Avg=17.5,w00000-Max=20.1,w00000-Flag=N;w01001-Min=7.1,w01001-Avg=7.5,w01001-Max=7.8,w01001-Flag=N;w01018-Cou=63.0,w01018-Min=40.1,w01018-Avg=40.1,w01018-Max=40.1,w01018-Flag=N&&";
const C17_ACK: &str =
    "QN=20160801090000001;ST=91;CN=9014;PW=123456;MN=010000A8900016F000169DC0;Flag=4;CP=&&&&";
/// Table C.18, day data of 2016-08-01.
const C18_UPLOAD: &str = "QN=20160802000000001;ST=32;CN=2031;PW=123456;MN=010000A8900016F000169DC0;Flag=5;CP=&&DataTime=20160801000000;w00000-Cou=1512.0,w00000-Min=16.4,w00000-Avg=17.5,w00000-Max=20.1,w00000-Flag=N;w01001-Min=7.1,w01001-Avg=7.5,w01001-Max=7.8,w01001-Flag=N;w01018-Cou=2142.0,w01018-Min=40.1,w01018-Avg=40.1,w01018-Max=40.1,w01018-Flag=N&&";
const C18_ACK: &str =
    "QN=20160802000000001;ST=91;CN=9014;PW=123456;MN=010000A8900016F000169DC0;Flag=4;CP=&&&&";
/// Table C.50, the two parts of an hour upload, each with its own QN, and their 9014s.
const C50_PART_1: &str = "QN=20160801085857534;ST=32;CN=2061;PW=123456;MN=010000A8900016F000169DC0;Flag=7;PNUM=2;PNO=1;CP=&&DataTime=20160801080000;w00000-Cou=63.0,w00000-Min=16.4,w00000-Avg=17.5,w00000-Max=20.1,w00000-Flag=N;w01001-Min=7.1,w01001-Avg=7.5,w01001-Max=7.8,w01001-Flag=N&&";
const C50_ACK_1: &str =
    "QN=20160801085857534;ST=91;CN=9014;PW=123456;MN=010000A8900016F000169DC0;Flag=4;CP=&&&&";
const C50_PART_2: &str = "QN=20160801085857535;ST=32;CN=2061;PW=123456;MN=010000A8900016F000169DC0;Flag=7;PNUM=2;PNO=2;CP=&&DataTime=20160801080000;w01018-Cou=63.0,w01018-Min=40.1,w01018-Avg=40.1,w01018-Max=40.1,w01018-Flag=N&&";
const C50_ACK_2: &str =
    "QN=20160801085857535;ST=91;CN=9014;PW=123456;MN=010000A8900016F000169DC0;Flag=4;CP=&&&&";

struct Bureau {
    dir: tempfile::TempDir,
    tcp_port: u16,
    http_port: u16,
    daemon: Daemon,
}

impl Bureau {
    fn start() -> Bureau {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let (tcp_port, http_port) = (free_port(), free_port());
        std::fs::write(dir.path().join("logger.pw"), format!("{PW}\n"))
            .unwrap_or_else(|e| panic!("write password: {e}"));
        let text = bureau_listener(http_port, tcp_port)
            + &format!(
                r#"history_pull = false
# the fixtures are dated 2016-08-01 (HJ 212-2017 Appendix C): inside the window whatever the calendar says
data_time_horizon = "20y"

[[hj212_listener.device]]
mn = "{MN}"
password = {{ file = "logger.pw" }}
stack = "plant.outfall"
"#
            );
        let config = write_config(dir.path(), "bureau.toml", &text);
        let daemon = Daemon::start(&config, dir.path(), &[]);
        let bureau = Bureau {
            dir,
            tcp_port,
            http_port,
            daemon,
        };
        let up = listening_within(tcp_port, Duration::from_secs(30));
        assert!(
            up,
            "listener did not come up:\n{}",
            bureau.daemon.log_text()
        );
        bureau
    }

    fn logger(&self) -> Logger {
        let stream = TcpStream::connect(("127.0.0.1", self.tcp_port))
            .unwrap_or_else(|e| panic!("connect: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap_or_else(|e| panic!("timeout: {e}"));
        Logger {
            stream,
            framer: Framer::new(),
        }
    }

    /// (DataTime as stored, channel, measured) of every row of `kind`, in store order.
    fn rows(&self, kind: RecordKind) -> Vec<(i64, String, Option<f64>)> {
        open(&self.dir.path().join("data/cemsd.db"))
            .query(&Query {
                kind: Some(kind),
                device: Some(MN.into()),
                ..Query::default()
            })
            .unwrap_or_else(|e| panic!("query: {e}"))
            .into_iter()
            .map(|s| {
                (
                    s.record.ts.0,
                    s.record.channel.to_string(),
                    s.record.measured,
                )
            })
            .collect()
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

/// The data logger's end: writes bytes, returns what the listener writes back, raw.
struct Logger {
    stream: TcpStream,
    framer: Framer,
}

impl Logger {
    fn send(&mut self, data: &str) {
        self.stream
            .write_all(&framed(data))
            .unwrap_or_else(|e| panic!("send: {e}"));
    }

    /// The next packet's bytes (CRLF included), waiting at most `limit`.
    fn receive(&mut self, limit: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + limit;
        let mut buf = [0u8; 2048];
        loop {
            if let Some(found) = self.framer.next_packet() {
                let frame = found.unwrap_or_else(|e| panic!("listener sent a bad packet: {e}"));
                let mut raw = frame.raw;
                raw.extend_from_slice(b"\r\n");
                return Some(raw);
            }
            if Instant::now() >= deadline {
                return None;
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.framer.push(&buf[..n]),
                Err(_) => {}
            }
        }
    }

    fn expect(&mut self, data: &str) {
        let got = self.receive(Duration::from_secs(10));
        assert_eq!(
            got.map(|b| String::from_utf8_lossy(&b).into_owned()),
            Some(String::from_utf8_lossy(&framed(data)).into_owned()),
        );
    }

    fn expect_silence(&mut self) {
        let got = self.receive(Duration::from_millis(500));
        assert_eq!(got.map(|b| String::from_utf8_lossy(&b).into_owned()), None);
    }
}

/// 2016-08-01 `hh:mm` at +08:00, in ms since the epoch.
fn local_2016_08_01(hour: i64, minute: i64) -> i64 {
    const MIDNIGHT_CST: i64 = 1_469_980_800_000; // 2016-08-01T00:00:00+08:00
    MIDNIGHT_CST + (hour * 60 + minute) * 60_000
}

#[test]
fn c14_c16_c17_c18_uploads_are_stored_and_acked_with_the_standards_9014() {
    let bureau = Bureau::start();
    let mut logger = bureau.logger();
    for (upload, ack) in [
        (C14_UPLOAD, C14_ACK),
        (C16_UPLOAD, C16_ACK),
        (C17_UPLOAD, C17_ACK),
        (C18_UPLOAD, C18_ACK),
    ] {
        logger.send(upload);
        logger.expect(ack);
    }
    logger.expect_silence();
    let reading = bureau.rows(RecordKind::Reading);
    let at = local_2016_08_01(8, 58) + 57_000;
    assert_eq!(
        reading,
        vec![
            (at, "w01001".into(), Some(7.1)),
            (at, "w01018".into(), None),
            (at, "01018".into(), Some(2.2)),
        ],
        "the printed `01018-Rtd` is kept under its own code, nothing dropped"
    );
    let minute = bureau.rows(RecordKind::Minute);
    let hour = bureau.rows(RecordKind::Hour);
    let day = bureau.rows(RecordKind::Day);
    for (rows, ts) in [
        (&minute, local_2016_08_01(8, 40)),
        (&hour, local_2016_08_01(8, 0)),
        (&day, local_2016_08_01(0, 0)),
    ] {
        assert_eq!(
            *rows,
            vec![
                (ts, "w00000".into(), Some(17.5)),
                (ts, "w01001".into(), Some(7.5)),
                (ts, "w01018".into(), Some(40.1)),
            ]
        );
    }
    bureau.stop();
}

#[test]
fn c50_split_minute_and_hour_uploads_out_of_order_and_resent_are_acked_per_part_and_stored_once() {
    let bureau = Bureau::start();
    let mut logger = bureau.logger();
    // Table C.50 as printed, part 2 first, then part 1, then part 2 again (its ack lost).
    logger.send(C50_PART_2);
    logger.expect(C50_ACK_2);
    logger.send(C50_PART_1);
    logger.expect(C50_ACK_1);
    logger.send(C50_PART_2);
    logger.expect(C50_ACK_2);
    // The same split made of minute data (2051, the 08:40 period), the same way.
    let minute_1 = C50_PART_1
        .replace("CN=2061", "CN=2051")
        .replace("DataTime=20160801080000", "DataTime=20160801084000")
        .replace("QN=20160801085857534", "QN=20160801085857600");
    let minute_2 = C50_PART_2
        .replace("CN=2061", "CN=2051")
        .replace("DataTime=20160801080000", "DataTime=20160801084000")
        .replace("QN=20160801085857535", "QN=20160801085857601");
    logger.send(&minute_2);
    logger.expect(&C50_ACK_2.replace("857535", "857601"));
    logger.send(&minute_1);
    logger.expect(&C50_ACK_1.replace("857534", "857600"));
    logger.send(&minute_2);
    logger.expect(&C50_ACK_2.replace("857535", "857601"));
    logger.expect_silence();
    for (kind, ts) in [
        (RecordKind::Hour, local_2016_08_01(8, 0)),
        (RecordKind::Minute, local_2016_08_01(8, 40)),
    ] {
        // Whole (both parts) and once, in PNO order.
        assert_eq!(
            bureau.rows(kind),
            vec![
                (ts, "w00000".into(), Some(17.5)),
                (ts, "w01001".into(), Some(7.5)),
                (ts, "w01018".into(), Some(40.1)),
            ],
            "{kind:?}"
        );
    }
    bureau.stop();
}

#[test]
fn an_upload_whose_data_time_is_not_a_period_start_is_refused_with_its_qnrtn() {
    let bureau = Bureau::start();
    let mut logger = bureau.logger();
    // C.17 with DataTime 08:18:40: not an hour start.
    let misaligned = C17_UPLOAD.replace("DataTime=20160801080000", "DataTime=20160801081840");
    logger.send(&misaligned);
    // Table 7: QnRtn=2, request refused, under the upload's QN.
    logger.expect(
        "QN=20160801090000001;ST=91;CN=9011;PW=123456;MN=010000A8900016F000169DC0;Flag=4;CP=&&QnRtn=2&&",
    );
    // The aligned upload after it is taken as usual.
    logger.send(C17_UPLOAD);
    logger.expect(C17_ACK);
    let hour = bureau.rows(RecordKind::Hour);
    assert_eq!(hour.len(), 3, "only the aligned hour: {hour:?}");
    assert!(hour.iter().all(|(ts, _, _)| *ts == local_2016_08_01(8, 0)));
    assert_eq!(bureau.rejected("not_period_start"), 1.0);
    let log = bureau.daemon.log_text();
    assert!(
        log.contains("DataTime=20160801081840 is not the start of a hour"),
        "{log}"
    );
    assert!(
        !log.contains("PW=123456"),
        "password masked in the log:\n{log}"
    );
    bureau.stop();
}

// ------------------------------------------------------------ cemsd as the data logger (uplink)

/// What the test platform received, raw, in order.
#[derive(Default)]
struct PlatformState {
    received: Vec<(String, Packet)>,
    outbound: Option<mpsc::UnboundedSender<Vec<u8>>>,
}

/// A platform written from Appendix C: acks every upload part with the 9014 of Table C.14
/// (its QN, `CP=&&&&`), records every packet, sends the requests a test gives it.
struct Platform {
    addr: SocketAddr,
    state: Arc<Mutex<PlatformState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(state: &Mutex<PlatformState>) -> std::sync::MutexGuard<'_, PlatformState> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl Platform {
    async fn start() -> Platform {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("addr: {e}"));
        let state = Arc::new(Mutex::new(PlatformState::default()));
        let serving = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
                lock(&serving).outbound = Some(tx);
                let state = serving.clone();
                tokio::spawn(async move {
                    let (mut read, mut write) = stream.into_split();
                    let mut framer = Framer::new();
                    let mut buf = vec![0u8; 4096];
                    loop {
                        tokio::select! {
                            n = read.read(&mut buf) => {
                                let n = match n { Ok(0) | Err(_) => return, Ok(n) => n };
                                framer.push(&buf[..n]);
                                while let Some(Ok(frame)) = framer.next_packet() {
                                    let text = String::from_utf8_lossy(&frame.raw).into_owned();
                                    let packet = frame.packet;
                                    let upload = matches!(packet.cn.code(), 2011 | 2051 | 2061 | 2031);
                                    let ack = upload && packet.flag.is_some_and(|f| f.ack_required);
                                    lock(&state).received.push((text, packet.clone()));
                                    if ack {
                                        let qn = packet.qn.clone().unwrap_or_default();
                                        let ack = framed(&format!("QN={qn};ST=91;CN=9014;PW={PW};MN={MN};Flag=4;CP=&&&&"));
                                        let _ = write.write_all(&ack).await;
                                    }
                                }
                            }
                            Some(bytes) = rx.recv() => {
                                let _ = write.write_all(&bytes).await;
                            }
                        }
                    }
                });
            }
        });
        Platform { addr, state, task }
    }

    /// The data segments received, in order.
    fn received(&self) -> Vec<(String, Packet)> {
        lock(&self.state).received.clone()
    }

    fn data_segments(&self, cn: u16) -> Vec<String> {
        self.received()
            .into_iter()
            .filter(|(_, p)| p.cn.code() == cn)
            .map(|(text, _)| text[6..text.len() - 4].to_string())
            .collect()
    }

    fn send(&self, data: &str) {
        let sent = lock(&self.state)
            .outbound
            .as_ref()
            .map(|tx| tx.send(framed(data)));
        assert!(matches!(sent, Some(Ok(()))), "no connection to send on");
    }
}

struct Gateway {
    _dir: tempfile::TempDir,
    handle: cemsd::store::StoreHandle,
    stats: Arc<UplinkStats>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    writer: Option<std::thread::JoinHandle<Store>>,
}

/// 2016-08-01 08:58:57.223 at +08:00, the moment of the Appendix C examples: QNs and
/// SystemTime come out as the standard prints them.
const C_CLOCK: i64 = 1_469_980_800_000 + ((8 * 60 + 58) * 60 + 57) * 1000 + 223;

impl Gateway {
    /// A store holding `records`, and an uplink with ST=32 (the examples' system code) to
    /// `platform` on a fixed clock.
    async fn start(platform: SocketAddr, records: Vec<Record>) -> Gateway {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path: PathBuf = dir.path().join("cemsd.db");
        let store = Store::open(&path, StoreOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        let (handle, writer) =
            StoreWriter::spawn(store, WriterOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        if !records.is_empty() {
            let appended = handle.append(records).await;
            assert!(matches!(appended, Ok(Some(_))), "append failed");
        }
        let settings = UplinkSettings {
            name: "hj212:platform".into(),
            address: platform.to_string(),
            st: SystemCode::WaterPollutionSource,
            password: Secret::new(PW),
            points: vec![("unit1".into(), MN.into())],
            kinds: vec![RecordKind::Minute, RecordKind::Hour, RecordKind::Day],
            realtime_interval: None,
            realtime_ack: true,
            ack_timeout: Duration::from_secs(2),
            retries: 3,
            offset: UtcOffset::CHINA,
        };
        let clock = Arc::new(|| Timestamp(C_CLOCK));
        let uplink = Uplink::new(settings, path, handle.clone(), clock, 7);
        let stats = uplink.stats();
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(uplink.run(stop_rx));
        Gateway {
            _dir: dir,
            handle,
            stats,
            stop,
            task,
            writer: Some(writer),
        }
    }

    async fn close(mut self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
        let _ = self.handle.shutdown().await;
        if let Some(writer) = self.writer.take() {
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
    }
}

async fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

/// An hour (08:00 local, 2016-08-01) of `quantity` with every field the store can hold, in
/// the quantity's store unit.
fn full_hour(quantity: Quantity, value: f64) -> Record {
    let ts = local_2016_08_01(8, 0);
    Record {
        end: Some(Timestamp(ts + 3_600_000)),
        quantity: Some(quantity),
        unit: Some(unit_of(quantity)),
        flags: FlagSet::of(Flag::N),
        measured: Some(value),
        corrected: Some(value * 1.2345678),
        min: Some(value * 0.9123456),
        max: Some(value * 1.0987654),
        corrected_min: Some(value * 1.1111111),
        corrected_max: Some(value * 1.3333333),
        rate: quantity.is_pollutant().then_some(12.345_678_9),
        count: Some(60),
        ..Record::new(
            RecordKind::Hour,
            Timestamp(ts),
            "unit1".into(),
            "".into(),
            "".into(),
        )
    }
}

/// Every value of `packet` written in its code's data type (Table B.2: as many decimals as
/// the type gives, no more integer digits), `-Cou` with three decimals.
fn assert_typed(packet: &Packet) {
    for value in packet.cp.values() {
        if value.kind == FieldKind::Flag {
            continue;
        }
        let decimals = if value.kind == FieldKind::Cou {
            3
        } else {
            let t = data_type(value.code).unwrap_or_else(|| panic!("{} typed", value.code));
            let integer = value.value.trim_start_matches('-').split('.').next();
            assert!(
                integer.is_some_and(|i| i.len() <= usize::from(t.integer_digits)),
                "{}-{} = {} over {t}",
                value.code,
                value.kind,
                value.value
            );
            usize::from(t.decimals)
        };
        let got = value.value.split_once('.').map_or(0, |(_, d)| d.len());
        assert_eq!(
            got, decimals,
            "{}-{}={}",
            value.code, value.kind, value.value
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c2_c3_time_requests_are_answered_and_a_time_reply_is_not() {
    let platform = Platform::start().await;
    let gateway = Gateway::start(platform.addr, Vec::new()).await;
    assert!(
        eventually(Duration::from_secs(10), || lock(&platform.state)
            .outbound
            .is_some())
        .await,
        "the uplink connects"
    );
    // Table C.2: get the logger's time.
    platform.send("QN=20160801085857223;ST=32;CN=1011;PW=123456;MN=010000A8900016F000169DC0;Flag=5;CP=&&PolId=w01018&&");
    assert!(
        eventually(Duration::from_secs(5), || !platform
            .data_segments(9012)
            .is_empty())
        .await
    );
    // Table C.3: set it (recorded; the clock is left to NTP).
    platform.send("QN=20160801085857224;ST=32;CN=1012;PW=123456;MN=010000A8900016F000169DC0;Flag=5;CP=&&PolId=w01018;SystemTime=20160801085857&&");
    assert!(
        eventually(Duration::from_secs(5), || platform
            .data_segments(9012)
            .len()
            == 2)
        .await
    );
    // A platform's own 1011 answer (Table C.2's third row, Flag=4): never answered, or the
    // two sides would ping-pong.
    platform.send("QN=20160801085857225;ST=32;CN=1011;PW=123456;MN=010000A8900016F000169DC0;Flag=4;CP=&&PolId=w01018;SystemTime=20160801085857&&");
    assert!(
        eventually(Duration::from_secs(5), || gateway.stats.snapshot().ignored
            == 1)
        .await
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let exchange: Vec<String> = platform
        .received()
        .into_iter()
        .map(|(text, _)| text[6..text.len() - 4].to_string())
        .collect();
    assert_eq!(
        exchange,
        vec![
            // C.2, byte for byte but for PolId, which names one instrument's clock.
            "QN=20160801085857223;ST=91;CN=9011;PW=123456;MN=010000A8900016F000169DC0;Flag=4;CP=&&QnRtn=1&&",
            "QN=20160801085857223;ST=32;CN=1011;PW=123456;MN=010000A8900016F000169DC0;Flag=4;CP=&&SystemTime=20160801085857&&",
            "QN=20160801085857223;ST=91;CN=9012;PW=123456;MN=010000A8900016F000169DC0;Flag=4;CP=&&ExeRtn=1&&",
            // C.3.
            "QN=20160801085857224;ST=91;CN=9011;PW=123456;MN=010000A8900016F000169DC0;Flag=4;CP=&&QnRtn=1&&",
            "QN=20160801085857224;ST=91;CN=9012;PW=123456;MN=010000A8900016F000169DC0;Flag=4;CP=&&ExeRtn=1&&",
        ]
    );
    gateway.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c17_c50_an_hour_goes_out_typed_split_with_a_qn_and_a_9014_per_part() {
    // Every quantity with a 2017 code, every field: too long for one packet.
    let records: Vec<Record> = Quantity::ALL
        .into_iter()
        .filter(|q| code_2017(*q).is_some())
        .map(|q| match q {
            Quantity::Flow => full_hour(q, 19_191.6), // m3/h in the store: 5.331 m3/s
            Quantity::Pressure => full_hour(q, -0.026),
            _ => full_hour(q, 18.514_332_218_102_904),
        })
        .collect();
    let platform = Platform::start().await;
    let gateway = Gateway::start(platform.addr, records).await;
    let stats = gateway.stats.clone();
    assert!(
        eventually(Duration::from_secs(10), || stats.snapshot().cursor >= 12).await,
        "every part acked moves the cursor past the hour: {:?}",
        stats.snapshot()
    );
    // A 1011 reply from the platform on the same link is not answered.
    platform.send("QN=20160801085857999;ST=32;CN=1011;PW=123456;MN=010000A8900016F000169DC0;Flag=4;CP=&&SystemTime=20160801085857&&");
    assert!(eventually(Duration::from_secs(5), || stats.snapshot().ignored == 1).await);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let parts: Vec<Packet> = platform
        .received()
        .into_iter()
        .map(|(_, p)| p)
        .filter(|p| p.cn.code() == 2061)
        .collect();
    assert!(parts.len() >= 2, "split: {} part(s)", parts.len());
    let qns: BTreeSet<String> = parts.iter().filter_map(|p| p.qn.clone()).collect();
    assert_eq!(qns.len(), parts.len(), "each part its own QN (C.50)");
    // QNs from the fixed clock, one millisecond apart: 085857223, 224 ….
    assert_eq!(parts[0].qn.as_deref(), Some("20160801085857223"));
    assert_eq!(parts[1].qn.as_deref(), Some("20160801085857224"));
    for (i, part) in parts.iter().enumerate() {
        assert_eq!(
            part.flag.map(|f| f.bits()),
            Some(7),
            "Flag=7: 2017, split, ack"
        );
        assert_eq!(
            (part.pnum, part.pno),
            (Some(parts.len() as u32), Some(i as u32 + 1))
        );
        assert_eq!(part.cp.data_time(), Some("20160801080000"));
        assert_typed(part);
    }
    let snapshot = stats.snapshot();
    assert_eq!(snapshot.acks, parts.len() as u64, "one 9014 per part");
    assert_eq!(snapshot.resends, 0, "nothing waited for a 9014 that came");
    let values: Vec<(String, String)> = parts
        .iter()
        .flat_map(|p| {
            p.cp.values()
                .map(|v| (format!("{}-{}", v.code, v.kind), v.value.to_string()))
                .collect::<Vec<_>>()
        })
        .collect();
    let value = |name: &str| {
        values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{name} in {values:?}"))
    };
    // a21026 N5.2; a34013 N4; a19001 N3.1; a01013 N5.3 in kPa.
    assert_eq!(value("a21026-Avg"), "18.51");
    assert_eq!(value("a34013-Avg"), "19");
    assert_eq!(value("a19001-Avg"), "18.5");
    assert_eq!(value("a01013-Avg"), "-0.026");
    // a00000 in m3/s (N6.1), its Cou the hour's volume in m3.
    assert_eq!(value("a00000-Avg"), "5.3");
    assert_eq!(value("a00000-Cou"), "19191.600");
    // SO2's Cou: 12.3456789 kg/h over one hour, in kg.
    assert_eq!(value("a21026-Cou"), "12.346");
    gateway.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c21_c48_an_hour_pull_is_answered_9011_uploads_each_acked_then_9012() {
    let platform = Platform::start().await;
    let records = vec![full_hour(Quantity::SO2, 30.0)];
    let gateway = Gateway::start(platform.addr, records).await;
    let stats = gateway.stats.clone();
    assert!(eventually(Duration::from_secs(10), || stats.snapshot().cursor >= 1).await);
    // Table C.21/C.48: the platform asks for the hour 08:00.
    platform.send("QN=20160801085857223;ST=32;CN=2061;PW=123456;MN=010000A8900016F000169DC0;Flag=5;CP=&&BeginTime=20160801080000;EndTime=20160801080000&&");
    assert!(
        eventually(Duration::from_secs(5), || !platform
            .data_segments(9012)
            .is_empty())
        .await
    );
    assert_eq!(
        platform.data_segments(9011),
        vec!["QN=20160801085857223;ST=91;CN=9011;PW=123456;MN=010000A8900016F000169DC0;Flag=4;CP=&&QnRtn=1&&"]
    );
    let hours = platform.data_segments(2061);
    assert_eq!(
        hours.len(),
        2,
        "the backlog upload and the pulled one: {hours:?}"
    );
    assert!(
        hours[1].ends_with(";ST=32;CN=2061;PW=123456;MN=010000A8900016F000169DC0;Flag=5;CP=&&DataTime=20160801080000;a21026-Avg=30.00,a21026-ZsAvg=37.04,a21026-Min=27.37,a21026-Max=32.96,a21026-ZsMin=33.33,a21026-ZsMax=40.00,a21026-Cou=12.346,a21026-Flag=N&&"),
        "{hours:?}"
    );
    assert_eq!(
        platform.data_segments(9012),
        vec!["QN=20160801085857223;ST=91;CN=9012;PW=123456;MN=010000A8900016F000169DC0;Flag=4;CP=&&ExeRtn=1&&"],
        "9012 after the pulled hour's 9014"
    );
    gateway.close().await;
}
