//! The data loggers a listener accepts, by MN, with their passwords loaded once at start.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::config::secret::Secret;
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

impl Devices {
    pub fn new(devices: impl IntoIterator<Item = Device>) -> Devices {
        Devices(devices.into_iter().map(|d| (d.mn.clone(), d)).collect())
    }

    /// Loads every device's password; the error names the MN, never the secret.
    pub fn load(
        config: &ListenerConfig,
        site_zone: UtcOffset,
        config_path: &Path,
    ) -> Result<Devices, String> {
        let mut devices = Vec::with_capacity(config.devices.len());
        for device in &config.devices {
            let password = device
                .password
                .source()
                .ok_or_else(|| format!("HJ 212 device {:?}: no password source", device.mn))?
                .load(config_path)
                .map_err(|e| format!("HJ 212 device {:?}: password: {e}", device.mn))?;
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
