//! Prometheus metrics, served at `/metrics`.
//!
//! cemsd records through the [`metrics`] facade; [`install`] puts a Prometheus recorder
//! behind it once per process. Code that never runs under `cemsd run` (tests, `cemsd check`)
//! records into nothing, at no cost.
//!
//! # Adding a metric from another module
//!
//! 1. Name it `cemsd_<area>_<what>[_<unit>]`, counters ending in `_total`, e.g.
//!    `cemsd_hj212_packets_total`. Labels take a bounded set of values (device ids, sink
//!    names, error kinds), never timestamps or free text.
//! 2. Record where the event happens: `metrics::counter!("cemsd_hj212_packets_total",
//!    "sink" => name.to_string(), "outcome" => "acked").increment(1);` or, for a level,
//!    `metrics::gauge!("cemsd_mqtt_connected", "source" => id.to_string()).set(1.0);`.
//! 3. Add its help text to [`HELP`] below, so `/metrics` explains it.
//!
//! Levels that are cheaper to read than to track (store size, backlogs) are set in
//! [`refresh`], just before each scrape, from facts gathered at that moment.

use std::collections::BTreeMap;
use std::sync::Arc;

use metrics::{counter, gauge, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;

use super::health::{StoreFacts, StoreState};
use super::process_metrics;
use crate::collect::hj212::stats as hj212_listener;
use crate::collect::modbus::poll_metrics::{
    comm_metric, export_comm, Scope, COMM_COUNTERS, POLLS, POLL_ERRORS,
};
use crate::collect::mqtt::SourceSnapshot;
use crate::model::comm::CommStats;
use crate::pipeline::live::DeviceLive;
use crate::store::WriterStats;

/// Help text of every metric cemsd records, described at install time.
pub const HELP: &[(&str, Kind, &str)] = &[
    (
        POLLS,
        Kind::Counter,
        "Device polls finished, by device and outcome (ok, error).",
    ),
    (
        POLL_ERRORS,
        Kind::Counter,
        "Failed device polls, by device and kind of failure (timeout, crc, garbled, connect, transport, exception, malformed, other).",
    ),
    (
        DEVICE_CONNECTED,
        Kind::Gauge,
        "1 while a device answers (its last poll got a reply, if only an exception) or delivers, 0 after a poll it did not answer or once a publisher or logger has sent nothing for three of its intervals (at least a minute).",
    ),
    (
        DEVICE_INFO,
        Kind::Gauge,
        "1 for every configured device, labelled with its stack: join on device (group_left(stack)) to give the device metrics a stack.",
    ),
    (
        DEVICE_LAST_DATA,
        Kind::Gauge,
        "Time stamp (Unix seconds) of the newest reading or uploaded record of a device this run, whichever collector delivers it (Modbus, MQTT, HJ 212): now minus it is how long a device has been silent.",
    ),
    (
        MQTT_CONNECTED,
        Kind::Gauge,
        "1 while an MQTT source is connected to its broker.",
    ),
    (
        MQTT_STALLED,
        Kind::Gauge,
        "1 while an MQTT source has made no progress for its stall_after (see /health for why).",
    ),
    (
        MQTT_MESSAGES,
        Kind::Counter,
        "MQTT messages received, by source, refused ones and redeliveries included.",
    ),
    (
        MQTT_READINGS,
        Kind::Counter,
        "Readings an MQTT source handed to the pipeline, by source.",
    ),
    (
        MQTT_DUPLICATES,
        Kind::Counter,
        "Redelivered readings an MQTT source dropped because they were stored already, by source.",
    ),
    (
        MQTT_DEAD_LETTERS,
        Kind::Counter,
        "MQTT messages refused to the dead letters, by source and reason.",
    ),
    (
        MQTT_RECONNECTS,
        Kind::Counter,
        "Connections of an MQTT source after its first one, by source.",
    ),
    (
        crate::pipeline::REFUSED,
        Kind::Counter,
        "Readings and uploaded records refused before processing, by origin (modbus, mqtt, hj212) and reason (future: stamped further ahead of the receiving clock than [ingest] future_tolerance; too_late: older than [ingest] lateness_horizon and never stored).",
    ),
    (
        crate::pipeline::SPILLED,
        Kind::Gauge,
        "Records held in memory while the store refuses commits (a full disk), at most [ingest] spill_records; 0 once a commit succeeds.",
    ),
    (
        crate::pipeline::LATE_TAKEN,
        Kind::Counter,
        "Readings taken after later ones of their channel (a redelivery after a broker restart, a backlog), by origin; the minutes, hours and days they fall into are stored again as revisions.",
    ),
    (
        READINGS_COMMITTED,
        Kind::Counter,
        "Records committed to the store since start.",
    ),
    (
        STORE_TRANSACTIONS,
        Kind::Counter,
        "Store transactions committed since start.",
    ),
    (
        STORE_FAILED_TRANSACTIONS,
        Kind::Counter,
        "Store transactions that failed since start.",
    ),
    (
        STORE_FAILED_RECORDS,
        Kind::Counter,
        "Records in failed store transactions since start.",
    ),
    (
        STORE_QUEUED_RECORDS,
        Kind::Gauge,
        "Records handed to the store writer and not yet in a transaction.",
    ),
    (
        STORE_WRITABLE,
        Kind::Gauge,
        "1 while the store accepts commits.",
    ),
    (
        STORE_SIZE,
        Kind::Gauge,
        "Size of the store database and its write-ahead log.",
    ),
    (STORE_ROWS, Kind::Gauge, "Records held in the store."),
    (
        process_metrics::BUILD_INFO,
        Kind::Gauge,
        "1, labelled with the version of this cemsd.",
    ),
    (
        process_metrics::CPU_SECONDS,
        Kind::Gauge,
        "User and system CPU time spent by the process, in seconds.",
    ),
    (
        process_metrics::RESIDENT_MEMORY,
        Kind::Gauge,
        "Resident memory of the process, in bytes.",
    ),
    (
        process_metrics::VIRTUAL_MEMORY,
        Kind::Gauge,
        "Virtual memory of the process, in bytes.",
    ),
    (
        process_metrics::OPEN_FDS,
        Kind::Gauge,
        "File descriptors the process has open (sockets of loggers and brokers included).",
    ),
    (
        process_metrics::MAX_FDS,
        Kind::Gauge,
        "The open-files limit of the process.",
    ),
    (
        process_metrics::START_TIME,
        Kind::Gauge,
        "When the process started, in seconds since the epoch.",
    ),
    (
        STORE_PRUNED,
        Kind::Counter,
        "Records deleted by retention, by reason (age: older than [store] retention; size: over [store] max_size), only ever records every sink had taken.",
    ),
    (
        STORE_PRUNE_FAILURES,
        Kind::Counter,
        "Retention runs that failed (the store refused the delete); the next run tries again.",
    ),
    (
        STORE_LAST_SEQ,
        Kind::Gauge,
        "Highest sequence number handed out by the store.",
    ),
    (
        SINK_BACKLOG,
        Kind::Gauge,
        "Records committed but not yet delivered, by forwarder.",
    ),
    (
        SINK_LAG,
        Kind::Gauge,
        "Age of the oldest record a forwarder has not delivered.",
    ),
    (
        CONFIG_RELOADS,
        Kind::Counter,
        "SIGHUP config reloads, by result (applied, rejected).",
    ),
    (
        AUDIT_ENTRIES,
        Kind::Counter,
        "Parameter changes recorded in the audit trail, by how they took effect (start, reload, upload).",
    ),
    (
        AUDIT_FAILURES,
        Kind::Counter,
        "Times the audit trail could not be recorded (unreadable file, store error).",
    ),
    (
        HTTP_HOST_REFUSED,
        Kind::Counter,
        "HTTP requests refused because their Host header named another server (DNS rebinding).",
    ),
    (
        HJ212_PACKETS_SENT,
        Kind::Counter,
        "HJ 212 uplink packets written, first sends only, by sink and command (2011, 2051, 2061, 2031, replies).",
    ),
    (
        HJ212_ACKS,
        Kind::Counter,
        "HJ 212 uploads the platform acknowledged with a 9014, by sink.",
    ),
    (
        HJ212_RESENDS,
        Kind::Counter,
        "HJ 212 uploads sent again with the same QN after an ack timeout or a reconnect, by sink.",
    ),
    (
        HJ212_ACK_TIMEOUTS,
        Kind::Counter,
        "HJ 212 uploads whose 9014 did not come within ack_timeout, by sink.",
    ),
    (
        HJ212_RECONNECTS,
        Kind::Counter,
        "HJ 212 uplink connections lost or given up (no ack after the retries), by sink.",
    ),
    (
        HJ212_CONNECTED,
        Kind::Gauge,
        "1 while an HJ 212 uplink is connected to its platform.",
    ),
    (
        HJ212_BACKLOG,
        Kind::Gauge,
        "Store records after an HJ 212 uplink's cursor (last seq minus cursor), by sink.",
    ),
    (
        HJ212_LAST_ACK,
        Kind::Gauge,
        "Unix time of the last 9014 data response an HJ 212 platform sent, by sink.",
    ),
    (
        INFLUX_POINTS_SENT,
        Kind::Counter,
        "Lines an InfluxDB server accepted, by sink (a line resent after a split counts again).",
    ),
    (
        INFLUX_FAILED_REQUESTS,
        Kind::Counter,
        "InfluxDB write requests that failed and will be sent again (outage, 429, 5xx, auth, a body limit), by sink.",
    ),
    (
        INFLUX_DEAD_LETTERS,
        Kind::Counter,
        "Records an InfluxDB server refused for good, moved to the dead-letter table, by sink.",
    ),
    (
        INFLUX_LAST_SUCCESS,
        Kind::Gauge,
        "Unix time of the last write an InfluxDB server accepted, by sink.",
    ),
    (
        HJ212_HISTORY_REQUESTS,
        Kind::Counter,
        "History pulls (BeginTime/EndTime) served by an HJ 212 uplink, by sink.",
    ),
    (
        HJ212_REJECTED_REQUESTS,
        Kind::Counter,
        "Platform requests an HJ 212 uplink refused, by sink and reason (password, mn, st, qn, cn, refused).",
    ),
    (
        HJ212_UNCONVERTIBLE,
        Kind::Counter,
        "Values an HJ 212 uplink left out because their stored unit has no exact conversion to the HJ 212 unit, by sink and quantity.",
    ),
    (
        HJ212_OUT_OF_TYPE,
        Kind::Counter,
        "Values an HJ 212 uplink left out because they do not fit their code's data type (HJ 212-2017 Table B.2), by sink and quantity; never cut to a wrong number.",
    ),
    (
        HJ212_IGNORED,
        Kind::Counter,
        "Packets from the platform an HJ 212 uplink did not take, by sink and reason (crc, length, syntax, garbage, unmatched_ack, response).",
    ),
    (
        hj212_listener::CONNECTIONS_OPEN,
        Kind::Gauge,
        "HJ 212 listener connections open now.",
    ),
    (
        hj212_listener::LOGGERS_ONLINE,
        Kind::Gauge,
        "HJ 212 loggers (MNs) with an open connection on which they authenticated.",
    ),
    (
        hj212_listener::CONNECTIONS,
        Kind::Counter,
        "HJ 212 listener connections, by outcome (accepted, refused over max_connections or max_connections_per_ip, or from a locked-out address).",
    ),
    (
        hj212_listener::PACKETS,
        Kind::Counter,
        "HJ 212 packets received by the listener, by command code (CN).",
    ),
    (
        hj212_listener::REJECTED,
        Kind::Counter,
        "HJ 212 packets or bytes the listener refused, by reason (crc, length, garbage, syntax, unknown_mn, bad_password, unsupported_command, bad_data, split, split_incomplete, not_period_start, store, connection_limit, source_connection_limit, locked_out, packet_deadline, data_time, unackable).",
    ),
    (
        hj212_listener::AUTH_FAILURES,
        Kind::Counter,
        "HJ 212 packets refused by the listener's authentication, by reason (bad_password, unknown_mn, locked_out: no password check for a locked-out address or MN).",
    ),
    (
        hj212_listener::LOCKOUTS,
        Kind::Counter,
        "Lockouts after [hj212_listener] auth_lockout_after failures, by scope (source: an address, mn: a logger's MN except from the addresses it last authenticated from).",
    ),
    (
        hj212_listener::RECORDS,
        Kind::Counter,
        "Records the HJ 212 listener committed from uploads.",
    ),
    (
        hj212_listener::HISTORY_PULLS,
        Kind::Counter,
        "History requests the HJ 212 listener sent for missing periods, by command code.",
    ),
    (
        hj212_listener::REPEATED_PARTS,
        Kind::Counter,
        "Parts of split HJ 212 uploads (Table C.50) that a logger sent again: acked again, taken once.",
    ),
    (
        hj212_listener::ACK_LATENCY,
        Kind::Histogram,
        "Time from an HJ 212 upload read to its 9014 ack written, commit included.",
    ),
];

pub const DEVICE_CONNECTED: &str = "cemsd_device_connected";
pub const DEVICE_INFO: &str = "cemsd_device_info";
pub const DEVICE_LAST_DATA: &str = "cemsd_device_last_data_timestamp_seconds";
pub const MQTT_CONNECTED: &str = "cemsd_mqtt_connected";
pub const MQTT_STALLED: &str = "cemsd_mqtt_stalled";
pub const MQTT_MESSAGES: &str = "cemsd_mqtt_messages_total";
pub const MQTT_READINGS: &str = "cemsd_mqtt_readings_total";
pub const MQTT_DUPLICATES: &str = "cemsd_mqtt_duplicates_total";
pub const MQTT_DEAD_LETTERS: &str = "cemsd_mqtt_dead_letters_total";
pub const MQTT_RECONNECTS: &str = "cemsd_mqtt_reconnects_total";
pub const READINGS_COMMITTED: &str = "cemsd_store_records_committed_total";
pub const STORE_TRANSACTIONS: &str = "cemsd_store_transactions_total";
pub const STORE_FAILED_TRANSACTIONS: &str = "cemsd_store_failed_transactions_total";
pub const STORE_FAILED_RECORDS: &str = "cemsd_store_failed_records_total";
pub const STORE_QUEUED_RECORDS: &str = "cemsd_store_queued_records";
pub const STORE_WRITABLE: &str = "cemsd_store_writable";
pub const STORE_SIZE: &str = "cemsd_store_size_bytes";
pub const STORE_ROWS: &str = "cemsd_store_rows";
pub const STORE_LAST_SEQ: &str = "cemsd_store_last_seq";
pub const STORE_PRUNED: &str = "cemsd_store_pruned_records_total";
pub const STORE_PRUNE_FAILURES: &str = "cemsd_store_prune_failures_total";
pub const SINK_BACKLOG: &str = "cemsd_forwarder_backlog_records";
pub const SINK_LAG: &str = "cemsd_forwarder_lag_seconds";
pub const CONFIG_RELOADS: &str = "cemsd_config_reloads_total";
pub const AUDIT_ENTRIES: &str = "cemsd_audit_entries_total";
pub const AUDIT_FAILURES: &str = "cemsd_audit_failures_total";
pub const HTTP_HOST_REFUSED: &str = "cemsd_http_host_refused_total";
pub const HJ212_PACKETS_SENT: &str = "cemsd_hj212_uplink_packets_total";
pub const HJ212_ACKS: &str = "cemsd_hj212_uplink_acks_total";
pub const HJ212_RESENDS: &str = "cemsd_hj212_uplink_resends_total";
pub const HJ212_ACK_TIMEOUTS: &str = "cemsd_hj212_uplink_ack_timeouts_total";
pub const HJ212_RECONNECTS: &str = "cemsd_hj212_uplink_reconnects_total";
pub const HJ212_CONNECTED: &str = "cemsd_hj212_uplink_connected";
pub const HJ212_BACKLOG: &str = "cemsd_hj212_uplink_backlog_records";
pub const HJ212_LAST_ACK: &str = "cemsd_hj212_uplink_last_ack_timestamp_seconds";
pub const INFLUX_POINTS_SENT: &str = "cemsd_influx_points_sent_total";
pub const INFLUX_FAILED_REQUESTS: &str = "cemsd_influx_failed_requests_total";
pub const INFLUX_DEAD_LETTERS: &str = "cemsd_influx_dead_letters_total";
pub const INFLUX_LAST_SUCCESS: &str = "cemsd_influx_last_success_timestamp_seconds";
/// Values left out because they do not fit their code's data type (HJ 212-2017 Table B.2).
pub const HJ212_OUT_OF_TYPE: &str = "cemsd_hj212_uplink_values_out_of_type_total";
/// Packets from the platform that were not taken, by reason: unreadable (crc, length,
/// syntax, garbage), a 9014 for no QN on the wire (`unmatched_ack`), or a response that is
/// never answered (`response`).
pub const HJ212_IGNORED: &str = "cemsd_hj212_uplink_ignored_packets_total";
pub const HJ212_HISTORY_REQUESTS: &str = "cemsd_hj212_uplink_history_requests_total";
pub const HJ212_REJECTED_REQUESTS: &str = "cemsd_hj212_uplink_rejected_requests_total";
pub const HJ212_UNCONVERTIBLE: &str = "cemsd_hj212_uplink_unconvertible_values_total";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Gauges not set for this long disappear from `/metrics`, so a device removed by a reload
/// stops being reported instead of showing its last state forever.
const IDLE_GAUGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// Installs the process-wide Prometheus recorder. Fails only when another recorder is
/// already installed.
pub fn install() -> Result<PrometheusHandle, String> {
    let handle = builder()
        .install_recorder()
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
    describe();
    Ok(handle)
}

fn builder() -> PrometheusBuilder {
    PrometheusBuilder::new().idle_timeout(MetricKindMask::GAUGE, Some(IDLE_GAUGE_TIMEOUT))
}

/// Registers the help text and units of [`HELP`] with the current recorder.
pub fn describe() {
    for &(name, kind, help) in HELP {
        let unit = if name.ends_with("_bytes") {
            Some(Unit::Bytes)
        } else if name.ends_with("_seconds") {
            Some(Unit::Seconds)
        } else {
            None
        };
        match (kind, unit) {
            (Kind::Counter, Some(unit)) => metrics::describe_counter!(name, unit, help),
            (Kind::Counter, None) => metrics::describe_counter!(name, help),
            (Kind::Gauge, Some(unit)) => metrics::describe_gauge!(name, unit, help),
            (Kind::Gauge, None) => metrics::describe_gauge!(name, help),
            (Kind::Histogram, Some(unit)) => metrics::describe_histogram!(name, unit, help),
            (Kind::Histogram, None) => metrics::describe_histogram!(name, help),
        }
    }
    for scope in [Scope::Line, Scope::Device] {
        for (counter, help) in COMM_COUNTERS {
            let what = match scope {
                Scope::Line => "by line (serial bus or network endpoint)",
                Scope::Device => "by device",
            };
            metrics::describe_counter!(comm_metric(scope, counter), format!("{help}, {what}."));
        }
    }
}

/// What the collectors counted, read just before a scrape.
#[derive(Debug, Clone, Default)]
pub struct Collectors {
    /// The live board: connection state, polls and line counters of each device.
    pub devices: BTreeMap<Arc<str>, DeviceLive>,
    /// Line counters of each serial bus and network endpoint.
    pub lines: BTreeMap<Arc<str>, CommStats>,
    /// Counters of each MQTT source, by id.
    pub mqtt: Vec<(String, SourceSnapshot)>,
    /// (device, stack) of every device, from [`super::devices::known_devices`].
    pub stacks: Vec<(String, String)>,
}

/// A SIGHUP reload, applied or rejected.
pub fn config_reloaded(applied: bool) {
    let result = if applied { "applied" } else { "rejected" };
    counter!(CONFIG_RELOADS, "result" => result).increment(1);
}

/// Entries recorded in the audit trail, or `None` when recording failed.
pub fn audit_recorded(how: &'static str, entries: Option<usize>) {
    match entries {
        Some(n) => counter!(AUDIT_ENTRIES, "how" => how).increment(n as u64),
        None => counter!(AUDIT_FAILURES).increment(1),
    }
}

/// Records one retention step deleted.
pub fn count_pruned(by_age: u64, by_size: u64) {
    counter!(STORE_PRUNED, "reason" => "age").increment(by_age);
    counter!(STORE_PRUNED, "reason" => "size").increment(by_size);
}

/// A retention run the store refused.
pub fn count_prune_failure() {
    counter!(STORE_PRUNE_FAILURES).increment(1);
}

/// A request for another host refused by the status server.
pub fn http_host_refused() {
    counter!(HTTP_HOST_REFUSED).increment(1);
}

/// Sets the levels and since-start totals that are read rather than counted, just before
/// a scrape renders them.
pub fn refresh(
    writer: WriterStats,
    store_state: StoreState,
    store: &StoreFacts,
    collectors: &Collectors,
    now_ms: i64,
) {
    counter!(READINGS_COMMITTED).absolute(writer.records_committed);
    counter!(STORE_TRANSACTIONS).absolute(writer.transactions);
    counter!(STORE_FAILED_TRANSACTIONS).absolute(writer.failed_transactions);
    counter!(STORE_FAILED_RECORDS).absolute(writer.records_failed);
    gauge!(STORE_QUEUED_RECORDS).set(writer.queued_records as f64);
    gauge!(STORE_WRITABLE).set(f64::from(u8::from(store_state == StoreState::Writable)));
    gauge!(STORE_SIZE).set(store.size_bytes as f64);
    if let Some(rows) = store.rows {
        gauge!(STORE_ROWS).set(rows as f64);
    }
    gauge!(STORE_LAST_SEQ).set(store.last_seq as f64);
    for sink in &store.sinks {
        gauge!(SINK_BACKLOG, "sink" => sink.name.clone()).set(sink.backlog as f64);
        gauge!(SINK_LAG, "sink" => sink.name.clone())
            .set(sink.lag_seconds(crate::model::Timestamp(now_ms)));
    }
    for (device, stack) in &collectors.stacks {
        gauge!(DEVICE_INFO, "device" => device.clone(), "stack" => stack.clone()).set(1.0);
    }
    for (id, device) in collectors.devices.iter().filter(|(_, d)| d.polls > 0) {
        gauge!(DEVICE_CONNECTED, "device" => id.to_string())
            .set(f64::from(u8::from(device.connected)));
    }
    for (id, seen) in collectors
        .devices
        .iter()
        .filter_map(|(id, d)| Some((id, d.last_seen?)))
    {
        gauge!(DEVICE_LAST_DATA, "device" => id.to_string()).set(seen.0 as f64 / 1000.0);
    }
    // devices with a line of their own (Modbus); MQTT and HJ 212 publishers count nothing
    let quiet = CommStats::default();
    for (id, device) in collectors.devices.iter().filter(|(_, d)| d.comm != quiet) {
        export_comm(Scope::Device, id, &device.comm);
    }
    for (line, stats) in &collectors.lines {
        export_comm(Scope::Line, line, stats);
    }
    for (id, s) in &collectors.mqtt {
        let source = || id.clone();
        gauge!(MQTT_CONNECTED, "source" => source()).set(f64::from(u8::from(s.connected)));
        gauge!(MQTT_STALLED, "source" => source()).set(f64::from(u8::from(s.stalled.is_some())));
        counter!(MQTT_MESSAGES, "source" => source()).absolute(s.messages);
        counter!(MQTT_READINGS, "source" => source()).absolute(s.readings);
        counter!(MQTT_DUPLICATES, "source" => source()).absolute(s.duplicates);
        counter!(MQTT_RECONNECTS, "source" => source()).absolute(s.reconnects());
        for (reason, n) in &s.rejected {
            counter!(MQTT_DEAD_LETTERS, "source" => source(), "reason" => *reason).absolute(*n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::modbus::poll_metrics::{poll_failed, poll_succeeded, PollErrorKind};
    use crate::collect::mqtt::payload::Reason;
    use crate::collect::mqtt::SourceStats;
    use crate::model::comm::CommEvent;
    use crate::model::Timestamp;
    use crate::ops::health::SinkFacts;

    /// Value of the sample line that starts with `series ` in a rendered exposition.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    }

    #[test]
    fn events_and_refreshed_levels_render_with_help_and_labels() {
        let recorder = builder().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            describe();
            poll_succeeded("u1-so2");
            poll_succeeded("u1-so2");
            poll_failed("u1-so2", PollErrorKind::Timeout);
            poll_failed(
                "dead",
                PollErrorKind::of("cannot connect to 127.0.0.1:9: refused"),
            );
            config_reloaded(false);
            let mut devices = BTreeMap::new();
            devices.insert(
                Arc::from("u1-so2"),
                DeviceLive {
                    connected: true,
                    polls: 3,
                    last_seen: Some(Timestamp(58_000)),
                    ..DeviceLive::default()
                },
            );
            devices.insert(
                Arc::from("dead"),
                DeviceLive {
                    connected: false,
                    polls: 1,
                    ..DeviceLive::default()
                },
            );
            devices.insert(Arc::from("unpolled"), DeviceLive::default());
            let store = StoreFacts {
                size_bytes: 4096,
                rows: Some(120),
                last_seq: 130,
                sinks: vec![SinkFacts {
                    name: "influx".into(),
                    cursor: 100,
                    backlog: 30,
                    oldest_pending: Some(Timestamp(55_000)),
                }],
            };
            let writer = WriterStats {
                records_committed: 130,
                transactions: 12,
                failed_transactions: 1,
                records_failed: 4,
                queued_records: 2,
            };
            let mut rs485 = CommStats::default();
            for event in [
                CommEvent::Connected,
                CommEvent::Request,
                CommEvent::Timeout,
                CommEvent::Request,
                CommEvent::BadCrc,
                CommEvent::Noise(4),
                CommEvent::Request,
                CommEvent::Exception(2),
                CommEvent::Connected,
            ] {
                rs485.record(event);
            }
            if let Some(d) = devices.get_mut("u1-so2") {
                d.comm = rs485.clone();
            }
            let mqtt = SourceStats::default();
            mqtt.set_connected(true);
            mqtt.message();
            mqtt.readings(3);
            mqtt.rejected(Reason::TooLarge);
            let collectors = Collectors {
                devices,
                lines: BTreeMap::from([(Arc::from("rs485"), rs485)]),
                mqtt: vec![("plant".to_string(), mqtt.snapshot())],
                stacks: vec![("u1-so2".to_string(), "unit1".to_string())],
            };
            refresh(writer, StoreState::Writable, &store, &collectors, 60_000);
        });
        let text = handle.render();
        let expect = [
            (r#"cemsd_polls_total{device="u1-so2",outcome="ok"}"#, 2.0),
            (r#"cemsd_polls_total{device="u1-so2",outcome="error"}"#, 1.0),
            (
                r#"cemsd_poll_errors_total{device="u1-so2",kind="timeout"}"#,
                1.0,
            ),
            (
                r#"cemsd_poll_errors_total{device="dead",kind="connect"}"#,
                1.0,
            ),
            (r#"cemsd_config_reloads_total{result="rejected"}"#, 1.0),
            ("cemsd_store_records_committed_total", 130.0),
            ("cemsd_store_transactions_total", 12.0),
            ("cemsd_store_failed_records_total", 4.0),
            ("cemsd_store_queued_records", 2.0),
            ("cemsd_store_writable", 1.0),
            ("cemsd_store_size_bytes", 4096.0),
            ("cemsd_store_rows", 120.0),
            ("cemsd_store_last_seq", 130.0),
            (r#"cemsd_forwarder_backlog_records{sink="influx"}"#, 30.0),
            // oldest pending at 55 s, now 60 s: 5 s behind
            (r#"cemsd_forwarder_lag_seconds{sink="influx"}"#, 5.0),
            (r#"cemsd_device_connected{device="u1-so2"}"#, 1.0),
            (r#"cemsd_device_connected{device="dead"}"#, 0.0),
            (
                r#"cemsd_device_last_data_timestamp_seconds{device="u1-so2"}"#,
                58.0,
            ),
            (r#"cemsd_device_info{device="u1-so2",stack="unit1"}"#, 1.0),
            (r#"cemsd_modbus_line_requests_total{line="rs485"}"#, 3.0),
            (r#"cemsd_modbus_line_timeouts_total{line="rs485"}"#, 1.0),
            (r#"cemsd_modbus_line_crc_errors_total{line="rs485"}"#, 1.0),
            (r#"cemsd_modbus_line_noise_bytes_total{line="rs485"}"#, 4.0),
            (
                r#"cemsd_modbus_line_exceptions_total{line="rs485",code="2"}"#,
                1.0,
            ),
            (r#"cemsd_modbus_line_reconnects_total{line="rs485"}"#, 1.0),
            (
                r#"cemsd_modbus_device_timeouts_total{device="u1-so2"}"#,
                1.0,
            ),
            (
                r#"cemsd_modbus_device_exceptions_total{device="u1-so2",code="2"}"#,
                1.0,
            ),
            (r#"cemsd_mqtt_connected{source="plant"}"#, 1.0),
            (r#"cemsd_mqtt_stalled{source="plant"}"#, 0.0),
            (r#"cemsd_mqtt_messages_total{source="plant"}"#, 1.0),
            (r#"cemsd_mqtt_readings_total{source="plant"}"#, 3.0),
            (r#"cemsd_mqtt_reconnects_total{source="plant"}"#, 0.0),
            (
                r#"cemsd_mqtt_dead_letters_total{source="plant",reason="too_large"}"#,
                1.0,
            ),
            (
                r#"cemsd_mqtt_dead_letters_total{source="plant",reason="syntax"}"#,
                0.0,
            ),
        ];
        for (series, value) in expect {
            assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
        }
        assert!(
            !text.contains("unpolled"),
            "a device never polled has no connection state yet:\n{text}"
        );
        assert!(
            text.contains("# HELP cemsd_polls_total Device polls finished"),
            "{text}"
        );
        assert!(text.contains("# TYPE cemsd_store_rows gauge"), "{text}");
        assert!(
            !text.contains(r#"cemsd_modbus_device_requests_total{device="dead"}"#),
            "a device that counted nothing on a line exports no line counters:\n{text}"
        );
        assert!(
            text.contains("# HELP cemsd_modbus_line_crc_errors_total Replies that arrived with a wrong CRC, by line"),
            "{text}"
        );
    }
}
