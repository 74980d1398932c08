//! The live shell around [`Processor`]: takes samples from the collectors, lets wall-clock
//! time pass once a second, and commits every record before anything else may rely on it.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc;

use crate::live::Live;
use crate::model::{Basis, Reading, Sample, Timestamp};
use crate::process::Processor;
use crate::store::{Record, RecordKind, StoreHandle, Stored};

/// Most records gathered before one commit, so a burst becomes one transaction.
const MAX_RECORDS_PER_COMMIT: usize = 10_000;

/// How often periods are closed and silence is looked for when no sample arrives.
const TICK: Duration = Duration::from_secs(1);

pub struct Pipeline {
    processor: Processor,
    store: StoreHandle,
    live: Arc<Live>,
}

impl Pipeline {
    pub fn new(processor: Processor, store: StoreHandle, live: Arc<Live>) -> Self {
        Pipeline {
            processor,
            store,
            live,
        }
    }

    /// Runs until every collector has dropped its sender, committing all it received.
    pub async fn run(mut self, mut samples: mpsc::Receiver<Vec<Sample>>) {
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut records = Vec::new();
        loop {
            tokio::select! {
                poll = samples.recv() => {
                    let Some(poll) = poll else { break };
                    // each poll is processed on its own (see Processor::push); what queued
                    // up meanwhile is committed together
                    self.processor.push(&poll, &mut records);
                    while records.len() < MAX_RECORDS_PER_COMMIT {
                        match samples.try_recv() {
                            Ok(poll) => self.processor.push(&poll, &mut records),
                            Err(_) => break,
                        }
                    }
                }
                _ = ticker.tick() => self.processor.tick(now(), &mut records),
            }
            if !records.is_empty() {
                self.live.record_readings(&records);
                self.commit(std::mem::take(&mut records)).await;
            }
        }
    }

    /// Retries a failed commit (disk full, I/O error) until it succeeds: collectors wait on
    /// the bounded channel meanwhile, so nothing read is dropped.
    async fn commit(&self, records: Vec<Record>) {
        let n = records.len() as u64;
        let mut delay = Duration::from_millis(100);
        loop {
            match self.store.append(records.clone()).await {
                Ok(_) => {
                    self.live.add_committed(n);
                    return;
                }
                Err(e) => {
                    tracing::error!(
                        "store commit of {n} records failed, retrying in {delay:?}: {e}"
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
}

/// The pipeline's clock: the one place in processing that reads the wall clock.
fn now() -> Timestamp {
    Timestamp::from_datetime(Utc::now())
}

/// A stored reading as the aggregation stage consumed it, for warming up after a restart.
pub fn reading_of(stored: &Stored) -> Option<Reading> {
    let r = &stored.record;
    if r.kind != RecordKind::Reading {
        return None;
    }
    Some(Reading {
        ts: r.ts,
        stack: r.stack.clone(),
        device: r.device.clone(),
        channel: r.channel.clone(),
        quantity: r.quantity?,
        unit: r.unit?,
        // normalised readings are at dry basis or carry their own unit's basis; aggregation
        // does not look at it
        basis: Basis::Dry,
        raw: r.raw.unwrap_or(f64::NAN),
        measured: r.measured.unwrap_or(f64::NAN),
        corrected: r.corrected,
        rate: r.rate,
        flags: r.flags,
    })
}
