//! Limits set on each connection as it is accepted, below HTTP: a deadline
//! on write progress and a ceiling on connections per peer address.
//!
//! A client can pipeline requests and never read the answers: actix-http
//! then stops reading after 16 queued requests, but the connection keeps
//! its slot (and its kernel send buffer) for as long as the client stays,
//! since nothing times out a write that cannot progress. `TCP_USER_TIMEOUT`
//! makes the kernel abort a connection whose sent data (or zero-window
//! probes) go unacknowledged that long, so its slot is freed. The per-peer
//! ceiling keeps one address from taking every slot in the first place.

use std::any::Any;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::Extensions;

/// The rules of [`ConnectionGuard::on_connect`].
#[derive(Debug, Clone)]
pub struct ConnectionGuard {
    write_timeout: Duration,
    per_peer: usize,
    peers: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// A peer's share of the ceiling, held by its connection (in the
/// connection's data) and given back when the connection ends.
struct PeerSlot {
    peers: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = peers.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                peers.remove(&self.ip);
            }
        }
    }
}

impl ConnectionGuard {
    /// `per_peer` 0 sets no ceiling (behind a proxy, every connection has
    /// the proxy's address).
    pub fn new(write_timeout: Duration, per_peer: usize) -> Self {
        Self {
            write_timeout,
            per_peer,
            peers: Arc::default(),
        }
    }

    /// For `HttpServer::on_connect`: sets the write deadline on the socket,
    /// and closes a connection from a peer that already holds its ceiling.
    pub fn on_connect(&self, conn: &dyn Any, data: &mut Extensions) {
        let Some(stream) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() else {
            return;
        };
        let socket = socket2::SockRef::from(stream);
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Err(e) = socket.set_tcp_user_timeout(Some(self.write_timeout)) {
            tracing::debug!(error = %e, "TCP_USER_TIMEOUT could not be set");
        }
        if self.per_peer == 0 {
            return;
        }
        let Ok(peer) = stream.peer_addr() else {
            return;
        };
        let ip = peer.ip();
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        let held = peers.entry(ip).or_insert(0);
        if *held >= self.per_peer {
            drop(peers);
            crate::metrics::connection_refused();
            tracing::debug!(%peer, "connection closed: its address holds the most connections it may");
            let _ = socket.shutdown(std::net::Shutdown::Both);
            return;
        }
        *held += 1;
        data.insert(PeerSlot {
            peers: self.peers.clone(),
            ip,
        });
    }
}
