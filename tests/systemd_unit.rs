//! The shipped unit's hardening, as `systemd-analyze security` scores it (0 = fully locked
//! down, 10 = unprotected). scripts/test installs systemd when systemd-analyze is missing.

use std::path::Path;
use std::process::Command;

/// Highest exposure the unit may reach; systemd calls up to 3.9 "OK".
const MAX_EXPOSURE: f64 = 2.5;

fn exposure(args: &[&str]) -> (f64, String) {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run systemd-analyze ({e}); install Debian's systemd package (scripts/test does)")
        });
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let score = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for cemsd.service:").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no overall exposure in the output:\n{text}"));
    (score, text)
}

#[test]
fn the_unit_scores_at_most_2_5() {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/systemd/cemsd.service");
    let (score, text) = exposure(&[&unit.to_string_lossy()]);
    println!("cemsd.service exposure: {score}");
    assert!(
        score <= MAX_EXPOSURE,
        "exposure {score} > {MAX_EXPOSURE}:\n{text}"
    );
}

#[test]
fn the_unit_with_the_serial_drop_in_still_scores_at_most_2_5() {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/systemd");
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let system = root.path().join("etc/systemd/system");
    let drop_ins = system.join("cemsd.service.d");
    std::fs::create_dir_all(&drop_ins).unwrap_or_else(|e| panic!("mkdir: {e}"));
    std::fs::copy(deploy.join("cemsd.service"), system.join("cemsd.service"))
        .unwrap_or_else(|e| panic!("copy unit: {e}"));
    std::fs::copy(
        deploy.join("cemsd.service.d/serial.conf.example"),
        drop_ins.join("serial.conf"),
    )
    .unwrap_or_else(|e| panic!("copy drop-in: {e}"));
    let root_arg = format!("--root={}", root.path().display());
    let (score, text) = exposure(&[&root_arg, "cemsd.service"]);
    println!("cemsd.service with serial.conf exposure: {score}");
    assert!(
        text.contains("/dev/ttyUSB0:rw") && text.contains("/dev/ttyS1:rw"),
        "the drop-in was not applied:\n{text}"
    );
    assert!(
        score <= MAX_EXPOSURE,
        "exposure {score} > {MAX_EXPOSURE}:\n{text}"
    );
}
