//! `cemsd hj212 decode` as a technician uses it on a captured line.

use std::process::Command;

const STANDARD_EXAMPLE: &str = "##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80\r\n";

fn decode(input: &str) -> (Option<i32>, String) {
    let (code, stdout, _) = decode_bytes(input.as_bytes());
    (code, stdout)
}

/// Runs `cemsd hj212 decode` on a file holding `input`: exit code, stdout, stderr.
fn decode_bytes(input: &[u8]) -> (Option<i32>, String, String) {
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
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn input_that_is_not_a_complete_packet_exits_1_naming_the_fault_and_its_byte() {
    let packet = STANDARD_EXAMPLE.trim_end().as_bytes(); // 111 bytes, CRC 1C80
    let with_length = |length: &str| {
        let mut v = format!("##{length}").into_bytes();
        v.extend_from_slice(&packet[6..]);
        v
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated",
            packet[..60].to_vec(),
            "byte 60: the input ends 54 bytes into a packet whose length field says 0101: \
             the packet is cut short",
        ),
        (
            "without CRC",
            packet[..107].to_vec(),
            "byte 107: the packet ends after its data segment (`&&`) without the 4 \
             hexadecimal CRC digits",
        ),
        (
            "without ##",
            packet[2..].to_vec(),
            "byte 0: 109 bytes that are not an HJ 212 packet: no `##` header",
        ),
        (
            "bare ##",
            b"##".to_vec(),
            "byte 2: expected 4 decimal digits of data-segment length after `##`",
        ),
        (
            "binary garbage",
            vec![0x00, 0xFF, 0x13, 0x37, 0x80, b'#', 0x0A, 0xC3, 0x28],
            "byte 0: 9 bytes that are not an HJ 212 packet",
        ),
        (
            "length field larger than the data",
            with_length("0102"),
            "byte 2: wrong length field: it says 0102 bytes but the data segment has 101",
        ),
        (
            "length field one too small",
            with_length("0100"),
            "byte 2: wrong length field: it says 0100 bytes but the data segment has 101",
        ),
        ("empty", Vec::new(), "the input is empty"),
    ];
    for (name, input, problem) in cases {
        let (code, out, err) = decode_bytes(&input);
        assert_eq!(code, Some(1), "{name}: exit code\n{out}{err}");
        assert!(out.contains("0 packets decoded"), "{name}:\n{out}");
        assert!(
            out.contains(problem) || input.is_empty(),
            "{name}: missing {problem:?} in\n{out}"
        );
        assert!(
            err.contains("no packet could be decoded") && err.contains(problem),
            "{name}: stderr\n{err}"
        );
        assert!(
            !out.contains("CRC mismatch"),
            "{name}: blamed on the CRC\n{out}"
        );
    }
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
