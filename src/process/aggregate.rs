//! Minute, hour and day statistics with HJ 75-2017 validity.
//!
//! - Minute: statistics of the valid readings (N, T, S) in that minute; valid with at least one.
//!   A valid reading whose value was left out for a missing input (no moisture for a wet
//!   analyser) counts as valid but adds no value; the period keeps the reading's note.
//! - Hour: mean of the valid minute averages; valid with at least `hour_min_valid_minutes`
//!   (45, *verify*).
//! - Day: mean of the valid hour averages; valid with at least `day_min_valid_hours` (20,
//!   *verify*). Days (and hours, for offsets that are not whole hours) follow the site's local
//!   time, a fixed UTC offset: HJ 212 DataTime is local time, UTC+8 in China.
//!
//! Min and max of a period are the extremes of its valid sub-periods' minima and maxima, i.e. of
//! the valid readings underneath. A period with no valid data at all still reports the
//! statistics of whatever data it had (so a plant-stop or calibration hour shows what was
//! measured), with `valid = false` and `count = 0`.
//!
//! An invalid period carries the invalidating flag met most often among its sub-periods
//! (readings, minutes, hours; sub-periods with no record at all count as B), ties going to the
//! more severe flag. A valid period carries the most severe flag among its valid sub-periods
//! (N, T or S), so an hour with one over-range minute is reported T.
//!
//! Periods close when a reading of the same series lies beyond their end, or when
//! `tick(now)` finds now − arrival_grace beyond it; the result does not depend on how readings
//! are batched as long as a tick never claims a time for which readings are still to come.
//! A reading older than an already closed minute re-opens it: [`Aggregator::revise`] takes
//! the minute recomputed from all its readings, puts it in place of the old one in the open
//! hour, or — when the hour is closed too — recomputes the hour (and likewise the day) from
//! the stored periods, each emitted again as the next revision. Periods without any reading
//! produce no record; the gap records say why.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::stack::{millis, StackParams};
use crate::model::time::{floor, Period, UtcOffset, DAY_MS, HOUR_MS, MINUTE_MS};
use crate::model::{Flag, FlagSet, Quantity, Reading, Timestamp, Unit};

/// Statistics of one series over one period, in the reading's reporting unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub period: Period,
    /// UTC instant the period starts (local midnight for days).
    pub start: Timestamp,
    pub end: Timestamp,
    pub stack: Arc<str>,
    pub quantity: Quantity,
    pub unit: Unit,
    pub valid: bool,
    pub flag: Flag,
    /// Valid sub-periods used: readings (minute), minutes (hour), hours (day).
    pub count: u32,
    /// Sub-periods that had a record, valid or not.
    pub total: u32,
    /// Mean of `raw` (the wire value, e.g. ppm).
    pub raw_avg: Option<f64>,
    pub avg: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub corrected_avg: Option<f64>,
    pub corrected_min: Option<f64>,
    pub corrected_max: Option<f64>,
    /// Mean emission rate, kg/h.
    pub rate_avg: Option<f64>,
    /// Mass from valid data: minute and hour rate_avg × duration when valid; day the sum of its
    /// valid hours (also when the day as a whole is invalid). Never filled in for missing data.
    pub mass_kg: Option<f64>,
    /// The note of the period's last reading or sub-period (the valid ones, if any): why a
    /// value is absent ("no O2 source") or how it was obtained.
    pub note: Option<String>,
    /// 0 when first computed; one more each time late readings re-open the period.
    pub revision: u32,
}

/// One contribution to a period: a reading, or a closed sub-period.
#[derive(Debug, Clone, Copy)]
struct Entry<'a> {
    valid: bool,
    flag: Flag,
    raw: Option<f64>,
    avg: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    corrected_avg: Option<f64>,
    corrected_min: Option<f64>,
    corrected_max: Option<f64>,
    rate: Option<f64>,
    mass: Option<f64>,
    note: Option<&'a str>,
}

impl<'a> Entry<'a> {
    fn of_reading(r: &'a Reading, invalid: u8) -> Entry<'a> {
        let measured = Some(r.measured).filter(|v| v.is_finite());
        let corrected = r.corrected.filter(|v| v.is_finite());
        Entry {
            // Validity is the data review's (the flags); a value left out for a missing
            // input (see the note) is absent from the statistics, not an invalid reading.
            valid: r.flags.bits() & invalid == 0,
            flag: r.flags.primary(),
            raw: Some(r.raw).filter(|v| v.is_finite()),
            avg: measured,
            min: measured,
            max: measured,
            corrected_avg: corrected,
            corrected_min: corrected,
            corrected_max: corrected,
            rate: r.rate.filter(|v| v.is_finite()),
            mass: None,
            note: r.note.as_deref(),
        }
    }

    fn of_part(p: &'a Part) -> Entry<'a> {
        let [raw, avg, min, max, corrected_avg, corrected_min, corrected_max, rate, mass] =
            p.values.map(|v| (!v.is_nan()).then_some(v));
        Entry {
            valid: p.valid,
            flag: p.flag,
            raw,
            avg,
            min,
            max,
            corrected_avg,
            corrected_min,
            corrected_max,
            rate,
            mass,
            note: p.note.as_deref(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Mean {
    n: u32,
    sum: f64,
}

impl Mean {
    fn add(&mut self, v: Option<f64>) {
        if let Some(v) = v {
            self.n += 1;
            self.sum += v;
        }
    }

    fn get(self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / f64::from(self.n))
    }
}

#[derive(Debug, Clone, Copy)]
struct Extremes {
    min: f64,
    max: f64,
}

impl Default for Extremes {
    fn default() -> Self {
        Extremes {
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

impl Extremes {
    fn add(&mut self, min: Option<f64>, max: Option<f64>) {
        if let Some(v) = min {
            self.min = self.min.min(v);
        }
        if let Some(v) = max {
            self.max = self.max.max(v);
        }
    }

    fn min(self) -> Option<f64> {
        self.min.is_finite().then_some(self.min)
    }

    fn max(self) -> Option<f64> {
        self.max.is_finite().then_some(self.max)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Values {
    raw: Mean,
    avg: Mean,
    range: Extremes,
    corrected: Mean,
    corrected_range: Extremes,
    rate: Mean,
}

impl Values {
    fn add(&mut self, e: &Entry) {
        self.raw.add(e.raw);
        self.avg.add(e.avg);
        self.range.add(e.min, e.max);
        self.corrected.add(e.corrected_avg);
        self.corrected_range.add(e.corrected_min, e.corrected_max);
        self.rate.add(e.rate);
    }
}

/// A period being accumulated.
#[derive(Debug, Clone)]
struct Acc {
    start: i64,
    total: u32,
    valid: u32,
    invalid_tally: [u32; Flag::ALL.len()],
    valid_flags: FlagSet,
    of_valid: Values,
    of_all: Values,
    valid_mass: Mean,
    /// Note of the last valid entry, and of the last entry.
    valid_note: Option<String>,
    last_note: Option<String>,
}

/// Sets `held` to `note`, allocating only when it changes.
fn keep_note(held: &mut Option<String>, note: Option<&str>) {
    if held.as_deref() != note {
        *held = note.map(str::to_string);
    }
}

impl Acc {
    fn new(start: i64) -> Acc {
        Acc {
            start,
            total: 0,
            valid: 0,
            invalid_tally: [0; Flag::ALL.len()],
            valid_flags: FlagSet::EMPTY,
            of_valid: Values::default(),
            of_all: Values::default(),
            valid_mass: Mean::default(),
            valid_note: None,
            last_note: None,
        }
    }

    fn add(&mut self, e: &Entry) {
        self.total += 1;
        if e.valid {
            self.valid += 1;
            self.valid_flags.insert(e.flag);
            self.of_valid.add(e);
            self.valid_mass.add(e.mass);
            keep_note(&mut self.valid_note, e.note);
        } else {
            self.invalid_tally[e.flag as usize] += 1;
        }
        self.of_all.add(e);
        keep_note(&mut self.last_note, e.note);
    }
}

/// Settings shared by every series of a stack.
#[derive(Debug, Clone, Copy)]
struct Rules {
    offset_ms: i64,
    hour_min_valid_minutes: u32,
    day_min_valid_hours: u32,
    invalid: u8,
}

impl Rules {
    fn finish(
        &self,
        acc: Acc,
        period: Period,
        stack: &Arc<str>,
        quantity: Quantity,
        unit: Unit,
    ) -> Aggregate {
        let min_valid = match period {
            Period::Minute => 1,
            Period::Hour => self.hour_min_valid_minutes,
            Period::Day => self.day_min_valid_hours,
        };
        let expected = period.parts_in();
        let valid = acc.valid >= min_valid;
        let flag = if valid {
            acc.valid_flags.primary()
        } else {
            let mut tally = acc.invalid_tally;
            tally[Flag::B as usize] += expected.saturating_sub(acc.total);
            // Most frequent; on a tie the later (more severe) flag wins.
            Flag::ALL
                .into_iter()
                .filter(|f| !f.valid_for_average())
                .max_by_key(|f| (tally[*f as usize], *f))
                .unwrap_or(Flag::B)
        };
        let (values, note) = if acc.valid > 0 {
            (acc.of_valid, acc.valid_note)
        } else {
            (acc.of_all, acc.last_note)
        };
        let rate_avg = values.rate.get();
        let hours = period.millis() as f64 / HOUR_MS as f64;
        let mass_kg = match period {
            Period::Minute | Period::Hour => rate_avg.filter(|_| valid).map(|r| r * hours),
            Period::Day => (acc.valid_mass.n > 0).then_some(acc.valid_mass.sum),
        };
        Aggregate {
            period,
            start: Timestamp(acc.start),
            end: Timestamp(acc.start + period.millis()),
            stack: Arc::clone(stack),
            quantity,
            unit,
            valid,
            flag,
            count: acc.valid,
            total: acc.total,
            raw_avg: values.raw.get(),
            avg: values.avg.get(),
            min: values.range.min(),
            max: values.range.max(),
            corrected_avg: values.corrected.get(),
            corrected_min: values.corrected_range.min(),
            corrected_max: values.corrected_range.max(),
            rate_avg,
            mass_kg,
            note,
            revision: 0,
        }
    }
}

/// A closed sub-period as its hour or day needs it to be recomputed: what [`Entry`] reads,
/// with absent values as NaN. A fraction of an [`Aggregate`]'s size: late in the day a
/// 200-channel plant holds 14,600 of them (the open hours' minutes, the open days' hours),
/// and a restart rebuilds them all.
#[derive(Debug, Clone)]
struct Part {
    start: i64,
    /// raw, avg, min, max, corrected avg, min and max, rate, mass; NaN where absent.
    values: [f64; 9],
    valid: bool,
    flag: Flag,
    /// Shared with the other parts of the period that carry the same note.
    note: Option<Arc<str>>,
}

/// The closed sub-periods of an open hour or day, kept until it closes so that a late
/// revision of one of them takes its place.
#[derive(Debug, Clone)]
struct Parts {
    start: i64,
    /// In time order, one per sub-period start.
    parts: Vec<Part>,
}

impl Parts {
    /// Room for every sub-period of `period` is taken when it opens, so the memory a series
    /// needs is known from its first minute instead of growing (and doubling) towards the
    /// end of the day: the footprint after a start is the footprint at 23:59.
    fn new(start: i64, period: Period) -> Parts {
        Parts {
            start,
            parts: Vec::with_capacity(period.parts_in() as usize),
        }
    }

    /// Adds `agg`, or replaces the sub-period it revises.
    fn put(&mut self, agg: &Aggregate) {
        let absent = |v: Option<f64>| v.unwrap_or(f64::NAN);
        let note = agg.note.as_deref().map(|note| {
            self.parts
                .iter()
                .filter_map(|p| p.note.as_ref())
                .find(|held| ***held == *note)
                .map_or_else(|| Arc::from(note), Arc::clone)
        });
        let part = Part {
            start: agg.start.millis(),
            values: [
                agg.raw_avg,
                agg.avg,
                agg.min,
                agg.max,
                agg.corrected_avg,
                agg.corrected_min,
                agg.corrected_max,
                agg.rate_avg,
                agg.mass_kg,
            ]
            .map(absent),
            valid: agg.valid,
            flag: agg.flag,
            note,
        };
        match self.parts.binary_search_by_key(&part.start, |p| p.start) {
            Ok(i) => self.parts[i] = part,
            Err(i) => self.parts.insert(i, part),
        }
    }

    fn acc(&self) -> Acc {
        let mut acc = Acc::new(self.start);
        for part in &self.parts {
            acc.add(&Entry::of_part(part));
        }
        acc
    }
}

/// One stack's one quantity.
#[derive(Debug, Clone)]
struct Series {
    quantity: Quantity,
    unit: Unit,
    minute: Option<Acc>,
    hour: Option<Parts>,
    day: Option<Parts>,
    /// Readings before this instant can no longer be placed in the open minute: the start
    /// of the open minute, or the end of the last closed one.
    watermark: i64,
    /// A reading came since the last tick: the series is still being delivered (a backlog
    /// streaming in after an outage), so the clock does not close its periods yet.
    delivering: bool,
}

impl Series {
    /// Closes every period that ends at or before `t`, minute before hour before day.
    fn advance(&mut self, t: i64, rules: &Rules, stack: &Arc<str>, out: &mut Vec<Aggregate>) {
        self.close(
            |period, start| start + period.millis() <= t,
            rules,
            stack,
            out,
        );
    }

    /// Start of the hour or day still open: the one holding parts, or else the one the
    /// open minute (or hour) lies in, which has none yet.
    fn open_start(&self, period: Period, rules: &Rules) -> Option<i64> {
        let within = |start: i64| floor(start, period.millis(), rules.offset_ms);
        match period {
            Period::Minute => self.minute.as_ref().map(|m| m.start),
            Period::Hour => self
                .hour
                .as_ref()
                .map(|h| h.start)
                .or_else(|| self.minute.as_ref().map(|m| within(m.start))),
            Period::Day => self
                .day
                .as_ref()
                .map(|d| d.start)
                .or_else(|| self.open_start(Period::Hour, rules).map(within)),
        }
    }

    /// Closes the open periods `due` picks, minute before hour before day, each closed one
    /// entering the next longer period.
    fn close(
        &mut self,
        due: impl Fn(Period, i64) -> bool,
        rules: &Rules,
        stack: &Arc<str>,
        out: &mut Vec<Aggregate>,
    ) {
        if let Some(minute) = self.minute.take_if(|m| due(Period::Minute, m.start)) {
            self.watermark = minute.start + MINUTE_MS;
            let agg = rules.finish(minute, Period::Minute, stack, self.quantity, self.unit);
            let hour_start = floor(agg.start.millis(), HOUR_MS, rules.offset_ms);
            self.hour
                .get_or_insert_with(|| Parts::new(hour_start, Period::Hour))
                .put(&agg);
            out.push(agg);
        }
        if let Some(hour) = self.hour.take_if(|h| due(Period::Hour, h.start)) {
            // a later reading of a closed hour, even of a minute it lacks, revises it
            self.watermark = self.watermark.max(hour.start + HOUR_MS);
            let agg = rules.finish(hour.acc(), Period::Hour, stack, self.quantity, self.unit);
            let day_start = floor(agg.start.millis(), DAY_MS, rules.offset_ms);
            self.day
                .get_or_insert_with(|| Parts::new(day_start, Period::Day))
                .put(&agg);
            out.push(agg);
        }
        if let Some(day) = self.day.take_if(|d| due(Period::Day, d.start)) {
            self.watermark = self.watermark.max(day.start + DAY_MS);
            out.push(rules.finish(day.acc(), Period::Day, stack, self.quantity, self.unit));
        }
    }
}

/// Closed periods of one stack as the store holds them, the newest revision of each, from
/// which [`Aggregator::revise`] rebuilds the parents of a re-opened minute.
#[derive(Debug, Default)]
pub struct ClosedPeriods {
    periods: HashMap<(Quantity, Period, i64), Aggregate>,
}

impl ClosedPeriods {
    /// Takes a stored period; fed in store order, so a later revision replaces an earlier.
    pub fn insert(&mut self, agg: Aggregate) {
        self.periods
            .insert((agg.quantity, agg.period, agg.start.millis()), agg);
    }

    /// The revision number a recomputed period gets: one past the stored one.
    fn next_revision(&self, quantity: Quantity, period: Period, start: i64) -> u32 {
        self.periods
            .get(&(quantity, period, start))
            .map_or(0, |stored| stored.revision + 1)
    }

    /// The stored sub-periods of `quantity`'s hour or day (`parent`) starting at `from`.
    fn parts(&self, quantity: Quantity, parent: Period, from: i64) -> Parts {
        let mut parts = Parts::new(from, parent);
        for agg in self.periods.values() {
            let start = agg.start.millis();
            if agg.quantity == quantity
                && parent.part() == Some(agg.period)
                && start >= from
                && start < from + parent.millis()
            {
                parts.put(agg);
            }
        }
        parts
    }
}

/// Puts a revised minute (hour) into its hour (day), `period`: an open one takes it in place
/// of its earlier version; a closed one is recomputed from `closed`, which holds the revised
/// part already, and returned as its next revision.
fn revise_parent(
    series: &mut Series,
    rules: &Rules,
    stack: &Arc<str>,
    closed: &mut ClosedPeriods,
    part: Aggregate,
    period: Period,
) -> Option<Aggregate> {
    if period == Period::Minute {
        return None;
    }
    let quantity = part.quantity;
    let start = floor(part.start.millis(), period.millis(), rules.offset_ms);
    if series.open_start(period, rules) == Some(start) {
        let open = if period == Period::Hour {
            &mut series.hour
        } else {
            &mut series.day
        };
        open.get_or_insert_with(|| Parts::new(start, period))
            .put(&part);
        return None;
    }
    let parts = closed.parts(quantity, period, start);
    let mut parent = rules.finish(parts.acc(), period, stack, quantity, series.unit);
    parent.revision = closed.next_revision(quantity, period, start);
    closed.insert(parent.clone());
    Some(parent)
}

/// Minute, hour and day aggregation of every quantity of one stack. Assumes one channel per
/// quantity per stack.
#[derive(Debug, Clone)]
pub struct Aggregator {
    stack: Arc<str>,
    rules: Rules,
    grace_ms: i64,
    series: Vec<Option<Series>>,
}

impl Aggregator {
    pub fn new(stack: Arc<str>, params: &StackParams, offset: UtcOffset) -> Aggregator {
        let invalid = Flag::ALL
            .into_iter()
            .filter(|f| !f.valid_for_average())
            .fold(FlagSet::EMPTY, FlagSet::with)
            .bits();
        Aggregator {
            stack,
            rules: Rules {
                offset_ms: offset.millis(),
                hour_min_valid_minutes: params.hour_min_valid_minutes,
                day_min_valid_hours: params.day_min_valid_hours,
                invalid,
            },
            grace_ms: millis(params.arrival_grace),
            series: vec![None; Quantity::ALL.len()],
        }
    }

    /// Adds a checked reading; completed periods go to `out` (not cleared).
    pub fn push(&mut self, reading: &Reading, out: &mut Vec<Aggregate>) {
        let ts = reading.ts.millis();
        let rules = self.rules;
        let series = self.series[reading.quantity as usize].get_or_insert(Series {
            quantity: reading.quantity,
            unit: reading.unit,
            minute: None,
            hour: None,
            day: None,
            watermark: i64::MIN,
            delivering: false,
        });
        series.delivering = true;
        if ts < series.watermark {
            // the caller checks `is_late` first and revises instead; a reading placed here
            // anyway is not lost from the store, only from this minute's statistics
            return;
        }
        series.advance(ts, &rules, &self.stack, out);
        let minute = series
            .minute
            .get_or_insert_with(|| Acc::new(floor(ts, MINUTE_MS, rules.offset_ms)));
        series.watermark = minute.start;
        minute.add(&Entry::of_reading(reading, rules.invalid));
    }

    /// Whether a reading falls before the open minute of its series, into a minute already
    /// closed: it is taken through [`Aggregator::revise`] instead of [`Aggregator::push`].
    pub fn is_late(&self, reading: &Reading) -> bool {
        self.series[reading.quantity as usize]
            .as_ref()
            .is_some_and(|series| reading.ts.millis() < series.watermark)
    }

    /// The minute of `start` computed from all of `readings` (one series, that minute).
    pub fn minute_of(&self, start: Timestamp, readings: &[&Reading]) -> Option<Aggregate> {
        let first = readings.first()?;
        let mut acc = Acc::new(start.millis());
        for reading in readings {
            acc.add(&Entry::of_reading(reading, self.rules.invalid));
        }
        Some(
            self.rules
                .finish(acc, Period::Minute, &self.stack, first.quantity, first.unit),
        )
    }

    /// Takes a minute recomputed after late readings (see [`Aggregator::minute_of`]) as the
    /// next revision of the stored one. In an open hour it replaces its predecessor, to count
    /// when the hour closes; in a closed hour the hour is recomputed from `closed` and
    /// emitted as a revision too, and in turn its day. `closed` learns every revision, so
    /// several late minutes of one batch build on each other.
    pub fn revise(
        &mut self,
        mut minute: Aggregate,
        closed: &mut ClosedPeriods,
        out: &mut Vec<Aggregate>,
    ) {
        let rules = self.rules;
        let quantity = minute.quantity;
        let Some(series) = self.series[quantity as usize].as_mut() else {
            return;
        };
        let start = minute.start.millis();
        minute.revision = closed.next_revision(quantity, Period::Minute, start);
        closed.insert(minute.clone());
        out.push(minute.clone());

        let Some(hour) = revise_parent(series, &rules, &self.stack, closed, minute, Period::Hour)
        else {
            return;
        };
        out.push(hour.clone());
        out.extend(revise_parent(
            series,
            &rules,
            &self.stack,
            closed,
            hour,
            Period::Day,
        ));
    }

    /// Closes periods that ended by now − arrival_grace, of series that took no reading
    /// since the last tick: one still taking readings closes its periods as they pass, so a
    /// backlog of hours streaming in is aggregated as it comes instead of period by period
    /// as revisions.
    pub fn tick(&mut self, now: Timestamp, out: &mut Vec<Aggregate>) {
        let t = now.millis().saturating_sub(self.grace_ms);
        for series in self.series.iter_mut().flatten() {
            if std::mem::take(&mut series.delivering) {
                continue;
            }
            series.advance(t, &self.rules, &self.stack, out);
        }
    }

    /// The input has ended (a replayed capture, a test): closes what ended by
    /// now − arrival_grace whether or not readings came since the last tick.
    pub fn finish(&mut self, now: Timestamp, out: &mut Vec<Aggregate>) {
        for series in self.series.iter_mut().flatten() {
            series.delivering = false;
        }
        self.tick(now, out);
    }

    /// Restores, at a restart, a closed minute (or hour) the last run stored into the hour
    /// (or day) it belongs to, so that period counts it when it closes. Parts arrive in time
    /// order, those of the period of the series' newest reading; a part of another period
    /// than the one already being rebuilt is left out.
    pub fn seed(&mut self, part: &Aggregate) {
        let (parent, slot_of): (Period, fn(&mut Series) -> &mut Option<Parts>) = match part.period {
            Period::Minute => (Period::Hour, |s| &mut s.hour),
            Period::Hour => (Period::Day, |s| &mut s.day),
            Period::Day => return,
        };
        let series = self.series[part.quantity as usize].get_or_insert(Series {
            quantity: part.quantity,
            unit: part.unit,
            minute: None,
            hour: None,
            day: None,
            watermark: i64::MIN,
            delivering: false,
        });
        let start = floor(part.start.millis(), parent.millis(), self.rules.offset_ms);
        let parts = slot_of(series).get_or_insert_with(|| Parts::new(start, parent));
        if parts.start != start {
            return;
        }
        parts.put(part);
        // readings of a stored period can only revise it
        series.watermark = series
            .watermark
            .max(part.start.millis() + part.period.millis());
    }

    /// After a warm-up from stored readings: closes, without emitting them, the open periods
    /// `stored` says the last run already closed and stored, so they are not written twice.
    pub fn settle_stored(&mut self, stored: impl Fn(Quantity, Period, Timestamp) -> bool) {
        let mut already_stored = Vec::new();
        for series in self.series.iter_mut().flatten() {
            let quantity = series.quantity;
            series.close(
                |period, start| stored(quantity, period, Timestamp(start)),
                &self.rules,
                &self.stack,
                &mut already_stored,
            );
            already_stored.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::stack::SourceType;
    use crate::model::time::period_start;
    use crate::model::Basis;

    /// 2026-01-01 00:00:00 at UTC+8, i.e. 2025-12-31T16:00:00Z.
    const T0: i64 = 1_767_196_800_000;
    const S: i64 = 1000;

    fn so2(ts: i64, value: f64, flag: Option<Flag>) -> Reading {
        Reading {
            ts: Timestamp(ts),
            stack: Arc::from("s1"),
            device: Arc::from("ana1"),
            channel: Arc::from("SO2"),
            quantity: Quantity::SO2,
            unit: Unit::MgPerM3,
            basis: Basis::Dry,
            raw: value / 2.86,
            measured: value,
            corrected: Some(value * 1.25),
            rate: Some(2.0),
            flags: flag.map_or(FlagSet::EMPTY, FlagSet::of),
            note: None,
        }
    }

    fn aggregator() -> Aggregator {
        let mut p = StackParams::new("s1", SourceType::CoalBoiler);
        p.duct_area_m2 = Some(1.0);
        Aggregator::new(Arc::from("s1"), &p, UtcOffset::CHINA)
    }

    /// Feeds readings, then a tick two days later to close everything.
    fn aggregate(readings: &[Reading]) -> Vec<Aggregate> {
        let mut a = aggregator();
        let mut out = Vec::new();
        for r in readings {
            a.push(r, &mut out);
        }
        let last = readings.last().map_or(T0, |r| r.ts.millis());
        a.finish(Timestamp(last + 2 * DAY_MS), &mut out);
        out
    }

    fn of(out: &[Aggregate], period: Period) -> Vec<&Aggregate> {
        out.iter().filter(|a| a.period == period).collect()
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() <= 1e-9 * b.abs().max(1.0))
    }

    #[test]
    fn minute_statistics_use_valid_readings_only() {
        let out = aggregate(&[
            so2(T0, 10.0, None),
            so2(T0 + 10 * S, 20.0, Some(Flag::T)),
            so2(T0 + 20 * S, 30.0, None),
            so2(T0 + 30 * S, 1000.0, Some(Flag::C)),
        ]);
        let m = of(&out, Period::Minute);
        assert_eq!(m.len(), 1);
        let m = m[0];
        // (10 + 20 + 30)/3 = 20; corrected ×1.25: 12.5, 25, 37.5 → 25
        assert_eq!((m.valid, m.flag, m.count, m.total), (true, Flag::T, 3, 4));
        assert!(
            close(m.avg, 20.0) && m.min == Some(10.0) && m.max == Some(30.0),
            "{m:?}"
        );
        assert!(
            close(m.corrected_avg, 25.0) && close(m.corrected_max, 37.5),
            "{m:?}"
        );
        // raw 10/2.86, 20/2.86, 30/2.86 → 20/2.86
        assert!(close(m.raw_avg, 20.0 / 2.86), "{m:?}");
        // 2 kg/h for 1/60 h = 0.0333… kg
        assert!(
            close(m.rate_avg, 2.0) && close(m.mass_kg, 2.0 / 60.0),
            "{m:?}"
        );
        assert_eq!(m.start, Timestamp(T0));
        assert_eq!(m.end, Timestamp(T0 + MINUTE_MS));
    }

    #[test]
    fn invalid_minute_keeps_its_flag_and_what_was_measured() {
        let out = aggregate(&[
            so2(T0, 400.0, Some(Flag::C)),
            so2(T0 + 10 * S, 402.0, Some(Flag::C)),
            so2(T0 + 20 * S, 0.0, Some(Flag::M)),
        ]);
        let m = of(&out, Period::Minute)[0];
        // C twice, M once: C; statistics of all three: (400 + 402 + 0)/3 = 267.33…
        assert_eq!((m.valid, m.flag, m.count, m.total), (false, Flag::C, 0, 3));
        assert!(close(m.avg, 802.0 / 3.0), "{m:?}");
        assert_eq!(m.mass_kg, None);
    }

    /// One reading per minute of the hour starting at `hour_start`: `valid` minutes N with
    /// value = minute index, then the listed invalid minutes; the rest have no reading.
    fn hour(hour_start: i64, valid: u32, invalid: &[(Flag, u32)]) -> Vec<Reading> {
        let mut out = Vec::new();
        let mut minute = 0;
        for _ in 0..valid {
            out.push(so2(hour_start + minute * MINUTE_MS, minute as f64, None));
            minute += 1;
        }
        for (flag, n) in invalid {
            for _ in 0..*n {
                out.push(so2(hour_start + minute * MINUTE_MS, 999.0, Some(*flag)));
                minute += 1;
            }
        }
        out
    }

    #[test]
    fn hour_is_valid_with_45_valid_minutes() {
        let out = aggregate(&hour(T0, 45, &[(Flag::C, 15)]));
        let h = of(&out, Period::Hour)[0];
        // minutes 0..44 → mean 22; corrected ×1.25 = 27.5
        assert_eq!((h.valid, h.flag, h.count, h.total), (true, Flag::N, 45, 60));
        assert!(close(h.avg, 22.0) && close(h.corrected_avg, 27.5), "{h:?}");
        assert_eq!((h.min, h.max), (Some(0.0), Some(44.0)));
        // 2 kg/h × 1 h
        assert!(close(h.mass_kg, 2.0), "{h:?}");
    }

    #[test]
    fn hour_with_44_valid_minutes_is_invalid_and_says_why() {
        // 44 valid, 10 C, 6 without any reading (counted B): C is the most frequent
        let out = aggregate(&hour(T0, 44, &[(Flag::C, 10)]));
        let h = of(&out, Period::Hour)[0];
        assert_eq!(
            (h.valid, h.flag, h.count, h.total),
            (false, Flag::C, 44, 54)
        );
        // its average still comes from the 44 valid minutes: mean of 0..43 = 21.5
        assert!(close(h.avg, 21.5), "{h:?}");
        assert_eq!(h.mass_kg, None);

        // 44 valid, 8 C, 8 M: a tie goes to the more severe M
        let out = aggregate(&hour(T0, 44, &[(Flag::C, 8), (Flag::M, 8)]));
        assert_eq!(of(&out, Period::Hour)[0].flag, Flag::M);

        // 44 valid, 2 D, 14 missing: B
        let out = aggregate(&hour(T0, 44, &[(Flag::D, 2)]));
        assert_eq!(of(&out, Period::Hour)[0].flag, Flag::B);
    }

    /// `valid` full valid hours from local midnight, then `invalid` hours of F.
    fn day(valid: i64, invalid: i64) -> Vec<Reading> {
        let mut out = Vec::new();
        for h in 0..valid {
            out.extend(hour(T0 + h * HOUR_MS, 60, &[]));
        }
        for h in valid..valid + invalid {
            out.extend(hour(T0 + h * HOUR_MS, 0, &[(Flag::F, 60)]));
        }
        out
    }

    #[test]
    fn day_is_valid_with_20_valid_hours() {
        let out = aggregate(&day(20, 4));
        let d = of(&out, Period::Day);
        assert_eq!(d.len(), 1);
        let d = d[0];
        // every valid hour averages minutes 0..59 = 29.5
        assert_eq!((d.valid, d.flag, d.count, d.total), (true, Flag::N, 20, 24));
        assert!(close(d.avg, 29.5), "{d:?}");
        // 20 valid hours × 2 kg
        assert!(close(d.mass_kg, 40.0), "{d:?}");
        assert_eq!(d.start, Timestamp(T0));
        assert_eq!(d.end, Timestamp(T0 + DAY_MS));
    }

    #[test]
    fn day_with_19_valid_hours_is_invalid() {
        let out = aggregate(&day(19, 5));
        let d = of(&out, Period::Day)[0];
        assert_eq!((d.valid, d.flag, d.count), (false, Flag::F, 19));
        // the valid hours' mass still counts towards totals: 19 × 2 kg
        assert!(close(d.mass_kg, 38.0), "{d:?}");
    }

    #[test]
    fn days_follow_local_time() {
        // 23:59 and 00:00 local (UTC+8) are different days though the same UTC date
        let out = aggregate(&[so2(T0 - MINUTE_MS, 5.0, None), so2(T0, 7.0, None)]);
        let days: Vec<_> = of(&out, Period::Day).iter().map(|d| d.start).collect();
        assert_eq!(days, [Timestamp(T0 - DAY_MS), Timestamp(T0)]);
        assert_eq!(
            period_start(Timestamp(T0 + 5 * HOUR_MS), Period::Day, UtcOffset::CHINA),
            Timestamp(T0)
        );
        // with a half-hour offset hours start at half past in UTC
        let ist = UtcOffset::from_seconds(5 * 3600 + 1800).unwrap_or_default();
        assert_eq!(
            period_start(Timestamp(45 * MINUTE_MS), Period::Hour, ist),
            Timestamp(30 * MINUTE_MS)
        );
    }

    #[test]
    fn ticks_close_periods_after_the_grace_only() {
        let mut a = aggregator();
        let mut out = Vec::new();
        a.push(&so2(T0, 5.0, None), &mut out);
        // the minute ends at T0 + 60 s; grace 30 s
        a.tick(Timestamp(T0 + 89_999), &mut out);
        assert!(out.is_empty());
        a.tick(Timestamp(T0 + 90_000), &mut out);
        assert_eq!(out.len(), 1);
        // a reading for the closed minute is late: it goes to a revision
        assert!(a.is_late(&so2(T0 + 59_000, 5.0, None)));
        a.push(&so2(T0 + 5 * MINUTE_MS, 5.0, None), &mut out);
        // so is one before the open minute; one inside it is not
        assert!(a.is_late(&so2(T0 + 2 * MINUTE_MS, 5.0, None)));
        assert!(!a.is_late(&so2(T0 + 5 * MINUTE_MS + 1, 5.0, None)));
    }

    /// Runs readings in the given order as the pipeline does: a reading before the open
    /// minute revises its minute from every reading of it taken so far, against what the
    /// store holds (every aggregate emitted). Returns the newest revision of each period.
    fn in_arrival_order(readings: &[Reading]) -> (Vec<Aggregate>, u32) {
        let mut a = aggregator();
        let mut out = Vec::new();
        let mut closed = ClosedPeriods::default();
        let mut taken: Vec<Reading> = Vec::new();
        for r in readings {
            let mut emitted = Vec::new();
            if a.is_late(r) {
                let start = period_start(r.ts, Period::Minute, UtcOffset::CHINA);
                taken.push(r.clone());
                let minute: Vec<&Reading> = taken
                    .iter()
                    .filter(|t| period_start(t.ts, Period::Minute, UtcOffset::CHINA) == start)
                    .collect();
                if let Some(minute) = a.minute_of(start, &minute) {
                    a.revise(minute, &mut closed, &mut emitted);
                }
            } else {
                taken.push(r.clone());
                a.push(r, &mut emitted);
                for agg in &emitted {
                    closed.insert(agg.clone());
                }
            }
            out.extend(emitted);
        }
        a.finish(Timestamp(T0 + 3 * DAY_MS), &mut out);
        let mut newest: std::collections::BTreeMap<(i64, Period), Aggregate> = Default::default();
        let mut revisions = 0;
        for agg in out {
            revisions = revisions.max(agg.revision);
            newest.insert((agg.start.millis(), agg.period), agg);
        }
        (newest.into_values().collect(), revisions)
    }

    fn without_revision(aggs: Vec<Aggregate>) -> Vec<Aggregate> {
        aggs.into_iter()
            .map(|a| Aggregate { revision: 0, ..a })
            .collect()
    }

    /// Equal period by period up to float rounding (sums in another order), naming the
    /// first that differs.
    fn same_periods(got: Vec<Aggregate>, want: &[Aggregate]) {
        fn rounded(a: &Aggregate) -> Aggregate {
            let r = |v: Option<f64>| v.map(|v| (v * 1e9).round() / 1e9);
            Aggregate {
                raw_avg: r(a.raw_avg),
                avg: r(a.avg),
                min: r(a.min),
                max: r(a.max),
                corrected_avg: r(a.corrected_avg),
                corrected_min: r(a.corrected_min),
                corrected_max: r(a.corrected_max),
                rate_avg: r(a.rate_avg),
                mass_kg: r(a.mass_kg),
                ..a.clone()
            }
        }
        assert_eq!(got.len(), want.len(), "number of periods");
        for (g, w) in got.iter().zip(want) {
            assert_eq!(
                rounded(g),
                rounded(w),
                "period {:?} at {}",
                w.period,
                w.start
            );
        }
    }

    #[test]
    fn arrival_order_does_not_change_the_newest_periods() {
        // two hours and a bit: 10 s readings with varying values and a calibration stretch
        let readings: Vec<Reading> = (0..800)
            .map(|i| {
                let flag = (300..340).contains(&i).then_some(Flag::C);
                so2(T0 + i * 10 * S, (i % 37) as f64, flag)
            })
            .collect();
        let (in_order, revisions) = in_arrival_order(&readings);
        assert_eq!(revisions, 0);
        assert!(in_order.iter().any(|a| a.period == Period::Day));

        let mut reversed = readings.clone();
        reversed.reverse();
        let (got, revisions) = in_arrival_order(&reversed);
        assert!(revisions > 0, "reverse order revised nothing");
        same_periods(without_revision(got), &in_order);

        // every tenth reading held back an hour (a broker outage), then delivered
        let (mut on_time, mut held): (Vec<_>, Vec<_>) = (Vec::new(), Vec::new());
        for (i, r) in readings.iter().enumerate() {
            if i % 10 == 3 {
                held.push(r.clone())
            } else {
                on_time.push(r.clone())
            }
        }
        let mut shuffled = on_time[..400].to_vec();
        shuffled.extend(held);
        shuffled.extend_from_slice(&on_time[400..]);
        let (got, _) = in_arrival_order(&shuffled);
        same_periods(without_revision(got), &in_order);
    }

    #[test]
    fn a_late_minute_in_a_closed_hour_revises_hour_and_day() {
        let mut a = aggregator();
        let mut closed = ClosedPeriods::default();
        let mut out = Vec::new();
        // 44 valid minutes: the hour is invalid (B for the 16 missing) …
        for r in hour(T0, 44, &[]) {
            a.push(&r, &mut out);
        }
        a.finish(Timestamp(T0 + 2 * DAY_MS), &mut out);
        for agg in &out {
            closed.insert(agg.clone());
        }
        let first_hour = of(&out, Period::Hour)[0].clone();
        assert_eq!((first_hour.valid, first_hour.flag), (false, Flag::B));
        // … until minute 50 arrives late with value 100: 45 valid minutes
        let late = so2(T0 + 50 * MINUTE_MS, 100.0, None);
        assert!(a.is_late(&late));
        let minute = a
            .minute_of(Timestamp(T0 + 50 * MINUTE_MS), &[&late])
            .unwrap_or_else(|| panic!("no minute"));
        let mut revised = Vec::new();
        a.revise(minute, &mut closed, &mut revised);
        let kinds: Vec<(Period, u32)> = revised.iter().map(|r| (r.period, r.revision)).collect();
        // the minute is new (revision 0); hour and day are second versions
        assert_eq!(
            kinds,
            [(Period::Minute, 0), (Period::Hour, 1), (Period::Day, 1)]
        );
        let h = &revised[1];
        // (0 + 1 + … + 43 + 100) / 45 = (946 + 100) / 45
        assert_eq!((h.valid, h.flag, h.count, h.total), (true, Flag::N, 45, 45));
        assert!(close(h.avg, 1046.0 / 45.0), "{h:?}");
        assert_eq!(h.max, Some(100.0));
        let d = &revised[2];
        assert!(close(d.avg, 1046.0 / 45.0), "{d:?}");
        // a second late reading of the same minute revises all three once more
        let again = so2(T0 + 50 * MINUTE_MS + 30 * S, 40.0, None);
        let minute = a
            .minute_of(Timestamp(T0 + 50 * MINUTE_MS), &[&late, &again])
            .unwrap_or_else(|| panic!("no minute"));
        let mut revised = Vec::new();
        a.revise(minute, &mut closed, &mut revised);
        let kinds: Vec<(Period, u32)> = revised.iter().map(|r| (r.period, r.revision)).collect();
        assert_eq!(
            kinds,
            [(Period::Minute, 1), (Period::Hour, 2), (Period::Day, 2)]
        );
        // the minute averages 70 now: (946 + 70) / 45
        assert!(close(revised[1].avg, 1016.0 / 45.0), "{:?}", revised[1]);
    }

    #[test]
    fn a_kept_minute_keeps_absent_values_absent_and_shares_its_note_with_the_others() {
        let a = aggregator();
        let minute = |start: i64, value: f64| {
            let mut r = so2(start + 10 * S, value, None);
            r.corrected = None;
            r.note = Some("no O2 source".into());
            a.minute_of(Timestamp(start), &[&r])
                .unwrap_or_else(|| panic!("no minute"))
        };
        let mut hour = Parts::new(T0, Period::Hour);
        assert!(
            hour.parts.capacity() >= 60,
            "the hour's room is taken when it opens"
        );
        hour.put(&minute(T0, 10.0));
        hour.put(&minute(T0 + MINUTE_MS, 20.0));
        let [first, second] = &hour.parts[..] else {
            panic!("{:?}", hour.parts);
        };
        let (Some(a_note), Some(b_note)) = (&first.note, &second.note) else {
            panic!("notes lost: {:?}", hour.parts);
        };
        assert!(Arc::ptr_eq(a_note, b_note), "one note held once");
        let rules = aggregator().rules;
        let closed = rules.finish(
            hour.acc(),
            Period::Hour,
            &Arc::from("s1"),
            Quantity::SO2,
            Unit::MgPerM3,
        );
        assert!(close(closed.avg, 15.0), "{closed:?}");
        assert_eq!((closed.min, closed.max), (Some(10.0), Some(20.0)));
        assert_eq!(closed.corrected_avg, None, "{closed:?}");
        assert_eq!(closed.corrected_max, None, "{closed:?}");
        assert_eq!(closed.note.as_deref(), Some("no O2 source"));
    }

    #[test]
    fn utc_offsets_parse_and_print() {
        assert_eq!("+08:00".parse(), Ok(UtcOffset::CHINA));
        assert_eq!("Z".parse(), Ok(UtcOffset::UTC));
        let offset: Result<UtcOffset, _> = "-05:30".parse();
        assert_eq!(offset.map(|o| o.seconds()), Ok(-(5 * 3600 + 1800)));
        assert_eq!(UtcOffset::CHINA.to_string(), "+08:00");
        for bad in ["8", "+8:00", "+24:00", "+08:60", "UTC+8", ""] {
            assert!(bad.parse::<UtcOffset>().is_err(), "{bad}");
        }
    }
}
