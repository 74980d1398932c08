//! Bounded waits and the wall clock.
// benches/mqtt_ingest.rs also mounts this file on its own (as `common`, beside the whole
// tree) and uses none of it there.
#![allow(dead_code, clippy::duplicate_mod)]

use std::time::{Duration, Instant};

/// Waits until `done` holds, checking every 100 ms for at most `limit`.
pub fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
