//! What the status page shows when one stack is opened (`/api/stack?id=`): per channel the
//! hour-to-date average of its minute records, emission rate and today's data completeness,
//! and the stack's exceedances of the last week and gaps of the last day. Only that
//! stack's minute, exceedance and gap records are read, so the cost follows one stack's
//! day, not the store's age or its number of series.

use std::collections::BTreeMap;

use serde::Serialize;

use super::status::ValueKind;
use crate::model::time::UtcOffset;
use crate::model::{Flag, Quantity, Timestamp};
use crate::report::notes::NoteWords;
use crate::store::{Query, RecordKind, Store, StoreError, Stored};

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StackDetail {
    pub stack: String,
    pub now: i64,
    /// Start of the current hour and day, site time.
    pub hour_start: i64,
    pub day_start: i64,
    pub channels: Vec<ChannelSummary>,
    /// Exceedance events of the last 7 days, newest first.
    pub exceedances: Vec<Period>,
    /// Gaps of the last 24 h, newest first.
    pub gaps: Vec<Period>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelSummary {
    pub device: String,
    pub channel: String,
    pub quantity: Option<&'static str>,
    pub unit: Option<&'static str>,
    /// Which value the averages are of.
    pub kind: Option<ValueKind>,
    /// Mean of this hour's valid minutes (flag N); `None` before the first.
    pub hour_mean: Option<f64>,
    /// Mean emission rate in kg/h over the same minutes, where the flow is known.
    pub hour_rate: Option<f64>,
    pub hour_minutes: u32,
    /// Valid minutes today over the minutes elapsed since local midnight.
    pub day_valid_minutes: u32,
    pub day_elapsed_minutes: u32,
}

/// An exceedance or a gap.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Period {
    pub device: String,
    pub channel: String,
    pub quantity: Option<&'static str>,
    pub from: i64,
    /// `None` while it lasts.
    pub to: Option<i64>,
    pub flag: char,
    /// The exceedance's value (corrected where there is one), or the gap's cause.
    pub value: Option<f64>,
    pub note: Option<String>,
    /// `note` in words, Chinese and English.
    pub note_words: Option<NoteWords>,
}

/// Reads and summarises `stack` at `now`. Blocks.
pub fn read(
    store: &Store,
    stack: &str,
    now: Timestamp,
    offset: UtcOffset,
) -> Result<StackDetail, StoreError> {
    let local = now.0 + offset.millis();
    let day_start = local - local.rem_euclid(DAY_MS) - offset.millis();
    let hour_start = now.0 - (local.rem_euclid(HOUR_MS));
    let query = |kind, from: i64| Query {
        kind: Some(kind),
        stack: Some(stack.to_string()),
        from: Some(Timestamp(from)),
        to: Some(Timestamp(now.0 + 1)),
        ..Query::default()
    };
    let minutes = store.query(&query(RecordKind::Minute, day_start))?;
    let exceedances = store.query(&query(RecordKind::Exceedance, now.0 - 7 * DAY_MS))?;
    let gaps = store.query(&query(RecordKind::Gap, now.0 - DAY_MS))?;
    Ok(StackDetail {
        stack: stack.to_string(),
        now: now.0,
        hour_start,
        day_start,
        channels: summarise(&minutes, hour_start, day_start, now.0),
        exceedances: periods(&exceedances),
        gaps: periods(&gaps),
    })
}

/// Per channel, from its minute records of today in time order (a recomputed minute after
/// the revision it replaces).
fn summarise(minutes: &[Stored], hour_start: i64, day_start: i64, now: i64) -> Vec<ChannelSummary> {
    let mut by_channel: BTreeMap<(&str, &str), Vec<&Stored>> = BTreeMap::new();
    for m in minutes {
        by_channel
            .entry((&m.record.device, &m.record.channel))
            .or_default()
            .push(m);
    }
    let elapsed = u32::try_from((now - day_start) / MINUTE_MS).unwrap_or(u32::MAX);
    by_channel
        .into_iter()
        .map(|((device, channel), rows)| {
            // the newest revision of each minute
            let newest: Vec<&Stored> = rows
                .iter()
                .enumerate()
                .filter(|(i, s)| rows.get(i + 1).is_none_or(|n| n.record.ts != s.record.ts))
                .map(|(_, s)| *s)
                .collect();
            let kind = newest
                .iter()
                .filter_map(|s| ValueKind::of(&s.record).map(|(k, _)| k))
                .max();
            let valid: Vec<&Stored> = newest
                .iter()
                .filter(|s| s.record.flags.primary() == Flag::N)
                .copied()
                .collect();
            let this_hour: Vec<&Stored> = valid
                .iter()
                .filter(|s| s.record.ts.0 >= hour_start)
                .copied()
                .collect();
            let mean = |values: Vec<f64>| {
                (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
            };
            let last = newest.last().map(|s| &s.record);
            ChannelSummary {
                device: device.to_string(),
                channel: channel.to_string(),
                quantity: last.and_then(|r| r.quantity).map(Quantity::name),
                unit: last.and_then(|r| r.unit).map(|u| u.symbol()),
                kind,
                hour_mean: mean(
                    this_hour
                        .iter()
                        .filter_map(|s| kind.and_then(|k| k.value(&s.record)))
                        .collect(),
                ),
                hour_rate: mean(this_hour.iter().filter_map(|s| s.record.rate).collect()),
                hour_minutes: u32::try_from(this_hour.len()).unwrap_or(u32::MAX),
                day_valid_minutes: u32::try_from(valid.len()).unwrap_or(u32::MAX),
                day_elapsed_minutes: elapsed,
            }
        })
        .collect()
}

fn periods(rows: &[Stored]) -> Vec<Period> {
    rows.iter()
        .rev()
        .map(|s| {
            let r = &s.record;
            Period {
                device: r.device.to_string(),
                channel: r.channel.to_string(),
                quantity: r.quantity.map(Quantity::name),
                from: r.ts.0,
                to: r.end.map(|t| t.0),
                flag: r.flags.primary().code(),
                value: r.corrected.or(r.measured),
                note: r.note.clone(),
                note_words: NoteWords::of(r.note.as_deref()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FlagSet, Unit};
    use crate::store::{Record, StoreOptions};

    const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z, 08:00 in China

    fn minute(minutes_after: i64, corrected: f64, flag: Flag) -> Record {
        let mut r = Record::new(
            RecordKind::Minute,
            Timestamp(T0 + minutes_after * MINUTE_MS),
            "u1".into(),
            "so2".into(),
            "so2".into(),
        );
        r.quantity = Some(Quantity::SO2);
        r.unit = Some(Unit::MgPerM3);
        r.measured = Some(corrected / 2.0);
        r.corrected = Some(corrected);
        r.rate = Some(corrected / 10.0);
        r.flags = FlagSet::of(flag);
        r
    }

    #[test]
    fn hour_to_date_and_completeness_come_from_valid_minutes_of_one_stack() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let mut store = Store::open(&dir.path().join("cems.db"), StoreOptions::default())
            .unwrap_or_else(|e| panic!("open: {e}"));
        let mut other_stack = minute(61, 999.0, Flag::N);
        other_stack.stack = "u2".into();
        let mut exceedance = minute(30, 40.0, Flag::N);
        exceedance.kind = RecordKind::Exceedance;
        let mut revised = minute(62, 36.0, Flag::N);
        revised.revision = 1;
        let appended = store.append(&[
            minute(-1, 50.0, Flag::N), // 07:59 China time: yesterday's hour
            minute(60, 20.0, Flag::N), // 09:00
            minute(61, 30.0, Flag::N),
            minute(62, 33.0, Flag::N), // recomputed below as 36
            minute(63, 80.0, Flag::C), // calibration: not valid
            revised,
            other_stack,
            exceedance,
        ]);
        assert!(appended.is_ok(), "{appended:?}");
        // 09:04:30 China time
        let now = Timestamp(T0 + 64 * MINUTE_MS + 30_000);
        let detail =
            read(&store, "u1", now, UtcOffset::CHINA).unwrap_or_else(|e| panic!("read: {e}"));
        assert_eq!(detail.hour_start, T0 + HOUR_MS);
        assert_eq!(detail.day_start, T0 - 8 * HOUR_MS);
        let so2 = &detail.channels[0];
        assert_eq!(detail.channels.len(), 1);
        // (20 + 30 + 36) / 3 = 28.666…; the rates are a tenth of that
        assert_eq!(so2.hour_minutes, 3);
        assert!(
            (so2.hour_mean.unwrap_or(0.0) - 86.0 / 3.0).abs() < 1e-9,
            "{so2:?}"
        );
        assert!(
            (so2.hour_rate.unwrap_or(0.0) - 8.6 / 3.0).abs() < 1e-9,
            "{so2:?}"
        );
        assert_eq!(so2.kind, Some(ValueKind::Corrected));
        // 4 valid minutes today (07:59, 09:00, 09:01, 09:02) of 9 h 4 min since midnight
        assert_eq!((so2.day_valid_minutes, so2.day_elapsed_minutes), (4, 544));
        assert_eq!(detail.exceedances.len(), 1);
        assert_eq!(detail.exceedances[0].value, Some(40.0));
    }
}
