//! Wire-level behaviour of the HJ 212 codec: the standard's example byte for byte, one test per
//! decode error kind with the byte it points at, tolerance for what loggers really send.
//!
//! Byte offsets in the standard's example
//! `##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80`:
//! length 2..6, data 6..107 (QN= 6, ST= 27, CN= 33, PW= 41, MN= 51, Flag= 79, CP= 86,
//! RtdInterval 91), CRC 107..111.

use cemsd::model::Flag;
use cemsd::protocol::hj212::{
    crc16_hj212, decode, decode_with_limit, describe, encode, CommandCode, CommandParams,
    DecodeErrorKind, Factor, FieldKind, Framer, Packet, PacketFlag, SystemCode,
};

const EXAMPLE_DATA: &str = "QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&";
const EXAMPLE: &str = "##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80\r\n";

/// Frames a data segment with its true length and CRC, so only the intended fault remains.
fn framed(data: &[u8]) -> Vec<u8> {
    let mut out = format!("##{:04}", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(format!("{:04X}\r\n", crc16_hj212(data)).as_bytes());
    out
}

fn framed_str(data: &str) -> Vec<u8> {
    framed(data.as_bytes())
}

#[test]
fn standard_example_has_length_0101_and_crc_1c80() {
    assert_eq!(EXAMPLE_DATA.len(), 101);
    assert_eq!(crc16_hj212(EXAMPLE_DATA.as_bytes()), 0x1C80);

    let packet = decode(EXAMPLE.as_bytes()).expect("the standard's example decodes");
    assert_eq!(packet.qn.as_deref(), Some("20160801085857223"));
    assert_eq!(packet.st, SystemCode::WaterPollutionSource);
    assert_eq!(packet.cn, CommandCode::SetRealTimeInterval);
    assert_eq!(packet.pw.as_deref(), Some("100000"));
    assert_eq!(packet.mn.as_deref(), Some("010000A8900016F000169DC0"));
    assert_eq!(
        packet.flag,
        Some(PacketFlag {
            ack_required: true,
            split: false,
            version: 1
        })
    );
    assert_eq!((packet.pnum, packet.pno), (None, None));
    assert_eq!(packet.cp.param("RtdInterval"), Some("30"));

    // Built from scratch, the encoder produces the standard's bytes.
    let mut built = Packet::new(
        SystemCode::WaterPollutionSource,
        CommandCode::SetRealTimeInterval,
        "010000A8900016F000169DC0",
    );
    built.qn = Some("20160801085857223".into());
    built.pw = Some("100000".into());
    built.flag = Some(PacketFlag::hj212_2017(true));
    built.cp = CommandParams::new().with_param("RtdInterval", "30");
    assert_eq!(built, packet);
    assert_eq!(encode(&built).expect("encodes"), EXAMPLE.as_bytes());
}

#[test]
fn minute_upload_is_encoded_in_the_standard_field_order() {
    let mut packet = Packet::new(
        SystemCode::AirPollutionSource,
        CommandCode::MinuteData,
        "PLANT01",
    );
    packet.qn = Some("20260101120100000".into());
    packet.pw = Some("123456".into());
    packet.flag = Some(PacketFlag::hj212_2017(true));
    packet.cp = CommandParams::new()
        .with_data_time("20260101120000")
        .with_factor(
            Factor::new("a21026")
                .with(FieldKind::Avg, "12.3")
                .with(FieldKind::ZsAvg, "15.1")
                .with_flag(Flag::N),
        )
        .with_factor(
            Factor::new("a19001")
                .with(FieldKind::Avg, "6.2")
                .with_flag(Flag::C),
        );
    let data = "QN=20260101120100000;ST=31;CN=2051;PW=123456;MN=PLANT01;Flag=5;CP=&&DataTime=20260101120000;a21026-Avg=12.3,a21026-ZsAvg=15.1,a21026-Flag=N;a19001-Avg=6.2,a19001-Flag=C&&";
    assert_eq!(encode(&packet).expect("encodes"), framed_str(data));
}

#[test]
fn oversized_packet_is_refused_with_a_hint_to_split() {
    let mut packet = Packet::new(SystemCode::AirPollutionSource, CommandCode::HourData, "MN1");
    packet.cp = CommandParams::new().with_param("Note", "x".repeat(1100));
    let err = encode(&packet).expect_err("over 1024 bytes");
    assert!(err.to_string().contains("split"), "{err}");
}

#[test]
fn decoder_tolerates_what_loggers_send() {
    // No CRLF, trailing spaces, a doubled CRLF, leading whitespace.
    let bare = EXAMPLE.trim_end();
    for input in [
        bare.to_string(),
        format!("{bare}  \r\n\r\n"),
        format!("\r\n {bare}"),
    ] {
        decode(input.as_bytes()).unwrap_or_else(|e| panic!("{input:?}: {e}"));
    }
    // Lowercase CRC digits.
    let lower = EXAMPLE.replace("1C80", "1c80");
    assert!(decode(lower.as_bytes()).is_ok());
    // Header fields out of order and zero-padded part numbers (seen in the wild).
    let data = "QN=20191112091100598;ST=31;CN=2051;PNO=0002;PNUM=0002;MN=14513567846884;Flag=7;CP=&&DataTime=20230327090000;a01006-Avg=101.85&&";
    let packet = decode(&framed_str(data)).expect("any header order");
    assert_eq!((packet.pnum, packet.pno), (Some(2), Some(2)));
}

#[test]
fn bad_header_points_at_the_missing_hash() {
    let input = EXAMPLE.replacen("##", "#", 1);
    let err = decode(input.as_bytes()).expect_err("one #");
    assert_eq!(err.kind, DecodeErrorKind::BadHeader);
    assert_eq!(err.position, 1);
    // Leading whitespace is skipped but still counted: `  X##` fails at byte 2.
    let err = decode(b"  X##0101").expect_err("garbage first");
    assert_eq!((err.kind, err.position), (DecodeErrorKind::BadHeader, 2));
    let err = decode(b"").expect_err("empty");
    assert_eq!((err.kind, err.position), (DecodeErrorKind::BadHeader, 0));
}

#[test]
fn bad_length_digits_point_at_the_first_non_digit() {
    let input = EXAMPLE.replacen("0101", "01a1", 1);
    let err = decode(input.as_bytes()).expect_err("letter in length");
    assert_eq!(
        (err.kind, err.position),
        (DecodeErrorKind::BadLengthDigits, 4)
    );
    let err = decode(b"##01").expect_err("cut in the length");
    assert_eq!(
        (err.kind, err.position),
        (DecodeErrorKind::BadLengthDigits, 4)
    );
}

#[test]
fn too_long_points_at_the_length_field() {
    let err = decode(b"##1025QN=1").expect_err("over 1024");
    assert_eq!(
        (err.kind, err.position),
        (
            DecodeErrorKind::TooLong {
                declared: 1025,
                max: 1024
            },
            2
        )
    );
    // A peer known to send longer packets can be read with a raised limit.
    let data = format!("ST=31;CN=2011;MN=M;CP=&&Note={}&&", "x".repeat(1100));
    // 29 bytes of header and `CP=&&Note=`, 1100 of value, 2 of `&&`.
    assert_eq!(data.len(), 1131);
    let packet = decode_with_limit(&framed_str(&data), 2048).expect("raised limit");
    assert_eq!(packet.cp.param("Note").map(str::len), Some(1100));
}

#[test]
fn bad_length_reports_declared_and_actual() {
    let input = EXAMPLE.replacen("0101", "0102", 1);
    let err = decode(input.as_bytes()).expect_err("wrong length");
    assert_eq!(
        (err.kind, err.position),
        (
            DecodeErrorKind::BadLength {
                declared: 102,
                actual: 101
            },
            2
        )
    );
    // Cut after 40 data bytes: the last 4 of what is there are taken as CRC -> 36.
    let err = decode(&EXAMPLE.as_bytes()[..6 + 40]).expect_err("cut short");
    assert_eq!(
        err.kind,
        DecodeErrorKind::BadLength {
            declared: 101,
            actual: 36
        }
    );
}

#[test]
fn bad_crc_points_at_the_crc_field() {
    let input = EXAMPLE.replace("1C80", "1C8G");
    let err = decode(input.as_bytes()).expect_err("G is not hex");
    assert_eq!(
        (err.kind, err.position),
        (DecodeErrorKind::BadCrcDigits, 110)
    );

    let input = EXAMPLE.replace("1C80", "1C81");
    let err = decode(input.as_bytes()).expect_err("wrong CRC");
    assert_eq!(
        (err.kind.clone(), err.position),
        (
            DecodeErrorKind::BadCrc {
                declared: 0x1C81,
                computed: 0x1C80
            },
            107
        )
    );
    assert_eq!(
        err.to_string(),
        "byte 107: CRC mismatch: packet says 1C81, data segment gives 1C80"
    );
    // 32 bytes of context before the CRC (from byte 75), CRLF shown as dots, caret under `1C81`.
    let expected = format!(
        "…DC0;Flag=5;CP=&&RtdInterval=30&&1C81..\n{}^ {err}",
        " ".repeat(1 + 32)
    );
    assert_eq!(err.point_at(input.as_bytes()), expected);
}

#[test]
fn missing_cp_delimiter_points_where_it_should_be() {
    // `CP=&Rtd…`: the second `&` should be at 86 + 3 = 89.
    let data = EXAMPLE_DATA.replace("CP=&&", "CP=&");
    let err = decode(&framed_str(&data)).expect_err("one &");
    assert_eq!(
        (err.kind, err.position),
        (DecodeErrorKind::MissingCpDelimiter, 89)
    );
    // No closing `&&`: expected at the end of the 99-byte data segment, 6 + 99 = 105.
    let data = EXAMPLE_DATA.trim_end_matches('&');
    assert_eq!(data.len(), 99);
    let err = decode(&framed_str(data)).expect_err("no closing &&");
    assert_eq!(
        (err.kind, err.position),
        (DecodeErrorKind::MissingCpDelimiter, 105)
    );
    // No CP at all: 6 + 9 = 15.
    let err = decode(&framed_str("ST=32;CN=")).expect_err("no CP");
    assert_eq!(
        (err.kind, err.position),
        (DecodeErrorKind::MissingCpDelimiter, 15)
    );
}

#[test]
fn unknown_command_points_at_the_cn_value() {
    let data = EXAMPLE_DATA.replace("CN=1062", "CN=10x2");
    let err = decode(&framed_str(&data)).expect_err("CN not numeric");
    assert_eq!(
        (err.kind, err.position),
        (DecodeErrorKind::UnknownCommand("10x2".into()), 36)
    );
    let data = EXAMPLE_DATA.replace("CN=1062", "CN=106");
    let err = decode(&framed_str(&data)).expect_err("3 digits");
    assert_eq!(err.kind, DecodeErrorKind::UnknownCommand("106".into()));
    // An unknown but well-formed code is kept, not refused.
    let data = EXAMPLE_DATA.replace("CN=1062", "CN=4321");
    let packet = decode(&framed_str(&data)).expect("kept");
    assert_eq!(packet.cn, CommandCode::Other(4321));
}

#[test]
fn missing_field_points_at_cp() {
    // Without `ST=32;` (6 bytes) CP starts at 86 - 6 = 80.
    let data = EXAMPLE_DATA.replace("ST=32;", "");
    let err = decode(&framed_str(&data)).expect_err("no ST");
    assert_eq!(
        (err.kind, err.position),
        (DecodeErrorKind::MissingField("ST"), 80)
    );
    let data = EXAMPLE_DATA.replace("CN=1062;", "");
    let err = decode(&framed_str(&data)).expect_err("no CN");
    assert_eq!(err.kind, DecodeErrorKind::MissingField("CN"));
}

#[test]
fn bad_fields_point_at_the_offending_byte() {
    let cases: [(String, usize, &str); 8] = [
        // Flag value at 84.
        (EXAMPLE_DATA.replace("Flag=5", "Flag=x"), 84, "Flag"),
        // A second ST inserted at 33.
        (EXAMPLE_DATA.replace("ST=32;", "ST=32;ST=31;"), 33, "ST"),
        // Unknown header key where PW was, 41.
        (EXAMPLE_DATA.replace("PW=", "PX="), 41, "PX"),
        // ST value at 30.
        (EXAMPLE_DATA.replace("ST=32", "ST=3"), 30, "ST"),
        // Header field without `=` at 41.
        (
            EXAMPLE_DATA.replace("PW=100000", "PW100000"),
            41,
            "PW100000",
        ),
        // `=` inside the QN value: QN value starts at 9, `=` is its 3rd byte -> 11.
        (EXAMPLE_DATA.replace("QN=2016", "QN=20=6"), 11, "QN"),
        // Invalid data flag: `RtdInterval=30` replaced, value of a21026-Flag at 91 + 12 = 103.
        (
            EXAMPLE_DATA.replace("RtdInterval=30", "a21026-Flag=X"),
            103,
            "a21026-Flag",
        ),
        // CP field without `=`: at 91.
        (
            EXAMPLE_DATA.replace("RtdInterval=30", "RtdInterval"),
            91,
            "RtdInterval",
        ),
    ];
    for (data, position, field) in cases {
        let err = decode(&framed_str(&data)).expect_err(&data);
        match &err.kind {
            DecodeErrorKind::BadField { field: f, .. } => assert_eq!(f, field, "{data}"),
            other => panic!("{data}: expected BadField, got {other:?}"),
        }
        assert_eq!(err.position, position, "{data}: {err}");
    }
    // Non-UTF-8 byte as the 2nd byte of the MN value: data byte 49, input byte 6 + 49 = 55.
    let mut data = EXAMPLE_DATA.as_bytes().to_vec();
    data[49] = 0xFF;
    let err = decode(&framed(&data)).expect_err("not UTF-8");
    assert_eq!(err.position, 49 + 6);
    assert!(matches!(err.kind, DecodeErrorKind::BadField { .. }));
}

#[test]
fn describe_reads_the_standard_example() {
    let packet = decode(EXAMPLE.as_bytes()).expect("decodes");
    let text = describe(&packet);
    let expected = "\
QN    20160801085857223          request 2016-08-01 08:58:57.223
ST    32                         surface water pollution source
CN    1062                       set real-time data interval
PW    ******
MN    010000A8900016F000169DC0
Flag  5                          reply required: yes; split: no; protocol version 1 (HJ 212-2017)
CP    1 group
  RtdInterval = 30
";
    assert_eq!(text, expected);
}

#[test]
fn framer_resynchronises_on_garbage_between_packets() {
    let second_data = EXAMPLE_DATA.replace("RtdInterval=30", "RtdInterval=60");
    let second = framed_str(&second_data);
    let mut stream = Vec::new();
    stream.extend_from_slice(b"\x00\xffAT+OK\r\n"); // 9 bytes of noise, 7 not whitespace
    stream.extend_from_slice(EXAMPLE.as_bytes());
    stream.extend_from_slice(b"#garbage#"); // 9 more, with lone `#`s
    stream.extend_from_slice(&second);

    let mut framer = Framer::new();
    let mut found = Vec::new();
    // Deliver in awkward 7-byte reads.
    for chunk in stream.chunks(7) {
        framer.push(chunk);
        while let Some(result) = framer.next_packet() {
            found.push(result.expect("only whole packets in this stream"));
        }
    }
    let intervals: Vec<_> = found
        .iter()
        .map(|f| f.packet.cp.param("RtdInterval").unwrap_or("?"))
        .collect();
    assert_eq!(intervals, vec!["30", "60"]);
    // Offsets: 9 noise bytes, then 113 for the first packet and 9 of garbage: 9 + 113 + 9 = 131.
    assert_eq!(found[0].offset, 9);
    assert_eq!(found[1].offset, 131);
    assert_eq!(framer.discarded_bytes(), 7 + 9);
    assert_eq!(found[0].raw, EXAMPLE.trim_end().as_bytes());
}
