//! A minimal HTTP/1.1 keep-alive client connection on top of hyper's
//! low-level connection API: one TCP connection, one request at a time,
//! reconnecting lazily when the server closed it. Owning the connection
//! (rather than using a pool) lets the HTTP scenarios decide exactly how
//! many sockets they hold, the way a browser running janus.js would: one
//! for requests and one for the session's long poll.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::janus::{BenchError, Result};

/// Where an HTTP endpoint lives, from a `http://host:port/path` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    /// `host:port`, used both to connect and as the Host header.
    pub authority: String,
    /// Base path without a trailing slash (`/janus`), possibly empty.
    pub path: String,
}

impl HttpUrl {
    /// Parses plain `http://` URLs only: the bench targets loopback
    /// servers and has no TLS stack on purpose (fewer dependencies).
    pub fn parse(url: &str) -> Result<HttpUrl> {
        let rest =
            url.strip_prefix("http://").ok_or_else(|| BenchError::Connect(format!("not an http:// URL: {url}")))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(BenchError::Connect(format!("no host in URL: {url}")));
        }
        let authority = if authority.contains(':') && !authority.ends_with(']') {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(HttpUrl { authority, path: path.trim_end_matches('/').to_string() })
    }
}

/// The live part of a connection: hyper's request sender plus the task
/// driving the socket, aborted on drop so the TCP connection closes at once
/// even if a request was cut short by a timeout.
struct Live {
    sender: SendRequest<Full<Bytes>>,
    driver: JoinHandle<()>,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// One keep-alive HTTP/1.1 connection to `url.authority`.
pub struct HttpConn {
    authority: String,
    live: Option<Live>,
    /// Shared by all connections of one client, so reconnects are visible
    /// in the report even after a connection object was dropped.
    connects: Arc<AtomicU64>,
}

impl HttpConn {
    pub fn new(url: &HttpUrl, connects: Arc<AtomicU64>) -> HttpConn {
        HttpConn { authority: url.authority.clone(), live: None, connects }
    }

    pub async fn post(&mut self, path: &str, body: Vec<u8>, timeout: Duration) -> Result<Bytes> {
        self.send(Method::POST, path, body, timeout).await
    }

    pub async fn get(&mut self, path: &str, timeout: Duration) -> Result<Bytes> {
        self.send(Method::GET, path, Vec::new(), timeout).await
    }

    /// Sends one request and reads the whole body, all within `timeout`.
    /// On a transport failure or timeout the connection is dropped: its
    /// state is unknown, and the next request reconnects. Requests are never retried, because a
    /// POST such as `create` is not idempotent.
    async fn send(&mut self, method: Method, path: &str, body: Vec<u8>, timeout: Duration) -> Result<Bytes> {
        let deadline = Instant::now() + timeout;
        let result = tokio::time::timeout_at(deadline, self.send_inner(method, path, body)).await;
        match result {
            Ok(Ok(bytes)) => Ok(bytes),
            // A non-2xx status is a complete response: the connection is
            // still in a clean state and stays usable.
            Ok(Err(e @ BenchError::Status(_))) => Err(e),
            Ok(Err(e)) => {
                self.live = None;
                Err(e)
            }
            Err(_) => {
                self.live = None;
                Err(BenchError::Timeout)
            }
        }
    }

    async fn send_inner(&mut self, method: Method, path: &str, body: Vec<u8>) -> Result<Bytes> {
        let has_body = !body.is_empty();
        let mut builder =
            Request::builder().method(method).uri(path).header(hyper::header::HOST, self.authority.as_str());
        if has_body {
            builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = builder
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| BenchError::Protocol(format!("bad request: {e}")))?;

        let sender = self.ready_sender().await?;
        let resp = sender.send_request(req).await.map_err(|e| BenchError::Io(e.to_string()))?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.map_err(|e| BenchError::Io(e.to_string()))?.to_bytes();
        if !status.is_success() {
            return Err(BenchError::Status(status.as_u16()));
        }
        Ok(bytes)
    }

    /// Returns a sender ready for the next request, reconnecting if the
    /// server closed the previous keep-alive connection meanwhile.
    async fn ready_sender(&mut self) -> Result<&mut SendRequest<Full<Bytes>>> {
        let reusable = match self.live.as_mut() {
            Some(live) => live.sender.ready().await.is_ok(),
            None => false,
        };
        if !reusable {
            self.live = Some(self.connect().await?);
        }
        match self.live.as_mut() {
            Some(live) => Ok(&mut live.sender),
            None => Err(BenchError::Closed),
        }
    }

    async fn connect(&mut self) -> Result<Live> {
        let stream = TcpStream::connect(&self.authority).await.map_err(|e| BenchError::Connect(e.to_string()))?;
        // Requests are small and latency-bound; Nagle would add delays.
        stream.set_nodelay(true).map_err(|e| BenchError::Connect(e.to_string()))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| BenchError::Connect(e.to_string()))?;
        self.connects.fetch_add(1, Ordering::Relaxed);
        let driver = tokio::spawn(async move {
            // The connection ends when the server closes it or the sender
            // is dropped; either way the next request reconnects.
            let _ = conn.await;
        });
        Ok(Live { sender, driver })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let u = HttpUrl::parse("http://127.0.0.1:8088/janus/").unwrap();
        assert_eq!(u.authority, "127.0.0.1:8088");
        assert_eq!(u.path, "/janus");
        let u = HttpUrl::parse("http://localhost").unwrap();
        assert_eq!(u.authority, "localhost:80");
        assert_eq!(u.path, "");
        assert!(HttpUrl::parse("ws://x/").is_err());
        assert!(HttpUrl::parse("http:///janus").is_err());
    }
}
