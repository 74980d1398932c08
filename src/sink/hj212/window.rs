//! Uploads waiting for their 9014: a small window of packets in flight, matched to acks by QN
//! (acks may come in any order), with a deadline each for the resend.

use std::time::Duration;

use tokio::time::Instant;

/// Why an upload was sent, which decides what its ack means and whether it survives a
/// reconnect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Store records from the cursor on; `first_seq` is the lowest seq the upload carries.
    Backlog { first_seq: u64 },
    /// Part of the answer to the platform's history pull number `job`.
    History { job: u64 },
    /// 2011 real-time data: perishable, dropped on reconnect (the minute data covers it).
    Realtime,
}

/// One upload ready for the wire: every part of a split message, sharing the QN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub qn: String,
    /// CN, for the packets-sent metric.
    pub cn: &'static str,
    pub frames: Vec<Vec<u8>>,
    pub purpose: Purpose,
}

impl Upload {
    pub fn bytes(&self) -> Vec<u8> {
        self.frames.concat()
    }
}

#[derive(Debug)]
struct InFlight {
    upload: Upload,
    /// `None` until written on the current connection.
    deadline: Option<Instant>,
    /// Sends so far on any connection; more than one makes every further send a resend.
    sends: u32,
    /// Resends on the current connection after a timeout.
    resends: u32,
}

/// What to write now.
#[derive(Debug, PartialEq, Eq)]
pub struct Send {
    pub bytes: Vec<u8>,
    pub cn: &'static str,
    pub parts: u64,
    pub resend: bool,
}

/// The outcome of checking deadlines.
#[derive(Debug, PartialEq, Eq)]
pub enum Expiry {
    /// Uploads whose ack is overdue, sent again; `timeouts` counts them.
    Resend { sends: Vec<Send>, timeouts: u64 },
    /// An upload stayed unanswered through every resend: the connection is taken as broken.
    Broken { qn: String, timeouts: u64 },
}

#[derive(Debug)]
pub struct Window {
    capacity: usize,
    entries: Vec<InFlight>,
}

impl Window {
    pub fn new(capacity: usize) -> Window {
        Window {
            capacity: capacity.max(1),
            entries: Vec::new(),
        }
    }

    /// Whether another backlog or history upload may go out.
    pub fn has_room(&self) -> bool {
        self.entries.len() < self.capacity
    }

    /// Adds an upload to send. Real-time uploads are let in even when the window is full: they
    /// are few and must not wait behind a backlog.
    pub fn push(&mut self, upload: Upload) {
        self.entries.push(InFlight {
            upload,
            deadline: None,
            sends: 0,
            resends: 0,
        });
    }

    /// Everything not yet written on this connection, oldest first, now marked as sent.
    pub fn unsent(&mut self, now: Instant, ack_timeout: Duration) -> Vec<Send> {
        let mut out = Vec::new();
        for entry in self.entries.iter_mut().filter(|e| e.deadline.is_none()) {
            entry.deadline = Some(now + ack_timeout);
            out.push(Send {
                bytes: entry.upload.bytes(),
                cn: entry.upload.cn,
                parts: entry.upload.frames.len() as u64,
                resend: entry.sends > 0,
            });
            entry.sends += 1;
        }
        out
    }

    /// Takes the upload this 9014 acknowledges; `None` for an unknown QN (a second ack after
    /// a resend, or an ack from before a reconnect).
    pub fn ack(&mut self, qn: &str) -> Option<Upload> {
        let index = self.entries.iter().position(|e| e.upload.qn == qn)?;
        Some(self.entries.remove(index).upload)
    }

    /// The earliest ack deadline of the uploads on the wire.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.entries.iter().filter_map(|e| e.deadline).min()
    }

    /// Resends what is overdue, up to `retries` times each on this connection.
    pub fn expire(&mut self, now: Instant, ack_timeout: Duration, retries: u32) -> Expiry {
        let mut sends = Vec::new();
        let mut timeouts = 0;
        for entry in &mut self.entries {
            if entry.deadline.is_none_or(|d| d > now) {
                continue;
            }
            timeouts += 1;
            if entry.resends >= retries {
                return Expiry::Broken {
                    qn: entry.upload.qn.clone(),
                    timeouts,
                };
            }
            entry.resends += 1;
            entry.sends += 1;
            entry.deadline = Some(now + ack_timeout);
            sends.push(Send {
                bytes: entry.upload.bytes(),
                cn: entry.upload.cn,
                parts: entry.upload.frames.len() as u64,
                resend: true,
            });
        }
        Expiry::Resend { sends, timeouts }
    }

    /// After a reconnect: backlog uploads go out again with their QNs; real-time and history
    /// uploads are dropped and returned (the platform asks again for history it still wants).
    pub fn reconnected(&mut self) -> Vec<Upload> {
        let mut dropped = Vec::new();
        let mut kept = Vec::new();
        for mut entry in self.entries.drain(..) {
            if matches!(entry.upload.purpose, Purpose::Backlog { .. }) {
                entry.deadline = None;
                entry.resends = 0;
                kept.push(entry);
            } else {
                dropped.push(entry.upload);
            }
        }
        self.entries = kept;
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);

    fn upload(qn: &str, purpose: Purpose) -> Upload {
        Upload {
            qn: qn.into(),
            cn: "2051",
            frames: vec![format!("##{qn}\r\n").into_bytes()],
            purpose,
        }
    }

    #[test]
    fn acks_in_any_order_free_the_window() {
        let mut window = Window::new(2);
        window.push(upload("1", Purpose::Backlog { first_seq: 1 }));
        window.push(upload("2", Purpose::Backlog { first_seq: 5 }));
        assert!(!window.has_room());
        let now = Instant::now();
        let sends = window.unsent(now, TIMEOUT);
        assert_eq!(sends.len(), 2);
        assert!(sends.iter().all(|s| !s.resend));
        assert!(
            window.unsent(now, TIMEOUT).is_empty(),
            "already on the wire"
        );
        assert_eq!(window.next_deadline(), Some(now + TIMEOUT));
        assert_eq!(
            window.ack("2").map(|u| u.purpose),
            Some(Purpose::Backlog { first_seq: 5 })
        );
        assert_eq!(window.ack("2"), None, "a second ack of the same QN");
        assert!(window.has_room());
        assert!(window.ack("1").is_some());
        assert_eq!(window.next_deadline(), None, "nothing left on the wire");
    }

    #[test]
    fn overdue_uploads_are_resent_then_the_connection_is_broken() {
        let mut window = Window::new(8);
        window.push(upload("1", Purpose::Backlog { first_seq: 1 }));
        let t0 = Instant::now();
        window.unsent(t0, TIMEOUT);
        assert_eq!(
            window.expire(t0 + TIMEOUT - Duration::from_millis(1), TIMEOUT, 2),
            Expiry::Resend {
                sends: vec![],
                timeouts: 0
            }
        );
        // Two resends allowed: at 10 s and 20 s; at 30 s the connection is broken.
        for n in 1..=2u32 {
            let Expiry::Resend { sends, timeouts } = window.expire(t0 + TIMEOUT * n, TIMEOUT, 2)
            else {
                panic!("resend {n} expected");
            };
            assert_eq!((sends.len(), timeouts), (1, 1));
            assert!(sends[0].resend);
            assert_eq!(sends[0].bytes, b"##1\r\n".to_vec(), "same QN, same bytes");
        }
        assert_eq!(
            window.expire(t0 + TIMEOUT * 3, TIMEOUT, 2),
            Expiry::Broken {
                qn: "1".into(),
                timeouts: 1
            }
        );
    }

    #[test]
    fn a_reconnect_keeps_backlog_and_drops_perishable_uploads() {
        let mut window = Window::new(8);
        window.push(upload("1", Purpose::Backlog { first_seq: 1 }));
        window.push(upload("2", Purpose::Realtime));
        window.push(upload("3", Purpose::History { job: 1 }));
        window.unsent(Instant::now(), TIMEOUT);
        let dropped: Vec<String> = window.reconnected().into_iter().map(|u| u.qn).collect();
        assert_eq!(dropped, vec!["2", "3"]);
        let sends = window.unsent(Instant::now(), TIMEOUT);
        assert_eq!(sends.len(), 1);
        assert!(sends[0].resend, "sent before the reconnect");
    }
}
