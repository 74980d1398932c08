//! The simulator against a real tokio-modbus TCP client on loopback: what the collector's
//! planner and codec read back is exactly what the scenario set.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cemsd::config::profile::{DataType, Profile, WordOrder};
use cemsd::field::sim::{serve, signal, Scenario, Simulator};
use cemsd::model::{Flag, FlagSet, Quantity, Unit};
use cemsd::protocol::modbus::{
    channel_value, plan, status_flags, BlockData, PlanOptions, PollPlan,
};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_modbus::client::{tcp, Client, Context, Reader};
use tokio_modbus::{ExceptionCode, Request, Slave};

/// How long a test waits for a reply it expects never to come.
const NO_REPLY_WAIT: Duration = Duration::from_millis(300);

fn parse_profile(text: &str) -> Profile {
    Profile::parse("sim-test", Path::new("sim-test.toml"), text).unwrap_or_else(|e| panic!("{e}"))
}

fn parse_scenario(text: &str, profile: &Profile) -> Scenario {
    Scenario::parse(Path::new("scenario.toml"), text, profile).unwrap_or_else(|e| panic!("{e}"))
}

/// A clock the test sets by hand, in milliseconds since simulator start.
#[derive(Clone, Default)]
struct TestClock(Arc<AtomicU64>);

impl TestClock {
    fn set(&self, elapsed: Duration) {
        self.0.store(elapsed.as_millis() as u64, Ordering::SeqCst);
    }

    fn reader(&self) -> impl Fn() -> Duration + Send + Sync + 'static {
        let millis = Arc::clone(&self.0);
        move || Duration::from_millis(millis.load(Ordering::SeqCst))
    }
}

struct Running {
    addr: SocketAddr,
    task: JoinHandle<std::io::Result<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start(sim: Simulator) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind loopback: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("local addr: {e}"));
    Running {
        addr,
        task: tokio::spawn(serve(listener, sim)),
    }
}

async fn connect(addr: SocketAddr, unit: u8) -> Context {
    tcp::connect_slave(addr, Slave(unit))
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"))
}

/// One poll as a collector does it: every block of the plan, failures as Missing.
async fn poll(ctx: &mut Context, plan: &PollPlan) -> Vec<BlockData> {
    let mut results = Vec::new();
    for block in &plan.blocks {
        let data = match ctx.call(block.request()).await {
            Ok(Ok(response)) => block.data_from(response),
            other => panic!("{block:?}: {other:?}"),
        };
        results.push(data);
    }
    results
}

fn type_name(ty: DataType) -> &'static str {
    match ty {
        DataType::U16 => "u16",
        DataType::I16 => "i16",
        DataType::U32 => "u32",
        DataType::I32 => "i32",
        DataType::F32 => "f32",
        DataType::F64 => "f64",
    }
}

/// A value each type carries exactly.
fn exact_value(ty: DataType) -> f64 {
    match ty {
        DataType::U16 => 4660.0,
        DataType::I16 => -1234.0,
        DataType::U32 => 305_419_896.0,
        DataType::I32 => -98_765.0,
        DataType::F32 => 12.5,
        DataType::F64 => 1_234_567.891_011,
    }
}

#[tokio::test]
async fn every_type_and_word_order_reads_back_exactly() {
    // Every type in every word order, ABCD/CDAB in holding and BADC/DCBA in input
    // registers, plus a 4-20 mA count channel (SCS-900 style) and a scaled one. A limit of
    // 10 registers per read forces several blocks, so the plan's offsets are exercised too.
    let mut text = String::from(
        "vendor = \"T\"\nmodel = \"T\"\nsource = \"test\"\nverified = false\n\
         max_registers_per_request = 10\n",
    );
    let mut values = String::from("[values]\n");
    let mut next = [0u32; 2];
    for order in WordOrder::ALL {
        let input = order.bytes_swapped();
        for ty in DataType::ALL {
            let name = format!("{}_{order:?}", type_name(ty));
            let address = &mut next[usize::from(input)];
            text += &format!(
                "[[channel]]\nname = \"{name}\"\nquantity = \"SO2\"\nunit = \"mg/m3\"\n\
                 table = \"{}\"\naddress = {address}\ntype = \"{}\"\nword_order = \"{order:?}\"\n",
                if input { "input" } else { "holding" },
                type_name(ty)
            );
            *address += u32::from(ty.registers());
            values += &format!("{name} = {:?}\n", exact_value(ty));
        }
    }
    text += "[[channel]]\nname = \"so2_counts\"\nquantity = \"SO2\"\nunit = \"mg/m3\"\n\
             table = \"holding\"\naddress = 200\ntype = \"i16\"\nraw_range = [5530, 27648]\n\
             [[channel]]\nname = \"temp\"\nquantity = \"temp\"\nunit = \"degC\"\n\
             table = \"holding\"\naddress = 201\ntype = \"u16\"\nscale = 0.5\noffset = -40\n";
    // 375 of a 0–750 span is 16589 counts; 25.5 °C is (25.5 + 40) / 0.5 = 131
    values += "so2_counts = 375.0\ntemp = 25.5\n[span]\nso2_counts = [0, 750]\n";

    let profile = parse_profile(&text);
    let scenario = parse_scenario(&values, &profile);
    let sim = start(Simulator::new(profile.clone(), scenario, 1, || {
        Duration::ZERO
    }))
    .await;
    let mut ctx = connect(sim.addr, 1).await;

    let plan = plan(&profile, &PlanOptions::for_profile(&profile));
    assert!(plan.blocks.len() >= 6, "{:?}", plan.blocks);
    let results = poll(&mut ctx, &plan).await;

    for (i, channel) in profile.channels.iter().enumerate() {
        let Some(words) = plan.channel_words(i, &results) else {
            panic!("no words for {}", channel.name);
        };
        let span = (channel.name == "so2_counts").then_some([0.0, 750.0]);
        let (value, flags) = channel_value(&profile, channel, words, span);
        let expected = match channel.name.as_str() {
            "so2_counts" => 375.0,
            "temp" => 25.5,
            _ => exact_value(channel.data_type),
        };
        assert_eq!(value, expected, "{} words {words:04X?}", channel.name);
        assert_eq!(flags, FlagSet::EMPTY, "{}", channel.name);
    }
    // the wire carries what the codec's rules say, e.g. 12.5f32 = 0x41480000 in CDAB order
    let f32_cdab = profile
        .channels
        .iter()
        .position(|c| c.name == "f32_CDAB")
        .and_then(|i| plan.channel_words(i, &results));
    assert_eq!(f32_cdab, Some(&[0x0000, 0x4148][..]));
    let counts = profile
        .channels
        .iter()
        .position(|c| c.name == "so2_counts")
        .and_then(|i| plan.channel_words(i, &results));
    assert_eq!(counts, Some(&[16589][..]));
}

const STATUS_PROFILE: &str = r#"
vendor = "T"
model = "T"
source = "test"
verified = false
word_order = "CDAB"

[[channel]]
name = "so2"
quantity = "SO2"
unit = "ppm"
table = "holding"
address = 0
type = "f32"
range = [0, 500]

[[status]]
table = "discrete_input"
address = 4
flag = "C"

[[status]]
table = "holding"
address = 10
bit = 3
flag = "M"
"#;

#[tokio::test]
async fn calibration_raises_its_status_only_inside_the_window() {
    let profile = parse_profile(STATUS_PROFILE);
    let scenario = parse_scenario(
        "[[event]]\nkind = \"calibration\"\nstart = \"10m\"\nduration = \"5m\"\nvalue = 400.0\n\
         [[event]]\nkind = \"maintenance\"\nstart = \"14m\"\nduration = \"2m\"\n",
        &profile,
    );
    let clock = TestClock::default();
    let seed = 99;
    let sim = start(Simulator::new(
        profile.clone(),
        scenario,
        seed,
        clock.reader(),
    ))
    .await;
    let mut ctx = connect(sim.addr, 1).await;
    let plan = plan(&profile, &PlanOptions::for_profile(&profile));

    let minute = Duration::from_secs(60);
    let ms = Duration::from_millis(1);
    let cases = [
        (10 * minute - ms, FlagSet::EMPTY, false),
        (10 * minute, FlagSet::of(Flag::C), true),
        (14 * minute, FlagSet::of(Flag::C).with(Flag::M), true),
        (15 * minute - ms, FlagSet::of(Flag::C).with(Flag::M), true),
        (15 * minute, FlagSet::of(Flag::M), false),
        (16 * minute, FlagSet::EMPTY, false),
    ];
    for (at, expected_flags, calibrating) in cases {
        clock.set(at);
        let results = poll(&mut ctx, &plan).await;
        let flags = status_flags(&profile, &plan.status_data(&results));
        assert_eq!(flags, expected_flags, "at {at:?}");
        let Some(words) = plan.channel_words(0, &results) else {
            panic!("no so2 words at {at:?}");
        };
        let (value, _) = channel_value(&profile, &profile.channels[0], words, None);
        // outside calibration the generated SO2 in ppm, as the f32 the device sends
        let expected = if calibrating {
            400.0
        } else {
            f64::from(signal(Quantity::SO2, Unit::Ppm, seed, at) as f32)
        };
        assert_eq!(value, expected, "so2 at {at:?}");
    }
}

#[tokio::test]
async fn silent_device_makes_the_client_time_out() {
    let profile = parse_profile(STATUS_PROFILE);
    let scenario = parse_scenario(
        "[[event]]\nkind = \"silent\"\nstart = \"0s\"\nduration = \"1m\"\n",
        &profile,
    );
    let clock = TestClock::default();
    let sim = start(Simulator::new(profile, scenario, 1, clock.reader())).await;
    let mut ctx = connect(sim.addr, 1).await;

    let read = tokio::time::timeout(NO_REPLY_WAIT, ctx.read_holding_registers(0, 2)).await;
    assert!(read.is_err(), "a silent device answered: {read:?}");

    // once the silence ends the device answers again, on a fresh connection as a collector
    // opens after a timeout
    clock.set(Duration::from_secs(60));
    let mut ctx = connect(sim.addr, 1).await;
    let read = tokio::time::timeout(NO_REPLY_WAIT, ctx.read_holding_registers(0, 2)).await;
    assert!(
        matches!(&read, Ok(Ok(Ok(words))) if words.len() == 2),
        "{read:?}"
    );
}

#[tokio::test]
async fn bad_requests_get_modbus_exceptions() {
    let profile = parse_profile(STATUS_PROFILE);
    let sim = start(Simulator::new(profile, Scenario::default(), 1, || {
        Duration::ZERO
    }))
    .await;
    let mut ctx = connect(sim.addr, 1).await;

    let exception = |result: tokio_modbus::Result<Vec<u16>>| match result {
        Ok(Err(code)) => Some(code),
        _ => None,
    };
    // 0xFFF0 + 32 runs past the last address
    assert_eq!(
        exception(ctx.read_holding_registers(0xFFF0, 32).await),
        Some(ExceptionCode::IllegalDataAddress)
    );
    assert_eq!(
        exception(ctx.read_input_registers(0, 126).await),
        Some(ExceptionCode::IllegalDataValue)
    );
    assert_eq!(
        exception(ctx.read_holding_registers(0, 0).await),
        Some(ExceptionCode::IllegalDataValue)
    );
    let coils = ctx.read_coils(0, 2001).await;
    assert!(
        matches!(coils, Ok(Err(ExceptionCode::IllegalDataValue))),
        "{coils:?}"
    );
    let write = ctx.call(Request::WriteSingleRegister(0, 1)).await;
    assert!(
        matches!(write, Ok(Err(ExceptionCode::IllegalFunction))),
        "{write:?}"
    );
    // unmapped registers read as 0; the last address is readable
    let read = ctx.read_input_registers(0xFFFE, 2).await;
    assert!(
        matches!(&read, Ok(Ok(words)) if words == &[0, 0]),
        "{read:?}"
    );
    // the connection survives its exceptions
    let read = ctx.read_holding_registers(0, 125).await;
    assert!(
        matches!(&read, Ok(Ok(words)) if words.len() == 125),
        "{read:?}"
    );
}

#[tokio::test]
async fn exception_event_answers_with_its_code() {
    let profile = parse_profile(STATUS_PROFILE);
    let scenario = parse_scenario(
        "[[event]]\nkind = \"exception\"\nstart = \"0s\"\nduration = \"1m\"\ncode = 6\n",
        &profile,
    );
    let sim = start(Simulator::new(profile, scenario, 1, || Duration::ZERO)).await;
    let mut ctx = connect(sim.addr, 1).await;
    let read = ctx.read_holding_registers(0, 2).await;
    assert!(
        matches!(read, Ok(Err(ExceptionCode::ServerDeviceBusy))),
        "{read:?}"
    );
}

#[tokio::test]
async fn configured_unit_id_ignores_other_units() {
    let profile = parse_profile(STATUS_PROFILE);
    let sim =
        start(Simulator::new(profile, Scenario::default(), 1, || Duration::ZERO).with_unit_id(7))
            .await;
    let mut own = connect(sim.addr, 7).await;
    let read = tokio::time::timeout(NO_REPLY_WAIT, own.read_holding_registers(0, 2)).await;
    assert!(matches!(&read, Ok(Ok(Ok(w))) if w.len() == 2), "{read:?}");

    let mut other = connect(sim.addr, 8).await;
    let read = tokio::time::timeout(NO_REPLY_WAIT, other.read_holding_registers(0, 2)).await;
    assert!(read.is_err(), "unit 8 got an answer: {read:?}");
}
