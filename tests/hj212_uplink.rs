//! The HJ 212 uplink against a test platform: a peer written here from the standard with the
//! codec, on a 127.0.0.1 listener. It acknowledges uploads with 9014 (or drops acks, or cuts
//! the connection, as each test says), records every packet, and sends the platform's own
//! requests (history pull, get/set time).

mod support;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cemsd::config::secret::Secret;
use cemsd::model::time::UtcOffset;
use cemsd::model::{unit_of, Flag, FlagSet, Quantity, Timestamp};
use cemsd::protocol::hj212::{
    crc16_hj212, encode, CommandCode, CommandParams, Framer, Packet, PacketFlag, SystemCode,
};
use cemsd::sink::hj212::{Uplink, UplinkSettings, UplinkStats};
use cemsd::store::{
    Record, RecordKind, Store, StoreHandle, StoreOptions, StoreWriter, WriterOptions,
};
use support::daemon::{write_config, Daemon};
use support::ports::free_port;
use support::site::{head, hj212_uplink, plant_stack, simulated_plc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// 2026-01-01 04:00:00 UTC = 12:00:00 at +08:00.
const T0: i64 = 1_767_240_000_000;
const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const PASSWORD: &str = "123456";
const MN: &str = "88888880000001";
const SINK: &str = "hj212:province";

// ---------------------------------------------------------------- the test platform

/// What the platform does with an upload that asks for an ack.
const ACK_ALL: u8 = 0;
const ACK_NONE: u8 = 1;
const ACK_EVERY_OTHER: u8 = 2;

#[derive(Debug, Clone)]
struct Received {
    conn: usize,
    text: String,
    packet: Packet,
    acked: bool,
}

#[derive(Default)]
struct PlatformState {
    received: Vec<Received>,
    connections: usize,
    outbound: Option<mpsc::UnboundedSender<Vec<u8>>>,
    acks_due: u64,
    /// Close the first connection after this many uploads.
    cut_after: Option<usize>,
}

struct Platform {
    addr: SocketAddr,
    state: Arc<Mutex<PlatformState>>,
    policy: Arc<AtomicU8>,
    task: JoinHandle<()>,
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(state: &Mutex<PlatformState>) -> std::sync::MutexGuard<'_, PlatformState> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Uploads the platform answers with 9014: data, and the field-device information (3020)
/// the gateway uploads its parameter changes with.
fn is_upload(cn: CommandCode) -> bool {
    matches!(
        cn,
        CommandCode::RealTimeData
            | CommandCode::MinuteData
            | CommandCode::HourData
            | CommandCode::DayData
            | CommandCode::GetInfo
    )
}

impl Platform {
    async fn start(port: u16, policy: u8, cut_after: Option<usize>) -> Platform {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("local addr: {e}"));
        let state = Arc::new(Mutex::new(PlatformState {
            cut_after,
            ..PlatformState::default()
        }));
        let policy = Arc::new(AtomicU8::new(policy));
        let task = tokio::spawn(serve(listener, state.clone(), policy.clone()));
        Platform {
            addr,
            state,
            policy,
            task,
        }
    }

    fn received(&self) -> Vec<Received> {
        lock(&self.state).received.clone()
    }

    fn uploads(&self, cn: u16) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.packet.cn.code() == cn)
            .collect()
    }

    /// Sends a request (data segment without the frame) on the current connection.
    fn send(&self, data: &str) {
        let crc = crc16_hj212(data.as_bytes());
        let wire = format!("##{:04}{data}{crc:04X}\r\n", data.len()).into_bytes();
        let state = lock(&self.state);
        let sent = state.outbound.as_ref().map(|tx| tx.send(wire));
        assert!(matches!(sent, Some(Ok(()))), "no connection to send on");
    }
}

async fn serve(listener: TcpListener, state: Arc<Mutex<PlatformState>>, policy: Arc<AtomicU8>) {
    while let Ok((stream, _)) = listener.accept().await {
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let conn = {
            let mut s = lock(&state);
            s.connections += 1;
            s.outbound = Some(tx.clone());
            s.connections
        };
        let state = state.clone();
        let policy = policy.clone();
        tokio::spawn(async move {
            let (mut read, mut write) = stream.into_split();
            let mut framer = Framer::new();
            let mut buf = vec![0u8; 4096];
            let mut uploads_here = 0usize;
            loop {
                tokio::select! {
                    n = read.read(&mut buf) => {
                        let n = match n { Ok(0) | Err(_) => return, Ok(n) => n };
                        framer.push(&buf[..n]);
                        while let Some(frame) = framer.next_packet() {
                            let Ok(frame) = frame else { continue };
                            let packet = frame.packet;
                            let text = String::from_utf8_lossy(&frame.raw).into_owned();
                            // Every part of a split upload is acked under its own QN
                            // (HJ 212-2017 Table C.50).
                            let wants_ack = is_upload(packet.cn)
                                && packet.flag.is_some_and(|f| f.ack_required);
                            let ack = wants_ack && {
                                let mut s = lock(&state);
                                s.acks_due += 1;
                                match policy.load(Ordering::SeqCst) {
                                    ACK_ALL => true,
                                    ACK_EVERY_OTHER => s.acks_due % 2 == 0,
                                    _ => false,
                                }
                            };
                            let cut = {
                                let mut s = lock(&state);
                                s.received.push(Received { conn, text, packet: packet.clone(), acked: ack });
                                if is_upload(packet.cn) {
                                    uploads_here += 1;
                                }
                                conn == 1 && s.cut_after.is_some_and(|n| uploads_here >= n)
                            };
                            if cut {
                                return; // drops the socket mid-upload
                            }
                            if ack {
                                let _ = write.write_all(&ack_of(&packet)).await;
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
}

/// 9014 for an upload as HJ 212-2017 Table C.14 gives it: `QN=<upload's>;ST=91;CN=9014;PW;MN;
/// Flag=4;CP=&&&&`.
fn ack_of(upload: &Packet) -> Vec<u8> {
    let qn = upload.qn.clone().unwrap_or_default();
    let packet = Packet {
        qn: Some(qn),
        pw: upload.pw.clone(),
        flag: Some(PacketFlag::hj212_2017(false)),
        cp: CommandParams::new(),
        ..Packet::new(
            SystemCode::SystemInteraction,
            CommandCode::DataResponse,
            upload.mn.clone().unwrap_or_default(),
        )
    };
    encode(&packet).unwrap_or_else(|e| panic!("encode ack: {e}"))
}

// ---------------------------------------------------------------- the uplink under test

struct Site {
    _dir: tempfile::TempDir,
    path: PathBuf,
    handle: StoreHandle,
    writer: Option<std::thread::JoinHandle<Store>>,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path = dir.path().join("cemsd.db");
        let store = Store::open(&path, StoreOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        let (handle, writer) =
            StoreWriter::spawn(store, WriterOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        Site {
            _dir: dir,
            path,
            handle,
            writer: Some(writer),
        }
    }

    async fn append(&self, records: Vec<Record>) -> (u64, u64) {
        let appended = self.handle.append(records).await;
        appended
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("append failed"))
    }

    async fn cursor(&self, sink: &str) -> u64 {
        let sink = sink.to_string();
        let cursor = self.handle.call(move |s| s.cursor(&sink)).await;
        cursor.ok().and_then(|c| c.ok()).unwrap_or(0)
    }

    async fn close(mut self) {
        let _ = self.handle.shutdown().await;
        if let Some(writer) = self.writer.take() {
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
    }
}

fn settings(name: &str, address: SocketAddr, kinds: Vec<RecordKind>) -> UplinkSettings {
    UplinkSettings {
        name: format!("hj212:{name}"),
        address: address.to_string(),
        st: SystemCode::AirPollutionSource,
        password: Secret::new(PASSWORD),
        points: vec![("unit1".into(), MN.into())],
        kinds,
        realtime_interval: None,
        realtime_ack: true,
        ack_timeout: Duration::from_millis(300),
        retries: 3,
        offset: UtcOffset::CHINA,
    }
}

fn all_periods() -> Vec<RecordKind> {
    vec![RecordKind::Minute, RecordKind::Hour, RecordKind::Day]
}

struct Running {
    stats: Arc<UplinkStats>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

/// Starts an uplink with a fixed clock: 2026-01-01 12:10:00 local, so QNs are predictable.
fn start(site: &Site, settings: UplinkSettings) -> Running {
    let clock = Arc::new(|| Timestamp(T0 + 10 * MINUTE));
    let uplink = Uplink::new(settings, site.path.clone(), site.handle.clone(), clock, 7);
    let stats = uplink.stats();
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(uplink.run(stop_rx));
    Running { stats, stop, task }
}

/// Polls `done` every 20 ms for at most `limit`.
async fn eventually(limit: Duration, mut done: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if done().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done().await
}

fn aggregate(kind: RecordKind, ts: i64, minutes: i64, quantity: Quantity, avg: f64) -> Record {
    Record {
        end: Some(Timestamp(ts + minutes * MINUTE)),
        quantity: Some(quantity),
        // Stored in the HJ 212 unit, so the packets carry the values as given.
        unit: Some(unit_of(quantity)),
        flags: FlagSet::of(Flag::N),
        measured: Some(avg),
        count: Some(1),
        ..Record::new(kind, Timestamp(ts), "unit1".into(), "".into(), "".into())
    }
}

/// The data segment of a received packet.
fn data(received: &Received) -> &str {
    &received.text[6..received.text.len() - 4]
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn minute_hour_and_day_arrive_as_hand_checked_packets_and_the_cursor_waits_for_acks() {
    let site = Site::new();
    let mut so2 = aggregate(RecordKind::Minute, T0, 1, Quantity::SO2, 28.5);
    so2.corrected = Some(35.125);
    so2.min = Some(27.0);
    so2.max = Some(30.25);
    so2.rate = Some(6.0);
    let o2 = aggregate(RecordKind::Minute, T0, 1, Quantity::O2, 7.5);
    let mut hour = aggregate(RecordKind::Hour, T0 - HOUR, 60, Quantity::SO2, 29.0);
    hour.flags = FlagSet::of(Flag::M);
    let day = aggregate(
        RecordKind::Day,
        T0 - 12 * HOUR,
        24 * 60,
        Quantity::Dust,
        4.5,
    );
    let mut gap = Record::new(
        RecordKind::Gap,
        Timestamp(T0),
        "unit1".into(),
        "so2".into(),
        "so2".into(),
    );
    gap.note = Some("silence".into());
    assert_eq!(site.append(vec![so2, o2, hour, gap, day]).await, (1, 5));

    let platform = Platform::start(0, ACK_NONE, None).await;
    let running = start(&site, settings("province", platform.addr, all_periods()));
    assert!(
        eventually(Duration::from_secs(5), async || platform.received().len()
            >= 3)
        .await,
        "three uploads arrive: {:?}",
        platform.received()
    );
    let first: Vec<String> = platform
        .received()
        .iter()
        .take(3)
        .map(|r| data(r).to_string())
        .collect();
    // QNs from the fixed clock (12:10:00.000 local), one millisecond apart. Minute: Cou = 6 kg/h
    // × 1/60 h = 0.1 kg. Hour 11:00 local with flag M; day 2026-01-01 local (16:00 UTC the day
    // before). The gap record is not uploaded.
    assert_eq!(
        first,
        vec![
            "QN=20260101121000000;ST=31;CN=2051;PW=123456;MN=88888880000001;Flag=5;CP=&&DataTime=20260101120000;\
             a21026-Avg=28.50,a21026-ZsAvg=35.12,a21026-Min=27.00,a21026-Max=30.25,a21026-Cou=0.100,a21026-Flag=N;\
             a19001-Avg=7.5,a19001-Flag=N&&",
            "QN=20260101121000001;ST=31;CN=2061;PW=123456;MN=88888880000001;Flag=5;CP=&&DataTime=20260101110000;\
             a21026-Avg=29.00,a21026-Flag=M&&",
            "QN=20260101121000002;ST=31;CN=2031;PW=123456;MN=88888880000001;Flag=5;CP=&&DataTime=20260101000000;\
             a34013-Avg=4,a34013-Flag=N&&",
        ]
    );
    // No ack yet: the cursor stays at 0 while the uplink resends.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(site.cursor(SINK).await, 0, "cursor moved without an ack");
    assert!(running.stats.snapshot().resends >= 1);

    platform.policy.store(ACK_ALL, Ordering::SeqCst);
    assert!(
        eventually(Duration::from_secs(10), async || site.cursor(SINK).await
            == 5)
        .await,
        "cursor reaches the last seq once acked: {}",
        site.cursor(SINK).await
    );
    // Resends kept their QN: only three distinct QNs ever went out.
    let qns: BTreeSet<String> = platform
        .received()
        .iter()
        .filter_map(|r| r.packet.qn.clone())
        .collect();
    assert_eq!(qns.len(), 3, "{qns:?}");
    running.stop().await;
    site.close().await;
}

#[tokio::test]
async fn every_other_ack_dropped_still_delivers_everything_and_resends_only_unacked() {
    let site = Site::new();
    const PERIODS: i64 = 30;
    let mut records = Vec::new();
    for i in 0..PERIODS {
        let ts = T0 + i * MINUTE;
        records.push(aggregate(
            RecordKind::Minute,
            ts,
            1,
            Quantity::SO2,
            i as f64,
        ));
        records.push(aggregate(RecordKind::Minute, ts, 1, Quantity::O2, 6.0));
    }
    let (_, last) = site.append(records).await;
    assert_eq!(last, 60);

    let platform = Platform::start(0, ACK_EVERY_OTHER, None).await;
    let running = start(&site, settings("province", platform.addr, all_periods()));
    assert!(
        eventually(Duration::from_secs(30), async || site.cursor(SINK).await
            == last)
        .await,
        "cursor ends at the last seq: {}",
        site.cursor(SINK).await
    );
    let minutes = platform.uploads(2051);
    let times: BTreeSet<String> = minutes
        .iter()
        .filter_map(|r| r.packet.cp.data_time().map(String::from))
        .collect();
    assert_eq!(times.len(), PERIODS as usize, "every minute arrived");
    // A QN appears again only while none of its earlier copies was acked.
    let mut acked: HashMap<String, bool> = HashMap::new();
    for r in &minutes {
        let qn = r.packet.qn.clone().unwrap_or_default();
        let before = acked.entry(qn.clone()).or_insert(false);
        assert!(!*before, "QN {qn} sent again after it was acked");
        *before = r.acked;
    }
    assert!(acked.values().all(|a| *a), "every upload ends acked");
    let s = running.stats.snapshot();
    assert!(s.resends >= 1 && s.ack_timeouts >= 1, "{s:?}");
    assert_eq!(s.acks, PERIODS as u64);
    running.stop().await;
    site.close().await;
}

#[tokio::test]
async fn a_cut_connection_is_resumed_and_every_period_arrives() {
    let site = Site::new();
    let mut records = Vec::new();
    for i in 0..20 {
        records.push(aggregate(
            RecordKind::Minute,
            T0 + i * MINUTE,
            1,
            Quantity::NOx,
            40.0 + i as f64,
        ));
    }
    let (_, last) = site.append(records).await;
    let platform = Platform::start(0, ACK_ALL, Some(5)).await;
    let running = start(&site, settings("province", platform.addr, all_periods()));
    assert!(
        eventually(Duration::from_secs(20), async || site.cursor(SINK).await
            == last)
        .await,
        "cursor {} of {last}",
        site.cursor(SINK).await
    );
    let received = platform.uploads(2051);
    assert!(
        received.iter().any(|r| r.conn == 2),
        "a second connection was made"
    );
    let values: BTreeSet<String> = received
        .iter()
        .filter(|r| r.acked)
        .map(|r| {
            data(r)
                .split("a21002-Avg=")
                .nth(1)
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(values.len(), 20, "every minute acked: {values:?}");
    assert!(running.stats.snapshot().reconnects >= 1);
    running.stop().await;
    site.close().await;
}

#[tokio::test]
async fn history_pull_after_an_outage_returns_every_hour_of_the_window() {
    let site = Site::new();
    // The platform missed these hours (11:00 .. 16:00 local); the uplink sends minutes only.
    let hours: Vec<Record> = (0..6)
        .map(|h| {
            aggregate(
                RecordKind::Hour,
                T0 - HOUR + h * HOUR,
                60,
                Quantity::SO2,
                10.0 + h as f64,
            )
        })
        .collect();
    site.append(hours).await;
    let platform = Platform::start(0, ACK_ALL, None).await;
    let running = start(
        &site,
        settings("province", platform.addr, vec![RecordKind::Minute]),
    );
    assert!(
        eventually(Duration::from_secs(5), async || site.cursor(SINK).await
            == 6)
        .await,
        "hours are passed over without upload"
    );
    assert!(platform.uploads(2061).is_empty());

    // Pull 12:00 .. 15:00 local inclusive: four hours.
    platform.send("QN=20260101170000000;ST=31;CN=2061;PW=123456;MN=88888880000001;Flag=5;CP=&&BeginTime=20260101120000;EndTime=20260101150000&&");
    assert!(
        eventually(Duration::from_secs(5), async || !platform
            .uploads(9012)
            .is_empty())
        .await,
        "the pull ends with 9012"
    );
    let answers: Vec<String> = platform
        .received()
        .iter()
        .filter(|r| matches!(r.packet.cn.code(), 9011 | 9012 | 2061))
        .map(|r| match r.packet.cn.code() {
            2061 => format!(
                "2061 {} {}",
                r.packet.cp.data_time().unwrap_or(""),
                r.packet.cp.values().next().map(|v| v.value).unwrap_or("")
            ),
            _ => data(r).to_string(),
        })
        .collect();
    assert_eq!(
        answers,
        vec![
            "QN=20260101170000000;ST=91;CN=9011;PW=123456;MN=88888880000001;Flag=4;CP=&&QnRtn=1&&"
                .to_string(),
            "2061 20260101120000 11.00".into(),
            "2061 20260101130000 12.00".into(),
            "2061 20260101140000 13.00".into(),
            "2061 20260101150000 14.00".into(),
            "QN=20260101170000000;ST=91;CN=9012;PW=123456;MN=88888880000001;Flag=4;CP=&&ExeRtn=1&&"
                .into(),
        ]
    );
    // A window with nothing stored: 9011 then ExeRtn=100.
    platform.send("QN=20260101170000001;ST=31;CN=2061;PW=123456;MN=88888880000001;Flag=5;CP=&&BeginTime=20250101000000;EndTime=20250101230000&&");
    assert!(
        eventually(Duration::from_secs(5), async || platform
            .uploads(9012)
            .len()
            == 2)
        .await
    );
    assert!(data(&platform.uploads(9012)[1]).ends_with("CP=&&ExeRtn=100&&"));
    assert_eq!(running.stats.snapshot().history_requests, 2);
    running.stop().await;
    site.close().await;
}

#[tokio::test]
async fn time_requests_and_refused_requests_are_answered() {
    let site = Site::new();
    let platform = Platform::start(0, ACK_ALL, None).await;
    let running = start(&site, settings("province", platform.addr, all_periods()));
    assert!(
        eventually(Duration::from_secs(5), async || running
            .stats
            .snapshot()
            .connected)
        .await
    );

    platform.send("QN=20260101121500000;ST=31;CN=1011;PW=123456;MN=88888880000001;Flag=5;CP=&&&&");
    platform.send("QN=20260101121500001;ST=31;CN=1012;PW=123456;MN=88888880000001;Flag=5;CP=&&SystemTime=20260101121030&&");
    platform.send("QN=20260101121500002;ST=31;CN=1011;PW=wrong;MN=88888880000001;Flag=5;CP=&&&&");
    platform.send("QN=20260101121500003;ST=31;CN=1011;PW=123456;MN=99999990000009;Flag=5;CP=&&&&");
    platform.send("QN=20260101121500004;ST=31;CN=4321;PW=123456;MN=88888880000001;Flag=5;CP=&&&&");
    assert!(
        eventually(Duration::from_secs(5), async || platform.received().len()
            >= 8)
        .await
    );
    let replies: Vec<String> = platform
        .received()
        .iter()
        .map(|r| data(r).to_string())
        .collect();
    // Fixed clock 12:10:00 local; the set-time request is recorded, never applied.
    assert_eq!(
        replies,
        vec![
            "QN=20260101121500000;ST=91;CN=9011;PW=123456;MN=88888880000001;Flag=4;CP=&&QnRtn=1&&",
            "QN=20260101121500000;ST=31;CN=1011;PW=123456;MN=88888880000001;Flag=4;CP=&&SystemTime=20260101121000&&",
            "QN=20260101121500000;ST=91;CN=9012;PW=123456;MN=88888880000001;Flag=4;CP=&&ExeRtn=1&&",
            "QN=20260101121500001;ST=91;CN=9011;PW=123456;MN=88888880000001;Flag=4;CP=&&QnRtn=1&&",
            "QN=20260101121500001;ST=91;CN=9012;PW=123456;MN=88888880000001;Flag=4;CP=&&ExeRtn=1&&",
            "QN=20260101121500002;ST=91;CN=9011;PW=123456;MN=88888880000001;Flag=4;CP=&&QnRtn=3&&",
            "QN=20260101121500003;ST=91;CN=9011;PW=123456;MN=99999990000009;Flag=4;CP=&&QnRtn=4&&",
            "QN=20260101121500004;ST=91;CN=9011;PW=123456;MN=88888880000001;Flag=4;CP=&&QnRtn=8&&",
        ]
    );
    assert_eq!(running.stats.snapshot().rejected_requests, 3);
    running.stop().await;
    site.close().await;
}

#[tokio::test]
async fn two_sinks_are_independent_and_the_one_down_catches_up() {
    let site = Site::new();
    let mut records = Vec::new();
    for i in 0..10 {
        records.push(aggregate(
            RecordKind::Minute,
            T0 + i * MINUTE,
            1,
            Quantity::SO2,
            i as f64,
        ));
    }
    let (_, last) = site.append(records).await;
    let up = Platform::start(0, ACK_ALL, None).await;
    let down_port = free_port();
    let down_addr: SocketAddr = ([127, 0, 0, 1], down_port).into();
    let a = start(&site, settings("a", up.addr, all_periods()));
    let b = start(&site, settings("b", down_addr, all_periods()));
    assert!(
        eventually(Duration::from_secs(10), async || site
            .cursor("hj212:a")
            .await
            == last)
        .await,
        "the sink with a platform delivers everything"
    );
    assert_eq!(site.cursor("hj212:b").await, 0, "the other waits");
    assert!(!b.stats.snapshot().connected);

    let late = Platform::start(down_port, ACK_ALL, None).await;
    assert!(
        eventually(Duration::from_secs(20), async || site
            .cursor("hj212:b")
            .await
            == last)
        .await,
        "the late platform gets the backlog"
    );
    assert_eq!(late.uploads(2051).len(), 10);
    a.stop().await;
    b.stop().await;
    site.close().await;
}

// ---------------------------------------------------------------- the real binary

fn write_site(dir: &Path, sim_port: u16, platform: SocketAddr) -> PathBuf {
    let text = head("test-plant", &format!("mn = \"{MN}\"\n"), "data/cemsd.db")
        + &plant_stack("")
        + &simulated_plc(sim_port, 0, "200ms", "100ms")
        + &hj212_uplink(
            dir,
            "province",
            &platform.to_string(),
            PASSWORD,
            "realtime_interval = \"1s\"\nack_timeout = \"2s\"\n",
        );
    write_config(dir, "site.toml", &text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cemsd_run_uploads_real_time_data_and_answers_the_platform() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let platform = Platform::start(0, ACK_ALL, None).await;
    let config = write_site(dir.path(), free_port(), platform.addr);
    let mut daemon = Daemon::start(&config, dir.path(), &[]);
    let realtime = eventually(Duration::from_secs(30), async || {
        platform.uploads(2011).iter().any(|r| r.acked)
    })
    .await;
    let asked = realtime && {
        platform
            .send("QN=20260101121500000;ST=31;CN=1011;PW=123456;MN=88888880000001;Flag=5;CP=&&&&");
        eventually(Duration::from_secs(10), async || {
            !platform.uploads(9012).is_empty()
        })
        .await
    };
    let code = daemon.terminate();
    assert!(
        realtime,
        "no acked 2011 within 30 s: {:?}",
        platform.received()
    );
    assert!(asked, "no answer to 1011: {:?}", platform.received());
    assert_eq!(code, Some(0));
    let upload = &platform.uploads(2011)[0].packet;
    assert_eq!(upload.mn.as_deref(), Some(MN));
    assert_eq!(upload.pw.as_deref(), Some(PASSWORD));
    assert_eq!(upload.flag.map(|f| f.bits()), Some(5));
    let so2 = upload
        .cp
        .factors()
        .find(|f| f.code == "a21026")
        .unwrap_or_else(|| panic!("SO2 in {upload:?}"));
    assert!(so2
        .get(&cemsd::protocol::hj212::FieldKind::Rtd)
        .is_some_and(|v| v.parse::<f64>().is_ok()));
    assert!(so2.flag().is_some());
    let time = &platform.uploads(1011)[0].packet;
    let system_time = time.cp.param("SystemTime").unwrap_or("");
    assert!(
        cemsd::protocol::hj212::parse_data_time(system_time).is_some(),
        "SystemTime {system_time:?}"
    );
}

/// The site of the SIGHUP test: `reference_o2`, the SO2 limit and the PLC's SO2 span as
/// given, the status page on `http_port`, uploads to `platform`.
fn audited_site(
    dir: &Path,
    sim_port: u16,
    platform: SocketAddr,
    values: (&str, &str, &str),
) -> String {
    let (reference_o2, so2_limit, so2_span) = values;
    head("test-plant", "", "data/cemsd.db")
        + &plant_stack(&format!(
            "mn = \"{MN}\"\nreference_o2 = {reference_o2}\nlimits = {{ so2 = {so2_limit} }}\n"
        ))
        + &simulated_plc(sim_port, 0, "200ms", "100ms")
        + &format!("spans = {{ so2 = {so2_span} }}\n")
        + &hj212_uplink(
            dir,
            "province",
            &platform.to_string(),
            PASSWORD,
            "ack_timeout = \"2s\"\n",
        )
}

/// The store's audit entries made by `how`, oldest first; none while it cannot be read.
fn trail(db: &Path, how: cemsd::store::AuditHow) -> Vec<cemsd::store::AuditEntry> {
    let mut entries: Vec<_> = support::store::try_open(db)
        .and_then(|s| s.audit_entries(0, i64::MAX).ok())
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.how == how)
        .collect();
    entries.reverse();
    entries
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_changes_of_span_reference_o2_and_limit_are_on_record_in_the_report_and_at_the_platform(
) {
    use cemsd::store::AuditHow;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let platform = Platform::start(0, ACK_ALL, None).await;
    let sim_port = free_port();
    let before = audited_site(
        dir.path(),
        sim_port,
        platform.addr,
        ("6.0", "35", "[0, 750]"),
    );
    let config = write_config(dir.path(), "site.toml", &before);
    let db = dir.path().join("data/cemsd.db");
    let mut daemon = Daemon::start(&config, dir.path(), &[]);
    let started = eventually(Duration::from_secs(30), async || {
        !trail(&db, AuditHow::Start).is_empty()
    })
    .await;
    assert!(started, "nothing recorded at start:\n{}", daemon.log_text());
    // the first start records what is in force: the values the reload will change among them
    let at_start = trail(&db, AuditHow::Start);
    assert!(
        at_start.iter().any(|e| e.item == "stack.unit1.reference_o2"
            && e.old.is_none()
            && e.new.as_deref() == Some("6.0")),
        "{at_start:?}"
    );

    let after = audited_site(
        dir.path(),
        sim_port,
        platform.addr,
        ("8.0", "50", "[0, 500]"),
    );
    write_config(dir.path(), "site.toml", &after);
    let sent = support::time::now_ms();
    daemon.signal("HUP");
    let reloaded = eventually(Duration::from_secs(30), async || {
        trail(&db, AuditHow::Reload).len() >= 3
    })
    .await;
    assert!(reloaded, "no reload entries:\n{}", daemon.log_text());
    let recorded = support::time::now_ms();
    let changes = trail(&db, AuditHow::Reload);
    let got: Vec<(&str, Option<&str>, Option<&str>)> = changes
        .iter()
        .map(|e| (e.item.as_str(), e.old.as_deref(), e.new.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("device.plc.spans.so2", Some("[0, 750]"), Some("[0, 500]")),
            ("stack.unit1.limits.so2", Some("35"), Some("50")),
            ("stack.unit1.reference_o2", Some("6.0"), Some("8.0")),
        ]
    );
    let checksum = cemsd::store::sha256_hex(after.as_bytes());
    for e in &changes {
        assert!(sent <= e.ts && e.ts <= recorded, "{e:?}");
        assert_eq!(e.source, "site");
        assert_eq!(e.file.as_deref(), Some(config.to_string_lossy().as_ref()));
        assert_eq!(e.checksum.as_deref(), Some(checksum.as_str()));
    }

    // at the platform: one 3020 run-log entry per change, in the form of HJ 212-2017's own
    // example (Appendix C: `CN=3020;…;CP=&&DataTime=20160801062035;PolId=w01018;
    // i11001-Info=//清洗管路//&&`), acked with 9014 like any upload
    let uploaded = eventually(Duration::from_secs(30), async || {
        platform
            .uploads(3020)
            .iter()
            .filter(|r| r.acked && r.text.contains("reload"))
            .count()
            >= 3
    })
    .await;
    let code = daemon.terminate();
    assert!(
        uploaded,
        "no three acked 3020: {:?}",
        platform.uploads(3020)
    );
    assert_eq!(code, Some(0));
    let reference = platform
        .uploads(3020)
        .into_iter()
        .find(|r| r.text.contains("stack.unit1.reference_o2: 6.0 -> 8.0"))
        .unwrap_or_else(|| panic!("no 3020 of reference_o2: {:?}", platform.uploads(3020)));
    let local =
        cemsd::model::time::UtcOffset::CHINA.local_time(Timestamp::from_millis(changes[2].ts));
    let data_time = cemsd::protocol::hj212::format_data_time(local);
    let expected = format!(
        ";ST=31;CN=3020;PW={PASSWORD};MN={MN};Flag=5;CP=&&DataTime={data_time};i11001-Info=//参数变更 stack.unit1.reference_o2: 6.0 -> 8.0 (reload， site， sha256 {})//&&",
        &checksum[..16]
    );
    assert!(reference.text.contains(&expected), "{}", reference.text);
    assert_eq!(reference.packet.flag.map(|f| f.bits()), Some(5));

    // the day report lists them, in local time
    let day = local.format("%Y-%m-%d").to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cemsd"))
        .args(["report", "--config"])
        .arg(&config)
        .args(["--day", &day])
        .output()
        .unwrap_or_else(|e| panic!("cemsd report: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    let time = local.format("%H:%M:%S").to_string();
    let file = config.to_string_lossy();
    let short = &checksum[..16];
    for (item, old, new) in [
        ("device.plc.spans.so2", "[0, 750]", "[0, 500]"),
        ("stack.unit1.limits.so2", "35", "50"),
        ("stack.unit1.reference_o2", "6.0", "8.0"),
    ] {
        let line = format!("  {time} {item} {old} -> {new} (重载, site, {file}, sha256 {short})\n");
        assert!(text.contains(&line), "{line} not in:\n{text}");
    }
}
