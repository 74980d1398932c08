//! How a forwarder learns it should stop: the daemon's stop flag, or the daemon gone.

use std::time::Duration;

use tokio::sync::watch;

pub fn stop_requested(shutdown: &watch::Receiver<bool>) -> bool {
    *shutdown.borrow() || shutdown.has_changed().is_err()
}

/// Waits `delay`; true if a stop was requested meanwhile (or before).
pub async fn pause(delay: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    if stop_requested(shutdown) {
        return true;
    }
    tokio::select! {
        () = tokio::time::sleep(delay) => stop_requested(shutdown),
        changed = shutdown.changed() => changed.is_err() || *shutdown.borrow(),
    }
}
