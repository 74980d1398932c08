//! Password guessing at the listener, slowed and then stopped: per connection, per source
//! address and per MN, each wrong password (or unknown MN) counts; the connection waits
//! `100 ms × 2^(failures − 1)` (at most 5 s) before it reads its next packet, and once a
//! source address or an MN reaches `lockout_after` failures within the lockout window it is
//! locked out for that window:
//! - a locked address gets no connection and no password check;
//! - a locked MN gets no password check either, so a correct guess is never confirmed by a
//!   9014, except from the addresses that logger last authenticated from, so an attacker
//!   guessing its MN does not cut the plant off.
//!
//! Refusals are logged at most once a minute per address, with how many were left out.
//! State is bounded: MNs are the configured ones, and at most [`MAX_TRACKED_SOURCES`]
//! addresses are remembered; expired entries go first, then the least recently seen.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Source addresses remembered at once; beyond it expired and then the oldest are forgotten.
pub const MAX_TRACKED_SOURCES: usize = 4096;
/// Addresses an MN authenticated from recently, which its lockout does not apply to.
const KNOWN_SOURCES_PER_MN: usize = 4;
const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(5);
/// One refusal log line per address per this long; the rest are summed into the next.
pub const LOG_INTERVAL: Duration = Duration::from_secs(60);

/// What a failure calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Wait this long before reading the connection's next packet.
    pub delay: Duration,
    /// The source address was locked out by this failure.
    pub source_locked: bool,
    /// The MN was locked out by this failure.
    pub mn_locked: bool,
    /// Log this refusal, naming this many earlier ones that were not logged; `None`: stay quiet.
    pub log: Option<u32>,
}

#[derive(Debug, Clone, Default)]
struct Failures {
    count: u32,
    last: Option<Instant>,
    locked_until: Option<Instant>,
}

impl Failures {
    fn locked(&self, now: Instant) -> bool {
        self.locked_until.is_some_and(|until| now < until)
    }

    /// Counts a failure; true when it starts a lockout.
    fn add(&mut self, now: Instant, window: Duration, lockout_after: u32) -> bool {
        if self
            .last
            .is_some_and(|last| now.duration_since(last) >= window)
        {
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        self.last = Some(now);
        if self.count >= lockout_after && !self.locked(now) {
            self.locked_until = Some(now + window);
            self.count = 0;
            return true;
        }
        false
    }

    fn expired(&self, now: Instant, window: Duration) -> bool {
        !self.locked(now)
            && self
                .last
                .is_none_or(|last| now.duration_since(last) >= window)
    }
}

#[derive(Debug, Default)]
struct Source {
    failures: Failures,
    logged_at: Option<Instant>,
    unlogged: u32,
}

#[derive(Debug, Default)]
struct Mn {
    failures: Failures,
    known: VecDeque<IpAddr>,
}

pub struct AuthThrottle {
    lockout_after: u32,
    window: Duration,
    sources: HashMap<IpAddr, Source>,
    mns: HashMap<Arc<str>, Mn>,
}

impl AuthThrottle {
    pub fn new(lockout_after: u32, window: Duration) -> AuthThrottle {
        AuthThrottle {
            lockout_after,
            window,
            sources: HashMap::new(),
            mns: HashMap::new(),
        }
    }

    pub fn source_locked(&self, source: IpAddr, now: Instant) -> bool {
        self.sources
            .get(&source)
            .is_some_and(|s| s.failures.locked(now))
    }

    /// Whether `mn` is locked out for packets from `source`.
    pub fn mn_locked(&self, mn: &str, source: IpAddr, now: Instant) -> bool {
        self.mns
            .get(mn)
            .is_some_and(|m| m.failures.locked(now) && !m.known.contains(&source))
    }

    /// `mn` authenticated from `source`: its own lockout will not apply there.
    pub fn succeeded(&mut self, mn: &Arc<str>, source: IpAddr) {
        let known = &mut self.mns.entry(mn.clone()).or_default().known;
        if let Some(at) = known.iter().position(|k| *k == source) {
            known.remove(at);
        } else if known.len() >= KNOWN_SOURCES_PER_MN {
            known.pop_front();
        }
        known.push_back(source);
    }

    /// A wrong password for a configured `mn`, or (with `None`) a packet for an MN not
    /// configured, from `source`, the `connection_failures`th on its connection.
    pub fn failed(
        &mut self,
        mn: Option<&Arc<str>>,
        source: IpAddr,
        connection_failures: u32,
        now: Instant,
    ) -> Failure {
        let (window, lockout_after) = (self.window, self.lockout_after);
        let mut worst = connection_failures;
        let mut mn_locked = false;
        if let Some(mn) = mn {
            let state = &mut self.mns.entry(mn.clone()).or_default().failures;
            mn_locked = state.add(now, window, lockout_after);
            worst = worst.max(state.count);
        }
        self.make_room(source, now);
        let state = self.sources.entry(source).or_default();
        let source_locked = state.failures.add(now, window, lockout_after);
        worst = worst.max(state.failures.count);
        let log = if state
            .logged_at
            .is_none_or(|at| now.duration_since(at) >= LOG_INTERVAL)
        {
            state.logged_at = Some(now);
            Some(std::mem::take(&mut state.unlogged))
        } else {
            state.unlogged = state.unlogged.saturating_add(1);
            None
        };
        Failure {
            delay: delay_after(worst),
            source_locked,
            mn_locked,
            log,
        }
    }

    /// Addresses remembered (for tests of the bound).
    pub fn tracked_sources(&self) -> usize {
        self.sources.len()
    }

    /// Keeps the address table under its bound before `source` is added.
    fn make_room(&mut self, source: IpAddr, now: Instant) {
        if self.sources.len() < MAX_TRACKED_SOURCES || self.sources.contains_key(&source) {
            return;
        }
        let window = self.window;
        self.sources.retain(|_, s| !s.failures.expired(now, window));
        if self.sources.len() >= MAX_TRACKED_SOURCES {
            let oldest = self
                .sources
                .iter()
                .min_by_key(|(_, s)| s.failures.last)
                .map(|(ip, _)| *ip);
            if let Some(oldest) = oldest {
                self.sources.remove(&oldest);
            }
        }
    }
}

/// 100 ms after the first failure, doubling with each one, at most 5 s.
fn delay_after(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY)
}

/// The address throttling and connection caps count by: an IPv4 address (also when it comes
/// mapped into IPv6), or the /64 an IPv6 address belongs to, since one host gets a whole /64.
pub fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(900);

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn delays_double_then_lock_the_source_out() {
        let mut throttle = AuthThrottle::new(4, WINDOW);
        let now = Instant::now();
        let mn: Arc<str> = Arc::from("MN1");
        let delays: Vec<Duration> = (1..=3)
            .map(|n| {
                let failure = throttle.failed(Some(&mn), ip(1), n, now);
                assert!(!failure.source_locked);
                failure.delay
            })
            .collect();
        assert_eq!(delays, [100, 200, 400].map(Duration::from_millis).to_vec());
        assert!(!throttle.source_locked(ip(1), now));
        let fourth = throttle.failed(Some(&mn), ip(1), 4, now);
        assert!(fourth.source_locked && fourth.mn_locked);
        assert!(throttle.source_locked(ip(1), now));
        assert!(!throttle.source_locked(ip(2), now));
        // the lockout ends with its window
        assert!(!throttle.source_locked(ip(1), now + WINDOW));
        assert_eq!(delay_after(40), MAX_DELAY);
    }

    #[test]
    fn a_locked_mn_still_takes_its_known_address() {
        let mut throttle = AuthThrottle::new(2, WINDOW);
        let now = Instant::now();
        let mn: Arc<str> = Arc::from("MN1");
        throttle.succeeded(&mn, ip(9));
        throttle.failed(Some(&mn), ip(1), 1, now);
        let second = throttle.failed(Some(&mn), ip(2), 1, now);
        assert!(second.mn_locked && !second.source_locked);
        assert!(throttle.mn_locked("MN1", ip(3), now));
        assert!(!throttle.mn_locked("MN1", ip(9), now));
        assert!(!throttle.mn_locked("MN2", ip(3), now));
    }

    #[test]
    fn failures_older_than_the_window_are_forgotten() {
        let mut throttle = AuthThrottle::new(2, WINDOW);
        let now = Instant::now();
        throttle.failed(None, ip(1), 1, now);
        let later = throttle.failed(None, ip(1), 1, now + WINDOW);
        assert!(!later.source_locked);
        assert_eq!(later.delay, FIRST_DELAY);
    }

    #[test]
    fn refusal_logs_are_one_a_minute_with_a_count_of_the_rest() {
        let mut throttle = AuthThrottle::new(1000, WINDOW);
        let now = Instant::now();
        let logs: Vec<Option<u32>> = (0..5)
            .map(|i| {
                throttle
                    .failed(None, ip(1), 1, now + Duration::from_secs(i))
                    .log
            })
            .collect();
        assert_eq!(logs, vec![Some(0), None, None, None, None]);
        let next = throttle.failed(None, ip(1), 1, now + LOG_INTERVAL);
        assert_eq!(next.log, Some(4));
    }

    #[test]
    fn addresses_remembered_stay_bounded() {
        let mut throttle = AuthThrottle::new(1000, WINDOW);
        let now = Instant::now();
        for i in 0..(MAX_TRACKED_SOURCES as u32 + 500) {
            let address = IpAddr::from((0x0a00_0000u32 + i).to_be_bytes());
            throttle.failed(None, address, 1, now + Duration::from_millis(u64::from(i)));
        }
        assert_eq!(throttle.tracked_sources(), MAX_TRACKED_SOURCES);
    }

    #[test]
    fn an_ipv6_host_counts_as_its_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let b: IpAddr = "2001:db8:1:2:bbbb::7"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(source_of(a), source_of(b));
        assert_ne!(source_of(a), source_of(other));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(source_of(mapped), ip(1));
    }
}
