//! Transactions to polls: which read of which analyser's plan each exchange was, grouped into
//! polls as the live line owner made them, decoded by the live device code. Boundaries the
//! live schedule passed without a poll (a backed-off or missed device) get the same
//! B-flagged samples the live line owner records for them.

use std::collections::HashMap;

use crate::collect::modbus::device::DevicePoller;
use crate::collect::modbus::schedule::MAX_BACKOFF;
use crate::field::capture::pair::{Answer, Exchange};
use crate::model::{Sample, Timestamp};
use crate::protocol::modbus::frame::{block_data, function_code};
use crate::protocol::modbus::plan::BlockData;

/// Samples of one poll (or one hole), in the order the live pipeline would get them.
#[derive(Debug)]
pub struct Batch {
    /// When the live line owner handed them over: the first request of a poll, the boundary
    /// of a hole.
    pub key_us: i64,
    pub samples: Vec<Sample>,
}

/// Counts of what did not fit a configured device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AssemblyStats {
    pub polls: u64,
    /// Boundaries without a poll, recorded as holes.
    pub holes: u64,
    /// Exchanges with a unit id no replayed device has.
    pub unknown_unit: u64,
    /// Requests for a block the device's plan does not read.
    pub unplanned: u64,
    /// Replies without their request that matched no single planned block by byte count.
    pub unplaced: u64,
}

struct OpenPoll {
    boundary_ms: i64,
    start_us: i64,
    results: Vec<BlockData>,
    read_at: Vec<Timestamp>,
    last_block: usize,
    /// The last read was damaged on the line: live retries it once at once.
    last_damaged: bool,
}

struct Track {
    poller: DevicePoller,
    interval_ms: i64,
    open: Option<OpenPoll>,
    last_boundary_ms: Option<i64>,
}

/// Longest silence between two polls of a device that backoff explains; beyond it the
/// daemon or the capture was not running, and no holes are made up for it.
pub fn hole_window_ms(max_interval_ms: i64) -> i64 {
    let backoff = i64::try_from(MAX_BACKOFF.as_millis()).unwrap_or(i64::MAX);
    backoff.max(max_interval_ms) + max_interval_ms
}

pub struct Assembler {
    tracks: Vec<Track>,
    by_unit: HashMap<u8, usize>,
    window_ms: i64,
    stats: AssemblyStats,
}

impl Assembler {
    /// Pollers must have distinct unit ids (the caller checks).
    pub fn new(pollers: Vec<DevicePoller>) -> Assembler {
        let by_unit = pollers
            .iter()
            .enumerate()
            .map(|(i, p)| (p.unit_id(), i))
            .collect();
        let tracks: Vec<Track> = pollers
            .into_iter()
            .map(|poller| Track {
                interval_ms: i64::try_from(poller.interval().as_millis())
                    .unwrap_or(i64::MAX)
                    .max(1),
                poller,
                open: None,
                last_boundary_ms: None,
            })
            .collect();
        let max_interval = tracks.iter().map(|t| t.interval_ms).max().unwrap_or(1);
        Assembler {
            tracks,
            by_unit,
            window_ms: hole_window_ms(max_interval),
            stats: AssemblyStats::default(),
        }
    }

    pub fn stats(&self) -> AssemblyStats {
        self.stats
    }

    /// How far behind the newest exchange a batch may still be produced: holes are found
    /// only when a device's next poll arrives.
    pub fn lag_us(&self) -> i64 {
        let max_interval = self.tracks.iter().map(|t| t.interval_ms).max().unwrap_or(1);
        (self.window_ms + 2 * max_interval).saturating_mul(1000)
    }

    pub fn push(&mut self, exchange: &Exchange, out: &mut Vec<Batch>) {
        let Some(&index) = self.by_unit.get(&exchange.unit) else {
            self.stats.unknown_unit += 1;
            return;
        };
        let blocks = &self.tracks[index].poller.plan().blocks;
        let n = blocks.len();
        let block = match (&exchange.request, &exchange.answer) {
            (Some(request), _) => blocks.iter().position(|b| {
                function_code(b.table) == request.function
                    && b.start == request.start
                    && b.count == request.count
            }),
            (None, Answer::Data(data)) => {
                let mut fitting = blocks.iter().enumerate().filter(|(_, b)| {
                    function_code(b.table) == exchange.function
                        && crate::protocol::modbus::frame::Expected::for_read(exchange.unit, b)
                            .byte_count as usize
                            == data.len()
                });
                match (fitting.next(), fitting.next()) {
                    (Some((i, _)), None) => Some(i),
                    _ => {
                        self.stats.unplaced += 1;
                        return;
                    }
                }
            }
            (None, _) => return, // an exception to an unknown read: counted by the pairer
        };
        let Some(block) = block else {
            self.stats.unplanned += 1;
            return;
        };
        let started_us = exchange.request.map_or(exchange.ts_us, |r| r.ts_us);
        let window_ms = self.window_ms;
        let track = &mut self.tracks[index];
        let continues = track.open.as_ref().is_some_and(|open| {
            let later_block =
                block > open.last_block || (block == open.last_block && open.last_damaged);
            later_block && started_us - open.start_us < track.interval_ms * 1000
        });
        if !continues {
            track.close(&mut self.stats, out);
            let floor =
                started_us.div_euclid(1000).div_euclid(track.interval_ms) * track.interval_ms;
            let boundary_ms = match track.last_boundary_ms {
                Some(last) if last >= floor => last + track.interval_ms,
                _ => floor,
            };
            track.holes_before(boundary_ms, window_ms, &mut self.stats, out);
            track.open = Some(OpenPoll {
                boundary_ms,
                start_us: started_us,
                results: vec![BlockData::Missing; n],
                read_at: vec![Timestamp(boundary_ms); n],
                last_block: block,
                last_damaged: false,
            });
        }
        let Some(open) = track.open.as_mut() else {
            return;
        };
        let read_block = &track.poller.plan().blocks[block];
        let (data, read_at) = match &exchange.answer {
            Answer::Data(bytes) => (
                block_data(read_block, bytes),
                Timestamp(exchange.ts_us.div_euclid(1000)),
            ),
            Answer::Exception(_) | Answer::Damaged | Answer::Silence => {
                (BlockData::Missing, Timestamp(open.boundary_ms))
            }
        };
        open.results[block] = data;
        open.read_at[block] = read_at;
        open.last_block = block;
        open.last_damaged = exchange.answer == Answer::Damaged;
    }

    /// Closes every poll, and records the holes up to `end_us` (the end of the capture).
    pub fn finish(&mut self, end_us: i64, out: &mut Vec<Batch>) {
        let window_ms = self.window_ms;
        for track in &mut self.tracks {
            track.close(&mut self.stats, out);
            let end_ms = end_us.div_euclid(1000);
            let after_last =
                end_ms.div_euclid(track.interval_ms) * track.interval_ms + track.interval_ms;
            track.holes_before(after_last, window_ms, &mut self.stats, out);
        }
    }
}

impl Track {
    fn close(&mut self, stats: &mut AssemblyStats, out: &mut Vec<Batch>) {
        let Some(open) = self.open.take() else {
            return;
        };
        stats.polls += 1;
        let samples =
            self.poller
                .samples(&open.results, &open.read_at, Timestamp(open.boundary_ms));
        self.last_boundary_ms = Some(open.boundary_ms);
        out.push(Batch {
            key_us: open.start_us,
            samples,
        });
    }

    /// B-flagged samples at every boundary between the last poll and `boundary_ms`, when
    /// backoff explains the silence.
    fn holes_before(
        &mut self,
        boundary_ms: i64,
        window_ms: i64,
        stats: &mut AssemblyStats,
        out: &mut Vec<Batch>,
    ) {
        let Some(last) = self.last_boundary_ms else {
            return;
        };
        if boundary_ms - last > window_ms {
            return;
        }
        let mut hole = last + self.interval_ms;
        while hole < boundary_ms {
            stats.holes += 1;
            out.push(Batch {
                key_us: hole.saturating_mul(1000),
                samples: self.poller.failed_samples(Timestamp(hole)),
            });
            hole += self.interval_ms;
        }
        self.last_boundary_ms = Some(last.max(boundary_ms - self.interval_ms));
    }
}
