//! Which records write the same point. A server keeps the last write of a point (InfluxDB;
//! VictoriaMetrics with deduplication keeps the largest value), so two requests that both
//! carry a point must not be on the wire at once: the server may apply them in either order,
//! and a revision could be overwritten by the version it replaces.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use crate::model::random::mix;
use crate::store::{names_at, NamesAt, Record, RecordKind, Stored};

/// The keys of the points a batch writes. Two records whose lines write the same point
/// always share a key; records that share a key may still write different points (a
/// collision only keeps two batches from the wire at once).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct PointKeys(HashSet<u64>);

impl PointKeys {
    /// The part of a key a series' records share is hashed once per series and batch,
    /// found by the addresses of the names ([`NamesAt`]; `records` hold them meanwhile).
    pub fn of(records: &[Stored]) -> PointKeys {
        let mut series: HashMap<(RecordKind, NamesAt), u64> = HashMap::new();
        PointKeys(
            records
                .iter()
                .map(|stored| {
                    let record = &stored.record;
                    let series = *series
                        .entry((record.kind, names_at(record)))
                        .or_insert_with(|| series_key(record));
                    key(series, record)
                })
                .collect(),
        )
    }

    pub fn overlap(&self, other: &PointKeys) -> bool {
        let (small, large) = if self.0.len() <= other.0.len() {
            (self, other)
        } else {
            (other, self)
        };
        small.0.iter().any(|k| large.0.contains(k))
    }
}

/// A point is its measurement, tag set and timestamp (the line-protocol reference). The
/// encoder derives the measurement from the kind, and every line is tagged with the stack,
/// the device (an audit entry's `source`) and the lower-cased channel (constant for audit
/// entries); the other tags only split points further, so leaving them out can only make
/// more records share a key. The timestamp is taken in whole seconds, the coarsest
/// precision, so records that one precision writes at the same instant share it too.
fn key(series: u64, record: &Record) -> u64 {
    let second = record.ts.millis().div_euclid(1000) as u64;
    mix(series ^ mix(second))
}

/// The measurement and tags of [`key`], hashed.
fn series_key(record: &Record) -> u64 {
    let mut hasher = DefaultHasher::new();
    record.kind.code().hash(&mut hasher);
    record.stack.hash(&mut hasher);
    record.device.hash(&mut hasher);
    for c in record.channel.chars().flat_map(char::to_lowercase) {
        c.hash(&mut hasher);
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Timestamp;
    use crate::store::RecordKind;

    fn stored(seq: u64, kind: RecordKind, ts: i64, device: &str, channel: &str) -> Stored {
        Stored {
            seq,
            record: Record::new(
                kind,
                Timestamp(ts),
                "unit1".into(),
                device.into(),
                channel.into(),
            ),
        }
    }

    #[test]
    fn batches_overlap_only_where_a_line_could_write_the_same_point() {
        let first = PointKeys::of(&[
            stored(1, RecordKind::Reading, 1_000, "a", "so2"),
            stored(2, RecordKind::Minute, 60_000, "a", "so2"),
        ]);
        let other =
            |kind, ts, device, channel| PointKeys::of(&[stored(9, kind, ts, device, channel)]);
        // the minute stored again (a revision), in another case, at another millisecond
        // of the same second: each could be the same point at some precision
        assert!(first.overlap(&other(RecordKind::Minute, 60_000, "a", "so2")));
        assert!(first.overlap(&other(RecordKind::Minute, 60_000, "a", "SO2")));
        assert!(first.overlap(&other(RecordKind::Reading, 1_999, "a", "so2")));
        // another second, kind, device or channel is another point
        assert!(!first.overlap(&other(RecordKind::Reading, 2_000, "a", "so2")));
        assert!(!first.overlap(&other(RecordKind::Hour, 60_000, "a", "so2")));
        assert!(!first.overlap(&other(RecordKind::Reading, 1_000, "b", "so2")));
        assert!(!first.overlap(&other(RecordKind::Reading, 1_000, "a", "nox")));
        assert!(!first.overlap(&PointKeys::default()));
    }
}
