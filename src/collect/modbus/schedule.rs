//! When each device on a line (a serial bus, or one connection to a TCP endpoint) is polled:
//! on wall-clock boundaries, healthy devices first, failing ones backed off. Pure: the caller
//! passes the time, so the same rules hold in tests, replays and live.

use std::time::Duration;

use crate::model::Timestamp;

/// Longest pause between attempts at a device that keeps failing.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Most missed boundaries reported one by one after the line fell behind (e.g. the host was
/// suspended); older ones are only counted, so a long stall does not flood the store.
const MAX_MISSED_REPORTED: i64 = 60;

/// The next multiple of `interval` since the epoch after `now`, so every gateway polls at
/// :00, :10, … and readings from different devices line up.
pub fn next_boundary(now: Timestamp, interval: Duration) -> Timestamp {
    let step = interval_ms(interval);
    Timestamp((now.0.div_euclid(step) + 1) * step)
}

fn interval_ms(interval: Duration) -> i64 {
    i64::try_from(interval.as_millis())
        .unwrap_or(i64::MAX)
        .max(1)
}

/// After `failures` failed polls in a row, how long to leave the device alone: the first
/// failure is retried at the next boundary, then the pause doubles up to [`MAX_BACKOFF`] (or
/// one interval, if that is longer), so a dead analyser costs little while it is down.
pub fn backoff(interval: Duration, failures: u32) -> Duration {
    if failures <= 1 {
        return Duration::ZERO;
    }
    let factor = 1u32 << (failures - 1).min(16);
    interval
        .saturating_mul(factor)
        .min(MAX_BACKOFF.max(interval))
}

/// What to do for one device at one boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read the device.
    Poll,
    /// The device is backed off: record the hole without spending a timeout on it.
    BackedOff,
    /// The line was busy past this boundary and the next one: the poll never happened.
    Missed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// Index of the device in the order given to [`LineSchedule::new`].
    pub device: usize,
    pub boundary: Timestamp,
    pub action: Action,
}

#[derive(Debug, Clone)]
struct DeviceSlot {
    interval: Duration,
    due: Timestamp,
    failures: u32,
    retry_at: Option<Timestamp>,
}

/// The polling plan of the devices sharing one line.
#[derive(Debug, Clone)]
pub struct LineSchedule {
    devices: Vec<DeviceSlot>,
    missed_unreported: u64,
}

impl LineSchedule {
    /// Devices polled every `intervals[i]`, first at the boundary after `now`.
    pub fn new(intervals: &[Duration], now: Timestamp) -> LineSchedule {
        LineSchedule {
            devices: intervals
                .iter()
                .map(|&interval| DeviceSlot {
                    interval,
                    due: next_boundary(now, interval),
                    failures: 0,
                    retry_at: None,
                })
                .collect(),
            missed_unreported: 0,
        }
    }

    /// When the earliest device is due; `None` for a line without devices.
    pub fn next_wake(&self) -> Option<Timestamp> {
        self.devices.iter().map(|d| d.due).min()
    }

    /// Everything due at `now`, in the order to handle it: holes first (they cost nothing),
    /// then healthy devices, then devices being retried after failures — so a dead device's
    /// timeout comes after the others have been read, not before. Each device's next due
    /// time moves to its next boundary.
    pub fn take_due(&mut self, now: Timestamp) -> Vec<Due> {
        let mut holes = Vec::new();
        let mut healthy = Vec::new();
        let mut retrying = Vec::new();
        for (index, slot) in self.devices.iter_mut().enumerate() {
            if slot.due > now {
                continue;
            }
            let step = interval_ms(slot.interval);
            // the latest boundary not after `now` is polled; any before it were missed
            let latest = Timestamp(now.0 - (now.0 - slot.due.0).rem_euclid(step));
            let missed = (latest.0 - slot.due.0) / step;
            let reported = missed.min(MAX_MISSED_REPORTED);
            self.missed_unreported += u64::try_from(missed - reported).unwrap_or(0);
            for k in (1..=reported).rev() {
                holes.push(Due {
                    device: index,
                    boundary: Timestamp(latest.0 - k * step),
                    action: Action::Missed,
                });
            }
            slot.due = Timestamp(latest.0 + step);
            let due = |action| Due {
                device: index,
                boundary: latest,
                action,
            };
            match slot.retry_at {
                Some(at) if latest < at => holes.push(due(Action::BackedOff)),
                _ if slot.failures > 0 => retrying.push(due(Action::Poll)),
                _ => healthy.push(due(Action::Poll)),
            }
        }
        holes.sort_by_key(|d| (d.boundary, d.device));
        holes.extend(healthy);
        holes.extend(retrying);
        holes
    }

    /// Records whether `device` answered its poll at `boundary`.
    pub fn record(&mut self, device: usize, boundary: Timestamp, answered: bool) {
        let Some(slot) = self.devices.get_mut(device) else {
            return;
        };
        if answered {
            slot.failures = 0;
            slot.retry_at = None;
        } else {
            slot.failures = slot.failures.saturating_add(1);
            let pause = backoff(slot.interval, slot.failures);
            let pause_ms = i64::try_from(pause.as_millis()).unwrap_or(i64::MAX);
            slot.retry_at = Some(Timestamp(boundary.0.saturating_add(pause_ms)));
        }
    }

    /// Failed polls in a row of `device`.
    pub fn failures(&self, device: usize) -> u32 {
        self.devices.get(device).map_or(0, |d| d.failures)
    }

    /// Boundaries missed beyond those reported one by one.
    pub fn missed_unreported(&self) -> u64 {
        self.missed_unreported
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn ts(ms: i64) -> Timestamp {
        Timestamp(ms)
    }

    #[test]
    fn boundaries_align_to_the_interval() {
        let ten = Duration::from_secs(10);
        assert_eq!(next_boundary(ts(1_000), ten), ts(10_000));
        assert_eq!(next_boundary(ts(10_000), ten), ts(20_000));
        assert_eq!(next_boundary(ts(19_999), ten), ts(20_000));
    }

    #[test]
    fn backoff_retries_at_once_then_doubles_up_to_the_cap() {
        let ten = Duration::from_secs(10);
        assert_eq!(backoff(ten, 1), Duration::ZERO);
        assert_eq!(backoff(ten, 2), Duration::from_secs(20));
        assert_eq!(backoff(ten, 3), Duration::from_secs(40));
        assert_eq!(backoff(ten, 30), MAX_BACKOFF);
        // an interval above the cap is never shortened
        let hour = Duration::from_secs(3600);
        assert_eq!(backoff(hour, 5), hour);
    }

    fn polls(due: &[Due]) -> Vec<(usize, i64, Action)> {
        due.iter()
            .map(|d| (d.device, d.boundary.0, d.action))
            .collect()
    }

    #[test]
    fn devices_come_due_on_their_own_boundaries() {
        let mut s = LineSchedule::new(&[SECOND, 2 * SECOND], ts(500));
        assert_eq!(s.next_wake(), Some(ts(1_000)));
        assert_eq!(polls(&s.take_due(ts(1_000))), [(0, 1_000, Action::Poll)]);
        assert_eq!(s.next_wake(), Some(ts(2_000)));
        assert_eq!(
            polls(&s.take_due(ts(2_003))),
            [(0, 2_000, Action::Poll), (1, 2_000, Action::Poll)]
        );
        assert_eq!(s.take_due(ts(2_900)), []);
    }

    #[test]
    fn a_failing_device_is_polled_after_the_healthy_ones_then_backed_off() {
        let mut s = LineSchedule::new(&[SECOND; 3], ts(0));
        for d in s.take_due(ts(1_000)) {
            s.record(d.device, d.boundary, d.device != 0);
        }
        // first failure: retried at the next boundary, but after devices 1 and 2
        assert_eq!(
            polls(&s.take_due(ts(2_000))),
            [
                (1, 2_000, Action::Poll),
                (2, 2_000, Action::Poll),
                (0, 2_000, Action::Poll)
            ]
        );
        s.record(0, ts(2_000), false);
        // second failure: backoff(1 s, 2) = 2 s → left alone at 3 s, retried at 4 s
        let at_3 = s.take_due(ts(3_000));
        assert_eq!(
            at_3[0],
            Due {
                device: 0,
                boundary: ts(3_000),
                action: Action::BackedOff
            }
        );
        let at_4 = polls(&s.take_due(ts(4_000)));
        assert_eq!(at_4.last(), Some(&(0, 4_000, Action::Poll)));
        s.record(0, ts(4_000), true);
        assert_eq!(s.failures(0), 0);
        assert_eq!(polls(&s.take_due(ts(5_000)))[0], (0, 5_000, Action::Poll));
    }

    #[test]
    fn boundaries_passed_while_the_line_was_busy_are_reported_missed() {
        let mut s = LineSchedule::new(&[SECOND], ts(0));
        assert_eq!(s.take_due(ts(1_000)).len(), 1);
        // the poll at 1 s took until 3.2 s: 2 s was missed, 3 s is polled late
        assert_eq!(
            polls(&s.take_due(ts(3_200))),
            [(0, 2_000, Action::Missed), (0, 3_000, Action::Poll)]
        );
        assert_eq!(s.next_wake(), Some(ts(4_000)));
    }

    #[test]
    fn a_long_stall_reports_a_bounded_number_of_holes() {
        let mut s = LineSchedule::new(&[SECOND], ts(0));
        // 1 s .. 1000 s: 999 boundaries missed before 1000 s, 60 reported
        let due = s.take_due(ts(1_000_000));
        assert_eq!(
            due.iter().filter(|d| d.action == Action::Missed).count(),
            60
        );
        assert_eq!(s.missed_unreported(), 999 - 60);
        assert_eq!(due.last().map(|d| d.boundary), Some(ts(1_000_000)));
    }
}
