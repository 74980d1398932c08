//! The live shell around [`Processor`]: takes samples from the collectors, lets wall-clock
//! time pass once a second, and commits every record before anything else may rely on it.

pub mod live;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{mpsc, oneshot};

use crate::model::{Basis, Reading, Sample, Timestamp};
use crate::pipeline::live::Live;
use crate::process::Processor;
use crate::store::{Record, RecordKind, StoreHandle, Stored};

/// Most records gathered before one commit, so a burst becomes one transaction.
const MAX_RECORDS_PER_COMMIT: usize = 10_000;

/// How often periods are closed and silence is looked for when no sample arrives.
const TICK: Duration = Duration::from_secs(1);

/// Note on readings whose time is when cemsd received them: the payload gave none.
pub const RECEIVE_TIME_NOTE: &str = "receive_time";

/// Samples from a source that acknowledges its upstream only once they are durable (MQTT
/// QoS 1). `committed` fires after the commit holding every record derived from them,
/// which is after everything received before them is committed too; when they yield no
/// record it fires once everything before them is committed.
pub struct Delivery {
    pub samples: Vec<Sample>,
    /// The receive time, when samples without a time in the payload were given it: readings
    /// at that instant from this delivery are stored with the note [`RECEIVE_TIME_NOTE`].
    pub receive_time: Option<Timestamp>,
    pub committed: Option<oneshot::Sender<()>>,
}

pub struct Pipeline {
    processor: Processor,
    store: StoreHandle,
    live: Arc<Live>,
    deliveries: Option<mpsc::Receiver<Delivery>>,
}

impl Pipeline {
    pub fn new(processor: Processor, store: StoreHandle, live: Arc<Live>) -> Self {
        Pipeline {
            processor,
            store,
            live,
            deliveries: None,
        }
    }

    /// Also takes deliveries whose senders wait for their commit.
    pub fn with_deliveries(mut self, deliveries: mpsc::Receiver<Delivery>) -> Self {
        self.deliveries = Some(deliveries);
        self
    }

    /// Runs until every collector has dropped its sender, committing all it received.
    pub async fn run(mut self, mut samples: mpsc::Receiver<Vec<Sample>>) {
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut records = Vec::new();
        let mut committed = Vec::new();
        let mut samples_open = true;
        let mut deliveries = self.deliveries.take();
        loop {
            tokio::select! {
                poll = samples.recv(), if samples_open => match poll {
                    // each poll is processed on its own (see Processor::push); what queued
                    // up meanwhile is committed together
                    Some(poll) => self.processor.push(&poll, &mut records),
                    None => samples_open = false,
                },
                delivery = next_delivery(&mut deliveries), if deliveries.is_some() => match delivery {
                    Some(delivery) => self.take(delivery, &mut records, &mut committed),
                    None => deliveries = None,
                },
                _ = ticker.tick() => self.processor.tick(now(), &mut records),
            }
            while records.len() < MAX_RECORDS_PER_COMMIT {
                if let Ok(poll) = samples.try_recv() {
                    self.processor.push(&poll, &mut records);
                } else if let Some(Ok(delivery)) = deliveries.as_mut().map(|d| d.try_recv()) {
                    self.take(delivery, &mut records, &mut committed);
                } else {
                    break;
                }
            }
            if !records.is_empty() {
                self.live.record_readings(&records);
                self.commit(std::mem::take(&mut records)).await;
            }
            for done in committed.drain(..) {
                // the sender may have stopped waiting (shutting down); the records are stored
                let _ = done.send(());
            }
            if !samples_open && deliveries.is_none() {
                break;
            }
        }
    }

    fn take(
        &mut self,
        delivery: Delivery,
        records: &mut Vec<Record>,
        committed: &mut Vec<oneshot::Sender<()>>,
    ) {
        let first = records.len();
        self.processor.push(&delivery.samples, records);
        if let Some(at) = delivery.receive_time {
            for record in &mut records[first..] {
                if record.kind == RecordKind::Reading && record.ts == at {
                    record.note = Some(RECEIVE_TIME_NOTE.to_string());
                }
            }
        }
        committed.extend(delivery.committed);
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

async fn next_delivery(deliveries: &mut Option<mpsc::Receiver<Delivery>>) -> Option<Delivery> {
    match deliveries {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use crate::model::{Basis, FlagSet, Quantity, Unit};
    use crate::store::{Query, Store, StoreOptions, StoreWriter, WriterOptions};

    const SITE: &str = r#"
[site]
id = "t"
[[stack]]
id = "unit1"
source_type = "coal_boiler"
[[mqtt]]
id = "m"
url = "mqtt://127.0.0.1"
client_id = "c"
[[mqtt.subscribe]]
filter = "x/#"
format = "plain"
topic = "x/{device}/{channel}"
[[mqtt.device]]
id = "dtu"
stack = "unit1"
interval = "10s"
channels = { O2 = { unit = "%vol" } }
"#;

    fn o2(ts: i64) -> Sample {
        Sample {
            device: Arc::from("dtu"),
            channel: Arc::from("O2"),
            quantity: Quantity::O2,
            unit: Unit::PercentVol,
            basis: Basis::Dry,
            value: 6.0,
            status: FlagSet::EMPTY,
            ts: Timestamp(ts),
        }
    }

    #[tokio::test]
    async fn deliveries_are_confirmed_after_their_commit_and_notes_mark_receive_times() {
        let loaded =
            config::parse(std::path::Path::new("t.toml"), SITE).unwrap_or_else(|e| panic!("{e}"));
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = Store::open(&dir.path().join("t.db"), StoreOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let (handle, thread) =
            StoreWriter::spawn(store, WriterOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        let processor = Processor::new(&loaded.config, &loaded.profiles);
        let (tx, rx) = mpsc::channel(8);
        let (samples_tx, samples_rx) = mpsc::channel(1);
        drop(samples_tx);
        let pipeline = tokio::spawn(
            Pipeline::new(processor, handle.clone(), Live::new())
                .with_deliveries(rx)
                .run(samples_rx),
        );
        // 2026-01-01T04:00:00Z and one second later
        let (t0, t1) = (1_767_240_000_000, 1_767_240_001_000);
        let (done0, wait0) = oneshot::channel();
        let (done1, wait1) = oneshot::channel();
        let (done2, wait2) = oneshot::channel();
        let sent = [
            Delivery {
                samples: vec![o2(t0)],
                receive_time: None,
                committed: Some(done0),
            },
            Delivery {
                samples: vec![o2(t1)],
                receive_time: Some(Timestamp(t1)),
                committed: Some(done1),
            },
            // nothing to store: confirmed once the earlier ones are committed
            Delivery {
                samples: Vec::new(),
                receive_time: None,
                committed: Some(done2),
            },
        ];
        for delivery in sent {
            tx.send(delivery)
                .await
                .unwrap_or_else(|_| panic!("pipeline gone"));
        }
        // a second connection sees only committed rows: each confirmation must find its
        // readings there already
        let committed_readings = || {
            let reader = Store::open(&dir.path().join("t.db"), StoreOptions::default())
                .unwrap_or_else(|e| panic!("{e}"));
            reader
                .query(&Query {
                    kind: Some(RecordKind::Reading),
                    device: Some("dtu".into()),
                    ..Query::default()
                })
                .unwrap_or_else(|e| panic!("{e}"))
        };
        for (wait, at_least) in [(wait0, 1), (wait1, 2), (wait2, 2)] {
            wait.await
                .unwrap_or_else(|_| panic!("a delivery was never confirmed"));
            assert!(
                committed_readings().len() >= at_least,
                "confirmed before its commit"
            );
        }
        let rows = committed_readings();
        let got: Vec<_> = rows
            .iter()
            .map(|r| (r.record.ts.0, r.record.note.clone()))
            .collect();
        assert_eq!(
            got,
            vec![(t0, None), (t1, Some(RECEIVE_TIME_NOTE.to_string()))]
        );
        drop(tx);
        pipeline.await.unwrap_or_else(|e| panic!("{e}"));
        handle.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
        let _ = thread.join();
    }
}
