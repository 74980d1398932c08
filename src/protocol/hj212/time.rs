//! QN and DataTime are local wall-clock times without a zone; the caller decides the zone
//! (the station's) and passes the local time in, so nothing here reads a clock.

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

const QN_FORMAT: &str = "%Y%m%d%H%M%S%3f";
const DATA_TIME_FORMAT: &str = "%Y%m%d%H%M%S";

// Every packet carries these times, so they are written and read digit by digit rather than
// through chrono's format strings, which re-parse the format on each call. The results are
// those of the format strings above, leap seconds included.

/// `YYYYMMDDhhmmsszzz`, the request number of a packet.
pub fn format_qn(local: NaiveDateTime) -> String {
    let mut out = String::with_capacity(17);
    if !push_date_time(&mut out, local) {
        return local.format(QN_FORMAT).to_string();
    }
    // `%3f`: a leap second's nanoseconds run past 1e9.
    push_digits(&mut out, local.nanosecond() / 1_000_000 % 1_000, 3);
    out
}

/// `YYYYMMDDhhmmss`, the time a record refers to.
pub fn format_data_time(local: NaiveDateTime) -> String {
    let mut out = String::with_capacity(14);
    if !push_date_time(&mut out, local) {
        return local.format(DATA_TIME_FORMAT).to_string();
    }
    out
}

/// Writes `YYYYMMDDhhmmss`; false for a year that `%Y` writes with a sign or more digits.
fn push_date_time(out: &mut String, local: NaiveDateTime) -> bool {
    let Ok(year @ 0..=9999) = u32::try_from(local.year()) else {
        return false;
    };
    push_digits(out, year, 4);
    push_digits(out, local.month(), 2);
    push_digits(out, local.day(), 2);
    push_digits(out, local.hour(), 2);
    push_digits(out, local.minute(), 2);
    // `%S` shows a leap second as 60.
    push_digits(out, local.second() + local.nanosecond() / 1_000_000_000, 2);
    true
}

/// The last `width` decimal digits of `n`, zero-padded.
fn push_digits(out: &mut String, n: u32, width: u32) {
    for place in (0..width).rev() {
        let digit = n / 10u32.pow(place) % 10;
        // A single decimal digit is below 10; the cast cannot truncate.
        out.push(char::from(b'0' + digit as u8));
    }
}

pub fn parse_qn(qn: &str) -> Option<NaiveDateTime> {
    if qn.len() != 17 || !qn.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    date_time_of(qn.as_bytes(), number(&qn.as_bytes()[14..17]))
}

pub fn parse_data_time(data_time: &str) -> Option<NaiveDateTime> {
    if data_time.len() != 14 || !data_time.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    date_time_of(data_time.as_bytes(), 0)
}

/// The time in the 14 ASCII digits `YYYYMMDDhhmmss` that start `digits`, as `%Y%m%d%H%M%S`
/// reads them: second 60 is a leap second.
fn date_time_of(digits: &[u8], millis: u32) -> Option<NaiveDateTime> {
    let field = |range: std::ops::Range<usize>| digits.get(range).map(number);
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(field(0..4)?).ok()?,
        field(4..6)?,
        field(6..8)?,
    )?;
    let (second, leap) = match field(12..14)? {
        60 => (59, 1_000_000_000),
        second => (second, 0),
    };
    let time = NaiveTime::from_hms_nano_opt(
        field(8..10)?,
        field(10..12)?,
        second,
        leap + millis * 1_000_000,
    )?;
    Some(date.and_time(time))
}

/// The value of ASCII decimal digits the caller has checked.
fn number(digits: &[u8]) -> u32 {
    digits
        .iter()
        .fold(0, |n, &b| n * 10 + u32::from(b.wrapping_sub(b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    #[test]
    fn formats_and_parses_the_standard_example() {
        let date = NaiveDate::from_ymd_opt(2016, 8, 1).expect("valid date");
        let with_millis = date.and_hms_milli_opt(8, 58, 57, 223).expect("valid time");
        let whole_second = date.and_hms_opt(8, 58, 57).expect("valid time");
        assert_eq!(format_qn(with_millis), "20160801085857223");
        assert_eq!(parse_qn("20160801085857223"), Some(with_millis));
        assert_eq!(format_data_time(with_millis), "20160801085857");
        assert_eq!(parse_data_time("20160801085857"), Some(whole_second));
    }

    #[test]
    fn rejects_malformed_times() {
        assert_eq!(parse_data_time("2016080108585"), None);
        assert_eq!(parse_data_time("20161301085857"), None, "month 13");
        assert_eq!(parse_data_time("2016080108585x"), None);
        assert_eq!(parse_qn("20160801085857"), None);
    }

    /// The digit-by-digit reading agrees with chrono's format strings, edge cases included.
    #[test]
    fn parsing_matches_the_format_strings() {
        let cases = [
            "20160801085857",
            "00000101000000", // year 0 exists in chrono's proleptic calendar
            "99991231235959",
            "20240229120000", // leap day
            "20230229120000", // no Feb 29 in 2023
            "20160800085857", // day 0
            "20160832085857", // day 32
            "20160001085857", // month 0
            "20160801240000", // hour 24
            "20160801086000", // minute 60
            "20160801085960", // a leap second
            "20160801085961",
            "20160801085999",
        ];
        for text in cases {
            let chrono_reading = NaiveDateTime::parse_from_str(text, DATA_TIME_FORMAT).ok();
            assert_eq!(parse_data_time(text), chrono_reading, "DataTime {text}");
            for millis in ["000", "223", "999"] {
                let qn = format!("{text}{millis}");
                let chrono_reading = NaiveDateTime::parse_from_str(&qn, QN_FORMAT).ok();
                assert_eq!(parse_qn(&qn), chrono_reading, "QN {qn}");
            }
        }
        // Second 60 is 59 s plus a leap nanosecond count: 08:58:59 + 1e9 ns + 223 ms.
        let leap = NaiveDate::from_ymd_opt(2016, 8, 1)
            .and_then(|d| d.and_hms_nano_opt(8, 58, 59, 1_223_000_000));
        assert!(leap.is_some(), "valid leap time");
        assert_eq!(parse_qn("20160801085860223"), leap);
    }

    /// The digit-by-digit writing agrees with chrono's format strings, edge cases included.
    #[test]
    fn formatting_matches_the_format_strings() {
        let times = [
            (2016, 8, 1, 8, 58, 57, 223_000_000),
            (1, 1, 1, 0, 0, 0, 0),
            (999, 12, 31, 23, 59, 59, 999_999_999),
            (9999, 12, 31, 23, 59, 59, 5_000_000),
            (2016, 12, 31, 23, 59, 59, 1_250_000_000), // a leap second
            (10_000, 1, 1, 0, 0, 0, 0),                // five-digit year: chrono writes +10000
            (-1, 1, 1, 0, 0, 0, 0),                    // before year 0: chrono writes -0001
        ];
        for (year, month, day, hour, minute, second, nano) in times {
            let time = NaiveDate::from_ymd_opt(year, month, day)
                .and_then(|d| d.and_hms_nano_opt(hour, minute, second, nano));
            let Some(time) = time else {
                panic!("invalid test time {year}-{month}-{day} {hour}:{minute}:{second}.{nano}");
            };
            assert_eq!(format_qn(time), time.format(QN_FORMAT).to_string());
            assert_eq!(
                format_data_time(time),
                time.format(DATA_TIME_FORMAT).to_string()
            );
        }
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_250_000_000));
        assert_eq!(leap.map(format_qn).as_deref(), Some("20161231235960250"));
        let early = NaiveDate::from_ymd_opt(999, 1, 2).and_then(|d| d.and_hms_opt(3, 4, 5));
        assert_eq!(
            early.map(format_data_time).as_deref(),
            Some("09990102030405")
        );
    }
}
