//! vmalert and Alertmanager from Debian's packages (victoria-metrics ships vmalert,
//! prometheus-alertmanager the Alertmanager), each on its own loopback port and killed (by
//! PID) when dropped, and a webhook receiver in the test that collects what Alertmanager
//! sends.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::ports::{free_port, listen, listening_within};
use super::process::Owned;

pub const VMALERT: &str = "/usr/bin/vmalert";
pub const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

fn require(binary: &str, package: &str) {
    assert!(
        Path::new(binary).exists(),
        "{binary} is missing: apt-get install {package} (scripts/test does)"
    );
}

/// An Alertmanager that sends every group, firing and resolved, to `webhook` at once.
pub struct Alertmanager {
    _process: Owned,
    pub port: u16,
}

impl Alertmanager {
    pub fn start(dir: &Path, webhook: &str) -> Alertmanager {
        require(ALERTMANAGER, "prometheus-alertmanager");
        let config = dir.join("alertmanager.yml");
        // One notification per alert (grouped by alertname and all labels the rules set),
        // sent after 1 s and again 1 s after any change.
        std::fs::write(
            &config,
            format!(
                "route:\n  receiver: test\n  group_by: ['...']\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
                 receivers:\n  - name: test\n    webhook_configs:\n      - url: '{webhook}'\n        send_resolved: true\n"
            ),
        )
        .unwrap_or_else(|e| panic!("write alertmanager.yml: {e}"));
        let port = free_port();
        let mut command = Command::new(ALERTMANAGER);
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.join("alertmanager").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // no cluster: nothing listens beyond the web port
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let process = Owned::spawn(&mut command, ALERTMANAGER);
        assert!(
            listening_within(port, Duration::from_secs(30)),
            "Alertmanager did not come up on port {port}"
        );
        Alertmanager {
            _process: process,
            port,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// vmalert evaluating `rules` every `interval` against `datasource`, notifying `notifier`.
pub struct Vmalert {
    _process: Owned,
    pub port: u16,
}

impl Vmalert {
    pub fn start(rules: &[PathBuf], datasource: &str, notifier: &str, interval: &str) -> Vmalert {
        require(VMALERT, "victoria-metrics");
        let port = free_port();
        let mut command = Command::new(VMALERT);
        for rule in rules {
            command.arg(format!("-rule={}", rule.display()));
        }
        command
            .arg(format!("-datasource.url={datasource}"))
            .arg(format!("-notifier.url={notifier}"))
            .arg(format!("-evaluationInterval={interval}"))
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg("-loggerLevel=ERROR")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let process = Owned::spawn(&mut command, VMALERT);
        assert!(
            listening_within(port, Duration::from_secs(30)),
            "vmalert did not come up on port {port}"
        );
        Vmalert {
            _process: process,
            port,
        }
    }
}

/// Checks rule files as vmalert loads them (`-dryRun`): the exit status and what it said.
pub fn check_rules(rules: &[PathBuf]) -> (bool, String) {
    require(VMALERT, "victoria-metrics");
    let mut command = Command::new(VMALERT);
    for rule in rules {
        command.arg(format!("-rule={}", rule.display()));
    }
    let output = command
        .arg("-dryRun")
        .output()
        .unwrap_or_else(|e| panic!("start {VMALERT}: {e}"));
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

/// One alert as a webhook notification carries it.
#[derive(Debug, Clone)]
pub struct Notified {
    /// "firing" or "resolved".
    pub status: String,
    pub labels: serde_json::Map<String, serde_json::Value>,
    pub annotations: serde_json::Map<String, serde_json::Value>,
}

impl Notified {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).and_then(|v| v.as_str())
    }
}

/// An HTTP server on loopback that answers 200 to every POST and keeps the alerts of each
/// Alertmanager webhook body, in arrival order.
pub struct Webhook {
    pub port: u16,
    received: Arc<Mutex<Vec<Notified>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Webhook {
    pub async fn start() -> Webhook {
        let port = free_port();
        let listener = listen(port).await;
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let sink = sink.clone();
                tokio::spawn(async move {
                    if let Some(body) = read_request(&mut stream).await {
                        sink.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .extend(alerts_of(&body));
                    }
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                });
            }
        });
        Webhook {
            port,
            received,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    pub fn received(&self) -> Vec<Notified> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The body of one HTTP/1.1 request (headers up to the blank line, then Content-Length
/// bytes).
async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<String> {
    let mut raw = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&raw).to_string();
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        if body.len() >= length {
            return Some(body.to_string());
        }
    }
}

fn alerts_of(body: &str) -> Vec<Notified> {
    let json: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("webhook body {body:?}: {e}"));
    let object = |v: &serde_json::Value| v.as_object().cloned().unwrap_or_default();
    json["alerts"]
        .as_array()
        .map(|alerts| {
            alerts
                .iter()
                .map(|a| Notified {
                    status: a["status"].as_str().unwrap_or_default().to_string(),
                    labels: object(&a["labels"]),
                    annotations: object(&a["annotations"]),
                })
                .collect()
        })
        .unwrap_or_default()
}
