//! The Janus API over its HTTP transport, used the way janus.js uses it:
//! requests are POSTs on one keep-alive connection, and while a session
//! waits for asynchronous answers a long-poll loop (`GET /janus/S?maxev=10`)
//! runs on a second keep-alive connection and routes events by transaction.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::http_client::{HttpConn, HttpUrl};
use crate::janus::{classify, next_transaction, parse_messages, request, BenchError, Result, Router, Target, Want};

/// Janus completes an idle long poll after 30 s; allow that plus slack
/// before calling a poll hung.
const POLL_TIMEOUT: Duration = Duration::from_secs(45);

/// How long `stop_poll` waits for the poll loop to finish on its own
/// (normally it already has, having seen the handle's `detached` event)
/// before abandoning the in-flight poll and its connection.
const POLL_STOP_GRACE: Duration = Duration::from_millis(20);

/// Pause after a failed poll so a dead server does not spin the loop.
const POLL_RETRY_PAUSE: Duration = Duration::from_millis(100);

struct PollTask {
    stop: watch::Sender<bool>,
    join: JoinHandle<HttpConn>,
}

pub struct HttpJanus {
    url: HttpUrl,
    apisecret: Option<String>,
    timeout: Duration,
    requests: HttpConn,
    /// The poll connection between sessions, kept so the next session's
    /// long poll reuses it instead of opening a new TCP connection.
    spare_poll_conn: Option<HttpConn>,
    poll: Option<PollTask>,
    router: Arc<Router>,
    /// TCP connections opened by this client's request and poll
    /// connections together.
    connects: Arc<AtomicU64>,
    poll_aborts: u64,
}

impl HttpJanus {
    pub fn new(target: &Target) -> Result<HttpJanus> {
        let url = HttpUrl::parse(&target.url)?;
        let connects = Arc::new(AtomicU64::new(0));
        Ok(HttpJanus {
            requests: HttpConn::new(&url, Arc::clone(&connects)),
            connects,
            url,
            apisecret: target.apisecret.clone(),
            timeout: target.timeout,
            spare_poll_conn: None,
            poll: None,
            router: Arc::new(Router::default()),
            poll_aborts: 0,
        })
    }

    pub fn connects(&self) -> u64 {
        self.connects.load(Ordering::Relaxed)
    }

    pub fn poll_aborts(&self) -> u64 {
        self.poll_aborts
    }

    /// Sends one request to `/base[/session[/handle]]` and waits for what
    /// `want` asks for. For plugin messages the answer may come in the POST
    /// reply (synchronous servers) or later on the long poll (Janus), and
    /// the poll may deliver it before the POST's ack: the waiter is
    /// registered before sending so neither order loses it.
    pub async fn call(
        &mut self,
        session: Option<u64>,
        handle: Option<u64>,
        verb: &str,
        extra: Option<Value>,
        want: Want,
    ) -> Result<Value> {
        let deadline = Instant::now() + self.timeout;
        let txn = next_transaction();
        let mut body = request(verb, &txn, self.apisecret.as_deref());
        if let Some(Value::Object(fields)) = extra {
            body.extend(fields);
        }
        let path = match (session, handle) {
            (Some(s), Some(h)) => format!("{}/{s}/{h}", self.url.path),
            (Some(s), None) => format!("{}/{s}", self.url.path),
            _ => self.url.path.clone(),
        };
        let bytes = serde_json::to_vec(&Value::Object(body)).map_err(|e| BenchError::Protocol(e.to_string()))?;

        let mut waiter = (want == Want::PluginAnswer).then(|| self.router.register(&txn));
        let reply = self.requests.post(&path, bytes, self.timeout).await?;
        let reply =
            parse_messages(&reply)?.into_iter().next().ok_or_else(|| BenchError::Protocol("empty reply".into()))?;
        if let Some(done) = classify(reply, want)? {
            return Ok(done);
        }
        match waiter.as_mut() {
            Some(w) => w.wait(want, deadline).await,
            None => Err(BenchError::Protocol(format!("unexpected reply to {verb} (wanted {want:?})"))),
        }
    }

    /// Starts the long-poll loop for `session`, stopping any previous one.
    pub fn start_poll(&mut self, session: u64) {
        if let Some(old) = self.poll.take() {
            // Should not happen (callers stop first); do not wait for it.
            let _ = old.stop.send(true);
            old.join.abort();
            self.poll_aborts += 1;
        }
        let conn = self.spare_poll_conn.take().unwrap_or_else(|| HttpConn::new(&self.url, Arc::clone(&self.connects)));
        let (stop_tx, stop_rx) = watch::channel(false);
        let secret = self.apisecret.as_ref().map(|s| format!("&apisecret={}", percent_encode(s))).unwrap_or_default();
        let base = format!("{}/{session}", self.url.path);
        let router = Arc::clone(&self.router);
        let join = tokio::spawn(poll_loop(conn, base, secret, router, stop_rx));
        self.poll = Some(PollTask { stop: stop_tx, join });
    }

    /// Stops the long-poll loop (after the session was destroyed). The
    /// loop normally ended by itself after the `detached` event; if a poll
    /// is still in flight (Janus 1.1.2 does not complete a pending poll
    /// when its session is destroyed, it lets it run into the 30 s
    /// keepalive), the poll and its connection are abandoned and the next
    /// session polls on a fresh connection. `poll_aborts` counts those.
    pub async fn stop_poll(&mut self) {
        let Some(mut task) = self.poll.take() else {
            return;
        };
        let _ = task.stop.send(true);
        match tokio::time::timeout(POLL_STOP_GRACE, &mut task.join).await {
            Ok(Ok(conn)) => self.spare_poll_conn = Some(conn),
            Ok(Err(_)) => self.poll_aborts += 1,
            Err(_) => {
                task.join.abort();
                self.poll_aborts += 1;
            }
        }
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so any
/// apisecret survives the long poll's query string.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

/// Long-polls `base` until stopped, the session disappears, or the
/// session's handle is detached (the bench holds one handle per polled
/// session, so after `detached` nothing more is expected and stopping
/// keeps the connection reusable). Returns the connection for reuse.
async fn poll_loop(
    mut conn: HttpConn,
    base: String,
    secret: String,
    router: Arc<Router>,
    mut stop: watch::Receiver<bool>,
) -> HttpConn {
    loop {
        if *stop.borrow() {
            break;
        }
        let path = format!("{base}?maxev=10&rid={}{secret}", now_ms());
        match conn.get(&path, POLL_TIMEOUT).await {
            Ok(bytes) => {
                let Ok(messages) = parse_messages(&bytes) else {
                    continue;
                };
                let mut finished = false;
                for msg in messages {
                    let verb = msg.get("janus").and_then(Value::as_str).unwrap_or("");
                    match verb {
                        "detached" => finished = true,
                        // The session is gone (e.g. destroyed or timed out).
                        "error" if msg.get("transaction").is_none() => finished = true,
                        _ => {}
                    }
                    router.route(msg);
                }
                if finished {
                    break;
                }
            }
            // 404: unknown session, nothing more will ever arrive.
            Err(BenchError::Status(_)) => break,
            Err(_) => {
                tokio::select! {
                    _ = tokio::time::sleep(POLL_RETRY_PAUSE) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }
    conn
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_query_values() {
        assert_eq!(percent_encode("s3cret-_.~"), "s3cret-_.~");
        assert_eq!(percent_encode("a b&c=é"), "a%20b%26c%3D%C3%A9");
    }
}
