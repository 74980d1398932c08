//! Stored records for a history pull, read through a connection of its own so a long window
//! never holds up the store writer.

use std::path::PathBuf;

use crate::model::Timestamp;
use crate::store::{Query, RecordKind, Store, StoreError, StoreOptions, Stored};

/// Most records one pull returns: a month of minute data for 12 quantities is about 520 000,
/// so larger windows are served in part (logged) and the platform pulls the rest in pieces.
pub const HISTORY_LIMIT: usize = 600_000;

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the history read was cancelled or panicked: {0}")]
    Task(String),
}

/// `kind` records of `point` with `from <= ts <= to`, by time.
pub async fn stored_window(
    store_path: PathBuf,
    kind: RecordKind,
    point: String,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<Stored>, HistoryError> {
    let read = tokio::task::spawn_blocking(move || {
        let store = Store::open(
            &store_path,
            StoreOptions {
                cache_size_kib: 2 * 1024,
                ..StoreOptions::default()
            },
        )?;
        store.query(&Query {
            kind: Some(kind),
            stack: Some(point),
            from: Some(from),
            to: Some(Timestamp(to.millis().saturating_add(1))),
            limit: Some(HISTORY_LIMIT),
            ..Query::default()
        })
    })
    .await;
    match read {
        Ok(result) => Ok(result?),
        Err(e) => Err(HistoryError::Task(e.to_string())),
    }
}
