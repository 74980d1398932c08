//! Simulator ↔ collector through the whole daemon: a profile with every data type in every
//! word order is served by `[[simulate]]`, polled by `[[device]]`, and the store must hold
//! exactly the values the scenario set.

mod support;

use std::fmt::Write as _;

use cemsd::model::Flag;
use support::daemon::{write_config, Daemon};
use support::ports::free_port;
use support::store::{open, readings, wait_for};

/// (type, a value that type holds exactly, registers it takes)
const TYPES: [(&str, f64, u32); 6] = [
    ("u16", 51_234.0, 1),
    ("i16", -12_345.0, 1),
    ("u32", 3_000_000_000.0, 2),
    ("i32", -2_000_000_000.0, 2),
    // 1234.5625 = 0x449A5200 as f32, exact
    ("f32", 1234.5625, 2),
    // exact in f64, needs all 53 bits of mantissa
    ("f64", 9_007_199_254_740_991.0, 4),
];
const ORDERS: [&str; 4] = ["ABCD", "CDAB", "BADC", "DCBA"];

fn channel_name(ty: &str, order: &str) -> String {
    format!("{ty}_{}", order.to_lowercase())
}

/// Channels packed back to back in holding registers, so one poll reads them in few blocks.
/// A flue-gas temperature passes normalisation unchanged, so the store shows the wire value.
fn profile_and_scenario() -> (String, String) {
    let mut profile = String::from(
        "vendor = \"Test\"\nmodel = \"all types\"\nsource = \"integration test\"\nverified = false\n",
    );
    let mut scenario = String::from("[values]\n");
    let mut address = 0;
    for (ty, value, registers) in TYPES {
        for order in ORDERS {
            let name = channel_name(ty, order);
            let _ = write!(
                profile,
                "\n[[channel]]\nname = \"{name}\"\nquantity = \"temp\"\nunit = \"degC\"\ntable = \"holding\"\naddress = {address}\ntype = \"{ty}\"\nword_order = \"{order}\"\n"
            );
            let _ = writeln!(scenario, "{name} = {value:?}");
            address += registers;
        }
    }
    (profile, scenario)
}

#[test]
fn every_type_and_word_order_arrives_exactly() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let profiles = dir.path().join("profiles");
    std::fs::create_dir(&profiles).unwrap_or_else(|e| panic!("mkdir: {e}"));
    let (profile, scenario) = profile_and_scenario();
    std::fs::write(profiles.join("all-types.toml"), profile).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join("fixed.toml"), scenario).unwrap_or_else(|e| panic!("{e}"));
    let port = free_port();
    let config = format!(
        r#"profiles_dir = "profiles"

[site]
id = "roundtrip"

[store]
path = "cemsd.db"

[[stack]]
id = "s"
source_type = "coal_boiler"

[[simulate]]
profile = "all-types"
listen = "127.0.0.1:{port}"
scenario = "fixed.toml"

[[device]]
id = "dev"
profile = "all-types"
stack = "s"
transport = "tcp"
address = "127.0.0.1:{port}"
poll_interval = "200ms"
timeout = "150ms"
"#
    );
    let config_path = write_config(dir.path(), "site.toml", &config);

    let mut daemon = Daemon::start(&config_path, dir.path(), &[]);
    let db = dir.path().join("cemsd.db");
    let channels = TYPES.len() * ORDERS.len();
    let arrived = wait_for(&db, |store| readings(store, "dev").len() >= 2 * channels);
    assert_eq!(daemon.terminate(), Some(0));
    assert!(arrived, "no complete poll reached the store");

    let store = open(&db);
    let rows = readings(&store, "dev");
    for (ty, value, _) in TYPES {
        for order in ORDERS {
            let name = channel_name(ty, order);
            let mine: Vec<_> = rows
                .iter()
                .filter(|r| &*r.record.channel == name.as_str())
                .collect();
            assert!(!mine.is_empty(), "no reading of {name}");
            for row in mine {
                assert_eq!(row.record.raw, Some(value), "{name}");
                assert_eq!(row.record.flags.primary(), Flag::N, "{name}");
            }
        }
    }
}
