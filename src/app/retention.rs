//! Applies the store's retention and disk budget while the daemon runs: every ten minutes,
//! in bounded steps that let commits through between them. Its first round also finishes
//! counting the rows of a store from before the row counter, in the same kind of steps.

use std::time::Duration;

use tokio::sync::watch;

use crate::config::byte_size::ByteSize;
use crate::model::time::now;
use crate::ops::metrics;
use crate::store::{StoreHandle, COUNT_STEP_SEQS};

/// How often retention runs; the first time a few seconds after start, once the collectors run.
const EVERY: Duration = Duration::from_secs(600);
const FIRST_AFTER: Duration = Duration::from_secs(5);
/// Rows one step deletes: about a tenth of a second of the writer's time.
const STEP_ROWS: usize = 20_000;

/// The budget when `[store] max_size` is not set: half of the file system the store lies on
/// (or will, once its folder is made).
pub fn default_budget(store: &std::path::Path) -> Option<ByteSize> {
    let stats = store.ancestors().skip(1).find_map(|dir| {
        let dir = if dir.as_os_str().is_empty() {
            std::path::Path::new(".")
        } else {
            dir
        };
        nix::sys::statvfs::statvfs(dir).ok()
    })?;
    let total = stats.blocks().saturating_mul(stats.fragment_size());
    (total > 0).then_some(ByteSize(total / 2))
}

/// Counts, in steps between commits, the rows a store from before the row counter held
/// (nothing to do on any other store); `/metrics` reports the count once it is whole.
async fn count_rows(store: &StoreHandle, stop: &watch::Receiver<bool>) {
    let started = std::time::Instant::now();
    let mut steps = 0u64;
    loop {
        steps += 1;
        match store.count_step(COUNT_STEP_SEQS).await {
            Ok(true) if !*stop.borrow() => tokio::task::yield_now().await,
            Ok(more) => {
                if steps > 1 || more {
                    tracing::info!(
                        seconds = started.elapsed().as_secs_f64(),
                        finished = !more,
                        "counted the rows a store from an older version held"
                    );
                }
                return;
            }
            Err(e) => {
                tracing::warn!("counting the store's rows: {e}; the row count stays unknown");
                return;
            }
        }
    }
}

/// Runs until `stop` turns true. `retention` is only for the warning that the budget keeps
/// less history than the retention asks for.
pub async fn run(
    store: StoreHandle,
    budget: Option<ByteSize>,
    retention: Option<Duration>,
    mut stop: watch::Receiver<bool>,
) {
    let mut wait = FIRST_AFTER;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        if wait == FIRST_AFTER {
            count_rows(&store, &stop).await;
        }
        wait = EVERY;
        let (mut by_age, mut by_size, mut size_cutoff) = (0, 0, None);
        loop {
            let step = match store.prune_step(now(), STEP_ROWS).await {
                Ok(step) => step,
                Err(e) => {
                    tracing::warn!(
                        "retention: {e}; trying again in {}",
                        humantime::format_duration(EVERY)
                    );
                    metrics::count_prune_failure();
                    break;
                }
            };
            by_age += step.by_age;
            by_size += step.by_size;
            size_cutoff = step.size_cutoff.or(size_cutoff);
            metrics::count_pruned(step.by_age as u64, step.by_size as u64);
            if !step.more || step.by_age + step.by_size == 0 || *stop.borrow() {
                break;
            }
            // let the collectors' commits through
            tokio::task::yield_now().await;
        }
        if by_age + by_size > 0 {
            tracing::info!(by_age, by_size, "retention deleted records every sink has");
        }
        if let (Some(cutoff), Some(retention)) = (size_cutoff, retention) {
            let kept = Duration::from_millis(
                u64::try_from(now().millis().saturating_sub(cutoff.millis())).unwrap_or(0),
            );
            if kept < retention {
                tracing::warn!(
                    "the store's budget ({}) holds only {:.1} days of readings, less than the retention of {}: set [store] max_size higher, or the retention lower",
                    budget.map_or_else(|| "?".to_string(), |b| b.to_string()),
                    kept.as_secs_f64() / 86_400.0,
                    humantime::format_duration(retention)
                );
            }
        }
        if let Some(budget) = budget {
            match store.call(|s| s.used_bytes()).await {
                Ok(Ok(used)) if used > budget.0 && by_size == 0 => tracing::warn!(
                    "the store uses {} of its {budget} budget and holds nothing every sink has taken to delete; a sink that does not deliver keeps it growing",
                    ByteSize(used)
                ),
                _ => {}
            }
        }
    }
}
