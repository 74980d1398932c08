//! What a restart costs: time from `cemsd run` to READY=1 (the service manager's notify
//! protocol) and the peak resident memory at that moment, on stores holding 1 h and 24 h of a
//! plant polled at 1 Hz, for 20 and for 200 channels.
//!
//! Each store is written fresh, ending two seconds before the daemon starts, by the same
//! processing the daemon runs (readings, minute and hour records). The site's UTC offset is
//! chosen so that the daemon starts late in its local day (23:50 for the 24 h stores, 01:05 for
//! the 1 h ones): the day in progress then holds everything the store holds, the worst case for
//! anything that rebuilds the day.
//!
//! Run with `cargo bench --bench restart`; `CEMSD_RESTART_SHAPES=20x1,20x24` picks shapes
//! (channels x hours), `CEMSD_RESTART_RUNS=5` how often the daemon is started on each store
//! (3 by default; each start is printed, for the spread on a shared machine). Not a criterion
//! bench: one store of the largest shape takes a minute to write, and the figure of interest
//! is one start, not a mean over many.

use std::io::Read as _;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cemsd::config;
use cemsd::model::{Basis, FlagSet, Quantity, Sample, Timestamp, Unit};
use cemsd::process::Processor;
use cemsd::store::{Store, StoreOptions};

/// The quantities of one stack's analysers; ten channels per stack.
const CHANNELS: [(&str, Quantity, Unit, f64); 10] = [
    ("SO2", Quantity::SO2, Unit::MgPerM3, 25.0),
    ("NOx", Quantity::NOx, Unit::MgPerM3, 40.0),
    ("O2", Quantity::O2, Unit::PercentVol, 6.0),
    ("CO", Quantity::CO, Unit::MgPerM3, 12.0),
    ("CO2", Quantity::CO2, Unit::PercentVol, 11.0),
    ("HCl", Quantity::HCl, Unit::MgPerM3, 2.0),
    ("NH3", Quantity::NH3, Unit::MgPerM3, 1.5),
    ("dust", Quantity::Dust, Unit::MgPerM3, 4.0),
    ("temp", Quantity::Temperature, Unit::DegC, 50.0),
    ("pressure", Quantity::Pressure, Unit::KPa, 101.0),
];

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// The site of `stacks` stacks with one MQTT device each. The broker address is closed: the
/// daemon keeps trying to connect, which does not hold up READY.
fn site(store: &Path, stacks: usize, offset: &str) -> String {
    let mut text = format!(
        "[site]\nid = \"bench\"\nutc_offset = \"{offset}\"\n\n[store]\npath = \"{}\"\n\n\
         [[mqtt]]\nid = \"m\"\nurl = \"mqtt://127.0.0.1:9\"\nclient_id = \"bench\"\n\
         [[mqtt.subscribe]]\nfilter = \"plant/#\"\nformat = \"json\"\n",
        store.display()
    );
    for s in 0..stacks {
        let channels: Vec<String> = CHANNELS
            .iter()
            .map(|(name, _, unit, _)| format!("{name} = {{ unit = \"{}\" }}", unit.symbol()))
            .collect();
        text.push_str(&format!(
            "\n[[mqtt.device]]\nid = \"dev{s}\"\nstack = \"unit{s}\"\ninterval = \"1s\"\n\
             channels = {{ {} }}\n",
            channels.join(", ")
        ));
    }
    for s in 0..stacks {
        text.push_str(&format!(
            "\n[[stack]]\nid = \"unit{s}\"\nsource_type = \"coal_boiler\"\n"
        ));
    }
    text
}

/// The UTC offset at which `now` is `local_ms` past local midnight, as "+hh:mm".
fn offset_for(now: i64, local_ms: i64) -> String {
    let utc_in_day = now.rem_euclid(DAY_MS);
    let mut minutes = (local_ms - utc_in_day).div_euclid(60_000);
    if minutes >= 12 * 60 {
        minutes -= 24 * 60;
    } else if minutes < -12 * 60 {
        minutes += 24 * 60;
    }
    let sign = if minutes < 0 { '-' } else { '+' };
    format!("{sign}{:02}:{:02}", minutes.abs() / 60, minutes.abs() % 60)
}

/// Writes `hours` of 1 Hz readings of every channel, ending at `end`, with the minute and
/// hour records the processor makes of them.
fn fill(store_path: &Path, config_text: &str, stacks: usize, hours: i64, end: i64) -> u64 {
    let loaded = config::parse(Path::new("bench.toml"), config_text)
        .unwrap_or_else(|e| panic!("bench site: {e}"));
    let mut processor = Processor::new(&loaded.config, &loaded.profiles);
    let mut store =
        Store::open(store_path, StoreOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let devices: Vec<Arc<str>> = (0..stacks).map(|s| Arc::from(format!("dev{s}"))).collect();
    let names: Vec<Arc<str>> = CHANNELS.iter().map(|c| Arc::from(c.0)).collect();
    let start = end - hours * HOUR_MS;
    let mut records = Vec::new();
    let mut written = 0u64;
    let mut poll = Vec::with_capacity(CHANNELS.len());
    let mut ts = start;
    while ts <= end {
        for device in &devices {
            poll.clear();
            for (i, (_, quantity, unit, base)) in CHANNELS.iter().enumerate() {
                poll.push(Sample {
                    device: device.clone(),
                    channel: names[i].clone(),
                    quantity: *quantity,
                    unit: *unit,
                    basis: Basis::Dry,
                    value: base + ((ts / 1000) % 17) as f64 / 10.0,
                    status: FlagSet::EMPTY,
                    ts: Timestamp(ts),
                });
            }
            processor.push(&poll, &mut records);
        }
        if ts % 60_000 == 0 {
            processor.tick(Timestamp(ts), &mut records);
        }
        if records.len() >= 100_000 {
            store.append(&records).unwrap_or_else(|e| panic!("{e}"));
            written += records.len() as u64;
            records.clear();
        }
        ts += 1000;
    }
    store.append(&records).unwrap_or_else(|e| panic!("{e}"));
    written + records.len() as u64
}

/// Starts the daemon on `config`, waits for READY=1, and returns the time it took and the
/// peak resident set (VmHWM) in MiB at that moment.
fn start_until_ready(config: &Path, dir: &Path) -> (Duration, f64) {
    let socket_path = dir.join("notify.sock");
    // left by the start before, if any
    let _ = std::fs::remove_file(&socket_path);
    let socket = UnixDatagram::bind(&socket_path).unwrap_or_else(|e| panic!("notify: {e}"));
    socket
        .set_read_timeout(Some(Duration::from_secs(600)))
        .unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cemsd"))
        .args(["run", "--config"])
        .arg(config)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("CEMSD_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cemsd: {e}"));
    let mut message = [0u8; 4096];
    let ready = loop {
        let n = match socket.recv(&mut message) {
            Ok(n) => n,
            Err(e) => {
                let _ = child.kill();
                let mut log = String::new();
                if let Some(mut stderr) = child.stderr.take() {
                    let _ = stderr.read_to_string(&mut log);
                }
                panic!("no READY from cemsd: {e}\n{log}");
            }
        };
        if String::from_utf8_lossy(&message[..n])
            .lines()
            .any(|l| l == "READY=1")
        {
            break started.elapsed();
        }
    };
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
        .unwrap_or_else(|e| panic!("{e}"));
    let peak_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(f64::NAN);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    (ready, peak_kib / 1024.0)
}

fn main() {
    // `cargo test --all-targets` runs benches too, without `--bench`: there one small store
    // shows the bench still works
    let measuring = std::env::args().any(|a| a == "--bench");
    let shapes: Vec<(usize, i64)> = std::env::var("CEMSD_RESTART_SHAPES")
        .ok()
        .map(|text| {
            text.split(',')
                .filter_map(|shape| {
                    let (c, h) = shape.split_once('x')?;
                    Some((c.trim().parse().ok()?, h.trim().parse().ok()?))
                })
                .collect()
        })
        .unwrap_or_else(|| {
            if measuring {
                vec![(20, 1), (20, 24), (200, 1), (200, 24)]
            } else {
                vec![(20, 1)]
            }
        });
    let runs: usize = std::env::var("CEMSD_RESTART_RUNS")
        .ok()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(if measuring { 3 } else { 1 });
    println!("channels  hours  records      store MiB  to READY  peak RSS MiB");
    for (channels, hours) in shapes {
        let stacks = (channels / CHANNELS.len()).max(1);
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store_path = dir.path().join("cems.db");
        // the daemon starts a few seconds after the store ends, late in its local day
        let now = cemsd::model::time::now().millis() + 5_000;
        let local = if hours >= 24 {
            DAY_MS - 10 * 60_000
        } else {
            hours * HOUR_MS + 5 * 60_000
        };
        let text = site(&store_path, stacks, &offset_for(now, local));
        let records = fill(&store_path, &text, stacks, hours, now - 2_000);
        let config_path = dir.path().join("site.toml");
        std::fs::write(&config_path, &text).unwrap_or_else(|e| panic!("{e}"));
        let size = std::fs::metadata(&store_path).map_or(0, |m| m.len()) as f64 / 1048576.0;
        // the same store started again at once: the later starts see the same open periods
        for _ in 0..runs {
            let (ready, peak) = start_until_ready(&config_path, dir.path());
            println!(
                "{:>8}  {hours:>5}  {records:>11}  {size:>9.0}  {:>7.2}s  {peak:>12.1}",
                stacks * CHANNELS.len(),
                ready.as_secs_f64()
            );
        }
    }
}
