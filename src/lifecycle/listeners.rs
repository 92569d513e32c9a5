//! The listening sockets: plain proxy listeners (with h2c), TLS listeners (HTTP/2 by ALPN) and
//! the admin listener, added to their Pingora services.
//!
//! A listen address with port 0 gets a free port chosen by the kernel, race-free: a socket with
//! `SO_REUSEPORT` is bound to port 0 to learn and hold the port, and the Pingora listener then
//! binds the same port with `SO_REUSEPORT` too. The holding socket never listens, so it takes no
//! connection; it lives as long as the process. Every bound listener is logged as
//! `<kind> listening on <address>` (kind `proxy`, `tls` or `admin`): tests and operators learn
//! the port from that line.

use crate::compile::ServerSettings;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{L4BufferSettings, ListenerConfig, TcpSocketOptions};
use std::net::SocketAddr;

/// Why a listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    #[error("cannot reserve a free port on {address}: {source}")]
    Reserve {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot load the TLS certificate or key: {0}")]
    Tls(Box<pingora::Error>),
    #[error("a listen address with port 0 cannot take over the sockets of a running instance (--upgrade): give the port")]
    EphemeralUpgrade,
}

/// The listen addresses, resolved, and the sockets that hold their ports.
pub struct Reservations {
    /// Port-0 placeholders; dropping them would free the ports for others.
    _holders: Vec<tokio::net::TcpSocket>,
}

/// A listen address as Pingora will bind it.
struct Resolved {
    address: SocketAddr,
    reuse_port: bool,
}

impl Reservations {
    pub fn new() -> Self {
        Reservations {
            _holders: Vec::new(),
        }
    }

    /// `address` itself, or for port 0 a free port held for this process.
    fn resolve(&mut self, address: SocketAddr, upgrade: bool) -> Result<Resolved, ListenerError> {
        if address.port() != 0 {
            return Ok(Resolved {
                address,
                reuse_port: false,
            });
        }
        if upgrade {
            return Err(ListenerError::EphemeralUpgrade);
        }
        let reserve = || -> std::io::Result<(SocketAddr, tokio::net::TcpSocket)> {
            let socket = if address.is_ipv4() {
                tokio::net::TcpSocket::new_v4()?
            } else {
                tokio::net::TcpSocket::new_v6()?
            };
            socket.set_reuseport(true)?;
            socket.bind(address)?;
            Ok((socket.local_addr()?, socket))
        };
        let (bound, holder) =
            reserve().map_err(|source| ListenerError::Reserve { address, source })?;
        self._holders.push(holder);
        Ok(Resolved {
            address: bound,
            reuse_port: true,
        })
    }
}

impl Default for Reservations {
    fn default() -> Self {
        Self::new()
    }
}

fn socket_options(resolved: &Resolved) -> Option<TcpSocketOptions> {
    resolved.reuse_port.then(|| {
        let mut options = TcpSocketOptions::default();
        options.so_reuseport = Some(true);
        options
    })
}

/// Adds the plain and TLS listeners of `settings` to the proxy service.
pub fn add_proxy_listeners<A>(
    proxy: &mut pingora::services::listening::Service<A>,
    settings: &ServerSettings,
    reservations: &mut Reservations,
    upgrade: bool,
) -> Result<(), ListenerError> {
    for address in &settings.listen {
        let resolved = reservations.resolve(*address, upgrade)?;
        // Plain listeners read straight into the HTTP parser's own buffer: Pingora's default
        // 64 KiB socket read buffer per connection made 1,000 idle keep-alive connections cost
        // 107 KiB each (42 KiB without it) for no measurable throughput gain on HTTP/1.1. TLS
        // listeners keep it: TLS reads records of up to 16 KiB.
        let mut listener = ListenerConfig::tcp(resolved.address.to_string())
            .l4_buffer(L4BufferSettings::default().read(0));
        if let Some(options) = socket_options(&resolved) {
            listener = listener.tcp_socket_options(options);
        }
        proxy.add_listener(listener);
        tracing::info!("proxy listening on {}", resolved.address);
    }
    if let Some(tls) = &settings.tls {
        for address in &tls.listen {
            let resolved = reservations.resolve(*address, upgrade)?;
            let mut tls_settings = TlsSettings::intermediate(&tls.certificate, &tls.private_key)
                .map_err(ListenerError::Tls)?;
            if tls.http2 {
                tls_settings.enable_h2();
            }
            proxy.add_tls_with_settings(
                &resolved.address.to_string(),
                socket_options(&resolved),
                tls_settings,
            );
            tracing::info!("tls listening on {}", resolved.address);
        }
    }
    Ok(())
}

/// Adds the admin listener to its service.
pub fn add_admin_listener<A>(
    admin: &mut pingora::services::listening::Service<A>,
    address: SocketAddr,
    reservations: &mut Reservations,
    upgrade: bool,
) -> Result<(), ListenerError> {
    let resolved = reservations.resolve(address, upgrade)?;
    match socket_options(&resolved) {
        Some(options) => admin.add_tcp_with_settings(&resolved.address.to_string(), options),
        None => admin.add_tcp(&resolved.address.to_string()),
    }
    tracing::info!("admin listening on {}", resolved.address);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_is_resolved_to_a_held_free_port() {
        let mut reservations = Reservations::new();
        let resolved = reservations
            .resolve("127.0.0.1:0".parse().unwrap(), false)
            .unwrap();
        assert_ne!(resolved.address.port(), 0);
        assert!(resolved.reuse_port);
        // Held: a plain bind of the same port (no SO_REUSEPORT) is refused while it lives.
        assert!(std::net::TcpListener::bind(resolved.address).is_err());
        drop(reservations);
        assert!(std::net::TcpListener::bind(resolved.address).is_ok());
    }

    #[test]
    fn a_fixed_port_is_left_to_pingora() {
        let mut reservations = Reservations::new();
        let address: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let resolved = reservations.resolve(address, false).unwrap();
        assert_eq!(resolved.address, address);
        assert!(!resolved.reuse_port);
    }

    #[test]
    fn port_zero_cannot_take_over_sockets() {
        let mut reservations = Reservations::new();
        let error = reservations
            .resolve("127.0.0.1:0".parse().unwrap(), true)
            .err()
            .expect("refused");
        assert!(matches!(error, ListenerError::EphemeralUpgrade));
    }
}
