//! What the platform sends on the uplink connection, and the replies. Pure: the session does
//! the I/O.
//!
//! - 9014 with a QN acknowledges the upload part of that QN.
//! - Roles come from ST and the Flag bits (HJ 212-2017 6.3.2 Table 3: bit A "命令是否应答",
//!   1 = answer, 0 = no answer; 6.6.1 Table 5: ST=91 "系统交互", for the exchanges between
//!   logger and platform). Every platform request in Appendix C (Tables C.1-C.13,
//!   C.20-C.23, C.47-C.50) carries Flag=5; every answer (9011, 9012, 9014, and the 1011 with
//!   SystemTime of Table C.2) carries Flag=4 and 9011/9012/9014 ST=91. So a packet with ST=91,
//!   or with a 2017 Flag whose A bit is clear, is a response or notice and is never answered:
//!   answering a platform's own 1011 answer with 9011/1011/9012 would make two peers that
//!   answer every 1011 ping-pong for ever. A packet without Flag (HJ/T 212-2005 platforms)
//!   is taken as a request.
//! - 2051/2061/2031/2011 with `BeginTime`/`EndTime` (local, inclusive) pull history.
//! - 1011 asks for the device time; 1012 sets it. The system clock is never changed: the request
//!   is logged with its offset from our clock and answered ExeRtn=1 ("executed" = recorded).
//! - A wrong PW or MN gets 9011 with QnRtn 3 or 4; a CN outside the standard's table gets
//!   QnRtn=8 ("CN wrong"); a standard command cemsd does not perform (calibration, sampling,
//!   interval changes …) gets QnRtn=2 ("request refused"). QnRtn values from the HJ 212-2017
//!   request-answer table: 1 ready, 2 refused, 3 PW wrong, 4 MN wrong, 5 ST wrong, 6 Flag wrong,
//!   7 QN wrong, 8 CN wrong, 9 CRC wrong, 100 unknown.

use crate::model::time::UtcOffset;
use crate::model::Timestamp;
use crate::protocol::hj212::{
    format_data_time, parse_data_time, CommandCode, CommandParams, Packet, PacketFlag, SystemCode,
};
use crate::sink::hj212::upload::record_kind;
use crate::store::RecordKind;

/// Answer codes of 9011.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QnRtn {
    Ready = 1,
    Refused = 2,
    PasswordWrong = 3,
    MnWrong = 4,
    StWrong = 5,
    QnWrong = 7,
    CnWrong = 8,
}

impl QnRtn {
    /// The label of the rejected-requests metric.
    pub fn reason(self) -> &'static str {
        match self {
            QnRtn::Ready => "none",
            QnRtn::Refused => "refused",
            QnRtn::PasswordWrong => "password",
            QnRtn::MnWrong => "mn",
            QnRtn::StWrong => "st",
            QnRtn::QnWrong => "qn",
            QnRtn::CnWrong => "cn",
        }
    }
}

/// Answer codes of 9012.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExeRtn {
    Success = 1,
    NoData = 100,
}

/// An incoming packet, sorted.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Ack {
        qn: String,
    },
    History {
        qn: String,
        mn: String,
        kind: RecordKind,
        /// Inclusive window, as instants.
        from: Timestamp,
        to: Timestamp,
    },
    GetTime {
        qn: String,
        mn: String,
    },
    SetTime {
        qn: String,
        mn: String,
        time: Timestamp,
    },
    Reject {
        qn: Option<String>,
        mn: Option<String>,
        rtn: QnRtn,
        why: String,
    },
    /// Answers and notices that need nothing from us (9011/9012/9013 of the platform, a
    /// packet without the A bit); `reason` labels the ignored-packets metric.
    Ignore {
        reason: &'static str,
        why: String,
    },
}

/// Who we are on this connection, to check requests against.
#[derive(Debug, Clone)]
pub struct Identity<'a> {
    pub password: &'a str,
    pub mns: &'a [String],
    pub st: SystemCode,
    pub offset: UtcOffset,
}

pub fn classify(packet: &Packet, me: &Identity<'_>) -> Incoming {
    let qn = packet.qn.clone();
    let mn = packet.mn.clone();
    let reject = |rtn: QnRtn, why: String| Incoming::Reject {
        qn: qn.clone(),
        mn: mn.clone(),
        rtn,
        why,
    };
    match packet.cn {
        CommandCode::DataResponse => {
            // The QN of the acknowledged upload: in the header, and by the standard also in CP.
            return match packet
                .qn
                .clone()
                .or_else(|| packet.cp.param("QN").map(String::from))
            {
                Some(qn) => Incoming::Ack { qn },
                None => Incoming::Ignore {
                    reason: "unmatched_ack",
                    why: "9014 without a QN".into(),
                },
            };
        }
        CommandCode::RequestResponse
        | CommandCode::ExecutionResult
        | CommandCode::NotificationResponse => {
            return Incoming::Ignore {
                reason: "response",
                why: format!("{} from the platform", packet.cn),
            }
        }
        _ => {}
    }
    if packet.st == SystemCode::SystemInteraction {
        return Incoming::Ignore {
            reason: "response",
            why: format!("CN={} with ST=91 is an answer, not a request", packet.cn),
        };
    }
    if let Some(flag) = packet.flag.filter(|f| !f.ack_required && f.version >= 1) {
        return Incoming::Ignore {
            reason: "response",
            why: format!(
                "CN={} with Flag={} (A bit clear) is an answer or notice, not a request",
                packet.cn,
                flag.bits()
            ),
        };
    }
    if packet.pw.as_deref() != Some(me.password) {
        return reject(QnRtn::PasswordWrong, "wrong or missing PW".into());
    }
    let Some(our_mn) = packet.mn.clone().filter(|m| me.mns.contains(m)) else {
        return reject(
            QnRtn::MnWrong,
            format!("MN {:?} is not uploaded on this link", packet.mn),
        );
    };
    if packet.st != me.st && packet.st != SystemCode::SystemInteraction {
        return reject(QnRtn::StWrong, format!("ST {}", packet.st));
    }
    let Some(request_qn) = packet.qn.clone().filter(|q| !q.is_empty()) else {
        return reject(QnRtn::QnWrong, "request without a QN".into());
    };
    let local = |key: &str| {
        packet
            .cp
            .param(key)
            .and_then(parse_data_time)
            .map(|t| me.offset.instant_of(t))
    };
    match packet.cn {
        CommandCode::GetTime => Incoming::GetTime {
            qn: request_qn,
            mn: our_mn,
        },
        CommandCode::SetTime => match local("SystemTime") {
            Some(time) => Incoming::SetTime {
                qn: request_qn,
                mn: our_mn,
                time,
            },
            None => reject(
                QnRtn::Refused,
                "1012 without a valid SystemTime=YYYYMMDDhhmmss".into(),
            ),
        },
        cn => match record_kind(cn) {
            Some(kind) => match (local("BeginTime"), local("EndTime")) {
                (Some(from), Some(to)) if from <= to => Incoming::History {
                    qn: request_qn,
                    mn: our_mn,
                    kind,
                    from,
                    to,
                },
                _ => reject(
                    QnRtn::Refused,
                    format!("{cn} pull without a valid BeginTime..EndTime window"),
                ),
            },
            None if cn.description().is_some() => {
                reject(QnRtn::Refused, format!("{cn} is not performed by cemsd"))
            }
            None => reject(QnRtn::CnWrong, format!("unknown CN {cn}")),
        },
    }
}

/// The common header of our replies: ST=91, our PW, the request's MN, Flag=4.
fn reply(cn: CommandCode, qn: Option<&str>, mn: &str, password: &str) -> Packet {
    Packet {
        qn: qn.map(String::from),
        pw: Some(password.to_string()),
        flag: Some(PacketFlag::hj212_2017(false)),
        ..Packet::new(SystemCode::SystemInteraction, cn, mn)
    }
}

/// 9011: whether the request will be carried out.
pub fn request_answer(qn: Option<&str>, mn: &str, password: &str, rtn: QnRtn) -> Packet {
    let mut packet = reply(CommandCode::RequestResponse, qn, mn, password);
    packet.cp = CommandParams::new().with_param("QnRtn", (rtn as u16).to_string());
    packet
}

/// 9012: how the request ended.
pub fn execution_result(qn: &str, mn: &str, password: &str, rtn: ExeRtn) -> Packet {
    let mut packet = reply(CommandCode::ExecutionResult, Some(qn), mn, password);
    packet.cp = CommandParams::new().with_param("ExeRtn", (rtn as u16).to_string());
    packet
}

/// 1011 upload of the device time, answering the platform's 1011 with its QN.
pub fn system_time(
    qn: &str,
    mn: &str,
    password: &str,
    st: SystemCode,
    now: Timestamp,
    offset: UtcOffset,
) -> Packet {
    let local = offset.local_time(now);
    Packet {
        qn: Some(qn.to_string()),
        pw: Some(password.to_string()),
        flag: Some(PacketFlag::hj212_2017(false)),
        cp: CommandParams::new().with_param("SystemTime", format_data_time(local)),
        ..Packet::new(st, CommandCode::GetTime, mn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::hj212::{decode, encode};

    /// 2026-01-01 04:00:00 UTC = 12:00:00 at +08:00.
    const T0: i64 = 1_767_240_000_000;

    fn me(mns: &[String]) -> Identity<'_> {
        Identity {
            password: "123456",
            mns,
            st: SystemCode::AirPollutionSource,
            offset: UtcOffset::CHINA,
        }
    }

    fn packet(text: &str) -> Packet {
        let data = text.as_bytes();
        let crc = crate::protocol::hj212::crc16_hj212(data);
        let wire = format!("##{:04}{text}{crc:04X}\r\n", data.len());
        decode(wire.as_bytes()).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    #[test]
    fn sorts_acks_pulls_and_time_requests() {
        let mns = vec!["MN0001".to_string()];
        let me = me(&mns);
        assert_eq!(
            classify(
                &packet("QN=20260101120000001;ST=91;CN=9014;PW=123456;MN=MN0001;Flag=4;CP=&&QN=20260101120000001;CN=2051&&"),
                &me
            ),
            Incoming::Ack {
                qn: "20260101120000001".into()
            }
        );
        // 11:00 to 12:00 local = 03:00 to 04:00 UTC
        assert_eq!(
            classify(
                &packet("QN=20260101120500000;ST=31;CN=2061;PW=123456;MN=MN0001;Flag=5;CP=&&BeginTime=20260101110000;EndTime=20260101120000&&"),
                &me
            ),
            Incoming::History {
                qn: "20260101120500000".into(),
                mn: "MN0001".into(),
                kind: RecordKind::Hour,
                from: Timestamp(T0 - 3_600_000),
                to: Timestamp(T0),
            }
        );
        assert_eq!(
            classify(
                &packet("QN=20260101120500001;ST=31;CN=1012;PW=123456;MN=MN0001;Flag=5;CP=&&SystemTime=20260101120010&&"),
                &me
            ),
            Incoming::SetTime {
                qn: "20260101120500001".into(),
                mn: "MN0001".into(),
                time: Timestamp(T0 + 10_000)
            }
        );
    }

    #[test]
    fn rejects_with_the_standard_codes() {
        let mns = vec!["MN0001".to_string()];
        let me = me(&mns);
        let rtn = |text: &str| match classify(&packet(text), &me) {
            Incoming::Reject { rtn, .. } => Some(rtn),
            _ => None,
        };
        assert_eq!(
            rtn("QN=1;ST=31;CN=1011;PW=654321;MN=MN0001;Flag=5;CP=&&&&"),
            Some(QnRtn::PasswordWrong)
        );
        assert_eq!(
            rtn("QN=1;ST=31;CN=1011;PW=123456;MN=OTHER;Flag=5;CP=&&&&"),
            Some(QnRtn::MnWrong)
        );
        assert_eq!(
            rtn("QN=1;ST=32;CN=1011;PW=123456;MN=MN0001;Flag=5;CP=&&&&"),
            Some(QnRtn::StWrong)
        );
        assert_eq!(
            rtn("ST=31;CN=1011;PW=123456;MN=MN0001;Flag=5;CP=&&&&"),
            Some(QnRtn::QnWrong)
        );
        assert_eq!(
            rtn("QN=1;ST=31;CN=3011;PW=123456;MN=MN0001;Flag=5;CP=&&PolId=a21026&&"),
            Some(QnRtn::Refused),
            "calibration is a standard command cemsd does not perform"
        );
        assert_eq!(
            rtn("QN=1;ST=31;CN=4321;PW=123456;MN=MN0001;Flag=5;CP=&&&&"),
            Some(QnRtn::CnWrong)
        );
        assert_eq!(
            rtn("QN=1;ST=31;CN=2061;PW=123456;MN=MN0001;Flag=5;CP=&&BeginTime=20260101120000;EndTime=20260101110000&&"),
            Some(QnRtn::Refused),
            "window ends before it begins"
        );
    }

    #[test]
    fn responses_are_never_answered() {
        let mns = vec!["MN0001".to_string()];
        let me = me(&mns);
        let ignored = |text: &str| {
            matches!(
                classify(&packet(text), &me),
                Incoming::Ignore {
                    reason: "response",
                    ..
                }
            )
        };
        // Table C.2: the 1011 that carries SystemTime is the answer, Flag=4.
        assert!(ignored("QN=20160801085857223;ST=31;CN=1011;PW=123456;MN=MN0001;Flag=4;CP=&&SystemTime=20160801085857&&"));
        assert!(ignored(
            "QN=20160801085857223;ST=91;CN=9011;PW=123456;MN=MN0001;Flag=4;CP=&&QnRtn=1&&"
        ));
        assert!(ignored(
            "QN=20160801085857223;ST=91;CN=1011;PW=123456;MN=MN0001;Flag=5;CP=&&&&"
        ));
        // The request itself, Flag=5, is answered; so is one without Flag (HJ/T 212-2005).
        assert_eq!(
            classify(
                &packet("QN=20160801085857223;ST=31;CN=1011;PW=123456;MN=MN0001;Flag=5;CP=&&&&"),
                &me
            ),
            Incoming::GetTime {
                qn: "20160801085857223".into(),
                mn: "MN0001".into()
            }
        );
        assert!(matches!(
            classify(
                &packet("QN=20160801085857223;ST=31;CN=1011;PW=123456;MN=MN0001;CP=&&&&"),
                &me
            ),
            Incoming::GetTime { .. }
        ));
    }

    #[test]
    fn replies_on_the_wire() {
        let answer = request_answer(Some("20260101120500000"), "MN0001", "123456", QnRtn::Ready);
        let wire = encode(&answer).unwrap_or_else(|e| panic!("{e}"));
        let text = String::from_utf8_lossy(&wire);
        assert_eq!(
            text[6..text.len() - 6],
            *"QN=20260101120500000;ST=91;CN=9011;PW=123456;MN=MN0001;Flag=4;CP=&&QnRtn=1&&"
        );
        let done = execution_result("20260101120500000", "MN0001", "123456", ExeRtn::NoData);
        let wire = encode(&done).unwrap_or_else(|e| panic!("{e}"));
        assert!(String::from_utf8_lossy(&wire)
            .contains(";CN=9012;PW=123456;MN=MN0001;Flag=4;CP=&&ExeRtn=100&&"));
        let time = system_time(
            "20260101120500002",
            "MN0001",
            "123456",
            SystemCode::AirPollutionSource,
            Timestamp(T0 + 1_999),
            UtcOffset::CHINA,
        );
        let wire = encode(&time).unwrap_or_else(|e| panic!("{e}"));
        let text = String::from_utf8_lossy(&wire);
        assert_eq!(
            text[6..text.len() - 6],
            *"QN=20260101120500002;ST=31;CN=1011;PW=123456;MN=MN0001;Flag=4;CP=&&SystemTime=20260101120001&&"
        );
    }
}
