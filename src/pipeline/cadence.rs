//! How often a device that uploads on its own (an HJ 212 data logger) does so, learned from
//! its uploads when its config does not say: the shortest spacing of consecutive data times
//! of one kind (real-time, minute, hour, day data). A logger's data times step by its
//! `RtdInterval` for real-time data (CN 2011) and its `MinInterval` for minute data (CN 2051)
//! (HJ 212-2017 appendix C, CN 1061–1064 read and set them), whatever delay the link adds, so
//! the spacing of data times is its cadence where the spacing of arrivals is not.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::model::Timestamp;
use crate::store::RecordKind;

/// Spacings below this are not a cadence (two channels of one instant stamped a few
/// milliseconds apart, a repeated upload)…
pub const MIN_CADENCE: Duration = Duration::from_secs(1);
/// …and above this a gap, not a cadence: day data (CN 2031) is the rarest upload a logger
/// sends on its own.
pub const MAX_CADENCE: Duration = Duration::from_secs(86_400);

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cadence {
    /// Newest data time seen of each kind of upload.
    newest: BTreeMap<RecordKind, Timestamp>,
    shortest: Option<Duration>,
}

impl Cadence {
    /// Takes one uploaded value's data time. Only a data time past the newest of its kind
    /// is a step: history answers and redeliveries, older, leave the cadence alone.
    pub fn observe(&mut self, kind: RecordKind, ts: Timestamp) {
        let newest = self.newest.entry(kind).or_insert(ts);
        if ts <= *newest {
            return;
        }
        let step = Duration::from_millis(u64::try_from(ts.0 - newest.0).unwrap_or(0));
        *newest = ts;
        if (MIN_CADENCE..=MAX_CADENCE).contains(&step) {
            self.shortest = Some(self.shortest.map_or(step, |s| s.min(step)));
        }
    }

    /// The learned upload interval; none until two data times of one kind were seen.
    pub fn interval(&self) -> Option<Duration> {
        self.shortest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;

    #[test]
    fn the_shortest_step_of_one_kind_is_the_cadence() {
        let mut cadence = Cadence::default();
        cadence.observe(RecordKind::Hour, Timestamp(0));
        // minute data every 10 min; the first of a kind gives no step, nor does the
        // same data time again (a second channel of the same upload)
        cadence.observe(RecordKind::Minute, Timestamp(5 * MINUTE));
        assert_eq!(cadence.interval(), None);
        cadence.observe(RecordKind::Minute, Timestamp(5 * MINUTE));
        assert_eq!(cadence.interval(), None);
        cadence.observe(RecordKind::Minute, Timestamp(15 * MINUTE));
        assert_eq!(cadence.interval(), Some(Duration::from_secs(600)));
        // a silence of 40 min, then the hour: neither step is shorter
        cadence.observe(RecordKind::Minute, Timestamp(55 * MINUTE));
        cadence.observe(RecordKind::Hour, Timestamp(60 * MINUTE));
        assert_eq!(cadence.interval(), Some(Duration::from_secs(600)));
        // a history answer for the minutes of the silence is older: no step
        cadence.observe(RecordKind::Minute, Timestamp(25 * MINUTE));
        cadence.observe(RecordKind::Minute, Timestamp(35 * MINUTE));
        assert_eq!(cadence.interval(), Some(Duration::from_secs(600)));
        // real-time data every 30 s is the shortest
        cadence.observe(RecordKind::Reading, Timestamp(56 * MINUTE));
        cadence.observe(RecordKind::Reading, Timestamp(56 * MINUTE + 30_000));
        assert_eq!(cadence.interval(), Some(Duration::from_secs(30)));
    }

    #[test]
    fn steps_outside_the_bounds_teach_nothing() {
        let mut cadence = Cadence::default();
        cadence.observe(RecordKind::Reading, Timestamp(0));
        cadence.observe(RecordKind::Reading, Timestamp(400));
        cadence.observe(RecordKind::Day, Timestamp(0));
        cadence.observe(RecordKind::Day, Timestamp(3 * 86_400_000));
        assert_eq!(cadence.interval(), None);
        cadence.observe(RecordKind::Day, Timestamp(4 * 86_400_000));
        assert_eq!(cadence.interval(), Some(Duration::from_secs(86_400)));
    }
}
