//! Picking up where the last run stopped, at a cost that does not grow with the store.
//!
//! A restart must know the periods open at the stop (the minute, hour and day of each series'
//! newest reading), the gaps a late value may still fill and the exceedance events still
//! open. All of it is read back in windows bounded by one day per series (or the lateness
//! horizon), never by how long the store or the day has run: an edge gateway that restarts at
//! 23:50 does as much work as one that restarts at 00:10.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use crate::config::SiteConfig;
use crate::model::time::{period_start, Period, DAY_MS, HOUR_MS, MINUTE_MS};
use crate::model::{Quantity, Reading, Timestamp};
use crate::process::aggregate::Aggregate;
use crate::process::{aggregate_of, reading_of, Processor};
use crate::store::{Query, RecordKind, Store, StoreError};

/// Picks up where the last run stopped: the downtime becomes gap records, the minute, hour
/// and day in progress are rebuilt from what the last run stored of them, and exceedance
/// events still open go on.
pub fn resume(
    store: &mut Store,
    processor: Processor,
    config: &SiteConfig,
    now: Timestamp,
) -> Result<Processor, StoreError> {
    store.with_cache_kib(RESUME_CACHE_KIB, |store| {
        resume_with(store, processor, config, now)
    })
}

/// The writer's page cache while a restart reads back. Each page is read once (the windows
/// are disjoint), so caching them only held up to the writer's whole cache (8 MiB) at READY
/// on a store late in its day; a few hundred KiB hold the index paths the reads share.
const RESUME_CACHE_KIB: u32 = 512;

fn resume_with(
    store: &mut Store,
    mut processor: Processor,
    config: &SiteConfig,
    now: Timestamp,
) -> Result<Processor, StoreError> {
    let latest = store.latest()?;
    let mut last_of_point: HashMap<Arc<str>, Timestamp> = HashMap::new();
    let mut newest: HashMap<(Arc<str>, Quantity), Timestamp> = HashMap::new();
    for stored in &latest {
        let r = &stored.record;
        let last = last_of_point.entry(r.stack.clone()).or_insert(r.ts);
        *last = (*last).max(r.ts);
        if let Some(quantity) = r.quantity {
            let last = newest.entry((r.stack.clone(), quantity)).or_insert(r.ts);
            *last = (*last).max(r.ts);
        }
    }
    let open = OpenPeriods::read(store, &mut processor, &newest, config)?;
    processor.warm_up(&open.readings, &open.stored);
    let horizon = config.ingest.lateness_horizon.0;
    // a value late by up to the horizon may fall into a gap that began before it
    processor.recall_gaps(&store.query(&Query {
        kind: Some(RecordKind::Gap),
        from: Some(now.minus(horizon).minus(horizon)),
        ..Query::default()
    })?);
    warm_exceedances(store, &mut processor, now, horizon)?;
    let mut gaps = Vec::new();
    processor.restart(|point| last_of_point.get(point).copied(), now, &mut gaps);
    if !gaps.is_empty() {
        tracing::info!(
            gaps = gaps.len(),
            "recorded the downtime since the last run as gaps"
        );
        store.append(&gaps)?;
    }
    Ok(processor)
}

/// What the store holds of the periods open at the last stop, besides the closed parts
/// seeded into the processor as they were read.
#[derive(Debug, Default)]
struct OpenPeriods {
    /// Readings of each series' open minute.
    readings: Vec<Reading>,
    /// (point, quantity, period, start) of those periods the last run closed and stored.
    stored: HashSet<(Arc<str>, Quantity, Period, Timestamp)>,
}

/// The newest revision of each period among aggregate rows read in (start, seq) order. The
/// revisions of a period share its start, so only the rows of one start are held, however
/// long the window: a restart late in the day holds a few hundred aggregates, not the day's.
#[derive(Default)]
struct NewestOfEachStart {
    start: Option<Timestamp>,
    rows: BTreeMap<(Arc<str>, Quantity), Aggregate>,
}

impl NewestOfEachStart {
    /// Takes `row`; hands `each` the newest of every period of the start before, once the
    /// rows of a later start begin.
    fn push(&mut self, row: Aggregate, each: &mut impl FnMut(Aggregate)) {
        if self.start != Some(row.start) {
            self.finish(each);
            self.start = Some(row.start);
        }
        self.rows.insert((row.stack.clone(), row.quantity), row);
    }

    /// Hands `each` the newest of every period of the last start.
    fn finish(&mut self, each: &mut impl FnMut(Aggregate)) {
        for row in std::mem::take(&mut self.rows).into_values() {
            each(row);
        }
    }
}

impl OpenPeriods {
    /// Reads, for every series with a newest reading at `newest`, the minute, hour and day
    /// around it, and seeds `processor` with the closed parts. Each window is read once for
    /// all series whose newest reading falls in it, through the time-led index, so the cost
    /// is what those windows hold, and row by row, so the memory is what one start holds.
    fn read(
        store: &Store,
        processor: &mut Processor,
        newest: &HashMap<(Arc<str>, Quantity), Timestamp>,
        config: &SiteConfig,
    ) -> Result<OpenPeriods, StoreError> {
        let offset = config.site.utc_offset;
        let start_of = |ts: Timestamp, period| period_start(ts, period, offset);
        let windows = |period| -> BTreeSet<Timestamp> {
            newest.values().map(|&ts| start_of(ts, period)).collect()
        };
        // whether a record of `period` starting at `start` belongs to the open one of its series
        let in_open = |r: &Aggregate, period: Period| {
            newest
                .get(&(r.stack.clone(), r.quantity))
                .is_some_and(|&ts| start_of(ts, period) == start_of(r.start, period))
        };
        let mut open = OpenPeriods::default();
        let mut keep = |kind, period, within: Period, len| -> Result<(), StoreError> {
            let mut newest_rows = NewestOfEachStart::default();
            let mut settle = |agg: Aggregate| {
                if in_open(&agg, period) {
                    open.stored
                        .insert((agg.stack.clone(), agg.quantity, period, agg.start));
                }
                if period != Period::Day {
                    processor.seed(&agg);
                }
            };
            // windows are disjoint and come in time order, and so do their rows
            for from in windows(within) {
                let query = Query {
                    kind: Some(kind),
                    from: Some(from),
                    to: Some(Timestamp(from.millis() + len)),
                    ..Query::default()
                };
                store.query_each(&query, &mut |stored| {
                    if let Some(agg) = aggregate_of(&stored.record).filter(|a| in_open(a, within)) {
                        newest_rows.push(agg, &mut settle);
                    }
                })?;
            }
            newest_rows.finish(&mut settle);
            Ok(())
        };
        keep(RecordKind::Hour, Period::Hour, Period::Day, DAY_MS)?;
        keep(RecordKind::Minute, Period::Minute, Period::Hour, HOUR_MS)?;
        keep(RecordKind::Day, Period::Day, Period::Day, DAY_MS)?;
        for from in windows(Period::Minute) {
            let query = Query {
                kind: Some(RecordKind::Reading),
                from: Some(from),
                to: Some(Timestamp(from.millis() + MINUTE_MS)),
                ..Query::default()
            };
            store.query_each(&query, &mut |stored| {
                let Some(reading) = reading_of(&stored.record) else {
                    return;
                };
                let open_minute = newest
                    .get(&(reading.stack.clone(), reading.quantity))
                    .is_some_and(|&ts| start_of(ts, Period::Minute) == from);
                if open_minute {
                    open.readings.push(reading);
                }
            })?;
        }
        Ok(open)
    }
}

/// Rebuilds exceedance state from the stored hour averages (valid or not): from one rolling
/// window before the oldest event still open (or before the lateness horizon, which an hour
/// may be revised within), in time order, the latest row of each (point, quantity, hour)
/// winning. Read row by row, one hour's rows held at a time.
fn warm_exceedances(
    store: &Store,
    processor: &mut Processor,
    now: Timestamp,
    horizon: std::time::Duration,
) -> Result<(), StoreError> {
    let mut closed = HashSet::new();
    let mut starts = Vec::new();
    store.query_each(
        &Query {
            kind: Some(RecordKind::Exceedance),
            ..Query::default()
        },
        &mut |stored| {
            let r = stored.record;
            let key = (r.stack.clone(), r.quantity, r.ts);
            if r.end.is_some() {
                closed.insert(key);
            } else {
                starts.push(key);
            }
        },
    )?;
    let oldest_open = starts
        .into_iter()
        .filter(|key| !closed.contains(key))
        .map(|(_, _, start)| start)
        .min()
        .unwrap_or(now)
        .min(now.minus(horizon));
    let window = i64::from(processor.exceedance_lookback_hours()) * HOUR_MS;
    let mut newest_rows = NewestOfEachStart::default();
    let mut warm = |hour: Aggregate| processor.warm_exceedances(std::slice::from_ref(&hour));
    store.query_each(
        &Query {
            kind: Some(RecordKind::Hour),
            from: Some(Timestamp(oldest_open.0.saturating_sub(window))),
            ..Query::default()
        },
        &mut |stored| {
            if let Some(hour) = aggregate_of(&stored.record) {
                newest_rows.push(hour, &mut warm);
            }
        },
    )?;
    newest_rows.finish(&mut warm);
    Ok(())
}
