//! One analyser as a collector sees it: which reads cover its profile, and how the replies
//! (or their absence) become samples. Independent of the transport the reads go over.

use std::sync::Arc;
use std::time::Duration;

use super::link::{Link, TransactionError};
use crate::config::profile::Profile;
use crate::config::{BusConfig, DeviceConfig};
use crate::model::comm::CommEvent;
use crate::model::{Flag, FlagSet, Sample, Timestamp};
use crate::protocol::modbus::decode::{channel_value, status_flags};
use crate::protocol::modbus::plan::{plan, BlockData, PlanOptions, PollPlan};

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
    /// and is not counted as failing (failing devices are probed after the others, as each
    /// probe may cost a timeout).
    pub answered: bool,
    /// The first error, for the live view and the log.
    pub error: Option<TransactionError>,
}

impl DevicePoller {
    /// `buses` resolves the response timeout of RTU devices.
    pub fn new(device: &DeviceConfig, profile: &Profile, buses: &[BusConfig]) -> DevicePoller {
        // The site's status bindings are read and applied like the profile's own.
        let profile = &profile.with_site_status(&device.status);
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
            plan: plan(profile, &plan_options(device, profile)),
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

    /// How long one request may go unanswered: what a probe of a silent device costs.
    pub fn timeout(&self) -> Duration {
        self.timeout
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
        PollOutcome {
            samples: self.samples(&results, &read_at, boundary),
            succeeded,
            answered,
            error: first_error,
        }
    }

    /// The samples of one poll from what each block of the plan returned (`results`, one per
    /// block, `Missing` where the read failed or never happened) and when each read completed
    /// (`read_at`). Pure, so a replay of captured replies decodes exactly as the live poll did.
    pub fn samples(
        &self,
        results: &[BlockData],
        read_at: &[Timestamp],
        boundary: Timestamp,
    ) -> Vec<Sample> {
        let status = status_flags(&self.profile, &self.plan.status_data(results));
        self.channels
            .iter()
            .map(|wanted| {
                let channel = &self.profile.channels[wanted.index];
                let words = self.plan.channel_words(wanted.index, results);
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
            .collect()
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

/// Read planning limits for `device` on top of its profile's.
fn plan_options(device: &DeviceConfig, profile: &Profile) -> PlanOptions {
    let defaults = PlanOptions::for_profile(profile);
    PlanOptions {
        max_registers: device.max_registers.unwrap_or(defaults.max_registers),
        max_hole: device.max_hole.unwrap_or(defaults.max_hole),
        one_value_per_request: device.one_value_per_request || defaults.one_value_per_request,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Interval, Transport};
    use crate::protocol::modbus::plan::ReadBlock;
    use std::collections::{BTreeMap, VecDeque};
    use std::path::Path;

    /// Answers reads from a script and remembers what was asked.
    struct ScriptedLink {
        replies: VecDeque<Result<BlockData, TransactionError>>,
        asked: Vec<ReadBlock>,
        broken: bool,
    }

    impl ScriptedLink {
        fn new(replies: Vec<Result<BlockData, TransactionError>>) -> ScriptedLink {
            ScriptedLink {
                replies: replies.into(),
                asked: Vec::new(),
                broken: false,
            }
        }
    }

    impl Link for ScriptedLink {
        async fn read(
            &mut self,
            _unit: u8,
            block: &ReadBlock,
            _timeout: Duration,
            _events: &mut Vec<CommEvent>,
        ) -> Result<BlockData, TransactionError> {
            self.asked.push(*block);
            let reply = self
                .replies
                .pop_front()
                .unwrap_or(Err(TransactionError::Timeout));
            if matches!(reply, Err(TransactionError::Io(_))) {
                self.broken = true;
            }
            reply
        }

        fn is_broken(&self) -> bool {
            self.broken
        }
    }

    /// so2 (f32 @0) and o2 (f32 @2) in one read; dust (u16 input @100) in another; a
    /// calibration coil @5.
    const PROFILE: &str = r#"
vendor = "T"
model = "T"
source = "unit test"
verified = false

[[channel]]
name = "so2"
quantity = "SO2"
unit = "mg/m3"
table = "holding"
address = 0
type = "f32"

[[channel]]
name = "o2"
quantity = "O2"
unit = "%vol"
table = "holding"
address = 2
type = "f32"

[[channel]]
name = "dust"
quantity = "dust"
unit = "mg/m3"
table = "input"
address = 100
type = "u16"
scale = 0.1

[[status]]
table = "coil"
address = 5
flag = "C"
"#;

    fn poller() -> DevicePoller {
        let profile =
            Profile::parse("t", Path::new("t.toml"), PROFILE).unwrap_or_else(|e| panic!("{e}"));
        let device = DeviceConfig {
            id: "a1".into(),
            profile: "t".into(),
            stack: "s".into(),
            transport: Transport::Rtu,
            address: None,
            bus: Some("b".into()),
            unit_id: 7,
            poll_interval: Interval(Duration::from_secs(10)),
            timeout: Some(Interval(Duration::from_millis(200))),
            max_connections: None,
            close_after_poll: None,
            one_value_per_request: false,
            max_registers: None,
            max_hole: None,
            position: Default::default(),
            channels: None,
            spans: BTreeMap::new(),
            status: Vec::new(),
            basis: None,
        };
        DevicePoller::new(&device, &profile, &[])
    }

    fn registers(words: &[u16]) -> Result<BlockData, TransactionError> {
        Ok(BlockData::Registers(words.to_vec()))
    }

    async fn poll(link: &mut ScriptedLink) -> PollOutcome {
        let clock = std::cell::Cell::new(1_000);
        let mut events = Vec::new();
        poller()
            .poll(
                link,
                Timestamp(1_000),
                || {
                    // each read completes 40 ms after the previous one
                    clock.set(clock.get() + 40);
                    Timestamp(clock.get())
                },
                &mut events,
            )
            .await
    }

    fn value(outcome: &PollOutcome, channel: &str) -> (f64, Flag, i64) {
        let s = outcome
            .samples
            .iter()
            .find(|s| &*s.channel == channel)
            .unwrap_or_else(|| panic!("no {channel}"));
        (s.value, s.status.primary(), s.ts.0)
    }

    #[tokio::test]
    async fn values_carry_the_status_and_the_time_their_block_was_read() {
        // plan: holding 0..4, input 100, coil 5
        // so2 = 0x41200000 = 10.0, o2 = 0x41A80000 = 21.0, dust 123 × 0.1 = 12.3, coil on
        let mut link = ScriptedLink::new(vec![
            registers(&[0x4120, 0, 0x41A8, 0]),
            registers(&[123]),
            Ok(BlockData::Bits(vec![true])),
        ]);
        let outcome = poll(&mut link).await;
        assert!(outcome.succeeded && outcome.answered && outcome.error.is_none());
        assert_eq!(value(&outcome, "so2"), (10.0, Flag::C, 1_040));
        assert_eq!(value(&outcome, "o2"), (21.0, Flag::C, 1_040));
        let (dust, flag, ts) = value(&outcome, "dust");
        assert!((dust - 12.3).abs() < 1e-9 && flag == Flag::C && ts == 1_080);
        assert_eq!(link.asked.len(), 3);
    }

    #[tokio::test]
    async fn an_exception_loses_its_block_only() {
        let mut link = ScriptedLink::new(vec![
            Err(TransactionError::Exception(2)),
            registers(&[123]),
            Ok(BlockData::Bits(vec![false])),
        ]);
        let outcome = poll(&mut link).await;
        assert!(outcome.succeeded && outcome.answered);
        assert_eq!(outcome.error, Some(TransactionError::Exception(2)));
        let (so2, flag, ts) = value(&outcome, "so2");
        assert!(so2.is_nan() && flag == Flag::B && ts == 1_000);
        assert_eq!(value(&outcome, "dust").1, Flag::N);
    }

    #[tokio::test]
    async fn a_silent_device_costs_one_timeout() {
        let mut link = ScriptedLink::new(vec![Err(TransactionError::Timeout)]);
        let outcome = poll(&mut link).await;
        assert_eq!(
            link.asked.len(),
            1,
            "reads after the timeout: {:?}",
            link.asked
        );
        assert!(!outcome.succeeded && !outcome.answered);
        assert!(outcome
            .samples
            .iter()
            .all(|s| s.value.is_nan() && s.status.primary() == Flag::B && s.ts.0 == 1_000));
    }

    #[tokio::test]
    async fn a_damaged_reply_is_retried_once() {
        let mut link = ScriptedLink::new(vec![
            Err(TransactionError::BadCrc),
            registers(&[0x4120, 0, 0x41A8, 0]),
            Err(TransactionError::Garbled),
            Err(TransactionError::Garbled),
            Ok(BlockData::Bits(vec![false])),
        ]);
        let outcome = poll(&mut link).await;
        // block 1 recovered on its retry; block 2 failed twice and was given up, block 3 read
        assert_eq!(link.asked.len(), 5);
        assert_eq!(value(&outcome, "so2").0, 10.0);
        assert!(value(&outcome, "dust").0.is_nan());
        assert!(outcome.succeeded);
    }

    #[tokio::test]
    async fn a_broken_link_ends_the_poll() {
        let mut link = ScriptedLink::new(vec![Err(TransactionError::Io("gone".into()))]);
        let outcome = poll(&mut link).await;
        assert_eq!(link.asked.len(), 1);
        assert!(!outcome.answered);
    }
}
