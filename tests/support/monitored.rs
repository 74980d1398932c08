//! A plant watched the way an integrator watches one: `cemsd run` with the demo's two stacks
//! and four simulated analysers (deploy/demo.toml, on free ports, polled every second),
//! forwarding to a VictoriaMetrics on loopback that also scrapes the daemon's `/metrics`.
//! Scenarios (src/field/sim/scenario.rs) script what an analyser does: an exceedance, a
//! calibration, a silence.

use std::path::Path;
use std::time::Duration;

use super::daemon::{write_config, Daemon};
use super::peers::victoria::VictoriaMetrics;
use super::ports::free_port;

/// The site id the plant's points and scrapes carry as label `site`.
pub const SITE: &str = "demo-plant";

/// The demo's analysers: (device id, stack, profile, channels the device reads).
pub const DEVICES: [(&str, &str, &str, &str); 4] = [
    ("u1-scs900", "unit1", "sdl-scs900-plc", ""),
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

pub struct MonitoredPlant {
    pub vm: VictoriaMetrics,
    pub daemon: Daemon,
    pub http_port: u16,
}

impl MonitoredPlant {
    /// Starts VictoriaMetrics (deduplicating, scraping `/metrics` every second) and the
    /// daemon; `scenarios` gives a device id's simulator its scenario file's text.
    pub async fn start(dir: &Path, scenarios: &[(&str, &str)]) -> MonitoredPlant {
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

    /// Waits until VictoriaMetrics returns a result for `query` (evaluated now); false after
    /// `limit`.
    pub async fn wait_for_data(&self, query: &str, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            let data = self
                .vm
                .query_range(query, Duration::from_secs(60), Duration::from_secs(1))
                .await;
            if data["result"].as_array().is_some_and(|r| !r.is_empty()) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        false
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

[[stack]]
id = "unit1"
source_type = "coal_boiler"
limits = {{ preset = "ultra_low" }}
duct_area_m2 = 28.3
nox = "no_only"

[[stack]]
id = "unit2"
source_type = "coal_boiler"
limits = {{ preset = "gb13223_coal_special" }}

[[influx]]
id = "vm"
url = "{url}"
org = "plant"
bucket = "cems"
token_env = "CEMSD_TEST_INFLUX_TOKEN"
flush_interval = "200ms"
"#
    );
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
