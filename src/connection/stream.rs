//! [`GuardedStream`]: a client connection wrapped so that its [`ConnectionClock`] deadlines
//! close it. Everything else is passed through to the stream Pingora accepted (TLS included: the
//! wrapper sits above the handshake, so it sees plain HTTP).
//!
//! - While a deadline runs, a read that would wait polls one timer (Pingora's 10 ms timer
//!   wheel); when the deadline passes, an idle connection reads as closed and a half-sent head
//!   fails with `TimedOut`. During an exchange no deadline runs. The timer outlives the
//!   deadline it was armed for while later deadlines follow it (see `poll_deadline`), so a
//!   busy keep-alive connection does not arm one per request. This is the only idle timer:
//!   Pingora's own keep-alive timer is left off (see `request_filter`).
//! - The request hooks hold only `&Stream`; they report "head read" and "exchange done"
//!   through [`mark_head_read`] and [`mark_exchange_done`], which the next read applies.
//! - Pingora looks for the HTTP/2 prior-knowledge preface by waiting for 24 bytes, so a shorter
//!   request (`GET / HTTP/1.0` + CRLF CRLF is 18) or a silent client would hang there. The peek
//!   here stops as soon as the bytes cannot be the preface, and runs under the header deadline.

use super::clock::{ConnectionClock, Expiry};
use crate::metrics::metrics;
use async_trait::async_trait;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The HTTP/2 connection preface (RFC 9113 §3.4).
pub const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const NO_SIGNAL: u8 = 0;
const HEAD_READ: u8 = 1;
const EXCHANGE_DONE: u8 = 2;

type Timer = Pin<Box<dyn Future<Output = ()> + Send + Sync>>;

/// A client connection held to its deadlines.
pub struct GuardedStream {
    inner: pingora::protocols::Stream,
    clock: ConnectionClock,
    /// The latest phase change reported by the request hooks, applied on the next read.
    signal: AtomicU8,
    /// Bytes read while looking for the HTTP/2 preface, served before anything new.
    peeked: Vec<u8>,
    peeked_served: usize,
    /// The timer for the current deadline and the deadline it was armed for.
    timer: Option<(Instant, Timer)>,
}

impl GuardedStream {
    pub fn new(inner: pingora::protocols::Stream, clock: ConnectionClock) -> Self {
        let mut stream = GuardedStream {
            inner,
            clock,
            signal: AtomicU8::new(NO_SIGNAL),
            peeked: Vec::new(),
            peeked_served: 0,
            timer: None,
        };
        if stream.inner.selected_alpn_proto() == Some(ALPN::H2) {
            stream.clock.multiplexed();
        }
        stream
    }

    /// Applies the phase change the request hooks reported since the last read.
    fn apply_signal(&mut self) {
        // A plain load first: most reads find no report, and a swap is a locked instruction.
        if self.signal.load(Ordering::Relaxed) == NO_SIGNAL {
            return;
        }
        match self.signal.swap(NO_SIGNAL, Ordering::Relaxed) {
            HEAD_READ => self.clock.head_read(),
            EXCHANGE_DONE => self.clock.exchange_done(Instant::now()),
            _ => {}
        }
    }

    /// Polls the timer of the current deadline; `Ready` with what expired once it has passed.
    ///
    /// A timer armed for an earlier deadline is kept rather than armed anew: on a busy
    /// keep-alive connection each exchange moves the idle deadline later, and re-arming for
    /// every request would register (and cancel) a timer per request. While the kept timer is
    /// pending, neither its deadline nor the current one has come, so no clock is read; once
    /// it fires (at most once per deadline period), one is armed for the current deadline. A
    /// phase without a deadline keeps the timer too; a wake-up it causes finds no deadline.
    /// A timer that returned `Ready` is always dropped (it must not be polled again).
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<Expiry> {
        let Some((deadline, expiry)) = self.clock.deadline() else {
            return Poll::Pending;
        };
        if let Some((armed_for, timer)) = &mut self.timer {
            if *armed_for <= deadline {
                match timer.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(()) if *armed_for == deadline => {
                        self.timer = None;
                        return Poll::Ready(expiry);
                    }
                    Poll::Ready(()) => {}
                }
            }
            self.timer = None;
        }
        let now = Instant::now();
        if now >= deadline {
            return Poll::Ready(expiry);
        }
        let sleep: Timer = Box::pin(pingora::time::sleep(deadline - now));
        let (_, timer) = self.timer.insert((deadline, sleep));
        match timer.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                self.timer = None;
                Poll::Ready(expiry)
            }
        }
    }

    /// Reads until `want` bytes are held or they can no longer be the HTTP/2 preface, under
    /// the current deadline.
    async fn read_preface(&mut self, want: usize) -> io::Result<()> {
        let deadline = self.clock.deadline().map(|(deadline, _)| deadline);
        while self.peeked.len() < want && H2_PREFACE.starts_with(&self.peeked) {
            let mut chunk = [0u8; 24];
            let read = self.inner.read(&mut chunk);
            let n = match deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match pingora::time::timeout(left, read).await {
                        Ok(result) => result?,
                        Err(_) => {
                            count_expiry(Expiry::HeaderTimeout);
                            return Err(io::Error::new(
                                io::ErrorKind::TimedOut,
                                "no request within header_timeout",
                            ));
                        }
                    }
                }
                None => read.await?,
            };
            if n == 0 {
                break;
            }
            self.clock.bytes_arrived(Instant::now());
            self.peeked.extend_from_slice(&chunk[..n]);
        }
        Ok(())
    }
}

fn count_expiry(expiry: Expiry) {
    metrics()
        .connections_closed
        .with_label_values(&[expiry.as_str()])
        .inc();
}

/// Reports from a request hook that the connection's request head has been read.
pub fn mark_head_read(stream: &pingora::protocols::Stream) {
    signal(stream, HEAD_READ);
}

/// Reports from a request hook that the request and its response are over.
pub fn mark_exchange_done(stream: &pingora::protocols::Stream) {
    signal(stream, EXCHANGE_DONE);
}

fn signal(stream: &pingora::protocols::Stream, value: u8) {
    if let Some(guarded) = (**stream).as_any().downcast_ref::<GuardedStream>() {
        guarded.signal.store(value, Ordering::Relaxed);
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.peeked_served < this.peeked.len() {
            let rest = &this.peeked[this.peeked_served..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.peeked_served += n;
            return Poll::Ready(Ok(()));
        }
        this.apply_signal();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before && this.clock.waits_for_bytes() {
                    this.clock.bytes_arrived(Instant::now());
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.poll_deadline(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(expiry) => {
                    count_expiry(expiry);
                    Poll::Ready(match expiry {
                        // An idle connection reads as closed by the client: no error to log.
                        Expiry::IdleTimeout => Ok(()),
                        Expiry::HeaderTimeout => Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "request head not complete within header_timeout",
                        )),
                    })
                }
            },
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Peek for GuardedStream {
    /// Fills `buf` with the first bytes of the connection without consuming them. Returns as
    /// soon as the bytes differ from the HTTP/2 preface (the rest of `buf` is zeroed), so a
    /// short HTTP/1 request is not held waiting for 24 bytes.
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.read_preface(buf.len()).await?;
        let n = self.peeked.len().min(buf.len());
        buf[..n].copy_from_slice(&self.peeked[..n]);
        buf[n..].fill(0);
        if self.peeked.len() >= H2_PREFACE.len() && self.peeked[..24] == H2_PREFACE[..] {
            self.clock.multiplexed();
        }
        Ok(true)
    }
}

#[async_trait]
impl Shutdown for GuardedStream {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await;
    }
}

impl UniqueID for GuardedStream {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for GuardedStream {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for GuardedStream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for GuardedStream {
    fn get_proxy_digest(&self) -> Option<Arc<pingora::protocols::raw_connect::ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: pingora::protocols::raw_connect::ProxyDigest) {
        self.inner.set_proxy_digest(digest);
    }
}

impl GetSocketDigest for GuardedStream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest);
    }
}

impl std::fmt::Debug for GuardedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedStream")
            .field("inner", &self.inner)
            .field("phase", &self.clock.phase())
            .finish()
    }
}
