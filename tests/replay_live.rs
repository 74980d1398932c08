//! The promise of replay: the daemon runs an RS-485 bus (three analysers on a pty, one dead,
//! one reply with a damaged CRC, one with line noise in front) with its capture on; replaying
//! that capture with the same config gives the readings the daemon stored — same devices,
//! channels, values and flags, and times within the few milliseconds between the capture's
//! stamp on a reply and the poller's.

mod support;

use std::time::Duration;

use cemsd::config;
use cemsd::field::capture::read_file;
use cemsd::field::replay::replay_all;
use cemsd::store::{Query, Record, RecordKind};
use support::analyser::{rs485_site, simulator, site_dir, SimBus};
use support::daemon::{write_config, Daemon};
use support::peers::pty::{Fault, Line, WireSetup};
use support::store::open;

/// Three analysers on an RS-485 bus at `port`, with the bus's capture on.
fn config(port: &str) -> String {
    rs485_site(port, "capture = true\ncapture_dir = \"cap\"") + "\n[store]\npath = \"store.db\"\n"
}

/// What the comparison looks at, values as bits; the store keeps NaN as NULL.
type Row = (
    i64,
    String,
    String,
    Option<u64>,
    Option<u64>,
    Option<u64>,
    u8,
);

fn row(r: &Record) -> Row {
    let bits = |v: Option<f64>| v.filter(|v| !v.is_nan()).map(f64::to_bits);
    (
        r.ts.0,
        r.device.to_string(),
        r.channel.to_string(),
        bits(r.raw),
        bits(r.measured),
        bits(r.corrected),
        r.flags.bits(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_the_daemons_capture_gives_what_it_stored() {
    let mut line = Line::new(WireSetup {
        dead: vec![2],
        faults: vec![
            (1, 3, Fault::CorruptCrc),
            (3, 4, Fault::NoiseBefore(vec![0x00, 0xFF, 0x13, 0x37])),
        ],
        ..WireSetup::default()
    });
    let _served = line.serve_simulators(SimBus(vec![simulator(1, ""), simulator(3, "")]));
    let dir = site_dir();
    let site = write_config(dir.path(), "site.toml", &config(&line.bus_port));

    let mut daemon = Daemon::start(&site, dir.path(), &[]);
    tokio::time::sleep(Duration::from_millis(5_500)).await;
    daemon.stop(Duration::from_secs(60));

    let store = open(&dir.path().join("store.db"));
    let live: Vec<Record> = store
        .query(&Query {
            kind: Some(RecordKind::Reading),
            ..Query::default()
        })
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|s| s.record)
        .collect();

    let mut files: Vec<_> = std::fs::read_dir(dir.path().join("cap"))
        .unwrap_or_else(|e| panic!("capture dir: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let mut frames = Vec::new();
    for file in &files {
        let (read, damage) = read_file(file).unwrap_or_else(|e| panic!("{e}"));
        assert!(damage.is_none(), "{damage:?}");
        frames.extend(read);
    }
    let last_frame_ms = frames.last().map_or(0, |f| f.ts_us / 1000);
    let loaded = config::load(&site).unwrap_or_else(|e| panic!("{e}"));
    let (records, summary) = replay_all(frames, &loaded.config, &loaded.profiles, None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        summary.frames.crc_errors >= 1 && summary.frames.noise_bytes >= 4,
        "{summary}"
    );

    // the shutdown may cut the last round short on either side: compare up to a second
    // before the last frame
    let until = last_frame_ms - 1_000;
    let sorted = |records: &[Record]| {
        let mut rows: Vec<Row> = records
            .iter()
            .filter(|r| r.kind == RecordKind::Reading && r.ts.0 < until)
            .map(row)
            .collect();
        rows.sort_by(|a, b| (a.0, &a.1, &a.2).cmp(&(b.0, &b.1, &b.2)));
        rows
    };
    let (live, replayed) = (sorted(&live), sorted(&records));
    assert!(live.len() >= 3 * 2 * 7, "only {} live readings", live.len());
    assert!(
        live.iter().any(|r| r.1 == "a2" && r.6 != 0),
        "the dead analyser left no flagged readings"
    );
    // The capture stamps a reply when its last byte is read; the live poller stamps the
    // value a moment later, when the read returns: a few milliseconds, more when the machine
    // is loaded (8 ms seen with two busy cores). A tenth of a second stays far under half the
    // 500 ms poll interval, so no reading can pair with another poll's. Everything else must
    // be identical, series by series.
    const STAMP_SLACK_MS: i64 = 100;
    let series = |rows: &[Row], device: &str, channel: &str| -> Vec<Row> {
        rows.iter()
            .filter(|r| r.1 == device && r.2 == channel)
            .cloned()
            .collect()
    };
    for device in ["a1", "a2", "a3"] {
        for channel in ["so2", "o2"] {
            let (l, mut r) = (
                series(&live, device, channel),
                series(&replayed, device, channel),
            );
            // A poll the stop cut short after one of its replies was captured gives the replay
            // one reading the daemon never completed: at most one, and only at the very end.
            let live_end = l.last().map_or(i64::MIN, |row| row.0);
            let tail = r
                .iter()
                .filter(|row| row.0 > live_end + STAMP_SLACK_MS)
                .count();
            assert!(
                tail <= 1,
                "{device}.{channel}: {tail} replayed readings after the live ones"
            );
            r.truncate(r.len() - tail);
            assert_eq!(
                l.len(),
                r.len(),
                "{device}.{channel}: live {l:?}\nreplayed {r:?}"
            );
            for (l, r) in l.iter().zip(&r) {
                assert!(
                    (l.0 - r.0).abs() <= STAMP_SLACK_MS,
                    "{device}.{channel}: {l:?} vs {r:?}"
                );
                assert_eq!(&l.1[..], &r.1[..]);
                assert_eq!(
                    (l.3, l.4, l.5, l.6),
                    (r.3, r.4, r.5, r.6),
                    "{device}.{channel} at {}",
                    l.0
                );
            }
        }
    }
}
