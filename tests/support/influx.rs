//! The InfluxDB sink in process: a test sink config and a forwarder on the test's runtime.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cemsd::config::influx::{InfluxSinkConfig, Precision};
use cemsd::config::secret::Secret as Token;
use cemsd::config::Interval;
use cemsd::model::Timestamp;
use cemsd::sink::influx::{Forwarder, ForwarderStats, SiteFacts};
use cemsd::store::StoreHandle;
use tokio::sync::watch;

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
        requests_in_flight: 2,
        flush_interval: Interval(Duration::from_millis(50)),
        gzip: true,
        timeout: Interval(Duration::from_secs(5)),
        max_backoff: Interval(Duration::from_secs(1)),
        backlog_warning: 100_000,
    }
}

pub const TEST_TOKEN: &str = "test-token-0123";

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
            SiteFacts::named("plant-1"),
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

    /// Waits until the cursor reaches `seq`; false after `limit`. Looks every millisecond,
    /// the timer's resolution: the drain bench times the backlog by it.
    pub async fn wait_for_cursor(&self, seq: u64, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.stats.snapshot().cursor >= seq {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
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
