//! Which items changed between what the store last recorded and what is in force now.
//! Pure: the caller passes the time and how the change took effect.

use std::collections::BTreeMap;

use crate::store::{AuditEntry, AuditHow};

/// What one source (the site config, or the device profiles) says now, and where from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// `site` or `profile`.
    pub source: &'static str,
    pub items: BTreeMap<String, String>,
    /// The file each item came from, with its SHA-256 (hex).
    pub files: BTreeMap<String, (String, String)>,
}

/// One entry per item whose value differs from `recorded` (items recorded as removed count
/// as absent), including items that are gone now.
pub fn changes(
    recorded: &BTreeMap<String, Option<String>>,
    now: &Snapshot,
    ts: i64,
    how: AuditHow,
) -> Vec<AuditEntry> {
    let entry = |item: &str, old: Option<&String>, new: Option<&String>| {
        let file = now.files.get(item);
        AuditEntry {
            ts,
            source: now.source.to_string(),
            how,
            item: item.to_string(),
            old: old.cloned(),
            new: new.cloned(),
            file: file.map(|(path, _)| path.clone()),
            checksum: file.map(|(_, sum)| sum.clone()),
        }
    };
    let mut out = Vec::new();
    for (item, value) in &now.items {
        let old = recorded.get(item).and_then(Option::as_ref);
        if old != Some(value) {
            out.push(entry(item, old, Some(value)));
        }
    }
    for (item, old) in recorded {
        if let (Some(old), false) = (old, now.items.contains_key(item)) {
            out.push(entry(item, Some(old), None));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_added_and_removed_items_each_make_one_entry() {
        let recorded: BTreeMap<String, Option<String>> = [
            ("stack.u1.reference_o2", Some("6")),
            ("stack.u1.duct_area_m2", Some("28.3")),
            ("stack.u1.gone", None),
            ("stack.u1.same", Some("1")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
        .collect();
        let now = Snapshot {
            source: "site",
            items: [
                ("stack.u1.reference_o2", "8"),
                ("stack.u1.same", "1"),
                ("stack.u1.limits.so2", "35"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            files: BTreeMap::new(),
        };
        let found: Vec<(String, Option<String>, Option<String>)> =
            changes(&recorded, &now, 5, AuditHow::Reload)
                .into_iter()
                .map(|e| (e.item, e.old, e.new))
                .collect();
        let s = |t: &str| Some(t.to_string());
        assert_eq!(
            found,
            vec![
                ("stack.u1.limits.so2".to_string(), None, s("35")),
                ("stack.u1.reference_o2".to_string(), s("6"), s("8")),
                ("stack.u1.duct_area_m2".to_string(), s("28.3"), None),
            ]
        );
    }
}
