//! Session inactivity timeout (reference 1.6, 13): the `timeout` notification on WebSocket, 458
//! afterwards, refresh by requests, and the Admin API's global and per-session overrides.
//! Timeouts are set to a few seconds; deadlines are generous (the watchdog runs every 2 s).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{assert_error, eventually, HttpClient, TestServer};

/// Long enough for a 2-3 s timeout plus the 2 s watchdog period, with slack for a busy machine.
const EXPIRY_DEADLINE: Duration = Duration::from_secs(20);

async fn session_listed(admin: &HttpClient, s: u64) -> bool {
    let list = admin.post("/admin", json!({"janus": "list_sessions", "transaction": "l"})).await;
    list["sessions"].as_array().is_some_and(|a| a.contains(&json!(s)))
}

#[tokio::test]
async fn websocket_session_times_out_with_notification() {
    let server = TestServer::spawn(&[], &["-s", "2"]);
    let mut ws = server.ws().await;
    let (s, _h) = ws.session_with_echotest().await;
    let start = Instant::now();
    let timeout = ws.recv_until_within(EXPIRY_DEADLINE, |v| v["janus"] == "timeout").await;
    assert_eq!(timeout, json!({"janus": "timeout", "session_id": s}));
    assert!(start.elapsed() >= Duration::from_secs(1), "expired too early: {:?}", start.elapsed());
    // Nothing about the handles was sent before the timeout (reference 1.6).
    assert!(ws.backlog().iter().all(|v| v["janus"] != "detached" && v["janus"] != "hangup"), "{:?}", ws.backlog());
    // The socket stays open and the session is gone.
    let reply = ws.request(json!({"janus": "keepalive", "transaction": "k", "session_id": s})).await;
    assert_eq!(
        reply,
        json!({"janus": "error", "session_id": s, "transaction": "k", "error": {"code": 458, "reason": format!("No such session {s}")}})
    );
    let reply = ws.request(json!({"janus": "claim", "transaction": "c", "session_id": s})).await;
    assert_error(&reply, 458, &format!("No such session {s}"));
}

#[tokio::test]
async fn http_session_times_out() {
    let server = TestServer::spawn(&[], &["-s", "2"]);
    let http = server.http();
    let admin = server.admin();
    let s = http.create().await;
    eventually(EXPIRY_DEADLINE, "the HTTP session to expire", || async {
        (!session_listed(&admin, s).await).then_some(())
    })
    .await;
    assert_error(&http.keepalive(s).await, 458, &format!("No such session {s}"));
    let (status, body) = http.get(&format!("/janus/{s}")).await;
    assert_eq!((status.as_u16(), body.as_str()), (404, ""));
}

#[tokio::test]
async fn keepalives_refresh_the_session() {
    let server = TestServer::spawn(&[], &["-s", "3"]);
    let mut ws = server.ws().await;
    let s = ws.create().await;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(8) {
        let ack = ws.request(json!({"janus": "keepalive", "transaction": "k", "session_id": s})).await;
        assert_eq!(ack["janus"], "ack", "session expired despite keepalives after {:?}: {ack}", start.elapsed());
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    assert!(ws.backlog().iter().all(|v| v["janus"] != "timeout"), "{:?}", ws.backlog());
}

#[tokio::test]
async fn zero_timeout_never_expires() {
    let server = TestServer::spawn(&[], &["-s", "0"]);
    let mut ws = server.ws().await;
    let s = ws.create().await;
    let quiet = ws.recv_timeout(Duration::from_secs(5)).await;
    assert!(quiet.is_none(), "unexpected message: {quiet:?}");
    let ack = ws.request(json!({"janus": "keepalive", "transaction": "k", "session_id": s})).await;
    assert_eq!(ack["janus"], "ack");
}

#[tokio::test]
async fn admin_sets_the_global_timeout() {
    let server = TestServer::spawn(&[], &["-s", "0"]);
    let admin = server.admin();
    let reply = admin.post("/admin", json!({"janus": "set_session_timeout", "transaction": "a6", "timeout": 2})).await;
    assert_eq!(reply, json!({"janus": "success", "transaction": "a6", "timeout": 2}));
    let status = admin.post("/admin", json!({"janus": "get_status", "transaction": "g"})).await;
    assert_eq!(status["status"]["session_timeout"], 2, "{status}");
    let mut ws = server.ws().await;
    let s = ws.create().await;
    let timeout = ws.recv_until_within(EXPIRY_DEADLINE, |v| v["janus"] == "timeout").await;
    assert_eq!(timeout, json!({"janus": "timeout", "session_id": s}));
}

#[tokio::test]
async fn admin_sets_a_per_session_timeout() {
    let server = TestServer::spawn(&[], &["-s", "0"]);
    let admin = server.admin();
    let mut ws = server.ws().await;
    let short = ws.create().await;
    let long = ws.create().await;
    let reply = admin
        .post("/admin", json!({"janus": "set_session_timeout", "transaction": "st", "session_id": short, "timeout": 2}))
        .await;
    assert_eq!(reply, json!({"janus": "success", "transaction": "st", "timeout": 2, "session_id": short}));
    let timeout = ws.recv_until_within(EXPIRY_DEADLINE, |v| v["janus"] == "timeout").await;
    assert_eq!(timeout, json!({"janus": "timeout", "session_id": short}));
    // The other session follows the global setting (never).
    let ack = ws.request(json!({"janus": "keepalive", "transaction": "k", "session_id": long})).await;
    assert_eq!(ack["janus"], "ack", "{ack}");
}

#[tokio::test]
async fn per_session_zero_and_minus_one() {
    let server = TestServer::spawn(&[], &["-s", "2"]);
    let admin = server.admin();
    let mut ws = server.ws().await;
    let kept = ws.create().await;
    let reply = admin
        .post("/admin", json!({"janus": "set_session_timeout", "transaction": "z", "session_id": kept, "timeout": 0}))
        .await;
    assert_eq!(reply, json!({"janus": "success", "transaction": "z", "timeout": 0, "session_id": kept}));
    let other = ws.create().await;
    let timeout = ws.recv_until_within(EXPIRY_DEADLINE, |v| v["janus"] == "timeout").await;
    assert_eq!(timeout, json!({"janus": "timeout", "session_id": other}), "only the session without override expires");
    let ack = ws.request(json!({"janus": "keepalive", "transaction": "k", "session_id": kept})).await;
    assert_eq!(ack["janus"], "ack", "{ack}");
    // -1 goes back to the global timeout.
    let reply = admin
        .post("/admin", json!({"janus": "set_session_timeout", "transaction": "m", "session_id": kept, "timeout": -1}))
        .await;
    assert_eq!(reply, json!({"janus": "success", "transaction": "m", "timeout": -1, "session_id": kept}));
    let timeout = ws.recv_until_within(EXPIRY_DEADLINE, |v| v["janus"] == "timeout").await;
    assert_eq!(timeout, json!({"janus": "timeout", "session_id": kept}));
}

#[tokio::test]
async fn per_session_timeout_errors() {
    let server = TestServer::start();
    let admin = server.admin();
    let s = server.http().create().await;
    let reply: Value =
        admin.post("/admin", json!({"janus": "set_session_timeout", "transaction": "t", "session_id": s})).await;
    assert_error(&reply, 456, "Missing mandatory element (timeout)");
    let reply = admin
        .post("/admin", json!({"janus": "set_session_timeout", "transaction": "t", "session_id": 999, "timeout": 5}))
        .await;
    assert_error(&reply, 458, "No such session 999");
    let reply = admin.post("/admin", json!({"janus": "set_session_timeout", "transaction": "t", "timeout": "5"})).await;
    assert_eq!(reply["error"]["code"], 467, "{reply}");
}
