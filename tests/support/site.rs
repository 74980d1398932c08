//! Pieces of the site configs the daemon tests write: the head, a bureau's listener, the
//! stack "unit1", the simulated SCS-900 plant, an HJ 212 uplink.

use std::path::Path;

/// `[site]` with `id` (and `site_keys`, e.g. `utc_offset = "+08:00"`), and `[store]` at
/// `store_path`.
pub fn head(id: &str, site_keys: &str, store_path: &str) -> String {
    format!(
        r#"[site]
id = "{id}"
{site_keys}
[store]
path = "{store_path}"
"#
    )
}

/// A bureau's head: the site "bureau" storing to `data/cemsd.db`, its status page on loopback
/// `http_port`, and an `[hj212_listener]` table listening on loopback `tcp_port`, open for
/// more of its keys.
pub fn bureau_listener(http_port: u16, tcp_port: u16) -> String {
    head("bureau", "", "data/cemsd.db")
        + &format!(
            "\n[http]\nlisten = \"127.0.0.1:{http_port}\"\n\n[hj212_listener]\nlisten = \"127.0.0.1:{tcp_port}\"\n"
        )
}

/// Stack "unit1", a coal boiler; `keys` are added to its table (e.g. `mn = "…"`).
pub fn stack(keys: &str) -> String {
    format!(
        r#"
[[stack]]
id = "unit1"
source_type = "coal_boiler"
{keys}"#
    )
}

/// The plant's stack: "unit1" with a 20 m² duct (and `keys`).
pub fn plant_stack(keys: &str) -> String {
    stack(&format!("duct_area_m2 = 20.0\n{keys}"))
}

/// A simulated SCS-900 PLC (the shipped profile sdl-scs900-plc) served by `[[simulate]]`
/// on loopback `port` with seed `seed`, and the device "plc" of stack "unit1" polling it
/// over Modbus TCP every `poll_interval` with `timeout`.
pub fn simulated_plc(port: u16, seed: u64, poll_interval: &str, timeout: &str) -> String {
    format!(
        r#"
[[simulate]]
profile = "sdl-scs900-plc"
listen = "127.0.0.1:{port}"
seed = {seed}

[[device]]
id = "plc"
profile = "sdl-scs900-plc"
stack = "unit1"
transport = "tcp"
address = "127.0.0.1:{port}"
poll_interval = "{poll_interval}"
timeout = "{timeout}"
"#
    )
}

/// An `[[hj212]]` uplink `name` to `address` with `keys`; its password goes into
/// `dir/hj212.pw`.
pub fn hj212_uplink(dir: &Path, name: &str, address: &str, password: &str, keys: &str) -> String {
    std::fs::write(dir.join("hj212.pw"), format!("{password}\n"))
        .unwrap_or_else(|e| panic!("write password: {e}"));
    format!(
        r#"
[[hj212]]
name = "{name}"
address = "{address}"
password = {{ file = "hj212.pw" }}
{keys}"#
    )
}
