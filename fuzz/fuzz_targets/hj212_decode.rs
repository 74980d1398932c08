//! Arbitrary bytes through the HJ 212 decoder and the stream framer: no input may panic, and
//! whatever decodes and re-encodes must decode to the same packet.
#![no_main]

use cemsd::protocol::hj212::{crc16_hj212, decode, describe, encode, Framer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_decode(data);

    // Random bytes almost never carry a valid CRC, so also frame them as a data segment with
    // the right length and CRC: this drives the field and CP parsers.
    if data.len() <= 9999 {
        let mut framed = format!("##{:04}", data.len()).into_bytes();
        framed.extend_from_slice(data);
        framed.extend_from_slice(format!("{:04X}\r\n", crc16_hj212(data)).as_bytes());
        check_decode(&framed);
    }

    // The same bytes as a stream, cut at a point the input chooses.
    let cut = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let mut framer = Framer::new();
    for piece in [&data[..cut], &data[cut..]] {
        framer.push(piece);
        while let Some(result) = framer.next_packet() {
            if let Err(e) = result {
                let _ = e.to_string();
            }
        }
    }
    assert!(framer.buffered() <= data.len());
});

fn check_decode(bytes: &[u8]) {
    match decode(bytes) {
        Ok(packet) => {
            let _ = describe(&packet);
            if let Ok(wire) = encode(&packet) {
                match decode(&wire) {
                    Ok(again) => assert_eq!(again, packet, "re-encoded packet decodes differently"),
                    Err(e) => panic!("encoder output does not decode: {e}"),
                }
            }
        }
        Err(e) => {
            let _ = e.point_at(bytes);
        }
    }
}
