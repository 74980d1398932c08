//! HJ 212 listener throughput with store commits: 1000 loggers on loopback connections, each
//! sending minute uploads (6 factors, Flag=5) one after the other and waiting for each 9014
//! ack, as real loggers do. Every ack follows the commit of its 6 records. History pulls are
//! off, so the figures are the upload path alone.
//!
//! On 2 cores, the loggers sharing them with the listener: about 160,000 uploads/s (6.2 µs
//! each) framed, decoded and converted on one core; 20,000–32,000 packets/s (120,000–190,000
//! records/s) over loopback with the store on disk, as quiet as the machine was, and about the
//! same with it in memory. With
//! the store led by series (before schema migration 3) the disk figure was about 5,000: 6000
//! series written in turn put each record on a page of its own.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use cemsd::collect::batch::IngestSwitch;
use cemsd::collect::hj212::records::{records_of, ChannelNames};
use cemsd::collect::hj212::{Device, Devices, Hj212Listener};
use cemsd::config::hj212_listener::ListenerConfig;
use cemsd::config::secret::Secret;
use cemsd::model::time::UtcOffset;
use cemsd::model::{Flag, Timestamp};
use cemsd::pipeline::live::Live;
use cemsd::pipeline::Pipeline;
use cemsd::process::Processor;
use cemsd::protocol::hj212::{
    encode, CommandCode, CommandParams, Factor, FieldKind, Framer, Packet, PacketFlag, SystemCode,
};
use cemsd::store::{Store, StoreOptions, StoreWriter, WriterOptions};

const CONNECTIONS: usize = 1000;
/// Uploads each connection sends per measured round.
const UPLOADS_PER_ROUND: usize = 10;
const FACTORS: [&str; 6] = ["a21026", "a21002", "a34013", "a19001", "a01012", "a01011"];
const PASSWORD: &str = "123456";

fn mn_of(logger: usize) -> String {
    format!("BENCH{logger:019}") // 24 characters
}

/// Minute `minute` counted from 2025-12-01 00:00 local time, as a DataTime: a month before
/// the bench's clock, so thousands of rounds stay behind it and are stored, not refused as
/// ahead of it.
fn data_time(minute: u64) -> String {
    let start = chrono::NaiveDate::from_ymd_opt(2025, 12, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or_else(|| panic!("a valid date"));
    let minutes = i64::try_from(minute).unwrap_or_else(|e| panic!("minute: {e}"));
    (start + chrono::Duration::minutes(minutes))
        .format("%Y%m%d%H%M%S")
        .to_string()
}

fn upload(mn: &str, qn: u64, minute: u64) -> Vec<u8> {
    let data_time = data_time(minute);
    let mut cp = CommandParams::new().with_data_time(data_time);
    for (i, code) in FACTORS.iter().enumerate() {
        cp = cp.with_factor(
            Factor::new(*code)
                .with(FieldKind::Avg, format!("{}.25", 10 + i))
                .with(FieldKind::Min, format!("{}", 5 + i))
                .with(FieldKind::Max, format!("{}.5", 20 + i))
                .with_flag(Flag::N),
        );
    }
    let packet = Packet {
        qn: Some(format!("20260101100000{:03}", qn % 1000)),
        pw: Some(PASSWORD.into()),
        flag: Some(PacketFlag::hj212_2017(true)),
        cp,
        ..Packet::new(SystemCode::AirPollutionSource, CommandCode::MinuteData, mn)
    };
    encode(&packet).unwrap_or_else(|e| panic!("encode: {e}"))
}

/// One logger: sends its uploads one at a time, each after the previous ack. The ack is
/// only checked for its CN, not decoded, so the figure is the listener's work.
async fn logger(mut stream: TcpStream, uploads: Arc<Vec<Vec<u8>>>) -> TcpStream {
    let mut buf = [0u8; 256];
    for packet in uploads.iter() {
        if let Err(e) = stream.write_all(packet).await {
            panic!("send: {e}");
        }
        let mut held = 0;
        loop {
            match stream.read(&mut buf[held..]).await {
                Ok(0) => panic!("listener closed the connection"),
                Ok(n) => held += n,
                Err(e) => panic!("read: {e}"),
            }
            if buf[..held].ends_with(b"\r\n") {
                break;
            }
            assert!(held < buf.len(), "reply too long: {:?}", &buf[..held]);
        }
        let reply = &buf[..held];
        assert!(
            reply.windows(8).any(|w| w == b"CN=9014;"),
            "expected a 9014 ack, got {:?}",
            String::from_utf8_lossy(reply)
        );
    }
    stream
}

/// Where the loopback run keeps its store.
#[derive(Clone, Copy)]
enum StoreAt {
    /// A WAL file, as the daemon runs.
    File,
    /// SQLite's in-memory database: no WAL, no checkpoint, no file I/O. Set against `File`,
    /// it tells the listener's and the SQLite B-tree's share apart from the disk's.
    Memory,
}

fn loopback(c: &mut Criterion, at: StoreAt) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let (path, name) = match at {
        StoreAt::File => (
            dir.path().join("cemsd.db"),
            "1000_connections_minute_uploads_acked",
        ),
        StoreAt::Memory => (
            PathBuf::from(":memory:"),
            "1000_connections_minute_uploads_acked_memory_store",
        ),
    };
    let store =
        Store::open(&path, StoreOptions::default()).unwrap_or_else(|e| panic!("store: {e}"));
    let (store, writer_thread) = StoreWriter::spawn(store, WriterOptions::default())
        .unwrap_or_else(|e| panic!("writer: {e}"));
    let config: ListenerConfig =
        toml::from_str("listen = \"127.0.0.1:0\"\nmax_connections = 2000\nmax_connections_per_ip = 2000\nhistory_pull = false\n")
            .unwrap_or_else(|e| panic!("config: {e}"));
    let devices = Devices::new((0..CONNECTIONS).map(|i| Device {
        mn: mn_of(i).into(),
        stack: format!("plant{i}.unit1").into(),
        password: Secret::new(PASSWORD),
        zone: UtcOffset::CHINA,
    }));
    let clock = Arc::new(|| Timestamp(1_767_240_000_000));
    // uploads reach the store through the pipeline, as in the daemon
    let site = cemsd::config::parse(
        std::path::Path::new("bench.toml"),
        "[site]\nid = \"bureau\"\n",
    )
    .unwrap_or_else(|e| panic!("site: {e}"));
    let (ingest, port) = IngestSwitch::new();
    let (batches, batches_rx) = tokio::sync::mpsc::channel(1024);
    let processor = Processor::new(&site.config, &site.profiles);
    let pipeline = Pipeline::new(processor, store.clone(), Live::new())
        .spawn(batches_rx)
        .unwrap_or_else(|e| panic!("pipeline: {e}"));
    ingest.connect(Some(batches));
    let listener = runtime
        .block_on(Hj212Listener::start(
            &config,
            site.config.ingest.future_tolerance.0,
            devices,
            port,
            store.clone(),
            clock,
        ))
        .unwrap_or_else(|e| panic!("listener: {e}"));
    let address = listener
        .local_addr()
        .unwrap_or_else(|| panic!("listener has no address"));
    let mut streams: Vec<TcpStream> = runtime.block_on(async {
        let mut streams = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            let stream = TcpStream::connect(address)
                .await
                .unwrap_or_else(|e| panic!("connect: {e}"));
            let _ = stream.set_nodelay(true);
            streams.push(stream);
        }
        streams
    });
    // Each round goes on where the last ended, minute after minute, as loggers do: the
    // store then sees what it sees in service, rows arriving in time order.
    let mut rounds_done = 0u64;
    let mut next_round = || -> Vec<Arc<Vec<Vec<u8>>>> {
        let first = rounds_done * UPLOADS_PER_ROUND as u64;
        rounds_done += 1;
        (0..CONNECTIONS)
            .map(|i| {
                let mn = mn_of(i);
                Arc::new(
                    (first..first + UPLOADS_PER_ROUND as u64)
                        .map(|minute| upload(&mn, minute, minute))
                        .collect(),
                )
            })
            .collect()
    };

    let mut group = c.benchmark_group("hj212_listener");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(
        (CONNECTIONS * UPLOADS_PER_ROUND) as u64,
    ));
    group.bench_function(name, |b| {
        b.iter_custom(|rounds| {
            let mut total = Duration::ZERO;
            for _ in 0..rounds {
                let uploads = next_round();
                let taken = std::mem::take(&mut streams);
                let started = Instant::now();
                streams = runtime.block_on(async {
                    let tasks: Vec<_> = taken
                        .into_iter()
                        .zip(&uploads)
                        .map(|(stream, uploads)| tokio::spawn(logger(stream, uploads.clone())))
                        .collect();
                    let mut back = Vec::with_capacity(CONNECTIONS);
                    for task in tasks {
                        back.push(task.await.unwrap_or_else(|e| panic!("logger: {e}")));
                    }
                    back
                });
                total += started.elapsed();
            }
            total
        })
    });
    group.finish();

    let stats = store.stats();
    eprintln!(
        "{name}: {} records in {} transactions ({:.0} records per commit)",
        stats.records_committed,
        stats.transactions,
        stats.records_committed as f64 / stats.transactions.max(1) as f64
    );
    drop(streams);
    runtime.block_on(listener.stop());
    ingest.connect(None);
    runtime.block_on(async {
        let _ = pipeline.await;
        let _ = store.shutdown().await;
    });
    let _ = writer_thread.join();
}

/// The listener's work on one upload without the network or the store: framing, decoding,
/// checking the device and turning the factors into records.
fn parse(c: &mut Criterion) {
    let mn = mn_of(0);
    let device: Arc<str> = mn.as_str().into();
    let stack: Arc<str> = "plant0.unit1".into();
    let wire = [upload(&mn, 1, 1), b"\r\n".to_vec()].concat();
    let devices = Devices::new([Device {
        mn: device.clone(),
        stack: stack.clone(),
        password: Secret::new(PASSWORD),
        zone: UtcOffset::CHINA,
    }]);
    let mut framer = Framer::new();
    let mut channels = ChannelNames::new();
    let mut group = c.benchmark_group("hj212_listener");
    group.throughput(Throughput::Elements(1));
    group.bench_function("frame_decode_records_one_upload", |b| {
        b.iter(|| {
            framer.push(black_box(&wire));
            let frame = match framer.next_packet() {
                Some(Ok(frame)) => frame,
                other => panic!("expected a packet, got {other:?}"),
            };
            let packet = frame.packet;
            let known = packet.mn.as_deref().and_then(|mn| devices.get(mn));
            assert!(known.is_some(), "device {mn} is configured");
            let records = records_of(&packet, &stack, &device, UtcOffset::CHINA, &mut channels)
                .unwrap_or_else(|e| panic!("records: {e}"));
            assert_eq!(records.len(), FACTORS.len());
            records
        })
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    parse(c);
    loopback(c, StoreAt::File);
    loopback(c, StoreAt::Memory);
}

criterion_group!(benches, bench);
criterion_main!(benches);
