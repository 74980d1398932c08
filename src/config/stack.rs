//! Per-stack parameters: what the site config says about one stack (source type, duct, limits,
//! validity thresholds, data-review rules). Normalisation, quality and aggregation all read them,
//! so one struct keeps the three consistent.
//!
//! Durations are humantime strings ("45s", "30m", "2h"); `frozen_after` also takes "off".

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::model::Quantity;

/// Kind of combustion source; fixes the reference oxygen content of the emission limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceType {
    CoalBoiler,
    OilGasBoiler,
    GasTurbine,
    IndustrialCoalBoiler,
    IndustrialOilGasBoiler,
}

impl SourceType {
    /// Reference O2 in % (dry): GB 13223-2011 for thermal power (coal 6 %, oil/gas boiler 3 %,
    /// gas turbine 15 %), GB 13271-2014 for industrial boilers (coal 9 %, oil/gas 3.5 %).
    pub fn reference_o2(self) -> f64 {
        match self {
            SourceType::CoalBoiler => 6.0,
            SourceType::OilGasBoiler => 3.0,
            SourceType::GasTurbine => 15.0,
            SourceType::IndustrialCoalBoiler => 9.0,
            SourceType::IndustrialOilGasBoiler => 3.5,
        }
    }
}

/// Emission limits in mg/m3 at standard condition, dry, at the stack's reference O2.
/// Compared with O2-corrected hourly averages (GB 13223-2011 §4).
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(from = "LimitsSpec")]
pub struct Limits {
    pub dust: Option<f64>,
    pub so2: Option<f64>,
    /// NOx expressed as NO2.
    pub nox: Option<f64>,
    pub co: Option<f64>,
}

impl Limits {
    /// GB 13223-2011 Table 1, coal-fired boilers, new units: particulate 30, SO2 100, NOx 100.
    /// (Guangxi, Chongqing, Sichuan, Guizhou allow SO2 200: override `so2`.)
    pub const GB13223_COAL_NEW: Limits = Limits::of3(30.0, 100.0, 100.0);
    /// GB 13223-2011 Table 1, coal-fired boilers, existing units: SO2 200. NOx stays 100; W-flame,
    /// CFB and units commissioned before 2004 allow NOx 200: override `nox`.
    pub const GB13223_COAL_EXISTING: Limits = Limits::of3(30.0, 200.0, 100.0);
    /// GB 13223-2011 Table 2, special limits in key regions: particulate 20, SO2 50, NOx 100.
    pub const GB13223_COAL_SPECIAL: Limits = Limits::of3(20.0, 50.0, 100.0);
    /// Ultra-low emission programme for coal units (2015): particulate 10, SO2 35, NOx 50 at 6 % O2.
    pub const ULTRA_LOW: Limits = Limits::of3(10.0, 35.0, 50.0);
    /// GB 13223-2011 Table 1, natural-gas turbines (15 % O2): particulate 5, SO2 35, NOx 50.
    pub const GAS_TURBINE: Limits = Limits::of3(5.0, 35.0, 50.0);

    const fn of3(dust: f64, so2: f64, nox: f64) -> Limits {
        Limits {
            dust: Some(dust),
            so2: Some(so2),
            nox: Some(nox),
            co: None,
        }
    }

    /// The limit that applies to a quantity's corrected value, if any.
    pub fn of(&self, quantity: Quantity) -> Option<f64> {
        match quantity {
            Quantity::Dust => self.dust,
            Quantity::SO2 => self.so2,
            Quantity::NOx => self.nox,
            Quantity::CO => self.co,
            _ => None,
        }
    }

    /// Quantities that have a limit, in a fixed order.
    pub fn limited(&self) -> impl Iterator<Item = (Quantity, f64)> + '_ {
        [Quantity::Dust, Quantity::SO2, Quantity::NOx, Quantity::CO]
            .into_iter()
            .filter_map(|q| self.of(q).map(|l| (q, l)))
    }
}

/// Named limit sets a config can start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitPreset {
    Gb13223CoalNew,
    Gb13223CoalExisting,
    Gb13223CoalSpecial,
    UltraLow,
    GasTurbine,
}

impl LimitPreset {
    pub fn limits(self) -> Limits {
        match self {
            LimitPreset::Gb13223CoalNew => Limits::GB13223_COAL_NEW,
            LimitPreset::Gb13223CoalExisting => Limits::GB13223_COAL_EXISTING,
            LimitPreset::Gb13223CoalSpecial => Limits::GB13223_COAL_SPECIAL,
            LimitPreset::UltraLow => Limits::ULTRA_LOW,
            LimitPreset::GasTurbine => Limits::GAS_TURBINE,
        }
    }
}

/// Config form of [`Limits`]: an optional preset, then per-pollutant values that override it,
/// e.g. `limits = { preset = "gb13223_coal_new", so2 = 200 }`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsSpec {
    preset: Option<LimitPreset>,
    dust: Option<f64>,
    so2: Option<f64>,
    nox: Option<f64>,
    co: Option<f64>,
}

impl From<LimitsSpec> for Limits {
    fn from(spec: LimitsSpec) -> Limits {
        let base = spec.preset.map(LimitPreset::limits).unwrap_or_default();
        Limits {
            dust: spec.dust.or(base.dust),
            so2: spec.so2.or(base.so2),
            nox: spec.nox.or(base.nox),
            co: spec.co.or(base.co),
        }
    }
}

/// How NOx (as NO2) is obtained for the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoxMethod {
    /// HJ 75-2017: NOx = NO × 1.53 + NO2 (mg/m3), derived on every NO sample; needs an NO2 channel.
    #[default]
    NoPlusNo2,
    /// HJ 75-2017, NO only measured: NOx = NO × 1.53.
    NoOnly,
    /// The analyser reports NOx itself; NO samples derive nothing.
    Direct,
}

/// Channel name of the NOx readings cemsd derives from NO (and NO2), as stored.
pub const DERIVED_NOX_CHANNEL: &str = "NOx";

impl NoxMethod {
    /// As written in a config.
    pub fn name(self) -> &'static str {
        match self {
            NoxMethod::NoPlusNo2 => "no_plus_no2",
            NoxMethod::NoOnly => "no_only",
            NoxMethod::Direct => "direct",
        }
    }
}

/// Which measurement gives the flue-gas flow used for emission rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowSource {
    /// Velocity (m/s) × duct area; each velocity sample also yields a derived flow reading.
    #[default]
    Velocity,
    /// A flow channel in m3/h at working condition (actual temperature, pressure, wet).
    ActualFlow,
    /// A flow channel already at standard condition, dry, in m3/h.
    StandardDryFlow,
}

/// Whether the flue pressure channel reads gauge (static, relative to ambient) or absolute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FluePressure {
    #[default]
    Gauge,
    Absolute,
}

/// The plant counts as stopped (flag F) while the latest valid value of `quantity`, in its
/// normalised unit (m/s for velocity, m3/h standard dry for flow), is below `below`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlantStop {
    pub quantity: Quantity,
    pub below: f64,
}

/// Everything cemsd needs to know about one stack.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackParams {
    pub id: String,
    /// For people: shown in reports and on the status page.
    #[serde(default)]
    pub name: Option<String>,
    /// HJ 212 device id (MN, up to 24 characters) the stack's data is uploaded under; a
    /// site with one stack may leave it to `site.mn`.
    #[serde(default)]
    pub mn: Option<String>,
    /// Coal-fired boilers (6 % O2) unless said otherwise: the plants cemsd is built for.
    #[serde(default = "coal_boiler")]
    pub source_type: SourceType,
    /// Overrides the source type's reference O2 (%).
    #[serde(default)]
    pub reference_o2: Option<f64>,
    /// Upper bound on the O2 used in the correction, e.g. 19 % during start-up. Some plants
    /// apply one; HJ 75 text not confirmed (*verify*), so off unless configured.
    #[serde(default)]
    pub o2_correction_cap: Option<f64>,
    /// O2 at or above 21 − margin (% dry) is flagged invalid instead of dividing by ~0.
    #[serde(default = "default_o2_guard_margin")]
    pub o2_guard_margin: f64,
    #[serde(default)]
    pub nox: NoxMethod,
    #[serde(default)]
    pub flow_from: FlowSource,
    /// Duct cross-section at the flow measurement, m2; needed with `flow_from = "velocity"`.
    #[serde(default)]
    pub duct_area_m2: Option<f64>,
    /// Ambient barometric pressure B_a, Pa.
    #[serde(default = "default_barometric_pa")]
    pub barometric_pa: f64,
    #[serde(default)]
    pub flue_pressure: FluePressure,
    /// Staleness bound of the inputs of a derived value (O2 and moisture for dry and corrected
    /// concentrations, NO2 for NOx, temperature, pressure, moisture and velocity for flow):
    /// how far apart, measured between sample timestamps, an input from another poll may lie
    /// from the reading it completes. Inputs of the same poll are always used together.
    /// Unset (the default), it is one poll interval of the device the input came from, plus
    /// half an interval for where in its poll each value was read: the input of the current
    /// or the previous poll round, never an older one.
    #[serde(default, deserialize_with = "crate::config::optional_duration")]
    pub state_max_age: Option<Duration>,
    /// Flue-gas moisture (% by volume) used as a set value where the stack has no moisture
    /// measurement: for wet → dry and for standard dry flow. Readings computed with it say so
    /// in their note. A set value is accepted by the bureaus for stable flue gas with a
    /// periodically measured moisture (HJ 75-2017, *verify* the clause for the site); O2 has no
    /// such provision, so there is no set value for the reference-O2 correction. Ignored
    /// where the stack measures moisture.
    #[serde(default)]
    pub moisture_set_percent: Option<f64>,
    #[serde(default)]
    pub limits: Limits,
    /// HJ 75-2017: hour average valid with at least 45 valid minutes (*verify*).
    #[serde(default = "default_hour_min_valid_minutes")]
    pub hour_min_valid_minutes: u32,
    /// HJ 75-2017: day average valid with at least 20 valid hours (*verify*).
    #[serde(default = "default_day_min_valid_hours")]
    pub day_min_valid_hours: u32,
    /// How late a sample may arrive after its own timestamp. A `tick(now)` treats time as
    /// known only up to now − arrival_grace: it closes periods and opens silence gaps no
    /// earlier. A later sample of the same series closes a period at once.
    #[serde(
        default = "default_arrival_grace",
        deserialize_with = "crate::config::duration"
    )]
    pub arrival_grace: Duration,
    /// A value repeated exactly for this long while the plant runs is flagged D (frozen
    /// analyser output). "off" disables the check.
    #[serde(
        default = "default_frozen_after",
        deserialize_with = "crate::config::duration_or_off"
    )]
    pub frozen_after: Option<Duration>,
    #[serde(default)]
    pub plant_stop: Option<PlantStop>,
    /// Negative concentrations, O2, humidity, velocity or flow below −tolerance (normalised
    /// unit) are flagged D; zero drift within it is accepted.
    #[serde(default = "default_negative_tolerance")]
    pub negative_tolerance: f64,
    /// A channel that stays silent this many expected intervals opens a gap.
    #[serde(default = "default_gap_missed_polls")]
    pub gap_missed_polls: u32,
    /// Exceedances compare the mean of the valid hours in this many clock hours (1 = plain
    /// hourly averages) with the limit.
    #[serde(default = "default_exceedance_window_hours")]
    pub exceedance_window_hours: u32,
}

fn default_o2_guard_margin() -> f64 {
    0.1
}
fn default_barometric_pa() -> f64 {
    101_325.0
}
fn default_hour_min_valid_minutes() -> u32 {
    45
}
fn default_day_min_valid_hours() -> u32 {
    20
}
fn default_arrival_grace() -> Duration {
    Duration::from_secs(30)
}
fn default_frozen_after() -> Option<Duration> {
    Some(Duration::from_secs(60 * 60))
}
fn default_negative_tolerance() -> f64 {
    2.0
}
fn coal_boiler() -> SourceType {
    SourceType::CoalBoiler
}

fn default_gap_missed_polls() -> u32 {
    3
}
fn default_exceedance_window_hours() -> u32 {
    1
}

/// A parameter that is well-formed but unusable; `key` names it inside the stack's table.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamError {
    pub key: &'static str,
    pub message: String,
    pub help: Option<String>,
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)?;
        if let Some(help) = &self.help {
            write!(f, " ({help})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ParamError {}

fn param_error(key: &'static str, message: String, help: Option<&str>) -> ParamError {
    ParamError {
        key,
        message,
        help: help.map(str::to_string),
    }
}

impl StackParams {
    /// Defaults for a stack of the given type; what a config with only `id` and `source_type`
    /// would deserialise to.
    pub fn new(id: impl Into<String>, source_type: SourceType) -> StackParams {
        StackParams {
            id: id.into(),
            name: None,
            mn: None,
            source_type,
            reference_o2: None,
            o2_correction_cap: None,
            o2_guard_margin: default_o2_guard_margin(),
            nox: NoxMethod::default(),
            flow_from: FlowSource::default(),
            duct_area_m2: None,
            barometric_pa: default_barometric_pa(),
            flue_pressure: FluePressure::default(),
            state_max_age: None,
            moisture_set_percent: None,
            limits: Limits::default(),
            hour_min_valid_minutes: default_hour_min_valid_minutes(),
            day_min_valid_hours: default_day_min_valid_hours(),
            arrival_grace: default_arrival_grace(),
            frozen_after: default_frozen_after(),
            plant_stop: None,
            negative_tolerance: default_negative_tolerance(),
            gap_missed_polls: default_gap_missed_polls(),
            exceedance_window_hours: default_exceedance_window_hours(),
        }
    }

    /// The staleness bound, in ms, of inputs from a device that delivers every `interval`
    /// (see `state_max_age`): the configured bound, else 1.5 × `interval` — the current or
    /// the previous poll round of that device, whatever the order in which devices polled at
    /// the same boundary are read.
    pub fn staleness_bound_ms(&self, interval: Duration) -> i64 {
        staleness_bound_ms(self.state_max_age, interval)
    }

    /// The reference O2 (%) corrected values are expressed at.
    pub fn effective_reference_o2(&self) -> f64 {
        self.reference_o2
            .unwrap_or_else(|| self.source_type.reference_o2())
    }

    /// Checks the values serde cannot: ranges and combinations.
    pub fn validate(&self) -> Result<(), ParamError> {
        if self.id.trim().is_empty() {
            return Err(param_error("id", "stack id is empty".into(), None));
        }
        let ref_o2 = self.effective_reference_o2();
        if !(0.0..21.0).contains(&ref_o2) {
            return Err(param_error(
                "reference_o2",
                format!("reference O2 {ref_o2} % is outside 0..21"),
                Some("coal boilers use 6, oil/gas boilers 3, gas turbines 15"),
            ));
        }
        if !(self.o2_guard_margin > 0.0 && self.o2_guard_margin < 21.0) {
            return Err(param_error(
                "o2_guard_margin",
                format!("{} must be above 0 and below 21", self.o2_guard_margin),
                Some("the default 0.1 rejects O2 at or above 20.9 %"),
            ));
        }
        if let Some(cap) = self.o2_correction_cap {
            if !(cap > ref_o2 && cap < 21.0 - self.o2_guard_margin) {
                return Err(param_error(
                    "o2_correction_cap",
                    format!(
                        "cap {cap} % must lie between the reference O2 ({ref_o2} %) and {} %",
                        21.0 - self.o2_guard_margin
                    ),
                    Some("e.g. 19"),
                ));
            }
        }
        if let Some(area) = self.duct_area_m2 {
            if !(area.is_finite() && area > 0.0) {
                return Err(param_error(
                    "duct_area_m2",
                    format!("duct area {area} m2 must be a positive number"),
                    None,
                ));
            }
        }
        if !(self.barometric_pa.is_finite() && self.barometric_pa > 0.0) {
            return Err(param_error(
                "barometric_pa",
                format!("{} Pa must be a positive number", self.barometric_pa),
                Some("101325 at sea level"),
            ));
        }
        if self.state_max_age.is_some_and(|d| d.is_zero()) {
            return Err(param_error(
                "state_max_age",
                "must be longer than zero".into(),
                Some("e.g. \"15s\", or leave it out for one poll interval of each input"),
            ));
        }
        if let Some(h2o) = self.moisture_set_percent {
            if !(0.0..100.0).contains(&h2o) {
                return Err(param_error(
                    "moisture_set_percent",
                    format!("moisture {h2o} % is outside 0..100"),
                    Some("the flue gas moisture in % by volume, e.g. 8.5"),
                ));
            }
        }
        if let Some((q, limit)) = self
            .limits
            .limited()
            .find(|(_, l)| !(l.is_finite() && *l > 0.0))
        {
            return Err(param_error(
                "limits",
                format!("limit {limit} for {q} must be a positive number of mg/m3"),
                None,
            ));
        }
        if !(1..=60).contains(&self.hour_min_valid_minutes) {
            return Err(param_error(
                "hour_min_valid_minutes",
                format!("{} is outside 1..=60", self.hour_min_valid_minutes),
                Some("HJ 75-2017 uses 45"),
            ));
        }
        if !(1..=24).contains(&self.day_min_valid_hours) {
            return Err(param_error(
                "day_min_valid_hours",
                format!("{} is outside 1..=24", self.day_min_valid_hours),
                Some("HJ 75-2017 uses 20"),
            ));
        }
        if self.frozen_after.is_some_and(|d| d.is_zero()) {
            return Err(param_error(
                "frozen_after",
                "must be longer than zero".into(),
                Some("e.g. \"60m\", or \"off\""),
            ));
        }
        if let Some(stop) = self.plant_stop {
            if !stop.below.is_finite() {
                return Err(param_error(
                    "plant_stop",
                    format!("threshold {} is not a number", stop.below),
                    None,
                ));
            }
            if stop.quantity.is_pollutant() {
                return Err(param_error(
                    "plant_stop",
                    format!("{} cannot tell whether the plant runs", stop.quantity),
                    Some("use velocity or flow"),
                ));
            }
        }
        if !(self.negative_tolerance.is_finite() && self.negative_tolerance >= 0.0) {
            return Err(param_error(
                "negative_tolerance",
                format!("{} must be zero or positive", self.negative_tolerance),
                None,
            ));
        }
        if self.gap_missed_polls == 0 {
            return Err(param_error(
                "gap_missed_polls",
                "must be at least 1".into(),
                None,
            ));
        }
        if !(1..=720).contains(&self.exceedance_window_hours) {
            return Err(param_error(
                "exceedance_window_hours",
                format!("{} is outside 1..=720", self.exceedance_window_hours),
                Some("1 compares each hourly average with the limit"),
            ));
        }
        Ok(())
    }
}

/// See [`StackParams::staleness_bound_ms`].
pub(crate) fn staleness_bound_ms(state_max_age: Option<Duration>, interval: Duration) -> i64 {
    match state_max_age {
        Some(bound) => millis(bound),
        None => millis(interval).saturating_add(millis(interval) / 2),
    }
}

/// Milliseconds of a duration, saturating, for arithmetic on [`crate::model::Timestamp`]s.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<StackParams, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn minimal_config_gets_the_hj75_defaults() {
        let p = parse("id = \"s1\"\nsource_type = \"coal_boiler\"\nduct_area_m2 = 12.5\n")
            .map_err(|e| e.to_string());
        let p = match p {
            Ok(p) => p,
            Err(e) => panic!("minimal config rejected: {e}"),
        };
        assert_eq!(p.effective_reference_o2(), 6.0);
        assert_eq!(p.hour_min_valid_minutes, 45);
        assert_eq!(p.day_min_valid_hours, 20);
        assert_eq!(p.barometric_pa, 101_325.0);
        assert_eq!(p.frozen_after, Some(Duration::from_secs(3600)));
        assert_eq!(p.nox, NoxMethod::NoPlusNo2);
        assert_eq!(p, {
            let mut d = StackParams::new("s1", SourceType::CoalBoiler);
            d.duct_area_m2 = Some(12.5);
            d
        });
        assert_eq!(p.validate(), Ok(()));
    }

    #[test]
    fn reference_o2_follows_source_type() {
        let expected = [
            (SourceType::CoalBoiler, 6.0),
            (SourceType::OilGasBoiler, 3.0),
            (SourceType::GasTurbine, 15.0),
            (SourceType::IndustrialCoalBoiler, 9.0),
            (SourceType::IndustrialOilGasBoiler, 3.5),
        ];
        for (t, o2) in expected {
            assert_eq!(t.reference_o2(), o2, "{t:?}");
        }
        let p = parse("id = \"gt\"\nsource_type = \"gas_turbine\"\nreference_o2 = 16\nflow_from = \"standard_dry_flow\"\n");
        assert_eq!(p.map(|p| p.effective_reference_o2()).ok(), Some(16.0));
    }

    #[test]
    fn limits_preset_with_override() {
        let p = parse(
            "id = \"s\"\nsource_type = \"coal_boiler\"\nflow_from = \"actual_flow\"\n\
             limits = { preset = \"gb13223_coal_new\", so2 = 200 }\n",
        );
        let limits = p.map(|p| p.limits).map_err(|e| e.to_string());
        assert_eq!(
            limits,
            Ok(Limits {
                dust: Some(30.0),
                so2: Some(200.0),
                nox: Some(100.0),
                co: None
            })
        );
        assert_eq!(Limits::ULTRA_LOW.of(Quantity::SO2), Some(35.0));
        assert_eq!(Limits::ULTRA_LOW.of(Quantity::NOx), Some(50.0));
        assert_eq!(Limits::ULTRA_LOW.of(Quantity::Dust), Some(10.0));
        assert_eq!(Limits::GAS_TURBINE.of(Quantity::Dust), Some(5.0));
        assert_eq!(Limits::GB13223_COAL_SPECIAL.of(Quantity::SO2), Some(50.0));
        assert_eq!(Limits::ULTRA_LOW.of(Quantity::NO), None);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = parse("id = \"s\"\nsource_type = \"coal_boiler\"\nrefernce_o2 = 6\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("refernce_o2"), "{err}");
        let err = parse("id = \"s\"\nsource_type = \"coal_boiler\"\nlimits = { sox = 3 }\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("sox"), "{err}");
    }

    #[test]
    fn durations_are_humantime_strings() {
        let p = parse(
            "id = \"s\"\nsource_type = \"coal_boiler\"\nflow_from = \"actual_flow\"\n\
             frozen_after = \"30m\"\nstate_max_age = \"90s\"\n",
        )
        .map_err(|e| e.to_string());
        let p = match p {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(p.frozen_after, Some(Duration::from_secs(1800)));
        assert_eq!(p.state_max_age, Some(Duration::from_secs(90)));
        let off = parse(
            "id = \"s\"\nsource_type = \"coal_boiler\"\nflow_from = \"actual_flow\"\nfrozen_after = \"off\"\n",
        );
        assert_eq!(off.map(|p| p.frozen_after).ok(), Some(None));
        let err = parse("id = \"s\"\nsource_type = \"coal_boiler\"\nfrozen_after = \"soon\"\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("invalid duration \"soon\""), "{err}");
    }

    #[test]
    fn validation_names_the_key() {
        let base = || {
            let mut p = StackParams::new("s", SourceType::CoalBoiler);
            p.duct_area_m2 = Some(10.0);
            p
        };
        let key = |p: StackParams| p.validate().err().map(|e| e.key);

        assert_eq!(key(StackParams::new("s", SourceType::CoalBoiler)), None);
        let mut p = base();
        p.duct_area_m2 = Some(0.0);
        assert_eq!(key(p), Some("duct_area_m2"));
        let mut p = base();
        p.hour_min_valid_minutes = 61;
        assert_eq!(key(p), Some("hour_min_valid_minutes"));
        let mut p = base();
        p.day_min_valid_hours = 0;
        assert_eq!(key(p), Some("day_min_valid_hours"));
        let mut p = base();
        p.o2_correction_cap = Some(5.0);
        assert_eq!(key(p), Some("o2_correction_cap"));
        let mut p = base();
        p.limits.so2 = Some(-1.0);
        assert_eq!(key(p), Some("limits"));
        let mut p = base();
        p.plant_stop = Some(PlantStop {
            quantity: Quantity::SO2,
            below: 1.0,
        });
        assert_eq!(key(p), Some("plant_stop"));
        let mut p = base();
        p.reference_o2 = Some(21.0);
        assert_eq!(key(p), Some("reference_o2"));
        assert_eq!(key(base()), None);
    }
}
