//! A field-by-field reading of a packet for a technician checking a captured line: every
//! header field with its meaning, the Flag bits spelled out, each factor with the quantity
//! its code stands for.

use std::fmt::Write;

use crate::model::{Flag, Quantity};

use super::codes::{self, CodeEdition};
use super::cp::{CpGroup, FieldKind};
use super::packet::{Packet, PacketFlag};
use super::time::{parse_data_time, parse_qn};

pub fn describe(packet: &Packet) -> String {
    let mut out = String::new();
    let qn_note = packet
        .qn
        .as_deref()
        .map(|qn| match parse_qn(qn) {
            Some(t) => format!("request {}", t.format("%Y-%m-%d %H:%M:%S%.3f")),
            None => "not a YYYYMMDDhhmmsszzz time".to_string(),
        })
        .unwrap_or_default();
    line(&mut out, "QN", packet.qn.as_deref(), &qn_note);
    let st = packet.st.to_string();
    line(
        &mut out,
        "ST",
        Some(&st),
        packet.st.description().unwrap_or("unknown system code"),
    );
    let cn = packet.cn.to_string();
    line(
        &mut out,
        "CN",
        Some(&cn),
        packet.cn.description().unwrap_or("unknown command code"),
    );
    let pw = packet.pw.as_ref().map(|_| crate::protocol::redact::MASK);
    line(&mut out, "PW", pw, "");
    line(&mut out, "MN", packet.mn.as_deref(), "");
    match packet.flag {
        Some(flag) => {
            let bits = flag.bits().to_string();
            line(&mut out, "Flag", Some(&bits), &flag_meaning(flag));
        }
        None => line(
            &mut out,
            "Flag",
            None,
            "no reply expected, not split (HJ/T 212-2005 packets have no Flag)",
        ),
    }
    if packet.pnum.is_some() || packet.pno.is_some() {
        let show = |n: Option<u32>| n.map_or("(absent)".to_string(), |n| n.to_string());
        line(
            &mut out,
            "PNO",
            Some(&format!("{} of {}", show(packet.pno), show(packet.pnum))),
            "part of a split message",
        );
    }
    let groups = packet.cp.groups.len();
    let _ = writeln!(
        out,
        "CP    {groups} group{}",
        if groups == 1 { "" } else { "s" }
    );
    for group in &packet.cp.groups {
        describe_group(&mut out, group);
    }
    out
}

fn line(out: &mut String, name: &str, value: Option<&str>, note: &str) {
    let value = value.unwrap_or("(absent)");
    if note.is_empty() {
        let _ = writeln!(out, "{name:<5} {value}");
    } else {
        let _ = writeln!(out, "{name:<5} {value:<26} {note}");
    }
}

fn flag_meaning(flag: PacketFlag) -> String {
    let version = match flag.version {
        0 => "0 (HJ/T 212-2005)".to_string(),
        1 => "1 (HJ 212-2017)".to_string(),
        v => format!("{v} (newer than HJ 212-2017)"),
    };
    format!(
        "reply required: {}; split: {}; protocol version {version}",
        yes_no(flag.ack_required),
        yes_no(flag.split)
    )
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn describe_group(out: &mut String, group: &CpGroup) {
    match group {
        CpGroup::DataTime(value) => {
            let note = match parse_data_time(value) {
                Some(t) => format!("{} (station local time)", t.format("%Y-%m-%d %H:%M:%S")),
                None => "not a YYYYMMDDhhmmss time".to_string(),
            };
            let _ = writeln!(out, "  DataTime = {value:<20} {note}");
        }
        CpGroup::Factor(factor) => {
            let _ = writeln!(
                out,
                "  {:<8} {}{}",
                factor.code,
                code_meaning(&factor.code),
                units_note(&factor.code)
            );
            for (kind, value) in &factor.fields {
                let _ = writeln!(
                    out,
                    "    {:<6} = {value:<14} {}",
                    kind.name(),
                    value_meaning(kind, value)
                );
            }
        }
        CpGroup::Params(pairs) => {
            for (key, value) in pairs {
                match key.split_once('-') {
                    Some((code, kind)) => {
                        let kind = FieldKind::parse(kind);
                        let _ = writeln!(
                            out,
                            "  {key} = {value}    {}; {}",
                            code_meaning(code),
                            value_meaning(&kind, value)
                        );
                    }
                    None => {
                        let _ = writeln!(out, "  {key} = {value}");
                    }
                }
            }
        }
    }
}

fn code_meaning(code: &str) -> String {
    match codes::quantity_of(code) {
        Some((quantity, edition)) => {
            let old = if edition == CodeEdition::Hjt212_2005 {
                ", an old-format code"
            } else {
                ""
            };
            format!(
                "{} ({} code{old})",
                quantity_label(quantity),
                edition.name()
            )
        }
        None => "factor code cemsd does not know".to_string(),
    }
}

/// The units the code's values are in, from the standard's code table.
fn units_note(code: &str) -> String {
    let Some(units) = codes::factor_units(code) else {
        return String::new();
    };
    let value = match units.value {
        Some(unit) => format!("; values in {unit}"),
        None => "; values in the logger's unit (not fixed for this code)".to_string(),
    };
    let total = units
        .total
        .map(|t| format!(", Cou in {}", t.symbol()))
        .unwrap_or_default();
    format!("{value}{total}")
}

fn quantity_label(quantity: Quantity) -> &'static str {
    match quantity {
        Quantity::SO2 => "SO2 sulphur dioxide",
        Quantity::NO => "NO nitric oxide",
        Quantity::NO2 => "NO2 nitrogen dioxide",
        Quantity::NOx => "NOx nitrogen oxides (as NO2)",
        Quantity::O2 => "O2 oxygen",
        Quantity::CO => "CO carbon monoxide",
        Quantity::CO2 => "CO2 carbon dioxide",
        Quantity::HCl => "HCl hydrogen chloride",
        Quantity::NH3 => "NH3 ammonia",
        Quantity::Dust => "dust (particulate matter)",
        Quantity::Temperature => "flue-gas temperature",
        Quantity::Pressure => "flue-gas pressure",
        Quantity::Humidity => "flue-gas humidity",
        Quantity::Velocity => "flue-gas velocity",
        Quantity::Flow => "flue-gas flow",
    }
}

fn value_meaning(kind: &FieldKind, value: &str) -> String {
    if *kind == FieldKind::Flag {
        return match value.parse::<Flag>() {
            Ok(flag) => format!("data flag: {}", flag_label(flag)),
            Err(_) => "data flag not defined by the standard".to_string(),
        };
    }
    kind.description().unwrap_or("").to_string()
}

fn flag_label(flag: Flag) -> &'static str {
    match flag {
        Flag::N => "normal",
        Flag::T => "over the measuring upper limit",
        Flag::S => "manual input or set value",
        Flag::C => "calibration",
        Flag::M => "maintenance",
        Flag::D => "instrument fault",
        Flag::F => "plant stopped",
        Flag::B => "communication failure",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::hj212::decode;

    #[test]
    fn describes_every_field_of_a_minute_packet() {
        let data = "QN=20260101120000123;ST=31;CN=2051;PW=123456;MN=PLANT01;Flag=7;PNUM=2;PNO=1;CP=&&DataTime=20260101120000;a21026-Avg=12.3,a21026-ZsAvg=15.1,a21026-Flag=C;xyz-Rtd=1&&";
        let crc = crate::protocol::hj212::crc16_hj212(data.as_bytes());
        let wire = format!("##{:04}{data}{crc:04X}\r\n", data.len());
        let packet = decode(wire.as_bytes()).expect("valid packet");
        let text = describe(&packet);
        for expected in [
            "request 2026-01-01 12:00:00.123",
            "air pollution source",
            "minute data",
            "reply required: yes; split: yes; protocol version 1 (HJ 212-2017)",
            "PNO   1 of 2",
            "2026-01-01 12:00:00 (station local time)",
            "SO2 sulphur dioxide (HJ 212-2017 code); values in mg/m3, Cou in kg",
            "average at reference O2",
            "data flag: calibration",
            "factor code cemsd does not know",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }

    #[test]
    fn factor_units_come_from_the_code_table() {
        let data = "QN=20260101120000123;ST=31;CN=2061;PW=1;MN=P;Flag=4;CP=&&DataTime=20260101120000;a00000-Avg=5.331,a00000-Cou=19191.973;a01013-Avg=-0.026;B02-Avg=19278&&";
        let crc = crate::protocol::hj212::crc16_hj212(data.as_bytes());
        let wire = format!("##{:04}{data}{crc:04X}", data.len());
        let text = describe(&decode(wire.as_bytes()).expect("valid packet"));
        for expected in [
            "flue-gas flow (HJ 212-2017 code); values in m3/s, Cou in m3",
            "flue-gas pressure (HJ 212-2017 code); values in kPa",
            "values in the logger's unit (not fixed for this code), Cou in m3",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }

    #[test]
    fn old_codes_and_absent_fields_are_explained() {
        let data = "ST=31;CN=2011;CP=&&DataTime=20200707151756;02-Rtd=0031,02-Flag=N;05-Rtd=6.8,S05-Flag=N&&";
        let crc = crate::protocol::hj212::crc16_hj212(data.as_bytes());
        let wire = format!("##{:04}{data}{crc:04X}", data.len());
        let text = describe(&decode(wire.as_bytes()).expect("valid packet"));
        for expected in [
            "QN    (absent)",
            "MN    (absent)",
            "HJ/T 212-2005 packets have no Flag",
            "SO2 sulphur dioxide (HJ/T 212-2005 code, an old-format code)",
            "S05-Flag = N    flue-gas humidity (HJ/T 212-2005 code, an old-format code); data flag: normal",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }
}
