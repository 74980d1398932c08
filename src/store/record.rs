//! What the store keeps: one row per reading, aggregate period, gap, exceedance or event.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::model::{FlagSet, Quantity, Reading, Timestamp, Unit};

/// The kinds of row the outbox carries. The numeric code is what is stored, so existing
/// codes must never change; new kinds take new codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecordKind {
    Reading,
    Minute,
    Hour,
    Day,
    Gap,
    Exceedance,
    Event,
}

impl RecordKind {
    pub const ALL: [RecordKind; 7] = [
        RecordKind::Reading,
        RecordKind::Minute,
        RecordKind::Hour,
        RecordKind::Day,
        RecordKind::Gap,
        RecordKind::Exceedance,
        RecordKind::Event,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Reading => "reading",
            RecordKind::Minute => "minute",
            RecordKind::Hour => "hour",
            RecordKind::Day => "day",
            RecordKind::Gap => "gap",
            RecordKind::Exceedance => "exceedance",
            RecordKind::Event => "event",
        }
    }

    pub fn parse(s: &str) -> Option<RecordKind> {
        RecordKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub(crate) fn code(self) -> i64 {
        match self {
            RecordKind::Reading => 0,
            RecordKind::Minute => 1,
            RecordKind::Hour => 2,
            RecordKind::Day => 3,
            RecordKind::Gap => 4,
            RecordKind::Exceedance => 5,
            RecordKind::Event => 6,
        }
    }

    /// Kinds with a per-series index (`schema::SERIES_INDEX_CONDITION`, codes 2 and up):
    /// the sparse ones, a row per series per hour or rarer.
    pub(crate) fn in_series_index(self) -> bool {
        self.code() >= 2
    }

    pub(crate) fn from_code(code: i64) -> Option<RecordKind> {
        RecordKind::ALL.into_iter().find(|k| k.code() == code)
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RecordKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RecordKind::parse(s).ok_or_else(|| {
            let names: Vec<_> = RecordKind::ALL.iter().map(|k| k.as_str()).collect();
            format!(
                "unknown record kind {s:?}: expected one of {}",
                names.join(", ")
            )
        })
    }
}

/// One row of the outbox. Value fields that do not apply to a kind stay `None`.
/// A NaN value is stored as SQL NULL and so reads back as `None`: NaN means "no value".
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub kind: RecordKind,
    /// Reading time, or start of the period, gap or event.
    pub ts: Timestamp,
    /// End of the period, gap or event; `None` while it is still open.
    pub end: Option<Timestamp>,
    pub stack: Arc<str>,
    pub device: Arc<str>,
    pub channel: Arc<str>,
    pub quantity: Option<Quantity>,
    pub unit: Option<Unit>,
    /// `primary()` is the HJ 212 flag.
    pub flags: FlagSet,
    pub raw: Option<f64>,
    pub measured: Option<f64>,
    pub corrected: Option<f64>,
    pub rate: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub count: Option<u32>,
    /// O2-corrected extremes of an aggregate period (HJ 212 ZsMin/ZsMax).
    pub corrected_min: Option<f64>,
    pub corrected_max: Option<f64>,
    /// Gap cause, event detail.
    pub note: Option<String>,
    /// 0 for the first version of a minute, hour or day; 1, 2, … for each recomputation
    /// after late readings re-opened it. The newest row of a (series, kind, ts) is the
    /// one that counts; the older ones stay for audit.
    pub revision: u32,
}

impl Record {
    /// A row of `kind` with no values, no flags and no note, for callers to fill in.
    pub fn new(
        kind: RecordKind,
        ts: Timestamp,
        stack: Arc<str>,
        device: Arc<str>,
        channel: Arc<str>,
    ) -> Record {
        Record {
            kind,
            ts,
            end: None,
            stack,
            device,
            channel,
            quantity: None,
            unit: None,
            flags: FlagSet::EMPTY,
            raw: None,
            measured: None,
            corrected: None,
            rate: None,
            min: None,
            max: None,
            count: None,
            corrected_min: None,
            corrected_max: None,
            note: None,
            revision: 0,
        }
    }
}

impl From<&Reading> for Record {
    fn from(r: &Reading) -> Record {
        Record {
            quantity: Some(r.quantity),
            unit: Some(r.unit),
            flags: r.flags,
            raw: Some(r.raw),
            measured: Some(r.measured),
            corrected: r.corrected,
            rate: r.rate,
            ..Record::new(
                RecordKind::Reading,
                r.ts,
                r.stack.clone(),
                r.device.clone(),
                r.channel.clone(),
            )
        }
    }
}

/// A committed record with the sequence number the store gave it. Seq numbers rise
/// forever and are never reused, so a sink's cursor identifies exactly what it has taken.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub seq: u64,
    pub record: Record,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_and_codes_round_trip() {
        for kind in RecordKind::ALL {
            assert_eq!(RecordKind::parse(kind.as_str()), Some(kind));
            assert_eq!(kind.as_str().parse::<RecordKind>(), Ok(kind));
            assert_eq!(RecordKind::from_code(kind.code()), Some(kind));
        }
        assert_eq!(RecordKind::parse("Reading"), None);
        assert!("hours".parse::<RecordKind>().is_err());
        assert_eq!(RecordKind::from_code(7), None);
    }

    #[test]
    fn kind_codes_are_the_stored_ones() {
        // Codes are on disk: changing one would misread every existing store.
        let codes: Vec<i64> = RecordKind::ALL.iter().map(|k| k.code()).collect();
        assert_eq!(codes, vec![0, 1, 2, 3, 4, 5, 6]);
    }
}
