//! The tables of HJ 75-2017's report appendix, built from the store's hour and day records:
//! hourly values of a day (小时平均值日报表), daily values of a month (日平均值月报表) and
//! monthly values of a year (月平均值年报表). Per pollutant each row gives the measured and the
//! O2-corrected concentration and the emission (kg/h for an hour, t for a day or month), then
//! O2, flow and the flue-gas state.
//!
//! The appendix's own text could not be read from any public source at hand; the layout (columns,
//! summary rows 平均值/最大值/最小值/排放量) follows the issue that asked for it and the table of
//! contents of HJ/T 75-2007 §11 (数据记录与报表) and HJ 75-2017, and the decimals are this
//! project's choice ([`super::sheet`]). Rules, each with where it comes from:
//! - an invalid period shows its flag (HJ 212-2017 data flags), never a number;
//! - an hour is valid with `hour_min_valid_minutes` valid minutes, a day with
//!   `day_min_valid_hours` valid hours (both configurable per stack; HJ 75-2017's clause not
//!   read, *verify*); the report takes the validity the store's records carry;
//! - a month's average is the mean of its valid days' averages (no clause found; the row also
//!   counts its valid days, so a reader can judge it);
//! - emissions: valid hours' masses (rate × 1 h, measured dry concentration × standard dry
//!   flow), plus substituted masses for hours without one ([`super::totals::substitute_missing`]),
//!   marked as substituted. A day's emission is the sum of its hours, a month's the sum of its
//!   days, a year's the sum of its months, so the three tables always agree.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::stack::StackParams;
use crate::config::SiteConfig;
use crate::model::time::{UtcOffset, HOUR_MS};
use crate::model::{Flag, Quantity, Timestamp, Unit};
use crate::process::aggregate::Aggregate;
use crate::process::aggregate_of;
use crate::report::daily::{exceedance_rows, ExceedanceRow};
use crate::report::holdings::{self, EmptyPeriod};
use crate::report::period::{ReportPeriod, RowPeriod};
use crate::report::rates::{self, FgdPeriod, RateRow};
use crate::report::totals::{
    substitute_missing, CalendarPeriod, SUBSTITUTION_AHEAD_MS, SUBSTITUTION_CONTEXT_MS,
};
use crate::store::{Query, RecordKind, Store, StoreError, Stored};

/// Pollutant columns in the order of HJ 75's tables (particulate, SO2, NOx), then the others
/// a site may measure. NO and NO2 appear only where NOx is not reported.
const POLLUTANT_ORDER: [Quantity; 8] = [
    Quantity::Dust,
    Quantity::SO2,
    Quantity::NOx,
    Quantity::CO,
    Quantity::HCl,
    Quantity::NH3,
    Quantity::NO,
    Quantity::NO2,
];

/// Flue-gas columns after the pollutants.
const AUX_ORDER: [Quantity; 6] = [
    Quantity::O2,
    Quantity::Flow,
    Quantity::Velocity,
    Quantity::Temperature,
    Quantity::Pressure,
    Quantity::Humidity,
];

/// One value of a table cell, as a bureau must read it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "state", content = "value", rename_all = "snake_case")]
pub enum Value {
    Valid(f64),
    /// The period is invalid: its HJ 212 flag, never a number.
    Invalid(char),
    /// No record at all.
    Missing,
    /// Filled in by missing-data substitution (emissions only), or a sum containing such values.
    Substituted(f64),
}

impl Value {
    pub fn number(self) -> Option<f64> {
        match self {
            Value::Valid(v) | Value::Substituted(v) => Some(v),
            Value::Invalid(_) | Value::Missing => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    /// Hours of a day; emission column in kg/h.
    Day,
    /// Days of a month; emission column in t.
    Month,
    /// Months of a year; emission column in t.
    Year,
}

/// A pollutant's three cells in one row.
#[derive(Debug, Clone, Serialize)]
pub struct PollutantCells {
    pub measured: Value,
    pub corrected: Value,
    /// kg/h in a day table, t in month and year tables.
    pub emission: Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableRow {
    pub label: String,
    pub pollutants: Vec<PollutantCells>,
    pub aux: Vec<Value>,
    /// Valid sub-periods behind the row's SO2 (or first pollutant) value: valid hours of a
    /// day, valid days of a month; None in a day table.
    pub valid_count: Option<u32>,
}

/// Emission of one pollutant over the whole period.
#[derive(Debug, Clone, Serialize)]
pub struct PollutantTotal {
    pub quantity: Quantity,
    /// From valid hours.
    pub measured_kg: f64,
    /// From substituted hours.
    pub substituted_kg: f64,
    pub valid_hours: u32,
    /// Hours with a record that gave no mass (invalid, or no flow).
    pub invalid_hours: u32,
    /// Hours up to now with no record at all.
    pub missing_hours: u32,
    pub substituted_hours: u32,
}

impl PollutantTotal {
    pub fn total_t(&self) -> f64 {
        (self.measured_kg + self.substituted_kg) / 1000.0
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StackTable {
    pub stack: String,
    pub name: Option<String>,
    pub pollutants: Vec<Quantity>,
    /// Flue-gas columns and the unit their values are in.
    pub aux: Vec<(Quantity, Unit)>,
    pub rows: Vec<TableRow>,
    pub totals: Vec<PollutantTotal>,
    pub fgd: Option<FgdPeriod>,
    pub rates: Vec<RateRow>,
    /// Exceedance events overlapping the period (GB 13223 limits against corrected hours).
    pub exceedances: Vec<ExceedanceRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    pub site: String,
    pub site_name: Option<String>,
    pub kind: TableKind,
    pub period: String,
    pub utc_offset: String,
    pub stacks: Vec<StackTable>,
    /// Set when no stack has a record in the period: why, and what the store holds.
    pub empty: Option<EmptyPeriod>,
}

/// Builds the table of `period` for `stack` (all stacks when None). `now` bounds what counts as
/// missing in a period not over yet.
pub fn build_table(
    store: &Store,
    config: &SiteConfig,
    period: ReportPeriod,
    stack: Option<&str>,
    now: Timestamp,
) -> Result<TableReport, StoreError> {
    let offset = config.site.utc_offset;
    let (start, end) = period
        .bounds(offset)
        .unwrap_or((Timestamp(0), Timestamp(0)));
    let kind = match period {
        ReportPeriod::Day(_) => TableKind::Day,
        ReportPeriod::Month(_) => TableKind::Month,
        ReportPeriod::Year(_) => TableKind::Year,
    };
    let mut stacks = Vec::new();
    for params in config
        .stacks
        .iter()
        .filter(|p| stack.is_none_or(|s| p.id == s))
    {
        let rows = period_rows(period, params, store, (start, end), offset)?;
        let calendar = match kind {
            TableKind::Day => CalendarPeriod::Day,
            TableKind::Month => CalendarPeriod::Month,
            TableKind::Year => CalendarPeriod::Year,
        };
        stacks.push(stack_table(
            store,
            params,
            kind,
            rows,
            (calendar, offset),
            (start, end),
            now,
        )?);
    }
    let empty = if stacks.iter().all(|s| s.rows_are_empty()) {
        Some(holdings::why_empty(store, config, (start, end), now)?)
    } else {
        None
    };
    Ok(TableReport {
        site: config.site.id.clone(),
        site_name: config.site.name.clone(),
        kind,
        period: period.label(),
        utc_offset: offset.to_string(),
        stacks,
        empty,
    })
}

impl StackTable {
    fn rows_are_empty(&self) -> bool {
        self.pollutants.is_empty() && self.aux.is_empty()
    }
}

/// Period records of one stack starting in [from, to), the latest record of each (start,
/// quantity) winning, as aggregates.
pub(crate) fn period_records(
    store: &Store,
    stack: &str,
    kind: RecordKind,
    quantity: Option<Quantity>,
    (from, to): (Timestamp, Timestamp),
) -> Result<Vec<Aggregate>, StoreError> {
    let rows = store.query(&Query {
        kind: Some(kind),
        stack: Some(stack.to_string()),
        quantity,
        from: Some(from),
        to: Some(to),
        ..Query::default()
    })?;
    Ok(latest(rows))
}

fn latest(rows: Vec<Stored>) -> Vec<Aggregate> {
    let mut newest: BTreeMap<(i64, Quantity), Aggregate> = BTreeMap::new();
    for stored in rows {
        if let Some(aggregate) = aggregate_of(&stored.record) {
            newest.insert((aggregate.start.0, aggregate.quantity), aggregate);
        }
    }
    newest.into_values().collect()
}

/// Each pollutant's hourly masses over the period: valid hours' own, substituted ones marked.
struct HourMasses {
    /// Hour start → (kg, substituted).
    by_hour: BTreeMap<i64, (f64, bool)>,
    total: PollutantTotal,
}

fn hour_masses(
    store: &Store,
    params: &StackParams,
    quantity: Quantity,
    (start, end): (Timestamp, Timestamp),
    now: Timestamp,
) -> Result<HourMasses, StoreError> {
    let window = (
        Timestamp(start.0 - SUBSTITUTION_CONTEXT_MS),
        Timestamp(end.0 + SUBSTITUTION_AHEAD_MS),
    );
    let hours = period_records(store, &params.id, RecordKind::Hour, Some(quantity), window)?;
    let mut by_hour = BTreeMap::new();
    let mut total = PollutantTotal {
        quantity,
        measured_kg: 0.0,
        substituted_kg: 0.0,
        valid_hours: 0,
        invalid_hours: 0,
        missing_hours: 0,
        substituted_hours: 0,
    };
    let mut recorded = 0u32;
    for h in hours.iter().filter(|h| h.start >= start && h.start < end) {
        recorded += 1;
        match h.mass_kg.filter(|_| h.valid) {
            Some(kg) => {
                total.valid_hours += 1;
                by_hour.insert(h.start.0, (kg, false));
            }
            None => total.invalid_hours += 1,
        }
    }
    let until = Timestamp(now.0.min(window.1 .0));
    let stack_id: std::sync::Arc<str> = std::sync::Arc::from(params.id.as_str());
    for s in substitute_missing(&stack_id, quantity, &hours, start, end, until) {
        total.substituted_hours += 1;
        by_hour.insert(s.hour.0, (s.mass_kg, true));
    }
    let elapsed = (now.0.clamp(start.0, end.0) - start.0) / HOUR_MS;
    total.missing_hours = u32::try_from(elapsed).unwrap_or(0).saturating_sub(recorded);
    // summed in hour order, so the period's total is the sum of its rows' sums
    for (kg, substituted) in by_hour.values() {
        if *substituted {
            total.substituted_kg += kg;
        } else {
            total.measured_kg += kg;
        }
    }
    Ok(HourMasses { by_hour, total })
}

impl HourMasses {
    /// kg over [from, to), summed hour by hour; substituted when any hour in it was.
    fn between(&self, from: Timestamp, to: Timestamp) -> Value {
        let mut kg = 0.0;
        let mut any = false;
        let mut substituted = false;
        for (mass, marked) in self.by_hour.range(from.0..to.0).map(|(_, v)| v) {
            kg += mass;
            any = true;
            substituted |= marked;
        }
        match (any, substituted) {
            (false, _) => Value::Missing,
            (true, true) => Value::Substituted(kg),
            (true, false) => Value::Valid(kg),
        }
    }
}

fn stack_table(
    store: &Store,
    params: &StackParams,
    kind: TableKind,
    period_rows: PeriodRows,
    calendar: (CalendarPeriod, UtcOffset),
    bounds: (Timestamp, Timestamp),
    now: Timestamp,
) -> Result<StackTable, StoreError> {
    let records = period_rows.records;
    // a pollutant is a column when the period has its records, or when hours around the
    // period do (a day with no record at all still has substituted emissions)
    let window = (
        Timestamp(bounds.0 .0 - SUBSTITUTION_CONTEXT_MS),
        Timestamp(bounds.1 .0 + SUBSTITUTION_AHEAD_MS),
    );
    let mut present: Vec<Quantity> = Vec::new();
    for q in POLLUTANT_ORDER {
        if records.iter().any(|a| a.quantity == q) || has_hours(store, &params.id, q, window)? {
            present.push(q);
        }
    }
    let has_nox = present.contains(&Quantity::NOx);
    let pollutants: Vec<Quantity> = present
        .into_iter()
        .filter(|q| !(has_nox && matches!(q, Quantity::NO | Quantity::NO2)))
        .collect();
    let aux: Vec<(Quantity, Unit)> = AUX_ORDER
        .into_iter()
        .filter_map(|q| {
            records
                .iter()
                .find(|a| a.quantity == q)
                .map(|a| (q, a.unit))
        })
        .collect();
    let mut masses = Vec::new();
    for q in &pollutants {
        masses.push(hour_masses(store, params, *q, bounds, now)?);
    }
    let rows = period_rows
        .rows
        .iter()
        .map(|row| table_row(row, kind, &records, &pollutants, &aux, &masses))
        .collect();
    let fgd = rates::fgd_period(store, params, calendar, bounds, now)?;
    let rates = match kind {
        TableKind::Day | TableKind::Month => {
            rates::transmission(store, params, &period_rows.rows, kind, now)?
        }
        // minute records of a whole year are not read for a report; see the month reports
        TableKind::Year => Vec::new(),
    };
    // events began at most a week before the period, as the day's detail assumes too
    let events = store.query(&Query {
        kind: Some(RecordKind::Exceedance),
        stack: Some(params.id.clone()),
        from: Some(Timestamp(bounds.0 .0 - 7 * 24 * HOUR_MS)),
        to: Some(bounds.1),
        ..Query::default()
    })?;
    let exceedances = exceedance_rows(events, bounds.0, bounds.1, calendar.1);
    Ok(StackTable {
        stack: params.id.clone(),
        name: params.name.clone(),
        pollutants,
        aux,
        rows,
        totals: masses.into_iter().map(|m| m.total).collect(),
        fgd,
        rates,
        exceedances,
    })
}

/// Whether the stack has an hour record of `quantity` in the window (one index look-up).
fn has_hours(
    store: &Store,
    stack: &str,
    quantity: Quantity,
    (from, to): (Timestamp, Timestamp),
) -> Result<bool, StoreError> {
    Ok(store
        .newest_ts(&Query {
            kind: Some(RecordKind::Hour),
            stack: Some(stack.to_string()),
            quantity: Some(quantity),
            from: Some(from),
            to: Some(to),
            ..Query::default()
        })?
        .is_some())
}

/// The rows of a period and the records behind them: hour records for a day, day records
/// for a month or a year.
struct PeriodRows {
    rows: Vec<RowPeriod>,
    records: Vec<Aggregate>,
}

fn period_rows(
    period: ReportPeriod,
    params: &StackParams,
    store: &Store,
    bounds: (Timestamp, Timestamp),
    offset: UtcOffset,
) -> Result<PeriodRows, StoreError> {
    let kind = match period {
        ReportPeriod::Day(_) => RecordKind::Hour,
        ReportPeriod::Month(_) | ReportPeriod::Year(_) => RecordKind::Day,
    };
    Ok(PeriodRows {
        rows: period.rows(offset),
        records: period_records(store, &params.id, kind, None, bounds)?,
    })
}

fn table_row(
    row: &RowPeriod,
    kind: TableKind,
    records: &[Aggregate],
    pollutants: &[Quantity],
    aux: &[(Quantity, Unit)],
    masses: &[HourMasses],
) -> TableRow {
    let in_row = |q: Quantity| -> Vec<&Aggregate> {
        records
            .iter()
            .filter(|a| a.quantity == q && a.start >= row.start && a.start < row.end)
            .collect()
    };
    let mut cells = Vec::new();
    for (q, mass) in pollutants.iter().zip(masses) {
        let aggs = in_row(*q);
        let emission = match kind {
            TableKind::Day => mass.between(row.start, row.end),
            TableKind::Month | TableKind::Year => to_tonnes(mass.between(row.start, row.end)),
        };
        cells.push(PollutantCells {
            measured: row_value(&aggs, kind, |a| a.avg),
            corrected: row_value(&aggs, kind, |a| a.corrected_avg),
            emission,
        });
    }
    let aux_cells = aux
        .iter()
        .map(|(q, _)| row_value(&in_row(*q), kind, |a| a.avg))
        .collect();
    let first = pollutants.first().map(|q| in_row(*q));
    let valid_count = match kind {
        TableKind::Day => None,
        TableKind::Month => first.and_then(|aggs| aggs.first().map(|a| a.count)),
        TableKind::Year => first.map(|aggs| count_u32(aggs.iter().filter(|a| a.valid).count())),
    };
    TableRow {
        label: row.label.clone(),
        pollutants: cells,
        aux: aux_cells,
        valid_count,
    }
}

fn count_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn to_tonnes(v: Value) -> Value {
    match v {
        Value::Valid(kg) => Value::Valid(kg / 1000.0),
        Value::Substituted(kg) => Value::Substituted(kg / 1000.0),
        other => other,
    }
}

/// A row's value of one quantity: the record's own for an hour or a day; for a month, the
/// mean of its valid days. An invalid period gives its flag; a month without a valid day the
/// flag met most often among its days.
fn row_value(
    aggs: &[&Aggregate],
    kind: TableKind,
    pick: impl Fn(&Aggregate) -> Option<f64>,
) -> Value {
    match kind {
        TableKind::Day | TableKind::Month => match aggs.first() {
            None => Value::Missing,
            Some(a) if !a.valid => Value::Invalid(a.flag.code()),
            Some(a) => pick(a).map_or(Value::Missing, Value::Valid),
        },
        TableKind::Year => {
            let values: Vec<f64> = aggs
                .iter()
                .filter(|a| a.valid)
                .filter_map(|a| pick(a))
                .collect();
            if !values.is_empty() {
                return Value::Valid(values.iter().sum::<f64>() / values.len() as f64);
            }
            most_common_flag(aggs).map_or(Value::Missing, |f| Value::Invalid(f.code()))
        }
    }
}

fn most_common_flag(aggs: &[&Aggregate]) -> Option<Flag> {
    let mut counts: BTreeMap<char, (usize, Flag)> = BTreeMap::new();
    for a in aggs.iter().filter(|a| !a.valid) {
        counts.entry(a.flag.code()).or_insert((0, a.flag)).0 += 1;
    }
    counts
        .into_values()
        .max_by_key(|(n, _)| *n)
        .map(|(_, flag)| flag)
}
