//! Timestamps in payloads. Every format either carries its zone (RFC 3339, Unix time,
//! patterns with `%z`) or is read in an explicitly configured zone, never the machine's.

use std::fmt::Write as _;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Deserializer};

use crate::model::time::UtcOffset;
use crate::model::Timestamp;
use crate::protocol::hj212;

/// How a payload writes its timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeFormat {
    /// `2026-01-01T12:00:00.5+08:00` (a space for the `T` is accepted).
    Rfc3339,
    /// Unix time in seconds (fractions allowed), milli-, micro- or nanoseconds, as a JSON
    /// number or a string of digits.
    UnixSeconds,
    UnixMillis,
    UnixMicros,
    UnixNanos,
    /// HJ 212 `YYYYMMDDhhmmss`, local time.
    Hj212,
    /// A chrono pattern such as `%Y-%m-%d %H:%M:%S`; local time unless it has `%z`.
    Pattern(String),
}

/// Readings outside these years come from a device clock that was never set or a
/// timestamp read in the wrong unit; neither is a time a bureau can accept.
const PLAUSIBLE_YEARS: std::ops::RangeInclusive<i32> = 2000..=2099;

impl TimeFormat {
    pub fn parse(text: &str) -> Result<TimeFormat, String> {
        Ok(match text {
            "rfc3339" => TimeFormat::Rfc3339,
            "unix_s" => TimeFormat::UnixSeconds,
            "unix_ms" => TimeFormat::UnixMillis,
            "unix_us" => TimeFormat::UnixMicros,
            "unix_ns" => TimeFormat::UnixNanos,
            "hj212" => TimeFormat::Hj212,
            pattern if pattern.contains('%') => {
                let mut probe = String::new();
                let sample = chrono::DateTime::<Utc>::UNIX_EPOCH.fixed_offset();
                if write!(probe, "{}", sample.format(pattern)).is_err() {
                    return Err(format!("{pattern:?} is not a valid time pattern: expected chrono specifiers such as %Y-%m-%d %H:%M:%S"));
                }
                TimeFormat::Pattern(pattern.to_string())
            }
            other => {
                return Err(format!(
                    "unknown time format {other:?}: expected rfc3339, unix_s, unix_ms, unix_us, unix_ns, hj212, or a pattern such as \"%Y-%m-%d %H:%M:%S\""
                ))
            }
        })
    }

    /// Whether the text itself says which zone it is in.
    pub fn carries_zone(&self) -> bool {
        match self {
            TimeFormat::Hj212 => false,
            TimeFormat::Pattern(p) => p.contains("%z") || p.contains("%:z") || p.contains("%#z"),
            _ => true,
        }
    }

    fn is_unix(&self) -> bool {
        matches!(
            self,
            TimeFormat::UnixSeconds
                | TimeFormat::UnixMillis
                | TimeFormat::UnixMicros
                | TimeFormat::UnixNanos
        )
    }

    /// Reads a timestamp written as text; `zone` applies to formats without one.
    pub fn read_text(&self, text: &str, zone: UtcOffset) -> Result<Timestamp, String> {
        let text = text.trim();
        let ts = match self {
            _ if self.is_unix() => {
                if let Ok(n) = text.parse::<i64>() {
                    self.millis_of_integer(n)
                } else {
                    let n: f64 = text
                        .parse()
                        .map_err(|_| format!("{text:?} is not a Unix time"))?;
                    self.millis_of_float(n)
                }
            }
            TimeFormat::Rfc3339 => {
                let normalised;
                let text = if text.as_bytes().get(10) == Some(&b' ') {
                    normalised = format!("{}T{}", &text[..10], &text[11..]);
                    normalised.as_str()
                } else {
                    text
                };
                DateTime::parse_from_rfc3339(text)
                    .map(|dt| dt.timestamp_millis())
                    .map_err(|e| format!("{text:?} is not an RFC 3339 time with a zone: {e}"))
            }
            TimeFormat::Hj212 => hj212::parse_data_time(text)
                .map(|local| zone.instant_of(local).0)
                .ok_or_else(|| format!("{text:?} is not an HJ 212 time (YYYYMMDDhhmmss)")),
            TimeFormat::Pattern(pattern) if self.carries_zone() => {
                DateTime::parse_from_str(text, pattern)
                    .map(|dt| dt.timestamp_millis())
                    .map_err(|e| format!("{text:?} does not fit {pattern:?}: {e}"))
            }
            TimeFormat::Pattern(pattern) => NaiveDateTime::parse_from_str(text, pattern)
                .map(|local| zone.instant_of(local).0)
                .map_err(|e| format!("{text:?} does not fit {pattern:?}: {e}")),
            _ => Err(format!("{text:?} is not a time")),
        }?;
        plausible(ts)
    }

    /// Reads a timestamp written as a JSON number (Unix formats only).
    pub fn read_number(&self, number: &serde_json::Number) -> Result<Timestamp, String> {
        if !self.is_unix() {
            return Err(format!(
                "{number} is a number, but the time format expects text"
            ));
        }
        let ts = match number.as_i64() {
            Some(n) => self.millis_of_integer(n),
            None => self.millis_of_float(number.as_f64().unwrap_or(f64::NAN)),
        }?;
        plausible(ts)
    }

    fn millis_of_integer(&self, n: i64) -> Result<i64, String> {
        Ok(match self {
            TimeFormat::UnixSeconds => n
                .checked_mul(1000)
                .ok_or_else(|| format!("{n} s is out of range"))?,
            TimeFormat::UnixMillis => n,
            TimeFormat::UnixMicros => n.div_euclid(1000),
            _ => n.div_euclid(1_000_000),
        })
    }

    fn millis_of_float(&self, n: f64) -> Result<i64, String> {
        let per_ms = match self {
            TimeFormat::UnixSeconds => 1e-3,
            TimeFormat::UnixMillis => 1.0,
            TimeFormat::UnixMicros => 1e3,
            _ => 1e6,
        };
        let ms = (n / per_ms).round();
        if ms.is_finite() && ms.abs() < 1e15 {
            Ok(ms as i64)
        } else {
            Err(format!("{n} is not a Unix time"))
        }
    }
}

fn plausible(ms: i64) -> Result<Timestamp, String> {
    let year = Utc
        .timestamp_millis_opt(ms)
        .single()
        .map(|dt| chrono::Datelike::year(&dt));
    match year {
        Some(y) if PLAUSIBLE_YEARS.contains(&y) => Ok(Timestamp::from_millis(ms)),
        _ => Err(format!(
            "{} is outside {}–{}: an unset device clock or a time in the wrong unit",
            Timestamp::from_millis(ms),
            PLAUSIBLE_YEARS.start(),
            PLAUSIBLE_YEARS.end()
        )),
    }
}

impl<'de> Deserialize<'de> for TimeFormat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        TimeFormat::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CST: UtcOffset = UtcOffset::CHINA;
    /// 2026-01-01T04:00:00Z = 2026-01-01 12:00:00 +08:00.
    const NOON_CST_MS: i64 = 1_767_240_000_000;

    fn ok(format: &TimeFormat, text: &str, zone: UtcOffset) -> i64 {
        format
            .read_text(text, zone)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .millis()
    }

    #[test]
    fn every_format_reads_the_same_instant() {
        // 1_767_240_000_000 ms = 20454 days × 86 400 000 + 4 h; 20454 days after 1970-01-01
        // is 2026-01-01
        assert_eq!(
            ok(&TimeFormat::Rfc3339, "2026-01-01T12:00:00+08:00", CST),
            NOON_CST_MS
        );
        assert_eq!(
            ok(&TimeFormat::Rfc3339, "2026-01-01 04:00:00Z", CST),
            NOON_CST_MS
        );
        assert_eq!(
            ok(&TimeFormat::Rfc3339, "2026-01-01T04:00:00.250Z", CST),
            NOON_CST_MS + 250
        );
        assert_eq!(ok(&TimeFormat::UnixSeconds, "1767240000", CST), NOON_CST_MS);
        assert_eq!(
            ok(&TimeFormat::UnixSeconds, "1767240000.5", CST),
            NOON_CST_MS + 500
        );
        assert_eq!(
            ok(&TimeFormat::UnixMillis, "1767240000000", CST),
            NOON_CST_MS
        );
        assert_eq!(
            ok(&TimeFormat::UnixMicros, "1767240000000999", CST),
            NOON_CST_MS
        );
        assert_eq!(
            ok(&TimeFormat::UnixNanos, "1767240000001000000", CST),
            NOON_CST_MS + 1
        );
        assert_eq!(ok(&TimeFormat::Hj212, "20260101120000", CST), NOON_CST_MS);
        // the same local time in UTC is 8 h later
        assert_eq!(
            ok(&TimeFormat::Hj212, "20260101120000", UtcOffset::UTC),
            NOON_CST_MS + 8 * 3_600_000
        );
        let local = TimeFormat::parse("%Y/%m/%d %H:%M:%S").unwrap_or_else(|e| panic!("{e}"));
        assert!(!local.carries_zone());
        assert_eq!(ok(&local, "2026/01/01 12:00:00", CST), NOON_CST_MS);
        let zoned = TimeFormat::parse("%d.%m.%Y %H:%M %z").unwrap_or_else(|e| panic!("{e}"));
        assert!(zoned.carries_zone());
        assert_eq!(ok(&zoned, "01.01.2026 05:00 +0100", CST), NOON_CST_MS);
    }

    #[test]
    fn json_numbers_are_unix_times() {
        let n = serde_json::Number::from(1_767_240_000_i64);
        assert_eq!(
            TimeFormat::UnixSeconds.read_number(&n),
            Ok(Timestamp(NOON_CST_MS))
        );
        let f = serde_json::Number::from_f64(1_767_240_000.25).unwrap_or_else(|| panic!("finite"));
        assert_eq!(
            TimeFormat::UnixSeconds.read_number(&f),
            Ok(Timestamp(NOON_CST_MS + 250))
        );
        assert!(TimeFormat::Rfc3339.read_number(&n).is_err());
    }

    #[test]
    fn zoneless_rfc3339_and_implausible_times_are_refused() {
        assert!(TimeFormat::Rfc3339
            .read_text("2026-01-01T12:00:00", CST)
            .is_err());
        assert!(TimeFormat::Rfc3339.read_text("yesterday", CST).is_err());
        // milliseconds read as seconds: year 57 970
        assert!(TimeFormat::UnixSeconds
            .read_text("1767240000000", CST)
            .is_err());
        // an unset clock
        assert!(TimeFormat::UnixSeconds.read_text("0", CST).is_err());
        assert!(TimeFormat::Hj212.read_text("20261301120000", CST).is_err());
    }

    #[test]
    fn config_names_and_patterns_parse() {
        assert_eq!(TimeFormat::parse("unix_ms"), Ok(TimeFormat::UnixMillis));
        assert!(TimeFormat::parse("iso").is_err());
        assert!(TimeFormat::parse("%Q").is_err(), "unknown specifier");
    }
}
