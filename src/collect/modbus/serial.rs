//! Opening a serial bus: exclusively (a second master on an RS-485 line garbles both), with
//! the configured character format, and optionally through a capture tee.

use tokio_serial::{DataBits, SerialPort, SerialPortBuilderExt, SerialStream, StopBits};

use super::link::{ByteStream, Connector};
use super::rtu::{RtuLink, RtuTiming};
use crate::config::{BusConfig, Parity};
use crate::field::capture::{CaptureSink, CaptureStream};

/// Opens the port of one `[[bus]]`.
pub struct SerialConnector {
    bus: BusConfig,
    capture: Option<CaptureSink>,
}

impl SerialConnector {
    /// With `capture`, every frame on the bus is recorded.
    pub fn new(bus: BusConfig, capture: Option<CaptureSink>) -> SerialConnector {
        SerialConnector { bus, capture }
    }

    pub fn timing(&self) -> RtuTiming {
        timing_of(&self.bus)
    }
}

/// The RTU timing the bus's settings imply.
pub fn timing_of(bus: &BusConfig) -> RtuTiming {
    RtuTiming {
        char_time: bus.char_time(),
        inter_frame: bus.inter_frame(),
        turnaround: bus.turnaround(),
    }
}

/// Opens `bus.port` exclusively with the bus's settings and empties its buffers.
pub fn open_port(bus: &BusConfig) -> Result<SerialStream, String> {
    let parity = match bus.parity {
        Parity::None => tokio_serial::Parity::None,
        Parity::Even => tokio_serial::Parity::Even,
        Parity::Odd => tokio_serial::Parity::Odd,
    };
    let stop_bits = if bus.stop_bits == 2 {
        StopBits::Two
    } else {
        StopBits::One
    };
    let mut port = tokio_serial::new(&bus.port, bus.baud)
        .data_bits(DataBits::Eight)
        .parity(parity)
        .stop_bits(stop_bits)
        .exclusive(true)
        .open_native_async()
        .map_err(|e| format!("cannot open {}: {e}", bus.port))?;
    port.set_exclusive(true)
        .map_err(|e| format!("cannot take {} exclusively: {e}", bus.port))?;
    // bytes from before we owned the port belong to nobody's request
    port.clear(tokio_serial::ClearBuffer::All)
        .map_err(|e| format!("cannot clear {}: {e}", bus.port))?;
    Ok(port)
}

impl Connector for SerialConnector {
    type Link = RtuLink<Box<dyn ByteStream>>;

    async fn connect(&mut self) -> Result<Self::Link, String> {
        let port = open_port(&self.bus)?;
        let timing = self.timing();
        let stream: Box<dyn ByteStream> = match &self.capture {
            Some(sink) => Box::new(CaptureStream::new(port, sink.clone(), timing.inter_frame)),
            None => Box::new(port),
        };
        Ok(RtuLink::new(stream, timing))
    }
}
