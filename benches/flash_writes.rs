//! What the store costs the flash: bytes the daemon writes to disk (`write_bytes` of
//! /proc/PID/io: the database, its write-ahead log and checkpoints) per record committed,
//! and bytes the store holds per record, for a plant of three simulated SCS-900 systems
//! (24 channels) polled every second.
//!
//! Run with `cargo bench --bench flash_writes`; `CEMSD_FLASH_SECONDS` sets the measured
//! span (default 120 s, after 15 s of warm-up), `CEMSD_FLASH_COMMIT_DELAY` the site's
//! `[store] commit_delay` (default "5s", as shipped). The figure does not depend on the build's
//! optimisation, so `cargo build --bench flash_writes` and running the built binary with
//! `--bench` measures the same.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use cemsd::store::{Store, StoreOptions};

const PLCS: u16 = 3;
const CHANNELS_PER_PLC: u64 = 8;

fn site(store: &Path, first_port: u16, commit_delay: &str) -> String {
    let mut text = format!(
        "[site]\nid = \"flash\"\nutc_offset = \"+08:00\"\n\n[store]\npath = \"{}\"\nretention = \"90d\"\ncommit_delay = \"{commit_delay}\"\n",
        store.display()
    );
    for i in 0..PLCS {
        let port = first_port + i;
        text.push_str(&format!(
            "\n[[stack]]\nid = \"unit{i}\"\nsource_type = \"coal_boiler\"\nduct_area_m2 = 20.0\n\
             \n[[simulate]]\nprofile = \"sdl-scs900-plc\"\nlisten = \"127.0.0.1:{port}\"\nseed = {i}\n\
             \n[[device]]\nid = \"plc{i}\"\nprofile = \"sdl-scs900-plc\"\nstack = \"unit{i}\"\n\
             transport = \"tcp\"\naddress = \"127.0.0.1:{port}\"\npoll_interval = \"1s\"\ntimeout = \"500ms\"\n"
        ));
    }
    text
}

fn write_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("write_bytes:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

fn committed(store: &Path) -> u64 {
    Store::open(store, StoreOptions::default())
        .and_then(|s| s.last_seq())
        .unwrap_or(0)
}

fn free_port_block() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = listener.local_addr().map_or(20000, |a| a.port());
    port.saturating_sub(PLCS)
}

fn main() {
    // `cargo test --all-targets` runs benches too, without `--bench`: a two-minute measure
    // has no place there
    if !std::env::args().any(|a| a == "--bench") {
        println!("flash_writes: run with `cargo bench --bench flash_writes`");
        return;
    }
    let seconds: u64 = std::env::var("CEMSD_FLASH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = dir.path().join("cems.db");
    let config = dir.path().join("site.toml");
    let commit_delay =
        std::env::var("CEMSD_FLASH_COMMIT_DELAY").unwrap_or_else(|_| "5s".to_string());
    std::fs::write(&config, site(&store, free_port_block(), &commit_delay))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_cemsd"))
        .args(["run", "--config"])
        .arg(&config)
        .env("CEMSD_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cemsd: {e}"));
    std::thread::sleep(Duration::from_secs(15));
    if let Ok(Some(status)) = child.try_wait() {
        panic!("cemsd stopped: {status}");
    }
    let (bytes0, seq0) = (write_bytes(child.id()), committed(&store));
    std::thread::sleep(Duration::from_secs(seconds));
    let (bytes1, seq1) = (write_bytes(child.id()), committed(&store));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let records = seq1.saturating_sub(seq0).max(1);
    let size = std::fs::metadata(&store).map_or(0, |m| m.len());
    let total = committed(&store).max(1);
    println!(
        "{} channels at 1 Hz, commit delay {commit_delay}, {seconds} s: {records} records, {} bytes written, {:.0} bytes written per record; store {} bytes, {:.0} bytes per record held",
        u64::from(PLCS) * CHANNELS_PER_PLC,
        bytes1 - bytes0,
        (bytes1 - bytes0) as f64 / records as f64,
        size,
        size as f64 / total as f64
    );
}
