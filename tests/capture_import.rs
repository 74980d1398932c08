//! Every importer on a sample in its real format (built from the example lines in the device
//! research notes, with correct CRCs), format detection, `cemsd capture convert`, and the
//! raw-stream resynchronisation under random noise.

use std::path::{Path, PathBuf};
use std::process::Command;

use cemsd::field::capture::import::{detect, find_frames, import, Format, ImportOptions, Imported};
use cemsd::field::capture::pair::{pair, Answer};
use cemsd::field::capture::{read_file, CapturedFrame, Direction};
use cemsd::protocol::modbus::frame::{crc16, crc_ok, frame_len, Direction as Wire, FrameLen};
use chrono::{FixedOffset, NaiveDate};
use proptest::prelude::*;

/// 2026-03-01T02:00:00Z, 10:00 at a site on UTC+8.
const T0_US: i64 = 1_772_330_400_000_000;

const REQUEST: [u8; 8] = [0x01, 0x03, 0x00, 0x00, 0x00, 0x02, 0xC4, 0x0B];
const REPLY: [u8; 9] = [0x01, 0x03, 0x04, 0x1C, 0xD5, 0x3F, 0x8E, 0x7D, 0xCF];

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/serial/import")
        .join(name)
}

fn bytes_of(name: &str) -> Vec<u8> {
    std::fs::read(sample(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn options() -> ImportOptions {
    ImportOptions {
        date: NaiveDate::from_ymd_opt(2026, 2, 28),
        utc_offset: FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| panic!("offset")),
        start_us: T0_US,
    }
}

fn imported(name: &str) -> Imported {
    let bytes = bytes_of(name);
    import(&bytes, None, &options()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn frame(ts_us: i64, direction: Direction, bytes: &[u8]) -> CapturedFrame {
    CapturedFrame {
        ts_us,
        direction,
        bytes: bytes.to_vec(),
    }
}

fn skipped_lines(imported: &Imported) -> Vec<usize> {
    imported.skipped.iter().map(|s| s.line).collect()
}

#[test]
fn socat_chunks_become_frames_at_local_time() {
    let log = imported("socat.log");
    assert_eq!(log.format, Format::Socat);
    assert!(!log.synthesized_times);
    // 10:00:05 at UTC+8 is 02:00:05Z; socat 1.7.4 prints µs padded to nine digits, so
    // .000002000 is 2 000 µs. The reply came in two chunks 4.7 ms apart: one frame, stamped
    // at its last chunk (.000041200 → 41 200 µs).
    let t5 = T0_US + 5_000_000;
    let t15 = T0_US + 15_000_000;
    assert_eq!(
        log.frames,
        [
            frame(t5 + 2_000, Direction::Outbound, &REQUEST),
            frame(t5 + 41_200, Direction::Inbound, &REPLY),
            frame(t15 + 2_000, Direction::Outbound, &REQUEST),
            frame(t15 + 38_000, Direction::Inbound, &REPLY),
        ]
    );
    // line 10: socat's own warning; line 12: "0x" is not a hex byte; line 11: its header
    // announced 8 bytes and none could be read
    assert_eq!(skipped_lines(&log), [10, 12, 11]);
}

fn sscom_frames(log: &Imported) {
    // 23:59:58.926 on 2026-02-28 at UTC+8 = 15:59:58.926Z
    let t = 1_772_294_398_926_000;
    let request = [0x01, 0x03, 0x00, 0x00, 0x00, 0x01, 0x84, 0x0A];
    // one register 0x0046 = 70
    let reply = [0x01, 0x03, 0x02, 0x00, 0x46, 0x39, 0xB6];
    let damaged = [0x01, 0x03, 0x02, 0x00, 0x46, 0x39, 0x13];
    assert_eq!(
        log.frames,
        [
            frame(t, Direction::Outbound, &request),
            frame(t + 38_000, Direction::Inbound, &reply),
            frame(t + 1_000_000, Direction::Outbound, &request),
            frame(t + 1_038_000, Direction::Inbound, &damaged),
            // past local midnight: the next day, 2 s after the first line
            frame(t + 2_000_000, Direction::Outbound, &request),
            frame(t + 2_038_000, Direction::Inbound, &reply),
        ]
    );
    assert_eq!(skipped_lines(log), [6]);
    let (exchanges, stats) = pair(&log.frames);
    assert_eq!((stats.requests, stats.replies, stats.crc_errors), (3, 2, 1));
    assert_eq!(exchanges[1].answer, Answer::Damaged);
}

#[test]
fn sscom_in_utf8_and_gbk() {
    for name in ["sscom-utf8.log", "sscom-gbk.log"] {
        let log = imported(name);
        assert_eq!(log.format, Format::Sscom, "{name}");
        sscom_frames(&log);
    }
    let no_date = ImportOptions {
        date: None,
        ..options()
    };
    let error = import(&bytes_of("sscom-utf8.log"), None, &no_date)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(error.contains("--date"), "{error}");
}

#[test]
fn libmodbus_debug_gets_made_up_times_in_order() {
    let log = imported("libmodbus.log");
    assert_eq!(log.format, Format::Libmodbus);
    assert!(log.synthesized_times);
    // request n at start + n s, reply 10 ms later; the second request timed out
    assert_eq!(
        log.frames,
        [
            frame(T0_US, Direction::Outbound, &REQUEST),
            frame(T0_US + 10_000, Direction::Inbound, &REPLY),
            frame(T0_US + 1_000_000, Direction::Outbound, &REQUEST),
            frame(T0_US + 2_000_000, Direction::Outbound, &REQUEST),
            frame(T0_US + 2_010_000, Direction::Inbound, &REPLY),
        ]
    );
    // "[01][03][00" is cut off; the chatter lines are not reported
    assert_eq!(skipped_lines(&log), [8]);
    let (_, stats) = pair(&log.frames);
    assert_eq!((stats.requests, stats.replies, stats.silent), (3, 2, 1));
}

#[test]
fn modbus_poll_traffic() {
    let log = imported("modbus-poll.log");
    assert_eq!(log.format, Format::ModbusPoll);
    let request = [0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD];
    assert_eq!(log.frames[0], frame(T0_US, Direction::Outbound, &request));
    // 10 registers holding 0..9: byte count 0x14 = 20
    assert_eq!(&log.frames[1].bytes[..5], &[0x01, 0x03, 0x14, 0x00, 0x00]);
    assert!(crc_ok(&log.frames[1].bytes));
    // the cut-off reply "01 03 14 00" is kept as a record of its own
    assert_eq!(log.frames[3].bytes, [0x01, 0x03, 0x14, 0x00]);
    assert_eq!(skipped_lines(&log), [7]);
    let (exchanges, stats) = pair(&log.frames);
    let answers: Vec<_> = exchanges
        .iter()
        .map(|e| matches!(e.answer, Answer::Data(_)))
        .collect();
    assert_eq!(answers, [true, false, true]);
    assert_eq!(stats.noise_bytes, 4);
}

#[test]
fn raw_stream_frames_are_found_between_noise() {
    let log = imported("raw.bin");
    assert_eq!(log.format, Format::Raw);
    let exception = [0x01, 0x83, 0x02, 0xC0, 0xF1];
    let found: Vec<_> = log
        .frames
        .iter()
        .map(|f| (f.direction, f.bytes.clone()))
        .collect();
    assert_eq!(
        found,
        [
            (Direction::Outbound, REQUEST.to_vec()),
            (Direction::Inbound, REPLY.to_vec()),
            (Direction::Outbound, REQUEST.to_vec()),
            (Direction::Inbound, exception.to_vec()),
            (Direction::Outbound, REQUEST.to_vec()),
            (Direction::Outbound, REQUEST.to_vec()),
            (Direction::Inbound, REPLY.to_vec()),
        ]
    );
    // byte offsets of the noise: 3 bytes at 0, 1 at 11, 2 at 21, the 6-byte cut reply at
    // 44, 2 trailing at 67
    assert_eq!(skipped_lines(&log), [0, 11, 21, 44, 67]);
    let (_, stats) = pair(&log.frames);
    assert_eq!(
        (
            stats.requests,
            stats.replies,
            stats.exceptions,
            stats.silent
        ),
        (4, 3, 1, 1)
    );
}

#[test]
fn formats_are_told_apart_by_content() {
    let cases = [
        ("socat.log", Format::Socat),
        ("sscom-utf8.log", Format::Sscom),
        ("sscom-gbk.log", Format::Sscom),
        ("libmodbus.log", Format::Libmodbus),
        ("modbus-poll.log", Format::ModbusPoll),
        ("raw.bin", Format::Raw),
    ];
    for (name, format) in cases {
        assert_eq!(detect(&bytes_of(name)), Some(format), "{name}");
    }
    let golden =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/serial/bus-20min.pcapng");
    let capture = std::fs::read(golden).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(detect(&capture), Some(Format::Pcap));
    assert_eq!(detect(b"hello\nworld\n"), None);
}

#[test]
fn a_log_with_nothing_readable_is_an_error_naming_the_first_bad_line() {
    let error = import(b"[10:00:00.000]garbage\n", Some(Format::Sscom), &options())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        error.starts_with("no frame could be read from this sscom log"),
        "{error}"
    );
    assert!(error.contains("line 1"), "{error}");
}

fn cemsd(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cemsd"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cemsd: {e}"))
}

#[test]
fn convert_writes_the_capture_format() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = dir.path().join("socat.pcapng");
    let input = sample("socat.log");
    let path = |p: &Path| p.to_string_lossy().into_owned();
    let run = cemsd(&[
        "capture",
        "convert",
        &path(&input),
        &path(&out),
        "--utc-offset",
        "+08:00",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("line 12: skipped"), "{stderr}");
    let (frames, damage) = read_file(&out).unwrap_or_else(|e| panic!("{e}"));
    assert!(damage.is_none());
    assert_eq!(frames, imported("socat.log").frames);

    // local times without an offset are refused with the fix
    let run = cemsd(&["capture", "convert", &path(&input), &path(&out)]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("--utc-offset"));

    // nothing readable: a clear error and a non-zero exit
    let junk = dir.path().join("junk.log");
    std::fs::write(&junk, "Tx:nonsense\n").unwrap_or_else(|e| panic!("{e}"));
    let run = cemsd(&[
        "capture",
        "convert",
        &path(&junk),
        &path(&out),
        "--format",
        "modbus-poll",
        "--start",
        "2026-03-01T10:00:00+08:00",
    ]);
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("no frame could be read"), "{stderr}");
}

fn with_crc(body: &[u8]) -> Vec<u8> {
    [body, &crc16(body).to_le_bytes()].concat()
}

/// A read request or a register reply of a random unit, CRC included.
fn valid_frame() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (1u8..=247, 3u8..=4, any::<u16>(), 1u16..=125).prop_map(
            |(unit, function, start, count)| {
                let [sh, sl] = start.to_be_bytes();
                let [ch, cl] = count.to_be_bytes();
                with_crc(&[unit, function, sh, sl, ch, cl])
            }
        ),
        (
            1u8..=247,
            3u8..=4,
            prop::collection::vec(any::<u8>(), 1..=10)
        )
            .prop_map(|(unit, function, words)| {
                let mut body = vec![unit, function, (words.len() * 2) as u8];
                for w in words {
                    body.extend([0, w]);
                }
                with_crc(&body)
            }),
    ]
}

/// Offsets and lengths of CRC-valid frames anywhere in `bytes`, in either reading.
fn chance_frames(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    for at in 0..bytes.len() {
        for wire in [Wire::Request, Wire::Response] {
            if let FrameLen::Known(len) = frame_len(&bytes[at..], wire) {
                if bytes.get(at..at + len).is_some_and(crc_ok) {
                    found.push((at, len));
                }
            }
        }
    }
    found
}

proptest! {
    /// Random noise before, between and after valid frames never costs a valid frame —
    /// unless the noise itself forms a CRC-valid frame overlapping one (1 in 65 536 per
    /// offset), where the bytes are genuinely ambiguous; such cases are set aside.
    #[test]
    fn noise_around_valid_frames_never_loses_one(
        parts in prop::collection::vec(
            (prop::collection::vec(any::<u8>(), 0..24), valid_frame()),
            1..8,
        ),
        tail in prop::collection::vec(any::<u8>(), 0..24),
    ) {
        let mut stream = Vec::new();
        let mut planted = Vec::new();
        for (noise, frame) in &parts {
            stream.extend(noise);
            planted.push((stream.len(), frame.len()));
            stream.extend(frame);
        }
        stream.extend(&tail);
        let overlaps = |(a, al): (usize, usize), (b, bl): (usize, usize)| a < b + bl && b < a + al;
        let ambiguous = chance_frames(&stream).into_iter().any(|c| {
            !planted.contains(&c) && planted.iter().any(|&p| overlaps(c, p))
        });
        prop_assume!(!ambiguous);
        let found: Vec<_> = find_frames(&stream).iter().map(|f| (f.offset, f.len)).collect();
        for p in &planted {
            prop_assert!(found.contains(p), "lost the frame at {:?}; found {:?}", p, found);
        }
    }
}
