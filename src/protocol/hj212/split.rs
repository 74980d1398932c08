//! Messages over 1024 bytes travel as several packets sharing one QN, numbered by PNUM/PNO with
//! the split bit set in Flag. Each packet repeats the leading context (DataTime and other
//! parameters before the first factor group) and carries a run of whole factor groups, so every
//! packet stays meaningful on its own.

use std::collections::BTreeMap;
use std::fmt;

use super::cp::{self, CpGroup};
use super::error::EncodeError;
use super::packet::{data_segment, Packet, PacketFlag, MAX_PARTS};
use super::MAX_DATA_LEN;

/// The packets to send for `packet`: itself when it fits, else PNUM parts.
/// A packet without Flag gets a 2017 Flag with the split bit, since the bit is what tells the
/// receiver to join the parts.
pub fn split(packet: &Packet) -> Result<Vec<Packet>, EncodeError> {
    split_to_fit(packet, MAX_DATA_LEN)
}

fn split_to_fit(packet: &Packet, max_data_len: usize) -> Result<Vec<Packet>, EncodeError> {
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
            "splitting needs a QN: the receiver joins the parts by it".into(),
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
    /// Parts are joined by QN; without it they cannot be.
    MissingQn,
    BadPartNumber {
        pno: u32,
        pnum: u32,
    },
    /// A later part announces a different total than the earlier ones.
    PartCountChanged {
        was: u32,
        now: u32,
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
            ReassemblyError::MissingQn => write!(f, "split packet without QN cannot be joined"),
            ReassemblyError::BadPartNumber { pno, pnum } => {
                write!(f, "PNO {pno} is outside 1..={pnum}")
            }
            ReassemblyError::PartCountChanged { was, now } => {
                write!(f, "PNUM changed from {was} to {now} within one QN")
            }
            ReassemblyError::TooManyParts { pnum, max } => {
                write!(f, "PNUM {pnum} exceeds the limit of {max} pending parts")
            }
        }
    }
}

impl std::error::Error for ReassemblyError {}

struct Pending {
    mn: Option<String>,
    qn: String,
    pnum: u32,
    parts: BTreeMap<u32, Packet>,
}

/// Joins split packets by (MN, QN). Holds at most `max_messages` incomplete messages and
/// `max_parts` parts in total; past either bound the oldest incomplete message is dropped and
/// counted, so a peer that never sends its last part cannot grow memory.
pub struct Reassembler {
    pending: Vec<Pending>,
    max_messages: usize,
    max_parts: usize,
    stored_parts: usize,
    evicted: u64,
}

impl Reassembler {
    pub fn new(max_messages: usize, max_parts: usize) -> Reassembler {
        Reassembler {
            pending: Vec::new(),
            max_messages: max_messages.max(1),
            max_parts: max_parts.max(1),
            stored_parts: 0,
            evicted: 0,
        }
    }

    /// Takes a packet; returns the whole message once every part has arrived (at once for an
    /// unsplit packet). A part received twice replaces the earlier copy.
    pub fn push(&mut self, packet: Packet) -> Result<Option<Packet>, ReassemblyError> {
        let (pnum, pno) = match (packet.pnum, packet.pno) {
            (None, None) => return Ok(Some(packet)),
            (Some(pnum), Some(pno)) => (pnum, pno),
            _ => return Err(ReassemblyError::MissingPartNumbers),
        };
        let qn = packet.qn.clone().ok_or(ReassemblyError::MissingQn)?;
        if pno == 0 || pno > pnum {
            return Err(ReassemblyError::BadPartNumber { pno, pnum });
        }
        if pnum == 1 {
            return Ok(Some(join(packet, std::iter::empty())));
        }
        if pnum as usize > self.max_parts {
            return Err(ReassemblyError::TooManyParts {
                pnum,
                max: self.max_parts,
            });
        }
        let mn = packet.mn.clone();
        let is_same = |p: &Pending| p.qn == qn && p.mn == mn;
        match self.pending.iter().find(|p| is_same(p)) {
            Some(existing) if existing.pnum != pnum => {
                return Err(ReassemblyError::PartCountChanged {
                    was: existing.pnum,
                    now: pnum,
                });
            }
            Some(_) => {}
            None => {
                while self.pending.len() >= self.max_messages {
                    self.evict(0);
                }
                self.pending.push(Pending {
                    mn: mn.clone(),
                    qn: qn.clone(),
                    pnum,
                    parts: BTreeMap::new(),
                });
            }
        }
        let is_new_part = !self
            .pending
            .iter()
            .any(|p| is_same(p) && p.parts.contains_key(&pno));
        if is_new_part {
            // Older messages make room; this one fits alone since pnum <= max_parts.
            while self.stored_parts >= self.max_parts {
                match self.pending.iter().position(|p| !is_same(p)) {
                    Some(oldest) => self.evict(oldest),
                    None => break,
                }
            }
            self.stored_parts += 1;
        }
        let Some(index) = self.pending.iter().position(is_same) else {
            return Ok(None);
        };
        self.pending[index].parts.insert(pno, packet);
        if self.pending[index].parts.len() < pnum as usize {
            return Ok(None);
        }
        let done = self.pending.remove(index);
        self.stored_parts -= done.parts.len();
        let mut parts = done.parts.into_values();
        Ok(parts.next().map(|first| join(first, parts)))
    }

    pub fn pending_messages(&self) -> usize {
        self.pending.len()
    }

    /// Incomplete messages dropped to stay within bounds since creation.
    pub fn evicted_messages(&self) -> u64 {
        self.evicted
    }

    fn evict(&mut self, index: usize) {
        if index < self.pending.len() {
            let old = self.pending.remove(index);
            self.stored_parts -= old.parts.len();
            self.evicted += 1;
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

    #[test]
    fn small_packet_is_not_split() {
        let packet = minute_packet(3);
        assert_eq!(split(&packet), Ok(vec![packet]));
    }

    #[test]
    fn parts_fit_carry_data_time_and_rejoin() {
        // One factor group "a00000-Avg=12.345,a00000-Min=10.000,a00000-Max=14.000,a00000-Flag=N"
        // is 68 bytes; 40 of them (+ separators) are ~2.8 kB, so three or more parts.
        let packet = minute_packet(40);
        let parts = split(&packet).expect("splittable");
        assert!(parts.len() >= 3, "{} parts", parts.len());
        let mut reassembler = Reassembler::new(4, 100);
        let mut joined = None;
        for (i, part) in parts.iter().enumerate() {
            let wire = encode(part).expect("each part fits 1024 bytes");
            let len: usize = String::from_utf8_lossy(&wire[2..6])
                .parse()
                .expect("digits");
            assert!(len <= MAX_DATA_LEN);
            let back = decode(&wire).expect("part decodes");
            assert_eq!(back.pnum, Some(parts.len() as u32));
            assert_eq!(back.pno, Some(i as u32 + 1));
            assert!(back.flag.is_some_and(|f| f.split && f.ack_required));
            assert_eq!(back.cp.data_time(), Some("20260101120000"));
            joined = reassembler.push(back).expect("valid part");
        }
        assert_eq!(joined, Some(packet));
        assert_eq!(reassembler.pending_messages(), 0);
    }

    #[test]
    fn split_refuses_what_cannot_be_joined() {
        let mut packet = minute_packet(40);
        packet.qn = None;
        assert!(matches!(split(&packet), Err(EncodeError::CannotSplit(_))));
        let mut packet = minute_packet(1);
        packet.cp.groups.push(CpGroup::Factor(
            Factor::new("a21026").with(FieldKind::Rtd, "1".repeat(1100)),
        ));
        assert!(matches!(split(&packet), Err(EncodeError::CannotSplit(_))));
    }

    #[test]
    fn parts_with_their_own_data_time_keep_it() {
        let mut first = minute_packet(1);
        first.flag = Some(PacketFlag::from_bits(7));
        first.pnum = Some(2);
        first.pno = Some(1);
        let mut second = first.clone();
        second.pno = Some(2);
        second.cp = CommandParams::new()
            .with_data_time("20260101120100")
            .with_factor(Factor::new("a21026").with(FieldKind::Avg, "1"));
        let mut reassembler = Reassembler::new(4, 100);
        assert_eq!(reassembler.push(first), Ok(None));
        let whole = reassembler.push(second).expect("valid").expect("complete");
        let times: Vec<_> = whole
            .cp
            .groups
            .iter()
            .filter_map(|g| match g {
                CpGroup::DataTime(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(times, vec!["20260101120000", "20260101120100"]);
    }

    #[test]
    fn pending_state_is_bounded() {
        let mut reassembler = Reassembler::new(2, 100);
        for qn in [
            "20260101120000001",
            "20260101120000002",
            "20260101120000003",
        ] {
            let mut part = minute_packet(1);
            part.qn = Some(qn.into());
            part.flag = Some(PacketFlag::from_bits(7));
            part.pnum = Some(3);
            part.pno = Some(1);
            assert_eq!(reassembler.push(part), Ok(None));
        }
        assert_eq!(reassembler.pending_messages(), 2);
        assert_eq!(reassembler.evicted_messages(), 1);

        let mut part = minute_packet(1);
        part.flag = Some(PacketFlag::from_bits(7));
        part.pnum = Some(500);
        part.pno = Some(1);
        assert_eq!(
            reassembler.push(part),
            Err(ReassemblyError::TooManyParts {
                pnum: 500,
                max: 100
            })
        );
    }

    #[test]
    fn part_errors() {
        let mut reassembler = Reassembler::new(2, 100);
        let mut part = minute_packet(1);
        part.pnum = Some(2);
        assert_eq!(
            reassembler.push(part.clone()),
            Err(ReassemblyError::MissingPartNumbers)
        );
        part.pno = Some(3);
        assert_eq!(
            reassembler.push(part.clone()),
            Err(ReassemblyError::BadPartNumber { pno: 3, pnum: 2 })
        );
        part.pno = Some(1);
        assert_eq!(reassembler.push(part.clone()), Ok(None));
        part.pnum = Some(4);
        part.pno = Some(2);
        assert_eq!(
            reassembler.push(part.clone()),
            Err(ReassemblyError::PartCountChanged { was: 2, now: 4 })
        );
        part.qn = None;
        assert_eq!(reassembler.push(part), Err(ReassemblyError::MissingQn));
    }
}
