//! An HJ 212-2017 data logger as a bureau sees it: a TCP connection that sends minute
//! uploads with the ack bit set and reads the platform's replies.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use cemsd::model::Flag;
use cemsd::protocol::hj212::{
    encode, CommandCode, CommandParams, Factor, FieldKind, Framer, Packet, PacketFlag, SystemCode,
};

/// A minute upload (2051) of logger `mn` with password `pw`, the A bit set, SO2 and O2
/// averages, for the minute starting at 2026-01-01 12:`minute` local time.
pub fn minute_upload(mn: &str, pw: &str, minute: u32) -> Vec<u8> {
    let cp = CommandParams::new()
        .with_data_time(format!("2026010112{minute:02}00"))
        .with_factor(
            Factor::new("a21026")
                .with(FieldKind::Avg, "31.25")
                .with_flag(Flag::N),
        )
        .with_factor(
            Factor::new("a19001")
                .with(FieldKind::Avg, "6.2")
                .with_flag(Flag::N),
        );
    let packet = Packet {
        qn: Some(format!("2026010112{:02}00001", minute + 1)),
        pw: Some(pw.into()),
        flag: Some(PacketFlag::hj212_2017(true)),
        cp,
        ..Packet::new(SystemCode::AirPollutionSource, CommandCode::MinuteData, mn)
    };
    encode(&packet).unwrap_or_else(|e| panic!("encode: {e}"))
}

/// A connection to the listener on `tcp_port`, reads waiting at most 200 ms each.
pub fn connect(tcp_port: u16) -> TcpStream {
    let stream =
        TcpStream::connect(("127.0.0.1", tcp_port)).unwrap_or_else(|e| panic!("connect: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap_or_else(|e| panic!("timeout: {e}"));
    stream
}

/// Reads from `stream` until one packet is framed or `limit` passes.
pub fn receive(stream: &mut TcpStream, limit: Duration) -> Option<Packet> {
    let mut framer = Framer::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(Ok(frame)) = framer.next_packet() {
            return Some(frame.packet);
        }
        match stream.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => framer.push(&buf[..n]),
            Err(_) => continue, // read timeout: try again until the deadline
        }
    }
    None
}

/// Sends `packet` and gives the platform's answer, if one came within `limit`.
pub fn send_and_receive(stream: &mut TcpStream, packet: &[u8], limit: Duration) -> Option<Packet> {
    stream
        .write_all(packet)
        .unwrap_or_else(|e| panic!("send: {e}"));
    receive(stream, limit)
}
