//! The Modbus collectors in process: started from a site config, run for a while, their
//! samples gathered.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cemsd::collect::modbus::start::start;
use cemsd::config;
use cemsd::model::Sample;
use cemsd::pipeline::live::Live;
use tokio::sync::{mpsc, watch};

/// What a run of the collectors produced.
pub struct Run {
    pub samples: Vec<Sample>,
    pub live: Arc<Live>,
    pub dir: PathBuf,
}

impl Run {
    pub fn of(&self, device: &str, channel: &str) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| &*s.device == device && &*s.channel == channel)
            .collect()
    }
}

/// Writes `config` into `dir`, starts the collectors it describes, runs them for `duration`
/// and stops them (joining capture writers, so their files are complete).
pub async fn run_collectors(dir: &Path, config: &str, duration: Duration) -> Run {
    let path = dir.join("site.toml");
    std::fs::write(&path, config).unwrap_or_else(|e| panic!("write config: {e}"));
    let loaded = config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let live = Live::new();
    let (tx, mut rx) = mpsc::channel(1024);
    let (stop, stopped) = watch::channel(false);
    let collectors = start(
        &path,
        &loaded.config,
        &loaded.profiles,
        loaded.config.site.utc_offset.to_chrono(),
        &tx,
        &stopped,
        &live,
    )
    .unwrap_or_else(|e| panic!("start: {e}"));
    drop(tx);
    let mut samples = Vec::new();
    let deadline = tokio::time::Instant::now() + duration;
    while let Ok(Some(batch)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        samples.extend(batch.samples);
    }
    let _ = stop.send(true);
    let mut tasks = collectors.tasks;
    while tasks.join_next().await.is_some() {}
    while let Ok(batch) = rx.try_recv() {
        samples.extend(batch.samples);
    }
    for capture in collectors.captures {
        let _ = tokio::task::spawn_blocking(move || capture.join()).await;
    }
    Run {
        samples,
        live,
        dir: dir.to_path_buf(),
    }
}
