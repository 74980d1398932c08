//! Modbus polling on a real pty pair against the simulator behind tokio-modbus's RTU server.
//!
//! 1. Requests per poll: for every shipped profile, the requests one poll puts on the wire
//!    equal the planner's minimum (the planner's own tests prove the plan minimal).
//! 2. Poll cycle of three analysers on an emulated 9600 baud line (8E1: 11 bits per
//!    character; the line between cemsd and the simulator holds every frame for its wire
//!    time): measured against the theoretical wire time — requests + replies + one 3.5
//!    character silence before each request and before each reply. Goal: ≤ 1.15×.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};

use cemsd::collect::modbus::device::DevicePoller;
use cemsd::collect::modbus::link::ByteStream;
use cemsd::collect::modbus::rtu::RtuLink;
use cemsd::collect::modbus::serial::{open_port, timing_of};
use cemsd::config::profile::ProfileSet;
use cemsd::config::{self, Loaded};
use cemsd::field::sim::{Scenario, Simulator};
use cemsd::model::Timestamp;
use cemsd::protocol::modbus::frame::Expected;
use support::{Line, SimBus, WireSetup};

/// The three analysers of the cycle: an SO2 analyser, a NOx analyser and a multi-gas one.
const CYCLE: [&str; 3] = ["thermo-43i", "thermo-42i", "sdl-model-1080"];
const BAUD: u32 = 9600;
const BITS_PER_CHAR: u32 = 11;

fn char_time() -> Duration {
    Duration::from_secs_f64(f64::from(BITS_PER_CHAR) / f64::from(BAUD))
}

/// A site with `profiles` at unit ids 1, 2, … on one 9600 8E1 bus at `port`.
fn site(port: &str, profiles: &[&str]) -> Loaded {
    let mut text = format!(
        "[site]\nid = \"bench\"\n\n[[stack]]\nid = \"s\"\nduct_area_m2 = 20.0\n\n[[bus]]\nid = \"rs485\"\nport = \"{port}\"\nbaud = {BAUD}\nparity = \"even\"\nresponse_timeout = \"300ms\"\n"
    );
    for (i, profile) in profiles.iter().enumerate() {
        text.push_str(&format!(
            "\n[[device]]\nid = \"d{}\"\nprofile = \"{profile}\"\nstack = \"s\"\ntransport = \"rtu\"\nbus = \"rs485\"\nunit_id = {}\npoll_interval = \"10s\"\n",
            i + 1,
            i + 1
        ));
    }
    config::parse(Path::new("bench.toml"), &text).unwrap_or_else(|e| panic!("{e}"))
}

struct Bus {
    runtime: tokio::runtime::Runtime,
    line: Line,
    link: RtuLink<Box<dyn ByteStream>>,
    devices: Vec<DevicePoller>,
}

/// `profiles` served by simulators at unit ids 1, 2, … behind a line of `char_time`.
fn bus(profiles: &[&str], char_time: Duration) -> Bus {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let shipped = ProfileSet::shipped().unwrap_or_else(|e| panic!("{e}"));
    let (line, link, devices) = runtime.block_on(async {
        let mut line = Line::new(WireSetup {
            char_time,
            ..WireSetup::default()
        });
        let sims = profiles
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let profile = shipped
                    .get(name)
                    .unwrap_or_else(|| panic!("no profile {name}"))
                    .clone();
                Simulator::new(profile, Scenario::default(), 7, || Duration::ZERO)
                    .with_unit_id(i as u8 + 1)
            })
            .collect();
        line.serve_simulators(SimBus(sims));
        let loaded = site(&line.bus_port, profiles);
        let bus = &loaded.config.buses[0];
        let port = open_port(bus).unwrap_or_else(|e| panic!("{e}"));
        let link: RtuLink<Box<dyn ByteStream>> = RtuLink::new(Box::new(port), timing_of(bus));
        let devices = loaded
            .config
            .devices
            .iter()
            .map(|d| {
                let profile = loaded
                    .profiles
                    .get(&d.profile)
                    .unwrap_or_else(|| panic!("no profile {}", d.profile));
                DevicePoller::new(d, profile, &loaded.config.buses)
            })
            .collect();
        (line, link, devices)
    });
    Bus {
        runtime,
        line,
        link,
        devices,
    }
}

impl Bus {
    /// One poll of every device, in order; panics on any failed read.
    fn cycle(&mut self) {
        let (link, devices) = (&mut self.link, &self.devices);
        self.runtime.block_on(async {
            for device in devices {
                let mut events = Vec::new();
                let outcome = device
                    .poll(link, Timestamp(0), || Timestamp(0), &mut events)
                    .await;
                assert!(
                    outcome.error.is_none(),
                    "{}: {:?}",
                    device.id(),
                    outcome.error
                );
            }
        });
    }

    /// Characters on the wire in one cycle: every request and reply, and the 3.5-character
    /// silence before each of them.
    fn wire_chars(&self) -> f64 {
        self.devices
            .iter()
            .flat_map(|d| {
                d.plan()
                    .blocks
                    .iter()
                    .map(move |b| Expected::for_read(d.unit_id(), b).reply_len())
            })
            .map(|reply| 8.0 + reply as f64 + 2.0 * 3.5)
            .sum()
    }
}

fn requests_per_poll() {
    let shipped = ProfileSet::shipped().unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<String> = shipped.names().map(String::from).collect();
    println!("requests per poll (wire count = planned minimum):");
    for name in names {
        let mut bus = bus(&[name.as_str()], Duration::ZERO);
        bus.cycle();
        let planned = bus.devices[0].plan().blocks.len();
        let sent = bus.line.requests_to(1);
        println!("  {name:<26} planned {planned}  on the wire {sent}");
        assert_eq!(
            sent, planned,
            "{name}: requests on the wire differ from the plan"
        );
    }
}

fn poll_cycle(c: &mut Criterion) {
    requests_per_poll();

    let mut bus = bus(&CYCLE, char_time());
    let theory = char_time().mul_f64(bus.wire_chars());
    // our own mean over a fixed number of cycles, for the ratio
    bus.cycle();
    let cycles = 20u32;
    let started = Instant::now();
    for _ in 0..cycles {
        bus.cycle();
    }
    let measured = started.elapsed() / cycles;
    let ratio = measured.as_secs_f64() / theory.as_secs_f64();
    let requests: usize = bus.devices.iter().map(|d| d.plan().blocks.len()).sum();
    println!(
        "poll cycle of {CYCLE:?} at {BAUD} baud ({requests} requests): theoretical wire time {:.2} ms, measured {:.2} ms, ratio {ratio:.3} (goal ≤ 1.15: {})",
        theory.as_secs_f64() * 1e3,
        measured.as_secs_f64() * 1e3,
        if ratio <= 1.15 { "met" } else { "MISSED" }
    );

    let mut group = c.benchmark_group("modbus_poll");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("cycle_3_analysers_9600_baud", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                bus.cycle();
            }
            started.elapsed()
        })
    });
    group.finish();
}

criterion_group!(benches, poll_cycle);
criterion_main!(benches);
