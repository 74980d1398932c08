//! Counters and gauges of one forwarder, readable from any thread while it runs.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct ForwarderStats {
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

    pub(super) fn add_delivered(&self, n: u64) {
        self.points_delivered.fetch_add(n, Ordering::Relaxed);
    }

    pub(super) fn add_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn add_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn add_dead_letters(&self, n: u64) {
        self.dead_letters.fetch_add(n, Ordering::Relaxed);
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
