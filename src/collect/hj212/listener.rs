//! The listener's tasks: a TCP accept loop with one task per connection (at most
//! `max_connections`, at most `max_connections_per_ip` from one source address, none from an
//! address locked out for guessing passwords; behind a proxy, the source address is the one
//! its PROXY header names), and one task per serial port. Stopping closes
//! the listening socket first, then lets every connection finish the packets it has read
//! (commit and ack).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::collect::batch::IngestPort;
use crate::config::BusConfig;
use crate::store::StoreHandle;

use super::devices::{Devices, RegistryChange};
use super::gaps::GapTracker;
use super::per_source::{PerSource, SourceSlot};
use super::proxy_header::{self, ProxyHeaderError};
use super::session::{serve, Context, DataTimeWindow, Limits};
use super::stats::{self, Reject};
use super::throttle::{source_of, AuthThrottle};
use crate::config::hj212_listener::{ListenerConfig, ListenerSerial};
use crate::model::time::Clock;

/// How long connections get to finish their current packets after a stop.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);
/// Longest wait before reopening a serial port that failed.
const MAX_REOPEN_DELAY: Duration = Duration::from_secs(30);

/// The listening address is taken or not ours; the daemon does not start without it.
#[derive(Debug, thiserror::Error)]
#[error("HJ 212 listener cannot listen on {listen}: {source}")]
pub struct ListenError {
    listen: SocketAddr,
    source: std::io::Error,
}

pub struct Hj212Listener {
    context: Arc<Context>,
    local_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Hj212Listener {
    /// Binds the TCP address (so a taken port fails the start) and starts serving.
    /// `future_tolerance` is `[ingest] future_tolerance`: how far ahead of the clock an
    /// upload's DataTime may be.
    pub async fn start(
        config: &ListenerConfig,
        future_tolerance: Duration,
        devices: Devices,
        ingest: IngestPort,
        store: StoreHandle,
        clock: Clock,
    ) -> Result<Hj212Listener, ListenError> {
        stats::loggers(devices.len());
        let context = Arc::new(Context {
            devices: watch::channel(Arc::new(devices)).0,
            ingest,
            store,
            gaps: config
                .history_pull
                .then(|| Mutex::new(GapTracker::new(config.minute_gap.0, config.history_max.0))),
            history_max: config.history_max.0,
            data_time: DataTimeWindow {
                horizon: config.data_time_horizon.0,
                tolerance: future_tolerance,
            },
            throttle: Mutex::new(AuthThrottle::new(
                config.auth_lockout_after,
                config.auth_lockout.0,
            )),
            clock,
        });
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut local_addr = None;
        if let Some(listen) = config.listen {
            let socket = TcpListener::bind(listen)
                .await
                .map_err(|source| ListenError { listen, source })?;
            local_addr = socket.local_addr().ok();
            tracing::info!(%listen, devices = context.devices().len(), "HJ 212 listener accepting");
            tasks.spawn(accept_loop(
                socket,
                context.clone(),
                Slots {
                    max_connections: config.max_connections,
                    per_source: PerSource::new(config.max_connections_per_ip),
                    proxy_protocol: config.proxy_protocol,
                },
                Limits {
                    idle: config.idle_timeout.0,
                    packet_deadline: config.packet_deadline.0,
                },
                stopped.clone(),
            ));
        }
        for serial in &config.serial {
            tasks.spawn(serial_loop(
                serial.clone(),
                context.clone(),
                stopped.clone(),
            ));
        }
        Ok(Hj212Listener {
            context,
            local_addr,
            stop,
            tasks,
        })
    }

    /// Takes a new set of loggers (a reload changed the registry) without touching a
    /// connection of a logger still in it: a changed password or stack applies from the
    /// logger's next packet, a removed logger's connection is closed.
    pub fn replace_devices(&self, devices: Devices) -> RegistryChange {
        let change = self.context.devices().changes_to(&devices);
        stats::loggers(devices.len());
        stats::registry_change("added", change.added);
        stats::registry_change("changed", change.changed);
        stats::registry_change("removed", change.removed);
        self.context.devices.send_replace(Arc::new(devices));
        change
    }

    /// The bound TCP address (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Stops accepting, waits for connections to commit and ack what they have read.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// How many connections the accept loop lets in, in all and per source address, and
/// whether a PROXY protocol header names the source.
struct Slots {
    max_connections: usize,
    per_source: PerSource,
    proxy_protocol: bool,
}

async fn accept_loop(
    socket: TcpListener,
    context: Arc<Context>,
    limits: Slots,
    timing: Limits,
    mut stopped: watch::Receiver<bool>,
) {
    let max_connections = limits.max_connections;
    let slots = Arc::new(Semaphore::new(max_connections));
    let per_source = Arc::new(limits.per_source);
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => break,
            accepted = socket.accept() => accepted,
            // reap finished connections so the set does not grow
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (mut stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // EMFILE and the like: back off instead of spinning
                tracing::warn!(%error, "HJ 212 listener cannot accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Behind a proxy the source is known only from the header: the connection takes a
        // slot first, so connections waiting for their header are bounded too.
        let source_slot = if limits.proxy_protocol {
            None
        } else {
            let Some(source_slot) = admit_source(&context, &per_source, peer) else {
                continue;
            };
            Some(source_slot)
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            stats::connection_refused(Reject::ConnectionLimit);
            tracing::warn!(%peer, max_connections, "HJ 212 connection refused: max_connections reached");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (context, per_source, stopped) = (context.clone(), per_source.clone(), stopped.clone());
        connections.spawn(async move {
            let (peer, source_slot) = match source_slot {
                Some(source_slot) => (peer, source_slot),
                None => {
                    let Some(peer) = proxied_peer(&mut stream, peer, timing).await else {
                        return;
                    };
                    let Some(source_slot) = admit_source(&context, &per_source, peer) else {
                        return;
                    };
                    (peer, source_slot)
                }
            };
            stats::connection_accepted();
            serve_tcp(stream, peer, &context, timing, stopped).await;
            stats::connection_closed();
            drop((slot, source_slot));
        });
    }
    drop(socket);
    let drained = tokio::time::timeout(DRAIN_LIMIT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("HJ 212 connections did not finish within {DRAIN_LIMIT:?}; cutting them");
        connections.shutdown().await;
    }
}

/// A connection's slot of its source address, unless the address is locked out or has
/// `max_connections_per_ip` open (both counted).
fn admit_source(context: &Context, per_source: &PerSource, peer: SocketAddr) -> Option<SourceSlot> {
    let source = source_of(peer.ip());
    if context.throttle().source_locked(source, Instant::now()) {
        // counted, not logged: the lockout itself was logged once
        stats::connection_refused(Reject::LockedOut);
        stats::auth_failure(Reject::LockedOut);
        return None;
    }
    let source_slot = per_source.try_acquire(source);
    if source_slot.is_none() {
        stats::connection_refused(Reject::SourceConnectionLimit);
        tracing::debug!(%peer, "HJ 212 connection refused: max_connections_per_ip reached");
    }
    source_slot
}

/// The logger's address from the PROXY header the proxy at `proxy` sent, within the packet
/// deadline; none (the connection is dropped) without a valid one. A proxy's health check
/// connects and closes without a byte: not counted.
async fn proxied_peer(
    stream: &mut TcpStream,
    proxy: SocketAddr,
    timing: Limits,
) -> Option<SocketAddr> {
    match tokio::time::timeout(timing.packet_deadline, proxy_header::read(stream)).await {
        Ok(Ok(source)) => Some(source.unwrap_or(proxy)),
        Ok(Err(ProxyHeaderError::Closed)) => None,
        Ok(Err(error)) => {
            stats::connection_refused(Reject::ProxyHeader);
            tracing::warn!(%proxy, %error, "HJ 212 connection closed: proxy_protocol is on and it sent no PROXY header");
            None
        }
        Err(_) => {
            stats::connection_refused(Reject::ProxyHeader);
            tracing::warn!(%proxy, "HJ 212 connection closed: no PROXY header within the packet deadline");
            None
        }
    }
}

async fn serve_tcp(
    stream: TcpStream,
    peer: SocketAddr,
    context: &Context,
    limits: Limits,
    stopped: watch::Receiver<bool>,
) {
    let source = source_of(peer.ip());
    let peer = peer.to_string();
    tracing::debug!(%peer, "HJ 212 connection accepted");
    serve(stream, &peer, Some(source), context, Some(limits), stopped).await;
}

/// Keeps one serial port open, reopening it with growing delays when it fails (a USB
/// adapter unplugged), until the stop.
async fn serial_loop(
    serial: ListenerSerial,
    context: Arc<Context>,
    mut stopped: watch::Receiver<bool>,
) {
    let bus = bus_of(&serial);
    let mut delay = Duration::from_secs(1);
    loop {
        if *stopped.borrow() {
            return;
        }
        match crate::collect::modbus::serial::open_port(&bus) {
            Ok(port) => {
                tracing::info!(port = %serial.port, baud = serial.baud, "HJ 212 serial port open");
                delay = Duration::from_secs(1);
                // a serial line is a wire inside the plant: no deadlines, no throttling
                serve(port, &serial.port, None, &context, None, stopped.clone()).await;
            }
            Err(error) => tracing::warn!(%error, "HJ 212 serial port"),
        }
        tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(MAX_REOPEN_DELAY);
    }
}

/// The serial settings in the form the port opener takes; the Modbus timing fields do not
/// apply to a line that only carries HJ 212 text.
fn bus_of(serial: &ListenerSerial) -> BusConfig {
    BusConfig {
        id: format!("hj212:{}", serial.port),
        port: serial.port.clone(),
        baud: serial.baud,
        data_bits: 8,
        parity: serial.parity,
        stop_bits: serial.stop_bits,
        response_timeout: crate::config::Interval(Duration::from_secs(1)),
        inter_frame_delay: None,
        turnaround_delay: None,
        capture: false,
        capture_dir: None,
    }
}
