//! Kills a process that is appending to the store at random moments (SIGKILL, no chance to
//! clean up) and checks after each kill that the file is intact, that every commit the
//! process reported survived, and that no transaction was half applied.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cemsd::model::{Flag, FlagSet, Quantity, Timestamp, Unit};
use cemsd::store::{Record, RecordKind, Store, StoreOptions};

const DB_ENV: &str = "CEMSD_STORE_CRASH_DB";
const CHILD_TEST: &str = "crash_child_appends_until_killed";
const MARKER: &str = "committed-seq=";
const ROUNDS: usize = 10;
/// Bounds an orphaned child if the parent dies before killing it.
const CHILD_LIFETIME: Duration = Duration::from_secs(30);

/// xorshift64*: enough randomness for kill timing and batch sizes, reproducible by seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// Where the child's readings come from; it rotates through these channels.
struct Source {
    stack: Arc<str>,
    device: Arc<str>,
    channels: Vec<(Arc<str>, Quantity)>,
}

/// One batch: every record carries the batch's first seq as `ts` and the batch size as
/// `count`, so the parent can tell a complete batch from a torn one.
fn batch(first_seq: u64, size: u32, source: &Source) -> Vec<Record> {
    (0..size)
        .map(|i| {
            let (channel, quantity) = &source.channels[i as usize % source.channels.len()];
            Record {
                quantity: Some(*quantity),
                unit: Some(Unit::MgPerM3),
                flags: FlagSet::of(Flag::N),
                raw: Some(f64::from(i)),
                measured: Some(f64::from(i) * 1.5),
                corrected: Some(f64::from(i) * 2.0),
                rate: Some(0.25),
                count: Some(size),
                note: Some(format!("batch of {size}")),
                ..Record::new(
                    RecordKind::Reading,
                    Timestamp::from_millis(first_seq as i64),
                    source.stack.clone(),
                    source.device.clone(),
                    channel.clone(),
                )
            }
        })
        .collect()
}

#[test]
#[ignore = "the child half of store_survives_sigkill_at_random_moments"]
fn crash_child_appends_until_killed() {
    let Some(path) = std::env::var_os(DB_ENV) else {
        return;
    };
    let mut store = Store::open(Path::new(&path), StoreOptions::default())
        .unwrap_or_else(|e| panic!("child: open: {e}"));
    let source = Source {
        stack: "stack-1".into(),
        device: "analyser-1".into(),
        channels: [
            ("so2", Quantity::SO2),
            ("nox", Quantity::NOx),
            ("o2", Quantity::O2),
            ("dust", Quantity::Dust),
        ]
        .into_iter()
        .map(|(channel, q)| (channel.into(), q))
        .collect(),
    };
    let mut rng = Rng(u64::from(std::process::id()) | 1);
    let mut last = store
        .last_seq()
        .unwrap_or_else(|e| panic!("child: last_seq: {e}"));
    let started = Instant::now();
    while started.elapsed() < CHILD_LIFETIME {
        let size = 1 + rng.below(400) as u32;
        let records = batch(last + 1, size, &source);
        match store.append(&records) {
            Ok(Some((first, new_last))) => {
                assert_eq!(
                    first,
                    last + 1,
                    "child: seq must continue from the last commit"
                );
                last = new_last;
            }
            other => panic!("child: append returned {other:?}"),
        }
        // println! flushes at the newline; a closed pipe panics and ends the child.
        println!("{MARKER}{last}");
    }
}

#[test]
fn store_survives_sigkill_at_random_moments() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let db = dir.path().join("crash.db");
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64 | 1);
    let mut rng = Rng(seed);
    let mut reported_total = 0;
    let mut killed_while_writing = 0;

    for round in 0..ROUNDS {
        let context = format!("round {round}, seed {seed}");
        let mut child = Command::new(&exe)
            .args(["--exact", CHILD_TEST, "--ignored", "--nocapture"])
            .env(DB_ENV, &db)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{context}: spawn child: {e}"));
        let stdout = child
            .stdout
            .take()
            .unwrap_or_else(|| panic!("{context}: child has no stdout"));
        let (seqs_tx, seqs) = mpsc::channel::<u64>();
        let reader = std::thread::spawn(move || {
            // The harness prints its own lines, and may put "test name ... " before ours.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(at) = line.find(MARKER) {
                    let number = &line[at + MARKER.len()..];
                    match number.trim().parse::<u64>() {
                        Ok(seq) => {
                            if seqs_tx.send(seq).is_err() {
                                break;
                            }
                        }
                        Err(e) => panic!("unparsable child line {line:?}: {e}"),
                    }
                }
            }
        });

        let mut reported = Vec::new();
        if round % 2 == 0 {
            // Any moment from process start on, including opening and migrating the file.
            std::thread::sleep(Duration::from_millis(rng.below(150)));
        } else {
            // Mid-stream: after the first commit, then 0..30 ms more.
            match seqs.recv_timeout(Duration::from_secs(20)) {
                Ok(seq) => reported.push(seq),
                Err(e) => panic!("{context}: child never committed: {e}"),
            }
            std::thread::sleep(Duration::from_millis(rng.below(30)));
        }
        child
            .kill()
            .unwrap_or_else(|e| panic!("{context}: kill: {e}"));
        child
            .wait()
            .unwrap_or_else(|e| panic!("{context}: wait: {e}"));
        if reader.join().is_err() {
            panic!("{context}: reading the child's output failed");
        }
        reported.extend(seqs.try_iter());
        if !reported.is_empty() {
            killed_while_writing += 1;
        }
        reported_total += reported.len();
        check_after_kill(&db, &reported, &context);
    }
    assert!(
        killed_while_writing >= ROUNDS / 2,
        "seed {seed}: only {killed_while_writing} of {ROUNDS} kills hit a writing child"
    );
    assert!(
        reported_total > 0,
        "seed {seed}: no commit was ever reported"
    );
}

fn check_after_kill(db: &Path, reported: &[u64], context: &str) {
    {
        let conn = rusqlite::Connection::open(db)
            .unwrap_or_else(|e| panic!("{context}: open for integrity check: {e}"));
        let verdict: String = conn
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .unwrap_or_else(|e| panic!("{context}: integrity_check: {e}"));
        assert_eq!(verdict, "ok", "{context}: integrity_check");
    }
    let store = Store::open(db, StoreOptions::default())
        .unwrap_or_else(|e| panic!("{context}: reopen after kill: {e}"));
    let last = store
        .last_seq()
        .unwrap_or_else(|e| panic!("{context}: last_seq: {e}"));
    if let Some(max_reported) = reported.iter().max() {
        assert!(
            *max_reported <= last,
            "{context}: child reported seq {max_reported} committed, store ends at {last}"
        );
    }
    let rows = store
        .read_after(0, usize::MAX)
        .unwrap_or_else(|e| panic!("{context}: read_after: {e}"));
    let seqs: Vec<u64> = rows.iter().map(|s| s.seq).collect();
    let expected: Vec<u64> = (1..=last).collect();
    assert!(
        seqs == expected,
        "{context}: rows are not exactly 1..={last}"
    );

    // Every batch is whole: rows sharing a first seq (ts) number count of them, in order.
    let mut at = 0;
    while at < rows.len() {
        let first = rows[at].record.ts.millis() as u64;
        let size = rows[at].record.count.unwrap_or(0) as usize;
        assert_eq!(
            rows[at].seq, first,
            "{context}: batch does not start at its own seq"
        );
        assert!(
            size > 0 && at + size <= rows.len(),
            "{context}: batch at {first} is torn"
        );
        for (offset, stored) in rows[at..at + size].iter().enumerate() {
            assert_eq!(
                stored.record.ts.millis() as u64,
                first,
                "{context}: seq {}",
                stored.seq
            );
            assert_eq!(
                stored.record.raw,
                Some(offset as f64),
                "{context}: seq {}",
                stored.seq
            );
        }
        at += size;
    }
}
