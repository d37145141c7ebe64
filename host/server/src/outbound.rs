//! warden-core's outbound HTTP ([`warden_core::outbound`]) over reqwest:
//! the one place the domain's calls to providers, sinks and health URLs
//! meet an HTTP stack. Redirects are never followed.

use std::sync::Arc;

use futures::TryStreamExt as _;
use warden_core::outbound::{Client, Connector, Error, Options, Request, Response};

/// Makes reqwest clients.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reqwest;

impl Connector for Reqwest {
    fn client(&self, options: &Options) -> Result<Arc<dyn Client>, Error> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(options.tcp_nodelay);
        if let Some(t) = options.timeout {
            builder = builder.timeout(t);
        }
        if let Some(t) = options.connect_timeout {
            builder = builder.connect_timeout(t);
        }
        if let Some(n) = options.pool_max_idle_per_host {
            builder = builder.pool_max_idle_per_host(n);
        }
        if let Some(t) = options.pool_idle_timeout {
            builder = builder.pool_idle_timeout(t);
        }
        let client = builder
            .build()
            .map_err(|e| Error::new(format!("cannot build an HTTP client: {}", message(e))))?;
        Ok(Arc::new(ReqwestClient(client)))
    }
}

struct ReqwestClient(reqwest::Client);

#[async_trait::async_trait]
impl Client for ReqwestClient {
    async fn send(&self, request: Request) -> Result<Response, Error> {
        let mut builder = self
            .0
            .request(request.method, &request.url)
            .headers(request.headers)
            .body(request.body);
        if let Some(t) = request.timeout {
            builder = builder.timeout(t);
        }
        let response = builder.send().await.map_err(|e| Error::new(message(e)))?;
        Ok(Response {
            status: response.status(),
            headers: response.headers().clone(),
            content_length: response.content_length(),
            body: Box::pin(response.bytes_stream().map_err(|e| Error::new(message(e)))),
        })
    }
}

/// `e` and its causes, without the URL (which may hold a key).
fn message(e: reqwest::Error) -> String {
    warden_core::error::chain(&e.without_url())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A one-shot HTTP server on loopback that answers `answer` as it is.
    async fn answering(answer: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let _ = socket.read(&mut buf).await;
            socket.write_all(answer.as_bytes()).await.unwrap();
        });
        format!("http://{addr}/hook?key=s3cret")
    }

    #[tokio::test]
    async fn a_redirect_comes_back_as_it_is() {
        let url = answering(
            "HTTP/1.1 302 Found\r\nLocation: http://example.invalid/\r\nContent-Length: 0\r\n\r\n",
        )
        .await;
        let client = Reqwest.client(&Options::default()).unwrap();
        let r = client.send(Request::new(Method::GET, url)).await.unwrap();
        assert_eq!(r.status, http::StatusCode::FOUND);
    }

    #[tokio::test]
    async fn a_body_arrives_with_its_length() {
        let url = answering("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello").await;
        let client = Reqwest.client(&Options::default()).unwrap();
        let mut r = client.send(Request::new(Method::GET, url)).await.unwrap();
        assert_eq!(r.content_length, Some(5));
        let mut body = Vec::new();
        while let Some(chunk) = r.chunk().await.unwrap() {
            body.extend_from_slice(&chunk);
        }
        assert_eq!(body, b"hello");
    }

    #[tokio::test]
    async fn an_unreachable_address_is_an_error_without_its_url() {
        // Bound and dropped: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = Reqwest.client(&Options::default()).unwrap();
        let e = client
            .send(Request::new(
                Method::POST,
                format!("http://127.0.0.1:{port}/hook?key=s3cret"),
            ))
            .await
            .err()
            .unwrap();
        let text = e.to_string();
        assert!(
            !text.contains("s3cret") && !text.contains("/hook"),
            "{text}"
        );
        assert!(!text.is_empty());
    }
}
