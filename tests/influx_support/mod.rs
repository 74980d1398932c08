//! Shared by the tests/influx_*.rs targets: a real VictoriaMetrics on loopback (started per
//! test, stopped by PID even when the test fails), an in-process forwarder, and store helpers.
#![allow(dead_code)] // each test binary uses its own subset

pub mod fault_server;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cemsd::config::influx::{InfluxSinkConfig, Precision};
use cemsd::config::secret::Secret as Token;
use cemsd::config::Interval;
use cemsd::model::Timestamp;
use cemsd::sink::influx::{Forwarder, ForwarderStats};
use cemsd::store::{Record, Store, StoreHandle, StoreOptions, StoreWriter, WriterOptions};
use tokio::sync::watch;

pub const VICTORIA_METRICS: &str = "/usr/bin/victoria-metrics";

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// One VictoriaMetrics process with its own storage directory and port. Dropping it kills
/// the process, so a failing test leaves nothing running.
pub struct VictoriaMetrics {
    child: Option<Child>,
    pub port: u16,
    storage: PathBuf,
    dedup: bool,
    http: reqwest::Client,
}

/// One exported series: metric name, labels and its points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub values: Vec<f64>,
    pub timestamps: Vec<i64>,
}

impl VictoriaMetrics {
    /// Starts it on a free port with storage under `dir`, with `-dedup.minScrapeInterval=1ms`
    /// when `dedup` (one point per series and timestamp in exports), and waits until ready.
    pub async fn start(dir: &Path, dedup: bool) -> VictoriaMetrics {
        let mut vm = VictoriaMetrics {
            child: None,
            port: free_port(),
            storage: dir.join("victoria-metrics"),
            dedup,
            http: {
                cemsd::sink::influx::install_crypto_provider();
                reqwest::Client::new()
            },
        };
        vm.launch().await;
        vm
    }

    fn spawn(&self) -> Child {
        assert!(
            Path::new(VICTORIA_METRICS).exists(),
            "{VICTORIA_METRICS} is missing: apt-get install victoria-metrics (scripts/test does)"
        );
        let mut command = Command::new(VICTORIA_METRICS);
        command
            .arg(format!("-storageDataPath={}", self.storage.display()))
            .arg(format!("-httpListenAddr=127.0.0.1:{}", self.port))
            // The default retention (1 month) silently drops older points.
            .arg("-retentionPeriod=100y")
            .arg("-search.latencyOffset=0s")
            .arg("-search.disableCache")
            .arg("-loggerLevel=ERROR")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.dedup {
            command.arg("-dedup.minScrapeInterval=1ms");
        }
        command
            .spawn()
            .unwrap_or_else(|e| panic!("start {VICTORIA_METRICS}: {e}"))
    }

    async fn launch(&mut self) {
        self.child = Some(self.spawn());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let health = self.http.get(format!("{}/health", self.url())).send().await;
            if health.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "VictoriaMetrics did not come up on port {}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Graceful stop (SIGTERM): it flushes what it acknowledged, as a real server would on
    /// a restart. A SIGKILL would lose acknowledged points in its memory buffers, which is
    /// the store's loss, not the sender's.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "kill -TERM VictoriaMetrics failed"
        );
        let _ = child.wait();
    }

    /// Starts it again on the same port and storage.
    pub async fn restart(&mut self) {
        self.stop();
        self.launch().await;
    }

    /// Makes everything received searchable, then exports the series matching `selector`.
    pub async fn export(&self, selector: &str) -> Vec<Series> {
        let flushed = self
            .http
            .get(format!("{}/internal/force_flush", self.url()))
            .send()
            .await;
        assert!(
            flushed.is_ok_and(|r| r.status().is_success()),
            "force_flush failed"
        );
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/export", self.url()),
            &[("match[]", selector)],
        )
        .unwrap_or_else(|e| panic!("export URL: {e}"));
        let response = self
            .http
            .get(url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("export: {e}"));
        assert!(
            response.status().is_success(),
            "export: HTTP {}",
            response.status()
        );
        let text = response
            .text()
            .await
            .unwrap_or_else(|e| panic!("export body: {e}"));
        let mut series: Vec<Series> = text.lines().map(parse_series).collect();
        series.sort_by(|a, b| (&a.name, &a.labels).cmp(&(&b.name, &b.labels)));
        series
    }
}

impl Drop for VictoriaMetrics {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn parse_series(line: &str) -> Series {
    let json: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("export line {line:?}: {e}"));
    let mut labels: BTreeMap<String, String> = json["metric"]
        .as_object()
        .unwrap_or_else(|| panic!("no metric in {line}"))
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    let name = labels.remove("__name__").unwrap_or_default();
    let values = json["values"]
        .as_array()
        .unwrap_or_else(|| panic!("no values in {line}"))
        .iter()
        .map(|v| v.as_f64().unwrap_or(f64::NAN))
        .collect();
    let timestamps = json["timestamps"]
        .as_array()
        .unwrap_or_else(|| panic!("no timestamps in {line}"))
        .iter()
        .map(|v| v.as_i64().unwrap_or(i64::MIN))
        .collect();
    Series {
        name,
        labels,
        values,
        timestamps,
    }
}

/// Labels from `key=value` pairs.
pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A sink config for tests: small batches, quick retries, gzip on.
pub fn sink_config(id: &str, url: &str) -> InfluxSinkConfig {
    InfluxSinkConfig {
        id: id.into(),
        url: url.into(),
        org: Some("plant-org".into()),
        bucket: "cems".into(),
        token_file: None,
        token_env: Some("CEMSD_TEST_INFLUX_TOKEN".into()),
        precision: Precision::Ms,
        measurement_prefix: "cems".into(),
        batch_size: 500,
        flush_interval: Interval(Duration::from_millis(50)),
        gzip: true,
        timeout: Interval(Duration::from_secs(5)),
        max_backoff: Interval(Duration::from_secs(1)),
        backlog_warning: 100_000,
    }
}

pub const TEST_TOKEN: &str = "test-token-0123";

/// Creates a store at `path` holding `records`; returns their last seq.
pub fn fill_store(path: &Path, records: &[Record]) -> u64 {
    let mut store =
        Store::open(path, StoreOptions::default()).unwrap_or_else(|e| panic!("open store: {e}"));
    let mut last = 0;
    for chunk in records.chunks(10_000) {
        if let Some((_, l)) = store
            .append(chunk)
            .unwrap_or_else(|e| panic!("append: {e}"))
        {
            last = l;
        }
    }
    last
}

/// The store's writer thread, as the daemon runs it.
pub struct Writer {
    pub handle: StoreHandle,
    join: Option<std::thread::JoinHandle<Store>>,
}

impl Writer {
    pub fn start(path: &Path) -> Writer {
        let store = Store::open(path, StoreOptions::default())
            .unwrap_or_else(|e| panic!("open store: {e}"));
        let (handle, join) = StoreWriter::spawn(store, WriterOptions::default())
            .unwrap_or_else(|e| panic!("store writer: {e}"));
        Writer {
            handle,
            join: Some(join),
        }
    }

    pub async fn stop(mut self) {
        assert!(
            self.handle.shutdown().await.is_ok(),
            "store writer shutdown"
        );
        if let Some(join) = self.join.take() {
            let joined = tokio::task::spawn_blocking(move || join.join().is_ok()).await;
            assert!(joined.is_ok_and(|ok| ok), "store writer thread");
        }
    }
}

/// A forwarder running on the test's runtime.
pub struct RunningForwarder {
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    pub stats: Arc<ForwarderStats>,
}

impl RunningForwarder {
    pub fn spawn(
        config: &InfluxSinkConfig,
        store_path: &Path,
        store: &StoreHandle,
    ) -> RunningForwarder {
        let clock: cemsd::model::time::Clock =
            Arc::new(|| Timestamp::from_datetime(chrono::Utc::now()));
        let forwarder = Forwarder::new(
            config,
            "plant-1",
            &Token::new(TEST_TOKEN),
            store_path.to_path_buf(),
            store.clone(),
            clock,
            7,
        )
        .unwrap_or_else(|e| panic!("forwarder: {e}"));
        let stats = forwarder.stats();
        let (shutdown, watch) = watch::channel(false);
        let task = tokio::spawn(forwarder.run(watch));
        RunningForwarder {
            shutdown,
            task,
            stats,
        }
    }

    /// Waits until the cursor reaches `seq`; false after `limit`.
    pub async fn wait_for_cursor(&self, seq: u64, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.stats.snapshot().cursor >= seq {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.stats.snapshot().cursor >= seq
    }

    /// Asks it to stop and waits; panics if it does not stop within 10 s.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let stopped = tokio::time::timeout(Duration::from_secs(10), self.task).await;
        assert!(
            stopped.is_ok_and(|joined| joined.is_ok()),
            "forwarder did not stop"
        );
    }
}

/// xorshift64*: reproducible test randomness.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}
