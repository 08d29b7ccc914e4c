//! `opaque_id` (reference 1.1): with `opaqueid_in_api = true` the id given at attach is copied
//! into the handle's events and `detached`; without it, never.

use std::time::Duration;

use serde_json::json;

use crate::common::{TestServer, ECHOTEST};

#[tokio::test]
async fn opaque_id_is_copied_into_events_when_enabled() {
    let server = TestServer::spawn(&[("PORTUNUS__GENERAL__OPAQUEID_IN_API", "true")], &[]);
    let info = server.http().post("/janus", json!({"janus": "info", "transaction": "i"})).await;
    assert_eq!(info["opaqueid_in_api"], true);
    let mut ws = server.ws().await;
    let s = ws.create().await;
    let reply = ws
        .request(
            json!({"janus": "attach", "transaction": "a", "session_id": s, "plugin": ECHOTEST, "opaque_id": "op-123"}),
        )
        .await;
    assert_eq!(reply["janus"], "success", "{reply}");
    let h = reply["data"]["id"].as_u64().expect("handle id");
    let ack = ws.handle_request(s, h, "message", json!({"body": {"audio": true}})).await;
    assert_eq!(ack["janus"], "ack");
    let event = ws.recv_until(|v| v["janus"] == "event").await;
    assert_eq!(event["opaque_id"], "op-123", "{event}");
    ws.handle_request(s, h, "detach", json!({})).await;
    let detached = ws.recv_until(|v| v["janus"] == "detached").await;
    assert_eq!(detached, json!({"janus": "detached", "session_id": s, "sender": h, "opaque_id": "op-123"}));
}

#[tokio::test]
async fn opaque_id_stays_out_of_events_by_default() {
    let server = TestServer::start();
    let http = server.http();
    let s = http.create().await;
    let h = http.attach_with(s, ECHOTEST, json!({"opaque_id": "op-456"})).await;
    http.handle_request(s, h, "message", json!({"body": {"audio": true}})).await;
    let event = http.poll_until(s, Duration::from_secs(10), |e| e["janus"] == "event").await;
    assert!(event.get("opaque_id").is_none(), "{event}");
    // Admin handle_info still shows it.
    let info =
        server.admin().post(&format!("/admin/{s}/{h}"), json!({"janus": "handle_info", "transaction": "hi"})).await;
    assert_eq!(info["info"]["opaque_id"], "op-456", "{info}");
}
