//! HJ 212-2017 packets as MQTT payloads (data loggers that publish their uplink packets):
//! real-time data (CN 2011) gives one reading per factor's `-Rtd` value, with its `-Flag`;
//! the device is the packet's MN, the time its DataTime in the station's zone.

use crate::model::time::UtcOffset;
use crate::protocol::hj212::{self, CommandCode, FieldKind};

use super::payload::{PayloadError, RawReading, Reason};
use crate::config::mqtt::time::TimeFormat;

pub fn read(payload: &[u8], zone: UtcOffset) -> Result<Vec<RawReading>, PayloadError> {
    let packet = hj212::decode(payload)
        .map_err(|e| PayloadError::new(Reason::Syntax, format!("HJ 212 packet: {e}")))?;
    if packet.cn != CommandCode::RealTimeData {
        return Err(PayloadError::new(
            Reason::Unsupported,
            format!(
                "HJ 212 CN {}: only real-time data (2011) is taken",
                packet.cn
            ),
        ));
    }
    let data_time = packet
        .cp
        .data_time()
        .ok_or_else(|| PayloadError::new(Reason::MissingField, "HJ 212 packet without DataTime"))?;
    let ts = TimeFormat::Hj212
        .read_text(data_time, zone)
        .map_err(|e| PayloadError::new(Reason::BadTime, e))?;
    let values: Vec<_> = packet.cp.values().collect();
    let flag_of = |code: &str| {
        values
            .iter()
            .find(|v| v.code == code && v.kind == FieldKind::Flag)
            .map(|v| v.value.to_string())
    };
    let mut out = Vec::new();
    for v in values.iter().filter(|v| v.kind == FieldKind::Rtd) {
        let value = v
            .value
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| {
                PayloadError::new(
                    Reason::NotANumber,
                    format!("{}-Rtd={:?} is not a number", v.code, v.value),
                )
            })?;
        out.push(RawReading {
            device: packet.mn.clone(),
            channel: Some(v.code.to_string()),
            value,
            unit: None,
            status: flag_of(v.code),
            ts: Some(ts),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Flag, Timestamp};
    use crate::protocol::hj212::{encode, CommandParams, Factor, Packet, SystemCode};

    fn packet(cn: CommandCode, cp: CommandParams) -> Vec<u8> {
        let mut p = Packet::new(SystemCode::from_code(31), cn, "MN0001");
        p.cp = cp;
        encode(&p).unwrap_or_else(|e| panic!("encode: {e}"))
    }

    #[test]
    fn real_time_data_gives_rtd_values_with_flags() {
        let bytes = packet(
            CommandCode::RealTimeData,
            CommandParams::new()
                .with_data_time("20260101120000")
                .with_factor(
                    Factor::new("a21026")
                        .with(FieldKind::Rtd, "12.3")
                        .with(FieldKind::ZsRtd, "15.1")
                        .with_flag(Flag::C),
                )
                .with_factor(Factor::new("a19001").with(FieldKind::Rtd, "6.2")),
        );
        let got = read(&bytes, UtcOffset::CHINA).unwrap_or_else(|e| panic!("{e}"));
        // 2026-01-01 12:00:00 +08:00 = 04:00Z
        let ts = Some(Timestamp(1_767_240_000_000));
        assert_eq!(
            got,
            vec![
                RawReading {
                    device: Some("MN0001".into()),
                    channel: Some("a21026".into()),
                    value: 12.3,
                    unit: None,
                    status: Some("C".into()),
                    ts,
                },
                RawReading {
                    device: Some("MN0001".into()),
                    channel: Some("a19001".into()),
                    value: 6.2,
                    unit: None,
                    status: None,
                    ts,
                },
            ]
        );
    }

    #[test]
    fn other_commands_and_broken_packets_are_refused() {
        let minute = packet(
            CommandCode::MinuteData,
            CommandParams::new().with_data_time("20260101120000"),
        );
        let reason = |bytes: &[u8]| read(bytes, UtcOffset::CHINA).err().map(|e| e.reason);
        assert_eq!(reason(&minute), Some(Reason::Unsupported));
        let mut corrupted = packet(
            CommandCode::RealTimeData,
            CommandParams::new().with_data_time("20260101120000"),
        );
        corrupted[10] ^= 1;
        assert_eq!(reason(&corrupted), Some(Reason::Syntax));
        let no_time = packet(
            CommandCode::RealTimeData,
            CommandParams::new().with_factor(Factor::new("a21026").with(FieldKind::Rtd, "1")),
        );
        assert_eq!(reason(&no_time), Some(Reason::MissingField));
    }
}
