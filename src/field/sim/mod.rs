//! Analyser simulator: serves one profile's registers over Modbus TCP with plausible values,
//! driven by a scenario and an injected clock. Values are encoded with the collector's own
//! codec, so a collector reading a simulator checks the codec in both directions.

mod scenario;
mod server;
mod values;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use scenario::{Action, Event, Scenario, ScenarioError};
pub use server::{serve, serve_addr};
pub use values::signal;

use crate::config::profile::{Channel, Profile};
use crate::model::{Flag, FlagSet, Quantity};

/// Time since the simulator started. Tests and replays pass a clock they drive (any
/// `Fn() -> Duration`); live use passes [`WallClock`].
pub trait Clock: Send + Sync {
    fn elapsed(&self) -> Duration;
}

impl<F: Fn() -> Duration + Send + Sync> Clock for F {
    fn elapsed(&self) -> Duration {
        self()
    }
}

/// Real time since [`WallClock::start`].
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    started: Instant,
}

impl WallClock {
    pub fn start() -> WallClock {
        WallClock {
            started: Instant::now(),
        }
    }
}

impl Clock for WallClock {
    fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// HJ 75-2017 span checks use a gas at 80–100 % of full scale; 80 % is the usual choice.
const SPAN_GAS_FRACTION: f64 = 0.8;

/// How the simulated device answers at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Normal,
    Silent,
    Exception(u8),
}

/// One simulated analyser: a profile, what happens to it, and the clock that says when.
pub struct Simulator {
    profile: Profile,
    scenario: Scenario,
    seed: u64,
    clock: Arc<dyn Clock>,
    unit_id: Option<u8>,
}

impl Simulator {
    /// `scenario` must have been parsed for this `profile`. The simulator answers every unit
    /// id until [`Self::with_unit_id`] sets one.
    pub fn new(
        profile: Profile,
        scenario: Scenario,
        seed: u64,
        clock: impl Clock + 'static,
    ) -> Simulator {
        Simulator {
            profile,
            scenario,
            seed,
            clock: Arc::new(clock),
            unit_id: None,
        }
    }

    /// Answer only requests to `unit_id`; others get no reply, as on a shared serial bus.
    pub fn with_unit_id(mut self, unit_id: u8) -> Simulator {
        self.unit_id = Some(unit_id);
        self
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    pub fn unit_id(&self) -> Option<u8> {
        self.unit_id
    }

    /// Time on the simulator's clock.
    pub fn elapsed(&self) -> Duration {
        self.clock.elapsed()
    }

    /// The engineering value (in the channel's unit) channel `index` reads at `elapsed`.
    pub fn value_at(&self, index: usize, elapsed: Duration) -> Option<f64> {
        let channel = self.profile.channels.get(index)?;
        let held_since = self
            .active(elapsed)
            .filter_map(|e| match e.action {
                Action::Frozen { channel } if channel.is_none_or(|c| c == index) => Some(e.start),
                _ => None,
            })
            .min();
        Some(self.live_value(index, channel, held_since.unwrap_or(elapsed)))
    }

    /// The value before any freeze: fixed or generated, times any exceedance factor, or the
    /// span gas value during a calibration.
    fn live_value(&self, index: usize, channel: &Channel, elapsed: Duration) -> f64 {
        let mut value = self
            .scenario
            .value(index)
            .unwrap_or_else(|| signal(channel.quantity, channel.unit, self.seed, elapsed));
        let mut span_gas = None;
        for event in self.active(elapsed) {
            match event.action {
                Action::Exceedance { channel, factor } if channel == index => value *= factor,
                Action::Calibration {
                    channel: c,
                    value: gas,
                } if c.map_or(is_gas(channel.quantity), |c| c == index) => {
                    span_gas = Some(gas);
                }
                _ => {}
            }
        }
        match span_gas {
            Some(given) => given
                .or_else(|| {
                    self.full_scale(index, channel)
                        .map(|f| f * SPAN_GAS_FRACTION)
                })
                .unwrap_or(value),
            None => value,
        }
    }

    /// Top of the channel's measuring range, else of its analogue span.
    fn full_scale(&self, index: usize, channel: &Channel) -> Option<f64> {
        channel.range.or(self.span(index)).map(|[_, high]| high)
    }

    /// The span the device maps onto raw counts: the scenario's, else the profile's.
    pub fn span(&self, index: usize) -> Option<[f64; 2]> {
        self.scenario
            .span(index)
            .or_else(|| self.profile.channels.get(index).and_then(|c| c.span))
    }

    /// Status flags the instrument raises at `elapsed`: C, M and D from scenario events.
    pub fn status_at(&self, elapsed: Duration) -> FlagSet {
        self.active(elapsed)
            .filter_map(|e| match e.action {
                Action::Calibration { .. } => Some(Flag::C),
                Action::Maintenance => Some(Flag::M),
                Action::Fault => Some(Flag::D),
                _ => None,
            })
            .fold(FlagSet::EMPTY, FlagSet::with)
    }

    /// Whether the device answers at `elapsed`; silence wins over an exception.
    pub fn behaviour_at(&self, elapsed: Duration) -> Behaviour {
        let mut behaviour = Behaviour::Normal;
        for event in self.active(elapsed) {
            match event.action {
                Action::Silent => return Behaviour::Silent,
                Action::Exception { code } if behaviour == Behaviour::Normal => {
                    behaviour = Behaviour::Exception(code)
                }
                _ => {}
            }
        }
        behaviour
    }

    fn active(&self, elapsed: Duration) -> impl Iterator<Item = &Event> {
        self.scenario
            .events()
            .iter()
            .filter(move |e| e.covers(elapsed))
    }
}

/// Quantities an analyser calibrates with a span gas.
fn is_gas(quantity: Quantity) -> bool {
    quantity.is_pollutant() && quantity != Quantity::Dust
        || matches!(quantity, Quantity::O2 | Quantity::CO2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Unit;
    use std::path::Path;

    const PROFILE: &str = r#"
vendor = "T"
model = "T"
source = "unit test"
verified = false

[[channel]]
name = "so2"
quantity = "SO2"
unit = "mg/m3"
table = "holding"
address = 0
type = "f32"
range = [0, 500]

[[channel]]
name = "o2"
quantity = "O2"
unit = "%vol"
table = "holding"
address = 2
type = "f32"

[[channel]]
name = "dust"
quantity = "dust"
unit = "mg/m3"
table = "holding"
address = 4
type = "f32"
range = [0, 100]
"#;

    const SCENARIO: &str = r#"
[values]
so2 = 20.0

[[event]]
kind = "calibration"
start = "10m"
duration = "5m"

[[event]]
kind = "exceedance"
start = "1h"
duration = "1h"
channel = "so2"
factor = 4.0

[[event]]
kind = "frozen"
start = "3h"
duration = "1h"
channel = "o2"

[[event]]
kind = "maintenance"
start = "12m"
duration = "10m"

[[event]]
kind = "exception"
start = "5h"
duration = "10m"
code = 6

[[event]]
kind = "silent"
start = "5h 5m"
duration = "1m"
"#;

    fn simulator() -> Simulator {
        let profile =
            Profile::parse("t", Path::new("t.toml"), PROFILE).unwrap_or_else(|e| panic!("{e}"));
        let scenario = Scenario::parse(Path::new("s.toml"), SCENARIO, &profile)
            .unwrap_or_else(|e| panic!("{e}"));
        Simulator::new(profile, scenario, 11, || Duration::ZERO)
    }

    fn minutes(m: u64) -> Duration {
        Duration::from_secs(m * 60)
    }

    #[test]
    fn fixed_value_is_multiplied_during_an_exceedance() {
        let sim = simulator();
        assert_eq!(sim.value_at(0, minutes(59)), Some(20.0));
        assert_eq!(sim.value_at(0, minutes(60)), Some(80.0));
        assert_eq!(sim.value_at(0, minutes(119)), Some(80.0));
        assert_eq!(sim.value_at(0, minutes(120)), Some(20.0));
        assert_eq!(sim.value_at(3, minutes(0)), None);
    }

    #[test]
    fn calibration_reads_span_gas_on_gas_channels_only() {
        let sim = simulator();
        // so2: 80 % of its 0–500 range = 400
        assert_eq!(sim.value_at(0, minutes(10)), Some(400.0));
        // o2 has neither range nor span: it keeps its reading
        let o2 = signal(Quantity::O2, Unit::PercentVol, 11, minutes(10));
        assert_eq!(sim.value_at(1, minutes(10)), Some(o2));
        // dust is not calibrated with gas
        let dust = signal(Quantity::Dust, Unit::MgPerM3, 11, minutes(10));
        assert_eq!(sim.value_at(2, minutes(10)), Some(dust));
    }

    #[test]
    fn frozen_channel_holds_its_value_from_the_event_start() {
        let sim = simulator();
        let at_start = sim.value_at(1, minutes(180));
        assert_eq!(sim.value_at(1, minutes(200)), at_start);
        assert_eq!(sim.value_at(1, minutes(239)), at_start);
        assert_ne!(sim.value_at(1, minutes(240)), at_start);
        // the other channels keep moving
        assert_ne!(sim.value_at(2, minutes(200)), sim.value_at(2, minutes(180)));
    }

    #[test]
    fn status_follows_the_event_windows() {
        let sim = simulator();
        assert_eq!(sim.status_at(minutes(9)), FlagSet::EMPTY);
        assert_eq!(sim.status_at(minutes(10)), FlagSet::of(Flag::C));
        assert_eq!(
            sim.status_at(minutes(12)),
            FlagSet::of(Flag::C).with(Flag::M)
        );
        assert_eq!(sim.status_at(minutes(15)), FlagSet::of(Flag::M));
        assert_eq!(sim.status_at(minutes(22)), FlagSet::EMPTY);
    }

    #[test]
    fn silence_wins_over_an_exception() {
        let sim = simulator();
        assert_eq!(sim.behaviour_at(minutes(299)), Behaviour::Normal);
        assert_eq!(sim.behaviour_at(minutes(300)), Behaviour::Exception(6));
        assert_eq!(sim.behaviour_at(minutes(305)), Behaviour::Silent);
        assert_eq!(sim.behaviour_at(minutes(306)), Behaviour::Exception(6));
        assert_eq!(sim.behaviour_at(minutes(310)), Behaviour::Normal);
    }
}
