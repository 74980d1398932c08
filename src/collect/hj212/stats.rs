//! The listener's metrics. Label values are bounded: command codes outside the standard's
//! table and every rejection are folded into fixed names, so a hostile peer cannot grow the
//! exposition.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{counter, gauge, histogram};

use crate::protocol::hj212::CommandCode;

pub const CONNECTIONS_OPEN: &str = "cemsd_hj212_listener_connections";
pub const CONNECTIONS: &str = "cemsd_hj212_listener_connections_total";
pub const PACKETS: &str = "cemsd_hj212_listener_packets_total";
pub const REJECTED: &str = "cemsd_hj212_listener_rejected_total";
pub const RECORDS: &str = "cemsd_hj212_listener_records_committed_total";
pub const HISTORY_PULLS: &str = "cemsd_hj212_listener_history_pulls_total";
pub const ACK_LATENCY: &str = "cemsd_hj212_listener_ack_latency_seconds";
pub const REPEATED_PARTS: &str = "cemsd_hj212_listener_repeated_parts_total";
pub const AUTH_FAILURES: &str = "cemsd_hj212_listener_auth_failures_total";
pub const LOCKOUTS: &str = "cemsd_hj212_listener_lockouts_total";
pub const LOGGERS: &str = "cemsd_hj212_listener_loggers";
pub const REGISTRY_CHANGES: &str = "cemsd_hj212_listener_registry_changes_total";

pub const LOGGERS_ONLINE: &str = "cemsd_hj212_listener_loggers_online";

/// Open connections per MN authenticated on them (a logger may hold more than one).
static ONLINE: Mutex<BTreeMap<Arc<str>, usize>> = Mutex::new(BTreeMap::new());

/// Held by a connection once logger `mn` authenticated on it: while any connection holds
/// one for an MN, that logger counts as online.
#[derive(Debug)]
pub struct Online {
    mn: Arc<str>,
}

impl Online {
    pub fn new(mn: Arc<str>) -> Online {
        let mut online = ONLINE.lock().unwrap_or_else(|e| e.into_inner());
        *online.entry(mn.clone()).or_default() += 1;
        gauge!(LOGGERS_ONLINE).set(online.len() as f64);
        Online { mn }
    }

    pub fn mn(&self) -> &Arc<str> {
        &self.mn
    }
}

impl Drop for Online {
    fn drop(&mut self) {
        let mut online = ONLINE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = online.get_mut(&self.mn) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                online.remove(&self.mn);
            }
        }
        gauge!(LOGGERS_ONLINE).set(online.len() as f64);
    }
}

/// Why a packet (or bytes that were meant to be one) was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// CRC digits present but wrong.
    Crc,
    /// Length field unreadable, over 1024 or not matching the data.
    Length,
    /// Bytes between packets that are not a packet.
    Garbage,
    /// Header or CP that does not parse.
    Syntax,
    UnknownMn,
    BadPassword,
    /// Not a data upload or a reply to our requests.
    UnsupportedCommand,
    /// An upload whose DataTime or values cannot be read.
    BadData,
    /// PNUM/PNO that cannot be joined.
    Split,
    /// A split upload whose missing parts did not arrive in time (or before the connection
    /// ended); nothing of it is stored.
    SplitIncomplete,
    /// A minute, hour or day upload whose DataTime is not the start of its period.
    NotPeriodStart,
    /// The store refused the commit; not acked, so the logger sends again.
    Store,
    /// Over `max_connections`.
    ConnectionLimit,
    /// Over `max_connections_per_ip` from one source address.
    SourceConnectionLimit,
    /// A connection or packet from a locked-out address, or for a locked-out MN.
    LockedOut,
    /// A packet not complete within `packet_deadline` of its first byte: the connection is
    /// closed.
    PacketDeadline,
    /// An upload whose DataTime is older than `data_time_horizon` or further ahead of the
    /// clock than `[ingest] future_tolerance`.
    DataTime,
    /// `proxy_protocol` is on and a connection sent no valid PROXY header in time.
    ProxyHeader,
    /// An upload asking for a 9014 that cannot be written (a QN longer than a 9014 carries):
    /// not stored, since the logger would send it again forever.
    Unackable,
}

impl Reject {
    pub fn as_str(self) -> &'static str {
        match self {
            Reject::Crc => "crc",
            Reject::Length => "length",
            Reject::Garbage => "garbage",
            Reject::Syntax => "syntax",
            Reject::UnknownMn => "unknown_mn",
            Reject::BadPassword => "bad_password",
            Reject::UnsupportedCommand => "unsupported_command",
            Reject::BadData => "bad_data",
            Reject::Split => "split",
            Reject::SplitIncomplete => "split_incomplete",
            Reject::NotPeriodStart => "not_period_start",
            Reject::Store => "store",
            Reject::ConnectionLimit => "connection_limit",
            Reject::SourceConnectionLimit => "source_connection_limit",
            Reject::LockedOut => "locked_out",
            Reject::PacketDeadline => "packet_deadline",
            Reject::DataTime => "data_time",
            Reject::Unackable => "unackable",
            Reject::ProxyHeader => "proxy_header",
        }
    }
}

pub fn rejected(reason: Reject) {
    counter!(REJECTED, "reason" => reason.as_str()).increment(1);
}

pub fn packet(cn: CommandCode) {
    let label = if cn.description().is_some() {
        cn.to_string()
    } else {
        "other".to_string()
    };
    counter!(PACKETS, "cn" => label).increment(1);
}

pub fn connection_accepted() {
    counter!(CONNECTIONS, "outcome" => "accepted").increment(1);
    gauge!(CONNECTIONS_OPEN).increment(1.0);
}

pub fn connection_closed() {
    gauge!(CONNECTIONS_OPEN).decrement(1.0);
}

/// A connection closed at once: over a limit (`ConnectionLimit`, `SourceConnectionLimit`)
/// or from a locked-out address (`LockedOut`).
pub fn connection_refused(reason: Reject) {
    counter!(CONNECTIONS, "outcome" => "refused").increment(1);
    rejected(reason);
}

/// A wrong password, or a packet for an MN not configured or locked out (`reason` as in
/// [`Reject::as_str`]).
pub fn auth_failure(reason: Reject) {
    counter!(AUTH_FAILURES, "reason" => reason.as_str()).increment(1);
}

/// A source address or an MN locked out for `auth_lockout`.
pub fn lockout(scope: &'static str) {
    counter!(LOCKOUTS, "scope" => scope).increment(1);
}

pub fn committed(records: usize) {
    counter!(RECORDS).increment(records as u64);
}

/// A part of a split upload that was already held or taken: acked again, not stored twice.
pub fn repeated_part() {
    counter!(REPEATED_PARTS).increment(1);
}

pub fn history_pull(cn: CommandCode) {
    counter!(HISTORY_PULLS, "cn" => cn.to_string()).increment(1);
}

/// From the last byte of an upload read to its ack written, commit included.
pub fn acked(latency: Duration) {
    histogram!(ACK_LATENCY).record(latency.as_secs_f64());
}

/// Loggers that may upload, after the start or a reload.
pub fn loggers(count: usize) {
    gauge!(LOGGERS).set(count as f64);
}

/// A reload added, changed or removed a logger (`change`: `added`, `changed`, `removed`).
pub fn registry_change(change: &'static str, count: usize) {
    counter!(REGISTRY_CHANGES, "change" => change).increment(count as u64);
}

/// A connection closed because its logger left the registry.
pub fn logger_removed() {
    counter!(CONNECTIONS, "outcome" => "logger_removed").increment(1);
}
