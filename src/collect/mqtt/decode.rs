//! Turns one MQTT message into samples: finds the subscription whose filter matches the
//! topic, reads the payload in that subscription's format, and binds every reading to a
//! declared device and channel. A message is taken whole or refused whole, so a dead letter
//! always holds everything that was not stored.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::model::time::UtcOffset;
use crate::model::{Basis, Flag, FlagSet, Quantity, Sample, Timestamp, Unit};

use super::json::JsonReader;
use super::line_protocol::LineProtocolReader;
use super::payload::{PayloadError, RawReading, Reason};
use super::{hj212_packet, plain};
use crate::config::mqtt::topic::{Filter, Template, TopicParts};
use crate::config::mqtt::{MqttSourceConfig, PayloadFormat};

/// The samples of one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub samples: Vec<Sample>,
    /// Some samples had no time in the payload and carry the receive time.
    pub receive_timed: bool,
}

enum Reader {
    Json(Box<JsonReader>),
    LineProtocol(LineProtocolReader),
    Plain,
    Hj212(UtcOffset),
}

struct Subscription {
    filter: Filter,
    template: Option<Template>,
    device: Option<String>,
    status_map: BTreeMap<String, Flag>,
    reader: Reader,
}

struct Channel {
    name: Arc<str>,
    quantity: Quantity,
    unit: Unit,
    basis: Basis,
}

struct Device {
    id: Arc<str>,
    channels: HashMap<String, Channel>,
}

pub struct Decoder {
    subscriptions: Vec<Subscription>,
    /// By the name the device publishes under.
    devices: HashMap<String, Device>,
}

impl Decoder {
    /// `site_zone` reads local timestamps of subscriptions that set no time_zone.
    pub fn new(source: &MqttSourceConfig, site_zone: UtcOffset) -> Decoder {
        let subscriptions = source
            .subscriptions
            .iter()
            .map(|sub| {
                let zone = sub.time_zone.unwrap_or(site_zone);
                let reader = match sub.format {
                    PayloadFormat::Json => Reader::Json(Box::new(JsonReader::new(
                        &sub.json.clone().unwrap_or_default(),
                        sub.time_format(),
                        zone,
                    ))),
                    PayloadFormat::LineProtocol => Reader::LineProtocol(LineProtocolReader::new(
                        &sub.line_protocol.clone().unwrap_or_default(),
                        sub.time_format(),
                        zone,
                    )),
                    PayloadFormat::Plain => Reader::Plain,
                    PayloadFormat::Hj212 => Reader::Hj212(zone),
                };
                Subscription {
                    filter: sub.filter.clone(),
                    template: sub.topic.clone(),
                    device: sub.device.clone(),
                    status_map: sub.status_map.clone(),
                    reader,
                }
            })
            .collect();
        let devices = source
            .devices
            .iter()
            .map(|d| {
                let channels = d
                    .channels
                    .iter()
                    .filter_map(|(name, ch)| {
                        let quantity = ch.quantity_of(name)?; // validated: always Some
                        Some((
                            name.clone(),
                            Channel {
                                name: Arc::from(name.as_str()),
                                quantity,
                                unit: ch.unit,
                                basis: ch.basis,
                            },
                        ))
                    })
                    .collect();
                (
                    d.published_name().to_string(),
                    Device {
                        id: Arc::from(d.id.as_str()),
                        channels,
                    },
                )
            })
            .collect();
        Decoder {
            subscriptions,
            devices,
        }
    }

    pub fn decode(
        &self,
        topic: &str,
        payload: &[u8],
        received: Timestamp,
    ) -> Result<Decoded, PayloadError> {
        let Some(sub) = self.subscriptions.iter().find(|s| s.filter.matches(topic)) else {
            return Err(PayloadError::new(
                Reason::TopicMismatch,
                "no subscription of this source matches the topic",
            ));
        };
        let parts = match &sub.template {
            Some(template) => template.read(topic).ok_or_else(|| {
                PayloadError::new(Reason::TopicMismatch, "the topic does not fit the template")
            })?,
            None => TopicParts::default(),
        };
        let raw = match &sub.reader {
            Reader::Json(r) => r.read(payload),
            Reader::LineProtocol(r) => r.read(payload),
            Reader::Plain => plain::read(payload),
            Reader::Hj212(zone) => hj212_packet::read(payload, *zone),
        }?;
        if raw.is_empty() {
            return Err(PayloadError::new(
                Reason::Empty,
                "no reading in the message",
            ));
        }
        let mut receive_timed = false;
        let samples = raw
            .into_iter()
            .map(|r| {
                receive_timed |= r.ts.is_none();
                self.bind(sub, parts, r, received)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Decoded {
            samples,
            receive_timed,
        })
    }

    fn bind(
        &self,
        sub: &Subscription,
        parts: TopicParts,
        raw: RawReading,
        received: Timestamp,
    ) -> Result<Sample, PayloadError> {
        let device_name = raw
            .device
            .as_deref()
            .or(parts.device)
            .or(sub.device.as_deref())
            .ok_or_else(|| {
                PayloadError::new(
                    Reason::MissingField,
                    "no device: neither the payload, the topic nor the subscription names one",
                )
            })?;
        let device = self.devices.get(device_name).ok_or_else(|| {
            PayloadError::new(
                Reason::UnknownDevice,
                format!("device {device_name:?} is not declared in this source"),
            )
        })?;
        let channel_name = raw.channel.as_deref().or(parts.channel).ok_or_else(|| {
            PayloadError::new(
                Reason::MissingField,
                "no channel: neither the payload nor the topic names one",
            )
        })?;
        let channel = device.channels.get(channel_name).ok_or_else(|| {
            PayloadError::new(
                Reason::UnknownChannel,
                format!("device {device_name:?} declares no channel {channel_name:?}"),
            )
        })?;
        if let Some(unit) = &raw.unit {
            if unit.parse::<Unit>().ok() != Some(channel.unit) {
                return Err(PayloadError::new(
                    Reason::UnitMismatch,
                    format!(
                        "{device_name}/{channel_name} is published in {unit:?} but declared in {}",
                        channel.unit
                    ),
                ));
            }
        }
        let status = match raw.status.as_deref().map(str::trim) {
            None | Some("") => FlagSet::EMPTY,
            Some(text) => {
                let flag = sub
                    .status_map
                    .get(text)
                    .copied()
                    .or_else(|| text.parse::<Flag>().ok())
                    .ok_or_else(|| {
                        PayloadError::new(
                            Reason::BadStatus,
                            format!("status {text:?} of {device_name}/{channel_name} is not an HJ 212 flag nor in status_map"),
                        )
                    })?;
                if flag == Flag::N {
                    FlagSet::EMPTY
                } else {
                    FlagSet::of(flag)
                }
            }
        };
        Ok(Sample {
            device: device.id.clone(),
            channel: channel.name.clone(),
            quantity: channel.quantity,
            unit: channel.unit,
            basis: channel.basis,
            value: raw.value,
            status,
            ts: raw.ts.unwrap_or(received),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoder(toml_text: &str) -> Decoder {
        let source: MqttSourceConfig =
            toml::from_str(toml_text).unwrap_or_else(|e| panic!("config: {e}"));
        Decoder::new(&source, UtcOffset::CHINA)
    }

    const SOURCE: &str = r#"
        id = "s"
        url = "mqtt://127.0.0.1"
        client_id = "c"
        [[subscribe]]
        filter = "plant/+/+/+"
        format = "plain"
        topic = "plant/{site}/{device}/{channel}"
        [[subscribe]]
        filter = "json/#"
        format = "json"
        device = "dtu-7"
        status_map = { "0" = "N", "2" = "M" }
        [[device]]
        id = "u1-dtu"
        published_as = "dtu-7"
        stack = "unit1"
        interval = "10s"
        channels = { SO2 = { unit = "mg/m3" }, h2o = { quantity = "humidity", unit = "%vol", basis = "wet" } }
    "#;

    const RECEIVED: Timestamp = Timestamp(1_767_240_000_000);

    #[test]
    fn topic_names_device_and_channel_of_a_plain_number() {
        let d = decoder(SOURCE);
        let got = d
            .decode("plant/p1/dtu-7/SO2", b"12.5", RECEIVED)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(got.receive_timed);
        assert_eq!(
            got.samples,
            vec![Sample {
                device: Arc::from("u1-dtu"),
                channel: Arc::from("SO2"),
                quantity: Quantity::SO2,
                unit: Unit::MgPerM3,
                basis: Basis::Dry,
                value: 12.5,
                status: FlagSet::EMPTY,
                ts: RECEIVED,
            }]
        );
    }

    #[test]
    fn subscription_device_and_status_map_apply_to_json() {
        let d = decoder(SOURCE);
        let got = d
            .decode(
                "json/x",
                br#"{"channel":"h2o","value":8.5,"status":2,"time":"2026-01-01T04:00:01Z"}"#,
                RECEIVED,
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!got.receive_timed);
        let s = &got.samples[0];
        assert_eq!(
            (&*s.device, s.quantity, s.basis, s.status, s.ts),
            (
                "u1-dtu",
                Quantity::Humidity,
                Basis::Wet,
                FlagSet::of(Flag::M),
                Timestamp(RECEIVED.0 + 1000)
            )
        );
    }

    #[test]
    fn every_binding_failure_has_its_reason() {
        let d = decoder(SOURCE);
        let reason = |topic: &str, payload: &[u8]| {
            d.decode(topic, payload, RECEIVED).err().map(|e| e.reason)
        };
        assert_eq!(
            reason("plant/p1/other/SO2", b"1"),
            Some(Reason::UnknownDevice)
        );
        assert_eq!(
            reason("plant/p1/dtu-7/NOx", b"1"),
            Some(Reason::UnknownChannel)
        );
        assert_eq!(reason("elsewhere/x", b"1"), Some(Reason::TopicMismatch));
        assert_eq!(
            reason("json/x", br#"{"channel":"SO2","value":1,"unit":"ppm"}"#),
            Some(Reason::UnitMismatch)
        );
        assert_eq!(
            reason("json/x", br#"{"channel":"SO2","value":1,"status":"7"}"#),
            Some(Reason::BadStatus)
        );
        assert_eq!(
            reason("json/x", br#"{"value":1}"#),
            Some(Reason::MissingField)
        );
        assert_eq!(reason("json/x", b"[]"), Some(Reason::Empty));
        // one bad reading refuses the whole message
        assert_eq!(
            reason(
                "json/x",
                br#"[{"channel":"SO2","value":1},{"channel":"CO","value":2}]"#
            ),
            Some(Reason::UnknownChannel)
        );
    }
}
