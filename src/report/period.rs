//! The period a report covers — a local day, month or year — and the rows it is cut into:
//! hours of a day, days of a month, months of a year (the three tables of HJ 75-2017's report
//! appendix).

use chrono::{Datelike, NaiveDate};

use crate::model::time::UtcOffset;
use crate::model::Timestamp;

/// A local calendar period of the site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportPeriod {
    Day(NaiveDate),
    /// First day of the month.
    Month(NaiveDate),
    /// First day of the year.
    Year(NaiveDate),
}

/// A row of a report: one sub-period in UTC with its local label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowPeriod {
    pub start: Timestamp,
    pub end: Timestamp,
    /// "13" for the hour 13:00–14:00, "05" for the 5th day, "03" for March.
    pub label: String,
}

impl ReportPeriod {
    /// `--day 2026-03-10`.
    pub fn day(text: &str) -> Result<ReportPeriod, String> {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map(ReportPeriod::Day)
            .map_err(|e| format!("--day {text:?}: {e}\n  help: write the local date as YYYY-MM-DD"))
    }

    /// `--month 2026-03`.
    pub fn month(text: &str) -> Result<ReportPeriod, String> {
        NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d")
            .map(ReportPeriod::Month)
            .map_err(|e| format!("--month {text:?}: {e}\n  help: write the month as YYYY-MM"))
    }

    /// `--year 2026`.
    pub fn year(text: &str) -> Result<ReportPeriod, String> {
        text.parse::<i32>()
            .ok()
            .and_then(|y| NaiveDate::from_ymd_opt(y, 1, 1))
            .map(ReportPeriod::Year)
            .ok_or_else(|| format!("--year {text:?}: not a year\n  help: write the year as YYYY"))
    }

    /// The period as written on the command line and in titles.
    pub fn label(self) -> String {
        match self {
            ReportPeriod::Day(d) => d.format("%Y-%m-%d").to_string(),
            ReportPeriod::Month(d) => d.format("%Y-%m").to_string(),
            ReportPeriod::Year(d) => d.format("%Y").to_string(),
        }
    }

    fn first_and_next(self) -> Option<(NaiveDate, NaiveDate)> {
        match self {
            ReportPeriod::Day(d) => Some((d, d.succ_opt()?)),
            ReportPeriod::Month(d) => Some((d, next_month(d)?)),
            ReportPeriod::Year(d) => Some((d, NaiveDate::from_ymd_opt(d.year() + 1, 1, 1)?)),
        }
    }

    /// UTC start and end; None only for dates outside chrono's range.
    pub fn bounds(self, offset: UtcOffset) -> Option<(Timestamp, Timestamp)> {
        let (first, next) = self.first_and_next()?;
        Some((utc_midnight(first, offset)?, utc_midnight(next, offset)?))
    }

    /// The rows: 24 hours, the days of the month, or 12 months.
    pub fn rows(self, offset: UtcOffset) -> Vec<RowPeriod> {
        let Some((first, next)) = self.first_and_next() else {
            return Vec::new();
        };
        let mut rows = Vec::new();
        match self {
            ReportPeriod::Day(_) => {
                let Some(start) = utc_midnight(first, offset) else {
                    return rows;
                };
                for hour in 0..24 {
                    let at = start.0 + hour * crate::model::time::HOUR_MS;
                    rows.push(RowPeriod {
                        start: Timestamp(at),
                        end: Timestamp(at + crate::model::time::HOUR_MS),
                        label: format!("{hour:02}"),
                    });
                }
            }
            ReportPeriod::Month(_) => {
                let mut day = first;
                while day < next {
                    let Some(following) = day.succ_opt() else {
                        break;
                    };
                    if let (Some(start), Some(end)) =
                        (utc_midnight(day, offset), utc_midnight(following, offset))
                    {
                        rows.push(RowPeriod {
                            start,
                            end,
                            label: format!("{:02}", day.day()),
                        });
                    }
                    day = following;
                }
            }
            ReportPeriod::Year(_) => {
                let mut month = first;
                while month < next {
                    let Some(following) = next_month(month) else {
                        break;
                    };
                    if let (Some(start), Some(end)) =
                        (utc_midnight(month, offset), utc_midnight(following, offset))
                    {
                        rows.push(RowPeriod {
                            start,
                            end,
                            label: format!("{:02}", month.month()),
                        });
                    }
                    month = following;
                }
            }
        }
        rows
    }
}

fn next_month(d: NaiveDate) -> Option<NaiveDate> {
    if d.month() == 12 {
        NaiveDate::from_ymd_opt(d.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(d.year(), d.month() + 1, 1)
    }
}

/// Local midnight of `day` in UTC.
pub fn utc_midnight(day: NaiveDate, offset: UtcOffset) -> Option<Timestamp> {
    let ms = day.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis();
    Some(Timestamp(ms.checked_sub(offset.millis())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse_and_cut_into_local_rows() {
        let offset = UtcOffset::CHINA;
        let day = ReportPeriod::day("2026-03-10").unwrap_or_else(|e| panic!("{e}"));
        let rows = day.rows(offset);
        assert_eq!(rows.len(), 24);
        // 2026-03-10 00:00 at UTC+8
        assert_eq!(rows[0].start, Timestamp(1_773_072_000_000));
        assert_eq!(rows[23].label, "23");
        let feb = ReportPeriod::month("2026-02").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(feb.rows(offset).len(), 28);
        assert_eq!(feb.label(), "2026-02");
        let year = ReportPeriod::year("2024").unwrap_or_else(|e| panic!("{e}"));
        let months = year.rows(offset);
        assert_eq!(months.len(), 12);
        // 2024 is a leap year: February 29 days
        assert_eq!((months[1].end.0 - months[1].start.0) / 86_400_000, 29);
        assert!(ReportPeriod::month("2026-13").is_err());
        assert!(ReportPeriod::year("twenty").is_err());
        assert!(ReportPeriod::day("10.03.2026").is_err());
    }
}
