//! What the listener writes back: the 9014 data response to an upload that asks for one,
//! and the history requests (2061/2051 with BeginTime/EndTime) for missing periods.

use crate::model::time::UtcOffset;
use crate::model::Timestamp;
use crate::protocol::hj212::{
    encode, format_data_time, format_qn, CommandCode, CommandParams, EncodeError, Packet,
    PacketFlag, SystemCode,
};

use super::gaps::HistoryPull;

/// `ST=91;CN=9014;PW=<same>;MN=<same>;Flag=4;CP=&&QN=<upload QN>;CN=<upload CN>&&`, with
/// the upload's QN in the header too: the sender matches acks by QN.
pub fn data_response(upload: &Packet) -> Result<Vec<u8>, EncodeError> {
    let mut ack = Packet {
        qn: upload.qn.clone(),
        pw: upload.pw.clone(),
        mn: upload.mn.clone(),
        flag: Some(PacketFlag::hj212_2017(false)),
        ..Packet::new(
            SystemCode::SystemInteraction,
            CommandCode::DataResponse,
            String::new(),
        )
    };
    if let Some(qn) = &upload.qn {
        ack.cp = ack.cp.with_param("QN", qn.clone());
    }
    ack.cp = ack.cp.with_param("CN", upload.cn.to_string());
    encode(&ack)
}

/// A history request for `pull`, as the platform sends it: Flag=5 so the logger answers
/// 9011 first, times local to the logger, QN from `now` in the same zone.
pub fn history_request(
    pull: &HistoryPull,
    st: SystemCode,
    mn: &str,
    password: &str,
    zone: UtcOffset,
    now: Timestamp,
) -> Result<Vec<u8>, EncodeError> {
    let packet = Packet {
        qn: Some(format_qn(zone.local_time(now))),
        pw: Some(password.to_string()),
        flag: Some(PacketFlag::hj212_2017(true)),
        cp: CommandParams::new()
            .with_param("BeginTime", format_data_time(zone.local_time(pull.begin)))
            .with_param("EndTime", format_data_time(zone.local_time(pull.end))),
        ..Packet::new(st, pull.cn, mn)
    };
    encode(&packet)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::hj212::{crc16_hj212, decode};

    fn framed(data: &str) -> String {
        format!(
            "##{:04}{data}{:04X}\r\n",
            data.len(),
            crc16_hj212(data.as_bytes())
        )
    }

    #[test]
    fn ack_echoes_qn_cn_pw_and_mn() {
        let upload = decode(framed("QN=20260101120000123;ST=31;CN=2061;PW=123456;MN=MN0001;Flag=5;CP=&&DataTime=20260101110000;a21026-Avg=1&&").as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        let ack = data_response(&upload).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            String::from_utf8_lossy(&ack),
            framed("QN=20260101120000123;ST=91;CN=9014;PW=123456;MN=MN0001;Flag=4;CP=&&QN=20260101120000123;CN=2061&&")
        );
    }

    #[test]
    fn history_request_in_local_time() {
        // 2026-01-01T03:00Z .. 04:00Z is 11:00 .. 12:00 at +08:00; now 04:30:00.250Z.
        let pull = HistoryPull {
            cn: CommandCode::HourData,
            begin: Timestamp(1_767_236_400_000),
            end: Timestamp(1_767_240_000_000),
        };
        let wire = history_request(
            &pull,
            SystemCode::AirPollutionSource,
            "MN0001",
            "123456",
            UtcOffset::CHINA,
            Timestamp(1_767_241_800_250),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            String::from_utf8_lossy(&wire),
            framed("QN=20260101123000250;ST=31;CN=2061;PW=123456;MN=MN0001;Flag=5;CP=&&BeginTime=20260101110000;EndTime=20260101120000&&")
        );
    }
}
