//! Which periods a logger has not delivered: per MN, the newest day, hour and minute
//! committed. When an upload lands after a hole, the hole is asked for again (2031 for days,
//! 2061 for hours, 2051 for minutes; HJ 212-2017 Table 6 gives each upload command its
//! "取…历史数据" form with BeginTime/EndTime) so a link outage at the plant costs no data at
//! the bureau.
//!
//! State starts empty; the first upload of a kind from an MN after start is compared with
//! the store (see [`GapTracker::needs_warm_up`]), so a listener restart does not hide holes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::model::time::Period;
use crate::model::Timestamp;
use crate::protocol::hj212::CommandCode;
use crate::store::RecordKind;

/// A history request to send: the upload command and the first and last missing period
/// start (UTC, both inclusive, as BeginTime/EndTime are).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryPull {
    pub cn: CommandCode,
    pub begin: Timestamp,
    pub end: Timestamp,
}

pub struct GapTracker {
    minute_gap: i64,
    history_max: i64,
    /// `None` inside: looked up, nothing stored before.
    newest: HashMap<(Arc<str>, RecordKind), Option<Timestamp>>,
}

impl GapTracker {
    /// `minute_gap`: minute holes longer than this are pulled (day and hour holes always are);
    /// `history_max`: how far before the new upload a pull may reach.
    pub fn new(minute_gap: Duration, history_max: Duration) -> GapTracker {
        GapTracker {
            minute_gap: duration_ms(minute_gap),
            history_max: duration_ms(history_max),
            newest: HashMap::new(),
        }
    }

    /// Whether the tracker must learn the newest stored period of this kind before it can
    /// judge an upload: true once per MN and kind (days, hours and minutes only).
    pub fn needs_warm_up(&self, mn: &Arc<str>, kind: RecordKind) -> bool {
        period_of(kind).is_some() && !self.newest.contains_key(&(mn.clone(), kind))
    }

    /// The newest period start stored before the listener saw this MN, if any.
    pub fn warm_up(&mut self, mn: &Arc<str>, kind: RecordKind, newest: Option<Timestamp>) {
        self.newest.entry((mn.clone(), kind)).or_insert(newest);
    }

    /// Records a committed upload of `kind` for period start `ts`; returns the pull for
    /// the hole before it, if there is one worth asking for.
    pub fn committed(
        &mut self,
        mn: &Arc<str>,
        kind: RecordKind,
        ts: Timestamp,
    ) -> Option<HistoryPull> {
        let (period, cn) = period_of(kind)?;
        let slot = self.newest.entry((mn.clone(), kind)).or_insert(None);
        let previous = *slot;
        *slot = Some(previous.map_or(ts, |p| p.max(ts)));
        let previous = previous?;
        let step = period.millis();
        let begin = previous.0 + step;
        let end = ts.0 - step;
        if end < begin {
            return None;
        }
        let missing = ts.0 - previous.0 - step;
        if kind == RecordKind::Minute && missing <= self.minute_gap {
            return None;
        }
        let earliest = ts.0 - self.history_max;
        Some(HistoryPull {
            cn,
            begin: Timestamp(begin.max(earliest)),
            end: Timestamp(end),
        })
    }
}

fn period_of(kind: RecordKind) -> Option<(Period, CommandCode)> {
    match kind {
        RecordKind::Hour => Some((Period::Hour, CommandCode::HourData)),
        RecordKind::Minute => Some((Period::Minute, CommandCode::MinuteData)),
        // A day starts at the logger's local midnight; China keeps one offset all year, so
        // consecutive day starts are always 24 h apart.
        RecordKind::Day => Some((Period::Day, CommandCode::DayData)),
        _ => None,
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;
    const MINUTE: i64 = 60_000;
    const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    fn tracker() -> GapTracker {
        GapTracker::new(Duration::from_secs(600), Duration::from_secs(24 * 3600))
    }

    #[test]
    fn hour_holes_are_pulled_once() {
        let mut gaps = tracker();
        let mn: Arc<str> = Arc::from("MN1");
        assert!(gaps.needs_warm_up(&mn, RecordKind::Hour));
        gaps.warm_up(&mn, RecordKind::Hour, Some(Timestamp(T0 + 10 * HOUR)));
        assert!(!gaps.needs_warm_up(&mn, RecordKind::Hour));
        // 11:00 follows 10:00: nothing missing.
        assert_eq!(
            gaps.committed(&mn, RecordKind::Hour, Timestamp(T0 + 11 * HOUR)),
            None
        );
        // 14:00 after 11:00: 12:00 and 13:00 are missing.
        assert_eq!(
            gaps.committed(&mn, RecordKind::Hour, Timestamp(T0 + 14 * HOUR)),
            Some(HistoryPull {
                cn: CommandCode::HourData,
                begin: Timestamp(T0 + 12 * HOUR),
                end: Timestamp(T0 + 13 * HOUR),
            })
        );
        // The answers to the pull are older than 14:00: no new pull, state stays at 14:00.
        assert_eq!(
            gaps.committed(&mn, RecordKind::Hour, Timestamp(T0 + 12 * HOUR)),
            None
        );
        assert_eq!(
            gaps.committed(&mn, RecordKind::Hour, Timestamp(T0 + 15 * HOUR)),
            None
        );
    }

    #[test]
    fn short_minute_holes_are_left_alone() {
        let mut gaps = tracker();
        let mn: Arc<str> = Arc::from("MN1");
        gaps.warm_up(&mn, RecordKind::Minute, None);
        assert_eq!(gaps.committed(&mn, RecordKind::Minute, Timestamp(T0)), None);
        // 10 minutes missing (00:01..00:10) is not more than the 10-minute threshold.
        assert_eq!(
            gaps.committed(&mn, RecordKind::Minute, Timestamp(T0 + 11 * MINUTE)),
            None
        );
        // 11 minutes missing (00:12..00:22) is.
        assert_eq!(
            gaps.committed(&mn, RecordKind::Minute, Timestamp(T0 + 23 * MINUTE)),
            Some(HistoryPull {
                cn: CommandCode::MinuteData,
                begin: Timestamp(T0 + 12 * MINUTE),
                end: Timestamp(T0 + 22 * MINUTE),
            })
        );
    }

    #[test]
    fn pulls_reach_back_at_most_history_max_and_ignore_other_kinds() {
        let mut gaps = tracker();
        let mn: Arc<str> = Arc::from("MN1");
        gaps.warm_up(&mn, RecordKind::Hour, Some(Timestamp(T0)));
        // Three days later: the pull starts 24 h before the new hour.
        let now = T0 + 72 * HOUR;
        assert_eq!(
            gaps.committed(&mn, RecordKind::Hour, Timestamp(now)),
            Some(HistoryPull {
                cn: CommandCode::HourData,
                begin: Timestamp(now - 24 * HOUR),
                end: Timestamp(now - HOUR),
            })
        );
        assert_eq!(
            gaps.committed(&mn, RecordKind::Reading, Timestamp(now)),
            None
        );
    }

    #[test]
    fn day_holes_are_pulled_like_hours() {
        const DAY: i64 = 24 * HOUR;
        let mut gaps = GapTracker::new(Duration::from_secs(600), Duration::from_secs(7 * 86_400));
        let mn: Arc<str> = Arc::from("MN1");
        assert!(gaps.needs_warm_up(&mn, RecordKind::Day));
        // 2026-01-01 00:00 at +08:00 is 2025-12-31T16:00Z.
        let day1 = T0 - 8 * HOUR;
        gaps.warm_up(&mn, RecordKind::Day, Some(Timestamp(day1)));
        assert_eq!(
            gaps.committed(&mn, RecordKind::Day, Timestamp(day1 + DAY)),
            None
        );
        // The 5th after the 2nd: the 3rd and 4th are missing.
        assert_eq!(
            gaps.committed(&mn, RecordKind::Day, Timestamp(day1 + 4 * DAY)),
            Some(HistoryPull {
                cn: CommandCode::DayData,
                begin: Timestamp(day1 + 2 * DAY),
                end: Timestamp(day1 + 3 * DAY),
            })
        );
    }
}
