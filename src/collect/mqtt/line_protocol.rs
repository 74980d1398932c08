//! InfluxDB line protocol payloads, one point per line:
//! `measurement[,tag=v…] field=v[,field=v…] [timestamp]`. Every numeric field is a reading
//! whose channel is the field key; the device comes from a tag; a string field
//! `<channel><suffix>` carries that channel's status. Escaping follows the InfluxDB
//! reference: `\,` `\ ` `\=` in names and tags, `\"` `\\` inside string values.

use std::collections::BTreeMap;

use crate::model::time::UtcOffset;

use super::payload::{self, PayloadError, RawReading, Reason};
use crate::config::mqtt::time::TimeFormat;
use crate::config::mqtt::LineProtocolMapping;

#[derive(Debug, Clone)]
pub struct LineProtocolReader {
    device_tag: String,
    status_suffix: String,
    time_format: TimeFormat,
    zone: UtcOffset,
}

#[derive(Debug, PartialEq)]
enum FieldValue {
    Number(f64),
    Text(String),
    Bool(bool),
}

impl LineProtocolReader {
    pub fn new(
        mapping: &LineProtocolMapping,
        time_format: TimeFormat,
        zone: UtcOffset,
    ) -> LineProtocolReader {
        LineProtocolReader {
            device_tag: mapping.device_tag.clone(),
            status_suffix: mapping.status_suffix.clone(),
            time_format,
            zone,
        }
    }

    pub fn read(&self, payload: &[u8]) -> Result<Vec<RawReading>, PayloadError> {
        let text = payload::text(payload)?;
        let mut out = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            self.read_line(line, &mut out).map_err(|e| PayloadError {
                detail: format!("line {}: {}", n + 1, e.detail),
                ..e
            })?;
        }
        Ok(out)
    }

    fn read_line(&self, line: &str, out: &mut Vec<RawReading>) -> Result<(), PayloadError> {
        let syntax = |detail: String| PayloadError::new(Reason::Syntax, detail);
        let (series, rest) = split_unescaped(line, ' ', false);
        let rest = rest.ok_or_else(|| syntax("no fields after the measurement".into()))?;
        let (fields, time) = split_unescaped(rest.trim_start(), ' ', true);
        let mut parts = split_all(series, ',', false).into_iter();
        let measurement = parts.next().unwrap_or_default();
        if measurement.is_empty() {
            return Err(syntax("the measurement name is empty".into()));
        }
        let mut device = None;
        for tag in parts {
            let (key, value) =
                key_value(tag).ok_or_else(|| syntax(format!("tag {tag:?} is not key=value")))?;
            if unescape(key) == self.device_tag {
                device = Some(unescape(value));
            }
        }
        let ts = match time.map(str::trim).filter(|t| !t.is_empty()) {
            Some(t) => Some(
                self.time_format
                    .read_text(t, self.zone)
                    .map_err(|e| PayloadError::new(Reason::BadTime, e))?,
            ),
            None => None,
        };
        let mut values = Vec::new();
        let mut statuses = BTreeMap::new();
        for field in split_all(fields, ',', true) {
            let (key, raw) = key_value(field)
                .ok_or_else(|| syntax(format!("field {field:?} is not key=value")))?;
            let key = unescape(key);
            match field_value(raw)
                .ok_or_else(|| syntax(format!("field {key}: {raw:?} is not a value")))?
            {
                FieldValue::Number(v) => values.push((key, v)),
                FieldValue::Text(s) => match key.strip_suffix(self.status_suffix.as_str()) {
                    Some(channel) if !self.status_suffix.is_empty() => {
                        statuses.insert(channel.to_string(), s);
                    }
                    _ => {
                        return Err(PayloadError::new(
                            Reason::NotANumber,
                            format!(
                                "field {key} is text, and not a status (…{})",
                                self.status_suffix
                            ),
                        ))
                    }
                },
                FieldValue::Bool(_) => {
                    return Err(PayloadError::new(
                        Reason::NotANumber,
                        format!("field {key} is a boolean"),
                    ))
                }
            }
        }
        if let Some(channel) = statuses
            .keys()
            .find(|c| !values.iter().any(|(k, _)| k == *c))
        {
            return Err(PayloadError::new(
                Reason::MissingField,
                format!("a status for {channel} but no {channel} value"),
            ));
        }
        for (channel, value) in values {
            out.push(RawReading {
                device: device.clone(),
                status: statuses.get(&channel).cloned(),
                channel: Some(channel),
                value,
                unit: None,
                ts,
            });
        }
        Ok(())
    }
}

/// Splits at the first `sep` not escaped by a backslash (nor inside a string, if `quoted`).
fn split_unescaped(text: &str, sep: char, quoted: bool) -> (&str, Option<&str>) {
    let mut escaped = false;
    let mut in_string = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' if quoted => in_string = !in_string,
            c if c == sep && !in_string => return (&text[..i], Some(&text[i + 1..])),
            _ => {}
        }
    }
    (text, None)
}

fn split_all(mut text: &str, sep: char, quoted: bool) -> Vec<&str> {
    let mut parts = Vec::new();
    loop {
        let (part, rest) = split_unescaped(text, sep, quoted);
        parts.push(part);
        match rest {
            Some(rest) => text = rest,
            None => return parts,
        }
    }
}

fn key_value(text: &str) -> Option<(&str, &str)> {
    match split_unescaped(text, '=', false) {
        (key, Some(value)) if !key.is_empty() && !value.is_empty() => Some((key, value)),
        _ => None,
    }
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(next @ (',' | ' ' | '=' | '"' | '\\')) => out.push(next),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn field_value(raw: &str) -> Option<FieldValue> {
    if let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        return Some(FieldValue::Text(unescape(inner)));
    }
    match raw {
        "t" | "T" | "true" | "True" | "TRUE" => return Some(FieldValue::Bool(true)),
        "f" | "F" | "false" | "False" | "FALSE" => return Some(FieldValue::Bool(false)),
        _ => {}
    }
    let number = if let Some(int) = raw.strip_suffix('i') {
        int.parse::<i64>().ok().map(|v| v as f64)
    } else if let Some(uint) = raw.strip_suffix('u') {
        uint.parse::<u64>().ok().map(|v| v as f64)
    } else {
        raw.parse::<f64>().ok().filter(|v| v.is_finite())
    };
    number.map(FieldValue::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Timestamp;

    fn reader() -> LineProtocolReader {
        LineProtocolReader::new(
            &LineProtocolMapping::default(),
            TimeFormat::UnixNanos,
            UtcOffset::CHINA,
        )
    }

    fn read(text: &str) -> Result<Vec<RawReading>, PayloadError> {
        reader().read(text.as_bytes())
    }

    #[test]
    fn numeric_fields_are_readings_with_their_status() {
        let got =
            read("cems,device=dtu\\ 7,site=p1 SO2=12.5,O2=6i,SO2_flag=\"M\" 1767240000000000000\n")
                .unwrap_or_else(|e| panic!("{e}"));
        let t = Some(Timestamp(1_767_240_000_000));
        assert_eq!(
            got,
            vec![
                RawReading {
                    device: Some("dtu 7".into()),
                    channel: Some("SO2".into()),
                    value: 12.5,
                    unit: None,
                    status: Some("M".into()),
                    ts: t,
                },
                RawReading {
                    device: Some("dtu 7".into()),
                    channel: Some("O2".into()),
                    value: 6.0,
                    unit: None,
                    status: None,
                    ts: t,
                },
            ]
        );
    }

    #[test]
    fn several_lines_and_no_timestamp() {
        let got = read("# comment\ncems NO=1u\n\ncems,device=a NO2=2.5e1")
            .unwrap_or_else(|e| panic!("{e}"));
        let summary: Vec<_> = got
            .iter()
            .map(|r| (r.device.clone(), r.channel.clone(), r.value, r.ts))
            .collect();
        assert_eq!(
            summary,
            vec![
                (None, Some("NO".into()), 1.0, None),
                (Some("a".into()), Some("NO2".into()), 25.0, None)
            ]
        );
    }

    #[test]
    fn strings_with_separators_stay_whole() {
        let got = read("cems SO2=1,SO2_flag=\"a, b=c \\\"d\\\"\" 1767240000000000000")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got[0].status.as_deref(), Some("a, b=c \"d\""));
    }

    #[test]
    fn bad_lines_are_refused_with_their_number() {
        let reason = |text: &str| read(text).err().map(|e| (e.reason, e.detail));
        assert_eq!(
            reason("cems SO2=1\ncems"),
            Some((
                Reason::Syntax,
                "line 2: no fields after the measurement".into()
            ))
        );
        assert_eq!(reason("cems SO2=x").map(|r| r.0), Some(Reason::Syntax));
        assert_eq!(
            reason("cems SO2=true").map(|r| r.0),
            Some(Reason::NotANumber)
        );
        assert_eq!(
            reason("cems fw=\"1.2\"").map(|r| r.0),
            Some(Reason::NotANumber)
        );
        assert_eq!(reason("cems SO2=1 12x").map(|r| r.0), Some(Reason::BadTime));
        assert_eq!(
            reason("cems O2=1,SO2_flag=\"N\"").map(|r| r.0),
            Some(Reason::MissingField)
        );
        assert_eq!(reason(",a=b SO2=1").map(|r| r.0), Some(Reason::Syntax));
    }
}
