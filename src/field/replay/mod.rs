//! Replays a captured bus through the live code: frames are paired into transactions,
//! grouped into polls and decoded by the live device code, then normalised, checked and
//! aggregated by the live [`Processor`], on a clock driven by the capture's own timestamps.
//! The same capture gives the same records, byte for byte, every time.

mod output;
mod polls;
pub mod synthetic;

use std::collections::BTreeMap;
use std::fmt;

use crate::collect::modbus::device::DevicePoller;
use crate::config::profile::ProfileSet;
use crate::config::{SiteConfig, Transport};
use crate::field::capture::pair::{Exchange, PairStats, Pairer};
use crate::field::capture::CapturedFrame;
use crate::model::{Sample, Timestamp};
use crate::process::Processor;
use crate::store::{Record, RecordKind};

pub use output::{OutputFormat, RecordWriter};
pub use polls::AssemblyStats;
use polls::{Assembler, Batch};

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no bus {0:?} in the config")]
    NoSuchBus(String),
    #[error("the config has no Modbus RTU device{}", .0.as_ref().map(|b| format!(" on bus {b:?}")).unwrap_or_default())]
    NoDevices(Option<String>),
    #[error("devices {0:?} and {1:?} both have unit id {2} on different buses\n  help: pick the bus the capture is from with --bus")]
    SharedUnitId(String, String, u8),
}

/// What a replay saw and produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub frames: PairStats,
    pub assembly: AssemblyStats,
    pub readings: u64,
    /// Readings flagged B: no value was read for them.
    pub readings_missing: u64,
    pub aggregates: u64,
    pub gaps: u64,
    pub exceedances: u64,
    pub first_us: Option<i64>,
    pub last_us: Option<i64>,
}

impl Summary {
    fn count(&mut self, records: &[Record]) {
        for r in records {
            match r.kind {
                RecordKind::Reading => {
                    self.readings += 1;
                    if r.flags.contains(crate::model::Flag::B) {
                        self.readings_missing += 1;
                    }
                }
                RecordKind::Minute | RecordKind::Hour | RecordKind::Day => self.aggregates += 1,
                RecordKind::Gap => self.gaps += 1,
                RecordKind::Exceedance => self.exceedances += 1,
                RecordKind::Event => {}
            }
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let time = |us: Option<i64>| {
            us.and_then(chrono::DateTime::from_timestamp_micros)
                .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
                .unwrap_or_else(|| "-".into())
        };
        let p = &self.frames;
        let a = &self.assembly;
        writeln!(
            f,
            "log:         {} .. {}",
            time(self.first_us),
            time(self.last_us)
        )?;
        writeln!(
            f,
            "frames:      {} ({} other functions, {} noise bytes)",
            p.frames, p.other, p.noise_bytes
        )?;
        writeln!(f, "requests:    {} ({} unanswered)", p.requests, p.silent)?;
        writeln!(
            f,
            "replies:     {} ({} exceptions, {} unpaired)",
            p.replies, p.exceptions, p.unpaired
        )?;
        writeln!(f, "crc errors:  {}", p.crc_errors)?;
        writeln!(
            f,
            "polls:       {} ({} boundaries without a poll)",
            a.polls, a.holes
        )?;
        if a.unknown_unit + a.unplanned + a.unplaced > 0 {
            writeln!(
                f,
                "ignored:     {} exchanges with unconfigured unit ids, {} reads outside the plan, {} replies matching no planned read",
                a.unknown_unit, a.unplanned, a.unplaced
            )?;
        }
        writeln!(
            f,
            "readings:    {} ({} without a value, flagged B)",
            self.readings, self.readings_missing
        )?;
        writeln!(f, "aggregates:  {}", self.aggregates)?;
        writeln!(f, "gaps:        {}", self.gaps)?;
        write!(f, "exceedances: {}", self.exceedances)
    }
}

/// A replay in progress: push frames in capture order, then finish.
pub struct Replayer {
    pairer: Pairer,
    assembler: Assembler,
    processor: Processor,
    /// Batches waiting until no earlier one can appear any more, by (time, arrival).
    queue: BTreeMap<(i64, u64), Vec<Sample>>,
    arrivals: u64,
    exchanges: Vec<Exchange>,
    batches: Vec<Batch>,
    /// Whole seconds of log time ticked so far.
    ticked_s: Option<i64>,
    summary: Summary,
}

impl Replayer {
    /// Replays the Modbus RTU devices of `config` (of bus `bus` only, when given), bound to
    /// their unit ids as on the live bus.
    pub fn new(
        config: &SiteConfig,
        profiles: &ProfileSet,
        bus: Option<&str>,
    ) -> Result<Replayer, ReplayError> {
        if let Some(bus) = bus {
            if !config.buses.iter().any(|b| b.id == bus) {
                return Err(ReplayError::NoSuchBus(bus.to_string()));
            }
        }
        let devices: Vec<_> = config
            .devices
            .iter()
            .filter(|d| d.transport == Transport::Rtu)
            .filter(|d| bus.is_none_or(|b| d.bus.as_deref() == Some(b)))
            .filter(|d| profiles.get(&d.profile).is_some())
            .collect();
        if devices.is_empty() {
            return Err(ReplayError::NoDevices(bus.map(str::to_string)));
        }
        for (i, a) in devices.iter().enumerate() {
            if let Some(b) = devices[i + 1..].iter().find(|b| b.unit_id == a.unit_id) {
                return Err(ReplayError::SharedUnitId(
                    a.id.clone(),
                    b.id.clone(),
                    a.unit_id,
                ));
            }
        }
        let pollers = devices
            .iter()
            .filter_map(|d| {
                let profile = profiles.get(&d.profile)?;
                Some(DevicePoller::new(d, profile, &config.buses))
            })
            .collect();
        // only the replayed devices are expected to deliver: others would read as silent
        let mut replayed = config.clone();
        replayed
            .devices
            .retain(|d| devices.iter().any(|r| r.id == d.id));
        replayed.mqtt.clear();
        Ok(Replayer {
            pairer: Pairer::new(),
            assembler: Assembler::new(pollers),
            processor: Processor::new(&replayed, profiles),
            queue: BTreeMap::new(),
            arrivals: 0,
            exchanges: Vec::new(),
            batches: Vec::new(),
            ticked_s: None,
            summary: Summary::default(),
        })
    }

    /// Takes the next frame of the capture; records that became final go to `out`.
    pub fn push(&mut self, frame: &CapturedFrame, out: &mut Vec<Record>) {
        let first = out.len();
        if self.summary.first_us.is_none() {
            self.summary.first_us = Some(frame.ts_us);
            let start = Timestamp(frame.ts_us.div_euclid(1000));
            self.processor.restart(|_| None, start, out);
            self.ticked_s = Some(start.0.div_euclid(1000));
        }
        let now_us = self
            .summary
            .last_us
            .map_or(frame.ts_us, |l| l.max(frame.ts_us));
        self.summary.last_us = Some(now_us);
        self.pairer.push(frame, &mut self.exchanges);
        self.assemble();
        self.release(now_us - self.assembler.lag_us(), out);
        self.summary.count(&out[first..]);
    }

    /// Ends the capture: closes every poll, processes everything, and lets time run to the
    /// end of the capture.
    pub fn finish(mut self, out: &mut Vec<Record>) -> Summary {
        let first = out.len();
        self.pairer.finish(&mut self.exchanges);
        self.assemble();
        if let Some(end_us) = self.summary.last_us {
            self.assembler.finish(end_us, &mut self.batches);
            self.enqueue();
            self.release(i64::MAX, out);
            let end = Timestamp(end_us.div_euclid(1000));
            self.tick_to(end, out);
            self.processor.finish(end, out);
        }
        self.summary.frames = self.pairer.stats();
        self.summary.assembly = self.assembler.stats();
        self.summary.count(&out[first..]);
        self.summary
    }

    fn assemble(&mut self) {
        for exchange in self.exchanges.drain(..) {
            self.assembler.push(&exchange, &mut self.batches);
        }
        self.enqueue();
    }

    fn enqueue(&mut self) {
        for batch in self.batches.drain(..) {
            self.queue
                .insert((batch.key_us, self.arrivals), batch.samples);
            self.arrivals += 1;
        }
    }

    /// Processes the batches before `until_us`, ticking each whole second of log time
    /// before the batch that follows it, as the live pipeline's once-a-second tick does.
    fn release(&mut self, until_us: i64, out: &mut Vec<Record>) {
        while let Some(entry) = self.queue.first_entry() {
            let (key_us, _) = *entry.key();
            if key_us >= until_us {
                break;
            }
            let samples = entry.remove();
            self.tick_to(Timestamp(key_us.div_euclid(1000)), out);
            self.processor.push(&samples, out);
        }
    }

    fn tick_to(&mut self, now: Timestamp, out: &mut Vec<Record>) {
        let target = now.0.div_euclid(1000);
        let mut second = self.ticked_s.unwrap_or(target);
        while second < target {
            second += 1;
            self.processor.tick(Timestamp(second * 1000), out);
        }
        self.ticked_s = Some(second);
    }
}

/// Replays `frames` and returns every record with the summary.
pub fn replay_all(
    frames: impl IntoIterator<Item = CapturedFrame>,
    config: &SiteConfig,
    profiles: &ProfileSet,
    bus: Option<&str>,
) -> Result<(Vec<Record>, Summary), ReplayError> {
    let mut replayer = Replayer::new(config, profiles, bus)?;
    let mut records = Vec::new();
    for frame in frames {
        replayer.push(&frame, &mut records);
    }
    let summary = replayer.finish(&mut records);
    Ok((records, summary))
}
