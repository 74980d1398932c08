//! Exceedance events (GB 13223-2011 limits, HJ 75-2017 hourly averages): the O2-corrected
//! hourly average of a pollutant compared with its limit. An event opens at the first valid hour
//! above the limit and closes at the first valid hour at or below it. Invalid hours — plant stop
//! (F), calibration, maintenance, fault, missing data — neither open nor close an event and do
//! not enter a rolling window.
//!
//! An hour revised after late readings ([`ExceedanceTracker::revise`]) is put in its place
//! and the hours after it are compared again from the state the tracker had before it, so
//! events follow the revised data: an event now opening, closing elsewhere or peaking higher
//! is stored again under its key; one that no longer happens is withdrawn (stored ending
//! where it starts, with no hours).

use std::collections::VecDeque;
use std::sync::Arc;

use crate::config::stack::Limits;
use crate::model::time::{Period, HOUR_MS};
use crate::model::{Quantity, Timestamp};
use crate::process::aggregate::Aggregate;

/// The value a valid hour is compared with the limit by: its O2-corrected average.
fn compared_value(agg: &Aggregate) -> Option<f64> {
    if agg.period != Period::Hour || !agg.valid {
        return None;
    }
    agg.corrected_avg
}

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

/// Valid hours (start ms, corrected average) inside the rolling window, and the event open.
#[derive(Debug, Clone, Default)]
struct State {
    window: VecDeque<(i64, f64)>,
    open: Option<Exceedance>,
}

/// One valid hour compared, with the state before it, so a revision can restart there.
#[derive(Debug, Clone)]
struct Step {
    start: i64,
    value: f64,
    before: State,
    /// Start of the event this hour opened.
    opened: Option<i64>,
}

/// Valid hours kept for revisions: the longest lateness horizon (31 days).
const HISTORY_HOURS: usize = 31 * 24;

#[derive(Debug, Clone)]
struct Tracked {
    quantity: Quantity,
    limit: f64,
    state: State,
    history: VecDeque<Step>,
}

impl Tracked {
    /// Compares one valid hour; returns the start of the event it opened.
    fn compare(
        &mut self,
        stack: &Arc<str>,
        window_hours: u32,
        start: i64,
        value: f64,
        out: &mut Vec<Exceedance>,
    ) -> Option<i64> {
        let state = &mut self.state;
        let window_start = start - i64::from(window_hours - 1) * HOUR_MS;
        while state.window.front().is_some_and(|(s, _)| *s < window_start) {
            state.window.pop_front();
        }
        state.window.push_back((start, value));
        let compared = state.window.iter().map(|(_, v)| v).sum::<f64>() / state.window.len() as f64;
        if compared > self.limit {
            match &mut state.open {
                Some(event) => {
                    event.hours += 1;
                    event.peak = event.peak.max(compared);
                    None
                }
                None => {
                    let event = Exceedance {
                        stack: Arc::clone(stack),
                        quantity: self.quantity,
                        start: Timestamp(start),
                        end: None,
                        peak: compared,
                        limit: self.limit,
                        hours: 1,
                        window_hours,
                    };
                    out.push(event.clone());
                    state.open = Some(event);
                    Some(start)
                }
            }
        } else {
            if let Some(mut event) = state.open.take() {
                event.end = Some(Timestamp(start));
                out.push(event);
            }
            None
        }
    }

    /// Compares `value` at `start` and keeps the step for revisions.
    fn step(
        &mut self,
        stack: &Arc<str>,
        window_hours: u32,
        start: i64,
        value: f64,
        out: &mut Vec<Exceedance>,
    ) {
        let before = self.state.clone();
        let opened = self.compare(stack, window_hours, start, value, out);
        if self.history.len() == HISTORY_HOURS {
            self.history.pop_front();
        }
        self.history.push_back(Step {
            start,
            value,
            before,
            opened,
        });
    }
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
                    state: State::default(),
                    history: VecDeque::new(),
                })
                .collect(),
        }
    }

    /// Feeds an aggregate; only valid hour aggregates of limited pollutants matter. Opened and
    /// closed events go to `out`.
    pub fn push(&mut self, agg: &Aggregate, out: &mut Vec<Exceedance>) {
        let Some(value) = compared_value(agg) else {
            return;
        };
        let Some(t) = self.tracked.iter_mut().find(|t| t.quantity == agg.quantity) else {
            return;
        };
        t.step(
            &self.stack,
            self.window_hours,
            agg.start.millis(),
            value,
            out,
        );
    }

    /// Takes an hour stored again after late readings (valid or not now) in place of its
    /// earlier version and compares the hours from it on again; the events that change are
    /// stored again, those that no longer happen withdrawn. An hour before every hour kept
    /// changes nothing.
    pub fn revise(&mut self, agg: &Aggregate, out: &mut Vec<Exceedance>) {
        if agg.period != Period::Hour {
            return;
        }
        let Some(t) = self.tracked.iter_mut().find(|t| t.quantity == agg.quantity) else {
            return;
        };
        let start = agg.start.millis();
        let from = t.history.partition_point(|step| step.start < start);
        if from == 0 && t.history.front().is_some_and(|first| first.start > start) {
            return;
        }
        let mut later: Vec<Step> = t.history.drain(from..).collect();
        let opened_before: Vec<i64> = later.iter().filter_map(|s| s.opened).collect();
        if let Some(first) = later.first() {
            t.state = first.before.clone();
        }
        later.retain(|step| step.start != start);
        let mut replayed = Vec::new();
        if let Some(value) = compared_value(agg) {
            t.step(&self.stack, self.window_hours, start, value, &mut replayed);
        }
        for step in later {
            t.step(
                &self.stack,
                self.window_hours,
                step.start,
                step.value,
                &mut replayed,
            );
        }
        // each event the replay touched, as it stands now; an open one with its peak so far
        let mut latest: Vec<Exceedance> = Vec::new();
        for event in replayed.into_iter().chain(t.state.open.clone()) {
            match latest.iter_mut().find(|e| e.start == event.start) {
                Some(held) => *held = event,
                None => latest.push(event),
            }
        }
        for gone in opened_before
            .into_iter()
            .filter(|start| latest.iter().all(|e| e.start.millis() != *start))
        {
            out.push(Exceedance {
                stack: Arc::clone(&self.stack),
                quantity: t.quantity,
                start: Timestamp(gone),
                end: Some(Timestamp(gone)),
                peak: 0.0,
                limit: t.limit,
                hours: 0,
                window_hours: self.window_hours,
            });
        }
        out.extend(latest);
    }

    pub fn window_hours(&self) -> u32 {
        self.window_hours
    }

    /// Events still open, e.g. for a status page.
    pub fn open_events(&self) -> impl Iterator<Item = &Exceedance> {
        self.tracked.iter().filter_map(|t| t.state.open.as_ref())
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

    /// (start hour, end hour, hours, peak) of events, as the store would read them: the
    /// latest row of each start.
    fn events(rows: &[Exceedance]) -> Vec<(i64, Option<i64>, u32, f64)> {
        let mut latest = std::collections::BTreeMap::new();
        for e in rows {
            let hour = |t: Timestamp| (t.millis() - T0) / HOUR_MS;
            latest.insert(
                hour(e.start),
                (hour(e.start), e.end.map(hour), e.hours, e.peak),
            );
        }
        latest.into_values().collect()
    }

    #[test]
    fn a_revised_hour_changes_the_events_after_it() {
        let mut t = ExceedanceTracker::new(Arc::from("s1"), &Limits::ULTRA_LOW, 1);
        let mut rows = run(
            &mut t,
            &[
                hour(0, 30.0, Flag::N),
                hour(1, 40.0, Flag::N),
                hour(2, 40.0, Flag::N),
                hour(3, 30.0, Flag::N),
                hour(4, 30.0, Flag::N),
            ],
        );
        assert_eq!(events(&rows), [(1, Some(3), 2, 40.0)]);
        // late readings raise hour 3 over the limit: the event lasts until hour 4
        t.revise(&hour(3, 50.0, Flag::N), &mut rows);
        assert_eq!(events(&rows), [(1, Some(4), 3, 50.0)]);
        // and bring hour 1 under it: the event starts at hour 2 instead, the one of hour 1
        // is withdrawn (ends where it starts, no hours)
        t.revise(&hour(1, 30.0, Flag::N), &mut rows);
        assert_eq!(events(&rows), [(1, Some(1), 0, 0.0), (2, Some(4), 2, 50.0)]);
        // an hour that becomes invalid leaves the comparison: hour 2 alone cannot open it
        t.revise(&hour(2, 40.0, Flag::C), &mut rows);
        assert_eq!(
            events(&rows),
            [
                (1, Some(1), 0, 0.0),
                (2, Some(2), 0, 0.0),
                (3, Some(4), 1, 50.0)
            ]
        );
        // an hour that was missing arrives late and exceeds: an event still open
        let mut more = Vec::new();
        t.revise(&hour(5, 60.0, Flag::N), &mut more);
        assert_eq!(events(&more), [(5, None, 1, 60.0)]);
        assert_eq!(t.open_events().count(), 1);
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
