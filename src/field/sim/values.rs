//! The values a simulated analyser reports when the scenario fixes none: slowly varying,
//! plausible for a coal-fired unit after desulfurisation, and a pure function of seed and
//! elapsed time so tests and replays can predict every value.

use std::f64::consts::TAU;
use std::time::Duration;

use crate::model::random::{mix, unit_interval, GAMMA};
use crate::model::{unit_of, Quantity, Unit};

/// Litres per mole of ideal gas at 273.15 K and 101.325 kPa (HJ 75-2017 ppm → mg/m3).
const MOLAR_VOLUME: f64 = 22.4;

/// Periods of the two slow swings, seconds: load following (17 min) and a slower drift (2.3 h).
const FAST_PERIOD: f64 = 1020.0;
const SLOW_PERIOD: f64 = 8280.0;
/// Relative amplitudes; together with the noise the value stays within ±20 % of typical.
const FAST_AMPLITUDE: f64 = 0.12;
const SLOW_AMPLITUDE: f64 = 0.06;
const NOISE_AMPLITUDE: f64 = 0.02;
/// The noise takes a new random level every 10 s and moves linearly between levels.
const NOISE_STEP: f64 = 10.0;

/// Typical value at a coal-fired unit's stack after FGD and SCR, in the quantity's reporting
/// unit ([`unit_of`]). NOx ≈ NO·1.53 + NO2 (HJ 75) with NO 22, NO2 1.5.
fn typical(quantity: Quantity) -> (f64, Unit) {
    let value = match quantity {
        Quantity::SO2 => 20.0,
        Quantity::NO => 22.0,
        Quantity::NO2 => 1.5,
        Quantity::NOx => 35.0,
        Quantity::CO => 15.0,
        Quantity::HCl => 3.0,
        Quantity::NH3 => 1.5,
        Quantity::Dust => 5.0,
        Quantity::O2 => 6.0,
        Quantity::CO2 => 12.0,
        Quantity::Humidity => 10.0,
        Quantity::Temperature => 50.0,
        // -150 Pa of static pressure in the duct
        Quantity::Pressure => -0.15,
        Quantity::Velocity => 12.0,
        // 12 m/s through a 6 m diameter duct (28.3 m2): 12 · 28.3 · 3600 ≈ 1.22e6 m3/h
        Quantity::Flow => 1.22e6,
    };
    (value, unit_of(quantity))
}

/// g/mol, for the conversion between mg/m3 and volume fractions. NOx counts as NO2 (HJ 75).
fn molar_mass(quantity: Quantity) -> Option<f64> {
    Some(match quantity {
        Quantity::SO2 => 64.06,
        Quantity::NO => 30.01,
        Quantity::NO2 | Quantity::NOx => 46.01,
        Quantity::CO => 28.01,
        Quantity::CO2 => 44.01,
        Quantity::HCl => 36.46,
        Quantity::NH3 => 17.03,
        Quantity::O2 => 32.00,
        _ => return None,
    })
}

/// Parts per million in one unit of a volume unit.
fn ppm_per(unit: Unit) -> Option<f64> {
    match unit {
        Unit::Ppm => Some(1.0),
        Unit::Ppb => Some(1e-3),
        Unit::PercentVol => Some(1e4),
        _ => None,
    }
}

/// `value` of `quantity` in `from`, stated in `to`; `None` when the units do not measure the
/// same thing.
pub fn convert(value: f64, quantity: Quantity, from: Unit, to: Unit) -> Option<f64> {
    if from == to {
        return Some(value);
    }
    let ppm_to_mg = |m: f64| m / MOLAR_VOLUME;
    match (from, to) {
        (Unit::Pa, Unit::KPa) => Some(value / 1000.0),
        (Unit::KPa, Unit::Pa) => Some(value * 1000.0),
        (Unit::MgPerM3, to) => Some(value / ppm_to_mg(molar_mass(quantity)?) / ppm_per(to)?),
        (from, Unit::MgPerM3) => Some(value * ppm_per(from)? * ppm_to_mg(molar_mass(quantity)?)),
        (from, to) => Some(value * ppm_per(from)? / ppm_per(to)?),
    }
}

/// The value of `quantity` in `unit` at `elapsed` for a simulator seeded with `seed`.
/// Where `unit` cannot state the quantity (a profile error), the typical unit's number is
/// returned so the simulator still answers.
pub fn signal(quantity: Quantity, unit: Unit, seed: u64, elapsed: Duration) -> f64 {
    let (typical, typical_unit) = typical(quantity);
    let key = mix(seed ^ (quantity as u64 + 1).wrapping_mul(GAMMA));
    let t = elapsed.as_secs_f64();
    let fast = (TAU * t / FAST_PERIOD + TAU * unit_interval(mix(key ^ 1))).sin();
    let slow = (TAU * t / SLOW_PERIOD + TAU * unit_interval(mix(key ^ 2))).sin();
    let relative = FAST_AMPLITUDE * fast
        + SLOW_AMPLITUDE * slow
        + NOISE_AMPLITUDE * noise(key, t / NOISE_STEP);
    let value = typical * (1.0 + relative);
    convert(value, quantity, typical_unit, unit).unwrap_or(value)
}

/// Noise in [-1, 1] with a random level at each integer `x`, linear in between.
fn noise(key: u64, x: f64) -> f64 {
    let step = x.floor();
    let level = |i: f64| 2.0 * unit_interval(mix(key ^ (i as i64 as u64))) - 1.0;
    let (a, b) = (level(step), level(step + 1.0));
    a + (b - a) * (x - step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppm_and_mg_convert_with_molar_volume() {
        // 1 ppm SO2 = 64.06 / 22.4 mg/m3, so 64.06 mg/m3 = 22.4 ppm = 22400 ppb
        let ppm = convert(64.06, Quantity::SO2, Unit::MgPerM3, Unit::Ppm);
        assert!(ppm.is_some_and(|v| (v - 22.4).abs() < 1e-12), "{ppm:?}");
        let ppb = convert(64.06, Quantity::SO2, Unit::MgPerM3, Unit::Ppb);
        assert!(ppb.is_some_and(|v| (v - 22_400.0).abs() < 1e-9), "{ppb:?}");
        // 20 ppm NO = 20 · 30.01 / 22.4 = 26.794... mg/m3
        let mg = convert(20.0, Quantity::NO, Unit::Ppm, Unit::MgPerM3);
        assert!(
            mg.is_some_and(|v| (v - 26.794_642_857).abs() < 1e-8),
            "{mg:?}"
        );
        // 6 %vol O2 = 60000 ppm
        assert_eq!(
            convert(6.0, Quantity::O2, Unit::PercentVol, Unit::Ppm),
            Some(60_000.0)
        );
        assert_eq!(
            convert(-150.0, Quantity::Pressure, Unit::Pa, Unit::KPa),
            Some(-0.15)
        );
        assert_eq!(
            convert(50.0, Quantity::Temperature, Unit::DegC, Unit::Ppm),
            None
        );
        assert_eq!(convert(5.0, Quantity::Dust, Unit::MgPerM3, Unit::Ppm), None);
    }

    #[test]
    fn signal_is_a_pure_function_of_seed_and_time() {
        let at = |seed, s| signal(Quantity::SO2, Unit::MgPerM3, seed, Duration::from_secs(s));
        assert_eq!(at(7, 3600), at(7, 3600));
        assert_ne!(at(7, 3600), at(8, 3600));
        assert_ne!(at(7, 3600), at(7, 3601));
    }

    #[test]
    fn signal_stays_near_typical_and_moves_slowly() {
        // |relative| ≤ 0.12 + 0.06 + 0.02 = 0.20. Per second the fast swing moves at most
        // 0.12 · 2π/1020 = 7.4e-4, the slow one 0.06 · 2π/8280 = 4.6e-5, the noise
        // 0.02 · 2/10 = 4e-3: together below 0.005 of the typical value.
        for quantity in Quantity::ALL {
            let (typical, unit) = typical(quantity);
            for s in 0..2000 {
                let v = signal(quantity, unit, 42, Duration::from_secs(s * 7));
                assert!(
                    (v / typical - 1.0).abs() <= 0.2,
                    "{quantity} at {s}: {v} vs {typical}"
                );
            }
            for s in 0..1000 {
                let a = signal(quantity, unit, 42, Duration::from_secs(s));
                let b = signal(quantity, unit, 42, Duration::from_secs(s + 1));
                assert!(
                    (b - a).abs() <= 0.005 * typical.abs(),
                    "{quantity} jumps at {s}: {a} → {b}"
                );
            }
        }
    }

    #[test]
    fn signal_in_the_wire_unit_is_the_converted_signal() {
        let t = Duration::from_secs(1234);
        let mg = signal(Quantity::SO2, Unit::MgPerM3, 3, t);
        let ppb = signal(Quantity::SO2, Unit::Ppb, 3, t);
        // ppb = mg/m3 · 22.4 / 64.06 · 1000
        assert!(
            (ppb - mg * 22.4 / 64.06 * 1000.0).abs() < 1e-9,
            "{mg} mg/m3, {ppb} ppb"
        );
        // pressure around −150 Pa is −0.15 kPa
        let kpa = signal(Quantity::Pressure, Unit::KPa, 3, t);
        assert!((-0.18..=-0.12).contains(&kpa), "{kpa}");
    }
}
