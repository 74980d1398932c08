//! Prometheus counters of Modbus polls (how many finished and why the failed ones failed),
//! and the line counters of [`CommStats`] per line and per device.

use metrics::counter;

use super::link::TransactionError;
use crate::model::comm::CommStats;

pub const POLLS: &str = "cemsd_polls_total";
pub const POLL_ERRORS: &str = "cemsd_poll_errors_total";

/// A finished, successful poll of `device`.
pub fn poll_succeeded(device: &str) {
    counter!(POLLS, "device" => device.to_string(), "outcome" => "ok").increment(1);
}

/// A failed poll of `device`, and why.
pub fn poll_failed(device: &str, kind: PollErrorKind) {
    counter!(POLLS, "device" => device.to_string(), "outcome" => "error").increment(1);
    counter!(POLL_ERRORS, "device" => device.to_string(), "kind" => kind.as_str()).increment(1);
}

/// Why a poll failed, coarse enough to alert on: a timeout points at the device or the
/// line, a CRC error or garbled reply at the wiring, a refused connection at the network,
/// an exception at the register map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollErrorKind {
    Timeout,
    Crc,
    Garbled,
    Connect,
    Transport,
    Exception,
    Malformed,
    Other,
}

impl PollErrorKind {
    /// Sorts a message of a failure that has no [`TransactionError`] (opening the port or
    /// connection) by the wording the collectors use ("no connection … within", "cannot
    /// connect", "cannot open", "transport error", …).
    pub fn of(message: &str) -> PollErrorKind {
        let m = message.to_ascii_lowercase();
        if m.starts_with("no reply within")
            || m.contains("within") && m.starts_with("no connection")
        {
            PollErrorKind::Timeout
        } else if m.starts_with("cannot connect")
            || m.starts_with("cannot resolve")
            || m.starts_with("cannot open")
            || m.starts_with("cannot take")
            || m.starts_with("cannot clear")
            || m.contains("resolves to no address")
        {
            PollErrorKind::Connect
        } else if m.starts_with("transport error") {
            PollErrorKind::Transport
        } else if m.starts_with("exception") {
            PollErrorKind::Exception
        } else if m.starts_with("malformed") {
            PollErrorKind::Malformed
        } else {
            PollErrorKind::Other
        }
    }

    /// The kind of a failed read.
    pub fn of_transaction(error: &TransactionError) -> PollErrorKind {
        match error {
            TransactionError::Timeout => PollErrorKind::Timeout,
            TransactionError::BadCrc => PollErrorKind::Crc,
            TransactionError::Garbled => PollErrorKind::Garbled,
            TransactionError::Exception(_) => PollErrorKind::Exception,
            TransactionError::Malformed(_) => PollErrorKind::Malformed,
            TransactionError::Io(_) => PollErrorKind::Transport,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PollErrorKind::Timeout => "timeout",
            PollErrorKind::Crc => "crc",
            PollErrorKind::Garbled => "garbled",
            PollErrorKind::Connect => "connect",
            PollErrorKind::Transport => "transport",
            PollErrorKind::Exception => "exception",
            PollErrorKind::Malformed => "malformed",
            PollErrorKind::Other => "other",
        }
    }
}

/// What a set of line counters belongs to: a line (bus or endpoint) or one device on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Line,
    Device,
}

impl Scope {
    /// The label naming it, and the word in the metric names.
    pub fn label(self) -> &'static str {
        match self {
            Scope::Line => "line",
            Scope::Device => "device",
        }
    }
}

/// The counters of [`CommStats`] exported per line and per device: metric suffix and help.
/// `exceptions` carries the exception code as a label.
pub const COMM_COUNTERS: [(&str, &str); 10] = [
    ("requests", "Modbus requests sent"),
    ("replies", "Valid data replies received"),
    ("timeouts", "Requests that got no reply in time"),
    ("crc_errors", "Replies that arrived with a wrong CRC"),
    ("garbled", "Replies that arrived damaged or truncated"),
    ("noise_bytes", "Bytes on the line that formed no frame"),
    ("exceptions", "Exception replies, by exception code"),
    (
        "reconnects",
        "Connections (or openings of the serial port) after the first",
    ),
    (
        "connect_failures",
        "Failed attempts to open the connection or the serial port",
    ),
    (
        "io_errors",
        "Times the port or socket failed and was closed",
    ),
];

/// `cemsd_modbus_<line|device>_<counter>_total`.
pub fn comm_metric(scope: Scope, counter: &str) -> String {
    format!("cemsd_modbus_{}_{counter}_total", scope.label())
}

/// Sets the exported counters of one line or device to its totals since start.
pub fn export_comm(scope: Scope, name: &str, stats: &CommStats) {
    let label = scope.label();
    let totals = [
        ("requests", stats.requests),
        ("replies", stats.replies),
        ("timeouts", stats.timeouts),
        ("crc_errors", stats.crc_errors),
        ("garbled", stats.garbled),
        ("noise_bytes", stats.noise_bytes),
        ("reconnects", stats.reconnects()),
        ("connect_failures", stats.connect_failures),
        ("io_errors", stats.io_errors),
    ];
    for (counter, total) in totals {
        counter!(comm_metric(scope, counter), label => name.to_string()).absolute(total);
    }
    for (code, total) in &stats.exceptions {
        counter!(comm_metric(scope, "exceptions"), label => name.to_string(), "code" => code.to_string())
            .absolute(*total);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_sort_into_kinds() {
        let cases = [
            ("no reply within 1s to Block { .. }", "timeout"),
            ("no connection to 10.0.0.5:502 within 1s", "timeout"),
            (
                "cannot connect to 127.0.0.1:1: Connection refused",
                "connect",
            ),
            ("cannot resolve plc.local:502: failed to lookup", "connect"),
            ("plc.local:502 resolves to no address", "connect"),
            (
                "cannot open /dev/ttyUSB0: No such file or directory",
                "connect",
            ),
            ("transport error: broken pipe", "transport"),
            ("exception IllegalDataAddress for Block { .. }", "exception"),
            ("malformed reply to Block { .. }", "malformed"),
            ("CRC mismatch", "other"),
        ];
        for (message, kind) in cases {
            assert_eq!(PollErrorKind::of(message).as_str(), kind, "{message}");
        }
    }

    #[test]
    fn failed_reads_keep_their_kind() {
        let cases = [
            (TransactionError::Timeout, "timeout"),
            (TransactionError::BadCrc, "crc"),
            (TransactionError::Garbled, "garbled"),
            (TransactionError::Exception(2), "exception"),
            (TransactionError::Malformed("short".into()), "malformed"),
            (TransactionError::Io("gone".into()), "transport"),
        ];
        for (error, kind) in cases {
            assert_eq!(PollErrorKind::of_transaction(&error).as_str(), kind);
        }
    }
}
