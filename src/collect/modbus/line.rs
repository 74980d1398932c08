//! The owner of one line — a serial bus, or one connection to a network endpoint: the only
//! task that talks on it, so requests never interleave. It polls its devices on their
//! boundaries, probes failing ones at every boundary after the others, opens the port or
//! connection again at the first boundary after it broke, and turns every failure into
//! flagged samples. Failures are logged at the cadence of the backoff, not at every poll.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::device::DevicePoller;
use super::link::{Connector, Link};
use super::poll_metrics::{self, PollErrorKind};
use super::schedule::{log_failure, Action, Due, LineSchedule};
use crate::collect::batch::{Batch, BatchSender, Origin};
use crate::model::comm::CommEvent;
use crate::model::time::now;
use crate::model::Sample;
use crate::pipeline::live::Live;

pub struct Line<C: Connector> {
    name: Arc<str>,
    connector: C,
    devices: Vec<DevicePoller>,
    close_after_poll: bool,
    /// Failed attempts in a row to open the port or connection.
    open_failures: u32,
    /// Per device: polls in a row that reported an error, answered or not.
    troubled: Vec<u32>,
}

impl<C: Connector> Line<C> {
    /// `name` identifies the line in the live view and logs: the bus id or the endpoint.
    pub fn new(name: Arc<str>, connector: C, devices: Vec<DevicePoller>) -> Line<C> {
        Line {
            name,
            connector,
            troubled: vec![0; devices.len()],
            devices,
            close_after_poll: false,
            open_failures: 0,
        }
    }

    /// Close the connection whenever the line falls idle, for endpoints that serve one
    /// client at a time.
    pub fn close_after_poll(mut self, close: bool) -> Line<C> {
        self.close_after_poll = close;
        self
    }

    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Polls until `shutdown` turns true or the receiver of `out` is gone.
    pub async fn run(
        mut self,
        out: BatchSender,
        mut shutdown: watch::Receiver<bool>,
        live: Arc<Live>,
    ) {
        let intervals: Vec<_> = self.devices.iter().map(|d| d.interval()).collect();
        let mut schedule = LineSchedule::new(&intervals, now());
        let mut link: Option<C::Link> = None;
        let mut reported_missed = 0;
        'lines: while let Some(wake) = schedule.next_wake() {
            let wait =
                std::time::Duration::from_millis(u64::try_from(wake.0 - now().0).unwrap_or(0));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                break;
            }
            // one attempt per round to open the line: the other devices due now would fail
            // the same way
            let mut open_error = None;
            for due in schedule.take_due(now()) {
                if *shutdown.borrow() {
                    break 'lines;
                }
                let samples = self
                    .handle(due, &mut schedule, &mut link, &mut open_error, &live)
                    .await;
                if out
                    .send(Batch::readings(Origin::Modbus, samples))
                    .await
                    .is_err()
                {
                    break 'lines;
                }
            }
            let missed = schedule.missed_unreported();
            if missed > reported_missed {
                tracing::warn!(line = %self.name, missed, "line fell far behind its schedule; holes beyond the last 60 boundaries are only counted");
                reported_missed = missed;
            }
            if self.close_after_poll {
                link = None;
            }
        }
    }

    /// The shortest poll interval on the line: how often it is opened when it is down.
    fn cadence(&self) -> Duration {
        self.devices
            .iter()
            .map(|d| d.interval())
            .min()
            .unwrap_or(Duration::from_secs(1))
    }

    /// Opens the port or connection, at most once per round.
    async fn open(
        &mut self,
        link: &mut Option<C::Link>,
        open_error: &mut Option<String>,
        live: &Live,
        device_id: &Arc<str>,
    ) {
        if link.is_some() || open_error.is_some() {
            return;
        }
        match self.connector.connect().await {
            Ok(opened) => {
                live.comm(&self.name, device_id, &[CommEvent::Connected]);
                if self.open_failures > 0 {
                    tracing::info!(line = %self.name, attempts = self.open_failures, "open again after {} failed attempts", self.open_failures);
                    self.open_failures = 0;
                }
                *link = Some(opened);
            }
            Err(error) => {
                self.open_failures = self.open_failures.saturating_add(1);
                if log_failure(self.cadence(), self.open_failures) {
                    tracing::warn!(line = %self.name, attempts = self.open_failures, "cannot open: {error}");
                }
                live.comm(&self.name, device_id, &[CommEvent::ConnectFailed]);
                *open_error = Some(error);
            }
        }
    }

    async fn handle(
        &mut self,
        due: Due,
        schedule: &mut LineSchedule,
        link: &mut Option<C::Link>,
        open_error: &mut Option<String>,
        live: &Live,
    ) -> Vec<Sample> {
        let Some(device) = self.devices.get(due.device) else {
            return Vec::new();
        };
        let device_id = device.id().clone();
        let event = match due.action {
            Action::Missed => Some(CommEvent::Missed),
            // a failing device's probe that would run into another device's poll waits
            Action::Poll if !schedule.probe_fits(due.device, now(), device.timeout()) => {
                Some(CommEvent::BackedOff)
            }
            Action::Poll => None,
        };
        if let Some(event) = event {
            live.comm(&self.name, &device_id, &[event]);
            return device.failed_samples(due.boundary);
        }
        self.open(link, open_error, live, &device_id).await;
        let Some(device) = self.devices.get(due.device) else {
            return Vec::new();
        };
        let Some(open) = link.as_mut() else {
            schedule.record(due.device, due.boundary, false);
            live.comm(&self.name, &device_id, &[CommEvent::PollFailed]);
            let error = open_error
                .clone()
                .unwrap_or_else(|| "the line is not open".to_string());
            poll_metrics::poll_failed(&device_id, PollErrorKind::of(&error));
            live.poll_failed(&device_id, error);
            return device.failed_samples(due.boundary);
        };
        let failing_before = schedule.failures(due.device);
        let mut events = Vec::new();
        let outcome = device.poll(open, due.boundary, now, &mut events).await;
        schedule.record(due.device, due.boundary, outcome.answered);
        if !outcome.succeeded {
            events.push(CommEvent::PollFailed);
        }
        live.comm(&self.name, &device_id, &events);
        let troubled = &mut self.troubled[due.device];
        match &outcome.error {
            None => {
                *troubled = 0;
                poll_metrics::poll_succeeded(&device_id);
                live.poll_succeeded(&device_id)
            }
            Some(error) => {
                *troubled = troubled.saturating_add(1);
                if log_failure(device.interval(), *troubled) {
                    tracing::warn!(line = %self.name, device = %device_id, unit = device.unit_id(), polls = *troubled, "poll: {error}");
                }
                if outcome.succeeded {
                    poll_metrics::poll_succeeded(&device_id);
                    live.poll_succeeded(&device_id);
                } else {
                    poll_metrics::poll_failed(&device_id, PollErrorKind::of_transaction(error));
                    if outcome.answered {
                        // an exception is an answer: the device is there, its data is not
                        live.poll_refused(&device_id, error.to_string());
                    } else {
                        live.poll_failed(&device_id, error.to_string());
                    }
                }
            }
        }
        if failing_before > 0 && outcome.answered {
            tracing::info!(line = %self.name, device = %device_id, unit = device.unit_id(), failures = failing_before, "answering again after {failing_before} failed polls");
        }
        if open.is_broken() {
            *link = None;
        }
        outcome.samples
    }
}
