//! The load harness's framework floor: a Pingora 0.9 reverse proxy with no gateway logic at
//! all — no routing, no auth, no limits, no header changes, no metrics, no logging. Every request
//! goes to one upstream over Pingora's keep-alive pool.
//!
//! It runs with the same server tuning as Portcullis (one thread, no work stealing, no L4 read
//! buffer on the plain listener), so the harness's ratio of a Portcullis case to this one is the
//! cost of the gateway's own work, and this one's ratio to nginx is the framework's.
//!
//! Run by `benches/load/harness.py`; by hand:
//! `cargo run --release --example bare_pingora -- LISTEN UPSTREAM [THREADS]`.

use async_trait::async_trait;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::prelude::*;
use pingora::server::configuration::{Opt, ServerConf};

/// Proxies every request to `upstream`, unchanged.
struct BareProxy {
    upstream: String,
}

#[async_trait]
impl ProxyHttp for BareProxy {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.upstream.as_str(),
            false,
            String::new(),
        )))
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("usage: bare_pingora LISTEN UPSTREAM [THREADS]");
        std::process::exit(2);
    };
    let threads = match args.next().map(|t| t.parse::<usize>()) {
        None => 1,
        Some(Ok(threads)) if threads > 0 => threads,
        Some(_) => {
            eprintln!("bare_pingora: THREADS must be a positive number");
            std::process::exit(2);
        }
    };
    let conf = ServerConf {
        threads,
        work_stealing: false,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(&server.configuration, BareProxy { upstream });
    proxy.add_listener(ListenerConfig::tcp(listen).l4_buffer(L4BufferSettings::default().read(0)));
    server.add_service(proxy);
    server.run_forever()
}
