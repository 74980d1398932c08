//! Hours of past data made by the replay tooling, not written by hand: a synthetic capture of
//! one simulated analyser on an RS-485 bus goes through the live decoding, normalisation,
//! quality checks and aggregation (`Replayer`), on the capture's own clock.

use std::path::Path;
use std::time::Duration;

use cemsd::config;
use cemsd::field::replay::synthetic::{SteppedClock, SyntheticBus};
use cemsd::field::replay::Replayer;
use cemsd::field::sim::{Scenario, Simulator};
use cemsd::store::Record;

/// The records polling the analyser of `config_text` (its one RTU device, unit id 1, whose
/// profile `profile` a simulator with `seed` and `scenario` (scenario file text) plays)
/// produces from `start_ms` for `duration`.
pub fn polled_on_a_bus(
    config_text: &str,
    profile: &str,
    scenario: &str,
    seed: u64,
    start_ms: i64,
    duration: Duration,
) -> Vec<Record> {
    let loaded =
        config::parse(Path::new("replay.toml"), config_text).unwrap_or_else(|e| panic!("{e}"));
    let clock = SteppedClock::new();
    let profile = loaded
        .profiles
        .get(profile)
        .unwrap_or_else(|| panic!("shipped profile {profile}"))
        .clone();
    let scenario = Scenario::parse(Path::new("scenario.toml"), scenario, &profile)
        .unwrap_or_else(|e| panic!("{e}"));
    let simulator = Simulator::new(profile, scenario, seed, clock.clone()).with_unit_id(1);
    let bus = SyntheticBus::new(
        &loaded.config,
        &loaded.profiles,
        None,
        vec![(1, &simulator)],
        clock,
    );
    let mut replayer = Replayer::new(&loaded.config, &loaded.profiles, None)
        .unwrap_or_else(|e| panic!("replayer: {e}"));
    let mut records = Vec::new();
    bus.run(start_ms * 1000, duration, |frame| {
        replayer.push(&frame, &mut records)
    });
    replayer.finish(&mut records);
    records
}
