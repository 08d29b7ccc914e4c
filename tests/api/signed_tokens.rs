//! HMAC-signed tokens (reference 5): `<expiry>,janus,<plugin>...:<base64 HMAC-SHA1>`, checked
//! for signature, realm and expiry; the plugin descriptors gate `attach`. Stored-token Admin
//! requests are disabled in this mode.

use serde_json::json;

use crate::common::token::now_secs;
use crate::common::{assert_error, signed_token, TestServer, ECHOTEST};

const KEY: &str = "tokensecret";
const UNAUTHORIZED: &str = "Unauthorized request (wrong or missing secret/token)";

fn server() -> TestServer {
    TestServer::spawn(&[], &["-A", "--token-auth-secret", KEY])
}

fn valid_for(plugins: &[&str]) -> String {
    signed_token(KEY, now_secs() + 3600, "janus", plugins)
}

#[tokio::test]
async fn a_valid_token_creates_and_attaches() {
    let server = server();
    let http = server.http();
    let token = valid_for(&[ECHOTEST]);
    let s = http.create_with(json!({"token": token})).await;
    let h = http.attach_with(s, ECHOTEST, json!({"token": token})).await;
    let ack = http.handle_request(s, h, "message", json!({"token": token, "body": {"audio": true}})).await;
    assert_eq!(ack["janus"], "ack", "{ack}");
}

#[tokio::test]
async fn bad_tokens_are_403() {
    let server = server();
    let http = server.http();
    let future = now_secs() + 3600;
    let bad = [
        ("expired", signed_token(KEY, now_secs() - 10, "janus", &[ECHOTEST])),
        ("other key", signed_token("not-the-key", future, "janus", &[ECHOTEST])),
        ("other realm", signed_token(KEY, future, "janus.plugin.videoroom", &[ECHOTEST])),
        ("negative expiry", signed_token(KEY, -5, "janus", &[ECHOTEST])),
        ("no signature", format!("{future},janus,{ECHOTEST}")),
        ("two colons", format!("{}:extra", valid_for(&[ECHOTEST]))),
        ("garbage", "garbage".to_owned()),
        ("empty", String::new()),
    ];
    for (what, token) in bad {
        let reply = http.post("/janus", json!({"janus": "create", "transaction": "c", "token": token})).await;
        assert_eq!(
            reply,
            json!({"janus": "error", "transaction": "c", "error": {"code": 403, "reason": UNAUTHORIZED}}),
            "{what}: {token}"
        );
    }
    let reply = http.post("/janus", json!({"janus": "create", "transaction": "c"})).await;
    assert_error(&reply, 403, UNAUTHORIZED);
}

#[tokio::test]
async fn tampered_data_breaks_the_signature() {
    let server = server();
    let token = valid_for(&["janus.plugin.videoroom"]);
    let tampered = token.replacen("janus.plugin.videoroom", ECHOTEST, 1);
    let reply = server.http().post("/janus", json!({"janus": "create", "transaction": "c", "token": tampered})).await;
    assert_error(&reply, 403, UNAUTHORIZED);
}

#[tokio::test]
async fn attach_needs_the_plugin_among_the_descriptors() {
    let server = server();
    let http = server.http();
    let token = valid_for(&["janus.plugin.videoroom"]);
    let s = http.create_with(json!({"token": token})).await;
    let reply = http
        .post(
            &format!("/janus/{s}"),
            json!({"janus": "attach", "transaction": "a", "plugin": ECHOTEST, "token": token}),
        )
        .await;
    assert_eq!(
        reply,
        json!({"janus": "error", "session_id": s, "transaction": "a",
               "error": {"code": 405, "reason": format!("Provided token can't access plugin '{ECHOTEST}'")}})
    );
    let both = valid_for(&["janus.plugin.videoroom", ECHOTEST]);
    http.attach_with(s, ECHOTEST, json!({"token": both})).await;
}

#[tokio::test]
async fn info_and_ping_need_no_token() {
    let server = server();
    let http = server.http();
    assert_eq!(http.post("/janus", json!({"janus": "ping", "transaction": "p"})).await["janus"], "pong");
    let info = http.post("/janus", json!({"janus": "info", "transaction": "i"})).await;
    assert_eq!(info["janus"], "server_info");
    assert_eq!(info["auth_token"], true);
}

#[tokio::test]
async fn stored_token_requests_are_disabled() {
    let server = server();
    let a = server.admin();
    for (name, extra) in [
        ("add_token", json!({"token": "t"})),
        ("list_tokens", json!({})),
        ("allow_token", json!({"token": "t", "plugins": [ECHOTEST]})),
        ("disallow_token", json!({"token": "t", "plugins": [ECHOTEST]})),
        ("remove_token", json!({"token": "t"})),
    ] {
        let mut req = json!({"janus": name, "transaction": "x"});
        crate::common::http::merge(&mut req, extra);
        let reply = a.post("/admin", req).await;
        assert_error(&reply, 490, "Stored-Token based authentication disabled");
    }
}

#[tokio::test]
async fn websocket_and_long_poll_take_signed_tokens() {
    let server = TestServer::spawn(&[("PORTUNUS__HTTP__LONGPOLL_KEEPALIVE", "1")], &["-A", "--token-auth-secret", KEY]);
    let token = valid_for(&[ECHOTEST]);
    let mut ws = server.ws().await;
    let reply = ws.request(json!({"janus": "create", "transaction": "c", "token": token})).await;
    assert_eq!(reply["janus"], "success", "{reply}");
    let http = server.http();
    let s = http.create_with(json!({"token": token})).await;
    let (status, _) = http.get(&format!("/janus/{s}")).await;
    assert_eq!(status.as_u16(), 403);
    let encoded: String = token
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    assert_eq!(http.get_json(&format!("/janus/{s}?token={encoded}")).await, json!({"janus": "keepalive"}));
}
