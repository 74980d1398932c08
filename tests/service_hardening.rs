//! `cemsd run` as a bureau's sysadmin meets it: one daemon per store, exit codes that tell a
//! service manager whether a restart can help, an open-files limit checked against the
//! listener, `Host` checked on the status server, and a full disk that leaves the daemon
//! alive (watchdog fed, `/health` 503) until space returns.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::daemon::{write_config, Daemon, NotifySocket};
use support::http::{http_get, http_get_as, metric, scrape};
use support::ports::free_port;
use support::store::try_open;
use support::time::eventually;

use cemsd::store::{Query, RecordKind};

/// Exit codes the unit names in `RestartPreventExitStatus=`.
const EXIT_CONFIG: i32 = 2;
const EXIT_STORE: i32 = 3;

/// A site with `devices` simulated analysers polled every 100 ms, the store at `store`, and
/// `extra` appended.
fn site(store: &str, http_port: Option<u16>, devices: usize, extra: &str) -> String {
    let http = http_port
        .map(|p| {
            format!(
                "[http]\nlisten = \"127.0.0.1:{p}\"\nallowed_hosts = [\"cems-gw.plant.local\"]\n\n"
            )
        })
        .unwrap_or_default();
    let mut text = format!(
        "[site]\nid = \"hardening\"\n\n{http}[store]\npath = \"{store}\"\n\n[[stack]]\nid = \"unit1\"\n\n"
    );
    for i in 0..devices {
        let port = free_port();
        text += &format!(
            "[[simulate]]\nprofile = \"thermo-43i\"\nlisten = \"127.0.0.1:{port}\"\nseed = {i}\n\n\
             [[device]]\nid = \"so2-{i}\"\nprofile = \"thermo-43i\"\nstack = \"unit1\"\ntransport = \"tcp\"\n\
             address = \"127.0.0.1:{port}\"\npoll_interval = \"100ms\"\ntimeout = \"50ms\"\n\n"
        );
    }
    text + extra
}

/// Runs `cemsd run` on `config` to its end; its exit code and log.
fn run_to_exit(config: &Path, log: &Path) -> (Option<i32>, String) {
    let mut daemon = Daemon::start_logged(config, log, &[]);
    let (code, _) = daemon.wait_exit(Duration::from_secs(30));
    (code, daemon.log_text())
}

#[test]
fn a_second_daemon_on_the_same_store_exits_3_naming_the_first() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let config = write_config(dir.path(), "site.toml", &site("data/cemsd.db", None, 1, ""));
    let db = dir.path().join("data/cemsd.db");
    let mut first = Daemon::start_logged(&config, &dir.path().join("first.log"), &[]);
    assert!(
        eventually(Duration::from_secs(30), || try_open(&db)
            .and_then(|s| s.count().ok().flatten())
            .is_some_and(|n| n > 0)),
        "the first daemon stored nothing:\n{}",
        first.log_text()
    );
    let (code, log) = run_to_exit(&config, &dir.path().join("second.log"));
    assert_eq!(code, Some(EXIT_STORE), "{log}");
    assert!(
        log.contains(&format!(
            "another cemsd (PID {}) runs on this store",
            first.id()
        )),
        "{log}"
    );
    assert!(!first.exited(), "the first daemon must keep running");
    let lock = std::fs::read_to_string(dir.path().join("data/cemsd.db.lock")).unwrap_or_default();
    assert_eq!(lock.trim(), first.id().to_string());
    first.stop(Duration::from_secs(20));
    // once it is gone, the store is free again
    let mut again = Daemon::start_logged(&config, &dir.path().join("again.log"), &[]);
    let before = try_open(&db)
        .and_then(|s| s.count().ok().flatten())
        .unwrap_or(0);
    assert!(
        eventually(Duration::from_secs(30), || try_open(&db)
            .and_then(|s| s.count().ok().flatten())
            .is_some_and(|n| n > before)),
        "{}",
        again.log_text()
    );
    again.stop(Duration::from_secs(20));
}

#[test]
fn secrets_exit_2_unusable_stores_exit_3_and_passing_failures_exit_1() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let influx = |token_file: &str| {
        format!("[[influx]]\nid = \"main\"\nurl = \"http://127.0.0.1:9\"\nbucket = \"cems\"\ntoken_file = \"{token_file}\"\n")
    };
    let case = |name: &str, text: String| {
        let config = write_config(dir.path(), &format!("{name}.toml"), &text);
        run_to_exit(&config, &dir.path().join(format!("{name}.log")))
    };

    let (code, log) = case(
        "missing-secret",
        site("missing.db", None, 1, &influx("influx.token")),
    );
    assert_eq!(code, Some(EXIT_CONFIG), "{log}");
    assert!(
        log.contains("influx.token: cannot read the secret"),
        "{log}"
    );

    std::fs::create_dir(dir.path().join("token-dir")).unwrap_or_else(|e| panic!("mkdir: {e}"));
    let (code, log) = case(
        "unreadable-secret",
        site("dir.db", None, 1, &influx("token-dir")),
    );
    assert_eq!(code, Some(EXIT_CONFIG), "{log}");
    assert!(log.contains("token-dir: cannot read the secret"), "{log}");

    std::fs::write(dir.path().join("corrupt.db"), vec![0x5a; 8192])
        .unwrap_or_else(|e| panic!("write: {e}"));
    let (code, log) = case("corrupt-store", site("corrupt.db", None, 1, ""));
    assert_eq!(code, Some(EXIT_STORE), "{log}");
    assert!(log.contains("corrupt.db: cannot open the store"), "{log}");

    // A port another program holds may be free after a restart: 1, restarted.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let port = taken.local_addr().map_or(0, |a| a.port());
    let (code, log) = case("port-taken", site("port.db", Some(port), 1, ""));
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("cannot serve http"), "{log}");

    match TmpfsMount::new(&dir.path().join("ro"), "1m") {
        None => eprintln!(
            "skipped the read-only store: mounting a file system needs root (uid {})",
            uid()
        ),
        Some(mount) => {
            let db = mount.path.join("cemsd.db");
            let config = write_config(
                dir.path(),
                "ro.toml",
                &site(&db.display().to_string(), None, 1, ""),
            );
            assert!(try_open(&db).is_some(), "cannot create {}", db.display());
            mount.remount_read_only();
            let (code, log) = run_to_exit(&config, &dir.path().join("ro.log"));
            assert_eq!(code, Some(EXIT_STORE), "{log}");
            assert!(log.contains("Read-only file system"), "{log}");
        }
    }
}

#[test]
fn a_listener_the_open_files_limit_cannot_hold_is_refused_at_its_line_and_a_soft_limit_is_raised() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    std::fs::write(dir.path().join("plant.pw"), "pw-1\n").unwrap_or_else(|e| panic!("{e}"));
    let text = format!(
        "[site]\nid = \"bureau\"\n\n[store]\npath = \"data/cemsd.db\"\n\n[hj212_listener]\nlisten = \"127.0.0.1:{}\"\nmax_connections = 2000\n\n[[hj212_listener.device]]\nmn = \"MN0001\"\npassword = {{ file = \"plant.pw\" }}\nstack = \"plant.unit1\"\n",
        free_port()
    );
    let config = write_config(dir.path(), "bureau.toml", &text);
    let cemsd = |nofile: &str, command: &str| {
        Command::new("prlimit")
            .arg(format!("--nofile={nofile}"))
            .arg(env!("CARGO_BIN_EXE_cemsd"))
            .args([command, "--config"])
            .arg(&config)
            .env_remove("INVOCATION_ID")
            .output()
            .unwrap_or_else(|e| panic!("prlimit: {e}"))
    };
    // systemd's default without LimitNOFILE: 1024 files, soft and hard
    for command in ["check", "run"] {
        let out = cemsd("1024:1024", command);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(EXIT_CONFIG), "{command}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "{}:9:19: hj212_listener.max_connections: max_connections = 2000 needs 2064 open files",
                config.display()
            )),
            "{command}: {stderr}"
        );
        assert!(stderr.contains("at most 960"), "{stderr}");
    }
    // a soft limit of 1024 under a higher hard one is raised: the check passes
    let hard = hard_open_files_limit();
    if hard < 2064 {
        eprintln!("skipped raising the soft limit: this process's hard limit is {hard}");
        return;
    }
    let out = cemsd(&format!("1024:{hard}"), "check");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The hard open-files limit of this process, from /proc/self/limits.
fn hard_open_files_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4))
        .and_then(|hard| hard.parse().ok())
        .unwrap_or(0)
}

#[test]
fn requests_naming_another_host_are_refused_with_421() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let http = free_port();
    let config = write_config(
        dir.path(),
        "site.toml",
        &site("data/cemsd.db", Some(http), 1, ""),
    );
    let mut daemon = Daemon::start(&config, dir.path(), &[]);
    assert!(
        eventually(Duration::from_secs(30), || http_get(http, "/health")
            .is_some()),
        "{}",
        daemon.log_text()
    );
    let local = format!("127.0.0.1:{http}");
    for host in [local.as_str(), "localhost", "cems-gw.plant.local"] {
        assert_eq!(
            http_get_as(http, "/api/status", host).map(|(code, _)| code),
            Some(200),
            "{host}"
        );
    }
    let rebound = format!("attacker.example:{http}");
    for host in [rebound.as_str(), "127.0.0.1.nip.io", "[::1]"] {
        for path in ["/api/status", "/metrics", "/"] {
            assert_eq!(
                http_get_as(http, path, host).map(|(code, _)| code),
                Some(421),
                "{host} {path}"
            );
        }
    }
    let refused = metric(&scrape(http), "cemsd_http_host_refused_total", &[]);
    assert_eq!(refused, Some(9.0));
    daemon.stop(Duration::from_secs(20));
}

#[test]
fn a_full_disk_keeps_the_watchdog_fed_health_at_503_and_polls_going_into_the_spill() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let Some(disk) = TmpfsMount::new(&dir.path().join("disk"), "6m") else {
        eprintln!(
            "skipped: a full disk is made with a size-limited tmpfs, and mounting one needs root (uid {})",
            uid()
        );
        return;
    };
    let http = free_port();
    let db = disk.path.join("cemsd.db");
    let config = write_config(
        dir.path(),
        "site.toml",
        &site(
            &db.display().to_string(),
            Some(http),
            8,
            "[ingest]\nspill_records = 5000\n",
        ),
    );
    let mut notify = NotifySocket::bind(dir.path());
    // 20 s: the pipeline retries a refused commit at least every 10 s
    let mut daemon = Daemon::start(
        &config,
        dir.path(),
        &[
            ("NOTIFY_SOCKET", notify.path.display().to_string()),
            ("WATCHDOG_USEC", "20000000".to_string()),
        ],
    );
    let count = || {
        try_open(&db)
            .and_then(|s| s.count().ok().flatten())
            .unwrap_or(0)
    };
    assert!(
        eventually(Duration::from_secs(30), || count() > 100),
        "{}",
        daemon.log_text()
    );

    let stored_before = count();
    let filler = disk.fill();
    let mut health = None;
    let failing = eventually(Duration::from_secs(90), || {
        notify.drain();
        health = http_get(http, "/health");
        health
            .as_ref()
            .is_some_and(|(code, body)| *code == 503 && body.contains(r#""status":"failing""#))
    });
    assert!(failing, "/health: {health:?}\n{}", daemon.log_text());
    let polls = || {
        let scraped = scrape(http);
        scraped
            .samples
            .iter()
            .filter(|s| s.metric == "cemsd_polls_total")
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) => v,
                _ => 0.0,
            })
            .sum::<f64>()
    };
    // The collectors go on polling into the spill: 8 devices at 10 polls a second, one
    // reading each, far past the 1,024 polls the queue before the pipeline holds
    let polls_failing = polls();
    // (the notify socket is read meanwhile: it queues only 10 datagrams)
    let spilling = eventually(Duration::from_secs(60), || {
        notify.drain();
        polls() > polls_failing + 3000.0
    });
    assert!(
        spilling,
        "polls stopped at {} while the disk was full\n{}",
        polls() - polls_failing,
        daemon.log_text()
    );
    // Once the spill (5,000 records) is full the collectors wait: no poll ends any more.
    let mut last = polls();
    let held = eventually(Duration::from_secs(120), || {
        notify.drain();
        std::thread::sleep(Duration::from_secs(2));
        let now = polls();
        let still = now == last;
        last = now;
        still
    });
    assert!(held, "polls never stopped: {last}\n{}", daemon.log_text());
    // Past the 20 s stall limit, the watchdog still gets its pings every 10 s.
    let pings = notify.count("WATCHDOG=1");
    let fed = eventually(Duration::from_secs(60), || {
        notify.count("WATCHDOG=1") >= pings + 4
    });
    assert!(
        fed,
        "{} pings after the disk filled: {:?}\n{}",
        notify.count("WATCHDOG=1") - pings,
        notify.received.last(),
        daemon.log_text()
    );
    assert!(!daemon.exited());

    std::fs::remove_file(&filler).unwrap_or_else(|e| panic!("free the disk: {e}"));
    // every poll made while the disk was full is committed: each gave a reading
    let kept = stored_before + (last - polls_failing) as u64;
    let recovered = eventually(Duration::from_secs(60), || {
        http_get(http, "/health").is_some_and(|(code, _)| code == 200) && count() >= kept
    });
    assert!(
        recovered,
        "{} records stored, {kept} expected\n{}",
        count(),
        daemon.log_text()
    );
    // the polls missed while the spill was full are a gap on each channel
    let stalls = eventually(Duration::from_secs(30), || {
        try_open(&db)
            .and_then(|store| {
                store
                    .query(&Query {
                        kind: Some(RecordKind::Gap),
                        device: Some("so2-0".into()),
                        ..Query::default()
                    })
                    .ok()
            })
            .unwrap_or_default()
            .iter()
            .any(|g| {
                g.record.note.as_deref() == Some("collector_silence")
                    && g.record
                        .end
                        .is_some_and(|end| end.0 - g.record.ts.0 >= 20_000)
            })
    });
    assert!(stalls, "no gap for the stall\n{}", daemon.log_text());
    daemon.stop(Duration::from_secs(30));
}

fn uid() -> String {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// A size-limited tmpfs, unmounted when dropped; `None` where mounting is not allowed.
struct TmpfsMount {
    path: PathBuf,
}

impl TmpfsMount {
    fn new(path: &Path, size: &str) -> Option<TmpfsMount> {
        std::fs::create_dir_all(path).ok()?;
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .ok()?;
        mounted.status.success().then(|| TmpfsMount {
            path: path.to_path_buf(),
        })
    }

    fn remount_read_only(&self) {
        let status = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.path)
            .status()
            .unwrap_or_else(|e| panic!("mount: {e}"));
        assert!(status.success(), "remount read-only failed");
    }

    /// Writes a file until the file system is full; its path.
    fn fill(&self) -> PathBuf {
        let path = self.path.join("filler");
        let mut file = std::fs::File::create(&path).unwrap_or_else(|e| panic!("filler: {e}"));
        let chunk = vec![0u8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.sync_all();
        path
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

#[test]
fn under_systemd_check_warns_about_a_secret_file_the_service_cannot_read() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let influx = "[[influx]]\nid = \"main\"\nurl = \"http://127.0.0.1:9\"\nbucket = \"cems\"\ntoken_file = \"/etc/cemsd/influx.token\"\n";
    let config = write_config(
        dir.path(),
        "site.toml",
        &site("data/cemsd.db", None, 1, influx),
    );
    let check = |credentials: &str| {
        Command::new(env!("CARGO_BIN_EXE_cemsd"))
            .args(["check", "--config"])
            .arg(&config)
            .env("INVOCATION_ID", "0123456789abcdef")
            .env("CREDENTIALS_DIRECTORY", credentials)
            .output()
            .unwrap_or_else(|e| panic!("cemsd check: {e}"))
    };
    let out = check("/run/credentials/cemsd.service");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("influx[0].token_file: secret file /etc/cemsd/influx.token is outside $CREDENTIALS_DIRECTORY"),
        "{stderr}"
    );
    assert!(
        stderr.contains("LoadCredential=influx.token:/etc/cemsd/influx.token"),
        "{stderr}"
    );
    // where the unit put it, nothing to say
    let out = check("/etc/cemsd");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("CREDENTIALS_DIRECTORY"));
}
