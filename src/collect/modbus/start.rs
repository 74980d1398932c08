//! Turns the site config into line owners: one per serial bus, one per connection to each
//! network endpoint (devices behind one address share it).

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use chrono::FixedOffset;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::device::DevicePoller;
use super::line::Line;
use super::serial::SerialConnector;
use super::tcp::{RtuOverTcpConnector, TcpConnector};
use crate::collect::batch::BatchSender;
use crate::config::profile::ProfileSet;
use crate::config::{DeviceConfig, SiteConfig, Transport};
use crate::field::capture::DailyCapture;
use crate::pipeline::live::Live;

/// The running collectors.
pub struct Collectors {
    /// One task per line; each ends after `shutdown` turns true.
    pub tasks: JoinSet<()>,
    /// Capture writer threads; each ends once its bus's task has ended.
    pub captures: Vec<JoinHandle<DailyCapture>>,
    /// How many lines were started.
    pub lines: usize,
}

/// Starts a line owner for every bus and endpoint that has devices. `config_path` anchors
/// relative capture directories; `offset` is the site's local time for daily capture files.
pub fn start(
    config_path: &Path,
    config: &SiteConfig,
    profiles: &ProfileSet,
    offset: FixedOffset,
    out: &BatchSender,
    shutdown: &watch::Receiver<bool>,
    live: &Arc<Live>,
) -> Result<Collectors, String> {
    let mut collectors = Collectors {
        tasks: JoinSet::new(),
        captures: Vec::new(),
        lines: 0,
    };
    let poller = |device: &DeviceConfig| {
        profiles
            .get(&device.profile)
            .map(|profile| DevicePoller::new(device, profile, &config.buses))
    };

    for bus in &config.buses {
        let devices: Vec<DevicePoller> = config
            .devices
            .iter()
            .filter(|d| d.transport == Transport::Rtu && d.bus.as_deref() == Some(&bus.id))
            .filter_map(poller)
            .collect();
        if devices.is_empty() {
            continue;
        }
        let capture = if bus.capture {
            let dir = bus.capture_dir(config_path);
            let (sink, handle) = DailyCapture::new(&dir, &bus.id, offset)
                .spawn()
                .map_err(|e| format!("bus {}: cannot start the capture writer: {e}", bus.id))?;
            collectors.captures.push(handle);
            Some(sink)
        } else {
            None
        };
        let line = Line::new(
            Arc::from(bus.id.as_str()),
            SerialConnector::new(bus.clone(), capture),
            devices,
        );
        collectors
            .tasks
            .spawn(line.run(out.clone(), shutdown.clone(), live.clone()));
        collectors.lines += 1;
    }

    // network endpoints in the order the config first names them
    let mut endpoints: Vec<(Transport, &str, Vec<&DeviceConfig>)> = Vec::new();
    for device in &config.devices {
        let Some(address) = device.address.as_deref() else {
            continue;
        };
        match endpoints
            .iter_mut()
            .find(|(t, a, _)| *t == device.transport && *a == address)
        {
            Some((_, _, devices)) => devices.push(device),
            None => endpoints.push((device.transport, address, vec![device])),
        }
    }
    for (transport, address, devices) in endpoints {
        let max_connections = devices.iter().find_map(|d| d.max_connections).unwrap_or(1);
        let close_after_poll = devices
            .iter()
            .find_map(|d| d.close_after_poll)
            .unwrap_or(false);
        let connect_timeout = devices
            .iter()
            .map(|d| d.effective_timeout(&config.buses))
            .max()
            .unwrap_or(crate::config::DEFAULT_TIMEOUT);
        let connections = usize::from(max_connections).clamp(1, devices.len());
        for k in 0..connections {
            // devices spread round-robin over the connections
            let share: Vec<DevicePoller> = devices
                .iter()
                .skip(k)
                .step_by(connections)
                .copied()
                .filter_map(poller)
                .collect();
            let name: Arc<str> = if connections == 1 {
                Arc::from(address)
            } else {
                Arc::from(format!("{address}#{}", k + 1))
            };
            let (out, shutdown, live) = (out.clone(), shutdown.clone(), live.clone());
            match transport {
                Transport::Tcp => {
                    let connector = TcpConnector::new(address.to_string(), connect_timeout);
                    let line = Line::new(name, connector, share).close_after_poll(close_after_poll);
                    collectors.tasks.spawn(line.run(out, shutdown, live));
                }
                Transport::RtuOverTcp => {
                    let connector = RtuOverTcpConnector::new(address.to_string(), connect_timeout);
                    let line = Line::new(name, connector, share).close_after_poll(close_after_poll);
                    collectors.tasks.spawn(line.run(out, shutdown, live));
                }
                Transport::Rtu => continue,
            }
            collectors.lines += 1;
        }
    }
    Ok(collectors)
}
