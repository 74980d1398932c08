//! Text, CSV and printable HTML of a report's sheets; XLSX is in [`super::xlsx`].

use std::fmt::Write as _;

use crate::report::lang::Lang;
use crate::report::sheet::{empty_note, sheets, Cell, Sheet};
use crate::report::table::TableReport;

/// What `cemsd report --format` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Csv,
    Json,
    Xlsx,
    Html,
}

/// Columns of a terminal: a CJK character takes two.
fn width(text: &str) -> usize {
    text.chars()
        .map(|c| if c as u32 >= 0x2E80 { 2 } else { 1 })
        .sum()
}

/// The report for a person at a terminal: each sheet with aligned columns.
pub fn render_text(report: &TableReport, lang: Lang) -> String {
    let mut out = String::new();
    if let Some(note) = empty_note(report, lang) {
        let _ = writeln!(out, "{note}");
        return out;
    }
    for sheet in sheets(report, lang) {
        let _ = writeln!(out, "{}\n", sheet.title);
        let columns = sheet.rows.iter().map(Vec::len).max().unwrap_or(0);
        // the wide table's columns; notes and section rows past its header do not widen them
        let mut widths = vec![0usize; columns];
        for row in &sheet.rows {
            if row.len() > 1 {
                for (i, cell) in row.iter().enumerate() {
                    widths[i] = widths[i].max(width(&cell.text()).min(24));
                }
            }
        }
        for row in &sheet.rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                let text = cell.text();
                let pad = widths[i].saturating_sub(width(&text));
                if matches!(cell, Cell::Number(..) | Cell::Substituted(..)) {
                    let _ = write!(line, "{}{text}  ", " ".repeat(pad));
                } else {
                    let _ = write!(line, "{text}{}  ", " ".repeat(pad));
                }
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
        out.push('\n');
    }
    out
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// CSV: each sheet (title line, then its rows), a blank line between stacks; numbers with the
/// decimals of [`super::sheet`], substituted ones ending in `*`, invalid periods their flag.
pub fn render_csv(report: &TableReport, lang: Lang) -> String {
    let mut out = String::new();
    if let Some(note) = empty_note(report, lang) {
        for line in note.lines() {
            let _ = writeln!(out, "{}", csv_field(line));
        }
        return out;
    }
    for (i, sheet) in sheets(report, lang).iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = writeln!(out, "{}", csv_field(&sheet.title));
        for row in &sheet.rows {
            let cells: Vec<String> = row.iter().map(|c| csv_field(&c.text())).collect();
            let _ = writeln!(out, "{}", cells.join(","));
        }
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str = "body{font-family:'Noto Sans CJK SC','WenQuanYi Micro Hei','Microsoft YaHei',sans-serif;font-size:10pt;margin:1em}\
h1{font-size:13pt;margin:.2em 0 .6em}\
table{border-collapse:collapse;margin-bottom:1.2em}\
td,th{border:1px solid #444;padding:2px 5px;white-space:nowrap}\
td.n{text-align:right}td.s{text-align:right;background:#fff3cd}td.f{text-align:center;background:#f8d7da}\
th{background:#e9ecef}section{page-break-after:always}\
@page{size:A4 landscape;margin:10mm}";

/// A printable page (A4 landscape, one stack per page): invalid cells tinted red with their
/// flag, substituted ones yellow with `*`.
pub fn render_html(report: &TableReport, lang: Lang) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"{}\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>",
        lang.pick("zh-CN", "en"),
        escape(&report.period)
    );
    if let Some(note) = empty_note(report, lang) {
        for line in note.lines() {
            let _ = write!(out, "<p>{}</p>", escape(line));
        }
    }
    for sheet in sheets(report, lang) {
        html_sheet(&sheet, &mut out);
    }
    out.push_str("</body></html>\n");
    out
}

/// The row of column groups: a name spans the empty cells after it (a pollutant's three).
fn group_header(row: &[Cell], out: &mut String) {
    let mut i = 0;
    while i < row.len() {
        let span = 1 + row[i + 1..]
            .iter()
            .take_while(|c| matches!(c, Cell::Empty))
            .count();
        let _ = write!(
            out,
            "<th colspan=\"{span}\">{}</th>",
            escape(&row[i].text())
        );
        i += span;
    }
}

fn html_sheet(sheet: &Sheet, out: &mut String) {
    let _ = write!(out, "<section><h1>{}</h1><table>", escape(&sheet.title));
    for (r, row) in sheet.rows.iter().enumerate() {
        if row.is_empty() {
            out.push_str("</table><table>");
            continue;
        }
        let header = (1..sheet.header_rows).contains(&r);
        out.push_str("<tr>");
        if header && r == 1 {
            group_header(row, out);
            out.push_str("</tr>");
            continue;
        }
        for cell in row {
            let text = escape(&cell.text());
            let class = match cell {
                Cell::Number(..) => " class=\"n\"",
                Cell::Substituted(..) => " class=\"s\"",
                Cell::Text(t)
                    if t.chars().count() == 1 && t.chars().all(|c| c.is_ascii_uppercase()) =>
                {
                    " class=\"f\""
                }
                _ => "",
            };
            if header {
                let _ = write!(out, "<th>{text}</th>");
            } else {
                let _ = write!(out, "<td{class}>{text}</td>");
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</table></section>");
}
