//! Helpers shared by the integration tests that run the `cemsd` binary.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cemsd::store::{Query, RecordKind, Store, StoreOptions, Stored};

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// Starts `cemsd run --config CONFIG` with its output discarded.
pub fn start_daemon(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_cemsd"))
        .args(["run", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start cemsd: {e}"))
}

/// Sends SIGTERM and returns the exit code.
pub fn terminate(child: &mut Child) -> Option<i32> {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap_or_else(|e| panic!("kill: {e}"));
    assert!(status.success(), "kill -TERM failed");
    child.wait().ok().and_then(|s| s.code())
}

/// Every reading of `device`, oldest first.
pub fn readings(store: &Store, device: &str) -> Vec<Stored> {
    store
        .query(&Query {
            kind: Some(RecordKind::Reading),
            device: Some(device.into()),
            ..Query::default()
        })
        .unwrap_or_else(|e| panic!("query: {e}"))
}

/// Polls the store at `db` until `done` says so, for at most 30 s; false on time-out.
pub fn wait_for(db: &Path, mut done: impl FnMut(&Store) -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        if let Ok(store) = Store::open(db, StoreOptions::default()) {
            if done(&store) {
                return true;
            }
        }
    }
    false
}
