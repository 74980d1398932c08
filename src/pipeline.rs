//! The one path every sample takes from a collector to the store, live and in replay.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::live::Live;
use crate::model::Sample;
use crate::store::{Record, RecordKind, StoreHandle};

/// Most samples taken off the channel before one commit, so a burst becomes one transaction.
const MAX_SAMPLES_PER_COMMIT: usize = 10_000;

pub struct Pipeline {
    stack_of_device: HashMap<Arc<str>, Arc<str>>,
    store: StoreHandle,
    live: Arc<Live>,
}

impl Pipeline {
    pub fn new(
        stack_of_device: HashMap<Arc<str>, Arc<str>>,
        store: StoreHandle,
        live: Arc<Live>,
    ) -> Self {
        Pipeline {
            stack_of_device,
            store,
            live,
        }
    }

    /// Runs until every collector has dropped its sender, committing all it received.
    pub async fn run(self, mut samples: mpsc::Receiver<Vec<Sample>>) {
        while let Some(first) = samples.recv().await {
            let mut batch = first;
            while batch.len() < MAX_SAMPLES_PER_COMMIT {
                match samples.try_recv() {
                    Ok(more) => batch.extend(more),
                    Err(_) => break,
                }
            }
            self.live.record_samples(&batch);
            let records: Vec<Record> = batch.iter().map(|s| self.record_of(s)).collect();
            self.commit(records).await;
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
                        "store commit of {n} readings failed, retrying in {delay:?}: {e}"
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    fn record_of(&self, sample: &Sample) -> Record {
        let stack = self
            .stack_of_device
            .get(&sample.device)
            .cloned()
            .unwrap_or_else(|| Arc::from(""));
        Record {
            kind: RecordKind::Reading,
            ts: sample.ts,
            end: None,
            stack,
            device: sample.device.clone(),
            channel: sample.channel.clone(),
            quantity: Some(sample.quantity),
            unit: Some(sample.unit),
            flags: sample.status,
            raw: Some(sample.value).filter(|v| !v.is_nan()),
            measured: None,
            corrected: None,
            rate: None,
            min: None,
            max: None,
            count: None,
            note: None,
        }
    }
}
