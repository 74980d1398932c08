//! Upload packets (CN 2011 real-time, 2051 minute, 2061 hour, 2031 day) as store records:
//! what the HJ 212 listener commits for a data logger.
//!
//! One record per factor code, in the order the codes first appear: stack = the measuring
//! point configured for the MN, device = MN, channel = the factor code as sent, quantity from
//! the code (2017 or HJ/T 212-2005 edition). A code without a known meaning is still stored,
//! with quantity and unit `None`, so nothing a logger sent is dropped.
//!
//! Fields: `Rtd` → raw and measured, `ZsRtd` → corrected, `Avg` → measured, `ZsAvg` →
//! corrected, `Min`/`Max` → min/max, `ZsMin`/`ZsMax` → corrected_min/corrected_max, `Flag` →
//! flags. `Cou` (the period's cumulative value: kg of a pollutant, m3 of flue gas for
//! a00000) has no column: it goes into `note` as `cou=<value>`, as sent. Other suffixes
//! (ValidNum, EFlag, Info …) are not stored.
//!
//! Units: a logger states each value in the unit of its code in the standard's code table
//! ([`codes::factor_units`]: HJ 212-2017 Table B.2, flow a00000 in m3/s); the store keeps the
//! unit cemsd reports the quantity in ([`unit_of`]: flow in m3/h), so values are converted
//! here, at the edge. A code whose unit loggers do not keep to (the HJ/T 212-2005 B02 and
//! S08) is stored as sent, without a unit.
//!
//! An upload repeated after a lost ack is converted, stored and acked again: the store is
//! append-only and InfluxDB downstream keys points by series and time, so the repeat is
//! harmless there.

use std::fmt;
use std::sync::Arc;

use chrono::{NaiveDateTime, Timelike};

use crate::model::time::{Period, UtcOffset};
use crate::model::{FlagSet, Quantity, Timestamp, Unit};
use crate::store::{Record, RecordKind};

use crate::model::unit_of;
use crate::protocol::hj212::codes::{self, CommandCode};
use crate::protocol::hj212::{parse_data_time, parse_qn, FieldKind, Packet};

/// Why an upload could not become records. Names the factor and field at fault, so a
/// technician can find it in the logger's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordsError {
    /// Not one of the four data uploads.
    UnsupportedCommand(CommandCode),
    MissingDataTime,
    /// DataTime is not `YYYYMMDDhhmmss` (or the 17-digit form with milliseconds).
    BadDataTime(String),
    /// A minute, hour or day DataTime that is not the start of its period.
    NotPeriodStart {
        data_time: String,
        period: Period,
    },
    /// A value that must be a finite number is not.
    NotANumber {
        code: String,
        field: String,
        value: String,
    },
}

impl fmt::Display for RecordsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordsError::UnsupportedCommand(cn) => {
                write!(f, "CN={cn} is not a data upload (2011, 2051, 2061 or 2031)")
            }
            RecordsError::MissingDataTime => write!(f, "the upload has no DataTime"),
            RecordsError::BadDataTime(text) => {
                write!(f, "DataTime={text:?} is not a time YYYYMMDDhhmmss")
            }
            RecordsError::NotPeriodStart { data_time, period } => write!(
                f,
                "DataTime={data_time} is not the start of a {} (HJ 212-2017 C.16-C.18: the start of the period)",
                period.name()
            ),
            RecordsError::NotANumber { code, field, value } => {
                write!(f, "{code}-{field}={value:?} is not a number")
            }
        }
    }
}

impl std::error::Error for RecordsError {}

/// For factor `code` (standing for `quantity`): the unit its values arrive in (the
/// standard's code table) and the unit they are stored in (the quantity's reporting unit,
/// [`unit_of`]). `None` when the code has no fixed unit, or none that converts exactly.
fn conversion(code: &str, quantity: Quantity) -> Option<(Unit, Unit)> {
    let wire = codes::factor_units(code)?.value?;
    let stored = unit_of(quantity);
    wire.convert(1.0, stored).map(|_| (wire, stored))
}

/// `value` as a logger sends it for factor `code`, in the unit the listener stores it in:
/// 5.331 (m3/s) of a00000 is 19 191.6 (m3/h). `None` for a code without a fixed unit.
pub fn from_hj212_unit(code: &str, value: f64) -> Option<(f64, Unit)> {
    let quantity = codes::quantity_of(code)?.0;
    let (wire, stored) = conversion(code, quantity)?;
    Some((wire.convert(value, stored)?, stored))
}

/// The record kind an upload command carries, with its period length for aggregates.
pub fn kind_of(cn: CommandCode) -> Option<(RecordKind, Option<Period>)> {
    Some(match cn {
        CommandCode::RealTimeData => (RecordKind::Reading, None),
        CommandCode::MinuteData => (RecordKind::Minute, Some(Period::Minute)),
        CommandCode::HourData => (RecordKind::Hour, Some(Period::Hour)),
        CommandCode::DayData => (RecordKind::Day, Some(Period::Day)),
        _ => return None,
    })
}

/// Why a minute, hour or day upload cannot be stored where it says: its DataTime (local time)
/// is not the start of a `period` (HJ 212-2017 Tables C.16-C.18: DataTime "表示一个时间段的
/// 开始时间点"; minute data 精确到分钟, hour data 精确到小时). Such an upload would overlap the
/// periods beside it and move the next history pull off the period grid, so it is refused,
/// never aligned on a guess: the standard gives no rule for moving it. `None` when the
/// DataTime is a period start, or is missing or unreadable (which `records_of` reports).
pub fn not_a_period_start(packet: &Packet, period: Period) -> Option<RecordsError> {
    let text = packet.cp.data_time()?;
    let local = match text.len() {
        14 => parse_data_time(text),
        17 => parse_qn(text),
        _ => None,
    }?;
    let seconds_in = local.second() != 0 || local.nanosecond() != 0;
    let starts = match period {
        Period::Minute => !seconds_in,
        Period::Hour => !seconds_in && local.minute() == 0,
        Period::Day => !seconds_in && local.minute() == 0 && local.hour() == 0,
    };
    (!starts).then(|| RecordsError::NotPeriodStart {
        data_time: text.to_string(),
        period,
    })
}

/// DataTime (local, in `zone`) as UTC. Accepts the 14-digit form of the standard and the
/// 17-digit form with milliseconds some loggers send.
pub fn data_time_utc(text: &str, zone: UtcOffset) -> Result<Timestamp, RecordsError> {
    let local: Option<NaiveDateTime> = match text.len() {
        14 => parse_data_time(text),
        17 => parse_qn(text),
        _ => None,
    };
    let local = local.ok_or_else(|| RecordsError::BadDataTime(text.to_string()))?;
    Ok(zone.instant_of(local))
}

/// Factor codes of one connection as shared `Arc<str>` channel names. A logger sends the
/// same few codes in every upload: reusing the names saves an allocation per record, and
/// the store's series lookup recognises a name it has seen by its pointer.
#[derive(Debug, Default)]
pub struct ChannelNames {
    names: Vec<Arc<str>>,
}

impl ChannelNames {
    /// More codes than any analyser set uses; a peer sending ever new codes only makes the
    /// list start over, it cannot grow it.
    const LIMIT: usize = 64;

    pub fn new() -> ChannelNames {
        ChannelNames::default()
    }

    pub fn name(&mut self, code: &str) -> Arc<str> {
        if let Some(name) = self.names.iter().find(|name| ***name == *code) {
            return name.clone();
        }
        if self.names.len() >= Self::LIMIT {
            self.names.clear();
        }
        let name: Arc<str> = Arc::from(code);
        self.names.push(name.clone());
        name
    }
}

/// The records of one (whole, reassembled) upload from the logger on `stack` with id
/// `device` (its MN). `zone` is the logger's local offset, for DataTime; `channels` holds
/// the codes this logger sent before.
pub fn records_of(
    packet: &Packet,
    stack: &Arc<str>,
    device: &Arc<str>,
    zone: UtcOffset,
    channels: &mut ChannelNames,
) -> Result<Vec<Record>, RecordsError> {
    let (kind, period) = kind_of(packet.cn).ok_or(RecordsError::UnsupportedCommand(packet.cn))?;
    let data_time = packet.cp.data_time().ok_or(RecordsError::MissingDataTime)?;
    let ts = data_time_utc(data_time, zone)?;
    let end = period.map(|p| Timestamp(ts.0 + p.millis()));

    // One group per factor is the usual layout, so this rarely grows.
    let mut records: Vec<Record> = Vec::with_capacity(packet.cp.groups.len());
    // Per record, the unit its code's values arrive in and the unit they are stored in.
    let mut conversions: Vec<Option<(Unit, Unit)>> = Vec::with_capacity(records.capacity());
    // The fields of a factor group share one code string: look its record up once.
    let mut last: Option<(&str, usize)> = None;
    for value in packet.cp.values() {
        let known = match last {
            Some((code, index)) if std::ptr::eq(code, value.code) => Some(index),
            _ => records.iter().position(|r| &*r.channel == value.code),
        };
        let index = match known {
            Some(index) => index,
            None => {
                let quantity = codes::quantity_of(value.code).map(|(q, _)| q);
                let conversion = quantity.and_then(|q| conversion(value.code, q));
                conversions.push(conversion);
                records.push(Record {
                    end,
                    quantity,
                    unit: conversion.map(|(_, stored)| stored),
                    ..Record::new(
                        kind,
                        ts,
                        stack.clone(),
                        device.clone(),
                        channels.name(value.code),
                    )
                });
                records.len() - 1
            }
        };
        last = Some((value.code, index));
        let record = &mut records[index];
        let as_sent = || -> Result<f64, RecordsError> {
            value
                .value
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| RecordsError::NotANumber {
                    code: value.code.to_string(),
                    field: value.kind.name().to_string(),
                    value: value.value.to_string(),
                })
        };
        // From the code's unit on the wire to the unit the record is stored in; a code
        // without a fixed unit is stored as sent.
        let conversion = conversions[index];
        let number = || -> Result<f64, RecordsError> {
            let x = as_sent()?;
            Ok(match conversion {
                Some((wire, stored)) => wire.convert(x, stored).unwrap_or(x),
                None => x,
            })
        };
        match value.kind {
            FieldKind::Rtd => {
                let x = number()?;
                record.raw = Some(x);
                record.measured = Some(x);
            }
            FieldKind::Avg => record.measured = Some(number()?),
            FieldKind::ZsRtd | FieldKind::ZsAvg => record.corrected = Some(number()?),
            FieldKind::Min => record.min = Some(number()?),
            FieldKind::Max => record.max = Some(number()?),
            FieldKind::ZsMin => record.corrected_min = Some(number()?),
            FieldKind::ZsMax => record.corrected_max = Some(number()?),
            FieldKind::Cou => record.note = Some(format!("cou={}", as_sent()?)),
            FieldKind::Flag => {
                // The decoder has refused flags outside N T S C M D F B.
                if let Ok(flag) = value.value.parse() {
                    record.flags = FlagSet::of(flag);
                }
            }
            FieldKind::Other(_) => {}
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Flag;
    use crate::model::{Quantity, Unit};
    use crate::protocol::hj212::{decode, CommandParams, Factor, SystemCode};

    fn origin() -> (Arc<str>, Arc<str>) {
        (Arc::from("plant-a.unit1"), Arc::from("MN0001"))
    }

    fn upload(cn: CommandCode, cp: CommandParams) -> Packet {
        let mut packet = Packet::new(SystemCode::AirPollutionSource, cn, "MN0001");
        packet.cp = cp;
        packet
    }

    fn convert(packet: &Packet) -> Result<Vec<Record>, RecordsError> {
        let (stack, device) = origin();
        records_of(
            packet,
            &stack,
            &device,
            UtcOffset::CHINA,
            &mut ChannelNames::new(),
        )
    }

    // 2026-01-01 12:00:00 +08:00 = 2026-01-01T04:00:00Z = 1_767_240_000_000 ms.
    const NOON_CST: i64 = 1_767_240_000_000;

    #[test]
    fn hour_upload_fills_every_aggregate_column() {
        let packet = upload(
            CommandCode::HourData,
            CommandParams::new()
                .with_data_time("20260101120000")
                .with_factor(
                    Factor::new("a21026")
                        .with(FieldKind::Avg, "31.25")
                        .with(FieldKind::ZsAvg, "40.5")
                        .with(FieldKind::Min, "20")
                        .with(FieldKind::Max, "44.125")
                        .with(FieldKind::ZsMin, "26")
                        .with(FieldKind::ZsMax, "57.75")
                        .with(FieldKind::Cou, "0.4375")
                        .with_flag(Flag::T),
                )
                .with_factor(
                    Factor::new("a19001")
                        .with(FieldKind::Avg, "6.2")
                        .with_flag(Flag::N),
                ),
        );
        let records = convert(&packet).unwrap_or_else(|e| panic!("{e}"));
        let (stack, device) = origin();
        let so2 = Record {
            end: Some(Timestamp(NOON_CST + 3_600_000)),
            quantity: Some(Quantity::SO2),
            unit: Some(Unit::MgPerM3),
            flags: FlagSet::of(Flag::T),
            measured: Some(31.25),
            corrected: Some(40.5),
            min: Some(20.0),
            max: Some(44.125),
            corrected_min: Some(26.0),
            corrected_max: Some(57.75),
            note: Some("cou=0.4375".into()),
            ..Record::new(
                RecordKind::Hour,
                Timestamp(NOON_CST),
                stack.clone(),
                device.clone(),
                "a21026".into(),
            )
        };
        let o2 = Record {
            end: Some(Timestamp(NOON_CST + 3_600_000)),
            quantity: Some(Quantity::O2),
            unit: Some(Unit::PercentVol),
            flags: FlagSet::of(Flag::N),
            measured: Some(6.2),
            ..Record::new(
                RecordKind::Hour,
                Timestamp(NOON_CST),
                stack,
                device,
                "a19001".into(),
            )
        };
        assert_eq!(records, vec![so2, o2]);
    }

    #[test]
    fn kinds_and_periods_follow_the_command() {
        let cases = [
            (CommandCode::RealTimeData, RecordKind::Reading, None),
            (
                CommandCode::MinuteData,
                RecordKind::Minute,
                Some(NOON_CST + 60_000),
            ),
            (
                CommandCode::DayData,
                RecordKind::Day,
                Some(NOON_CST + 86_400_000),
            ),
        ];
        for (cn, kind, end) in cases {
            let packet = upload(
                cn,
                CommandParams::new()
                    .with_data_time("20260101120000")
                    .with_factor(Factor::new("a34013").with(FieldKind::Rtd, "5")),
            );
            let records = convert(&packet).unwrap_or_else(|e| panic!("{cn}: {e}"));
            assert_eq!(records.len(), 1, "{cn}");
            assert_eq!(records[0].kind, kind, "{cn}");
            assert_eq!(records[0].end.map(|t| t.0), end, "{cn}");
            assert_eq!(records[0].quantity, Some(Quantity::Dust));
        }
    }

    #[test]
    fn real_time_rtd_is_raw_and_measured_and_zsrtd_corrected() {
        let packet = upload(
            CommandCode::RealTimeData,
            CommandParams::new()
                .with_data_time("20260101120000")
                .with_factor(
                    Factor::new("a21002")
                        .with(FieldKind::Rtd, "48.5")
                        .with(FieldKind::ZsRtd, "61")
                        .with_flag(Flag::C),
                ),
        );
        let records = convert(&packet).unwrap_or_else(|e| panic!("{e}"));
        let r = &records[0];
        assert_eq!(
            (r.raw, r.measured, r.corrected, r.flags.primary(), r.end),
            (Some(48.5), Some(48.5), Some(61.0), Flag::C, None)
        );
        assert_eq!(r.quantity, Some(Quantity::NOx));
    }

    #[test]
    fn errors_name_the_factor_and_field() {
        let bad_value = upload(
            CommandCode::MinuteData,
            CommandParams::new()
                .with_data_time("20260101120000")
                .with_factor(Factor::new("a21026").with(FieldKind::Avg, "12.5"))
                .with_factor(Factor::new("a19001").with(FieldKind::Max, "n/a")),
        );
        let err = convert(&bad_value).err();
        assert_eq!(
            err,
            Some(RecordsError::NotANumber {
                code: "a19001".into(),
                field: "Max".into(),
                value: "n/a".into()
            })
        );
        assert_eq!(
            err.map(|e| e.to_string()).as_deref(),
            Some("a19001-Max=\"n/a\" is not a number")
        );
        let infinite = upload(
            CommandCode::MinuteData,
            CommandParams::new()
                .with_data_time("20260101120000")
                .with_factor(Factor::new("a21026").with(FieldKind::Avg, "inf")),
        );
        assert!(matches!(
            convert(&infinite),
            Err(RecordsError::NotANumber { .. })
        ));
        let no_time = upload(
            CommandCode::HourData,
            CommandParams::new().with_factor(Factor::new("a21026").with(FieldKind::Avg, "1")),
        );
        assert_eq!(convert(&no_time), Err(RecordsError::MissingDataTime));
        let bad_time = upload(
            CommandCode::HourData,
            CommandParams::new().with_data_time("20261301120000"),
        );
        assert_eq!(
            convert(&bad_time),
            Err(RecordsError::BadDataTime("20261301120000".into()))
        );
        let request = upload(CommandCode::SetTime, CommandParams::new());
        assert_eq!(
            convert(&request),
            Err(RecordsError::UnsupportedCommand(CommandCode::SetTime))
        );
    }

    #[test]
    fn channel_names_are_shared_across_uploads_and_bounded() {
        let (stack, device) = origin();
        let mut channels = ChannelNames::new();
        let packet = upload(
            CommandCode::MinuteData,
            CommandParams::new()
                .with_data_time("20260101120000")
                .with_factor(Factor::new("a21026").with(FieldKind::Avg, "1"))
                .with_factor(Factor::new("a19001").with(FieldKind::Avg, "2")),
        );
        let mut convert = || {
            records_of(&packet, &stack, &device, UtcOffset::CHINA, &mut channels)
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let (first, second) = (convert(), convert());
        assert_eq!(first, second);
        for (a, b) in first.iter().zip(&second) {
            assert!(Arc::ptr_eq(&a.channel, &b.channel), "{} reused", a.channel);
        }
        // 64 other codes later the list has started over: a21026 is a new string.
        let mut names = ChannelNames::new();
        let kept = names.name("a21026");
        for i in 0..64 {
            names.name(&format!("x{i}"));
        }
        let again = names.name("a21026");
        assert_eq!(*again, *kept);
        assert!(!Arc::ptr_eq(&kept, &again));
    }

    #[test]
    fn unknown_codes_are_kept_without_quantity() {
        let packet = upload(
            CommandCode::MinuteData,
            CommandParams::new()
                .with_data_time("20260101120000")
                .with_factor(Factor::new("a99999").with(FieldKind::Avg, "3")),
        );
        let records = convert(&packet).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(records.len(), 1);
        assert_eq!(&*records[0].channel, "a99999");
        assert_eq!((records[0].quantity, records[0].unit), (None, None));
        assert_eq!(records[0].measured, Some(3.0));
    }

    #[test]
    fn data_time_with_milliseconds_and_other_zones() {
        // 2021-03-05 00:38:17.000 at +08:00 = 2021-03-04T16:38:17Z = 1_614_875_897_000 ms.
        assert_eq!(
            data_time_utc("20210305003817000", UtcOffset::CHINA),
            Ok(Timestamp(1_614_875_897_000))
        );
        // The same wall time in UTC is 8 h = 28_800_000 ms later.
        assert_eq!(
            data_time_utc("20210305003817", UtcOffset::UTC),
            Ok(Timestamp(1_614_875_897_000 + 28_800_000))
        );
        assert!(data_time_utc("2021030500381", UtcOffset::UTC).is_err());
    }

    /// The TianHong data segment (tests/fixtures/hj212, `tianhong_data_segment_framed`):
    /// HJ/T 212-2005 codes, a mixed `05-Rtd=6.8,S05-Flag=N` group, no MN.
    #[test]
    fn tianhong_2005_codes_map_to_quantities() {
        let wire = b"##0511QN=20200707151756756;ST=31;CN=2011;CP=&&DataTime=20200707151756;01-Rtd=0000,01-ZsRtd=0000,01-Cou=000.4,01-Flag=N;02-Rtd=0000,02-ZsRtd=0000,02-Cou=000.0,02-Flag=N;03-Rtd=0031,03-ZsRtd=0000,03-Cou=030.7,03-Flag=N;S01-Rtd=20.9,S01-Flag=N;S02-Rtd=09.676,S02-Flag=N;S03-Rtd=092,S03-Flag=N;S04-Rtd=-1920.00,S04-Flag=N;S07-Rtd=000.8,S07-Flag=N;S08-Rtd=-1857,S08-Flag=N;S09-Rtd=101325,S09-Flag=N;05-Rtd=6.8,S05-Flag=N;F01-Rtd=19278,F01-Flag=N;F02-Rtd=19278,F02-Flag=N;G01-Rtd=7.00,G01-Flag=N;B02-Rtd=19278,B02-Flag=N;&&1680";
        let packet = decode(wire).unwrap_or_else(|e| panic!("{e}"));
        let records = convert(&packet).unwrap_or_else(|e| panic!("{e}"));
        // 15 groups, the mixed one giving two codes (05 and S05): 16 records.
        assert_eq!(records.len(), 16);
        let find = |code: &str| {
            records
                .iter()
                .find(|r| &*r.channel == code)
                .unwrap_or_else(|| panic!("no record for {code}"))
        };
        let nox = find("03");
        assert_eq!(nox.quantity, Some(Quantity::NOx));
        assert_eq!((nox.raw, nox.corrected), (Some(31.0), Some(0.0)));
        assert_eq!(nox.note.as_deref(), Some("cou=30.7"));
        assert_eq!(find("S01").quantity, Some(Quantity::O2));
        assert_eq!(find("S01").measured, Some(20.9));
        assert_eq!(find("S08").quantity, Some(Quantity::Pressure));
        assert_eq!(find("S08").measured, Some(-1857.0));
        assert_eq!(find("B02").quantity, Some(Quantity::Flow));
        // B02 in m3/h and S08 in Pa here, against the 2017 table's m3/s and kPa: stored as
        // sent, without a unit that would be wrong for one of them.
        assert_eq!(
            (find("B02").unit, find("B02").measured),
            (None, Some(19278.0))
        );
        assert_eq!(find("S08").unit, None);
        assert_eq!(find("S01").unit, Some(Unit::PercentVol));
        assert_eq!(find("S04").quantity, None, "no meaning known for S04");
        let humidity = find("S05");
        assert_eq!(humidity.quantity, Some(Quantity::Humidity));
        assert_eq!(
            (humidity.measured, humidity.flags),
            (None, FlagSet::of(Flag::N))
        );
        // 2020-07-07 15:17:56 +08:00 = 07:17:56Z = 1_594_106_276_000 ms.
        assert!(records.iter().all(|r| r.ts == Timestamp(1_594_106_276_000)));
        assert!(records.iter().all(|r| r.kind == RecordKind::Reading));
    }

    /// A real 2061 hour upload quoted in a public PHP HJ 212 parser's test controller
    /// (`app\api\controller\Test`, 2024-01-23); the CRC 0E40 checks. Flow a00000 arrives in
    /// m3/s with its volume as Cou (5.331 m3/s × 3600 s ≈ 19 191.973 m3) and is stored in
    /// m3/h; pressure a01013 is in kPa.
    #[test]
    fn real_hour_upload_flow_is_stored_in_cubic_metres_per_hour() {
        let wire = b"##0612QN=20240123101501421;ST=31;CN=2061;PW=123456;MN=81733553216103;Flag=4;CP=&&DataTime=20240122170000;a00000-Cou=19191.973,a00000-Min=5.051,a00000-Avg=5.331,a00000-Max=5.617,a00000-Flag=N;a01011-Min=6.686,a01011-Avg=7.029,a01011-Max=7.425,a01011-Flag=N;a01013-Min=-0.041,a01013-Avg=-0.026,a01013-Max=0.011,a01013-Flag=N;a01012-Min=8.074,a01012-Avg=8.524,a01012-Max=8.789,a01012-Flag=N;a24088-Cou=0.018,a24088-Min=0.665,a24088-Avg=0.933,a24088-Max=1.418,a24088-Flag=N;a05002-Cou=0.000,a05002-Min=0.000,a05002-Avg=0.000,a05002-Max=0.000,a05002-Flag=N;a01014-Min=0.828,a01014-Avg=1.040,a01014-Max=1.239,a01014-Flag=N&&0E40";
        let packet = decode(wire).unwrap_or_else(|e| panic!("{e}"));
        let records = convert(&packet).unwrap_or_else(|e| panic!("{e}"));
        let find = |code: &str| {
            records
                .iter()
                .find(|r| &*r.channel == code)
                .unwrap_or_else(|| panic!("no record for {code}"))
        };
        let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() <= 1e-9 * b.abs());
        let flow = find("a00000");
        assert_eq!(flow.quantity, Some(Quantity::Flow));
        assert_eq!(flow.unit, Some(Unit::CubicMetrePerHour));
        // 5.331 × 3600 = 19 191.6; 5.051 × 3600 = 18 183.6; 5.617 × 3600 = 20 221.2
        assert!(close(flow.measured, 19_191.6), "{flow:?}");
        assert!(close(flow.min, 18_183.6), "{flow:?}");
        assert!(close(flow.max, 20_221.2), "{flow:?}");
        assert_eq!(flow.note.as_deref(), Some("cou=19191.973"), "m3, as sent");
        let pressure = find("a01013");
        assert_eq!(
            (pressure.unit, pressure.measured),
            (Some(Unit::KPa), Some(-0.026))
        );
        let velocity = find("a01011");
        assert_eq!(
            (velocity.unit, velocity.measured),
            (Some(Unit::MetrePerSecond), Some(7.029))
        );
        assert_eq!(find("a01012").unit, Some(Unit::DegC));
        assert_eq!(find("a01014").unit, Some(Unit::PercentVol));
        assert_eq!(find("a01014").measured, Some(1.04));
        // VOC codes cemsd does not know are kept, unconverted, without a unit.
        let unknown = find("a24088");
        assert_eq!((unknown.unit, unknown.measured), (None, Some(0.933)));
        assert_eq!(
            from_hj212_unit("a00000", 5.331).map(|(_, u)| u),
            Some(Unit::CubicMetrePerHour)
        );
        assert_eq!(from_hj212_unit("B02", 19_278.0), None, "no fixed unit");
    }

    /// guocay/hj212-protocol SAMPLE[0] from tests/fixtures/hj212 (ambient air, 2017 codes).
    #[test]
    fn guocay_real_time_fixture() {
        let wire = b"##0317QN=20191012133710130;ST=22;CN=2011;PW=123456;MN=Y80110010000010;Flag=4;CP=&&DataTime=20191012133710;a21005-Rtd=0.00,a21005-Flag=N;a21004-Rtd=0.00,a21004-Flag=N;a21007-Rtd=0.033,a21007-Flag=N;a21006-Rtd=0.036,a21006-Flag=N;a21001-Rtd=25.40,a21001-Flag=N;a21003-Rtd=101.94,a21003-Flag=N;a21002-Rtd=49.20,a21002-Flag=N&&cc01";
        let packet = decode(wire).unwrap_or_else(|e| panic!("{e}"));
        let records = convert(&packet).unwrap_or_else(|e| panic!("{e}"));
        let summary: Vec<_> = records
            .iter()
            .map(|r| (r.channel.to_string(), r.quantity, r.measured))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("a21005".into(), Some(Quantity::CO), Some(0.0)),
                ("a21004".into(), Some(Quantity::NO2), Some(0.0)),
                ("a21007".into(), None, Some(0.033)),
                ("a21006".into(), None, Some(0.036)),
                ("a21001".into(), None, Some(25.4)),
                ("a21003".into(), Some(Quantity::NO), Some(101.94)),
                ("a21002".into(), Some(Quantity::NOx), Some(49.2)),
            ]
        );
    }
}
