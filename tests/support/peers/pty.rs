//! A serial line for tests: cemsd opens one end of a pty pair as its bus; on the other side a
//! relay carries frames to a device peer (the cemsd simulator behind tokio-modbus's RTU
//! server, or pymodbus) on a second pty pair. The relay is the wire: it logs every frame,
//! can make a unit dead, delay, corrupt, truncate or prefix a reply with noise, and can take
//! the wire time of each frame at an emulated baud rate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cemsd::field::capture::Direction;
use cemsd::protocol::modbus::frame::{frame_len, Direction as Wire, FrameLen};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::task::JoinHandle;
use tokio_serial::{SerialPort, SerialStream};

use super::analyser::SimBus;

/// Something done to one reply on its way to cemsd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Held back this long before it is sent.
    Delay(Duration),
    /// Last CRC byte flipped.
    CorruptCrc,
    /// Only the first n bytes are sent.
    Truncate(usize),
    /// These bytes go first.
    NoiseBefore(Vec<u8>),
}

/// One frame as the wire carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireFrame {
    pub us: i64,
    pub direction: Direction,
    pub bytes: Vec<u8>,
}

#[derive(Default)]
pub struct WireSetup {
    /// Units whose requests never reach the device: dead analysers.
    pub dead: Vec<u8>,
    /// (unit, n-th reply of that unit counting from 1, fault)
    pub faults: Vec<(u8, u32, Fault)>,
    /// Wire time of one character; zero for an instant line.
    pub char_time: Duration,
}

pub struct Line {
    /// The pty path cemsd opens as its bus.
    pub bus_port: String,
    /// The pty path a device peer opens.
    pub device_port: String,
    /// The device side's own end, for tokio-modbus's RTU server (taken once).
    pub device_end: Option<SerialStream>,
    pub log: Arc<Mutex<Vec<WireFrame>>>,
    _keep_open: Vec<SerialStream>,
    relays: Vec<JoinHandle<()>>,
}

impl Drop for Line {
    fn drop(&mut self) {
        for relay in &self.relays {
            relay.abort();
        }
    }
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn pty() -> (SerialStream, SerialStream, String) {
    let (master, slave) = SerialStream::pair().unwrap_or_else(|e| panic!("pty pair: {e}"));
    let path = slave
        .name()
        .unwrap_or_else(|| panic!("the pty slave has no path"));
    (master, slave, path)
}

/// Splits complete frames off the front of `buffer`.
fn take_frames(buffer: &mut Vec<u8>, wire: Wire) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    loop {
        match frame_len(buffer, wire) {
            FrameLen::Known(len) if buffer.len() >= len => {
                let rest = buffer.split_off(len);
                frames.push(std::mem::replace(buffer, rest));
            }
            FrameLen::Unknown => {
                // not Modbus: pass it on as it is
                frames.push(std::mem::take(buffer));
                return frames;
            }
            _ => return frames,
        }
    }
}

impl Line {
    /// Opens both pty pairs and starts the relay.
    pub fn new(setup: WireSetup) -> Line {
        let (bus_master, bus_slave, bus_port) = pty();
        let (device_master, device_slave, device_port) = pty();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (from_bus, to_bus) = tokio::io::split(bus_master);
        let (from_device, to_device) = tokio::io::split(device_master);
        let dead = setup.dead.clone();
        let relays = vec![
            tokio::spawn(requests(
                from_bus,
                to_device,
                dead,
                setup.char_time,
                log.clone(),
            )),
            tokio::spawn(replies(
                from_device,
                to_bus,
                setup.faults,
                setup.char_time,
                log.clone(),
            )),
        ];
        Line {
            bus_port,
            device_port,
            device_end: Some(device_slave),
            log,
            _keep_open: vec![bus_slave],
            relays,
        }
    }

    /// Serves `bus` on the device side with tokio-modbus's RTU server.
    pub fn serve_simulators(&mut self, bus: SimBus) -> JoinHandle<()> {
        let end = self
            .device_end
            .take()
            .unwrap_or_else(|| panic!("the device end is already taken"));
        tokio::spawn(async move {
            let _ = tokio_modbus::server::rtu::Server::new(end)
                .serve_forever(bus)
                .await;
        })
    }

    pub fn frames(&self) -> Vec<WireFrame> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Requests that went out to `unit`.
    pub fn requests_to(&self, unit: u8) -> usize {
        self.frames()
            .iter()
            .filter(|f| f.direction == Direction::Outbound && f.bytes.first() == Some(&unit))
            .count()
    }
}

/// Holds a frame for its wire time to the microsecond: the timer wheel's 1 ms ticks would
/// lengthen every emulated frame, so the last stretch is waited out by yielding.
async fn wire_sleep(wire_time: Duration) {
    if wire_time.is_zero() {
        return;
    }
    let until = tokio::time::Instant::now() + wire_time;
    let coarse = wire_time.saturating_sub(Duration::from_millis(2));
    if !coarse.is_zero() {
        tokio::time::sleep(coarse).await;
    }
    while tokio::time::Instant::now() < until {
        tokio::task::yield_now().await;
    }
}

async fn requests(
    mut from_bus: ReadHalf<SerialStream>,
    mut to_device: WriteHalf<SerialStream>,
    dead: Vec<u8>,
    char_time: Duration,
    log: Arc<Mutex<Vec<WireFrame>>>,
) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 512];
    while let Ok(n) = from_bus.read(&mut chunk).await {
        if n == 0 {
            return;
        }
        buffer.extend_from_slice(&chunk[..n]);
        for frame in take_frames(&mut buffer, Wire::Request) {
            log.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(WireFrame {
                    us: now_us(),
                    direction: Direction::Outbound,
                    bytes: frame.clone(),
                });
            if frame.first().is_some_and(|unit| dead.contains(unit)) {
                continue;
            }
            // the request's wire time, then the 3.5 characters a device waits for its end
            wire_sleep(char_time.mul_f64(frame.len() as f64 + 3.5)).await;
            if to_device.write_all(&frame).await.is_err() {
                return;
            }
        }
    }
}

async fn replies(
    mut from_device: ReadHalf<SerialStream>,
    mut to_bus: WriteHalf<SerialStream>,
    faults: Vec<(u8, u32, Fault)>,
    char_time: Duration,
    log: Arc<Mutex<Vec<WireFrame>>>,
) {
    let mut counts: HashMap<u8, u32> = HashMap::new();
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 512];
    while let Ok(n) = from_device.read(&mut chunk).await {
        if n == 0 {
            return;
        }
        buffer.extend_from_slice(&chunk[..n]);
        for mut frame in take_frames(&mut buffer, Wire::Response) {
            let unit = frame.first().copied().unwrap_or(0);
            let nth = counts.entry(unit).or_default();
            *nth += 1;
            let fault = faults
                .iter()
                .find(|(u, k, _)| *u == unit && k == nth)
                .map(|(_, _, f)| f.clone());
            let mut sent = Vec::new();
            match fault {
                Some(Fault::Delay(pause)) => tokio::time::sleep(pause).await,
                Some(Fault::CorruptCrc) => {
                    if let Some(last) = frame.last_mut() {
                        *last ^= 0xA5;
                    }
                }
                Some(Fault::Truncate(keep)) => frame.truncate(keep),
                Some(Fault::NoiseBefore(noise)) => sent.extend(noise),
                None => {}
            }
            sent.extend(frame);
            wire_sleep(char_time.mul_f64(sent.len() as f64)).await;
            if to_bus.write_all(&sent).await.is_err() {
                return;
            }
            log.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(WireFrame {
                    us: now_us(),
                    direction: Direction::Inbound,
                    bytes: sent,
                });
        }
    }
}
