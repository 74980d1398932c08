//! One MQTT broker connection feeding the pipeline. The rumqttc event loop runs in a task of
//! its own that only polls (so it is never cancelled half-way through a packet) and hands
//! events over; this task decodes messages, hands each to the pipeline as a batch (its
//! readings, or its dead letter), and acknowledges each QoS 1 message only once the
//! pipeline's receipt says it is committed. Acknowledgements go out in the order the
//! messages came, as MQTT requires. The pipeline, not this source, recognises redeliveries.

use std::collections::VecDeque;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, Incoming, MqttOptions, Outgoing, Publish, QoS,
    SubscribeFilter, TlsConfiguration, Transport,
};
use tokio::sync::{mpsc, oneshot, watch};

use crate::collect::batch::{Batch, BatchSender, DeadLetter, Message, Origin, Receipt};

use crate::config::mqtt::credentials;
use crate::config::mqtt::partition::subscription_filters;
use crate::model::backoff::Backoff;
use crate::model::time::UtcOffset;
use crate::model::Timestamp;

use super::decode::Decoder;
use super::payload::{truncated, PayloadError, Reason};
use super::stats::SourceStats;
use super::tls::{self, TlsFiles};
use crate::config::mqtt::MqttSourceConfig;

/// Requests (acks, subscribes) queued for the event loop; acks beyond it wait their turn.
const REQUEST_CAPACITY: usize = 4096;
/// Events buffered between the event loop task and this one.
const EVENT_CAPACITY: usize = 1024;
/// How much of a payload over `max_payload` is kept in its dead letter.
const TOO_LARGE_KEPT_BYTES: usize = 1024;
/// How much of a refused payload goes into the log line (all of it goes to the dead letters).
const LOGGED_PAYLOAD_CHARS: usize = 200;
/// At shutdown, how long committed messages get to be acknowledged before disconnecting.
const ACK_DRAIN_LIMIT: Duration = Duration::from_secs(5);
/// How long the DISCONNECT gets to be written.
const DISCONNECT_LIMIT: Duration = Duration::from_secs(1);

/// Resolves true when the message may be acknowledged: what it carried is durable.
type Gate = Pin<Box<dyn Future<Output = bool> + Send>>;

/// An event of the event loop with the connection it happened on, or a connection error.
type PumpEvent = (u64, Result<Event, String>);

struct Pending {
    /// The message to acknowledge; None for QoS 0, which has no acknowledgement.
    publish: Option<Publish>,
    /// Connection the message came on: an acknowledgement on a later connection could
    /// acknowledge another message that reuses the packet id.
    connection: u64,
    gate: Gate,
    /// When the message arrived, to tell a source whose commits do not come.
    since: Instant,
}

pub struct MqttSource {
    id: Arc<str>,
    options: MqttOptions,
    filters: Vec<SubscribeFilter>,
    decoder: Decoder,
    backoff: Backoff,
    stats: Arc<SourceStats>,
    max_payload: usize,
}

impl MqttSource {
    /// Reads the password and TLS files; `config_path` anchors their relative paths. The
    /// error says which file or variable is at fault, never a secret.
    pub fn new(
        config: &MqttSourceConfig,
        site_zone: UtcOffset,
        config_path: &Path,
    ) -> Result<MqttSource, String> {
        let at = |p: &Option<std::path::PathBuf>| {
            p.as_ref()
                .map(|p| crate::config::relative_to(config_path, p))
        };
        let mut options = MqttOptions::new(
            config.client_id.clone(),
            config.url.host.clone(),
            config.url.port,
        );
        options
            .set_keep_alive(config.keep_alive.0)
            .set_clean_session(config.clean_session)
            .set_manual_acks(true)
            .set_max_packet_size(
                config.max_packet_size.as_usize(),
                config.max_packet_size.as_usize(),
            )
            .set_request_channel_capacity(REQUEST_CAPACITY);
        if let Some(user) = &config.username {
            let password = credentials::password(config, config_path)?;
            options.set_credentials(
                user.clone(),
                password.as_ref().map(|p| p.expose()).unwrap_or_default(),
            );
        }
        if config.url.tls {
            let (ca, cert, key) = (
                at(&config.ca_file),
                at(&config.client_cert),
                at(&config.client_key),
            );
            let client_config = tls::client_config(&TlsFiles {
                ca_file: ca.as_deref(),
                client_cert: cert.as_deref(),
                client_key: key.as_deref(),
            })?;
            options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                client_config,
            )));
        }
        if let Some(partition) = config.partition {
            tracing::info!(source = %config.id, instance = partition.instance, instances = partition.instances, devices = config.devices.len(), "MQTT partition: this instance handles its own devices only");
        }
        let filters = subscription_filters(config)
            .into_iter()
            .map(|(filter, s)| SubscribeFilter::new(filter, qos(s.qos)))
            .collect();
        let seed = config
            .client_id
            .bytes()
            .fold(u64::from(std::process::id()), |h, b| {
                h.rotate_left(5) ^ u64::from(b)
            });
        Ok(MqttSource {
            id: Arc::from(config.id.as_str()),
            options,
            filters,
            decoder: Decoder::new(config, site_zone),
            backoff: Backoff::new(config.reconnect_min.0, config.reconnect_max.0, seed),
            stats: Arc::new(SourceStats::new(config.stall_after.0)),
            max_payload: config.max_payload.as_usize(),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn stats(&self) -> Arc<SourceStats> {
        self.stats.clone()
    }

    /// Runs until `shutdown` turns true; then acknowledges what was committed, disconnects
    /// (the broker keeps the session) and returns.
    pub async fn run(self, out: BatchSender, mut shutdown: watch::Receiver<bool>) {
        let (client, eventloop) = AsyncClient::new(self.options.clone(), REQUEST_CAPACITY);
        let connection = Arc::new(AtomicU64::new(0));
        let (events_tx, events) = mpsc::channel(EVENT_CAPACITY);
        let pump = tokio::spawn(pump(
            eventloop,
            events_tx,
            self.backoff.clone(),
            connection.clone(),
        ));
        tracing::info!(source = %self.id, broker = %broker(&self.options), "mqtt source started");
        let mut session = Session {
            id: self.id.clone(),
            client,
            filters: self.filters,
            decoder: self.decoder,
            stats: self.stats,
            max_payload: self.max_payload,
            out,
            connection,
            pending: VecDeque::new(),
            ack_backlog: VecDeque::new(),
        };
        session.serve(events, &mut shutdown).await;
        pump.abort();
    }
}

struct Session {
    id: Arc<str>,
    client: AsyncClient,
    filters: Vec<SubscribeFilter>,
    decoder: Decoder,
    stats: Arc<SourceStats>,
    max_payload: usize,
    out: BatchSender,
    /// Counts connections made and lost, so an acknowledgement is sent only on the
    /// connection its message came on.
    connection: Arc<AtomicU64>,
    pending: VecDeque<Pending>,
    /// Acks the request queue had no room for, sent first once it drains.
    ack_backlog: VecDeque<Publish>,
}

impl Session {
    async fn serve(
        &mut self,
        mut events: mpsc::Receiver<PumpEvent>,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        let mut draining = false;
        let drain_deadline = tokio::time::sleep(Duration::MAX);
        tokio::pin!(drain_deadline);
        loop {
            tokio::select! {
                changed = shutdown.changed(), if !draining => {
                    if changed.is_err() || *shutdown.borrow() {
                        draining = true;
                        drain_deadline.as_mut().reset(tokio::time::Instant::now() + ACK_DRAIN_LIMIT);
                    }
                }
                event = events.recv() => match event {
                    Some((connection, Ok(event))) => {
                        if !self.on_event(event, connection, draining).await {
                            return;
                        }
                    }
                    Some((_, Err(error))) => {
                        tracing::warn!(source = %self.id, "mqtt connection: {error}");
                        self.stats.connection_failed(error);
                    }
                    None => return,
                },
                allowed = head_gate(&mut self.pending), if self.ack_backlog.is_empty() => {
                    if let Some(done) = self.pending.pop_front() {
                        if allowed {
                            self.stats.progressed();
                        }
                        self.acknowledge(done, allowed);
                    }
                }
                _ = &mut drain_deadline, if draining => {
                    tracing::warn!(source = %self.id, unacknowledged = self.pending.len(), "stopping before every message was committed; the broker redelivers the rest");
                    break;
                }
            }
            self.flush_ack_backlog();
            self.stats
                .pending_since(self.pending.front().map(|p| p.since));
            if draining && self.pending.is_empty() && self.ack_backlog.is_empty() {
                break;
            }
        }
        self.disconnect(&mut events).await;
    }

    /// Handles one event; false when the pipeline is gone and nothing more can be stored.
    async fn on_event(&mut self, event: Event, connection: u64, draining: bool) -> bool {
        match event {
            Event::Incoming(Incoming::ConnAck(connack)) => {
                self.stats.set_connected(true);
                tracing::info!(source = %self.id, session_present = connack.session_present, "connected");
                if self.filters.is_empty() {
                    // a partitioned instance that owns none of this source's devices
                    tracing::warn!(source = %self.id, "no device of this source is this instance's: nothing subscribed");
                } else if let Err(e) = self.client.try_subscribe_many(self.filters.clone()) {
                    tracing::error!(source = %self.id, "cannot queue the subscriptions: {e}");
                }
            }
            Event::Incoming(Incoming::SubAck(suback)) => {
                let refused = suback
                    .return_codes
                    .iter()
                    .filter(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                    .count();
                if refused > 0 {
                    tracing::error!(source = %self.id, refused, "the broker refused subscriptions (check its ACL)");
                }
            }
            // In shutdown, new messages are left unacknowledged: the broker redelivers them
            // to the next session.
            Event::Incoming(Incoming::Publish(publish)) if !draining => {
                return self.on_publish(publish, connection).await;
            }
            _ => {}
        }
        true
    }

    async fn on_publish(&mut self, publish: Publish, connection: u64) -> bool {
        self.stats.message();
        let received = Timestamp::from_datetime(Utc::now());
        let to_ack = (publish.qos != QoS::AtMostOnce).then(|| publish.clone());
        if publish.retain {
            // Sent because of our (re)subscription: a copy of an old message, already
            // received in this session or published before it; its time may be unknown.
            self.stats.retained();
            if to_ack.is_some() {
                self.pending.push_back(Pending {
                    publish: to_ack,
                    connection,
                    gate: Box::pin(std::future::ready(true)),
                    since: Instant::now(),
                });
            }
            return true;
        }
        let mut batch = Batch::new(Origin::Mqtt {
            source: self.id.clone(),
        });
        if publish.payload.len() > self.max_payload {
            batch.dead_letters.push(self.too_large(&publish, received));
        } else {
            self.decode_into(&mut batch, &publish, received);
        }
        let (batch, receipt) = batch.with_receipt();
        if self.out.send(batch).await.is_err() {
            return false;
        }
        let gate = self.gate(receipt);
        self.pending.push_back(Pending {
            publish: to_ack,
            connection,
            gate,
            since: Instant::now(),
        });
        true
    }

    /// Decodes the message into the batch's readings, or its dead letter.
    fn decode_into(&self, batch: &mut Batch, publish: &Publish, received: Timestamp) {
        match self
            .decoder
            .decode(&publish.topic, &publish.payload, received)
        {
            Ok(decoded) => {
                batch.samples = decoded.samples;
                batch.receive_time = decoded.receive_timed.then_some(received);
                batch.message = Some(Message {
                    topic: publish.topic.clone(),
                    payload: publish.payload.to_vec(),
                    received,
                });
            }
            Err(error) => batch
                .dead_letters
                .push(self.refuse(publish, error, received)),
        }
    }

    /// A payload over `max_payload`: counted, logged and dead-lettered with its size, its
    /// topic and its first bytes, never decoded. Acknowledged like any refused message, so
    /// the broker does not deliver it again.
    fn too_large(&self, publish: &Publish, received: Timestamp) -> DeadLetter {
        let size = publish.payload.len();
        self.stats.rejected(Reason::TooLarge);
        let kept = size.min(TOO_LARGE_KEPT_BYTES);
        let detail = format!(
            "{size} bytes, over max_payload ({} bytes); the first {kept} bytes are kept",
            self.max_payload
        );
        tracing::warn!(
            source = %self.id,
            topic = %publish.topic,
            reason = Reason::TooLarge.key(),
            size,
            payload = %truncated(&publish.payload[..kept], LOGGED_PAYLOAD_CHARS),
            "refused: {detail}"
        );
        DeadLetter {
            reason: format!(
                "{}: {detail} (topic {})",
                Reason::TooLarge.key(),
                publish.topic
            ),
            payload: publish.payload[..kept].to_vec(),
            received,
        }
    }

    /// Counts and logs a refused message, and makes its dead letter.
    fn refuse(&self, publish: &Publish, error: PayloadError, received: Timestamp) -> DeadLetter {
        self.stats.rejected(error.reason);
        tracing::warn!(
            source = %self.id,
            topic = %publish.topic,
            reason = error.reason.key(),
            payload = %truncated(&publish.payload, LOGGED_PAYLOAD_CHARS),
            "refused: {}", error.detail
        );
        DeadLetter {
            reason: dead_letter_reason(&error, &publish.topic),
            payload: publish.payload.to_vec(),
            received,
        }
    }

    /// Opens once the pipeline has committed the message's batch; counts what it did.
    fn gate(&self, receipt: oneshot::Receiver<Receipt>) -> Gate {
        let (id, stats) = (self.id.clone(), self.stats.clone());
        Box::pin(async move {
            let Ok(receipt) = receipt.await else {
                return false;
            };
            stats.readings(receipt.readings);
            stats.duplicates(receipt.duplicates);
            for (reason, detail) in [
                (Reason::TooLate, receipt.too_late),
                (Reason::Future, receipt.future),
            ] {
                if let Some(detail) = detail {
                    stats.rejected(reason);
                    tracing::warn!(source = %id, reason = reason.key(), "refused: {detail}");
                }
            }
            true
        })
    }

    fn acknowledge(&mut self, done: Pending, allowed: bool) {
        let Some(publish) = done.publish else { return };
        // A message from a connection that is gone is redelivered on the new one and
        // acknowledged there.
        if !allowed || done.connection != self.connection.load(Ordering::Acquire) {
            return;
        }
        self.ack_backlog.push_back(publish);
    }

    fn flush_ack_backlog(&mut self) {
        while let Some(publish) = self.ack_backlog.front() {
            match self.client.try_ack(publish) {
                Ok(()) => {
                    self.stats.acknowledged();
                    self.ack_backlog.pop_front();
                }
                // The request queue is full: try again after the next event.
                Err(_) => break,
            }
        }
    }

    async fn disconnect(&mut self, events: &mut mpsc::Receiver<PumpEvent>) {
        if self.client.try_disconnect().is_err() {
            return;
        }
        let sent = tokio::time::timeout(DISCONNECT_LIMIT, async {
            while let Some(event) = events.recv().await {
                if matches!(event, (_, Ok(Event::Outgoing(Outgoing::Disconnect)))) {
                    return;
                }
            }
        })
        .await;
        self.stats.set_connected(false);
        if sent.is_ok() {
            tracing::info!(source = %self.id, "disconnected; the broker keeps the session");
        }
    }
}

/// Opens when the oldest pending message may be acknowledged; never while none is pending.
async fn head_gate(pending: &mut VecDeque<Pending>) -> bool {
    match pending.front_mut() {
        Some(head) => (&mut head.gate).await,
        None => std::future::pending().await,
    }
}

/// A connection that held this long was a good one: the next failure waits from
/// `reconnect_min` again. One that broke sooner (a message the client cannot read, a broker
/// that accepts and drops) keeps the backoff growing, so a source that cannot hold its
/// connection reconnects at `reconnect_max`, not in a loop.
const STABLE_CONNECTION: Duration = Duration::from_secs(10);

/// Polls the event loop for ever, reconnecting after errors with backoff; ends when the
/// session stops listening.
async fn pump(
    mut eventloop: EventLoop,
    events: mpsc::Sender<PumpEvent>,
    mut backoff: Backoff,
    connection: Arc<AtomicU64>,
) {
    let mut connected_at: Option<Instant> = None;
    loop {
        match eventloop.poll().await {
            Ok(event) => {
                if matches!(event, Event::Incoming(Incoming::ConnAck(_))) {
                    connection.fetch_add(1, Ordering::AcqRel);
                    connected_at = Some(Instant::now());
                }
                let on = connection.load(Ordering::Acquire);
                if events.send((on, Ok(event))).await.is_err() {
                    return;
                }
            }
            Err(error) => {
                if connected_at
                    .take()
                    .is_some_and(|at| at.elapsed() >= STABLE_CONNECTION)
                {
                    backoff.reset();
                }
                let on = connection.fetch_add(1, Ordering::AcqRel) + 1;
                let delay = backoff.next_delay();
                let text = format!("{}; reconnecting in {delay:.1?}", describe(&error));
                if events.send((on, Err(text))).await.is_err() {
                    return;
                }
                tokio::time::sleep(delay).await;
            }
        }
    }
}

fn describe(error: &ConnectionError) -> String {
    match error {
        ConnectionError::ConnectionRefused(code) => {
            format!("the broker refused the connection: {code:?}")
        }
        other => other.to_string(),
    }
}

/// Validation admits 0 and 1 only (see config::validate for why not 2).
fn qos(level: u8) -> QoS {
    match level {
        0 => QoS::AtMostOnce,
        _ => QoS::AtLeastOnce,
    }
}

fn broker(options: &MqttOptions) -> String {
    let (host, port) = options.broker_address();
    format!("{host}:{port}")
}

fn dead_letter_reason(error: &PayloadError, topic: &str) -> String {
    format!("{}: {} (topic {topic})", error.reason.key(), error.detail)
}
