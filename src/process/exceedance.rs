//! Exceedance events (GB 13223-2011 limits, HJ 75-2017 hourly averages): the O2-corrected
//! hourly average of a pollutant compared with its limit. An event opens at the first valid hour
//! above the limit and closes at the first valid hour at or below it. Invalid hours — plant stop
//! (F), calibration, maintenance, fault, missing data — neither open nor close an event and do
//! not enter a rolling window.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::config::stack::Limits;
use crate::model::time::{Period, HOUR_MS};
use crate::model::{Quantity, Timestamp};
use crate::process::aggregate::Aggregate;

/// One exceedance of one pollutant. Emitted when it opens (`end` None) and again when it closes;
/// both carry the same key (stack, quantity, start).
#[derive(Debug, Clone, PartialEq)]
pub struct Exceedance {
    pub stack: Arc<str>,
    pub quantity: Quantity,
    /// Start of the first exceeding hour.
    pub start: Timestamp,
    /// Start of the first compliant valid hour.
    pub end: Option<Timestamp>,
    /// Highest compared value (mg/m3, corrected) during the event so far.
    pub peak: f64,
    pub limit: f64,
    /// Valid hours above the limit during the event so far.
    pub hours: u32,
    /// Hours of the rolling window the compared value averages (1 = the hourly average).
    pub window_hours: u32,
}

#[derive(Debug, Clone)]
struct Tracked {
    quantity: Quantity,
    limit: f64,
    /// Valid hours (start ms, corrected average) inside the rolling window.
    window: VecDeque<(i64, f64)>,
    open: Option<Exceedance>,
}

/// Exceedance events of one stack.
#[derive(Debug, Clone)]
pub struct ExceedanceTracker {
    stack: Arc<str>,
    window_hours: u32,
    tracked: Vec<Tracked>,
}

impl ExceedanceTracker {
    /// `window_hours` of 1 compares each hourly average; N compares the mean of the valid hours
    /// among the last N clock hours.
    pub fn new(stack: Arc<str>, limits: &Limits, window_hours: u32) -> ExceedanceTracker {
        let window_hours = window_hours.max(1);
        ExceedanceTracker {
            stack,
            window_hours,
            tracked: limits
                .limited()
                .map(|(quantity, limit)| Tracked {
                    quantity,
                    limit,
                    window: VecDeque::with_capacity(window_hours as usize),
                    open: None,
                })
                .collect(),
        }
    }

    /// Feeds an aggregate; only valid hour aggregates of limited pollutants matter. Opened and
    /// closed events go to `out`.
    pub fn push(&mut self, agg: &Aggregate, out: &mut Vec<Exceedance>) {
        if agg.period != Period::Hour || !agg.valid {
            return;
        }
        let Some(value) = agg.corrected_avg else {
            return;
        };
        let Some(t) = self.tracked.iter_mut().find(|t| t.quantity == agg.quantity) else {
            return;
        };
        let start = agg.start.millis();
        let window_start = start - i64::from(self.window_hours - 1) * HOUR_MS;
        while t.window.front().is_some_and(|(s, _)| *s < window_start) {
            t.window.pop_front();
        }
        t.window.push_back((start, value));
        let compared = t.window.iter().map(|(_, v)| v).sum::<f64>() / t.window.len() as f64;

        if compared > t.limit {
            match &mut t.open {
                Some(event) => {
                    event.hours += 1;
                    event.peak = event.peak.max(compared);
                }
                None => {
                    let event = Exceedance {
                        stack: Arc::clone(&self.stack),
                        quantity: t.quantity,
                        start: agg.start,
                        end: None,
                        peak: compared,
                        limit: t.limit,
                        hours: 1,
                        window_hours: self.window_hours,
                    };
                    out.push(event.clone());
                    t.open = Some(event);
                }
            }
        } else if let Some(mut event) = t.open.take() {
            event.end = Some(agg.start);
            out.push(event);
        }
    }

    pub fn window_hours(&self) -> u32 {
        self.window_hours
    }

    /// Events still open, e.g. for a status page.
    pub fn open_events(&self) -> impl Iterator<Item = &Exceedance> {
        self.tracked.iter().filter_map(|t| t.open.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Flag, Unit};

    const T0: i64 = 1_767_196_800_000;

    fn hour(i: i64, corrected: f64, flag: Flag) -> Aggregate {
        Aggregate {
            period: Period::Hour,
            start: Timestamp(T0 + i * HOUR_MS),
            end: Timestamp(T0 + (i + 1) * HOUR_MS),
            stack: Arc::from("s1"),
            quantity: Quantity::SO2,
            unit: Unit::MgPerM3,
            valid: flag.valid_for_average(),
            flag,
            count: 60,
            total: 60,
            raw_avg: None,
            avg: Some(corrected * 0.8),
            min: None,
            max: None,
            corrected_avg: Some(corrected),
            corrected_min: None,
            corrected_max: None,
            rate_avg: None,
            mass_kg: None,
            note: None,
            revision: 0,
        }
    }

    fn run(tracker: &mut ExceedanceTracker, hours: &[Aggregate]) -> Vec<Exceedance> {
        let mut out = Vec::new();
        for h in hours {
            tracker.push(h, &mut out);
        }
        out
    }

    #[test]
    fn event_opens_at_first_exceeding_hour_and_closes_at_first_compliant_one() {
        let mut t = ExceedanceTracker::new(Arc::from("s1"), &Limits::ULTRA_LOW, 1);
        let out = run(
            &mut t,
            &[
                hour(0, 30.0, Flag::N),
                // 35 is the limit itself: compliant
                hour(1, 35.0, Flag::N),
                hour(2, 41.0, Flag::N),
                hour(3, 52.0, Flag::T),
                // plant stop and calibration neither close nor extend the event
                hour(4, 3.0, Flag::F),
                hour(5, 300.0, Flag::C),
                hour(6, 36.0, Flag::N),
                hour(7, 20.0, Flag::N),
            ],
        );
        let open = Exceedance {
            stack: Arc::from("s1"),
            quantity: Quantity::SO2,
            start: Timestamp(T0 + 2 * HOUR_MS),
            end: None,
            peak: 41.0,
            limit: 35.0,
            hours: 1,
            window_hours: 1,
        };
        // closed at the start of hour 7 after 3 exceeding valid hours, peak 52
        let closed = Exceedance {
            end: Some(Timestamp(T0 + 7 * HOUR_MS)),
            peak: 52.0,
            hours: 3,
            ..open.clone()
        };
        assert_eq!(out, [open, closed]);
        assert_eq!(t.open_events().count(), 0);
    }

    #[test]
    fn quantities_without_limit_and_minutes_are_ignored() {
        let mut t = ExceedanceTracker::new(Arc::from("s1"), &Limits::default(), 1);
        assert!(run(&mut t, &[hour(0, 1e6, Flag::N)]).is_empty());
        let mut t = ExceedanceTracker::new(Arc::from("s1"), &Limits::ULTRA_LOW, 1);
        let mut minute = hour(0, 1e6, Flag::N);
        minute.period = Period::Minute;
        assert!(run(&mut t, &[minute]).is_empty());
    }

    #[test]
    fn rolling_window_averages_the_valid_hours_in_it() {
        // 3-hour window, limit 35
        let mut t = ExceedanceTracker::new(Arc::from("s1"), &Limits::ULTRA_LOW, 3);
        let out = run(
            &mut t,
            &[
                // window {0}: 30
                hour(0, 30.0, Flag::N),
                // window {0,1}: (30 + 42)/2 = 36 > 35 → opens at hour 1
                hour(1, 42.0, Flag::N),
                // hour 2 invalid: not in the window
                hour(2, 90.0, Flag::D),
                // window {1,3} (hour 0 left it): (42 + 27)/2 = 34.5 → closes at hour 3
                hour(3, 27.0, Flag::N),
            ],
        );
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0].start, Timestamp(T0 + HOUR_MS));
        assert_eq!(out[0].peak, 36.0);
        assert_eq!(out[1].end, Some(Timestamp(T0 + 3 * HOUR_MS)));
        assert_eq!((out[1].hours, out[1].window_hours), (1, 3));
    }
}
