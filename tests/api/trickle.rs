//! `trickle` (reference 1.4, 13): always answered with `ack`, never `success`; the single
//! candidate is validated, bad entries of a `candidates` batch are skipped.

use serde_json::{json, Value};

use crate::common::{assert_error, assert_error_code, HttpClient, TestServer};

async fn trickle(http: &HttpClient, s: u64, h: u64, t: &str, extra: Value) -> Value {
    let mut req = json!({"janus": "trickle", "transaction": t});
    crate::common::http::merge(&mut req, extra);
    http.post(&format!("/janus/{s}/{h}"), req).await
}

#[tokio::test]
async fn trickle_without_candidate_is_456() {
    let server = TestServer::start();
    let http = server.http();
    let (s, h) = http.session_with_echotest().await;
    let reply = trickle(&http, s, h, "t17", json!({})).await;
    assert_eq!(
        reply,
        json!({"janus": "error", "session_id": s, "transaction": "t17",
               "error": {"code": 456, "reason": "Missing mandatory element (candidate|candidates)"}})
    );
}

#[tokio::test]
async fn trickle_with_both_is_454() {
    let server = TestServer::start();
    let http = server.http();
    let (s, h) = http.session_with_echotest().await;
    let reply =
        trickle(&http, s, h, "t18", json!({"candidate": {"completed": true}, "candidates": [{"completed": true}]}))
            .await;
    assert_eq!(
        reply,
        json!({"janus": "error", "session_id": s, "transaction": "t18",
               "error": {"code": 454, "reason": "Can't have both candidate and candidates"}})
    );
}

#[tokio::test]
async fn trickle_completed_is_acked() {
    let server = TestServer::start();
    let http = server.http();
    let (s, h) = http.session_with_echotest().await;
    let reply = trickle(&http, s, h, "t19", json!({"candidate": {"completed": true}})).await;
    assert_eq!(reply, json!({"janus": "ack", "session_id": s, "transaction": "t19"}));
    let reply = trickle(&http, s, h, "t19b", json!({"candidate": null})).await;
    assert_eq!(reply, json!({"janus": "ack", "session_id": s, "transaction": "t19b"}));
}

#[tokio::test]
async fn trickle_candidate_before_negotiation_is_queued_and_acked() {
    let server = TestServer::start();
    let http = server.http();
    let (s, h) = http.session_with_echotest().await;
    let cand = json!({"sdpMid": "0", "sdpMLineIndex": 0,
                      "candidate": "candidate:1 1 udp 2113937151 127.0.0.1 50000 typ host"});
    let reply = trickle(&http, s, h, "c1", json!({"candidate": cand})).await;
    assert_eq!(reply, json!({"janus": "ack", "session_id": s, "transaction": "c1"}));
    let only_mid = json!({"sdpMid": "0", "candidate": "candidate:2 1 udp 2113937151 127.0.0.1 50001 typ host"});
    let reply = trickle(&http, s, h, "c2", json!({"candidate": only_mid})).await;
    assert_eq!(reply["janus"], "ack", "{reply}");
}

#[tokio::test]
async fn trickle_batch_skips_bad_entries() {
    let server = TestServer::start();
    let http = server.http();
    let (s, h) = http.session_with_echotest().await;
    let batch = json!([
        {"sdpMid": "0", "sdpMLineIndex": 0, "candidate": "candidate:1 1 udp 2113937151 127.0.0.1 50000 typ host"},
        {"candidate": "no mid or index"},
        {"sdpMid": 7, "candidate": "bad mid"},
        5,
        {"completed": true}
    ]);
    let reply = trickle(&http, s, h, "c3", json!({"candidates": batch})).await;
    assert_eq!(reply, json!({"janus": "ack", "session_id": s, "transaction": "c3"}));
    let reply = trickle(&http, s, h, "c4", json!({"candidates": []})).await;
    assert_eq!(reply, json!({"janus": "ack", "session_id": s, "transaction": "c4"}));
}

#[tokio::test]
async fn trickle_single_candidate_validation() {
    let server = TestServer::start();
    let http = server.http();
    let (s, h) = http.session_with_echotest().await;
    let reply =
        trickle(&http, s, h, "t", json!({"candidate": {"candidate": "candidate:1 1 udp 1 127.0.0.1 1 typ host"}}))
            .await;
    assert_error(&reply, 456, "Trickle error: missing mandatory element (sdpMid or sdpMLineIndex)");
    let reply = trickle(&http, s, h, "t", json!({"candidate": {"sdpMid": "0"}})).await;
    assert_error(&reply, 456, "Trickle error: missing mandatory element (candidate)");
    for bad in [
        json!({"sdpMid": 5, "candidate": "c"}),
        json!({"sdpMLineIndex": -1, "candidate": "c"}),
        json!({"sdpMLineIndex": "0", "candidate": "c"}),
        json!({"sdpMid": "0", "candidate": 5}),
    ] {
        let reply = trickle(&http, s, h, "t", json!({"candidate": bad.clone()})).await;
        let reason = assert_error_code(&reply, 467);
        assert!(reason.starts_with("Trickle error: invalid element type ("), "candidate {bad}: reason {reason:?}");
    }
}

#[tokio::test]
async fn trickle_candidates_must_be_an_array() {
    let server = TestServer::start();
    let http = server.http();
    let (s, h) = http.session_with_echotest().await;
    let reply = trickle(&http, s, h, "t", json!({"candidates": {"completed": true}})).await;
    assert_error(&reply, 467, "Invalid element type (candidates should be an array)");
}
