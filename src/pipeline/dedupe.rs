//! Exactly-once storage of at-least-once deliveries. A QoS 1 message is redelivered when
//! its acknowledgement did not reach the broker (cemsd crashed after the commit, or the
//! connection dropped), so the same reading can arrive twice. A reading is taken only if it
//! is newer than every reading already taken on its channel; the others are either copies
//! of stored readings (dropped) or genuinely late (refused to the dead letters), which the
//! source tells apart by asking the store once everything before them is committed.
//!
//! Starting from the newest stored reading of each channel makes this hold across restarts.
//! It relies on each publisher sending a channel's readings in time order, as data loggers
//! do; a message's own readings may come in any order.

use std::collections::HashMap;
use std::sync::Arc;

use crate::model::{Sample, Timestamp};

#[derive(Debug, Default)]
pub struct HighWater {
    newest: HashMap<(Arc<str>, Arc<str>), Timestamp>,
}

impl HighWater {
    pub fn new() -> HighWater {
        HighWater::default()
    }

    /// Records a reading that is stored already.
    pub fn remember(&mut self, device: Arc<str>, channel: Arc<str>, ts: Timestamp) {
        let newest = self.newest.entry((device, channel)).or_insert(ts);
        *newest = (*newest).max(ts);
    }

    /// Splits a message's samples into those taken now (newer than anything taken on their
    /// channel) and those that are not. Samples are considered in time order.
    pub fn admit(&mut self, mut samples: Vec<Sample>) -> (Vec<Sample>, Vec<Sample>) {
        samples.sort_by_key(|s| s.ts);
        let mut taken = Vec::with_capacity(samples.len());
        let mut not_newer = Vec::new();
        for sample in samples {
            let key = (sample.device.clone(), sample.channel.clone());
            match self.newest.get_mut(&key) {
                Some(newest) if sample.ts <= *newest => not_newer.push(sample),
                Some(newest) => {
                    *newest = sample.ts;
                    taken.push(sample);
                }
                None => {
                    self.newest.insert(key, sample.ts);
                    taken.push(sample);
                }
            }
        }
        (taken, not_newer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Basis, FlagSet, Quantity, Unit};

    fn sample(channel: &str, ts: i64) -> Sample {
        Sample {
            device: Arc::from("d"),
            channel: Arc::from(channel),
            quantity: Quantity::SO2,
            unit: Unit::MgPerM3,
            basis: Basis::Dry,
            value: ts as f64,
            status: FlagSet::EMPTY,
            ts: Timestamp(ts),
        }
    }

    fn times(samples: &[Sample]) -> Vec<(String, i64)> {
        samples
            .iter()
            .map(|s| (s.channel.to_string(), s.ts.0))
            .collect()
    }

    #[test]
    fn only_newer_readings_are_taken_per_channel() {
        let mut hw = HighWater::new();
        hw.remember(Arc::from("d"), Arc::from("SO2"), Timestamp(100));
        let (taken, rest) = hw.admit(vec![
            sample("SO2", 100), // the stored one again
            sample("SO2", 90),  // older
            sample("SO2", 110),
            sample("O2", 50), // first of its channel
        ]);
        assert_eq!(times(&taken), vec![("O2".into(), 50), ("SO2".into(), 110)]);
        assert_eq!(times(&rest), vec![("SO2".into(), 90), ("SO2".into(), 100)]);
        // a redelivery of the same message takes nothing
        let (taken, rest) = hw.admit(vec![sample("SO2", 110), sample("O2", 50)]);
        assert!(taken.is_empty());
        assert_eq!(rest.len(), 2);
    }

    #[test]
    fn a_message_in_reverse_order_is_taken_whole() {
        let mut hw = HighWater::new();
        let (taken, rest) = hw.admit(vec![sample("SO2", 3), sample("SO2", 2), sample("SO2", 1)]);
        assert_eq!(taken.len(), 3);
        assert!(rest.is_empty());
        // a copy inside one message is not taken twice
        let (taken, rest) = hw.admit(vec![sample("SO2", 4), sample("SO2", 4)]);
        assert_eq!((taken.len(), rest.len()), (1, 1));
    }
}
