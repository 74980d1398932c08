//! The data loggers a listener accepts, by MN, with their passwords loaded once at start.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::config::secret::{Secret, SecretError};
use crate::model::time::UtcOffset;

use crate::config::hj212_listener::ListenerConfig;

#[derive(Debug, Clone)]
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
        let mut devices = Vec::with_capacity(config.devices.len());
        for device in &config.devices {
            let mn = || device.mn.clone();
            let password = device
                .password
                .source()
                .ok_or_else(|| DeviceError::NoPassword { mn: mn() })?
                .load(config_path)
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

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
