//! The forwarder against a fault-injecting server: bad points are split out and
//! dead-lettered with the server's reason while every good point arrives once and in order;
//! 413 splits; 429/503 honour Retry-After; auth and 5xx errors are retried unchanged; a stop
//! during an outage leaves the cursor where it was; batches go out while earlier ones await
//! their answers, and a batch not accepted is sent again with everything after it, the cursor
//! waiting for it.

mod support;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use cemsd::model::{Quantity, Timestamp, Unit};
use cemsd::sink::influx::ForwarderStats;
use cemsd::store::{Record, RecordKind};
use support::influx::{sink_config, RunningForwarder, TEST_TOKEN};
use support::peers::fault_server::{Answer, FaultServer, Received};
use support::store::{fill_store, open, Writer};

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const TARGET: &str = "/api/v2/write?org=plant-org&bucket=cems&precision=ms";

/// Reading number `seq` (its seq in a fresh store): measured = seq, one second apart.
fn reading(seq: u64, device: &str) -> Record {
    Record {
        quantity: Some(Quantity::SO2),
        unit: Some(Unit::MgPerM3),
        measured: Some(seq as f64),
        ..Record::new(
            RecordKind::Reading,
            Timestamp::from_millis(T0 + seq as i64 * 1000),
            "unit1".into(),
            device.into(),
            "so2".into(),
        )
    }
}

/// The seqs in a body, read back from `measured=<seq>.0`.
fn seqs(body: &str) -> Vec<u64> {
    body.lines()
        .map(|line| {
            line.split("measured=")
                .nth(1)
                .and_then(|rest| rest.split([' ', ',']).next())
                .and_then(|v| v.parse::<f64>().ok())
                .map(|v| v as u64)
                .unwrap_or_else(|| panic!("no measured value in {line:?}"))
        })
        .collect()
}

/// (status, first seq, last seq) of each request.
fn summary(received: &[Received]) -> Vec<(u16, u64, u64)> {
    received
        .iter()
        .map(|r| {
            let s = seqs(&r.body);
            (
                r.status,
                s.first().copied().unwrap_or(0),
                s.last().copied().unwrap_or(0),
            )
        })
        .collect()
}

/// Seqs the server accepted, in the order it accepted them.
fn accepted(received: &[Received]) -> Vec<u64> {
    received
        .iter()
        .filter(|r| r.status == 204)
        .flat_map(|r| seqs(&r.body))
        .collect()
}

#[tokio::test]
async fn bad_points_are_split_out_dead_lettered_and_the_rest_delivered_in_order() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let db = dir.path().join("cems.db");
    let records: Vec<Record> = (1..=100)
        .map(|seq| {
            let device = if seq == 37 || seq == 81 {
                "bad-analyser"
            } else {
                "analyser"
            };
            reading(seq, device)
        })
        .collect();
    assert_eq!(fill_store(&db, &records), 100);

    let refusal = r#"{"code":"invalid","message":"line 1: bad-analyser points are refused"}"#;
    let server = FaultServer::start(Box::new(move |n, body: &str| match n {
        0 => Answer::status(503).with_body("overloaded"),
        1 => Answer::status(429).with_header("Retry-After", "1"),
        _ if body.contains("device=bad-analyser") => Answer::status(400).with_body(refusal),
        _ => Answer::status(204),
    }))
    .await;
    let writer = Writer::start(&db);
    let mut config = sink_config("faulty", &server.url());
    config.batch_size = 40;
    // one request at a time, so the n-th request is the n-th of the sequence worked out below
    config.requests_in_flight = 1;
    let forwarder = RunningForwarder::spawn(&config, &db, &writer.handle);
    let drained = forwarder
        .wait_for_cursor(100, Duration::from_secs(30))
        .await;
    let stats = forwarder.stats.snapshot();
    forwarder.stop().await;
    writer.stop().await;
    assert!(drained, "cursor stuck at {}", stats.cursor);

    let received = server.received();
    // Batches of 40, 40 and 20. The first is refused twice (503, 429), then halved around
    // seq 37; the third is halved around seq 81 (index 0). Worked out by hand:
    assert_eq!(
        summary(&received),
        vec![
            (503, 1, 40),
            (429, 1, 40),
            (400, 1, 40),
            (204, 1, 20),
            (400, 21, 40),
            (204, 21, 30),
            (400, 31, 40),
            (204, 31, 35),
            (400, 36, 40),
            (400, 36, 37),
            (204, 36, 36),
            (400, 37, 37),
            (204, 38, 40),
            (204, 41, 80),
            (400, 81, 100),
            (400, 81, 90),
            (400, 81, 85),
            (400, 81, 82),
            (400, 81, 81),
            (204, 82, 82),
            (204, 83, 85),
            (204, 86, 90),
            (204, 91, 100),
        ]
    );
    let good: Vec<u64> = (1..=100).filter(|s| *s != 37 && *s != 81).collect();
    assert_eq!(accepted(&received), good, "every good point once, in order");

    // Retry-After: 1 — by the server's own clock, the retry came at least 1 s after the 429.
    let waited = received[2]
        .received_at
        .duration_since(received[1].answered_at);
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
    // The 503 and 429 were retried with the very same body.
    assert_eq!(received[0].body, received[1].body);
    assert_eq!(received[1].body, received[2].body);

    for r in &received {
        assert_eq!(r.target, TARGET);
        assert_eq!(
            r.authorization.as_deref(),
            Some(format!("Token {TEST_TOKEN}").as_str())
        );
        assert_eq!(r.content_encoding.as_deref(), Some("gzip"));
    }

    let letters = open(&db)
        .dead_letters(10)
        .unwrap_or_else(|e| panic!("dead letters: {e}"));
    let got: Vec<(&str, &str, String)> = letters
        .iter()
        .map(|d| {
            (
                d.source.as_str(),
                d.reason.as_str(),
                String::from_utf8_lossy(&d.payload).to_string(),
            )
        })
        .collect();
    let line = |seq: u64| {
        // T0 + seq s in ms.
        format!(
            "cems_reading,channel=so2,device=bad-analyser,quantity=SO2,site=plant-1,stack=unit1,unit=mg/m3 \
             flag_code=0i,measured={seq}.0 {}",
            T0 + seq as i64 * 1000
        )
    };
    let reason37 = format!("seq 37: HTTP 400: {refusal}");
    let reason81 = format!("seq 81: HTTP 400: {refusal}");
    assert_eq!(
        got,
        vec![
            ("influx:faulty", reason81.as_str(), line(81)),
            ("influx:faulty", reason37.as_str(), line(37)),
        ],
        "newest first"
    );
    assert_eq!(
        (
            stats.requests,
            stats.retries,
            stats.dead_letters,
            stats.points_delivered
        ),
        (23, 2, 2, 98)
    );
    assert_eq!(open(&db).cursor("influx:faulty").ok(), Some(100));
}

#[tokio::test]
async fn oversized_bodies_are_split_a_small_line_refused_as_too_large_is_retried_and_a_huge_one_dead_lettered(
) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let db = dir.path().join("cems.db");
    let records: Vec<Record> = (1..=30)
        .map(|seq| match seq {
            12 => reading(seq, "small"),
            20 => Record {
                // far over any line a server must take
                note: Some("x".repeat(300 * 1024)),
                ..reading(seq, "huge")
            },
            _ => reading(seq, "analyser"),
        })
        .collect();
    fill_store(&db, &records);
    // Refuse bodies of more than 8 lines, the "huge" line whatever its company, and the
    // "small" line until it came alone three times (a proxy limit, fixed meanwhile).
    let mut small_alone = 0;
    let server = FaultServer::start(Box::new(move |_, body: &str| {
        let too_large = Answer::status(413).with_body("request entity too large");
        if body.lines().count() > 8 || body.contains("device=huge") {
            return too_large;
        }
        if body.contains("device=small") && small_alone < 3 {
            small_alone += usize::from(body.lines().count() == 1);
            return too_large;
        }
        Answer::status(204)
    }))
    .await;
    let writer = Writer::start(&db);
    let mut config = sink_config("faulty", &server.url());
    config.batch_size = 30;
    let forwarder = RunningForwarder::spawn(&config, &db, &writer.handle);
    let drained = forwarder.wait_for_cursor(30, Duration::from_secs(30)).await;
    let stats = forwarder.stats.snapshot();
    forwarder.stop().await;
    writer.stop().await;
    assert!(drained);

    let received = server.received();
    let good: Vec<u64> = (1..=30).filter(|s| *s != 20).collect();
    let mut delivered = accepted(&received);
    delivered.sort_unstable();
    assert_eq!(delivered, good);
    assert!(received
        .iter()
        .filter(|r| r.status == 204)
        .all(|r| r.lines().len() <= 8));
    // the small line: refused alone three times, sent again after a backoff each time
    let small: Vec<u16> = received
        .iter()
        .filter(|r| r.lines().len() == 1 && r.body.contains("device=small"))
        .map(|r| r.status)
        .collect();
    assert_eq!(small, vec![413, 413, 413, 204]);
    assert!(stats.retries >= 3, "{stats:?}");
    let letters = open(&db)
        .dead_letters(10)
        .unwrap_or_else(|e| panic!("dead letters: {e}"));
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(
        letters[0].reason,
        "seq 20: HTTP 413: request entity too large"
    );
}

#[tokio::test]
async fn auth_and_server_errors_are_retried_with_the_same_body_until_accepted() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let db = dir.path().join("cems.db");
    fill_store(&db, &[reading(1, "a"), reading(2, "a")]);
    let server = FaultServer::start(Box::new(|n, _: &str| match n {
        0 => Answer::status(401).with_body(r#"{"code":"unauthorized"}"#),
        1 => Answer::status(403),
        2 => Answer::status(500),
        3 => Answer::status(502),
        _ => Answer::status(204),
    }))
    .await;
    let writer = Writer::start(&db);
    let mut config = sink_config("faulty", &server.url());
    config.gzip = false;
    let forwarder = RunningForwarder::spawn(&config, &db, &writer.handle);
    let drained = forwarder.wait_for_cursor(2, Duration::from_secs(30)).await;
    let stats = forwarder.stats.snapshot();
    forwarder.stop().await;
    writer.stop().await;
    assert!(drained);

    let received = server.received();
    let statuses: Vec<u16> = received.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![401, 403, 500, 502, 204]);
    // The bytes on the wire, uncompressed: T0 + 1 s and T0 + 2 s.
    let body =
        "cems_reading,channel=so2,device=a,quantity=SO2,site=plant-1,stack=unit1,unit=mg/m3 \
                flag_code=0i,measured=1.0 1767225601000\n\
                cems_reading,channel=so2,device=a,quantity=SO2,site=plant-1,stack=unit1,unit=mg/m3 \
                flag_code=0i,measured=2.0 1767225602000\n";
    for r in &received {
        assert_eq!(r.body, body);
        assert_eq!(r.content_encoding, None);
    }
    assert_eq!((stats.retries, stats.dead_letters), (4, 0));
}

#[tokio::test]
async fn a_stop_during_an_outage_leaves_the_cursor_where_it_was() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let db = dir.path().join("cems.db");
    fill_store(&db, &[reading(1, "a")]);
    // Always busy, and asking for an hour's patience.
    let server = FaultServer::start(Box::new(|_, _: &str| {
        Answer::status(503).with_header("Retry-After", "3600")
    }))
    .await;
    let writer = Writer::start(&db);
    let forwarder =
        RunningForwarder::spawn(&sink_config("faulty", &server.url()), &db, &writer.handle);
    // Wait for the first refusal, then stop while it waits to retry.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.received().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.received().len(), 1);
    forwarder.stop().await; // panics unless it stops within 10 s, not 600
    writer.stop().await;
    let store = open(&db);
    assert_eq!(store.cursor("influx:faulty").ok(), Some(0));
    assert_eq!(store.dead_letters(10).map(|d| d.len()).ok(), Some(0));
}

/// A request's (first seq, last seq) and the forwarder's cursor when it arrived.
type CursorAtRequest = ((u64, u64), u64);

/// The requests in the order the server received them.
fn by_arrival(received: &[Received]) -> Vec<Received> {
    let mut received = received.to_vec();
    received.sort_by_key(|r| r.received_at);
    received
}

fn range(r: &Received) -> (u64, u64) {
    let s = seqs(&r.body);
    (
        s.first().copied().unwrap_or(0),
        s.last().copied().unwrap_or(0),
    )
}

#[tokio::test]
async fn the_next_batch_goes_out_while_the_first_awaits_its_answer() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let db = dir.path().join("cems.db");
    let records: Vec<Record> = (1..=120).map(|seq| reading(seq, "a")).collect();
    fill_store(&db, &records);
    // a server that takes its time over every request
    let server = FaultServer::start(Box::new(|_, _: &str| {
        Answer::status(204).after(Duration::from_millis(300))
    }))
    .await;
    let writer = Writer::start(&db);
    let mut config = sink_config("busy", &server.url());
    config.batch_size = 40;
    let forwarder = RunningForwarder::spawn(&config, &db, &writer.handle);
    let drained = forwarder
        .wait_for_cursor(120, Duration::from_secs(30))
        .await;
    let stats = forwarder.stats.snapshot();
    forwarder.stop().await;
    writer.stop().await;
    assert!(drained, "cursor stuck at {}", stats.cursor);

    let received = by_arrival(&server.received());
    let ranges: Vec<(u64, u64)> = received.iter().map(range).collect();
    assert_eq!(ranges, vec![(1, 40), (41, 80), (81, 120)]);
    // two on the wire at once: the second batch arrived while the first was still unanswered,
    // and the third only once the first was answered
    assert!(received[1].received_at < received[0].answered_at);
    assert!(received[2].received_at >= received[0].answered_at);
    assert_eq!(
        (stats.requests, stats.retries, stats.points_delivered),
        (3, 0, 120)
    );
    assert_eq!(open(&db).cursor("influx:busy").ok(), Some(120));
}

#[tokio::test]
async fn a_batch_refused_while_the_next_is_on_the_wire_is_sent_again_with_everything_after_it() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let db = dir.path().join("cems.db");
    let records: Vec<Record> = (1..=120).map(|seq| reading(seq, "a")).collect();
    fill_store(&db, &records);
    // The first batch is refused once (503), slowly, so the second is accepted meanwhile. The
    // server notes the forwarder's cursor as each request arrives.
    let stats: Arc<OnceLock<Arc<ForwarderStats>>> = Arc::new(OnceLock::new());
    let cursors: Arc<Mutex<Vec<CursorAtRequest>>> = Arc::new(Mutex::new(Vec::new()));
    let (seen_stats, seen) = (Arc::clone(&stats), Arc::clone(&cursors));
    let mut refused_once = false;
    let server = FaultServer::start(Box::new(move |_, body: &str| {
        let s = seqs(body);
        let cursor = seen_stats.get().map_or(0, |s| s.snapshot().cursor);
        if let Ok(mut seen) = seen.lock() {
            seen.push(((s[0], s[s.len() - 1]), cursor));
        }
        if s[0] == 1 && !refused_once {
            refused_once = true;
            return Answer::status(503).after(Duration::from_millis(300));
        }
        Answer::status(204).after(Duration::from_millis(50))
    }))
    .await;
    let writer = Writer::start(&db);
    let mut config = sink_config("flaky", &server.url());
    config.batch_size = 40;
    let forwarder = RunningForwarder::spawn(&config, &db, &writer.handle);
    // the forwarder's task has not run yet: the server sees its cursor from the first request
    assert!(stats.set(Arc::clone(&forwarder.stats)).is_ok());
    let drained = forwarder
        .wait_for_cursor(120, Duration::from_secs(30))
        .await;
    let snapshot = forwarder.stats.snapshot();
    forwarder.stop().await;
    writer.stop().await;
    assert!(drained, "cursor stuck at {}", snapshot.cursor);

    let received = by_arrival(&server.received());
    let order: Vec<((u64, u64), u16)> = received.iter().map(|r| (range(r), r.status)).collect();
    // The first two together; the second's 204 does not count while the first is unsettled:
    // the first goes again alone, then the second again, beside the third.
    assert_eq!(
        order[..3],
        [((1, 40), 503), ((41, 80), 204), ((1, 40), 204)],
        "{order:?}"
    );
    let mut rest = order[3..].to_vec();
    rest.sort_unstable();
    assert_eq!(rest, [((41, 80), 204), ((81, 120), 204)]);
    assert!(received[1].received_at < received[0].answered_at);
    let second_again = received
        .iter()
        .skip(3)
        .find(|r| range(r) == (41, 80))
        .unwrap_or_else(|| panic!("the second batch was not sent again"));
    assert!(second_again.received_at >= received[2].answered_at);
    // The cursor stayed before the refused batch until it was accepted, although the server
    // held the next one, and never moved past a batch unsettled.
    let mut cursors = cursors.lock().map(|c| c.clone()).unwrap_or_default();
    cursors[3..].sort_unstable();
    assert_eq!(
        cursors,
        [
            ((1, 40), 0),
            ((41, 80), 0),
            ((1, 40), 0),
            ((41, 80), 40),
            ((81, 120), 40)
        ]
    );
    assert_eq!(
        (
            snapshot.requests,
            snapshot.retries,
            snapshot.points_delivered
        ),
        (5, 1, 120)
    );
    assert_eq!(open(&db).cursor("influx:flaky").ok(), Some(120));
}
