//! One channel over a time window, averaged into buckets small enough for a chart
//! (`/api/series`). The window picks the records read, so a chart costs the same whatever
//! the store's age: raw readings for the last hour, minute records for a day, hour
//! records for a week (a week of 1 s readings would be 604 800 rows; its hours are 168).

use serde::Serialize;

use super::status::ValueKind;
use crate::model::{Flag, Quantity, Timestamp};
use crate::store::{Query, RecordKind, StoreError, StoreReader, Stored};

/// The windows a chart offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChartRange {
    /// The last hour of raw readings, in 30 s buckets.
    Hour,
    /// The last day of minute records, in 5 min buckets.
    Day,
    /// The last week of hour records, one bucket each.
    Week,
}

impl ChartRange {
    /// Window length, records read and buckets drawn.
    pub fn layout(self) -> (i64, RecordKind, u32) {
        const HOUR_MS: i64 = 3_600_000;
        match self {
            ChartRange::Hour => (HOUR_MS, RecordKind::Reading, 120),
            ChartRange::Day => (24 * HOUR_MS, RecordKind::Minute, 288),
            ChartRange::Week => (7 * 24 * HOUR_MS, RecordKind::Hour, 168),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesView {
    pub stack: String,
    pub device: String,
    pub channel: String,
    pub quantity: Option<&'static str>,
    pub unit: Option<&'static str>,
    /// Which value of the records was averaged; `None` when no record had one.
    pub kind: Option<ValueKind>,
    /// Which records were read: `reading`, `minute` or `hour`.
    pub records: &'static str,
    pub from: i64,
    pub to: i64,
    pub bucket_ms: i64,
    /// The stack's emission limit, present only when the values are corrected ones and so
    /// comparable with it.
    pub limit: Option<f64>,
    pub points: Vec<Bucket>,
}

/// The readings whose time falls in `[t, t + bucket_ms)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    pub t: i64,
    /// Mean, min and max of the values present; `None` when every reading lacked a value.
    pub mean: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Readings with a value.
    pub n: u32,
    /// The most severe flag of any reading in the bucket.
    pub flag: char,
}

/// Where a series comes from and the window it covers.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSpec {
    pub stack: String,
    pub device: String,
    pub channel: String,
    pub kind: RecordKind,
    pub from: i64,
    pub to: i64,
    pub buckets: u32,
}

impl SeriesSpec {
    /// The chart of `range` ending at `to`.
    pub fn of(stack: String, device: String, channel: String, range: ChartRange, to: i64) -> Self {
        let (span, kind, buckets) = range.layout();
        SeriesSpec {
            stack,
            device,
            channel,
            kind,
            from: to - span,
            to,
            buckets,
        }
    }

    /// Reads the records the chart draws, through the store's per-series query. Blocks.
    pub fn read(&self, reader: &StoreReader) -> Result<Vec<Stored>, StoreError> {
        let query = Query {
            kind: Some(self.kind),
            stack: Some(self.stack.clone()),
            device: Some(self.device.clone()),
            channel: Some(self.channel.clone()),
            from: Some(Timestamp(self.from)),
            to: Some(Timestamp(self.to)),
            ..Query::default()
        };
        reader.read(|store| store.query(&query))
    }
}

impl SeriesView {
    /// `rows` are the channel's records of `spec.kind` in `[from, to)`, in time order (a
    /// recomputed minute or hour after the revision it replaces); `limit` the stack's
    /// limit for the channel's quantity, if it has one.
    pub fn build(spec: &SeriesSpec, rows: &[Stored], limit: Option<f64>) -> SeriesView {
        let span = (spec.to - spec.from).max(1);
        let bucket_ms =
            (span + i64::from(spec.buckets.max(1)) - 1) / i64::from(spec.buckets.max(1));
        let kind = rows
            .iter()
            .filter_map(|s| ValueKind::of(&s.record).map(|(k, _)| k))
            .max();
        let last = rows.last().map(|s| &s.record);
        let mut points: Vec<Bucket> = Vec::new();
        let mut sum = 0.0;
        for (i, row) in rows.iter().enumerate() {
            let r = &row.record;
            let revised = rows.get(i + 1).is_some_and(|next| next.record.ts == r.ts);
            if r.ts.0 < spec.from || r.ts.0 >= spec.to || (revised && r.kind != RecordKind::Reading)
            {
                continue;
            }
            let t = spec.from + (r.ts.0 - spec.from) / bucket_ms * bucket_ms;
            if points.last().is_none_or(|b| b.t != t) {
                finish(points.last_mut(), sum);
                sum = 0.0;
                points.push(Bucket {
                    t,
                    mean: None,
                    min: None,
                    max: None,
                    n: 0,
                    flag: Flag::N.code(),
                });
            }
            let Some(bucket) = points.last_mut() else {
                continue;
            };
            let flag = r.flags.primary();
            if Flag::from_code(bucket.flag).is_some_and(|held| flag > held) {
                bucket.flag = flag.code();
            }
            if let Some(v) = kind.and_then(|k| k.value(r)).filter(|v| v.is_finite()) {
                sum += v;
                bucket.n += 1;
                bucket.min = Some(bucket.min.map_or(v, |m| m.min(v)));
                bucket.max = Some(bucket.max.map_or(v, |m| m.max(v)));
            }
        }
        finish(points.last_mut(), sum);
        SeriesView {
            stack: spec.stack.clone(),
            device: spec.device.clone(),
            channel: spec.channel.clone(),
            quantity: last.and_then(|r| r.quantity).map(Quantity::name),
            unit: last.and_then(|r| r.unit).map(|u| u.symbol()),
            kind,
            records: spec.kind.as_str(),
            from: spec.from,
            to: spec.to,
            bucket_ms,
            limit: limit.filter(|_| kind == Some(ValueKind::Corrected)),
            points,
        }
    }
}

fn finish(bucket: Option<&mut Bucket>, sum: f64) {
    if let Some(b) = bucket.filter(|b| b.n > 0) {
        b.mean = Some(sum / f64::from(b.n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FlagSet, Timestamp, Unit};
    use crate::store::{Record, RecordKind};

    fn row(seq: u64, ts: i64, raw: Option<f64>, corrected: Option<f64>, flag: Flag) -> Stored {
        let mut r = Record::new(
            RecordKind::Reading,
            Timestamp(ts),
            "unit1".into(),
            "so2".into(),
            "SO2".into(),
        );
        r.quantity = Some(Quantity::SO2);
        r.unit = Some(Unit::MgPerM3);
        r.raw = raw;
        r.corrected = corrected;
        r.flags = FlagSet::of(flag);
        Stored { seq, record: r }
    }

    fn spec(from: i64, to: i64, buckets: u32) -> SeriesSpec {
        SeriesSpec {
            stack: "unit1".into(),
            device: "so2".into(),
            channel: "SO2".into(),
            kind: RecordKind::Reading,
            from,
            to,
            buckets,
        }
    }

    #[test]
    fn readings_average_into_buckets_with_gaps_and_the_worst_flag() {
        // Window 0..60 s in 6 buckets of 10 s.
        let rows = vec![
            row(1, 1_000, Some(10.0), None, Flag::N),
            row(2, 4_000, Some(20.0), None, Flag::N),
            row(3, 9_999, Some(33.0), None, Flag::T),
            row(4, 10_000, None, None, Flag::B), // bucket 10 s: no value at all
            row(5, 35_000, Some(7.0), None, Flag::C),
            row(6, 60_000, Some(99.0), None, Flag::N), // at `to`: outside
        ];
        let view = SeriesView::build(&spec(0, 60_000, 6), &rows, Some(35.0));
        assert_eq!(view.bucket_ms, 10_000);
        assert_eq!(view.kind, Some(ValueKind::Raw));
        assert_eq!(
            view.limit, None,
            "raw values are not comparable with a limit"
        );
        assert_eq!((view.quantity, view.unit), (Some("SO2"), Some("mg/m3")));
        assert_eq!(
            view.points,
            vec![
                // (10 + 20 + 33) / 3 = 21
                Bucket {
                    t: 0,
                    mean: Some(21.0),
                    min: Some(10.0),
                    max: Some(33.0),
                    n: 3,
                    flag: 'T'
                },
                Bucket {
                    t: 10_000,
                    mean: None,
                    min: None,
                    max: None,
                    n: 0,
                    flag: 'B'
                },
                Bucket {
                    t: 30_000,
                    mean: Some(7.0),
                    min: Some(7.0),
                    max: Some(7.0),
                    n: 1,
                    flag: 'C'
                },
            ]
        );
    }

    #[test]
    fn corrected_values_win_and_bring_the_limit() {
        let rows = vec![
            row(1, 0, Some(100.0), None, Flag::N), // before correction started: skipped
            row(2, 500, Some(100.0), Some(30.0), Flag::N),
            row(3, 700, Some(100.0), Some(40.0), Flag::N),
        ];
        let view = SeriesView::build(&spec(0, 1_000, 1), &rows, Some(35.0));
        assert_eq!(view.kind, Some(ValueKind::Corrected));
        assert_eq!(view.limit, Some(35.0));
        // (30 + 40) / 2 = 35, from the two corrected values only
        assert_eq!(view.points[0].mean, Some(35.0));
        assert_eq!(view.points[0].n, 2);
    }

    #[test]
    fn a_window_that_does_not_divide_evenly_still_covers_its_end() {
        // 24 h in 288 buckets is 5 min each; 100 ms in 3 buckets rounds up to 34 ms.
        let day = 24 * 3600 * 1000;
        assert_eq!(
            SeriesView::build(&spec(0, day, 288), &[], None).bucket_ms,
            300_000
        );
        let rows = vec![row(1, 99, Some(1.0), None, Flag::N)];
        let view = SeriesView::build(&spec(0, 100, 3), &rows, None);
        assert_eq!(view.bucket_ms, 34);
        assert_eq!(view.points[0].t, 68, "99 ms falls in the third bucket");
        let empty = SeriesView::build(&spec(0, 100, 3), &[], None);
        assert_eq!((empty.kind, empty.points.len()), (None, 0));
    }

    #[test]
    fn a_recomputed_minute_counts_once_with_its_newest_revision() {
        let minute = |seq: u64, ts: i64, v: f64, revision: u32| {
            let mut stored = row(seq, ts, None, Some(v), Flag::N);
            stored.record.kind = RecordKind::Minute;
            stored.record.revision = revision;
            stored
        };
        // Minutes at 0 and 60 s; the first recomputed after a late reading (12 → 18).
        let rows = vec![
            minute(1, 0, 12.0, 0),
            minute(3, 0, 18.0, 1),
            minute(2, 60_000, 30.0, 0),
        ];
        let mut spec = spec(0, 300_000, 1);
        spec.kind = RecordKind::Minute;
        let view = SeriesView::build(&spec, &rows, None);
        // (18 + 30) / 2 = 24, not (12 + 18 + 30) / 3 = 20
        assert_eq!((view.points[0].mean, view.points[0].n), (Some(24.0), 2));
        assert_eq!(view.records, "minute");
    }

    #[test]
    fn each_range_reads_the_records_that_keep_its_cost_flat() {
        let day = 86_400_000;
        let spec = |range| SeriesSpec::of("s".into(), "d".into(), "c".into(), range, 8 * day);
        let hour = spec(ChartRange::Hour);
        assert_eq!(
            (hour.kind, hour.from, hour.buckets),
            (RecordKind::Reading, 8 * day - 3_600_000, 120)
        );
        let one_day = spec(ChartRange::Day);
        assert_eq!(
            (one_day.kind, one_day.from, one_day.buckets),
            (RecordKind::Minute, 7 * day, 288)
        );
        let week = spec(ChartRange::Week);
        assert_eq!(
            (week.kind, week.from, week.buckets),
            (RecordKind::Hour, day, 168)
        );
    }
}
