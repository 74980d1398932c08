//! The service manager protocol (`Type=notify`): READY once the daemon polls and commits,
//! RELOADING/STOPPING around reloads and shutdown, a one-line STATUS, and WATCHDOG pings
//! only while data really moves, so systemd restarts a daemon that hangs without dying.
//! A commit that fails (a full disk) is movement too: the daemon is alive and tries again,
//! and a restart would only lose what it holds in memory, so the ping goes on while `/health`
//! says `failing`.
//!
//! Outside systemd (no `NOTIFY_SOCKET`) every call does nothing.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::sync::watch;
use tokio::time::Instant;

use super::health::StoreState;
use super::state::OpsState;

/// Tells systemd the daemon is up, with a status line for `systemctl status`.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn reloading() {
    send(&[NotifyState::Reloading]);
}

pub fn stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("stopping: committing"),
    ]);
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!("cannot notify the service manager: {e}");
    }
}

/// The watchdog period systemd expects pings within, from `WATCHDOG_USEC` and
/// `WATCHDOG_PID` as sd_watchdog_enabled(3) reads them: no period, or one meant for
/// another process (a PID that is not ours), means no watchdog.
pub fn watchdog_period(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    match pid {
        Some(pid) if pid.trim().parse::<u32>().ok() != Some(own_pid) => None,
        _ => Some(Duration::from_micros(usec)),
    }
}

/// Decides whether the pipeline still moves: it must have made progress (a poll finished, a
/// record committed) within `stall_limit`. The marker is any number that changes with
/// progress; time is passed in, so the rule is testable without waiting.
#[derive(Debug, Clone)]
pub struct Progress {
    stall_limit: Duration,
    marker: u64,
    changed_at: Duration,
}

impl Progress {
    pub fn new(stall_limit: Duration, marker: u64, now: Duration) -> Progress {
        Progress {
            stall_limit,
            marker,
            changed_at: now,
        }
    }

    /// True while progress was seen within the stall limit.
    pub fn moving(&mut self, marker: u64, now: Duration) -> bool {
        if marker != self.marker {
            self.marker = marker;
            self.changed_at = now;
        }
        now.saturating_sub(self.changed_at) <= self.stall_limit
    }

    pub fn stalled_for(&self, now: Duration) -> Duration {
        now.saturating_sub(self.changed_at)
    }
}

/// How long the pipeline may show no progress before the daemon counts as hung: at least
/// the watchdog period, and three of the slowest device's poll intervals, since every poll
/// (answered or not) commits a record.
pub fn stall_limit(watchdog: Duration, slowest_poll: Option<Duration>) -> Duration {
    watchdog.max(slowest_poll.map_or(Duration::ZERO, |p| p * 3))
}

/// Pings the watchdog at half its period while the store answers and the pipeline moves
/// (polls, commits, or commits tried and refused), and keeps `STATUS=` current. Returns
/// when `stop` turns true.
pub async fn supervise(
    state: Arc<OpsState>,
    watchdog: Option<Duration>,
    mut stop: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let tick = watchdog.map_or(Duration::from_secs(10), |w| w / 2);
    let marker = |state: &OpsState| {
        let generation = state.generation();
        let polls: u64 = generation.live.snapshot().values().map(|d| d.polls).sum();
        let writer = state.writer().stats();
        polls
            .wrapping_add(generation.live.committed.load(Ordering::Relaxed))
            .wrapping_add(writer.records_committed)
            // the pipeline retrying a commit the disk refuses: alive, not hung
            .wrapping_add(writer.failed_transactions)
    };
    let mut progress = Progress::new(Duration::ZERO, marker(&state), Duration::ZERO);
    let mut warned = false;
    let mut every = tokio::time::interval(tick);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => return,
        }
        let generation = state.generation();
        let slowest = generation
            .config
            .devices
            .iter()
            .map(|d| d.poll_interval.0)
            .max();
        let now = started.elapsed();
        // A reload may have changed the slowest poll interval.
        progress.stall_limit = stall_limit(watchdog.unwrap_or(tick), slowest);
        let moving = progress.moving(marker(&state), now) || slowest.is_none();
        let store = state.store_state().await;
        let healthy = moving && store != StoreState::Unresponsive;
        let snapshot = generation.live.snapshot();
        let connected = snapshot.values().filter(|d| d.connected).count();
        let status = format!(
            "{connected}/{} devices connected, {} records committed, store {}",
            generation.config.devices.len(),
            state.writer().stats().records_committed,
            match store {
                StoreState::Writable => "writable",
                StoreState::Failing => "FAILING",
                StoreState::Unresponsive => "UNRESPONSIVE",
            }
        );
        if healthy {
            warned = false;
            if watchdog.is_some() {
                send(&[NotifyState::Watchdog, NotifyState::Status(&status)]);
            } else {
                send(&[NotifyState::Status(&status)]);
            }
        } else {
            if !warned {
                tracing::error!(
                    stalled_for = ?progress.stalled_for(now),
                    ?store,
                    "no progress: nothing polled or committed; withholding the watchdog ping"
                );
                warned = true;
            }
            send(&[NotifyState::Status(&format!("STALLED: {status}"))]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_period_is_ours_only_when_the_pid_matches_or_is_absent() {
        let thirty = Some(Duration::from_secs(30));
        assert_eq!(watchdog_period(Some("30000000"), None, 42), thirty);
        assert_eq!(watchdog_period(Some("30000000"), Some("42"), 42), thirty);
        assert_eq!(watchdog_period(Some("30000000"), Some("43"), 42), None);
        assert_eq!(watchdog_period(Some("0"), None, 42), None);
        assert_eq!(watchdog_period(Some("soon"), None, 42), None);
        assert_eq!(watchdog_period(None, Some("42"), 42), None);
    }

    #[test]
    fn progress_must_be_seen_within_the_stall_limit() {
        let s = Duration::from_secs;
        let mut p = Progress::new(s(60), 10, s(0));
        assert!(
            p.moving(10, s(60)),
            "60 s without change is still within 60 s"
        );
        assert!(!p.moving(10, s(61)));
        assert_eq!(p.stalled_for(s(61)), s(61));
        assert!(p.moving(11, s(62)), "a change resets the clock");
        assert!(p.moving(11, s(122)));
        assert!(!p.moving(11, s(123)));
    }

    #[test]
    fn slow_polls_stretch_the_stall_limit_beyond_the_watchdog() {
        let s = Duration::from_secs;
        assert_eq!(stall_limit(s(30), Some(s(2))), s(30));
        // a device polled every 60 s: 3 × 60 = 180 s
        assert_eq!(stall_limit(s(30), Some(s(60))), s(180));
        assert_eq!(stall_limit(s(30), None), s(30));
    }
}
