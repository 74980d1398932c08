//! Packets from the standard and public implementations (tests/fixtures/hj212/fixtures.toml,
//! each with its source) decode as their published bytes say they should.

use std::collections::BTreeMap;

use cemsd::protocol::hj212::{crc16_hj212, decode, encode, DecodeErrorKind, EncodeError, Packet};
use serde::Deserialize;

#[derive(Deserialize)]
struct Manifest {
    fixture: Vec<Fixture>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    name: String,
    source: String,
    packet: String,
    expect: String,
    #[serde(default)]
    framed_here: bool,
    round_trip: Option<String>,
    cn: Option<u16>,
    st: Option<u8>,
    values: Option<usize>,
    data_time: Option<String>,
    #[serde(default)]
    params: BTreeMap<String, String>,
    crc_declared: Option<u16>,
    crc_computed: Option<u16>,
    length_declared: Option<usize>,
    length_actual: Option<usize>,
}

fn fixtures() -> Vec<Fixture> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/hj212/fixtures.toml"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let manifest: Manifest = toml::from_str(&text).unwrap_or_else(|e| panic!("parse {path}: {e}"));
    assert!(
        manifest.fixture.len() >= 15,
        "manifest lost fixtures: {}",
        manifest.fixture.len()
    );
    manifest.fixture
}

fn wire(fixture: &Fixture) -> Vec<u8> {
    format!("{}\r\n", fixture.packet).into_bytes()
}

#[test]
fn every_fixture_cites_its_source() {
    for f in fixtures() {
        assert!(f.source.len() > 20, "{}: source missing", f.name);
        let has_commit = f.source.contains(" @ ") || f.source.starts_with("HJ 212-2017");
        assert!(has_commit, "{}: source must name a commit", f.name);
    }
}

#[test]
fn fixtures_decode_as_expected() {
    for f in fixtures() {
        let result = decode(&wire(&f));
        match f.expect.as_str() {
            "ok" => {
                let packet = result.unwrap_or_else(|e| panic!("{}: {e}", f.name));
                check_fields(&f, &packet);
                check_round_trip(&f, &packet);
            }
            "bad_crc" => {
                let err = result.expect_err(&f.name);
                let expected = DecodeErrorKind::BadCrc {
                    declared: f
                        .crc_declared
                        .unwrap_or_else(|| panic!("{}: crc_declared", f.name)),
                    computed: f
                        .crc_computed
                        .unwrap_or_else(|| panic!("{}: crc_computed", f.name)),
                };
                assert_eq!(err.kind, expected, "{}", f.name);
                // The CRC field is the last 4 characters of the published line.
                assert_eq!(err.position, f.packet.len() - 4, "{}", f.name);
                // Nothing else is wrong: with our CRC the packet decodes.
                let fixed = format!(
                    "{}{:04X}",
                    &f.packet[..f.packet.len() - 4],
                    expected_crc(&f)
                );
                decode(fixed.as_bytes()).unwrap_or_else(|e| panic!("{} with our CRC: {e}", f.name));
            }
            "bad_length" => {
                let err = result.expect_err(&f.name);
                let expected = DecodeErrorKind::BadLength {
                    declared: f
                        .length_declared
                        .unwrap_or_else(|| panic!("{}: length_declared", f.name)),
                    actual: f
                        .length_actual
                        .unwrap_or_else(|| panic!("{}: length_actual", f.name)),
                };
                assert_eq!(err.kind, expected, "{}", f.name);
                assert_eq!(err.position, 2, "{}: the length field", f.name);
            }
            other => panic!("{}: unknown expectation {other:?}", f.name),
        }
    }
}

fn expected_crc(f: &Fixture) -> u16 {
    crc16_hj212(&f.packet.as_bytes()[6..f.packet.len() - 4])
}

fn check_fields(f: &Fixture, packet: &Packet) {
    if let Some(cn) = f.cn {
        assert_eq!(packet.cn.code(), cn, "{}: CN", f.name);
    }
    if let Some(st) = f.st {
        assert_eq!(packet.st.code(), st, "{}: ST", f.name);
    }
    if let Some(values) = f.values {
        assert_eq!(
            packet.cp.values().count(),
            values,
            "{}: factor values",
            f.name
        );
    }
    if let Some(data_time) = &f.data_time {
        assert_eq!(
            packet.cp.data_time(),
            Some(data_time.as_str()),
            "{}",
            f.name
        );
    }
    for (key, value) in &f.params {
        assert_eq!(
            packet.cp.param(key),
            Some(value.as_str()),
            "{}: {key}",
            f.name
        );
    }
    if f.framed_here {
        let declared: u16 = u16::from_str_radix(&f.packet[f.packet.len() - 4..], 16)
            .unwrap_or_else(|e| panic!("{}: {e}", f.name));
        assert_eq!(declared, expected_crc(f), "{}: framed CRC", f.name);
    }
}

fn check_round_trip(f: &Fixture, packet: &Packet) {
    let encoded = encode(packet);
    match f.round_trip.as_deref() {
        Some("exact") => {
            let bytes = encoded.unwrap_or_else(|e| panic!("{}: {e}", f.name));
            assert_eq!(
                String::from_utf8_lossy(&bytes),
                String::from_utf8_lossy(&wire(f)),
                "{}",
                f.name
            );
        }
        Some("semantic") => {
            let bytes = encoded.unwrap_or_else(|e| panic!("{}: {e}", f.name));
            assert_ne!(bytes, wire(f), "{}: would be exact", f.name);
            let again = decode(&bytes).unwrap_or_else(|e| panic!("{}: re-decode: {e}", f.name));
            assert_eq!(&again, packet, "{}", f.name);
        }
        Some("not_encodable") => {
            assert_eq!(encoded, Err(EncodeError::MissingMn), "{}", f.name);
        }
        other => panic!("{}: round_trip {other:?}", f.name),
    }
}

#[test]
fn tianhong_old_codes_map_to_quantities() {
    use cemsd::model::Quantity;
    use cemsd::protocol::hj212::codes::quantity_of;
    let f = fixtures()
        .into_iter()
        .find(|f| f.name == "tianhong_data_segment_framed")
        .expect("fixture present");
    let packet = decode(f.packet.as_bytes()).expect("decodes");
    let so2 = packet
        .cp
        .factors()
        .find(|factor| factor.code == "02")
        .expect("SO2 under its 2005 code");
    assert_eq!(so2.quantity(), Some(Quantity::SO2));
    assert_eq!(
        so2.get(&cemsd::protocol::hj212::FieldKind::Cou),
        Some("000.0")
    );
    // The mixed group still yields its humidity flag.
    let humidity_flag = packet
        .cp
        .values()
        .find(|v| v.code == "S05")
        .expect("value inside the mixed group");
    assert_eq!(humidity_flag.value, "N");
    assert_eq!(quantity_of("S05").map(|(q, _)| q), Some(Quantity::Humidity));
    assert_eq!(packet.mn, None);
    assert_eq!(packet.pw, None);
    assert_eq!(packet.flag, None);
}
