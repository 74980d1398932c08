//! The test analyser of the Modbus tests and benches: the profile in
//! tests/fixtures/profiles/two-floats.toml (SO2 and O2 as f32, ABCD, in holding registers
//! 0-3), the values each unit id reads, and simulators that answer as those units.

use std::future::{ready, Ready};
use std::path::Path;

use cemsd::config::profile::Profile;
use cemsd::field::sim::{Scenario, Simulator};
use tokio_modbus::{ExceptionCode, Response, SlaveRequest};

/// The test analyser's profile, named "two-floats" in site configs.
pub const PROFILE: &str = include_str!("../fixtures/profiles/two-floats.toml");

/// The head of a site of test analysers: profiles from `profiles_dir = "profiles"` (see
/// [`site_dir`]), UTC, one stack "s".
pub const SITE_HEAD: &str = r#"profiles_dir = "profiles"

[site]
id = "t"
utc_offset = "+00:00"

[[stack]]
id = "s"
"#;

/// A site with analysers `a1`, `a2`, `a3` at unit ids 1, 2, 3 on one 9600 baud RS-485 bus
/// at `port`, polled every 500 ms; `bus_extra` goes into the `[[bus]]` table.
pub fn rs485_site(port: &str, bus_extra: &str) -> String {
    let mut text = format!(
        r#"{SITE_HEAD}
[[bus]]
id = "rs485"
port = "{port}"
baud = 9600
response_timeout = "150ms"
{bus_extra}
"#
    );
    for unit in 1..=3 {
        text.push_str(&format!(
            "\n[[device]]\nid = \"a{unit}\"\nprofile = \"two-floats\"\nstack = \"s\"\ntransport = \"rtu\"\nbus = \"rs485\"\nunit_id = {unit}\npoll_interval = \"500ms\"\n"
        ));
    }
    text
}

/// What unit `unit` reads: SO2 = unit + 0.5 mg/m3, O2 = 20 + unit / 10 %vol — exact in f32
/// for the units used (e.g. unit 3: 3.5 and 20.3 → f32 20.299999237…, compared as f32).
pub fn values_of(unit: u8) -> (f64, f64) {
    (f64::from(unit) + 0.5, 20.0 + f64::from(unit) / 10.0)
}

/// A directory with the test profile, for `profiles_dir = "profiles"`.
pub fn site_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let profiles = dir.path().join("profiles");
    std::fs::create_dir(&profiles).unwrap_or_else(|e| panic!("mkdir: {e}"));
    std::fs::write(profiles.join("two-floats.toml"), PROFILE)
        .unwrap_or_else(|e| panic!("write profile: {e}"));
    dir
}

pub fn profile() -> Profile {
    Profile::parse("two-floats", Path::new("two-floats.toml"), PROFILE)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A simulator that answers as unit `unit` with [`values_of`] (plus scenario `extra`).
pub fn simulator(unit: u8, extra: &str) -> Simulator {
    let (so2, o2) = values_of(unit);
    let text = format!("[values]\nso2 = {so2:?}\no2 = {o2:?}\n{extra}");
    let profile = profile();
    let scenario = Scenario::parse(Path::new("scenario.toml"), &text, &profile)
        .unwrap_or_else(|e| panic!("{e}"));
    let started = std::time::Instant::now();
    Simulator::new(profile, scenario, 1, move || started.elapsed()).with_unit_id(unit)
}

/// Several simulated analysers on one bus: each answers its own unit id only.
pub struct SimBus(pub Vec<Simulator>);

impl tokio_modbus::server::Service for SimBus {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Ready<Result<Option<Response>, ExceptionCode>>;

    fn call(&self, request: Self::Request) -> Self::Future {
        match self.0.iter().find(|s| s.unit_id() == Some(request.slave)) {
            Some(sim) => sim.call(request),
            None => ready(Ok(None)),
        }
    }
}

/// The value a channel of unit `unit` reads after f32 rounding on the wire.
pub fn wire_value(value: f64) -> f64 {
    f64::from(value as f32)
}
