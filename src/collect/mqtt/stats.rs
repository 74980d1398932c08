//! Counters of one MQTT source, shared between its task and whoever reports them, and
//! whether it makes progress.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::payload::Reason;

/// How long a source may go without progress before it counts as stalled, unless configured.
pub const DEFAULT_STALL_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug)]
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
    progress: Mutex<Progress>,
}

impl Default for SourceStats {
    fn default() -> Self {
        SourceStats::new(DEFAULT_STALL_AFTER)
    }
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
    /// Why the source cannot make progress, when it has not for its stall time.
    pub stalled: Option<String>,
}

impl SourceSnapshot {
    /// Connections made after the first one: how often the source had to reconnect.
    pub fn reconnects(&self) -> u64 {
        self.connections.saturating_sub(1)
    }

    /// Messages refused to the dead letters, all reasons together.
    pub fn refused(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// One line for a terminal: the counters `/metrics` exports, refusals by reason where
    /// there are any.
    pub fn summary(&self) -> String {
        let state = if self.connected { "up" } else { "DOWN" };
        let mut line = format!(
            "{state} msgs {} readings {} dup {} refused {} reconnects {}",
            self.messages,
            self.readings,
            self.duplicates,
            self.refused(),
            self.reconnects()
        );
        let reasons: Vec<String> = self
            .rejected
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(reason, n)| format!("{reason} {n}"))
            .collect();
        if !reasons.is_empty() {
            line.push_str(&format!(" ({})", reasons.join(", ")));
        }
        if let Some(why) = &self.stalled {
            line.push_str(&format!(" STALLED: {why}"));
        }
        line
    }
}

/// Whether a source moves, from the instants of what happened to it. Taking a message is
/// progress, and so is holding a connection for the stall time (a quiet broker is not a
/// stuck one). A source is stalled when, for the stall time, it has not been connected, or
/// has lost its connection again and again without taking a message in between (a message
/// it cannot read makes the broker deliver it again on every connection), or has had a
/// message waiting for its commit.
#[derive(Debug, Clone)]
pub struct Progress {
    limit: Duration,
    connected_since: Option<Instant>,
    disconnected_since: Option<Instant>,
    /// Connections lost since the last progress, and when the first of them was lost.
    losses: u64,
    first_loss: Option<Instant>,
    oldest_pending: Option<Instant>,
}

impl Progress {
    /// A source that starts, not connected yet, at `now`.
    pub fn new(limit: Duration, now: Instant) -> Progress {
        Progress {
            limit,
            connected_since: None,
            disconnected_since: Some(now),
            losses: 0,
            first_loss: None,
            oldest_pending: None,
        }
    }

    pub fn connected(&mut self, now: Instant) {
        self.connected_since = Some(now);
        self.disconnected_since = None;
    }

    /// A connection broke, or an attempt to make one failed.
    pub fn lost(&mut self, now: Instant) {
        if let Some(since) = self.connected_since.take() {
            if now.saturating_duration_since(since) >= self.limit {
                self.moved();
            }
        }
        self.disconnected_since.get_or_insert(now);
        self.losses += 1;
        self.first_loss.get_or_insert(now);
    }

    /// A message was taken (committed, or handed over when it needs no acknowledgement).
    pub fn moved(&mut self) {
        self.losses = 0;
        self.first_loss = None;
    }

    /// When the oldest message still waiting for its commit arrived.
    pub fn pending_since(&mut self, oldest: Option<Instant>) {
        self.oldest_pending = oldest;
    }

    /// Why the source is stalled at `now`, if it is.
    pub fn stalled(&self, now: Instant) -> Option<String> {
        let age = |since: Instant| now.saturating_duration_since(since);
        let secs = |d: Duration| d.as_secs();
        if let Some(since) = self.disconnected_since.filter(|s| age(*s) >= self.limit) {
            return Some(format!("not connected for {} s", secs(age(since))));
        }
        let holding = self.connected_since.is_some_and(|s| age(s) >= self.limit);
        if let Some(first) = self.first_loss {
            if self.losses >= 2 && !holding && age(first) >= self.limit {
                return Some(format!(
                    "lost the connection {} times in {} s without taking a message",
                    self.losses,
                    secs(age(first))
                ));
            }
        }
        if let Some(oldest) = self.oldest_pending.filter(|s| age(*s) >= self.limit) {
            return Some(format!(
                "a message has waited {} s for its commit",
                secs(age(oldest))
            ));
        }
        None
    }
}

impl SourceStats {
    /// Counters of a source that counts as stalled after `stall_after` without progress.
    pub fn new(stall_after: Duration) -> SourceStats {
        SourceStats {
            connected: AtomicBool::new(false),
            connections: AtomicU64::new(0),
            connection_failures: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            readings: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            retained: AtomicU64::new(0),
            acknowledged: AtomicU64::new(0),
            rejected: Default::default(),
            last_error: Mutex::new(None),
            progress: Mutex::new(Progress::new(stall_after, Instant::now())),
        }
    }

    /// A poisoned lock only means a panic elsewhere; the state itself is still usable.
    fn progress(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
        if connected {
            self.connections.fetch_add(1, Ordering::Relaxed);
            self.progress().connected(Instant::now());
        } else {
            self.progress().lost(Instant::now());
        }
    }

    pub fn connection_failed(&self, error: String) {
        self.connected.store(false, Ordering::Relaxed);
        self.connection_failures.fetch_add(1, Ordering::Relaxed);
        self.progress().lost(Instant::now());
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(error);
        }
    }

    /// A message was taken: its batch is committed.
    pub fn progressed(&self) {
        self.progress().moved();
    }

    /// When the oldest message still waiting for its commit arrived; None when none waits.
    pub fn pending_since(&self, oldest: Option<Instant>) {
        self.progress().pending_since(oldest);
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
            stalled: self.stalled(),
        }
    }

    /// Why the source cannot make progress, with its last connection error if any.
    fn stalled(&self) -> Option<String> {
        let why = self.progress().stalled(Instant::now())?;
        let last = self.last_error.lock().ok().and_then(|l| l.clone());
        Some(match last {
            Some(error) => format!("{why}; last error: {error}"),
            None => why,
        })
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
        stats.rejected(Reason::TooLate);
        let s = stats.snapshot();
        assert!(s.connected);
        assert_eq!((s.connections, s.connection_failures), (2, 1));
        assert_eq!(s.rejected.get("bad_time"), Some(&2));
        assert_eq!(s.rejected.get("too_late"), Some(&1));
        assert_eq!(s.rejected.get("syntax"), Some(&0));
        assert_eq!(s.rejected.len(), Reason::ALL.len());
        assert_eq!(s.last_error.as_deref(), Some("broker gone"));
        assert_eq!(
            s.summary(),
            "up msgs 0 readings 0 dup 0 refused 3 reconnects 1 (bad_time 2, too_late 1)"
        );
    }

    const LIMIT: Duration = Duration::from_secs(60);

    fn at(start: Instant, secs: u64) -> Instant {
        start + Duration::from_secs(secs)
    }

    #[test]
    fn a_source_that_never_connects_is_stalled_after_the_limit() {
        let t0 = Instant::now();
        let mut p = Progress::new(LIMIT, t0);
        p.lost(at(t0, 1));
        assert_eq!(p.stalled(at(t0, 59)), None);
        assert_eq!(
            p.stalled(at(t0, 61)).as_deref(),
            Some("not connected for 61 s")
        );
        p.connected(at(t0, 62));
        assert_eq!(p.stalled(at(t0, 62)), None);
    }

    #[test]
    fn a_connection_lost_again_and_again_without_a_message_is_a_stall() {
        let t0 = Instant::now();
        let mut p = Progress::new(LIMIT, t0);
        p.connected(t0);
        // a message the client cannot read: the connection breaks, and on every new one the
        // broker delivers it again
        for s in 1..=70 {
            p.lost(at(t0, s));
            p.connected(at(t0, s));
        }
        let why = p.stalled(at(t0, 70)).unwrap_or_default();
        assert_eq!(
            why,
            "lost the connection 70 times in 69 s without taking a message"
        );
        // one message taken clears it
        p.moved();
        assert_eq!(p.stalled(at(t0, 70)), None);
    }

    #[test]
    fn a_broker_restart_then_quiet_is_no_stall() {
        let t0 = Instant::now();
        let mut p = Progress::new(LIMIT, t0);
        p.connected(at(t0, 1));
        p.lost(at(t0, 100));
        p.connected(at(t0, 101));
        assert_eq!(p.stalled(at(t0, 400)), None, "one loss is a restart");
        p.lost(at(t0, 500));
        p.connected(at(t0, 501));
        // the connection before this loss held for the limit: that was progress
        assert_eq!(p.stalled(at(t0, 600)), None);
        // two quick losses, then a connection that holds for the limit
        p.lost(at(t0, 601));
        p.connected(at(t0, 602));
        p.lost(at(t0, 603));
        p.connected(at(t0, 604));
        assert_eq!(p.stalled(at(t0, 700)), None);
    }

    #[test]
    fn a_message_waiting_for_its_commit_stalls_the_source() {
        let t0 = Instant::now();
        let mut p = Progress::new(LIMIT, t0);
        p.connected(t0);
        p.pending_since(Some(at(t0, 10)));
        assert_eq!(p.stalled(at(t0, 69)), None);
        assert_eq!(
            p.stalled(at(t0, 75)).as_deref(),
            Some("a message has waited 65 s for its commit")
        );
        p.pending_since(None);
        assert_eq!(p.stalled(at(t0, 75)), None);
    }
}
