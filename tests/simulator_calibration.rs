//! A calibration on the simulator of every shipped profile, read through the Modbus
//! collector, comes out flagged C. Profiles whose sources document no status (so the
//! analyser cannot report a calibration) say so in their description and are read with a
//! site status binding on the device, served by the simulator at the device's address, as a
//! cabinet PLC input would be.

mod support;

use std::path::Path;
use std::time::Duration;

use cemsd::config::profile::{Profile, ProfileSet, StatusBit, StatusTable};
use cemsd::field::sim::{serve, Scenario, Simulator};
use cemsd::model::{Flag, Quantity, Sample};
use support::collectors::run_collectors;
use support::ports::listen;

/// The calibration window of every simulator: minutes 10 to 15 of its clock.
const SCENARIO: &str = "[[event]]\nkind = \"calibration\"\nstart = \"10m\"\nduration = \"5m\"\n";

/// The binding the site adds where the profile maps no calibration: discrete input 0 of the
/// device (its address base is 0 in every such shipped profile).
const SITE_STATUS: &str = r#"status = [{ table = "discrete_input", address = 0, flag = "C", description = "cabinet PLC: calibration running" }]"#;

fn maps_calibration(profile: &Profile) -> bool {
    profile.status.iter().any(|s| s.flag == Flag::C)
}

fn site_binding() -> StatusBit {
    StatusBit {
        table: StatusTable::DiscreteInput,
        address: 0,
        bit: None,
        equals: None,
        active: true,
        flag: Flag::C,
        description: None,
    }
}

/// Gas channels read the span gas during a calibration: 80 % of the range's top.
fn span_gas(profile: &Profile, channel: &str) -> Option<f64> {
    let ch = profile.channel(channel)?;
    let gas = ch.quantity.is_pollutant() && ch.quantity != Quantity::Dust
        || matches!(ch.quantity, Quantity::O2 | Quantity::CO2);
    gas.then_some(())?;
    ch.range.or(ch.span).map(|[_, high]| high * 0.8)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calibration_on_every_shipped_profile_is_read_flagged_c() {
    let profiles = ProfileSet::shipped().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let mut config = String::from(
        "[site]\nid = \"t\"\nutc_offset = \"+00:00\"\n\n[[stack]]\nid = \"s\"\nduct_area_m2 = 10.0\n",
    );
    let mut servers = Vec::new();
    let mut bound = Vec::new();
    for profile in profiles.iter() {
        let site_bound = !maps_calibration(profile);
        if site_bound {
            bound.push(profile.name.clone());
            let description = profile.description.as_deref().unwrap_or("");
            assert!(
                description.contains("cannot be reported")
                    && description.contains("Site status bindings"),
                "{}: maps no calibration status and does not say how a site binds one",
                profile.name
            );
        }
        let served = if site_bound {
            profile.with_site_status(&[site_binding()])
        } else {
            profile.clone()
        };
        // Two devices per profile: one whose clock stands in the calibration window, one
        // after it.
        for (suffix, at) in [("cal", 12), ("idle", 30)] {
            let scenario = Scenario::parse(Path::new("scenario.toml"), SCENARIO, &served)
                .unwrap_or_else(|e| panic!("{}: {e}", profile.name));
            let clock = move || Duration::from_secs(at * 60);
            let sim = Simulator::new(served.clone(), scenario, 3, clock);
            let listener = listen(0).await;
            let port = listener
                .local_addr()
                .unwrap_or_else(|e| panic!("{e}"))
                .port();
            servers.push(tokio::spawn(serve(listener, sim)));
            config.push_str(&format!(
                "\n[[device]]\nid = \"{name}-{suffix}\"\nprofile = \"{name}\"\nstack = \"s\"\n\
                 transport = \"tcp\"\naddress = \"127.0.0.1:{port}\"\npoll_interval = \"300ms\"\n\
                 timeout = \"250ms\"\n{status}\n",
                name = profile.name,
                status = if site_bound { SITE_STATUS } else { "" },
            ));
        }
    }
    // The four profiles whose sources document no status (see their descriptions).
    assert_eq!(
        bound,
        [
            "juguang-cems-2000d",
            "juguang-cems-2000d-nox",
            "sdl-model-1080",
            "siemens-ga700"
        ]
    );

    let run = run_collectors(dir.path(), &config, Duration::from_millis(2500)).await;
    for server in servers {
        server.abort();
    }
    for profile in profiles.iter() {
        let of = |suffix: &str| -> Vec<&Sample> {
            let id = format!("{}-{suffix}", profile.name);
            run.samples.iter().filter(|s| *s.device == *id).collect()
        };
        let (cal, idle) = (of("cal"), of("idle"));
        assert!(
            cal.len() >= profile.channels.len() && idle.len() >= profile.channels.len(),
            "{}: {} and {} samples",
            profile.name,
            cal.len(),
            idle.len()
        );
        for sample in &cal {
            assert!(!sample.value.is_nan(), "{}: {sample:?}", profile.name);
            assert!(
                sample.status.contains(Flag::C),
                "{}: a reading during the calibration is not flagged C: {sample:?}",
                profile.name
            );
            if let Some(span) = span_gas(profile, &sample.channel) {
                assert!(
                    (sample.value - span).abs() <= 0.01 * span,
                    "{}/{}: {} during the calibration, span gas {span}",
                    profile.name,
                    sample.channel,
                    sample.value
                );
            }
        }
        for sample in &idle {
            assert!(
                !sample.value.is_nan() && !sample.status.contains(Flag::C),
                "{}: a reading after the calibration: {sample:?}",
                profile.name
            );
        }
    }
}

#[test]
fn a_site_status_binding_is_checked_like_the_rest_of_the_config() {
    let text = r#"[site]
id = "t"

[[stack]]
id = "s"

[[device]]
id = "a"
profile = "sdl-model-1080"
stack = "s"
transport = "tcp"
address = "127.0.0.1:5020"
status = [{ table = "input", address = 10, bit = 16, flag = "C" }]
"#;
    let err = cemsd::config::parse(Path::new("site.toml"), text)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.starts_with("site.toml:13:"),
        "names file and line: {err}"
    );
    assert!(
        err.contains("device[0].status[0].bit: bit 16 does not exist in a 16-bit register"),
        "{err}"
    );
    for (status, expected) in [
        (
            r#"{ table = "coil", address = 3, bit = 1, flag = "C" }"#,
            "device[0].status[0].table: coils and discrete inputs are single bits",
        ),
        (
            r#"{ table = "discrete_input", address = 3, flag = "N" }"#,
            "device[0].status[0].flag: flag N cannot come from an instrument status",
        ),
        (
            r#"{ table = "discrete_input", adress = 3, flag = "C" }"#,
            "adress",
        ),
    ] {
        let text = text.replace(
            r#"{ table = "input", address = 10, bit = 16, flag = "C" }"#,
            status,
        );
        let err = cemsd::config::parse(Path::new("site.toml"), &text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("site.toml:13:"), "{err}");
        assert!(err.contains(expected), "{expected:?} in {err}");
    }
    // A valid binding loads, and the poller reads it with the profile's entries.
    let text = text.replace("bit = 16", "bit = 3");
    let loaded =
        cemsd::config::parse(Path::new("site.toml"), &text).unwrap_or_else(|e| panic!("{e}"));
    let device = &loaded.config.devices[0];
    let profile = loaded
        .profiles
        .get("sdl-model-1080")
        .unwrap_or_else(|| panic!("shipped"));
    let merged = profile.with_site_status(&device.status);
    assert_eq!(merged.status.len(), profile.status.len() + 1);
    assert_eq!(
        merged.status.last().map(|s| (s.bit, s.flag)),
        Some((Some(3), Flag::C))
    );
}
