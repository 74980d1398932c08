//! Poll planning: the fewest reads that cover every channel and status entry of a profile.
//! Fewer reads mean shorter poll cycles on a shared RS-485 bus, where every transaction
//! costs a turnaround of tens of milliseconds whatever its length.

use tokio_modbus::{Request, Response};

use super::decode::StatusData;
use crate::config::profile::{Profile, RegisterTable, StatusTable};

/// Modbus limit for one read of holding or input registers.
pub use crate::config::profile::MAX_REGISTERS_PER_READ;
/// Modbus limit for one read of coils or discrete inputs.
pub const MAX_BITS_PER_READ: u16 = 2000;
/// A register costs as many reply bytes as 16 coils, so a hole of n registers is worth 16·n bits.
const BITS_PER_REGISTER: u32 = 16;

/// Which table a read goes to, i.e. which function code it uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlockTable {
    Holding,
    Input,
    Coils,
    DiscreteInputs,
}

impl BlockTable {
    pub fn is_bits(self) -> bool {
        matches!(self, BlockTable::Coils | BlockTable::DiscreteInputs)
    }

    fn max_per_read(self) -> u16 {
        if self.is_bits() {
            MAX_BITS_PER_READ
        } else {
            MAX_REGISTERS_PER_READ
        }
    }
}

impl From<RegisterTable> for BlockTable {
    fn from(table: RegisterTable) -> Self {
        match table {
            RegisterTable::Holding => BlockTable::Holding,
            RegisterTable::Input => BlockTable::Input,
        }
    }
}

impl From<StatusTable> for BlockTable {
    fn from(table: StatusTable) -> Self {
        match table {
            StatusTable::Holding => BlockTable::Holding,
            StatusTable::Input => BlockTable::Input,
            StatusTable::Coil => BlockTable::Coils,
            StatusTable::DiscreteInput => BlockTable::DiscreteInputs,
        }
    }
}

/// One read request: `count` registers or bits from PDU address `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadBlock {
    pub table: BlockTable,
    pub start: u16,
    pub count: u16,
}

impl ReadBlock {
    pub fn request(&self) -> Request<'static> {
        match self.table {
            BlockTable::Holding => Request::ReadHoldingRegisters(self.start, self.count),
            BlockTable::Input => Request::ReadInputRegisters(self.start, self.count),
            BlockTable::Coils => Request::ReadCoils(self.start, self.count),
            BlockTable::DiscreteInputs => Request::ReadDiscreteInputs(self.start, self.count),
        }
    }

    /// The data in a device's reply to [`Self::request`]. A reply of another kind or with too
    /// few values is `Missing`: a misbehaving device must not shift values between channels.
    /// Bit replies come padded to whole bytes; the padding is dropped.
    pub fn data_from(&self, response: Response) -> BlockData {
        let count = usize::from(self.count);
        match (self.table, response) {
            (BlockTable::Holding, Response::ReadHoldingRegisters(words))
            | (BlockTable::Input, Response::ReadInputRegisters(words))
                if words.len() == count =>
            {
                BlockData::Registers(words)
            }
            (BlockTable::Coils, Response::ReadCoils(mut bits))
            | (BlockTable::DiscreteInputs, Response::ReadDiscreteInputs(mut bits))
                if bits.len() >= count =>
            {
                bits.truncate(count);
                BlockData::Bits(bits)
            }
            _ => BlockData::Missing,
        }
    }
}

/// What one read returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockData {
    Registers(Vec<u16>),
    Bits(Vec<bool>),
    /// The read failed (timeout, exception, malformed reply).
    Missing,
}

/// Limits on the reads a plan may use. The profile's own limits always apply as well:
/// options can only tighten what the device accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanOptions {
    /// Largest register read; capped at 125 and at the profile's `max_registers_per_request`.
    pub max_registers: u16,
    /// Unused registers a read may span to join two values into one request.
    pub max_hole: u16,
    pub one_value_per_request: bool,
}

impl PlanOptions {
    /// Reading ten unused registers (20 bytes) costs far less than a second round trip.
    pub const DEFAULT_MAX_HOLE: u16 = 10;

    pub fn for_profile(profile: &Profile) -> PlanOptions {
        PlanOptions {
            max_registers: profile.max_registers_per_request,
            max_hole: Self::DEFAULT_MAX_HOLE,
            one_value_per_request: profile.one_value_per_request,
        }
    }
}

/// Where one channel's or status entry's values sit in the plan's results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    block: usize,
    offset: usize,
    len: usize,
}

/// The reads that cover a profile, and where each channel and status entry sits in them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollPlan {
    pub blocks: Vec<ReadBlock>,
    /// Indexed like `Profile::channels`.
    channels: Vec<Slot>,
    /// Indexed like `Profile::status`.
    status: Vec<Slot>,
}

impl PollPlan {
    /// The registers of channel `channel_index`, given one result per block in `blocks` order;
    /// `None` when that read failed or returned the wrong kind or length.
    pub fn channel_words<'a>(
        &self,
        channel_index: usize,
        results: &'a [BlockData],
    ) -> Option<&'a [u16]> {
        let slot = self.channels.get(channel_index)?;
        match results.get(slot.block)? {
            BlockData::Registers(words) => words.get(slot.offset..slot.offset + slot.len),
            BlockData::Bits(_) | BlockData::Missing => None,
        }
    }

    /// Which read carries channel `channel_index`, so its value can be stamped with the time
    /// that read completed.
    pub fn block_of_channel(&self, channel_index: usize) -> Option<usize> {
        self.channels.get(channel_index).map(|slot| slot.block)
    }

    /// The status word or bit of every status entry, given one result per block.
    pub fn status_data(&self, results: &[BlockData]) -> StatusData {
        StatusData(
            self.status
                .iter()
                .map(|slot| match results.get(slot.block)? {
                    BlockData::Registers(words) => words.get(slot.offset).copied(),
                    BlockData::Bits(bits) => bits.get(slot.offset).map(|&b| u16::from(b)),
                    BlockData::Missing => None,
                })
                .collect(),
        )
    }
}

/// Registers or bits `[start, end)` of one table that some channel or status entry needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Span {
    table: BlockTable,
    start: u32,
    end: u32,
}

/// Who needs a span: channel or status entry, by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Owner {
    Channel(usize),
    Status(usize),
}

/// The fewest reads that cover every value of `profile`, where a read holds at most the
/// table's limit, joins values only across holes of at most `max_hole` unused registers
/// (16 bits per register in bit tables), and, for one-value devices, carries one value.
///
/// Values sorted by address are taken greedily: a read grows while the next value fits;
/// no plan under the same limits has fewer reads. A value longer than the register limit
/// (an f64 on a device that takes two registers at a time) gets a read of its own length,
/// since splitting it would tear the value between two moments.
pub fn plan(profile: &Profile, options: &PlanOptions) -> PollPlan {
    let one_value = options.one_value_per_request || profile.one_value_per_request;
    let register_limit = options
        .max_registers
        .min(profile.max_registers_per_request)
        .clamp(1, MAX_REGISTERS_PER_READ);
    let limit = |table: BlockTable| {
        u32::from(if table.is_bits() {
            table.max_per_read()
        } else {
            register_limit
        })
    };
    let hole = |table: BlockTable| {
        let registers = u32::from(options.max_hole);
        if table.is_bits() {
            registers * BITS_PER_REGISTER
        } else {
            registers
        }
    };

    let mut spans: Vec<(Span, Owner)> = profile
        .channels
        .iter()
        .enumerate()
        .map(|(i, ch)| {
            let start = u32::from(profile.pdu_address(ch.address));
            let span = Span {
                table: ch.table.into(),
                start,
                end: start + u32::from(ch.data_type.registers()),
            };
            (span, Owner::Channel(i))
        })
        .chain(profile.status.iter().enumerate().map(|(i, st)| {
            let start = u32::from(profile.pdu_address(st.address));
            let span = Span {
                table: st.table.into(),
                start,
                end: start + 1,
            };
            (span, Owner::Status(i))
        }))
        .collect();
    spans.sort();

    let mut reads: Vec<Span> = Vec::new();
    let mut channels = vec![None; profile.channels.len()];
    let mut status = vec![None; profile.status.len()];
    for (span, owner) in spans {
        let joins = reads.last().is_some_and(|read| {
            read.table == span.table
                && if one_value {
                    read.start == span.start && read.end == span.end
                } else {
                    span.start.saturating_sub(read.end) <= hole(span.table)
                        && span.end.max(read.end) - read.start <= limit(span.table)
                }
        });
        match reads.last_mut() {
            Some(read) if joins => read.end = read.end.max(span.end),
            _ => reads.push(span),
        }
        let block = reads.len() - 1;
        let slot = Some(Slot {
            block,
            offset: (span.start - reads[block].start) as usize,
            len: (span.end - span.start) as usize,
        });
        match owner {
            Owner::Channel(i) => channels[i] = slot,
            Owner::Status(i) => status[i] = slot,
        }
    }

    PollPlan {
        // Profile validation keeps every span inside 0..=0xFFFF, so these fit in u16.
        blocks: reads
            .iter()
            .map(|read| ReadBlock {
                table: read.table,
                start: read.start as u16,
                count: (read.end - read.start) as u16,
            })
            .collect(),
        channels: channels.into_iter().flatten().collect(),
        status: status.into_iter().flatten().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::profile::{Channel, DataType, StatusBit, WordOrder};
    use crate::model::{Basis, Flag, Quantity, Unit};
    use proptest::prelude::*;

    fn channel(name: &str, table: RegisterTable, address: u32, ty: DataType) -> Channel {
        Channel {
            name: name.into(),
            quantity: Quantity::SO2,
            unit: Unit::Ppm,
            basis: Basis::Dry,
            table,
            address,
            data_type: ty,
            word_order: None,
            scale: 1.0,
            offset: 0.0,
            raw_range: None,
            span: None,
            range: None,
            description: None,
        }
    }

    fn status(table: StatusTable, address: u32, bit: Option<u8>, flag: Flag) -> StatusBit {
        StatusBit {
            table,
            address,
            bit,
            equals: None,
            active: true,
            flag,
            description: None,
        }
    }

    fn profile(channels: Vec<Channel>, status: Vec<StatusBit>) -> Profile {
        Profile {
            name: "t".into(),
            vendor: "T".into(),
            model: "T".into(),
            description: None,
            source: "unit test".into(),
            verified: false,
            address_base: 0,
            word_order: WordOrder::ABCD,
            max_registers_per_request: 125,
            one_value_per_request: false,
            channels,
            status,
        }
    }

    fn f32s(table: RegisterTable, addresses: impl IntoIterator<Item = u32>) -> Vec<Channel> {
        addresses
            .into_iter()
            .map(|a| channel(&format!("c{a}"), table, a, DataType::F32))
            .collect()
    }

    fn block(table: BlockTable, start: u16, count: u16) -> ReadBlock {
        ReadBlock {
            table,
            start,
            count,
        }
    }

    fn defaults(p: &Profile) -> PollPlan {
        plan(p, &PlanOptions::for_profile(p))
    }

    #[test]
    fn contiguous_floats_take_one_read() {
        // 聚光 CEMS-2000D NOx unit: NOx@0, NO@2, NO2@4 → registers 0..6
        let p = profile(f32s(RegisterTable::Holding, [0, 2, 4]), vec![]);
        assert_eq!(defaults(&p).blocks, [block(BlockTable::Holding, 0, 6)]);
    }

    #[test]
    fn clusters_farther_apart_than_the_hole_take_two_reads() {
        // 0..4 and 104..108: the hole of 100 registers exceeds 10
        let p = profile(f32s(RegisterTable::Input, [0, 2, 104, 106]), vec![]);
        assert_eq!(
            defaults(&p).blocks,
            [
                block(BlockTable::Input, 0, 4),
                block(BlockTable::Input, 104, 4)
            ]
        );
        // a hole of exactly 10 (4..14) is read through: 0..18 in one read
        let p = profile(f32s(RegisterTable::Input, [0, 2, 14, 16]), vec![]);
        assert_eq!(defaults(&p).blocks, [block(BlockTable::Input, 0, 18)]);
    }

    #[test]
    fn registers_beyond_125_split_without_tearing_a_value() {
        // 65 floats = 130 registers at 0, 2, ..., 128. 62 floats fill 0..124; the 63rd
        // (124..126) would make 126 registers, so the second read is 124..130.
        let p = profile(f32s(RegisterTable::Holding, (0..65).map(|i| i * 2)), vec![]);
        assert_eq!(
            defaults(&p).blocks,
            [
                block(BlockTable::Holding, 0, 124),
                block(BlockTable::Holding, 124, 6)
            ]
        );
    }

    #[test]
    fn device_limit_caps_the_options() {
        let mut p = profile(f32s(RegisterTable::Holding, [0, 2, 4]), vec![]);
        p.max_registers_per_request = 4;
        let options = PlanOptions {
            max_registers: 125,
            ..PlanOptions::for_profile(&p)
        };
        assert_eq!(
            plan(&p, &options).blocks,
            [
                block(BlockTable::Holding, 0, 4),
                block(BlockTable::Holding, 4, 2)
            ]
        );
    }

    #[test]
    fn one_value_per_request_reads_each_channel_alone() {
        let p = profile(f32s(RegisterTable::Holding, [0, 2, 4]), vec![]);
        let options = PlanOptions {
            one_value_per_request: true,
            ..PlanOptions::for_profile(&p)
        };
        assert_eq!(
            plan(&p, &options).blocks,
            [
                block(BlockTable::Holding, 0, 2),
                block(BlockTable::Holding, 2, 2),
                block(BlockTable::Holding, 4, 2)
            ]
        );
    }

    #[test]
    fn status_inputs_get_their_own_read_kind() {
        // SICK MCS100FT: values FC04 from 138, status discrete inputs 4000, 4003, 4006, 4487.
        let channels = f32s(RegisterTable::Input, [138, 142]);
        let st = vec![
            status(StatusTable::DiscreteInput, 4000, None, Flag::D),
            status(StatusTable::DiscreteInput, 4006, None, Flag::C),
            status(StatusTable::DiscreteInput, 4487, None, Flag::M),
        ];
        let p = profile(channels, st);
        // 4006..4487 is a hole of 480 bits, more than 10 registers' worth (160 bits)
        assert_eq!(
            defaults(&p).blocks,
            [
                block(BlockTable::Input, 138, 6),
                block(BlockTable::DiscreteInputs, 4000, 7),
                block(BlockTable::DiscreteInputs, 4487, 1)
            ]
        );
    }

    #[test]
    fn status_bits_of_one_register_share_the_value_read() {
        // 雪迪龙 SCS-900 PLC: values at 4000.., status word at 3995 with bits 1, 2, 3.
        let channels = (0..9)
            .map(|i| {
                channel(
                    &format!("c{i}"),
                    RegisterTable::Holding,
                    4000 + i,
                    DataType::I16,
                )
            })
            .collect();
        let st = [(1, Flag::D), (2, Flag::C), (3, Flag::M)]
            .into_iter()
            .map(|(bit, flag)| status(StatusTable::Holding, 3995, Some(bit), flag))
            .collect();
        let p = profile(channels, st);
        let plan = defaults(&p);
        assert_eq!(plan.blocks, [block(BlockTable::Holding, 3995, 14)]);

        // the reply: status word 0b0100 (calibration), then values 100..109
        let mut words = vec![0b0100, 0, 0, 0, 0];
        words.extend(100..109);
        let results = [BlockData::Registers(words)];
        assert_eq!(plan.channel_words(0, &results), Some(&[100u16][..]));
        assert_eq!(plan.channel_words(8, &results), Some(&[108u16][..]));
        assert_eq!(plan.channel_words(9, &results), None);
        assert_eq!(
            plan.status_data(&results),
            StatusData(vec![Some(4), Some(4), Some(4)])
        );
    }

    #[test]
    fn results_map_back_to_channels_and_status() {
        let channels = vec![
            channel("so2", RegisterTable::Holding, 0, DataType::F32),
            channel("o2", RegisterTable::Input, 10, DataType::U16),
        ];
        let st = vec![status(StatusTable::Coil, 3, None, Flag::M)];
        let p = profile(channels, st);
        let plan = defaults(&p);
        assert_eq!(
            plan.blocks,
            [
                block(BlockTable::Holding, 0, 2),
                block(BlockTable::Input, 10, 1),
                block(BlockTable::Coils, 3, 1)
            ]
        );
        let results = [
            BlockData::Registers(vec![0x3F80, 0x0000]),
            BlockData::Missing,
            BlockData::Bits(vec![true]),
        ];
        assert_eq!(plan.channel_words(0, &results), Some(&[0x3F80, 0x0000][..]));
        assert_eq!(plan.channel_words(1, &results), None);
        assert_eq!(plan.status_data(&results), StatusData(vec![Some(1)]));
        // fewer results than blocks: the missing ones read as failed
        assert_eq!(plan.status_data(&results[..1]), StatusData(vec![None]));
    }

    #[test]
    fn replies_of_the_wrong_kind_or_length_are_missing() {
        let holding = block(BlockTable::Holding, 0, 2);
        assert_eq!(
            holding.data_from(Response::ReadHoldingRegisters(vec![1, 2])),
            BlockData::Registers(vec![1, 2])
        );
        assert_eq!(
            holding.data_from(Response::ReadHoldingRegisters(vec![1])),
            BlockData::Missing
        );
        assert_eq!(
            holding.data_from(Response::ReadInputRegisters(vec![1, 2])),
            BlockData::Missing
        );
        // 3 coils arrive padded to a byte
        let coils = block(BlockTable::Coils, 0, 3);
        assert_eq!(
            coils.data_from(Response::ReadCoils(vec![
                true, false, true, false, false, false, false, false
            ])),
            BlockData::Bits(vec![true, false, true])
        );
        assert_eq!(coils.request(), Request::ReadCoils(0, 3));
    }

    #[test]
    fn address_base_one_reads_pdu_addresses() {
        // 43i: "registers numbered 1–16 are addressed as 0–15"
        let mut p = profile(f32s(RegisterTable::Holding, [1]), vec![]);
        p.address_base = 1;
        assert_eq!(defaults(&p).blocks, [block(BlockTable::Holding, 0, 2)]);
    }

    /// Smallest number of reads by breadth-first search over every possible read: any start,
    /// any length up to `limit`, valid when no run of unused registers between two used ones
    /// inside it exceeds `hole`; a read covers the values that lie wholly inside it.
    fn fewest_reads_by_search(spans: &[(u32, u32)], limit: u32, hole: u32) -> usize {
        let top = spans.iter().map(|s| s.1).max().unwrap_or(0);
        let used = |r: u32| spans.iter().any(|&(s, e)| s <= r && r < e);
        let mut covers: Vec<u32> = Vec::new();
        for start in 0..top {
            for end in start + 1..=(start + limit).min(top) {
                let used_at: Vec<u32> = (start..end).filter(|&r| used(r)).collect();
                if used_at.windows(2).any(|w| w[1] - w[0] - 1 > hole) {
                    continue;
                }
                let mask = spans
                    .iter()
                    .enumerate()
                    .filter(|(_, &(s, e))| start <= s && e <= end)
                    .fold(0u32, |m, (i, _)| m | 1 << i);
                if mask != 0 && !covers.contains(&mask) {
                    covers.push(mask);
                }
            }
        }
        let full = (1u32 << spans.len()) - 1;
        let mut seen = vec![false; 1 << spans.len()];
        let mut frontier = vec![0u32];
        seen[0] = true;
        for reads in 0.. {
            if frontier.contains(&full) {
                return reads;
            }
            let mut next = Vec::new();
            for &state in &frontier {
                for &c in &covers {
                    let s = state | c;
                    if !seen[s as usize] {
                        seen[s as usize] = true;
                        next.push(s);
                    }
                }
            }
            assert!(!next.is_empty(), "some value cannot be covered");
            frontier = next;
        }
        unreachable!()
    }

    fn ty_of(code: u8) -> DataType {
        DataType::ALL[usize::from(code) % DataType::ALL.len()]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// The plan is valid and no plan under the same limits uses fewer reads.
        #[test]
        fn plan_is_minimal(
            layout in prop::collection::vec((0u32..7, 0u8..6, any::<bool>()), 1..7),
            status_regs in prop::collection::vec((0u32..40, any::<bool>()), 0..3),
            limit in 4u16..13,
            hole in 0u16..5,
        ) {
            let mut channels = Vec::new();
            let mut next = [0u32; 2];
            for (i, (gap, ty, input)) in layout.into_iter().enumerate() {
                let table = if input { RegisterTable::Input } else { RegisterTable::Holding };
                let slot = &mut next[usize::from(input)];
                let ch = channel(&format!("c{i}"), table, *slot + gap, ty_of(ty));
                *slot = ch.address + u32::from(ch.data_type.registers());
                channels.push(ch);
            }
            let st = status_regs
                .into_iter()
                .map(|(a, input)| {
                    let table = if input { StatusTable::Input } else { StatusTable::Holding };
                    status(table, a, Some(0), Flag::M)
                })
                .collect();
            let p = profile(channels, st);
            let options = PlanOptions { max_registers: limit, max_hole: hole, one_value_per_request: false };
            let plan = plan(&p, &options);

            let mut expected = 0;
            for table in [BlockTable::Holding, BlockTable::Input] {
                let mut spans: Vec<(u32, u32)> = p.channels.iter()
                    .filter(|c| BlockTable::from(c.table) == table)
                    .map(|c| (c.address, c.address + u32::from(c.data_type.registers())))
                    .chain(p.status.iter()
                        .filter(|s| BlockTable::from(s.table) == table)
                        .map(|s| (s.address, s.address + 1)))
                    .collect();
                spans.sort();
                spans.dedup();
                if spans.is_empty() {
                    continue;
                }
                expected += fewest_reads_by_search(&spans, u32::from(limit), u32::from(hole));
                for b in plan.blocks.iter().filter(|b| b.table == table) {
                    prop_assert!(b.count <= limit, "{b:?} exceeds {limit}");
                    let (s, e) = (u32::from(b.start), u32::from(b.start) + u32::from(b.count));
                    let used: Vec<u32> = (s..e)
                        .filter(|&r| spans.iter().any(|&(a, z)| a <= r && r < z))
                        .collect();
                    prop_assert!(used.windows(2).all(|w| w[1] - w[0] - 1 <= u32::from(hole)),
                        "{b:?} spans a hole over {hole}");
                }
            }
            prop_assert_eq!(plan.blocks.len(), expected, "{:?}", plan.blocks);

            // every value comes back from where the plan put it
            let results: Vec<BlockData> = plan.blocks.iter()
                .map(|b| BlockData::Registers((b.start..b.start + b.count).collect()))
                .collect();
            for (i, c) in p.channels.iter().enumerate() {
                let want: Vec<u16> = (0..c.data_type.registers()).map(|r| c.address as u16 + r).collect();
                prop_assert_eq!(plan.channel_words(i, &results), Some(&want[..]));
            }
            let want: Vec<Option<u16>> = p.status.iter().map(|s| Some(s.address as u16)).collect();
            prop_assert_eq!(plan.status_data(&results), StatusData(want));
        }
    }
}
