//! A plant watched the way an integrator watches one: `cemsd run` with the demo's two stacks
//! and four simulated analysers (deploy/demo.toml, on free ports, polled every second),
//! forwarding to a VictoriaMetrics on loopback that also scrapes the daemon's `/metrics`, and
//! uploading over HJ 212 to a bureau platform that is down.
//! Scenarios (src/field/sim/scenario.rs) script what an analyser does: an exceedance, a
//! calibration, a silence.

use std::path::Path;
use std::time::Duration;

use cemsd::store::Record;

use super::daemon::{write_config, Daemon};
use super::peers::victoria::VictoriaMetrics;
use super::ports::free_port;
use super::replayed::polled_on_a_bus;
use super::store::append;
use super::time::now_ms;

/// The site id the plant's points and scrapes carry as label `site`.
pub const SITE: &str = "demo-plant";

/// The demo's analysers: (device id, stack, profile, channels the device reads).
pub const DEVICES: [(&str, &str, &str, &str); 4] = [
    (
        "u1-scs900",
        "unit1",
        "sdl-scs900-plc",
        "spans = { so2 = [0, 750], no = [0, 750] }\n",
    ),
    ("u2-so2", "unit2", "thermo-43i", ""),
    (
        "u2-nox",
        "unit2",
        "thermo-42i",
        "channels = [\"no\", \"no2\"]\n",
    ),
    (
        "u2-o2",
        "unit2",
        "sick-mcs100ft",
        "channels = [\"o2\", \"h2o\"]\n",
    ),
];

/// Unit 1 as the demo has it: ultra-low limits (SO2 35, NOx 50, dust 10 mg/m3).
const UNIT1: &str = r#"
[[stack]]
id = "unit1"
mn = "88888880000001"
source_type = "coal_boiler"
limits = { preset = "ultra_low" }
duct_area_m2 = 28.3
nox = "no_only"
"#;

/// A scenario for unit 1's PLC: SO2 ten times its value (over the ultra-low 35 mg/m3) from
/// an hour after the start on.
pub const SO2_OVER_FROM_HOUR_ONE: &str =
    "[[event]]\nkind = \"exceedance\"\nstart = \"1h\"\nduration = \"3h\"\nchannel = \"so2\"\nfactor = 10.0\n";

/// What unit 1's PLC ("u1-scs900", simulated with `scenario`) gave over `duration` from
/// `start_ms`, as the live daemon would have stored it.
pub fn unit1_history(start_ms: i64, duration: Duration, scenario: &str) -> Vec<Record> {
    let config = format!(
        r#"[site]
id = "{SITE}"
utc_offset = "+08:00"
{UNIT1}
[[bus]]
id = "rs485-1"
port = "/dev/ttyS1"
baud = 9600

[[device]]
id = "u1-scs900"
profile = "sdl-scs900-plc"
stack = "unit1"
transport = "rtu"
bus = "rs485-1"
unit_id = 1
poll_interval = "10s"
spans = {{ so2 = [0, 750], no = [0, 750] }}
"#
    );
    polled_on_a_bus(&config, "sdl-scs900-plc", scenario, 0, start_ms, duration)
}

/// The three whole hours before the current one and the current one up to 30 s ago: (start
/// ms, length), so the last hour has completed once it is replayed. Within a minute after
/// an hour begins, waits until that minute has passed.
pub async fn recent_hours() -> (i64, Duration) {
    const HOUR_MS: i64 = 3_600_000;
    let mut now = now_ms();
    if now % HOUR_MS < 60_000 {
        let wait = u64::try_from(60_000 - now % HOUR_MS).unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        now = now_ms();
    }
    let start = now - now % HOUR_MS - 3 * HOUR_MS;
    let length = u64::try_from(now - 30_000 - start).unwrap_or(0);
    (start, Duration::from_millis(length))
}

pub struct MonitoredPlant {
    pub vm: VictoriaMetrics,
    pub daemon: Daemon,
    pub http_port: u16,
}

impl MonitoredPlant {
    /// Starts VictoriaMetrics (deduplicating, scraping `/metrics` every second) and the
    /// daemon on a store holding `history`; `scenarios` gives a device id's simulator its
    /// scenario file's text.
    pub async fn start(
        dir: &Path,
        history: &[Record],
        scenarios: &[(&str, &str)],
    ) -> MonitoredPlant {
        if !history.is_empty() {
            append(&dir.join("data/cemsd.db"), history);
        }
        let http_port = free_port();
        let scrape = dir.join("scrape.yml");
        std::fs::write(
            &scrape,
            format!(
                "scrape_configs:\n  - job_name: cemsd\n    scrape_interval: 1s\n    static_configs:\n      - targets: ['127.0.0.1:{http_port}']\n        labels:\n          site: {SITE}\n"
            ),
        )
        .unwrap_or_else(|e| panic!("write scrape.yml: {e}"));
        let vm = VictoriaMetrics::start_with(
            dir,
            true,
            &[format!("-promscrape.config={}", scrape.display())],
        )
        .await;
        let config = write_config(
            dir,
            "plant.toml",
            &plant_config(dir, http_port, &vm.url(), scenarios),
        );
        let daemon = Daemon::start(
            &config,
            dir,
            &[("CEMSD_TEST_INFLUX_TOKEN", "token".to_string())],
        );
        MonitoredPlant {
            vm,
            daemon,
            http_port,
        }
    }
}

/// deploy/demo.toml on free ports, polling every second, with an `[[influx]]` sink to `url`
/// and `/metrics` on `http_port`.
fn plant_config(dir: &Path, http_port: u16, url: &str, scenarios: &[(&str, &str)]) -> String {
    let mut text = format!(
        r#"[site]
id = "{SITE}"
utc_offset = "+08:00"

[http]
listen = "127.0.0.1:{http_port}"

[store]
path = "data/cemsd.db"
# the alert tests shorten the rules' windows to seconds, which a commit delay of seconds
# would leave empty; the shipped windows are minutes
commit_delay = "0s"

{UNIT1}
[[stack]]
id = "unit2"
mn = "88888880000002"
source_type = "coal_boiler"
limits = {{ preset = "gb13223_coal_special" }}

[[influx]]
id = "vm"
url = "{url}"
org = "plant"
bucket = "cems"
token_env = "CEMSD_TEST_INFLUX_TOKEN"
flush_interval = "200ms"

# A bureau platform that is down: the uplink keeps its backlog and reconnects.
[[hj212]]
name = "bureau"
address = "127.0.0.1:{bureau_port}"
password = {{ file = "hj212.pw" }}
"#,
        bureau_port = free_port(),
    );
    std::fs::write(dir.join("hj212.pw"), "pw\n").unwrap_or_else(|e| panic!("write password: {e}"));
    for (seed, (device, stack, profile, channels)) in DEVICES.iter().enumerate() {
        let port = free_port();
        let scenario = scenarios
            .iter()
            .find(|(d, _)| d == device)
            .map(|(_, body)| {
                let file = format!("{device}-scenario.toml");
                std::fs::write(dir.join(&file), body)
                    .unwrap_or_else(|e| panic!("write scenario: {e}"));
                format!("scenario = \"{file}\"\n")
            })
            .unwrap_or_default();
        text.push_str(&format!(
            r#"
[[simulate]]
profile = "{profile}"
listen = "127.0.0.1:{port}"
seed = {seed}
{scenario}
[[device]]
id = "{device}"
profile = "{profile}"
stack = "{stack}"
transport = "tcp"
address = "127.0.0.1:{port}"
poll_interval = "1s"
timeout = "300ms"
{channels}"#
        ));
    }
    text
}
