//! Waits between reconnection attempts: doubling from a minimum up to a cap, with jitter so
//! that many instances cut off by one broker restart do not reconnect in lockstep.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
    /// SplitMix64 state: jitter needs no cryptographic quality, only spread.
    state: u64,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration, seed: u64) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            failures: 0,
            state: seed,
        }
    }

    /// The wait before the next attempt: half of the capped exponential step fixed, the
    /// other half random, so waits stay between step/2 and step.
    pub fn next_delay(&mut self) -> Duration {
        let step = self
            .min
            .saturating_mul(1u32 << self.failures.min(20))
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        let half = step / 2;
        let fraction = (self.next_random() >> 11) as f64 / (1u64 << 53) as f64;
        half + half.mul_f64(fraction)
    }

    /// After a successful connection the next failure starts from the minimum again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    fn next_random(&mut self) -> u64 {
        // SplitMix64 (Steele, Lea, Flood 2014) constants
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
