//! CN 3020 from data loggers (上传现场机信息, HJ 212-2017 Table 6): their logs, device states and
//! parameters, stored in the audit trail under the logger's MN, so a change of a parameter at
//! the plant is on record beside the data it affects and goes on to InfluxDB and the uplinks.
//!
//! HJ 212-2017 Appendix B sorts the information codes: i11xxx logs (i11001 运行日志), i12xxx
//! device states (i12001 工作状态 …), i13xxx parameters (i13001 测量量程 …). Each `iXXXXX-Info`
//! value belongs to the monitoring factor of the `PolId` before it, which loggers send either
//! in a group of its own (the standard's example in Appendix C:
//! `PolId=w01018;i11001-Info=//清洗管路//`) or in one group with the values
//! (`PolId=w01019,i12001-Info=0,i12002-Info=0;…`, a public logger packet in
//! `tests/hj212_listener.rs`). A log entry is always recorded; a state or parameter only
//! when it differs from the value last recorded for that logger, since loggers repeat them.

use std::collections::BTreeMap;

use crate::model::Timestamp;
use crate::protocol::hj212::{CpGroup, FieldKind, Packet};
use crate::store::{AuditEntry, AuditHow, StoreHandle};

use super::devices::Device;
use super::records::{data_time_utc, RecordsError};

/// One information value: `w01019.i12001` (or `i11001` without a PolId) and its text; a
/// log's `//…//` marks are taken off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Information {
    pub item: String,
    pub value: String,
}

/// The DataTime (UTC) and every information value of a 3020 upload, in wire order.
pub fn information_of(
    packet: &Packet,
    device: &Device,
) -> Result<(Timestamp, Vec<Information>), RecordsError> {
    let text = packet.cp.data_time().ok_or(RecordsError::MissingDataTime)?;
    let ts = data_time_utc(text, device.zone)?;
    let mut pol_id: Option<String> = None;
    let mut out = Vec::new();
    let mut take = |key: &str, value: &str, pol_id: &Option<String>| {
        let Some((code, field)) = key.split_once('-') else {
            return;
        };
        if field != "Info" || !code.starts_with('i') {
            return;
        }
        let value = value
            .strip_prefix("//")
            .and_then(|v| v.strip_suffix("//"))
            .unwrap_or(value);
        out.push(Information {
            item: pol_id
                .as_ref()
                .map_or_else(|| code.to_string(), |p| format!("{p}.{code}")),
            value: value.to_string(),
        });
    };
    for group in &packet.cp.groups {
        match group {
            CpGroup::DataTime(_) => {}
            CpGroup::Params(pairs) => {
                for (key, value) in pairs {
                    if key == "PolId" {
                        pol_id = Some(value.clone());
                    } else {
                        take(key, value, &pol_id);
                    }
                }
            }
            CpGroup::Factor(factor) => {
                for (kind, value) in &factor.fields {
                    if let FieldKind::Other(name) = kind {
                        take(&format!("{}-{name}", factor.code), value, &pol_id);
                    }
                }
            }
        }
    }
    Ok((ts, out))
}

/// The audit entries of `information` from logger `mn`: every log, and each state or
/// parameter whose value differs from `recorded` (the last recorded value of each item).
pub fn entries(
    mn: &str,
    ts: Timestamp,
    information: Vec<Information>,
    recorded: &BTreeMap<String, Option<String>>,
) -> Vec<AuditEntry> {
    let mut last: BTreeMap<String, Option<String>> = recorded.clone();
    let mut out = Vec::new();
    for info in information {
        let code = info.item.rsplit('.').next().unwrap_or("");
        let is_log = code.starts_with("i11");
        let old = last.get(&info.item).cloned().flatten();
        if !is_log && old.as_deref() == Some(info.value.as_str()) {
            continue;
        }
        last.insert(info.item.clone(), Some(info.value.clone()));
        out.push(AuditEntry {
            ts: ts.millis(),
            source: mn.to_string(),
            how: AuditHow::Upload,
            item: info.item,
            old: if is_log { None } else { old },
            new: Some(info.value),
            file: None,
            checksum: None,
        });
    }
    out
}

/// Stores what a 3020 upload says in the audit trail (and, on the logger's stack, the event
/// records that carry it on); returns how many entries were recorded.
pub async fn store_information(
    store: &StoreHandle,
    device: &Device,
    packet: &Packet,
) -> Result<usize, String> {
    let (ts, information) = information_of(packet, device).map_err(|e| e.to_string())?;
    let mn = device.mn.to_string();
    let stack = device.stack.to_string();
    store
        .record_audit(move |store| {
            let recorded = store.audit_values(&mn)?;
            let entries = entries(&mn, ts, information, &recorded);
            let records = entries.iter().map(|e| e.to_record(&stack)).collect();
            Ok((entries, records))
        })
        .await
        .map(|entries| entries.len())
        .map_err(|e| format!("cannot store the logger's information: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(item: &str, value: &str) -> Information {
        Information {
            item: item.to_string(),
            value: value.to_string(),
        }
    }

    #[test]
    fn logs_are_always_recorded_states_only_when_they_change() {
        let recorded: BTreeMap<String, Option<String>> =
            [("w01019.i12001".to_string(), Some("0".to_string()))].into();
        let got: Vec<(String, Option<String>, Option<String>)> = entries(
            "MN1",
            Timestamp::from_millis(5),
            vec![
                info("w01019.i12001", "0"),
                info("w01019.i12002", "1"),
                info("w01018.i11001", "清洗管路"),
                info("w01018.i11001", "清洗管路"),
                info("w01019.i12001", "3"),
            ],
            &recorded,
        )
        .into_iter()
        .map(|e| (e.item, e.old, e.new))
        .collect();
        let s = |t: &str| Some(t.to_string());
        assert_eq!(
            got,
            vec![
                ("w01019.i12002".to_string(), None, s("1")),
                ("w01018.i11001".to_string(), None, s("清洗管路")),
                ("w01018.i11001".to_string(), None, s("清洗管路")),
                ("w01019.i12001".to_string(), s("0"), s("3")),
            ]
        );
    }
}
