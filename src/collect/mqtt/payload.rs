//! What a payload decoder produces (readings as published, not yet bound to a device) and
//! why a payload can be refused. Each refusal has a reason key under which it is counted.

use std::fmt;

use crate::model::Timestamp;

/// One value as the publisher named it. Missing parts are filled from the topic and the
/// subscription before it becomes a `Sample`.
#[derive(Debug, Clone, PartialEq)]
pub struct RawReading {
    pub device: Option<String>,
    pub channel: Option<String>,
    /// NaN when the publisher said there is no value (JSON null).
    pub value: f64,
    pub unit: Option<String>,
    pub status: Option<String>,
    /// None: the payload gave no time, so the receive time applies.
    pub ts: Option<Timestamp>,
}

impl RawReading {
    pub fn new(value: f64) -> RawReading {
        RawReading {
            device: None,
            channel: None,
            value,
            unit: None,
            status: None,
            ts: None,
        }
    }
}

/// Why a message was refused. The key is what statistics count and dead letters record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// The payload is not UTF-8 text.
    NotText,
    /// Not valid JSON, line protocol, number or HJ 212 packet.
    Syntax,
    MissingField,
    NotANumber,
    BadTime,
    BadStatus,
    UnknownDevice,
    UnknownChannel,
    UnitMismatch,
    /// The topic does not fit the subscription's template, or no subscription matches it.
    TopicMismatch,
    /// Valid, but a kind of message cemsd does not take (e.g. an HJ 212 command other than
    /// real-time data).
    Unsupported,
    /// Valid, with no reading in it.
    Empty,
    /// Stamped further back than `[ingest] lateness_horizon`: too old to re-open its
    /// periods, and not a redelivery of a stored reading.
    TooLate,
    /// Stamped further ahead of the receiving clock than `[ingest] future_tolerance`.
    Future,
    /// A payload over the source's `max_payload`.
    TooLarge,
}

impl Reason {
    pub const ALL: [Reason; 15] = [
        Reason::NotText,
        Reason::Syntax,
        Reason::MissingField,
        Reason::NotANumber,
        Reason::BadTime,
        Reason::BadStatus,
        Reason::UnknownDevice,
        Reason::UnknownChannel,
        Reason::UnitMismatch,
        Reason::TopicMismatch,
        Reason::Unsupported,
        Reason::Empty,
        Reason::TooLate,
        Reason::Future,
        Reason::TooLarge,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Reason::NotText => "not_text",
            Reason::Syntax => "syntax",
            Reason::MissingField => "missing_field",
            Reason::NotANumber => "not_a_number",
            Reason::BadTime => "bad_time",
            Reason::BadStatus => "bad_status",
            Reason::UnknownDevice => "unknown_device",
            Reason::UnknownChannel => "unknown_channel",
            Reason::UnitMismatch => "unit_mismatch",
            Reason::TopicMismatch => "topic_mismatch",
            Reason::Unsupported => "unsupported",
            Reason::Empty => "empty",
            Reason::TooLate => "too_late",
            Reason::Future => "future",
            Reason::TooLarge => "too_large",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadError {
    pub reason: Reason,
    pub detail: String,
}

impl PayloadError {
    pub fn new(reason: Reason, detail: impl Into<String>) -> PayloadError {
        PayloadError {
            reason,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

impl std::error::Error for PayloadError {}

/// The payload as text, or a `not_text` refusal.
pub fn text(payload: &[u8]) -> Result<&str, PayloadError> {
    std::str::from_utf8(payload).map_err(|e| {
        PayloadError::new(
            Reason::NotText,
            format!("not UTF-8 text (byte {} is invalid)", e.valid_up_to()),
        )
    })
}

/// At most `max` characters of a payload for a log line, marked when cut, with any HJ 212
/// password masked.
pub fn truncated(payload: &[u8], max: usize) -> String {
    let masked = crate::protocol::redact::mask_passwords(payload);
    let text = String::from_utf8_lossy(&masked);
    let mut out: String = text.chars().take(max).collect();
    if text.chars().nth(max).is_some() {
        out.push_str(&format!("… ({} bytes)", payload.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_keys_are_distinct() {
        let mut keys: Vec<_> = Reason::ALL.iter().map(|r| r.key()).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), Reason::ALL.len());
    }

    #[test]
    fn truncation_marks_the_cut() {
        assert_eq!(truncated(b"12.5", 10), "12.5");
        assert_eq!(
            truncated(b"ST=31;CN=2011;PW=123456;MN=A", 20),
            "ST=31;CN=2011;PW=***… (28 bytes)"
        );
        assert_eq!(truncated(b"0123456789abc", 10), "0123456789… (13 bytes)");
        assert_eq!(truncated(&[0xff, b'a'], 10), "\u{fffd}a");
    }

    #[test]
    fn non_utf8_is_refused_with_its_offset() {
        let err = text(b"ab\xffc").err().map(|e| (e.reason, e.detail));
        assert_eq!(
            err,
            Some((Reason::NotText, "not UTF-8 text (byte 2 is invalid)".into()))
        );
    }
}
