//! `DemoUpstream`: a small, fast HTTP server (hyper; HTTP/1.1 keep-alive and HTTP/2 prior
//! knowledge). It is the demo's orders API, the integration tests' mock upstream and the load
//! harness's fast upstream. Every response carries `x-upstream: <name>`.
//!
//! Demo API: `GET /status`, `GET /orders/{id}`, `POST /orders`, `GET /me`, `GET /reports/...`.
//! Test endpoints under `/_test/`: `echo`, `bytes/{n}`, `chunked/{n}`, `upload`, `status/{code}`,
//! `slow/{ms}`, `json` (about 10 KB).

use super::upstream_routes::respond;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A running demo upstream; stops accepting when dropped.
pub struct DemoUpstream {
    address: SocketAddr,
    served: Arc<AtomicU64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _runtime: Option<Arc<tokio::runtime::Runtime>>,
}

impl DemoUpstream {
    /// Binds `address` (e.g. `127.0.0.1:0`) and serves on the current tokio runtime.
    pub fn start(address: &str, name: &str) -> std::io::Result<DemoUpstream> {
        let listener = std::net::TcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let served = Arc::new(AtomicU64::new(0));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        tokio::spawn(serve(listener, Arc::from(name), served.clone(), stopped));
        Ok(DemoUpstream {
            address,
            served,
            stop: Some(stop),
            _runtime: None,
        })
    }

    /// Like [`DemoUpstream::start`], on a dedicated runtime of its own (for synchronous callers).
    pub fn start_in_background_thread(address: &str, name: &str) -> std::io::Result<DemoUpstream> {
        let runtime = Arc::new(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("demo-upstream")
                .enable_all()
                .build()?,
        );
        let mut upstream = {
            let _guard = runtime.enter();
            DemoUpstream::start(address, name)?
        };
        upstream._runtime = Some(runtime);
        Ok(upstream)
    }

    pub fn addr(&self) -> SocketAddr {
        self.address
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

impl Drop for DemoUpstream {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    name: Arc<str>,
    served: Arc<AtomicU64>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut stopped => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let _ = stream.set_nodelay(true);
        let name = name.clone();
        let served = served.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                served.fetch_add(1, Ordering::Relaxed);
                respond(request, name.clone())
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
