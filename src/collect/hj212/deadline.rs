//! The per-packet deadline of a TCP connection: once a byte arrives that is not part of a
//! valid packet yet, a valid packet must complete within the deadline, or the connection is
//! closed. `idle_timeout` only counts silence, so without this a client trickling one byte
//! a second of a packet that never ends (or of noise that never makes one) holds its slot
//! forever.
//!
//! A quiet spell at least as long as the deadline, with nothing buffered, ends the bytes
//! before it: a DTU's heartbeat or a stray CRLF between uploads is not a trickle.

use std::time::{Duration, Instant};

pub struct PacketDeadline {
    limit: Duration,
    /// When the bytes not yet making a valid packet began to arrive.
    since: Option<Instant>,
    last_read: Instant,
}

impl PacketDeadline {
    pub fn new(limit: Duration, now: Instant) -> PacketDeadline {
        PacketDeadline {
            limit,
            since: None,
            last_read: now,
        }
    }

    /// How long the next read may wait before a buffered packet misses the deadline; `None`
    /// when nothing is buffered (silence is the idle timeout's business).
    pub fn remaining(&self, buffered: bool, now: Instant) -> Option<Duration> {
        let since = self.since.filter(|_| buffered)?;
        Some(self.limit.saturating_sub(now.duration_since(since)))
    }

    pub fn passed(&self, now: Instant) -> bool {
        self.since
            .is_some_and(|since| now.duration_since(since) >= self.limit)
    }

    /// Bytes were read at `at`; `valid`: they completed a valid packet; `leftover`: bytes
    /// that are no valid packet remain after it (buffered, skipped or refused). True when
    /// the deadline has passed and the connection is to be closed.
    pub fn read(&mut self, at: Instant, valid: bool, leftover: bool) -> bool {
        if at.duration_since(self.last_read) >= self.limit {
            self.since = None;
        }
        self.last_read = at;
        self.since = if valid {
            leftover.then_some(at)
        } else {
            Some(self.since.unwrap_or(at))
        };
        self.passed(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(10);

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn a_byte_a_second_misses_the_deadline_ten_seconds_after_the_first() {
        let t0 = Instant::now();
        let mut deadline = PacketDeadline::new(LIMIT, t0);
        for s in 1..10 {
            assert!(!deadline.read(t0 + secs(s), false, true), "at {s} s");
            assert_eq!(deadline.remaining(true, t0 + secs(s)), Some(secs(11 - s)));
        }
        assert!(deadline.read(t0 + secs(11), false, true));
    }

    #[test]
    fn valid_packets_and_quiet_spells_restart_it() {
        let t0 = Instant::now();
        let mut deadline = PacketDeadline::new(LIMIT, t0);
        // half a packet, the rest 8 s later: complete, nothing left
        assert!(!deadline.read(t0 + secs(1), false, true));
        assert!(!deadline.read(t0 + secs(9), true, false));
        assert_eq!(deadline.remaining(true, t0 + secs(9)), None);
        // a heartbeat every 30 s between uploads is never a trickle
        for beat in 1..5 {
            assert!(!deadline.read(t0 + secs(9 + 30 * beat), false, false));
        }
        // a packet followed by the start of the next: the clock starts at that read
        assert!(!deadline.read(t0 + secs(200), true, true));
        assert!(!deadline.passed(t0 + secs(209)));
        assert!(deadline.passed(t0 + secs(210)));
    }
}
