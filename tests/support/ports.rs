//! Loopback ports.

use std::time::Duration;

/// A loopback port nobody listens on right now, and not handed out before in this test
/// process: the kernel may give a released port again at once, and a config that asks for
/// several ports before anything binds them (the 500-device page test's simulators) would
/// get one twice.
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("no free port: {e}"));
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if handed_out.insert(port) {
            return port;
        }
    }
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
