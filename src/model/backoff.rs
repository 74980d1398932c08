//! How long to wait before trying again (a sink's next write, an MQTT source's next
//! connection): exponential, capped, with jitter so that many gateways cut off by the same
//! outage do not all come back in the same second.

use std::time::Duration;

use super::random::SplitMix64;

/// Exponential backoff with "equal jitter": the n-th wait is drawn uniformly from
/// [d/2, d] with d = min(initial · 2ⁿ, max). Half the delay is guaranteed, so a server that
/// is down is never hammered; the other half spreads the retries.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    failures: u32,
    rng: SplitMix64,
}

impl Backoff {
    /// `seed` makes the jitter reproducible in tests; the daemon passes a random one.
    pub fn new(initial: Duration, max: Duration, seed: u64) -> Backoff {
        Backoff {
            initial,
            max: max.max(initial),
            failures: 0,
            rng: SplitMix64(seed),
        }
    }

    /// Counts a failure and returns how long to wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let doubling = 2u32.saturating_pow(self.failures.min(31));
        let ceiling = self.initial.saturating_mul(doubling).min(self.max);
        self.failures = self.failures.saturating_add(1);
        let half = ceiling / 2;
        half + half.mul_f64(self.rng.unit())
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// After a success (a write, a connection) the next failure starts again from `initial`.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn delays_double_within_their_jitter_band_up_to_the_cap() {
        let mut backoff = Backoff::new(100 * MS, 1000 * MS, 7);
        // Ceilings: 100, 200, 400, 800, then capped at 1000 ms; each delay in [ceiling/2, ceiling].
        let ceilings = [100, 200, 400, 800, 1000, 1000, 1000];
        for (n, ceiling) in ceilings.into_iter().enumerate() {
            let delay = backoff.next_delay();
            let ceiling = ceiling * MS;
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "failure {n}: {delay:?} outside [{:?}, {ceiling:?}]",
                ceiling / 2
            );
        }
        assert_eq!(backoff.failures(), 7);
        backoff.reset();
        assert_eq!(backoff.failures(), 0);
        let first = backoff.next_delay();
        assert!(first >= 50 * MS && first <= 100 * MS, "{first:?}");
    }

    #[test]
    fn the_same_seed_gives_the_same_delays_and_another_seed_differs() {
        let run = |seed| {
            let mut b = Backoff::new(100 * MS, 60_000 * MS, seed);
            (0..8).map(|_| b.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }

    #[test]
    fn jitter_spreads_over_the_band() {
        // 1000 draws at a fixed 1 s ceiling: both halves of [500, 1000] ms must be hit.
        let mut b = Backoff::new(1000 * MS, 1000 * MS, 1);
        let delays: Vec<Duration> = (0..1000).map(|_| b.next_delay()).collect();
        assert!(delays.iter().any(|d| *d < 750 * MS));
        assert!(delays.iter().any(|d| *d > 750 * MS));
        assert!(delays.iter().all(|d| *d >= 500 * MS && *d <= 1000 * MS));
    }

    #[test]
    fn many_failures_never_overflow() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60), 3);
        for _ in 0..200 {
            assert!(b.next_delay() <= Duration::from_secs(60));
        }
    }

    #[test]
    fn doubles_to_the_cap_within_the_jitter_band() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(4), 7);
        // steps 0.5, 1, 2, 4, 4 s; each wait lies in [step/2, step]
        for step_ms in [500u64, 1000, 2000, 4000, 4000] {
            let d = b.next_delay();
            let step = Duration::from_millis(step_ms);
            assert!(
                d >= step / 2 && d <= step,
                "{d:?} outside [{:?}, {step:?}]",
                step / 2
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(500));
    }

    #[test]
    fn seeds_spread_the_waits() {
        let waits: Vec<Duration> = (0..8)
            .map(|seed| {
                Backoff::new(Duration::from_secs(8), Duration::from_secs(8), seed).next_delay()
            })
            .collect();
        let mut distinct = waits.clone();
        distinct.sort();
        distinct.dedup();
        assert!(distinct.len() >= 6, "too many equal waits: {waits:?}");
    }

    #[test]
    fn a_cap_more_than_a_million_steps_away_is_still_reached() {
        // The documented rule is "doubles up to the cap": the ceiling keeps doubling past
        // 2^20 steps (1 ms · 2^21 ≈ 35 min) until the cap of one hour holds it.
        let mut b = Backoff::new(MS, Duration::from_secs(3600), 5);
        let delays: Vec<Duration> = (0..40).map(|_| b.next_delay()).collect();
        let last = delays[delays.len() - 1];
        assert!(
            last >= Duration::from_secs(1800) && last <= Duration::from_secs(3600),
            "{last:?}"
        );
    }
}
