//! The one ingest contract: every collector (Modbus lines, MQTT sources, the HJ 212 listener)
//! hands the pipeline its data as a [`Batch`], and the pipeline alone dedupes, dead-letters,
//! updates the live board and commits. A collector that answers its upstream (an MQTT
//! PUBACK, an HJ 212 9014) waits for the batch's [`Receipt`], which comes only after
//! everything in the batch is committed.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

use crate::model::{Sample, Timestamp};
use crate::store::Record;

/// Where a batch came from: says how the pipeline treats it and what the live board shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A Modbus line's poll: its devices' link state is reported by the line itself.
    Modbus,
    /// An MQTT source (by config id): QoS 1 redelivers what was not acknowledged, so its
    /// readings are deduplicated; its devices count as connected when data arrives.
    Mqtt { source: Arc<str> },
    /// An HJ 212 data logger (by MN) uploading records it aggregated itself.
    Hj212 { mn: Arc<str> },
}

impl Origin {
    /// True for sources that may deliver a reading again after a lost acknowledgement.
    pub fn redelivers(&self) -> bool {
        matches!(self, Origin::Mqtt { .. })
    }

    /// Which kind of collector, for metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Origin::Modbus => "modbus",
            Origin::Mqtt { .. } => "mqtt",
            Origin::Hj212 { .. } => "hj212",
        }
    }

    /// The dead-letter `source` column: the path and which configured source.
    pub fn dead_letter_source(&self) -> String {
        match self {
            Origin::Modbus => "modbus".to_string(),
            Origin::Mqtt { source } => format!("mqtt:{source}"),
            Origin::Hj212 { mn } => format!("hj212:{mn}"),
        }
    }
}

/// A message the source could not use, kept whole in the dead-letter table.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Why, with the message's address (topic, peer) so an operator can find its sender.
    pub reason: String,
    pub payload: Vec<u8>,
    pub received: Timestamp,
}

/// What one message of a redelivering source looked like, so the pipeline can dead-letter
/// it whole when some of its readings turn out to be late.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Written into the dead letter's reason.
    pub topic: String,
    pub payload: Vec<u8>,
    pub received: Timestamp,
}

/// Everything one source handed over at once.
#[derive(Debug)]
pub struct Batch {
    pub origin: Origin,
    /// Raw readings, normalised, checked and aggregated by the pipeline.
    pub samples: Vec<Sample>,
    /// Records the source computed itself (HJ 212 minute, hour and day uploads), stored as
    /// they are.
    pub records: Vec<Record>,
    pub dead_letters: Vec<DeadLetter>,
    /// The receive time, when samples without a time in the payload were given it: readings
    /// at that instant are stored with the note [`RECEIVE_TIME_NOTE`].
    pub receive_time: Option<Timestamp>,
    /// The message the samples came from, for a source that redelivers.
    pub message: Option<Message>,
    /// Answered once everything in this batch, and everything received before it, is
    /// committed.
    pub receipt: Option<oneshot::Sender<Receipt>>,
}

/// Note on readings whose time is when cemsd received them: the payload gave none.
pub const RECEIVE_TIME_NOTE: &str = "receive_time";

/// What the pipeline did with a batch, once it is durable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Receipt {
    /// Readings taken for processing and storage.
    pub readings: usize,
    /// Readings already stored (a redelivery), dropped.
    pub duplicates: usize,
    /// Readings stamped further back than the lateness horizon and not stored: the batch
    /// (its message, if it had one) went to the dead letters with this explanation.
    pub too_late: Option<String>,
    /// Readings or records stamped too far ahead of the receiving clock, refused: the batch
    /// (its message, if it had one) went to the dead letters with this explanation.
    pub future: Option<String>,
}

impl Batch {
    /// An empty batch from `origin`.
    pub fn new(origin: Origin) -> Batch {
        Batch {
            origin,
            samples: Vec::new(),
            records: Vec::new(),
            dead_letters: Vec::new(),
            receive_time: None,
            message: None,
            receipt: None,
        }
    }

    /// Readings with no one waiting for the commit (a poll's).
    pub fn readings(origin: Origin, samples: Vec<Sample>) -> Batch {
        Batch {
            samples,
            ..Batch::new(origin)
        }
    }

    /// Asks for a receipt; the returned receiver answers after the commit.
    pub fn with_receipt(mut self) -> (Batch, oneshot::Receiver<Receipt>) {
        let (tx, rx) = oneshot::channel();
        self.receipt = Some(tx);
        (self, rx)
    }
}

/// The pipeline's input. Collectors that live for one config (Modbus lines, MQTT sources)
/// hold a sender; the HJ 212 listener, which outlives reloads so loggers keep their
/// connections, sends through an [`IngestPort`] that always points at the current pipeline.
pub type BatchSender = mpsc::Sender<Batch>;

/// The current pipeline's input, replaced on reload. Between two pipelines (while a reload
/// swaps them) it is empty and senders wait.
#[derive(Clone)]
pub struct IngestPort {
    current: watch::Receiver<Option<BatchSender>>,
}

/// The daemon's end of an [`IngestPort`].
pub struct IngestSwitch {
    current: watch::Sender<Option<BatchSender>>,
}

impl IngestSwitch {
    pub fn new() -> (IngestSwitch, IngestPort) {
        let (current, receiver) = watch::channel(None);
        (IngestSwitch { current }, IngestPort { current: receiver })
    }

    /// Points the port at a new pipeline, or at none while it is being replaced; dropping
    /// the old sender lets the old pipeline finish once its queued batches are in.
    pub fn connect(&self, pipeline: Option<BatchSender>) {
        self.current.send_replace(pipeline);
    }
}

impl IngestPort {
    /// Sends `batch` to the current pipeline, waiting while there is none. Fails only when
    /// the daemon has stopped for good.
    pub async fn send(&mut self, mut batch: Batch) -> Result<(), Batch> {
        loop {
            let sender = self.current.borrow_and_update().clone();
            if let Some(sender) = sender {
                match sender.send(batch).await {
                    Ok(()) => return Ok(()),
                    // that pipeline stopped between the lookup and the send: wait for the next
                    Err(mpsc::error::SendError(back)) => batch = back,
                }
            }
            if self.current.changed().await.is_err() {
                return Err(batch);
            }
        }
    }
}
