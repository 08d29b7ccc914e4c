//! Request names are compared case-insensitively (reference section 0, `strcasecmp`), while
//! error reasons quote the name as the client sent it.

use serde_json::json;

use crate::common::{assert_error, TestServer, ECHOTEST};

#[tokio::test]
async fn request_names_ignore_case_over_http() {
    let server = TestServer::start();
    let http = server.http();
    let pong = http.post("/janus", json!({"janus": "PING", "transaction": "p"})).await;
    assert_eq!(pong, json!({"janus": "pong", "transaction": "p"}));
    let info = http.post("/janus", json!({"janus": "Info", "transaction": "i"})).await;
    assert_eq!(info["janus"], "server_info");
    let created = http.post("/janus", json!({"janus": "CrEaTe", "transaction": "c"})).await;
    assert_eq!(created["janus"], "success", "{created}");
    let s = created["data"]["id"].as_u64().expect("session id");
    let ack = http.post(&format!("/janus/{s}"), json!({"janus": "KEEPALIVE", "transaction": "k"})).await;
    assert_eq!(ack, json!({"janus": "ack", "session_id": s, "transaction": "k"}));
    let attached =
        http.post(&format!("/janus/{s}"), json!({"janus": "Attach", "transaction": "a", "plugin": ECHOTEST})).await;
    assert_eq!(attached["janus"], "success", "{attached}");
    let h = attached["data"]["id"].as_u64().expect("handle id");
    let path = format!("/janus/{s}/{h}");
    let ack = http.post(&path, json!({"janus": "MESSAGE", "transaction": "m", "body": {"audio": true}})).await;
    assert_eq!(ack["janus"], "ack", "{ack}");
    let ack =
        http.post(&path, json!({"janus": "Trickle", "transaction": "tr", "candidate": {"completed": true}})).await;
    assert_eq!(ack["janus"], "ack", "{ack}");
    let ok = http.post(&path, json!({"janus": "HangUp", "transaction": "hu"})).await;
    assert_eq!(ok["janus"], "success", "{ok}");
    let ok = http.post(&format!("/janus/{s}"), json!({"janus": "Claim", "transaction": "cl"})).await;
    assert_eq!(ok["janus"], "success", "{ok}");
    let ok = http.post(&format!("/janus/{s}"), json!({"janus": "Destroy", "transaction": "x"})).await;
    assert_eq!(ok, json!({"janus": "success", "session_id": s, "transaction": "x"}));
}

#[tokio::test]
async fn request_names_ignore_case_over_websocket_and_admin() {
    let server = TestServer::start();
    let mut ws = server.ws().await;
    let created = ws.request(json!({"janus": "CREATE", "transaction": "c"})).await;
    assert_eq!(created["janus"], "success", "{created}");
    let s = created["data"]["id"].as_u64().expect("session id");
    let ack = ws.request(json!({"janus": "keepAlive", "transaction": "k", "session_id": s})).await;
    assert_eq!(ack, json!({"janus": "ack", "session_id": s, "transaction": "k"}));
    let list = server.admin().post("/admin", json!({"janus": "List_Sessions", "transaction": "l"})).await;
    assert_eq!(list["janus"], "success", "{list}");
    assert!(list["sessions"].as_array().is_some_and(|a| a.contains(&json!(s))), "{list}");
}

#[tokio::test]
async fn error_reasons_quote_the_name_as_sent() {
    let server = TestServer::start();
    let http = server.http();
    let reply = http.post("/janus", json!({"janus": "Attach", "transaction": "t", "plugin": ECHOTEST})).await;
    assert_error(&reply, 457, "Unhandled request 'Attach' at this path");
    let s = http.create().await;
    let reply = http.post(&format!("/janus/{s}"), json!({"janus": "FooBar", "transaction": "t"})).await;
    assert_error(&reply, 453, "Unknown request 'FooBar'");
    let reply = http.post(&format!("/janus/{s}"), json!({"janus": "Message", "transaction": "t", "body": {}})).await;
    assert_error(&reply, 457, "Unhandled request 'Message' at this path");
}

#[tokio::test]
async fn detach_name_ignores_case() {
    let server = TestServer::start();
    let http = server.http();
    let (s, h) = http.session_with_echotest().await;
    let ok = http.post(&format!("/janus/{s}/{h}"), json!({"janus": "DETACH", "transaction": "d"})).await;
    assert_eq!(ok, json!({"janus": "success", "session_id": s, "transaction": "d"}));
}
