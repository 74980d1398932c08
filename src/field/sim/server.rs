//! Answers Modbus requests from the simulator's state at the clock's current time.

use std::collections::{BTreeMap, HashMap};
use std::future::{ready, Ready};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_modbus::server::tcp::{accept_tcp_connection, Server};
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};

use super::{Behaviour, Simulator};
use crate::config::profile::StatusBit;
use crate::model::FlagSet;
use crate::protocol::modbus::decode::{encode_channel, status_applies};
use crate::protocol::modbus::plan::{BlockTable, MAX_BITS_PER_READ, MAX_REGISTERS_PER_READ};

/// Serves `sim` to every client that connects to `listener`, until an accept fails.
/// Dropping the future stops the server and its connections.
pub async fn serve(listener: TcpListener, sim: Simulator) -> io::Result<()> {
    let sim = Arc::new(sim);
    let new_service = move |_peer| Ok(Some(Arc::clone(&sim)));
    let on_connected = |stream, peer| ready(accept_tcp_connection(stream, peer, &new_service));
    let on_process_error = |err: io::Error| {
        tracing::debug!(%err, "simulator connection closed on a bad frame");
    };
    Server::new(listener)
        .serve(&on_connected, on_process_error)
        .await
}

/// Binds `addr` and serves `sim` there.
pub async fn serve_addr(addr: SocketAddr, sim: Simulator) -> io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    serve(listener, sim).await
}

/// Also lets the simulator back tokio-modbus's RTU server, e.g. on one end of a pty pair.
impl tokio_modbus::server::Service for Simulator {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Ready<Result<Option<Response>, ExceptionCode>>;

    fn call(&self, request: Self::Request) -> Self::Future {
        ready(self.answer(&request))
    }
}

/// Everything the device exposes at one moment; addresses not in it read as 0.
#[derive(Default)]
struct Image {
    words: HashMap<(BlockTable, u16), u16>,
    bits: HashMap<(BlockTable, u16), bool>,
}

impl Simulator {
    /// The reply to `request`: `Ok(None)` sends nothing at all.
    fn answer(&self, request: &SlaveRequest<'_>) -> Result<Option<Response>, ExceptionCode> {
        if self.unit_id().is_some_and(|unit| unit != request.slave) {
            return Ok(None);
        }
        let elapsed = self.elapsed();
        match self.behaviour_at(elapsed) {
            Behaviour::Silent => return Ok(None),
            Behaviour::Exception(code) => return Err(ExceptionCode::new(code)),
            Behaviour::Normal => {}
        }
        let words = |table, start, count| {
            check_range(start, count, MAX_REGISTERS_PER_READ)?;
            let image = self.image_at(elapsed);
            Ok((0..count)
                .map(|i| {
                    let address = start.wrapping_add(i);
                    image.words.get(&(table, address)).copied().unwrap_or(0)
                })
                .collect())
        };
        let bits = |table, start, count| {
            check_range(start, count, MAX_BITS_PER_READ)?;
            let image = self.image_at(elapsed);
            Ok((0..count)
                .map(|i| {
                    let address = start.wrapping_add(i);
                    image.bits.get(&(table, address)).copied().unwrap_or(false)
                })
                .collect())
        };
        let response = match request.request {
            Request::ReadHoldingRegisters(start, count) => {
                Response::ReadHoldingRegisters(words(BlockTable::Holding, start, count)?)
            }
            Request::ReadInputRegisters(start, count) => {
                Response::ReadInputRegisters(words(BlockTable::Input, start, count)?)
            }
            Request::ReadCoils(start, count) => {
                Response::ReadCoils(bits(BlockTable::Coils, start, count)?)
            }
            Request::ReadDiscreteInputs(start, count) => {
                Response::ReadDiscreteInputs(bits(BlockTable::DiscreteInputs, start, count)?)
            }
            // An analyser's measurements are read-only.
            _ => return Err(ExceptionCode::IllegalFunction),
        };
        Ok(Some(response))
    }

    fn image_at(&self, elapsed: Duration) -> Image {
        let profile = self.profile();
        let mut image = Image::default();
        for (index, channel) in profile.channels.iter().enumerate() {
            let value = self.value_at(index, elapsed).unwrap_or(f64::NAN);
            let start = profile.pdu_address(channel.address);
            let words = encode_channel(profile, channel, value, self.span(index));
            for (offset, word) in (0u16..).zip(words) {
                let address = start.wrapping_add(offset);
                image.words.insert((channel.table.into(), address), word);
            }
        }
        let raised = self.status_at(elapsed);
        let mut status_registers: BTreeMap<(BlockTable, u16), Vec<&StatusBit>> = BTreeMap::new();
        for status in &profile.status {
            let key = (status.table.into(), profile.pdu_address(status.address));
            if status.table.is_register() {
                status_registers.entry(key).or_default().push(status);
            } else {
                image
                    .bits
                    .insert(key, raised.contains(status.flag) == status.active);
            }
        }
        for (key, entries) in status_registers {
            let word = image.words.get(&key).copied().unwrap_or(0);
            image.words.insert(key, status_word(word, &entries, raised));
        }
        image
    }
}

/// Modbus checks the quantity first (exception 3), then the address range (exception 2).
fn check_range(start: u16, count: u16, max: u16) -> Result<(), ExceptionCode> {
    if count == 0 || count > max {
        Err(ExceptionCode::IllegalDataValue)
    } else if u32::from(start) + u32::from(count) > 0x1_0000 {
        Err(ExceptionCode::IllegalDataAddress)
    } else {
        Ok(())
    }
}

/// The status register that tells a collector exactly the `raised` flags among `entries`
/// (all on one register): bit entries are set or cleared; for state codes, the code whose
/// meaning matches best, else a code that means nothing. A code register can say one state
/// at a time, so of several raised flags the most severe wins.
fn status_word(mut word: u16, entries: &[&StatusBit], raised: FlagSet) -> u16 {
    for entry in entries {
        if let Some(bit) = entry.bit {
            let mask = 1u16.checked_shl(u32::from(bit)).unwrap_or(0);
            if raised.contains(entry.flag) == entry.active {
                word |= mask;
            } else {
                word &= !mask;
            }
        }
    }
    let codes: Vec<u16> = entries.iter().filter_map(|e| e.equals).collect();
    if codes.is_empty() {
        return word;
    }
    let meaning = |w: u16| {
        entries
            .iter()
            .filter(|e| status_applies(e, w))
            .fold(FlagSet::EMPTY, |flags, e| flags.with(e.flag))
    };
    let wanted = entries
        .iter()
        .filter(|e| raised.contains(e.flag))
        .fold(FlagSet::EMPTY, |flags, e| flags.with(e.flag));
    let no_code = (0..=u16::MAX).find(|w| !codes.contains(w)).unwrap_or(word);
    codes
        .into_iter()
        .chain([no_code])
        .min_by_key(|&w| {
            let says = meaning(w);
            let extra = (says.bits() & !wanted.bits()).count_ones();
            (says != wanted, !says.contains(wanted.primary()), extra)
        })
        .unwrap_or(no_code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::profile::{Profile, StatusTable};
    use crate::field::sim::Scenario;
    use crate::model::Flag;
    use proptest::prelude::*;
    use std::path::Path;

    fn code(equals: u16, flag: Flag) -> StatusBit {
        StatusBit {
            table: StatusTable::Holding,
            address: 100,
            bit: None,
            equals: Some(equals),
            active: true,
            flag,
            description: None,
        }
    }

    #[test]
    fn state_codes_say_the_most_severe_raised_flag() {
        // 雪迪龙 MODEL 4000 status @100: 0 run, 1 maintenance, 2 fault, 3 calibration
        let entries = [code(1, Flag::M), code(2, Flag::D), code(3, Flag::C)];
        let refs: Vec<&StatusBit> = entries.iter().collect();
        assert_eq!(status_word(0, &refs, FlagSet::EMPTY), 0);
        assert_eq!(status_word(0, &refs, FlagSet::of(Flag::C)), 3);
        assert_eq!(status_word(0, &refs, FlagSet::of(Flag::C).with(Flag::D)), 2);
        // a code 0 in use moves "nothing" to the first free code
        let entries = [code(0, Flag::M), code(1, Flag::D)];
        let refs: Vec<&StatusBit> = entries.iter().collect();
        assert_eq!(status_word(7, &refs, FlagSet::EMPTY), 2);
    }

    #[test]
    fn bit_entries_follow_polarity() {
        let mut ready = code(0, Flag::D);
        ready.equals = None;
        ready.bit = Some(4);
        ready.active = false;
        let mut calibrating = ready.clone();
        calibrating.bit = Some(2);
        calibrating.active = true;
        calibrating.flag = Flag::C;
        let refs = [&ready, &calibrating];
        // healthy: "ready" bit 4 set (0x10), calibration bit 2 clear
        assert_eq!(status_word(0, &refs, FlagSet::EMPTY), 0x0010);
        assert_eq!(status_word(0, &refs, FlagSet::of(Flag::C)), 0x0014);
        assert_eq!(status_word(0xFFFF, &refs, FlagSet::of(Flag::D)), 0xFFEB);
    }

    #[test]
    fn quantity_then_address_is_checked() {
        assert_eq!(check_range(0, 125, 125), Ok(()));
        assert_eq!(
            check_range(0, 126, 125),
            Err(ExceptionCode::IllegalDataValue)
        );
        assert_eq!(check_range(0, 0, 125), Err(ExceptionCode::IllegalDataValue));
        assert_eq!(check_range(0xFFFF, 1, 125), Ok(()));
        assert_eq!(
            check_range(0xFFFF, 2, 125),
            Err(ExceptionCode::IllegalDataAddress)
        );
        assert_eq!(
            check_range(0xFFF0, 126, 125),
            Err(ExceptionCode::IllegalDataValue)
        );
    }

    const PROFILE: &str = r#"
vendor = "T"
model = "T"
source = "unit test"
verified = false

[[channel]]
name = "so2"
quantity = "SO2"
unit = "ppb"
table = "input"
address = 65532
type = "f64"

[[channel]]
name = "o2"
quantity = "O2"
unit = "%vol"
table = "holding"
address = 0
type = "i16"
raw_range = [0, 27648]
span = [0, 25]

[[status]]
table = "coil"
address = 65535
flag = "M"

[[status]]
table = "holding"
address = 0
equals = 3
flag = "C"
"#;

    proptest! {
        /// Any read gets exactly the values asked for or the exception Modbus prescribes;
        /// anything else is refused as an illegal function.
        #[test]
        fn every_request_gets_a_well_formed_answer(
            function in 0u8..6,
            start in prop_oneof![0u16..8, 65_400u16..=65_535, any::<u16>()],
            count in prop_oneof![0u16..130, 1_995u16..2_005, any::<u16>()],
            unit in any::<u8>(),
            at_ms in 0u64..10_000_000,
        ) {
            let profile = Profile::parse("t", Path::new("t.toml"), PROFILE)
                .unwrap_or_else(|e| panic!("{e}"));
            let sim = Simulator::new(profile, Scenario::default(), 5, move || {
                Duration::from_millis(at_ms)
            });
            let request = match function {
                0 => Request::ReadHoldingRegisters(start, count),
                1 => Request::ReadInputRegisters(start, count),
                2 => Request::ReadCoils(start, count),
                3 => Request::ReadDiscreteInputs(start, count),
                4 => Request::WriteSingleRegister(start, count),
                _ => Request::ReadWriteMultipleRegisters(start, count, start, vec![count].into()),
            };
            let max = if function < 2 { 125 } else { 2000 };
            let expected_error = if function >= 4 {
                Some(ExceptionCode::IllegalFunction)
            } else if count == 0 || count > max {
                Some(ExceptionCode::IllegalDataValue)
            } else if u32::from(start) + u32::from(count) > 0x1_0000 {
                Some(ExceptionCode::IllegalDataAddress)
            } else {
                None
            };
            let answer = sim.answer(&SlaveRequest { slave: unit, request });
            match (answer, expected_error) {
                (Err(code), Some(expected)) => prop_assert_eq!(code, expected),
                (Ok(Some(Response::ReadHoldingRegisters(v) | Response::ReadInputRegisters(v))), None) => {
                    prop_assert_eq!(v.len(), usize::from(count));
                }
                (Ok(Some(Response::ReadCoils(v) | Response::ReadDiscreteInputs(v))), None) => {
                    prop_assert_eq!(v.len(), usize::from(count));
                }
                (other, expected) => prop_assert!(false, "{other:?}, expected {expected:?}"),
            }
        }
    }
}
