//! Data flags and gaps (HJ 75-2017 data review, HJ 212-2017 flag vocabulary).
//!
//! [`Quality`] runs after the normaliser on every reading of one stack and adds the flags the
//! instrument could not know:
//! - F while the plant is stopped (a configured quantity below a threshold);
//! - T above the channel's measuring range (valid, but flagged);
//! - D for physically impossible values: negative beyond tolerance, O2 at or above 21 − margin
//!   (the reference-O2 guard), humidity at or above 100 %;
//! - D for a frozen output: the exact same raw value for `frozen_after` while the plant runs and
//!   the instrument reports no fault. D (fault) because a stuck output is an analyser or
//!   transmitter fault; the flag starts when the run reaches that length (readings already
//!   stored keep theirs);
//! - the invalidating flags (C, M, D, B, and F where an instrument reports it) of the values a
//!   reading was computed from: O2 for corrected pollutants, humidity for wet readings, NO/NO2
//!   for derived NOx, temperature, pressure, humidity and velocity for standardised flow. HJ
//!   212 carries one flag per value, so the flag must cover the corrected value a bureau
//!   compares with the limit. Only inputs actually used count — those within the staleness
//!   bound, as the normaliser picks them — so an input that is missing altogether adds no
//!   flag: the normaliser leaves the value out and its note says why. The plant-stop F a
//!   reading gets here is the plant's state at that reading's own time and is not passed on;
//! - B for a reading without a value and without a note explaining it: nothing was received.
//!
//! B therefore means that a read failed, on the channel itself or on an input it was
//! computed from, and nothing else.
//!
//! [`Quality::check_snapshot`] checks the readings of one poll in dependency order (moisture,
//! then temperature, pressure, velocity, then O2, flow, pollutants, NOx), so each reading
//! takes its inputs' flags from the same poll.
//!
//! It also records gaps, intervals in which a channel delivered no value.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::stack::{
    millis, staleness_bound_ms, FlowSource, NoxMethod, PlantStop, StackParams,
};
use crate::model::{Basis, Flag, FlagSet, Quantity, Reading, Timestamp};
use crate::process::normalise::DEFAULT_POLL_INTERVAL;
use crate::store::Record;

/// Why a channel delivered no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GapCause {
    /// The collector reported failed reads (samples flagged B).
    CommunicationFailure,
    /// No sample arrived at all for `gap_missed_polls` expected intervals.
    CollectorSilence,
    /// cemsd itself was not running.
    DaemonDown,
    /// Withdraws the gap recorded at this start: readings that arrived late filled it. The
    /// row ends where it starts.
    Filled,
}

impl GapCause {
    pub const ALL: [GapCause; 4] = [
        GapCause::CommunicationFailure,
        GapCause::CollectorSilence,
        GapCause::DaemonDown,
        GapCause::Filled,
    ];

    /// The cause a stored gap row names in its note.
    pub fn parse(name: &str) -> Option<GapCause> {
        GapCause::ALL.into_iter().find(|c| c.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            GapCause::CommunicationFailure => "communication_failure",
            GapCause::CollectorSilence => "collector_silence",
            GapCause::DaemonDown => "daemon_down",
            GapCause::Filled => "filled",
        }
    }
}

/// A span without values on one channel: from the last value before it (`start`) to the first
/// value after it (`end`). Emitted once when it is seen to open (`end` None, only when a tick or
/// a failed read shows it while it lasts) and once when it closes; both carry the same key
/// (stack, device, channel, start).
#[derive(Debug, Clone, PartialEq)]
pub struct Gap {
    pub stack: Arc<str>,
    pub device: Arc<str>,
    pub channel: Arc<str>,
    pub start: Timestamp,
    pub end: Option<Timestamp>,
    pub cause: GapCause,
}

/// What quality needs to know about a device channel beyond the stack parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChannelSpec {
    /// How often the collector delivers a sample (the poll interval).
    pub expected_interval: Duration,
    /// Measuring range in the wire unit (the profile's `range`); above it is flagged T.
    pub range: Option<[f64; 2]>,
}

#[derive(Debug, Clone)]
struct ChannelState {
    device: Arc<str>,
    channel: Arc<str>,
    /// Silence threshold in ms; None for channels nobody registered (derived readings), which
    /// get no gap tracking.
    silence_ms: Option<i64>,
    range_high: Option<f64>,
    /// Timestamp of the last value, or of the first observation before any value arrived.
    since: Option<Timestamp>,
    open_gap: Option<(Timestamp, GapCause)>,
    /// Raw value of the current run of identical values and when the run began.
    run: Option<(f64, Timestamp)>,
    /// The latest closed gaps (start, end, cause), which a value arriving late may fill.
    recorded: Vec<(Timestamp, Timestamp, GapCause)>,
}

/// Closed gaps kept per channel for late values to fill: more than a channel has within any
/// lateness horizon unless its link flaps, and then the oldest matter least.
const RECORDED_GAPS: usize = 16;

impl ChannelState {
    fn recorded(&mut self, start: Timestamp, end: Timestamp, cause: GapCause) {
        if self.recorded.len() == RECORDED_GAPS {
            self.recorded.remove(0);
        }
        self.recorded.push((start, end, cause));
    }
}

/// The latest reading of a quantity, as an input of others.
#[derive(Debug, Clone, Copy)]
struct Input {
    ts: Timestamp,
    /// Its flags, less the plant-stop F added here.
    flags: FlagSet,
    /// How far from `ts` it may be used: the staleness bound of its device.
    max_age_ms: i64,
}

/// Flags and gaps for one stack.
#[derive(Debug, Clone)]
pub struct Quality {
    stack: Arc<str>,
    channels: Vec<ChannelState>,
    /// The latest reading of each quantity, for dependencies.
    latest: [Option<Input>; Quantity::ALL.len()],
    /// Latest plant-stop decision, when it was made, and how long it holds.
    plant: Option<(Timestamp, bool, i64)>,
    plant_stop: Option<PlantStop>,
    frozen_after_ms: Option<i64>,
    negative_tolerance: f64,
    o2_limit: f64,
    state_max_age: Option<Duration>,
    /// Staleness bound of each declared device's readings.
    max_age_of: HashMap<Arc<str>, i64>,
    /// Staleness bound of readings from undeclared devices.
    default_max_age_ms: i64,
    grace_ms: i64,
    missed_polls: i64,
    nox: NoxMethod,
    flow_from: FlowSource,
    invalid: u8,
}

/// Bits of the flags that make a value invalid for averages (HJ 75-2017: C, M, D, F, B).
fn invalid_mask() -> u8 {
    Flag::ALL
        .into_iter()
        .filter(|f| !f.valid_for_average())
        .fold(FlagSet::EMPTY, FlagSet::with)
        .bits()
}

/// Quantities that cannot be negative.
fn non_negative(q: Quantity) -> bool {
    q.is_pollutant()
        || matches!(
            q,
            Quantity::O2 | Quantity::CO2 | Quantity::Humidity | Quantity::Velocity | Quantity::Flow
        )
}

impl Quality {
    pub fn new(stack: Arc<str>, params: &StackParams) -> Quality {
        Quality {
            stack,
            channels: Vec::new(),
            latest: [None; Quantity::ALL.len()],
            plant: None,
            plant_stop: params.plant_stop,
            frozen_after_ms: params.frozen_after.map(millis),
            negative_tolerance: params.negative_tolerance,
            o2_limit: 21.0 - params.o2_guard_margin,
            state_max_age: params.state_max_age,
            max_age_of: HashMap::new(),
            default_max_age_ms: params.staleness_bound_ms(DEFAULT_POLL_INTERVAL),
            grace_ms: millis(params.arrival_grace),
            missed_polls: i64::from(params.gap_missed_polls),
            nox: params.nox,
            flow_from: params.flow_from,
            invalid: invalid_mask(),
        }
    }

    /// Declares a device channel so that its silence is noticed; call once per channel at
    /// start-up (again to change the spec).
    pub fn add_channel(&mut self, device: Arc<str>, channel: Arc<str>, spec: ChannelSpec) {
        let idx = self.channel_index(&device, &channel);
        let ch = &mut self.channels[idx];
        ch.silence_ms = Some(millis(spec.expected_interval).saturating_mul(self.missed_polls));
        ch.range_high = spec.range.map(|[_, high]| high);
        let bound = staleness_bound_ms(self.state_max_age, spec.expected_interval);
        self.max_age_of.insert(device, bound);
    }

    /// The quantity whose readings tell whether the plant runs, if the stack has one.
    pub fn plant_stop_quantity(&self) -> Option<Quantity> {
        self.plant_stop.map(|stop| stop.quantity)
    }

    /// This stack's checks as they stood at `ts`, for readings that arrive after later ones:
    /// inputs and plant state from the stored readings nearest to `ts` (`stored`, readings
    /// of this point). Channel history starts afresh, so the copy opens no gap and sees no
    /// frozen run: both are judged on readings in time order only.
    pub fn as_of(&self, ts: Timestamp, stored: &[&Record]) -> Quality {
        let mut then = self.clone();
        then.latest = [None; Quantity::ALL.len()];
        then.plant = None;
        for ch in &mut then.channels {
            ch.silence_ms = None;
            ch.since = None;
            ch.open_gap = None;
            ch.run = None;
        }
        let distance = |at: Timestamp| (at.millis() - ts.millis()).abs();
        let mut plant_from: Option<Timestamp> = None;
        for record in stored {
            let Some(quantity) = record.quantity else {
                continue;
            };
            let max_age_ms = self.max_age_of_device(&record.device);
            let slot = &mut then.latest[quantity as usize];
            if slot.is_none_or(|held| distance(record.ts) < distance(held.ts)) {
                *slot = Some(Input {
                    ts: record.ts,
                    flags: record.flags,
                    max_age_ms,
                });
            }
            let Some(stop) = self.plant_stop else {
                continue;
            };
            let measured = record.measured.filter(|v| v.is_finite());
            if let (true, false, Some(measured)) = (
                quantity == stop.quantity,
                self.is_invalid(record.flags),
                measured,
            ) {
                if plant_from.is_none_or(|held| distance(record.ts) < distance(held)) {
                    plant_from = Some(record.ts);
                    then.plant = Some((record.ts, measured < stop.below, max_age_ms));
                }
            }
        }
        then
    }

    /// Checks the readings of one poll (see [`crate::process::normalise::Normaliser::push_snapshot`]):
    /// the plant's state first, from the poll's own reading of the plant-stop quantity, then
    /// every reading after the readings it depends on, so flags come from the same poll.
    /// The readings stay in their order.
    pub fn check_snapshot(&mut self, readings: &mut [Reading], gaps: &mut Vec<Gap>) {
        for reading in readings.iter() {
            self.observe_plant(reading);
        }
        let mut order: Vec<usize> = (0..readings.len()).collect();
        order.sort_by_key(|&i| dependency_rank(readings[i].quantity));
        for i in order {
            self.check(&mut readings[i], gaps);
        }
    }

    /// Takes the plant's state from a reading of the plant-stop quantity (a valid one with a
    /// value); other readings are ignored.
    fn observe_plant(&mut self, reading: &Reading) {
        let Some(stop) = self.plant_stop else {
            return;
        };
        if reading.quantity == stop.quantity
            && !self.is_invalid(reading.flags)
            && reading.measured.is_finite()
        {
            let bound = self.max_age_of_device(&reading.device);
            self.plant = Some((reading.ts, reading.measured < stop.below, bound));
        }
    }

    fn max_age_of_device(&self, device: &Arc<str>) -> i64 {
        self.max_age_of
            .get(device)
            .copied()
            .unwrap_or(self.default_max_age_ms)
    }

    /// Adds this stack's flags to a reading (in arrival order) and records gap changes.
    pub fn check(&mut self, reading: &mut Reading, gaps: &mut Vec<Gap>) {
        let idx = self.channel_index(&reading.device, &reading.channel);
        self.track_arrival(idx, reading, gaps);

        let q = reading.quantity;
        let ts = reading.ts;
        let mut flags = reading.flags;
        let instrument_ok = !self.is_invalid(flags);
        let reported_stop = flags.contains(Flag::F);

        self.observe_plant(reading);
        let stopped = self.plant.is_some_and(|(at, stopped, bound)| {
            stopped && (ts.millis() - at.millis()).abs() <= bound
        });
        if stopped {
            flags.insert(Flag::F);
        }

        let ch = &mut self.channels[idx];
        if ch.range_high.is_some_and(|high| reading.raw > high) {
            flags.insert(Flag::T);
        }
        let m = reading.measured;
        if non_negative(q) && m < -self.negative_tolerance
            || q == Quantity::O2 && m >= self.o2_limit
            || q == Quantity::Humidity && m >= 100.0
        {
            flags.insert(Flag::D);
        }
        if let Some(after) = self.frozen_after_ms {
            if stopped || !instrument_ok || !reading.raw.is_finite() {
                ch.run = None;
            } else {
                match ch.run {
                    Some((value, began)) if value == reading.raw => {
                        if ts.millis() - began.millis() >= after {
                            flags.insert(Flag::D);
                        }
                    }
                    _ => ch.run = Some((reading.raw, ts)),
                }
            }
        }

        let (deps, n) = self.dependencies(q, reading.basis);
        for dep in &deps[..n] {
            flags = flags.union(self.dependency_flags(*dep, ts));
        }
        if reading.rate.is_some() && self.is_invalid(self.dependency_flags(Quantity::Flow, ts)) {
            reading.rate = None;
        }
        // A value left out for a reason the note gives is no communication failure.
        let unexplained = !m.is_finite() && reading.note.is_none();
        if unexplained && !self.is_invalid(flags) {
            flags.insert(Flag::B);
        }

        reading.flags = flags;
        let as_input = if stopped && !reported_stop {
            FlagSet::from_bits(flags.bits() & !FlagSet::of(Flag::F).bits())
        } else {
            flags
        };
        self.latest[q as usize] = Some(Input {
            ts,
            flags: as_input,
            max_age_ms: self.max_age_of_device(&reading.device),
        });
    }

    /// Opens silence gaps on channels quiet for too long, as of now − arrival_grace. A declared
    /// channel that has not delivered yet is measured from its first tick (or from `restart`).
    pub fn tick(&mut self, now: Timestamp, gaps: &mut Vec<Gap>) {
        let known_until = Timestamp(now.millis().saturating_sub(self.grace_ms));
        for ch in &mut self.channels {
            let Some(silence) = ch.silence_ms else {
                continue;
            };
            if ch.open_gap.is_some() {
                continue;
            }
            match ch.since {
                None => ch.since = Some(known_until),
                Some(since) if known_until.millis() - since.millis() > silence => {
                    ch.open_gap = Some((since, GapCause::CollectorSilence));
                    gaps.push(Gap {
                        stack: Arc::clone(&self.stack),
                        device: Arc::clone(&ch.device),
                        channel: Arc::clone(&ch.channel),
                        start: since,
                        end: None,
                        cause: GapCause::CollectorSilence,
                    });
                }
                Some(_) => {}
            }
        }
    }

    /// After a start-up, once the channels are declared and before the first tick: every
    /// declared channel lost `last_stored..now` while cemsd was down. Silence is then measured
    /// from `now`.
    pub fn restart(&mut self, last_stored: Timestamp, now: Timestamp, gaps: &mut Vec<Gap>) {
        for ch in &mut self.channels {
            if ch.silence_ms.is_none() {
                continue;
            }
            if last_stored < now {
                gaps.push(Gap {
                    stack: Arc::clone(&self.stack),
                    device: Arc::clone(&ch.device),
                    channel: Arc::clone(&ch.channel),
                    start: last_stored,
                    end: Some(now),
                    cause: GapCause::DaemonDown,
                });
                ch.recorded(last_stored, now, GapCause::DaemonDown);
            }
            ch.since = Some(now);
            ch.open_gap = None;
            ch.run = None;
        }
    }

    /// A value that arrived after later ones of its channel (see
    /// [`crate::process::Processor::push_late`]) shortens or withdraws the gap it falls into:
    /// a closed one, or the silence still open, which then runs from this value on.
    pub fn fill_late(&mut self, reading: &Reading, gaps: &mut Vec<Gap>) {
        if !reading.raw.is_finite() || reading.flags.contains(Flag::B) {
            return;
        }
        let idx = self.channel_index(&reading.device, &reading.channel);
        let stack = Arc::clone(&self.stack);
        let ch = &mut self.channels[idx];
        let Some(silence) = ch.silence_ms else {
            return;
        };
        let ts = reading.ts;
        match ch.open_gap {
            Some((start, cause)) if start < ts => {
                let (device, channel) = (Arc::clone(&ch.device), Arc::clone(&ch.channel));
                let piece = |start, end, cause| Gap {
                    stack: Arc::clone(&stack),
                    device: Arc::clone(&device),
                    channel: Arc::clone(&channel),
                    start,
                    end,
                    cause,
                };
                if ts.millis() - start.millis() > silence {
                    gaps.push(piece(start, Some(ts), cause));
                    ch.recorded(start, ts, cause);
                } else {
                    gaps.push(piece(start, Some(start), GapCause::Filled));
                }
                gaps.push(piece(ts, None, cause));
                ch.open_gap = Some((ts, cause));
                ch.since = Some(ch.since.map_or(ts, |since| since.max(ts)));
            }
            _ => fill_recorded(&stack, ch, silence, ts, gaps),
        }
    }

    /// Takes a closed gap stored by an earlier run, so a late value can still fill it.
    pub fn recall_gap(
        &mut self,
        device: &Arc<str>,
        channel: &Arc<str>,
        start: Timestamp,
        end: Timestamp,
        cause: GapCause,
    ) {
        let idx = self.channel_index(device, channel);
        let ch = &mut self.channels[idx];
        if ch.silence_ms.is_some() && start < end && cause != GapCause::Filled {
            ch.recorded(start, end, cause);
        }
    }

    fn channel_index(&mut self, device: &Arc<str>, channel: &Arc<str>) -> usize {
        let found = self.channels.iter().position(|c| {
            (Arc::ptr_eq(&c.device, device) || c.device == *device)
                && (Arc::ptr_eq(&c.channel, channel) || c.channel == *channel)
        });
        found.unwrap_or_else(|| {
            self.channels.push(ChannelState {
                device: Arc::clone(device),
                channel: Arc::clone(channel),
                silence_ms: None,
                range_high: None,
                since: None,
                open_gap: None,
                run: None,
                recorded: Vec::new(),
            });
            self.channels.len() - 1
        })
    }

    fn track_arrival(&mut self, idx: usize, reading: &Reading, gaps: &mut Vec<Gap>) {
        let ch = &mut self.channels[idx];
        let Some(silence) = ch.silence_ms else {
            return;
        };
        let ts = reading.ts;
        let has_value = reading.raw.is_finite() && !reading.flags.contains(Flag::B);
        let silent_since = ch
            .since
            .filter(|since| ts.millis() - since.millis() > silence);
        let gap = |start, end, cause| Gap {
            stack: Arc::clone(&self.stack),
            device: Arc::clone(&ch.device),
            channel: Arc::clone(&ch.channel),
            start,
            end,
            cause,
        };
        if has_value && ch.since.is_some_and(|since| ts < since) {
            // older than the channel's latest value: it came late, or after a restart
            // recorded its time as lost
            fill_recorded(&self.stack, ch, silence, ts, gaps);
            return;
        }
        if !has_value {
            if ch.open_gap.is_none() {
                // A failed read after a long silence belongs to the silence, as a tick would
                // have seen it first.
                let cause = if silent_since.is_some() {
                    GapCause::CollectorSilence
                } else {
                    GapCause::CommunicationFailure
                };
                let start = ch.since.unwrap_or(ts);
                gaps.push(gap(start, None, cause));
                ch.open_gap = Some((start, cause));
            }
            ch.since.get_or_insert(ts);
            return;
        }
        match ch.open_gap.take() {
            Some((start, cause)) => {
                gaps.push(gap(start, Some(ts), cause));
                ch.recorded(start, ts, cause);
            }
            None => {
                if let Some(since) = silent_since {
                    gaps.push(gap(since, Some(ts), GapCause::CollectorSilence));
                    ch.recorded(since, ts, GapCause::CollectorSilence);
                }
            }
        }
        ch.since = Some(ch.since.map_or(ts, |s| s.max(ts)));
    }

    /// Quantities whose validity a reading of `q` inherits.
    fn dependencies(&self, q: Quantity, basis: Basis) -> ([Quantity; 5], usize) {
        let mut deps = [Quantity::O2; 5];
        let mut n = 0;
        let mut add = |d: Quantity| {
            deps[n] = d;
            n += 1;
        };
        if q.is_pollutant() {
            add(Quantity::O2);
        }
        if basis == Basis::Wet && (q.is_pollutant() || matches!(q, Quantity::O2 | Quantity::CO2)) {
            add(Quantity::Humidity);
        }
        match q {
            Quantity::NOx if self.nox != NoxMethod::Direct => {
                add(Quantity::NO);
                if self.nox == NoxMethod::NoPlusNo2 {
                    add(Quantity::NO2);
                }
            }
            Quantity::Flow if self.flow_from != FlowSource::StandardDryFlow => {
                add(Quantity::Temperature);
                add(Quantity::Pressure);
                add(Quantity::Humidity);
                if self.flow_from == FlowSource::Velocity {
                    add(Quantity::Velocity);
                }
            }
            _ => {}
        }
        (deps, n)
    }

    /// The invalidating flags of a dependency at `ts`; none when it has no reading within its
    /// staleness bound, since the normaliser then did not use it either.
    fn dependency_flags(&self, dep: Quantity, ts: Timestamp) -> FlagSet {
        match self.latest[dep as usize] {
            Some(input) if (ts.millis() - input.ts.millis()).abs() <= input.max_age_ms => {
                FlagSet::from_bits(input.flags.bits() & self.invalid)
            }
            _ => FlagSet::EMPTY,
        }
    }

    fn is_invalid(&self, flags: FlagSet) -> bool {
        flags.bits() & self.invalid != 0
    }
}

/// A value at `ts` inside a closed gap of the channel splits it: the part before and the part
/// after stay gaps where longer than the channel's silence threshold; a part that is not
/// withdraws the gap recorded at its start ([`GapCause::Filled`]).
fn fill_recorded(
    stack: &Arc<str>,
    ch: &mut ChannelState,
    silence: i64,
    ts: Timestamp,
    gaps: &mut Vec<Gap>,
) {
    let Some(i) = ch
        .recorded
        .iter()
        .position(|&(start, end, _)| start < ts && ts < end)
    else {
        return;
    };
    let (start, end, cause) = ch.recorded.remove(i);
    let piece = |start, end, cause| Gap {
        stack: Arc::clone(stack),
        device: Arc::clone(&ch.device),
        channel: Arc::clone(&ch.channel),
        start,
        end: Some(end),
        cause,
    };
    let before = ts.millis() - start.millis() > silence;
    let after = end.millis() - ts.millis() > silence;
    gaps.push(if before {
        piece(start, ts, cause)
    } else {
        piece(start, start, GapCause::Filled)
    });
    if after {
        gaps.push(piece(ts, end, cause));
    }
    if before {
        ch.recorded(start, ts, cause);
    }
    if after {
        ch.recorded(ts, end, cause);
    }
}

/// Where a quantity comes in the checking of one poll: after everything it may depend on.
fn dependency_rank(q: Quantity) -> u8 {
    match q {
        Quantity::Humidity => 0,
        Quantity::Temperature | Quantity::Pressure | Quantity::Velocity => 1,
        Quantity::O2 | Quantity::CO2 => 2,
        Quantity::Flow => 3,
        Quantity::NOx => 5,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::stack::SourceType;
    use crate::model::Unit;

    const S: i64 = 1000;
    const MIN: i64 = 60 * S;

    fn params() -> StackParams {
        let mut p = StackParams::new("s1", SourceType::CoalBoiler);
        p.duct_area_m2 = Some(20.0);
        p.flow_from = FlowSource::StandardDryFlow;
        p.plant_stop = Some(PlantStop {
            quantity: Quantity::Flow,
            below: 10_000.0,
        });
        p
    }

    fn reading(q: Quantity, value: f64, ts: i64) -> Reading {
        Reading {
            ts: Timestamp(ts),
            stack: Arc::from("s1"),
            device: Arc::from("ana1"),
            channel: Arc::from(q.name()),
            quantity: q,
            unit: Unit::MgPerM3,
            basis: Basis::Dry,
            raw: value,
            measured: value,
            corrected: q.is_pollutant().then_some(value),
            rate: q.is_pollutant().then_some(1.0),
            flags: FlagSet::EMPTY,
            note: None,
        }
    }

    /// Runs readings through quality; returns their final flags.
    fn run(q: &mut Quality, readings: Vec<Reading>) -> Vec<Reading> {
        let mut gaps = Vec::new();
        readings
            .into_iter()
            .map(|mut r| {
                q.check(&mut r, &mut gaps);
                r
            })
            .collect()
    }

    /// A running plant at `ts`: flow above the stop threshold and a valid O2, both varying
    /// as live values do (constant ones would be frozen).
    fn running(ts: i64) -> Vec<Reading> {
        let wobble = (ts / 1000 % 7) as f64;
        vec![
            reading(Quantity::Flow, 500_000.0 + wobble, ts),
            reading(Quantity::O2, 6.0 + wobble / 100.0, ts),
        ]
    }

    fn with(mut r: Reading, f: impl FnOnce(&mut Reading)) -> Reading {
        f(&mut r);
        r
    }

    #[test]
    fn instrument_flags_pass_through() {
        let mut q = Quality::new(Arc::from("s1"), &params());
        let mut input = running(0);
        input.push(with(reading(Quantity::SO2, 20.0, 0), |r| {
            r.flags = FlagSet::of(Flag::C)
        }));
        let out = run(&mut q, input);
        assert_eq!(out[2].flags, FlagSet::of(Flag::C));
        assert_eq!(out[0].flags, FlagSet::EMPTY);
    }

    #[test]
    fn plant_stop_flags_every_reading_f() {
        let mut q = Quality::new(Arc::from("s1"), &params());
        let out = run(
            &mut q,
            vec![
                reading(Quantity::O2, 6.0, 0),
                // 5 000 m3/h is below the 10 000 threshold: stopped from here on
                reading(Quantity::Flow, 5_000.0, 0),
                reading(Quantity::SO2, 2.0, 1000),
                reading(Quantity::Flow, 500_000.0, 2000),
                reading(Quantity::SO2, 20.0, 2000),
            ],
        );
        let primary: Vec<_> = out.iter().map(|r| r.flag()).collect();
        assert_eq!(primary, [Flag::N, Flag::F, Flag::F, Flag::N, Flag::N]);
    }

    #[test]
    fn over_range_is_t_and_still_valid() {
        let mut q = Quality::new(Arc::from("s1"), &params());
        q.add_channel(
            Arc::from("ana1"),
            Arc::from("SO2"),
            ChannelSpec {
                expected_interval: Duration::from_secs(1),
                range: Some([0.0, 500.0]),
            },
        );
        let mut input = running(0);
        input.push(reading(Quantity::SO2, 500.0, 0));
        input.push(reading(Quantity::SO2, 510.0, 1000));
        let out = run(&mut q, input);
        assert_eq!(out[2].flags, FlagSet::EMPTY, "at the range limit");
        assert_eq!(out[3].flags, FlagSet::of(Flag::T));
        assert!(Flag::T.valid_for_average());
    }

    #[test]
    fn impossible_values_are_d() {
        let mut q = Quality::new(Arc::from("s1"), &params());
        let mut input = running(0);
        // tolerance 2: −1.5 is zero drift, −2.5 is not
        input.push(reading(Quantity::SO2, -1.5, 0));
        input.push(reading(Quantity::SO2, -2.5, 1000));
        // humidity 100 % cannot be
        input.push(reading(Quantity::Humidity, 100.0, 1000));
        // temperature and gauge pressure may be negative
        input.push(reading(Quantity::Pressure, -1500.0, 1000));
        input.push(reading(Quantity::Temperature, -5.0, 1000));
        let flags: Vec<_> = run(&mut q, input).iter().map(|r| r.flag()).collect();
        assert_eq!(
            flags,
            [
                Flag::N,
                Flag::N,
                Flag::N,
                Flag::D,
                Flag::D,
                Flag::N,
                Flag::N
            ]
        );
    }

    #[test]
    fn oxygen_at_21_percent_is_d_and_invalidates_corrected_pollutants() {
        let mut q = Quality::new(Arc::from("s1"), &params());
        let out = run(
            &mut q,
            vec![
                reading(Quantity::Flow, 500_000.0, 0),
                // guard margin 0.1: 20.9 is rejected, 20.89 is not
                reading(Quantity::O2, 20.89, 0),
                reading(Quantity::SO2, 20.0, 0),
                reading(Quantity::O2, 20.9, 1000),
                with(reading(Quantity::SO2, 20.0, 1000), |r| r.corrected = None),
            ],
        );
        let flags: Vec<_> = out.iter().map(|r| r.flag()).collect();
        assert_eq!(flags, [Flag::N, Flag::N, Flag::N, Flag::D, Flag::D]);
    }

    #[test]
    fn frozen_output_becomes_d_after_the_configured_time() {
        let mut q = Quality::new(Arc::from("s1"), &params());
        let mut input = Vec::new();
        // SO2 stuck at 12.5 from t = 0; frozen_after = 60 min
        for ts in [0, 30 * MIN, 60 * MIN - 1, 60 * MIN] {
            input.extend(running(ts));
            input.push(reading(Quantity::SO2, 12.5, ts));
        }
        // a new value starts a new run
        input.extend(running(61 * MIN));
        input.push(reading(Quantity::SO2, 12.6, 61 * MIN));
        let flags: Vec<_> = run(&mut q, input)
            .iter()
            .filter(|r| r.quantity == Quantity::SO2)
            .map(|r| r.flag())
            .collect();
        assert_eq!(flags, [Flag::N, Flag::N, Flag::N, Flag::D, Flag::N]);
    }

    #[test]
    fn frozen_check_pauses_while_stopped_or_in_calibration() {
        let mut q = Quality::new(Arc::from("s1"), &params());
        let mut input = Vec::new();
        for ts in [0, 61 * MIN] {
            input.push(reading(Quantity::Flow, 0.0, ts));
            input.push(reading(Quantity::O2, 20.0, ts));
            input.push(reading(Quantity::SO2, 0.0, ts));
        }
        let out = run(&mut q, input);
        assert_eq!(out[5].flags, FlagSet::of(Flag::F), "stopped: F, never D");

        let mut q = Quality::new(Arc::from("s1"), &params());
        let mut input = Vec::new();
        for ts in [0, 61 * MIN] {
            input.extend(running(ts));
            input.push(with(reading(Quantity::SO2, 400.0, ts), |r| {
                r.flags = FlagSet::of(Flag::C)
            }));
        }
        let out = run(&mut q, input);
        assert_eq!(
            out[5].flags,
            FlagSet::of(Flag::C),
            "held output in calibration"
        );
    }

    #[test]
    fn dependencies_pass_their_invalid_flags() {
        let mut q = Quality::new(Arc::from("s1"), &params());
        let out = run(
            &mut q,
            vec![
                reading(Quantity::Flow, 500_000.0, 0),
                with(reading(Quantity::O2, 6.0, 0), |r| {
                    r.flags = FlagSet::of(Flag::C)
                }),
                reading(Quantity::SO2, 20.0, 0),
                // O2 over range (T) is valid and does not spread
                with(reading(Quantity::O2, 6.0, 1000), |r| {
                    r.flags = FlagSet::of(Flag::T)
                }),
                reading(Quantity::SO2, 20.0, 1000),
                // wet reading without any humidity: the normaliser left the dry value out and
                // says why; nothing failed, so the analyser's own flag stays
                with(reading(Quantity::SO2, 20.0, 2000), |r| {
                    r.basis = Basis::Wet;
                    r.measured = f64::NAN;
                    r.corrected = None;
                    r.note = Some("no moisture source".into());
                }),
                // O2 older than its staleness bound (1.5 × the default 10 s poll) is not an
                // input: no corrected value, no flag from it
                with(reading(Quantity::SO2, 20.0, 1000 + 15_001), |r| {
                    r.corrected = None;
                    r.note = Some("no fresh O2 reading".into());
                }),
                // a failed moisture read is an input that failed: B on the wet reading
                with(reading(Quantity::Humidity, f64::NAN, 20_000), |r| {
                    r.flags = FlagSet::of(Flag::B)
                }),
                with(reading(Quantity::SO2, 20.0, 20_000), |r| {
                    r.basis = Basis::Wet
                }),
            ],
        );
        assert_eq!(out[2].flags, FlagSet::of(Flag::C));
        assert_eq!(out[4].flags, FlagSet::EMPTY);
        // These two were B before: a missing input was taken for a failed link.
        assert_eq!(out[5].flags, FlagSet::EMPTY);
        assert_eq!(out[6].flags, FlagSet::EMPTY);
        assert_eq!(out[8].flags, FlagSet::of(Flag::B));
    }

    #[test]
    fn derived_nox_inherits_no_and_no2() {
        let mut q = Quality::new(Arc::from("s1"), &params());
        let mut input = running(0);
        input.push(with(reading(Quantity::NO2, 5.0, 0), |r| {
            r.flags = FlagSet::of(Flag::M)
        }));
        input.push(reading(Quantity::NO, 50.0, 0));
        input.push(reading(Quantity::NOx, 81.5, 0));
        let out = run(&mut q, input);
        assert_eq!(out[3].flags, FlagSet::EMPTY);
        assert_eq!(out[4].flags, FlagSet::of(Flag::M));
    }

    #[test]
    fn rate_is_withheld_when_flow_is_invalid() {
        let mut q = Quality::new(Arc::from("s1"), &params());
        let out = run(
            &mut q,
            vec![
                reading(Quantity::O2, 6.0, 0),
                with(reading(Quantity::Flow, 500_000.0, 0), |r| {
                    r.flags = FlagSet::of(Flag::M)
                }),
                reading(Quantity::SO2, 20.0, 0),
            ],
        );
        assert_eq!(out[2].flags, FlagSet::EMPTY, "concentration stays valid");
        assert_eq!(out[2].rate, None);
    }

    #[test]
    fn a_reading_without_value_is_never_valid() {
        let mut q = Quality::new(Arc::from("s1"), &params());
        let mut input = running(0);
        input.push(with(reading(Quantity::SO2, f64::NAN, 0), |r| {
            r.corrected = None
        }));
        input.push(with(reading(Quantity::Dust, 3.0, 0), |r| {
            r.corrected = None;
            r.note = Some("no O2 source".into());
        }));
        input.push(with(reading(Quantity::SO2, f64::NAN, 0), |r| {
            r.raw = 90.0;
            r.corrected = None;
            r.note = Some("no moisture source".into());
        }));
        let out = run(&mut q, input);
        // nothing received, nothing to say why: B
        assert_eq!(out[2].flags, FlagSet::of(Flag::B));
        // Dust with its measured value but no corrected one was B before; a missing O2 is no
        // communication failure, so it keeps the analyser's flag and the note says why.
        assert_eq!(out[3].flags, FlagSet::EMPTY);
        assert_eq!(out[4].flags, FlagSet::EMPTY);
    }

    fn gap_quality() -> Quality {
        let mut q = Quality::new(Arc::from("s1"), &params());
        q.add_channel(
            Arc::from("ana1"),
            Arc::from("SO2"),
            ChannelSpec {
                expected_interval: Duration::from_secs(1),
                range: None,
            },
        );
        q
    }

    fn so2(ts: i64) -> Reading {
        reading(Quantity::SO2, 20.0, ts)
    }

    fn failed(ts: i64) -> Reading {
        with(reading(Quantity::SO2, f64::NAN, ts), |r| {
            r.flags = FlagSet::of(Flag::B);
            r.corrected = None;
        })
    }

    fn gap(start: i64, end: Option<i64>, cause: GapCause) -> Gap {
        Gap {
            stack: Arc::from("s1"),
            device: Arc::from("ana1"),
            channel: Arc::from("SO2"),
            start: Timestamp(start),
            end: end.map(Timestamp),
            cause,
        }
    }

    #[test]
    fn failed_reads_open_and_close_a_communication_gap() {
        let mut q = gap_quality();
        let mut gaps = Vec::new();
        for mut r in [so2(0), failed(1000), failed(2000), so2(3000)] {
            q.check(&mut r, &mut gaps);
        }
        assert_eq!(
            gaps,
            [
                gap(0, None, GapCause::CommunicationFailure),
                gap(0, Some(3000), GapCause::CommunicationFailure),
            ]
        );
    }

    #[test]
    fn values_that_arrive_late_shorten_or_withdraw_the_gaps_they_fall_into() {
        // silence threshold 3 s; cemsd was down from 0 to 20 s
        let mut q = gap_quality();
        let mut gaps = Vec::new();
        q.restart(Timestamp(0), Timestamp(20_000), &mut gaps);
        assert_eq!(gaps, [gap(0, Some(20_000), GapCause::DaemonDown)]);
        gaps.clear();
        // the broker delivers what was published meanwhile: 10 s splits the gap in two
        q.check(&mut so2(10_000), &mut gaps);
        assert_eq!(
            gaps,
            [
                gap(0, Some(10_000), GapCause::DaemonDown),
                gap(10_000, Some(20_000), GapCause::DaemonDown),
            ]
        );
        gaps.clear();
        // 2 s after the start leaves 2 s before it (no gap: the one at 0 is withdrawn) and
        // 8 s after it
        q.check(&mut so2(2_000), &mut gaps);
        assert_eq!(
            gaps,
            [
                gap(0, Some(0), GapCause::Filled),
                gap(2_000, Some(10_000), GapCause::DaemonDown),
            ]
        );
        gaps.clear();
        // values every 2 s fill the rest: the newest row of every gap start withdraws it
        for ts in [4_000, 6_000, 8_000, 12_000, 14_000, 16_000, 18_000] {
            q.check(&mut so2(ts), &mut gaps);
        }
        let mut newest = std::collections::BTreeMap::new();
        for g in &gaps {
            newest.insert(g.start.millis(), g.cause);
        }
        let starts: Vec<i64> = newest.keys().copied().collect();
        assert_eq!(
            starts,
            [2_000, 4_000, 6_000, 10_000, 12_000, 14_000, 16_000]
        );
        assert!(
            newest.values().all(|c| *c == GapCause::Filled),
            "{newest:?}"
        );
        // the channel goes on from its newest value as before
        gaps.clear();
        q.check(&mut so2(21_000), &mut gaps);
        assert!(gaps.is_empty(), "{gaps:?}");
    }

    #[test]
    fn a_late_value_inside_an_open_silence_moves_its_start() {
        let mut q = gap_quality();
        let mut gaps = Vec::new();
        q.check(&mut so2(0), &mut gaps);
        q.tick(Timestamp(40_000), &mut gaps);
        assert_eq!(gaps, [gap(0, None, GapCause::CollectorSilence)]);
        gaps.clear();
        // a delayed value from 5 s: 0..5 s stays a gap, the silence runs from 5 s on
        q.fill_late(&so2(5_000), &mut gaps);
        assert_eq!(
            gaps,
            [
                gap(0, Some(5_000), GapCause::CollectorSilence),
                gap(5_000, None, GapCause::CollectorSilence),
            ]
        );
        gaps.clear();
        // one from 7 s leaves too little before it: the gap at 5 s is withdrawn
        q.fill_late(&so2(7_000), &mut gaps);
        assert_eq!(
            gaps,
            [
                gap(5_000, Some(5_000), GapCause::Filled),
                gap(7_000, None, GapCause::CollectorSilence),
            ]
        );
        gaps.clear();
        // the live value that ends the silence closes it from the latest start
        q.check(&mut so2(45_000), &mut gaps);
        assert_eq!(gaps, [gap(7_000, Some(45_000), GapCause::CollectorSilence)]);
    }

    #[test]
    fn silence_is_noticed_by_tick_and_by_the_next_sample() {
        // 1 s interval × 3 missed polls = 3 s; grace 30 s
        let mut q = gap_quality();
        let mut gaps = Vec::new();
        q.check(&mut so2(0), &mut gaps);
        // known until 33 s − 30 s = 3 s: 3 s of silence is not more than 3 s
        q.tick(Timestamp(33_000), &mut gaps);
        assert!(gaps.is_empty(), "{gaps:?}");
        q.tick(Timestamp(33_001), &mut gaps);
        q.tick(Timestamp(40_000), &mut gaps);
        q.check(&mut so2(50_000), &mut gaps);
        assert_eq!(
            gaps,
            [
                gap(0, None, GapCause::CollectorSilence),
                gap(0, Some(50_000), GapCause::CollectorSilence),
            ]
        );

        // without ticks the closed gap alone is recorded, identically
        let mut q = gap_quality();
        let mut gaps = Vec::new();
        for mut r in [so2(0), so2(3000), so2(50_000)] {
            q.check(&mut r, &mut gaps);
        }
        assert_eq!(gaps, [gap(3000, Some(50_000), GapCause::CollectorSilence)]);
    }

    #[test]
    fn restart_records_the_downtime() {
        let mut q = gap_quality();
        let mut gaps = Vec::new();
        q.restart(Timestamp(10_000), Timestamp(70_000), &mut gaps);
        assert_eq!(gaps, [gap(10_000, Some(70_000), GapCause::DaemonDown)]);
        // silence is measured from the restart: nothing until 70 s + 3 s + 30 s grace
        gaps.clear();
        q.tick(Timestamp(103_000), &mut gaps);
        assert!(gaps.is_empty(), "{gaps:?}");
        q.tick(Timestamp(103_001), &mut gaps);
        assert_eq!(gaps, [gap(70_000, None, GapCause::CollectorSilence)]);
    }
}
