//! Three analysers on one RS-485 bus, over real pty pairs, against two independent device
//! implementations (the cemsd simulator behind tokio-modbus's RTU server, and pymodbus):
//! a dead analyser does not disturb the others' cadence, a late reply is never taken as the
//! next answer, line noise is counted and recovered from, and a capture of the run holds
//! exactly the frames that crossed the wire.

mod support;

use std::time::Duration;

use cemsd::field::capture::{read_file, Direction};
use cemsd::model::{Flag, Sample};
use support::analyser::{rs485_site, simulator, site_dir, values_of, wire_value, SimBus};
use support::collectors::{run_collectors, Run};
use support::peers::pty::{Fault, Line, WireSetup};
use support::peers::pymodbus::Pymodbus;
use tokio::task::JoinHandle;

const INTERVAL_MS: i64 = 500;

#[derive(Debug, Clone, Copy)]
enum Peer {
    Simulator,
    Pymodbus,
}

/// The line and whatever serves its device side; dropped together.
struct Bus {
    line: Line,
    _simulators: Option<JoinHandle<()>>,
    _pymodbus: Option<Pymodbus>,
}

fn bus(peer: Peer, alive: &[u8], setup: WireSetup) -> Bus {
    let mut line = Line::new(setup);
    match peer {
        Peer::Simulator => {
            let sims = alive.iter().map(|&u| simulator(u, "")).collect();
            let served = line.serve_simulators(SimBus(sims));
            Bus {
                line,
                _simulators: Some(served),
                _pymodbus: None,
            }
        }
        Peer::Pymodbus => {
            let py = Pymodbus::start(&["--serial", &line.device_port], alive);
            Bus {
                line,
                _simulators: None,
                _pymodbus: Some(py),
            }
        }
    }
}

fn boundary_of(sample: &Sample) -> i64 {
    sample.ts.0 - sample.ts.0.rem_euclid(INTERVAL_MS)
}

/// Every boundary of the run has exactly one reading of `device`, with the unit's value.
fn assert_full_cadence(run: &Run, device: &str, unit: u8) -> Vec<i64> {
    let so2 = run.of(device, "so2");
    assert!(so2.len() >= 5, "{device}: only {} readings", so2.len());
    let boundaries: Vec<i64> = so2.iter().map(|s| boundary_of(s)).collect();
    for pair in boundaries.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            INTERVAL_MS,
            "{device} skipped a boundary: {boundaries:?}"
        );
    }
    let (want_so2, want_o2) = values_of(unit);
    for s in &so2 {
        assert_eq!(s.value, wire_value(want_so2), "{device} so2 at {}", s.ts);
        assert_eq!(s.status.primary(), Flag::N, "{device} flagged at {}", s.ts);
    }
    for s in run.of(device, "o2") {
        assert_eq!(s.value, wire_value(want_o2), "{device} o2 at {}", s.ts);
    }
    boundaries
}

async fn dead_analyser_costs_only_its_own_timeout(peer: Peer) {
    let bus = bus(
        peer,
        &[1, 3],
        WireSetup {
            dead: vec![2],
            ..WireSetup::default()
        },
    );
    let dir = site_dir();
    let run = run_collectors(
        dir.path(),
        &rs485_site(&bus.line.bus_port, ""),
        Duration::from_millis(4_300),
    )
    .await;

    for (device, unit) in [("a1", 1), ("a3", 3)] {
        assert_full_cadence(&run, device, unit);
        // Before unit 2 first failed, a3 waited behind its timeout (150 ms + wire time);
        // from then on the failing unit is polled last, so a1 and a3 are read right after
        // each boundary: well inside a quarter interval, under the dead unit's timeout.
        for s in run.of(device, "so2").iter().skip(1) {
            let late = s.ts.0 - boundary_of(s);
            assert!(
                (0..125).contains(&late),
                "{device} read {late} ms after its boundary"
            );
        }
    }

    // the dead analyser: a B-flagged hole on every boundary, stamped on the boundary
    let dead = run.of("a2", "so2");
    assert!(dead.len() >= 7, "{} holes", dead.len());
    for s in &dead {
        assert!(s.value.is_nan() && s.status.primary() == Flag::B, "{s:?}");
        assert_eq!(s.ts.0 % INTERVAL_MS, 0, "hole off its boundary: {}", s.ts);
    }
    // probed at every boundary, after the others, so a return would be seen at once
    let attempts = bus.line.requests_to(2);
    assert_eq!(
        attempts,
        dead.len(),
        "{attempts} requests to the dead unit over {} boundaries",
        dead.len()
    );
    let lines = run.live.lines();
    let stats = &lines["rs485"];
    assert_eq!(stats.timeouts, attempts as u64, "{stats:?}");
    assert_eq!(stats.backed_off, 0, "{stats:?}");
    assert_eq!(stats.crc_errors, 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_analyser_costs_only_its_own_timeout_simulator() {
    dead_analyser_costs_only_its_own_timeout(Peer::Simulator).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_analyser_costs_only_its_own_timeout_pymodbus() {
    dead_analyser_costs_only_its_own_timeout(Peer::Pymodbus).await;
}

async fn late_reply_is_not_taken_as_the_next_answer(peer: Peer) {
    // unit 2's third reply comes 250 ms late, past the 150 ms timeout, while cemsd already
    // waits for unit 3
    let bus = bus(
        peer,
        &[1, 2, 3],
        WireSetup {
            faults: vec![(2, 3, Fault::Delay(Duration::from_millis(250)))],
            ..WireSetup::default()
        },
    );
    let dir = site_dir();
    let run = run_collectors(
        dir.path(),
        &rs485_site(&bus.line.bus_port, ""),
        Duration::from_millis(3_300),
    )
    .await;

    assert_full_cadence(&run, "a1", 1);
    assert_full_cadence(&run, "a3", 3);
    let a2 = run.of("a2", "so2");
    let holes: Vec<_> = a2.iter().filter(|s| s.value.is_nan()).collect();
    assert_eq!(holes.len(), 1, "{a2:?}");
    assert_eq!(holes[0].status.primary(), Flag::B);
    // the poll that timed out was the third; all other readings are unit 2's own value
    assert!(a2[2].value.is_nan(), "{a2:?}");
    for s in a2.iter().filter(|s| !s.value.is_nan()) {
        assert_eq!(s.value, wire_value(values_of(2).0));
    }
    let lines = run.live.lines();
    let stats = &lines["rs485"];
    assert_eq!(stats.timeouts, 1, "{stats:?}");
    // the late frame was recognised as answering something else and skipped
    assert_eq!(stats.foreign_frames, 1, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_reply_is_not_taken_as_the_next_answer_simulator() {
    late_reply_is_not_taken_as_the_next_answer(Peer::Simulator).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_reply_is_not_taken_as_the_next_answer_pymodbus() {
    late_reply_is_not_taken_as_the_next_answer(Peer::Pymodbus).await;
}

async fn noisy_line_is_counted_and_recovered_from(peer: Peer) {
    let noise = vec![0x00, 0xFF, 0x13, 0x37];
    let bus = bus(
        peer,
        &[1, 3],
        WireSetup {
            dead: vec![2],
            faults: vec![
                (1, 2, Fault::CorruptCrc),
                (3, 3, Fault::Truncate(5)),
                (1, 5, Fault::NoiseBefore(noise.clone())),
            ],
            ..WireSetup::default()
        },
    );
    let dir = site_dir();
    let run = run_collectors(
        dir.path(),
        &rs485_site(&bus.line.bus_port, ""),
        Duration::from_millis(3_300),
    )
    .await;

    // each damaged reply was retried at once: no reading of a1 or a3 was lost
    assert_full_cadence(&run, "a1", 1);
    assert_full_cadence(&run, "a3", 3);
    let lines = run.live.lines();
    let stats = &lines["rs485"];
    assert_eq!(stats.crc_errors, 1, "{stats:?}");
    assert_eq!(stats.garbled, 1, "{stats:?}");
    // 4 bytes of noise before a reply + the 5 bytes of the truncated one
    assert_eq!(stats.noise_bytes, 9, "{stats:?}");
    let devices = run.live.snapshot();
    assert_eq!(devices["a1"].comm.crc_errors, 1);
    assert_eq!(devices["a3"].comm.garbled, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noisy_line_is_counted_and_recovered_from_simulator() {
    noisy_line_is_counted_and_recovered_from(Peer::Simulator).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noisy_line_is_counted_and_recovered_from_pymodbus() {
    noisy_line_is_counted_and_recovered_from(Peer::Pymodbus).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_holds_the_frames_that_crossed_the_wire() {
    let bus = bus(
        Peer::Simulator,
        &[1, 3],
        WireSetup {
            dead: vec![2],
            ..WireSetup::default()
        },
    );
    let dir = site_dir();
    let run = run_collectors(
        dir.path(),
        &rs485_site(&bus.line.bus_port, "capture = true\ncapture_dir = \"cap\""),
        Duration::from_millis(2_300),
    )
    .await;
    assert!(!run.of("a1", "so2").is_empty());

    let mut files: Vec<_> = std::fs::read_dir(dir.path().join("cap"))
        .unwrap_or_else(|e| panic!("capture dir: {e}"))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    files.sort();
    assert!(
        (1..=2).contains(&files.len()),
        "one file per day (two if the run crossed midnight): {files:?}"
    );
    let mut captured = Vec::new();
    for file in &files {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        assert!(
            name.starts_with("rs485-") && name.ends_with(".pcapng"),
            "{name}"
        );
        let (frames, damage) = read_file(file).unwrap_or_else(|e| panic!("{e}"));
        assert!(damage.is_none(), "{damage:?}");
        captured.extend(frames);
    }
    let wire = bus.line.frames();
    let seen = |frames: Vec<(Direction, Vec<u8>)>| frames;
    assert_eq!(
        seen(
            captured
                .iter()
                .map(|f| (f.direction, f.bytes.clone()))
                .collect()
        ),
        seen(
            wire.iter()
                .map(|f| (f.direction, f.bytes.clone()))
                .collect()
        ),
        "the capture differs from the wire"
    );
    // requests to 1, 2, 3 and replies from 1 and 3 only
    assert!(captured
        .iter()
        .any(|f| f.direction == Direction::Outbound && f.bytes[0] == 2));
    assert!(!captured
        .iter()
        .any(|f| f.direction == Direction::Inbound && f.bytes[0] == 2));
    for (c, w) in captured.iter().zip(&wire) {
        let apart = (c.ts_us - w.us).abs();
        assert!(
            apart < 50_000,
            "capture stamped {apart} µs away from the wire"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bus_port_is_held_exclusively() {
    let bus = bus(Peer::Simulator, &[1], WireSetup::default());
    let dir = site_dir();
    let text = rs485_site(&bus.line.bus_port, "");
    let path = dir.path().to_path_buf();
    let running =
        tokio::spawn(
            async move { run_collectors(&path, &text, Duration::from_millis(1_500)).await },
        );
    tokio::time::sleep(Duration::from_millis(700)).await;
    let site = cemsd::config::load(&dir.path().join("site.toml")).unwrap_or_else(|e| panic!("{e}"));
    let second = cemsd::collect::modbus::serial::open_port(&site.config.buses[0]);
    let run = running.await.unwrap_or_else(|e| panic!("{e}"));
    match second {
        Ok(_) => panic!("a second open of the bus port succeeded"),
        Err(e) => assert!(e.starts_with("cannot open"), "{e}"),
    }
    assert!(!run.of("a1", "so2").is_empty());
}
