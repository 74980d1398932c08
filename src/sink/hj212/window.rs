//! Uploads waiting for their 9014s: a small window of uploads in flight, each of one packet
//! or of several split parts, every part matched to its own 9014 by its own QN (HJ 212-2017
//! Table C.50; acks may come in any order), with a deadline each for the resend of what is
//! still unacknowledged.

use std::time::Duration;

use tokio::time::Instant;

use super::upload::WirePart;

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

/// One upload ready for the wire: every part of a split message, each with its own QN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// CN, for the packets-sent metric.
    pub cn: &'static str,
    /// At least one.
    pub parts: Vec<WirePart>,
    pub purpose: Purpose,
}

impl Upload {
    /// The QN of part 1, which names the upload.
    pub fn qn(&self) -> &str {
        self.parts.first().map_or("", |p| p.qn.as_str())
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.parts.iter().flat_map(|p| p.bytes.clone()).collect()
    }
}

/// What a 9014 did.
#[derive(Debug, PartialEq, Eq)]
pub enum Acked {
    /// It acknowledged one part of an upload that still waits for others.
    Part,
    /// It acknowledged the last unacknowledged part: the upload is delivered.
    Upload(Upload),
    /// No part on the wire has this QN (a second ack after a resend, an ack from before a
    /// reconnect, or a platform answering with a QN we never sent).
    Unknown,
}

#[derive(Debug)]
struct InFlight {
    upload: Upload,
    /// Per part: acknowledged yet.
    acked: Vec<bool>,
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
            acked: vec![false; upload.parts.len()],
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
            out.push(entry.send(entry.sends > 0));
            entry.sends += 1;
        }
        out
    }

    /// Marks the part with this QN acknowledged; the upload leaves the window once every part
    /// is.
    pub fn ack(&mut self, qn: &str) -> Acked {
        let found = self.entries.iter().enumerate().find_map(|(i, e)| {
            e.upload
                .parts
                .iter()
                .position(|p| p.qn == qn)
                .filter(|part| !e.acked[*part])
                .map(|part| (i, part))
        });
        let Some((index, part)) = found else {
            return Acked::Unknown;
        };
        let entry = &mut self.entries[index];
        entry.acked[part] = true;
        if entry.acked.iter().all(|a| *a) {
            Acked::Upload(self.entries.remove(index).upload)
        } else {
            Acked::Part
        }
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
                    qn: entry.first_unacked().to_string(),
                    timeouts,
                };
            }
            entry.resends += 1;
            entry.sends += 1;
            entry.deadline = Some(now + ack_timeout);
            sends.push(entry.send(true));
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
                // The platform may not have kept what it acked on the lost connection; every
                // part goes again.
                entry.acked.iter_mut().for_each(|a| *a = false);
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

impl InFlight {
    /// The parts not yet acknowledged, in PNO order.
    fn send(&self, resend: bool) -> Send {
        let unacked = || {
            self.upload
                .parts
                .iter()
                .zip(&self.acked)
                .filter(|(_, acked)| !**acked)
        };
        Send {
            bytes: unacked().flat_map(|(p, _)| p.bytes.clone()).collect(),
            cn: self.upload.cn,
            parts: unacked().count() as u64,
            resend,
        }
    }

    fn first_unacked(&self) -> &str {
        self.upload
            .parts
            .iter()
            .zip(&self.acked)
            .find(|(_, acked)| !**acked)
            .map_or(self.upload.qn(), |(p, _)| p.qn.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);

    fn upload(qn: &str, purpose: Purpose) -> Upload {
        split_upload(&[qn], purpose)
    }

    fn split_upload(qns: &[&str], purpose: Purpose) -> Upload {
        Upload {
            cn: "2051",
            parts: qns
                .iter()
                .map(|qn| WirePart {
                    qn: qn.to_string(),
                    bytes: format!("##{qn}\r\n").into_bytes(),
                })
                .collect(),
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
            window.ack("2"),
            Acked::Upload(upload("2", Purpose::Backlog { first_seq: 5 }))
        );
        assert_eq!(
            window.ack("2"),
            Acked::Unknown,
            "a second ack of the same QN"
        );
        assert!(window.has_room());
        assert!(matches!(window.ack("1"), Acked::Upload(_)));
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
        let dropped: Vec<String> = window
            .reconnected()
            .into_iter()
            .map(|u| u.qn().to_string())
            .collect();
        assert_eq!(dropped, vec!["2", "3"]);
        let sends = window.unsent(Instant::now(), TIMEOUT);
        assert_eq!(sends.len(), 1);
        assert!(sends[0].resend, "sent before the reconnect");
    }

    #[test]
    fn each_part_is_acked_by_its_own_qn_and_only_the_unacked_go_again() {
        let mut window = Window::new(8);
        window.push(split_upload(
            &["534", "535", "536"],
            Purpose::Backlog { first_seq: 1 },
        ));
        let t0 = Instant::now();
        let sends = window.unsent(t0, TIMEOUT);
        assert_eq!(sends.len(), 1);
        assert_eq!(sends[0].parts, 3);
        assert_eq!(window.ack("535"), Acked::Part);
        assert_eq!(window.ack("535"), Acked::Unknown, "already acked");
        let Expiry::Resend { sends, .. } = window.expire(t0 + TIMEOUT, TIMEOUT, 3) else {
            panic!("a resend");
        };
        assert_eq!(sends[0].bytes, b"##534\r\n##536\r\n".to_vec());
        assert_eq!(sends[0].parts, 2);
        assert_eq!(window.ack("536"), Acked::Part);
        assert_eq!(
            window.expire(t0 + TIMEOUT * 4, TIMEOUT, 1),
            Expiry::Broken {
                qn: "534".into(),
                timeouts: 1
            },
            "the part still unacknowledged names the break"
        );
        assert!(matches!(window.ack("534"), Acked::Upload(u) if u.qn() == "534"));
    }
}
