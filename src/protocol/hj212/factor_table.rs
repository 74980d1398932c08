//! The HJ 212-2017 factor code table (Table B.2) as cemsd uses it: code, name, units and data
//! type of each flue-gas code, read from `factor_codes.tsv`, a data file built into the binary
//! whose header names its source. One table, so the units the listener reads in, the units
//! and data types the uplink writes in and `cemsd hj212 decode` cannot drift apart.

use std::sync::OnceLock;

use crate::model::Unit;

use super::codes::Total;
use super::data_type::DataType;

const TABLE: &str = include_str!("factor_codes.tsv");

/// One row of Table B.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FactorEntry {
    pub code: &'static str,
    /// 中文名称, as the standard prints it.
    pub name: &'static str,
    /// 原编码: the HJ/T 212-2005 code of the same factor, where the table gives one.
    pub original: Option<&'static str>,
    /// Unit of `-Rtd`, `-Avg`, `-Min`, `-Max` and their `Zs` forms.
    pub unit: Unit,
    /// Unit of `-Cou`; `None` for state parameters, which have no cumulative value.
    pub total: Option<Total>,
    /// Data type of the concentration-like values (the table gives none for `-Cou`).
    pub data_type: DataType,
}

/// Every row of the table. A row that does not read is left out and logged once; the unit
/// test `the_built_in_table_reads_whole` keeps that from ever shipping.
pub fn entries() -> &'static [FactorEntry] {
    static ENTRIES: OnceLock<Vec<FactorEntry>> = OnceLock::new();
    ENTRIES.get_or_init(|| {
        let (entries, errors) = parse(TABLE);
        for error in errors {
            tracing::error!("built-in HJ 212 factor table: {error}");
        }
        entries
    })
}

/// The row of a 2017 factor code.
pub fn entry(code: &str) -> Option<&'static FactorEntry> {
    entries().iter().find(|e| e.code == code)
}

/// Rows and the lines that could not be read, with their line number.
fn parse(table: &'static str) -> (Vec<FactorEntry>, Vec<String>) {
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    let rows = table
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty() && !line.starts_with('#'))
        .skip(1); // the column names
    for (index, line) in rows {
        match row(line) {
            Ok(entry) => entries.push(entry),
            Err(why) => errors.push(format!("line {}: {why}: {line:?}", index + 1)),
        }
    }
    (entries, errors)
}

fn row(line: &'static str) -> Result<FactorEntry, String> {
    let fields: Vec<&'static str> = line.split('\t').collect();
    let [code, name, original, _unit_zh, unit, total, data_type] = fields[..] else {
        return Err(format!("{} columns, expected 7", fields.len()));
    };
    let unit: Unit = unit.parse().map_err(|_| format!("unknown unit {unit:?}"))?;
    let total = match total {
        "-" => None,
        "m3" => Some(Total::CubicMetre),
        "kg" => Some(Total::Kilogram),
        other => return Err(format!("unknown Cou unit {other:?}")),
    };
    let data_type: DataType = data_type.parse().map_err(|e| format!("{e}"))?;
    Ok(FactorEntry {
        code,
        name,
        original: (original != "--").then_some(original),
        unit,
        total,
        data_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_table_reads_whole() {
        let (entries, errors) = parse(TABLE);
        assert_eq!(errors, Vec::<String>::new());
        assert_eq!(entries.len(), 12);
    }

    #[test]
    fn rows_as_the_standard_prints_them() {
        // HJ 212-2017 Table B.2; the examples: a21026 N5.2, a34013 N4, a19001 N3.1,
        // a00000 N6.1 in m3/s with its Cou in m3.
        let so2 = entry("a21026").unwrap_or_else(|| panic!("SO2 row"));
        assert_eq!(
            (so2.name, so2.original, so2.unit, so2.total),
            ("二氧化硫", Some("02"), Unit::MgPerM3, Some(Total::Kilogram))
        );
        assert_eq!(so2.data_type, DataType::new(5, 2));
        let dust = entry("a34013").unwrap_or_else(|| panic!("dust row"));
        assert_eq!(dust.data_type, DataType::new(4, 0));
        let o2 = entry("a19001").unwrap_or_else(|| panic!("O2 row"));
        assert_eq!((o2.data_type, o2.total), (DataType::new(3, 1), None));
        let flow = entry("a00000").unwrap_or_else(|| panic!("flow row"));
        assert_eq!(
            (flow.unit, flow.total, flow.data_type, flow.original),
            (
                Unit::CubicMetrePerSecond,
                Some(Total::CubicMetre),
                DataType::new(6, 1),
                Some("B02")
            )
        );
        assert_eq!(entry("a21003").and_then(|e| e.original), None);
        assert_eq!(entry("a99999"), None);
    }

    #[test]
    fn bad_rows_are_reported_with_their_line() {
        let (entries, errors) = parse(
            "# comment\ncode\tname\toriginal\tunit_zh\tunit\ttotal\tdata_type\n\
             a21026\t二氧化硫\t02\t毫克/立方米\tmg/m3\tkg\tN5.2\n\
             a21002\t氮氧化物\t03\t毫克/立方米\tmg/m3\tt\tN5.1\n\
             a19001\t氧气含量\n",
        );
        assert_eq!(entries.len(), 1);
        assert_eq!(errors.len(), 2);
        assert!(
            errors[0].starts_with("line 4: unknown Cou unit"),
            "{errors:?}"
        );
        assert!(errors[1].starts_with("line 5: 2 columns"), "{errors:?}");
    }
}
