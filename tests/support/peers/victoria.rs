//! A real VictoriaMetrics on loopback, started per test with its own storage and port, and
//! stopped (by PID) when dropped, even when the test fails; its export API parsed into
//! series.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::ports::free_port;
use super::process::Owned;

pub const VICTORIA_METRICS: &str = "/usr/bin/victoria-metrics";

/// One VictoriaMetrics process with its own storage directory and port. Dropping it kills
/// the process, so a failing test leaves nothing running.
pub struct VictoriaMetrics {
    process: Option<Owned>,
    /// Where it listens: 127.0.0.1, or an address of the network namespace it runs in.
    pub host: std::net::IpAddr,
    /// The network namespace it runs in (`ip netns exec`), if any.
    namespace: Option<String>,
    pub port: u16,
    storage: PathBuf,
    dedup: bool,
    /// More command-line flags, e.g. `-promscrape.config=…`.
    extra: Vec<String>,
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

impl Series {
    /// (timestamp, value) pairs, in export order.
    pub fn points(&self) -> Vec<(i64, f64)> {
        self.timestamps
            .iter()
            .copied()
            .zip(self.values.iter().copied())
            .collect()
    }
}

impl VictoriaMetrics {
    /// Starts it on a free port with storage under `dir`, with `-dedup.minScrapeInterval=1ms`
    /// when `dedup` (one point per series and timestamp in exports), and waits until ready.
    pub async fn start(dir: &Path, dedup: bool) -> VictoriaMetrics {
        VictoriaMetrics::start_with(dir, dedup, &[]).await
    }

    /// As `start`, inside network namespace `namespace`, listening on its address `host`
    /// (port 8428), with deduplication.
    pub async fn start_in_namespace(
        dir: &Path,
        namespace: &str,
        host: std::net::IpAddr,
    ) -> VictoriaMetrics {
        let mut vm = VictoriaMetrics::new(dir, true, &[]);
        vm.namespace = Some(namespace.to_string());
        vm.host = host;
        vm.port = 8428;
        vm.launch().await;
        vm
    }

    /// As `start`, with more command-line flags (`extra`).
    pub async fn start_with(dir: &Path, dedup: bool, extra: &[String]) -> VictoriaMetrics {
        let mut vm = VictoriaMetrics::new(dir, dedup, extra);
        vm.launch().await;
        vm
    }

    fn new(dir: &Path, dedup: bool, extra: &[String]) -> VictoriaMetrics {
        VictoriaMetrics {
            process: None,
            host: std::net::Ipv4Addr::LOCALHOST.into(),
            namespace: None,
            port: free_port(),
            storage: dir.join("victoria-metrics"),
            dedup,
            extra: extra.to_vec(),
            http: {
                cemsd::sink::influx::install_crypto_provider();
                reqwest::Client::new()
            },
        }
    }

    fn spawn(&self) -> Owned {
        assert!(
            Path::new(VICTORIA_METRICS).exists(),
            "{VICTORIA_METRICS} is missing: apt-get install victoria-metrics (scripts/test does)"
        );
        let mut command = match &self.namespace {
            Some(namespace) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", namespace, VICTORIA_METRICS]);
                command
            }
            None => Command::new(VICTORIA_METRICS),
        };
        command
            .arg(format!("-storageDataPath={}", self.storage.display()))
            .arg(format!("-httpListenAddr={}:{}", self.host, self.port))
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
        command.args(&self.extra);
        Owned::spawn(&mut command, VICTORIA_METRICS)
    }

    async fn launch(&mut self) {
        self.process = Some(self.spawn());
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

    /// Its process id while it runs, for reading its CPU time.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|process| process.child().id())
    }

    pub fn url(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }

    /// Graceful stop (SIGTERM): it flushes what it acknowledged, as a real server would on
    /// a restart. A SIGKILL would lose acknowledged points in its memory buffers, which is
    /// the store's loss, not the sender's.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop("TERM");
        }
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

impl VictoriaMetrics {
    /// Runs a MetricsQL/PromQL query over `[now - range, now]` at `step` through
    /// `/api/v1/query_range` (what Grafana sends for a time-series panel) and returns the
    /// `data` object: `resultType` and `result`.
    pub async fn query_range(
        &self,
        query: &str,
        range: Duration,
        step: Duration,
    ) -> serde_json::Value {
        let end = super::super::time::now_ms() as f64 / 1000.0;
        let start = end - range.as_secs_f64();
        self.api(
            "query_range",
            &[
                ("query", query.to_string()),
                ("start", format!("{start:.3}")),
                ("end", format!("{end:.3}")),
                ("step", format!("{}s", step.as_secs().max(1))),
            ],
        )
        .await
    }

    /// Runs a query at one instant, now, through `/api/v1/query` (what Grafana sends for an
    /// instant panel: a stat, a bar gauge) and returns the `data` object.
    pub async fn query(&self, query: &str) -> serde_json::Value {
        self.api("query", &[("query", query.to_string())]).await
    }

    async fn api(&self, endpoint: &str, params: &[(&str, String)]) -> serde_json::Value {
        let url =
            reqwest::Url::parse_with_params(&format!("{}/api/v1/{endpoint}", self.url()), params)
                .unwrap_or_else(|e| panic!("{endpoint} URL: {e}"));
        let response = self
            .http
            .get(url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{endpoint} {params:?}: {e}"));
        let status = response.status();
        let text = response
            .text()
            .await
            .unwrap_or_else(|e| panic!("{endpoint} {params:?}: body: {e}"));
        let body: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{endpoint} {params:?}: {e}: {text}"));
        assert!(
            status.is_success(),
            "{endpoint} {params:?}: HTTP {status}: {body}"
        );
        body["data"].clone()
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
