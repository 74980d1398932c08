//! The owner of one line — a serial bus, or one connection to a network endpoint: the only
//! task that talks on it, so requests never interleave. It polls its devices on their
//! boundaries, reconnects when the link breaks, and turns every failure into flagged samples.

use std::sync::Arc;

use tokio::sync::watch;

use super::device::DevicePoller;
use super::link::{Connector, Link};
use super::poll_metrics;
use super::schedule::{Action, Due, LineSchedule};
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
}

impl<C: Connector> Line<C> {
    /// `name` identifies the line in the live view and logs: the bus id or the endpoint.
    pub fn new(name: Arc<str>, connector: C, devices: Vec<DevicePoller>) -> Line<C> {
        Line {
            name,
            connector,
            devices,
            close_after_poll: false,
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
            let mut connect_failed = false;
            for due in schedule.take_due(now()) {
                if *shutdown.borrow() {
                    break 'lines;
                }
                let samples = self
                    .handle(due, &mut schedule, &mut link, &mut connect_failed, &live)
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

    async fn handle(
        &mut self,
        due: Due,
        schedule: &mut LineSchedule,
        link: &mut Option<C::Link>,
        connect_failed: &mut bool,
        live: &Live,
    ) -> Vec<Sample> {
        let Some(device) = self.devices.get(due.device) else {
            return Vec::new();
        };
        let device_id = device.id().clone();
        match due.action {
            Action::Missed | Action::BackedOff => {
                let event = if due.action == Action::Missed {
                    CommEvent::Missed
                } else {
                    CommEvent::BackedOff
                };
                live.comm(&self.name, &device_id, &[event]);
                return device.failed_samples(due.boundary);
            }
            Action::Poll => {}
        }
        if link.is_none() && !*connect_failed {
            match self.connector.connect().await {
                Ok(opened) => {
                    live.comm(&self.name, &device_id, &[CommEvent::Connected]);
                    *link = Some(opened);
                }
                Err(error) => {
                    // one attempt per round: the other devices due now would fail the same way
                    *connect_failed = true;
                    tracing::warn!(line = %self.name, "cannot open: {error}");
                    live.comm(&self.name, &device_id, &[CommEvent::ConnectFailed]);
                    poll_metrics::poll_failed(&device_id, &error);
                    live.poll_failed(&device_id, error);
                }
            }
        }
        let Some(open) = link.as_mut() else {
            schedule.record(due.device, due.boundary, false);
            live.comm(&self.name, &device_id, &[CommEvent::PollFailed]);
            return device.failed_samples(due.boundary);
        };
        let mut events = Vec::new();
        let outcome = device.poll(open, due.boundary, now, &mut events).await;
        schedule.record(due.device, due.boundary, outcome.answered);
        if !outcome.succeeded {
            events.push(CommEvent::PollFailed);
        }
        live.comm(&self.name, &device_id, &events);
        match &outcome.error {
            None => {
                poll_metrics::poll_succeeded(&device_id);
                live.poll_succeeded(&device_id)
            }
            Some(error) => {
                let failures = schedule.failures(due.device);
                tracing::warn!(line = %self.name, device = %device_id, unit = device.unit_id(), failures, "poll: {error}");
                if outcome.succeeded {
                    poll_metrics::poll_succeeded(&device_id);
                    live.poll_succeeded(&device_id);
                } else {
                    let error = error.to_string();
                    poll_metrics::poll_failed(&device_id, &error);
                    live.poll_failed(&device_id, error);
                }
            }
        }
        if open.is_broken() {
            *link = None;
        }
        outcome.samples
    }
}
