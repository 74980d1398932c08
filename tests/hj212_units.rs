//! Every HJ 212 factor code cemsd uses travels in the unit of HJ 212-2017's code table
//! (Appendix B, Table B.2) and is stored in the unit cemsd keeps the quantity in: the uplink's
//! packet bytes are checked against the table, then the same bytes go through the listener's
//! conversion and must give back the stored values. Real uploads from other data loggers are
//! read the same way.

use std::sync::Arc;

use cemsd::collect::hj212::records::{records_of, ChannelNames};
use cemsd::model::time::UtcOffset;
use cemsd::model::{unit_of, Flag, FlagSet, Quantity, Timestamp, Unit};
use cemsd::protocol::hj212::codes::{code_2017, factor_units};
use cemsd::protocol::hj212::{decode, SystemCode};
use cemsd::sink::hj212::upload::{group_periods, period_packet, to_wire, UploadHeader};
use cemsd::store::{Record, RecordKind, Stored};

/// 2026-01-01 04:00:00 UTC = 12:00:00 at +08:00.
const T0: i64 = 1_767_240_000_000;
const HOUR_MS: i64 = 3_600_000;

/// Per code: the quantity, the unit and value the plant's store holds, and what the packet
/// must say (`Avg` in the code's data type of Table B.2, then `Cou`, as the listener notes it,
/// where the table gives the code a cumulative value; it travels with three decimals). Values
/// are chosen so the conversion is exact, they fit their type without rounding and the text
/// is predictable.
const CASES: [(Quantity, Unit, f64, &str, Option<&str>); 12] = [
    // a00000 废气: 立方米/秒, Cou 立方米. 36 000 m3/h = 10 m3/s; over one hour 36 000 m3.
    (
        Quantity::Flow,
        Unit::CubicMetrePerHour,
        36_000.0,
        "10.0",
        Some("36000"),
    ),
    // a01011 烟气流速 米/秒
    (
        Quantity::Velocity,
        Unit::MetrePerSecond,
        12.25,
        "12.25",
        None,
    ),
    // a01012 烟气温度 摄氏度
    (Quantity::Temperature, Unit::DegC, 120.5, "120.5", None),
    // a01013 烟气压力 千帕: a probe read and stored in Pa, 101 300 Pa = 101.3 kPa.
    (Quantity::Pressure, Unit::Pa, 101_300.0, "101.300", None),
    // a01014 烟气湿度 %
    (Quantity::Humidity, Unit::PercentVol, 8.5, "8.5", None),
    // a19001 氧气含量 %
    (Quantity::O2, Unit::PercentVol, 6.5, "6.5", None),
    // a21002, a21003, a21004, a21005, a21026, a34013: 毫克/立方米, Cou 千克. A rate of
    // 2.5 kg/h over one hour is 2.5 kg.
    (Quantity::NOx, Unit::MgPerM3, 45.5, "45.5", Some("2.5")),
    (Quantity::NO, Unit::MgPerM3, 20.0, "20.0", Some("2.5")),
    (Quantity::NO2, Unit::MgPerM3, 3.5, "3.5", Some("2.5")),
    (Quantity::CO, Unit::MgPerM3, 12.0, "12.000", Some("2.5")),
    (Quantity::SO2, Unit::MgPerM3, 28.5, "28.50", Some("2.5")),
    (Quantity::Dust, Unit::MgPerM3, 4.0, "4", Some("2.5")),
];

fn header() -> UploadHeader {
    UploadHeader {
        st: SystemCode::AirPollutionSource,
        password: "123456".into(),
        mn: "88888880000001".into(),
        ack_required: true,
    }
}

fn hour_record(seq: u64, quantity: Quantity, unit: Unit, value: f64) -> Stored {
    Stored {
        seq,
        record: Record {
            end: Some(Timestamp(T0 + HOUR_MS)),
            quantity: Some(quantity),
            unit: Some(unit),
            measured: Some(value),
            min: Some(value),
            max: Some(value),
            rate: quantity.is_pollutant().then_some(2.5),
            flags: FlagSet::of(Flag::N),
            ..Record::new(
                RecordKind::Hour,
                Timestamp(T0),
                "unit1".into(),
                "".into(),
                "".into(),
            )
        },
    }
}

/// The listener's side: the records it would commit for `wire`.
fn listen(wire: &[u8]) -> Vec<Record> {
    let packet = decode(wire).unwrap_or_else(|e| panic!("decode: {e}"));
    records_of(
        &packet,
        &Arc::from("bureau.unit1"),
        &Arc::from("88888880000001"),
        UtcOffset::CHINA,
        &mut ChannelNames::new(),
    )
    .unwrap_or_else(|e| panic!("records: {e}"))
}

#[test]
fn every_code_travels_in_its_table_unit_and_is_stored_back_in_cemsds() {
    let stored: Vec<Stored> = CASES
        .iter()
        .enumerate()
        .map(|(i, (q, unit, value, _, _))| hour_record(i as u64 + 1, *q, *unit, *value))
        .collect();
    let groups = group_periods(&stored);
    assert_eq!(groups.len(), 1, "one hour of one point");
    let encoded = period_packet(&header(), "20260101130000000", &groups[0], UtcOffset::CHINA);
    assert_eq!(encoded.left_out, vec![], "every unit converts exactly");
    let mut next = 0;
    let parts = to_wire(&encoded.packet, || {
        next += 1;
        format!("2026010113000000{next}")
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let text: String = parts
        .iter()
        .map(|p| String::from_utf8_lossy(&p.bytes).into_owned())
        .collect();

    // Uplink bytes: each code in the table's unit.
    for (quantity, _, _, avg, cou) in CASES {
        let code = code_2017(quantity).unwrap_or_else(|| panic!("{quantity} has a code"));
        let units = factor_units(code).unwrap_or_else(|| panic!("{code} is in the table"));
        assert!(units.value.is_some(), "{code} has a fixed unit");
        let expected = match cou {
            Some(cou) => format!(
                "{code}-Avg={avg},{code}-Min={avg},{code}-Max={avg},{code}-Cou={:.3},{code}-Flag=N",
                cou.parse::<f64>().unwrap_or(f64::NAN)
            ),
            None => format!("{code}-Avg={avg},{code}-Min={avg},{code}-Max={avg},{code}-Flag=N"),
        };
        assert!(text.contains(&expected), "{expected} in\n{text}");
    }
    assert!(
        !text.contains("a00000-Avg=36000"),
        "flow went out in m3/h:\n{text}"
    );

    // Listener: the same bytes stored back in the store's units.
    let received: Vec<Record> = parts.iter().flat_map(|part| listen(&part.bytes)).collect();
    for (quantity, unit, value, _, cou) in CASES {
        let code = code_2017(quantity).unwrap_or_else(|| panic!("{quantity} has a code"));
        let record = received
            .iter()
            .find(|r| &*r.channel == code)
            .unwrap_or_else(|| panic!("no record for {code}"));
        let want_unit = unit_of(quantity);
        let want = unit
            .convert(value, want_unit)
            .unwrap_or_else(|| panic!("{unit} → {want_unit}"));
        assert_eq!(record.quantity, Some(quantity), "{code}");
        assert_eq!(record.unit, Some(want_unit), "{code}");
        for (field, got) in [
            ("Avg", record.measured),
            ("Min", record.min),
            ("Max", record.max),
        ] {
            let got = got.unwrap_or(f64::NAN);
            assert!(
                (got - want).abs() <= 1e-12 * want.abs(),
                "{code}-{field}: stored {got} {want_unit}, expected {want}"
            );
        }
        assert_eq!(
            record.note.as_deref(),
            cou.map(|c| format!("cou={c}")).as_deref(),
            "{code}"
        );
    }
    let flow = received
        .iter()
        .find(|r| &*r.channel == "a00000")
        .and_then(|r| r.measured);
    assert_eq!(flow, Some(36_000.0), "10 m3/s stored as 36 000 m3/h");
}

/// Real uploads of other data loggers, as published: each value read in the code table's
/// unit and stored in cemsd's.
#[test]
fn real_uploads_are_read_in_the_table_units() {
    // A 2061 hour upload quoted in a public PHP HJ 212 parser's test controller
    // (`app\api\controller\Test`, dated 2024-01-23): a00000-Avg=5.331 (m3/s) with
    // Cou=19191.973 (m3, ≈ 5.331 × 3600), a01013 in kPa (−0.026 = −26 Pa static pressure).
    let php = b"##0612QN=20240123101501421;ST=31;CN=2061;PW=123456;MN=81733553216103;Flag=4;CP=&&DataTime=20240122170000;a00000-Cou=19191.973,a00000-Min=5.051,a00000-Avg=5.331,a00000-Max=5.617,a00000-Flag=N;a01011-Min=6.686,a01011-Avg=7.029,a01011-Max=7.425,a01011-Flag=N;a01013-Min=-0.041,a01013-Avg=-0.026,a01013-Max=0.011,a01013-Flag=N;a01012-Min=8.074,a01012-Avg=8.524,a01012-Max=8.789,a01012-Flag=N;a24088-Cou=0.018,a24088-Min=0.665,a24088-Avg=0.933,a24088-Max=1.418,a24088-Flag=N;a05002-Cou=0.000,a05002-Min=0.000,a05002-Avg=0.000,a05002-Max=0.000,a05002-Flag=N;a01014-Min=0.828,a01014-Avg=1.040,a01014-Max=1.239,a01014-Flag=N&&0E40";
    // A 2061 hour upload in a public Go HJ 212 receiver's test (`engine_test`,
    // `TestReceiveBuffer1`, MN NEWPROTOCOLTEST000000092): a00000-Avg=3.9151 (m3/s) with
    // Cou=12758.2462 (m3: 3.9151 m3/s would give 14 094 m3 over a whole hour, so the logger
    // counted about 54 minutes), a19001 15.19 %, a01014 9.61 %. Its a01013 (−123) reads as
    // Pa although the table says kPa: cemsd reads the table's unit, as a platform must.
    let go = b"##0813QN=20210722140000509;ST=31;CN=2061;PW=123456;MN=NEWPROTOCOLTEST000000092;Flag=4;CP=&&DataTime=20210722130000;a24088-Min=0.0000,a24088-Avg=0.0196,a24088-Max=0.1988,a24088-Cou=0.0003,a24088-Flag=N;a01012-Min=38.9250,a01012-Avg=39.7515,a01012-Max=40.7387,a01012-Flag=T;a01013-Min=-130.7116,a01013-Avg=-123.0723,a01013-Max=-115.9674,a01013-Flag=T;a01011-Min=5.4136,a01011-Avg=5.7286,a01011-Max=5.8780,a01011-Flag=T;a05002-Min=0.0110,a05002-Avg=0.1293,a05002-Max=1.1489,a05002-Cou=0.0017,a05002-Flag=N;a24087-Min=0.0110,a24087-Avg=0.1489,a24087-Max=1.3478,a24087-Cou=0.0019,a24087-Flag=N;a01014-Min=9.4451,a01014-Avg=9.6075,a01014-Max=9.9131,a01014-Flag=T;a19001-Min=15.1661,a19001-Avg=15.1909,a19001-Max=15.2188,a19001-Flag=T;a00000-Min=3.7077,a00000-Avg=3.9151,a00000-Max=4.0276,a00000-Cou=12758.2462,a00000-Flag=N&&5140";
    let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() <= 1e-9 * b.abs());
    let cases: [(&[u8], &str, f64, &str); 2] = [
        (php, "5.331", 19_191.6, "cou=19191.973"),
        (go, "3.9151", 14_094.36, "cou=12758.2462"),
    ];
    for (wire, avg, m3h, cou) in cases {
        let records = listen(wire);
        let flow = records
            .iter()
            .find(|r| &*r.channel == "a00000")
            .unwrap_or_else(|| panic!("no flow record"));
        assert_eq!(flow.unit, Some(Unit::CubicMetrePerHour));
        assert!(
            close(flow.measured, m3h),
            "{avg} m3/s → {:?}",
            flow.measured
        );
        assert_eq!(flow.note.as_deref(), Some(cou), "the volume, as sent");
        for (code, unit) in [
            ("a01011", Unit::MetrePerSecond),
            ("a01012", Unit::DegC),
            ("a01013", Unit::KPa),
            ("a01014", Unit::PercentVol),
        ] {
            let record = records
                .iter()
                .find(|r| &*r.channel == code)
                .unwrap_or_else(|| panic!("no record for {code}"));
            assert_eq!(record.unit, Some(unit), "{code}");
        }
    }
    // The PHP packet's pressure is stored as sent, in kPa.
    let pressure = listen(php)
        .into_iter()
        .find(|r| &*r.channel == "a01013")
        .and_then(|r| r.measured);
    assert_eq!(pressure, Some(-0.026));
}
