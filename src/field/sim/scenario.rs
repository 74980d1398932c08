//! Scenarios: what a simulated analyser does over time. Fixed values make exact round trips
//! possible; timed events (relative to simulator start) rehearse calibrations, faults,
//! exceedances and a silent or failing device before a real one does it on site.
//!
//! ```toml
//! [values]              # constant values in the channel's unit, replacing the signal
//! so2 = 12.5
//! [span]                # the 4-20 mA span the device is set to, for raw_range channels
//! so2 = [0, 750]
//! [[event]]
//! kind = "calibration"  # calibration maintenance fault exceedance frozen silent exception
//! start = "10m"
//! duration = "5m"
//! channel = "so2"       # calibration and frozen: optional (default all gases / all channels)
//! value = 600.0         # calibration: span gas value (default 80 % of range)
//! ```
//! `exceedance` takes `channel` and `factor`; `exception` takes `code` (the Modbus exception
//! code to answer with, e.g. 4 for server device failure).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::diagnostic::{Seg, SourceError, SourceText};
use crate::config::profile::Profile;

/// A validated scenario for one profile; channels are indices into `Profile::channels`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scenario {
    values: BTreeMap<usize, f64>,
    spans: BTreeMap<usize, [f64; 2]>,
    events: Vec<Event>,
}

/// Something that happens from `start` (after simulator start) for `duration`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub start: Duration,
    pub duration: Duration,
    pub action: Action,
}

impl Event {
    pub fn covers(&self, elapsed: Duration) -> bool {
        self.start <= elapsed && elapsed - self.start < self.duration
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Status C on; the channel (or every gas channel) reads the span gas `value`.
    Calibration {
        channel: Option<usize>,
        value: Option<f64>,
    },
    /// Status M on.
    Maintenance,
    /// Status D on.
    Fault,
    /// The channel reads `factor` times its normal value.
    Exceedance { channel: usize, factor: f64 },
    /// The channel (or every channel) holds the value it had when the event began.
    Frozen { channel: Option<usize> },
    /// No reply at all, so the client times out.
    Silent,
    /// Every request is answered with this Modbus exception code.
    Exception { code: u8 },
}

impl Scenario {
    /// Parses a scenario for `profile`, reporting errors at their file, line and column.
    pub fn parse(file: &Path, text: &str, profile: &Profile) -> Result<Scenario, SourceError> {
        let src = SourceText::new(file, text);
        let raw: RawScenario = toml::from_str(text).map_err(|e| src.from_toml(&e))?;
        raw.validate(&src, profile)
    }

    /// Reads and parses a scenario file.
    pub fn load(path: &Path, profile: &Profile) -> Result<Scenario, ScenarioError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ScenarioError::Io(path.to_path_buf(), e))?;
        Scenario::parse(path, &text, profile).map_err(ScenarioError::Invalid)
    }

    /// The fixed value of a channel, if the scenario sets one.
    pub fn value(&self, channel: usize) -> Option<f64> {
        self.values.get(&channel).copied()
    }

    /// The span the simulated device maps onto its raw counts, if the scenario sets one.
    pub fn span(&self, channel: usize) -> Option<[f64; 2]> {
        self.spans.get(&channel).copied()
    }

    pub fn events(&self) -> &[Event] {
        &self.events
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{0}")]
    Invalid(SourceError),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    #[serde(default)]
    values: BTreeMap<String, f64>,
    #[serde(default)]
    span: BTreeMap<String, [f64; 2]>,
    #[serde(default, rename = "event")]
    events: Vec<RawEvent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    kind: Kind,
    #[serde(deserialize_with = "crate::config::duration")]
    start: Duration,
    #[serde(deserialize_with = "crate::config::duration")]
    duration: Duration,
    channel: Option<String>,
    value: Option<f64>,
    factor: Option<f64>,
    code: Option<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Calibration,
    Maintenance,
    Fault,
    Exceedance,
    Frozen,
    Silent,
    Exception,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Calibration => "calibration",
            Kind::Maintenance => "maintenance",
            Kind::Fault => "fault",
            Kind::Exceedance => "exceedance",
            Kind::Frozen => "frozen",
            Kind::Silent => "silent",
            Kind::Exception => "exception",
        }
    }

    /// Keys besides kind, start and duration that this kind takes.
    fn keys(self) -> &'static [&'static str] {
        match self {
            Kind::Calibration => &["channel", "value"],
            Kind::Exceedance => &["channel", "factor"],
            Kind::Frozen => &["channel"],
            Kind::Exception => &["code"],
            Kind::Maintenance | Kind::Fault | Kind::Silent => &[],
        }
    }
}

impl RawScenario {
    fn validate(self, src: &SourceText, profile: &Profile) -> Result<Scenario, SourceError> {
        let channel_index = |path: &[Seg], name: &str| {
            profile
                .channels
                .iter()
                .position(|c| c.name == name)
                .ok_or_else(|| {
                    let names: Vec<&str> =
                        profile.channels.iter().map(|c| c.name.as_str()).collect();
                    src.error_at_path(
                        path,
                        format!("profile {:?} has no channel {name:?}", profile.name),
                        Some(format!("channels: {}", names.join(", "))),
                    )
                })
        };

        let mut values = BTreeMap::new();
        for (name, value) in &self.values {
            let path = [Seg::Key("values"), Seg::Key(name)];
            let index = channel_index(&path, name)?;
            if !value.is_finite() {
                return Err(src.error_at_path(
                    &path,
                    "a fixed value must be a finite number",
                    None,
                ));
            }
            values.insert(index, *value);
        }

        let mut spans = BTreeMap::new();
        for (name, span) in &self.span {
            let path = [Seg::Key("span"), Seg::Key(name)];
            let index = channel_index(&path, name)?;
            if profile.channels[index].raw_range.is_none() {
                return Err(src.error_at_path(
                    &path,
                    format!("channel {name:?} has no raw_range, so a span does not apply"),
                    Some("give values of such channels under [values]".into()),
                ));
            }
            let [low, high] = *span;
            if !(low.is_finite() && high.is_finite() && high > low) {
                return Err(src.error_at_path(
                    &path,
                    format!("span [{low}, {high}] must be two finite numbers, low then high"),
                    None,
                ));
            }
            spans.insert(index, *span);
        }

        let mut events = Vec::with_capacity(self.events.len());
        for (i, event) in self.events.iter().enumerate() {
            let at = |key| [Seg::Key("event"), Seg::Index(i), Seg::Key(key)];
            let kind = event.kind;
            let given = [
                ("channel", event.channel.is_some()),
                ("value", event.value.is_some()),
                ("factor", event.factor.is_some()),
                ("code", event.code.is_some()),
            ];
            for (key, present) in given {
                if present && !kind.keys().contains(&key) {
                    let takes: Vec<&str> = ["kind", "start", "duration"]
                        .into_iter()
                        .chain(kind.keys().iter().copied())
                        .collect();
                    return Err(src.error_at_path(
                        &at(key),
                        format!("`{key}` does not apply to {} events", kind.name()),
                        Some(format!("{} events take {}", kind.name(), takes.join(", "))),
                    ));
                }
            }
            if event.duration.is_zero() {
                return Err(src.error_at_path(
                    &at("duration"),
                    "an event needs a duration above zero",
                    None,
                ));
            }
            let channel = match &event.channel {
                Some(name) => Some(channel_index(&at("channel"), name)?),
                None => None,
            };
            let missing = |key: &str| {
                src.error_at_path(
                    &[Seg::Key("event"), Seg::Index(i)],
                    format!("{} events need `{key}`", kind.name()),
                    Some(
                        match key {
                            "channel" => "name the channel it applies to, e.g. channel = \"so2\"",
                            "factor" => "e.g. factor = 4.0 for four times the normal value",
                            _ => "e.g. code = 4 (server device failure)",
                        }
                        .into(),
                    ),
                )
            };
            let action = match kind {
                Kind::Calibration => {
                    if event.value.is_some_and(|v| !v.is_finite()) {
                        return Err(src.error_at_path(&at("value"), "value must be finite", None));
                    }
                    Action::Calibration {
                        channel,
                        value: event.value,
                    }
                }
                Kind::Maintenance => Action::Maintenance,
                Kind::Fault => Action::Fault,
                Kind::Exceedance => {
                    let channel = channel.ok_or_else(|| missing("channel"))?;
                    let factor = event.factor.ok_or_else(|| missing("factor"))?;
                    if !(factor.is_finite() && factor > 0.0) {
                        return Err(src.error_at_path(
                            &at("factor"),
                            format!("factor {factor} must be a positive number"),
                            None,
                        ));
                    }
                    Action::Exceedance { channel, factor }
                }
                Kind::Frozen => Action::Frozen { channel },
                Kind::Silent => Action::Silent,
                Kind::Exception => {
                    let code = event.code.ok_or_else(|| missing("code"))?;
                    if code == 0 {
                        return Err(src.error_at_path(
                            &at("code"),
                            "exception code 0 does not exist",
                            Some("use 1 to 255, e.g. 4 (server device failure) or 6 (busy)".into()),
                        ));
                    }
                    Action::Exception { code }
                }
            };
            events.push(Event {
                start: event.start,
                duration: event.duration,
                action,
            });
        }
        Ok(Scenario {
            values,
            spans,
            events,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
type = "i16"
raw_range = [5530, 27648]

[[channel]]
name = "o2"
quantity = "O2"
unit = "%vol"
table = "holding"
address = 1
type = "u16"
scale = 0.01
"#;

    fn profile() -> Profile {
        Profile::parse("scs", Path::new("scs.toml"), PROFILE).unwrap_or_else(|e| panic!("{e}"))
    }

    fn parse(text: &str) -> Result<Scenario, String> {
        Scenario::parse(Path::new("s.toml"), text, &profile()).map_err(|e| e.to_string())
    }

    #[test]
    fn full_scenario_parses() {
        let s = parse(
            r#"
[values]
o2 = 6.5

[span]
so2 = [0, 750]

[[event]]
kind = "calibration"
start = "10m"
duration = "5m"
channel = "so2"
value = 600.0

[[event]]
kind = "exceedance"
start = "1h"
duration = "1h"
channel = "so2"
factor = 4.0

[[event]]
kind = "exception"
start = "2h 30m"
duration = "90s"
code = 6
"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.value(1), Some(6.5));
        assert_eq!(s.value(0), None);
        assert_eq!(s.span(0), Some([0.0, 750.0]));
        assert_eq!(
            s.events(),
            [
                Event {
                    start: Duration::from_secs(600),
                    duration: Duration::from_secs(300),
                    action: Action::Calibration {
                        channel: Some(0),
                        value: Some(600.0)
                    }
                },
                Event {
                    start: Duration::from_secs(3600),
                    duration: Duration::from_secs(3600),
                    action: Action::Exceedance {
                        channel: 0,
                        factor: 4.0
                    }
                },
                Event {
                    start: Duration::from_secs(9000),
                    duration: Duration::from_secs(90),
                    action: Action::Exception { code: 6 }
                },
            ]
        );
    }

    #[test]
    fn event_covers_its_window_only() {
        let e = Event {
            start: Duration::from_secs(600),
            duration: Duration::from_secs(300),
            action: Action::Maintenance,
        };
        assert!(!e.covers(Duration::from_millis(599_999)));
        assert!(e.covers(Duration::from_secs(600)));
        assert!(e.covers(Duration::from_millis(899_999)));
        assert!(!e.covers(Duration::from_secs(900)));
    }

    #[test]
    fn unknown_key_is_reported_with_line_and_column() {
        let err = parse(
            "[[event]]\nkind = \"fault\"\nstart = \"0s\"\nduration = \"1m\"\nchanel = \"so2\"\n",
        )
        .err()
        .unwrap_or_default();
        assert!(err.starts_with("s.toml:5:1: "), "{err}");
        assert!(err.contains("chanel"), "{err}");
    }

    #[test]
    fn unknown_channel_names_the_channels() {
        let err = parse("[values]\nnox = 1.0\n").err().unwrap_or_default();
        assert!(err.starts_with("s.toml:2:7: values.nox: "), "{err}");
        assert!(err.contains("channels: so2, o2"), "{err}");
    }

    #[test]
    fn key_of_another_kind_is_rejected_where_written() {
        let err =
            parse("[[event]]\nkind = \"fault\"\nstart = \"0s\"\nduration = \"1m\"\nfactor = 2.0\n")
                .err()
                .unwrap_or_default();
        assert!(err.starts_with("s.toml:5:10: event[0].factor: "), "{err}");
        assert!(
            err.ends_with("help: fault events take kind, start, duration"),
            "{err}"
        );
    }

    #[test]
    fn exceedance_needs_a_factor() {
        let err = parse(
            "[[event]]\nkind = \"exceedance\"\nstart = \"0s\"\nduration = \"1m\"\nchannel = \"so2\"\n",
        )
        .err()
        .unwrap_or_default();
        assert!(
            err.starts_with("s.toml:1:1: event[0]: exceedance events need `factor`"),
            "{err}"
        );
    }

    #[test]
    fn bad_duration_is_positioned() {
        let err =
            parse("[[event]]\nkind = \"silent\"\nstart = \"ten minutes\"\nduration = \"1m\"\n")
                .err()
                .unwrap_or_default();
        assert!(err.starts_with("s.toml:3:9: "), "{err}");
        assert!(err.contains("invalid duration \"ten minutes\""), "{err}");
    }

    #[test]
    fn span_needs_a_raw_range_channel() {
        let err = parse("[span]\no2 = [0, 25]\n").err().unwrap_or_default();
        assert!(
            err.contains("span.o2: channel \"o2\" has no raw_range"),
            "{err}"
        );
    }
}
