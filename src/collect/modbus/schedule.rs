//! When each device on a line (a serial bus, or one connection to a TCP endpoint) is polled:
//! on wall-clock boundaries, healthy devices first, failing ones after them. A failing
//! device is still polled (probed) at every boundary, so an analyser that answers again is
//! read at the first boundary after it does; the probe comes after the others have been
//! read and is skipped only when its timeout would run into another device's next poll, for
//! no longer than its backoff step. Failures are logged at doubling counts, then every five
//! minutes. Pure: the caller passes the time, so the same rules hold in tests, replays and
//! live.

use std::time::Duration;

use crate::model::Timestamp;

/// Longest pause between two failure log lines of a device that keeps failing, and the
/// longest a probe of it is put off because it would delay the others.
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

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// After `failures` failed polls in a row, the backoff step: nothing after the first
/// failure, then doubling up to [`MAX_BACKOFF`] (or one interval, if that is longer). It no
/// longer keeps a device from being polled: it is the longest a probe is put off for lack of
/// time on a busy line.
pub fn backoff(interval: Duration, failures: u32) -> Duration {
    if failures <= 1 {
        return Duration::ZERO;
    }
    let factor = 1u32 << (failures - 1).min(16);
    interval
        .saturating_mul(factor)
        .min(MAX_BACKOFF.max(interval))
}

/// Whether the `failures`-th failure in a row is logged: the 1st, 2nd, 4th, 8th … and then
/// one every [`MAX_BACKOFF`], so a dead analyser polled every second writes a line every
/// five minutes, not every second.
pub fn log_failure(interval: Duration, failures: u32) -> bool {
    let per_cap = u32::try_from(MAX_BACKOFF.as_millis() / interval.as_millis().max(1))
        .unwrap_or(u32::MAX)
        .max(1);
    failures.is_power_of_two() && failures <= per_cap || failures % per_cap == 0
}

/// What to do for one device at one boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read the device (a failing one is probed if [`LineSchedule::probe_fits`]).
    Poll,
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
    /// When a failing device was last actually polled.
    last_probe: Option<Timestamp>,
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
                    last_probe: None,
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
    /// then healthy devices, then probes of failing devices, the one probed longest ago
    /// first — so a dead device's timeout comes after the others have been read, not
    /// before. Each device's next due time moves to its next boundary.
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
            if slot.failures > 0 {
                retrying.push((slot.last_probe, due(Action::Poll)));
            } else {
                healthy.push(due(Action::Poll));
            }
        }
        holes.sort_by_key(|d| (d.boundary, d.device));
        holes.extend(healthy);
        retrying.sort_by_key(|(last, d)| (*last, d.device));
        holes.extend(retrying.into_iter().map(|(_, d)| d));
        holes
    }

    /// Whether a probe of failing `device` that may take `cost` from `now` is made: when it
    /// ends before the next poll of any device that is not failing, or when the device has
    /// gone unprobed for its backoff step already (a busy line then pays one timeout, as a
    /// line that never probed would never see the device return). A device that is not
    /// failing is always polled.
    pub fn probe_fits(&self, device: usize, now: Timestamp, cost: Duration) -> bool {
        let Some(slot) = self.devices.get(device) else {
            return false;
        };
        if slot.failures == 0 {
            return true;
        }
        let ends = Timestamp(now.0.saturating_add(millis(cost)));
        let next_other = self
            .devices
            .iter()
            .enumerate()
            .filter(|(i, d)| *i != device && d.failures == 0)
            .map(|(_, d)| d.due)
            .min();
        let fits = next_other.is_none_or(|due| ends <= due);
        let waited = slot.last_probe.is_none_or(|at| {
            now.0.saturating_sub(at.0) >= millis(backoff(slot.interval, slot.failures))
        });
        fits || waited
    }

    /// Records whether `device` answered its poll at `boundary`.
    pub fn record(&mut self, device: usize, boundary: Timestamp, answered: bool) {
        let Some(slot) = self.devices.get_mut(device) else {
            return;
        };
        if answered {
            slot.failures = 0;
            slot.last_probe = None;
        } else {
            slot.failures = slot.failures.saturating_add(1);
            slot.last_probe = Some(boundary);
        }
    }

    /// Whether the failure just recorded for `device` is one to log (see [`log_failure`]).
    pub fn log_failure(&self, device: usize) -> bool {
        self.devices
            .get(device)
            .is_some_and(|d| d.failures > 0 && log_failure(d.interval, d.failures))
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
    fn a_failing_device_is_probed_after_the_healthy_ones_at_every_boundary() {
        let mut s = LineSchedule::new(&[SECOND; 3], ts(0));
        for d in s.take_due(ts(1_000)) {
            s.record(d.device, d.boundary, d.device != 0);
        }
        for at in [2_000, 3_000, 4_000, 5_000] {
            // still failing: polled at every boundary, after devices 1 and 2
            assert_eq!(
                polls(&s.take_due(ts(at))),
                [
                    (1, at, Action::Poll),
                    (2, at, Action::Poll),
                    (0, at, Action::Poll)
                ]
            );
            s.record(1, ts(at), true);
            s.record(2, ts(at), true);
            s.record(0, ts(at), at == 5_000);
        }
        // it answered at 5 s: healthy again, first in line
        assert_eq!(s.failures(0), 0);
        assert_eq!(polls(&s.take_due(ts(6_000)))[0], (0, 6_000, Action::Poll));
    }

    #[test]
    fn a_probe_that_would_delay_another_device_waits_its_backoff_at_most() {
        // device 0 (1 s) is dead with a 300 ms timeout; device 1 polls every 1 s too
        let mut s = LineSchedule::new(&[SECOND, SECOND], ts(0));
        s.take_due(ts(1_000));
        s.record(0, ts(1_000), false);
        s.record(1, ts(1_000), true);
        s.take_due(ts(2_000));
        // device 1 was read by 2.1 s: the probe ends at 2.4 s, before its next poll at 3 s
        assert!(s.probe_fits(0, ts(2_100), 3 * SECOND / 10));
        s.record(0, ts(2_000), false);
        s.take_due(ts(3_000));
        // at 3.8 s it would end at 4.1 s, after device 1's next poll: put off, as the last
        // probe (2 s) is less than the backoff step after two failures (2 s) ago
        assert_eq!(backoff(SECOND, 2), 2 * SECOND);
        assert!(!s.probe_fits(0, ts(3_800), 3 * SECOND / 10));
        s.take_due(ts(4_000));
        // two seconds since the probe at 2 s: made even though it runs into device 1's poll
        assert!(s.probe_fits(0, ts(4_800), 3 * SECOND / 10));
        // a line of failing devices only has no one to delay
        let mut dead = LineSchedule::new(&[SECOND, SECOND], ts(0));
        dead.take_due(ts(1_000));
        dead.record(0, ts(1_000), false);
        dead.record(1, ts(1_000), false);
        dead.take_due(ts(2_000));
        assert!(dead.probe_fits(0, ts(2_900), 10 * SECOND));
    }

    #[test]
    fn failures_are_logged_at_doubling_counts_then_every_five_minutes() {
        let logged: Vec<u32> = (1..=700).filter(|&n| log_failure(SECOND, n)).collect();
        assert_eq!(logged, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 600]);
        let ten = Duration::from_secs(10);
        let logged: Vec<u32> = (1..=100).filter(|&n| log_failure(ten, n)).collect();
        assert_eq!(logged, [1, 2, 4, 8, 16, 30, 60, 90]);
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
