//! A real mosquitto per test, on a free loopback port with its own persistence directory,
//! and a small publisher that waits for the broker's acknowledgements.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, Outgoing, QoS};

use super::ports::free_port;
use super::process::Owned;

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
    process: Option<Owned>,
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
            port: free_port(),
            dir,
            setup,
            process: None,
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
        self.process = Some(Owned::spawn(
            Command::new(mosquitto_binary())
                .arg("-c")
                .arg(&path)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            "mosquitto (apt-get install mosquitto)",
        ));
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
        if let Some(mut process) = self.process.take() {
            process.stop("TERM");
        }
        std::thread::sleep(down);
        self.spawn();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }
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
