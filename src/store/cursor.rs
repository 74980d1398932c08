//! Per-sink delivery cursors: the last seq each sink has delivered. They are what lets
//! retention know which rows are still owed to someone.

use super::{seq_from_sql, seq_to_sql, Store, StoreError};

impl Store {
    /// Registers `sink` with its cursor at 0, so it is owed every retained record. A sink
    /// already registered keeps its cursor.
    pub fn register_sink(&mut self, sink: &str) -> Result<(), StoreError> {
        self.register_sink_from(sink, 0)
    }

    /// Registers `sink` as having taken everything up to `seq` (e.g. `last_seq()` for a
    /// new sink that should only get new data). A sink already registered keeps its cursor.
    pub fn register_sink_from(&mut self, sink: &str, seq: u64) -> Result<(), StoreError> {
        self.check_not_beyond_end(sink, seq)?;
        self.conn
            .prepare_cached("INSERT OR IGNORE INTO sink_cursor (sink, seq) VALUES (?1, ?2)")?
            .execute(rusqlite::params![sink, seq_to_sql(seq)?])?;
        Ok(())
    }

    /// Forgets a sink that was removed from the configuration, so it no longer holds back
    /// retention. Returns whether it was registered.
    pub fn unregister_sink(&mut self, sink: &str) -> Result<bool, StoreError> {
        let removed = self
            .conn
            .prepare_cached("DELETE FROM sink_cursor WHERE sink = ?1")?
            .execute([sink])?;
        Ok(removed > 0)
    }

    pub fn cursor(&self, sink: &str) -> Result<u64, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq FROM sink_cursor WHERE sink = ?1")?;
        let mut rows = stmt.query([sink])?;
        match rows.next()? {
            Some(row) => Ok(seq_from_sql(row.get(0)?)),
            None => Err(StoreError::UnknownSink(sink.to_string())),
        }
    }

    /// Every registered sink and its cursor, by name.
    pub fn sinks(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT sink, seq FROM sink_cursor ORDER BY sink")?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push((row.get(0)?, seq_from_sql(row.get(1)?)));
        }
        Ok(out)
    }

    /// Records that `sink` has delivered everything up to `seq`. A cursor never moves
    /// backwards: an older acknowledgement arriving late leaves it where it is.
    pub fn set_cursor(&mut self, sink: &str, seq: u64) -> Result<(), StoreError> {
        self.check_not_beyond_end(sink, seq)?;
        let updated = self
            .conn
            .prepare_cached("UPDATE sink_cursor SET seq = max(seq, ?2) WHERE sink = ?1")?
            .execute(rusqlite::params![sink, seq_to_sql(seq)?])?;
        if updated == 0 {
            return Err(StoreError::UnknownSink(sink.to_string()));
        }
        Ok(())
    }

    /// A cursor past the last seq would claim delivery of records that do not exist yet,
    /// and let retention delete them as soon as they do.
    fn check_not_beyond_end(&self, sink: &str, seq: u64) -> Result<(), StoreError> {
        let last_seq = self.last_seq()?;
        if seq > last_seq {
            return Err(StoreError::CursorBeyondEnd {
                sink: sink.to_string(),
                seq,
                last_seq,
            });
        }
        Ok(())
    }
}
