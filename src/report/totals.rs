//! Local calendar periods, and missing-data substitution for emission totals: a total sums
//! valid hourly masses (rate × 1 h); an hour without one may get a substituted mass
//! ([`substitute_missing`]), always reported as substituted and never replacing the hour's
//! own record (see [`super::table`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate};

use crate::model::time::{Period, UtcOffset, HOUR_MS};
use crate::model::{Quantity, Timestamp};
use crate::process::aggregate::Aggregate;

/// A calendar period in the site's local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CalendarPeriod {
    Day,
    Month,
    Year,
}

/// UTC start and end of the local calendar period containing `ts`; None only for timestamps
/// outside chrono's range.
pub fn calendar_bounds(
    ts: Timestamp,
    period: CalendarPeriod,
    offset: UtcOffset,
) -> Option<(Timestamp, Timestamp)> {
    let local =
        DateTime::from_timestamp_millis(ts.millis().checked_add(offset.millis())?)?.date_naive();
    let (first, next) = match period {
        CalendarPeriod::Day => (local, local.succ_opt()?),
        CalendarPeriod::Month => {
            let first = NaiveDate::from_ymd_opt(local.year(), local.month(), 1)?;
            let next = if local.month() == 12 {
                NaiveDate::from_ymd_opt(local.year() + 1, 1, 1)?
            } else {
                NaiveDate::from_ymd_opt(local.year(), local.month() + 1, 1)?
            };
            (first, next)
        }
        CalendarPeriod::Year => (
            NaiveDate::from_ymd_opt(local.year(), 1, 1)?,
            NaiveDate::from_ymd_opt(local.year() + 1, 1, 1)?,
        ),
    };
    let utc = |d: NaiveDate| -> Option<Timestamp> {
        let ms = d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis();
        Some(Timestamp(ms.checked_sub(offset.millis())?))
    };
    Some((utc(first)?, utc(next)?))
}

/// Which substitution rule produced a value. HJ 75-2017's own clause on missing data could
/// not be read from any public source at hand: the two rules below are the ones the project's
/// notes give (*verify* against the standard's text before a bureau relies on them); the
/// limits are the constants beside them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SubstitutionRule {
    /// Gap of at most [`BRACKETING_MAX_HOURS`]: mean of the valid hour before and after it.
    Bracketing,
    /// Longer gap: the largest valid hourly value of the previous
    /// [`LOOKBACK_VALID_HOURS`] valid hours.
    LookbackMaximum,
}

/// A substituted hourly mass, for totals only. It is reported as substituted and never replaces
/// the hour's own record or its gap.
#[derive(Debug, Clone, PartialEq)]
pub struct Substitution {
    pub stack: Arc<str>,
    pub quantity: Quantity,
    pub hour: Timestamp,
    pub mass_kg: f64,
    pub rule: SubstitutionRule,
}

/// Longest gap, in hours, filled by [`SubstitutionRule::Bracketing`].
pub const BRACKETING_MAX_HOURS: i64 = 24;
/// Valid hours [`SubstitutionRule::LookbackMaximum`] looks back over.
pub const LOOKBACK_VALID_HOURS: usize = 720;
/// How far back the valid hour before a gap, and the look-back, are searched: 60 days. It
/// bounds what a report reads; [`SUBSTITUTION_CONTEXT_MS`] is what a caller must read before
/// the first hour it fills so that every hour gets the same value whatever period asks.
pub const SEARCH_BACK_MS: i64 = 60 * 24 * HOUR_MS;
/// Hour records a caller reads before the first hour it fills.
pub const SUBSTITUTION_CONTEXT_MS: i64 = 2 * SEARCH_BACK_MS;
/// Hour records a caller reads after the last hour it fills (the valid hour closing a gap).
pub const SUBSTITUTION_AHEAD_MS: i64 = (BRACKETING_MAX_HOURS + 2) * HOUR_MS;

/// Substitute masses for every hour in `from..to` (whole hours) of one stack's one pollutant
/// that has no valid mass and was not a plant stop (flag F: a stopped unit emits nothing, so
/// nothing is filled in). `hours` holds that series' hour aggregates (any order) from
/// [`SUBSTITUTION_CONTEXT_MS`] before `from` to [`SUBSTITUTION_AHEAD_MS`] after `to`.
/// `known_until`: data after it may still come, so a gap still open then is filled only once
/// it is known to be long. Each hour's value depends only on the hours around it, so a day,
/// its month and its year substitute the same values.
pub fn substitute_missing(
    stack: &Arc<str>,
    quantity: Quantity,
    hours: &[Aggregate],
    from: Timestamp,
    to: Timestamp,
    known_until: Timestamp,
) -> Vec<Substitution> {
    let series = hours
        .iter()
        .filter(|h| h.period == Period::Hour && h.quantity == quantity);
    let mut valid: BTreeMap<i64, f64> = BTreeMap::new();
    let mut stopped: BTreeSet<i64> = BTreeSet::new();
    for h in series {
        match h.mass_kg.filter(|_| h.valid) {
            Some(mass) => {
                valid.insert(h.start.millis(), mass);
            }
            None if h.flag == crate::model::Flag::F => {
                stopped.insert(h.start.millis());
            }
            None => {}
        }
    }
    let mut out = Vec::new();
    let mut hour = from.millis();
    // an hour not over yet is not missing
    let last = to.millis().min(known_until.millis());
    while hour + HOUR_MS <= last {
        if !valid.contains_key(&hour) && !stopped.contains(&hour) {
            if let Some((mass_kg, rule)) = substitute_hour(&valid, hour, known_until.millis()) {
                out.push(Substitution {
                    stack: Arc::clone(stack),
                    quantity,
                    hour: Timestamp(hour),
                    mass_kg,
                    rule,
                });
            }
        }
        hour += HOUR_MS;
    }
    out
}

/// The value for one hour without a valid mass, from the valid hours around it.
fn substitute_hour(
    valid: &BTreeMap<i64, f64>,
    hour: i64,
    known_until: i64,
) -> Option<(f64, SubstitutionRule)> {
    let (&before, &before_mass) = valid.range(hour - SEARCH_BACK_MS..hour).next_back()?;
    // the gap is `after − before − 1` hours long: bracketing while that is ≤ 24
    let bracket_end = before + (BRACKETING_MAX_HOURS + 1) * HOUR_MS;
    let after = (hour + HOUR_MS <= bracket_end)
        .then(|| valid.range(hour + HOUR_MS..=bracket_end).next())
        .flatten();
    if let Some((_, &after_mass)) = after {
        return Some((
            (before_mass + after_mass) / 2.0,
            SubstitutionRule::Bracketing,
        ));
    }
    if bracket_end + HOUR_MS > known_until {
        // the hour that would close a short gap may still come
        return None;
    }
    valid
        .range(before - SEARCH_BACK_MS..=before)
        .rev()
        .take(LOOKBACK_VALID_HOURS)
        .map(|(_, m)| *m)
        .reduce(f64::max)
        .map(|m| (m, SubstitutionRule::LookbackMaximum))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Flag, Unit};

    /// 2026-01-01 00:00 at UTC+8.
    const T0: i64 = 1_767_196_800_000;

    fn hour(stack: &str, q: Quantity, i: i64, mass: Option<f64>, valid: bool) -> Aggregate {
        Aggregate {
            period: Period::Hour,
            start: Timestamp(T0 + i * HOUR_MS),
            end: Timestamp(T0 + (i + 1) * HOUR_MS),
            stack: Arc::from(stack),
            quantity: q,
            unit: Unit::MgPerM3,
            valid,
            flag: if valid { Flag::N } else { Flag::D },
            count: 0,
            total: 0,
            raw_avg: None,
            avg: None,
            min: None,
            max: None,
            corrected_avg: None,
            corrected_min: None,
            corrected_max: None,
            rate_avg: mass,
            mass_kg: mass.filter(|_| valid),
            note: None,
            revision: 0,
        }
    }

    #[test]
    fn calendar_bounds_in_local_time() {
        // 2026-01-31 23:30 local is in January; February 2026 starts 2026-02-01 00:00 local
        let ts = Timestamp(T0 + 30 * 24 * HOUR_MS + 23 * HOUR_MS + 30 * 60_000);
        let month = calendar_bounds(ts, CalendarPeriod::Month, UtcOffset::CHINA);
        let feb = T0 + 31 * 24 * HOUR_MS;
        assert_eq!(month, Some((Timestamp(T0), Timestamp(feb))));
        let year = calendar_bounds(ts, CalendarPeriod::Year, UtcOffset::CHINA);
        // 2026 has 365 days
        assert_eq!(
            year,
            Some((Timestamp(T0), Timestamp(T0 + 365 * 24 * HOUR_MS)))
        );
        let dec = calendar_bounds(Timestamp(T0 - 1), CalendarPeriod::Month, UtcOffset::CHINA);
        assert_eq!(dec.map(|(s, _)| s), Some(Timestamp(T0 - 31 * 24 * HOUR_MS)));
    }

    #[test]
    fn substitution_brackets_short_gaps_and_looks_back_over_long_ones() {
        let stack: Arc<str> = Arc::from("s1");
        let mut hours = vec![
            hour("s1", Quantity::SO2, 0, Some(10.0), true),
            hour("s1", Quantity::SO2, 1, Some(30.0), true),
            // hours 2, 3: gap of 2 h, hour 3 present but invalid
            hour("s1", Quantity::SO2, 3, Some(900.0), false),
            hour("s1", Quantity::SO2, 4, Some(20.0), true),
        ];
        // hours 5..=30 missing (26 h), then valid again at 31
        hours.push(hour("s1", Quantity::SO2, 31, Some(15.0), true));
        let subs = substitute_missing(
            &stack,
            Quantity::SO2,
            &hours,
            Timestamp(T0),
            Timestamp(T0 + 32 * HOUR_MS),
            Timestamp(T0 + 32 * HOUR_MS),
        );
        let got: Vec<_> = subs
            .iter()
            .map(|s| ((s.hour.millis() - T0) / HOUR_MS, s.mass_kg, s.rule))
            .collect();
        let mut want = vec![
            // (30 + 20)/2 = 25
            (2, 25.0, SubstitutionRule::Bracketing),
            (3, 25.0, SubstitutionRule::Bracketing),
        ];
        // largest of the previous valid hours 10, 30, 20 = 30
        want.extend((5..=30).map(|h| (h, 30.0, SubstitutionRule::LookbackMaximum)));
        assert_eq!(got, want);

        // an open short gap at the end, and one with no valid hour before, stay unfilled
        let subs = substitute_missing(
            &stack,
            Quantity::SO2,
            &hours[..2],
            Timestamp(T0 - 2 * HOUR_MS),
            Timestamp(T0 + 5 * HOUR_MS),
            Timestamp(T0 + 5 * HOUR_MS),
        );
        assert!(subs.is_empty(), "{subs:?}");

        // a plant-stop hour (F) between two valid hours is not filled: nothing was emitted
        let mut stop = hour("s1", Quantity::SO2, 2, None, false);
        stop.flag = Flag::F;
        let with_stop = [hours[0].clone(), hours[1].clone(), stop, hours[3].clone()];
        let subs = substitute_missing(
            &stack,
            Quantity::SO2,
            &with_stop,
            Timestamp(T0),
            Timestamp(T0 + 5 * HOUR_MS),
            Timestamp(T0 + 5 * HOUR_MS),
        );
        let filled: Vec<_> = subs
            .iter()
            .map(|s| (s.hour.millis() - T0) / HOUR_MS)
            .collect();
        assert_eq!(filled, [3], "{subs:?}");
    }
}
