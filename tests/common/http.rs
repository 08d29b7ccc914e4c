//! A typed HTTP client for the Janus and Admin APIs, so tests read like the reference
//! transcripts (`POST /janus/S {...}`). Redirects are not followed (the 302 of `GET /janus/S/H`
//! is asserted as such) and proxies from the environment are ignored.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

use super::{tx, ECHOTEST};

/// The whole of an HTTP answer.
#[derive(Debug)]
pub struct HttpReply {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body as text.
    pub body: String,
}

impl HttpReply {
    /// The body parsed as JSON (panics with the body if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): status {} body {:?}", self.status, self.body))
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A client bound to one listener.
#[derive(Clone)]
pub struct HttpClient {
    client: Client,
    base: String,
}

impl HttpClient {
    /// A client for `addr`.
    pub fn new(addr: SocketAddr) -> HttpClient {
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            // Longer than any long poll a test configures.
            .timeout(Duration::from_secs(45))
            .build()
            .expect("build the HTTP client");
        HttpClient { client, base: format!("http://{addr}") }
    }

    /// Any method, any body.
    pub async fn request(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> HttpReply {
        let mut req = self.client.request(method.clone(), format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{method} {path} failed: {e}"));
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap_or_else(|e| panic!("{method} {path}: reading the body failed: {e}"));
        HttpReply { status, headers, body }
    }

    /// `POST path` with raw bytes.
    pub async fn post_raw(&self, path: &str, body: impl Into<Vec<u8>>) -> HttpReply {
        self.request(Method::POST, path, Some(body.into())).await
    }

    /// `POST path` with a JSON value; the reply must be HTTP 200 with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> Value {
        let reply = self.post_raw(path, body.to_string()).await;
        assert_eq!(reply.status, StatusCode::OK, "POST {path} {body}: HTTP status (body {:?})", reply.body);
        reply.json()
    }

    /// `GET path`: status and body text.
    pub async fn get(&self, path: &str) -> (StatusCode, String) {
        let reply = self.request(Method::GET, path, None).await;
        (reply.status, reply.body)
    }

    /// `GET path`, expecting HTTP 200 with a JSON body.
    pub async fn get_json(&self, path: &str) -> Value {
        let reply = self.request(Method::GET, path, None).await;
        assert_eq!(reply.status, StatusCode::OK, "GET {path}: HTTP status (body {:?})", reply.body);
        reply.json()
    }

    /// `create` at `/janus`; returns the session id.
    pub async fn create(&self) -> u64 {
        self.create_with(json!({})).await
    }

    /// `create` with extra fields (`apisecret`, `token`, ...); returns the session id.
    pub async fn create_with(&self, extra: Value) -> u64 {
        let mut req = json!({"janus": "create", "transaction": tx()});
        merge(&mut req, extra);
        let reply = self.post("/janus", req.clone()).await;
        assert_eq!(reply["janus"], "success", "create {req}: {reply}");
        reply["data"]["id"].as_u64().unwrap_or_else(|| panic!("create reply without data.id: {reply}"))
    }

    /// `attach` to `plugin` at `/janus/S`; returns the handle id.
    pub async fn attach(&self, session: u64, plugin: &str) -> u64 {
        self.attach_with(session, plugin, json!({})).await
    }

    /// `attach` with extra fields; returns the handle id.
    pub async fn attach_with(&self, session: u64, plugin: &str, extra: Value) -> u64 {
        let mut req = json!({"janus": "attach", "transaction": tx(), "plugin": plugin});
        merge(&mut req, extra);
        let reply = self.post(&format!("/janus/{session}"), req.clone()).await;
        assert_eq!(reply["janus"], "success", "attach {req}: {reply}");
        reply["data"]["id"].as_u64().unwrap_or_else(|| panic!("attach reply without data.id: {reply}"))
    }

    /// A session with one EchoTest handle.
    pub async fn session_with_echotest(&self) -> (u64, u64) {
        let s = self.create().await;
        let h = self.attach(s, ECHOTEST).await;
        (s, h)
    }

    /// `POST /janus/S {"janus":name,...}` with a fresh transaction.
    pub async fn session_request(&self, session: u64, name: &str, extra: Value) -> Value {
        let mut req = json!({"janus": name, "transaction": tx()});
        merge(&mut req, extra);
        self.post(&format!("/janus/{session}"), req).await
    }

    /// `POST /janus/S/H {"janus":name,...}` with a fresh transaction.
    pub async fn handle_request(&self, session: u64, handle: u64, name: &str, extra: Value) -> Value {
        let mut req = json!({"janus": name, "transaction": tx()});
        merge(&mut req, extra);
        self.post(&format!("/janus/{session}/{handle}"), req).await
    }

    /// `keepalive` on S: the reply.
    pub async fn keepalive(&self, session: u64) -> Value {
        self.session_request(session, "keepalive", json!({})).await
    }

    /// `ping` at the root: whether the server answered `pong`.
    pub async fn pings(&self) -> bool {
        let reply = self.post_raw("/janus", json!({"janus": "ping", "transaction": "alive"}).to_string()).await;
        reply.status == StatusCode::OK && reply.json()["janus"] == "pong"
    }

    /// Long polls `GET /janus/S?query` until an event matching `pred` arrives (skipping
    /// keepalives and other events); panics after `deadline`.
    pub async fn poll_until(&self, session: u64, deadline: Duration, mut pred: impl FnMut(&Value) -> bool) -> Value {
        let start = std::time::Instant::now();
        loop {
            let events = self.get_json(&format!("/janus/{session}?maxev=10")).await;
            let events = events.as_array().cloned().unwrap_or_else(|| panic!("maxev=10 gave a non-array: {events}"));
            if let Some(e) = events.into_iter().find(|e| pred(e)) {
                return e;
            }
            assert!(start.elapsed() < deadline, "no matching event on session {session} within {deadline:?}");
        }
    }
}

/// Adds the fields of `extra` (an object) to `target` (an object).
pub fn merge(target: &mut Value, extra: Value) {
    if let (Value::Object(t), Value::Object(e)) = (target, extra) {
        t.extend(e);
    }
}
