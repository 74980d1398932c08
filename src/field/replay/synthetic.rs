//! A capture of a simulated RS-485 bus without waiting for it: the live schedule (boundaries,
//! a dead analyser probed after the others) decides who is polled when, simulated analysers answer from
//! their scenario at that moment, and frames get the times a 9600 baud line would give them.
//! For fixtures and benchmarks spanning hours or days.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_modbus::server::Service;
use tokio_modbus::{Response, SlaveRequest};

use crate::collect::modbus::device::DevicePoller;
use crate::collect::modbus::schedule::{Action, LineSchedule};
use crate::config::profile::ProfileSet;
use crate::config::{SiteConfig, Transport};
use crate::field::capture::{CapturedFrame, Direction};
use crate::field::sim::{Clock, Simulator};
use crate::model::Timestamp;
use crate::protocol::modbus::frame::{crc16, encode_read};

/// Simulator time the generator sets before each answer.
#[derive(Debug, Clone, Default)]
pub struct SteppedClock(Arc<AtomicU64>);

impl SteppedClock {
    pub fn new() -> SteppedClock {
        SteppedClock::default()
    }

    fn set(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.0.store(micros, Ordering::Relaxed);
    }
}

impl Clock for SteppedClock {
    fn elapsed(&self) -> Duration {
        Duration::from_micros(self.0.load(Ordering::Relaxed))
    }
}

/// Wire time of one character at 9600 baud, 8N1 (10 bits).
const CHAR_US: i64 = 1_042;
/// From the boundary to the first request.
const FIRST_REQUEST_US: i64 = 2_000;
/// A device's turnaround before it answers.
const DEVICE_DELAY_US: i64 = 15_000;
/// Quiet time the master keeps after a reply.
const GAP_US: i64 = 4_000;

/// The bus: the RTU devices of `config` (on `bus`, when given) and, for some of their unit
/// ids, a simulator; units without one are dead. Simulators must use `clock`.
pub struct SyntheticBus<'a> {
    pollers: Vec<DevicePoller>,
    simulators: Vec<(u8, &'a Simulator)>,
    clock: SteppedClock,
    timeouts_us: Vec<i64>,
    /// Every n-th reply is sent with a damaged CRC (then retried, as live does).
    pub corrupt_every: Option<u64>,
    /// Every n-th reply is preceded by four bytes of line noise.
    pub noise_every: Option<u64>,
}

impl<'a> SyntheticBus<'a> {
    pub fn new(
        config: &SiteConfig,
        profiles: &ProfileSet,
        bus: Option<&str>,
        simulators: Vec<(u8, &'a Simulator)>,
        clock: SteppedClock,
    ) -> SyntheticBus<'a> {
        let devices: Vec<_> = config
            .devices
            .iter()
            .filter(|d| d.transport == Transport::Rtu)
            .filter(|d| bus.is_none_or(|b| d.bus.as_deref() == Some(b)))
            .collect();
        let pollers = devices
            .iter()
            .filter_map(|d| {
                Some(DevicePoller::new(
                    d,
                    profiles.get(&d.profile)?,
                    &config.buses,
                ))
            })
            .collect();
        let timeouts_us = devices
            .iter()
            .map(|d| {
                i64::try_from(d.effective_timeout(&config.buses).as_micros()).unwrap_or(i64::MAX)
            })
            .collect();
        SyntheticBus {
            pollers,
            simulators,
            clock,
            timeouts_us,
            corrupt_every: None,
            noise_every: None,
        }
    }

    /// Frames of `duration` of polling from `start_us` (µs since the epoch); the simulators'
    /// time 0 is `start_us`.
    pub fn run(&self, start_us: i64, duration: Duration, mut emit: impl FnMut(CapturedFrame)) {
        let intervals: Vec<_> = self.pollers.iter().map(|p| p.interval()).collect();
        let start = Timestamp(start_us.div_euclid(1000));
        let end_ms = start.0 + i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        let mut schedule = LineSchedule::new(&intervals, start);
        let mut replies = 0u64;
        let mut line_free_us = start_us;
        while let Some(wake) = schedule.next_wake() {
            if wake.0 >= end_ms {
                break;
            }
            let mut now_us = (wake.0 * 1000).max(line_free_us) + FIRST_REQUEST_US;
            for due in schedule.take_due(Timestamp(now_us.div_euclid(1000))) {
                if due.action != Action::Poll {
                    continue;
                }
                let poller = &self.pollers[due.device];
                let simulator = self
                    .simulators
                    .iter()
                    .find(|(unit, _)| *unit == poller.unit_id())
                    .map(|(_, s)| *s);
                let mut answered = false;
                for block in &poller.plan().blocks {
                    let request = encode_read(poller.unit_id(), block);
                    emit(frame(now_us, Direction::Outbound, request.clone()));
                    now_us += wire(request.len());
                    self.clock.set(Duration::from_micros(
                        u64::try_from(now_us - start_us).unwrap_or(0),
                    ));
                    let Some(reply) = simulator.and_then(|s| answer(s, poller.unit_id(), block))
                    else {
                        now_us += self.timeouts_us[due.device];
                        break;
                    };
                    answered = true;
                    replies += 1;
                    let mut sent = reply.clone();
                    if self.noise_every.is_some_and(|n| replies % n == 0) {
                        sent = [&[0x00, 0xFF, 0x13, 0x37][..], &reply].concat();
                    }
                    let corrupt = self.corrupt_every.is_some_and(|n| replies % n == 0);
                    if corrupt {
                        if let Some(last) = sent.last_mut() {
                            *last ^= 0xA5;
                        }
                    }
                    now_us += DEVICE_DELAY_US + wire(sent.len());
                    emit(frame(now_us, Direction::Inbound, sent));
                    now_us += GAP_US;
                    if corrupt {
                        // retried at once, answered cleanly
                        emit(frame(now_us, Direction::Outbound, request.clone()));
                        now_us += wire(request.len()) + DEVICE_DELAY_US + wire(reply.len());
                        emit(frame(now_us, Direction::Inbound, reply));
                        now_us += GAP_US;
                    }
                }
                schedule.record(due.device, due.boundary, answered);
            }
            line_free_us = now_us;
        }
    }
}

fn wire(bytes: usize) -> i64 {
    CHAR_US * i64::try_from(bytes).unwrap_or(i64::MAX / CHAR_US)
}

fn frame(ts_us: i64, direction: Direction, bytes: Vec<u8>) -> CapturedFrame {
    CapturedFrame {
        ts_us,
        direction,
        bytes,
    }
}

/// The RTU reply the simulator gives to a read of `block`, or `None` for silence.
fn answer(
    simulator: &Simulator,
    unit: u8,
    block: &crate::protocol::modbus::plan::ReadBlock,
) -> Option<Vec<u8>> {
    let request = SlaveRequest {
        slave: unit,
        request: block.request(),
    };
    let function = crate::protocol::modbus::frame::function_code(block.table);
    let mut body = vec![unit];
    match simulator.call(request).into_inner() {
        Ok(None) => return None,
        Ok(Some(response)) => {
            let data: Vec<u8> = match response {
                Response::ReadHoldingRegisters(words) | Response::ReadInputRegisters(words) => {
                    words.iter().flat_map(|w| w.to_be_bytes()).collect()
                }
                Response::ReadCoils(bits) | Response::ReadDiscreteInputs(bits) => bits
                    .chunks(8)
                    .map(|byte| {
                        byte.iter()
                            .enumerate()
                            .fold(0u8, |acc, (i, &on)| acc | (u8::from(on) << i))
                    })
                    .collect(),
                _ => return None,
            };
            body.push(function);
            body.push(u8::try_from(data.len()).ok()?);
            body.extend(data);
        }
        Err(code) => {
            body.push(function | 0x80);
            body.push(u8::from(code));
        }
    }
    let crc = crc16(&body);
    body.extend(crc.to_le_bytes());
    Some(body)
}
