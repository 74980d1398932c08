//! Derived values from one instant: through the daemon's `Processor`, polls in which every
//! input changes from one poll to the next (NO, NO2, O2, moisture, temperature, pressure,
//! velocity) must give, poll by poll and as minute averages, exactly what the HJ 75-2017
//! formulas give for the inputs of that same poll. One test per derived quantity: NOx as
//! NO2, standard dry flow, dry basis, O2-corrected concentration, emission rate. The expected
//! figures are worked out by hand in the comments.
//!
//! The site: a coal boiler (reference O2 6 %), 20 m2 duct, flue pressure read as gauge
//! against 101 325 Pa. An SDL SCS-900 PLC delivers SO2 (mg/m3, dry), O2 (% dry), moisture,
//! velocity, temperature and pressure, in that order: velocity is read before the
//! temperature and pressure it is standardised with. A Thermo 42i on another line delivers
//! NO and NO2 in ppb on a wet basis, NO at register 0 before NO2 at register 2, 100 ms
//! after the PLC. Both are polled every 10 s.

use std::path::Path;
use std::sync::Arc;

use cemsd::config;
use cemsd::model::{Basis, Flag, FlagSet, Quantity, Sample, Timestamp, Unit};
use cemsd::process::Processor;
use cemsd::store::{Record, RecordKind};

const CONFIG: &str = r#"[site]
id = "plant"
utc_offset = "+08:00"

[[stack]]
id = "u1"
source_type = "coal_boiler"
duct_area_m2 = 20.0
frozen_after = "off"

[[device]]
id = "plc"
profile = "sdl-scs900-plc"
stack = "u1"
transport = "tcp"
address = "127.0.0.1:1502"
channels = ["so2", "o2", "h2o", "velocity", "temp", "pressure"]
poll_interval = "10s"

[[device]]
id = "nox"
profile = "thermo-42i"
stack = "u1"
transport = "tcp"
address = "127.0.0.1:1503"
channels = ["no", "no2"]
poll_interval = "10s"
"#;

/// 2026-01-01 00:00:00 local (UTC+8): a minute boundary.
const T0: i64 = 1_767_196_800_000;
const POLL: i64 = 10_000;

/// The inputs of poll k (k = 0..5, at T0 + 10 s × k), chosen so that every factor is a
/// round number:
///
/// | k | t_s °C   | 273.15/(273.15+t_s) | P_s Pa   | (101325+P_s)/101325 | H2O % | 1−X_sw | v m/s | O2 % | 15/(21−O2) |
/// |---|----------|------|----------|------|----|------|----|----|-------|
/// | 0 | 273.15   | 0.5  | 0        | 1.00 | 10 | 0.90 | 10 | 6  | 1     |
/// | 1 | 91.05    | 0.75 | 1013.25  | 1.01 | 12 | 0.88 | 12 | 9  | 1.25  |
/// | 2 | 0        | 1    | −1013.25 | 0.99 | 8  | 0.92 | 8  | 11 | 1.5   |
/// | 3 | 182.1    | 0.6  | 2026.5   | 1.02 | 15 | 0.85 | 15 | 3  | 5/6   |
/// | 4 | 136.575  | 2/3  | −2026.5  | 0.98 | 5  | 0.95 | 9  | 1  | 0.75  |
/// | 5 | 68.2875  | 0.8  | 0        | 1.00 | 20 | 0.80 | 11 | 16 | 3     |
struct Poll {
    temp: f64,
    pressure: f64,
    h2o: f64,
    velocity: f64,
    o2: f64,
    so2: f64,
    no_ppb: f64,
    no2_ppb: f64,
}

const POLLS: [Poll; 6] = [
    Poll {
        temp: 273.15,
        pressure: 0.0,
        h2o: 10.0,
        velocity: 10.0,
        o2: 6.0,
        so2: 20.0,
        no_ppb: 45_000.0,
        no2_ppb: 4_500.0,
    },
    Poll {
        temp: 91.05,
        pressure: 1013.25,
        h2o: 12.0,
        velocity: 12.0,
        o2: 9.0,
        so2: 24.0,
        no_ppb: 52_800.0,
        no2_ppb: 8_800.0,
    },
    Poll {
        temp: 0.0,
        pressure: -1013.25,
        h2o: 8.0,
        velocity: 8.0,
        o2: 11.0,
        so2: 30.0,
        no_ppb: 36_800.0,
        no2_ppb: 3_680.0,
    },
    Poll {
        temp: 182.1,
        pressure: 2026.5,
        h2o: 15.0,
        velocity: 15.0,
        o2: 3.0,
        so2: 36.0,
        no_ppb: 63_750.0,
        no2_ppb: 6_800.0,
    },
    Poll {
        temp: 136.575,
        pressure: -2026.5,
        h2o: 5.0,
        velocity: 9.0,
        o2: 1.0,
        so2: 40.0,
        no_ppb: 23_750.0,
        no2_ppb: 1_900.0,
    },
    Poll {
        temp: 68.2875,
        pressure: 0.0,
        h2o: 20.0,
        velocity: 11.0,
        o2: 16.0,
        so2: 10.0,
        no_ppb: 40_000.0,
        no2_ppb: 4_800.0,
    },
];

#[allow(clippy::too_many_arguments)]
fn sample(
    device: &str,
    channel: &str,
    quantity: Quantity,
    unit: Unit,
    basis: Basis,
    value: f64,
    status: FlagSet,
    ts: i64,
) -> Sample {
    Sample {
        device: Arc::from(device),
        channel: Arc::from(channel),
        quantity,
        unit,
        basis,
        value,
        status,
        ts: Timestamp(ts),
    }
}

/// The PLC's poll k, in the profile's register order, as its collector hands it over.
fn plc_poll(p: &Poll, ts: i64, status: FlagSet) -> Vec<Sample> {
    let ok = FlagSet::EMPTY;
    let dry = Basis::Dry;
    vec![
        sample(
            "plc",
            "so2",
            Quantity::SO2,
            Unit::MgPerM3,
            dry,
            p.so2,
            ok,
            ts,
        ),
        sample(
            "plc",
            "o2",
            Quantity::O2,
            Unit::PercentVol,
            dry,
            p.o2,
            ok,
            ts,
        ),
        sample(
            "plc",
            "h2o",
            Quantity::Humidity,
            Unit::PercentVol,
            dry,
            p.h2o,
            ok,
            ts,
        ),
        sample(
            "plc",
            "velocity",
            Quantity::Velocity,
            Unit::MetrePerSecond,
            dry,
            p.velocity,
            ok,
            ts,
        ),
        sample(
            "plc",
            "temp",
            Quantity::Temperature,
            Unit::DegC,
            dry,
            p.temp,
            status,
            ts,
        ),
        sample(
            "plc",
            "pressure",
            Quantity::Pressure,
            Unit::Pa,
            dry,
            p.pressure,
            ok,
            ts,
        ),
    ]
}

/// The 42i's poll k: NO (register 0) before NO2 (register 2), ppb, wet.
fn nox_poll(p: &Poll, ts: i64, no2_status: FlagSet) -> Vec<Sample> {
    let wet = Basis::Wet;
    vec![
        sample(
            "nox",
            "no",
            Quantity::NO,
            Unit::Ppb,
            wet,
            p.no_ppb,
            FlagSet::EMPTY,
            ts,
        ),
        sample(
            "nox",
            "no2",
            Quantity::NO2,
            Unit::Ppb,
            wet,
            p.no2_ppb,
            no2_status,
            ts,
        ),
    ]
}

fn processor() -> Processor {
    let loaded = config::parse(Path::new("site.toml"), CONFIG).unwrap_or_else(|e| panic!("{e}"));
    Processor::new(&loaded.config, &loaded.profiles)
}

/// The six polls of the first minute, one batch per device and poll as the collectors send
/// them, then time enough for the minute to close.
fn first_minute() -> Vec<Record> {
    let mut processor = processor();
    let mut records = Vec::new();
    for (k, p) in POLLS.iter().enumerate() {
        let ts = T0 + k as i64 * POLL;
        processor.push(&plc_poll(p, ts, FlagSet::EMPTY), &mut records);
        processor.push(&nox_poll(p, ts + 100, FlagSet::EMPTY), &mut records);
    }
    // minute 00:00 closes once 00:01 plus the 30 s arrival grace has passed
    processor.finish(Timestamp(T0 + 91_000), &mut records);
    records
}

fn readings<'a>(records: &'a [Record], channel: &str) -> Vec<&'a Record> {
    records
        .iter()
        .filter(|r| r.kind == RecordKind::Reading && &*r.channel == channel)
        .collect()
}

fn minute(records: &[Record], q: Quantity) -> &Record {
    records
        .iter()
        .find(|r| r.kind == RecordKind::Minute && r.quantity == Some(q) && r.ts.0 == T0)
        .unwrap_or_else(|| panic!("no {q} minute in {records:#?}"))
}

fn close(got: Option<f64>, want: f64) -> bool {
    got.is_some_and(|g| (g - want).abs() <= 1e-9 * want.abs().max(1.0))
}

#[track_caller]
fn assert_values(got: Vec<Option<f64>>, want: [f64; 6], what: &str) {
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(close(*g, w), "{what} of poll {k}: got {g:?}, want {w}");
    }
    assert_eq!(got.len(), 6, "{what}: {got:?}");
}

#[test]
fn standard_dry_flow_uses_the_same_polls_temperature_pressure_and_moisture() {
    let records = first_minute();
    let flow = readings(&records, "flow");
    // Q_s = v × 20 m2 × 3600 = 72 000 × v m3/h: 720 000, 864 000, 576 000, 1 080 000,
    // 648 000, 792 000.
    assert_values(
        flow.iter().map(|r| r.raw).collect(),
        [
            720_000.0,
            864_000.0,
            576_000.0,
            1_080_000.0,
            648_000.0,
            792_000.0,
        ],
        "Q_s",
    );
    // Q_sn = Q_s × 273.15/(273.15 + t_s) × (101325 + P_s)/101325 × (1 − X_sw):
    // k0: 720 000 × 0.5 × 1.00 × 0.90 = 324 000
    // k1: 864 000 × 0.75 × 1.01 × 0.88 = 648 000 × 1.01 × 0.88 = 654 480 × 0.88 = 575 942.4
    // k2: 576 000 × 1 × 0.99 × 0.92 = 570 240 × 0.92 = 524 620.8
    // k3: 1 080 000 × 0.6 × 1.02 × 0.85 = 648 000 × 1.02 × 0.85 = 660 960 × 0.85 = 561 816
    // k4: 648 000 × 2/3 × 0.98 × 0.95 = 432 000 × 0.98 × 0.95 = 423 360 × 0.95 = 402 192
    // k5: 792 000 × 0.8 × 1.00 × 0.80 = 506 880
    let q_sn = [
        324_000.0, 575_942.4, 524_620.8, 561_816.0, 402_192.0, 506_880.0,
    ];
    assert_values(flow.iter().map(|r| r.measured).collect(), q_sn, "Q_sn");
    assert!(flow
        .iter()
        .all(|r| r.flags.primary() == Flag::N && r.note.is_none()));
    // minute: (324 000 + 575 942.4 + 524 620.8 + 561 816 + 402 192 + 506 880) / 6
    //       = 2 895 451.2 / 6 = 482 575.2 m3/h
    let m = minute(&records, Quantity::Flow);
    assert!(close(m.measured, 482_575.2), "{m:?}");
    assert_eq!((m.count, m.flags.primary()), (Some(6), Flag::N));
}

#[test]
fn dry_basis_uses_the_same_instants_moisture() {
    let records = first_minute();
    // NO: ppb / 1000 × 1.34 mg/m3 wet, / (1 − X_sw) dry. 1.34 × 50 = 67, so with
    // ppb = 50 000 × (1 − X_sw) × m the dry value is 67 × m:
    // k0: 45 000 = 50 000 × 0.90 × 1   → 45 × 1.34 = 60.3 wet / 0.90 = 67
    // k1: 52 800 = 50 000 × 0.88 × 1.2 → 52.8 × 1.34 = 70.752 / 0.88 = 80.4
    // k2: 36 800 = 50 000 × 0.92 × 0.8 → 36.8 × 1.34 = 49.312 / 0.92 = 53.6
    // k3: 63 750 = 50 000 × 0.85 × 1.5 → 63.75 × 1.34 = 85.425 / 0.85 = 100.5
    // k4: 23 750 = 50 000 × 0.95 × 0.5 → 23.75 × 1.34 = 31.825 / 0.95 = 33.5
    // k5: 40 000 = 50 000 × 0.80 × 1   → 40 × 1.34 = 53.6 / 0.80 = 67
    // The moisture is the PLC's of the same round, read 100 ms before.
    let no = readings(&records, "no");
    assert_values(
        no.iter().map(|r| r.measured).collect(),
        [67.0, 80.4, 53.6, 100.5, 33.5, 67.0],
        "NO dry",
    );
    assert_values(
        no.iter().map(|r| r.raw).collect(),
        [45_000.0, 52_800.0, 36_800.0, 63_750.0, 23_750.0, 40_000.0],
        "NO raw (ppb, as received)",
    );
    // NO2: ppb / 1000 × 2.05 wet, / (1 − X_sw): ppb = 1000 × (1 − X_sw) × n gives 2.05 × n:
    // k0: 4 500 = 1000 × 0.90 × 5 → 10.25; k1: 8 800 = 1000 × 0.88 × 10 → 20.5;
    // k2: 3 680 = 1000 × 0.92 × 4 → 8.2;   k3: 6 800 = 1000 × 0.85 × 8 → 16.4;
    // k4: 1 900 = 1000 × 0.95 × 2 → 4.1;   k5: 4 800 = 1000 × 0.80 × 6 → 12.3
    let no2 = readings(&records, "no2");
    assert_values(
        no2.iter().map(|r| r.measured).collect(),
        [10.25, 20.5, 8.2, 16.4, 4.1, 12.3],
        "NO2 dry",
    );
    // minute NO: (67 + 80.4 + 53.6 + 100.5 + 33.5 + 67) / 6 = 402 / 6 = 67
    assert!(close(minute(&records, Quantity::NO).measured, 67.0));
    // minute NO2: (10.25 + 20.5 + 8.2 + 16.4 + 4.1 + 12.3) / 6 = 71.75 / 6 = 11.958333…
    assert!(close(minute(&records, Quantity::NO2).measured, 71.75 / 6.0));
}

#[test]
fn nox_as_no2_combines_no_and_no2_of_the_same_poll() {
    let records = first_minute();
    // NOx = NO × 1.53 + NO2 (dry mg/m3, both from the same poll):
    // k0: 67 × 1.53 = 102.51 + 10.25 = 112.76
    // k1: 80.4 × 1.53 = 123.012 + 20.5 = 143.512
    // k2: 53.6 × 1.53 = 82.008 + 8.2 = 90.208
    // k3: 100.5 × 1.53 = 153.765 + 16.4 = 170.165
    // k4: 33.5 × 1.53 = 51.255 + 4.1 = 55.355
    // k5: 67 × 1.53 = 102.51 + 12.3 = 114.81
    // (with the previous poll's NO2, k1 would be 123.012 + 10.25 = 133.262, and k0 none)
    let nox = readings(&records, "NOx");
    let want = [112.76, 143.512, 90.208, 170.165, 55.355, 114.81];
    assert_values(nox.iter().map(|r| r.measured).collect(), want, "NOx");
    assert!(nox.iter().all(|r| r.flags.primary() == Flag::N));
    // corrected × 15/(21 − O2): k0 112.76 × 1 = 112.76; k1 143.512 × 1.25 = 179.39;
    // k2 90.208 × 1.5 = 135.312; k3 170.165 × 5/6 = 141.804166…; k4 55.355 × 0.75 = 41.51625;
    // k5 114.81 × 3 = 344.43
    let corrected = [
        112.76,
        179.39,
        135.312,
        170.165 * 5.0 / 6.0,
        41.516_25,
        344.43,
    ];
    assert_values(
        nox.iter().map(|r| r.corrected).collect(),
        corrected,
        "NOx corrected",
    );
    // minute: (112.76 + 143.512 + 90.208 + 170.165 + 55.355 + 114.81) / 6 = 686.81 / 6
    //       = 114.468333…; corrected: (112.76 + 179.39 + 135.312 + 141.804166… + 41.51625
    //       + 344.43) / 6 = 955.212416… / 6 = 159.202069…
    let m = minute(&records, Quantity::NOx);
    assert!(close(m.measured, 686.81 / 6.0), "{m:?}");
    assert!(
        close(m.corrected, corrected.iter().sum::<f64>() / 6.0),
        "{m:?}"
    );
    assert!(close(m.corrected, 159.202_069_444_444_4), "{m:?}");
}

#[test]
fn o2_correction_uses_the_same_polls_o2() {
    let records = first_minute();
    // SO2 (dry mg/m3 from the PLC) × 15/(21 − O2):
    // k0: 20 × 15/15 = 20; k1: 24 × 15/12 = 30; k2: 30 × 15/10 = 45; k3: 36 × 15/18 = 30;
    // k4: 40 × 15/20 = 30; k5: 10 × 15/5 = 30
    let so2 = readings(&records, "so2");
    assert_values(
        so2.iter().map(|r| r.corrected).collect(),
        [20.0, 30.0, 45.0, 30.0, 30.0, 30.0],
        "SO2 corrected",
    );
    // minute: measured (20 + 24 + 30 + 36 + 40 + 10) / 6 = 160 / 6 = 26.666…;
    // corrected (20 + 30 + 45 + 30 + 30 + 30) / 6 = 185 / 6 = 30.8333…
    let m = minute(&records, Quantity::SO2);
    assert!(close(m.measured, 160.0 / 6.0), "{m:?}");
    assert!(close(m.corrected, 185.0 / 6.0), "{m:?}");
    assert_eq!(m.flags.primary(), Flag::N);
}

#[test]
fn emission_rate_uses_the_same_polls_flow() {
    let records = first_minute();
    // G = C_dry (not corrected) × Q_sn × 1e-6 kg/h:
    // k0: 20 × 324 000 = 6.48;      k1: 24 × 575 942.4 = 13.822 617 6;
    // k2: 30 × 524 620.8 = 15.738 624; k3: 36 × 561 816 = 20.225 376;
    // k4: 40 × 402 192 = 16.087 68;  k5: 10 × 506 880 = 5.0688
    let rates = [
        6.48,
        13.822_617_6,
        15.738_624,
        20.225_376,
        16.087_68,
        5.0688,
    ];
    let so2 = readings(&records, "so2");
    assert_values(so2.iter().map(|r| r.rate).collect(), rates, "SO2 kg/h");
    // minute: 77.423 097 6 / 6 = 12.903 849 6 kg/h
    let m = minute(&records, Quantity::SO2);
    assert!(close(m.rate, 12.903_849_6), "{m:?}");
}

#[test]
fn one_batch_of_many_polls_gives_the_same_records() {
    // An MQTT message with a series, or a replayed log: all six polls of both devices in
    // one batch. It is taken poll by poll, so the records are those of six separate polls.
    let mut processor = processor();
    let mut batch = Vec::new();
    for (k, p) in POLLS.iter().enumerate() {
        let ts = T0 + k as i64 * POLL;
        batch.extend(plc_poll(p, ts, FlagSet::EMPTY));
        batch.extend(nox_poll(p, ts + 100, FlagSet::EMPTY));
    }
    let mut records = Vec::new();
    processor.push(&batch, &mut records);
    processor.finish(Timestamp(T0 + 91_000), &mut records);
    let key = |r: &Record| (r.kind, r.ts, r.channel.to_string(), r.quantity);
    let mut one = records;
    let mut many = first_minute();
    one.sort_by_key(key);
    many.sort_by_key(key);
    assert_eq!(one, many);
}

#[test]
fn flags_come_from_the_inputs_of_the_same_poll() {
    let mut processor = processor();
    let mut records = Vec::new();
    let m = FlagSet::of(Flag::M);
    // poll 0: the temperature transmitter and the NO2 channel in maintenance; poll 1: both
    // back. Flow and NOx are M in poll 0 only (they stayed M a poll too long, from the
    // previous poll's flags).
    for (k, status) in [(0, m), (1, FlagSet::EMPTY)] {
        let ts = T0 + k * POLL;
        let p = &POLLS[k as usize];
        processor.push(&plc_poll(p, ts, status), &mut records);
        processor.push(&nox_poll(p, ts + 100, status), &mut records);
    }
    let flags = |channel: &str| -> Vec<Flag> {
        readings(&records, channel)
            .iter()
            .map(|r| r.flags.primary())
            .collect()
    };
    assert_eq!(flags("flow"), [Flag::M, Flag::N]);
    assert_eq!(flags("NOx"), [Flag::M, Flag::N]);
    // the PLC's SO2 does not depend on the temperature (its emission rate does, through the
    // flow): valid both times, but no rate from a flow under maintenance
    assert_eq!(flags("so2"), [Flag::N, Flag::N]);
    let so2 = readings(&records, "so2");
    assert_eq!(so2[0].rate, None);
    assert!(close(so2[1].rate, 13.822_617_6));
}

#[test]
fn the_first_flow_after_a_plant_stop_is_not_stopped() {
    let text = CONFIG.replace(
        "frozen_after = \"off\"",
        "frozen_after = \"off\"\nplant_stop = { quantity = \"flow\", below = 100000 }",
    );
    let loaded = config::parse(Path::new("site.toml"), &text).unwrap_or_else(|e| panic!("{e}"));
    let mut processor = Processor::new(&loaded.config, &loaded.profiles);
    let mut records = Vec::new();
    // poll 0: 0.2 m/s → Q_sn = 0.2 × 72 000 × 0.5 × 1 × 0.9 = 6 480 m3/h < 100 000: stopped;
    // poll 1: poll 1's inputs → 575 942.4 m3/h: running again, in this very poll.
    let stopped = Poll {
        velocity: 0.2,
        ..POLLS[0]
    };
    processor.push(&plc_poll(&stopped, T0, FlagSet::EMPTY), &mut records);
    processor.push(
        &plc_poll(&POLLS[1], T0 + POLL, FlagSet::EMPTY),
        &mut records,
    );
    let flow = readings(&records, "flow");
    assert!(close(flow[0].measured, 6_480.0), "{:?}", flow[0]);
    assert_eq!(flow[0].flags.primary(), Flag::F);
    assert!(close(flow[1].measured, 575_942.4), "{:?}", flow[1]);
    assert_eq!(
        flow[1].flags.primary(),
        Flag::N,
        "the plant runs from the poll that shows it"
    );
    // and every other reading of that poll
    let poll1: Vec<_> = records
        .iter()
        .filter(|r| r.kind == RecordKind::Reading && r.ts.0 == T0 + POLL)
        .map(|r| (r.channel.to_string(), r.flags.primary()))
        .collect();
    assert!(poll1.iter().all(|(_, f)| *f == Flag::N), "{poll1:?}");
}

#[test]
fn an_input_from_another_device_is_used_within_its_staleness_bound_only() {
    let mut processor = processor();
    let mut records = Vec::new();
    processor.push(&plc_poll(&POLLS[0], T0, FlagSet::EMPTY), &mut records);
    // the 42i at 15 s is within 1.5 × 10 s of the PLC's poll at 0 s; at 15.001 s it is not
    processor.push(
        &nox_poll(&POLLS[0], T0 + 15_000, FlagSet::EMPTY),
        &mut records,
    );
    processor.push(
        &nox_poll(&POLLS[0], T0 + 15_001, FlagSet::EMPTY),
        &mut records,
    );
    let no = readings(&records, "no");
    assert!(
        close(no[0].measured, 67.0) && close(no[0].corrected, 67.0),
        "{:?}",
        no[0]
    );
    // no moisture within the bound: no dry value, so none corrected either, and the reason
    // (NaN in memory is NULL in the store: no value)
    assert!(no[1].measured.is_none_or(f64::is_nan), "{:?}", no[1]);
    assert_eq!(no[1].corrected, None);
    assert_eq!(no[1].note.as_deref(), Some("no fresh moisture reading"));
    assert_eq!(no[1].raw, Some(45_000.0));
    assert_eq!(no[1].flags.primary(), Flag::N, "nothing failed");
}
