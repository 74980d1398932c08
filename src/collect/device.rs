//! One analyser as a collector sees it: which reads cover its profile, and how the replies
//! (or their absence) become samples. Independent of the transport the reads go over.

use std::sync::Arc;
use std::time::Duration;

use super::link::{Link, TransactionError};
use super::modbus::decode::{channel_value, status_flags};
use super::modbus::plan::{plan, BlockData, PollPlan};
use super::stats::CommEvent;
use crate::config::{BusConfig, DeviceConfig};
use crate::model::{Flag, FlagSet, Sample, Timestamp};
use crate::profile::Profile;

/// A channel of the profile this site reads.
#[derive(Debug, Clone)]
struct WantedChannel {
    /// Index into `Profile::channels`.
    index: usize,
    name: Arc<str>,
    span: Option<[f64; 2]>,
}

pub struct DevicePoller {
    id: Arc<str>,
    unit_id: u8,
    interval: Duration,
    timeout: Duration,
    profile: Profile,
    plan: PollPlan,
    channels: Vec<WantedChannel>,
}

/// What one poll produced.
#[derive(Debug, Clone, PartialEq)]
pub struct PollOutcome {
    /// One sample per wanted channel: the value read, or NaN flagged B.
    pub samples: Vec<Sample>,
    /// At least one read got data.
    pub succeeded: bool,
    /// The device answered something, if only an exception or a damaged frame: it is alive
    /// and is not backed off (backoff is for devices that cost a timeout on every poll).
    pub answered: bool,
    /// The first error, for the live view and the log.
    pub error: Option<TransactionError>,
}

impl DevicePoller {
    /// `buses` resolves the response timeout of RTU devices.
    pub fn new(device: &DeviceConfig, profile: &Profile, buses: &[BusConfig]) -> DevicePoller {
        let channels = profile
            .channels
            .iter()
            .enumerate()
            .filter(|(_, ch)| {
                device
                    .channels
                    .as_ref()
                    .is_none_or(|wanted| wanted.contains(&ch.name))
            })
            .map(|(index, ch)| WantedChannel {
                index,
                name: Arc::from(ch.name.as_str()),
                span: device.spans.get(&ch.name).copied(),
            })
            .collect();
        DevicePoller {
            id: Arc::from(device.id.as_str()),
            unit_id: device.unit_id,
            interval: device.poll_interval.0,
            timeout: device.effective_timeout(buses),
            plan: plan(profile, &device.plan_options(profile)),
            profile: profile.clone(),
            channels,
        }
    }

    pub fn id(&self) -> &Arc<str> {
        &self.id
    }

    pub fn unit_id(&self) -> u8 {
        self.unit_id
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    pub fn plan(&self) -> &PollPlan {
        &self.plan
    }

    /// Reads every block of the plan. A device that stays silent costs one timeout: the rest
    /// of its reads are skipped. A reply damaged on the line is retried once at once; an
    /// exception loses that block only. Each value is stamped when its block was read
    /// (`now`); values from failed reads carry flag B and the poll's `boundary`.
    pub async fn poll<L: Link>(
        &self,
        link: &mut L,
        boundary: Timestamp,
        now: impl Fn() -> Timestamp,
        events: &mut Vec<CommEvent>,
    ) -> PollOutcome {
        let mut results = Vec::with_capacity(self.plan.blocks.len());
        let mut read_at = Vec::with_capacity(self.plan.blocks.len());
        let mut first_error = None;
        let mut answered = false;
        for block in &self.plan.blocks {
            let mut outcome = link.read(self.unit_id, block, self.timeout, events).await;
            if outcome.as_ref().is_err_and(|e| e.is_line_noise()) && !link.is_broken() {
                outcome = link.read(self.unit_id, block, self.timeout, events).await;
            }
            match outcome {
                Ok(data) => {
                    answered = true;
                    results.push(data);
                    read_at.push(now());
                }
                Err(error) => {
                    answered |= error.device_answered();
                    let give_up = !error.device_answered() || link.is_broken();
                    first_error.get_or_insert(error);
                    results.push(BlockData::Missing);
                    read_at.push(boundary);
                    if give_up {
                        break;
                    }
                }
            }
        }
        let succeeded = results.iter().any(|r| *r != BlockData::Missing);
        let status = status_flags(&self.profile, &self.plan.status_data(&results));
        let samples = self
            .channels
            .iter()
            .map(|wanted| {
                let channel = &self.profile.channels[wanted.index];
                let words = self.plan.channel_words(wanted.index, &results);
                let ts = self
                    .plan
                    .block_of_channel(wanted.index)
                    .and_then(|b| read_at.get(b).copied());
                let (value, flags, ts) = match (words, ts) {
                    (Some(words), Some(ts)) => {
                        let (value, flags) =
                            channel_value(&self.profile, channel, words, wanted.span);
                        (value, flags.union(status), ts)
                    }
                    _ => (f64::NAN, FlagSet::of(Flag::B), boundary),
                };
                self.sample(wanted, value, flags, ts)
            })
            .collect();
        PollOutcome {
            samples,
            succeeded,
            answered,
            error: first_error,
        }
    }

    /// NaN flagged B for every channel: the poll at `ts` got nothing.
    pub fn failed_samples(&self, ts: Timestamp) -> Vec<Sample> {
        self.channels
            .iter()
            .map(|wanted| self.sample(wanted, f64::NAN, FlagSet::of(Flag::B), ts))
            .collect()
    }

    fn sample(&self, wanted: &WantedChannel, value: f64, status: FlagSet, ts: Timestamp) -> Sample {
        let channel = &self.profile.channels[wanted.index];
        Sample {
            device: self.id.clone(),
            channel: wanted.name.clone(),
            quantity: channel.quantity,
            unit: channel.unit,
            basis: channel.basis,
            value,
            status,
            ts,
        }
    }
}
