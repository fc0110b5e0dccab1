//! Accepting connections without letting them take the server down.
//!
//! - **Back-off.** An accept error (out of descriptors, say) is retried after a pause that
//!   doubles up to one second, never at once: a failing accept loop must not spin.
//! - **A cap.** At most `max_connections` connections are open; one beyond is accepted and
//!   closed at once (the client sees the refusal promptly instead of waiting in the backlog).
//! - **No stream, no connection.** A connection that has not opened a single request
//!   (a gRPC call, a health check) within `handshake_timeout` of being accepted is closed:
//!   idle sockets cannot hold the server's descriptors.
//!
//! Whether a connection has opened a request is learnt from the request itself: tonic puts
//! a connection's [`ConnInfo`] into every request's extensions, and [`mark_request`] (a
//! layer of the server) records it.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

/// How connections are accepted and bounded.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// A connection must open a request within this long.
    pub handshake_timeout: Duration,
}

/// What a connection shares with the requests it carries.
#[derive(Debug, Default)]
struct ConnState {
    opened_request: AtomicBool,
}

/// Connection information tonic hands to every request of a connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    remote: Option<SocketAddr>,
    state: Arc<ConnState>,
}

impl ConnInfo {
    /// The client's address.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.remote
    }
}

/// Records, for the connection a request came on, that it opened one.
pub(crate) fn mark_request<B>(request: http::Request<B>) -> http::Request<B> {
    let info = request.extensions().get::<ConnInfo>().cloned().or_else(|| {
        request
            .extensions()
            .get::<tonic::transport::server::TlsConnectInfo<ConnInfo>>()
            .map(|tls| tls.get_ref().clone())
    });
    if let Some(info) = info {
        info.state.opened_request.store(true, Ordering::Release);
    }
    request
}

/// One accepted connection: the socket, its slot under the cap, the handshake deadline.
pub(crate) struct Conn {
    io: TcpStream,
    info: ConnInfo,
    deadline: Option<Pin<Box<Sleep>>>,
    _slot: OwnedSemaphorePermit,
}

impl Conn {
    fn check_deadline(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.info.state.opened_request.load(Ordering::Acquire) {
            self.deadline = None;
            return Ok(());
        }
        if let Some(deadline) = self.deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the connection opened no request in time",
                ));
            }
        }
        Ok(())
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(result) => Poll::Ready(result),
            // Waiting for bytes: the deadline's timer is registered with the same waker.
            Poll::Pending => match this.check_deadline(cx) {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            },
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

/// Counters of what the accept loop did, for logs and tests.
#[derive(Debug, Default)]
pub struct AcceptStats {
    /// Connections refused because the cap was reached.
    pub refused: AtomicUsize,
    /// Accept errors (each followed by a pause).
    pub errors: AtomicUsize,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The stream of connections the server serves: accepted from `listener` within `limits`.
pub(crate) fn incoming(
    listener: TcpListener,
    limits: ConnectionLimits,
    stats: Arc<AcceptStats>,
) -> impl futures::Stream<Item = io::Result<Conn>> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    futures::stream::unfold(
        (listener, slots, FIRST_BACKOFF),
        move |(listener, slots, mut backoff)| {
            let stats = Arc::clone(&stats);
            let limits = limits.clone();
            async move {
                loop {
                    match listener.accept().await {
                        Ok((io, remote)) => {
                            backoff = FIRST_BACKOFF;
                            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                                // At the cap: refuse this one at once.
                                if stats.refused.fetch_add(1, Ordering::Relaxed).is_multiple_of(1000) {
                                    tracing::warn!(%remote, max = limits.max_connections,
                                        "connection refused: at the connection limit (--max-connections)");
                                }
                                drop(io);
                                continue;
                            };
                            let _ = io.set_nodelay(true);
                            let conn = Conn {
                                io,
                                info: ConnInfo {
                                    remote: Some(remote),
                                    state: Arc::new(ConnState::default()),
                                },
                                deadline: Some(Box::pin(tokio::time::sleep(
                                    limits.handshake_timeout,
                                ))),
                                _slot: slot,
                            };
                            return Some((Ok(conn), (listener, slots, backoff)));
                        }
                        Err(e) => {
                            if stats.errors.fetch_add(1, Ordering::Relaxed).is_multiple_of(100) {
                                tracing::warn!(error = %e, pause_ms = backoff.as_millis() as u64,
                                    "cannot accept a connection; pausing before the next try");
                            }
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(MAX_BACKOFF);
                        }
                    }
                }
            }
        },
    )
}
