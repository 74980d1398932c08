//! Sustained MQTT ingest with store commits: 1000 messages of 100 readings (10 channels × 10
//! instants, JSON) wait in cemsd's persistent session at a loopback mosquitto; the bench
//! connects the source and times until every message is committed and acknowledged. For
//! comparison, the broker alone: the same messages from mosquitto_pub to mosquitto_sub, QoS 1.
//! Both with mosquitto's default of 20 messages in flight per client and with 1000; and
//! 10,000 messages of one reading each, for the message rate alone.

#[path = "../tests/support/time.rs"]
mod common;
#[path = "../tests/support/mod.rs"]
mod mqtt_support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tokio::sync::{mpsc, watch};

use cemsd::collect::batch::Batch;
use cemsd::collect::mqtt::MqttSource;
use cemsd::config::{self, Loaded};
use cemsd::pipeline::live::Live;
use cemsd::pipeline::Pipeline;
use cemsd::process::Processor;
use cemsd::store::{Store, StoreHandle, StoreOptions, StoreWriter, WriterOptions};
use mqtt_support::{publish, Broker, BrokerSetup};

const MESSAGES: usize = 1000;
/// Messages of one reading each, in the one-reading-per-message case.
const SINGLE_MESSAGES: usize = 10_000;
const CHANNELS: [&str; 10] = [
    "SO2", "O2", "CO", "CO2", "HCl", "NH3", "dust", "temp", "pressure", "humidity",
];
const INSTANTS_PER_MESSAGE: i64 = 10;
const READINGS_PER_MESSAGE: usize = CHANNELS.len() * INSTANTS_PER_MESSAGE as usize;

fn site(port: u16) -> String {
    let channels: Vec<String> = CHANNELS
        .iter()
        .map(|c| {
            let unit = match *c {
                "O2" | "CO2" | "humidity" => "%vol",
                "temp" => "degC",
                "pressure" => "Pa",
                _ => "mg/m3",
            };
            format!("{c} = {{ unit = \"{unit}\" }}")
        })
        .collect();
    format!(
        r#"[site]
id = "bench"

[[stack]]
id = "unit1"
source_type = "coal_boiler"

[[mqtt]]
id = "bench"
url = "mqtt://127.0.0.1:{port}"
client_id = "cemsd-bench"

[[mqtt.subscribe]]
filter = "bench/#"
qos = 1
format = "json"
time_format = "unix_ms"
json = {{ readings = "data", channel = "c", value = "v", time = "t" }}

[[mqtt.device]]
id = "dtu"
stack = "unit1"
interval = "1s"
channels = {{ {} }}
"#,
        channels.join(", ")
    )
}

/// One message: every channel at `INSTANTS_PER_MESSAGE` consecutive seconds from `t0`, or,
/// when not `batched`, one SO2 reading at `t0`.
fn message(t0: i64, batched: bool) -> String {
    let (instants, channels) = if batched {
        (INSTANTS_PER_MESSAGE, &CHANNELS[..])
    } else {
        (1, &CHANNELS[..1])
    };
    let mut items = Vec::with_capacity(READINGS_PER_MESSAGE);
    for k in 0..instants {
        for (i, c) in channels.iter().enumerate() {
            items.push(format!(
                r#"{{"c":"{c}","v":{}.5,"t":{}}}"#,
                10 + i,
                t0 + k * 1000
            ));
        }
    }
    format!(r#"{{"device":"dtu","data":[{}]}}"#, items.join(","))
}

struct Rig {
    broker: Broker,
    loaded: Loaded,
    store: StoreHandle,
    runtime: tokio::runtime::Runtime,
    next_t: i64,
    _dir: tempfile::TempDir,
}

impl Rig {
    /// `inflight`: unacknowledged messages the broker sends ahead (mosquitto's default is
    /// 20); more lets one commit batch more messages.
    fn new(inflight: u32) -> Rig {
        let broker = Broker::start_with(BrokerSetup {
            global: format!("max_inflight_messages {inflight}\n"),
            ..BrokerSetup::default()
        });
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path = dir.path().join("bench.toml");
        let loaded = config::parse(&path, &site(broker.port)).unwrap_or_else(|e| panic!("{e}"));
        let store = Store::open(&dir.path().join("bench.db"), StoreOptions::default())
            .unwrap_or_else(|e| panic!("store: {e}"));
        let (handle, _thread) = StoreWriter::spawn(store, WriterOptions::default())
            .unwrap_or_else(|e| panic!("writer: {e}"));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"));
        let mut rig = Rig {
            broker,
            loaded,
            store: handle,
            runtime,
            next_t: mqtt_support::now_ms() - 86_400_000,
            _dir: dir,
        };
        // creates the persistent session that later messages wait in
        rig.ingest(0, true);
        rig
    }

    /// Publishes `messages` while cemsd is away, then times draining them into the store.
    fn ingest(&mut self, messages: usize, batched: bool) -> Duration {
        let batch: Vec<(String, Vec<u8>)> = (0..messages)
            .map(|_| {
                let t0 = self.next_t;
                self.next_t += INSTANTS_PER_MESSAGE * 1000;
                ("bench/dtu".to_string(), message(t0, batched).into_bytes())
            })
            .collect();
        publish(self.broker.port, &batch);
        let loaded = &self.loaded;
        let source = MqttSource::new(
            &loaded.config.mqtt[0],
            loaded.config.site.utc_offset,
            &loaded.path,
        )
        .unwrap_or_else(|e| panic!("source: {e}"));
        let stats = source.stats();
        let processor = Processor::new(&loaded.config, &loaded.profiles);
        let store = self.store.clone();
        self.runtime.block_on(async move {
            let (tx, rx) = mpsc::channel::<Batch>(1024);
            let (stop_tx, stop_rx) = watch::channel(false);
            let started = Instant::now();
            let pipeline = Pipeline::new(processor, store.clone(), Live::new())
                .warm_up()
                .await
                .unwrap_or_else(|e| panic!("warm-up: {e}"));
            let pipeline = pipeline
                .spawn(rx)
                .unwrap_or_else(|e| panic!("pipeline: {e}"));
            let source_task = tokio::spawn(source.run(tx, stop_rx));
            let wanted = messages.max(1) as u64;
            let deadline = started + Duration::from_secs(120);
            while stats.snapshot().acknowledged < wanted && Instant::now() < deadline {
                if messages == 0 && stats.snapshot().connected {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let elapsed = started.elapsed();
            let _ = stop_tx.send(true);
            let _ = source_task.await;
            let _ = pipeline.await;
            let s = stats.snapshot();
            assert!(
                messages == 0 || s.acknowledged >= wanted,
                "only {} of {wanted} committed: {s:?}",
                s.acknowledged
            );
            elapsed
        })
    }
}

/// mosquitto_pub → mosquitto → mosquitto_sub, QoS 1, the same message count and payload.
fn broker_alone(broker: &Broker, messages: usize, payload_file: &Path) -> Duration {
    let topic = "alone/dtu";
    let mut sub = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &broker.port.to_string(),
            "-q",
            "1",
            "-t",
            topic,
            "-C",
            &messages.to_string(),
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("mosquitto_sub (apt-get install mosquitto-clients): {e}"));
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let status = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &broker.port.to_string(),
            "-q",
            "1",
            "-t",
            topic,
            "-l",
        ])
        .stdin(std::fs::File::open(payload_file).unwrap_or_else(|e| panic!("{e}")))
        .status()
        .unwrap_or_else(|e| panic!("mosquitto_pub: {e}"));
    assert!(status.success(), "mosquitto_pub failed");
    let _ = sub.wait();
    started.elapsed()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let payload_file = dir.path().join("payloads.txt");
    let lines: Vec<String> = (0..MESSAGES)
        .map(|i| message(i as i64 * 10_000, true))
        .collect();
    std::fs::write(&payload_file, lines.join("\n") + "\n").unwrap_or_else(|e| panic!("{e}"));
    let mut group = c.benchmark_group("mqtt_ingest");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(30));
    let batch = Throughput::Elements((MESSAGES * READINGS_PER_MESSAGE) as u64);
    for inflight in [20, 1000] {
        let mut rig = Rig::new(inflight);
        group.throughput(batch.clone());
        group.bench_function(format!("cemsd_committed/inflight_{inflight}"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| rig.ingest(MESSAGES, true)).sum())
        });
        group.bench_function(format!("mosquitto_pub_to_sub/inflight_{inflight}"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| broker_alone(&rig.broker, MESSAGES, &payload_file))
                    .sum()
            })
        });
        // one reading per message: the message rate alone
        group.throughput(Throughput::Elements(SINGLE_MESSAGES as u64));
        group.bench_function(
            format!("cemsd_committed_one_reading_per_message/inflight_{inflight}"),
            |b| b.iter_custom(|iters| (0..iters).map(|_| rig.ingest(SINGLE_MESSAGES, false)).sum()),
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
