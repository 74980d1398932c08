//! QN and DataTime are local wall-clock times without a zone; the caller decides the zone
//! (the station's) and passes the local time in, so nothing here reads a clock.

use chrono::NaiveDateTime;

const QN_FORMAT: &str = "%Y%m%d%H%M%S%3f";
const DATA_TIME_FORMAT: &str = "%Y%m%d%H%M%S";

/// `YYYYMMDDhhmmsszzz`, the request number of a packet.
pub fn format_qn(local: NaiveDateTime) -> String {
    local.format(QN_FORMAT).to_string()
}

/// `YYYYMMDDhhmmss`, the time a record refers to.
pub fn format_data_time(local: NaiveDateTime) -> String {
    local.format(DATA_TIME_FORMAT).to_string()
}

pub fn parse_qn(qn: &str) -> Option<NaiveDateTime> {
    if qn.len() != 17 || !qn.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDateTime::parse_from_str(qn, QN_FORMAT).ok()
}

pub fn parse_data_time(data_time: &str) -> Option<NaiveDateTime> {
    if data_time.len() != 14 || !data_time.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDateTime::parse_from_str(data_time, DATA_TIME_FORMAT).ok()
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
}
