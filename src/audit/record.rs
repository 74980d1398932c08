//! Recording the trail: at start (changes made while the daemon was stopped) and when a
//! reload takes effect. Each change is stored with its old and new value, the file and its
//! checksum, and goes to the sinks as an event record on every stack whose values it can
//! alter.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::config::{self, profile, Loaded};
use crate::store::{sha256_hex, AuditEntry, AuditHow, Record, StoreHandle};

use super::changes::{changes, Snapshot};
use super::flatten::flatten_text;

/// What the site config and the device profiles it uses say now.
pub fn snapshot(loaded: &Loaded) -> Result<Vec<Snapshot>, String> {
    let site = read(&loaded.path)?;
    let mut out = vec![of_file(
        "site",
        "",
        &loaded.path.display().to_string(),
        &site,
    )?];
    let mut profiles = Snapshot {
        source: "profile",
        items: BTreeMap::new(),
        files: BTreeMap::new(),
    };
    for name in used_profiles(loaded) {
        let in_dir = loaded
            .config
            .profiles_dir
            .as_ref()
            .map(|dir| config::relative_to(&loaded.path, dir).join(format!("{name}.toml")))
            .filter(|path| path.is_file());
        let (file, text) = match in_dir {
            Some(path) => (path.display().to_string(), read(&path)?),
            None => match profile::shipped_text(&name) {
                // built in: the file of the source tree it was compiled from
                Some(text) => (format!("device-profiles/{name}.toml"), text.to_string()),
                None => continue, // validated when the config was loaded
            },
        };
        let one = of_file("profile", &name, &file, &text)?;
        profiles.items.extend(one.items);
        profiles.files.extend(one.files);
    }
    out.push(profiles);
    Ok(out)
}

/// Records what changed since the store last recorded each item; returns the entries.
pub async fn record_changes(
    store: &StoreHandle,
    loaded: &Loaded,
    how: AuditHow,
    ts: i64,
) -> Result<Vec<AuditEntry>, String> {
    let snapshots = snapshot(loaded)?;
    let affected = Affected::new(loaded);
    store
        .record_audit(move |store| {
            let mut entries = Vec::new();
            for snapshot in &snapshots {
                let recorded = store.audit_values(snapshot.source)?;
                entries.extend(changes(&recorded, snapshot, ts, how));
            }
            let records: Vec<Record> = entries
                .iter()
                .flat_map(|entry| {
                    affected
                        .stacks(entry)
                        .into_iter()
                        .map(move |stack| entry.to_record(&stack))
                })
                .collect();
            Ok((entries, records))
        })
        .await
        .map_err(|e| format!("cannot record the audit trail: {e}"))
}

/// Which stacks' values an item can alter.
struct Affected {
    all: Vec<String>,
    device_stack: BTreeMap<String, String>,
    profile_stacks: BTreeMap<String, BTreeSet<String>>,
}

impl Affected {
    fn new(loaded: &Loaded) -> Affected {
        let config = &loaded.config;
        let mut all: Vec<String> = config.stacks.iter().map(|s| s.id.clone()).collect();
        if all.is_empty() {
            all.push(config.site.id.clone());
        }
        let mut profile_stacks: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for device in &config.devices {
            profile_stacks
                .entry(device.profile.clone())
                .or_default()
                .insert(device.stack.clone());
        }
        Affected {
            all,
            device_stack: config
                .devices
                .iter()
                .map(|d| (d.id.clone(), d.stack.clone()))
                .collect(),
            profile_stacks,
        }
    }

    fn stacks(&self, entry: &AuditEntry) -> Vec<String> {
        let mut parts = entry.item.splitn(3, '.');
        let (first, second) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        if entry.source == "profile" {
            if let Some(stacks) = self.profile_stacks.get(first) {
                return stacks.iter().cloned().collect();
            }
        } else if first == "stack" && self.all.iter().any(|s| s == second) {
            return vec![second.to_string()];
        } else if first == "device" {
            if let Some(stack) = self.device_stack.get(second) {
                return vec![stack.clone()];
            }
        }
        self.all.clone()
    }
}

fn used_profiles(loaded: &Loaded) -> BTreeSet<String> {
    let config = &loaded.config;
    config
        .devices
        .iter()
        .map(|d| d.profile.clone())
        .chain(config.simulators.iter().map(|s| s.profile.clone()))
        .collect()
}

fn of_file(source: &'static str, prefix: &str, file: &str, text: &str) -> Result<Snapshot, String> {
    let items = flatten_text(prefix, text).map_err(|e| format!("{file}: {e}"))?;
    let checksum = sha256_hex(text.as_bytes());
    let files = items
        .keys()
        .map(|item| (item.clone(), (file.to_string(), checksum.clone())))
        .collect();
    Ok(Snapshot {
        source,
        items,
        files,
    })
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}
