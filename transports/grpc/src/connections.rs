//! Accepting connections without letting them take the server down.
//!
//! - **Back-off.** An accept error (out of descriptors, say) is retried after a pause that
//!   doubles up to one second, never at once: a failing accept loop must not spin.
//! - **A cap.** At most `max_connections` connections are open. At the cap, the oldest
//!   connection that has not opened a request yet is closed to make room for the new one
//!   (idle sockets cannot lock real clients out); when every open connection has made a
//!   request, the new one is accepted and closed at once (the client sees the refusal
//!   promptly instead of waiting in the backlog).
//! - **No stream, no connection.** A connection that has not opened a single request
//!   (a gRPC call, a health check) within `handshake_timeout` of being accepted is closed:
//!   idle sockets cannot hold the server's descriptors.
//!
//! Whether a connection has opened a request is learnt from the request itself: tonic puts
//! a connection's [`ConnInfo`] into every request's extensions, and [`mark_request`] (a
//! layer of the server) records it.

use futures::task::AtomicWaker;
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;

/// How connections are accepted and bounded.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// A connection must open a request within this long.
    pub handshake_timeout: Duration,
    /// HTTP/2 streams one connection may have open at once (clients queue further calls).
    pub max_streams_per_connection: usize,
}

/// What a connection shares with the requests it carries and with the accept loop.
#[derive(Debug, Default)]
struct ConnState {
    opened_request: AtomicBool,
    /// The accept loop closed it to make room.
    evicted: AtomicBool,
    /// Its place under the cap has been given back (by its end or by its eviction).
    released: AtomicBool,
    /// Wakes the connection's reader when it is evicted.
    waker: AtomicWaker,
}

/// The open connections under the cap, and those not yet known to be real clients.
#[derive(Debug)]
struct Slots {
    open: AtomicUsize,
    max: usize,
    /// Connections in accept order that had not opened a request when accepted.
    idle: Mutex<VecDeque<Weak<ConnState>>>,
}

impl Slots {
    fn release(&self, state: &ConnState) -> bool {
        let first = !state.released.swap(true, Ordering::AcqRel);
        if first {
            self.open.fetch_sub(1, Ordering::AcqRel);
        }
        first
    }

    /// Takes a place under the cap, evicting the oldest connection that has not opened a
    /// request if the cap is reached; `None` when no place can be made.
    fn admit(&self, stats: &AcceptStats) -> Option<Arc<ConnState>> {
        let state = Arc::new(ConnState::default());
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if self.open.load(Ordering::Acquire) >= self.max {
            let evicted = loop {
                let Some(candidate) = idle.pop_front() else {
                    break false;
                };
                let Some(candidate) = candidate.upgrade() else {
                    continue;
                };
                if candidate.opened_request.load(Ordering::Acquire) {
                    continue;
                }
                if self.release(&candidate) {
                    candidate.evicted.store(true, Ordering::Release);
                    candidate.waker.wake();
                    stats.evicted.fetch_add(1, Ordering::Relaxed);
                    break true;
                }
            };
            if !evicted {
                return None;
            }
        }
        self.open.fetch_add(1, Ordering::AcqRel);
        // Forget connections that have ended or made a request, now and then.
        if idle.len() >= 2 * self.max {
            idle.retain(|c| {
                c.upgrade()
                    .is_some_and(|c| !c.opened_request.load(Ordering::Acquire))
            });
        }
        idle.push_back(Arc::downgrade(&state));
        Some(state)
    }
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

/// One accepted connection: the socket, its place under the cap, the handshake deadline.
pub(crate) struct Conn {
    io: TcpStream,
    info: ConnInfo,
    deadline: Option<Pin<Box<Sleep>>>,
    slots: Arc<Slots>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.slots.release(&self.info.state);
    }
}

impl Conn {
    fn check_deadline(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.info.state.evicted.load(Ordering::Acquire) {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "closed to make room: the connection opened no request and the server is at its connection limit",
            ));
        }
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
        if !this.info.state.opened_request.load(Ordering::Acquire) {
            // Until it makes a request, the connection may be evicted: be woken for it.
            this.info.state.waker.register(cx.waker());
            if let Err(e) = this.check_deadline(cx) {
                return Poll::Ready(Err(e));
            }
        }
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
    /// Connections without a request closed to make room for a new one.
    pub evicted: AtomicUsize,
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
    let slots = Arc::new(Slots {
        open: AtomicUsize::new(0),
        max: limits.max_connections.max(1),
        idle: Mutex::new(VecDeque::new()),
    });
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
                            let Some(state) = slots.admit(&stats) else {
                                // At the cap and every connection is a client: refuse
                                // this one at once.
                                if stats
                                    .refused
                                    .fetch_add(1, Ordering::Relaxed)
                                    .is_multiple_of(1000)
                                {
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
                                    state,
                                },
                                deadline: Some(Box::pin(tokio::time::sleep(
                                    limits.handshake_timeout,
                                ))),
                                slots: Arc::clone(&slots),
                            };
                            return Some((Ok(conn), (listener, slots, backoff)));
                        }
                        Err(e) => {
                            if stats
                                .errors
                                .fetch_add(1, Ordering::Relaxed)
                                .is_multiple_of(100)
                            {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_oldest_connection_without_a_request_makes_room() {
        let slots = Slots {
            open: AtomicUsize::new(0),
            max: 2,
            idle: Mutex::new(VecDeque::new()),
        };
        let stats = AcceptStats::default();
        let a = slots.admit(&stats).expect("a");
        let b = slots.admit(&stats).expect("b");
        let c = slots.admit(&stats).expect("c makes room");
        assert!(
            a.evicted.load(Ordering::Acquire),
            "the oldest idle one goes"
        );
        assert!(!b.evicted.load(Ordering::Acquire));
        assert_eq!(slots.open.load(Ordering::Acquire), 2);
        // A connection that made a request is never evicted.
        b.opened_request.store(true, Ordering::Release);
        let d = slots.admit(&stats).expect("d makes room");
        assert!(c.evicted.load(Ordering::Acquire));
        assert!(!b.evicted.load(Ordering::Acquire));
        d.opened_request.store(true, Ordering::Release);
        assert!(
            slots.admit(&stats).is_none(),
            "every connection is a client"
        );
        assert_eq!(stats.evicted.load(Ordering::Relaxed), 2);
        // An evicted connection's end does not give its place back twice.
        assert!(!slots.release(&a));
        assert!(slots.release(&b));
        assert_eq!(slots.open.load(Ordering::Acquire), 1);
        assert!(slots.admit(&stats).is_some());
    }
}
