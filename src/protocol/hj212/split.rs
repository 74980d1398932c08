//! Messages over 1024 bytes travel as several packets numbered by PNUM/PNO with the split bit
//! set in Flag, each with a QN of its own and, when the A bit is set, a 9014 of its own:
//! HJ 212-2017 Table C.50 sends part 1 as `QN=20160801085857534;…;Flag=7;PNUM=2;PNO=1`, the
//! platform answers 9014 with that QN, then part 2 goes as `QN=20160801085857535;…;PNO=2` and
//! gets its own 9014 (Table C.49 the same with Flag=6 and no acks). Each packet repeats the
//! leading context (DataTime and other parameters before the first factor group; both parts
//! of C.50 carry `DataTime=20160801080000`) and carries a run of whole factor groups, so every
//! packet stays meaningful on its own.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use super::cp::{self, CpGroup};
use super::error::EncodeError;
use super::packet::{data_segment, Packet, PacketFlag, MAX_PARTS};
use super::MAX_DATA_LEN;

/// The packets to send for `packet`: itself when it fits, else PNUM parts. Part 1 keeps the
/// packet's QN, every later part takes the next one from `next_qn` (Table C.50: each part its
/// own QN, acknowledged on its own). A packet without Flag gets a 2017 Flag with the split
/// bit, since the bit is what tells the receiver to join the parts.
pub fn split(packet: &Packet, next_qn: impl FnMut() -> String) -> Result<Vec<Packet>, EncodeError> {
    split_to_fit(packet, MAX_DATA_LEN, next_qn)
}

fn split_to_fit(
    packet: &Packet,
    max_data_len: usize,
    mut next_qn: impl FnMut() -> String,
) -> Result<Vec<Packet>, EncodeError> {
    let whole = data_segment(packet)?;
    if whole.len() <= max_data_len {
        return Ok(vec![packet.clone()]);
    }
    if packet.pnum.is_some() || packet.pno.is_some() {
        return Err(EncodeError::CannotSplit(
            "packet already carries PNUM/PNO".into(),
        ));
    }
    if packet.qn.is_none() {
        return Err(EncodeError::CannotSplit(
            "splitting needs a QN: the receiver acknowledges each part by its QN".into(),
        ));
    }
    let groups = &packet.cp.groups;
    let context_len = leading_context_len(groups);
    let context = &groups[..context_len];
    if context_len == groups.len() {
        return Err(EncodeError::CannotSplit(
            "no factor groups to spread over several packets".into(),
        ));
    }
    let units = units_after(groups, context_len);

    let mut template = packet.clone();
    let mut flag = packet.flag.unwrap_or(PacketFlag::hj212_2017(false));
    flag.split = true;
    template.flag = Some(flag);
    // Measured with the widest PNUM/PNO so every real part fits.
    template.pnum = Some(MAX_PARTS);
    template.pno = Some(MAX_PARTS);
    template.cp.groups = context.to_vec();
    let base_len = data_segment(&template)?.len();

    let mut chunks: Vec<Vec<CpGroup>> = Vec::new();
    let mut current: Vec<CpGroup> = Vec::new();
    let mut current_len = base_len;
    for unit in units {
        let mut text = String::new();
        cp::write_groups(unit, &mut text)?;
        let separator = usize::from(!context.is_empty() || !current.is_empty());
        if current_len + separator + text.len() > max_data_len && !current.is_empty() {
            chunks.push(std::mem::take(&mut current));
            current_len = base_len;
        }
        let separator = usize::from(!context.is_empty() || !current.is_empty());
        if current_len + separator + text.len() > max_data_len {
            return Err(EncodeError::CannotSplit(format!(
                "the group `{}…` alone needs {} bytes with the header, over {max_data_len}",
                text.chars().take(40).collect::<String>(),
                base_len + separator + text.len()
            )));
        }
        current_len += separator + text.len();
        current.extend_from_slice(unit);
    }
    chunks.push(current);

    let total = u32::try_from(chunks.len())
        .ok()
        .filter(|n| *n <= MAX_PARTS)
        .ok_or_else(|| {
            EncodeError::CannotSplit(format!("needs {} packets, over 9999", chunks.len()))
        })?;
    let parts = chunks
        .into_iter()
        .zip(1..)
        .map(|(chunk, number)| {
            let mut part = template.clone();
            if number > 1 {
                part.qn = Some(next_qn());
            }
            part.pnum = Some(total);
            part.pno = Some(number);
            part.cp.groups = context.iter().cloned().chain(chunk).collect();
            part
        })
        .collect();
    Ok(parts)
}

/// Groups before the first factor group: the context every part repeats.
fn leading_context_len(groups: &[CpGroup]) -> usize {
    groups
        .iter()
        .position(|g| matches!(g, CpGroup::Factor(_)))
        .unwrap_or(groups.len())
}

/// The groups after the context, cut before each factor group: the pieces a split may not
/// break apart, so a parameter that follows a factor stays with it.
fn units_after(groups: &[CpGroup], context_len: usize) -> Vec<&[CpGroup]> {
    let body = &groups[context_len..];
    let mut units = Vec::new();
    let mut start = 0;
    for (i, group) in body.iter().enumerate().skip(1) {
        if matches!(group, CpGroup::Factor(_)) {
            units.push(&body[start..i]);
            start = i;
        }
    }
    units.push(&body[start..]);
    units
}

/// Why a split packet could not be taken in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReassemblyError {
    /// Only one of PNUM and PNO is present.
    MissingPartNumbers,
    /// Parts are joined by MN, CN, DataTime and PNUM; without DataTime they cannot be.
    MissingDataTime,
    BadPartNumber {
        pno: u32,
        pnum: u32,
    },
    /// One message announces more parts than the reassembler may hold.
    TooManyParts {
        pnum: u32,
        max: usize,
    },
}

impl fmt::Display for ReassemblyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReassemblyError::MissingPartNumbers => write!(f, "PNUM and PNO must come together"),
            ReassemblyError::MissingDataTime => {
                write!(f, "split packet without DataTime cannot be joined")
            }
            ReassemblyError::BadPartNumber { pno, pnum } => {
                write!(f, "PNO {pno} is outside 1..={pnum}")
            }
            ReassemblyError::TooManyParts { pnum, max } => {
                write!(f, "PNUM {pnum} exceeds the limit of {max} pending parts")
            }
        }
    }
}

impl std::error::Error for ReassemblyError {}

/// What makes parts one message: HJ 212-2017 gives every part its own QN (Table C.50), so the
/// parts of one upload are those of the same logger (MN) and command (CN) for the same
/// DataTime, announcing the same PNUM.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartsKey {
    pub mn: Option<String>,
    pub cn: u16,
    pub data_time: String,
    pub pnum: u32,
}

impl fmt::Display for PartsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MN={} CN={:04} DataTime={} PNUM={}",
            self.mn.as_deref().unwrap_or("-"),
            self.cn,
            self.data_time,
            self.pnum
        )
    }
}

/// A message given up on: its parts did not all arrive within the timeout, or it was pushed
/// out to keep memory bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incomplete {
    pub key: PartsKey,
    /// PNOs that did arrive.
    pub received: Vec<u32>,
}

/// What a pushed packet completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    /// The whole message: an unsplit packet at once, or the joined parts once the last
    /// arrived (part 1's header, every part's groups in PNO order).
    Whole(Packet),
    /// A part held until the others arrive.
    Held,
    /// A part already held, or a part of a message already completed: a resend after a lost
    /// ack, to be acknowledged again and not taken in twice.
    Repeat,
}

struct Pending {
    key: PartsKey,
    first_seen: Instant,
    parts: BTreeMap<u32, Packet>,
}

/// Completed messages remembered so a resent part is recognised, not started afresh.
const REMEMBERED: usize = 32;

/// Joins split packets by [`PartsKey`], in any order, a resent part taken once. Holds at most
/// `max_messages` incomplete messages and `max_parts` parts in total; past either bound, or
/// after `timeout` without completing, a message is dropped and reported by
/// [`Reassembler::take_incomplete`], so a peer that never sends its last part cannot grow
/// memory.
pub struct Reassembler {
    pending: Vec<Pending>,
    completed: Vec<(PartsKey, Instant)>,
    incomplete: Vec<Incomplete>,
    max_messages: usize,
    max_parts: usize,
    timeout: Duration,
    stored_parts: usize,
}

impl Reassembler {
    pub fn new(max_messages: usize, max_parts: usize, timeout: Duration) -> Reassembler {
        Reassembler {
            pending: Vec::new(),
            completed: Vec::new(),
            incomplete: Vec::new(),
            max_messages: max_messages.max(1),
            max_parts: max_parts.max(1),
            timeout,
            stored_parts: 0,
        }
    }

    /// Takes a packet received at `now`.
    pub fn push(&mut self, packet: Packet, now: Instant) -> Result<Pushed, ReassemblyError> {
        self.expire(now);
        let (pnum, pno) = match (packet.pnum, packet.pno) {
            (None, None) => return Ok(Pushed::Whole(packet)),
            (Some(pnum), Some(pno)) => (pnum, pno),
            _ => return Err(ReassemblyError::MissingPartNumbers),
        };
        if pno == 0 || pno > pnum {
            return Err(ReassemblyError::BadPartNumber { pno, pnum });
        }
        if pnum == 1 {
            return Ok(Pushed::Whole(join(packet, std::iter::empty())));
        }
        if pnum as usize > self.max_parts {
            return Err(ReassemblyError::TooManyParts {
                pnum,
                max: self.max_parts,
            });
        }
        let key = PartsKey {
            mn: packet.mn.clone(),
            cn: packet.cn.code(),
            data_time: packet
                .cp
                .data_time()
                .ok_or(ReassemblyError::MissingDataTime)?
                .to_string(),
            pnum,
        };
        if self.completed.iter().any(|(done, _)| *done == key) {
            return Ok(Pushed::Repeat);
        }
        let index = match self.pending.iter().position(|p| p.key == key) {
            Some(index) if self.pending[index].parts.contains_key(&pno) => {
                return Ok(Pushed::Repeat)
            }
            Some(index) => index,
            None => {
                while self.pending.len() >= self.max_messages {
                    self.give_up(0);
                }
                self.pending.push(Pending {
                    key: key.clone(),
                    first_seen: now,
                    parts: BTreeMap::new(),
                });
                self.pending.len() - 1
            }
        };
        // Older messages make room; this one fits alone since pnum <= max_parts.
        let mut index = index;
        while self.stored_parts >= self.max_parts {
            match self.pending.iter().position(|p| p.key != key) {
                Some(oldest) => {
                    self.give_up(oldest);
                    if oldest < index {
                        index -= 1;
                    }
                }
                None => break,
            }
        }
        self.stored_parts += 1;
        self.pending[index].parts.insert(pno, packet);
        if self.pending[index].parts.len() < pnum as usize {
            return Ok(Pushed::Held);
        }
        let done = self.pending.remove(index);
        self.stored_parts -= done.parts.len();
        if self.completed.len() >= REMEMBERED {
            self.completed.remove(0);
        }
        self.completed.push((done.key, now));
        let mut parts = done.parts.into_values();
        Ok(match parts.next() {
            Some(first) => Pushed::Whole(join(first, parts)),
            None => Pushed::Held,
        })
    }

    /// Drops messages that did not complete within the timeout of their first part.
    pub fn expire(&mut self, now: Instant) {
        while let Some(index) = self
            .pending
            .iter()
            .position(|p| now.duration_since(p.first_seen) >= self.timeout)
        {
            self.give_up(index);
        }
        let timeout = self.timeout;
        self.completed
            .retain(|(_, done)| now.duration_since(*done) < timeout);
    }

    /// Messages given up on since the last call.
    pub fn take_incomplete(&mut self) -> Vec<Incomplete> {
        std::mem::take(&mut self.incomplete)
    }

    /// Gives up on every message still waiting for parts (the connection ended).
    pub fn abandon(&mut self) -> Vec<Incomplete> {
        while !self.pending.is_empty() {
            self.give_up(0);
        }
        self.take_incomplete()
    }

    pub fn pending_messages(&self) -> usize {
        self.pending.len()
    }

    fn give_up(&mut self, index: usize) {
        if index < self.pending.len() {
            let old = self.pending.remove(index);
            self.stored_parts -= old.parts.len();
            self.incomplete.push(Incomplete {
                key: old.key,
                received: old.parts.into_keys().collect(),
            });
        }
    }
}

/// Part 1's header and CP, then each later part's groups minus a repeated context, so that
/// parts with their own DataTime keep it.
fn join(first: Packet, rest: impl Iterator<Item = Packet>) -> Packet {
    let mut whole = first;
    let context_len = leading_context_len(&whole.cp.groups);
    let context: Vec<CpGroup> = whole.cp.groups[..context_len].to_vec();
    for part in rest {
        let own_context = leading_context_len(&part.cp.groups);
        let skip = if part.cp.groups[..own_context] == context[..] {
            own_context
        } else {
            0
        };
        whole
            .cp
            .groups
            .extend(part.cp.groups.into_iter().skip(skip));
    }
    whole.pnum = None;
    whole.pno = None;
    if let Some(flag) = &mut whole.flag {
        flag.split = false;
    }
    whole
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Flag;
    use crate::protocol::hj212::{
        decode, encode, CommandCode, CommandParams, Factor, FieldKind, SystemCode,
    };

    fn minute_packet(factors: usize) -> Packet {
        let mut packet = Packet::new(
            SystemCode::AirPollutionSource,
            CommandCode::MinuteData,
            "010000A8900016F000169DC0",
        );
        packet.qn = Some("20260101120000123".into());
        packet.pw = Some("123456".into());
        packet.flag = Some(PacketFlag::hj212_2017(true));
        let mut cp = CommandParams::new().with_data_time("20260101120000");
        for i in 0..factors {
            cp = cp.with_factor(
                Factor::new(format!("a{:05}", i))
                    .with(FieldKind::Avg, "12.345")
                    .with(FieldKind::Min, "10.000")
                    .with(FieldKind::Max, "14.000")
                    .with_flag(Flag::N),
            );
        }
        packet.cp = cp;
        packet
    }

    fn qns() -> impl FnMut() -> String {
        let mut n = 123;
        move || {
            n += 1;
            format!("20260101120000{n:03}")
        }
    }

    fn part(pnum: u32, pno: u32, qn: &str) -> Packet {
        let mut part = minute_packet(1);
        part.qn = Some(qn.into());
        part.flag = Some(PacketFlag::from_bits(7));
        part.pnum = Some(pnum);
        part.pno = Some(pno);
        part.cp.groups[1] = CpGroup::Factor(
            Factor::new(format!("a{pno:05}")).with(FieldKind::Avg, pno.to_string()),
        );
        part
    }

    #[test]
    fn small_packet_is_not_split() {
        let packet = minute_packet(3);
        assert_eq!(split(&packet, qns()), Ok(vec![packet]));
    }

    #[test]
    fn parts_fit_carry_their_own_qn_and_data_time_and_rejoin() {
        // One factor group "a00000-Avg=12.345,a00000-Min=10.000,a00000-Max=14.000,a00000-Flag=N"
        // is 68 bytes; 40 of them (+ separators) are ~2.8 kB, so three or more parts.
        let packet = minute_packet(40);
        let parts = split(&packet, qns()).expect("splittable");
        assert!(parts.len() >= 3, "{} parts", parts.len());
        let mut reassembler = Reassembler::new(4, 100, Duration::from_secs(60));
        let mut joined = None;
        let now = Instant::now();
        for (i, part) in parts.iter().enumerate() {
            let wire = encode(part).expect("each part fits 1024 bytes");
            let len: usize = String::from_utf8_lossy(&wire[2..6])
                .parse()
                .expect("digits");
            assert!(len <= MAX_DATA_LEN);
            let back = decode(&wire).expect("part decodes");
            // Table C.50: part 1 keeps the upload's QN, each later part has the next one.
            let qn = format!("20260101120000{:03}", 123 + i);
            assert_eq!(back.qn.as_deref(), Some(qn.as_str()));
            assert_eq!(back.pnum, Some(parts.len() as u32));
            assert_eq!(back.pno, Some(i as u32 + 1));
            assert!(back.flag.is_some_and(|f| f.split && f.ack_required));
            assert_eq!(back.cp.data_time(), Some("20260101120000"));
            if let Pushed::Whole(whole) = reassembler.push(back, now).expect("valid part") {
                joined = Some(whole);
            }
        }
        assert_eq!(joined, Some(packet));
        assert_eq!(reassembler.pending_messages(), 0);
    }

    #[test]
    fn parts_in_any_order_and_resent_are_joined_once() {
        let mut reassembler = Reassembler::new(4, 100, Duration::from_secs(60));
        let now = Instant::now();
        assert_eq!(
            reassembler.push(part(3, 3, "20260101120000003"), now),
            Ok(Pushed::Held)
        );
        assert_eq!(
            reassembler.push(part(3, 1, "20260101120000001"), now),
            Ok(Pushed::Held)
        );
        assert_eq!(
            reassembler.push(part(3, 3, "20260101120000003"), now),
            Ok(Pushed::Repeat),
            "a resent part is held once"
        );
        let Ok(Pushed::Whole(whole)) = reassembler.push(part(3, 2, "20260101120000002"), now)
        else {
            panic!("the third distinct part completes the message");
        };
        let codes: Vec<&str> = whole.cp.factors().map(|f| f.code.as_str()).collect();
        assert_eq!(codes, vec!["a00001", "a00002", "a00003"], "in PNO order");
        assert_eq!(
            whole.qn.as_deref(),
            Some("20260101120000001"),
            "part 1's header"
        );
        assert_eq!((whole.pnum, whole.pno), (None, None));
        assert_eq!(
            reassembler.push(part(3, 2, "20260101120000002"), now),
            Ok(Pushed::Repeat),
            "a part resent after its message completed is not a new message"
        );
        assert_eq!(reassembler.pending_messages(), 0);
    }

    #[test]
    fn split_refuses_what_cannot_be_acknowledged() {
        let mut packet = minute_packet(40);
        packet.qn = None;
        assert!(matches!(
            split(&packet, qns()),
            Err(EncodeError::CannotSplit(_))
        ));
        let mut packet = minute_packet(1);
        packet.cp.groups.push(CpGroup::Factor(
            Factor::new("a21026").with(FieldKind::Rtd, "1".repeat(1100)),
        ));
        assert!(matches!(
            split(&packet, qns()),
            Err(EncodeError::CannotSplit(_))
        ));
    }

    #[test]
    fn incomplete_messages_time_out_and_are_reported() {
        let mut reassembler = Reassembler::new(4, 100, Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(
            reassembler.push(part(2, 1, "20260101120000001"), t0),
            Ok(Pushed::Held)
        );
        reassembler.expire(t0 + Duration::from_secs(59));
        assert_eq!(reassembler.take_incomplete(), vec![]);
        reassembler.expire(t0 + Duration::from_secs(60));
        let dropped = reassembler.take_incomplete();
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0].received, vec![1]);
        assert_eq!(
            dropped[0].key.to_string(),
            "MN=010000A8900016F000169DC0 CN=2051 DataTime=20260101120000 PNUM=2"
        );
        // Part 2 alone now starts a message of its own, which the end of the connection
        // abandons.
        assert_eq!(
            reassembler.push(
                part(2, 2, "20260101120000002"),
                t0 + Duration::from_secs(61)
            ),
            Ok(Pushed::Held)
        );
        assert_eq!(reassembler.abandon().len(), 1);
    }

    #[test]
    fn pending_state_is_bounded() {
        let mut reassembler = Reassembler::new(2, 100, Duration::from_secs(60));
        let now = Instant::now();
        for minute in ["20260101120000", "20260101120100", "20260101120200"] {
            let mut first = part(3, 1, "20260101120000001");
            first.cp.groups[0] = CpGroup::DataTime(minute.into());
            assert_eq!(reassembler.push(first, now), Ok(Pushed::Held));
        }
        assert_eq!(reassembler.pending_messages(), 2);
        assert_eq!(reassembler.take_incomplete().len(), 1);
        assert_eq!(
            reassembler.push(part(500, 1, "20260101120000001"), now),
            Err(ReassemblyError::TooManyParts {
                pnum: 500,
                max: 100
            })
        );
    }

    #[test]
    fn part_errors() {
        let mut reassembler = Reassembler::new(2, 100, Duration::from_secs(60));
        let now = Instant::now();
        let mut bad = part(2, 1, "1");
        bad.pno = None;
        assert_eq!(
            reassembler.push(bad, now),
            Err(ReassemblyError::MissingPartNumbers)
        );
        assert_eq!(
            reassembler.push(part(2, 3, "1"), now),
            Err(ReassemblyError::BadPartNumber { pno: 3, pnum: 2 })
        );
        let mut no_time = part(2, 1, "1");
        no_time.cp.groups.remove(0);
        assert_eq!(
            reassembler.push(no_time, now),
            Err(ReassemblyError::MissingDataTime)
        );
    }
}
