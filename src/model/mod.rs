//! The data that flows through cemsd: samples from collectors, readings after normalisation,
//! and the HJ 212 vocabulary (flags, quantities, units) they carry.

pub mod backoff;
pub mod comm;
pub mod random;
pub mod time;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// UTC instant with millisecond precision, as milliseconds since the Unix epoch.
/// An integer keeps the hot path free of allocation and makes ordering and storage trivial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    pub fn to_datetime(self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.0)
            .single()
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    pub fn from_datetime(dt: DateTime<Utc>) -> Self {
        Timestamp(dt.timestamp_millis())
    }

    /// `by` later, saturating at the end of representable time.
    pub fn plus(self, by: std::time::Duration) -> Self {
        Timestamp(
            self.0
                .saturating_add(i64::try_from(by.as_millis()).unwrap_or(i64::MAX)),
        )
    }

    /// `by` earlier, saturating at the start of representable time.
    pub fn minus(self, by: std::time::Duration) -> Self {
        Timestamp(
            self.0
                .saturating_sub(i64::try_from(by.as_millis()).unwrap_or(i64::MAX)),
        )
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_datetime().format("%Y-%m-%dT%H:%M:%S%.3fZ"))
    }
}

/// HJ 212-2017 data flag of one value. Declared from least to most severe, so the
/// derived ordering picks the flag a combined value must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Flag {
    /// Normal.
    N,
    /// Over the measuring upper limit: still valid for averages, but flagged.
    T,
    /// Manual input or set value.
    S,
    /// Calibration.
    C,
    /// Maintenance.
    M,
    /// Instrument fault.
    D,
    /// Plant stopped (停运).
    F,
    /// Communication failure: no value was received.
    B,
}

impl Flag {
    pub const ALL: [Flag; 8] = [
        Flag::N,
        Flag::T,
        Flag::S,
        Flag::C,
        Flag::M,
        Flag::D,
        Flag::F,
        Flag::B,
    ];

    pub fn code(self) -> char {
        match self {
            Flag::N => 'N',
            Flag::T => 'T',
            Flag::S => 'S',
            Flag::C => 'C',
            Flag::M => 'M',
            Flag::D => 'D',
            Flag::F => 'F',
            Flag::B => 'B',
        }
    }

    pub fn from_code(c: char) -> Option<Flag> {
        Flag::ALL.into_iter().find(|f| f.code() == c)
    }

    /// HJ 75-2017: data under C, M, D, F or B is excluded from averages; N, T and S count.
    pub fn valid_for_average(self) -> bool {
        matches!(self, Flag::N | Flag::T | Flag::S)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
    }
}

impl FromStr for Flag {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut chars = s.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => Flag::from_code(c),
            _ => None,
        }
        .ok_or_else(|| format!("unknown flag {s:?}: expected one of N, T, S, C, M, D, F, B"))
    }
}

/// Every condition that applies to one value; `primary` is the one HJ 212 reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct FlagSet(u8);

impl FlagSet {
    pub const EMPTY: FlagSet = FlagSet(0);

    pub fn of(flag: Flag) -> Self {
        FlagSet(flag.bit())
    }

    pub fn insert(&mut self, flag: Flag) {
        self.0 |= flag.bit();
    }

    pub fn with(mut self, flag: Flag) -> Self {
        self.insert(flag);
        self
    }

    pub fn union(self, other: FlagSet) -> Self {
        FlagSet(self.0 | other.0)
    }

    pub fn contains(self, flag: Flag) -> bool {
        self.0 & flag.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    pub fn from_bits(bits: u8) -> Self {
        FlagSet(bits)
    }

    /// The most severe flag present, or N when none is.
    pub fn primary(self) -> Flag {
        Flag::ALL
            .into_iter()
            .rev()
            .find(|f| self.contains(*f))
            .unwrap_or(Flag::N)
    }

    pub fn iter(self) -> impl Iterator<Item = Flag> {
        Flag::ALL.into_iter().filter(move |f| self.contains(*f))
    }
}

/// What an analyser channel measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Quantity {
    SO2,
    NO,
    NO2,
    NOx,
    O2,
    CO,
    CO2,
    HCl,
    NH3,
    #[serde(rename = "dust")]
    Dust,
    #[serde(rename = "temp")]
    Temperature,
    #[serde(rename = "pressure")]
    Pressure,
    #[serde(rename = "humidity")]
    Humidity,
    #[serde(rename = "velocity")]
    Velocity,
    #[serde(rename = "flow")]
    Flow,
}

impl Quantity {
    pub const ALL: [Quantity; 15] = [
        Quantity::SO2,
        Quantity::NO,
        Quantity::NO2,
        Quantity::NOx,
        Quantity::O2,
        Quantity::CO,
        Quantity::CO2,
        Quantity::HCl,
        Quantity::NH3,
        Quantity::Dust,
        Quantity::Temperature,
        Quantity::Pressure,
        Quantity::Humidity,
        Quantity::Velocity,
        Quantity::Flow,
    ];

    /// The name used in configs, profiles, the store and line protocol.
    pub fn name(self) -> &'static str {
        match self {
            Quantity::SO2 => "SO2",
            Quantity::NO => "NO",
            Quantity::NO2 => "NO2",
            Quantity::NOx => "NOx",
            Quantity::O2 => "O2",
            Quantity::CO => "CO",
            Quantity::CO2 => "CO2",
            Quantity::HCl => "HCl",
            Quantity::NH3 => "NH3",
            Quantity::Dust => "dust",
            Quantity::Temperature => "temp",
            Quantity::Pressure => "pressure",
            Quantity::Humidity => "humidity",
            Quantity::Velocity => "velocity",
            Quantity::Flow => "flow",
        }
    }

    /// HJ 212-2017 factor code, where the standard defines one for flue gas.
    pub fn hj212_code(self) -> Option<&'static str> {
        Some(match self {
            Quantity::SO2 => "a21026",
            Quantity::NOx => "a21002",
            Quantity::NO => "a21003",
            Quantity::NO2 => "a21004",
            Quantity::Dust => "a34013",
            Quantity::O2 => "a19001",
            Quantity::Temperature => "a01012",
            Quantity::Pressure => "a01013",
            Quantity::Velocity => "a01011",
            Quantity::Humidity => "a01014",
            Quantity::Flow => "a00000",
            Quantity::CO => "a21005",
            Quantity::CO2 | Quantity::HCl | Quantity::NH3 => return None,
        })
    }

    /// Pollutant gases and dust, as opposed to the flue-gas state parameters.
    pub fn is_pollutant(self) -> bool {
        matches!(
            self,
            Quantity::SO2
                | Quantity::NO
                | Quantity::NO2
                | Quantity::NOx
                | Quantity::CO
                | Quantity::HCl
                | Quantity::NH3
                | Quantity::Dust
        )
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Quantity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::ALL
            .into_iter()
            .find(|q| q.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Quantity::ALL.iter().map(|q| q.name()).collect();
                format!(
                    "unknown quantity {s:?}: expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// The one quantity → unit table: the unit a quantity is reported and stored in (HJ 75's:
/// concentrations in mg/m3 at standard condition, O2, CO2 and humidity in %, temperature °C,
/// pressure kPa (the standard's unit for a01013), velocity m/s, flow m3/h as HJ 75 computes
/// it), and the units an analyser may send it in. The normaliser turns ppm and ppb into
/// mg/m3 and takes every other accepted unit as it comes (a probe may be read and stored in
/// Pa); the simulator states values in the first unit. On HJ 212 links values travel in the
/// unit of the standard's code table (`protocol::hj212::codes::factor_units`: flow in m3/s),
/// converted by the uplink and the listener at the edge.
fn unit_row(quantity: Quantity) -> (Unit, &'static [Unit]) {
    const GAS: &[Unit] = &[Unit::Ppm, Unit::Ppb, Unit::MgPerM3];
    match quantity {
        Quantity::SO2
        | Quantity::NO
        | Quantity::NO2
        | Quantity::NOx
        | Quantity::CO
        | Quantity::HCl
        | Quantity::NH3 => (Unit::MgPerM3, GAS),
        Quantity::Dust => (Unit::MgPerM3, &[Unit::MgPerM3]),
        Quantity::O2 | Quantity::CO2 | Quantity::Humidity => {
            (Unit::PercentVol, &[Unit::PercentVol])
        }
        Quantity::Temperature => (Unit::DegC, &[Unit::DegC]),
        Quantity::Pressure => (Unit::KPa, &[Unit::Pa, Unit::KPa]),
        Quantity::Velocity => (Unit::MetrePerSecond, &[Unit::MetrePerSecond]),
        Quantity::Flow => (Unit::CubicMetrePerHour, &[Unit::CubicMetrePerHour]),
    }
}

/// The unit values of `quantity` are reported and uploaded in (see [`unit_row`]).
pub fn unit_of(quantity: Quantity) -> Unit {
    unit_row(quantity).0
}

/// The units an analyser may state `quantity` in (see [`unit_row`]).
pub fn wire_units(quantity: Quantity) -> &'static [Unit] {
    unit_row(quantity).1
}

/// Engineering unit of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Unit {
    #[serde(rename = "ppb")]
    Ppb,
    #[serde(rename = "ppm")]
    Ppm,
    #[serde(rename = "mg/m3")]
    MgPerM3,
    #[serde(rename = "%vol")]
    PercentVol,
    #[serde(rename = "degC")]
    DegC,
    #[serde(rename = "kPa")]
    KPa,
    #[serde(rename = "Pa")]
    Pa,
    #[serde(rename = "m/s")]
    MetrePerSecond,
    #[serde(rename = "m3/h")]
    CubicMetrePerHour,
    /// Flue-gas flow as HJ 212-2017 states it on the wire (a00000); stored as m3/h.
    #[serde(rename = "m3/s")]
    CubicMetrePerSecond,
    #[serde(rename = "kg/h")]
    KgPerHour,
}

impl Unit {
    pub const ALL: [Unit; 11] = [
        Unit::Ppb,
        Unit::Ppm,
        Unit::MgPerM3,
        Unit::PercentVol,
        Unit::DegC,
        Unit::KPa,
        Unit::Pa,
        Unit::MetrePerSecond,
        Unit::CubicMetrePerHour,
        Unit::CubicMetrePerSecond,
        Unit::KgPerHour,
    ];

    pub fn symbol(self) -> &'static str {
        match self {
            Unit::Ppb => "ppb",
            Unit::Ppm => "ppm",
            Unit::MgPerM3 => "mg/m3",
            Unit::PercentVol => "%vol",
            Unit::DegC => "degC",
            Unit::KPa => "kPa",
            Unit::Pa => "Pa",
            Unit::MetrePerSecond => "m/s",
            Unit::CubicMetrePerHour => "m3/h",
            Unit::CubicMetrePerSecond => "m3/s",
            Unit::KgPerHour => "kg/h",
        }
    }

    /// `value` in this unit stated in `to`, for units that differ by a fixed factor whatever
    /// the substance: Pa and kPa; ppb, ppm and %vol (volume fractions, 1 %vol = 10 000 ppm);
    /// m3/h and m3/s (1 m3/s = 3600 m3/h).
    /// `None` across dimensions, and for ppm ↔ mg/m3, which depends on the gas (see
    /// `normalise::to_reporting_unit`).
    pub fn convert(self, value: f64, to: Unit) -> Option<f64> {
        if self == to {
            return Some(value);
        }
        // In multiples of the dimension's smallest unit, so each ratio is an exact integer
        // and the result is one correctly rounded multiplication or division.
        let scale = |unit: Unit| match unit {
            Unit::Pa => Some(("pressure", 1.0)),
            Unit::KPa => Some(("pressure", 1e3)),
            Unit::Ppb => Some(("fraction", 1.0)),
            Unit::Ppm => Some(("fraction", 1e3)),
            Unit::PercentVol => Some(("fraction", 1e7)),
            Unit::CubicMetrePerHour => Some(("flow", 1.0)),
            Unit::CubicMetrePerSecond => Some(("flow", 3600.0)),
            _ => None,
        };
        let (from_dimension, from_scale) = scale(self)?;
        let (to_dimension, to_scale) = scale(to)?;
        if from_dimension != to_dimension {
            return None;
        }
        Some(if from_scale >= to_scale {
            value * (from_scale / to_scale)
        } else {
            value / (to_scale / from_scale)
        })
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

impl FromStr for Unit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Unit::ALL
            .into_iter()
            .find(|u| u.symbol() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Unit::ALL.iter().map(|u| u.symbol()).collect();
                format!("unknown unit {s:?}: expected one of {}", names.join(", "))
            })
    }
}

/// Whether a gas concentration was measured with or without the flue-gas moisture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Basis {
    Wet,
    #[default]
    Dry,
}

impl Basis {
    pub fn name(self) -> &'static str {
        match self {
            Basis::Wet => "wet",
            Basis::Dry => "dry",
        }
    }
}

/// One value as a collector read it from a device, before any normalisation.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub device: Arc<str>,
    pub channel: Arc<str>,
    pub quantity: Quantity,
    pub unit: Unit,
    pub basis: Basis,
    /// Decoded value in the wire unit (after profile scale/offset), NaN when none was received.
    pub value: f64,
    /// Flags the instrument or the transport reported (status bits, over-range, comm failure).
    pub status: FlagSet,
    pub ts: Timestamp,
}

/// One value after normalisation, attributed to a stack. `raw` is the value as received,
/// `measured` in mg/m3 (or the quantity's own unit) at standard dry conditions, `corrected`
/// also at reference O2 (HJ 212 Rtd and ZsRtd).
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub ts: Timestamp,
    pub stack: Arc<str>,
    pub device: Arc<str>,
    pub channel: Arc<str>,
    pub quantity: Quantity,
    pub unit: Unit,
    pub basis: Basis,
    pub raw: f64,
    pub measured: f64,
    pub corrected: Option<f64>,
    /// Emission rate in kg/h, where the stack has a flow measurement.
    pub rate: Option<f64>,
    pub flags: FlagSet,
    /// Why a value the reading would have is absent ("no O2 source") or how it was obtained
    /// ("moisture set value 8 %"); stored as the record's note.
    pub note: Option<String>,
}

impl Reading {
    pub fn flag(&self) -> Flag {
        self.flags.primary()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primary_flag_is_the_most_severe() {
        let set = FlagSet::of(Flag::T).with(Flag::C).with(Flag::N);
        assert_eq!(set.primary(), Flag::C);
        assert_eq!(FlagSet::EMPTY.primary(), Flag::N);
        assert_eq!(FlagSet::of(Flag::B).with(Flag::D).primary(), Flag::B);
    }

    #[test]
    fn flags_valid_for_average_follow_hj75() {
        let valid: Vec<_> = Flag::ALL
            .into_iter()
            .filter(|f| f.valid_for_average())
            .collect();
        assert_eq!(valid, vec![Flag::N, Flag::T, Flag::S]);
    }

    #[test]
    fn names_round_trip() {
        for q in Quantity::ALL {
            assert_eq!(q.name().parse::<Quantity>(), Ok(q));
        }
        for u in Unit::ALL {
            assert_eq!(u.symbol().parse::<Unit>(), Ok(u));
        }
        for f in Flag::ALL {
            assert_eq!(f.code().to_string().parse::<Flag>(), Ok(f));
        }
        assert!("X".parse::<Flag>().is_err());
        assert!("so2".parse::<Quantity>().is_err());
    }

    #[test]
    fn units_convert_by_fixed_factors_only() {
        // 101 300 Pa / 1000 = 101.3 kPa; 2.5 kPa × 1000 = 2500 Pa.
        assert_eq!(Unit::Pa.convert(101_300.0, Unit::KPa), Some(101.3));
        assert_eq!(Unit::KPa.convert(2.5, Unit::Pa), Some(2500.0));
        // 1 %vol = 10 000 ppm; 250 ppb = 0.25 ppm.
        assert_eq!(Unit::PercentVol.convert(1.0, Unit::Ppm), Some(10_000.0));
        assert_eq!(Unit::Ppb.convert(250.0, Unit::Ppm), Some(0.25));
        assert_eq!(Unit::DegC.convert(120.0, Unit::DegC), Some(120.0));
        assert_eq!(Unit::Pa.convert(1.0, Unit::DegC), None);
        assert_eq!(
            Unit::Ppm.convert(1.0, Unit::MgPerM3),
            None,
            "depends on the gas"
        );
        assert_eq!(
            Unit::CubicMetrePerHour.convert(1.0, Unit::MetrePerSecond),
            None
        );
        // 5.331 m3/s × 3600 = 19 191.6 m3/h; 36 000 m3/h / 3600 = 10 m3/s.
        let per_hour = Unit::CubicMetrePerSecond.convert(5.331, Unit::CubicMetrePerHour);
        assert!(per_hour.is_some_and(|v| (v - 19_191.6).abs() < 1e-9));
        assert_eq!(
            Unit::CubicMetrePerHour.convert(36_000.0, Unit::CubicMetrePerSecond),
            Some(10.0)
        );
        assert_eq!(Unit::CubicMetrePerSecond.convert(1.0, Unit::KPa), None);
    }

    #[test]
    fn timestamp_displays_utc_millis() {
        assert_eq!(
            Timestamp::from_millis(1_767_225_600_123).to_string(),
            "2026-01-01T00:00:00.123Z"
        );
    }
}
