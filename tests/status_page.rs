//! The status page in a real browser (Debian's headless Chromium; scripts/test installs it):
//! against a running `cemsd run` the values shown are the store's, and a stack limit is
//! drawn on a chart of corrected values. Screenshots go to the test output directory.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cemsd::model::{Flag, FlagSet, Quantity, Timestamp, Unit};
use cemsd::ops::state::{Generation, OpsState};
use cemsd::ops::status::{StackLimits, ValueKind};
use cemsd::pipeline::live::Live;
use cemsd::store::{Query, Record, RecordKind, StoreReader, StoreWriter, WriterOptions};
use support::browser::chromium;
use support::daemon::{write_config, Daemon};
use support::http::{http_get, http_get_raw};
use support::ports::free_port;
use support::store::{count_readings, open, try_open};
use support::time::eventually;

fn screenshot(url: &str, name: &str) {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_file(&path);
    chromium(url, &format!("--screenshot={}", path.display()));
    assert!(path.exists(), "no screenshot at {}", path.display());
    println!("screenshot: {}", path.display());
}

/// The value of attribute `name` in the tag text `tag`.
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}

/// Text inside the first element that starts with `open` in `html`.
fn inner<'a>(html: &'a str, open: &str) -> Option<&'a str> {
    let start = html.find(open)?;
    let body = &html[start..];
    let text_start = body.find('>')? + 1;
    let text_end = body[text_start..].find('<')? + text_start;
    Some(&body[text_start..text_end])
}

#[derive(Debug)]
struct Shown {
    stack: String,
    device: String,
    channel: String,
    seq: u64,
    ts: i64,
    value: String,
    unit: String,
    flag: String,
}

/// Every `<tr class="reading">` of the rendered page.
fn shown_readings(dom: &str) -> Vec<Shown> {
    dom.split("<tr class=\"reading\"")
        .skip(1)
        .map(|row| {
            let row = &row[..row.find("</tr>").unwrap_or(row.len())];
            let tag = &row[..row.find('>').unwrap_or(0)];
            let get = |name| attr(tag, name).unwrap_or_else(|| panic!("no {name} in {tag}"));
            Shown {
                stack: get("data-stack").to_string(),
                device: get("data-device").to_string(),
                channel: get("data-channel").to_string(),
                seq: get("data-seq").parse().unwrap_or(0),
                ts: get("data-ts").parse().unwrap_or(0),
                value: inner(row, "<td class=\"value\"").unwrap_or("").to_string(),
                unit: inner(row, "<td class=\"unit\"").unwrap_or("").to_string(),
                flag: inner(row, "<span class=\"flag").unwrap_or("").to_string(),
            }
        })
        .collect()
}

const CONFIG: &str = r#"
[site]
id = "browser-test"
name = "Browser test plant"

[http]
listen = "127.0.0.1:HTTP"

[store]
path = "data/cemsd.db"

[[stack]]
id = "unit1"
name = "Unit 1"

[[stack]]
id = "unit2"
name = "Unit 2"

[[simulate]]
profile = "thermo-43i"
listen = "127.0.0.1:SIM_A"

[[simulate]]
profile = "sdl-model-1080"
listen = "127.0.0.1:SIM_B"

[[device]]
id = "so2"
profile = "thermo-43i"
stack = "unit1"
transport = "tcp"
address = "127.0.0.1:SIM_A"
poll_interval = "1s"
timeout = "300ms"

[[device]]
id = "multi"
profile = "sdl-model-1080"
stack = "unit2"
transport = "tcp"
address = "127.0.0.1:SIM_B"
poll_interval = "1s"
timeout = "300ms"

[[device]]
id = "dead"
profile = "thermo-42i"
stack = "unit2"
transport = "tcp"
address = "127.0.0.1:DEAD"
poll_interval = "1s"
timeout = "200ms"
"#;

#[test]
fn the_page_shows_the_stores_latest_values_in_chromium() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let http = free_port();
    let text = CONFIG
        .replace("HTTP", &http.to_string())
        .replace("SIM_A", &free_port().to_string())
        .replace("SIM_B", &free_port().to_string())
        .replace("DEAD", &free_port().to_string());
    let config = write_config(dir.path(), "site.toml", &text);
    let mut daemon = Daemon::start(&config, dir.path(), &[]);
    let db = dir.path().join("data/cemsd.db");
    let count = |device: &str| count_readings(&db, device);
    assert!(
        eventually(Duration::from_secs(30), || count("so2") >= 2
            && count("multi") >= 10
            && count("dead") >= 2),
        "not every device committed:\n{}",
        daemon.log_text()
    );
    // Each stack's readings show when it is opened; the overview lists every device.
    let url = format!("http://127.0.0.1:{http}/?lang=en");
    let overview = chromium(&url, "--dump-dom");
    let dom = ["unit1", "unit2"]
        .map(|stack| chromium(&format!("{url}#stack={stack}"), "--dump-dom"))
        .join("\n");
    let shown = shown_readings(&dom);
    screenshot(&format!("{url}#stack=unit2"), "status-page.png");

    let store = try_open(&db).unwrap_or_else(|| panic!("open the store"));
    let wire_units = cemsd::config::load(&config)
        .unwrap_or_else(|e| panic!("{e}"))
        .config
        .wire_units;
    // The same channels as the store has, per device: 1 for the 43i, 5 for the 1080, and
    // the dead 42i's channels with flag B and no value.
    let latest = store.latest().unwrap_or_else(|e| panic!("latest: {e}"));
    let channels = |rows: Vec<(String, String, String)>| rows.into_iter().collect::<BTreeSet<_>>();
    assert_eq!(
        channels(
            shown
                .iter()
                .map(|s| (s.stack.clone(), s.device.clone(), s.channel.clone()))
                .collect()
        ),
        channels(
            latest
                .iter()
                .map(|s| (
                    s.record.stack.to_string(),
                    s.record.device.to_string(),
                    s.record.channel.to_string()
                ))
                .collect()
        ),
        "page:\n{dom}"
    );
    for s in &shown {
        let rows = store
            .query(&Query {
                kind: Some(RecordKind::Reading),
                stack: Some(s.stack.clone()),
                device: Some(s.device.clone()),
                channel: Some(s.channel.clone()),
                from: Some(Timestamp(s.ts)),
                to: Some(Timestamp(s.ts + 1)),
                ..Query::default()
            })
            .unwrap_or_else(|e| panic!("query: {e}"));
        let row = rows
            .iter()
            .find(|r| r.seq == s.seq)
            .unwrap_or_else(|| panic!("{s:?} is not in the store"));
        let r = &row.record;
        // A raw value is shown in the unit it arrived in (the 43i's SO2, wet with no moisture
        // on its stack, in ppb); measured and corrected ones in the record's. This compared
        // with the record's unit always, which put raw ppb under mg/m3.
        let unit = match ValueKind::of(r) {
            Some((ValueKind::Raw, _)) => wire_units
                .get(&(r.device.to_string(), r.channel.to_string()))
                .copied(),
            _ => r.unit,
        };
        assert_eq!(s.unit, unit.map(|u| u.symbol()).unwrap_or(""), "{s:?}");
        assert_eq!(s.flag, r.flags.primary().to_string(), "{s:?}");
        match ValueKind::of(r) {
            Some((_, value)) => {
                let shown: f64 = s
                    .value
                    .parse()
                    .unwrap_or_else(|_| panic!("not a number: {s:?}"));
                // Two decimals below 1000, none above: half a unit of the last digit.
                let tolerance = if value.abs() >= 1000.0 { 0.5 } else { 0.005 } + 1e-9;
                assert!((shown - value).abs() <= tolerance, "{s:?} vs {value}");
            }
            None => assert_eq!((s.value.as_str(), s.flag.as_str()), ("–", "B"), "{s:?}"),
        }
    }
    assert!(
        shown.iter().any(|s| s.device == "dead" && s.flag == "B"),
        "the dead device shows flag B"
    );
    assert!(
        shown
            .iter()
            .any(|s| s.device == "so2" && s.unit == "ppb" && s.flag == "N"),
        "the 43i's raw SO2 shows in ppb with its own flag: {shown:?}"
    );
    assert!(
        dom.contains("no moisture source"),
        "the reason its dry value is missing:\n{dom}"
    );
    // The Chinese page words the same note in Chinese; the stored text stays in the tooltip.
    let zh = chromium(
        &format!("http://127.0.0.1:{http}/?lang=zh#stack=unit1"),
        "--dump-dom",
    );
    assert!(
        zh.contains("未配置烟气湿度数据来源") && !zh.contains(">no moisture source"),
        "the note in Chinese:\n{zh}"
    );
    for (device, state) in [
        ("so2", "connected"),
        ("multi", "connected"),
        ("dead", "down"),
    ] {
        assert!(
            overview.contains(&format!(
                "<tr class=\"device-row\" data-device=\"{device}\" data-stack=\"unit{}\" data-connection=\"{state}\">",
                if device == "so2" { 1 } else { 2 }
            )),
            "{device} listed as {state}:\n{overview}"
        );
    }
    // The first start put every configured item on the parameter-change trail: the panel
    // shows it, each row saying how the change came (at start).
    assert!(
        overview.contains("<section id=\"audit\">")
            && overview.contains("<tr class=\"audit-row\">")
            && overview.contains(">start</td>"),
        "audit panel:\n{overview}"
    );
    assert!(!overview.contains("cannot reach the daemon"), "{overview}");
    assert!(
        !overview.contains("class=\"reading\""),
        "readings and charts wait until a stack is opened:\n{overview}"
    );
    // A chart per pollutant channel of the opened stack, drawn from /api/series.
    assert!(
        dom.contains("data-key=\"unit1/so2/so2\""),
        "no SO2 chart:\n{dom}"
    );
    assert!(dom.contains("class=\"mean"), "no chart line drawn:\n{dom}");
    let (code, _) = http_get(http, "/api/series?stack=unit1").unwrap_or_else(|| panic!("GET"));
    assert_eq!(code, 400, "missing parameters are a client error");
    // The page's files travel gzipped, to Chromium above and to a client that names no
    // coding; one that refuses gzip is told so.
    for path in ["/", "/status.js", "/i18n.js"] {
        let source = match path {
            "/" => include_str!("../src/ops/page/index.html"),
            "/status.js" => include_str!("../src/ops/page/status.js"),
            _ => include_str!("../src/ops/page/i18n.js"),
        };
        for asked in ["Accept-Encoding: gzip, deflate, br\r\n", ""] {
            let (head, gzipped) =
                http_get_raw(http, path, asked).unwrap_or_else(|| panic!("GET {path}"));
            assert!(
                head.starts_with("HTTP/1.1 200")
                    && head.to_ascii_lowercase().contains("content-encoding: gzip"),
                "{path} ({asked:?}): {head}"
            );
            let mut inflated = String::new();
            std::io::Read::read_to_string(
                &mut flate2::read::GzDecoder::new(&gzipped[..]),
                &mut inflated,
            )
            .unwrap_or_else(|e| panic!("{path}: not gzip: {e}"));
            assert_eq!(inflated, source, "{path}");
        }
        let (head, _) = http_get_raw(http, path, "Accept-Encoding: identity\r\n")
            .unwrap_or_else(|| panic!("GET {path} identity"));
        assert!(head.starts_with("HTTP/1.1 406"), "{path}: {head}");
    }

    daemon.stop(Duration::from_secs(15));
}

fn corrected(
    kind: RecordKind,
    ts: i64,
    stack: &str,
    device: &str,
    channel: &str,
    q: Quantity,
    value: f64,
) -> Record {
    let mut r = Record::new(
        kind,
        Timestamp(ts),
        stack.into(),
        device.into(),
        channel.into(),
    );
    r.quantity = Some(q);
    r.unit = Some(Unit::MgPerM3);
    r.raw = Some(value * 2.0);
    r.corrected = Some(value);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_limit_is_drawn_on_charts_of_corrected_values() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let db = dir.path().join("cemsd.db");
    let now = chrono::Utc::now().timestamp_millis();
    let hour = 3_600_000;
    let mut store = open(&db);
    // The day's chart draws minute records; the table the latest reading.
    let mut records = Vec::new();
    for kind in [RecordKind::Reading, RecordKind::Minute] {
        let mut raw_nox = corrected(kind, now - hour, "unit2", "nox", "nox", Quantity::NOx, 40.0);
        raw_nox.corrected = None;
        raw_nox.flags = FlagSet::of(Flag::T);
        records.extend([
            corrected(
                kind,
                now - 2 * hour,
                "unit1",
                "so2",
                "so2",
                Quantity::SO2,
                20.0,
            ),
            corrected(kind, now - hour, "unit1", "so2", "so2", Quantity::SO2, 30.0),
            raw_nox,
        ]);
    }
    store
        .append(&records)
        .unwrap_or_else(|e| panic!("append: {e}"));
    let (writer, writer_thread) = StoreWriter::spawn(store, WriterOptions::default())
        .unwrap_or_else(|e| panic!("writer: {e}"));
    let reader = StoreReader::open(&db).unwrap_or_else(|e| panic!("reader: {e}"));
    let config_text = r#"
[site]
id = "limits"
[[stack]]
id = "unit1"
[[stack]]
id = "unit2"
[[device]]
id = "so2"
profile = "thermo-43i"
stack = "unit1"
transport = "tcp"
address = "127.0.0.1:1"
[[device]]
id = "nox"
profile = "thermo-42i"
stack = "unit2"
transport = "tcp"
address = "127.0.0.1:1"
"#;
    let config = cemsd::config::parse(&dir.path().join("site.toml"), config_text)
        .unwrap_or_else(|e| panic!("config: {e}"))
        .config;
    let mut limits = StackLimits::new();
    limits.insert(("unit1".into(), Quantity::SO2), 35.0);
    limits.insert(("unit2".into(), Quantity::NOx), 50.0);
    let generation = Arc::new(Generation::new(Arc::new(config), Live::new()).with_limits(limits));
    let (_generation_tx, generation_rx) = tokio::sync::watch::channel(generation);
    let state = OpsState::new(generation_rx, writer.clone(), reader, None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(cemsd::ops::http::serve(listener, state, stop_rx));

    let url = format!("http://127.0.0.1:{port}/?lang=en&range=day");
    let page = url.clone();
    let dom = tokio::task::spawn_blocking(move || {
        let dom = ["unit1", "unit2"]
            .map(|stack| chromium(&format!("{page}#stack={stack}"), "--dump-dom"))
            .join("\n");
        screenshot(&format!("{page}#stack=unit1"), "status-page-limits.png");
        dom
    })
    .await
    .unwrap_or_else(|e| panic!("chromium task: {e}"));

    let chart = |key: &str| {
        let start = dom
            .find(&format!("data-key=\"{key}\""))
            .unwrap_or_else(|| panic!("no chart {key}:\n{dom}"));
        let end = dom[start..].find("</svg>").map_or(dom.len(), |e| start + e);
        dom[start..end].to_string()
    };
    let so2 = chart("unit1/so2/so2");
    let line = so2
        .split("<line class=\"limit\"")
        .nth(1)
        .unwrap_or_else(|| panic!("no limit line on the corrected SO2 chart:\n{so2}"));
    // Values 20 and 30, limit 35: the axis runs 0 .. 35 × 1.1 = 38.5 over 94 px from y = 8,
    // so the limit sits at 8 + (38.5 − 35) / 38.5 × 94 = 16.545 → "16.5".
    assert_eq!(attr(line, "y1"), Some("16.5"), "{line}");
    assert_eq!(attr(line, "data-limit"), Some("35"), "{line}");
    assert!(so2.contains("Limit 35.00"), "limit label: {so2}");
    let nox = chart("unit2/nox/nox");
    assert!(
        nox.contains("class=\"mean"),
        "the NOx chart is drawn:\n{nox}"
    );
    assert!(
        !nox.contains("class=\"limit\""),
        "raw values are not comparable with the limit, so none is drawn:\n{nox}"
    );
    // The table shows the corrected SO2 value, 30.00 mg/m3.
    let shown = shown_readings(&dom);
    let so2_row = shown
        .iter()
        .find(|s| s.device == "so2")
        .unwrap_or_else(|| panic!("no so2 row:\n{dom}"));
    assert_eq!(
        (so2_row.value.as_str(), so2_row.unit.as_str()),
        ("30.00", "mg/m3")
    );

    let _ = stop_tx.send(true);
    let _ = server.await;
    let _ = writer.shutdown().await;
    let _ = writer_thread.join();
}
