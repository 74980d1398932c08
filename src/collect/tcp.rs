//! Modbus TCP collector: one task per device, polls aligned to wall-clock boundaries.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{mpsc, watch};
use tokio_modbus::client::{Client, Context};
use tokio_modbus::Slave;

use crate::collect::modbus::decode::{channel_value, status_flags};
use crate::collect::modbus::plan::{plan, BlockData, PlanOptions, PollPlan};
use crate::config::DeviceConfig;
use crate::live::Live;
use crate::model::{Flag, FlagSet, Sample, Timestamp};
use crate::profile::Profile;

/// Longest wait between reconnect attempts to a device that keeps failing.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

pub struct TcpCollector {
    device: Arc<str>,
    address: String,
    unit_id: u8,
    interval: Duration,
    timeout: Duration,
    profile: Profile,
    plan: PollPlan,
    /// Indices into `profile.channels` of the channels this site reads, with their names.
    channels: Vec<(usize, Arc<str>, Option<[f64; 2]>)>,
}

impl TcpCollector {
    pub fn new(device: &DeviceConfig, profile: &Profile) -> Self {
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
            .map(|(i, ch)| {
                (
                    i,
                    Arc::from(ch.name.as_str()),
                    device.spans.get(&ch.name).copied(),
                )
            })
            .collect();
        TcpCollector {
            device: Arc::from(device.id.as_str()),
            address: device.address.clone(),
            unit_id: device.unit_id,
            interval: device.poll_interval.0,
            timeout: device.timeout.0,
            plan: plan(profile, &PlanOptions::for_profile(profile)),
            profile: profile.clone(),
            channels,
        }
    }

    /// Polls until `shutdown` turns true. Every poll yields one sample per channel: the value
    /// read, or NaN flagged B when the device did not answer.
    pub async fn run(
        self,
        out: mpsc::Sender<Vec<Sample>>,
        mut shutdown: watch::Receiver<bool>,
        live: Arc<Live>,
    ) {
        let mut context: Option<Context> = None;
        let mut failures: u32 = 0;
        let mut retry_at: Option<Timestamp> = None;
        loop {
            let boundary = next_boundary(now(), self.interval);
            let wait = Duration::from_millis((boundary.0 - now().0).max(0) as u64);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => break,
            }
            if *shutdown.borrow() {
                break;
            }
            let samples = if retry_at.is_some_and(|at| boundary < at) {
                // backing off: the device is known to be down, so the hole is recorded
                // without spending a timeout on it
                self.failed_samples(boundary)
            } else {
                match self.poll(&mut context).await {
                    Ok(samples) => {
                        failures = 0;
                        retry_at = None;
                        live.poll_succeeded(&self.device);
                        samples
                    }
                    Err(error) => {
                        context = None;
                        failures = failures.saturating_add(1);
                        let backoff = backoff(self.interval, failures);
                        retry_at = Some(Timestamp(boundary.0 + backoff.as_millis() as i64));
                        tracing::warn!(device = %self.device, address = %self.address, failures, "poll failed: {error}; next attempt in {backoff:?}");
                        live.poll_failed(&self.device, error);
                        self.failed_samples(boundary)
                    }
                }
            };
            if out.send(samples).await.is_err() {
                break;
            }
        }
        if let Some(mut ctx) = context {
            let _ = ctx.disconnect().await;
        }
    }

    async fn poll(&self, context: &mut Option<Context>) -> Result<Vec<Sample>, String> {
        let ctx = match context {
            Some(ctx) => ctx,
            None => context.insert(self.connect().await?),
        };
        let mut results = Vec::with_capacity(self.plan.blocks.len());
        let mut read_at = Vec::with_capacity(self.plan.blocks.len());
        for block in &self.plan.blocks {
            let reply = tokio::time::timeout(self.timeout, ctx.call(block.request()))
                .await
                .map_err(|_| format!("no reply within {:?} to {:?}", self.timeout, block))?
                .map_err(|e| format!("transport error: {e}"))?
                .map_err(|code| format!("exception {code:?} for {block:?}"))?;
            let data = block.data_from(reply);
            if data == BlockData::Missing {
                return Err(format!("malformed reply to {block:?}"));
            }
            results.push(data);
            read_at.push(now());
        }
        let status = status_flags(&self.profile, &self.plan.status_data(&results));
        let mut samples = Vec::with_capacity(self.channels.len());
        for (index, name, span) in &self.channels {
            let channel = &self.profile.channels[*index];
            let (value, flags, ts) = match (
                self.plan.channel_words(*index, &results),
                self.plan
                    .block_of_channel(*index)
                    .and_then(|b| read_at.get(b)),
            ) {
                (Some(words), Some(ts)) => {
                    let (value, flags) = channel_value(&self.profile, channel, words, *span);
                    (value, flags, *ts)
                }
                _ => (f64::NAN, FlagSet::of(Flag::B), now()),
            };
            samples.push(Sample {
                device: self.device.clone(),
                channel: name.clone(),
                quantity: channel.quantity,
                unit: channel.unit,
                basis: channel.basis,
                value,
                status: flags.union(status),
                ts,
            });
        }
        Ok(samples)
    }

    async fn connect(&self) -> Result<Context, String> {
        let connect = async {
            let addr = tokio::net::lookup_host(&self.address)
                .await
                .map_err(|e| format!("cannot resolve {}: {e}", self.address))?
                .next()
                .ok_or_else(|| format!("{} resolves to no address", self.address))?;
            tokio_modbus::client::tcp::connect_slave(addr, Slave(self.unit_id))
                .await
                .map_err(|e| format!("cannot connect to {addr}: {e}"))
        };
        tokio::time::timeout(self.timeout, connect)
            .await
            .map_err(|_| {
                format!(
                    "no connection to {} within {:?}",
                    self.address, self.timeout
                )
            })?
    }

    fn failed_samples(&self, ts: Timestamp) -> Vec<Sample> {
        self.channels
            .iter()
            .map(|(index, name, _)| {
                let channel = &self.profile.channels[*index];
                Sample {
                    device: self.device.clone(),
                    channel: name.clone(),
                    quantity: channel.quantity,
                    unit: channel.unit,
                    basis: channel.basis,
                    value: f64::NAN,
                    status: FlagSet::of(Flag::B),
                    ts,
                }
            })
            .collect()
    }
}

/// Collectors are the edge of the system, the one place that reads the wall clock.
fn now() -> Timestamp {
    Timestamp::from_datetime(Utc::now())
}

/// The next multiple of `interval` since the epoch after `now`, so every gateway polls at
/// :00, :10, … and readings from different devices line up.
pub fn next_boundary(now: Timestamp, interval: Duration) -> Timestamp {
    let step = (interval.as_millis() as i64).max(1);
    Timestamp((now.0.div_euclid(step) + 1) * step)
}

/// After `failures` failed polls in a row, how long to leave the device alone: the first
/// failure is retried at the next poll, then the pause doubles, capped, so a dead analyser costs little while it is down.
pub fn backoff(interval: Duration, failures: u32) -> Duration {
    if failures <= 1 {
        return Duration::ZERO;
    }
    let factor = 1u32 << (failures - 1).min(16);
    interval
        .saturating_mul(factor)
        .min(MAX_BACKOFF.max(interval))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_align_to_the_interval() {
        let ten = Duration::from_secs(10);
        assert_eq!(next_boundary(Timestamp(1_000), ten), Timestamp(10_000));
        assert_eq!(next_boundary(Timestamp(10_000), ten), Timestamp(20_000));
        assert_eq!(next_boundary(Timestamp(19_999), ten), Timestamp(20_000));
    }

    #[test]
    fn backoff_retries_at_once_then_doubles_up_to_the_cap() {
        let ten = Duration::from_secs(10);
        assert_eq!(backoff(ten, 1), Duration::ZERO);
        assert_eq!(backoff(ten, 2), Duration::from_secs(20));
        assert_eq!(backoff(ten, 3), Duration::from_secs(40));
        assert_eq!(backoff(ten, 30), MAX_BACKOFF);
    }
}
