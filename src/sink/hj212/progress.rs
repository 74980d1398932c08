//! How far the uplink has taken the store: records read and turned into uploads, and the
//! cursor, which only passes records whose uploads are acknowledged.

use std::collections::BTreeSet;

use crate::store::Stored;

/// The cursor is the highest seq below which every upload is acknowledged: one seq before the
/// first record of the oldest unacknowledged upload, or everything read when none is open.
/// Records that are never uploaded (readings, gaps, other points) are passed over with the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    read_to: u64,
    /// First seq of every upload built from the backlog and not yet acknowledged.
    open: BTreeSet<u64>,
}

impl Progress {
    pub fn new(cursor: u64) -> Progress {
        Progress {
            read_to: cursor,
            open: BTreeSet::new(),
        }
    }

    /// The last seq turned into uploads (or passed over).
    pub fn read_to(&self) -> u64 {
        self.read_to
    }

    /// Records up to `seq` are read; `uploads` are the first seqs of the uploads made of them.
    pub fn read(&mut self, seq: u64, uploads: impl IntoIterator<Item = u64>) {
        self.read_to = self.read_to.max(seq);
        self.open.extend(uploads);
    }

    pub fn acked(&mut self, first_seq: u64) {
        self.open.remove(&first_seq);
    }

    pub fn cursor(&self) -> u64 {
        self.open.first().map_or(self.read_to, |first| {
            first.saturating_sub(1).min(self.read_to)
        })
    }
}

/// How many records of a batch to upload now. A full batch may end inside a period whose other
/// quantities come in the next read; that period is left for the next read (from its first
/// record on) so it travels as one upload. Returns the count and the last seq it covers.
pub fn complete_prefix(records: &[Stored], full: bool) -> (usize, u64) {
    let Some(last) = records.last() else {
        return (0, 0);
    };
    if !full {
        return (records.len(), last.seq);
    }
    let key = |s: &Stored| (s.record.kind, s.record.ts, s.record.stack.clone());
    let last_key = key(last);
    match records.iter().position(|s| key(s) == last_key) {
        Some(0) | None => (records.len(), last.seq),
        Some(cut) => (cut, records[cut].seq - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Timestamp;
    use crate::store::{Record, RecordKind};

    #[test]
    fn the_cursor_waits_for_the_oldest_open_upload() {
        let mut progress = Progress::new(10);
        assert_eq!(progress.cursor(), 10);
        // Records 11..=20 read: uploads starting at 12 and 15; 11 and 13..14 are readings.
        progress.read(20, [12, 15]);
        assert_eq!(progress.cursor(), 11);
        progress.acked(15); // acks out of order
        assert_eq!(progress.cursor(), 11);
        progress.acked(12);
        assert_eq!(progress.cursor(), 20);
        progress.acked(99); // unknown: no effect
        assert_eq!(progress.cursor(), 20);
    }

    fn stored(seq: u64, kind: RecordKind, ts: i64) -> Stored {
        Stored {
            seq,
            record: Record::new(kind, Timestamp(ts), "unit1".into(), "".into(), "".into()),
        }
    }

    #[test]
    fn a_full_batch_leaves_its_last_period_for_the_next_read() {
        let batch = [
            stored(5, RecordKind::Minute, 0),
            stored(6, RecordKind::Minute, 60_000),
            stored(7, RecordKind::Reading, 61_000),
            stored(8, RecordKind::Minute, 60_000),
        ];
        // The period at 60 s starts at seq 6: take only seq 5, read again after 5.
        assert_eq!(complete_prefix(&batch, true), (1, 5));
        assert_eq!(complete_prefix(&batch, false), (4, 8));
        // A batch that is one period only is taken whole.
        assert_eq!(complete_prefix(&batch[1..2], true), (1, 6));
        assert_eq!(complete_prefix(&[], true), (0, 0));
    }
}
