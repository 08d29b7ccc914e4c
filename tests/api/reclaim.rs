//! What happens to a WebSocket's sessions when the socket closes (reference 1.6, 14.12):
//! destroyed at once by default; with `reclaim_session_timeout` they wait for a `claim` from
//! another connection, and are destroyed when the window passes.

use std::time::Duration;

use serde_json::json;

use crate::common::{assert_error, eventually, HttpClient, TestServer, ECHOTEST_HINT};

const DEADLINE: Duration = Duration::from_secs(20);

async fn session_listed(admin: &HttpClient, s: u64) -> bool {
    let list = admin.post("/admin", json!({"janus": "list_sessions", "transaction": "l"})).await;
    list["sessions"].as_array().is_some_and(|a| a.contains(&json!(s)))
}

#[tokio::test]
async fn closing_the_socket_destroys_its_sessions() {
    let server = TestServer::start();
    let admin = server.admin();
    let mut ws = server.ws().await;
    let (s, _h) = ws.session_with_echotest().await;
    let s2 = ws.create().await;
    let mut bystander = server.ws().await;
    let kept = bystander.create().await;
    assert!(session_listed(&admin, s).await);
    ws.close().await;
    eventually(DEADLINE, "the closed socket's sessions to go", || async {
        (!session_listed(&admin, s).await && !session_listed(&admin, s2).await).then_some(())
    })
    .await;
    assert_error(&server.http().keepalive(s).await, 458, &format!("No such session {s}"));
    // Other connections' sessions are untouched.
    let ack = bystander.request(json!({"janus": "keepalive", "transaction": "k", "session_id": kept})).await;
    assert_eq!(ack["janus"], "ack");
}

#[tokio::test]
async fn claim_within_the_window_keeps_the_session() {
    let server = TestServer::spawn(&[("PORTUNUS__GENERAL__RECLAIM_SESSION_TIMEOUT", "3")], &["-s", "60"]);
    let mut first = server.ws().await;
    let (s, h) = first.session_with_echotest().await;
    first.close().await;

    let mut second = server.ws().await;
    let reply = second.request(json!({"janus": "claim", "transaction": "c1", "session_id": s})).await;
    assert_eq!(reply, json!({"janus": "success", "session_id": s, "transaction": "c1"}));
    // The handle survived and its events now come to the new socket.
    let req =
        json!({"janus": "message", "transaction": "m1", "session_id": s, "handle_id": h, "body": {"audio": true}});
    let ack = second.request(req).await;
    assert_eq!(ack, json!({"janus": "ack", "session_id": s, "transaction": "m1", "hint": ECHOTEST_HINT}));
    let event = second.recv_until(|v| v["janus"] == "event").await;
    assert_eq!(event["transaction"], "m1");
    assert_eq!(event["sender"], h);
    // Still there well after the reclaim window.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let ack = second.request(json!({"janus": "keepalive", "transaction": "k", "session_id": s})).await;
    assert_eq!(ack, json!({"janus": "ack", "session_id": s, "transaction": "k"}));
}

#[tokio::test]
async fn unclaimed_sessions_go_after_the_window() {
    let server = TestServer::spawn(&[("PORTUNUS__GENERAL__RECLAIM_SESSION_TIMEOUT", "2")], &["-s", "60"]);
    let admin = server.admin();
    let mut first = server.ws().await;
    let s = first.create().await;
    first.close().await;
    eventually(DEADLINE, "the orphaned session to be destroyed", || async {
        (!session_listed(&admin, s).await).then_some(())
    })
    .await;
    let mut second = server.ws().await;
    let reply = second.request(json!({"janus": "claim", "transaction": "c", "session_id": s})).await;
    assert_eq!(
        reply,
        json!({"janus": "error", "session_id": s, "transaction": "c", "error": {"code": 458, "reason": format!("No such session {s}")}})
    );
}

#[tokio::test]
async fn claim_over_http_moves_a_websocket_session_to_long_polls() {
    let server = TestServer::spawn(&[("PORTUNUS__HTTP__LONGPOLL_KEEPALIVE", "1")], &[]);
    let http = server.http();
    let mut ws = server.ws().await;
    let (s, h) = ws.session_with_echotest().await;
    let (status, _) = http.get(&format!("/janus/{s}")).await;
    assert_eq!(status.as_u16(), 404, "not an HTTP session before the claim");
    let reply = http.post(&format!("/janus/{s}"), json!({"janus": "claim", "transaction": "c"})).await;
    assert_eq!(reply, json!({"janus": "success", "session_id": s, "transaction": "c"}));
    let ack = http.handle_request(s, h, "message", json!({"body": {"audio": true}})).await;
    assert_eq!(ack["janus"], "ack");
    let event = http.poll_until(s, DEADLINE, |e| e["janus"] == "event").await;
    assert_eq!(event["sender"], h);
    // Closing the old socket no longer destroys the session.
    ws.close().await;
    let keepalive = http.get_json(&format!("/janus/{s}")).await;
    assert_eq!(keepalive, json!({"janus": "keepalive"}));
    assert_eq!(http.keepalive(s).await["janus"], "ack");
}

#[tokio::test]
async fn claim_from_another_socket_moves_the_events() {
    let server = TestServer::start();
    let mut first = server.ws().await;
    let (s, h) = first.session_with_echotest().await;
    let mut second = server.ws().await;
    let reply = second.request(json!({"janus": "claim", "transaction": "c", "session_id": s})).await;
    assert_eq!(reply, json!({"janus": "success", "session_id": s, "transaction": "c"}));
    // A request from the old owner: the reply comes back to it, the event goes to the new owner.
    let ack = first.handle_request(s, h, "message", json!({"body": {"audio": true}})).await;
    assert_eq!(ack["janus"], "ack");
    let event = second.recv_until(|v| v["janus"] == "event").await;
    assert_eq!(event["sender"], h);
    // Closing the old owner no longer destroys the session.
    first.close().await;
    let ack = second.request(json!({"janus": "keepalive", "transaction": "k", "session_id": s})).await;
    assert_eq!(ack, json!({"janus": "ack", "session_id": s, "transaction": "k"}));
}

#[tokio::test]
async fn an_http_session_claimed_by_a_websocket_is_404_to_long_polls() {
    let server = TestServer::start();
    let http = server.http();
    let s = http.create().await;
    let mut ws = server.ws().await;
    let reply = ws.request(json!({"janus": "claim", "transaction": "c", "session_id": s})).await;
    assert_eq!(reply, json!({"janus": "success", "session_id": s, "transaction": "c"}));
    let (status, body) = http.get(&format!("/janus/{s}")).await;
    assert_eq!((status.as_u16(), body.as_str()), (404, ""));
}
