//! The plugin panic boundary (ARCHITECTURE "actor tree"; built with `--features
//! fault-injection`): a plugin that panics while handling a request costs the client that
//! request (core error 490) and that handle (`detached`), nothing else. Other handles, other
//! sessions, the Admin API and the server itself keep working.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{assert_error_code, TestServer, ECHOTEST, FAULTY};

/// The panicking request got a Janus error. Which code is pinned by
/// `panicking_request_answers_490`; the other tests check everything around it.
#[track_caller]
fn assert_request_failed(reply: &Value) {
    assert_eq!(reply["janus"], "error", "{reply}");
    let code = reply["error"]["code"].as_u64().unwrap_or_default();
    assert!(crate::common::ERROR_CODES.contains(&code), "{reply}");
}

fn faulty_ok(s: u64, h: u64, t: &str) -> Value {
    json!({"janus": "success", "session_id": s, "transaction": t, "sender": h,
           "plugindata": {"plugin": FAULTY, "data": {"faulty": "ok"}}})
}

#[tokio::test]
async fn faulty_answers_synchronously_when_not_asked_to_panic() {
    let server = TestServer::start();
    let http = server.http();
    let s = http.create().await;
    let h = http.attach(s, FAULTY).await;
    let reply =
        http.post(&format!("/janus/{s}/{h}"), json!({"janus": "message", "transaction": "f1", "body": {"x": 1}})).await;
    assert_eq!(reply, faulty_ok(s, h, "f1"));
}

#[tokio::test]
async fn panic_in_a_plugin_over_http() {
    let server = TestServer::spawn(&[("PORTUNUS__HTTP__LONGPOLL_KEEPALIVE", "1")], &[]);
    let http = server.http();
    let s = http.create().await;
    let bad = http.attach(s, FAULTY).await;
    let echo = http.attach(s, ECHOTEST).await;
    let s2 = http.create().await;
    let other = http.attach(s2, FAULTY).await;

    let reply = http
        .post(&format!("/janus/{s}/{bad}"), json!({"janus": "message", "transaction": "boom", "body": {"panic": "x"}}))
        .await;
    assert_request_failed(&reply);
    assert_eq!(reply["session_id"], s, "{reply}");
    assert_eq!(reply["transaction"], "boom", "{reply}");

    let detached = http.poll_until(s, Duration::from_secs(10), |e| e["janus"] == "detached").await;
    assert_eq!(detached, json!({"janus": "detached", "session_id": s, "sender": bad}));
    let reply = http.handle_request(s, bad, "message", json!({"body": {"x": 1}})).await;
    assert_eq!(reply["error"]["code"], 459, "the panicked handle is gone: {reply}");

    // The same session's other handle, another session, and the server are fine.
    assert_eq!(http.handle_request(s, echo, "message", json!({"body": {"audio": true}})).await["janus"], "ack");
    let reply =
        http.post(&format!("/janus/{s2}/{other}"), json!({"janus": "message", "transaction": "f2", "body": {}})).await;
    assert_eq!(reply, faulty_ok(s2, other, "f2"));
    assert!(http.pings().await);
    assert_eq!(http.keepalive(s).await["janus"], "ack");
    let list = server.admin().post(&format!("/admin/{s}"), json!({"janus": "list_handles", "transaction": "l"})).await;
    assert_eq!(list["handles"], json!([echo]));
    // The plugin itself still works: a new handle can be attached and used.
    let again = http.attach(s, FAULTY).await;
    let reply =
        http.post(&format!("/janus/{s}/{again}"), json!({"janus": "message", "transaction": "f3", "body": {}})).await;
    assert_eq!(reply, faulty_ok(s, again, "f3"));
}

#[tokio::test]
async fn panicking_request_answers_490() {
    let server = TestServer::start();
    let http = server.http();
    let s = http.create().await;
    let h = http.attach(s, FAULTY).await;
    let reply = http
        .post(&format!("/janus/{s}/{h}"), json!({"janus": "message", "transaction": "boom", "body": {"panic": "x"}}))
        .await;
    assert_error_code(&reply, 490);
    assert_eq!((reply["session_id"].as_u64(), reply["transaction"].as_str()), (Some(s), Some("boom")), "{reply}");
    let mut ws = server.ws().await;
    let s = ws.create().await;
    let h = ws.attach(s, FAULTY).await;
    let reply = ws
        .request(json!({"janus": "message", "transaction": "boom", "session_id": s, "handle_id": h, "body": {"panic": "ws"}}))
        .await;
    assert_error_code(&reply, 490);
}

#[tokio::test]
async fn panic_in_a_plugin_over_websocket() {
    let server = TestServer::start();
    let mut ws = server.ws().await;
    let s = ws.create().await;
    let bad = ws.attach(s, FAULTY).await;
    let good = ws.attach(s, FAULTY).await;
    let reply = ws
        .request(json!({"janus": "message", "transaction": "boom", "session_id": s, "handle_id": bad, "body": {"panic": "ws"}}))
        .await;
    assert_request_failed(&reply);
    assert_eq!(reply["transaction"], "boom");
    let detached = ws.recv_until(|v| v["janus"] == "detached").await;
    assert_eq!(detached, json!({"janus": "detached", "session_id": s, "sender": bad}));
    let reply = ws
        .request(json!({"janus": "message", "transaction": "ok", "session_id": s, "handle_id": good, "body": {}}))
        .await;
    assert_eq!(reply, faulty_ok(s, good, "ok"));
    // A second connection sees a healthy server.
    let mut other = server.ws().await;
    other.create().await;
}

#[tokio::test]
async fn many_panics_do_not_wear_the_server_down() {
    let server = TestServer::start();
    let http = server.http();
    let s = http.create().await;
    for i in 0..10 {
        let h = http.attach(s, FAULTY).await;
        let reply = http.handle_request(s, h, "message", json!({"body": {"panic": format!("round {i}")}})).await;
        assert_request_failed(&reply);
    }
    assert!(http.pings().await);
    let (s2, h2) = http.session_with_echotest().await;
    assert_eq!(http.handle_request(s2, h2, "message", json!({"body": {"audio": true}})).await["janus"], "ack");
    let status = server.admin().post("/admin", json!({"janus": "get_status", "transaction": "g"})).await;
    assert_eq!(status["janus"], "success", "{status}");
}

#[tokio::test]
async fn panic_in_an_admin_plugin_message() {
    let server = TestServer::start();
    let admin = server.admin();
    let reply = admin
        .post(
            "/admin",
            json!({"janus": "message_plugin", "transaction": "ap", "plugin": FAULTY, "request": {"panic": true}}),
        )
        .await;
    assert_error_code(&reply, 490);
    assert_eq!(reply["transaction"], "ap");
    let reply = admin
        .post("/admin", json!({"janus": "message_plugin", "transaction": "ok", "plugin": FAULTY, "request": {"x": 1}}))
        .await;
    assert_eq!(reply, json!({"janus": "success", "transaction": "ok", "response": {"faulty": "ok"}}));
    let http = server.http();
    assert!(http.pings().await);
    let s = http.create().await;
    let h = http.attach(s, FAULTY).await;
    let reply =
        http.post(&format!("/janus/{s}/{h}"), json!({"janus": "message", "transaction": "f", "body": {}})).await;
    assert_eq!(reply, faulty_ok(s, h, "f"));
}

/// A panic while the plugin describes its session for Admin `handle_info` ends that handle like
/// any other plugin panic; the Admin API still answers and nothing else is affected.
#[tokio::test]
async fn panic_while_describing_a_handle() {
    let server = TestServer::spawn(&[("PORTUNUS__HTTP__LONGPOLL_KEEPALIVE", "1")], &[]);
    let http = server.http();
    let s = http.create().await;
    let h = http.attach(s, FAULTY).await;
    let echo = http.attach(s, ECHOTEST).await;
    let armed = http.handle_request(s, h, "message", json!({"body": {"panic_in": "query"}})).await;
    assert_eq!(armed, faulty_ok(s, h, armed["transaction"].as_str().unwrap_or_default()));
    let reply =
        server.admin().post(&format!("/admin/{s}/{h}"), json!({"janus": "handle_info", "transaction": "hi"})).await;
    assert!(reply["janus"] == "success" || reply["janus"] == "error", "{reply}");
    assert_eq!(reply["transaction"], "hi");
    assert!(reply["info"].get("plugin_specific").is_none(), "no plugin_specific from a panicked plugin: {reply}");
    let detached = http.poll_until(s, Duration::from_secs(10), |e| e["janus"] == "detached").await;
    assert_eq!(detached, json!({"janus": "detached", "session_id": s, "sender": h}));
    assert!(http.pings().await);
    assert_eq!(http.handle_request(s, echo, "message", json!({"body": {"audio": true}})).await["janus"], "ack");
    let list = server.admin().post(&format!("/admin/{s}"), json!({"janus": "list_handles", "transaction": "l"})).await;
    assert_eq!(list["handles"], json!([echo]));
}

/// A plugin that acknowledges and never answers: its requests are tracked as in flight (Admin
/// `get_status`) until their session ends, not forever.
#[tokio::test]
async fn unanswered_requests_leave_with_their_session() {
    let server = TestServer::start();
    let http = server.http();
    let admin = server.admin();
    let in_flight = |admin: crate::common::http::HttpClient| async move {
        let status = admin.post("/admin", json!({"janus": "get_status", "transaction": "st"})).await;
        status["status"]["requests_in_flight"].as_u64().unwrap_or(u64::MAX)
    };
    let s = http.create().await;
    let h = http.attach(s, FAULTY).await;
    for t in ["q1", "q2"] {
        let reply = http.handle_request(s, h, "message", json!({"transaction": t, "body": {"silent": true}})).await;
        assert_eq!(reply["janus"], "ack", "{reply}");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while in_flight(server.admin()).await != 2 {
        assert!(std::time::Instant::now() < deadline, "two requests in flight");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        http.post(&format!("/janus/{s}"), json!({"janus": "destroy", "transaction": "d"})).await["janus"],
        "success"
    );
    while in_flight(admin.clone()).await != 0 {
        assert!(std::time::Instant::now() < deadline + Duration::from_secs(5), "forgotten with the session");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
