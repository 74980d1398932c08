//! The HJ 75 report tables of a day, a month and a year, built from hour, day and minute records
//! written straight into a real store, compared cell by cell with values worked out by hand;
//! totals of a month equal the sum of its days and a year the sum of its months; the XLSX read
//! back by Python's openpyxl holds the CSV's cells; the HTML printed by headless Chromium.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use cemsd::config;
use cemsd::model::{Flag, FlagSet, Quantity, Timestamp, Unit};
use cemsd::report::{self, Lang, ReportPeriod, TableReport};
use cemsd::store::{Record, RecordKind, Store, StoreOptions};
use support::browser::chromium;

const CONFIG: &str = r#"[site]
id = "plant"
name = "示范电厂"
utc_offset = "+08:00"

[[stack]]
id = "u1"
source_type = "coal_boiler"
duct_area_m2 = 20.0
"#;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// 2026-03-10 00:00 at UTC+8.
const MARCH_10: i64 = 1_773_072_000_000;
/// 2026-02-01 00:00 at UTC+8.
const FEB_1: i64 = MARCH_10 - 37 * DAY;
/// 2026-03-01 00:00 at UTC+8.
const MARCH_1: i64 = MARCH_10 - 9 * DAY;

struct Period<'a> {
    kind: RecordKind,
    stack: &'a str,
    device: &'a str,
    quantity: Quantity,
    unit: Unit,
    start: i64,
    flag: Flag,
    measured: f64,
    corrected: Option<f64>,
    rate: Option<f64>,
    count: u32,
}

fn record(p: Period<'_>) -> Record {
    let len = match p.kind {
        RecordKind::Minute => 60_000,
        RecordKind::Hour => HOUR,
        _ => DAY,
    };
    let mut r = Record::new(
        p.kind,
        Timestamp(p.start),
        Arc::from(p.stack),
        Arc::from(p.device),
        Arc::from(""),
    );
    r.end = Some(Timestamp(p.start + len));
    r.quantity = Some(p.quantity);
    r.unit = Some(p.unit);
    r.flags = FlagSet::of(p.flag);
    r.measured = Some(p.measured);
    r.corrected = p.corrected;
    r.rate = p.rate;
    r.count = Some(p.count);
    r
}

fn so2(kind: RecordKind, stack: &str, start: i64, flag: Flag, values: (f64, f64, f64)) -> Record {
    record(Period {
        kind,
        stack,
        device: "",
        quantity: Quantity::SO2,
        unit: Unit::MgPerM3,
        start,
        flag,
        measured: values.0,
        corrected: Some(values.1),
        rate: Some(values.2),
        count: if kind == RecordKind::Day { 24 } else { 60 },
    })
}

fn aux(quantity: Quantity, unit: Unit, start: i64, value: f64) -> Record {
    record(Period {
        kind: RecordKind::Hour,
        stack: "u1",
        device: "",
        quantity,
        unit,
        start,
        flag: Flag::N,
        measured: value,
        corrected: None,
        rate: None,
        count: 60,
    })
}

/// The day 2026-03-10: hour h has SO2 20+h measured, 24+h corrected, 10+h/2 kg/h, O2 7 % and
/// flow 400 000 + 1000·h m3/h; 02:00 SO2 is calibrating (C), 03:00 has no record at all. A
/// logger MN001 sent SO2 and O2 minutes: 30 minutes (01:40–02:09) never came, 15 (10:00–10:14)
/// carry SO2 flag C.
fn day_records() -> Vec<Record> {
    let mut records = Vec::new();
    for h in 0..24 {
        if h == 3 {
            continue;
        }
        let start = MARCH_10 + h * HOUR;
        let x = h as f64;
        let flag = if h == 2 { Flag::C } else { Flag::N };
        records.push(so2(
            RecordKind::Hour,
            "u1",
            start,
            flag,
            (20.0 + x, 24.0 + x, 10.0 + x / 2.0),
        ));
        records.push(aux(Quantity::O2, Unit::PercentVol, start, 7.0));
        records.push(aux(
            Quantity::Flow,
            Unit::CubicMetrePerHour,
            start,
            400_000.0 + 1000.0 * x,
        ));
    }
    // corrected SO2 40–47 mg/m3 from 16:00 on is above a 35 mg/m3 limit: an event still open
    let mut event = Record::new(
        RecordKind::Exceedance,
        Timestamp(MARCH_10 + 16 * HOUR),
        Arc::from("u1"),
        Arc::from(""),
        Arc::from(""),
    );
    event.quantity = Some(Quantity::SO2);
    event.unit = Some(Unit::MgPerM3);
    event.max = Some(47.0);
    event.corrected = Some(47.0);
    event.count = Some(8);
    event.note = Some("limit=35 window_hours=1".into());
    records.push(event);
    for m in 0..1440 {
        if (100..130).contains(&m) {
            continue;
        }
        let start = MARCH_10 + m * 60_000;
        let flag = if (600..615).contains(&m) {
            Flag::C
        } else {
            Flag::N
        };
        for (quantity, unit, flag) in [
            (Quantity::SO2, Unit::MgPerM3, flag),
            (Quantity::O2, Unit::PercentVol, Flag::N),
        ] {
            records.push(record(Period {
                kind: RecordKind::Minute,
                stack: "u1",
                device: "MN001",
                quantity,
                unit,
                start,
                flag,
                measured: 1.0,
                corrected: None,
                rate: None,
                count: 1,
            }));
        }
    }
    records
}

/// February 2026 at the outlet u1 and the inlet u1.inlet, and 1–2 March at the outlet. Day d:
/// SO2 10+d measured, 12+d corrected, d kg/h every hour; the inlet 1000 kg/h. 10 February has
/// no record at either point; on 20 February 05:00–07:59 the outlet analyser was faulty (D),
/// the day valid with 21 hours. 1–2 March: 15, 16, 5 kg/h.
fn month_records() -> Vec<Record> {
    let mut records = Vec::new();
    for d in 1..=28i64 {
        if d == 10 {
            continue;
        }
        let day = FEB_1 + (d - 1) * DAY;
        let x = d as f64;
        for h in 0..24 {
            let flag = if d == 20 && (5..8).contains(&h) {
                Flag::D
            } else {
                Flag::N
            };
            records.push(so2(
                RecordKind::Hour,
                "u1",
                day + h * HOUR,
                flag,
                (10.0 + x, 12.0 + x, x),
            ));
            records.push(so2(
                RecordKind::Hour,
                "u1.inlet",
                day + h * HOUR,
                Flag::N,
                (2000.0, 2400.0, 1000.0),
            ));
        }
        let mut day_record = so2(RecordKind::Day, "u1", day, Flag::N, (10.0 + x, 12.0 + x, x));
        day_record.count = Some(if d == 20 { 21 } else { 24 });
        records.push(day_record);
    }
    for d in 0..2 {
        let day = MARCH_1 + d * DAY;
        for h in 0..24 {
            records.push(so2(
                RecordKind::Hour,
                "u1",
                day + h * HOUR,
                Flag::N,
                (15.0, 16.0, 5.0),
            ));
        }
        records.push(so2(RecordKind::Day, "u1", day, Flag::N, (15.0, 16.0, 5.0)));
    }
    records
}

fn store_with(records: &[Record]) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut store = Store::open(&dir.path().join("c.db"), StoreOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    store.append(records).unwrap_or_else(|e| panic!("{e}"));
    (dir, store)
}

fn site() -> config::SiteConfig {
    config::parse(Path::new("site.toml"), CONFIG)
        .unwrap_or_else(|e| panic!("{e}"))
        .config
}

fn table(store: &Store, period: ReportPeriod, now: i64) -> TableReport {
    report::build_table(store, &site(), period, None, Timestamp(now))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn period(p: Result<ReportPeriod, String>) -> ReportPeriod {
    p.unwrap_or_else(|e| panic!("{e}"))
}

/// The CSV's lines from `from` (a line starting with it) for `n` lines.
fn lines_from<'a>(csv: &'a str, from: &str, n: usize) -> Vec<&'a str> {
    let lines: Vec<&str> = csv.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with(from))
        .unwrap_or_else(|| panic!("no line {from:?} in\n{csv}"));
    lines[at..(at + n).min(lines.len())].to_vec()
}

fn output_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-output");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    dir
}

#[test]
fn a_day_table_cell_by_cell() {
    let (_dir, store) = store_with(&day_records());
    let built = table(
        &store,
        period(ReportPeriod::day("2026-03-10")),
        MARCH_10 + 2 * DAY,
    );
    let csv = report::render_csv(&built, Lang::Zh);

    let header = lines_from(&csv, "烟气排放连续监测小时平均值日报表", 4);
    assert_eq!(
        header,
        [
            "烟气排放连续监测小时平均值日报表 2026-03-10",
            "企业,示范电厂,排放口,u1,时区,+08:00",
            "时间,二氧化硫,,,氧含量,标干流量",
            ",实测浓度(mg/m3),折算浓度(mg/m3),排放速率(kg/h),(%),(m3/h)",
        ]
    );
    let mut want: Vec<String> = Vec::new();
    for h in 0..24 {
        let x = h as f64;
        want.push(match h {
            // calibrating: the flag, never a number; the rate substituted as for 03:00
            2 => "02,C,C,11.250*,7.00,402000".to_string(),
            // no record: the bracketing hours 01:00 (10.5 kg/h) and 04:00 (12 kg/h) → 11.25
            3 => "03,—,—,11.250*,—,—".to_string(),
            _ => format!(
                "{h:02},{:.2},{:.2},{:.3},7.00,{}",
                20.0 + x,
                24.0 + x,
                10.0 + x / 2.0,
                400_000 + 1000 * h
            ),
        });
    }
    // valid SO2 hours: all but 02 and 03. Σ(20+h) = 480 + 276 − 45 = 711 over 22 hours
    // = 32.318; corrected 711 + 88 = 799 / 22 = 36.318; rates Σ(10 + h/2) = 240 + 138 − 22.5
    // = 355.5 kg / 22 = 16.159. Flow over the 23 hours with a record: 9 200 000 + 273 000
    // = 9 473 000 / 23 = 411 869.6. Day's SO2: 355.5 kg measured + 2 × 11.25 substituted
    // = 378 kg = 0.378 t.
    want.extend(
        [
            "平均值,32.32,36.32,16.159,7.00,411870",
            "最大值,43.00,47.00,21.500,7.00,423000",
            "最小值,20.00,24.00,10.000,7.00,400000",
            "排放量(t),,,0.378*",
        ]
        .map(String::from),
    );
    let rows = lines_from(&csv, "00,", 28);
    assert_eq!(rows, want);

    let totals = lines_from(&csv, "污染物,", 2);
    assert_eq!(
        totals,
        [
            "污染物,实测排放量(t),补遗排放量(t),排放总量(t),有效小时,无效小时,缺失小时,补遗小时",
            // 22 valid, 1 invalid (C), 1 missing, 2 substituted; 0.3555 and 0.0225 t rounded
            // half to even (GB/T 8170)
            "二氧化硫,0.356,0.022,0.378*,22,1,1,2",
        ]
    );
    assert_eq!(
        lines_from(&csv, "超标,", 2),
        [
            "超标,开始,结束,峰值折算浓度(mg/m3),超标小时数,说明",
            "二氧化硫,2026-03-10 16:00,未结束,47.00,8,限值 35 mg/m3，按 1 小时均值判定",
        ]
    );
    // 1440 minutes expected; 30 never came: 1410 received; 15 flagged C: 1395 valid.
    // 1410/1440 = 97.92 %, 1395/1410 = 98.94 %
    let rates = lines_from(&csv, "数据来源,", 3);
    assert_eq!(
        rates,
        [
            "数据来源,日期,应收分钟数,实收分钟数,有效分钟数,数据传输率(%),数据有效率(%)",
            "排放口 u1,全期,1440,1410,1395,97.92,98.94",
            "数采仪 MN001,全期,1440,1410,1395,97.92,98.94",
        ]
    );

    // over March so far (now 12 March 00:00): per day, and 11 days × 1440 = 15 840 minutes
    // expected for the month, 1410 / 15 840 = 8.90 %; days not begun expect nothing
    let march = table(
        &store,
        period(ReportPeriod::month("2026-03")),
        MARCH_10 + 2 * DAY,
    );
    let march_csv = report::render_csv(&march, Lang::Zh);
    for line in [
        "\n排放口 u1,09,1440,0,0,0.00,—\n",
        "\n数采仪 MN001,10,1440,1410,1395,97.92,98.94\n",
        "\n数采仪 MN001,12,0,0,0,—,—\n",
        "\n数采仪 MN001,全期,15840,1410,1395,8.90,98.94\n",
        "\n排放口 u1,全期,15840,1410,1395,8.90,98.94\n",
    ] {
        assert!(march_csv.contains(line), "{line:?} not in\n{march_csv}");
    }

    // English on request; no float noise anywhere
    let en = report::render_csv(&built, Lang::En);
    assert!(en.contains("hour,SO2,,,O2,\"flow (std, dry)\"\n"), "{en}");
    assert!(!csv.contains("666666") && !csv.contains("999999"), "{csv}");

    xlsx_holds_the_csv_cells(&built, &csv);
    html_prints(&built);
}

/// The workbook, read back by openpyxl, has the CSV's cells: numbers equal to the CSV's
/// printed numbers, text equal to its text.
fn xlsx_holds_the_csv_cells(built: &TableReport, csv: &str) {
    let path = output_dir().join("report_day.xlsx");
    let bytes = report::render_xlsx(built, Lang::Zh).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{e}"));
    let script = r#"import json, sys, openpyxl
sheet = openpyxl.load_workbook(sys.argv[1]).worksheets[0]
rows = []
for row in sheet.iter_rows(values_only=True):
    cells = list(row)
    while cells and cells[-1] is None:
        cells.pop()
    rows.append(cells)
print(json.dumps(rows))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Vec<serde_json::Value>> =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let csv_rows: Vec<Vec<String>> = csv.lines().map(split_csv).collect();
    assert_eq!(rows.len(), csv_rows.len(), "{rows:?}");
    for (r, (xlsx, text)) in rows.iter().zip(&csv_rows).enumerate() {
        let text: Vec<&String> = {
            let mut t: Vec<&String> = text.iter().collect();
            while t.last().is_some_and(|c| c.is_empty()) {
                t.pop();
            }
            t
        };
        assert_eq!(xlsx.len(), text.len(), "row {r}: {xlsx:?} vs {text:?}");
        for (cell, want) in xlsx.iter().zip(text) {
            match cell {
                serde_json::Value::Null => assert!(want.is_empty(), "row {r}: {want:?}"),
                serde_json::Value::Number(n) => {
                    let want: f64 = want
                        .parse()
                        .unwrap_or_else(|_| panic!("row {r}: {want:?} is not a number"));
                    assert_eq!(n.as_f64(), Some(want), "row {r}");
                }
                serde_json::Value::String(s) => assert_eq!(s, want, "row {r}"),
                other => panic!("row {r}: unexpected {other:?}"),
            }
        }
    }
}

/// Splits one CSV line (quoted fields may hold commas).
fn split_csv(line: &str) -> Vec<String> {
    let mut cells = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                if let Some(s) = cells.last_mut() {
                    s.push('"');
                }
            }
            ('"', _) => quoted = !quoted,
            (',', false) => cells.push(String::new()),
            (c, _) => {
                if let Some(s) = cells.last_mut() {
                    s.push(c);
                }
            }
        }
    }
    cells
}

/// Chromium prints the page to a PDF and a screenshot; the screenshot of the table is far
/// larger than one of an empty page (it is not blank).
fn html_prints(built: &TableReport) {
    let dir = output_dir();
    let page = dir.join("report_day.html");
    std::fs::write(&page, report::render_html(built, Lang::Zh)).unwrap_or_else(|e| panic!("{e}"));
    let blank = dir.join("blank.html");
    std::fs::write(&blank, "<!DOCTYPE html><html><body></body></html>")
        .unwrap_or_else(|e| panic!("{e}"));
    let url = |p: &Path| format!("file://{}", p.display());
    let pdf = dir.join("report_day.pdf");
    let png = dir.join("report_day.png");
    let blank_png = dir.join("blank.png");
    for f in [&pdf, &png, &blank_png] {
        let _ = std::fs::remove_file(f);
    }
    chromium(&url(&page), &format!("--print-to-pdf={}", pdf.display()));
    chromium(&url(&page), &format!("--screenshot={}", png.display()));
    chromium(
        &url(&blank),
        &format!("--screenshot={}", blank_png.display()),
    );
    let read = |p: &Path| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let pdf_bytes = read(&pdf);
    assert!(pdf_bytes.starts_with(b"%PDF"), "not a PDF");
    assert!(pdf_bytes.len() > 10_000, "PDF of {} bytes", pdf_bytes.len());
    let (shot, empty) = (read(&png), read(&blank_png));
    assert!(shot.starts_with(b"\x89PNG"), "not a PNG");
    assert!(
        shot.len() > 5 * empty.len(),
        "screenshot {} bytes, blank page {} bytes",
        shot.len(),
        empty.len()
    );
    println!("report pictures: {} {}", pdf.display(), png.display());
}

/// Now = 2026-03-03 00:00 local: February is over, March has begun.
const NOW: i64 = MARCH_1 + 2 * DAY;

#[test]
fn a_month_with_a_missing_day_and_a_substituted_gap() {
    let (_dir, store) = store_with(&month_records());
    let built = table(&store, period(ReportPeriod::month("2026-02")), NOW);
    let csv = report::render_csv(&built, Lang::Zh);
    let mut want: Vec<String> = Vec::new();
    for d in 1..=28 {
        let x = d as f64;
        want.push(match d {
            // no record: 24 hours between 9 Feb 23:00 (9 kg/h) and 11 Feb 00:00 (11 kg/h), a gap
            // of 24 h, bracketed: 10 kg/h × 24 = 0.240 t
            10 => "10,—,—,0.240*,—".to_string(),
            // 21 valid hours of 20 kg/h + 3 faulty ones bracketed by 20 and 20: 0.480 t
            20 => "20,30.00,32.00,0.480*,21".to_string(),
            _ => format!(
                "{d:02},{:.2},{:.2},{:.3},24",
                10.0 + x,
                12.0 + x,
                24.0 * x / 1000.0
            ),
        });
    }
    // 27 valid days: Σ(10+d) = 270 + 396 = 666 / 27 = 24.667, corrected 720 / 27 = 26.667.
    // Emission over the 26 days without substitution: 24 · (406 − 30) kg = 9.024 t / 26 = 0.347.
    // Month: 24 · 396 kg + 240 kg = 9 744 kg = 9.744 t, of which 240 + 60 kg substituted.
    want.extend(
        [
            "平均值,24.67,26.67,0.347",
            "最大值,38.00,40.00,0.672",
            "最小值,11.00,13.00,0.024",
            "排放量(t),,,9.744*",
        ]
        .map(String::from),
    );
    assert_eq!(lines_from(&csv, "01,", 32), want);
    assert_eq!(
        lines_from(&csv, "二氧化硫,", 1),
        // 9 444 kg measured + 300 kg substituted; 645 valid, 3 invalid, 24 missing, 27 filled
        ["二氧化硫,9.444,0.300,9.744*,645,3,24,27"]
    );

    assert_eq!(lines_from(&csv, "超标,", 2)[1], "无");
    // FGD: 645 hours valid at both points; inlet 645 000 kg, outlet 9 444 kg, removed
    // 635 556 kg, η = 635 556 / 645 000 = 98.54 %; 645 of 672 hours = 95.98 %.
    assert_eq!(
        lines_from(&csv, "u1,", 1),
        ["u1,645.000,9.444,635.556,98.54,645,672,95.98"]
    );
    let fgd = built.stacks[0]
        .fgd
        .as_ref()
        .unwrap_or_else(|| panic!("no FGD"));
    assert!((fgd.removed_kg - 635_556.0).abs() < 1e-6, "{fgd:?}");

    // the month's total is the sum of its days' reports
    let month_kg = month_total_kg(&built);
    let days_kg: f64 = (1..=28)
        .map(|d| {
            let day = period(ReportPeriod::day(&format!("2026-02-{d:02}")));
            month_total_kg(&table(&store, day, NOW))
        })
        .sum();
    assert!((month_kg - 9744.0).abs() < 1e-9, "{month_kg}");
    assert!(
        (month_kg - days_kg).abs() < 1e-9,
        "month {month_kg} kg, days {days_kg} kg"
    );
}

fn month_total_kg(t: &TableReport) -> f64 {
    t.stacks[0]
        .totals
        .iter()
        .map(|t| t.measured_kg + t.substituted_kg)
        .sum()
}

#[test]
fn a_year_of_months_and_its_total() {
    let (_dir, store) = store_with(&month_records());
    let built = table(&store, period(ReportPeriod::year("2026")), NOW);
    let csv = report::render_csv(&built, Lang::Zh);
    assert!(
        csv.starts_with("烟气排放连续监测月平均值年报表 2026\n"),
        "{csv}"
    );
    let mut want = vec![
        "01,—,—,—,0".to_string(),
        // February: the mean of its 27 valid days, 9.744 t with substitution
        "02,24.67,26.67,9.744*,27".to_string(),
        // March so far: 2 days × 24 h × 5 kg/h = 0.240 t; later hours are not over yet
        "03,15.00,16.00,0.240,2".to_string(),
    ];
    want.extend((4..=12).map(|m| format!("{m:02},—,—,—,0")));
    // (24.667 + 15) / 2 = 19.83; (26.667 + 16) / 2 = 21.33; the only unsubstituted emission 0.240
    want.extend(
        [
            "平均值,19.83,21.33,0.240",
            "最大值,24.67,26.67,0.240",
            "最小值,15.00,16.00,0.240",
            "排放量(t),,,9.984*",
        ]
        .map(String::from),
    );
    assert_eq!(lines_from(&csv, "01,", 16), want);

    // the year's total is the sum of its months'
    let months_kg: f64 = (1..=12)
        .map(|m| {
            month_total_kg(&table(
                &store,
                period(ReportPeriod::month(&format!("2026-{m:02}"))),
                NOW,
            ))
        })
        .sum();
    let year_kg = month_total_kg(&built);
    assert!((year_kg - 9984.0).abs() < 1e-9, "{year_kg}");
    assert!(
        (year_kg - months_kg).abs() < 1e-9,
        "year {year_kg}, months {months_kg}"
    );
}

#[test]
fn an_empty_period_says_why_and_what_the_store_holds() {
    let (_dir, store) = store_with(&month_records());
    let built = table(&store, period(ReportPeriod::day("2025-06-01")), NOW);
    let text = report::render_text(&built, Lang::En);
    assert_eq!(
        text,
        "Period 2025-06-01: the store holds no data for it\n\
         the store holds hour records: 2026-02-01 .. 2026-03-02\n\
         the store holds day records: 2026-02-01 .. 2026-03-02\n"
    );
    let later = table(&store, period(ReportPeriod::month("2027-01")), NOW);
    let zh = report::render_text(&later, Lang::Zh);
    assert!(
        zh.starts_with("报表期 2027-01: 尚未开始，没有数据\n"),
        "{zh}"
    );
}

/// A site config whose store is `dir/c.db`, filled with the February records, and whose status
/// server listens on `port`.
fn site_on_disk(dir: &Path, port: u16) -> PathBuf {
    let mut store =
        Store::open(&dir.join("c.db"), StoreOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    store
        .append(&month_records())
        .unwrap_or_else(|e| panic!("{e}"));
    drop(store);
    support::daemon::write_config(
        dir,
        "site.toml",
        &format!("{CONFIG}\n[store]\npath = \"c.db\"\n\n[http]\nlisten = \"127.0.0.1:{port}\"\n"),
    )
}

fn cemsd_report(config: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cemsd"))
        .args(["report", "--config"])
        .arg(config)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run cemsd: {e}"));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn the_command_line_and_the_daemon_serve_the_report() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let port = support::ports::free_port();
    let config = site_on_disk(dir.path(), port);

    let (code, csv, err) = cemsd_report(&config, &["--month", "2026-02", "--format", "csv"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        csv.starts_with("烟气排放连续监测日平均值月报表 2026-02\n"),
        "{csv}"
    );
    assert!(
        csv.contains("\n二氧化硫,9.444,0.300,9.744*,645,3,24,27\n"),
        "{csv}"
    );

    let xlsx = dir.path().join("feb.xlsx");
    let out = xlsx.to_string_lossy().to_string();
    let (code, _, err) = cemsd_report(
        &config,
        &["--month", "2026-02", "--format", "xlsx", "--output", &out],
    );
    assert_eq!(code, Some(0), "{err}");
    let bytes = std::fs::read(&xlsx).unwrap_or_else(|e| panic!("{e}"));
    assert!(bytes.starts_with(b"PK"), "an XLSX is a zip");

    // an empty day says why and what the store holds
    let (code, text, err) = cemsd_report(&config, &["--day", "2025-06-01", "--lang", "en"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        text.starts_with("Period 2025-06-01: the store holds no data for it\n"),
        "{text}"
    );
    assert!(
        text.contains("hour records: 2026-02-01 .. 2026-03-02"),
        "{text}"
    );

    // mistakes exit 2 and say what to write
    for (args, says) in [
        (&["--month", "2026-13"][..], "write the month as YYYY-MM"),
        (
            &["--day", "2026-02-01", "--stack", "u9"][..],
            "use one of: u1",
        ),
        (
            &["--year", "2026", "--format", "xlsx"][..],
            "add --output FILE.xlsx",
        ),
    ] {
        let (code, _, err) = cemsd_report(&config, args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }

    // the daemon serves the printable page
    let mut daemon = support::daemon::Daemon::start(&config, dir.path(), &[]);
    assert!(
        support::ports::listening_within(port, std::time::Duration::from_secs(30)),
        "{}",
        daemon.log_text()
    );
    let page = support::http::http_get(port, "/report?month=2026-02&lang=en");
    let (status, html) = page.unwrap_or_else(|| panic!("no answer: {}", daemon.log_text()));
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("CEMS monthly report of daily averages 2026-02"),
        "{html}"
    );
    assert!(html.contains("<td class=\"s\">9.744*</td>"), "{html}");
    let bad = support::http::http_get(port, "/report?month=2026-02&day=2026-02-01");
    assert_eq!(bad.map(|(s, _)| s), Some(400));
    daemon.stop(std::time::Duration::from_secs(30));
}
