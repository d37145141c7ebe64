//! The HTTP server's connections (SPEC RL-5, SE-4): the accept loop, the
//! caps on connections, the header-read timeout that also ends idle
//! keep-alive connections, the SSE stream slots of each token, and the
//! drain with a deadline at shutdown.
//!
//! `axum::serve` has none of these: it sets no timer, so a client that
//! sends its headers one byte at a time (slowloris) holds a connection and
//! a task for as long as it likes, and its graceful shutdown waits for
//! every connection without a deadline, so one open event stream kept the
//! host from ever exiting on SIGTERM.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use warden_core::sync::Unpoisoned as _;

/// The client's address, put in every request's extensions by the accept
/// loop (rate limits by address read it).
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

/// The bounds of the HTTP server, from `[http]`.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// A client has this long to send a request's headers, counted from
    /// the moment the connection is ready for its next request, so an idle
    /// keep-alive connection is closed after it too.
    pub header_read_timeout: Duration,
    /// A request body that sends nothing for this long ends its request
    /// with an error (the handler answers 400).
    pub body_idle_timeout: Duration,
    /// Open connections, all clients together.
    pub max_connections: usize,
    /// Open connections from one IP address.
    pub max_connections_per_addr: usize,
    /// At shutdown, how long in-flight requests get to finish before their
    /// connections are closed.
    pub drain: Duration,
}

impl HttpLimits {
    /// The bounds `[http]` sets.
    pub fn of(http: &warden_core::config::HttpConfig) -> Self {
        HttpLimits {
            header_read_timeout: Duration::from_millis(http.header_read_timeout_ms),
            body_idle_timeout: Duration::from_millis(http.body_idle_timeout_ms),
            max_connections: http.max_connections,
            max_connections_per_addr: http.max_connections_per_addr,
            drain: Duration::from_millis(http.drain_ms),
        }
    }
}

/// Serves `router` on `listener` until `stop` turns true, then drains:
/// no new connection is accepted, each open one finishes the request it
/// is in (event streams end at once, see [`StreamSlots`]) and is closed,
/// and whatever is still open after `limits.drain` is dropped.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    mut stop: watch::Receiver<bool>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let http = Arc::new(http);
    let total = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_addr = Arc::new(AddrCounts::default());
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => break,
            // Reap finished connections so that the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: wait a moment
                // rather than spin on the error.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Without TCP_NODELAY a small write (a stream chunk, an SSE event)
        // that follows another one before its ACK waits for that ACK: tens
        // of ms of delayed ACK on a token stream.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY on a connection");
        }
        let Ok(permit) = total.clone().try_acquire_owned() else {
            refuse(
                stream,
                &format!(
                    "the server has {} connections open, its limit ([http] max_connections); retry shortly",
                    limits.max_connections
                ),
            );
            continue;
        };
        let Some(slot) = per_addr.take(peer.ip(), limits.max_connections_per_addr) else {
            refuse(
                stream,
                &format!(
                    "{} has {} connections open, the limit per address ([http] max_connections_per_addr); close some or retry shortly",
                    peer.ip(),
                    limits.max_connections_per_addr
                ),
            );
            continue;
        };
        connections.spawn(connection(
            stream,
            peer,
            router.clone(),
            http.clone(),
            stop.clone(),
            limits.body_idle_timeout,
            (permit, slot),
        ));
    }
    drop(listener);
    let drained = tokio::time::timeout(limits.drain, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            drain_ms = limits.drain.as_millis() as u64,
            "connections still open after the drain deadline; closing them"
        );
        connections.shutdown().await;
    }
}

/// One connection, until it closes or, after `stop`, until its request in
/// flight is answered.
async fn connection<G: Send + 'static>(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    http: Arc<hyper::server::conn::http1::Builder>,
    mut stop: watch::Receiver<bool>,
    body_idle_timeout: Duration,
    _held: G,
) {
    // Requests of this connection whose response is not sent yet.
    let in_flight = Arc::new(AtomicUsize::new(0));
    let (started, answered) = (in_flight.clone(), in_flight.clone());
    let service = tower::ServiceBuilder::new()
        .map_request(move |req: axum::http::Request<hyper::body::Incoming>| {
            started.fetch_add(1, Ordering::SeqCst);
            let mut req = req.map(|body| {
                axum::body::Body::new(tower_http::timeout::TimeoutBody::new(
                    body_idle_timeout,
                    body,
                ))
            });
            req.extensions_mut().insert(PeerAddr(peer));
            req
        })
        .map_response(move |res: axum::response::Response| {
            // Counted down when hyper is done with the body (sent, or the
            // client went away).
            let guard = InFlight(answered.clone());
            res.map(|body| {
                axum::body::Body::new(Tracked {
                    body,
                    _guard: guard,
                })
            })
        })
        .service(router);
    let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    tokio::pin!(conn);
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    let outcome = tokio::select! {
        outcome = conn.as_mut() => outcome,
        () = stopped => {
            if in_flight.load(Ordering::SeqCst) == 0 {
                // Nothing to finish: idle, or a request still arriving
                // (a slowloris client would otherwise hold the drain
                // until its header timeout).
                return;
            }
            // Finish the request in flight; the serve loop's deadline
            // bounds the wait.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = outcome {
        // Header timeouts, resets and malformed requests are the client's
        // business, and a flood of them must not flood the log.
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Counts a request down when its response body is dropped.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that holds its request's [`InFlight`] until it is done.
struct Tracked {
    body: axum::body::Body,
    _guard: InFlight,
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Answers a connection over a cap with a 503 in the error envelope and
/// closes it, without waiting for anything from the client.
fn refuse(stream: TcpStream, message: &str) {
    tracing::debug!(message, "connection refused");
    let body =
        serde_json::json!({ "error": { "code": "UNAVAILABLE", "message": message } }).to_string();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{body}",
        body.len()
    );
    // A non-blocking write of a few hundred bytes fits any socket buffer;
    // if it does not, the client gets the close alone.
    let _ = stream.try_write(response.as_bytes());
}

/// Open connections per IP address.
#[derive(Default)]
struct AddrCounts {
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl AddrCounts {
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<AddrSlot> {
        let mut open = self.open.locked();
        let n = open.entry(ip).or_insert(0);
        if *n >= max.max(1) {
            return None;
        }
        *n += 1;
        Some(AddrSlot {
            counts: self.clone(),
            ip,
        })
    }
}

/// One open connection of an address; given back when dropped.
struct AddrSlot {
    counts: Arc<AddrCounts>,
    ip: IpAddr,
}

impl Drop for AddrSlot {
    fn drop(&mut self) {
        let mut open = self.counts.open.locked();
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_capped_and_given_back() {
        let counts = Arc::new(AddrCounts::default());
        let ip: IpAddr = [127, 0, 0, 1].into();
        let a = counts.take(ip, 1).unwrap();
        assert!(counts.take(ip, 1).is_none());
        assert!(counts.take([127, 0, 0, 2].into(), 1).is_some());
        drop(a);
        assert!(counts.take(ip, 1).is_some());
    }
}
