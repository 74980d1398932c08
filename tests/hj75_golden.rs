//! Samples in, HJ 75 results out: the whole pure pipeline (normalise → quality → aggregate →
//! exceedance, FGD pairing) against values worked out by hand from the standards' formulas.

use std::sync::Arc;
use std::time::Duration;

use cemsd::config::stack::{Limits, PlantStop, SourceType, StackParams};
use cemsd::model::time::{Period, UtcOffset, DAY_MS, HOUR_MS, MINUTE_MS};
use cemsd::model::{Basis, Flag, FlagSet, Quantity, Reading, Sample, Timestamp, Unit};
use cemsd::process::aggregate::{Aggregate, Aggregator};
use cemsd::process::exceedance::{Exceedance, ExceedanceTracker};
use cemsd::process::normalise::Normaliser;
use cemsd::process::quality::{ChannelSpec, Gap, GapCause, Quality};
use cemsd::report::fgd::{summarise, FgdPairer};
use cemsd::report::totals::CalendarPeriod;
use proptest::prelude::*;

/// 2026-01-01 00:00:00 at UTC+8 (2025-12-31T16:00:00Z).
const T0: i64 = 1_767_196_800_000;
const S: i64 = 1000;

fn close(got: Option<f64>, want: f64) -> bool {
    got.is_some_and(|g| (g - want).abs() <= 1e-9 * want.abs().max(1.0))
}

macro_rules! assert_close {
    ($got:expr, $want:expr) => {
        assert!(
            close($got, $want),
            "{} = {:?}, want {}",
            stringify!($got),
            $got,
            $want
        )
    };
}

/// One stack's pipeline, wired the way the daemon wires it.
struct Line {
    normaliser: Normaliser,
    quality: Quality,
    aggregator: Aggregator,
    exceedances: ExceedanceTracker,
    readings: Vec<Reading>,
    gaps: Vec<Gap>,
    aggregates: Vec<Aggregate>,
    events: Vec<Exceedance>,
}

impl Line {
    fn new(params: &StackParams) -> Line {
        assert_eq!(params.validate(), Ok(()));
        let stack: Arc<str> = Arc::from(params.id.as_str());
        Line {
            normaliser: Normaliser::new(Arc::clone(&stack), params),
            quality: Quality::new(Arc::clone(&stack), params),
            aggregator: Aggregator::new(Arc::clone(&stack), params, UtcOffset::CHINA),
            exceedances: ExceedanceTracker::new(
                stack,
                &params.limits,
                params.exceedance_window_hours,
            ),
            readings: Vec::new(),
            gaps: Vec::new(),
            aggregates: Vec::new(),
            events: Vec::new(),
        }
    }

    fn declare(&mut self, interval: Duration) {
        for (q, _, _) in CHANNELS {
            self.quality.add_channel(
                Arc::from("ana1"),
                Arc::from(q.name()),
                ChannelSpec {
                    expected_interval: interval,
                    range: None,
                },
            );
        }
    }

    fn feed(&mut self, sample: &Sample) {
        let first = self.readings.len();
        self.normaliser.push(sample, &mut self.readings);
        for reading in &mut self.readings[first..] {
            self.quality.check(reading, &mut self.gaps);
            let done = self.aggregates.len();
            self.aggregator.push(reading, &mut self.aggregates);
            for agg in &self.aggregates[done..] {
                self.exceedances.push(agg, &mut self.events);
            }
        }
    }

    fn tick(&mut self, now: i64) {
        self.quality.tick(Timestamp(now), &mut self.gaps);
        let done = self.aggregates.len();
        // readings are fed ahead of the clock here, so every tick is an end of input
        self.aggregator.finish(Timestamp(now), &mut self.aggregates);
        for agg in &self.aggregates[done..] {
            self.exceedances.push(agg, &mut self.events);
        }
    }

    fn find(&self, q: Quantity, period: Period, start: i64) -> &Aggregate {
        let found = self
            .aggregates
            .iter()
            .find(|a| a.quantity == q && a.period == period && a.start == Timestamp(start));
        match found {
            Some(a) => a,
            None => panic!("no {q} {} aggregate at {start}", period.name()),
        }
    }
}

/// A new coal unit (6 % O2, GB 13223 limits 30/100/100) with velocity × 20 m2 flow, no frozen
/// check so that steady test values stay valid.
fn coal_stack(id: &str) -> StackParams {
    let mut p = StackParams::new(id, SourceType::CoalBoiler);
    p.duct_area_m2 = Some(20.0);
    p.limits = Limits::GB13223_COAL_NEW;
    p.frozen_after = None;
    p
}

/// The analyser's channels in poll order: quantity, wire unit, basis.
const CHANNELS: [(Quantity, Unit, Basis); 9] = [
    (Quantity::O2, Unit::PercentVol, Basis::Dry),
    (Quantity::Humidity, Unit::PercentVol, Basis::Dry),
    (Quantity::Temperature, Unit::DegC, Basis::Dry),
    (Quantity::Pressure, Unit::KPa, Basis::Dry),
    (Quantity::Velocity, Unit::MetrePerSecond, Basis::Dry),
    (Quantity::NO2, Unit::Ppm, Basis::Dry),
    (Quantity::SO2, Unit::Ppm, Basis::Dry),
    (Quantity::NO, Unit::Ppm, Basis::Wet),
    (Quantity::Dust, Unit::MgPerM3, Basis::Dry),
];

/// Flue gas of one poll. Defaults: O2 9 %, humidity 8 %, 120 °C, −1.325 kPa gauge,
/// 10 m/s, NO2 1 ppm, SO2 12 ppm, NO 12 ppm wet, dust 4 mg/m3.
#[derive(Clone, Copy)]
struct Gas {
    o2: f64,
    humidity: f64,
    temperature: f64,
    pressure_kpa: f64,
    velocity: f64,
    no2_ppm: f64,
    so2_ppm: f64,
    no_ppm_wet: f64,
    dust: f64,
    so2_status: FlagSet,
}

const GAS: Gas = Gas {
    o2: 9.0,
    humidity: 8.0,
    temperature: 120.0,
    pressure_kpa: -1.325,
    velocity: 10.0,
    no2_ppm: 1.0,
    so2_ppm: 12.0,
    no_ppm_wet: 12.0,
    dust: 4.0,
    so2_status: FlagSet::EMPTY,
};

fn poll(ts: i64, gas: Gas) -> Vec<Sample> {
    let values = [
        gas.o2,
        gas.humidity,
        gas.temperature,
        gas.pressure_kpa,
        gas.velocity,
        gas.no2_ppm,
        gas.so2_ppm,
        gas.no_ppm_wet,
        gas.dust,
    ];
    CHANNELS
        .iter()
        .zip(values)
        .map(|((q, unit, basis), value)| Sample {
            device: Arc::from("ana1"),
            channel: Arc::from(q.name()),
            quantity: *q,
            unit: *unit,
            basis: *basis,
            value,
            status: if *q == Quantity::SO2 {
                gas.so2_status
            } else {
                FlagSet::EMPTY
            },
            ts: Timestamp(ts),
        })
        .collect()
}

/// Feeds polls every `step` ms from `from` (inclusive) to `to` (exclusive).
fn run(line: &mut Line, from: i64, to: i64, step: i64, gas: impl Fn(i64) -> Gas) {
    let mut ts = from;
    while ts < to {
        for s in poll(ts, gas(ts)) {
            line.feed(&s);
        }
        ts += step;
    }
}

// Hand computation for the default gas (HJ 75-2017 formulas):
//   Q_s  = 10 m/s × 20 m2 × 3600 = 720 000 m3/h
//   Q_sn = 720 000 × 273.15/(273.15 + 120) × (101 325 − 1 325)/101 325 × (1 − 0.08)
//        = 720 000 × 0.694772987 × 0.986923267 × 0.92 = 454 199.4837 m3/h
//   SO2  = 12 ppm × 2.86 = 34.32 mg/m3; at 6 % O2: × (21 − 6)/(21 − 9) = × 1.25 = 42.9
//          rate 34.32 × 454 199.4837 × 1e-6 = 15.588126 kg/h
//   NO   = 12 ppm wet × 1.34 = 16.08 wet; dry 16.08/0.92 = 17.478261 mg/m3
//   NO2  = 1 ppm × 2.05 = 2.05 mg/m3
//   NOx  = 17.478261 × 1.53 + 2.05 = 28.791739 mg/m3; × 1.25 = 35.989674
//          rate 28.791739 × 454 199.4837 × 1e-6 = 13.077193 kg/h
//   dust = 4 mg/m3; × 1.25 = 5; rate 4 × 454 199.4837 × 1e-6 = 1.816798 kg/h
const Q_SN: f64 = 454_199.483_700_939_7;

#[test]
fn one_hour_of_one_second_samples() {
    let mut line = Line::new(&coal_stack("s1"));
    // SO2 alternates 11.9 / 12.1 ppm: mean 12 ppm, min 11.9 × 2.86 = 34.034, max 34.606
    run(&mut line, T0, T0 + HOUR_MS, S, |ts| Gas {
        so2_ppm: if ts / S % 2 == 0 { 11.9 } else { 12.1 },
        ..GAS
    });
    line.tick(T0 + HOUR_MS + 30 * S);

    let first_so2 = line.readings.iter().find(|r| r.quantity == Quantity::SO2);
    let Some(first_so2) = first_so2 else {
        panic!("no SO2 reading");
    };
    // 11.9 × 2.86 = 34.034; × 1.25 = 42.5425; rate 34.034 × Q_sn × 1e-6
    assert_eq!(first_so2.flags, FlagSet::EMPTY);
    assert_close!(Some(first_so2.measured), 34.034);
    assert_close!(first_so2.corrected, 42.5425);
    assert_close!(first_so2.rate, 34.034 * Q_SN * 1e-6);

    let so2 = line.find(Quantity::SO2, Period::Hour, T0);
    assert_eq!((so2.valid, so2.flag, so2.count), (true, Flag::N, 60));
    assert_close!(so2.avg, 34.32);
    assert_close!(so2.corrected_avg, 42.9);
    assert_close!(so2.min, 34.034);
    assert_close!(so2.max, 34.606);
    assert_close!(so2.raw_avg, 12.0);
    assert_close!(so2.rate_avg, 15.588_126_280_616_25);
    assert_close!(so2.mass_kg, 15.588_126_280_616_25);

    let nox = line.find(Quantity::NOx, Period::Hour, T0);
    assert!(nox.valid);
    assert_close!(nox.avg, 28.791_739_130_434_784);
    assert_close!(nox.corrected_avg, 35.989_673_913_043_48);
    assert_close!(nox.mass_kg, 13.077_193_047_895_621);

    let dust = line.find(Quantity::Dust, Period::Hour, T0);
    assert_close!(dust.corrected_avg, 5.0);
    assert_close!(dust.mass_kg, 1.816_797_934_803_758_6);

    let flow = line.find(Quantity::Flow, Period::Hour, T0);
    assert_eq!(flow.unit, Unit::CubicMetrePerHour);
    assert_close!(flow.avg, Q_SN);
    assert_close!(flow.raw_avg, 720_000.0);

    let o2 = line.find(Quantity::O2, Period::Hour, T0);
    assert_eq!((o2.unit, o2.corrected_avg), (Unit::PercentVol, None));
    assert_close!(o2.avg, 9.0);

    // 60 minute records for each of the 11 series (9 channels, derived NOx and flow)
    let minutes = line
        .aggregates
        .iter()
        .filter(|a| a.period == Period::Minute)
        .count();
    assert_eq!(minutes, 60 * 11);
    assert!(line.events.is_empty() && line.gaps.is_empty());
}

/// Feeds one hour at 10 s polls with SO2 in calibration from minute `calibration_from` on.
fn hour_with_calibration(calibration_from: i64) -> Aggregate {
    let mut line = Line::new(&coal_stack("s1"));
    run(&mut line, T0, T0 + HOUR_MS, 10 * S, |ts| Gas {
        so2_status: if ts >= T0 + calibration_from * MINUTE_MS {
            FlagSet::of(Flag::C)
        } else {
            FlagSet::EMPTY
        },
        ..GAS
    });
    line.tick(T0 + HOUR_MS + 30 * S);
    line.find(Quantity::SO2, Period::Hour, T0).clone()
}

#[test]
fn hour_is_valid_at_45_valid_minutes_and_invalid_at_44() {
    // minutes 0..=44 valid (45), 45..=59 in calibration (15)
    let h = hour_with_calibration(45);
    assert_eq!((h.valid, h.flag, h.count, h.total), (true, Flag::N, 45, 60));
    assert_close!(h.corrected_avg, 42.9);
    // 44 valid minutes, 16 in calibration: invalid, flagged C, no mass
    let h = hour_with_calibration(44);
    assert_eq!(
        (h.valid, h.flag, h.count, h.total),
        (false, Flag::C, 44, 60)
    );
    assert_eq!(h.mass_kg, None);
}

/// A day at one-minute polls, plant stopped (velocity 0 m/s < 1 m/s) for the last hours.
fn day_with_stop(running_hours: i64) -> Line {
    let mut p = coal_stack("s1");
    p.plant_stop = Some(PlantStop {
        quantity: Quantity::Velocity,
        below: 1.0,
    });
    let mut line = Line::new(&p);
    run(&mut line, T0, T0 + DAY_MS, MINUTE_MS, |ts| Gas {
        velocity: if ts < T0 + running_hours * HOUR_MS {
            10.0
        } else {
            0.0
        },
        ..GAS
    });
    line.tick(T0 + DAY_MS + 30 * S);
    line
}

#[test]
fn day_is_valid_at_20_valid_hours_and_invalid_at_19() {
    let line = day_with_stop(20);
    let day = line.find(Quantity::SO2, Period::Day, T0);
    assert_eq!(
        (day.valid, day.flag, day.count, day.total),
        (true, Flag::N, 20, 24)
    );
    assert_close!(day.corrected_avg, 42.9);
    // 20 valid hours × 15.588126 kg = 311.762526 kg
    assert_close!(day.mass_kg, 20.0 * 15.588_126_280_616_25);
    let stopped = line.find(Quantity::SO2, Period::Hour, T0 + 21 * HOUR_MS);
    assert_eq!((stopped.valid, stopped.flag), (false, Flag::F));

    let line = day_with_stop(19);
    let day = line.find(Quantity::SO2, Period::Day, T0);
    assert_eq!((day.valid, day.flag, day.count), (false, Flag::F, 19));
    assert!(line.events.is_empty(), "stopped hours never exceed");
}

#[test]
fn exceedance_opens_and_closes() {
    let mut p = coal_stack("s1");
    p.limits = Limits::ULTRA_LOW;
    let mut line = Line::new(&p);
    // corrected SO2 = ppm × 2.86 × 1.25 = ppm × 3.575 against the 35 mg/m3 ultra-low limit:
    // hour 0: 8 ppm → 28.6; hour 1: 10 ppm → 35.75; hour 2: 14 ppm → 50.05; hour 3: 8 → 28.6
    let ppm = [8.0, 10.0, 14.0, 8.0];
    run(&mut line, T0, T0 + 4 * HOUR_MS, MINUTE_MS, |ts| Gas {
        so2_ppm: ppm[((ts - T0) / HOUR_MS) as usize],
        ..GAS
    });
    line.tick(T0 + 4 * HOUR_MS + 30 * S);

    let so2: Vec<_> = line
        .events
        .iter()
        .filter(|e| e.quantity == Quantity::SO2)
        .collect();
    assert_eq!(so2.len(), 2, "{:?}", line.events);
    assert_eq!(
        (so2[0].start, so2[0].end, so2[0].hours),
        (Timestamp(T0 + HOUR_MS), None, 1)
    );
    assert_close!(Some(so2[0].peak), 35.75);
    assert_eq!(
        (so2[1].start, so2[1].end, so2[1].hours, so2[1].limit),
        (
            Timestamp(T0 + HOUR_MS),
            Some(Timestamp(T0 + 3 * HOUR_MS)),
            2,
            35.0
        )
    );
    assert_close!(Some(so2[1].peak), 50.05);
    // NOx 35.99 and dust 5 stay below 50 and 10
    assert_eq!(line.events.len(), 2, "{:?}", line.events);
    assert_eq!(line.exceedances.open_events().count(), 0);
}

#[test]
fn gap_across_midnight() {
    let mut line = Line::new(&coal_stack("s1"));
    line.declare(Duration::from_secs(10));
    let midnight = T0 + DAY_MS;
    // polls every 10 s from 23:50 to 23:58:00 (last), silence, again from 00:03:00 to 00:10;
    // a tick follows each 10 s slot by 1 s, as the daemon's clock would
    let mut ts = midnight - 10 * MINUTE_MS;
    while ts < midnight + 10 * MINUTE_MS {
        let silent = ts > midnight - 2 * MINUTE_MS && ts < midnight + 3 * MINUTE_MS;
        if !silent {
            for s in poll(ts, GAS) {
                line.feed(&s);
            }
        }
        line.tick(ts + S);
        ts += 10 * S;
    }
    let so2: Vec<_> = line.gaps.iter().filter(|g| &*g.channel == "SO2").collect();
    // silence threshold 3 × 10 s = 30 s, seen by a tick once now − 30 s grace is past 23:58:30,
    // i.e. by the tick at 23:59:01; one gap spans midnight
    let start = Timestamp(midnight - 2 * MINUTE_MS);
    let end = Timestamp(midnight + 3 * MINUTE_MS);
    assert_eq!(so2.len(), 2, "{so2:?}");
    assert_eq!(
        (so2[0].start, so2[0].end, so2[0].cause),
        (start, None, GapCause::CollectorSilence)
    );
    assert_eq!(
        (so2[1].start, so2[1].end, so2[1].cause),
        (start, Some(end), GapCause::CollectorSilence)
    );
    // every declared channel had the same gap, opened and closed
    assert_eq!(line.gaps.len(), 2 * CHANNELS.len());

    // the local day ended at midnight: 23:00–24:00 had minutes 23:50..=23:58 (9 of 60), so
    // it is invalid; the day's only hour is too
    let hour = line.find(Quantity::SO2, Period::Hour, midnight - HOUR_MS);
    assert_eq!((hour.valid, hour.flag, hour.count), (false, Flag::B, 9));
    let day = line.find(Quantity::SO2, Period::Day, T0);
    assert_eq!((day.valid, day.flag, day.total), (false, Flag::B, 1));
    let next = line.find(Quantity::SO2, Period::Minute, midnight + 3 * MINUTE_MS);
    assert!(next.valid);
}

#[test]
fn daemon_restart_records_downtime_per_channel() {
    let mut line = Line::new(&coal_stack("s1"));
    line.declare(Duration::from_secs(1));
    let last_stored = T0 + 5 * MINUTE_MS;
    let now = T0 + 65 * MINUTE_MS;
    line.quality
        .restart(Timestamp(last_stored), Timestamp(now), &mut line.gaps);
    assert_eq!(line.gaps.len(), CHANNELS.len());
    for (gap, (q, _, _)) in line.gaps.iter().zip(CHANNELS) {
        assert_eq!(&*gap.channel, q.name());
        assert_eq!(
            (gap.start, gap.end, gap.cause),
            (
                Timestamp(last_stored),
                Some(Timestamp(now)),
                GapCause::DaemonDown
            )
        );
    }
    // polls resuming on time open no further gap
    run(&mut line, now, now + MINUTE_MS, S, |_| GAS);
    line.tick(now + MINUTE_MS + 30 * S);
    assert_eq!(line.gaps.len(), CHANNELS.len());
}

#[test]
fn fgd_pair_efficiency_and_removed_mass() {
    // inlet: 12 m/s × 25 m2, 50 °C, −2 kPa gauge, 6 % moisture, SO2 700 ppm
    //   Q_sn = 1 080 000 × 273.15/323.15 × 99 325/101 325 × 0.94 = 841 183.2476 m3/h
    //   SO2 = 700 × 2.86 = 2 002 mg/m3; mass 2 002 × 841 183.2476 × 1e-6 = 1 684.048862 kg/h
    // outlet: the default gas, 15.588126 kg/h
    //   removed 1 684.048862 − 15.588126 = 1 668.460735 kg; η = 1 668.460735/1 684.048862
    //   = 0.990744
    let mut inlet_params = coal_stack("inlet");
    inlet_params.duct_area_m2 = Some(25.0);
    let mut inlet = Line::new(&inlet_params);
    let mut outlet = Line::new(&coal_stack("outlet"));
    run(&mut inlet, T0, T0 + HOUR_MS, 10 * S, |_| Gas {
        velocity: 12.0,
        temperature: 50.0,
        pressure_kpa: -2.0,
        humidity: 6.0,
        so2_ppm: 700.0,
        ..GAS
    });
    run(&mut outlet, T0, T0 + HOUR_MS, 10 * S, |_| GAS);
    inlet.tick(T0 + HOUR_MS + 30 * S);
    outlet.tick(T0 + HOUR_MS + 30 * S);

    let mut pairer = FgdPairer::new(Arc::from("inlet"), Arc::from("outlet"));
    let mut hours = Vec::new();
    for agg in inlet.aggregates.iter().chain(&outlet.aggregates) {
        pairer.push(agg, &mut hours);
    }
    assert_eq!(hours.len(), 1);
    let h = &hours[0];
    assert!(h.valid);
    assert_close!(h.inlet_kg, 1_684.048_861_648_971_5);
    assert_close!(h.outlet_kg, 15.588_126_280_616_25);
    assert_close!(h.removed_kg, 1_668.460_735_368_355_2);
    assert_close!(h.efficiency, 0.990_743_661_519_801_2);

    let days = summarise(&hours, CalendarPeriod::Day, UtcOffset::CHINA);
    assert_eq!((days.len(), days[0].valid_hours), (1, 1));
    assert_close!(Some(days[0].removed_kg), 1_668.460_735_368_355_2);
}

/// Five and a half hours at 10 s polls: calibration in hour 0, plant stop and failed reads in
/// hour 1, valid hours 2–4 with an exceedance in hour 3, and a silence whose position varies,
/// followed by a minute of failed reads.
fn scenario(silence_start: i64, silence_len: i64) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut ts = T0 - 30 * MINUTE_MS;
    while ts < T0 + 300 * MINUTE_MS {
        let m = (ts - T0).div_euclid(MINUTE_MS);
        let silent = ts >= silence_start && ts < silence_start + silence_len;
        if !silent {
            let mut polled = poll(
                ts,
                Gas {
                    // hourly means 8 ppm (28.6 corrected) and 11 ppm (39.3) in turn
                    so2_ppm: if m.div_euclid(60) % 2 == 0 { 6.0 } else { 9.0 }
                        + (ts / (10 * S) % 5) as f64,
                    velocity: if (60..75).contains(&m) { 0.0 } else { 10.0 },
                    so2_status: if (20..40).contains(&m) {
                        FlagSet::of(Flag::C)
                    } else {
                        FlagSet::EMPTY
                    },
                    ..GAS
                },
            );
            // failed reads in minutes 100–101, and for a minute after the silence
            let after_silence = silence_len > 0
                && ts >= silence_start + silence_len
                && ts < silence_start + silence_len + MINUTE_MS;
            if (100..102).contains(&m) || after_silence {
                for s in &mut polled {
                    s.value = f64::NAN;
                    s.status = FlagSet::of(Flag::B);
                }
            }
            out.extend(polled);
        }
        ts += 10 * S;
    }
    out
}

/// Runs samples in the given chunks, ticking after each chunk at a time no later than the
/// next sample + grace (the contract of `tick`), then closes everything.
fn run_chunked(
    samples: &[Sample],
    chunks: &[usize],
    lags: &[i64],
) -> (Vec<Aggregate>, Vec<Gap>, Vec<Exceedance>) {
    let mut p = coal_stack("s1");
    p.limits = Limits::ULTRA_LOW;
    p.plant_stop = Some(PlantStop {
        quantity: Quantity::Velocity,
        below: 1.0,
    });
    let grace = 30 * S;
    let mut line = Line::new(&p);
    line.declare(Duration::from_secs(10));
    // the first poll before any tick, so every channel has been seen
    let mut i = CHANNELS.len().min(samples.len());
    for s in &samples[..i] {
        line.feed(s);
    }
    for (k, size) in chunks.iter().cycle().enumerate() {
        if i >= samples.len() {
            break;
        }
        let end = (i + size).min(samples.len());
        for s in &samples[i..end] {
            line.feed(s);
        }
        i = end;
        if let Some(next) = samples.get(i) {
            let lag = lags.get(k % lags.len().max(1)).copied().unwrap_or(0);
            line.tick(next.ts.millis() + grace - lag);
        }
    }
    line.tick(T0 + 2 * DAY_MS);
    let mut aggregates = line.aggregates;
    aggregates.sort_by_key(|a| (a.quantity, a.period, a.start));
    let closed_gaps = line.gaps.into_iter().filter(|g| g.end.is_some()).collect();
    let mut events = line.events;
    events.sort_by_key(|e| (e.quantity, e.start, e.end));
    (aggregates, closed_gaps, events)
}

#[test]
fn batching_scenario_exercises_the_rules() {
    let (aggregates, gaps, events) = run_chunked(&scenario(T0, 0), &[1], &[0]);
    let so2_hours: Vec<_> = aggregates
        .iter()
        .filter(|a| a.quantity == Quantity::SO2 && a.period == Period::Hour)
        .map(|a| (a.valid, a.flag))
        .collect();
    // hours −1 (30 minutes), 0 (20 minutes C), 1 (15 F, 2 B), 2, 3, 4
    assert_eq!(
        so2_hours,
        [
            (false, Flag::B),
            (false, Flag::C),
            (false, Flag::F),
            (true, Flag::N),
            (true, Flag::N),
            (true, Flag::N)
        ]
    );
    assert!(gaps
        .iter()
        .all(|g| g.cause == GapCause::CommunicationFailure));
    assert_eq!(gaps.len(), CHANNELS.len());
    // SO2 opens in hour 3 (39.3 > 35) and closes at hour 4 (28.6)
    let so2: Vec<_> = events
        .iter()
        .filter(|e| e.quantity == Quantity::SO2)
        .map(|e| (e.start, e.end))
        .collect();
    let hour3 = Timestamp(T0 + 3 * HOUR_MS);
    assert_eq!(
        so2,
        [(hour3, None), (hour3, Some(Timestamp(T0 + 4 * HOUR_MS)))]
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn aggregation_does_not_depend_on_batching(
        silence_start_min in 0i64..300,
        silence_len_s in 0i64..1200,
        chunks in prop::collection::vec(1usize..400, 1..20),
        lags in prop::collection::vec(0i64..600_000, 1..10),
    ) {
        let samples = scenario(T0 + silence_start_min * MINUTE_MS, silence_len_s * S);
        let one_by_one = run_chunked(&samples, &[1], &[0]);
        let all_at_once = run_chunked(&samples, &[usize::MAX / 2], &[0]);
        let chunked = run_chunked(&samples, &chunks, &lags);
        prop_assert!(!one_by_one.0.is_empty() && !one_by_one.1.is_empty());
        prop_assert_eq!(&one_by_one, &all_at_once);
        prop_assert_eq!(&one_by_one, &chunked);
    }
}
