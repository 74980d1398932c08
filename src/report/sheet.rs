//! A report table laid out as rows of cells in one language, with the decimals each quantity is
//! printed with. Text, CSV, XLSX and HTML all render this one grid, so they show the same cells.
//!
//! Decimals: HJ 75-2017's report appendix, which would fix them, could not be read from any
//! public source at hand; these are this project's choice, kept in [`decimals_of`]:
//! concentrations mg/m3 and O2/moisture % to 2, temperature °C to 1, pressure Pa to 0 (kPa to
//! 3), velocity m/s to 2, flow m3/h to 0 (m3/s to 3), emission rates kg/h and masses t to 3,
//! rates and efficiencies % to 2; rounded half to even as GB/T 8170-2008 does
//! ([`super::rounding`]).

use std::fmt::Write as _;

use crate::model::{Quantity, Unit};
use crate::report::lang::Lang;
use crate::report::notes::note_in;
use crate::report::rounding::round_half_even;
use crate::report::table::{StackTable, TableKind, TableReport, Value};

/// One cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    /// A number and the decimals it is printed with.
    Number(f64, usize),
    /// A substituted number (or a sum containing one): printed with a trailing `*`.
    Substituted(f64, usize),
}

impl Cell {
    /// The cell as CSV, text and HTML print it.
    pub fn text(&self) -> String {
        match self {
            Cell::Empty => String::new(),
            Cell::Text(t) => t.clone(),
            Cell::Number(v, d) => round_half_even(*v, *d),
            Cell::Substituted(v, d) => format!("{}*", round_half_even(*v, *d)),
        }
    }

    /// The number as printed, for a spreadsheet cell that must equal the CSV's.
    pub fn rounded(&self) -> Option<f64> {
        match self {
            Cell::Number(v, d) => round_half_even(*v, *d).parse().ok(),
            _ => None,
        }
    }

    fn value(v: Value, decimals: usize) -> Cell {
        match v {
            Value::Valid(x) => Cell::Number(x, decimals),
            Value::Substituted(x) => Cell::Substituted(x, decimals),
            Value::Invalid(flag) => Cell::Text(flag.to_string()),
            Value::Missing => Cell::Text("—".into()),
        }
    }

    fn text_of(t: &str) -> Cell {
        Cell::Text(t.to_string())
    }
}

/// One stack's table.
#[derive(Debug, Clone, PartialEq)]
pub struct Sheet {
    /// The stack id, for the XLSX worksheet name.
    pub name: String,
    pub title: String,
    pub rows: Vec<Vec<Cell>>,
    /// Header rows at the top of `rows` (after the title line).
    pub header_rows: usize,
}

const CONCENTRATION: usize = 2;
const EMISSION: usize = 3;
const PERCENT: usize = 2;

/// Decimals of a flue-gas value in its unit.
pub fn decimals_of(quantity: Quantity, unit: Unit) -> usize {
    match (quantity, unit) {
        (Quantity::Temperature, _) => 1,
        (_, Unit::Pa) | (_, Unit::CubicMetrePerHour) => 0,
        (_, Unit::KPa) | (_, Unit::CubicMetrePerSecond) => 3,
        _ => 2,
    }
}

/// The sheets of a report, one per stack.
pub fn sheets(report: &TableReport, lang: Lang) -> Vec<Sheet> {
    report
        .stacks
        .iter()
        .map(|s| sheet(report, s, lang))
        .collect()
}

fn sheet(report: &TableReport, s: &StackTable, lang: Lang) -> Sheet {
    let title = format!(
        "{} {}",
        lang.pick(
            match report.kind {
                TableKind::Day => "烟气排放连续监测小时平均值日报表",
                TableKind::Month => "烟气排放连续监测日平均值月报表",
                TableKind::Year => "烟气排放连续监测月平均值年报表",
            },
            match report.kind {
                TableKind::Day => "CEMS daily report of hourly averages",
                TableKind::Month => "CEMS monthly report of daily averages",
                TableKind::Year => "CEMS yearly report of monthly averages",
            }
        ),
        report.period
    );
    let mut rows: Vec<Vec<Cell>> = Vec::new();
    rows.push(vec![
        Cell::text_of(lang.pick("企业", "Site")),
        Cell::Text(
            report
                .site_name
                .clone()
                .unwrap_or_else(|| report.site.clone()),
        ),
        Cell::text_of(lang.pick("排放口", "Stack")),
        Cell::Text(match &s.name {
            Some(n) => format!("{} ({n})", s.stack),
            None => s.stack.clone(),
        }),
        Cell::text_of(lang.pick("时区", "UTC offset")),
        Cell::Text(report.utc_offset.clone()),
    ]);
    // header: group names, then units
    let emission_head = match report.kind {
        TableKind::Day => lang.pick("排放速率(kg/h)", "emission rate (kg/h)"),
        TableKind::Month | TableKind::Year => lang.pick("排放量(t)", "emission (t)"),
    };
    let mut groups = vec![Cell::text_of(match report.kind {
        TableKind::Day => lang.pick("时间", "hour"),
        TableKind::Month => lang.pick("日期", "day"),
        TableKind::Year => lang.pick("月份", "month"),
    })];
    let mut units = vec![Cell::Empty];
    for q in &s.pollutants {
        groups.push(Cell::text_of(lang.quantity(*q)));
        groups.push(Cell::Empty);
        groups.push(Cell::Empty);
        units.push(Cell::text_of(
            lang.pick("实测浓度(mg/m3)", "measured (mg/m3)"),
        ));
        units.push(Cell::text_of(
            lang.pick("折算浓度(mg/m3)", "corrected (mg/m3)"),
        ));
        units.push(Cell::text_of(emission_head));
    }
    for (q, unit) in &s.aux {
        groups.push(Cell::text_of(lang.quantity(*q)));
        units.push(Cell::Text(format!("({})", lang.unit(*unit))));
    }
    let count_head = match report.kind {
        TableKind::Day => None,
        TableKind::Month => Some(lang.pick("有效小时数", "valid hours")),
        TableKind::Year => Some(lang.pick("有效天数", "valid days")),
    };
    if let Some(head) = count_head {
        groups.push(Cell::text_of(head));
        units.push(Cell::Empty);
    }
    rows.push(groups);
    rows.push(units);
    let header_rows = 3;
    let emission_decimals = EMISSION;
    for row in &s.rows {
        let mut cells = vec![Cell::Text(row.label.clone())];
        for p in &row.pollutants {
            cells.push(Cell::value(p.measured, CONCENTRATION));
            cells.push(Cell::value(p.corrected, CONCENTRATION));
            cells.push(Cell::value(p.emission, emission_decimals));
        }
        for (v, (q, unit)) in row.aux.iter().zip(&s.aux) {
            cells.push(Cell::value(*v, decimals_of(*q, *unit)));
        }
        if count_head.is_some() {
            cells.push(
                row.valid_count
                    .map_or(Cell::Text("—".into()), |n| Cell::Number(f64::from(n), 0)),
            );
        }
        rows.push(cells);
    }
    summary_rows(s, lang, &mut rows);
    rows.push(Vec::new());
    totals_rows(s, lang, &mut rows);
    exceedance_rows(s, lang, &mut rows);
    fgd_rows(s, lang, &mut rows);
    rate_rows(report.kind, s, lang, &mut rows);
    rows.push(Vec::new());
    rows.push(vec![Cell::text_of(lang.pick(
        "注：* 含补遗值；无效时段以数据标记表示（C 校准，M 维护，D 故障，F 停运，B 通讯异常，T 超量程）；— 无数据",
        "Notes: * includes substituted values; invalid periods show their data flag (C calibration, M maintenance, D fault, F plant stopped, B communication failure, T over range); — no data",
    ))]);
    Sheet {
        name: s.stack.clone(),
        title,
        rows,
        header_rows,
    }
}

/// 平均值 / 最大值 / 最小值 over the valid rows of each column, then the period's emission in t.
fn summary_rows(s: &StackTable, lang: Lang, rows: &mut Vec<Vec<Cell>>) {
    type Pick = fn(&[f64]) -> Option<f64>;
    let stats: [(&str, &str, Pick); 3] = [
        ("平均值", "average", |v| {
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        }),
        ("最大值", "maximum", |v| {
            v.iter().copied().reduce(f64::max)
        }),
        ("最小值", "minimum", |v| {
            v.iter().copied().reduce(f64::min)
        }),
    ];
    let column = |get: &dyn Fn(&crate::report::table::TableRow) -> Value| -> Vec<f64> {
        s.rows
            .iter()
            .filter_map(|r| match get(r) {
                Value::Valid(v) => Some(v),
                _ => None,
            })
            .collect()
    };
    for (zh, en, pick) in stats {
        let mut cells = vec![Cell::text_of(lang.pick(zh, en))];
        let number = |v: Option<f64>, d| v.map_or(Cell::Text("—".into()), |v| Cell::Number(v, d));
        for i in 0..s.pollutants.len() {
            cells.push(number(
                pick(&column(&|r| r.pollutants[i].measured)),
                CONCENTRATION,
            ));
            cells.push(number(
                pick(&column(&|r| r.pollutants[i].corrected)),
                CONCENTRATION,
            ));
            cells.push(number(
                pick(&column(&|r| r.pollutants[i].emission)),
                EMISSION,
            ));
        }
        for (i, (q, unit)) in s.aux.iter().enumerate() {
            cells.push(number(pick(&column(&|r| r.aux[i])), decimals_of(*q, *unit)));
        }
        rows.push(cells);
    }
    let mut emitted = vec![Cell::text_of(lang.pick("排放量(t)", "emission (t)"))];
    for t in &s.totals {
        emitted.push(Cell::Empty);
        emitted.push(Cell::Empty);
        emitted.push(if t.substituted_hours > 0 {
            Cell::Substituted(t.total_t(), EMISSION)
        } else {
            Cell::Number(t.total_t(), EMISSION)
        });
    }
    rows.push(emitted);
}

fn totals_rows(s: &StackTable, lang: Lang, rows: &mut Vec<Vec<Cell>>) {
    rows.push(
        [
            lang.pick("污染物", "pollutant"),
            lang.pick("实测排放量(t)", "from valid hours (t)"),
            lang.pick("补遗排放量(t)", "substituted (t)"),
            lang.pick("排放总量(t)", "total (t)"),
            lang.pick("有效小时", "valid hours"),
            lang.pick("无效小时", "invalid hours"),
            lang.pick("缺失小时", "missing hours"),
            lang.pick("补遗小时", "substituted hours"),
        ]
        .map(Cell::text_of)
        .to_vec(),
    );
    for t in &s.totals {
        rows.push(vec![
            Cell::text_of(lang.quantity(t.quantity)),
            Cell::Number(t.measured_kg / 1000.0, EMISSION),
            Cell::Number(t.substituted_kg / 1000.0, EMISSION),
            if t.substituted_hours > 0 {
                Cell::Substituted(t.total_t(), EMISSION)
            } else {
                Cell::Number(t.total_t(), EMISSION)
            },
            Cell::Number(f64::from(t.valid_hours), 0),
            Cell::Number(f64::from(t.invalid_hours), 0),
            Cell::Number(f64::from(t.missing_hours), 0),
            Cell::Number(f64::from(t.substituted_hours), 0),
        ]);
    }
}

/// The period's exceedance events, or one row saying there were none.
fn exceedance_rows(s: &StackTable, lang: Lang, rows: &mut Vec<Vec<Cell>>) {
    rows.push(Vec::new());
    rows.push(
        [
            lang.pick("超标", "exceedance"),
            lang.pick("开始", "start"),
            lang.pick("结束", "end"),
            lang.pick("峰值折算浓度(mg/m3)", "peak corrected (mg/m3)"),
            lang.pick("超标小时数", "hours"),
            lang.pick("说明", "detail"),
        ]
        .map(Cell::text_of)
        .to_vec(),
    );
    if s.exceedances.is_empty() {
        rows.push(vec![Cell::text_of(lang.pick("无", "none"))]);
    }
    for e in &s.exceedances {
        let name = e
            .quantity
            .parse::<Quantity>()
            .map_or(e.quantity.as_str(), |q| lang.quantity(q));
        rows.push(vec![
            Cell::text_of(name),
            Cell::Text(e.start.clone()),
            Cell::Text(
                e.end
                    .clone()
                    .unwrap_or_else(|| lang.pick("未结束", "still open").to_string()),
            ),
            e.peak
                .map_or(Cell::Text("—".into()), |p| Cell::Number(p, CONCENTRATION)),
            e.hours
                .map_or(Cell::Text("—".into()), |h| Cell::Number(f64::from(h), 0)),
            Cell::Text(note_in(&e.detail, lang)),
        ]);
    }
}

fn percent(v: Option<f64>) -> Cell {
    v.map_or(Cell::Text("—".into()), |v| {
        Cell::Number(v * 100.0, PERCENT)
    })
}

fn fgd_rows(s: &StackTable, lang: Lang, rows: &mut Vec<Vec<Cell>>) {
    let Some(f) = &s.fgd else {
        return;
    };
    rows.push(Vec::new());
    rows.push(
        [
            lang.pick("脱硫设施", "FGD"),
            lang.pick("入口SO2(t)", "inlet SO2 (t)"),
            lang.pick("出口SO2(t)", "outlet SO2 (t)"),
            lang.pick("SO2削减量(t)", "SO2 removed (t)"),
            lang.pick("脱硫效率(%)", "removal efficiency (%)"),
            lang.pick("有效配对小时", "valid paired hours"),
            lang.pick("应有小时", "expected hours"),
            lang.pick("数据完整率(%)", "completeness (%)"),
        ]
        .map(Cell::text_of)
        .to_vec(),
    );
    rows.push(vec![
        Cell::Text(s.stack.clone()),
        Cell::Number(f.inlet_kg / 1000.0, EMISSION),
        Cell::Number(f.outlet_kg / 1000.0, EMISSION),
        Cell::Number(f.removed_kg / 1000.0, EMISSION),
        percent(f.efficiency),
        Cell::Number(f64::from(f.valid_hours), 0),
        Cell::Number(f64::from(f.expected_hours), 0),
        percent(f.completeness()),
    ]);
}

fn rate_rows(kind: TableKind, s: &StackTable, lang: Lang, rows: &mut Vec<Vec<Cell>>) {
    if s.rates.is_empty() {
        if kind == TableKind::Year {
            rows.push(Vec::new());
            rows.push(vec![Cell::text_of(lang.pick(
                "数据传输率与有效率见各月报表",
                "transmission and validity rates: see the monthly reports",
            ))]);
        }
        return;
    }
    rows.push(Vec::new());
    rows.push(
        [
            lang.pick("数据来源", "source"),
            lang.pick("日期", "day"),
            lang.pick("应收分钟数", "expected minutes"),
            lang.pick("实收分钟数", "received minutes"),
            lang.pick("有效分钟数", "valid minutes"),
            lang.pick("数据传输率(%)", "transmission rate (%)"),
            lang.pick("数据有效率(%)", "validity rate (%)"),
        ]
        .map(Cell::text_of)
        .to_vec(),
    );
    for r in &s.rates {
        let source = if r.logger {
            format!("{} {}", lang.pick("数采仪", "logger"), r.source)
        } else {
            format!("{} {}", lang.pick("排放口", "stack"), r.source)
        };
        rows.push(vec![
            Cell::Text(source),
            Cell::Text(if r.period.is_empty() {
                lang.pick("全期", "whole period").to_string()
            } else {
                r.period.clone()
            }),
            Cell::Number(f64::from(r.expected), 0),
            Cell::Number(f64::from(r.received), 0),
            Cell::Number(f64::from(r.valid), 0),
            percent(r.transmission()),
            percent(r.validity()),
        ]);
    }
}

/// Why the period is empty and what the store holds, for every format.
pub fn empty_note(report: &TableReport, lang: Lang) -> Option<String> {
    let empty = report.empty.as_ref()?;
    let mut out = String::new();
    let _ = write!(
        out,
        "{} {}: {}",
        lang.pick("报表期", "Period"),
        report.period,
        match empty.reason {
            crate::report::holdings::EmptyReason::Future =>
                lang.pick("尚未开始，没有数据", "has not begun, no data"),
            crate::report::holdings::EmptyReason::OutsideRetention => lang.pick(
                "早于存储保留期，数据已按保留期删除",
                "lies before the store's retention, its data were deleted by age",
            ),
            crate::report::holdings::EmptyReason::NoData =>
                lang.pick("存储中没有该时段的数据", "the store holds no data for it"),
        }
    );
    if let Some(r) = &empty.retention {
        let _ = write!(out, " ({} {r})", lang.pick("保留期", "retention"));
    }
    if empty.held.is_empty() {
        let _ = write!(out, "\n{}", lang.pick("存储为空", "The store is empty."));
    }
    for span in &empty.held {
        let _ = write!(
            out,
            "\n{} {}: {} .. {}",
            lang.pick("存储中的", "the store holds"),
            lang.record_kind(&span.kind),
            span.first,
            span.last
        );
    }
    Some(out)
}
