//! Store records as HJ 212-2017 upload packets: 2011 real-time data from readings, 2051/2061/2031
//! minute, hour and day data from aggregate records. Pure: the caller passes the QN (see
//! [`QnSequence`]) and the station's UTC offset, so nothing here reads a clock.
//!
//! What goes on the wire, shared with the listener side:
//! - `DataTime` is the local start of the period (the reading time for 2011), whole seconds.
//! - One factor group per quantity, code from [`code_2017`]. 2011: `-Rtd` (measured), `-ZsRtd`
//!   (O2-corrected), `-Flag`. 2051/2061/2031: `-Avg`, `-ZsAvg`, `-Min`, `-Max`, `-ZsMin`,
//!   `-ZsMax`, `-Cou`, `-Flag`, each only where the store has the value.
//! - `-Cou` is the period's cumulative value in the unit the code table gives it: for a
//!   pollutant the mass emitted, kg (the mean emission rate in kg/h times the period's length in
//!   hours); for flue-gas flow (a00000) the volume, m3 (the mean flow in m3/h times the hours).
//! - Values are stated in the unit HJ 212-2017's code table gives their factor code
//!   ([`factor_units`]), converted from the unit the store holds them in: flow stored in m3/h
//!   goes out in m3/s, pressure read and stored in Pa goes out in kPa. A factor whose stored
//!   unit has no exact conversion is left out and reported in [`Encoded::left_out`]: a missing
//!   value is visible at the platform, a number in the wrong unit is not.
//! - Numbers are written in the data type HJ 212-2017 Table B.2 gives their factor code
//!   ([`data_type`]: a21026 N5.2 → `18.51`, a34013 N4 → `19`, a00000 N6.1 → `5.3`), rounded
//!   to its decimals. `-Cou` has no type in the table (its type column is for
//!   concentrations); it goes out with [`COU_TYPE`]'s three decimals, as real loggers send it
//!   (`a00000-Cou=19191.973` in the public 2061 upload quoted in `codes.rs`). A value with
//!   more integer digits than its type allows leaves its factor group out and is reported in
//!   [`Encoded::left_out`], never cut down to a different number.

use std::sync::Arc;

use crate::model::time::UtcOffset;
use crate::model::{Quantity, Timestamp, Unit};
use crate::process::normalise::to_reporting_unit;
use crate::store::{Record, RecordKind, Stored};

use crate::protocol::hj212::codes::{
    code_2017, data_type, factor_units, CommandCode, SystemCode, Total,
};
use crate::protocol::hj212::{
    encode, format_data_time, format_qn, split, CommandParams, DataType, DoesNotFit, EncodeError,
    Factor, FieldKind, Packet, PacketFlag,
};

/// The type `-Cou` is written in: the code table gives it none; kilograms and cubic metres to
/// three decimals (a gram, a litre), at most 14 integer digits (the widest number of
/// HJ 212-2017 6.3.3.2.2, N14.2).
pub const COU_TYPE: DataType = DataType::new(14, 3);

/// Header fields every upload of one sink and measuring point shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadHeader {
    pub st: SystemCode,
    pub password: String,
    pub mn: String,
    /// Flag=5 (the platform must answer 9014) or Flag=4.
    pub ack_required: bool,
}

/// The upload command for a kind of record, if it has one.
pub fn upload_command(kind: RecordKind) -> Option<CommandCode> {
    match kind {
        RecordKind::Reading => Some(CommandCode::RealTimeData),
        RecordKind::Minute => Some(CommandCode::MinuteData),
        RecordKind::Hour => Some(CommandCode::HourData),
        RecordKind::Day => Some(CommandCode::DayData),
        RecordKind::Gap | RecordKind::Exceedance | RecordKind::Event => None,
    }
}

/// The kind of record an upload (or history request) command carries.
pub fn record_kind(cn: CommandCode) -> Option<RecordKind> {
    match cn {
        CommandCode::RealTimeData => Some(RecordKind::Reading),
        CommandCode::MinuteData => Some(RecordKind::Minute),
        CommandCode::HourData => Some(RecordKind::Hour),
        CommandCode::DayData => Some(RecordKind::Day),
        _ => None,
    }
}

/// Whether a record can travel in an upload: a reading or aggregate of a quantity that has an
/// HJ 212-2017 factor code.
pub fn uploadable(record: &Record) -> bool {
    upload_command(record.kind).is_some() && record.quantity.and_then(code_2017).is_some()
}

/// Records of one measuring point, kind and period start: the content of one upload.
#[derive(Debug, Clone, PartialEq)]
pub struct PeriodGroup<'a> {
    pub kind: RecordKind,
    pub point: Arc<str>,
    pub ts: Timestamp,
    /// In seq order, at most one per quantity.
    pub records: Vec<&'a Stored>,
}

impl PeriodGroup<'_> {
    pub fn first_seq(&self) -> u64 {
        self.records.first().map_or(0, |s| s.seq)
    }
}

/// Groups uploadable records by (point, kind, period start), in the order of each group's first
/// seq. A quantity seen twice for the same period (a period rebuilt after a restart) opens a
/// second group, so both records travel and each packet has one group per quantity.
pub fn group_periods<'a>(records: impl IntoIterator<Item = &'a Stored>) -> Vec<PeriodGroup<'a>> {
    let mut groups: Vec<PeriodGroup<'a>> = Vec::new();
    for stored in records {
        let record = &stored.record;
        if !uploadable(record) {
            continue;
        }
        let open = groups.iter_mut().find(|g| {
            g.kind == record.kind
                && g.ts == record.ts
                && g.point == record.stack
                && g.records
                    .iter()
                    .all(|s| s.record.quantity != record.quantity)
        });
        match open {
            Some(group) => group.records.push(stored),
            None => groups.push(PeriodGroup {
                kind: record.kind,
                point: record.stack.clone(),
                ts: record.ts,
                records: vec![stored],
            }),
        }
    }
    groups
}

/// A quantity whose factor group was left out of an upload, and why.
#[derive(Debug, Clone, PartialEq)]
pub enum LeftOut {
    /// Its values cannot be stated in its HJ 212 unit; `unit` is the unit the store holds
    /// it in, `None` when the record has none.
    Unconvertible {
        quantity: Quantity,
        unit: Option<Unit>,
    },
    /// A value does not fit the data type of its code (Table B.2).
    OutOfType {
        quantity: Quantity,
        field: FieldKind,
        error: DoesNotFit,
    },
}

impl LeftOut {
    pub fn quantity(&self) -> Quantity {
        match *self {
            LeftOut::Unconvertible { quantity, .. } | LeftOut::OutOfType { quantity, .. } => {
                quantity
            }
        }
    }
}

/// An upload and the factor groups left out of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub packet: Packet,
    pub left_out: Vec<LeftOut>,
}

impl Encoded {
    /// Whether any factor group made it into the packet.
    pub fn has_factors(&self) -> bool {
        self.packet.cp.factors().next().is_some()
    }
}

/// The unit HJ 212-2017's code table gives the factor code of `quantity` ([`factor_units`]);
/// `None` for a quantity without a 2017 code.
pub fn hj212_unit(quantity: Quantity) -> Option<Unit> {
    code_2017(quantity)
        .and_then(factor_units)
        .and_then(|units| units.value)
}

/// `value` of `quantity`, stored in `unit`, in the unit of its HJ 212 factor code
/// ([`hj212_unit`]): m3/h ↔ m3/s, Pa ↔ kPa and volume fractions by [`Unit::convert`], ppm/ppb
/// of a gas to mg/m3 by the HJ 75-2017 factors the normaliser uses. `None` when no exact
/// conversion exists.
pub fn to_hj212_unit(quantity: Quantity, unit: Option<Unit>, value: f64) -> Option<f64> {
    let unit = unit?;
    let target = hj212_unit(quantity)?;
    unit.convert(value, target).or_else(|| {
        let gas = target == Unit::MgPerM3 && matches!(unit, Unit::Ppm | Unit::Ppb);
        gas.then(|| to_reporting_unit(quantity, unit, value))
            .flatten()
    })
}

/// The upload of one period: 2051/2061/2031 for aggregates, 2011 for readings.
pub fn period_packet(
    header: &UploadHeader,
    qn: &str,
    group: &PeriodGroup<'_>,
    offset: UtcOffset,
) -> Encoded {
    let records: Vec<&Record> = group.records.iter().map(|s| &s.record).collect();
    let cn = upload_command(group.kind).unwrap_or(CommandCode::RealTimeData);
    packet(header, qn, cn, group.ts, &records, offset)
}

/// A 2011 real-time upload of the latest reading of each quantity; DataTime is the newest
/// reading's time. `None` without an uploadable reading.
pub fn realtime_packet(
    header: &UploadHeader,
    qn: &str,
    readings: &[&Record],
    offset: UtcOffset,
) -> Option<Encoded> {
    let readings: Vec<&Record> = readings
        .iter()
        .copied()
        .filter(|r| r.kind == RecordKind::Reading && uploadable(r))
        .collect();
    let newest = readings.iter().map(|r| r.ts).max()?;
    Some(packet(
        header,
        qn,
        CommandCode::RealTimeData,
        newest,
        &readings,
        offset,
    ))
}

fn packet(
    header: &UploadHeader,
    qn: &str,
    cn: CommandCode,
    ts: Timestamp,
    records: &[&Record],
    offset: UtcOffset,
) -> Encoded {
    let mut cp = CommandParams::new().with_data_time(format_data_time(offset.local_time(ts)));
    let mut left_out = Vec::new();
    for record in records {
        match factor(record) {
            Ok(Some(factor)) => cp = cp.with_factor(factor),
            Ok(None) => {}
            Err(unconvertible) => left_out.push(unconvertible),
        }
    }
    let packet = Packet {
        qn: Some(qn.to_string()),
        pw: Some(header.password.clone()),
        flag: Some(PacketFlag::hj212_2017(header.ack_required)),
        cp,
        ..Packet::new(header.st, cn, header.mn.clone())
    };
    Encoded { packet, left_out }
}

/// The factor group of one record, values in the HJ 212 unit and data type; `None` for a
/// quantity without a 2017 code. Every value of a record shares its unit, so one that cannot
/// be converted leaves out the whole group; so does a value that does not fit its type, since
/// a group without its average (or with it and without its extremes) would mislead.
fn factor(record: &Record) -> Result<Option<Factor>, LeftOut> {
    let Some((quantity, code)) = record
        .quantity
        .and_then(|q| code_2017(q).map(|code| (q, code)))
    else {
        return Ok(None);
    };
    if to_hj212_unit(quantity, record.unit, 1.0).is_none() {
        return Err(LeftOut::Unconvertible {
            quantity,
            unit: record.unit,
        });
    }
    let Some(value_type) = data_type(code) else {
        return Err(LeftOut::Unconvertible {
            quantity,
            unit: record.unit,
        });
    };
    let out_of_type = |kind: &FieldKind, error| LeftOut::OutOfType {
        quantity,
        field: kind.clone(),
        error,
    };
    let mut factor = Factor::new(code);
    let mut put = |kind: FieldKind, value: Option<f64>| -> Result<(), LeftOut> {
        let value = value.and_then(|v| to_hj212_unit(quantity, record.unit, v));
        if let Some(value) = value {
            let text = value_type
                .format(value)
                .map_err(|e| out_of_type(&kind, e))?;
            factor.fields.push((kind, text));
        }
        Ok(())
    };
    if record.kind == RecordKind::Reading {
        put(FieldKind::Rtd, record.measured)?;
        put(FieldKind::ZsRtd, record.corrected)?;
    } else {
        put(FieldKind::Avg, record.measured)?;
        put(FieldKind::ZsAvg, record.corrected)?;
        put(FieldKind::Min, record.min)?;
        put(FieldKind::Max, record.max)?;
        put(FieldKind::ZsMin, record.corrected_min)?;
        put(FieldKind::ZsMax, record.corrected_max)?;
        // A mass in kg from the rate in kg/h, or a volume in m3 from the flow: in the
        // table's unit for Cou, computed here rather than converted.
        let total = factor_units(code).and_then(|units| units.total);
        if let Some(value) = period_total(total, record) {
            let text = COU_TYPE
                .format(value)
                .map_err(|e| out_of_type(&FieldKind::Cou, e))?;
            factor.fields.push((FieldKind::Cou, text));
        }
    }
    Ok(Some(factor.with_flag(record.flags.primary())))
}

/// The `-Cou` of an aggregate period in the unit the code table gives it (`total`).
fn period_total(total: Option<Total>, record: &Record) -> Option<f64> {
    match total? {
        Total::Kilogram => emitted_mass_kg(record),
        Total::CubicMetre => flow_volume_m3(record),
    }
}

fn period_hours(record: &Record) -> Option<f64> {
    let end = record.end?;
    Some((end.millis() - record.ts.millis()) as f64 / 3_600_000.0)
}

/// Mass of a pollutant emitted in an aggregate period: mean rate (kg/h) × hours.
fn emitted_mass_kg(record: &Record) -> Option<f64> {
    let pollutant = record.quantity.is_some_and(|q| q.is_pollutant());
    let rate = record.rate.filter(|_| pollutant)?;
    Some(rate * period_hours(record)?)
}

/// Flue-gas volume of an aggregate flow period: mean flow (m3/h) × hours (HJ 212-2017
/// Appendix D.2.4: Q_snd = Σ Q_snh).
fn flow_volume_m3(record: &Record) -> Option<f64> {
    if record.quantity != Some(Quantity::Flow) {
        return None;
    }
    let per_hour = record
        .unit?
        .convert(record.measured?, Unit::CubicMetrePerHour)?;
    Some(per_hour * period_hours(record)?)
}

/// One packet on the wire and the QN its 9014 will carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WirePart {
    pub qn: String,
    pub bytes: Vec<u8>,
}

/// The packets to put on the wire for `packet`: split into PNUM/PNO parts when the data
/// segment exceeds 1024 bytes, each later part with a QN of its own from `next_qn`
/// (HJ 212-2017 Table C.50), each encoded with its CRLF.
pub fn to_wire(
    packet: &Packet,
    next_qn: impl FnMut() -> String,
) -> Result<Vec<WirePart>, EncodeError> {
    split(packet, next_qn)?
        .iter()
        .map(|part| {
            Ok(WirePart {
                qn: part.qn.clone().unwrap_or_default(),
                bytes: encode(part)?,
            })
        })
        .collect()
}

/// Hands out QNs that rise strictly, even for several packets within one millisecond or a
/// clock that steps back, because the uplink matches each 9014 to its upload by QN.
#[derive(Debug, Clone, Default)]
pub struct QnSequence {
    last_ms: Option<i64>,
}

impl QnSequence {
    pub fn new() -> QnSequence {
        QnSequence::default()
    }

    pub fn next(&mut self, now: Timestamp, offset: UtcOffset) -> String {
        let ms = match self.last_ms {
            Some(last) if now.millis() <= last => last + 1,
            _ => now.millis(),
        };
        self.last_ms = Some(ms);
        format_qn(offset.local_time(Timestamp(ms)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{unit_of, Flag, FlagSet, Quantity, Unit};

    /// 2026-01-01 04:00:00 UTC = 12:00:00 in China (+08:00).
    const T0: i64 = 1_767_240_000_000;
    const MINUTE: i64 = 60_000;

    fn header(ack: bool) -> UploadHeader {
        UploadHeader {
            st: SystemCode::AirPollutionSource,
            password: "123456".into(),
            mn: "MN0001".into(),
            ack_required: ack,
        }
    }

    fn aggregate(seq: u64, kind: RecordKind, quantity: Quantity, minutes: i64) -> Stored {
        let ts = Timestamp(T0);
        Stored {
            seq,
            record: Record {
                end: Some(Timestamp(T0 + minutes * MINUTE)),
                quantity: Some(quantity),
                unit: Some(unit_of(quantity)),
                flags: FlagSet::of(Flag::N),
                ..Record::new(kind, ts, "unit1".into(), "".into(), "".into())
            },
        }
    }

    fn text(packet: &Packet) -> String {
        let wire = to_wire(packet, || panic!("one packet needs no second QN"))
            .unwrap_or_else(|e| panic!("encode: {e}"));
        assert_eq!(wire.len(), 1, "fits one packet");
        String::from_utf8_lossy(&wire[0].bytes).into_owned()
    }

    #[test]
    fn hour_upload_carries_every_field_the_store_has() {
        let mut so2 = aggregate(7, RecordKind::Hour, Quantity::SO2, 60);
        so2.record.measured = Some(28.5);
        so2.record.corrected = Some(35.125);
        so2.record.min = Some(20.0);
        so2.record.max = Some(31.75);
        so2.record.corrected_min = Some(24.6);
        so2.record.corrected_max = Some(39.1);
        so2.record.rate = Some(12.5);
        let mut o2 = aggregate(8, RecordKind::Hour, Quantity::O2, 60);
        o2.record.measured = Some(7.2);
        o2.record.min = Some(6.9);
        o2.record.max = Some(7.5);
        o2.record.flags = FlagSet::of(Flag::N).with(Flag::C);
        let records = [so2, o2];
        let groups = group_periods(&records);
        assert_eq!(groups.len(), 1);
        let packet = period_packet(
            &header(true),
            "20260101120100000",
            &groups[0],
            UtcOffset::CHINA,
        )
        .packet;
        // Cou: 12.5 kg/h × 1 h = 12.5 kg. O2 has no rate, no Zs values; its flag C is the most
        // severe of {N, C}.
        let data = "QN=20260101120100000;ST=31;CN=2061;PW=123456;MN=MN0001;Flag=5;CP=&&\
                    DataTime=20260101120000;\
                    a21026-Avg=28.50,a21026-ZsAvg=35.12,a21026-Min=20.00,a21026-Max=31.75,\
                    a21026-ZsMin=24.60,a21026-ZsMax=39.10,a21026-Cou=12.500,a21026-Flag=N;\
                    a19001-Avg=7.2,a19001-Min=6.9,a19001-Max=7.5,a19001-Flag=C&&";
        let wire = text(&packet);
        assert_eq!(wire[6..wire.len() - 6], *data);
        assert_eq!(wire[2..6], format!("{:04}", data.len()));
        let crc = crate::protocol::hj212::crc16_hj212(data.as_bytes());
        assert_eq!(wire[wire.len() - 6..], format!("{crc:04X}\r\n"));
    }

    #[test]
    fn minute_mass_is_rate_times_a_sixtieth_of_an_hour() {
        let mut nox = aggregate(1, RecordKind::Minute, Quantity::NOx, 1);
        nox.record.measured = Some(40.0);
        nox.record.rate = Some(3.0);
        let records = [nox];
        let groups = group_periods(&records);
        let packet = period_packet(
            &header(true),
            "20260101120100000",
            &groups[0],
            UtcOffset::CHINA,
        )
        .packet;
        // 3 kg/h × 1/60 h = 0.05 kg
        assert!(
            text(&packet).contains(";CN=2051;")
                && text(&packet).contains("a21002-Avg=40.0,a21002-Cou=0.050,a21002-Flag=N&&"),
            "{}",
            text(&packet)
        );
    }

    #[test]
    fn day_upload_uses_the_local_day_start() {
        // The day 2026-01-01 in China starts 2025-12-31 16:00 UTC.
        let start = T0 - 12 * 60 * MINUTE;
        let mut dust = aggregate(3, RecordKind::Day, Quantity::Dust, 0);
        dust.record.ts = Timestamp(start);
        dust.record.end = Some(Timestamp(start + 24 * 60 * MINUTE));
        dust.record.measured = Some(4.25);
        dust.record.flags = FlagSet::EMPTY;
        let records = [dust];
        let groups = group_periods(&records);
        let packet = period_packet(
            &header(true),
            "20260102000500000",
            &groups[0],
            UtcOffset::CHINA,
        )
        .packet;
        let wire = text(&packet);
        assert!(wire.contains(";CN=2031;"), "{wire}");
        assert!(
            wire.contains("CP=&&DataTime=20260101000000;a34013-Avg=4,a34013-Flag=N&&"),
            "{wire}"
        );
    }

    #[test]
    fn realtime_upload_from_readings() {
        let reading = |quantity, measured, corrected: Option<f64>, ts| Record {
            quantity: Some(quantity),
            unit: Some(unit_of(quantity)),
            raw: Some(measured),
            measured: Some(measured),
            corrected,
            flags: FlagSet::EMPTY,
            ..Record::new(
                RecordKind::Reading,
                Timestamp(ts),
                "unit1".into(),
                "so2".into(),
                "SO2".into(),
            )
        };
        let so2 = reading(Quantity::SO2, 30.1, Some(36.0), T0 + 1_500);
        let o2 = reading(Quantity::O2, 7.0, None, T0 + 2_750);
        let co2 = reading(Quantity::CO2, 11.0, None, T0 + 3_000); // no 2017 code
        let packet = realtime_packet(
            &header(false),
            "20260101120003000",
            &[&so2, &o2, &co2],
            UtcOffset::CHINA,
        )
        .unwrap_or_else(|| panic!("two uploadable readings"))
        .packet;
        let wire = text(&packet);
        // Newest uploadable reading 12:00:02.750 local → DataTime 20260101120002.
        let data = "QN=20260101120003000;ST=31;CN=2011;PW=123456;MN=MN0001;Flag=4;CP=&&\
                    DataTime=20260101120002;a21026-Rtd=30.10,a21026-ZsRtd=36.00,a21026-Flag=N;\
                    a19001-Rtd=7.0,a19001-Flag=N&&";
        assert_eq!(wire[6..wire.len() - 6], *data);
        assert_eq!(
            realtime_packet(&header(false), "1", &[&co2], UtcOffset::CHINA).map(|e| e.packet),
            None
        );
    }

    #[test]
    fn grouping_by_point_kind_and_period() {
        let a = aggregate(1, RecordKind::Minute, Quantity::SO2, 1);
        let b = aggregate(2, RecordKind::Minute, Quantity::O2, 1);
        let mut other_point = aggregate(3, RecordKind::Minute, Quantity::SO2, 1);
        other_point.record.stack = "unit2".into();
        let hour = aggregate(4, RecordKind::Hour, Quantity::SO2, 60);
        let again = aggregate(5, RecordKind::Minute, Quantity::SO2, 1); // same period rebuilt
        let mut gap = aggregate(6, RecordKind::Gap, Quantity::SO2, 1);
        gap.record.kind = RecordKind::Gap;
        let records = [a, b, other_point, hour, again, gap];
        let groups = group_periods(&records);
        let seqs: Vec<Vec<u64>> = groups
            .iter()
            .map(|g| g.records.iter().map(|s| s.seq).collect())
            .collect();
        assert_eq!(seqs, vec![vec![1, 2], vec![3], vec![4], vec![5]]);
        assert_eq!(groups[1].point.as_ref(), "unit2");
        assert_eq!(groups[3].first_seq(), 5);
    }

    #[test]
    fn long_uploads_are_split_into_parts_each_with_its_own_qn() {
        let mut records = Vec::new();
        for (i, quantity) in Quantity::ALL.into_iter().enumerate() {
            let mut r = aggregate(i as u64 + 1, RecordKind::Minute, quantity, 1);
            r.record.measured = Some(1.0 / 3.0);
            r.record.corrected = Some(2.0 / 3.0);
            r.record.min = Some(0.1 + 0.2);
            r.record.max = Some(1e-7 / 3.0);
            r.record.corrected_min = Some(4.0 / 7.0);
            r.record.corrected_max = Some(5.0 / 7.0);
            r.record.rate = Some(123.456_789_012_345);
            records.push(r);
        }
        let groups = group_periods(&records);
        assert_eq!(groups.len(), 1);
        let packet = period_packet(
            &header(true),
            "20260101120100000",
            &groups[0],
            UtcOffset::CHINA,
        )
        .packet;
        let mut qns = QnSequence::new();
        let later = Timestamp(T0 + MINUTE);
        assert_eq!(
            qns.next(later, UtcOffset::CHINA),
            "20260101120100000",
            "part 1's"
        );
        let wire = to_wire(&packet, || qns.next(later, UtcOffset::CHINA))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(wire.len() >= 2, "12 full factor groups exceed 1024 bytes");
        let mut factors = 0;
        for (i, part) in wire.iter().enumerate() {
            let decoded =
                crate::protocol::hj212::decode(&part.bytes).unwrap_or_else(|e| panic!("{e}"));
            // HJ 212-2017 Table C.50: each part its own QN, the next one after part 1's.
            let qn = format!("2026010112{}", ["0100000", "0100001", "0100002"][i]);
            assert_eq!(decoded.qn.as_deref(), Some(qn.as_str()));
            assert_eq!(part.qn, qn);
            assert_eq!(decoded.flag.map(|f| f.bits()), Some(7), "ack + split bits");
            assert_eq!(decoded.cp.data_time(), Some("20260101120000"));
            factors += decoded.cp.factors().count();
            for factor in decoded.cp.factors() {
                // Every value in its code's data type (Table B.2), in the code's unit: flow
                // stored in m3/h travels in m3/s.
                let per = if factor.code == "a00000" { 3600.0 } else { 1.0 };
                let typed = |x: f64| {
                    data_type(&factor.code)
                        .and_then(|t| t.format(x / per).ok())
                        .unwrap_or_else(|| panic!("{} has a type", factor.code))
                };
                assert_eq!(factor.get(&FieldKind::Avg), Some(typed(1.0 / 3.0).as_str()));
                assert_eq!(factor.get(&FieldKind::Min), Some(typed(0.1 + 0.2).as_str()));
                assert_eq!(
                    factor.get(&FieldKind::Max),
                    Some(typed(1e-7 / 3.0).as_str())
                );
            }
        }
        assert_eq!(factors, 12, "every quantity with a 2017 code, once");
    }

    #[test]
    fn values_that_do_not_fit_their_type_are_left_out_and_reported() {
        // a19001 O2 is N3.1: 1234.5 % cannot be written; SO2 beside it goes out.
        let mut o2 = aggregate(1, RecordKind::Minute, Quantity::O2, 1);
        o2.record.measured = Some(1234.5);
        let mut so2 = aggregate(2, RecordKind::Minute, Quantity::SO2, 1);
        so2.record.measured = Some(18.514_332_218_102_904);
        let records = [o2, so2];
        let groups = group_periods(&records);
        let encoded = period_packet(&header(true), "1", &groups[0], UtcOffset::CHINA);
        assert_eq!(
            encoded.left_out,
            vec![LeftOut::OutOfType {
                quantity: Quantity::O2,
                field: FieldKind::Avg,
                error: DoesNotFit::TooManyDigits {
                    value: 1234.5,
                    data_type: DataType::new(3, 1)
                }
            }]
        );
        let wire = text(&encoded.packet);
        assert!(
            wire.contains(";CP=&&DataTime=20260101120000;a21026-Avg=18.51,a21026-Flag=N&&"),
            "{wire}"
        );
    }

    #[test]
    fn values_go_out_in_the_hj212_unit_of_their_quantity() {
        // The probe is read in Pa and stored so; a01013 is in kPa: 101 300 Pa = 101.3 kPa,
        // 101 000 Pa = 101 kPa, 101 650 Pa = 101.65 kPa.
        let mut pressure = aggregate(1, RecordKind::Hour, Quantity::Pressure, 60);
        pressure.record.unit = Some(Unit::Pa);
        pressure.record.measured = Some(101_300.0);
        pressure.record.min = Some(101_000.0);
        pressure.record.max = Some(101_650.0);
        let mut temperature = aggregate(2, RecordKind::Hour, Quantity::Temperature, 60);
        temperature.record.unit = Some(Unit::DegC);
        temperature.record.measured = Some(120.5);
        // SO2 kept in ppm by some other source: 50 ppm × 2.86 (HJ 75-2017) = 143 mg/m3, and
        // the O2-corrected 60 ppm × 2.86 = 171.6 mg/m3.
        let mut so2 = aggregate(3, RecordKind::Hour, Quantity::SO2, 60);
        so2.record.unit = Some(Unit::Ppm);
        so2.record.measured = Some(50.0);
        so2.record.corrected = Some(60.0);
        let records = [pressure, temperature, so2];
        let groups = group_periods(&records);
        let encoded = period_packet(&header(true), "1", &groups[0], UtcOffset::CHINA);
        assert_eq!(encoded.left_out, vec![]);
        let wire = text(&encoded.packet);
        assert!(
            wire.contains(
                "a01013-Avg=101.300,a01013-Min=101.000,a01013-Max=101.650,a01013-Flag=N;"
            ),
            "{wire}"
        );
        assert!(wire.contains("a01012-Avg=120.5,a01012-Flag=N;"), "{wire}");
        let so2 = encoded
            .packet
            .cp
            .factors()
            .find(|f| f.code == "a21026")
            .unwrap_or_else(|| panic!("SO2 in {wire}"));
        let number = |kind| -> f64 {
            so2.get(&kind)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{kind:?} in {wire}"))
        };
        assert!((number(FieldKind::Avg) - 143.0).abs() < 1e-9, "{wire}");
        assert!((number(FieldKind::ZsAvg) - 171.6).abs() < 1e-9, "{wire}");
    }

    #[test]
    fn flow_goes_out_in_cubic_metres_per_second_with_its_volume_as_cou() {
        // HJ 212-2017 Table B.2: a00000 in m3/s, Cou in m3. The store keeps flow in m3/h:
        // 19 191.6 m3/h = 5.331 m3/s; over one hour that is 19 191.6 m3.
        let mut flow = aggregate(1, RecordKind::Hour, Quantity::Flow, 60);
        flow.record.measured = Some(19_191.6);
        flow.record.min = Some(18_183.6);
        flow.record.max = Some(20_221.2);
        // The minute of the same flow is a sixtieth of the volume: 319.86 m3.
        let mut minute = aggregate(2, RecordKind::Minute, Quantity::Flow, 1);
        minute.record.measured = Some(19_191.6);
        let records = [flow, minute];
        let groups = group_periods(&records);
        assert_eq!(groups.len(), 2);
        let hour = period_packet(&header(true), "1", &groups[0], UtcOffset::CHINA);
        assert_eq!(hour.left_out, vec![]);
        let a00000 = hour
            .packet
            .cp
            .factors()
            .find(|f| f.code == "a00000")
            .cloned()
            .unwrap_or_else(|| panic!("flow in {}", text(&hour.packet)));
        // N6.1 for the flow, three decimals for its volume.
        assert_eq!(
            a00000.fields,
            vec![
                (FieldKind::Avg, "5.3".to_string()),
                (FieldKind::Min, "5.1".to_string()),
                (FieldKind::Max, "5.6".to_string()),
                (FieldKind::Cou, "19191.600".to_string()),
                (FieldKind::Flag, "N".to_string()),
            ]
        );
        let minute = period_packet(&header(true), "2", &groups[1], UtcOffset::CHINA);
        let a00000 = minute
            .packet
            .cp
            .factors()
            .find(|f| f.code == "a00000")
            .cloned()
            .unwrap_or_else(|| panic!("flow in {}", text(&minute.packet)));
        assert_eq!(a00000.get(&FieldKind::Avg), Some("5.3"));
        assert_eq!(a00000.get(&FieldKind::Cou), Some("319.860"));
        // A real-time flow reading: 36 000 m3/h goes out as 10 m3/s.
        let reading = Record {
            quantity: Some(Quantity::Flow),
            unit: Some(Unit::CubicMetrePerHour),
            raw: Some(36_000.0),
            measured: Some(36_000.0),
            flags: FlagSet::EMPTY,
            ..Record::new(
                RecordKind::Reading,
                Timestamp(T0),
                "unit1".into(),
                "".into(),
                "flow".into(),
            )
        };
        let realtime = realtime_packet(&header(true), "3", &[&reading], UtcOffset::CHINA)
            .unwrap_or_else(|| panic!("an uploadable reading"));
        assert!(
            text(&realtime.packet).contains("a00000-Rtd=10.0,a00000-Flag=N&&"),
            "{}",
            text(&realtime.packet)
        );
    }

    #[test]
    fn a_value_without_an_exact_conversion_is_left_out_not_sent_wrong() {
        let mut o2 = aggregate(1, RecordKind::Minute, Quantity::O2, 1);
        o2.record.unit = Some(Unit::PercentVol);
        o2.record.measured = Some(6.5);
        // Dust has no ppm → mg/m3 factor; a pressure record without a unit is ambiguous.
        let mut dust = aggregate(2, RecordKind::Minute, Quantity::Dust, 1);
        dust.record.unit = Some(Unit::Ppm);
        dust.record.measured = Some(3.0);
        let mut pressure = aggregate(3, RecordKind::Minute, Quantity::Pressure, 1);
        pressure.record.unit = None;
        pressure.record.measured = Some(101.0);
        let records = [o2, dust, pressure];
        let groups = group_periods(&records);
        let encoded = period_packet(&header(true), "1", &groups[0], UtcOffset::CHINA);
        assert_eq!(
            encoded.left_out,
            vec![
                LeftOut::Unconvertible {
                    quantity: Quantity::Dust,
                    unit: Some(Unit::Ppm)
                },
                LeftOut::Unconvertible {
                    quantity: Quantity::Pressure,
                    unit: None
                }
            ]
        );
        assert!(encoded.has_factors());
        let wire = text(&encoded.packet);
        assert!(
            wire.contains(";CP=&&DataTime=20260101120000;a19001-Avg=6.5,a19001-Flag=N&&"),
            "only O2 goes out: {wire}"
        );
    }

    #[test]
    fn realtime_pressure_in_pa_goes_out_in_kpa() {
        let reading = Record {
            quantity: Some(Quantity::Pressure),
            unit: Some(Unit::Pa),
            raw: Some(-250.0),
            measured: Some(-250.0),
            flags: FlagSet::EMPTY,
            ..Record::new(
                RecordKind::Reading,
                Timestamp(T0),
                "unit1".into(),
                "plc".into(),
                "pressure".into(),
            )
        };
        let encoded = realtime_packet(&header(true), "1", &[&reading], UtcOffset::CHINA)
            .unwrap_or_else(|| panic!("an uploadable reading"));
        // −250 Pa / 1000 = −0.25 kPa
        assert!(
            text(&encoded.packet).contains("a01013-Rtd=-0.250,a01013-Flag=N&&"),
            "{}",
            text(&encoded.packet)
        );
    }

    #[test]
    fn qns_rise_strictly() {
        let mut qns = QnSequence::new();
        let first = qns.next(Timestamp(T0), UtcOffset::CHINA);
        let second = qns.next(Timestamp(T0), UtcOffset::CHINA);
        let back = qns.next(Timestamp(T0 - 5_000), UtcOffset::CHINA);
        let later = qns.next(Timestamp(T0 + 10_000), UtcOffset::CHINA);
        assert_eq!(
            [first, second, back, later],
            [
                "20260101120000000",
                "20260101120000001",
                "20260101120000002",
                "20260101120010000"
            ]
        );
    }

    #[test]
    fn local_times_convert_both_ways() {
        let local = UtcOffset::CHINA.local_time(Timestamp(T0));
        assert_eq!(format_data_time(local), "20260101120000");
        assert_eq!(UtcOffset::CHINA.instant_of(local), Timestamp(T0));
    }
}
