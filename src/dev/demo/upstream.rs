//! `DemoUpstream`: a small, fast HTTP server on hyper (HTTP/1.1 with keep-alive, and HTTP/2
//! with prior knowledge, told apart per connection). It is the orders API of `portcullis demo`,
//! the integration tests' mock upstream and the load benches' fast upstream. Every response
//! carries `x-upstream: <name>`, so a test can see which target answered.
//!
//! Endpoints (implemented in `upstream_routes.rs`):
//!
//! | request | response |
//! |---|---|
//! | `GET /status` | `{"status":"ok","upstream":<name>}` |
//! | `GET /orders/{id}` | an order, with `internal_cost` and `card_number` fields for transforms to remove |
//! | `POST /orders` | 201, the JSON sent back with an `id`; 400 on invalid JSON |
//! | `GET /me`, `GET /reports/…` | small JSON documents |
//! | `/_test/echo[/…]` | the request described back as JSON (method, raw path, headers in order, body) |
//! | `/_test/bytes/{n}`, `/_test/chunked/{n}` | `n` bytes of 0..=255 repeated, streamed with / without `Content-Length` |
//! | `/_test/upload` | `{"received":N,"checksum":S}`: the body read as a stream, S the wrapping sum of its bytes |
//! | `/_test/status/{code}` | that status, `{"status":code}` |
//! | `/_test/slow/{ms}` | 200 after waiting `ms` (at most a minute) |
//! | `/_test/gzip` | the order, `Content-Encoding: gzip` |
//! | `/_test/json` | about 10 KB of nested JSON, sent chunked |
//! | anything else | 404 `{"error":"not found"}` |

use super::upstream_routes::{respond, UpstreamState};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

#[cfg(test)]
mod tests;

/// A running demo upstream. It stops accepting connections on [`DemoUpstream::shutdown`] or
/// when dropped; open connections finish their current request and close.
pub struct DemoUpstream {
    /// The bound address (the real port when started on port 0).
    address: SocketAddr,
    /// Shared with every connection; holds the count of requests served.
    state: Arc<UpstreamState>,
    /// Sending `true`, or dropping it, tells the accept loop and every connection to stop.
    stop: watch::Sender<bool>,
    /// The serving task, when it runs on the caller's runtime.
    task: Option<tokio::task::JoinHandle<()>>,
    /// The serving thread and its runtime, when started with [`DemoUpstream::start_in_background_thread`].
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DemoUpstream {
    /// Binds `address` (e.g. `"127.0.0.1:0"`) before returning, then serves on the current tokio
    /// runtime. Fails outside a runtime, when the address cannot be bound, or when `name` is
    /// not a valid header value.
    pub fn start(address: &str, name: &str) -> std::io::Result<DemoUpstream> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            std::io::Error::other(
                "DemoUpstream::start needs a tokio runtime; use start_in_background_thread",
            )
        })?;
        let (listener, state) = bind(address, name)?;
        let address = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let listener = {
            let _context = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let task = runtime.spawn(serve(listener, state.clone(), stopped));
        Ok(DemoUpstream {
            address,
            state,
            stop,
            task: Some(task),
            thread: None,
        })
    }

    /// Like [`DemoUpstream::start`], for synchronous callers: serves on a single-threaded runtime
    /// owned by a thread of its own.
    pub fn start_in_background_thread(address: &str, name: &str) -> std::io::Result<DemoUpstream> {
        let (listener, state) = bind(address, name)?;
        let address = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stopped) = watch::channel(false);
        let thread_state = state.clone();
        let thread = std::thread::Builder::new()
            .name(format!("demo-upstream-{}", address.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => serve(listener, thread_state, stopped).await,
                        Err(error) => eprintln!("demo upstream on {address}: {error}"),
                    }
                })
            })?;
        Ok(DemoUpstream {
            address,
            state,
            stop,
            task: None,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.address
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.state.served.load(Ordering::Relaxed)
    }

    /// Stops accepting. For a background-thread upstream, returns once the port is closed; on
    /// the caller's runtime the listener closes when the serving task next runs (await
    /// [`DemoUpstream::shutdown_and_wait`] to be sure).
    pub fn shutdown(mut self) {
        self.stop.send_replace(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// Stops accepting and returns once the port is closed.
    pub async fn shutdown_and_wait(mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

impl Drop for DemoUpstream {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

fn bind(address: &str, name: &str) -> std::io::Result<(std::net::TcpListener, Arc<UpstreamState>)> {
    let state = Arc::new(UpstreamState::new(name)?);
    let listener = std::net::TcpListener::bind(address)?;
    listener.set_nonblocking(true)?;
    Ok((listener, state))
}

/// Accepts connections until told to stop; the listener closes when this returns.
async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<UpstreamState>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop_requested(&mut stopped) => return,
        };
        match accepted {
            Ok((stream, _peer)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve_connection(stream, state.clone(), stopped.clone()));
            }
            // Out of file descriptors and the like: wait instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

/// Serves one connection (HTTP/1.1 or HTTP/2 prior knowledge); on stop, finishes the request
/// in flight and closes.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    state: Arc<UpstreamState>,
    mut stopped: watch::Receiver<bool>,
) {
    let service = service_fn(move |request| respond(request, state.clone()));
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = stop_requested(&mut stopped) => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// Resolves once the owner asks to stop (or is gone).
async fn stop_requested(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}
