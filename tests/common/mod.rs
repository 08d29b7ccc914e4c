//! Shared harness for the integration tests: starts the real `portunus` binary on ephemeral
//! loopback ports and gives typed Janus API clients for HTTP and WebSocket.
//!
//! Owns nothing in the server: it only runs the binary Cargo built for this test target and
//! talks to it over sockets. Invariants: every listener is bound to 127.0.0.1 on port 0; the
//! server is ready once it printed its `PORTUNUS_READY` line (never a fixed sleep); the child is
//! killed when the [`TestServer`] is dropped, and its log is printed if the test failed.

#![allow(dead_code)] // Each test binary uses a different part of the harness.

pub mod http;
pub mod json;
pub mod token;
pub mod ws;

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub use self::http::HttpClient;
pub use self::json::{assert_error, assert_error_code, mask_ids, ERROR_CODES};
pub use self::token::signed_token;
pub use self::ws::WsClient;

/// Subprotocol of the Janus API over WebSocket.
pub const JANUS_PROTOCOL: &str = "janus-protocol";
/// Subprotocol of the Admin API over WebSocket.
pub const ADMIN_PROTOCOL: &str = "janus-admin-protocol";
/// The EchoTest plugin package.
pub const ECHOTEST: &str = "janus.plugin.echotest";
/// The fault-injection plugin package (cargo feature `fault-injection`).
pub const FAULTY: &str = "portunus.plugin.faulty";
/// What EchoTest puts in its `ack`.
pub const ECHOTEST_HINT: &str = "I'm taking my time!";

/// How long the server may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Lines of server log shown when a test fails.
const LOG_TAIL_LINES: usize = 80;

/// A running `portunus` child process.
pub struct TestServer {
    child: Child,
    /// The static web server (demo pages), when it is on.
    pub web: Option<SocketAddr>,
    /// Janus API over HTTP.
    pub http: SocketAddr,
    /// Janus API over WebSocket.
    pub ws: SocketAddr,
    /// Admin API over HTTP.
    pub admin_http: SocketAddr,
    /// Admin API over WebSocket.
    pub admin_ws: SocketAddr,
    log: PathBuf,
}

impl TestServer {
    /// Starts the server with extra `PORTUNUS__...` variables and command-line flags, and waits
    /// for its ready line.
    pub fn spawn(extra_env: &[(&str, &str)], extra_args: &[&str]) -> TestServer {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("portunus-{}-{n}.log", std::process::id()));
        let stderr = File::create(&log).expect("create the server log file");

        let mut cmd = Command::new(env!("CARGO_BIN_EXE_portunus"));
        // Only what the test asks for: no configuration leaking in from the outer environment.
        for (key, _) in std::env::vars() {
            if key.starts_with("PORTUNUS__") {
                cmd.env_remove(key);
            }
        }
        cmd.args(["--http-port", "0", "--ws-port", "0", "--admin-http-port", "0", "--admin-ws-port", "0"])
            .args(["--web-port", "0"])
            .args(extra_args)
            .env("PORTUNUS__HTTP__IP", "127.0.0.1")
            .env("PORTUNUS__WEBSOCKETS__WS_IP", "127.0.0.1")
            // One HTTP worker is plenty for a test and spares the small CI machine.
            .env("PORTUNUS__HTTP__WORKERS", "1")
            .env("PORTUNUS__GENERAL__DEBUG_COLORS", "false")
            .envs(extra_env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        let mut child = cmd.spawn().expect("start the portunus binary");

        // A thread reads stdout for the whole life of the child, so the child never blocks on a
        // full pipe; the ready line is handed over through a channel.
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("PORTUNUS_READY ") {
                    let _ = tx.send(rest.to_owned());
                }
            }
        });

        let ready = match rx.recv_timeout(READY_TIMEOUT) {
            Ok(line) => line,
            Err(e) => {
                let _ = child.kill();
                let status = child.wait().ok();
                panic!(
                    "portunus did not print its ready line ({e}; exit status {status:?}); log:\n{}",
                    log_tail(&log, LOG_TAIL_LINES)
                );
            }
        };
        let addrs: Value = serde_json::from_str(&ready).expect("the ready line carries a JSON object");
        let addr = |name: &str| -> SocketAddr {
            addrs
                .get(name)
                .and_then(Value::as_str)
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("ready line without a usable '{name}' address: {ready}"))
        };
        TestServer {
            web: addrs.get("web").and_then(Value::as_str).and_then(|a| a.parse().ok()),
            http: addr("http"),
            ws: addr("ws"),
            admin_http: addr("admin_http"),
            admin_ws: addr("admin_ws"),
            child,
            log,
        }
    }

    /// Starts the server with its defaults.
    pub fn start() -> TestServer {
        TestServer::spawn(&[], &[])
    }

    /// A client for the Janus API over HTTP (paths start with `/janus`).
    pub fn http(&self) -> HttpClient {
        HttpClient::new(self.http)
    }

    /// A client for the Admin API over HTTP (paths start with `/admin`).
    pub fn admin(&self) -> HttpClient {
        HttpClient::new(self.admin_http)
    }

    /// A new WebSocket connection speaking `janus-protocol`.
    pub async fn ws(&self) -> WsClient {
        WsClient::connect(self.ws, JANUS_PROTOCOL).await
    }

    /// A new WebSocket connection to the Admin API (`janus-admin-protocol`).
    pub async fn admin_ws(&self) -> WsClient {
        WsClient::connect(self.admin_ws, ADMIN_PROTOCOL).await
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log, LOG_TAIL_LINES)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- portunus log (last {LOG_TAIL_LINES} lines) ----\n{}", self.log_tail());
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after `deadline` with `what`.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A fresh transaction string, unique within the test process.
pub fn tx() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("tx{}", N.fetch_add(1, Ordering::Relaxed))
}

fn log_tail(path: &PathBuf, lines: usize) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    let mut tail: VecDeque<&str> = VecDeque::with_capacity(lines);
    for line in text.lines() {
        if tail.len() == lines {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    tail.into_iter().collect::<Vec<_>>().join("\n")
}
