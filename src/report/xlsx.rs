//! The report as an XLSX workbook (what bureaus and plants exchange), one worksheet per stack,
//! with the same cells as the CSV: numbers as numbers rounded to the CSV's decimals,
//! substituted values and flags as text.

use rust_xlsxwriter::{Format, Workbook, XlsxError};

use crate::report::lang::Lang;
use crate::report::sheet::{empty_note, sheets, Cell};
use crate::report::table::TableReport;

/// Excel allows at most 31 characters in a sheet name and none of `[]:*?/\`.
fn sheet_name(stack: &str, index: usize) -> String {
    let clean: String = stack
        .chars()
        .filter(|c| !"[]:*?/\\".contains(*c))
        .take(28)
        .collect();
    if clean.is_empty() {
        format!("stack{}", index + 1)
    } else {
        clean
    }
}

pub fn render_xlsx(report: &TableReport, lang: Lang) -> Result<Vec<u8>, XlsxError> {
    let mut workbook = Workbook::new();
    if let Some(note) = empty_note(report, lang) {
        let sheet = workbook.add_worksheet();
        for (r, line) in note.lines().enumerate() {
            sheet.write_string(u32::try_from(r).unwrap_or(u32::MAX), 0, line)?;
        }
    }
    for (index, s) in sheets(report, lang).iter().enumerate() {
        let sheet = workbook.add_worksheet();
        sheet.set_name(sheet_name(&s.name, index))?;
        sheet.write_string(0, 0, &s.title)?;
        for (r, row) in s.rows.iter().enumerate() {
            let r = u32::try_from(r + 1).unwrap_or(u32::MAX);
            for (c, cell) in row.iter().enumerate() {
                let c = u16::try_from(c).unwrap_or(u16::MAX);
                match (cell, cell.rounded()) {
                    (Cell::Number(_, decimals), Some(v)) => {
                        let pattern = if *decimals == 0 {
                            "0".to_string()
                        } else {
                            format!("0.{}", "0".repeat(*decimals))
                        };
                        sheet.write_number_with_format(
                            r,
                            c,
                            v,
                            &Format::new().set_num_format(pattern),
                        )?;
                    }
                    (Cell::Empty, _) => {}
                    _ => {
                        sheet.write_string(r, c, cell.text())?;
                    }
                }
            }
        }
    }
    workbook.save_to_buffer()
}
