//! Stored-token authentication (reference 4.1, 5): tokens managed through the Admin API,
//! `token` in every request (`?token=` on long polls), per-plugin permissions checked on attach.

use serde_json::{json, Value};

use crate::common::{assert_error, HttpClient, TestServer, ECHOTEST};

const UNAUTHORIZED: &str = "Unauthorized request (wrong or missing secret/token)";

fn server() -> TestServer {
    TestServer::spawn(&[("PORTUNUS__HTTP__LONGPOLL_KEEPALIVE", "1")], &["-A"])
}

async fn admin(a: &HttpClient, name: &str, t: &str, extra: Value) -> Value {
    let mut req = json!({"janus": name, "transaction": t});
    crate::common::http::merge(&mut req, extra);
    a.post("/admin", req).await
}

#[tokio::test]
async fn add_list_and_use_a_token() {
    let server = server();
    let a = server.admin();
    let http = server.http();
    let reply = admin(&a, "add_token", "t1", json!({"token": "tok1", "plugins": [ECHOTEST]})).await;
    assert_eq!(reply, json!({"janus": "success", "transaction": "t1", "data": {"plugins": [ECHOTEST]}}));
    let reply = admin(&a, "list_tokens", "t2", json!({})).await;
    assert_eq!(
        reply,
        json!({"janus": "success", "transaction": "t2", "data": {"tokens": [{"token": "tok1", "allowed_plugins": [ECHOTEST]}]}})
    );
    let s = http.create_with(json!({"token": "tok1"})).await;
    let h = http.attach_with(s, ECHOTEST, json!({"token": "tok1"})).await;
    let ack = http.handle_request(s, h, "message", json!({"token": "tok1", "body": {"audio": true}})).await;
    assert_eq!(ack["janus"], "ack", "{ack}");
}

#[tokio::test]
async fn missing_or_unknown_token_is_403() {
    let server = server();
    let http = server.http();
    admin(&server.admin(), "add_token", "t", json!({"token": "tok1"})).await;
    let reply = http.post("/janus", json!({"janus": "create", "transaction": "c"})).await;
    assert_eq!(reply, json!({"janus": "error", "transaction": "c", "error": {"code": 403, "reason": UNAUTHORIZED}}));
    let reply = http.post("/janus", json!({"janus": "create", "transaction": "c", "token": "nope"})).await;
    assert_error(&reply, 403, UNAUTHORIZED);
    let s = http.create_with(json!({"token": "tok1"})).await;
    let reply = http.post(&format!("/janus/{s}"), json!({"janus": "keepalive", "transaction": "k"})).await;
    assert_error(&reply, 403, UNAUTHORIZED);
    // info and ping need nothing.
    assert_eq!(http.post("/janus", json!({"janus": "ping", "transaction": "p"})).await["janus"], "pong");
    let info = http.post("/janus", json!({"janus": "info", "transaction": "i"})).await;
    assert_eq!(info["auth_token"], true);
}

#[tokio::test]
async fn add_token_without_plugins_allows_all() {
    let server = server();
    let reply = admin(&server.admin(), "add_token", "t", json!({"token": "all"})).await;
    assert_eq!(reply["janus"], "success", "{reply}");
    let plugins = reply["data"]["plugins"].as_array().expect("plugins list");
    assert!(plugins.contains(&json!(ECHOTEST)), "{reply}");
    let http = server.http();
    let s = http.create_with(json!({"token": "all"})).await;
    http.attach_with(s, ECHOTEST, json!({"token": "all"})).await;
}

#[tokio::test]
async fn attach_to_a_plugin_the_token_cannot_access_is_405() {
    let server = server();
    let a = server.admin();
    let http = server.http();
    admin(&a, "add_token", "t", json!({"token": "tok2", "plugins": [ECHOTEST]})).await;
    let reply = admin(&a, "disallow_token", "d", json!({"token": "tok2", "plugins": [ECHOTEST]})).await;
    assert_eq!(reply, json!({"janus": "success", "transaction": "d", "data": {"plugins": []}}));
    let s = http.create_with(json!({"token": "tok2"})).await;
    let reply = http
        .post(
            &format!("/janus/{s}"),
            json!({"janus": "attach", "transaction": "a", "plugin": ECHOTEST, "token": "tok2"}),
        )
        .await;
    assert_eq!(
        reply,
        json!({"janus": "error", "session_id": s, "transaction": "a",
               "error": {"code": 405, "reason": format!("Provided token can't access plugin '{ECHOTEST}'")}})
    );
    let reply = admin(&a, "allow_token", "al", json!({"token": "tok2", "plugins": [ECHOTEST]})).await;
    assert_eq!(reply, json!({"janus": "success", "transaction": "al", "data": {"plugins": [ECHOTEST]}}));
    http.attach_with(s, ECHOTEST, json!({"token": "tok2"})).await;
}

#[tokio::test]
async fn token_request_errors() {
    let server = server();
    let a = server.admin();
    let reply = admin(&a, "allow_token", "t1", json!({"token": "nope", "plugins": [ECHOTEST]})).await;
    assert_eq!(
        reply,
        json!({"janus": "error", "transaction": "t1", "error": {"code": 470, "reason": "Token nope not found"}})
    );
    let reply = admin(&a, "disallow_token", "t2", json!({"token": "nope", "plugins": [ECHOTEST]})).await;
    assert_error(&reply, 470, "Token nope not found");
    admin(&a, "add_token", "t3", json!({"token": "tok"})).await;
    let reply = admin(&a, "allow_token", "t4", json!({"token": "tok", "plugins": ["janus.plugin.nope"]})).await;
    assert_error(&reply, 467, "Invalid element type (some of the provided plugins are invalid)");
    let reply = admin(&a, "allow_token", "t5", json!({"token": "tok"})).await;
    assert_error(&reply, 456, "Missing mandatory element (plugins)");
    let reply = admin(&a, "add_token", "t6", json!({})).await;
    assert_error(&reply, 456, "Missing mandatory element (token)");
}

#[tokio::test]
async fn remove_token() {
    let server = server();
    let a = server.admin();
    let http = server.http();
    admin(&a, "add_token", "t", json!({"token": "tok1"})).await;
    let s = http.create_with(json!({"token": "tok1"})).await;
    let reply = admin(&a, "remove_token", "r", json!({"token": "tok1"})).await;
    assert_eq!(reply, json!({"janus": "success", "transaction": "r"}));
    let reply = admin(&a, "list_tokens", "l", json!({})).await;
    assert_eq!(reply["data"]["tokens"], json!([]));
    let reply = http.post("/janus", json!({"janus": "create", "transaction": "c", "token": "tok1"})).await;
    assert_error(&reply, 403, UNAUTHORIZED);
    let reply =
        http.post(&format!("/janus/{s}"), json!({"janus": "keepalive", "transaction": "k", "token": "tok1"})).await;
    assert_error(&reply, 403, UNAUTHORIZED);
}

#[tokio::test]
async fn remove_unknown_token_is_490() {
    let server = server();
    let reply = admin(&server.admin(), "remove_token", "r", json!({"token": "nope"})).await;
    assert_eq!(
        reply,
        json!({"janus": "error", "transaction": "r", "error": {"code": 490, "reason": "Error removing token"}})
    );
}

#[tokio::test]
async fn long_poll_takes_the_token_in_the_query() {
    let server = server();
    let http = server.http();
    admin(&server.admin(), "add_token", "t", json!({"token": "tok1"})).await;
    let s = http.create_with(json!({"token": "tok1"})).await;
    let (status, body) = http.get(&format!("/janus/{s}")).await;
    assert_eq!((status.as_u16(), body.as_str()), (403, ""));
    let (status, _) = http.get(&format!("/janus/{s}?token=nope")).await;
    assert_eq!(status.as_u16(), 403);
    assert_eq!(http.get_json(&format!("/janus/{s}?token=tok1")).await, json!({"janus": "keepalive"}));
}

#[tokio::test]
async fn either_secret_or_token_authorizes() {
    let server = TestServer::spawn(&[], &["-A", "-a", "s3cret"]);
    let http = server.http();
    admin(&server.admin(), "add_token", "t", json!({"token": "tok1"})).await;
    let s1 = http.create_with(json!({"apisecret": "s3cret"})).await;
    let s2 = http.create_with(json!({"token": "tok1"})).await;
    let reply = http.post("/janus", json!({"janus": "create", "transaction": "c"})).await;
    assert_error(&reply, 403, UNAUTHORIZED);
    let reply =
        http.post("/janus", json!({"janus": "create", "transaction": "c", "apisecret": "x", "token": "y"})).await;
    assert_error(&reply, 403, UNAUTHORIZED);
    assert_eq!(http.session_request(s1, "keepalive", json!({"token": "tok1"})).await["janus"], "ack");
    assert_eq!(http.session_request(s2, "keepalive", json!({"apisecret": "s3cret"})).await["janus"], "ack");
}

#[tokio::test]
async fn status_reports_token_auth() {
    let server = server();
    let reply = admin(&server.admin(), "get_status", "g", json!({})).await;
    assert_eq!(reply["status"]["token_auth"], true, "{reply}");
}
