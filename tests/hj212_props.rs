//! Properties of the HJ 212 codec over generated packets and bytes.

use cemsd::model::Flag;
use cemsd::protocol::hj212::{
    decode, encode, split, CommandCode, CommandParams, CpGroup, Factor, FieldKind, Framer, Packet,
    PacketFlag, Pushed, Reassembler, SystemCode, MAX_DATA_LEN,
};
use proptest::prelude::*;

/// Values: anything but the delimiters `; , & =` and control characters, some non-ASCII.
fn value() -> impl Strategy<Value = String> {
    "[A-Za-z0-9 .+_:/#-]{0,10}|[中文°µ]{1,3}"
}

fn key() -> impl Strategy<Value = String> {
    "[A-Z][A-Za-z0-9_]{0,10}".prop_filter("DataTime alone is its own group", |k| k != "DataTime")
}

fn field_kind() -> impl Strategy<Value = FieldKind> {
    prop_oneof![
        Just(FieldKind::Rtd),
        Just(FieldKind::ZsRtd),
        Just(FieldKind::Avg),
        Just(FieldKind::ZsAvg),
        Just(FieldKind::Min),
        Just(FieldKind::ZsMin),
        Just(FieldKind::Max),
        Just(FieldKind::ZsMax),
        Just(FieldKind::Cou),
        "[A-Z][a-z]{1,6}".prop_map(|name| FieldKind::parse(&name)),
    ]
}

fn factor() -> impl Strategy<Value = Factor> {
    (
        "[a-zA-Z][a-zA-Z0-9]{0,6}",
        prop::collection::vec((field_kind(), "-?[0-9]{1,4}\\.[0-9]{0,3}"), 0..4),
        prop::option::of(prop::sample::select(Flag::ALL.to_vec())),
    )
        .prop_filter_map("a factor needs a field", |(code, fields, flag)| {
            let mut factor = Factor { code, fields };
            if let Some(flag) = flag {
                factor = factor.with_flag(flag);
            }
            (!factor.fields.is_empty()).then_some(factor)
        })
}

fn group() -> impl Strategy<Value = CpGroup> {
    prop_oneof![
        "[0-9]{14}".prop_map(CpGroup::DataTime),
        factor().prop_map(CpGroup::Factor),
        prop::collection::vec((key(), value()), 1..3).prop_map(CpGroup::Params),
    ]
}

fn header() -> impl Strategy<Value = Packet> {
    (
        prop::option::of("[0-9]{17}"),
        0u8..100,
        0u16..10000,
        prop::option::of(value()),
        "[A-Za-z0-9]{1,24}",
        prop::option::of((any::<bool>(), 0u8..64)),
        prop::option::of((1u32..=9999, 1u32..=9999)),
    )
        .prop_map(|(qn, st, cn, pw, mn, flag, parts)| {
            let mut packet = Packet::new(SystemCode::from_code(st), CommandCode::from_code(cn), mn);
            packet.qn = qn;
            packet.pw = pw;
            packet.flag = flag.map(|(ack_required, version)| PacketFlag {
                ack_required,
                split: false,
                version,
            });
            if let Some((a, b)) = parts {
                let mut flag = packet.flag.unwrap_or(PacketFlag::hj212_2017(false));
                flag.split = true;
                packet.flag = Some(flag);
                packet.pnum = Some(a.max(b));
                packet.pno = Some(a.min(b));
            }
            packet
        })
}

fn packet() -> impl Strategy<Value = Packet> {
    (header(), prop::collection::vec(group(), 0..8)).prop_map(|(mut packet, groups)| {
        packet.cp = CommandParams { groups };
        packet
    })
}

/// A message big enough to need splitting: context then many factor groups.
fn big_message() -> impl Strategy<Value = Packet> {
    (
        "[0-9]{17}",
        "[0-9]{14}",
        prop::option::of((key(), value())),
        prop::collection::vec(factor(), 20..90),
        any::<bool>(),
    )
        .prop_map(|(qn, data_time, param, factors, ack)| {
            let mut packet = Packet::new(
                SystemCode::AirPollutionSource,
                CommandCode::HourData,
                "010000A8900016F000169DC0",
            );
            packet.qn = Some(qn);
            packet.pw = Some("123456".into());
            packet.flag = Some(PacketFlag::hj212_2017(ack));
            let mut cp = CommandParams::new().with_data_time(data_time);
            if let Some((k, v)) = param {
                cp = cp.with_param(k, v);
            }
            for factor in factors {
                cp = cp.with_factor(factor);
            }
            packet.cp = cp;
            packet
        })
}

/// Bytes that look like the start of a packet, to get past the header checks.
fn packet_like_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        (
            "[0-9]{4}",
            "[A-Za-z0-9=;,&#CPQNSTMF \r\n\u{80}-\u{10ffff}]{0,200}"
        )
            .prop_map(|(len, rest)| format!("##{len}{rest}").into_bytes()),
    ]
}

proptest! {
    #[test]
    fn encode_then_decode_gives_the_packet_back(packet in packet()) {
        let Ok(wire) = encode(&packet) else {
            return Err(TestCaseError::reject("over 1024 bytes"));
        };
        let back = decode(&wire).map_err(|e| TestCaseError::fail(format!("{e}\n{}", String::from_utf8_lossy(&wire))))?;
        prop_assert_eq!(&back, &packet);
        prop_assert_eq!(encode(&back).ok(), Some(wire));
    }

    #[test]
    fn decode_never_panics(bytes in packet_like_bytes()) {
        let _ = decode(&bytes);
        let mut framer = Framer::new();
        framer.push(&bytes);
        while framer.next_packet().is_some() {}
        prop_assert!(framer.buffered() <= bytes.len());
    }

    #[test]
    fn mutated_packets_never_panic(packet in packet(), at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<bool>()) {
        let Ok(mut wire) = encode(&packet) else { return Ok(()) };
        let i = at.index(wire.len());
        if cut { wire.truncate(i) } else { wire[i] = byte }
        if let Ok(decoded) = decode(&wire) {
            // Whatever decodes must still be describable and, if valid, encodable.
            let _ = cemsd::protocol::hj212::describe(&decoded);
            let _ = encode(&decoded);
        }
    }

    #[test]
    fn split_then_reassemble_gives_the_message_back(message in big_message(), rotate in 0usize..16) {
        // Each later part takes a QN of its own (HJ 212-2017 Table C.50).
        let mut next = 0u32;
        let mut parts = split(&message, || { next += 1; format!("20260101120000{next:03}") })
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let qns: std::collections::BTreeSet<_> = parts.iter().map(|p| p.qn.clone()).collect();
        prop_assert_eq!(qns.len(), parts.len(), "every part its own QN");
        prop_assert!(parts.len() > 1 || encode(&message).is_ok(), "oversized message was not split");
        for part in &parts {
            let wire = encode(part).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let declared: usize = String::from_utf8_lossy(&wire[2..6]).parse().unwrap_or(usize::MAX);
            prop_assert!(declared <= MAX_DATA_LEN);
            prop_assert_eq!(part.cp.data_time(), message.cp.data_time());
        }
        // Parts may arrive in any order.
        let n = parts.len();
        parts.rotate_left(rotate % n);
        let mut reassembler = Reassembler::new(4, 10_000, std::time::Duration::from_secs(60));
        let mut joined = None;
        for part in parts {
            let wire = encode(&part).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let decoded = decode(&wire).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let pushed = reassembler.push(decoded, std::time::Instant::now());
            if let Pushed::Whole(message) = pushed.map_err(|e| TestCaseError::fail(e.to_string()))? {
                joined = Some(message);
            }
        }
        prop_assert_eq!(joined, Some(message));
        prop_assert_eq!(reassembler.pending_messages(), 0);
    }

    #[test]
    fn framer_finds_every_packet_in_a_noisy_chunked_stream(
        packets in prop::collection::vec(packet(), 1..5),
        noise in prop::collection::vec("[a-z0-9 \r\n]{0,12}", 5),
        chunk in 1usize..64,
    ) {
        let encoded: Vec<Vec<u8>> = packets.iter().filter_map(|p| encode(p).ok()).collect();
        let mut stream = Vec::new();
        let mut garbage = 0u64;
        for (i, wire) in encoded.iter().enumerate() {
            let junk = &noise[i % noise.len()];
            garbage += junk.bytes().filter(|b| !b.is_ascii_whitespace()).count() as u64;
            stream.extend_from_slice(junk.as_bytes());
            stream.extend_from_slice(wire);
        }
        let mut framer = Framer::new();
        let mut found = Vec::new();
        for piece in stream.chunks(chunk) {
            framer.push(piece);
            while let Some(result) = framer.next_packet() {
                let frame = result.map_err(|e| TestCaseError::fail(e.to_string()))?;
                found.push(frame.packet);
            }
        }
        let expected: Vec<Packet> = encoded.iter().filter_map(|w| decode(w).ok()).collect();
        prop_assert_eq!(found, expected);
        prop_assert_eq!(framer.discarded_bytes(), garbage);
    }
}
