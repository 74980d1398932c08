//! The command-parameter area `CP=&&…&&`: groups separated by `;`, fields of a group by `,`,
//! each field `key=value`. Groups keep their wire order so a decoded packet re-encodes to the
//! same bytes.

use std::fmt;

use crate::model::{Flag, Quantity};

use super::codes;
use super::error::{DecodeError, EncodeError};

/// The suffix of a factor field (`a21026-Rtd`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FieldKind {
    Rtd,
    ZsRtd,
    Avg,
    ZsAvg,
    Min,
    ZsMin,
    Max,
    ZsMax,
    Cou,
    Flag,
    /// Any other suffix (EFlag, Info, ValidNum …), kept verbatim.
    Other(String),
}

impl FieldKind {
    pub fn parse(name: &str) -> FieldKind {
        match name {
            "Rtd" => FieldKind::Rtd,
            "ZsRtd" => FieldKind::ZsRtd,
            "Avg" => FieldKind::Avg,
            "ZsAvg" => FieldKind::ZsAvg,
            "Min" => FieldKind::Min,
            "ZsMin" => FieldKind::ZsMin,
            "Max" => FieldKind::Max,
            "ZsMax" => FieldKind::ZsMax,
            "Cou" => FieldKind::Cou,
            "Flag" => FieldKind::Flag,
            other => FieldKind::Other(other.to_string()),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            FieldKind::Rtd => "Rtd",
            FieldKind::ZsRtd => "ZsRtd",
            FieldKind::Avg => "Avg",
            FieldKind::ZsAvg => "ZsAvg",
            FieldKind::Min => "Min",
            FieldKind::ZsMin => "ZsMin",
            FieldKind::Max => "Max",
            FieldKind::ZsMax => "ZsMax",
            FieldKind::Cou => "Cou",
            FieldKind::Flag => "Flag",
            FieldKind::Other(name) => name,
        }
    }

    /// "Zs" (折算) values are converted to the reference O2 content.
    pub fn description(&self) -> Option<&'static str> {
        Some(match self {
            FieldKind::Rtd => "real-time value",
            FieldKind::ZsRtd => "real-time value at reference O2",
            FieldKind::Avg => "average",
            FieldKind::ZsAvg => "average at reference O2",
            FieldKind::Min => "minimum",
            FieldKind::ZsMin => "minimum at reference O2",
            FieldKind::Max => "maximum",
            FieldKind::ZsMax => "maximum at reference O2",
            FieldKind::Cou => "cumulative amount",
            FieldKind::Flag => "data flag",
            FieldKind::Other(_) => return None,
        })
    }
}

impl fmt::Display for FieldKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// All fields of one monitoring factor in one group: `a21026-Rtd=12.3,a21026-Flag=N`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Factor {
    pub code: String,
    pub fields: Vec<(FieldKind, String)>,
}

impl Factor {
    pub fn new(code: impl Into<String>) -> Factor {
        Factor {
            code: code.into(),
            fields: Vec::new(),
        }
    }

    pub fn with(mut self, kind: FieldKind, value: impl Into<String>) -> Factor {
        self.fields.push((kind, value.into()));
        self
    }

    pub fn with_flag(self, flag: Flag) -> Factor {
        self.with(FieldKind::Flag, flag.code().to_string())
    }

    pub fn get(&self, kind: &FieldKind) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == kind)
            .map(|(_, v)| v.as_str())
    }

    /// The data flag; decoding has already rejected flags outside N T S C M D F B.
    pub fn flag(&self) -> Option<Flag> {
        self.get(&FieldKind::Flag).and_then(|v| v.parse().ok())
    }

    pub fn quantity(&self) -> Option<Quantity> {
        codes::quantity_of(&self.code).map(|(q, _)| q)
    }
}

/// One `;`-separated group of the CP area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpGroup {
    /// `DataTime=YYYYMMDDhhmmss`, alone in its group.
    DataTime(String),
    /// Fields of a single factor code.
    Factor(Factor),
    /// Anything else in wire order: `BeginTime=…,EndTime=…`, `QnRtn=1`, or a group mixing
    /// several factor codes as some loggers send.
    Params(Vec<(String, String)>),
}

/// The command parameters of a packet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommandParams {
    pub groups: Vec<CpGroup>,
}

/// One factor value wherever it sits, in a factor group or a mixed group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactorValue<'a> {
    pub code: &'a str,
    pub kind: FieldKind,
    pub value: &'a str,
}

impl CommandParams {
    pub fn new() -> CommandParams {
        CommandParams::default()
    }

    pub fn with_data_time(mut self, data_time: impl Into<String>) -> CommandParams {
        self.groups.push(CpGroup::DataTime(data_time.into()));
        self
    }

    /// Adds `key=value` as a group of its own.
    pub fn with_param(mut self, key: impl Into<String>, value: impl Into<String>) -> CommandParams {
        self.groups
            .push(CpGroup::Params(vec![(key.into(), value.into())]));
        self
    }

    pub fn with_factor(mut self, factor: Factor) -> CommandParams {
        self.groups.push(CpGroup::Factor(factor));
        self
    }

    /// The first DataTime, whether alone in its group or among other parameters.
    pub fn data_time(&self) -> Option<&str> {
        self.param("DataTime")
    }

    /// The first plain parameter with this key (DataTime included).
    pub fn param(&self, key: &str) -> Option<&str> {
        self.groups.iter().find_map(|group| match group {
            CpGroup::DataTime(value) if key == "DataTime" => Some(value.as_str()),
            CpGroup::Params(pairs) => pairs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str()),
            _ => None,
        })
    }

    pub fn factors(&self) -> impl Iterator<Item = &Factor> {
        self.groups.iter().filter_map(|group| match group {
            CpGroup::Factor(factor) => Some(factor),
            _ => None,
        })
    }

    /// Every `CODE-Kind=value` in wire order, including those inside mixed groups, so a
    /// collector misses nothing a logger sent.
    pub fn values(&self) -> impl Iterator<Item = FactorValue<'_>> {
        self.groups.iter().flat_map(GroupValues::of)
    }
}

/// The factor values of one group, without boxing an iterator per group.
enum GroupValues<'a> {
    Factor(&'a Factor, std::slice::Iter<'a, (FieldKind, String)>),
    Params(std::slice::Iter<'a, (String, String)>),
    None,
}

impl<'a> GroupValues<'a> {
    fn of(group: &'a CpGroup) -> GroupValues<'a> {
        match group {
            CpGroup::DataTime(_) => GroupValues::None,
            CpGroup::Factor(factor) => GroupValues::Factor(factor, factor.fields.iter()),
            CpGroup::Params(pairs) => GroupValues::Params(pairs.iter()),
        }
    }
}

impl<'a> Iterator for GroupValues<'a> {
    type Item = FactorValue<'a>;

    fn next(&mut self) -> Option<FactorValue<'a>> {
        match self {
            GroupValues::Factor(factor, fields) => fields.next().map(|(kind, value)| FactorValue {
                code: &factor.code,
                kind: kind.clone(),
                value,
            }),
            GroupValues::Params(pairs) => pairs.find_map(|(key, value)| {
                factor_key(key).map(|(code, kind)| FactorValue {
                    code,
                    kind: FieldKind::parse(kind),
                    value,
                })
            }),
            GroupValues::None => None,
        }
    }
}

/// Splits `a21026-Rtd` into code and kind at the first `-`; plain keys have none.
fn factor_key(key: &str) -> Option<(&str, &str)> {
    let dash = key.bytes().position(|b| b == b'-')?;
    Some((&key[..dash], &key[dash + 1..]))
}

/// Bytes that structure the packet and so may not appear inside a value.
const RESERVED: &[u8] = b";,&=";

fn is_reserved(byte: u8) -> bool {
    RESERVED.contains(&byte)
}

/// Parses the bytes between `CP=&&` and the closing `&&`; `offset` is where they start in the
/// input, for error positions.
///
/// One pass over the bytes finds the fields and notes what is wrong with each; fields are
/// borrowed from the input and only the strings a group keeps are allocated: a factor group
/// allocates its code once and one string per value.
pub(crate) fn parse(body: &[u8], offset: usize) -> Result<CommandParams, DecodeError> {
    let area = Area::new(body, offset);
    let mut groups = Vec::with_capacity(body.iter().filter(|&&b| b == b';').count() + 1);
    // The fields of the group being read, reused from group to group.
    let mut fields: Vec<Field<'_>> = Vec::new();
    let mut scan = FieldScan::at(0);
    for (index, &byte) in body.iter().enumerate() {
        if PLAIN[usize::from(byte)] {
            continue;
        }
        match byte {
            b';' | b',' => {
                // Empty fields are tolerated: `a=1,,b=2` and a trailing `;` or `,` before
                // `&&` occur in the wild.
                if index > scan.start {
                    fields.push(area.field(&scan, index)?);
                }
                if byte == b';' && !fields.is_empty() {
                    groups.push(classify(&fields));
                    fields.clear();
                }
                scan = FieldScan::at(index + 1);
            }
            _ => scan.note(index, byte),
        }
    }
    if body.len() > scan.start {
        fields.push(area.field(&scan, body.len())?);
    }
    if !fields.is_empty() {
        groups.push(classify(&fields));
    }
    Ok(CommandParams { groups })
}

/// Printable ASCII that is neither a delimiter nor `-`: most bytes of a CP area, and nothing
/// the pass needs to note, so it skips them with one lookup.
const PLAIN: [bool; 256] = {
    let mut plain = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        plain[byte] = (byte as u8).is_ascii_graphic()
            && !matches!(byte as u8, b';' | b',' | b'=' | b'&' | b'-');
        byte += 1;
    }
    plain
};

/// What the pass has seen of the field it is in.
struct FieldScan {
    start: usize,
    /// The first `=`, which ends the key.
    eq: Option<usize>,
    /// The first `-` of the key, which splits a factor key into code and kind.
    dash: Option<usize>,
    /// False once the key has a byte that is not printable ASCII, or `&`.
    key_printable: bool,
    /// The first `&` or `=` after the key.
    value_reserved: Option<usize>,
}

impl FieldScan {
    fn at(start: usize) -> FieldScan {
        FieldScan {
            start,
            eq: None,
            dash: None,
            key_printable: true,
            value_reserved: None,
        }
    }

    /// Takes in `byte`, found at `index`; `;` and `,` end the field and never come here.
    fn note(&mut self, index: usize, byte: u8) {
        if self.eq.is_none() {
            match byte {
                b'=' => self.eq = Some(index),
                b'-' if self.dash.is_none() => self.dash = Some(index),
                b'&' => self.key_printable = false,
                _ if !byte.is_ascii_graphic() => self.key_printable = false,
                _ => {}
            }
        } else if self.value_reserved.is_none() && is_reserved(byte) {
            self.value_reserved = Some(index);
        }
    }
}

/// The CP area with its UTF-8 validity checked once. Loggers send ASCII, so values are
/// sliced from the checked text; only an area with a bad sequence is checked value by value,
/// which finds the first bad value in wire order and the byte where it goes wrong.
struct Area<'a> {
    bytes: &'a [u8],
    text: Option<&'a str>,
    /// Input position of `bytes[0]`.
    offset: usize,
}

/// One `key=value` of a group, borrowed from the input.
struct Field<'a> {
    key: &'a str,
    /// `(code, kind)` of a `CODE-Kind` key.
    factor: Option<(&'a str, &'a str)>,
    value: &'a str,
}

impl<'a> Area<'a> {
    fn new(bytes: &'a [u8], offset: usize) -> Area<'a> {
        Area {
            bytes,
            text: std::str::from_utf8(bytes).ok(),
            offset,
        }
    }

    /// `bytes[start..end]` as text, or the index of its first byte that is not UTF-8.
    fn text(&self, start: usize, end: usize) -> Result<&'a str, usize> {
        // Slices start and end at ASCII delimiters, so `get` only fails on an area that is
        // not text.
        if let Some(text) = self.text.and_then(|text| text.get(start..end)) {
            return Ok(text);
        }
        std::str::from_utf8(&self.bytes[start..end]).map_err(|e| start + e.valid_up_to())
    }

    /// The non-empty field `bytes[scan.start..end]`, checked in the order its parts are
    /// written: `=`, key, value, factor key, flag.
    fn field(&self, scan: &FieldScan, end: usize) -> Result<Field<'a>, DecodeError> {
        let start = scan.start;
        let position = self.offset + start;
        let Some(eq) = scan.eq else {
            return Err(DecodeError::bad_field(
                position,
                String::from_utf8_lossy(&self.bytes[start..end]),
                "expected key=value",
            ));
        };
        // A key of printable ASCII is text; `text` cannot fail on it.
        let key = match self.text(start, eq) {
            Ok(key) if eq > start && scan.key_printable => key,
            _ => {
                return Err(DecodeError::bad_field(
                    position,
                    String::from_utf8_lossy(&self.bytes[start..eq]),
                    "key must be printable ASCII without `&` and not empty",
                ))
            }
        };
        if let Some(bad) = scan.value_reserved {
            return Err(DecodeError::bad_field(
                self.offset + bad,
                key,
                format!(
                    "value contains `{}`, which only delimits fields",
                    char::from(self.bytes[bad])
                ),
            ));
        }
        let value = self
            .text(eq + 1, end)
            .map_err(|bad| DecodeError::bad_field(self.offset + bad, key, "value is not UTF-8"))?;
        let factor = scan
            .dash
            .map(|dash| (&key[..dash - start], &key[dash - start + 1..]));
        if let Some((code, kind)) = factor {
            if code.is_empty() || kind.is_empty() {
                return Err(DecodeError::bad_field(
                    position,
                    key,
                    "factor field must be CODE-Kind",
                ));
            }
            if kind == "Flag" && value.parse::<Flag>().is_err() {
                return Err(DecodeError::bad_field(
                    self.offset + eq + 1,
                    key,
                    format!("data flag {value:?} is not one of N, T, S, C, M, D, F, B"),
                ));
            }
        }
        Ok(Field { key, factor, value })
    }
}

/// Picks the most specific representation that re-encodes to the same text.
fn classify(fields: &[Field<'_>]) -> CpGroup {
    if let [only] = fields {
        if only.key == "DataTime" {
            return CpGroup::DataTime(only.value.to_string());
        }
    }
    if let Some((code, _)) = fields.first().and_then(|f| f.factor) {
        let same_code = fields
            .iter()
            .all(|f| f.factor.is_some_and(|(c, _)| c == code));
        if same_code {
            return CpGroup::Factor(Factor {
                code: code.to_string(),
                fields: fields
                    .iter()
                    .filter_map(|f| {
                        f.factor
                            .map(|(_, kind)| (FieldKind::parse(kind), f.value.to_string()))
                    })
                    .collect(),
            });
        }
    }
    CpGroup::Params(
        fields
            .iter()
            .map(|f| (f.key.to_string(), f.value.to_string()))
            .collect(),
    )
}

/// Appends the groups, `;`-separated, validating every key and value.
pub(crate) fn write_groups(groups: &[CpGroup], out: &mut String) -> Result<(), EncodeError> {
    for (index, group) in groups.iter().enumerate() {
        if index > 0 {
            out.push(';');
        }
        match group {
            CpGroup::DataTime(value) => write_pair(out, "DataTime", value)?,
            CpGroup::Factor(factor) => {
                if factor.fields.is_empty() {
                    return Err(EncodeError::EmptyGroup { index });
                }
                check_name("factor code", &factor.code, false)?;
                for (i, (kind, value)) in factor.fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    check_name("field kind", kind.name(), true)?;
                    let key = format!("{}-{}", factor.code, kind.name());
                    if *kind == FieldKind::Flag {
                        check_flag(&key, value)?;
                    }
                    write_pair(out, &key, value)?;
                }
            }
            CpGroup::Params(pairs) => {
                if pairs.is_empty() {
                    return Err(EncodeError::EmptyGroup { index });
                }
                for (i, (key, value)) in pairs.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    check_name("key", key, true)?;
                    if let Some((code, kind)) = factor_key(key) {
                        if code.is_empty() || kind.is_empty() {
                            return Err(EncodeError::invalid(
                                key.as_str(),
                                "factor field must be CODE-Kind",
                            ));
                        }
                        if kind == "Flag" {
                            check_flag(key, value)?;
                        }
                    }
                    write_pair(out, key, value)?;
                }
            }
        }
    }
    Ok(())
}

fn write_pair(out: &mut String, key: &str, value: &str) -> Result<(), EncodeError> {
    check_value(key, value)?;
    out.push_str(key);
    out.push('=');
    out.push_str(value);
    Ok(())
}

fn check_flag(key: &str, value: &str) -> Result<(), EncodeError> {
    value.parse::<Flag>().map(|_| ()).map_err(|_| {
        EncodeError::invalid(
            key,
            format!("data flag {value:?} is not one of N, T, S, C, M, D, F, B"),
        )
    })
}

/// Keys, codes and kinds: printable ASCII without the structural characters.
fn check_name(what: &str, name: &str, dash_allowed: bool) -> Result<(), EncodeError> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !RESERVED.contains(&b) && (dash_allowed || b != b'-'));
    if valid {
        Ok(())
    } else {
        Err(EncodeError::invalid(
            name,
            format!(
                "{what} must be non-empty printable ASCII without `;` `,` `&` `=`{}",
                if dash_allowed { "" } else { " or `-`" }
            ),
        ))
    }
}

/// A value may hold anything but the characters that delimit fields and line breaks.
pub(crate) fn check_value(field: &str, value: &str) -> Result<(), EncodeError> {
    if let Some(c) = value
        .chars()
        .find(|c| c.is_ascii() && RESERVED.contains(&(*c as u8)))
    {
        return Err(EncodeError::invalid(
            field,
            format!("value {value:?} contains `{c}`, which delimits fields"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(EncodeError::invalid(
            field,
            format!("value {value:?} contains a control character"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(body: &str) -> Result<CommandParams, DecodeError> {
        parse(body.as_bytes(), 0)
    }

    fn write_str(cp: &CommandParams) -> Result<String, EncodeError> {
        let mut out = String::new();
        write_groups(&cp.groups, &mut out)?;
        Ok(out)
    }

    #[test]
    fn groups_are_classified_and_round_trip() {
        let body = "DataTime=20260101120000;a21026-Rtd=12.3,a21026-ZsRtd=15.1,a21026-Flag=N;BeginTime=20260101000000,EndTime=20260101235959;05-Rtd=6.8,S05-Flag=N";
        let cp = parse_str(body).expect("valid CP");
        assert_eq!(cp.groups.len(), 4);
        assert_eq!(cp.groups[0], CpGroup::DataTime("20260101120000".into()));
        assert_eq!(
            cp.groups[1],
            CpGroup::Factor(
                Factor::new("a21026")
                    .with(FieldKind::Rtd, "12.3")
                    .with(FieldKind::ZsRtd, "15.1")
                    .with_flag(Flag::N)
            )
        );
        assert_eq!(cp.param("EndTime"), Some("20260101235959"));
        assert!(matches!(&cp.groups[3], CpGroup::Params(p) if p.len() == 2));
        assert_eq!(write_str(&cp).expect("encodable"), body);
    }

    #[test]
    fn values_include_mixed_groups() {
        let cp = parse_str("a21026-Rtd=1;05-Rtd=6.8,S05-Flag=N").expect("valid CP");
        let values: Vec<_> = cp
            .values()
            .map(|v| (v.code, v.kind.name().to_string(), v.value))
            .collect();
        assert_eq!(
            values,
            vec![
                ("a21026", "Rtd".to_string(), "1"),
                ("05", "Rtd".to_string(), "6.8"),
                ("S05", "Flag".to_string(), "N"),
            ]
        );
    }

    #[test]
    fn empty_groups_and_fields_are_skipped() {
        let cp = parse_str("a=1,,b=2;;c=3;").expect("tolerated");
        assert_eq!(cp.groups.len(), 2);
        assert_eq!(parse_str("").expect("empty CP").groups.len(), 0);
    }

    #[test]
    fn field_errors_name_the_byte() {
        // "a=1;bad" : `bad` starts at byte 4.
        let err = parse(b"a=1;bad", 10).expect_err("no =");
        assert_eq!(err.position, 14);
        // Flag value `X` at byte 9 of "a21026-Flag=X" -> 12.
        let err = parse_str("a21026-Flag=X").expect_err("bad flag");
        assert_eq!(err.position, 12);
        // `&` is byte 3 of "a=1&2".
        let err = parse_str("a=1&2").expect_err("reserved char");
        assert_eq!(err.position, 3);
        let err = parse_str("-Rtd=1").expect_err("empty code");
        assert_eq!(err.position, 0);
        // The field starting at byte 4 has `&` in its key.
        let err = parse_str("a=1;b&c=2").expect_err("reserved char in key");
        assert_eq!(err.position, 4);
    }

    #[test]
    fn encoder_rejects_injection() {
        let cp = CommandParams::new()
            .with_factor(Factor::new("a21026").with(FieldKind::Rtd, "1;CN=9014"));
        assert!(matches!(
            write_str(&cp),
            Err(EncodeError::InvalidValue { .. })
        ));
        let cp = CommandParams::new().with_param("Bad=Key", "1");
        assert!(matches!(
            write_str(&cp),
            Err(EncodeError::InvalidValue { .. })
        ));
        let cp = CommandParams::new().with_factor(Factor::new("a-1").with(FieldKind::Rtd, "1"));
        assert!(matches!(
            write_str(&cp),
            Err(EncodeError::InvalidValue { .. })
        ));
        let cp = CommandParams::new().with_factor(Factor::new("a21026").with(FieldKind::Flag, "X"));
        assert!(matches!(
            write_str(&cp),
            Err(EncodeError::InvalidValue { .. })
        ));
        let cp = CommandParams::new().with_factor(Factor::new("a21026"));
        assert_eq!(write_str(&cp), Err(EncodeError::EmptyGroup { index: 0 }));
        let cp = CommandParams::new().with_data_time("2026\r\n");
        assert!(matches!(
            write_str(&cp),
            Err(EncodeError::InvalidValue { .. })
        ));
    }

    #[test]
    fn empty_fields_and_mixed_groups_keep_their_values() {
        let cp = parse_str(",DataTime=20260101120000,;a21026-Rtd=1.5,,a21026-Flag=N,;;05-Rtd=6.8,S05-Flag=N,Note=;")
            .expect("tolerated");
        assert_eq!(
            cp.groups,
            vec![
                CpGroup::DataTime("20260101120000".into()),
                CpGroup::Factor(
                    Factor::new("a21026")
                        .with(FieldKind::Rtd, "1.5")
                        .with_flag(Flag::N)
                ),
                CpGroup::Params(vec![
                    ("05-Rtd".into(), "6.8".into()),
                    ("S05-Flag".into(), "N".into()),
                    ("Note".into(), String::new()),
                ]),
            ]
        );
        // A factor field after a plain one makes the group mixed, kept in wire order.
        let cp = parse_str("QnRtn=1,a21026-Rtd=2").expect("valid CP");
        assert_eq!(
            cp.groups,
            vec![CpGroup::Params(vec![
                ("QnRtn".into(), "1".into()),
                ("a21026-Rtd".into(), "2".into()),
            ])]
        );
        // Only the first `-` splits: code `a`, kind `b-Rtd`, kept as an unknown kind.
        let cp = parse_str("a-b-Rtd=3").expect("valid CP");
        assert_eq!(
            cp.groups,
            vec![CpGroup::Factor(
                Factor::new("a").with(FieldKind::Other("b-Rtd".into()), "3")
            )]
        );
    }

    #[test]
    fn non_ascii_values_and_their_errors() {
        // "Info=中文" is ASCII up to byte 5, then two 3-byte characters.
        let cp = parse_str("Info=中文;a01012-Rtd=1").expect("UTF-8 value");
        assert_eq!(cp.param("Info"), Some("中文"));
        // In "a=1;b=\xff", the bad byte is at 6; with offset 100, at 106.
        let err = parse(b"a=1;b=\xff", 100).expect_err("not UTF-8");
        assert_eq!(err.position, 106);
        // The first bad field wins: `x` (no `=`) at byte 4 comes before the bad byte at 8.
        let err = parse(b"a=1;x;b=\xff", 0).expect_err("no =");
        assert_eq!(err.position, 4);
        // A second `=` belongs to the value: in "a=1;b=2=3" it is byte 7.
        let err = parse_str("a=1;b=2=3").expect_err("= in value");
        assert_eq!(err.position, 7);
        // A space in a key: the field starting at byte 4 is refused.
        let err = parse_str("a=1;b c=2").expect_err("space in key");
        assert_eq!(err.position, 4);
        // An empty key: "=1" at byte 0.
        let err = parse_str("=1").expect_err("empty key");
        assert_eq!(err.position, 0);
        // A non-ASCII byte in a key: the field starting at byte 4.
        let err = parse(b"a=1;\xe4=2", 0).expect_err("non-ASCII key");
        assert_eq!(err.position, 4);
        // An empty kind: "a21026-=1" is refused at its start.
        let err = parse_str("a21026-=1").expect_err("empty kind");
        assert_eq!(err.position, 0);
    }
}
