//! Counters and gauges of one uplink: kept as atomics for tests and the stop log, and recorded
//! as Prometheus metrics at the same moment.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use metrics::{counter, gauge};

use crate::model::Quantity;
use crate::ops::metrics::{
    HJ212_ACKS, HJ212_ACK_TIMEOUTS, HJ212_BACKLOG, HJ212_CONNECTED, HJ212_HISTORY_REQUESTS,
    HJ212_IGNORED, HJ212_LAST_ACK, HJ212_OUT_OF_TYPE, HJ212_PACKETS_SENT, HJ212_RECONNECTS,
    HJ212_REJECTED_REQUESTS, HJ212_RESENDS, HJ212_UNCONVERTIBLE,
};

#[derive(Debug, Default)]
pub struct UplinkStats {
    sink: String,
    packets_sent: AtomicU64,
    acks: AtomicU64,
    /// Milliseconds since the epoch of the last 9014; 0 before the first.
    last_ack_ms: AtomicI64,
    resends: AtomicU64,
    ack_timeouts: AtomicU64,
    reconnects: AtomicU64,
    connected: AtomicU64,
    backlog: AtomicU64,
    cursor: AtomicU64,
    history_requests: AtomicU64,
    rejected_requests: AtomicU64,
    unconvertible: AtomicU64,
    out_of_type: AtomicU64,
    ignored: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UplinkSnapshot {
    /// Packets written for the first time (a split upload counts each part).
    pub packets_sent: u64,
    pub acks: u64,
    /// When the platform last acknowledged an upload (9014).
    pub last_ack: Option<crate::model::Timestamp>,
    pub resends: u64,
    pub ack_timeouts: u64,
    pub reconnects: u64,
    pub connected: bool,
    pub backlog: u64,
    /// Last seq below which every upload is acknowledged and recorded in the store.
    pub cursor: u64,
    pub history_requests: u64,
    pub rejected_requests: u64,
    /// Factor groups left out of uploads: no exact conversion to the HJ 212 unit.
    pub unconvertible: u64,
    /// Factor groups left out of uploads: a value that does not fit its code's data type.
    pub out_of_type: u64,
    /// Packets from the platform not taken: unreadable, unmatched 9014s, responses.
    pub ignored: u64,
}

impl crate::ops::state::UplinkState for UplinkStats {
    fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed) == 1
    }

    fn last_ack(&self) -> Option<crate::model::Timestamp> {
        self.snapshot().last_ack
    }
}

impl UplinkStats {
    pub fn new(sink: impl Into<String>) -> UplinkStats {
        UplinkStats {
            sink: sink.into(),
            ..UplinkStats::default()
        }
    }

    pub fn snapshot(&self) -> UplinkSnapshot {
        UplinkSnapshot {
            packets_sent: self.packets_sent.load(Ordering::Relaxed),
            acks: self.acks.load(Ordering::Relaxed),
            last_ack: match self.last_ack_ms.load(Ordering::Relaxed) {
                0 => None,
                ms => Some(crate::model::Timestamp(ms)),
            },
            resends: self.resends.load(Ordering::Relaxed),
            ack_timeouts: self.ack_timeouts.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            connected: self.connected.load(Ordering::Relaxed) == 1,
            backlog: self.backlog.load(Ordering::Relaxed),
            cursor: self.cursor.load(Ordering::Relaxed),
            history_requests: self.history_requests.load(Ordering::Relaxed),
            rejected_requests: self.rejected_requests.load(Ordering::Relaxed),
            unconvertible: self.unconvertible.load(Ordering::Relaxed),
            out_of_type: self.out_of_type.load(Ordering::Relaxed),
            ignored: self.ignored.load(Ordering::Relaxed),
        }
    }

    pub(super) fn sent(&self, cn: &'static str, packets: u64) {
        self.packets_sent.fetch_add(packets, Ordering::Relaxed);
        counter!(HJ212_PACKETS_SENT, "sink" => self.sink.clone(), "cn" => cn).increment(packets);
    }

    pub(super) fn acked(&self) {
        self.acks.fetch_add(1, Ordering::Relaxed);
        counter!(HJ212_ACKS, "sink" => self.sink.clone()).increment(1);
        let now = crate::model::time::now();
        self.last_ack_ms.store(now.0, Ordering::Relaxed);
        gauge!(HJ212_LAST_ACK, "sink" => self.sink.clone()).set(now.0 as f64 / 1000.0);
    }

    pub(super) fn resent(&self) {
        self.resends.fetch_add(1, Ordering::Relaxed);
        counter!(HJ212_RESENDS, "sink" => self.sink.clone()).increment(1);
    }

    pub(super) fn timed_out(&self) {
        self.ack_timeouts.fetch_add(1, Ordering::Relaxed);
        counter!(HJ212_ACK_TIMEOUTS, "sink" => self.sink.clone()).increment(1);
    }

    pub(super) fn reconnecting(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
        counter!(HJ212_RECONNECTS, "sink" => self.sink.clone()).increment(1);
    }

    pub(super) fn set_connected(&self, connected: bool) {
        self.connected
            .store(u64::from(connected), Ordering::Relaxed);
        gauge!(HJ212_CONNECTED, "sink" => self.sink.clone()).set(f64::from(u8::from(connected)));
    }

    pub(super) fn set_progress(&self, cursor: u64, last_seq: u64) {
        let backlog = last_seq.saturating_sub(cursor);
        self.cursor.store(cursor, Ordering::Relaxed);
        self.backlog.store(backlog, Ordering::Relaxed);
        gauge!(HJ212_BACKLOG, "sink" => self.sink.clone()).set(backlog as f64);
    }

    pub(super) fn history_request(&self) {
        self.history_requests.fetch_add(1, Ordering::Relaxed);
        counter!(HJ212_HISTORY_REQUESTS, "sink" => self.sink.clone()).increment(1);
    }

    pub(super) fn rejected(&self, reason: &'static str) {
        self.rejected_requests.fetch_add(1, Ordering::Relaxed);
        counter!(HJ212_REJECTED_REQUESTS, "sink" => self.sink.clone(), "reason" => reason)
            .increment(1);
    }

    pub(super) fn unconvertible(&self, quantity: Quantity) {
        self.unconvertible.fetch_add(1, Ordering::Relaxed);
        counter!(HJ212_UNCONVERTIBLE, "sink" => self.sink.clone(), "quantity" => quantity.name())
            .increment(1);
    }

    pub(super) fn out_of_type(&self, quantity: Quantity) {
        self.out_of_type.fetch_add(1, Ordering::Relaxed);
        counter!(HJ212_OUT_OF_TYPE, "sink" => self.sink.clone(), "quantity" => quantity.name())
            .increment(1);
    }

    pub(super) fn ignored(&self, reason: &'static str) {
        self.ignored.fetch_add(1, Ordering::Relaxed);
        counter!(HJ212_IGNORED, "sink" => self.sink.clone(), "reason" => reason).increment(1);
    }
}
