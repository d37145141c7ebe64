//! Accepting and serving connections.
//!
//! Connections are served with hyper directly rather than through
//! `axum::serve` for three things axum does not offer: a handler can drop
//! its own connection without a response ([`Conn::drop_connection`]), a
//! stream event is stamped when the write carrying it returns (the
//! [`Stamping`] socket wrapper), and shutdown closes every connection,
//! hanging ones included, because this task owns them all.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinSet;
use tower::ServiceExt as _;

use crate::handle::{ChunkTiming, StreamLog, lock, unix_nanos};

/// Serves `app` on `listener` until `stop` fires or its sender is dropped
/// (the [`crate::Upstream`] went away), then closes every connection.
pub(crate) async fn serve(listener: TcpListener, app: Router, mut stop: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    connections.spawn(connection(tcp, app.clone()));
                }
                // Out of file descriptors and the like: wait a little rather
                // than spin (axum::serve does the same).
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            // Reap finished connections so that the set stays small.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = &mut stop => break,
        }
    }
    drop(listener);
    connections.shutdown().await;
}

/// Serves one connection until the client closes it or a handler drops it.
async fn connection(tcp: TcpStream, app: Router) {
    // Stream events are small writes that must leave at once.
    let _ = tcp.set_nodelay(true);
    let conn = Arc::new(Conn::default());
    let io = TokioIo::new(Stamping {
        tcp,
        conn: conn.clone(),
    });
    let ext = ConnRef(conn.clone());
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ext.clone());
        app.clone().oneshot(req.map(axum::body::Body::new))
    });
    let http = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
    tokio::select! {
        _ = http => {}
        // Dropping `http` closes the socket, whatever was under way.
        () = conn.kill.notified() => {}
    }
}

/// What a handler can do to the connection that carried its request.
#[derive(Default)]
pub(crate) struct Conn {
    kill: Notify,
    /// Whether `unstamped` may be non-empty, so that writes outside streams
    /// do not take the lock.
    pending: AtomicBool,
    /// Stream events handed to hyper and not yet written.
    unstamped: Mutex<Vec<(usize, Arc<StreamLog>)>>,
}

impl Conn {
    /// Closes the connection without a response: the handler calling this
    /// should then wait forever, as it is dropped with the connection.
    pub fn drop_connection(&self) {
        self.kill.notify_one();
    }

    /// Event `index` of the stream logged in `log` was handed to hyper: the
    /// next write that returns carries it.
    pub fn handed_over(&self, index: usize, log: Arc<StreamLog>) {
        lock(&self.unstamped).push((index, log));
        self.pending.store(true, Ordering::Release);
    }

    /// A write just returned: every event handed over before it started
    /// was in it. (A partial write would stamp an event a little early; the
    /// events are a few hundred bytes on loopback, so writes are whole.)
    fn written(&self) {
        if !self.pending.swap(false, Ordering::Acquire) {
            return;
        }
        let events = std::mem::take(&mut *lock(&self.unstamped));
        let at = Instant::now();
        let unix_nanos = unix_nanos();
        for (index, log) in events {
            lock(&log).push(ChunkTiming {
                index,
                at,
                unix_nanos,
            });
        }
    }
}

/// The request extension that gives a handler its connection.
#[derive(Clone)]
pub(crate) struct ConnRef(pub Arc<Conn>);

/// The socket, telling its [`Conn`] when a write returned.
struct Stamping {
    tcp: TcpStream,
    conn: Arc<Conn>,
}

impl Stamping {
    fn stamp(&self, written: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = written
            && *n > 0
        {
            self.conn.written();
        }
    }
}

impl AsyncRead for Stamping {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stamping {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.tcp).poll_write(cx, buf);
        self.stamp(&r);
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs);
        self.stamp(&r);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}
