//! A real mosquitto per test, on a free loopback port with its own persistence directory,
//! and a small publisher that waits for the broker's acknowledgements.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, Outgoing, QoS};

/// Listener and global lines beyond the defaults, e.g. TLS files.
#[derive(Default, Clone)]
pub struct BrokerSetup {
    /// Lines under the main listener.
    pub listener: String,
    /// Lines at the top of the config (other listeners, limits).
    pub global: String,
}

/// Killed with SIGKILL on drop; `restart` stops it with SIGTERM so it saves its sessions.
pub struct Broker {
    pub port: u16,
    dir: tempfile::TempDir,
    setup: BrokerSetup,
    child: Option<Child>,
}

fn mosquitto_binary() -> PathBuf {
    for candidate in ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    PathBuf::from("mosquitto")
}

impl Broker {
    pub fn start() -> Broker {
        Broker::start_with(BrokerSetup::default())
    }

    pub fn start_with(setup: BrokerSetup) -> Broker {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let mut broker = Broker {
            port: crate::common::free_port(),
            dir,
            setup,
            child: None,
        };
        broker.spawn();
        broker
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn spawn(&mut self) {
        let dir = self.dir.path();
        // Runs as the invoking user (mosquitto drops root to "mosquitto" otherwise, which
        // could not read the test's files). No queue limit: a persistent session must keep
        // everything published while cemsd is away.
        let config = format!(
            "user {user}\npersistence true\npersistence_location {dir}/\nmax_queued_messages 0\nlog_dest file {dir}/mosquitto.log\nlog_type all\n{global}\nlistener {port} 127.0.0.1\nallow_anonymous true\n{listener}\n",
            user = std::env::var("USER").unwrap_or_else(|_| "root".into()),
            dir = dir.display(),
            global = self.setup.global,
            port = self.port,
            listener = self.setup.listener,
        );
        let path = dir.join("mosquitto.conf");
        std::fs::write(&path, config).unwrap_or_else(|e| panic!("write mosquitto.conf: {e}"));
        let child = Command::new(mosquitto_binary())
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start mosquitto (apt-get install mosquitto): {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen on {} within 10 s; see {}/mosquitto.log",
                self.port,
                dir.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM (mosquitto saves sessions and queued messages), then start again on the same
    /// port and persistence directory after `down`.
    pub fn restart(&mut self, down: Duration) {
        if let Some(mut child) = self.child.take() {
            signal(&child, "TERM");
            let _ = child.wait();
        }
        std::thread::sleep(down);
        self.spawn();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap_or_else(|e| panic!("kill: {e}"));
    assert!(status.success(), "kill -{name} failed");
}

/// Publishes every message with QoS 1 and returns once the broker acknowledged them all.
pub fn publish(port: u16, messages: &[(String, Vec<u8>)]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    runtime.block_on(publish_async(port, messages));
}

async fn publish_async(port: u16, messages: &[(String, Vec<u8>)]) {
    let client_id = format!("test-publisher-{}-{}", std::process::id(), port);
    let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(1 << 20, 1 << 20)
        .set_inflight(100);
    let (client, mut eventloop) = AsyncClient::new(options, 256);
    let sender = {
        let messages = messages.to_vec();
        tokio::spawn(async move {
            for (topic, payload) in messages {
                client
                    .publish(topic, QoS::AtLeastOnce, false, payload)
                    .await
                    .unwrap_or_else(|e| panic!("queue publish: {e}"));
            }
            client
        })
    };
    let mut acked = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while acked < messages.len() {
        let Ok(event) = tokio::time::timeout_at(deadline, eventloop.poll()).await else {
            panic!("broker acknowledged {acked} of {} in 60 s", messages.len());
        };
        match event {
            Ok(Event::Incoming(Incoming::PubAck(_))) => acked += 1,
            Ok(_) => {}
            Err(e) => panic!("publisher connection: {e}"),
        }
    }
    let client = sender
        .await
        .unwrap_or_else(|e| panic!("publisher task: {e}"));
    let _ = client.disconnect().await;
    while let Ok(event) = eventloop.poll().await {
        if matches!(event, Event::Outgoing(Outgoing::Disconnect)) {
            break;
        }
    }
}

/// `n` JSON messages on `topic`, message i carrying value i and time `base_ms + i`, so both
/// identify it in the store.
pub fn numbered_json(
    topic: &str,
    device: &str,
    range: std::ops::Range<u64>,
    base_ms: i64,
) -> Vec<(String, Vec<u8>)> {
    range
        .map(|i| {
            let payload = format!(
                r#"{{"device":"{device}","channel":"SO2","value":{i},"time":{}}}"#,
                base_ms + i as i64
            );
            (topic.to_string(), payload.into_bytes())
        })
        .collect()
}

/// The site config of a cemsd that stores JSON readings of device `d1` published under
/// `filter` on the broker at `port`.
pub fn json_site(dir: &Path, port: u16, client_id: &str, filter: &str) -> PathBuf {
    let text = format!(
        r#"[site]
id = "mqtt-test"

[store]
path = "data/cemsd.db"

[[stack]]
id = "unit1"
source_type = "coal_boiler"

[[mqtt]]
id = "plant"
url = "mqtt://127.0.0.1:{port}"
client_id = "{client_id}"
keep_alive = "5s"
reconnect_min = "100ms"
reconnect_max = "1s"

[[mqtt.subscribe]]
filter = "{filter}"
qos = 1
format = "json"
time_format = "unix_ms"

[[mqtt.device]]
id = "d1"
stack = "unit1"
interval = "1s"
channels = {{ SO2 = {{ unit = "mg/m3" }} }}
"#
    );
    let path = dir.join("site.toml");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write config: {e}"));
    path
}

/// Starts `cemsd run` with its log in `dir/cemsd-N.log`.
pub fn start_logged(config: &Path, log: &Path) -> Child {
    let file = std::fs::File::create(log).unwrap_or_else(|e| panic!("log file: {e}"));
    Command::new(env!("CARGO_BIN_EXE_cemsd"))
        .args(["run", "--config"])
        .arg(config)
        .env("CEMSD_LOG", "info")
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("start cemsd: {e}"))
}

/// Raw values of the readings of `device`, which the tests use as message ids.
pub fn stored_ids(db: &Path, device: &str) -> Vec<u64> {
    let Ok(store) = cemsd::store::Store::open(db, cemsd::store::StoreOptions::default()) else {
        return Vec::new();
    };
    crate::common::readings(&store, device)
        .iter()
        .filter_map(|s| s.record.raw)
        .map(|v| v as u64)
        .collect()
}

/// Ids that are missing from or repeated in `ids`, against 0..n.
pub fn missing_and_repeated(ids: &[u64], n: u64) -> (Vec<u64>, Vec<u64>) {
    let mut count = vec![0u32; n as usize];
    let mut repeated = Vec::new();
    for &id in ids {
        match count.get_mut(id as usize) {
            Some(c) => {
                *c += 1;
                if *c == 2 {
                    repeated.push(id);
                }
            }
            None => repeated.push(id),
        }
    }
    let missing = (0..n).filter(|&i| count[i as usize] == 0).collect();
    (missing, repeated)
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
