//! Why a store operation failed.

use std::path::PathBuf;
use std::sync::Arc;

/// Errors are `Clone` because one failed commit answers every caller whose records were
/// coalesced into that transaction; the underlying causes are shared behind `Arc`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the directory for the store {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: Arc<std::io::Error>,
    },
    #[error("store database error: {0}")]
    Sqlite(#[source] Arc<rusqlite::Error>),
    #[error(
        "store schema version {found} is newer than this cemsd understands ({supported}); \
         upgrade cemsd or point it at another store file"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("stored row {row} is corrupt: {detail}")]
    Corrupt { row: i64, detail: String },
    #[error("sink {0:?} is not registered with the store")]
    UnknownSink(String),
    #[error("sink {sink:?} cannot take seq {seq}: the store has only written up to {last_seq}")]
    CursorBeyondEnd {
        sink: String,
        seq: u64,
        last_seq: u64,
    },
    #[error("seq {0} does not fit the store's signed 64-bit key")]
    SeqOutOfRange(u64),
    #[error("cannot start the store writer thread: {0}")]
    WriterThread(#[source] Arc<std::io::Error>),
    #[error("the store writer has stopped")]
    WriterClosed,
}

impl StoreError {
    /// Whether waiting and trying again cannot help: the file is corrupt, not a database,
    /// read-only, out of our permissions, or from a newer cemsd. A service manager should
    /// not restart a daemon that stopped for this; an operator has to look. A full disk or
    /// an I/O error may pass and is not counted here.
    pub fn needs_operator(&self) -> bool {
        use rusqlite::ErrorCode;
        match self {
            StoreError::CreateDir { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::PermissionDenied
                    | std::io::ErrorKind::ReadOnlyFilesystem
                    | std::io::ErrorKind::NotADirectory
                    | std::io::ErrorKind::AlreadyExists
            ),
            StoreError::Sqlite(e) => matches!(
                e.sqlite_error_code(),
                Some(
                    ErrorCode::DatabaseCorrupt
                        | ErrorCode::NotADatabase
                        | ErrorCode::ReadOnly
                        | ErrorCode::CannotOpen
                        | ErrorCode::PermissionDenied
                        | ErrorCode::AuthorizationForStatementDenied
                )
            ),
            StoreError::SchemaTooNew { .. } | StoreError::Corrupt { .. } => true,
            StoreError::UnknownSink(_)
            | StoreError::CursorBeyondEnd { .. }
            | StoreError::SeqOutOfRange(_)
            | StoreError::WriterThread(_)
            | StoreError::WriterClosed => false,
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(Arc::new(e))
    }
}
