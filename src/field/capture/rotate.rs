//! Capture files, one per bus and local day, written by their own thread so a slow disk can
//! never stall a bus: when the queue is full, frames are dropped and counted instead.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use chrono::{DateTime, FixedOffset, NaiveDate};

use super::{CaptureWriter, CapturedFrame};

/// Frames queued for the writer; at 9600 baud a bus carries under 100 frames a second.
const QUEUE: usize = 16_384;

/// Where a bus's frames go. Cheap to clone; sending never blocks.
#[derive(Clone)]
pub struct CaptureSink {
    queue: SyncSender<CapturedFrame>,
    dropped: Arc<AtomicU64>,
}

impl CaptureSink {
    pub fn send(&self, frame: CapturedFrame) {
        if self.queue.try_send(frame).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Frames lost because the writer fell behind or stopped.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// `BUS-YYYY-MM-DD.pcapng`: sorts by bus, then day.
pub fn capture_file_name(bus: &str, day: NaiveDate) -> String {
    format!("{bus}-{}.pcapng", day.format("%Y-%m-%d"))
}

struct OpenFile {
    day: NaiveDate,
    path: PathBuf,
    writer: CaptureWriter<BufWriter<File>>,
}

/// The files of one bus in `dir`, rotated at local midnight.
pub struct DailyCapture {
    dir: PathBuf,
    bus: String,
    offset: FixedOffset,
    current: Option<OpenFile>,
}

impl DailyCapture {
    /// Days start at midnight at `offset` from UTC (the site's local time).
    pub fn new(dir: &Path, bus: &str, offset: FixedOffset) -> DailyCapture {
        DailyCapture {
            dir: dir.to_path_buf(),
            bus: bus.to_string(),
            offset,
            current: None,
        }
    }

    /// The file being written, if any.
    pub fn current_path(&self) -> Option<&Path> {
        self.current.as_ref().map(|f| f.path.as_path())
    }

    /// Appends `frame` to the file of its local day, starting that file if needed.
    pub fn write(&mut self, frame: &CapturedFrame) -> std::io::Result<()> {
        let day = DateTime::from_timestamp_micros(frame.ts_us)
            .map(|t| t.with_timezone(&self.offset).date_naive())
            .unwrap_or_default();
        if self.current.as_ref().is_none_or(|f| f.day != day) {
            self.flush()?;
            self.current = Some(self.open(day)?);
        }
        match &mut self.current {
            Some(file) => file.writer.write(frame),
            None => Ok(()),
        }
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.current {
            Some(file) => file.writer.get_mut().flush(),
            None => Ok(()),
        }
    }

    /// A new file for `day`. A file left by an earlier run is never appended to (its tail
    /// may be cut off); the new one gets a suffix: `BUS-DAY-2.pcapng`, …
    fn open(&self, day: NaiveDate) -> std::io::Result<OpenFile> {
        std::fs::create_dir_all(&self.dir)?;
        let base = capture_file_name(&self.bus, day);
        let stem = base.trim_end_matches(".pcapng");
        for n in 1u32.. {
            let name = if n == 1 {
                base.clone()
            } else {
                format!("{stem}-{n}.pcapng")
            };
            let path = self.dir.join(name);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    let writer = CaptureWriter::new(BufWriter::new(file))?;
                    tracing::info!(bus = %self.bus, file = %path.display(), "capturing");
                    return Ok(OpenFile { day, path, writer });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::other("no free capture file name"))
    }

    /// Runs the writer on its own thread until every clone of the returned sink is dropped.
    pub fn spawn(self) -> std::io::Result<(CaptureSink, JoinHandle<DailyCapture>)> {
        let (queue, frames) = sync_channel(QUEUE);
        let name = format!("capture-{}", self.bus);
        let handle = std::thread::Builder::new()
            .name(name)
            .spawn(move || self.drain(frames))?;
        let sink = CaptureSink {
            queue,
            dropped: Arc::new(AtomicU64::new(0)),
        };
        Ok((sink, handle))
    }

    fn drain(mut self, frames: Receiver<CapturedFrame>) -> DailyCapture {
        let mut failing = false;
        while let Ok(first) = frames.recv() {
            let mut next = Some(first);
            while let Some(frame) = next {
                let written = self.write(&frame);
                failing = report(&self.bus, written, failing);
                next = frames.try_recv().ok();
            }
            // flushed whenever the queue runs dry, so a file is complete up to the last poll
            let flushed = self.flush();
            failing = report(&self.bus, flushed, failing);
        }
        self
    }
}

/// Logs the first of a run of write errors and the recovery, not every frame.
fn report(bus: &str, outcome: std::io::Result<()>, failing: bool) -> bool {
    match (outcome, failing) {
        (Ok(()), true) => {
            tracing::info!(bus, "capture writes work again");
            false
        }
        (Ok(()), false) => false,
        (Err(e), false) => {
            tracing::error!(bus, "capture write failed: {e}");
            true
        }
        (Err(_), true) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::capture::{read_file, Direction};

    fn frame(ts_us: i64, byte: u8) -> CapturedFrame {
        CapturedFrame {
            ts_us,
            direction: Direction::Inbound,
            bytes: vec![byte],
        }
    }

    #[test]
    fn files_rotate_at_local_midnight_and_never_overwrite() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let cst = FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| panic!("offset"));
        // 2026-01-01T15:59:59.9Z is 23:59:59.9 in UTC+8; 16:00:00Z is the next local day
        let before = 1_767_283_199_900_000;
        let after = 1_767_283_200_000_000;
        let mut capture = DailyCapture::new(dir.path(), "rs485-1", cst);
        for f in [frame(before, 1), frame(after, 2)] {
            capture.write(&f).unwrap_or_else(|e| panic!("write: {e}"));
        }
        capture.flush().unwrap_or_else(|e| panic!("flush: {e}"));
        let day1 = dir.path().join("rs485-1-2026-01-01.pcapng");
        let day2 = dir.path().join("rs485-1-2026-01-02.pcapng");
        let read = |p: &Path| read_file(p).unwrap_or_else(|e| panic!("{e}")).0;
        assert_eq!(read(&day1), [frame(before, 1)]);
        assert_eq!(read(&day2), [frame(after, 2)]);

        // a restart the same day starts a second file beside the first
        let mut again = DailyCapture::new(dir.path(), "rs485-1", cst);
        again
            .write(&frame(after + 1, 3))
            .unwrap_or_else(|e| panic!("{e}"));
        again.flush().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            again.current_path(),
            Some(dir.path().join("rs485-1-2026-01-02-2.pcapng").as_path())
        );
        assert_eq!(read(&day2), [frame(after, 2)]);
    }

    #[test]
    fn the_thread_writes_everything_sent_before_the_sink_is_dropped() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let utc = FixedOffset::east_opt(0).unwrap_or_else(|| panic!("offset"));
        let (sink, handle) = DailyCapture::new(dir.path(), "b", utc)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn: {e}"));
        // 1970-01-01 plus 0..100 ms
        for i in 0..100u8 {
            sink.send(frame(i64::from(i) * 1_000, i));
        }
        assert_eq!(sink.dropped(), 0);
        drop(sink);
        let capture = handle
            .join()
            .unwrap_or_else(|_| panic!("writer thread panicked"));
        let path = capture.current_path().map(Path::to_path_buf);
        assert_eq!(path, Some(dir.path().join("b-1970-01-01.pcapng")));
        let (frames, damage) =
            read_file(&dir.path().join("b-1970-01-01.pcapng")).unwrap_or_else(|e| panic!("{e}"));
        assert!(damage.is_none());
        assert_eq!(frames.len(), 100);
        assert_eq!(frames[99], frame(99_000, 99));
    }
}
