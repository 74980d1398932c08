//! What the listener writes back: the 9014 data response to an upload that asks for one, the
//! 9011 refusal of an upload that cannot be taken, and the history requests (2031/2061/2051 with
//! BeginTime/EndTime) for missing periods.

use crate::model::time::UtcOffset;
use crate::model::Timestamp;
use crate::protocol::hj212::{
    encode, format_data_time, format_qn, CommandCode, CommandParams, EncodeError, Packet,
    PacketFlag, SystemCode,
};

use super::gaps::HistoryPull;

/// The 9014 in HJ 212-2017's form (Tables C.14-C.18, C.48, C.50):
/// `QN=<upload QN>;ST=91;CN=9014;PW=<same>;MN=<same>;Flag=4;CP=&&&&`. The sender matches it
/// by the QN in the header; HJ/T 212-2005's `CP=&&QN=…;CN=…&&` is not repeated.
pub fn data_response(upload: &Packet) -> Result<Vec<u8>, EncodeError> {
    encode(&answer(upload, CommandCode::DataResponse))
}

/// 9011 `QnRtn=2` (Table 7: 请求被拒绝, request refused) under the upload's QN: the upload
/// was read and will not be stored, so the logger's own log says why its data is missing.
pub fn request_refused(upload: &Packet) -> Result<Vec<u8>, EncodeError> {
    let mut refusal = answer(upload, CommandCode::RequestResponse);
    refusal.cp = CommandParams::new().with_param("QnRtn", "2");
    encode(&refusal)
}

/// A reply to `upload`: ST=91 (system interaction), its QN, PW and MN, Flag=4.
fn answer(upload: &Packet, cn: CommandCode) -> Packet {
    Packet {
        qn: upload.qn.clone(),
        pw: upload.pw.clone(),
        mn: upload.mn.clone(),
        flag: Some(PacketFlag::hj212_2017(false)),
        ..Packet::new(SystemCode::SystemInteraction, cn, String::new())
    }
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
    fn ack_is_the_standards_9014() {
        // HJ 212-2017 Table C.17: the upload and its 9014, byte for byte.
        let upload = decode(framed("QN=20160801090000001;ST=32;CN=2061;PW=123456;MN=010000A8900016F000169DC0;Flag=5;CP=&&DataTime=20160801080000;w01001-Min=7.1,w01001-Avg=7.5,w01001-Max=7.8,w01001-Flag=N&&").as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        let ack = data_response(&upload).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            String::from_utf8_lossy(&ack),
            framed("QN=20160801090000001;ST=91;CN=9014;PW=123456;MN=010000A8900016F000169DC0;Flag=4;CP=&&&&")
        );
        let refusal = request_refused(&upload).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            String::from_utf8_lossy(&refusal),
            framed("QN=20160801090000001;ST=91;CN=9011;PW=123456;MN=010000A8900016F000169DC0;Flag=4;CP=&&QnRtn=2&&")
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
