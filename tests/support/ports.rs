//! Loopback ports.

use std::time::Duration;

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// Binds `port` on loopback for an in-process server.
pub async fn listen(port: u16) -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| panic!("bind 127.0.0.1:{port}: {e}"))
}

/// Whether something accepts connections on loopback `port` within `limit`.
pub fn listening_within(port: u16, limit: Duration) -> bool {
    super::time::eventually(limit, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
}
