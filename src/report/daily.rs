//! What a day's HJ 75 table (see [`super::table`]) does not show: its gaps in the data and its
//! exceedance events, built only from what the store holds, so it says exactly what was
//! recorded.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use chrono::NaiveDate;
use serde::Serialize;

use crate::config::SiteConfig;
use crate::model::time::{UtcOffset, HOUR_MS};
use crate::model::{Flag, Quantity, Timestamp};
use crate::process::aggregate::Aggregate;
use crate::process::{aggregate_of, inlet_point};
use crate::report::lang::Lang;
use crate::report::notes::note_in;
use crate::report::period::ReportPeriod;
use crate::store::{AuditEntry, Query, RecordKind, Store, StoreError, Stored};

#[derive(Debug, Serialize)]
pub struct Report {
    pub site: String,
    pub day: String,
    pub utc_offset: String,
    pub stacks: Vec<StackReport>,
    /// The day's audit trail, newest first: every parameter change that took effect.
    pub changes: Vec<AuditEntry>,
}

#[derive(Debug, Serialize)]
pub struct StackReport {
    pub stack: String,
    pub name: Option<String>,
    pub gaps: Vec<GapRow>,
    pub exceedances: Vec<ExceedanceRow>,
}

#[derive(Debug, Serialize)]
pub struct GapRow {
    pub point: String,
    pub device: String,
    pub channel: String,
    pub start: String,
    /// None while the gap is still open.
    pub end: Option<String>,
    pub cause: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExceedanceRow {
    pub quantity: String,
    pub start: String,
    pub end: Option<String>,
    pub peak: Option<f64>,
    pub hours: Option<u32>,
    pub detail: String,
}

/// The gaps and exceedances of local `day` at every stack.
pub fn build(store: &Store, config: &SiteConfig, day: NaiveDate) -> Result<Report, StoreError> {
    let offset = config.site.utc_offset;
    let (start, end) = ReportPeriod::Day(day)
        .bounds(offset)
        .unwrap_or((Timestamp(0), Timestamp(0)));
    let mut stacks = Vec::new();
    for params in &config.stacks {
        let outlet = params.id.clone();
        let inlet = inlet_point(&params.id);
        let rows_of = |point: &str, kind| -> Result<Vec<Stored>, StoreError> {
            store.query(&Query {
                kind: Some(kind),
                stack: Some(point.to_string()),
                from: Some(Timestamp(start.0 - 7 * 24 * HOUR_MS)),
                to: Some(end),
                ..Query::default()
            })
        };
        let outlet_hours = latest_aggregates(rows_of(&outlet, RecordKind::Hour)?, start, end);
        let inlet_hours = latest_aggregates(rows_of(&inlet, RecordKind::Hour)?, start, end);

        let mut gaps = Vec::new();
        for (point, aggs) in [(&outlet, &outlet_hours), (&inlet, &inlet_hours)] {
            let recorded = latest_gaps(rows_of(point, RecordKind::Gap)?, start, end);
            let mut rows: Vec<GapRow> =
                recorded.iter().map(|s| gap_row(point, s, offset)).collect();
            rows.extend(unrecorded_b_hours(point, aggs, &recorded, offset));
            rows.sort_by(|a, b| a.start.cmp(&b.start));
            gaps.extend(rows);
        }
        let exceedances = exceedance_rows(
            rows_of(&outlet, RecordKind::Exceedance)?,
            start,
            end,
            offset,
        );

        stacks.push(StackReport {
            stack: outlet.clone(),
            name: params.name.clone(),
            gaps,
            exceedances,
        });
    }
    Ok(Report {
        site: config.site.id.clone(),
        day: day.format("%Y-%m-%d").to_string(),
        utc_offset: offset.to_string(),
        stacks,
        changes: store.audit_entries(start.0, end.0)?,
    })
}

/// Period records starting inside [start, end), the latest record of each (point, quantity,
/// period start) winning, as aggregates again.
fn latest_aggregates(rows: Vec<Stored>, start: Timestamp, end: Timestamp) -> Vec<Aggregate> {
    let mut latest: BTreeMap<(i64, Quantity), Aggregate> = BTreeMap::new();
    for stored in rows {
        let r = &stored.record;
        if r.ts < start || r.ts >= end {
            continue;
        }
        if let Some(aggregate) = aggregate_of(r) {
            latest.insert((r.ts.0, aggregate.quantity), aggregate);
        }
    }
    latest.into_values().collect()
}

fn local(ts: Timestamp, offset: UtcOffset, format: &str) -> String {
    Timestamp(ts.0 + offset.millis())
        .to_datetime()
        .format(format)
        .to_string()
}

/// The gap records overlapping [start, end): a gap is recorded when it opens and again when
/// it closes, the latest of each (device, channel, start) counts.
fn latest_gaps(rows: Vec<Stored>, start: Timestamp, end: Timestamp) -> Vec<Stored> {
    let mut latest: BTreeMap<(Arc<str>, Arc<str>, i64), Stored> = BTreeMap::new();
    for stored in rows {
        let r = &stored.record;
        latest.insert((r.device.clone(), r.channel.clone(), r.ts.0), stored);
    }
    latest
        .into_values()
        // a gap that ends where it starts was withdrawn: late readings filled it
        .filter(|s| s.record.end != Some(s.record.ts))
        .filter(|s| s.record.ts < end && s.record.end.is_none_or(|e| e > start))
        .collect()
}

fn gap_row(point: &str, s: &Stored, offset: UtcOffset) -> GapRow {
    GapRow {
        point: point.to_string(),
        device: s.record.device.to_string(),
        channel: s.record.channel.to_string(),
        start: local(s.record.ts, offset, "%Y-%m-%d %H:%M:%S"),
        end: s.record.end.map(|e| local(e, offset, "%Y-%m-%d %H:%M:%S")),
        cause: s.record.note.clone().unwrap_or_default(),
    }
}

/// Cause of a gap row made from hours flagged B that no gap record covers.
pub const B_HOURS_CAUSE: &str = "hour invalid, flag B (communication failure)";

/// Hours invalidated by B (a failed read, or minutes with no data at all) are gaps in the
/// data even where no gap record covers them (a derived channel has none, a gap may have
/// begun before the store's window): one row per run of consecutive such hours with the
/// same quantities, its `channel` listing them.
fn unrecorded_b_hours(
    point: &str,
    hours: &[Aggregate],
    recorded: &[Stored],
    offset: UtcOffset,
) -> Vec<GapRow> {
    let covered = |a: &Aggregate| {
        recorded
            .iter()
            .any(|s| s.record.ts < a.end && s.record.end.is_none_or(|e| e > a.start))
    };
    let mut by_hour: BTreeMap<i64, (Timestamp, Vec<&'static str>)> = BTreeMap::new();
    for a in hours
        .iter()
        .filter(|a| !a.valid && a.flag == Flag::B && !covered(a))
    {
        let entry = by_hour.entry(a.start.0).or_insert((a.end, Vec::new()));
        entry.1.push(a.quantity.name());
    }
    let mut runs: Vec<(Timestamp, Timestamp, Vec<&'static str>)> = Vec::new();
    for (start, (end, quantities)) in by_hour {
        match runs.last_mut() {
            Some(run) if run.1 .0 == start && run.2 == quantities => run.1 = end,
            _ => runs.push((Timestamp(start), end, quantities)),
        }
    }
    runs.into_iter()
        .map(|(start, end, quantities)| GapRow {
            point: point.to_string(),
            device: String::new(),
            channel: quantities.join(","),
            start: local(start, offset, "%Y-%m-%d %H:%M:%S"),
            end: Some(local(end, offset, "%Y-%m-%d %H:%M:%S")),
            cause: B_HOURS_CAUSE.to_string(),
        })
        .collect()
}

/// The exceedance events overlapping [start, end), the latest record of each event counting.
pub(crate) fn exceedance_rows(
    rows: Vec<Stored>,
    start: Timestamp,
    end: Timestamp,
    offset: UtcOffset,
) -> Vec<ExceedanceRow> {
    let mut latest: BTreeMap<(Option<Quantity>, i64), Stored> = BTreeMap::new();
    for stored in rows {
        latest.insert((stored.record.quantity, stored.record.ts.0), stored);
    }
    latest
        .into_values()
        // an event that ends where it starts was withdrawn: revised hours no longer exceed
        .filter(|s| s.record.end != Some(s.record.ts))
        .filter(|s| s.record.ts < end && s.record.end.is_none_or(|e| e > start))
        .map(|s| ExceedanceRow {
            quantity: s
                .record
                .quantity
                .map(|q| q.name())
                .unwrap_or("-")
                .to_string(),
            start: local(s.record.ts, offset, "%Y-%m-%d %H:%M"),
            end: s.record.end.map(|e| local(e, offset, "%Y-%m-%d %H:%M")),
            peak: s.record.max,
            hours: s.record.count,
            detail: s.record.note.clone().unwrap_or_default(),
        })
        .collect()
}

fn num(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into())
}

/// What the HJ 75 day table does not show: each stack's gaps and exceedance events.
pub fn render_events(report: &Report, lang: Lang) -> String {
    let mut out = String::new();
    for s in &report.stacks {
        let _ = writeln!(
            out,
            "== {} {}{}",
            lang.pick("排放口", "stack"),
            s.stack,
            s.name
                .as_ref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        );
        let none = lang.pick("无", "none");
        let _ = writeln!(
            out,
            "{}: {}",
            lang.pick("数据缺失", "Gaps"),
            if s.gaps.is_empty() { none } else { "" }
        );
        for g in &s.gaps {
            let _ = writeln!(
                out,
                "  {} {}{} {} .. {} ({})",
                g.point,
                if g.device.is_empty() {
                    String::new()
                } else {
                    format!("{}/", g.device)
                },
                g.channel,
                g.start,
                g.end
                    .as_deref()
                    .unwrap_or(lang.pick("未结束", "still open")),
                note_in(&g.cause, lang)
            );
        }
        let _ = writeln!(
            out,
            "{}: {}",
            lang.pick("超标", "Exceedances"),
            if s.exceedances.is_empty() { none } else { "" }
        );
        for e in &s.exceedances {
            let _ = writeln!(
                out,
                "  {} {} .. {} {} {} mg/m3, {} h ({})",
                e.quantity,
                e.start,
                e.end
                    .as_deref()
                    .unwrap_or(lang.pick("未结束", "still open")),
                lang.pick("峰值", "peak"),
                num(e.peak),
                e.hours.unwrap_or(0),
                note_in(&e.detail, lang)
            );
        }
    }
    out
}
