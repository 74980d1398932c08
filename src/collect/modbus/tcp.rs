//! Network endpoints: Modbus TCP through tokio-modbus, and RTU frames over a TCP socket to a
//! serial device server. Any doubt about a connection (timeout, protocol error) closes it: a
//! reply that arrives after its request timed out would otherwise be read as the answer to
//! the next request on that socket (tokio-modbus issue #324).

use std::time::Duration;

use tokio::net::TcpStream;
use tokio_modbus::client::{Client, Context};
use tokio_modbus::prelude::SlaveContext;
use tokio_modbus::Slave;

use super::link::{Connector, Link, TransactionError};
use super::rtu::{RtuLink, RtuTiming};
use crate::model::comm::CommEvent;
use crate::protocol::modbus::plan::{BlockData, ReadBlock};

/// Resolves and connects to `address` within `limit`.
async fn open_socket(address: &str, limit: Duration) -> Result<TcpStream, String> {
    let connect = async {
        let addr = tokio::net::lookup_host(address)
            .await
            .map_err(|e| format!("cannot resolve {address}: {e}"))?
            .next()
            .ok_or_else(|| format!("{address} resolves to no address"))?;
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        // requests are tiny and latency-bound
        let _ = stream.set_nodelay(true);
        Ok(stream)
    };
    tokio::time::timeout(limit, connect)
        .await
        .map_err(|_| format!("no connection to {address} within {limit:?}"))?
}

/// Modbus TCP: MBAP framing and transaction ids by tokio-modbus.
pub struct TcpLink {
    context: Context,
    broken: bool,
}

impl TcpLink {
    async fn transact(
        &mut self,
        unit: u8,
        block: &ReadBlock,
        limit: Duration,
        events: &mut Vec<CommEvent>,
    ) -> Result<BlockData, TransactionError> {
        if self.broken {
            return Err(TransactionError::Io(
                "the connection was closed after an error".into(),
            ));
        }
        self.context.set_slave(Slave(unit));
        events.push(CommEvent::Request);
        let outcome = tokio::time::timeout(limit, self.context.call(block.request())).await;
        match outcome {
            Err(_) => {
                self.broken = true;
                events.push(CommEvent::Timeout);
                Err(TransactionError::Timeout)
            }
            Ok(Err(error)) => {
                self.broken = true;
                match error {
                    tokio_modbus::Error::Transport(io) => {
                        events.push(CommEvent::IoError);
                        Err(TransactionError::Io(io.to_string()))
                    }
                    tokio_modbus::Error::Protocol(protocol) => {
                        events.push(CommEvent::Garbled);
                        Err(TransactionError::Malformed(protocol.to_string()))
                    }
                }
            }
            Ok(Ok(Err(code))) => {
                let code = u8::from(code);
                events.push(CommEvent::Exception(code));
                Err(TransactionError::Exception(code))
            }
            Ok(Ok(Ok(response))) => match block.data_from(response) {
                BlockData::Missing => {
                    events.push(CommEvent::Garbled);
                    Err(TransactionError::Malformed(format!(
                        "reply does not fit {block:?}"
                    )))
                }
                data => {
                    events.push(CommEvent::Reply);
                    Ok(data)
                }
            },
        }
    }
}

impl Link for TcpLink {
    fn read<'a>(
        &'a mut self,
        unit: u8,
        block: &'a ReadBlock,
        timeout: Duration,
        events: &'a mut Vec<CommEvent>,
    ) -> impl std::future::Future<Output = Result<BlockData, TransactionError>> + Send + 'a {
        self.transact(unit, block, timeout, events)
    }

    fn is_broken(&self) -> bool {
        self.broken
    }
}

/// Opens Modbus TCP connections to one endpoint.
pub struct TcpConnector {
    address: String,
    connect_timeout: Duration,
}

impl TcpConnector {
    pub fn new(address: String, connect_timeout: Duration) -> TcpConnector {
        TcpConnector {
            address,
            connect_timeout,
        }
    }
}

impl Connector for TcpConnector {
    type Link = TcpLink;

    async fn connect(&mut self) -> Result<TcpLink, String> {
        let stream = open_socket(&self.address, self.connect_timeout).await?;
        Ok(TcpLink {
            context: tokio_modbus::client::tcp::attach(stream),
            broken: false,
        })
    }
}

/// Opens sockets to a serial device server (DTU) and speaks RTU through them.
pub struct RtuOverTcpConnector {
    address: String,
    connect_timeout: Duration,
}

impl RtuOverTcpConnector {
    pub fn new(address: String, connect_timeout: Duration) -> RtuOverTcpConnector {
        RtuOverTcpConnector {
            address,
            connect_timeout,
        }
    }
}

impl Connector for RtuOverTcpConnector {
    type Link = RtuLink<TcpStream>;

    async fn connect(&mut self) -> Result<Self::Link, String> {
        let stream = open_socket(&self.address, self.connect_timeout).await?;
        Ok(RtuLink::new(stream, RtuTiming::NETWORK))
    }
}
