//! What is happening right now, per device: shared by the collectors (connection, errors),
//! the pipeline (latest values) and whatever shows it (terminal line, status page).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::cadence::Cadence;
use crate::model::comm::{CommEvent, CommStats};
use crate::model::{Flag, Quantity, Timestamp, Unit};
use crate::store::{Record, RecordKind, Stored};

/// [`DeviceLive::source`] of a polled device.
pub const MODBUS: &str = "modbus";

#[derive(Debug, Clone, Default)]
pub struct DeviceLive {
    pub connected: bool,
    pub polls: u64,
    pub errors: u64,
    pub last_error: Option<String>,
    /// Latest value per channel.
    pub values: BTreeMap<Arc<str>, ChannelLive>,
    /// What happened on the wire for this device.
    pub comm: CommStats,
    /// Which kind of collector delivers it (`modbus`, `mqtt`, `hj212`), once it did.
    pub source: Option<&'static str>,
    /// The stack of its latest record: devices that publish or upload are bound to a stack
    /// by their payloads or the logger registry, not only by `[[device]]`.
    pub stack: Option<Arc<str>>,
    /// Time of its newest reading or uploaded record.
    pub last_seen: Option<Timestamp>,
    /// When data of a publishing or uploading device last arrived (the receiving clock).
    pub last_delivery: Option<Timestamp>,
    /// How often it delivers, as its data times show (see [`Cadence`]).
    pub cadence: Cadence,
}

#[derive(Debug, Clone)]
pub struct ChannelLive {
    /// At standard conditions, dry (mg/m3 for gases); NaN when none was received.
    pub value: f64,
    /// Also at reference O2, for pollutants.
    pub corrected: Option<f64>,
    pub quantity: Option<Quantity>,
    pub unit: Unit,
    pub flag: Flag,
    pub ts: Timestamp,
}

#[derive(Debug, Default)]
pub struct Live {
    devices: Mutex<BTreeMap<Arc<str>, DeviceLive>>,
    /// Counters per line: serial bus id or network endpoint.
    lines: Mutex<BTreeMap<Arc<str>, CommStats>>,
    pub committed: AtomicU64,
}

impl Live {
    pub fn new() -> Arc<Live> {
        Arc::new(Live::default())
    }

    /// A poisoned lock only means a panic elsewhere; the map itself is still usable.
    fn devices(&self) -> MutexGuard<'_, BTreeMap<Arc<str>, DeviceLive>> {
        self.devices.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn poll_succeeded(&self, device: &Arc<str>) {
        let mut devices = self.devices();
        let d = devices.entry(device.clone()).or_default();
        d.connected = true;
        d.polls += 1;
        d.source = Some(MODBUS);
    }

    pub fn poll_failed(&self, device: &Arc<str>, error: String) {
        let mut devices = self.devices();
        let d = devices.entry(device.clone()).or_default();
        d.connected = false;
        d.polls += 1;
        d.errors += 1;
        d.last_error = Some(error);
        d.source = Some(MODBUS);
    }

    /// A poll the device answered without data (an exception for every read): it is
    /// connected, and the error is kept.
    pub fn poll_refused(&self, device: &Arc<str>, error: String) {
        let mut devices = self.devices();
        let d = devices.entry(device.clone()).or_default();
        d.connected = true;
        d.polls += 1;
        d.errors += 1;
        d.last_error = Some(error);
        d.source = Some(MODBUS);
    }

    /// Counts what happened on `line` while talking to `device`, for both.
    pub fn comm(&self, line: &Arc<str>, device: &Arc<str>, events: &[CommEvent]) {
        if events.is_empty() {
            return;
        }
        {
            let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
            let stats = lines.entry(line.clone()).or_default();
            events.iter().for_each(|e| stats.record(*e));
        }
        let mut devices = self.devices();
        let stats = &mut devices.entry(device.clone()).or_default().comm;
        events.iter().for_each(|e| stats.record(*e));
    }

    /// Counters of every line.
    pub fn lines(&self) -> BTreeMap<Arc<str>, CommStats> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Takes the latest reading of each device channel from records about to be committed.
    pub fn record_readings(&self, records: &[Record]) {
        self.record_values(records.iter().filter(|r| r.kind == RecordKind::Reading));
    }

    /// Takes the latest value of each channel from records a data logger computed itself
    /// (HJ 212 real-time, minute, hour and day uploads).
    pub fn record_uploads(&self, records: &[Record]) {
        self.record_values(records.iter());
    }

    /// Shows, from a start on, what the store holds of each device of the running config
    /// (`known`) until its link speaks again: the newest value of each channel and the
    /// device's last data time, from `stored`, the store's newest reading and newest
    /// minute, hour or day record of each series. Neither a poll nor a delivery: the device
    /// stays waiting, neither connected nor down, until it delivers.
    pub fn seed(&self, stored: &[Stored], known: impl Fn(&str) -> bool) {
        self.record_values(
            stored
                .iter()
                .map(|s| &s.record)
                .filter(|r| known(&r.device)),
        );
    }

    fn record_values<'a>(&self, records: impl Iterator<Item = &'a Record>) {
        let mut devices = self.devices();
        for r in records {
            let (Some(unit), false) = (r.unit, r.device.is_empty()) else {
                continue;
            };
            let d = devices.entry(r.device.clone()).or_default();
            if d.last_seen.is_none_or(|seen| seen <= r.ts) {
                d.last_seen = Some(r.ts);
                d.stack = Some(r.stack.clone());
            }
            let newer = d.values.get(&r.channel).is_none_or(|v| v.ts <= r.ts);
            if !newer {
                continue;
            }
            d.values.insert(
                r.channel.clone(),
                ChannelLive {
                    value: r.measured.unwrap_or(f64::NAN),
                    corrected: r.corrected,
                    quantity: r.quantity,
                    unit,
                    flag: r.flags.primary(),
                    ts: r.ts,
                },
            );
        }
    }

    /// Data arrived from devices that have no link of their own to watch (MQTT publishers,
    /// HJ 212 loggers) at `at`: each counts as connected, with one more delivery, and each
    /// value's (device, kind, data time) teaches its [`Cadence`]. `source` is the kind of
    /// collector ([`crate::collect::batch::Origin::kind`]).
    pub fn delivered<'a>(
        &self,
        source: &'static str,
        at: Timestamp,
        values: impl Iterator<Item = (&'a Arc<str>, RecordKind, Timestamp)>,
    ) {
        let mut live = self.devices();
        let mut counted: BTreeSet<&Arc<str>> = BTreeSet::new();
        for (device, kind, ts) in values {
            let d = live.entry(device.clone()).or_default();
            if counted.insert(device) {
                d.connected = true;
                d.polls += 1;
                d.source = Some(source);
                d.last_delivery = Some(at);
            }
            d.cadence.observe(kind, ts);
        }
    }

    pub fn add_committed(&self, n: u64) {
        self.committed.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> BTreeMap<Arc<str>, DeviceLive> {
        self.devices().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(seq: u64, kind: RecordKind, ts: i64, device: &str, value: f64) -> Stored {
        let mut record = Record::new(
            kind,
            Timestamp(ts),
            "p1".into(),
            device.into(),
            "so2".into(),
        );
        record.unit = Some(Unit::MgPerM3);
        record.measured = Some(value);
        Stored { seq, record }
    }

    #[test]
    fn a_seeded_device_shows_its_newest_stored_values_and_stays_waiting() {
        let live = Live::new();
        live.seed(
            &[
                stored(1, RecordKind::Reading, 1_000, "logger", 1.5),
                stored(2, RecordKind::Minute, 60_000, "logger", 2.5),
                stored(3, RecordKind::Minute, 60_000, "retired", 9.0),
            ],
            |device| device == "logger",
        );
        let board = live.snapshot();
        assert!(
            !board.contains_key("retired"),
            "not in the config: not shown"
        );
        let logger = &board["logger"];
        assert_eq!(
            (logger.polls, logger.connected, logger.last_delivery),
            (0, false, None),
            "neither a poll nor a delivery"
        );
        assert_eq!(logger.last_seen, Some(Timestamp(60_000)));
        assert_eq!(logger.stack.as_deref(), Some("p1"));
        let so2 = &logger.values["so2"];
        assert_eq!((so2.value, so2.ts), (2.5, Timestamp(60_000)));
    }
}
