//! Portunus's own caps (`[limits]`, `http.max_body_size`): going past one gives a clear Janus
//! error, frees up again when resources are released, and never stops the server.

use serde_json::json;

use crate::common::{assert_error_code, TestServer, ECHOTEST, ERROR_CODES};

#[tokio::test]
async fn max_sessions() {
    let server = TestServer::spawn(&[("PORTUNUS__LIMITS__MAX_SESSIONS", "5")], &[]);
    let http = server.http();
    let mut sessions = Vec::new();
    for _ in 0..5 {
        sessions.push(http.create().await);
    }
    let reply = http.post("/janus", json!({"janus": "create", "transaction": "over"})).await;
    assert_eq!(reply["janus"], "error", "{reply}");
    assert_eq!(reply["transaction"], "over");
    let code = reply["error"]["code"].as_u64().expect("code");
    assert!(ERROR_CODES.contains(&code), "code {code} is from the reference table: {reply}");
    assert!(reply["error"]["reason"].as_str().is_some_and(|r| !r.is_empty()), "{reply}");
    // Same over WebSocket.
    let mut ws = server.ws().await;
    let reply = ws.request(json!({"janus": "create", "transaction": "ws-over"})).await;
    assert_eq!(reply["janus"], "error", "{reply}");
    // The server keeps serving the existing sessions.
    assert!(http.pings().await);
    for s in &sessions {
        assert_eq!(http.keepalive(*s).await["janus"], "ack");
    }
    // Releasing one makes room again.
    let ok = http.session_request(sessions[0], "destroy", json!({})).await;
    assert_eq!(ok["janus"], "success");
    http.create().await;
}

#[tokio::test]
async fn max_sessions_with_chosen_ids() {
    let server = TestServer::spawn(&[("PORTUNUS__LIMITS__MAX_SESSIONS", "1")], &[]);
    let http = server.http();
    let reply = http.post("/janus", json!({"janus": "create", "transaction": "a", "id": 11})).await;
    assert_eq!(reply["janus"], "success", "{reply}");
    let reply = http.post("/janus", json!({"janus": "create", "transaction": "b", "id": 22})).await;
    assert_eq!(reply["janus"], "error", "{reply}");
    // The rejected id was not taken.
    assert_eq!(http.keepalive(22).await["error"]["code"], 458);
}

#[tokio::test]
async fn max_handles_per_session() {
    let server = TestServer::spawn(&[("PORTUNUS__LIMITS__MAX_HANDLES_PER_SESSION", "3")], &[]);
    let http = server.http();
    let s = http.create().await;
    let mut handles = Vec::new();
    for _ in 0..3 {
        handles.push(http.attach(s, ECHOTEST).await);
    }
    let reply =
        http.post(&format!("/janus/{s}"), json!({"janus": "attach", "transaction": "over", "plugin": ECHOTEST})).await;
    let code = reply["error"]["code"].as_u64().unwrap_or_default();
    assert!(code == 461 || code == 490, "attach over the cap is a clear error: {reply}");
    assert_error_code(&reply, code);
    assert_eq!(reply["session_id"], s);
    assert_eq!(reply["transaction"], "over");
    // Existing handles still work; another session has its own budget.
    assert_eq!(http.handle_request(s, handles[0], "message", json!({"body": {"audio": true}})).await["janus"], "ack");
    let other = http.create().await;
    http.attach(other, ECHOTEST).await;
    assert!(http.pings().await);
}

#[tokio::test]
async fn detaching_frees_a_handle_slot() {
    let server = TestServer::spawn(&[("PORTUNUS__LIMITS__MAX_HANDLES_PER_SESSION", "1")], &[]);
    let http = server.http();
    let (s, h) = http.session_with_echotest().await;
    let reply = http.session_request(s, "attach", json!({"plugin": ECHOTEST})).await;
    assert_eq!(reply["janus"], "error", "{reply}");
    assert_eq!(http.handle_request(s, h, "detach", json!({})).await["janus"], "success");
    http.attach(s, ECHOTEST).await;
}

#[tokio::test]
async fn oversized_body_is_450() {
    let server = TestServer::spawn(&[("PORTUNUS__HTTP__MAX_BODY_SIZE", "1000")], &[]);
    let http = server.http();
    let big = json!({"janus": "ping", "transaction": "t", "pad": "x".repeat(2000)}).to_string();
    let reply = http.post_raw("/janus", big).await;
    assert_eq!(reply.status.as_u16(), 200);
    assert_eq!(
        reply.json(),
        json!({"janus": "error", "error": {"code": 450, "reason": "Payload too large (limit 1000 bytes)"}})
    );
    let s = http.create().await;
    let big = json!({"janus": "keepalive", "transaction": "t", "pad": "x".repeat(5000)}).to_string();
    let reply = http.post_raw(&format!("/janus/{s}"), big).await;
    assert_eq!(reply.json()["error"]["code"], 450);
    // Just under the limit is fine, and the server keeps serving.
    let fits = json!({"janus": "ping", "transaction": "t", "pad": "x".repeat(900)}).to_string();
    assert!(fits.len() < 1000);
    assert_eq!(http.post_raw("/janus", fits).await.json()["janus"], "pong");
    assert_eq!(http.keepalive(s).await["janus"], "ack");
}

#[tokio::test]
async fn many_sessions_and_handles_in_a_row() {
    let server = TestServer::start();
    let http = server.http();
    for _ in 0..30 {
        let (s, h) = http.session_with_echotest().await;
        assert_eq!(http.handle_request(s, h, "hangup", json!({})).await["janus"], "success");
        assert_eq!(http.session_request(s, "destroy", json!({})).await["janus"], "success");
    }
    let list = server.admin().post("/admin", json!({"janus": "list_sessions", "transaction": "l"})).await;
    assert_eq!(list["sessions"], json!([]));
}
