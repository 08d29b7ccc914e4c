//! The request validation order of reference 1.2 (first failing check wins) and the exact error
//! replies of section 13: parse errors, envelope fields, root-path rules, session and handle
//! lookups, and HTTP path/payload id conflicts.

use serde_json::{json, Value};

use crate::common::{assert_error, TestServer, ECHOTEST};

#[tokio::test]
async fn missing_transaction_is_456_without_transaction() {
    let server = TestServer::start();
    let reply = server.http().post("/janus", json!({"janus": "create"})).await;
    assert_eq!(
        reply,
        json!({"janus": "error", "error": {"code": 456, "reason": "Missing mandatory element (transaction)"}})
    );
}

#[tokio::test]
async fn transaction_not_a_string_is_467() {
    let server = TestServer::start();
    let reply = server.http().post("/janus", json!({"janus": "ping", "transaction": 5})).await;
    assert_error(&reply, 467, "Invalid element type (transaction should be a string)");
    assert!(reply.get("transaction").is_none(), "{reply}");
}

#[tokio::test]
async fn missing_or_bad_janus_field() {
    let server = TestServer::start();
    let http = server.http();
    let reply = http.post("/janus", json!({"transaction": "t"})).await;
    assert_eq!(
        reply,
        json!({"janus": "error", "transaction": "t", "error": {"code": 456, "reason": "Missing mandatory element (janus)"}})
    );
    let reply = http.post("/janus", json!({"janus": 5, "transaction": "t"})).await;
    assert_error(&reply, 467, "Invalid element type (janus should be a string)");
}

#[tokio::test]
async fn not_json_is_454() {
    let server = TestServer::start();
    let reply = server.http().post_raw("/janus", "{bad").await.json();
    assert_eq!(reply["janus"], "error");
    assert_eq!(reply["error"]["code"], 454);
    let reason = reply["error"]["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("JSON error: on line 1: "), "reason {reason:?}");
    assert!(reply.get("transaction").is_none() && reply.get("session_id").is_none(), "{reply}");
}

#[tokio::test]
async fn not_an_object_is_455() {
    let server = TestServer::start();
    let http = server.http();
    for payload in ["[1,2]", "42", "\"create\"", "null", "true"] {
        let reply = http.post_raw("/janus", payload).await.json();
        assert_eq!(
            reply,
            json!({"janus": "error", "error": {"code": 455, "reason": "JSON error: not an object"}}),
            "payload {payload}"
        );
    }
}

#[tokio::test]
async fn id_must_be_a_non_negative_integer() {
    let server = TestServer::start();
    let http = server.http();
    for id in [json!(-5), json!("12"), json!(1.5), json!(true)] {
        let reply = http.post("/janus", json!({"janus": "create", "transaction": "t", "id": id})).await;
        assert_eq!(
            reply,
            json!({"janus": "error", "transaction": "t",
                   "error": {"code": 467, "reason": "Invalid element type (id should be a positive integer)"}}),
            "id {id}"
        );
    }
}

#[tokio::test]
async fn requests_at_root_other_than_create_are_457() {
    let server = TestServer::start();
    let http = server.http();
    let reply = http.post("/janus", json!({"janus": "attach", "transaction": "t2", "plugin": ECHOTEST})).await;
    assert_eq!(
        reply,
        json!({"janus": "error", "transaction": "t2", "error": {"code": 457, "reason": "Unhandled request 'attach' at this path"}})
    );
    for name in ["keepalive", "destroy", "claim", "message", "trickle", "detach", "hangup", "foo"] {
        let reply = http.post("/janus", json!({"janus": name, "transaction": "t"})).await;
        assert_error(&reply, 457, &format!("Unhandled request '{name}' at this path"));
    }
}

#[tokio::test]
async fn transaction_is_checked_before_the_path() {
    let server = TestServer::start();
    let reply = server.http().post("/janus", json!({"janus": "attach", "plugin": ECHOTEST})).await;
    assert_eq!(
        reply,
        json!({"janus": "error", "error": {"code": 456, "reason": "Missing mandatory element (transaction)"}})
    );
    // A bad id fails at step 2, before the root-path rule of step 3.
    let reply = server.http().post("/janus", json!({"janus": "attach", "transaction": "t", "id": -1})).await;
    assert_error(&reply, 467, "Invalid element type (id should be a positive integer)");
}

#[tokio::test]
async fn create_with_chosen_id_then_again_is_468() {
    let server = TestServer::start();
    let http = server.http();
    let reply = http.post("/janus", json!({"janus": "create", "transaction": "t4", "id": 12345})).await;
    assert_eq!(reply, json!({"janus": "success", "transaction": "t4", "data": {"id": 12345}}));
    let reply = http.post("/janus", json!({"janus": "create", "transaction": "t5", "id": 12345})).await;
    assert_eq!(
        reply,
        json!({"janus": "error", "session_id": 12345, "transaction": "t5",
               "error": {"code": 468, "reason": "Session ID already in use"}})
    );
    // The session chosen by the client is a real one.
    let ack = http.post("/janus/12345", json!({"janus": "keepalive", "transaction": "t6"})).await;
    assert_eq!(ack, json!({"janus": "ack", "session_id": 12345, "transaction": "t6"}));
}

#[tokio::test]
async fn unknown_request_at_session_is_453() {
    let server = TestServer::start();
    let http = server.http();
    let s = http.create().await;
    let reply = http.post(&format!("/janus/{s}"), json!({"janus": "foo", "transaction": "t7"})).await;
    assert_eq!(
        reply,
        json!({"janus": "error", "session_id": s, "transaction": "t7", "error": {"code": 453, "reason": "Unknown request 'foo'"}})
    );
}

#[tokio::test]
async fn unknown_request_at_handle_is_453() {
    let server = TestServer::start();
    let http = server.http();
    let (s, h) = http.session_with_echotest().await;
    let reply = http.post(&format!("/janus/{s}/{h}"), json!({"janus": "foo", "transaction": "t8"})).await;
    assert_eq!(
        reply,
        json!({"janus": "error", "session_id": s, "transaction": "t8", "error": {"code": 453, "reason": "Unknown request 'foo'"}})
    );
}

#[tokio::test]
async fn unknown_session_is_458() {
    let server = TestServer::start();
    let reply = server.http().post("/janus/999", json!({"janus": "keepalive", "transaction": "t23"})).await;
    assert_eq!(
        reply,
        json!({"janus": "error", "session_id": 999, "transaction": "t23", "error": {"code": 458, "reason": "No such session 999"}})
    );
}

#[tokio::test]
async fn session_lookup_comes_before_the_request_name() {
    let server = TestServer::start();
    let http = server.http();
    let reply = http.post("/janus/999", json!({"janus": "foo", "transaction": "t"})).await;
    assert_error(&reply, 458, "No such session 999");
    let s = http.create().await;
    let reply = http.post(&format!("/janus/{s}/999"), json!({"janus": "foo", "transaction": "t"})).await;
    assert_error(&reply, 459, &format!("No such handle 999 in session {s}"));
}

#[tokio::test]
async fn unknown_handle_is_459() {
    let server = TestServer::start();
    let http = server.http();
    let s = http.create().await;
    let reply = http.post(&format!("/janus/{s}/999"), json!({"janus": "detach", "transaction": "t22"})).await;
    assert_eq!(
        reply,
        json!({"janus": "error", "session_id": s, "transaction": "t22",
               "error": {"code": 459, "reason": format!("No such handle 999 in session {s}")}})
    );
}

#[tokio::test]
async fn attach_validates_the_plugin() {
    let server = TestServer::start();
    let http = server.http();
    let s = http.create().await;
    let path = format!("/janus/{s}");
    let reply = http.post(&path, json!({"janus": "attach", "transaction": "t10", "plugin": "janus.plugin.nope"})).await;
    assert_eq!(
        reply,
        json!({"janus": "error", "session_id": s, "transaction": "t10",
               "error": {"code": 460, "reason": "No such plugin 'janus.plugin.nope'"}})
    );
    let reply = http.post(&path, json!({"janus": "attach", "transaction": "t11", "plugin": 5})).await;
    assert_error(&reply, 467, "Invalid element type (plugin should be a string)");
    let reply = http.post(&path, json!({"janus": "attach", "transaction": "t12"})).await;
    assert_error(&reply, 456, "Missing mandatory element (plugin)");
    let reply =
        http.post(&path, json!({"janus": "attach", "transaction": "t", "plugin": ECHOTEST, "opaque_id": 5})).await;
    assert_error(&reply, 467, "Invalid element type (opaque_id should be a string)");
}

#[tokio::test]
async fn handle_requests_at_session_path_are_457() {
    let server = TestServer::start();
    let http = server.http();
    let s = http.create().await;
    for name in ["message", "trickle", "detach", "hangup"] {
        let reply = http.post(&format!("/janus/{s}"), json!({"janus": name, "transaction": "t", "body": {}})).await;
        assert_eq!(
            reply,
            json!({"janus": "error", "session_id": s, "transaction": "t",
                   "error": {"code": 457, "reason": format!("Unhandled request '{name}' at this path")}})
        );
    }
}

#[tokio::test]
async fn session_requests_at_handle_path_are_457() {
    let server = TestServer::start();
    let http = server.http();
    let (s, h) = http.session_with_echotest().await;
    for (name, extra) in [("attach", json!({"plugin": ECHOTEST})), ("destroy", json!({}))] {
        let mut req = json!({"janus": name, "transaction": "t"});
        crate::common::http::merge(&mut req, extra);
        let reply = http.post(&format!("/janus/{s}/{h}"), req).await;
        assert_error(&reply, 457, &format!("Unhandled request '{name}' at this path"));
    }
    // Neither request took effect.
    assert_eq!(http.keepalive(s).await["janus"], "ack");
}

#[tokio::test]
async fn conflicting_ids_in_payload_and_path_are_457_without_transaction() {
    let server = TestServer::start();
    let http = server.http();
    let (s, h) = http.session_with_echotest().await;
    let other = if h == 1 { 2 } else { 1 };
    let reply = http
        .post(
            &format!("/janus/{s}/{h}"),
            json!({"janus": "message", "transaction": "t21", "handle_id": other, "body": {}}),
        )
        .await;
    assert_eq!(
        reply,
        json!({"janus": "error", "error": {"code": 457, "reason": "Conflicting handle ID (payload and path)"}})
    );
    let reply =
        http.post(&format!("/janus/{s}"), json!({"janus": "keepalive", "transaction": "t", "session_id": s + 1})).await;
    assert_eq!(
        reply,
        json!({"janus": "error", "error": {"code": 457, "reason": "Conflicting session ID (payload and path)"}})
    );
    // The same ids in both places are fine.
    let reply =
        http.post(&format!("/janus/{s}"), json!({"janus": "keepalive", "transaction": "t", "session_id": s})).await;
    assert_eq!(reply, json!({"janus": "ack", "session_id": s, "transaction": "t"}));
}

#[tokio::test]
async fn non_integer_session_id_counts_as_absent_on_websocket() {
    let server = TestServer::start();
    let mut ws = server.ws().await;
    let s = ws.create().await;
    for bad in [json!(s.to_string()), json!(-1), json!(1.5), json!(null), json!({"id": s})] {
        let reply =
            ws.request(json!({"janus": "attach", "transaction": "t", "session_id": bad, "plugin": ECHOTEST})).await;
        assert_eq!(
            reply,
            json!({"janus": "error", "transaction": "t", "error": {"code": 457, "reason": "Unhandled request 'attach' at this path"}}),
            "session_id {bad}"
        );
    }
}

#[tokio::test]
async fn handle_without_session_is_458_session_not_found() {
    let server = TestServer::start();
    let mut ws = server.ws().await;
    let (_, h) = ws.session_with_echotest().await;
    let reply = ws.request(json!({"janus": "detach", "transaction": "t", "handle_id": h})).await;
    assert_eq!(
        reply,
        json!({"janus": "error", "transaction": "t", "error": {"code": 458, "reason": "Session not found"}})
    );
}

/// Replies for an error reached after the transaction was read echo it; the session is echoed
/// when one was requested (reference 1.1, 2.1).
#[tokio::test]
async fn errors_echo_transaction_and_session() {
    let server = TestServer::start();
    let http = server.http();
    let reply: Value =
        http.post("/janus/4242", json!({"janus": "attach", "transaction": "tt", "plugin": ECHOTEST})).await;
    assert_eq!(reply["transaction"], "tt");
    assert_eq!(reply["session_id"], 4242);
}

#[tokio::test]
async fn root_requests_at_session_level_are_453() {
    let server = TestServer::start();
    let http = server.http();
    let s = http.create().await;
    for name in ["create", "info", "ping"] {
        let reply = http.post(&format!("/janus/{s}"), json!({"janus": name, "transaction": "t"})).await;
        assert_eq!(
            reply,
            json!({"janus": "error", "session_id": s, "transaction": "t", "error": {"code": 453, "reason": format!("Unknown request '{name}'")}}),
            "{name}"
        );
    }
}

#[tokio::test]
async fn create_with_id_zero_picks_a_random_id() {
    let server = TestServer::start();
    let reply = server.http().post("/janus", json!({"janus": "create", "transaction": "t", "id": 0})).await;
    assert_eq!(reply["janus"], "success", "{reply}");
    assert!(reply["data"]["id"].as_u64().is_some_and(|id| id > 0), "{reply}");
}
