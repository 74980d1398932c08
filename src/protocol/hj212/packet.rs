//! One HJ 212 packet: `##` + 4-digit length + data segment + 4 hex CRC + CRLF. The encoder is
//! strict (what we send must pass any platform); the decoder accepts what real loggers send
//! (any header order, lowercase CRC, no CRLF, HJ/T 212-2005 packets without QN or Flag) and
//! reports anything it cannot read with the byte where it stopped.

use super::codes::{CommandCode, SystemCode};
use super::cp::{self, CommandParams};
use super::crc::crc16_hj212;
use super::error::{DecodeError, DecodeErrorKind, EncodeError};
use super::MAX_DATA_LEN;

/// The Flag field: bit 0 A (reply required), bit 1 D (split packet), bits 2–7 protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PacketFlag {
    pub ack_required: bool,
    pub split: bool,
    /// 0 for HJ/T 212-2005, 1 for HJ 212-2017.
    pub version: u8,
}

impl PacketFlag {
    pub const VERSION_2017: u8 = 1;

    /// A 2017 packet that is not split: Flag=4, or Flag=5 when a reply is required.
    pub fn hj212_2017(ack_required: bool) -> PacketFlag {
        PacketFlag {
            ack_required,
            split: false,
            version: PacketFlag::VERSION_2017,
        }
    }

    pub fn from_bits(bits: u8) -> PacketFlag {
        PacketFlag {
            ack_required: bits & 1 != 0,
            split: bits & 2 != 0,
            version: bits >> 2,
        }
    }

    /// The wire value; versions above 63 do not fit the 6 bits and are refused by `encode`.
    pub fn bits(self) -> u16 {
        u16::from(self.version) << 2 | u16::from(self.split) << 1 | u16::from(self.ack_required)
    }
}

/// A decoded packet. Header fields the standard makes optional, or that old loggers leave
/// out, are `Option`s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Request number `YYYYMMDDhhmmsszzz`; split packets share it.
    pub qn: Option<String>,
    pub st: SystemCode,
    pub cn: CommandCode,
    pub pw: Option<String>,
    /// Data logger id. HJ/T 212-2005 analyser links may omit it; `encode` requires it.
    pub mn: Option<String>,
    pub flag: Option<PacketFlag>,
    /// Total packets of a split message.
    pub pnum: Option<u32>,
    /// 1-based number of this packet in a split message.
    pub pno: Option<u32>,
    pub cp: CommandParams,
}

impl Packet {
    pub fn new(st: SystemCode, cn: CommandCode, mn: impl Into<String>) -> Packet {
        Packet {
            qn: None,
            st,
            cn,
            pw: None,
            mn: Some(mn.into()),
            flag: None,
            pnum: None,
            pno: None,
            cp: CommandParams::new(),
        }
    }
}

/// The 2017 standard allows MN up to 24 characters.
const MAX_MN_LEN: usize = 24;
/// `QN=YYYYMMDDhhmmsszzz` is 17 digits; a little slack for loggers that pad.
const MAX_QN_LEN: usize = 20;
/// PNUM and PNO are at most 4 digits.
pub(crate) const MAX_PARTS: u32 = 9999;

/// Encodes a packet ready for the wire, CRLF included.
pub fn encode(packet: &Packet) -> Result<Vec<u8>, EncodeError> {
    let data = data_segment(packet)?;
    if data.len() > MAX_DATA_LEN {
        return Err(EncodeError::TooLong {
            len: data.len(),
            max: MAX_DATA_LEN,
        });
    }
    let crc = crc16_hj212(data.as_bytes());
    Ok(format!("##{:04}{data}{crc:04X}\r\n", data.len()).into_bytes())
}

/// The data segment in the standard's field order, every value validated.
pub(crate) fn data_segment(packet: &Packet) -> Result<String, EncodeError> {
    let mut out = String::with_capacity(256);
    if let Some(qn) = &packet.qn {
        cp::check_value("QN", qn)?;
        if qn.is_empty() || qn.len() > MAX_QN_LEN {
            return Err(EncodeError::invalid(
                "QN",
                format!("QN must be 1 to {MAX_QN_LEN} characters (YYYYMMDDhhmmsszzz)"),
            ));
        }
        push_field(&mut out, "QN", qn);
    }
    if let SystemCode::Other(code @ 100..) = packet.st {
        return Err(EncodeError::invalid(
            "ST",
            format!("ST {code} has more than 2 digits"),
        ));
    }
    push_field(&mut out, "ST", &packet.st.to_string());
    if packet.cn.code() > 9999 {
        return Err(EncodeError::invalid(
            "CN",
            format!("CN {} has more than 4 digits", packet.cn.code()),
        ));
    }
    push_field(&mut out, "CN", &packet.cn.to_string());
    if let Some(pw) = &packet.pw {
        cp::check_value("PW", pw)?;
        push_field(&mut out, "PW", pw);
    }
    let mn = packet.mn.as_deref().ok_or(EncodeError::MissingMn)?;
    cp::check_value("MN", mn)?;
    let mn_len = mn.chars().count();
    if mn_len == 0 || mn_len > MAX_MN_LEN {
        return Err(EncodeError::invalid(
            "MN",
            format!("MN is {mn_len} characters, the standard allows 1 to {MAX_MN_LEN}"),
        ));
    }
    push_field(&mut out, "MN", mn);
    if let Some(flag) = packet.flag {
        if flag.version > 63 {
            return Err(EncodeError::invalid(
                "Flag",
                format!("protocol version {} does not fit 6 bits", flag.version),
            ));
        }
        push_field(&mut out, "Flag", &flag.bits().to_string());
    }
    let split_bit = packet.flag.is_some_and(|f| f.split);
    match (packet.pnum, packet.pno) {
        (Some(pnum), Some(pno)) => {
            if !split_bit {
                return Err(EncodeError::InconsistentSplit(
                    "PNUM/PNO need a Flag with the split bit (D) set",
                ));
            }
            if pno == 0 || pno > pnum || pnum > MAX_PARTS {
                return Err(EncodeError::InconsistentSplit(
                    "need 1 <= PNO <= PNUM <= 9999",
                ));
            }
            push_field(&mut out, "PNUM", &pnum.to_string());
            push_field(&mut out, "PNO", &pno.to_string());
        }
        (None, None) if split_bit => {
            return Err(EncodeError::InconsistentSplit(
                "Flag has the split bit set but PNUM/PNO are missing",
            ));
        }
        (None, None) => {}
        _ => return Err(EncodeError::InconsistentSplit("PNUM and PNO go together")),
    }
    out.push_str("CP=&&");
    cp::write_groups(&packet.cp.groups, &mut out)?;
    out.push_str("&&");
    Ok(out)
}

fn push_field(out: &mut String, key: &str, value: &str) {
    out.push_str(key);
    out.push('=');
    out.push_str(value);
    out.push(';');
}

/// Decodes one packet, allowing data segments up to the standard's 1024 bytes.
pub fn decode(input: &[u8]) -> Result<Packet, DecodeError> {
    decode_with_limit(input, MAX_DATA_LEN)
}

/// Decodes one packet from a peer known to exceed 1024 bytes without splitting.
/// Whitespace around the packet (a missing or doubled CRLF) is ignored.
pub fn decode_with_limit(input: &[u8], max_data_len: usize) -> Result<Packet, DecodeError> {
    let start = input
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(input.len());
    let end = input
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |last| last + 1);
    let frame = &input[start..end];

    for (i, &expected) in b"##".iter().enumerate() {
        if frame.get(i) != Some(&expected) {
            return Err(DecodeError::at(start + i, DecodeErrorKind::BadHeader));
        }
    }
    let mut declared = 0usize;
    for i in 2..6 {
        match frame.get(i) {
            Some(b) if b.is_ascii_digit() => declared = declared * 10 + usize::from(b - b'0'),
            _ => return Err(DecodeError::at(start + i, DecodeErrorKind::BadLengthDigits)),
        }
    }
    if declared > max_data_len {
        return Err(DecodeError::at(
            start + 2,
            DecodeErrorKind::TooLong {
                declared,
                max: max_data_len,
            },
        ));
    }
    let body = &frame[6..];
    if declared == 0 && body.len() < 4 {
        return Err(DecodeError::at(end, DecodeErrorKind::BadCrcDigits));
    }
    let actual = body.len().saturating_sub(4);
    if actual != declared {
        return Err(DecodeError::at(
            start + 2,
            DecodeErrorKind::BadLength { declared, actual },
        ));
    }
    let (data, crc_field) = body.split_at(actual);
    let data_start = start + 6;
    let crc_start = data_start + actual;
    let mut declared_crc: u16 = 0;
    for (i, &b) in crc_field.iter().enumerate() {
        let digit = char::from(b).to_digit(16).ok_or(DecodeError::at(
            crc_start + i,
            DecodeErrorKind::BadCrcDigits,
        ))?;
        // Four hex digits fit u16; the cast cannot truncate.
        declared_crc = declared_crc << 4 | digit as u16;
    }
    let computed = crc16_hj212(data);
    if declared_crc != computed {
        return Err(DecodeError::at(
            crc_start,
            DecodeErrorKind::BadCrc {
                declared: declared_crc,
                computed,
            },
        ));
    }
    parse_data_segment(data, data_start)
}

/// Header values as found, borrowed from the input, with the position of each value for
/// later errors. Only QN, PW and MN become strings of the packet.
#[derive(Default)]
struct Header<'a> {
    qn: Option<(&'a str, usize)>,
    st: Option<(&'a str, usize)>,
    cn: Option<(&'a str, usize)>,
    pw: Option<(&'a str, usize)>,
    mn: Option<(&'a str, usize)>,
    flag: Option<(&'a str, usize)>,
    pnum: Option<(&'a str, usize)>,
    pno: Option<(&'a str, usize)>,
}

fn parse_data_segment(data: &[u8], offset: usize) -> Result<Packet, DecodeError> {
    let mut header = Header::default();
    let mut pos = 0;
    let (cp, cp_position) = loop {
        let rest = &data[pos..];
        if rest.starts_with(b"CP=") {
            let cp_position = offset + pos;
            if !rest.starts_with(b"CP=&&") {
                return Err(DecodeError::at(
                    cp_position + 3,
                    DecodeErrorKind::MissingCpDelimiter,
                ));
            }
            if rest.len() < "CP=&&&&".len() || !rest.ends_with(b"&&") {
                return Err(DecodeError::at(
                    offset + data.len(),
                    DecodeErrorKind::MissingCpDelimiter,
                ));
            }
            let body = &rest[5..rest.len() - 2];
            break (cp::parse(body, cp_position + 5)?, cp_position);
        }
        if rest.is_empty() {
            return Err(DecodeError::at(
                offset + data.len(),
                DecodeErrorKind::MissingCpDelimiter,
            ));
        }
        let field_len = rest.iter().position(|&b| b == b';').unwrap_or(rest.len());
        let field = &rest[..field_len];
        if !field.is_empty() {
            header_field(&mut header, field, offset + pos)?;
        }
        pos = (pos + field_len + 1).min(data.len());
    };

    let (st, st_pos) = header.st.ok_or(DecodeError::at(
        cp_position,
        DecodeErrorKind::MissingField("ST"),
    ))?;
    let st = digits(st, 2, 2)
        .and_then(|n| u8::try_from(n).ok())
        .map(SystemCode::from_code)
        .ok_or_else(|| {
            DecodeError::bad_field(st_pos, "ST", format!("{st:?} is not 2 decimal digits"))
        })?;
    let (cn_text, cn_pos) = header.cn.ok_or(DecodeError::at(
        cp_position,
        DecodeErrorKind::MissingField("CN"),
    ))?;
    let cn = digits(cn_text, 4, 4)
        .and_then(|n| u16::try_from(n).ok())
        .map(CommandCode::from_code)
        .ok_or(DecodeError::at(
            cn_pos,
            DecodeErrorKind::UnknownCommand(cn_text.to_string()),
        ))?;
    let flag = match header.flag {
        Some((text, pos)) => Some(
            digits(text, 1, 3)
                .and_then(|n| u8::try_from(n).ok())
                .map(PacketFlag::from_bits)
                .ok_or_else(|| {
                    DecodeError::bad_field(pos, "Flag", format!("{text:?} is not a number 0–255"))
                })?,
        ),
        None => None,
    };
    let part_number = |field: Option<(&str, usize)>, name: &'static str| match field {
        Some((text, pos)) => digits(text, 1, 4).map(Some).ok_or_else(|| {
            DecodeError::bad_field(pos, name, format!("{text:?} is not a number of 1–4 digits"))
        }),
        None => Ok(None),
    };
    Ok(Packet {
        qn: header.qn.map(|(v, _)| v.to_string()),
        st,
        cn,
        pw: header.pw.map(|(v, _)| v.to_string()),
        mn: header.mn.map(|(v, _)| v.to_string()),
        flag,
        pnum: part_number(header.pnum, "PNUM")?,
        pno: part_number(header.pno, "PNO")?,
        cp,
    })
}

fn header_field<'a>(
    header: &mut Header<'a>,
    field: &'a [u8],
    position: usize,
) -> Result<(), DecodeError> {
    let Some(eq) = field.iter().position(|&b| b == b'=') else {
        return Err(DecodeError::bad_field(
            position,
            String::from_utf8_lossy(field),
            "expected KEY=value",
        ));
    };
    let (key, value) = (&field[..eq], &field[eq + 1..]);
    // For errors only: the key as the technician wrote it.
    let key_text = || String::from_utf8_lossy(key).into_owned();
    let slot = match key {
        b"QN" => &mut header.qn,
        b"ST" => &mut header.st,
        b"CN" => &mut header.cn,
        b"PW" => &mut header.pw,
        b"MN" => &mut header.mn,
        b"Flag" => &mut header.flag,
        b"PNUM" => &mut header.pnum,
        b"PNO" => &mut header.pno,
        _ => {
            return Err(DecodeError::bad_field(
                position,
                key_text(),
                "not a header field (QN, ST, CN, PW, MN, Flag, PNUM, PNO, then CP)",
            ))
        }
    };
    if slot.is_some() {
        return Err(DecodeError::bad_field(
            position,
            key_text(),
            "appears twice",
        ));
    }
    let value_position = position + eq + 1;
    if let Some(bad) = value.iter().position(|&b| b == b'=' || b == b'&') {
        return Err(DecodeError::bad_field(
            value_position + bad,
            key_text(),
            format!("value contains `{}`", char::from(value[bad])),
        ));
    }
    let value = std::str::from_utf8(value).map_err(|e| {
        DecodeError::bad_field(
            value_position + e.valid_up_to(),
            key_text(),
            "value is not UTF-8",
        )
    })?;
    *slot = Some((value, value_position));
    Ok(())
}

/// A decimal number of `min..=max` ASCII digits.
fn digits(text: &str, min: usize, max: usize) -> Option<u32> {
    if text.len() < min || text.len() > max || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STANDARD_EXAMPLE: &str = "##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80\r\n";

    #[test]
    fn flag_bits() {
        // Flag=5: version 1 (bits 2-7 = 000001), D=0, A=1.
        let flag = PacketFlag::from_bits(5);
        assert_eq!(flag, PacketFlag::hj212_2017(true));
        assert_eq!(flag.bits(), 5);
        assert_eq!(PacketFlag::hj212_2017(false).bits(), 4);
        // Flag=7: version 1, split, ack.
        let flag = PacketFlag::from_bits(7);
        assert!(flag.split && flag.ack_required && flag.version == 1);
    }

    #[test]
    fn standard_example_round_trips() {
        let packet = decode(STANDARD_EXAMPLE.as_bytes()).expect("standard example decodes");
        assert_eq!(packet.qn.as_deref(), Some("20160801085857223"));
        assert_eq!(packet.st, SystemCode::WaterPollutionSource);
        assert_eq!(packet.cn, CommandCode::SetRealTimeInterval);
        assert_eq!(packet.pw.as_deref(), Some("100000"));
        assert_eq!(packet.mn.as_deref(), Some("010000A8900016F000169DC0"));
        assert_eq!(packet.flag, Some(PacketFlag::hj212_2017(true)));
        assert_eq!(packet.cp.param("RtdInterval"), Some("30"));
        let encoded = encode(&packet).expect("encodes");
        assert_eq!(String::from_utf8_lossy(&encoded), STANDARD_EXAMPLE);
    }

    #[test]
    fn encoder_enforces_split_consistency() {
        let mut packet = decode(STANDARD_EXAMPLE.as_bytes()).expect("decodes");
        packet.pnum = Some(2);
        assert!(matches!(
            encode(&packet),
            Err(EncodeError::InconsistentSplit(_))
        ));
        packet.pno = Some(1);
        assert!(matches!(
            encode(&packet),
            Err(EncodeError::InconsistentSplit(_))
        ));
        packet.flag = Some(PacketFlag::from_bits(7));
        let wire = encode(&packet).expect("consistent split header");
        assert!(String::from_utf8_lossy(&wire).contains(";Flag=7;PNUM=2;PNO=1;CP=&&"));
        packet.pno = Some(3);
        assert!(matches!(
            encode(&packet),
            Err(EncodeError::InconsistentSplit(_))
        ));
    }

    #[test]
    fn encoder_checks_header_values() {
        let mut packet = decode(STANDARD_EXAMPLE.as_bytes()).expect("decodes");
        packet.mn = Some("0123456789012345678901234".into()); // 25 characters
        assert!(matches!(
            encode(&packet),
            Err(EncodeError::InvalidValue { .. })
        ));
        packet.mn = None;
        assert_eq!(encode(&packet), Err(EncodeError::MissingMn));
        packet.mn = Some("MN;CN=9014".into());
        assert!(matches!(
            encode(&packet),
            Err(EncodeError::InvalidValue { .. })
        ));
        packet.mn = Some("ok".into());
        packet.pw = Some("a&&b".into());
        assert!(matches!(
            encode(&packet),
            Err(EncodeError::InvalidValue { .. })
        ));
        packet.pw = None;
        packet.st = SystemCode::Other(100);
        assert!(matches!(
            encode(&packet),
            Err(EncodeError::InvalidValue { .. })
        ));
    }
}
