//! A data logger's end of an HJ 212 link, played by a test: sends uploads encoded with the
//! crate's codec and reads what the listener writes back (9014 acks, history requests).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use cemsd::model::Flag;
use cemsd::protocol::hj212::{
    encode, CommandCode, CommandParams, Factor, FieldKind, Framer, Packet, PacketFlag, SystemCode,
};

/// How long one read waits before the caller's deadline is looked at again.
const READ_SLICE: Duration = Duration::from_millis(200);

pub struct TestLogger {
    pub stream: TcpStream,
    framer: Framer,
}

impl TestLogger {
    pub fn connect(address: SocketAddr) -> TestLogger {
        TestLogger::try_connect(address).unwrap_or_else(|e| panic!("connect: {e}"))
    }

    /// A logger of a listener on `port` of 127.0.0.1.
    pub fn on_port(port: u16) -> TestLogger {
        TestLogger::connect(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// As `connect`, for loggers that reconnect when a host is gone.
    pub fn try_connect(address: SocketAddr) -> std::io::Result<TestLogger> {
        let stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(READ_SLICE))?;
        Ok(TestLogger {
            stream,
            framer: Framer::new(),
        })
    }

    /// As `try_connect`, from the loopback address `source` (127.0.0.0/8), so a listener
    /// sees loggers at different addresses.
    pub fn try_connect_from(source: IpAddr, address: SocketAddr) -> std::io::Result<TestLogger> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let stream = runtime.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(source, 0))?;
            let connect = socket.connect(address);
            match tokio::time::timeout(Duration::from_secs(5), connect).await {
                Ok(stream) => stream?.into_std(),
                Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
            }
        })?;
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(READ_SLICE))?;
        Ok(TestLogger {
            stream,
            framer: Framer::new(),
        })
    }

    pub fn send(&mut self, packet: &Packet) {
        self.try_send(packet)
            .unwrap_or_else(|e| panic!("send: {e}"));
    }

    pub fn try_send(&mut self, packet: &Packet) -> std::io::Result<()> {
        let bytes = encode(packet).unwrap_or_else(|e| panic!("encode: {e}"));
        self.stream.write_all(&bytes)
    }

    /// The next packet from the listener, waiting at most `limit`; none also when the
    /// listener closed the connection.
    pub fn receive(&mut self, limit: Duration) -> Option<Packet> {
        let deadline = Instant::now() + limit;
        let mut buf = [0u8; 2048];
        loop {
            if let Some(found) = self.framer.next_packet() {
                let frame = found.unwrap_or_else(|e| panic!("listener sent a bad packet: {e}"));
                return Some(frame.packet);
            }
            if Instant::now() >= deadline {
                return None;
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.framer.push(&buf[..n]),
                Err(_) => {} // read timeout: look at the deadline again
            }
        }
    }

    /// True once the listener has closed the connection (end of file, or a reset).
    pub fn closed_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut buf = [0u8; 256];
        while Instant::now() < deadline {
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => {}
            }
        }
        false
    }
}

/// A minute upload (2051) of SO2 `so2` for `data_time` (local, `YYYYMMDDhhmmss`), asking
/// for a 9014.
pub fn minute_upload(mn: &str, password: &str, qn: &str, data_time: &str, so2: &str) -> Packet {
    so2_upload(
        CommandCode::MinuteData,
        FieldKind::Avg,
        mn,
        password,
        qn,
        data_time,
        so2,
    )
}

/// A real-time upload (2011) of SO2 `so2` for `data_time` (local, `YYYYMMDDhhmmss`),
/// asking for a 9014.
pub fn realtime_upload(mn: &str, password: &str, qn: &str, data_time: &str, so2: &str) -> Packet {
    so2_upload(
        CommandCode::RealTimeData,
        FieldKind::Rtd,
        mn,
        password,
        qn,
        data_time,
        so2,
    )
}

/// An upload `cn` of SO2 `so2` in field `kind` (Rtd for real-time data, Avg for periods).
fn so2_upload(
    cn: CommandCode,
    kind: FieldKind,
    mn: &str,
    password: &str,
    qn: &str,
    data_time: &str,
    so2: &str,
) -> Packet {
    Packet {
        qn: Some(qn.into()),
        pw: Some(password.into()),
        flag: Some(PacketFlag::hj212_2017(true)),
        cp: CommandParams::new()
            .with_data_time(data_time)
            .with_factor(Factor::new("a21026").with(kind, so2).with_flag(Flag::N)),
        ..Packet::new(SystemCode::AirPollutionSource, cn, mn)
    }
}

/// A plant's minute upload (2051) of logger `mn`: SO2 31.25 mg/m3 and O2 6.2 %, for the
/// minute starting at 2026-01-01 12:`minute` local time, asking for a 9014.
pub fn plant_minute(mn: &str, password: &str, minute: u32) -> Packet {
    let mut packet = minute_upload(
        mn,
        password,
        &format!("2026010112{:02}00001", minute + 1),
        &format!("2026010112{minute:02}00"),
        "31.25",
    );
    packet.cp = packet.cp.with_factor(
        Factor::new("a19001")
            .with(FieldKind::Avg, "6.2")
            .with_flag(Flag::N),
    );
    packet
}

/// True when `packet` is the 9014 for the upload with `qn`.
pub fn is_ack_of(packet: &Packet, qn: &str) -> bool {
    packet.cn == CommandCode::DataResponse && packet.qn.as_deref() == Some(qn)
}
