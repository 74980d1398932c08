//! When a sink's backlog deserves a warning. The store is bounded only by the disk, so a
//! long outage is survivable, but someone should hear about it while it grows.

/// Says when the backlog crosses the warning threshold and when it is back under half of
/// it; the gap between the two keeps a backlog hovering at the threshold from flooding logs.
#[derive(Debug, Clone)]
pub struct BacklogMonitor {
    threshold: u64,
    warning: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BacklogChange {
    Exceeded,
    Recovered,
}

impl BacklogMonitor {
    pub fn new(threshold: u64) -> BacklogMonitor {
        BacklogMonitor {
            threshold,
            warning: false,
        }
    }

    /// Feeds the current backlog (records not yet delivered).
    pub fn observe(&mut self, backlog: u64) -> Option<BacklogChange> {
        if !self.warning && backlog > self.threshold {
            self.warning = true;
            return Some(BacklogChange::Exceeded);
        }
        if self.warning && backlog <= self.threshold / 2 {
            self.warning = false;
            return Some(BacklogChange::Recovered);
        }
        None
    }

    pub fn is_warning(&self) -> bool {
        self.warning
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_once_when_crossing_and_recovers_under_half() {
        let mut m = BacklogMonitor::new(100);
        let seen: Vec<Option<BacklogChange>> = [0, 100, 101, 500, 90, 51, 50, 49, 101]
            .into_iter()
            .map(|b| m.observe(b))
            .collect();
        use BacklogChange::*;
        assert_eq!(
            seen,
            vec![
                None,           // 0
                None,           // 100 is not above 100
                Some(Exceeded), // 101
                None,           // 500: still warning, no repeat
                None,           // 90: under the threshold but above half (50)
                None,           // 51
                Some(Recovered),
                None,
                Some(Exceeded),
            ]
        );
        assert!(m.is_warning());
    }
}
