//! Counters of one MQTT source, shared between its task and whoever reports them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use super::payload::Reason;

#[derive(Debug, Default)]
pub struct SourceStats {
    connected: AtomicBool,
    connections: AtomicU64,
    connection_failures: AtomicU64,
    messages: AtomicU64,
    readings: AtomicU64,
    duplicates: AtomicU64,
    retained: AtomicU64,
    acknowledged: AtomicU64,
    rejected: [AtomicU64; Reason::ALL.len()],
    last_error: Mutex<Option<String>>,
}

/// A point-in-time copy for logs and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceSnapshot {
    pub connected: bool,
    /// Successful connections (CONNACK), the first one included.
    pub connections: u64,
    /// Connection attempts that failed and connections that broke.
    pub connection_failures: u64,
    /// Messages received, including refused ones and redeliveries.
    pub messages: u64,
    /// Readings handed to the pipeline.
    pub readings: u64,
    /// Readings dropped because they were stored already (redeliveries).
    pub duplicates: u64,
    /// Retained copies the broker sent on (re)subscribing, skipped: see `MqttSource`.
    pub retained: u64,
    /// QoS 1 messages acknowledged to the broker.
    pub acknowledged: u64,
    /// Refused messages by reason key; every reason is present.
    pub rejected: BTreeMap<&'static str, u64>,
    pub last_error: Option<String>,
}

impl SourceStats {
    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
        if connected {
            self.connections.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn connection_failed(&self, error: String) {
        self.connected.store(false, Ordering::Relaxed);
        self.connection_failures.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(error);
        }
    }

    pub fn message(&self) {
        self.messages.fetch_add(1, Ordering::Relaxed);
    }

    pub fn readings(&self, n: usize) {
        self.readings.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn duplicates(&self, n: usize) {
        self.duplicates.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn retained(&self) {
        self.retained.fetch_add(1, Ordering::Relaxed);
    }

    pub fn acknowledged(&self) {
        self.acknowledged.fetch_add(1, Ordering::Relaxed);
    }

    pub fn rejected(&self, reason: Reason) {
        if let Some(i) = Reason::ALL.iter().position(|r| *r == reason) {
            self.rejected[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn snapshot(&self) -> SourceSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SourceSnapshot {
            connected: self.connected.load(Ordering::Relaxed),
            connections: load(&self.connections),
            connection_failures: load(&self.connection_failures),
            messages: load(&self.messages),
            readings: load(&self.readings),
            duplicates: load(&self.duplicates),
            retained: load(&self.retained),
            acknowledged: load(&self.acknowledged),
            rejected: Reason::ALL
                .iter()
                .zip(&self.rejected)
                .map(|(r, c)| (r.key(), load(c)))
                .collect(),
            last_error: self.last_error.lock().ok().and_then(|l| l.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_reason_and_connection_state() {
        let stats = SourceStats::default();
        stats.set_connected(true);
        stats.connection_failed("broker gone".into());
        stats.set_connected(true);
        stats.rejected(Reason::BadTime);
        stats.rejected(Reason::BadTime);
        stats.rejected(Reason::Late);
        let s = stats.snapshot();
        assert!(s.connected);
        assert_eq!((s.connections, s.connection_failures), (2, 1));
        assert_eq!(s.rejected.get("bad_time"), Some(&2));
        assert_eq!(s.rejected.get("late"), Some(&1));
        assert_eq!(s.rejected.get("syntax"), Some(&0));
        assert_eq!(s.rejected.len(), Reason::ALL.len());
        assert_eq!(s.last_error.as_deref(), Some("broker gone"));
    }
}
