//! Child processes the tests start: signalled with kill(1), killed and reaped on drop so a
//! failing test leaves nothing running.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Sends signal `name` (e.g. "TERM", "KILL", "HUP") to `child`.
pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap_or_else(|e| panic!("kill: {e}"));
    assert!(status.success(), "kill -{name} failed");
}

/// A child process that is SIGKILLed and reaped when dropped.
pub struct Owned(Child);

impl Owned {
    /// Spawns `command`; `what` names it when that fails.
    pub fn spawn(command: &mut Command, what: &str) -> Owned {
        Owned(
            command
                .spawn()
                .unwrap_or_else(|e| panic!("start {what}: {e}")),
        )
    }

    pub fn child(&self) -> &Child {
        &self.0
    }

    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.0
    }

    pub fn signal(&self, name: &str) {
        signal(&self.0, name);
    }

    /// Sends `name` and waits for the process to end.
    pub fn stop(&mut self, name: &str) {
        self.signal(name);
        let _ = self.0.wait();
    }

    /// Waits for the process to end, at most `limit`: its exit code and how long it took,
    /// or None if it still runs.
    pub fn wait_within(&mut self, limit: Duration) -> Option<(Option<i32>, Duration)> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some((status.code(), start.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
