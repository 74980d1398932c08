//! Connections open per source address, capped so one host (2,000 idle sockets from one
//! address) cannot take every slot of the listener and lock the other loggers out. The table
//! holds only addresses with a connection open, so it never outgrows `max_connections`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

pub struct PerSource {
    limit: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One open connection of an address; dropping it frees the slot.
pub struct SourceSlot {
    source: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerSource {
    pub fn new(limit: usize) -> PerSource {
        PerSource {
            limit,
            open: Arc::default(),
        }
    }

    /// A slot for `source`, or `None` when it has `limit` connections open already.
    pub fn try_acquire(&self, source: IpAddr) -> Option<SourceSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(source).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(SourceSlot {
            source,
            open: self.open.clone(),
        })
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.source) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_at_most_its_limit_and_frees_slots_on_close() {
        let per_source = PerSource::new(2);
        let a = IpAddr::from([192, 0, 2, 1]);
        let b = IpAddr::from([192, 0, 2, 2]);
        let first = per_source.try_acquire(a);
        let second = per_source.try_acquire(a);
        assert!(first.is_some() && second.is_some());
        assert!(per_source.try_acquire(a).is_none());
        assert!(per_source.try_acquire(b).is_some());
        drop(first);
        assert!(per_source.try_acquire(a).is_some());
        drop(second);
        let open = per_source.open.lock().unwrap_or_else(|e| e.into_inner());
        assert!(open.is_empty(), "{open:?}");
    }
}
