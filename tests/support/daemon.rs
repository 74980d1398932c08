//! `cemsd run` as a child process, the one way the tests start the daemon: a config file,
//! stderr captured in a log file the test can read, signals, bounded waits, a systemd-style
//! notify socket, and a kill when the test ends early.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::process::Owned;

/// How long `terminate` waits for the daemon to exit after SIGTERM.
const STOP_LIMIT: Duration = Duration::from_secs(60);

/// Writes `text` as `dir/name`, a config file for `Daemon::start`.
pub fn write_config(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write config: {e}"));
    path
}

/// A running `cemsd run` whose stderr goes to a file; killed if still running when dropped.
pub struct Daemon {
    process: Owned,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts the daemon on `config` with its log in `dir/cemsd.log` and `env` added to its
    /// environment.
    pub fn start(config: &Path, dir: &Path, env: &[(&str, String)]) -> Daemon {
        Daemon::start_logged(config, &dir.join("cemsd.log"), env)
    }

    /// As `start`, with the log at `log`: for several daemons or runs in one directory.
    pub fn start_logged(config: &Path, log: &Path, env: &[(&str, String)]) -> Daemon {
        Daemon::spawn(Command::new(env!("CARGO_BIN_EXE_cemsd")), config, log, env)
    }

    /// As `start`, inside network namespace `namespace` (`ip netns exec`, which runs the
    /// daemon as the same process, so its PID is the daemon's).
    pub fn start_in_namespace(
        namespace: &str,
        config: &Path,
        dir: &Path,
        env: &[(&str, String)],
    ) -> Daemon {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", namespace, env!("CARGO_BIN_EXE_cemsd")]);
        Daemon::spawn(command, config, &dir.join("cemsd.log"), env)
    }

    fn spawn(mut command: Command, config: &Path, log: &Path, env: &[(&str, String)]) -> Daemon {
        let file = std::fs::File::create(log).unwrap_or_else(|e| panic!("log file: {e}"));
        command
            .args(["run", "--config"])
            .arg(config)
            // Not under systemd, and logging at the default level in the human format,
            // whatever the environment of the test run; `env` may set any of these.
            .env_remove("JOURNAL_STREAM")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .env_remove("CEMSD_LOG_FORMAT")
            .env("CEMSD_LOG", "info")
            .stdout(Stdio::null())
            .stderr(file);
        for (k, v) in env {
            command.env(k, v);
        }
        Daemon {
            process: Owned::spawn(&mut command, "cemsd"),
            log: log.to_path_buf(),
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn id(&self) -> u32 {
        self.process.child().id()
    }

    /// Sends signal `name` ("TERM", "KILL", "HUP").
    pub fn signal(&self, name: &str) {
        self.process.signal(name);
    }

    /// Whether the process has ended.
    pub fn exited(&mut self) -> bool {
        matches!(self.process.child_mut().try_wait(), Ok(Some(_)))
    }

    /// Waits for the process to end, at most `limit`; returns its exit code and how long it
    /// took, or kills it and fails.
    pub fn wait_exit(&mut self, limit: Duration) -> (Option<i32>, Duration) {
        match self.process.wait_within(limit) {
            Some(ended) => ended,
            None => {
                let _ = self.process.child_mut().kill();
                let _ = self.process.child_mut().wait();
                panic!("cemsd did not exit within {limit:?}:\n{}", self.log_text());
            }
        }
    }

    /// SIGTERM, then the exit code (waiting at most a minute).
    pub fn terminate(&mut self) -> Option<i32> {
        self.signal("TERM");
        self.wait_exit(STOP_LIMIT).0
    }

    /// SIGTERM, then an exit 0 within `limit`, else the test fails with the log.
    pub fn stop(&mut self, limit: Duration) {
        self.signal("TERM");
        let (code, _) = self.wait_exit(limit);
        assert_eq!(code, Some(0), "{}", self.log_text());
    }

    /// SIGKILL, and the process reaped.
    pub fn kill(&mut self) {
        self.signal("KILL");
        let _ = self.wait_exit(Duration::from_secs(10));
    }
}

/// A systemd-style notify socket: the daemon sends datagrams like "READY=1\nSTATUS=…\n".
pub struct NotifySocket {
    socket: UnixDatagram,
    pub path: PathBuf,
    pub received: Vec<String>,
}

impl NotifySocket {
    pub fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap_or_else(|e| panic!("notify socket: {e}"));
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap_or_else(|e| panic!("socket timeout: {e}"));
        NotifySocket {
            socket,
            path,
            received: Vec::new(),
        }
    }

    /// Reads every datagram that arrived so far.
    pub fn drain(&mut self) {
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.socket.recv(&mut buf) {
            self.received
                .push(String::from_utf8_lossy(&buf[..n]).to_string());
        }
    }

    /// Number of datagrams so far with a line equal to `line`.
    pub fn count(&mut self, line: &str) -> usize {
        self.drain();
        self.received
            .iter()
            .filter(|m| m.lines().any(|l| l == line))
            .count()
    }
}
