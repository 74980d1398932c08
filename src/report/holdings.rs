//! Why a report came out empty, and what the store does hold, from the first and last hour and
//! day records (two index look-ups per kind, never a scan).

use serde::Serialize;

use crate::config::SiteConfig;
use crate::model::time::UtcOffset;
use crate::model::Timestamp;
use crate::store::{Query, RecordKind, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EmptyReason {
    /// The period has not begun.
    Future,
    /// The period ends before the oldest record the store keeps, and the store deletes by age.
    OutsideRetention,
    /// The store never recorded anything for the period.
    NoData,
}

/// First and last local date of a kind of record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Span {
    pub kind: String,
    pub first: String,
    pub last: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmptyPeriod {
    pub reason: EmptyReason,
    /// e.g. "90d"; None when the store keeps everything.
    pub retention: Option<String>,
    /// What the store holds (hour and day records), empty for an empty store.
    pub held: Vec<Span>,
}

pub fn why_empty(
    store: &Store,
    config: &SiteConfig,
    (start, end): (Timestamp, Timestamp),
    now: Timestamp,
) -> Result<EmptyPeriod, StoreError> {
    let offset = config.site.utc_offset;
    let mut held = Vec::new();
    let mut oldest: Option<Timestamp> = None;
    for kind in [RecordKind::Hour, RecordKind::Day] {
        let first = store
            .query(&Query {
                kind: Some(kind),
                limit: Some(1),
                ..Query::default()
            })?
            .first()
            .map(|s| s.record.ts);
        let last = store.newest_ts(&Query {
            kind: Some(kind),
            ..Query::default()
        })?;
        if let (Some(first), Some(last)) = (first, last) {
            oldest = Some(oldest.map_or(first, |o| o.min(first)));
            held.push(Span {
                kind: kind.as_str().to_string(),
                first: local_date(first, offset),
                last: local_date(last, offset),
            });
        }
    }
    let retention = config
        .store
        .retention
        .as_ref()
        .map(|r| humantime::format_duration(r.0).to_string());
    let reason = if start >= now {
        EmptyReason::Future
    } else if retention.is_some() && oldest.is_some_and(|o| end <= o) {
        EmptyReason::OutsideRetention
    } else {
        EmptyReason::NoData
    };
    Ok(EmptyPeriod {
        reason,
        retention,
        held,
    })
}

fn local_date(ts: Timestamp, offset: UtcOffset) -> String {
    Timestamp(ts.0 + offset.millis())
        .to_datetime()
        .format("%Y-%m-%d")
        .to_string()
}
