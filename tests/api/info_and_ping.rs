//! `info` and `ping` (reference 1.2, 3, 13): answered at the root on every transport, with
//! `transaction` mandatory, and `GET /janus/info` / `GET /janus/ping` fabricating a transaction.

use serde_json::json;

use crate::common::{assert_error, TestServer, ECHOTEST};

#[tokio::test]
async fn ping_answers_pong() {
    let server = TestServer::start();
    let reply = server.http().post("/janus", json!({"janus": "ping", "transaction": "t1"})).await;
    assert_eq!(reply, json!({"janus": "pong", "transaction": "t1"}));
}

#[tokio::test]
async fn info_describes_the_server() {
    let server = TestServer::spawn(&[], &["-s", "7"]);
    let info = server.http().post("/janus", json!({"janus": "info", "transaction": "i1"})).await;
    assert_eq!(info["janus"], "server_info");
    assert_eq!(info["transaction"], "i1");
    assert_eq!(info["name"], "Janus WebRTC Server");
    assert!(info["version"].is_u64(), "version: {info}");
    assert!(info["version_string"].is_string(), "version_string: {info}");
    assert_eq!(info["session-timeout"], 7);
    assert_eq!(info["reclaim-session-timeout"], 0);
    assert_eq!(info["accepting-new-sessions"], true);
    assert_eq!(info["api_secret"], false);
    assert_eq!(info["auth_token"], false);
    assert_eq!(info["opaqueid_in_api"], false);
    assert!(info.get("session_id").is_none(), "server_info carries no session_id: {info}");
    let echotest = &info["plugins"][ECHOTEST];
    assert_eq!(echotest["name"], "JANUS EchoTest plugin");
    assert_eq!(echotest["version_string"], "0.0.7");
    assert_eq!(echotest["version"], 7);
    assert!(info["transports"]["janus.transport.http"].is_object(), "transports: {info}");
    assert!(info["transports"]["janus.transport.websockets"].is_object(), "transports: {info}");
}

#[tokio::test]
async fn info_reports_the_twcc_period_in_effect() {
    for (configured, reported) in [(None, 200), (Some("0"), 200), (Some("500"), 500), (Some("150"), 200)] {
        let env: Vec<(&str, &str)> = configured.map(|v| ("PORTUNUS__MEDIA__TWCC_PERIOD", v)).into_iter().collect();
        let server = TestServer::spawn(&env, &[]);
        let info = server.http().post("/janus", json!({"janus": "info", "transaction": "tw"})).await;
        assert_eq!(info["twcc-period"], reported, "media.twcc_period {configured:?}");
    }
}

#[tokio::test]
async fn info_and_ping_need_a_transaction() {
    let server = TestServer::start();
    let http = server.http();
    for name in ["ping", "info"] {
        let reply = http.post("/janus", json!({"janus": name})).await;
        assert_error(&reply, 456, "Missing mandatory element (transaction)");
        assert!(reply.get("transaction").is_none(), "no transaction in {reply}");
    }
}

#[tokio::test]
async fn get_info_fabricates_an_eleven_char_transaction() {
    let server = TestServer::start();
    let info = server.http().get_json("/janus/info").await;
    assert_eq!(info["janus"], "server_info");
    let t = info["transaction"].as_str().expect("a transaction");
    assert_eq!(t.chars().count(), 11, "transaction {t:?}");
}

#[tokio::test]
async fn get_ping_answers_pong() {
    let server = TestServer::start();
    let pong = server.http().get_json("/janus/ping").await;
    assert_eq!(pong["janus"], "pong");
    assert!(pong["transaction"].is_string(), "{pong}");
}

#[tokio::test]
async fn websocket_info_and_ping() {
    let server = TestServer::start();
    let mut ws = server.ws().await;
    let pong = ws.request(json!({"janus": "ping", "transaction": "w1"})).await;
    assert_eq!(pong, json!({"janus": "pong", "transaction": "w1"}));
    let info = ws.request(json!({"janus": "info", "transaction": "w2"})).await;
    assert_eq!(info["janus"], "server_info");
    assert_eq!(info["transaction"], "w2");
}

#[tokio::test]
async fn admin_info_and_ping() {
    let server = TestServer::start();
    let admin = server.admin();
    let pong = admin.post("/admin", json!({"janus": "ping", "transaction": "a1"})).await;
    assert_eq!(pong, json!({"janus": "pong", "transaction": "a1"}));
    let info = admin.post("/admin", json!({"janus": "info", "transaction": "a2"})).await;
    assert_eq!(info["janus"], "server_info");
    assert_eq!(admin.get_json("/admin/info").await["janus"], "server_info");
    assert_eq!(admin.get_json("/admin/ping").await["janus"], "pong");
}
