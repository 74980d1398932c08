//! A batch read from the store and encoded, ready to send. The forwarder prepares the next
//! batch while the ones before are on the wire, so reading, encoding and compressing are off
//! the send path: the drain then runs at the rate of the server, not of the sum of the steps.

use std::sync::Arc;

use crate::store::{ReadError, StoreReader, Stored};

use super::client::{payload_of, Payload};
use super::encode::{EncodeError, EncodedBatch, Encoder};
use super::point::PointKeys;

pub(super) struct Prepared {
    pub records: Vec<Stored>,
    /// The store's last seq when the batch was read, for the backlog gauge.
    pub store_last_seq: u64,
    pub encoded: EncodedBatch,
    pub unencodable: Vec<(u64, EncodeError)>,
    /// The whole batch's body, sent first; only a refused batch is cut and re-encoded.
    pub body: Option<Payload>,
    /// The points its lines write: a batch goes on the wire only beside batches that write
    /// none of them.
    pub points: PointKeys,
}

impl Prepared {
    pub fn last(&self) -> Option<u64> {
        self.records.last().map(|s| s.seq)
    }
}

/// Up to `limit` records after seq `after`, encoded and compressed on the blocking pool.
pub(super) async fn prepare(
    reader: StoreReader,
    encoder: Arc<Encoder>,
    gzip: bool,
    after: u64,
    limit: usize,
) -> Result<Prepared, ReadError> {
    let batch = reader.read_after(after, limit).await?;
    let encode = move || {
        let (encoded, unencodable) = encoder.encode_batch(&batch.records);
        let body = (!encoded.is_empty()).then(|| payload_of(encoded.text(0..encoded.len()), gzip));
        let points = PointKeys::of(&batch.records);
        Prepared {
            records: batch.records,
            store_last_seq: batch.last_seq,
            encoded,
            unencodable,
            body,
            points,
        }
    };
    tokio::task::spawn_blocking(encode)
        .await
        .map_err(|e| ReadError::Task(e.to_string()))
}
