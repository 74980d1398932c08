//! What is happening right now, per device: shared by the collectors (connection, errors),
//! the pipeline (latest values) and whatever shows it (terminal line, status page).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::model::{Flag, Sample, Timestamp, Unit};

#[derive(Debug, Clone, Default)]
pub struct DeviceLive {
    pub connected: bool,
    pub polls: u64,
    pub errors: u64,
    pub last_error: Option<String>,
    /// Latest value per channel.
    pub values: BTreeMap<Arc<str>, ChannelLive>,
}

#[derive(Debug, Clone)]
pub struct ChannelLive {
    pub value: f64,
    pub unit: Unit,
    pub flag: Flag,
    pub ts: Timestamp,
}

#[derive(Debug, Default)]
pub struct Live {
    devices: Mutex<BTreeMap<Arc<str>, DeviceLive>>,
    pub committed: AtomicU64,
}

impl Live {
    pub fn new() -> Arc<Live> {
        Arc::new(Live::default())
    }

    /// A poisoned lock only means a panic elsewhere; the map itself is still usable.
    fn devices(&self) -> MutexGuard<'_, BTreeMap<Arc<str>, DeviceLive>> {
        self.devices.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn poll_succeeded(&self, device: &Arc<str>) {
        crate::ops::metrics::poll_succeeded(device);
        let mut devices = self.devices();
        let d = devices.entry(device.clone()).or_default();
        d.connected = true;
        d.polls += 1;
    }

    pub fn poll_failed(&self, device: &Arc<str>, error: String) {
        crate::ops::metrics::poll_failed(device, &error);
        let mut devices = self.devices();
        let d = devices.entry(device.clone()).or_default();
        d.connected = false;
        d.polls += 1;
        d.errors += 1;
        d.last_error = Some(error);
    }

    pub fn record_samples(&self, samples: &[Sample]) {
        let mut devices = self.devices();
        for s in samples {
            let d = devices.entry(s.device.clone()).or_default();
            d.values.insert(
                s.channel.clone(),
                ChannelLive {
                    value: s.value,
                    unit: s.unit,
                    flag: s.status.primary(),
                    ts: s.ts,
                },
            );
        }
    }

    pub fn add_committed(&self, n: u64) {
        self.committed.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> BTreeMap<Arc<str>, DeviceLive> {
        self.devices().clone()
    }

    /// One compact line per device, for the terminal.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (id, d) in self.snapshot() {
            let state = if d.connected { "ok  " } else { "DOWN" };
            let values: Vec<String> = d
                .values
                .iter()
                .map(|(ch, v)| {
                    if v.value.is_nan() {
                        format!("{ch}=- [{}]", v.flag)
                    } else {
                        format!("{ch}={:.2}{} [{}]", v.value, v.unit, v.flag)
                    }
                })
                .collect();
            out.push_str(&format!(
                "{state} {id:<14} polls {:<6} errors {:<4} {}\n",
                d.polls,
                d.errors,
                values.join("  ")
            ));
        }
        out.push_str(&format!(
            "store: {} rows committed this run\n",
            self.committed.load(Ordering::Relaxed)
        ));
        out
    }
}
