//! The pure HJ 75 processing of a whole site: samples in, store records out. Every measuring
//! point (a stack's outlet, or the FGD inlet in front of it) runs normalise → quality →
//! aggregate → exceedance. Time comes only from the samples and from `tick(now)`, so live
//! running, replay and tests give the same records for the same input.
//!
//! A batch is processed as snapshots, one per poll: a derived value uses inputs of the same
//! poll, and of other devices the latest within the stack's staleness bound (see
//! [`crate::process::normalise`]). This holds for every collector, since Modbus polls, MQTT
//! messages and replayed polls all arrive here as batches.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::config::profile::ProfileSet;
use crate::config::{bound_channels, Position, SiteConfig};
use crate::model::time::{floor, Period, UtcOffset, DAY_MS, HOUR_MS, MINUTE_MS};
use crate::model::{Basis, FlagSet, Quantity, Reading, Sample, Timestamp};
use crate::process::aggregate::{Aggregate, Aggregator, ClosedPeriods};
use crate::process::exceedance::{Exceedance, ExceedanceTracker};
use crate::process::normalise::Normaliser;
use crate::process::quality::{ChannelSpec, Gap, GapCause, Quality};
use crate::store::{Record, RecordKind, Stored};

/// The id under which the FGD inlet of `stack` is normalised, aggregated and stored.
pub fn inlet_point(stack: &str) -> String {
    format!("{stack}.inlet")
}

/// One measuring point: where a set of analysers samples the flue gas.
struct Point {
    normaliser: Normaliser,
    quality: Quality,
    aggregator: Aggregator,
    /// Emission limits apply at the outlet only.
    exceedances: Option<ExceedanceTracker>,
    /// Longest poll interval of its channels: a restart shorter than this lost nothing.
    slowest_poll: Duration,
}

pub struct Processor {
    points: Vec<Point>,
    point_of_device: HashMap<Arc<str>, usize>,
    /// Each point by the stack id its records carry (see [`inlet_point`]).
    point_of_stack: HashMap<Arc<str>, usize>,
    /// The basis of each device channel at this site, which a device's `basis` key may set
    /// apart from the profile the collector reports.
    basis_of: HashMap<Arc<str>, HashMap<Arc<str>, Basis>>,
    readings: Vec<Reading>,
    gaps: Vec<Gap>,
    aggregates: Vec<Aggregate>,
    events: Vec<Exceedance>,
    /// Where days (and hours, for offsets that are not whole hours) begin.
    offset: UtcOffset,
    /// Minutes (point, quantity, start) that readings went into after they had closed.
    pending: Vec<(usize, Quantity, i64)>,
}

/// Stored records of one stack, one kind, in [from, to): what [`Processor::push_late`] needs
/// to place readings older than what it has processed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Window {
    pub stack: Arc<str>,
    pub kind: RecordKind,
    pub quantity: Quantity,
    pub from: Timestamp,
    pub to: Timestamp,
}

/// What [`Processor::push_late`] did with the readings it was given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LateOutcome {
    /// Taken, normalised and stored; their periods revised where already closed.
    pub taken: usize,
    /// Copies of stored readings (a redelivery), dropped.
    pub duplicates: usize,
}

impl Processor {
    /// Builds the points of a validated config, with every device channel declared so
    /// silence on any of them becomes a gap and a missing input is told from a stale one.
    pub fn new(config: &SiteConfig, profiles: &ProfileSet) -> Processor {
        let mut points: Vec<Point> = Vec::new();
        let mut index_of_point: HashMap<String, usize> = HashMap::new();
        let mut point_of_device = HashMap::new();
        let mut basis_of = HashMap::new();
        let mut device_ids: HashMap<&str, Arc<str>> = HashMap::new();
        for channel in bound_channels(config, profiles) {
            let Some(params) = config.stacks.iter().find(|s| s.id == channel.stack) else {
                continue; // config::parse rejects it
            };
            let point_id = match channel.position {
                Position::Outlet => params.id.clone(),
                Position::Inlet => inlet_point(&params.id),
            };
            let index = *index_of_point.entry(point_id.clone()).or_insert_with(|| {
                let id: Arc<str> = Arc::from(point_id.as_str());
                points.push(Point {
                    normaliser: Normaliser::new(id.clone(), params),
                    quality: Quality::new(id.clone(), params),
                    aggregator: Aggregator::new(id.clone(), params, config.site.utc_offset),
                    exceedances: (channel.position == Position::Outlet).then(|| {
                        ExceedanceTracker::new(id, &params.limits, params.exceedance_window_hours)
                    }),
                    slowest_poll: Duration::ZERO,
                });
                points.len() - 1
            });
            let point = &mut points[index];
            let device_id = device_ids
                .entry(channel.device)
                .or_insert_with(|| Arc::from(channel.device))
                .clone();
            let channel_id: Arc<str> = Arc::from(channel.channel);
            point.quality.add_channel(
                device_id.clone(),
                channel_id.clone(),
                ChannelSpec {
                    expected_interval: channel.interval,
                    range: channel.range,
                },
            );
            point.normaliser.add_source(
                device_id.clone(),
                channel.quantity,
                channel.interval,
                params,
            );
            point.slowest_poll = point.slowest_poll.max(channel.interval);
            basis_of
                .entry(device_id.clone())
                .or_insert_with(HashMap::new)
                .insert(channel_id, channel.basis);
            point_of_device.insert(device_id, index);
        }
        let point_of_stack = points
            .iter()
            .enumerate()
            .map(|(i, p)| (p.normaliser.stack().clone(), i))
            .collect();
        Processor {
            points,
            point_of_device,
            point_of_stack,
            basis_of,
            readings: Vec::new(),
            gaps: Vec::new(),
            aggregates: Vec::new(),
            events: Vec::new(),
            offset: config.site.utc_offset,
            pending: Vec::new(),
        }
    }

    /// At start-up, before the first tick: the time since each point's last stored reading,
    /// when longer than a poll, is a gap with cause "daemon down" on every channel of that
    /// point; silence is measured from `now` on, never from before the start.
    pub fn restart(
        &mut self,
        last_stored: impl Fn(&str) -> Option<Timestamp>,
        now: Timestamp,
        out: &mut Vec<Record>,
    ) {
        for point in &mut self.points {
            let poll = i64::try_from(point.slowest_poll.as_millis()).unwrap_or(i64::MAX);
            let down_since = last_stored(point.normaliser.stack())
                .filter(|last| now.0.saturating_sub(last.0) > poll)
                .unwrap_or(now);
            point.quality.restart(down_since, now, &mut self.gaps);
        }
        self.drain(out);
    }

    /// Rebuilds the aggregation state of the periods open at the last stop from what that
    /// run stored, one closed part at a time: the closed hours of each series' open day,
    /// then the closed minutes of its open hour, newest revision each, in time order. So
    /// the hour and day in progress count what came before the restart. Nothing is emitted.
    pub fn seed(&mut self, part: &Aggregate) {
        if let Some(point) = self
            .point_of_stack
            .get(&part.stack)
            .and_then(|&i| self.points.get_mut(i))
        {
            point.aggregator.seed(part);
        }
    }

    /// Finishes the rebuild `seed` began: `readings` are those of each series' open minute.
    /// Periods in `stored` (point, quantity, period, start), closed and written by the last
    /// run, are not emitted again later. What is rebuilt is bounded by one day per series,
    /// however much the store holds.
    pub fn warm_up(
        &mut self,
        readings: &[Reading],
        stored: &HashSet<(Arc<str>, Quantity, Period, Timestamp)>,
    ) {
        let mut discarded = Vec::new();
        for reading in readings {
            if let Some(point) = self
                .point_of_device
                .get(&reading.device)
                .and_then(|&i| self.points.get_mut(i))
            {
                point.aggregator.push(reading, &mut discarded);
                discarded.clear();
            }
        }
        for point in &mut self.points {
            let id = point.normaliser.stack().clone();
            point.aggregator.settle_stored(|quantity, period, start| {
                stored.contains(&(id.clone(), quantity, period, start))
            });
        }
    }

    /// Takes the gaps an earlier run stored (rows in store order), so values that arrive
    /// late can still fill them.
    pub fn recall_gaps(&mut self, rows: &[Stored]) {
        let mut newest: HashMap<(&str, &str, Timestamp), &Record> = HashMap::new();
        for row in rows {
            let r = &row.record;
            if r.kind == RecordKind::Gap {
                newest.insert((&r.device, &r.channel, r.ts), r);
            }
        }
        for r in newest.into_values() {
            let (Some(end), Some(cause)) = (r.end, r.note.as_deref().and_then(GapCause::parse))
            else {
                continue;
            };
            if let Some(point) = self
                .point_of_device
                .get(&r.device)
                .and_then(|&i| self.points.get_mut(i))
            {
                point
                    .quality
                    .recall_gap(&r.device, &r.channel, r.ts, end, cause);
            }
        }
    }

    /// Rebuilds the exceedance state from stored hour averages in time order, so an event open
    /// at a restart goes on (same start, hours and peak) instead of opening a second time.
    /// Nothing is emitted: those events are in the store already.
    pub fn warm_exceedances(&mut self, hours: &[Aggregate]) {
        let mut discarded = Vec::new();
        for hour in hours {
            let tracker = self
                .points
                .iter_mut()
                .find(|p| **p.normaliser.stack() == *hour.stack)
                .and_then(|p| p.exceedances.as_mut());
            if let Some(tracker) = tracker {
                tracker.push(hour, &mut discarded);
                discarded.clear();
            }
        }
    }

    /// The longest rolling window of any stack's exceedance check, in hours: how much hour
    /// history `warm_exceedances` needs before the oldest open event.
    pub fn exceedance_lookback_hours(&self) -> u32 {
        self.points
            .iter()
            .filter_map(|p| p.exceedances.as_ref())
            .map(ExceedanceTracker::window_hours)
            .max()
            .unwrap_or(1)
    }

    /// Processes a batch of samples (typically one poll); records for the store are appended
    /// to `out`. The batch is cut into snapshots, one per measuring point and instant: a new
    /// snapshot begins where a channel repeats, so a batch holding several polls of a device
    /// (a replayed log, an MQTT message with a series) is taken poll by poll. Within a
    /// snapshot, derived values combine the snapshot's own inputs.
    pub fn push(&mut self, samples: &[Sample], out: &mut Vec<Record>) {
        for (point, samples) in self.snapshots(samples) {
            let samples: Vec<&Sample> = samples.iter().map(|s| s.as_ref()).collect();
            self.process(point, &samples, out);
        }
    }

    /// Cuts samples into snapshots (point, samples of one poll), with the site's basis.
    fn snapshots<'a>(&self, samples: &'a [Sample]) -> Vec<(usize, Vec<Cow<'a, Sample>>)> {
        // A poll holds a handful of channels per point, so plain vectors scanned in order
        // beat hashing here: (point, samples) per snapshot, and the snapshot each point
        // fills now.
        let mut snapshots: Vec<(usize, Vec<Cow<'_, Sample>>)> = Vec::new();
        let mut open: Vec<(usize, usize)> = Vec::new();
        for sample in samples {
            let Some(&point) = self.point_of_device.get(&sample.device) else {
                continue;
            };
            let filling = open.iter().find(|(p, _)| *p == point).map(|&(_, at)| at);
            let at = match filling {
                // a channel already in the open snapshot starts the next one
                Some(at)
                    if !snapshots[at]
                        .1
                        .iter()
                        .any(|s| s.device == sample.device && s.channel == sample.channel) =>
                {
                    at
                }
                _ => {
                    snapshots.push((point, Vec::new()));
                    let at = snapshots.len() - 1;
                    match open.iter_mut().find(|(p, _)| *p == point) {
                        Some(entry) => entry.1 = at,
                        None => open.push((point, at)),
                    }
                    at
                }
            };
            // most sites override no basis: skip the lookup then
            let site_basis = if self.basis_of.is_empty() {
                sample.basis
            } else {
                self.basis_of
                    .get(&*sample.device)
                    .and_then(|channels| channels.get(&*sample.channel))
                    .copied()
                    .unwrap_or(sample.basis)
            };
            let sample = if site_basis == sample.basis {
                Cow::Borrowed(sample)
            } else {
                Cow::Owned(Sample {
                    basis: site_basis,
                    ..sample.clone()
                })
            };
            snapshots[at].1.push(sample);
        }
        snapshots
    }

    /// The stored readings [`Processor::push_late`] needs for `samples` besides their own
    /// copies: the point's input readings (O2, moisture, … and what tells a plant stop)
    /// around each, within the longest staleness bound.
    pub fn late_windows(&self, samples: &[Sample]) -> Vec<Window> {
        let mut windows: Vec<Window> = Vec::new();
        for sample in samples {
            let Some(point) = self
                .point_of_device
                .get(&sample.device)
                .and_then(|&i| self.points.get(i))
            else {
                continue;
            };
            let bound = point.normaliser.longest_bound_ms();
            let ts = sample.ts.millis();
            let inputs = point
                .normaliser
                .inputs()
                .chain(point.quality.plant_stop_quantity());
            for quantity in inputs {
                windows.push(Window {
                    stack: point.normaliser.stack().clone(),
                    kind: RecordKind::Reading,
                    quantity,
                    from: Timestamp(ts.saturating_sub(bound)),
                    to: Timestamp(ts.saturating_add(bound).saturating_add(1)),
                });
            }
        }
        merge_windows(windows)
    }

    /// Takes readings that arrive after later ones of their channel (a broker that restarted,
    /// a logger's backlog), given the stored copies of any of them and the stored readings of
    /// [`Processor::late_windows`]. Copies of stored readings are dropped. The others are
    /// normalised and checked against the inputs of their own time and stored; an open
    /// minute takes them as usual, a closed one is left to [`Processor::revise_pending`].
    pub fn push_late(
        &mut self,
        samples: &[Sample],
        stored: &[Stored],
        out: &mut Vec<Record>,
    ) -> LateOutcome {
        let mut readings_of: Vec<Vec<Record>> = vec![Vec::new(); self.points.len()];
        let mut have: HashSet<(&str, &str, Timestamp)> = HashSet::new();
        for row in stored {
            let r = &row.record;
            if r.kind != RecordKind::Reading {
                continue;
            }
            if let Some(&point) = self.point_of_stack.get(&*r.stack) {
                have.insert((&r.device, &r.channel, r.ts));
                readings_of[point].push(r.clone());
            }
        }
        let mut outcome = LateOutcome::default();
        let fresh: Vec<Sample> = samples
            .iter()
            .filter(|s| {
                let new = have.insert((&s.device, &s.channel, s.ts));
                if !new {
                    outcome.duplicates += 1;
                }
                new
            })
            .cloned()
            .collect();
        outcome.taken = fresh.len();

        let mut discarded_gaps = Vec::new();
        for (index, snapshot) in self.snapshots(&fresh) {
            let Some(ts) = snapshot.first().map(|s| s.ts) else {
                continue;
            };
            let samples: Vec<&Sample> = snapshot.iter().map(|s| s.as_ref()).collect();
            let Some(point) = self.points.get_mut(index) else {
                continue;
            };
            let context: Vec<&Record> = readings_of[index].iter().collect();
            let mut normaliser = point.normaliser.as_of(ts, &context);
            let mut quality = point.quality.as_of(ts, &context);
            let first = self.readings.len();
            normaliser.push_snapshot(&samples, &mut self.readings);
            quality.check_snapshot(&mut self.readings[first..], &mut discarded_gaps);
            discarded_gaps.clear();
            for reading in &self.readings[first..] {
                // a later snapshot of the batch takes this one as its context
                readings_of[index].push(reading_record(reading.clone()));
                point.quality.fill_late(reading, &mut self.gaps);
            }
            self.aggregate(index, first);
        }
        self.drain(out);
        outcome
    }

    /// Readings went into minutes already closed (see [`Processor::revise_pending`]).
    pub fn has_pending_revisions(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The stored records [`Processor::revise_pending`] needs once the readings that
    /// re-opened periods are stored: the readings of each re-opened minute, the minutes of
    /// its hour, and the hours and day of its day.
    pub fn pending_windows(&self) -> Vec<Window> {
        let offset = self.offset.millis();
        let mut windows = Vec::new();
        for &(index, quantity, minute) in &self.pending {
            let Some(point) = self.points.get(index) else {
                continue;
            };
            let hour = floor(minute, HOUR_MS, offset);
            let day = floor(minute, DAY_MS, offset);
            for (kind, from, to) in [
                (RecordKind::Reading, minute, minute + MINUTE_MS),
                (RecordKind::Minute, hour, hour + HOUR_MS),
                (RecordKind::Hour, day, day + DAY_MS),
                (RecordKind::Day, day, day + DAY_MS),
            ] {
                windows.push(Window {
                    stack: point.normaliser.stack().clone(),
                    kind,
                    quantity,
                    from: Timestamp(from),
                    to: Timestamp(to),
                });
            }
        }
        merge_windows(windows)
    }

    /// Recomputes every minute re-opened by a reading from all its readings and stores it as
    /// the next revision, with its hour and day where those were closed too. `stored` holds
    /// the records of [`Processor::pending_windows`], stored or about to be, in store order.
    pub fn revise_pending(&mut self, stored: &[Stored], out: &mut Vec<Record>) {
        let offset = self.offset.millis();
        let mut pending = std::mem::take(&mut self.pending);
        pending.sort_by_key(|&(point, quantity, minute)| (point, minute, quantity as usize));
        let mut readings_of: Vec<Vec<Reading>> = vec![Vec::new(); self.points.len()];
        let mut closed_of: Vec<ClosedPeriods> = Vec::new();
        closed_of.resize_with(self.points.len(), ClosedPeriods::default);
        for row in stored {
            let r = &row.record;
            let Some(&point) = self.point_of_stack.get(&*r.stack) else {
                continue;
            };
            match r.kind {
                RecordKind::Reading => readings_of[point].extend(reading_of(r)),
                _ => {
                    if let Some(agg) = aggregate_of(r) {
                        closed_of[point].insert(agg);
                    }
                }
            }
        }
        for (index, quantity, minute) in pending {
            let readings: Vec<&Reading> = readings_of[index]
                .iter()
                .filter(|r| {
                    r.quantity == quantity && floor(r.ts.millis(), MINUTE_MS, offset) == minute
                })
                .collect();
            let Some(point) = self.points.get_mut(index) else {
                continue;
            };
            if let Some(revised) = point.aggregator.minute_of(Timestamp(minute), &readings) {
                let first = self.aggregates.len();
                point
                    .aggregator
                    .revise(revised, &mut closed_of[index], &mut self.aggregates);
                if let Some(tracker) = &mut point.exceedances {
                    for agg in &self.aggregates[first..] {
                        tracker.revise(agg, &mut self.events);
                    }
                }
            }
        }
        self.drain(out);
    }

    /// Runs one snapshot of one point through the chain.
    fn process(&mut self, index: usize, samples: &[&Sample], out: &mut Vec<Record>) {
        let Some(point) = self.points.get_mut(index) else {
            return;
        };
        let first = self.readings.len();
        point.normaliser.push_snapshot(samples, &mut self.readings);
        point
            .quality
            .check_snapshot(&mut self.readings[first..], &mut self.gaps);
        self.aggregate(index, first);
        self.drain(out);
    }

    /// Adds the point's readings from `self.readings[first..]` to their open minutes, and
    /// notes those that fall into closed ones for [`Processor::revise_pending`].
    fn aggregate(&mut self, index: usize, first: usize) {
        let Some(point) = self.points.get_mut(index) else {
            return;
        };
        let offset = self.offset.millis();
        let done = self.aggregates.len();
        for reading in &self.readings[first..] {
            if point.aggregator.is_late(reading) {
                let key = (
                    index,
                    reading.quantity,
                    floor(reading.ts.millis(), MINUTE_MS, offset),
                );
                if !self.pending.contains(&key) {
                    self.pending.push(key);
                }
            } else {
                point.aggregator.push(reading, &mut self.aggregates);
            }
        }
        if let Some(tracker) = &mut point.exceedances {
            for agg in &self.aggregates[done..] {
                tracker.push(agg, &mut self.events);
            }
        }
    }

    /// Lets time pass to `now`: closes periods nobody will add to, opens silence gaps.
    pub fn tick(&mut self, now: Timestamp, out: &mut Vec<Record>) {
        self.let_time_pass(now, false, out);
    }

    /// The input has ended (a replayed capture): lets time pass to `now` as `tick` does,
    /// closing also the periods of series that took readings since the last tick.
    pub fn finish(&mut self, now: Timestamp, out: &mut Vec<Record>) {
        self.let_time_pass(now, true, out);
    }

    fn let_time_pass(&mut self, now: Timestamp, input_ended: bool, out: &mut Vec<Record>) {
        for point in &mut self.points {
            point.quality.tick(now, &mut self.gaps);
            let first = self.aggregates.len();
            if input_ended {
                point.aggregator.finish(now, &mut self.aggregates);
            } else {
                point.aggregator.tick(now, &mut self.aggregates);
            }
            if let Some(tracker) = &mut point.exceedances {
                for agg in &self.aggregates[first..] {
                    tracker.push(agg, &mut self.events);
                }
            }
        }
        self.drain(out);
    }

    fn drain(&mut self, out: &mut Vec<Record>) {
        out.extend(self.readings.drain(..).map(reading_record));
        out.extend(self.gaps.drain(..).map(|g| gap_record(&g)));
        out.extend(self.aggregates.drain(..).map(|a| aggregate_record(&a)));
        out.extend(self.events.drain(..).map(|e| exceedance_record(&e)));
    }
}

/// A reading's store row, with its note.
fn reading_record(reading: Reading) -> Record {
    let mut record = Record::from(&reading);
    record.note = reading.note;
    record
}

/// Joins overlapping windows of the same stack and kind.
fn merge_windows(mut windows: Vec<Window>) -> Vec<Window> {
    windows.sort();
    let mut merged: Vec<Window> = Vec::with_capacity(windows.len());
    for w in windows {
        match merged.last_mut() {
            Some(last)
                if (&last.stack, last.kind, last.quantity) == (&w.stack, w.kind, w.quantity)
                    && w.from <= last.to =>
            {
                last.to = last.to.max(w.to);
            }
            _ => merged.push(w),
        }
    }
    merged
}

/// A stored reading as the aggregation stage consumed it, for warming up after a restart and
/// for recomputing a minute re-opened by a late reading.
pub fn reading_of(stored: &Record) -> Option<Reading> {
    if stored.kind != RecordKind::Reading {
        return None;
    }
    Some(Reading {
        ts: stored.ts,
        stack: stored.stack.clone(),
        device: stored.device.clone(),
        channel: stored.channel.clone(),
        quantity: stored.quantity?,
        unit: stored.unit?,
        // normalised readings are at dry basis or carry their own unit's basis; aggregation
        // does not look at it
        basis: Basis::Dry,
        raw: stored.raw.unwrap_or(f64::NAN),
        measured: stored.measured.unwrap_or(f64::NAN),
        corrected: stored.corrected,
        rate: stored.rate,
        flags: stored.flags,
        note: stored.note.clone(),
    })
}

fn no_name() -> Arc<str> {
    Arc::from("")
}

fn gap_record(gap: &Gap) -> Record {
    Record {
        end: gap.end,
        note: Some(gap.cause.name().to_string()),
        ..Record::new(
            RecordKind::Gap,
            gap.start,
            gap.stack.clone(),
            gap.device.clone(),
            gap.channel.clone(),
        )
    }
}

/// A stored minute, hour or day row as the aggregate it was written from; `None` for other
/// kinds and for rows without quantity or unit.
pub fn aggregate_of(r: &Record) -> Option<Aggregate> {
    let period = match r.kind {
        RecordKind::Minute => Period::Minute,
        RecordKind::Hour => Period::Hour,
        RecordKind::Day => Period::Day,
        _ => return None,
    };
    let (quantity, unit) = (r.quantity?, r.unit?);
    let flag = r.flags.primary();
    let valid = flag.valid_for_average();
    Some(Aggregate {
        period,
        start: r.ts,
        end: r.end.unwrap_or(r.ts),
        stack: r.stack.clone(),
        quantity,
        unit,
        valid,
        flag,
        count: r.count.unwrap_or(0),
        total: r.count.unwrap_or(0),
        raw_avg: r.raw,
        avg: r.measured,
        min: r.min,
        max: r.max,
        corrected_avg: r.corrected,
        corrected_min: r.corrected_min,
        corrected_max: r.corrected_max,
        rate_avg: r.rate,
        // HJ 75: an hour's mass is its mean emission rate over the hour, valid hours only
        mass_kg: r.rate.filter(|_| valid && period == Period::Hour),
        note: r.note.clone(),
        revision: r.revision,
    })
}

fn aggregate_record(agg: &Aggregate) -> Record {
    let kind = match agg.period {
        Period::Minute => RecordKind::Minute,
        Period::Hour => RecordKind::Hour,
        Period::Day => RecordKind::Day,
    };
    Record {
        end: Some(agg.end),
        quantity: Some(agg.quantity),
        unit: Some(agg.unit),
        flags: FlagSet::of(agg.flag),
        raw: agg.raw_avg,
        measured: agg.avg,
        corrected: agg.corrected_avg,
        rate: agg.rate_avg,
        min: agg.min,
        max: agg.max,
        corrected_min: agg.corrected_min,
        corrected_max: agg.corrected_max,
        count: Some(agg.count),
        note: agg.note.clone(),
        revision: agg.revision,
        ..Record::new(kind, agg.start, agg.stack.clone(), no_name(), no_name())
    }
}

fn exceedance_record(event: &Exceedance) -> Record {
    Record {
        end: event.end,
        quantity: Some(event.quantity),
        unit: Some(crate::model::Unit::MgPerM3),
        corrected: Some(event.peak),
        max: Some(event.peak),
        count: Some(event.hours),
        note: Some(if event.end == Some(event.start) {
            format!(
                "withdrawn: revised hours no longer exceed; limit={} window_hours={}",
                event.limit, event.window_hours
            )
        } else {
            format!("limit={} window_hours={}", event.limit, event.window_hours)
        }),
        ..Record::new(
            RecordKind::Exceedance,
            event.start,
            event.stack.clone(),
            no_name(),
            no_name(),
        )
    }
}
