//! Counters for every way a Modbus exchange can go wrong, kept per line (bus or endpoint) and
//! per device, so a technician can tell a dead analyser from a noisy cable from a busy bus.

use std::collections::BTreeMap;

/// Something that happened on a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommEvent {
    /// A request went out.
    Request,
    /// A valid data reply came back.
    Reply,
    /// No reply before the deadline.
    Timeout,
    /// A reply arrived with a wrong CRC.
    BadCrc,
    /// Bytes arrived but never formed the reply (truncated frame, garbage).
    Garbled,
    /// Bytes before a reply that formed no frame.
    Noise(usize),
    /// Complete frames that answered something else (late replies, other units).
    Foreign(u32),
    /// Bytes waiting on the line before a request, discarded.
    Stale(usize),
    /// An exception reply with this code.
    Exception(u8),
    /// The port or socket failed and was closed.
    IoError,
    /// A connection (or the serial port) was opened.
    Connected,
    /// Opening the connection or port failed.
    ConnectFailed,
    /// A poll in which no read succeeded.
    PollFailed,
    /// A failing device's probe put off, because its timeout would have run into another
    /// device's next poll.
    BackedOff,
    /// A boundary that passed while the line was busy with other polls.
    Missed,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommStats {
    pub requests: u64,
    pub replies: u64,
    pub timeouts: u64,
    pub crc_errors: u64,
    pub garbled: u64,
    pub noise_bytes: u64,
    pub foreign_frames: u64,
    pub stale_bytes: u64,
    /// Exception replies by exception code.
    pub exceptions: BTreeMap<u8, u64>,
    pub io_errors: u64,
    pub connects: u64,
    pub connect_failures: u64,
    pub failed_polls: u64,
    pub backed_off: u64,
    pub missed: u64,
}

impl CommStats {
    pub fn record(&mut self, event: CommEvent) {
        let widen = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        match event {
            CommEvent::Request => self.requests += 1,
            CommEvent::Reply => self.replies += 1,
            CommEvent::Timeout => self.timeouts += 1,
            CommEvent::BadCrc => self.crc_errors += 1,
            CommEvent::Garbled => self.garbled += 1,
            CommEvent::Noise(n) => self.noise_bytes += widen(n),
            CommEvent::Foreign(n) => self.foreign_frames += u64::from(n),
            CommEvent::Stale(n) => self.stale_bytes += widen(n),
            CommEvent::Exception(code) => *self.exceptions.entry(code).or_default() += 1,
            CommEvent::IoError => self.io_errors += 1,
            CommEvent::Connected => self.connects += 1,
            CommEvent::ConnectFailed => self.connect_failures += 1,
            CommEvent::PollFailed => self.failed_polls += 1,
            CommEvent::BackedOff => self.backed_off += 1,
            CommEvent::Missed => self.missed += 1,
        }
    }

    /// Connections opened after the first: how often the line had to be rebuilt.
    pub fn reconnects(&self) -> u64 {
        self.connects.saturating_sub(1)
    }

    /// One line for a terminal, naming only what is not zero.
    pub fn summary(&self) -> String {
        let mut parts = vec![
            format!("req {}", self.requests),
            format!("ok {}", self.replies),
        ];
        let counters = [
            ("timeout", self.timeouts),
            ("crc", self.crc_errors),
            ("garbled", self.garbled),
            ("noise-bytes", self.noise_bytes),
            ("late/foreign", self.foreign_frames),
            ("stale-bytes", self.stale_bytes),
            ("io", self.io_errors),
            ("reconnects", self.reconnects()),
            ("connect-fail", self.connect_failures),
            ("missed", self.missed),
        ];
        parts.extend(
            counters
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(name, n)| format!("{name} {n}")),
        );
        for (code, n) in &self.exceptions {
            parts.push(format!("exc{code} {n}"));
        }
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exceptions_are_counted_by_code() {
        let mut stats = CommStats::default();
        for event in [
            CommEvent::Exception(2),
            CommEvent::Exception(6),
            CommEvent::Exception(2),
            CommEvent::Noise(3),
            CommEvent::Noise(4),
            CommEvent::Connected,
            CommEvent::Connected,
        ] {
            stats.record(event);
        }
        assert_eq!(stats.exceptions, BTreeMap::from([(2, 2), (6, 1)]));
        assert_eq!(stats.noise_bytes, 7);
        assert_eq!(stats.reconnects(), 1);
        assert_eq!(
            stats.summary(),
            "req 0 ok 0 noise-bytes 7 reconnects 1 exc2 2 exc6 1"
        );
    }
}
