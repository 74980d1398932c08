//! A serial line for tests: cemsd opens one end of a pty pair as its bus; on the other side a
//! relay carries frames to a device peer (the cemsd simulator behind tokio-modbus's RTU
//! server, or pymodbus) on a second pty pair. The relay is the wire: it logs every frame,
//! can make a unit dead, delay, corrupt, truncate or prefix a reply with noise, and can take
//! the wire time of each frame at an emulated baud rate.
#![allow(dead_code)] // each test binary uses its own subset

use std::collections::HashMap;
use std::future::{ready, Ready};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cemsd::collect::modbus::start::start;
use cemsd::config;
use cemsd::config::profile::Profile;
use cemsd::field::capture::Direction;
use cemsd::field::sim::{Scenario, Simulator};
use cemsd::model::Sample;
use cemsd::pipeline::live::Live;
use cemsd::protocol::modbus::frame::{frame_len, Direction as Wire, FrameLen};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_modbus::{ExceptionCode, Response, SlaveRequest};
use tokio_serial::{SerialPort, SerialStream};

/// A test analyser: SO2 and O2 as f32 (ABCD) in holding registers 0–3.
pub const PROFILE: &str = r#"vendor = "Test"
model = "two floats"
source = "integration test"
verified = false

[[channel]]
name = "so2"
quantity = "SO2"
unit = "mg/m3"
table = "holding"
address = 0
type = "f32"

[[channel]]
name = "o2"
quantity = "O2"
unit = "%vol"
table = "holding"
address = 2
type = "f32"
"#;

/// What unit `unit` reads: SO2 = unit + 0.5 mg/m3, O2 = 20 + unit / 10 %vol — exact in f32
/// for the units used (e.g. unit 3: 3.5 and 20.3 → f32 20.299999237…, compared as f32).
pub fn values_of(unit: u8) -> (f64, f64) {
    (f64::from(unit) + 0.5, 20.0 + f64::from(unit) / 10.0)
}

/// A directory with the test profile, for `profiles_dir = "profiles"`.
pub fn site_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let profiles = dir.path().join("profiles");
    std::fs::create_dir(&profiles).unwrap_or_else(|e| panic!("mkdir: {e}"));
    std::fs::write(profiles.join("two-floats.toml"), PROFILE)
        .unwrap_or_else(|e| panic!("write profile: {e}"));
    dir
}

pub fn profile() -> Profile {
    Profile::parse("two-floats", Path::new("two-floats.toml"), PROFILE)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A simulator that answers as unit `unit` with [`values_of`] (plus scenario `extra`).
pub fn simulator(unit: u8, extra: &str) -> Simulator {
    let (so2, o2) = values_of(unit);
    let text = format!("[values]\nso2 = {so2:?}\no2 = {o2:?}\n{extra}");
    let profile = profile();
    let scenario = Scenario::parse(Path::new("scenario.toml"), &text, &profile)
        .unwrap_or_else(|e| panic!("{e}"));
    let started = std::time::Instant::now();
    Simulator::new(profile, scenario, 1, move || started.elapsed()).with_unit_id(unit)
}

/// Several simulated analysers on one bus: each answers its own unit id only.
pub struct SimBus(pub Vec<Simulator>);

impl tokio_modbus::server::Service for SimBus {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Ready<Result<Option<Response>, ExceptionCode>>;

    fn call(&self, request: Self::Request) -> Self::Future {
        match self.0.iter().find(|s| s.unit_id() == Some(request.slave)) {
            Some(sim) => sim.call(request),
            None => ready(Ok(None)),
        }
    }
}

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

/// pymodbus serving `units` (unit → its [`values_of`]) on `where_` arguments; killed on drop.
pub struct Pymodbus {
    child: Child,
}

impl Pymodbus {
    pub fn start(where_: &[&str], units: &[u8]) -> Pymodbus {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/modbus_server.py");
        let mut command = Command::new("python3");
        command.arg(script).args(where_);
        for unit in units {
            let (so2, o2) = values_of(*unit);
            command.arg("--unit").arg(format!("{unit}={so2},{o2}"));
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start pymodbus (pip install pymodbus): {e}"));
        let mut ready = String::new();
        if let Some(out) = child.stdout.as_mut() {
            use std::io::BufRead;
            let _ = std::io::BufReader::new(out).read_line(&mut ready);
        }
        assert_eq!(ready.trim(), "ready", "pymodbus did not start");
        Pymodbus { child }
    }
}

impl Drop for Pymodbus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a run of the collectors produced.
pub struct Run {
    pub samples: Vec<Sample>,
    pub live: Arc<Live>,
    pub dir: PathBuf,
}

impl Run {
    pub fn of(&self, device: &str, channel: &str) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| &*s.device == device && &*s.channel == channel)
            .collect()
    }
}

/// Writes `config` into `dir`, starts the collectors it describes, runs them for `duration`
/// and stops them (joining capture writers, so their files are complete).
pub async fn run_collectors(dir: &Path, config: &str, duration: Duration) -> Run {
    let path = dir.join("site.toml");
    std::fs::write(&path, config).unwrap_or_else(|e| panic!("write config: {e}"));
    let loaded = config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let live = Live::new();
    let (tx, mut rx) = mpsc::channel(1024);
    let (stop, stopped) = watch::channel(false);
    let collectors = start(
        &path,
        &loaded.config,
        &loaded.profiles,
        loaded.config.site.utc_offset.to_chrono(),
        &tx,
        &stopped,
        &live,
    )
    .unwrap_or_else(|e| panic!("start: {e}"));
    drop(tx);
    let mut samples = Vec::new();
    let deadline = tokio::time::Instant::now() + duration;
    while let Ok(Some(batch)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        samples.extend(batch.samples);
    }
    let _ = stop.send(true);
    let mut tasks = collectors.tasks;
    while tasks.join_next().await.is_some() {}
    while let Ok(batch) = rx.try_recv() {
        samples.extend(batch.samples);
    }
    for capture in collectors.captures {
        let _ = tokio::task::spawn_blocking(move || capture.join()).await;
    }
    Run {
        samples,
        live,
        dir: dir.to_path_buf(),
    }
}

/// The value a channel of unit `unit` reads after f32 rounding on the wire.
pub fn wire_value(value: f64) -> f64 {
    f64::from(value as f32)
}

/// Serves `bus` on `listener`: Modbus TCP, or with `rtu_framing` RTU frames over TCP as a
/// serial device server passes them on. Aborting the task closes the listener and every
/// connection.
pub fn serve_tcp(
    listener: tokio::net::TcpListener,
    bus: SimBus,
    rtu_framing: bool,
) -> JoinHandle<()> {
    let bus = Arc::new(bus);
    tokio::spawn(async move {
        let new_service = move |_peer| Ok(Some(Arc::clone(&bus)));
        let on_error = |_err: std::io::Error| {};
        if rtu_framing {
            use tokio_modbus::server::rtu_over_tcp::{accept_tcp_connection, Server};
            let on_connected =
                |stream, peer| ready(accept_tcp_connection(stream, peer, &new_service));
            let _ = Server::new(listener).serve(&on_connected, on_error).await;
        } else {
            use tokio_modbus::server::tcp::{accept_tcp_connection, Server};
            let on_connected =
                |stream, peer| ready(accept_tcp_connection(stream, peer, &new_service));
            let _ = Server::new(listener).serve(&on_connected, on_error).await;
        }
    })
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

pub async fn listen(port: u16) -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| panic!("bind 127.0.0.1:{port}: {e}"))
}
