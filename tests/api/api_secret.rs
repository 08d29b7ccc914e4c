//! Shared API secret (reference 1.2 steps 3-5, 5, 13): `apisecret` in every request except
//! `info`/`ping`, `?apisecret=` on long polls (HTTP 403 with an empty body when wrong).

use serde_json::json;

use crate::common::{assert_error, TestServer, ECHOTEST};

const SECRET: &str = "s3cret";
const UNAUTHORIZED: &str = "Unauthorized request (wrong or missing secret/token)";

fn server() -> TestServer {
    TestServer::spawn(&[("PORTUNUS__HTTP__LONGPOLL_KEEPALIVE", "1")], &["-a", SECRET])
}

#[tokio::test]
async fn create_needs_the_secret() {
    let server = server();
    let http = server.http();
    let reply = http.post("/janus", json!({"janus": "create", "transaction": "c1"})).await;
    assert_eq!(reply, json!({"janus": "error", "transaction": "c1", "error": {"code": 403, "reason": UNAUTHORIZED}}));
    let reply = http.post("/janus", json!({"janus": "create", "transaction": "c2", "apisecret": "wrong"})).await;
    assert_error(&reply, 403, UNAUTHORIZED);
    let reply = http.post("/janus", json!({"janus": "create", "transaction": "c3", "apisecret": 5})).await;
    assert_error(&reply, 403, UNAUTHORIZED);
    let reply = http.post("/janus", json!({"janus": "create", "transaction": "c4", "apisecret": SECRET})).await;
    assert_eq!(reply["janus"], "success", "{reply}");
}

#[tokio::test]
async fn info_and_ping_need_no_secret() {
    let server = server();
    let http = server.http();
    assert_eq!(http.post("/janus", json!({"janus": "ping", "transaction": "p"})).await["janus"], "pong");
    let info = http.post("/janus", json!({"janus": "info", "transaction": "i"})).await;
    assert_eq!(info["janus"], "server_info");
    assert_eq!(info["api_secret"], true);
    assert_eq!(http.get_json("/janus/info").await["janus"], "server_info");
    assert_eq!(http.get_json("/janus/ping").await["janus"], "pong");
}

#[tokio::test]
async fn session_and_handle_requests_need_the_secret() {
    let server = server();
    let http = server.http();
    let s = http.create_with(json!({"apisecret": SECRET})).await;
    let h = http.attach_with(s, ECHOTEST, json!({"apisecret": SECRET})).await;
    let reply = http.post(&format!("/janus/{s}"), json!({"janus": "keepalive", "transaction": "k"})).await;
    assert_eq!(
        reply,
        json!({"janus": "error", "session_id": s, "transaction": "k", "error": {"code": 403, "reason": UNAUTHORIZED}})
    );
    let reply =
        http.post(&format!("/janus/{s}"), json!({"janus": "attach", "transaction": "a", "plugin": ECHOTEST})).await;
    assert_error(&reply, 403, UNAUTHORIZED);
    let reply = http
        .post(&format!("/janus/{s}/{h}"), json!({"janus": "message", "transaction": "m", "body": {"audio": true}}))
        .await;
    assert_error(&reply, 403, UNAUTHORIZED);
    let reply = http
        .post(
            &format!("/janus/{s}/{h}"),
            json!({"janus": "message", "transaction": "m", "body": {"audio": true}, "apisecret": SECRET}),
        )
        .await;
    assert_eq!(reply["janus"], "ack", "{reply}");
    let reply =
        http.post(&format!("/janus/{s}"), json!({"janus": "destroy", "transaction": "d", "apisecret": SECRET})).await;
    assert_eq!(reply, json!({"janus": "success", "session_id": s, "transaction": "d"}));
}

#[tokio::test]
async fn secret_is_checked_before_session_lookup() {
    let server = server();
    let reply = server.http().post("/janus/999", json!({"janus": "keepalive", "transaction": "k"})).await;
    assert_eq!(
        reply,
        json!({"janus": "error", "session_id": 999, "transaction": "k", "error": {"code": 403, "reason": UNAUTHORIZED}})
    );
    let reply =
        server.http().post("/janus/999", json!({"janus": "keepalive", "transaction": "k", "apisecret": SECRET})).await;
    assert_error(&reply, 458, "No such session 999");
}

#[tokio::test]
async fn not_accepting_is_checked_before_the_secret() {
    let server = server();
    let reply = server
        .admin()
        .post("/admin", json!({"janus": "accept_new_sessions", "transaction": "a", "accept": false}))
        .await;
    assert_eq!(reply["janus"], "success", "{reply}");
    let reply = server.http().post("/janus", json!({"janus": "create", "transaction": "c"})).await;
    assert_error(&reply, 472, "Currently not accepting new sessions");
}

#[tokio::test]
async fn long_poll_needs_the_secret_in_the_query() {
    let server = server();
    let http = server.http();
    let s = http.create_with(json!({"apisecret": SECRET})).await;
    let (status, body) = http.get(&format!("/janus/{s}")).await;
    assert_eq!((status.as_u16(), body.as_str()), (403, ""));
    let (status, body) = http.get(&format!("/janus/{s}?apisecret=wrong")).await;
    assert_eq!((status.as_u16(), body.as_str()), (403, ""));
    let reply = http.get_json(&format!("/janus/{s}?apisecret={SECRET}")).await;
    assert_eq!(reply, json!({"janus": "keepalive"}));
    let reply = http.get_json(&format!("/janus/{s}?maxev=3&apisecret={SECRET}")).await;
    assert_eq!(reply, json!([{"janus": "keepalive"}]));
}

#[tokio::test]
async fn websocket_requests_need_the_secret() {
    let server = server();
    let mut ws = server.ws().await;
    let reply = ws.request(json!({"janus": "create", "transaction": "c"})).await;
    assert_error(&reply, 403, UNAUTHORIZED);
    let reply = ws.request(json!({"janus": "create", "transaction": "c2", "apisecret": SECRET})).await;
    assert_eq!(reply["janus"], "success", "{reply}");
    let s = reply["data"]["id"].as_u64().expect("id");
    let reply = ws.request(json!({"janus": "keepalive", "transaction": "k", "session_id": s})).await;
    assert_error(&reply, 403, UNAUTHORIZED);
    let reply =
        ws.request(json!({"janus": "keepalive", "transaction": "k", "session_id": s, "apisecret": SECRET})).await;
    assert_eq!(reply, json!({"janus": "ack", "session_id": s, "transaction": "k"}));
}

#[tokio::test]
async fn secret_from_the_environment() {
    let server = TestServer::spawn(&[("PORTUNUS__GENERAL__API_SECRET", "envsecret")], &[]);
    let http = server.http();
    let reply = http.post("/janus", json!({"janus": "create", "transaction": "c"})).await;
    assert_error(&reply, 403, UNAUTHORIZED);
    http.create_with(json!({"apisecret": "envsecret"})).await;
}
