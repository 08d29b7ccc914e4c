//! `message` (reference 1.3, 13): body validation, the JSEP checks the core makes before the
//! plugin sees anything, and EchoTest's asynchronous `ack` + `event` pair.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{assert_error, HttpClient, TestServer, ECHOTEST, ECHOTEST_HINT};

async fn message(http: &HttpClient, s: u64, h: u64, t: &str, extra: Value) -> Value {
    let mut req = json!({"janus": "message", "transaction": t});
    crate::common::http::merge(&mut req, extra);
    http.post(&format!("/janus/{s}/{h}"), req).await
}

#[tokio::test]
async fn message_without_body_is_456() {
    let server = TestServer::start();
    let http = server.http();
    let (s, h) = http.session_with_echotest().await;
    let reply = message(&http, s, h, "t12", json!({})).await;
    assert_eq!(
        reply,
        json!({"janus": "error", "session_id": s, "transaction": "t12",
               "error": {"code": 456, "reason": "Missing mandatory element (body)"}})
    );
}

#[tokio::test]
async fn message_body_must_be_an_object() {
    let server = TestServer::start();
    let http = server.http();
    let (s, h) = http.session_with_echotest().await;
    for body in [json!("x"), json!([1]), json!(5)] {
        let reply = message(&http, s, h, "t", json!({"body": body})).await;
        assert_error(&reply, 467, "Invalid element type (body should be an object)");
    }
}

#[tokio::test]
async fn echotest_message_is_acked_with_hint_then_answered_by_an_event() {
    let server = TestServer::start();
    let http = server.http();
    let (s, h) = http.session_with_echotest().await;
    let ack = message(&http, s, h, "t13", json!({"body": {"audio": true}})).await;
    assert_eq!(ack, json!({"janus": "ack", "session_id": s, "transaction": "t13", "hint": ECHOTEST_HINT}));
    let event = http.poll_until(s, Duration::from_secs(10), |e| e["janus"] == "event").await;
    assert_eq!(
        event,
        json!({"janus": "event", "session_id": s, "transaction": "t13", "sender": h,
               "plugindata": {"plugin": ECHOTEST, "data": {"echotest": "event", "result": "ok"}}})
    );
}

#[tokio::test]
async fn plugin_errors_travel_in_plugindata() {
    let server = TestServer::start();
    let mut ws = server.ws().await;
    let (s, h) = ws.session_with_echotest().await;
    let req = json!({"janus": "message", "transaction": "e1", "session_id": s, "handle_id": h, "body": {"foo": true}});
    let ack = ws.request(req).await;
    assert_eq!(ack, json!({"janus": "ack", "session_id": s, "transaction": "e1", "hint": ECHOTEST_HINT}));
    let event = ws.recv_until(|v| v["janus"] == "event" && v["transaction"] == "e1").await;
    assert_eq!(
        event,
        json!({"janus": "event", "session_id": s, "transaction": "e1", "sender": h,
               "plugindata": {"plugin": ECHOTEST, "data": {"echotest": "event", "error_code": 413,
                              "error": "Message error: no supported attributes found"}}})
    );
}

#[tokio::test]
async fn jsep_unknown_type_is_464() {
    let server = TestServer::start();
    let http = server.http();
    let (s, h) = http.session_with_echotest().await;
    let reply = message(&http, s, h, "t14", json!({"body": {}, "jsep": {"type": "pranswer", "sdp": "v=0\r\n"}})).await;
    assert_eq!(
        reply,
        json!({"janus": "error", "session_id": s, "transaction": "t14",
               "error": {"code": 464, "reason": "JSEP error: unknown message type 'pranswer'"}})
    );
}

#[tokio::test]
async fn jsep_without_sdp_is_456() {
    let server = TestServer::start();
    let http = server.http();
    let (s, h) = http.session_with_echotest().await;
    let reply = message(&http, s, h, "t16", json!({"body": {}, "jsep": {"type": "offer"}})).await;
    assert_eq!(
        reply,
        json!({"janus": "error", "session_id": s, "transaction": "t16",
               "error": {"code": 456, "reason": "JSEP error: missing mandatory element (sdp)"}})
    );
}

#[tokio::test]
async fn jsep_field_types() {
    let server = TestServer::start();
    let http = server.http();
    let (s, h) = http.session_with_echotest().await;
    let reply = message(&http, s, h, "t", json!({"body": {}, "jsep": {"type": "offer", "sdp": 5}})).await;
    assert_error(&reply, 467, "JSEP error: invalid element type (sdp should be a string)");
    let reply = message(&http, s, h, "t", json!({"body": {}, "jsep": {"sdp": "v=0\r\n"}})).await;
    assert_error(&reply, 456, "JSEP error: missing mandatory element (type)");
    for jsep in [json!("offer"), json!([1]), json!(5)] {
        let reply = message(&http, s, h, "t", json!({"body": {}, "jsep": jsep})).await;
        assert_error(&reply, 455, "Invalid jsep object");
    }
}

#[tokio::test]
async fn jsep_checks_run_before_the_plugin_sees_the_message() {
    let server = TestServer::start();
    let mut ws = server.ws().await;
    let (s, h) = ws.session_with_echotest().await;
    let req = json!({"janus": "message", "transaction": "j1", "session_id": s, "handle_id": h,
                     "body": {"audio": true}, "jsep": {"type": "pranswer", "sdp": "v=0\r\n"}});
    let reply = ws.request(req).await;
    assert_error(&reply, 464, "JSEP error: unknown message type 'pranswer'");
    // No plugin event follows a rejected message.
    let pong = ws.request(json!({"janus": "ping", "transaction": "after"})).await;
    assert_eq!(pong["janus"], "pong");
    assert!(
        ws.backlog().iter().all(|v| v["transaction"] != "j1"),
        "a rejected message reached the plugin: {:?}",
        ws.backlog()
    );
}

#[tokio::test]
async fn jsep_sdp_that_does_not_parse_is_465() {
    let server = TestServer::start();
    let http = server.http();
    let (s, h) = http.session_with_echotest().await;
    let reply =
        message(&http, s, h, "t15", json!({"body": {"audio": true}, "jsep": {"type": "offer", "sdp": "garbage"}}))
            .await;
    assert_eq!(
        reply,
        json!({"janus": "error", "session_id": s, "transaction": "t15",
               "error": {"code": 465, "reason": "Invalid SDP (doesn't start with v=)"}})
    );
}

#[tokio::test]
async fn jsep_answer_without_offer_is_469() {
    let server = TestServer::start();
    let http = server.http();
    let (s, h) = http.session_with_echotest().await;
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";
    let reply = message(&http, s, h, "t17", json!({"body": {}, "jsep": {"type": "answer", "sdp": sdp}})).await;
    assert_eq!(
        reply,
        json!({"janus": "error", "session_id": s, "transaction": "t17",
               "error": {"code": 469, "reason": "Unexpected ANSWER (did we offer?)"}})
    );
}
