//! Counters and gauges of one forwarder, readable from any thread while it runs, and
//! recorded as Prometheus metrics at the same moment.

use std::sync::atomic::{AtomicU64, Ordering};

use metrics::{counter, gauge};

use crate::ops::metrics::{
    INFLUX_DEAD_LETTERS, INFLUX_FAILED_REQUESTS, INFLUX_LAST_SUCCESS, INFLUX_POINTS_SENT,
};

#[derive(Debug, Default)]
pub struct ForwarderStats {
    /// The forwarder's name in the store, its metric label.
    sink: String,
    points_delivered: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
    dead_letters: AtomicU64,
    cursor: AtomicU64,
    backlog: AtomicU64,
    backlog_warnings: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Lines the server acknowledged (a line resent after a split counts again).
    pub points_delivered: u64,
    /// Write requests sent, retries and split halves included.
    pub requests: u64,
    /// Requests that will be sent again (outage, 429, 5xx, auth).
    pub retries: u64,
    /// Records moved to the dead-letter table.
    pub dead_letters: u64,
    /// Last seq acknowledged and recorded in the store.
    pub cursor: u64,
    /// Records committed but not yet delivered, as of the last read.
    pub backlog: u64,
    /// How often the backlog crossed `backlog_warning`.
    pub backlog_warnings: u64,
}

impl ForwarderStats {
    pub fn new(sink: String) -> ForwarderStats {
        ForwarderStats {
            sink,
            ..ForwarderStats::default()
        }
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            points_delivered: self.points_delivered.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            dead_letters: self.dead_letters.load(Ordering::Relaxed),
            cursor: self.cursor.load(Ordering::Relaxed),
            backlog: self.backlog.load(Ordering::Relaxed),
            backlog_warnings: self.backlog_warnings.load(Ordering::Relaxed),
        }
    }

    /// `n` lines the server accepted at `at`.
    pub(super) fn add_delivered(&self, n: u64, at: crate::model::Timestamp) {
        self.points_delivered.fetch_add(n, Ordering::Relaxed);
        counter!(INFLUX_POINTS_SENT, "sink" => self.sink.clone()).increment(n);
        gauge!(INFLUX_LAST_SUCCESS, "sink" => self.sink.clone()).set(at.0 as f64 / 1000.0);
    }

    pub(super) fn add_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn add_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        counter!(INFLUX_FAILED_REQUESTS, "sink" => self.sink.clone()).increment(1);
    }

    pub(super) fn add_dead_letters(&self, n: u64) {
        self.dead_letters.fetch_add(n, Ordering::Relaxed);
        counter!(INFLUX_DEAD_LETTERS, "sink" => self.sink.clone()).increment(n);
    }

    pub(super) fn set_cursor(&self, seq: u64) {
        self.cursor.store(seq, Ordering::Relaxed);
    }

    pub(super) fn set_backlog(&self, records: u64) {
        self.backlog.store(records, Ordering::Relaxed);
    }

    pub(super) fn add_backlog_warning(&self) {
        self.backlog_warnings.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Timestamp;

    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    }

    #[test]
    fn a_forwarder_s_outcomes_reach_metrics_under_its_name() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let stats = ForwarderStats::new("influx:site".into());
            stats.add_delivered(500, Timestamp(1_767_225_600_000));
            stats.add_delivered(20, Timestamp(1_767_225_660_000));
            stats.add_retry();
            stats.add_dead_letters(3);
        });
        let text = handle.render();
        let label = r#"{sink="influx:site"}"#;
        assert_eq!(
            sample(&text, &format!("{INFLUX_POINTS_SENT}{label}")),
            Some(520.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, &format!("{INFLUX_FAILED_REQUESTS}{label}")),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, &format!("{INFLUX_DEAD_LETTERS}{label}")),
            Some(3.0)
        );
        assert_eq!(
            sample(&text, &format!("{INFLUX_LAST_SUCCESS}{label}")),
            Some(1_767_225_660.0)
        );
    }
}
