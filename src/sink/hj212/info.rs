//! Audit entries as HJ 212-2017 CN 3020 uploads (上传现场机信息, field-device information).
//!
//! HJ 212-2017 Table 6 names 3020 for both the platform's request and the field device's
//! upload; Appendix B's device-information codes sort the information: i11xxx logs (i11001
//! 运行日志, run log), i12xxx states (i12001 工作状态 …), i13xxx parameters. The standard's own
//! example in Appendix C, quoted in public logger code, uploads a log entry as
//! `CP=&&DataTime=20160801062035;PolId=w01018;i11001-Info=//清洗管路//&&`: the text between
//! `//` marks. A parameter change is such a log entry: which parameter, old and new value,
//! how it took effect, and the file's checksum. The standard has parameter codes only for
//! analyser settings (range, accuracy, digestion …), none for a span, reference O2 or a
//! limit in the gateway's config, so a change is logged rather than stated as an i13xxx
//! value that would mean something else.

use crate::model::time::UtcOffset;
use crate::protocol::hj212::{
    format_data_time, CommandCode, CommandParams, Factor, FieldKind, Packet, PacketFlag,
};
use crate::store::AuditEntry;

use super::upload::UploadHeader;

/// HJ 212-2017 Appendix B: 运行日志 (run log), the log information code.
pub const RUN_LOG: &str = "i11001";

/// The 3020 upload of one audit entry, DataTime the local time it took effect.
pub fn info_packet(
    header: &UploadHeader,
    qn: &str,
    entry: &AuditEntry,
    offset: UtcOffset,
) -> Packet {
    let at = crate::model::Timestamp::from_millis(entry.ts);
    let cp = CommandParams::new()
        .with_data_time(format_data_time(offset.local_time(at)))
        .with_factor(Factor::new(RUN_LOG).with(
            FieldKind::Other("Info".to_string()),
            format!("//{}//", log_text(entry)),
        ));
    Packet {
        qn: Some(qn.to_string()),
        pw: Some(header.password.clone()),
        flag: Some(PacketFlag::hj212_2017(header.ack_required)),
        cp,
        ..Packet::new(header.st, CommandCode::GetInfo, header.mn.clone())
    }
}

/// `参数变更 stack.unit1.reference_o2: 6 -> 8 (reload, site, sha256 1a2b…)`, with the
/// characters that delimit HJ 212 fields (`; , = &`) written full width.
pub fn log_text(entry: &AuditEntry) -> String {
    let value = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_string());
    let mut text = format!(
        "参数变更 {}: {} -> {} ({}, {}",
        entry.item,
        value(&entry.old),
        value(&entry.new),
        entry.how,
        entry.source
    );
    if let Some(sum) = &entry.checksum {
        text.push_str(&format!(", sha256 {}", &sum[..sum.len().min(16)]));
    }
    text.push(')');
    text.chars()
        .map(|c| match c {
            ';' => '；',
            ',' => '，',
            '=' => '＝',
            '&' => '＆',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::hj212::{encode, SystemCode};
    use crate::store::AuditHow;

    #[test]
    fn a_span_change_is_a_run_log_entry_in_the_form_of_the_standard_example() {
        let header = UploadHeader {
            st: SystemCode::from_code(31),
            password: "123456".to_string(),
            mn: "88888880000001".to_string(),
            ack_required: true,
        };
        let entry = AuditEntry {
            ts: 1_767_240_000_000, // 2026-01-01 12:00:00 at +08:00
            source: "site".to_string(),
            how: AuditHow::Reload,
            item: "device.plc.spans.so2".to_string(),
            old: Some("[0, 750]".to_string()),
            new: Some("[0, 500]".to_string()),
            file: Some("site.toml".to_string()),
            checksum: Some("0123456789abcdef0123".to_string()),
        };
        let offset = UtcOffset::CHINA;
        let packet = info_packet(&header, "20260101120000000", &entry, offset);
        let wire = encode(&packet).unwrap_or_else(|e| panic!("{e}"));
        let text = String::from_utf8(wire).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            text.contains(
                "QN=20260101120000000;ST=31;CN=3020;PW=123456;MN=88888880000001;Flag=5;CP=&&DataTime=20260101120000;i11001-Info=//参数变更 device.plc.spans.so2: [0， 750] -> [0， 500] (reload， site， sha256 0123456789abcdef)//&&"
            ),
            "{text}"
        );
    }
}
