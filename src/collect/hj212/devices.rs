//! The data loggers a listener accepts, by MN, with their passwords loaded at start and at
//! every reload.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::config::secret::{Secret, SecretError};
use crate::model::time::UtcOffset;

use crate::config::hj212_listener::ListenerConfig;

#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub mn: Arc<str>,
    /// Measuring point its records are stored under.
    pub stack: Arc<str>,
    pub password: Secret,
    /// Local offset of its DataTime.
    pub zone: UtcOffset,
}

#[derive(Debug, Clone, Default)]
pub struct Devices(HashMap<Arc<str>, Device>);

/// How many loggers a reload adds, changes and removes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistryChange {
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
}

/// A logger whose password cannot be had; names the MN, never the secret.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("HJ 212 device {mn:?}: no password source")]
    NoPassword { mn: String },
    #[error("HJ 212 device {mn:?}: password: {source}")]
    Password { mn: String, source: SecretError },
}

impl Devices {
    pub fn new(devices: impl IntoIterator<Item = Device>) -> Devices {
        Devices(devices.into_iter().map(|d| (d.mn.clone(), d)).collect())
    }

    /// Loads every device's password; the error names the MN, never the secret.
    pub fn load(
        config: &ListenerConfig,
        site_zone: UtcOffset,
        config_path: &Path,
    ) -> Result<Devices, DeviceError> {
        let mut devices = Vec::new();
        for device in config.all_devices() {
            let mn = || device.mn.clone();
            let password = device
                .password
                .source()
                .ok_or_else(|| DeviceError::NoPassword { mn: mn() })?
                .load(device.defined_in.as_deref().unwrap_or(config_path))
                .map_err(|source| DeviceError::Password { mn: mn(), source })?;
            devices.push(Device {
                mn: Arc::from(device.mn.as_str()),
                stack: Arc::from(device.stack.as_str()),
                password,
                zone: config.zone_of(device, site_zone),
            });
        }
        Ok(Devices::new(devices))
    }

    pub fn get(&self, mn: &str) -> Option<&Device> {
        self.0.get(mn)
    }

    /// What replacing `self` by `new` adds, changes (password, stack or zone) and removes.
    pub fn changes_to(&self, new: &Devices) -> RegistryChange {
        let mut change = RegistryChange::default();
        for (mn, device) in &new.0 {
            match self.0.get(mn) {
                None => change.added += 1,
                Some(old) if old != device => change.changed += 1,
                Some(_) => {}
            }
        }
        change.removed = self.0.keys().filter(|mn| !new.0.contains_key(*mn)).count();
        change
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(mn: &str, password: &str) -> Device {
        Device {
            mn: Arc::from(mn),
            stack: Arc::from("s"),
            password: Secret::new(password),
            zone: UtcOffset::CHINA,
        }
    }

    #[test]
    fn changes_count_added_changed_and_removed_loggers() {
        let old = Devices::new([device("A", "1"), device("B", "1"), device("C", "1")]);
        let new = Devices::new([device("A", "1"), device("B", "2"), device("D", "1")]);
        assert_eq!(
            old.changes_to(&new),
            RegistryChange {
                added: 1,
                changed: 1,
                removed: 1
            }
        );
        assert_eq!(old.changes_to(&old), RegistryChange::default());
    }
}
