//! JSON payloads: one reading, an array of readings, or an object of channel → value, with
//! every part found by a configured path.

use serde_json::Value;

use crate::model::time::UtcOffset;
use crate::model::Timestamp;

use super::payload::{PayloadError, RawReading, Reason};
use crate::config::mqtt::time::TimeFormat;
use crate::config::mqtt::JsonMapping;

/// A dotted path split once at start-up; numeric parts index arrays.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Path {
    text: String,
    parts: Vec<String>,
}

impl Path {
    fn new(text: &str) -> Path {
        Path {
            text: text.to_string(),
            parts: text.split('.').map(str::to_string).collect(),
        }
    }

    fn find<'a>(&self, root: &'a Value) -> Option<&'a Value> {
        self.parts.iter().try_fold(root, |value, part| match value {
            Value::Object(map) => map.get(part),
            Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        })
    }
}

/// A subscription's JSON mapping, ready to read messages.
#[derive(Debug, Clone)]
pub struct JsonReader {
    readings: Option<Path>,
    values: Option<Path>,
    value: Path,
    time: Path,
    device: Path,
    channel: Path,
    unit: Path,
    status: Path,
    time_format: TimeFormat,
    zone: UtcOffset,
}

impl JsonReader {
    pub fn new(mapping: &JsonMapping, time_format: TimeFormat, zone: UtcOffset) -> JsonReader {
        JsonReader {
            readings: mapping.readings.as_deref().map(Path::new),
            values: mapping.values.as_deref().map(Path::new),
            value: Path::new(&mapping.value),
            time: Path::new(&mapping.time),
            device: Path::new(&mapping.device),
            channel: Path::new(&mapping.channel),
            unit: Path::new(&mapping.unit),
            status: Path::new(&mapping.status),
            time_format,
            zone,
        }
    }

    pub fn read(&self, payload: &[u8]) -> Result<Vec<RawReading>, PayloadError> {
        let root: Value = serde_json::from_slice(payload)
            .map_err(|e| PayloadError::new(Reason::Syntax, format!("not JSON: {e}")))?;
        if let Some(path) = &self.values {
            return self.read_values(&root, path);
        }
        let items: Vec<&Value> = match &self.readings {
            Some(path) => match path.find(&root) {
                Some(Value::Array(items)) => items.iter().collect(),
                Some(_) => {
                    return Err(PayloadError::new(
                        Reason::Syntax,
                        format!("{:?} is not an array", path.text),
                    ))
                }
                None => {
                    return Err(PayloadError::new(
                        Reason::MissingField,
                        format!("no {:?} in the message", path.text),
                    ))
                }
            },
            None => match &root {
                Value::Array(items) => items.iter().collect(),
                one => vec![one],
            },
        };
        let outer = self.readings.as_ref().map(|_| &root);
        items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                self.read_one(item, outer).map_err(|e| PayloadError {
                    detail: format!("reading {i}: {}", e.detail),
                    ..e
                })
            })
            .collect()
    }

    /// One reading object; device, time, unit and status may sit in the enclosing message.
    fn read_one(&self, item: &Value, outer: Option<&Value>) -> Result<RawReading, PayloadError> {
        let find = |path: &Path| path.find(item).or_else(|| outer.and_then(|o| path.find(o)));
        let value = match self.value.find(item) {
            Some(v) => number(v, &self.value.text)?,
            None => {
                return Err(PayloadError::new(
                    Reason::MissingField,
                    format!("no value at {:?}", self.value.text),
                ))
            }
        };
        Ok(RawReading {
            device: find(&self.device)
                .map(|v| text(v, &self.device.text))
                .transpose()?,
            channel: self
                .channel
                .find(item)
                .map(|v| text(v, &self.channel.text))
                .transpose()?,
            value,
            unit: find(&self.unit)
                .map(|v| text(v, &self.unit.text))
                .transpose()?,
            status: find(&self.status)
                .map(|v| text(v, &self.status.text))
                .transpose()?,
            ts: find(&self.time).map(|v| self.timestamp(v)).transpose()?,
        })
    }

    fn read_values(&self, root: &Value, path: &Path) -> Result<Vec<RawReading>, PayloadError> {
        let Some(found) = path.find(root) else {
            return Err(PayloadError::new(
                Reason::MissingField,
                format!("no {:?} in the message", path.text),
            ));
        };
        let Value::Object(values) = found else {
            return Err(PayloadError::new(
                Reason::Syntax,
                format!("{:?} is not an object of channel → value", path.text),
            ));
        };
        let device = self
            .device
            .find(root)
            .map(|v| text(v, &self.device.text))
            .transpose()?;
        let status = self
            .status
            .find(root)
            .map(|v| text(v, &self.status.text))
            .transpose()?;
        let ts = self
            .time
            .find(root)
            .map(|v| self.timestamp(v))
            .transpose()?;
        values
            .iter()
            .map(|(channel, v)| {
                Ok(RawReading {
                    device: device.clone(),
                    channel: Some(channel.clone()),
                    value: number(v, channel)?,
                    unit: None,
                    status: status.clone(),
                    ts,
                })
            })
            .collect()
    }

    fn timestamp(&self, value: &Value) -> Result<Timestamp, PayloadError> {
        match value {
            Value::Number(n) => self.time_format.read_number(n),
            Value::String(s) => self.time_format.read_text(s, self.zone),
            other => Err(format!("{other} is not a time")),
        }
        .map_err(|e| PayloadError::new(Reason::BadTime, format!("{}: {e}", self.time.text)))
    }
}

/// A reading's value: a JSON number, a numeric string, or null for "no value".
fn number(value: &Value, path: &str) -> Result<f64, PayloadError> {
    let parsed = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|v| v.is_finite()),
        Value::Null => Some(f64::NAN),
        _ => None,
    };
    parsed.ok_or_else(|| {
        PayloadError::new(
            Reason::NotANumber,
            format!("{path}: {value} is not a number"),
        )
    })
}

/// A name or status: text, or a number written as its digits.
fn text(value: &Value, path: &str) -> Result<String, PayloadError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(PayloadError::new(
            Reason::Syntax,
            format!("{path}: {other} is not text"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(mapping: JsonMapping, format: TimeFormat) -> JsonReader {
        JsonReader::new(&mapping, format, UtcOffset::CHINA)
    }

    fn read(r: &JsonReader, text: &str) -> Result<Vec<RawReading>, PayloadError> {
        r.read(text.as_bytes())
    }

    #[test]
    fn one_reading_with_default_paths() {
        let r = reader(JsonMapping::default(), TimeFormat::Rfc3339);
        let got = read(
            &r,
            r#"{"device":"d1","channel":"SO2","value":12.5,"unit":"mg/m3","status":"N","time":"2026-01-01T04:00:00Z"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            got,
            vec![RawReading {
                device: Some("d1".into()),
                channel: Some("SO2".into()),
                value: 12.5,
                unit: Some("mg/m3".into()),
                status: Some("N".into()),
                ts: Some(Timestamp(1_767_240_000_000)),
            }]
        );
    }

    #[test]
    fn array_elements_fall_back_to_the_message() {
        let mapping = JsonMapping {
            readings: Some("data".into()),
            value: "v".into(),
            channel: "ch".into(),
            device: "meta.dev".into(),
            time: "ts".into(),
            status: "flag".into(),
            ..JsonMapping::default()
        };
        let r = reader(mapping, TimeFormat::UnixMillis);
        let got = read(
            &r,
            r#"{"meta":{"dev":"dtu-7"},"ts":1767240000000,"data":[{"ch":"SO2","v":"30.5"},{"ch":"O2","v":6,"ts":1767240001000,"flag":0},{"ch":"NO","v":null}]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].device.as_deref(), Some("dtu-7"));
        assert_eq!(got[0].value, 30.5, "numeric strings are numbers");
        assert_eq!(got[0].ts, Some(Timestamp(1_767_240_000_000)));
        assert_eq!(
            got[1].ts,
            Some(Timestamp(1_767_240_001_000)),
            "own time wins"
        );
        assert_eq!(
            got[1].status.as_deref(),
            Some("0"),
            "numeric status kept as text"
        );
        assert!(got[2].value.is_nan(), "null means no value");
    }

    #[test]
    fn a_root_array_is_a_list_of_readings() {
        let r = reader(JsonMapping::default(), TimeFormat::Rfc3339);
        let got = read(
            &r,
            r#"[{"channel":"SO2","value":1},{"channel":"O2","value":2}]"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let channels: Vec<_> = got.iter().map(|g| g.channel.as_deref()).collect();
        assert_eq!(channels, vec![Some("SO2"), Some("O2")]);
        assert_eq!(got[0].ts, None, "no time: receive time applies later");
    }

    #[test]
    fn values_object_gives_one_reading_per_channel() {
        let mapping = JsonMapping {
            values: Some("d".into()),
            time: "t".into(),
            ..JsonMapping::default()
        };
        let r = reader(mapping, TimeFormat::UnixSeconds);
        let got = read(
            &r,
            r#"{"device":"x","t":1767240000,"d":{"SO2":12.3,"O2":6.1}}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let pairs: Vec<_> = got
            .iter()
            .map(|g| (g.channel.clone().unwrap_or_default(), g.value, g.ts))
            .collect();
        let t = Some(Timestamp(1_767_240_000_000));
        assert_eq!(pairs, vec![("O2".into(), 6.1, t), ("SO2".into(), 12.3, t)]);
    }

    #[test]
    fn bad_messages_name_the_reason_and_the_place() {
        let r = reader(JsonMapping::default(), TimeFormat::Rfc3339);
        let reason = |text: &str| read(&r, text).err().map(|e| (e.reason, e.detail));
        assert_eq!(reason("{\"value\":").map(|r| r.0), Some(Reason::Syntax));
        assert_eq!(
            reason(r#"{"v":1}"#),
            Some((
                Reason::MissingField,
                "reading 0: no value at \"value\"".into()
            ))
        );
        assert_eq!(
            reason(r#"[{"value":1},{"value":true}]"#),
            Some((
                Reason::NotANumber,
                "reading 1: value: true is not a number".into()
            ))
        );
        assert_eq!(
            reason(r#"{"value":1,"time":"2026-01-01T12:00:00"}"#).map(|r| r.0),
            Some(Reason::BadTime),
            "a time without a zone"
        );
        assert_eq!(
            reason(r#"{"value":"NaN"}"#).map(|r| r.0),
            Some(Reason::NotANumber),
            "only JSON null means no value"
        );
    }
}
