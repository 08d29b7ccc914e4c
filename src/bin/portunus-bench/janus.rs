//! Transport-independent Janus API wire logic: the error type every
//! scenario counts, transaction ids, request construction, reply
//! classification, the transaction router shared by the HTTP long poll and
//! the WebSocket and broker readers, the request side those last two share
//! ([`RoutedTransport`]), and [`Conn`], the one handle scenarios use to talk
//! to a server regardless of transport.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::broker_client::{BrokerLink, BrokerTarget};
use crate::janus_http::HttpJanus;
use crate::ws_client::WsJanus;

/// The plugin every current scenario attaches to. EchoTest ships with every
/// Janus build and answers `{"audio":true}` without needing media.
pub const ECHOTEST: &str = "janus.plugin.echotest";

/// Which Janus transport a scenario drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    Http,
    Ws,
    /// AMQP 0-9-1 through a RabbitMQ broker (queues `to-janus`/`from-janus`).
    Rabbitmq,
    /// MQTT 3.1.1 through a broker such as mosquitto (topics `to-janus`/`from-janus`).
    Mqtt,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Http => "http",
            Transport::Ws => "ws",
            Transport::Rabbitmq => "rabbitmq",
            Transport::Mqtt => "mqtt",
        }
    }

    pub fn default_url(self) -> &'static str {
        match self {
            Transport::Http => "http://127.0.0.1:8088/janus",
            Transport::Ws => "ws://127.0.0.1:8188/",
            Transport::Rabbitmq => "amqp://guest:guest@127.0.0.1:5672/%2f",
            Transport::Mqtt => "tcp://127.0.0.1:1883",
        }
    }

    /// Whether requests travel through a message broker.
    pub fn is_broker(self) -> bool {
        matches!(self, Transport::Rabbitmq | Transport::Mqtt)
    }
}

/// Everything needed to reach a server; cloned into every client task.
#[derive(Clone, Debug)]
pub struct Target {
    pub transport: Transport,
    pub url: String,
    pub apisecret: Option<String>,
    /// Upper bound for one request including waiting for its asynchronous
    /// answer, so a silent server can never hang a client.
    pub timeout: Duration,
    /// Queue/topic names and the shared link of the broker transports.
    pub broker: Option<BrokerTarget>,
}

/// A failure as the scenarios count it. Each variant maps to a short,
/// stable label (see [`BenchError::kind`]) so that error tables aggregate.
#[derive(Clone, Debug)]
pub enum BenchError {
    /// TCP connect or WebSocket handshake failed.
    Connect(String),
    /// No (complete) answer within the request timeout.
    Timeout,
    /// The connection broke while a request was outstanding.
    Io(String),
    /// The server answered with a non-2xx HTTP status.
    Status(u16),
    /// The reply was not valid JSON or not the shape the API promises.
    Protocol(String),
    /// The server answered `{"janus":"error"}` or a plugin error.
    Janus { code: i64, reason: String },
    /// The WebSocket closed (or the client shut it) before the answer.
    Closed,
}

impl BenchError {
    /// Short label used as the key when counting errors.
    pub fn kind(&self) -> String {
        match self {
            BenchError::Connect(_) => "connect".into(),
            BenchError::Timeout => "timeout".into(),
            BenchError::Io(_) => "io".into(),
            BenchError::Status(s) => format!("http-{s}"),
            BenchError::Protocol(_) => "protocol".into(),
            BenchError::Janus { code, .. } => format!("janus-{code}"),
            BenchError::Closed => "closed".into(),
        }
    }
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::Connect(e) => write!(f, "connect failed: {e}"),
            BenchError::Timeout => write!(f, "timed out"),
            BenchError::Io(e) => write!(f, "connection error: {e}"),
            BenchError::Status(s) => write!(f, "HTTP status {s}"),
            BenchError::Protocol(e) => write!(f, "protocol error: {e}"),
            BenchError::Janus { code, reason } => write!(f, "janus error {code}: {reason}"),
            BenchError::Closed => write!(f, "connection closed"),
        }
    }
}

impl std::error::Error for BenchError {}

pub type Result<T> = std::result::Result<T, BenchError>;

static NEXT_TRANSACTION: AtomicU64 = AtomicU64::new(1);

/// A process-unique transaction id. Uniqueness per process is enough: the
/// router of every connection only sees transactions it sent itself.
pub fn next_transaction() -> String {
    format!("pb{}", NEXT_TRANSACTION.fetch_add(1, Ordering::Relaxed))
}

/// Builds `{"janus":verb,"transaction":txn}` plus the apisecret if any.
pub fn request(verb: &str, txn: &str, apisecret: Option<&str>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("janus".into(), Value::from(verb));
    m.insert("transaction".into(), Value::from(txn));
    if let Some(secret) = apisecret {
        m.insert("apisecret".into(), Value::from(secret));
    }
    m
}

/// What a caller waits for after sending a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// A synchronous `success` (create, attach, detach, destroy). An `ack`
    /// is skipped in case a server acknowledges before answering.
    Success,
    /// `ack` or `success` (keepalive: Janus answers it with an ack).
    AckOrSuccess,
    /// The plugin's answer to a `message`: either an `event` carrying
    /// `plugindata` (asynchronous plugins such as Janus' EchoTest) or a
    /// `success` with `plugindata` (servers answering synchronously).
    PluginAnswer,
}

/// Decides whether `msg` (already matched by transaction) completes a
/// request waiting for `want`: `Ok(Some)` completes it, `Ok(None)` means
/// keep waiting (an ack before the event), `Err` fails it.
pub fn classify(msg: Value, want: Want) -> Result<Option<Value>> {
    let verb = msg.get("janus").and_then(Value::as_str).unwrap_or("");
    match verb {
        "error" => Err(janus_error(&msg)),
        "success" => {
            if want == Want::PluginAnswer {
                check_plugin_error(&msg)?;
            }
            Ok(Some(msg))
        }
        "ack" if want == Want::AckOrSuccess => Ok(Some(msg)),
        "event" if want == Want::PluginAnswer && msg.get("plugindata").is_some() => {
            check_plugin_error(&msg)?;
            Ok(Some(msg))
        }
        _ => Ok(None),
    }
}

fn janus_error(msg: &Value) -> BenchError {
    let err = msg.get("error");
    BenchError::Janus {
        code: err.and_then(|e| e.get("code")).and_then(Value::as_i64).unwrap_or(0),
        reason: err.and_then(|e| e.get("reason")).and_then(Value::as_str).unwrap_or("(no reason)").to_string(),
    }
}

/// Janus plugins report failures inside `plugindata.data.error`, with the
/// envelope itself saying `event`/`success`; count those as errors too.
fn check_plugin_error(msg: &Value) -> Result<()> {
    let data = msg.get("plugindata").and_then(|p| p.get("data"));
    match data.and_then(|d| d.get("error")) {
        None => Ok(()),
        Some(reason) => Err(BenchError::Janus {
            code: data.and_then(|d| d.get("error_code")).and_then(Value::as_i64).unwrap_or(0),
            reason: reason.as_str().unwrap_or("plugin error").to_string(),
        }),
    }
}

/// Extracts `data.id` from a create/attach success.
pub fn data_id(msg: &Value) -> Result<u64> {
    msg.get("data")
        .and_then(|d| d.get("id"))
        .and_then(Value::as_u64)
        .ok_or_else(|| BenchError::Protocol("success without numeric data.id".into()))
}

/// Parses one HTTP body or WebSocket frame into the list of messages it
/// carries: Janus long polls with `maxev>1` return a JSON array.
pub fn parse_messages(bytes: &[u8]) -> Result<Vec<Value>> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Array(items)) => Ok(items),
        Ok(v @ Value::Object(_)) => Ok(vec![v]),
        Ok(_) => Err(BenchError::Protocol("reply is neither object nor array".into())),
        Err(e) => Err(BenchError::Protocol(format!("invalid JSON: {e}"))),
    }
}

/// Routes incoming messages to the requests waiting for them, by
/// `transaction`. Waiters register *before* the request is sent, so an
/// event that overtakes its ack (possible over HTTP, where events travel on
/// the separate long-poll connection) is never lost.
#[derive(Default)]
pub struct Router {
    waiting: Mutex<HashMap<String, mpsc::UnboundedSender<Value>>>,
    /// Set by [`Router::close_all`] when the connection ends, so new
    /// requests fail fast instead of waiting for their timeout.
    closed: AtomicBool,
}

impl Router {
    pub fn register(self: &Arc<Self>, txn: &str) -> Waiter {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().insert(txn.to_string(), tx);
        Waiter { router: Arc::clone(self), txn: txn.to_string(), rx }
    }

    /// Hands `msg` to its waiter; returns false if nobody waits for it
    /// (keepalives, `detached`, events for finished requests).
    pub fn route(&self, msg: Value) -> bool {
        let Some(txn) = msg.get("transaction").and_then(Value::as_str) else {
            return false;
        };
        match self.lock().get(txn) {
            Some(tx) => tx.send(msg).is_ok(),
            None => false,
        }
    }

    /// Hands `msg` to the waiter registered as `key` whatever its
    /// `transaction` says (RabbitMQ replies found by correlation id).
    pub fn route_to(&self, key: &str, msg: Value) -> bool {
        match self.lock().get(key) {
            Some(tx) => tx.send(msg).is_ok(),
            None => false,
        }
    }

    /// Fails every outstanding waiter at once (their channels close), and
    /// marks the router closed for good.
    pub fn close_all(&self) {
        // Order matters: flag first, then fail the waiters, so a request
        // registering concurrently sees one or the other.
        self.closed.store(true, Ordering::SeqCst);
        self.lock().clear();
    }

    /// Whether [`Router::close_all`] ran: check it after registering.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::UnboundedSender<Value>>> {
        // A poisoned lock only means another task panicked mid-insert; the
        // map itself is still usable, and a load generator should keep going.
        self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One registered transaction; unregisters itself when dropped so that
/// timed-out or failed requests do not leak router entries.
pub struct Waiter {
    router: Arc<Router>,
    txn: String,
    rx: mpsc::UnboundedReceiver<Value>,
}

impl Waiter {
    /// Waits until a routed message satisfies `want`, or `deadline`.
    pub async fn wait(&mut self, want: Want, deadline: Instant) -> Result<Value> {
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Err(_) => return Err(BenchError::Timeout),
                Ok(None) => return Err(BenchError::Closed),
                Ok(Some(msg)) => {
                    if let Some(done) = classify(msg, want)? {
                        return Ok(done);
                    }
                }
            }
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.router.lock().remove(&self.txn);
    }
}

/// What the WebSocket and broker clients hold for [`RoutedTransport`].
pub struct Routed {
    /// Fed by the client's reader task, which calls `close_all` when the
    /// connection ends.
    pub router: Arc<Router>,
    pub apisecret: Option<String>,
    pub timeout: Duration,
}

impl Routed {
    pub fn new(target: &Target) -> Routed {
        Routed { router: Arc::default(), apisecret: target.apisecret.clone(), timeout: target.timeout }
    }
}

/// The transports whose requests carry session and handle ids in the body
/// and whose every answer comes back through one [`Router`] by transaction
/// (WebSocket, RabbitMQ, MQTT). Each only says how a request leaves.
pub trait RoutedTransport {
    fn routed(&self) -> &Routed;

    /// Sends one serialized request; `txn` is its transaction.
    async fn send(&self, txn: &str, text: String) -> Result<()>;

    /// Sends one request and waits for the reply `want` asks for,
    /// skipping acks where appropriate.
    async fn call(
        &self,
        session: Option<u64>,
        handle: Option<u64>,
        verb: &str,
        extra: Option<Value>,
        want: Want,
    ) -> Result<Value> {
        let routed = self.routed();
        let deadline = Instant::now() + routed.timeout;
        let txn = next_transaction();
        let mut body = request(verb, &txn, routed.apisecret.as_deref());
        if let Some(s) = session {
            body.insert("session_id".into(), Value::from(s));
        }
        if let Some(h) = handle {
            body.insert("handle_id".into(), Value::from(h));
        }
        if let Some(Value::Object(fields)) = extra {
            body.extend(fields);
        }
        let text = serde_json::to_string(&Value::Object(body)).map_err(|e| BenchError::Protocol(e.to_string()))?;

        let mut waiter = routed.router.register(&txn);
        if routed.router.is_closed() {
            return Err(BenchError::Closed);
        }
        tokio::time::timeout_at(deadline, self.send(&txn, text)).await.map_err(|_| BenchError::Timeout)??;
        waiter.wait(want, deadline).await
    }
}

/// A client connection to a Janus-API server over either transport. One
/// `Conn` may carry many sessions (the idle scenario multiplexes them).
pub enum Conn {
    Http(Box<HttpJanus>),
    Ws(WsJanus),
    /// A share of the run's one broker link (see `broker_client`).
    Broker(Arc<BrokerLink>),
}

impl Conn {
    /// HTTP connects lazily on the first request; WebSocket connects now.
    pub async fn open(target: &Target) -> Result<Conn> {
        match target.transport {
            Transport::Http => Ok(Conn::Http(Box::new(HttpJanus::new(target)?))),
            Transport::Ws => Ok(Conn::Ws(WsJanus::connect(target).await?)),
            Transport::Rabbitmq | Transport::Mqtt => match &target.broker {
                Some(b) => Ok(Conn::Broker(b.link(target).await?)),
                None => Err(BenchError::Connect("broker transport without broker options".into())),
            },
        }
    }

    /// One request on whichever transport this is.
    async fn call(
        &mut self,
        session: Option<u64>,
        handle: Option<u64>,
        verb: &str,
        extra: Option<Value>,
        want: Want,
    ) -> Result<Value> {
        match self {
            Conn::Http(h) => h.call(session, handle, verb, extra, want).await,
            Conn::Ws(w) => w.call(session, handle, verb, extra, want).await,
            Conn::Broker(b) => b.call(session, handle, verb, extra, want).await,
        }
    }

    pub async fn create_session(&mut self) -> Result<u64> {
        let reply = self.call(None, None, "create", None, Want::Success).await?;
        data_id(&reply)
    }

    pub async fn attach(&mut self, session: u64, plugin: &str) -> Result<u64> {
        let extra = json!({ "plugin": plugin });
        let reply = self.call(Some(session), None, "attach", Some(extra), Want::Success).await?;
        data_id(&reply)
    }

    /// Sends a plugin message and returns the plugin's answer (the event
    /// or synchronous success carrying `plugindata`).
    pub async fn message(&mut self, session: u64, handle: u64, body: Value) -> Result<Value> {
        let extra = json!({ "body": body });
        self.call(Some(session), Some(handle), "message", Some(extra), Want::PluginAnswer).await
    }

    pub async fn detach(&mut self, session: u64, handle: u64) -> Result<()> {
        self.call(Some(session), Some(handle), "detach", None, Want::Success).await?;
        Ok(())
    }

    pub async fn destroy(&mut self, session: u64) -> Result<()> {
        self.call(Some(session), None, "destroy", None, Want::Success).await?;
        Ok(())
    }

    pub async fn keepalive(&mut self, session: u64) -> Result<()> {
        self.call(Some(session), None, "keepalive", None, Want::AckOrSuccess).await?;
        Ok(())
    }

    /// Starts receiving asynchronous events for `session`. Over HTTP this
    /// starts the session's long-poll loop; a WebSocket already receives
    /// everything for its sessions.
    pub fn start_events(&mut self, session: u64) {
        if let Conn::Http(h) = self {
            h.start_poll(session);
        }
    }

    /// Stops the event stream started by [`Conn::start_events`] (call it
    /// after the session is destroyed).
    pub async fn stop_events(&mut self) {
        if let Conn::Http(h) = self {
            h.stop_poll().await;
        }
    }

    /// TCP connections this client opened so far (HTTP reconnects show up
    /// here; a WebSocket counts one; a broker client shares the run's one
    /// connection, counted as none).
    pub fn connects(&self) -> u64 {
        match self {
            Conn::Http(h) => h.connects(),
            Conn::Ws(_) => 1,
            Conn::Broker(_) => 0,
        }
    }

    /// Long polls that had to be abandoned (their connection dropped)
    /// because the server never completed them; see `janus_http`.
    pub fn poll_aborts(&self) -> u64 {
        match self {
            Conn::Http(h) => h.poll_aborts(),
            Conn::Ws(_) | Conn::Broker(_) => 0,
        }
    }

    /// Closes the connection(s) so the server sees them go away.
    pub async fn close(self) {
        match self {
            Conn::Http(mut h) => h.stop_poll().await,
            Conn::Ws(w) => w.close().await,
            // The shared link belongs to the run (its Target), not to one client.
            Conn::Broker(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_skips_ack_for_plugin_answer() {
        let ack = json!({"janus":"ack","transaction":"t"});
        assert!(classify(ack.clone(), Want::PluginAnswer).unwrap().is_none());
        assert!(classify(ack, Want::AckOrSuccess).unwrap().is_some());
        let ev = json!({"janus":"event","transaction":"t","plugindata":{"data":{"result":"ok"}}});
        assert!(classify(ev, Want::PluginAnswer).unwrap().is_some());
        let sync = json!({"janus":"success","transaction":"t","plugindata":{"data":{}}});
        assert!(classify(sync, Want::PluginAnswer).unwrap().is_some());
    }

    #[test]
    fn classify_reports_errors() {
        let err = json!({"janus":"error","error":{"code":458,"reason":"No such session"}});
        assert_eq!(classify(err, Want::Success).unwrap_err().kind(), "janus-458");
        let perr = json!({"janus":"event","plugindata":{"data":{"error_code":411,"error":"bad"}}});
        assert_eq!(classify(perr, Want::PluginAnswer).unwrap_err().kind(), "janus-411");
    }

    #[test]
    fn parse_messages_accepts_array_and_object() {
        assert_eq!(parse_messages(br#"[{"a":1},{"b":2}]"#).unwrap().len(), 2);
        assert_eq!(parse_messages(br#"{"a":1}"#).unwrap().len(), 1);
        assert!(parse_messages(b"nope").is_err());
        assert!(data_id(&json!({"data":{"id":5}})).is_ok());
        assert!(data_id(&json!({"data":{}})).is_err());
    }

    #[tokio::test]
    async fn router_delivers_and_unregisters() {
        let router = Arc::new(Router::default());
        let mut w = router.register("x");
        assert!(router.route(json!({"janus":"ack","transaction":"x"})));
        assert!(router.route(json!({"janus":"event","transaction":"x","plugindata":{}})));
        let deadline = Instant::now() + Duration::from_secs(1);
        let got = w.wait(Want::PluginAnswer, deadline).await.unwrap();
        assert_eq!(got["janus"], "event");
        drop(w);
        assert!(!router.route(json!({"janus":"event","transaction":"x"})));
    }
}
