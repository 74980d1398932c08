//! Time on the site's terms: its fixed UTC offset and the minute, hour and day periods that
//! HJ 75 averages over, which start at local boundaries.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer};

use super::Timestamp;

/// What time it is, for the parts that stamp what they do (QNs, DataTime of replies, dead
/// letters, `Retry-After` dates): passed in, so tests can set the time.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The wall clock, read at the edges of the system (collectors, HTTP handlers, sinks).
pub fn now() -> Timestamp {
    Timestamp::from_datetime(chrono::Utc::now())
}

/// A [`Clock`] that reads the wall clock.
pub fn system_clock() -> Clock {
    Arc::new(now)
}

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Period {
    Minute,
    Hour,
    Day,
}

impl Period {
    pub fn millis(self) -> i64 {
        match self {
            Period::Minute => MINUTE_MS,
            Period::Hour => HOUR_MS,
            Period::Day => DAY_MS,
        }
    }

    /// The period an hour or a day is made of: its statistics are those of its minutes or
    /// hours. A minute is made of readings.
    pub fn part(self) -> Option<Period> {
        match self {
            Period::Minute => None,
            Period::Hour => Some(Period::Minute),
            Period::Day => Some(Period::Hour),
        }
    }

    /// How many parts fill it: 60 minutes an hour, 24 hours a day (the site's offset is
    /// fixed, so every day has 24); 0 for a minute.
    pub fn parts_in(self) -> u32 {
        self.part()
            .map_or(0, |part| (self.millis() / part.millis()) as u32)
    }

    pub fn name(self) -> &'static str {
        match self {
            Period::Minute => "minute",
            Period::Hour => "hour",
            Period::Day => "day",
        }
    }
}

/// The site's fixed offset from UTC. Written "+08:00", "-05:30" or "Z".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UtcOffset {
    seconds: i32,
}

impl UtcOffset {
    pub const UTC: UtcOffset = UtcOffset { seconds: 0 };
    /// China Standard Time, the local time of HJ 212 DataTime.
    pub const CHINA: UtcOffset = UtcOffset { seconds: 8 * 3600 };

    /// An offset of less than 24 hours either way.
    pub fn from_seconds(seconds: i32) -> Option<UtcOffset> {
        (seconds.abs() < 24 * 3600).then_some(UtcOffset { seconds })
    }

    pub fn seconds(self) -> i32 {
        self.seconds
    }

    pub fn millis(self) -> i64 {
        i64::from(self.seconds) * 1000
    }

    /// The wall-clock time here at `ts`: HJ 212 DataTime and QN are written in it.
    pub fn local_time(self, ts: Timestamp) -> chrono::NaiveDateTime {
        Timestamp(ts.millis().saturating_add(self.millis()))
            .to_datetime()
            .naive_utc()
    }

    /// The instant of a wall-clock time here (DataTime, BeginTime, SystemTime).
    pub fn instant_of(self, local: chrono::NaiveDateTime) -> Timestamp {
        Timestamp(
            local
                .and_utc()
                .timestamp_millis()
                .saturating_sub(self.millis()),
        )
    }

    /// The same offset for chrono's calendar arithmetic (file rotation at local midnight).
    pub fn to_chrono(self) -> chrono::FixedOffset {
        // from_seconds keeps |seconds| < 24 h, the range FixedOffset accepts
        use chrono::Offset;
        chrono::FixedOffset::east_opt(self.seconds).unwrap_or_else(|| chrono::Utc.fix())
    }
}

impl fmt::Display for UtcOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.seconds < 0 { '-' } else { '+' };
        let abs = self.seconds.unsigned_abs();
        write!(f, "{sign}{:02}:{:02}", abs / 3600, abs % 3600 / 60)
    }
}

impl FromStr for UtcOffset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            || format!("invalid UTC offset {s:?}: write e.g. \"+08:00\", \"-05:30\" or \"Z\"");
        if s == "Z" {
            return Ok(UtcOffset::UTC);
        }
        let (sign, rest) = match s.as_bytes().first() {
            Some(b'+') => (1, &s[1..]),
            Some(b'-') => (-1, &s[1..]),
            _ => return Err(bad()),
        };
        let (h, m) = rest.split_once(':').ok_or_else(bad)?;
        if h.len() != 2 || m.len() != 2 {
            return Err(bad());
        }
        let h: i32 = h.parse().map_err(|_| bad())?;
        let m: i32 = m.parse().map_err(|_| bad())?;
        if m >= 60 {
            return Err(bad());
        }
        UtcOffset::from_seconds(sign * (h * 3600 + m * 60)).ok_or_else(bad)
    }
}

impl<'de> Deserialize<'de> for UtcOffset {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Start (UTC) of the local period containing `ts`.
pub fn period_start(ts: Timestamp, period: Period, offset: UtcOffset) -> Timestamp {
    Timestamp(floor(ts.millis(), period.millis(), offset.millis()))
}

/// Start of the period of length `len` containing `ts`, all in milliseconds, at `offset` from UTC.
pub fn floor(ts: i64, len: i64, offset: i64) -> i64 {
    ts.saturating_add(offset).div_euclid(len) * len - offset
}
