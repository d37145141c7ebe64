//! Outbound HTTP as the domain uses it: the gateway's calls to model
//! providers, the alert sinks' posts and the managed processes' health
//! probes. The domain names what it sends and reads here; the client that
//! does it (reqwest, in the `warden` binary) is handed in by whoever wires
//! the services, so that no HTTP stack is a dependency of this crate
//! (issue 16; `tests/layering.rs` checks the whole dependency tree).
//!
//! A [`Connector`] makes [`Client`]s with the [`Options`] each service
//! needs; a client sends a [`Request`] and gives back a [`Response`]
//! whose body arrives as a stream of chunks. Redirects are never
//! followed: an answer of 3xx comes back as it is.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use http::{HeaderMap, Method, StatusCode};

/// A response body: its chunks as they arrive.
pub type Body = Pin<Box<dyn Stream<Item = Result<Bytes, Error>> + Send>>;

/// What a service sends.
#[derive(Debug)]
pub struct Request {
    pub method: Method,
    pub url: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The whole exchange, sending to the end of the body; none when the
    /// client's own [`Options::timeout`] applies.
    pub timeout: Option<Duration>,
}

impl Request {
    /// A `method` request to `url` with no headers and no body.
    pub fn new(method: Method, url: impl Into<String>) -> Request {
        Request {
            method,
            url: url.into(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            timeout: None,
        }
    }

    /// A POST of `value` as JSON.
    pub fn post_json(url: impl Into<String>, value: &serde_json::Value) -> Request {
        let mut request = Request::new(Method::POST, url);
        request.headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        // A `Value` always serialises (its map keys are strings).
        request.body = Bytes::from(serde_json::to_vec(value).unwrap_or_default());
        request
    }
}

/// What came back: the status and headers at once, the body as it
/// arrives.
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The body's length when the peer said it up front.
    pub content_length: Option<u64>,
    pub body: Body,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("content_length", &self.content_length)
            .finish_non_exhaustive()
    }
}

impl Response {
    /// The body's next chunk; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        self.body.next().await.transpose()
    }

    /// The first `max` bytes of the body as text (lossy UTF-8), for an
    /// error message; what cannot be read is left out.
    pub async fn text_prefix(mut self, max: usize) -> String {
        let mut out = Vec::new();
        while out.len() < max {
            match self.chunk().await {
                Ok(Some(chunk)) => out.extend_from_slice(&chunk),
                _ => break,
            }
        }
        out.truncate(max);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Why a request got no answer, or its body broke off. The message names
/// the cause and its causes but never the URL: a provider's or a sink's
/// URL may hold a key, and these texts end up in logs, call records,
/// breaker reasons and alerts.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    message: String,
}

impl Error {
    pub fn new(message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
        }
    }
}

/// How a service's client behaves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Whole exchange, unless the request sets its own.
    pub timeout: Option<Duration>,
    /// Establishing a connection.
    pub connect_timeout: Option<Duration>,
    /// Idle connections kept per host (the client's default when none).
    pub pool_max_idle_per_host: Option<usize>,
    /// How long an idle connection is kept (the client's default when none).
    pub pool_idle_timeout: Option<Duration>,
    /// Sets TCP_NODELAY on its connections.
    pub tcp_nodelay: bool,
}

/// Sends requests.
#[async_trait::async_trait]
pub trait Client: Send + Sync {
    /// Sends `request`; the response as soon as its head arrived.
    async fn send(&self, request: Request) -> Result<Response, Error>;
}

/// Makes clients.
pub trait Connector: Send + Sync {
    /// A client that behaves as `options` say.
    fn client(&self, options: &Options) -> Result<Arc<dyn Client>, Error>;
}

/// A connector for wiring that sends nothing: each of its clients
/// answers every request with an error saying so. For tests of parts that
/// make no outbound call (the API's extractors); a server is wired with a
/// real one.
#[derive(Debug, Clone, Copy, Default)]
pub struct Disconnected;

struct DisconnectedClient;

#[async_trait::async_trait]
impl Client for DisconnectedClient {
    async fn send(&self, request: Request) -> Result<Response, Error> {
        Err(Error::new(format!(
            "outbound HTTP is not connected here (a {} request was not sent)",
            request.method
        )))
    }
}

impl Connector for Disconnected {
    fn client(&self, _: &Options) -> Result<Arc<dyn Client>, Error> {
        Ok(Arc::new(DisconnectedClient))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(chunks: Vec<Result<&'static [u8], Error>>) -> Response {
        Response {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            content_length: None,
            body: Box::pin(futures::stream::iter(
                chunks.into_iter().map(|c| c.map(Bytes::from_static)),
            )),
        }
    }

    #[tokio::test]
    async fn text_prefix_stops_at_its_limit_and_at_a_broken_body() {
        let r = response(vec![Ok(b"hello "), Ok(b"world"), Ok(b"!")]);
        assert_eq!(r.text_prefix(8).await, "hello wo");
        let r = response(vec![Ok(b"part"), Err(Error::new("reset")), Ok(b"never")]);
        assert_eq!(r.text_prefix(100).await, "part");
    }

    #[tokio::test]
    async fn a_disconnected_client_says_it_sent_nothing() {
        let client = Disconnected.client(&Options::default()).unwrap();
        let e = client
            .send(Request::new(Method::GET, "http://127.0.0.1:1/"))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("not connected"), "{e}");
    }
}
