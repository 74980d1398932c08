//! `cemsd hj212 decode` as a technician uses it on a captured line.

use std::process::Command;

const STANDARD_EXAMPLE: &str = "##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80\r\n";

fn decode(input: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("line.txt");
    std::fs::write(&path, input).unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(env!("CARGO_BIN_EXE_cemsd"))
        .args(["hj212", "decode"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("run cemsd: {e}"));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn good_packets_are_described_and_bad_ones_located() {
    let corrupted = STANDARD_EXAMPLE.replace("1C80", "1C81");
    let (code, out) = decode(&format!("noise{STANDARD_EXAMPLE}{corrupted}"));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("packet at byte 5:"), "{out}");
    assert!(out.contains("CN    1062"), "{out}");
    assert!(out.contains("RtdInterval = 30"), "{out}");
    assert!(
        out.contains("CRC mismatch: packet says 1C81, data segment gives 1C80"),
        "{out}"
    );
    assert!(out.contains("1 packets decoded, 1 rejected"), "{out}");
}

#[test]
fn nothing_decodable_exits_non_zero() {
    let (code, out) = decode(&STANDARD_EXAMPLE.replace("1C80", "FFFF"));
    assert_eq!(code, Some(1), "{out}");
}
