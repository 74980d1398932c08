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

/// The value of `key=` in the shipped unit.
fn unit_value(key: &str) -> String {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/systemd/cemsd.service"),
    )
    .unwrap_or_else(|e| panic!("read the unit: {e}"));
    unit.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in the unit"))
        .to_string()
}

#[test]
fn the_unit_does_not_restart_what_a_restart_cannot_fix_and_holds_the_bureau_listener() {
    let codes: Vec<u8> = unit_value("RestartPreventExitStatus")
        .split_whitespace()
        .filter_map(|c| c.parse().ok())
        .collect();
    use cemsd::app::cli::{EXIT_CONFIG, EXIT_RUNTIME, EXIT_STORE};
    assert!(
        codes.contains(&EXIT_CONFIG) && codes.contains(&EXIT_STORE),
        "{codes:?}"
    );
    assert!(!codes.contains(&EXIT_RUNTIME), "{codes:?}");
    // the shipped bureau example, with its 2000 loggers, fits the unit's limit
    let limit: u64 = unit_value("LimitNOFILE")
        .parse()
        .unwrap_or_else(|e| panic!("LimitNOFILE: {e}"));
    let bureau =
        cemsd::config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/bureau.toml"))
            .unwrap_or_else(|e| panic!("{e}"));
    let needed = cemsd::config::environment::files_needed(&bureau.config);
    assert!(
        needed > 2000 && needed <= limit,
        "{needed} files needed, {limit} allowed"
    );
}
