//! What stands behind a period's figures: the FGD pair's SO2 removal with the share of hours
//! that prove it, and the bureau's transmission rate (received / expected) and validity rate
//! (valid / received) per stack and per HJ 212 data logger.
//!
//! Counting (no HJ 75-2017 or HJ 212-2017 clause defining these rates was found in the public
//! material at hand; this is the bureaus' usual reading, *verify*): the unit is the minute. A
//! minute is expected for every whole minute of the period up to now, received when the stack
//! (or the logger, by its MN) has a minute record for it, valid when every minute record it
//! has then is valid (HJ 212 flags N, T, S).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::config::stack::StackParams;
use crate::model::time::{UtcOffset, HOUR_MS, MINUTE_MS};
use crate::model::Timestamp;
use crate::process::inlet_point;
use crate::report::fgd::{fgd_hour, summarise, FgdHour};
use crate::report::period::RowPeriod;
use crate::report::table::{period_records, TableKind};
use crate::report::totals::CalendarPeriod;
use crate::store::{Query, RecordKind, Store, StoreError};

/// SO2 removal of a stack's FGD (its inlet and outlet points) over a report period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FgdPeriod {
    pub inlet_kg: f64,
    pub outlet_kg: f64,
    pub removed_kg: f64,
    /// Σ removed / Σ inlet over the hours where both are valid.
    pub efficiency: Option<f64>,
    /// Hours where inlet and outlet were both valid with a mass.
    pub valid_hours: u32,
    /// Hours of the period up to now.
    pub expected_hours: u32,
}

impl FgdPeriod {
    /// Share of the period's hours that back the figures.
    pub fn completeness(&self) -> Option<f64> {
        (self.expected_hours > 0)
            .then(|| f64::from(self.valid_hours) / f64::from(self.expected_hours))
    }
}

/// None when the stack has no inlet SO2 hour in the period. Only hours measured at both points
/// count: a removal is proven by the pair or not at all, never filled in.
pub fn fgd_period(
    store: &Store,
    params: &StackParams,
    (calendar, offset): (CalendarPeriod, UtcOffset),
    (start, end): (Timestamp, Timestamp),
    now: Timestamp,
) -> Result<Option<FgdPeriod>, StoreError> {
    let so2 = Some(crate::model::Quantity::SO2);
    let inlet = period_records(
        store,
        &inlet_point(&params.id),
        RecordKind::Hour,
        so2,
        (start, end),
    )?;
    if inlet.is_empty() {
        return Ok(None);
    }
    let outlet = period_records(store, &params.id, RecordKind::Hour, so2, (start, end))?;
    let outlet_by_start: BTreeMap<i64, _> = outlet.iter().map(|o| (o.start.0, o)).collect();
    let pairs: Vec<FgdHour> = inlet
        .iter()
        .filter_map(|i| outlet_by_start.get(&i.start.0).map(|o| fgd_hour(i, o)))
        .collect();
    // the report period is one calendar period, so there is one summary
    let summary = summarise(&pairs, calendar, offset).into_iter().next();
    Ok(Some(FgdPeriod {
        inlet_kg: summary.as_ref().map_or(0.0, |s| s.inlet_kg),
        outlet_kg: summary.as_ref().map_or(0.0, |s| s.outlet_kg),
        removed_kg: summary.as_ref().map_or(0.0, |s| s.removed_kg),
        efficiency: summary.as_ref().and_then(|s| s.efficiency),
        valid_hours: summary.as_ref().map_or(0, |s| s.valid_hours),
        expected_hours: u32::try_from((now.0.clamp(start.0, end.0) - start.0) / HOUR_MS)
            .unwrap_or(0),
    }))
}

/// Transmission and validity of one source over one row period (a day) or the whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RateRow {
    /// The stack id, or the logger's MN.
    pub source: String,
    pub logger: bool,
    /// The row label ("05" for the 5th day) or "" for the whole period.
    pub period: String,
    pub expected: u32,
    pub received: u32,
    pub valid: u32,
}

impl RateRow {
    pub fn transmission(&self) -> Option<f64> {
        (self.expected > 0).then(|| f64::from(self.received) / f64::from(self.expected))
    }

    pub fn validity(&self) -> Option<f64> {
        (self.received > 0).then(|| f64::from(self.valid) / f64::from(self.received))
    }
}

/// Rates of the stack and of each logger (a non-empty device on its minute records) per row of
/// a month, and for the whole period; a day table has one row per source.
pub fn transmission(
    store: &Store,
    params: &StackParams,
    rows: &[RowPeriod],
    kind: TableKind,
    now: Timestamp,
) -> Result<Vec<RateRow>, StoreError> {
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return Ok(Vec::new());
    };
    let minutes = store.query(&Query {
        kind: Some(RecordKind::Minute),
        stack: Some(params.id.clone()),
        from: Some(first.start),
        to: Some(Timestamp(last.end.0.min(now.0.max(first.start.0)))),
        ..Query::default()
    })?;
    // source ("" for the stack as a whole) → minute start → all valid so far
    let mut seen: BTreeMap<Arc<str>, BTreeMap<i64, bool>> = BTreeMap::new();
    for m in &minutes {
        let valid = m.record.flags.primary().valid_for_average();
        let sources: [Arc<str>; 2] = [Arc::from(""), Arc::clone(&m.record.device)];
        let n = if m.record.device.is_empty() { 1 } else { 2 };
        for source in sources.into_iter().take(n) {
            let entry = seen
                .entry(source)
                .or_default()
                .entry(m.record.ts.0)
                .or_insert(true);
            *entry &= valid;
        }
    }
    seen.entry(Arc::from("")).or_default();
    let mut out = Vec::new();
    for (source, by_minute) in &seen {
        let row_of = |label: &str, from: Timestamp, to: Timestamp| {
            let counted_to = to.0.min(now.0).max(from.0);
            let in_row = by_minute.range(from.0..counted_to);
            let (mut received, mut valid) = (0u32, 0u32);
            for (_, ok) in in_row {
                received += 1;
                valid += u32::from(*ok);
            }
            RateRow {
                source: if source.is_empty() {
                    params.id.clone()
                } else {
                    source.to_string()
                },
                logger: !source.is_empty(),
                period: label.to_string(),
                expected: u32::try_from((counted_to - from.0) / MINUTE_MS).unwrap_or(0),
                received,
                valid,
            }
        };
        if kind == TableKind::Month {
            let days: Vec<RateRow> = rows
                .iter()
                .map(|r| row_of(&r.label, r.start, r.end))
                .collect();
            out.extend(days);
            out.push(row_of("", first.start, last.end));
        } else {
            out.push(row_of("", first.start, last.end));
        }
    }
    Ok(out)
}
