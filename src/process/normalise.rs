//! HJ 75-2017 normalisation: wire values to mg/m3 at standard condition (273.15 K, 101.325 kPa),
//! dry, and to the stack's reference O2; NOx as NO2; flue-gas flow at standard condition, dry;
//! emission rate.
//!
//! The [`Normaliser`] only does arithmetic. A value derived from several channels (NOx from NO
//! and NO2, standard dry flow from velocity, temperature, pressure and moisture, dry and
//! O2-corrected concentrations, emission rate) takes its inputs from one instant:
//! - the same poll: [`Normaliser::push_snapshot`] first takes in every flue-gas value of a
//!   poll, then computes, so NO is combined with the NO2 read in the same poll, never with the
//!   previous one;
//! - for an input the poll did not carry (another device's O2 or flow), the latest value of
//!   it, if no further than the stack's staleness bound from the reading
//!   ([`StackParams::staleness_bound_ms`]: one poll interval of the input's device and half
//!   an interval of tolerance, unless `state_max_age` says otherwise).
//!
//! Where an input is missing (no source on the stack, none within the bound, or its read
//! failed) the value that needs it is left out (`measured` NaN, `corrected` or `rate` None)
//! and the reading's `note` says which input was missing. The flags are
//! [`crate::process::quality::Quality`]'s business: they come from the inputs actually used.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::stack::{FlowSource, FluePressure, NoxMethod, StackParams};
use crate::model::{unit_of, wire_units, Basis, Quantity, Reading, Sample, Timestamp, Unit};
use crate::store::Record;

/// Standard condition of HJ 75-2017: 273.15 K.
pub const STANDARD_TEMPERATURE_K: f64 = 273.15;
/// Standard condition of HJ 75-2017: 101 325 Pa.
pub const STANDARD_PRESSURE_PA: f64 = 101_325.0;
/// HJ 75-2017: NOx is reported as NO2; NO converts with 46/30 ≈ 1.53.
pub const NO_TO_NO2: f64 = 1.53;

/// Channel name of readings cemsd derives itself (flow from velocity), as stored; NOx's is
/// the config's [`DERIVED_NOX_CHANNEL`], which `cemsd check` names too.
pub use crate::config::stack::DERIVED_NOX_CHANNEL;
pub const DERIVED_FLOW_CHANNEL: &str = "flow";

/// HJ 75-2017 ppm → mg/m3 factor at standard condition, M / 22.4, as the standard rounds it:
/// SO2 64.06/22.4 = 2.86, NO 30.01/22.4 = 1.34, NO2 46.01/22.4 = 2.05, CO 28.01/22.4 = 1.25.
/// NOx reported in ppm by the analyser is taken as NO2 (2.05), since NOx is reported as NO2.
/// HCl 36.46/22.4 = 1.63 and NH3 17.03/22.4 = 0.76 follow the same formula.
pub fn ppm_to_mg_factor(quantity: Quantity) -> Option<f64> {
    match quantity {
        Quantity::SO2 => Some(2.86),
        Quantity::NO => Some(1.34),
        Quantity::NO2 | Quantity::NOx => Some(2.05),
        Quantity::CO => Some(1.25),
        Quantity::HCl => Some(1.63),
        Quantity::NH3 => Some(0.76),
        _ => None,
    }
}

/// A wire unit the normaliser cannot turn into the quantity's reporting unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{quantity} cannot be read in {unit}: expected {}", alternatives(.expected))]
pub struct UnitError {
    pub quantity: Quantity,
    pub unit: Unit,
    /// The units it can be read in.
    pub expected: &'static [Unit],
}

/// "ppm, ppb or mg/m3".
fn alternatives(units: &[Unit]) -> String {
    let symbols: Vec<&str> = units.iter().map(|u| u.symbol()).collect();
    match symbols.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// The unit a quantity is reported in after normalisation, given its wire unit: mg/m3 for
/// concentrations, the wire unit for everything else (the table is [`unit_of`] and
/// [`wire_units`]). Config loading should call this for every channel so that no
/// unconvertible channel reaches the pipeline.
pub fn reporting_unit(quantity: Quantity, wire: Unit) -> Result<Unit, UnitError> {
    let expected = wire_units(quantity);
    if !expected.contains(&wire) {
        return Err(UnitError {
            quantity,
            unit: wire,
            expected,
        });
    }
    let reported = unit_of(quantity);
    Ok(if reported == Unit::MgPerM3 {
        reported
    } else {
        wire
    })
}

/// A value in the quantity's reporting unit: gases in mg/m3 at standard condition (HJ 75-2017
/// C = ppm × M/22.4; ppb = ppm/1000), everything else unchanged. Analyser outputs in mg/m3 are
/// taken to be at standard condition already, as analysers compute them with 22.4 L/mol.
pub fn to_reporting_unit(quantity: Quantity, wire: Unit, value: f64) -> Option<f64> {
    reporting_unit(quantity, wire).ok()?;
    match wire {
        Unit::Ppm => ppm_to_mg_factor(quantity).map(|f| value * f),
        Unit::Ppb => ppm_to_mg_factor(quantity).map(|f| value / 1000.0 * f),
        _ => Some(value),
    }
}

/// HJ 75-2017 wet → dry: C_dry = C_wet / (1 − X_sw), X_sw = humidity % / 100. Small negative
/// humidity (zero drift) counts as 0; 100 % or more cannot be dried.
pub fn wet_to_dry(value_wet: f64, humidity_percent: f64) -> Option<f64> {
    let x_sw = humidity_percent.max(0.0) / 100.0;
    (x_sw < 1.0).then(|| value_wet / (1.0 - x_sw))
}

/// Reference-oxygen correction of HJ 75-2017: C_ref = C_dry × (21 − O2_ref) / (21 − O2_dry).
/// O2 at or above 21 − `guard_margin` gives None (flagged by quality) instead of a huge value;
/// `cap` (*verify*, plant practice) limits the O2 used, e.g. 19 % during start-up.
pub fn correct_to_reference_o2(
    c_dry: f64,
    o2_dry: f64,
    o2_ref: f64,
    cap: Option<f64>,
    guard_margin: f64,
) -> Option<f64> {
    // Written so that NaN also fails the guard.
    let below_guard = o2_dry < 21.0 - guard_margin;
    if !below_guard {
        return None;
    }
    let o2_used = cap.map_or(o2_dry, |c| o2_dry.min(c));
    Some(c_dry * (21.0 - o2_ref) / (21.0 - o2_used))
}

/// HJ 75-2017 NOx as NO2: NOx = NO × 1.53 + NO2 (mg/m3); pass None for NO2 when only NO is
/// measured.
pub fn nox_as_no2(no_mg: f64, no2_mg: Option<f64>) -> f64 {
    no_mg * NO_TO_NO2 + no2_mg.unwrap_or(0.0)
}

/// HJ 75-2017 flue-gas flow at standard condition, dry:
/// Q_sn = Q_s × 273.15/(273.15 + t_s) × p_abs/101325 × (1 − X_sw), with p_abs = B_a + P_s.
pub fn standard_dry_flow(
    actual_m3_h: f64,
    temperature_c: f64,
    absolute_pressure_pa: f64,
    humidity_percent: f64,
) -> Option<f64> {
    let kelvin = STANDARD_TEMPERATURE_K + temperature_c;
    let x_sw = humidity_percent.max(0.0) / 100.0;
    if !(kelvin > 0.0 && x_sw < 1.0 && absolute_pressure_pa > 0.0) {
        return None;
    }
    Some(
        actual_m3_h
            * (STANDARD_TEMPERATURE_K / kelvin)
            * (absolute_pressure_pa / STANDARD_PRESSURE_PA)
            * (1.0 - x_sw),
    )
}

/// HJ 75-2017 emission rate: G (kg/h) = C_dry (mg/m3, not O2-corrected) × Q_sn (m3/h) × 1e-6.
pub fn emission_rate_kg_h(c_dry_mg_m3: f64, q_sn_m3_h: f64) -> f64 {
    c_dry_mg_m3 * q_sn_m3_h * 1e-6
}

/// Quantities whose concentration depends on whether the gas still holds its moisture.
fn is_concentration(q: Quantity) -> bool {
    q.is_pollutant() || matches!(q, Quantity::O2 | Quantity::CO2)
}

/// The poll interval of a device no config declared (tests feeding a normaliser directly):
/// the config's default.
pub(crate) const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(10);

/// The latest value of one flue-gas input; `value` is None when the latest sample carried
/// none (so a failed O2 read is never covered by an older one).
#[derive(Debug, Clone, Copy)]
struct Latest {
    ts: Timestamp,
    value: Option<f64>,
    /// How far from `ts` it may be used: the staleness bound of the device it came from.
    max_age_ms: i64,
}

/// Why an input of a derived value could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Missing {
    /// Nothing on the measuring point delivers this quantity.
    NoSource(Quantity),
    /// It is delivered, but no value lies within the staleness bound.
    NotFresh(Quantity),
    /// The latest sample carried no value (its read failed).
    NoValue(Quantity),
}

impl Missing {
    fn note(self) -> String {
        let name = |q: Quantity| match q {
            Quantity::Humidity => "moisture",
            Quantity::Temperature => "flue temperature",
            Quantity::Pressure => "flue pressure",
            other => other.name(),
        };
        match self {
            Missing::NoSource(q) => format!("no {} source", name(q)),
            Missing::NotFresh(q) => format!("no fresh {} reading", name(q)),
            Missing::NoValue(q) => format!("no {} value", name(q)),
        }
    }
}

/// The notes of one reading, in the order they arose, each once.
#[derive(Debug, Default)]
struct Notes(Vec<String>);

impl Notes {
    fn add(&mut self, note: String) {
        if !self.0.contains(&note) {
            self.0.push(note);
        }
    }

    fn missing(&mut self, missing: Missing) {
        self.add(missing.note());
    }

    fn into_note(self) -> Option<String> {
        (!self.0.is_empty()).then(|| self.0.join("; "))
    }
}

/// Turns one measuring point's samples into readings. Keeps the latest flue-gas state (O2,
/// humidity, temperature, pressure, velocity, flow, NO2) to correct, dry and derive.
#[derive(Debug, Clone)]
pub struct Normaliser {
    stack: Arc<str>,
    nox_channel: Arc<str>,
    flow_channel: Arc<str>,
    reference_o2: f64,
    o2_cap: Option<f64>,
    o2_guard_margin: f64,
    nox: NoxMethod,
    flow_from: FlowSource,
    duct_area_m2: Option<f64>,
    barometric_pa: f64,
    flue_pressure: FluePressure,
    moisture_set_percent: Option<f64>,
    /// Staleness bound of each declared device's values.
    max_age_of: HashMap<Arc<str>, i64>,
    /// Staleness bound of values from undeclared devices.
    default_max_age_ms: i64,
    /// Quantities the point has a source of: declared, or seen.
    sources: [bool; Quantity::ALL.len()],
    o2: Option<Latest>,
    humidity: Option<Latest>,
    temperature: Option<Latest>,
    pressure_pa: Option<Latest>,
    velocity: Option<Latest>,
    flow: Option<Latest>,
    no2: Option<Latest>,
}

impl Normaliser {
    pub fn new(stack: Arc<str>, params: &StackParams) -> Normaliser {
        Normaliser {
            stack,
            nox_channel: Arc::from(DERIVED_NOX_CHANNEL),
            flow_channel: Arc::from(DERIVED_FLOW_CHANNEL),
            reference_o2: params.effective_reference_o2(),
            o2_cap: params.o2_correction_cap,
            o2_guard_margin: params.o2_guard_margin,
            nox: params.nox,
            flow_from: params.flow_from,
            duct_area_m2: params.duct_area_m2,
            barometric_pa: params.barometric_pa,
            flue_pressure: params.flue_pressure,
            moisture_set_percent: params.moisture_set_percent,
            max_age_of: HashMap::new(),
            default_max_age_ms: params.staleness_bound_ms(DEFAULT_POLL_INTERVAL),
            sources: [false; Quantity::ALL.len()],
            o2: None,
            humidity: None,
            temperature: None,
            pressure_pa: None,
            velocity: None,
            flow: None,
            no2: None,
        }
    }

    pub fn stack(&self) -> &Arc<str> {
        &self.stack
    }

    /// Declares that `device`, delivering every `interval` (and so usable that long, see
    /// [`StackParams::staleness_bound_ms`]), measures `quantity` at this point. An input
    /// with no source at all is noted as such ("no O2 source"), one whose source fell
    /// silent as stale ("no fresh O2 reading").
    pub fn add_source(
        &mut self,
        device: Arc<str>,
        quantity: Quantity,
        interval: Duration,
        params: &StackParams,
    ) {
        self.sources[quantity as usize] = true;
        self.max_age_of
            .insert(device, params.staleness_bound_ms(interval));
    }

    /// The longest any input of this point may be used from its reading's time.
    pub fn longest_bound_ms(&self) -> i64 {
        self.max_age_of
            .values()
            .copied()
            .fold(self.default_max_age_ms, i64::max)
    }

    /// The flue-gas quantities other readings of this point take as inputs and it has a
    /// source of: what a reading that arrives late needs the stored values of.
    pub fn inputs(&self) -> impl Iterator<Item = Quantity> + '_ {
        [
            Quantity::O2,
            Quantity::Humidity,
            Quantity::Temperature,
            Quantity::Pressure,
            Quantity::Velocity,
            Quantity::Flow,
            Quantity::NO2,
        ]
        .into_iter()
        .filter(|q| self.sources[*q as usize])
    }

    /// This point as it stood at `ts`, for readings that arrive after later ones: the
    /// flue-gas state comes from the stored readings nearest to `ts` (`stored`, readings of
    /// this point), not from whatever arrived last. Declared sources and settings stay.
    pub fn as_of(&self, ts: Timestamp, stored: &[&Record]) -> Normaliser {
        let mut then = self.clone();
        for slot in [
            &mut then.o2,
            &mut then.humidity,
            &mut then.temperature,
            &mut then.pressure_pa,
            &mut then.velocity,
            &mut then.flow,
            &mut then.no2,
        ] {
            *slot = None;
        }
        for record in stored {
            let Some(quantity) = record.quantity else {
                continue;
            };
            // the state holds what `remember` would have: flow before standardisation (the
            // wire value), pressure in Pa, everything else as stored
            let value = match quantity {
                Quantity::Flow if self.flow_from != FlowSource::StandardDryFlow => record.raw,
                Quantity::Pressure if record.unit == Some(Unit::KPa) => {
                    record.measured.map(|v| v * 1000.0)
                }
                _ => record.measured,
            };
            let max_age_ms = self
                .max_age_of
                .get(&record.device)
                .copied()
                .unwrap_or(self.default_max_age_ms);
            let slot = match quantity {
                Quantity::O2 => &mut then.o2,
                Quantity::Humidity => &mut then.humidity,
                Quantity::Temperature => &mut then.temperature,
                Quantity::Pressure => &mut then.pressure_pa,
                Quantity::Velocity => &mut then.velocity,
                Quantity::Flow => &mut then.flow,
                Quantity::NO2 => &mut then.no2,
                _ => continue,
            };
            let distance = |at: Timestamp| (at.millis() - ts.millis()).abs();
            if slot.is_none_or(|held| distance(record.ts) < distance(held.ts)) {
                *slot = Some(Latest {
                    ts: record.ts,
                    value: value.filter(|v| v.is_finite()),
                    max_age_ms,
                });
            }
        }
        then
    }

    /// Normalises the samples of one poll (one instant): every flue-gas value of the poll is
    /// taken in first (moisture before the rest, so a wet O2 dries with the same poll's
    /// moisture), then each sample becomes its reading and any derived one, in poll order.
    /// Derived values thus combine the poll's own inputs, whatever their register order.
    pub fn push_snapshot(&mut self, samples: &[&Sample], out: &mut Vec<Reading>) {
        let humidity_first = samples
            .iter()
            .filter(|s| s.quantity == Quantity::Humidity)
            .chain(samples.iter().filter(|s| s.quantity != Quantity::Humidity));
        for sample in humidity_first {
            let value = self.value_of(sample, &mut Notes::default());
            self.remember(sample, value);
        }
        for sample in samples {
            self.push(sample, out);
        }
    }

    /// Normalises one sample into `out`: its own reading, then any derived one (NOx as NO2 after
    /// an NO sample, standard flow after a velocity sample). `out` is not cleared. Inputs of
    /// other channels are the latest taken in; [`Normaliser::push_snapshot`] takes a whole
    /// poll in first.
    ///
    /// A reading's `unit` is that of `measured` and `corrected` (mg/m3 for gases, m3/h standard
    /// dry for flow); `raw` stays in the wire unit and `basis` says how it was measured.
    pub fn push(&mut self, sample: &Sample, out: &mut Vec<Reading>) {
        let q = sample.quantity;
        let ts = sample.ts;
        let unit = reporting_unit(q, sample.unit).unwrap_or(sample.unit);
        let mut notes = Notes::default();
        let mut value = self.value_of(sample, &mut notes);
        self.remember(sample, value);
        if q == Quantity::Flow && self.flow_from != FlowSource::StandardDryFlow {
            value = value.and_then(|actual| self.standardise(actual, ts, &mut notes));
        }

        let mut reading = Reading {
            ts,
            stack: Arc::clone(&self.stack),
            device: Arc::clone(&sample.device),
            channel: Arc::clone(&sample.channel),
            quantity: q,
            unit,
            basis: sample.basis,
            raw: sample.value,
            measured: value.unwrap_or(f64::NAN),
            corrected: None,
            rate: None,
            flags: sample.status,
            note: None,
        };
        if q.is_pollutant() {
            self.complete_pollutant(&mut reading, &mut notes);
        }
        reading.note = notes.into_note();

        let derived = if q == Quantity::NO && self.nox != NoxMethod::Direct {
            Some(self.derive_nox(sample, value, reading.note.as_deref()))
        } else if q == Quantity::Velocity && self.flow_from == FlowSource::Velocity {
            Some(self.derive_flow(sample, value))
        } else {
            None
        };
        out.push(reading);
        out.extend(derived);
    }

    /// Standard dry flow Q_sn (m3/h) at `ts` from the stack's configured flow source, if every
    /// input is at hand.
    pub fn standard_flow(&self, ts: Timestamp) -> Option<f64> {
        self.standard_flow_noted(ts, &mut Notes::default())
            .ok()
            .flatten()
    }

    /// Q_sn at `ts`; Ok(None) when the inputs are there but impossible (quality flags them).
    fn standard_flow_noted(
        &self,
        ts: Timestamp,
        notes: &mut Notes,
    ) -> Result<Option<f64>, Missing> {
        match self.flow_from {
            FlowSource::Velocity => {
                let v = self.input(Quantity::Velocity, self.velocity, ts)?;
                let Some(area) = self.duct_area_m2 else {
                    return Ok(None); // config::parse requires it with a velocity channel
                };
                Ok(self.standardise(v * area * 3600.0, ts, notes))
            }
            FlowSource::ActualFlow => {
                let actual = self.input(Quantity::Flow, self.flow, ts)?;
                Ok(self.standardise(actual, ts, notes))
            }
            FlowSource::StandardDryFlow => self.input(Quantity::Flow, self.flow, ts).map(Some),
        }
    }

    /// Q_s (m3/h, working condition) → Q_sn with the temperature, pressure and moisture of
    /// the same instant; a missing one is noted and gives None.
    fn standardise(&self, actual_m3_h: f64, ts: Timestamp, notes: &mut Notes) -> Option<f64> {
        let inputs = (|| {
            let t = self.input(Quantity::Temperature, self.temperature, ts)?;
            let p = self.input(Quantity::Pressure, self.pressure_pa, ts)?;
            let h = self.moisture(ts, notes)?;
            Ok((t, p, h))
        })();
        let (t, p, h) = inputs.map_err(|m| notes.missing(m)).ok()?;
        let absolute = match self.flue_pressure {
            FluePressure::Gauge => self.barometric_pa + p,
            FluePressure::Absolute => p,
        };
        standard_dry_flow(actual_m3_h, t, absolute, h)
    }

    /// The value of an input at `ts`, or why there is none.
    fn input(
        &self,
        quantity: Quantity,
        latest: Option<Latest>,
        ts: Timestamp,
    ) -> Result<f64, Missing> {
        let Some(latest) = latest else {
            return Err(if self.sources[quantity as usize] {
                Missing::NotFresh(quantity)
            } else {
                Missing::NoSource(quantity)
            });
        };
        if (ts.millis() - latest.ts.millis()).abs() > latest.max_age_ms {
            return Err(Missing::NotFresh(quantity));
        }
        latest.value.ok_or(Missing::NoValue(quantity))
    }

    /// Flue-gas moisture (%) at `ts`: measured where the point has a moisture source, else the
    /// stack's set value (noted as such).
    fn moisture(&self, ts: Timestamp, notes: &mut Notes) -> Result<f64, Missing> {
        let measured = self.input(Quantity::Humidity, self.humidity, ts);
        match (measured, self.moisture_set_percent) {
            (Err(Missing::NoSource(_)), Some(set)) => {
                notes.add(format!("moisture set value {set} %"));
                Ok(set)
            }
            (measured, _) => measured,
        }
    }

    /// A sample's value in its reporting unit, dried if it is a wet concentration.
    fn value_of(&self, sample: &Sample, notes: &mut Notes) -> Option<f64> {
        let q = sample.quantity;
        let value = to_reporting_unit(q, sample.unit, sample.value).filter(|v| v.is_finite())?;
        if sample.basis == Basis::Wet && is_concentration(q) {
            return match self.moisture(sample.ts, notes) {
                Ok(h) => wet_to_dry(value, h),
                Err(m) => {
                    notes.missing(m);
                    None
                }
            };
        }
        Some(value)
    }

    /// Records flue-gas state; `value` is in the reporting unit, dry for O2 and NO2, and for
    /// flow still at the condition it was measured at.
    fn remember(&mut self, sample: &Sample, value: Option<f64>) {
        self.sources[sample.quantity as usize] = true;
        let max_age_ms = self
            .max_age_of
            .get(&sample.device)
            .copied()
            .unwrap_or(self.default_max_age_ms);
        let latest = |value| {
            Some(Latest {
                ts: sample.ts,
                value,
                max_age_ms,
            })
        };
        match sample.quantity {
            Quantity::O2 => self.o2 = latest(value),
            Quantity::Humidity => self.humidity = latest(value),
            Quantity::Temperature => self.temperature = latest(value),
            Quantity::Pressure => {
                let pa = match sample.unit {
                    Unit::KPa => value.map(|v| v * 1000.0),
                    _ => value,
                };
                self.pressure_pa = latest(pa);
            }
            Quantity::Velocity => self.velocity = latest(value),
            Quantity::Flow => self.flow = latest(value),
            Quantity::NO2 => self.no2 = latest(value),
            _ => {}
        }
    }

    /// Whether the point measures flow at all, so a missing emission rate is worth a note.
    fn has_flow_source(&self) -> bool {
        let source = |q: Quantity| self.sources[q as usize];
        match self.flow_from {
            FlowSource::Velocity => source(Quantity::Velocity),
            FlowSource::ActualFlow | FlowSource::StandardDryFlow => source(Quantity::Flow),
        }
    }

    /// Corrected value and emission rate of a pollutant whose `measured` is set.
    fn complete_pollutant(&self, reading: &mut Reading, notes: &mut Notes) {
        if !reading.measured.is_finite() {
            return;
        }
        match self.input(Quantity::O2, self.o2, reading.ts) {
            Ok(o2) => {
                reading.corrected = correct_to_reference_o2(
                    reading.measured,
                    o2,
                    self.reference_o2,
                    self.o2_cap,
                    self.o2_guard_margin,
                )
            }
            Err(m) => notes.missing(m),
        }
        if self.has_flow_source() {
            match self.standard_flow_noted(reading.ts, notes) {
                Ok(q_sn) => reading.rate = q_sn.map(|q| emission_rate_kg_h(reading.measured, q)),
                Err(m) => notes.missing(m),
            }
        }
    }

    /// NOx as NO2 from an NO sample and the NO2 of the same instant. A derived reading has no
    /// wire value: `raw` repeats `measured`. Without an NO value, NOx has none either, for
    /// the reason the NO reading gives (`no_note`).
    fn derive_nox(&self, sample: &Sample, no_mg: Option<f64>, no_note: Option<&str>) -> Reading {
        let mut notes = Notes::default();
        if let (None, Some(why)) = (no_mg, no_note) {
            notes.add(why.to_string());
        }
        let nox = no_mg.and_then(|no| match self.nox {
            NoxMethod::NoOnly => Some(nox_as_no2(no, None)),
            _ => match self.input(Quantity::NO2, self.no2, sample.ts) {
                Ok(no2) => Some(nox_as_no2(no, Some(no2))),
                Err(m) => {
                    notes.missing(m);
                    None
                }
            },
        });
        let measured = nox.unwrap_or(f64::NAN);
        let mut reading = Reading {
            ts: sample.ts,
            stack: Arc::clone(&self.stack),
            device: Arc::clone(&sample.device),
            channel: Arc::clone(&self.nox_channel),
            quantity: Quantity::NOx,
            unit: Unit::MgPerM3,
            basis: sample.basis,
            raw: measured,
            measured,
            corrected: None,
            rate: None,
            flags: sample.status,
            note: None,
        };
        self.complete_pollutant(&mut reading, &mut notes);
        reading.note = notes.into_note();
        reading
    }

    /// Flow from a velocity sample: `raw` is Q_s = v × A × 3600 at working condition,
    /// `measured` Q_sn at standard condition, dry, with the same instant's temperature,
    /// pressure and moisture.
    fn derive_flow(&self, sample: &Sample, velocity: Option<f64>) -> Reading {
        let mut notes = Notes::default();
        let actual = velocity
            .zip(self.duct_area_m2)
            .map(|(v, area)| v * area * 3600.0);
        let standard = actual.and_then(|q| self.standardise(q, sample.ts, &mut notes));
        Reading {
            ts: sample.ts,
            stack: Arc::clone(&self.stack),
            device: Arc::clone(&sample.device),
            channel: Arc::clone(&self.flow_channel),
            quantity: Quantity::Flow,
            unit: Unit::CubicMetrePerHour,
            basis: Basis::Dry,
            raw: actual.unwrap_or(f64::NAN),
            measured: standard.unwrap_or(f64::NAN),
            corrected: None,
            rate: None,
            flags: sample.status,
            note: notes.into_note(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::stack::SourceType;
    use crate::model::{Flag, FlagSet};

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    fn sample(q: Quantity, unit: Unit, basis: Basis, value: f64, ts: i64) -> Sample {
        Sample {
            device: Arc::from("ana1"),
            channel: Arc::from(q.name()),
            quantity: q,
            unit,
            basis,
            value,
            status: FlagSet::EMPTY,
            ts: Timestamp(ts),
        }
    }

    /// Asserts a converted value equals the hand-computed one.
    fn check(got: Option<f64>, want: f64) {
        assert!(
            got.is_some_and(|g| close(g, want)),
            "got {got:?}, want {want}"
        );
    }

    #[test]
    fn ppm_and_ppb_to_mg_per_m3() {
        // SO2: 100 ppm × 2.86 = 286 mg/m3; 5000 ppb = 5 ppm × 2.86 = 14.3 mg/m3
        check(to_reporting_unit(Quantity::SO2, Unit::Ppm, 100.0), 286.0);
        check(to_reporting_unit(Quantity::SO2, Unit::Ppb, 5000.0), 14.3);
        // NO: 100 ppm × 1.34 = 134; NO2: 10 ppm × 2.05 = 20.5; CO: 40 ppm × 1.25 = 50
        check(to_reporting_unit(Quantity::NO, Unit::Ppm, 100.0), 134.0);
        check(to_reporting_unit(Quantity::NO2, Unit::Ppm, 10.0), 20.5);
        check(to_reporting_unit(Quantity::CO, Unit::Ppm, 40.0), 50.0);
        // NO 250 ppb = 0.25 ppm × 1.34 = 0.335 mg/m3
        check(to_reporting_unit(Quantity::NO, Unit::Ppb, 250.0), 0.335);
        // NOx reported in ppm is converted as NO2: 50 ppm × 2.05 = 102.5
        check(to_reporting_unit(Quantity::NOx, Unit::Ppm, 50.0), 102.5);
        // mg/m3 and flue-gas parameters pass through
        check(to_reporting_unit(Quantity::Dust, Unit::MgPerM3, 7.5), 7.5);
        check(
            to_reporting_unit(Quantity::Temperature, Unit::DegC, 120.0),
            120.0,
        );
        // dust has no molar mass; degC is no concentration
        assert_eq!(to_reporting_unit(Quantity::Dust, Unit::Ppm, 1.0), None);
        assert_eq!(to_reporting_unit(Quantity::SO2, Unit::DegC, 1.0), None);
    }

    /// The table moved to model::unit_of/wire_units; what the normaliser accepts and
    /// reports is what its own table said.
    #[test]
    fn every_quantity_is_read_in_the_units_it_was_read_in_before() {
        let expected = |q: Quantity| match q {
            Quantity::Dust => "mg/m3",
            Quantity::O2 | Quantity::CO2 | Quantity::Humidity => "%vol",
            Quantity::Temperature => "degC",
            Quantity::Pressure => "Pa or kPa",
            Quantity::Velocity => "m/s",
            Quantity::Flow => "m3/h",
            _ => "ppm, ppb or mg/m3",
        };
        for q in Quantity::ALL {
            for unit in Unit::ALL {
                let accepted = expected(q).split([',', ' ']).any(|s| s == unit.symbol());
                match reporting_unit(q, unit) {
                    Ok(reported) => {
                        assert!(accepted, "{q} in {unit}");
                        let gas = expected(q).starts_with("ppm");
                        let dust = q == Quantity::Dust;
                        let want = if gas || dust { Unit::MgPerM3 } else { unit };
                        assert_eq!(reported, want, "{q} in {unit}");
                    }
                    Err(e) => {
                        assert!(!accepted, "{q} in {unit}");
                        assert_eq!(
                            e.to_string(),
                            format!("{q} cannot be read in {unit}: expected {}", expected(q))
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn reporting_unit_rejects_what_cannot_be_converted() {
        assert_eq!(reporting_unit(Quantity::SO2, Unit::Ppb), Ok(Unit::MgPerM3));
        assert_eq!(reporting_unit(Quantity::Pressure, Unit::KPa), Ok(Unit::KPa));
        let err = reporting_unit(Quantity::O2, Unit::Ppm);
        assert_eq!(
            err.map_err(|e| e.to_string()),
            Err("O2 cannot be read in ppm: expected %vol".to_string())
        );
    }

    #[test]
    fn wet_to_dry_divides_by_dry_fraction() {
        // 90 mg/m3 wet at 10 % moisture: 90 / (1 − 0.10) = 100 mg/m3 dry
        check(wet_to_dry(90.0, 10.0), 100.0);
        // small negative humidity counts as 0 %; 100 % cannot be dried
        check(wet_to_dry(90.0, -0.2), 90.0);
        assert_eq!(wet_to_dry(90.0, 100.0), None);
    }

    #[test]
    fn oxygen_correction_at_each_reference() {
        // coal boiler, 6 %: 100 × (21 − 6)/(21 − 9) = 100 × 15/12 = 125
        check(correct_to_reference_o2(100.0, 9.0, 6.0, None, 0.1), 125.0);
        // oil/gas boiler, 3 %: 100 × (21 − 3)/(21 − 7.5) = 100 × 18/13.5 = 133.33…
        check(
            correct_to_reference_o2(100.0, 7.5, 3.0, None, 0.1),
            400.0 / 3.0,
        );
        // gas turbine, 15 %: 20 × (21 − 15)/(21 − 16) = 20 × 6/5 = 24
        check(correct_to_reference_o2(20.0, 16.0, 15.0, None, 0.1), 24.0);
        // guard: O2 at or above 21 − 0.1 = 20.9 (or NaN) gives no value instead of a blow-up
        assert_eq!(correct_to_reference_o2(100.0, 20.9, 6.0, None, 0.1), None);
        assert_eq!(correct_to_reference_o2(100.0, 21.0, 6.0, None, 0.1), None);
        assert_eq!(
            correct_to_reference_o2(100.0, f64::NAN, 6.0, None, 0.1),
            None
        );
        // cap 19 %: O2 20 % is used as 19 %: 100 × 15/(21 − 19) = 750
        check(
            correct_to_reference_o2(100.0, 20.0, 6.0, Some(19.0), 0.1),
            750.0,
        );
        // below the cap the cap does nothing: 100 × 15/12 = 125
        check(
            correct_to_reference_o2(100.0, 9.0, 6.0, Some(19.0), 0.1),
            125.0,
        );
    }

    #[test]
    fn nox_expressed_as_no2() {
        // NO 100 mg/m3, NO2 10 mg/m3: 100 × 1.53 + 10 = 163
        assert!(close(nox_as_no2(100.0, Some(10.0)), 163.0));
        // NO only: 100 × 1.53 = 153
        assert!(close(nox_as_no2(100.0, None), 153.0));
    }

    #[test]
    fn standard_dry_flow_and_rate() {
        // Q_s = 720 000 m3/h at 273.15 °C (273.15/546.3 = 0.5), 101 325 Pa absolute (× 1),
        // 10 % moisture (× 0.9): Q_sn = 720 000 × 0.5 × 1 × 0.9 = 324 000 m3/h
        check(
            standard_dry_flow(720_000.0, 273.15, 101_325.0, 10.0),
            324_000.0,
        );
        // 100 000 Pa absolute: × 100 000/101 325 = 0.986923…; 324 000 × that = 319 763.14…
        check(
            standard_dry_flow(720_000.0, 273.15, 100_000.0, 10.0),
            324_000.0 * 100_000.0 / 101_325.0,
        );
        // 35 mg/m3 × 1 000 000 m3/h × 1e-6 = 35 kg/h
        assert!(close(emission_rate_kg_h(35.0, 1_000_000.0), 35.0));
        // impossible inputs give nothing
        assert_eq!(standard_dry_flow(1.0, -300.0, 101_325.0, 0.0), None);
        assert_eq!(standard_dry_flow(1.0, 20.0, 101_325.0, 100.0), None);
    }

    fn coal_stack() -> StackParams {
        let mut p = StackParams::new("s1", SourceType::CoalBoiler);
        p.duct_area_m2 = Some(20.0);
        p
    }

    fn feed(n: &mut Normaliser, samples: &[Sample]) -> Vec<Reading> {
        let mut out = Vec::new();
        for s in samples {
            n.push(s, &mut out);
        }
        out
    }

    /// O2 9 % dry, humidity 10 %, 273.15 °C, gauge 0 Pa, velocity 10 m/s at t = 0.
    fn flue_gas(ts: i64) -> Vec<Sample> {
        vec![
            sample(Quantity::O2, Unit::PercentVol, Basis::Dry, 9.0, ts),
            sample(Quantity::Humidity, Unit::PercentVol, Basis::Dry, 10.0, ts),
            sample(Quantity::Temperature, Unit::DegC, Basis::Dry, 273.15, ts),
            sample(Quantity::Pressure, Unit::KPa, Basis::Dry, 0.0, ts),
            sample(
                Quantity::Velocity,
                Unit::MetrePerSecond,
                Basis::Dry,
                10.0,
                ts,
            ),
        ]
    }

    #[test]
    fn pollutant_reading_is_dried_corrected_and_rated() {
        let mut n = Normaliser::new(Arc::from("s1"), &coal_stack());
        let mut samples = flue_gas(0);
        // SO2 90 ppm wet: 90 × 2.86 = 257.4 mg/m3 wet; / 0.9 = 286 mg/m3 dry
        samples.push(sample(Quantity::SO2, Unit::Ppm, Basis::Wet, 90.0, 1000));
        let out = feed(&mut n, &samples);
        // five flue-gas readings, the derived flow after velocity, then SO2
        assert_eq!(out.len(), 7);
        let flow = &out[5];
        assert_eq!((flow.quantity, &*flow.channel), (Quantity::Flow, "flow"));
        // Q_s = 10 m/s × 20 m2 × 3600 = 720 000 m3/h; Q_sn = 720 000 × 0.5 × 1 × 0.9 = 324 000
        assert!(
            close(flow.raw, 720_000.0) && close(flow.measured, 324_000.0),
            "{flow:?}"
        );
        let so2 = &out[6];
        assert_eq!(so2.unit, Unit::MgPerM3);
        assert_eq!(so2.raw, 90.0);
        assert!(close(so2.measured, 286.0), "{}", so2.measured);
        // 286 × 15/12 = 357.5
        check(so2.corrected, 357.5);
        // 286 mg/m3 × 324 000 m3/h × 1e-6 = 92.664 kg/h (measured, not corrected)
        check(so2.rate, 92.664);
        check(n.standard_flow(Timestamp(1000)), 324_000.0);
    }

    #[test]
    fn nox_is_derived_from_no_and_no2() {
        let mut n = Normaliser::new(Arc::from("s1"), &coal_stack());
        let mut samples = flue_gas(0);
        // NO2 10 ppm dry = 20.5 mg/m3; NO 100 ppm dry = 134 mg/m3
        samples.push(sample(Quantity::NO2, Unit::Ppm, Basis::Dry, 10.0, 0));
        samples.push(sample(Quantity::NO, Unit::Ppm, Basis::Dry, 100.0, 0));
        let out = feed(&mut n, &samples);
        let nox = out.last().filter(|r| r.quantity == Quantity::NOx);
        let Some(nox) = nox else {
            panic!("no NOx reading: {out:?}");
        };
        // 134 × 1.53 + 20.5 = 205.02 + 20.5 = 225.52; corrected × 15/12 = 281.9
        assert!(close(nox.measured, 225.52), "{nox:?}");
        check(nox.corrected, 281.9);
        assert_eq!(nox.raw, nox.measured);
        assert_eq!(&*nox.channel, DERIVED_NOX_CHANNEL);

        let mut p = coal_stack();
        p.nox = NoxMethod::NoOnly;
        let mut n = Normaliser::new(Arc::from("s1"), &p);
        let out = feed(
            &mut n,
            &[sample(Quantity::NO, Unit::Ppm, Basis::Dry, 100.0, 0)],
        );
        // 134 × 1.53 = 205.02; no O2 yet, so nothing to correct with
        assert!(close(out[1].measured, 205.02), "{out:?}");
        assert_eq!(out[1].corrected, None);

        p.nox = NoxMethod::Direct;
        let mut n = Normaliser::new(Arc::from("s1"), &p);
        let out = feed(
            &mut n,
            &[sample(Quantity::NO, Unit::Ppm, Basis::Dry, 100.0, 0)],
        );
        assert_eq!(out.len(), 1, "direct NOx derives nothing from NO");
    }

    #[test]
    fn missing_inputs_leave_values_out() {
        let mut n = Normaliser::new(Arc::from("s1"), &coal_stack());
        // wet SO2 with no humidity yet: cannot be dried
        let out = feed(
            &mut n,
            &[sample(Quantity::SO2, Unit::Ppm, Basis::Wet, 90.0, 0)],
        );
        assert!(out[0].measured.is_nan() && out[0].corrected.is_none() && out[0].rate.is_none());

        // O2 older than state_max_age (5 min) is not used
        let mut n = Normaliser::new(Arc::from("s1"), &coal_stack());
        let out = feed(
            &mut n,
            &[
                sample(Quantity::O2, Unit::PercentVol, Basis::Dry, 9.0, 0),
                sample(Quantity::SO2, Unit::Ppm, Basis::Dry, 100.0, 300_001),
            ],
        );
        assert_eq!(out[1].corrected, None);
        assert!(close(out[1].measured, 286.0));

        // a failed O2 read replaces the older value instead of hiding behind it
        let mut failed = sample(Quantity::O2, Unit::PercentVol, Basis::Dry, f64::NAN, 1000);
        failed.status = FlagSet::of(Flag::B);
        let out = feed(
            &mut n,
            &[
                sample(Quantity::O2, Unit::PercentVol, Basis::Dry, 9.0, 0),
                failed,
                sample(Quantity::SO2, Unit::Ppm, Basis::Dry, 100.0, 2000),
            ],
        );
        assert_eq!(out[1].flags, FlagSet::of(Flag::B));
        assert_eq!(out[2].corrected, None);

        // O2 at 21 % (guard) gives no corrected value
        let out = feed(
            &mut n,
            &[
                sample(Quantity::O2, Unit::PercentVol, Basis::Dry, 21.0, 3000),
                sample(Quantity::SO2, Unit::Ppm, Basis::Dry, 100.0, 3000),
            ],
        );
        assert_eq!(out[1].corrected, None);
    }

    #[test]
    fn flow_channel_is_standardised_per_flow_source() {
        let mut p = coal_stack();
        p.flow_from = FlowSource::ActualFlow;
        p.flue_pressure = FluePressure::Absolute;
        let mut n = Normaliser::new(Arc::from("s1"), &p);
        let out = feed(
            &mut n,
            &[
                sample(Quantity::Humidity, Unit::PercentVol, Basis::Dry, 10.0, 0),
                sample(Quantity::Temperature, Unit::DegC, Basis::Dry, 273.15, 0),
                sample(Quantity::Pressure, Unit::Pa, Basis::Dry, 101_325.0, 0),
                sample(
                    Quantity::Flow,
                    Unit::CubicMetrePerHour,
                    Basis::Wet,
                    720_000.0,
                    0,
                ),
                sample(Quantity::Dust, Unit::MgPerM3, Basis::Dry, 10.0, 0),
            ],
        );
        // absolute 101 325 Pa: 720 000 × 0.5 × 1 × 0.9 = 324 000
        assert!(close(out[3].measured, 324_000.0), "{:?}", out[3]);
        // dust 10 mg/m3 × 324 000 × 1e-6 = 3.24 kg/h
        check(out[4].rate, 3.24);

        p.flow_from = FlowSource::StandardDryFlow;
        let mut n = Normaliser::new(Arc::from("s1"), &p);
        let out = feed(
            &mut n,
            &[
                sample(
                    Quantity::Flow,
                    Unit::CubicMetrePerHour,
                    Basis::Dry,
                    500_000.0,
                    0,
                ),
                sample(Quantity::SO2, Unit::MgPerM3, Basis::Dry, 20.0, 0),
            ],
        );
        // 20 × 500 000 × 1e-6 = 10 kg/h
        assert_eq!(out[0].measured, 500_000.0);
        check(out[1].rate, 10.0);
    }

    #[test]
    fn a_set_moisture_serves_where_none_is_measured_and_says_so() {
        let mut p = coal_stack();
        p.moisture_set_percent = Some(10.0);
        let mut n = Normaliser::new(Arc::from("s1"), &p);
        let out = feed(
            &mut n,
            &[
                sample(Quantity::O2, Unit::PercentVol, Basis::Dry, 9.0, 0),
                sample(Quantity::SO2, Unit::Ppm, Basis::Wet, 90.0, 0),
            ],
        );
        // 90 ppm × 2.86 = 257.4 mg/m3 wet; / (1 − 0.10) = 286 dry; × 15/12 = 357.5
        assert!(close(out[1].measured, 286.0), "{:?}", out[1]);
        check(out[1].corrected, 357.5);
        assert_eq!(out[1].note.as_deref(), Some("moisture set value 10 %"));

        // a measured moisture wins, even when it has gone stale
        let mut n = Normaliser::new(Arc::from("s1"), &p);
        let out = feed(
            &mut n,
            &[
                sample(Quantity::Humidity, Unit::PercentVol, Basis::Dry, 8.0, 0),
                sample(Quantity::SO2, Unit::Ppm, Basis::Wet, 90.0, 60_000),
            ],
        );
        assert!(out[1].measured.is_nan(), "{:?}", out[1]);
        assert_eq!(out[1].note.as_deref(), Some("no fresh moisture reading"));
    }

    #[test]
    fn a_missing_input_is_named_in_the_note() {
        let mut n = Normaliser::new(Arc::from("s1"), &coal_stack());
        n.add_source(
            Arc::from("o2-analyser"),
            Quantity::O2,
            Duration::from_secs(10),
            &coal_stack(),
        );
        // declared but never heard from (or stale): not fresh; never declared: no source
        let out = feed(
            &mut n,
            &[sample(Quantity::SO2, Unit::MgPerM3, Basis::Dry, 20.0, 0)],
        );
        assert_eq!((out[0].measured, out[0].corrected), (20.0, None));
        assert_eq!(out[0].note.as_deref(), Some("no fresh O2 reading"));
        let mut n = Normaliser::new(Arc::from("s1"), &coal_stack());
        let out = feed(
            &mut n,
            &[sample(Quantity::SO2, Unit::MgPerM3, Basis::Dry, 20.0, 0)],
        );
        assert_eq!(out[0].note.as_deref(), Some("no O2 source"));
        // a failed O2 read: no value (its B reaches SO2 through quality)
        let mut failed = sample(Quantity::O2, Unit::PercentVol, Basis::Dry, f64::NAN, 0);
        failed.status = FlagSet::of(Flag::B);
        let out = feed(
            &mut n,
            &[
                failed,
                sample(Quantity::SO2, Unit::MgPerM3, Basis::Dry, 20.0, 0),
            ],
        );
        assert_eq!(out[1].note.as_deref(), Some("no O2 value"));
        // NOx without NO2: NO is corrected, NOx has no value and says why
        let out = feed(
            &mut n,
            &[
                sample(Quantity::O2, Unit::PercentVol, Basis::Dry, 9.0, 0),
                sample(Quantity::NO, Unit::MgPerM3, Basis::Dry, 100.0, 0),
            ],
        );
        check(out[1].corrected, 125.0);
        assert!(out[2].measured.is_nan() && out[2].quantity == Quantity::NOx);
        assert_eq!(out[2].note.as_deref(), Some("no NO2 source"));
    }

    #[test]
    fn a_snapshot_takes_its_own_inputs_whatever_their_order() {
        let mut n = Normaliser::new(Arc::from("s1"), &coal_stack());
        // the previous poll: NO2 10 ppm, O2 9 %
        let before = [
            sample(Quantity::O2, Unit::PercentVol, Basis::Dry, 9.0, 0),
            sample(Quantity::NO2, Unit::Ppm, Basis::Dry, 10.0, 0),
        ];
        n.push_snapshot(&before.iter().collect::<Vec<_>>(), &mut Vec::new());
        // this poll, NO read before NO2 and O2: NO 100 ppm = 134 mg/m3, NO2 20 ppm = 41
        // mg/m3, O2 11 %. NOx = 134 × 1.53 + 41 = 205.02 + 41 = 246.02 (not 205.02 + 20.5);
        // corrected × 15/(21 − 11) = 246.02 × 1.5 = 369.03
        let poll = [
            sample(Quantity::NO, Unit::Ppm, Basis::Dry, 100.0, 10_000),
            sample(Quantity::NO2, Unit::Ppm, Basis::Dry, 20.0, 10_000),
            sample(Quantity::O2, Unit::PercentVol, Basis::Dry, 11.0, 10_000),
        ];
        let mut out = Vec::new();
        n.push_snapshot(&poll.iter().collect::<Vec<_>>(), &mut out);
        let nox = &out[1];
        assert_eq!(nox.quantity, Quantity::NOx);
        assert!(close(nox.measured, 246.02), "{nox:?}");
        check(nox.corrected, 369.03);
    }
}
