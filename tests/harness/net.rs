//! Loopback ports: free ones, and waiting until one accepts connections.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use crate::harness::wait::{poll, POLL};

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Whether something accepts TCP connections on 127.0.0.1:port now (200 ms to connect).
pub fn accepts(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Waits until something accepts TCP connections on 127.0.0.1:port.
pub fn wait_port(port: u16, timeout: Duration) -> bool {
    poll(timeout, POLL, || accepts(port).then_some(())).is_some()
}
