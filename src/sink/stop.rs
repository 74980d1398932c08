//! How a forwarder learns it should stop (the daemon's stop flag, or the daemon gone), and
//! how the daemon waits for its forwarders to finish.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

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

/// Waits up to `limit` for every task of `tasks` to end after the shutdown signal, then aborts
/// the ones that hang; `what` names them in the warning.
pub async fn join_within(tasks: &mut JoinSet<()>, limit: Duration, what: &str) {
    let joined =
        tokio::time::timeout(limit, async { while tasks.join_next().await.is_some() {} }).await;
    if joined.is_err() {
        tracing::warn!("{what} did not stop within {limit:?}; aborting them");
        tasks.abort_all();
    }
}
