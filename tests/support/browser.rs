//! Debian's headless Chromium (scripts/test installs it) for pages the tests look at as a
//! person would: the DOM after scripts ran, a screenshot, a printed PDF.

use std::process::Command;

/// Runs headless Chromium on `url` with `mode` (`--dump-dom` or `--screenshot=…`) and gives
/// its stdout. Virtual time lets the page's fetches finish before the DOM is taken.
pub fn chromium(url: &str, mode: &str) -> String {
    let profile = tempfile::tempdir().unwrap_or_else(|e| panic!("profile dir: {e}"));
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1280,1400",
            "--virtual-time-budget=10000",
        ])
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
