//! Prometheus counters of Modbus polls: how many finished and why the failed ones failed.

use metrics::counter;

pub const POLLS: &str = "cemsd_polls_total";
pub const POLL_ERRORS: &str = "cemsd_poll_errors_total";

/// A finished, successful poll of `device`.
pub fn poll_succeeded(device: &str) {
    counter!(POLLS, "device" => device.to_string(), "outcome" => "ok").increment(1);
}

/// A failed poll of `device`; `error` is the collector's message, sorted into a kind.
pub fn poll_failed(device: &str, error: &str) {
    counter!(POLLS, "device" => device.to_string(), "outcome" => "error").increment(1);
    counter!(POLL_ERRORS, "device" => device.to_string(), "kind" => PollErrorKind::of(error).as_str())
        .increment(1);
}

/// Why a poll failed, coarse enough to alert on: a timeout points at the device or the
/// line, a refused connection at the network, an exception at the register map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollErrorKind {
    Timeout,
    Connect,
    Transport,
    Exception,
    Malformed,
    Other,
}

impl PollErrorKind {
    /// Sorts a collector's error message by the wording the collectors use ("no reply
    /// within", "cannot connect", "transport error", "exception", "malformed reply").
    pub fn of(message: &str) -> PollErrorKind {
        let m = message.to_ascii_lowercase();
        if m.starts_with("no reply within")
            || m.contains("within") && m.starts_with("no connection")
        {
            PollErrorKind::Timeout
        } else if m.starts_with("cannot connect")
            || m.starts_with("cannot resolve")
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

    pub fn as_str(self) -> &'static str {
        match self {
            PollErrorKind::Timeout => "timeout",
            PollErrorKind::Connect => "connect",
            PollErrorKind::Transport => "transport",
            PollErrorKind::Exception => "exception",
            PollErrorKind::Malformed => "malformed",
            PollErrorKind::Other => "other",
        }
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
            ("transport error: broken pipe", "transport"),
            ("exception IllegalDataAddress for Block { .. }", "exception"),
            ("malformed reply to Block { .. }", "malformed"),
            ("CRC mismatch", "other"),
        ];
        for (message, kind) in cases {
            assert_eq!(PollErrorKind::of(message).as_str(), kind, "{message}");
        }
    }
}
