//! Simulated analysers served over Modbus TCP in process.

use std::future::ready;
use std::sync::Arc;

use tokio::task::JoinHandle;

use super::analyser::SimBus;

/// Serves `bus` on `listener`: Modbus TCP, or with `rtu_framing` RTU frames over TCP as a
/// serial device server passes them on. Aborting the task closes the listener and every
/// connection.
pub fn serve_tcp(
    listener: tokio::net::TcpListener,
    bus: SimBus,
    rtu_framing: bool,
) -> JoinHandle<()> {
    let bus = Arc::new(bus);
    tokio::spawn(async move {
        let new_service = move |_peer| Ok(Some(Arc::clone(&bus)));
        let on_error = |_err: std::io::Error| {};
        if rtu_framing {
            use tokio_modbus::server::rtu_over_tcp::{accept_tcp_connection, Server};
            let on_connected =
                |stream, peer| ready(accept_tcp_connection(stream, peer, &new_service));
            let _ = Server::new(listener).serve(&on_connected, on_error).await;
        } else {
            use tokio_modbus::server::tcp::{accept_tcp_connection, Server};
            let on_connected =
                |stream, peer| ready(accept_tcp_connection(stream, peer, &new_service));
            let _ = Server::new(listener).serve(&on_connected, on_error).await;
        }
    })
}
