//! What `/health` answers: is the daemon alive (the HTTP status) and is it doing its job
//! (the JSON body: collectors connected, MQTT sources making progress, store writable,
//! forwarders keeping up), and if not, why (`reasons`).
//!
//! The verdict is a pure function of facts gathered elsewhere, so every case is testable.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::model::Timestamp;
use crate::pipeline::live::DeviceLive;
use crate::store::WriterStats;

/// Whether the store accepts commits, as seen from the writer's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreState {
    /// The last transaction committed (or none was needed yet).
    Writable,
    /// Transactions fail and none has succeeded since (disk full, I/O error, lock held).
    Failing,
    /// The writer thread did not answer in time: it hangs, and nothing can be committed.
    Unresponsive,
}

impl StoreState {
    pub fn name(self) -> &'static str {
        match self {
            StoreState::Writable => "writable",
            StoreState::Failing => "failing",
            StoreState::Unresponsive => "unresponsive",
        }
    }
}

/// Remembers the writer's counters between looks, because "the last transaction failed"
/// is a property of the change between two looks, not of either alone.
#[derive(Debug, Clone, Default)]
pub struct StoreWatch {
    last: WriterStats,
    failing: bool,
}

impl StoreWatch {
    /// Updates the verdict with new counters: a commit since the last look clears a failure,
    /// a failed transaction with no commit since sets it, no activity keeps it.
    pub fn observe(&mut self, stats: WriterStats) -> StoreState {
        if stats.transactions > self.last.transactions {
            self.failing = false;
        } else if stats.failed_transactions > self.last.failed_transactions {
            self.failing = true;
        }
        self.last = stats;
        if self.failing {
            StoreState::Failing
        } else {
            StoreState::Writable
        }
    }
}

/// One forwarder's position in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SinkFacts {
    pub name: String,
    /// Last seq the sink has delivered.
    pub cursor: u64,
    /// Records committed but not yet delivered.
    pub backlog: u64,
    /// Time of the oldest record not yet delivered; `None` when the sink is caught up.
    pub oldest_pending: Option<Timestamp>,
}

impl SinkFacts {
    /// Age of the oldest record not yet delivered at `now`; 0 when caught up.
    pub fn lag_seconds(&self, now: Timestamp) -> f64 {
        self.oldest_pending
            .map_or(0.0, |t| ((now.0 - t.0).max(0) as f64) / 1000.0)
    }
}

/// Facts about the store read through a separate connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreFacts {
    /// Database file plus its write-ahead log, in bytes.
    pub size_bytes: u64,
    /// `None` while a store from an older version is still being counted.
    pub rows: Option<u64>,
    pub last_seq: u64,
    pub sinks: Vec<SinkFacts>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Everything configured is working.
    Ok,
    /// Data is being committed, but a device is down or a forwarder is behind.
    Degraded,
    /// Nothing can be committed, or an MQTT source is stalled so none of its devices'
    /// data arrives.
    Failing,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceHealth {
    pub id: String,
    /// `None` until the first poll has finished.
    pub connected: Option<bool>,
    pub last_error: Option<String>,
}

/// One MQTT source as `/health` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceHealth {
    pub id: String,
    pub connected: bool,
    /// Why the source has not made progress for its `stall_after`; `None` while it does.
    pub stalled: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SinkHealth {
    pub name: String,
    pub backlog: u64,
    /// Seconds between the oldest undelivered record and now; 0 when caught up.
    pub lag_seconds: f64,
}

/// The `/health` body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    pub status: Verdict,
    /// The daemon can do its core job: commit readings.
    pub ready: bool,
    pub store: StoreState,
    pub collectors_connected: usize,
    pub collectors_total: usize,
    pub devices: Vec<DeviceHealth>,
    pub mqtt: Vec<SourceHealth>,
    pub forwarders: Vec<SinkHealth>,
    /// Why the status is not `ok`, one line per cause; empty when it is.
    pub reasons: Vec<String>,
    /// Every component whose check did not pass (store, `device:ID`, `mqtt:ID`,
    /// `forwarder:NAME`), with its verdict and reason.
    pub failing: Vec<Check>,
}

/// The check of one component.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub component: String,
    pub status: Verdict,
    pub reason: Option<String>,
}

/// A forwarder whose oldest undelivered record is older than this counts as behind.
pub const SINK_LAG_LIMIT_SECONDS: f64 = 600.0;

impl Health {
    /// `configured` lists the devices of the running config in order; `live` what the
    /// collectors reported so far; `mqtt` the state of each MQTT source.
    pub fn assess(
        configured: &[Arc<str>],
        live: &BTreeMap<Arc<str>, DeviceLive>,
        store: StoreState,
        sinks: &[SinkFacts],
        mqtt: &[SourceHealth],
        now: Timestamp,
    ) -> Health {
        let devices: Vec<DeviceHealth> = configured
            .iter()
            .map(|id| {
                let state = live.get(id).filter(|d| d.polls > 0);
                DeviceHealth {
                    id: id.to_string(),
                    connected: state.map(|d| d.connected),
                    last_error: state.and_then(|d| d.last_error.clone()),
                }
            })
            .collect();
        let forwarders: Vec<SinkHealth> = sinks
            .iter()
            .map(|s| SinkHealth {
                name: s.name.clone(),
                backlog: s.backlog,
                lag_seconds: s.lag_seconds(now),
            })
            .collect();
        let connected = devices.iter().filter(|d| d.connected == Some(true)).count();
        let ready = store == StoreState::Writable;
        let mut checks = vec![Check {
            component: "store".into(),
            status: if ready { Verdict::Ok } else { Verdict::Failing },
            reason: (!ready).then(|| format!("store {}", store.name())),
        }];
        for d in &devices {
            let down = d.connected == Some(false);
            checks.push(Check {
                component: format!("device:{}", d.id),
                status: if down { Verdict::Degraded } else { Verdict::Ok },
                reason: down.then(|| match &d.last_error {
                    Some(error) => format!("device {} down: {error}", d.id),
                    None => format!("device {} down", d.id),
                }),
            });
        }
        // A stalled source delivers nothing of any device behind it: at a bureau that is
        // every device, so the daemon no longer does its job for them.
        for m in mqtt {
            checks.push(Check {
                component: format!("mqtt:{}", m.id),
                status: if m.stalled.is_some() {
                    Verdict::Failing
                } else {
                    Verdict::Ok
                },
                reason: m
                    .stalled
                    .as_ref()
                    .map(|why| format!("mqtt source {} stalled: {why}", m.id)),
            });
        }
        for f in &forwarders {
            let behind = f.lag_seconds > SINK_LAG_LIMIT_SECONDS;
            checks.push(Check {
                component: format!("forwarder:{}", f.name),
                status: if behind {
                    Verdict::Degraded
                } else {
                    Verdict::Ok
                },
                reason: behind
                    .then(|| format!("forwarder {} {:.0} s behind", f.name, f.lag_seconds)),
            });
        }
        let status = checks.iter().map(|c| c.status).max().unwrap_or(Verdict::Ok);
        let reasons = checks.iter().filter_map(|c| c.reason.clone()).collect();
        let failing = checks
            .into_iter()
            .filter(|c| c.status != Verdict::Ok)
            .collect();
        Health {
            status,
            ready,
            store,
            collectors_connected: connected,
            collectors_total: devices.len(),
            devices,
            mqtt: mqtt.to_vec(),
            forwarders,
            reasons,
            failing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(transactions: u64, failed: u64) -> WriterStats {
        WriterStats {
            transactions,
            failed_transactions: failed,
            ..WriterStats::default()
        }
    }

    #[test]
    fn store_watch_follows_the_last_outcome() {
        let mut watch = StoreWatch::default();
        assert_eq!(watch.observe(stats(0, 0)), StoreState::Writable);
        assert_eq!(watch.observe(stats(5, 0)), StoreState::Writable);
        assert_eq!(watch.observe(stats(5, 1)), StoreState::Failing);
        assert_eq!(
            watch.observe(stats(5, 1)),
            StoreState::Failing,
            "no activity keeps the failure"
        );
        assert_eq!(watch.observe(stats(6, 3)), StoreState::Writable);
        assert_eq!(watch.observe(stats(6, 3)), StoreState::Writable);
    }

    fn device(connected: bool, polls: u64, error: Option<&str>) -> DeviceLive {
        DeviceLive {
            connected,
            polls,
            errors: u64::from(error.is_some()),
            last_error: error.map(str::to_string),
            values: BTreeMap::new(),
            ..DeviceLive::default()
        }
    }

    fn ids(names: &[&str]) -> Vec<Arc<str>> {
        names.iter().map(|n| Arc::from(*n)).collect()
    }

    #[test]
    fn a_device_down_degrades_and_an_unpolled_one_does_not() {
        let mut live = BTreeMap::new();
        live.insert(Arc::from("a"), device(true, 3, None));
        live.insert(Arc::from("b"), device(false, 2, Some("no reply within 1s")));
        live.insert(Arc::from("gone"), device(true, 9, None)); // not in the config any more
        let now = Timestamp(1_000_000);
        let health = Health::assess(
            &ids(&["a", "b", "c"]),
            &live,
            StoreState::Writable,
            &[],
            &[],
            now,
        );
        assert_eq!(health.status, Verdict::Degraded);
        assert_eq!(health.reasons, vec!["device b down: no reply within 1s"]);
        assert!(health.ready);
        assert_eq!(
            (health.collectors_connected, health.collectors_total),
            (1, 3)
        );
        let states: Vec<_> = health.devices.iter().map(|d| d.connected).collect();
        assert_eq!(states, vec![Some(true), Some(false), None]);
        assert_eq!(
            health.devices[1].last_error.as_deref(),
            Some("no reply within 1s")
        );

        live.insert(Arc::from("b"), device(true, 3, None));
        let health = Health::assess(
            &ids(&["a", "b"]),
            &live,
            StoreState::Writable,
            &[],
            &[],
            now,
        );
        assert_eq!(health.status, Verdict::Ok);
    }

    #[test]
    fn the_store_decides_readiness_and_a_slow_forwarder_degrades() {
        let live = BTreeMap::new();
        let now = Timestamp(10_000_000);
        let sink = |oldest: Option<i64>| SinkFacts {
            name: "influx".into(),
            cursor: 90,
            backlog: 10,
            oldest_pending: oldest.map(Timestamp),
        };
        // Oldest pending 601 s ago: over the 600 s limit.
        let behind = Health::assess(
            &[],
            &live,
            StoreState::Writable,
            &[sink(Some(now.0 - 601_000))],
            &[],
            now,
        );
        assert_eq!(behind.status, Verdict::Degraded);
        assert_eq!(behind.forwarders[0].lag_seconds, 601.0);
        assert_eq!(behind.forwarders[0].backlog, 10);
        // 599.5 s is within it.
        let keeping_up = Health::assess(
            &[],
            &live,
            StoreState::Writable,
            &[sink(Some(now.0 - 599_500))],
            &[],
            now,
        );
        assert_eq!(keeping_up.status, Verdict::Ok);
        assert_eq!(keeping_up.forwarders[0].lag_seconds, 599.5);
        let caught_up = Health::assess(&[], &live, StoreState::Writable, &[sink(None)], &[], now);
        assert_eq!(caught_up.forwarders[0].lag_seconds, 0.0);

        for state in [StoreState::Failing, StoreState::Unresponsive] {
            let health = Health::assess(&[], &live, state, &[], &[], now);
            assert_eq!((health.status, health.ready), (Verdict::Failing, false));
        }
    }

    #[test]
    fn a_stalled_mqtt_source_fails_and_is_named() {
        let live = BTreeMap::new();
        let now = Timestamp(1_000_000);
        let source = |stalled: Option<&str>| SourceHealth {
            id: "plant".into(),
            connected: true,
            stalled: stalled.map(str::to_string),
        };
        let moving = Health::assess(&[], &live, StoreState::Writable, &[], &[source(None)], now);
        assert_eq!((moving.status, moving.reasons.len()), (Verdict::Ok, 0));
        let why = "lost the connection 12 times in 61 s without taking a message";
        let stuck = Health::assess(
            &[],
            &live,
            StoreState::Writable,
            &[],
            &[source(Some(why))],
            now,
        );
        assert_eq!(stuck.status, Verdict::Failing);
        assert_eq!(
            (stuck.failing[0].component.as_str(), stuck.failing.len()),
            ("mqtt:plant", 1)
        );
        assert_eq!(
            stuck.reasons,
            vec![format!("mqtt source plant stalled: {why}")]
        );
        let json = serde_json::to_value(&stuck).unwrap_or_default();
        assert_eq!(json["mqtt"][0]["stalled"], why);
        assert_eq!(json["status"], "failing");
        assert_eq!(json["failing"][0]["component"], "mqtt:plant");
    }
}
