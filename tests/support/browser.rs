//! Debian's headless Chromium (scripts/test installs it) for pages the tests look at as a
//! person would: the DOM after scripts ran, a screenshot, a printed PDF.

use std::process::Command;

/// Headless, on this machine's closed network (no background connections), at a desktop
/// size, with a new profile per run.
const HEADLESS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--window-size=1280,1400",
];

/// Runs headless Chromium on `url` with `mode` (`--dump-dom` or `--screenshot=…`) and gives
/// its stdout. Virtual time lets the page's fetches finish before the DOM is taken.
pub fn chromium(url: &str, mode: &str) -> String {
    let profile = tempfile::tempdir().unwrap_or_else(|e| panic!("profile dir: {e}"));
    let out = Command::new("chromium")
        .args(HEADLESS)
        .arg("--virtual-time-budget=10000")
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(mode)
        .arg(url)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run chromium ({e}); install Debian's chromium package (scripts/test does)"
            )
        });
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The page's own first-render time (`cemsd first render N ms`, logged by status.js once every
/// device is listed, in ms since navigation began), read from headless Chromium's console
/// log in real time: the virtual time `chromium` uses stops the clock while fetches run.
/// The browser is killed once the line appears; `None` if it never does within 30 s.
pub fn first_render_ms(url: &str) -> Option<f64> {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let profile = tempfile::tempdir().unwrap_or_else(|e| panic!("profile dir: {e}"));
    let mut child = Command::new("chromium")
        .args(HEADLESS)
        .args([
            "--enable-logging=stderr",
            "--v=0",
            // keeps the browser open after the load event, until it is killed
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run chromium ({e})"));
    let Some(stderr) = child.stderr.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let figure = line
                .split("cemsd first render ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .and_then(|ms| ms.parse::<f64>().ok());
            if let Some(ms) = figure {
                let _ = tx.send(ms);
                return;
            }
        }
    });
    let figure = rx.recv_timeout(std::time::Duration::from_secs(30)).ok();
    let _ = child.kill();
    let _ = child.wait();
    figure
}
