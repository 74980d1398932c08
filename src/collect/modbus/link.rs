//! A link carries Modbus reads to devices over one open port or socket, one transaction at a
//! time; a connector opens links. The scheduling above them is the same for every transport.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::model::comm::CommEvent;
use crate::protocol::modbus::plan::{BlockData, ReadBlock};

/// Why one read got no data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactionError {
    /// Nothing that answers the request arrived in time.
    Timeout,
    /// The reply arrived with a wrong CRC.
    BadCrc,
    /// Bytes arrived but never formed the reply: a truncated frame or noise.
    Garbled,
    /// The device refused with this exception code.
    Exception(u8),
    /// A reply of the wrong shape (TCP: wrong function, wrong count).
    Malformed(String),
    /// The port or socket failed.
    Io(String),
}

impl TransactionError {
    /// The device answered, so it is alive even though this read failed.
    pub fn device_answered(&self) -> bool {
        matches!(
            self,
            TransactionError::BadCrc
                | TransactionError::Garbled
                | TransactionError::Exception(_)
                | TransactionError::Malformed(_)
        )
    }

    /// Worth one immediate retry: the line corrupted the reply, not the device.
    pub fn is_line_noise(&self) -> bool {
        matches!(self, TransactionError::BadCrc | TransactionError::Garbled)
    }
}

impl fmt::Display for TransactionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransactionError::Timeout => write!(f, "no reply in time"),
            TransactionError::BadCrc => write!(f, "reply with a bad CRC"),
            TransactionError::Garbled => write!(f, "garbled or truncated reply"),
            TransactionError::Exception(code) => write!(f, "exception {code}"),
            TransactionError::Malformed(what) => write!(f, "malformed reply: {what}"),
            TransactionError::Io(what) => write!(f, "i/o error: {what}"),
        }
    }
}

/// One open port or socket that reads blocks from devices.
pub trait Link: Send {
    /// Reads `block` from `unit`, reporting what happened on the line into `events`.
    fn read<'a>(
        &'a mut self,
        unit: u8,
        block: &'a ReadBlock,
        timeout: Duration,
        events: &'a mut Vec<CommEvent>,
    ) -> impl Future<Output = Result<BlockData, TransactionError>> + Send + 'a;

    /// The link cannot be trusted any more and must be replaced by a new connection.
    fn is_broken(&self) -> bool;
}

/// Opens links to one port or endpoint.
pub trait Connector: Send {
    type Link: Link;

    fn connect(&mut self) -> impl Future<Output = Result<Self::Link, String>> + Send + '_;
}

/// Any byte stream an RTU link can run over: a serial port, a pty, a TCP socket, a capture tee.
pub trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> ByteStream for T {}
