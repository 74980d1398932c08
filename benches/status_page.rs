//! What the status page costs on a young store and on an old one: the requests of its first
//! render (`/api/status`), of one stack opened (`/api/stack`), and of that stack's charts over
//! each range (`/api/series?range=hour|day|week`), on an empty store, one holding a day and
//! one holding 30 days of a site written straight into the store (a reading and a minute
//! record per channel each minute, an hour record each hour); and the first render of the
//! overview and of one stack opened in headless Chromium, as the page times it, also with
//! 500 devices listed. The page reads minute and hour records for long ranges and raw
//! readings only for the last hour, so the two stores should cost the same.
//!
//! Run with `cargo bench --bench status_page`; `CEMSD_PAGE_DAYS` (30) and
//! `CEMSD_PAGE_STACKS` (4 stacks of 5 channels: 1.7 million records, about 400 MiB) change
//! the old store. Not a criterion bench: writing the old store takes minutes, and the
//! figures are a few requests each.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cemsd::model::{FlagSet, Quantity, Timestamp, Unit};
use cemsd::ops::state::{Generation, OpsState};
use cemsd::pipeline::live::Live;
use cemsd::store::{Record, RecordKind, StoreReader, StoreWriter, WriterOptions};
use support::browser::{chromium, first_render_ms};
use support::http::http_get;
use support::store::{fill_store, open};

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;
const CHANNELS: [(&str, Quantity, Unit, f64); 5] = [
    ("so2", Quantity::SO2, Unit::MgPerM3, 25.0),
    ("nox", Quantity::NOx, Unit::MgPerM3, 40.0),
    ("dust", Quantity::Dust, Unit::MgPerM3, 4.0),
    ("o2", Quantity::O2, Unit::PercentVol, 6.0),
    ("temp", Quantity::Temperature, Unit::DegC, 50.0),
];
/// Requests timed per figure; the median is reported.
const ROUNDS: usize = 9;

/// `stacks` stacks of `per_stack` devices each; the store is filled for the first device of
/// each stack (`cems{s}`), the others are listed but never polled.
fn site(stacks: usize, per_stack: usize) -> String {
    let mut text = "[site]\nid = \"bench\"\n".to_string();
    for s in 0..stacks {
        text += &format!("\n[[stack]]\nid = \"unit{s}\"\nlimits = {{ preset = \"ultra_low\" }}\n");
        for d in 0..per_stack {
            let id = if d == 0 {
                format!("cems{s}")
            } else {
                format!("cems{s}-{d}")
            };
            text += &format!(
                "\n[[device]]\nid = \"{id}\"\nprofile = \"thermo-43i\"\nstack = \"unit{s}\"\n\
                 transport = \"tcp\"\naddress = \"127.0.0.1:9\"\n"
            );
        }
    }
    text
}

fn record(kind: RecordKind, ts: i64, stack: usize, channel: usize) -> Record {
    let (name, quantity, unit, level) = CHANNELS[channel];
    let mut r = Record::new(
        kind,
        Timestamp(ts),
        format!("unit{stack}").into(),
        format!("cems{stack}").into(),
        name.into(),
    );
    r.quantity = Some(quantity);
    r.unit = Some(unit);
    // a slow daily wave, so charts have something to draw
    let value =
        level * (1.0 + 0.2 * ((ts % DAY_MS) as f64 / DAY_MS as f64 * std::f64::consts::TAU).sin());
    r.measured = Some(value);
    if quantity.is_pollutant() {
        r.corrected = Some(value * 1.1);
    }
    r.flags = FlagSet::default();
    r
}

/// `days` of every stack's channels up to `end`, written straight into the store.
fn fill(path: &Path, stacks: usize, days: i64, end: i64) -> u64 {
    let start = end - days * DAY_MS;
    let mut written = 0;
    let mut hour_start = start;
    while hour_start < end {
        let mut records = Vec::new();
        for minute in 0..60 {
            let ts = hour_start + minute * MINUTE_MS;
            for s in 0..stacks {
                for c in 0..CHANNELS.len() {
                    records.push(record(RecordKind::Reading, ts, s, c));
                    records.push(record(RecordKind::Minute, ts, s, c));
                }
            }
        }
        for s in 0..stacks {
            for c in 0..CHANNELS.len() {
                records.push(record(RecordKind::Hour, hour_start, s, c));
            }
        }
        written += records.len() as u64;
        fill_store(path, &records);
        hour_start += HOUR_MS;
    }
    written
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// The median time of `ROUNDS` GETs of `path`, and the size of its body.
fn timed(port: u16, path: &str) -> (Duration, usize) {
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let (code, body) = http_get(port, path).unwrap_or_else(|| panic!("GET {path}"));
        times.push(t.elapsed());
        assert_eq!(code, 200, "{path}: {body}");
        size = body.len();
    }
    (median(times), size)
}

fn measure(label: &str, dir: &Path, (stacks, per_stack): (usize, usize), days: i64, browser: bool) {
    let db = dir.join("cems.db");
    let now = cemsd::model::time::now().0;
    let t = Instant::now();
    let written = if days > 0 {
        fill(&db, stacks, days, now)
    } else {
        0
    };
    let fill_time = t.elapsed();
    let store = open(&db);
    let config = cemsd::config::parse(&dir.join("site.toml"), &site(stacks, per_stack))
        .unwrap_or_else(|e| panic!("config: {e}"))
        .config;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let (writer, writer_thread) = StoreWriter::spawn(store, WriterOptions::default())
        .unwrap_or_else(|e| panic!("writer: {e}"));
    let reader = StoreReader::open(&db).unwrap_or_else(|e| panic!("reader: {e}"));
    let limits = config.limits();
    let generation = Arc::new(Generation::new(Arc::new(config), Live::new()).with_limits(limits));
    let (_generation_tx, generation_rx) = tokio::sync::watch::channel(generation);
    let state = OpsState::new(generation_rx, writer.clone(), reader, None);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let port = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        tokio::spawn(cemsd::ops::http::serve(listener, state, stop_rx));
        port
    });
    let size = std::fs::metadata(&db).map_or(0, |m| m.len()) as f64 / (1 << 20) as f64;
    println!("\n{label}: {written} records ({size:.0} MiB) written in {fill_time:.1?}");
    let series =
        |range: &str| format!("/api/series?stack=unit0&device=cems0&channel=so2&range={range}");
    for path in [
        "/api/status".to_string(),
        "/api/stack?id=unit0".to_string(),
        series("hour"),
        series("day"),
        series("week"),
    ] {
        let (time, bytes) = timed(port, &path);
        println!("  {path:<70} {time:>10.1?}  {bytes:>7} bytes");
    }
    if browser {
        browser_figures(port);
    }
    let _ = stop_tx.send(true);
    runtime.block_on(async {
        let _ = writer.shutdown().await;
    });
    let _ = writer_thread.join();
}

/// Runs of the browser per page; the median is reported.
const BROWSER_ROUNDS: usize = 5;

/// The page's first render in headless Chromium, as the page itself times it (navigation
/// start to every device listed), and the browser's whole run to a DOM dump with the
/// device rows counted (that includes starting Chromium).
fn browser_figures(port: u16) {
    for page in ["/?lang=zh", "/?lang=en#stack=unit0"] {
        let url = format!("http://127.0.0.1:{port}{page}");
        let mut renders: Vec<f64> = (0..BROWSER_ROUNDS)
            .map(|_| first_render_ms(&url).unwrap_or_else(|| panic!("{page}: no first render")))
            .collect();
        renders.sort_by(f64::total_cmp);
        let t = Instant::now();
        let dom = chromium(&url, "--dump-dom");
        println!(
            "  first render of {page:<22} median {:>6.0} ms (min {:.0}, max {:.0}); chromium start to DOM {:.1?}, {} device rows",
            renders[renders.len() / 2],
            renders[0],
            renders[renders.len() - 1],
            t.elapsed(),
            dom.matches("class=\"device-row\"").count()
        );
    }
}

fn main() {
    // `cargo test --all-targets` runs benches too, without `--bench`: there one small old
    // store shows the bench still works
    let measuring = std::env::args().any(|a| a == "--bench");
    let number = |name: &str, default: i64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (days, stacks) = if measuring {
        (
            number("CEMSD_PAGE_DAYS", 30),
            number("CEMSD_PAGE_STACKS", 4),
        )
    } else {
        (1, 2)
    };
    let stacks = usize::try_from(stacks).unwrap_or(1);
    let empty = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    measure("empty store", empty.path(), (stacks, 1), 0, measuring);
    if measuring {
        // a bureau's overview: every device listed, whatever the store holds
        let bureau = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        measure(
            "500 devices (100 stacks of 5), empty store",
            bureau.path(),
            (100, 5),
            0,
            true,
        );
    }
    // a day old, then as old as asked: what grows with age shows between these two
    for age in [1, days].into_iter().filter(|d| *d > 0) {
        let old = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        measure(
            &format!("{age} days, {stacks} stacks of {} channels", CHANNELS.len()),
            old.path(),
            (stacks, 1),
            age,
            measuring,
        );
        if age == days {
            break;
        }
    }
}
