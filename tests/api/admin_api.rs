//! The Admin/Monitor API (reference 4, 13, 14.14) over HTTP (`/admin`) and WebSocket
//! (`janus-admin-protocol`): the admin secret, global, session and handle requests, and their
//! error paths. Token requests are in the authentication modules.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{assert_error, HttpClient, TestServer, ECHOTEST};

const SECRET: &str = "overlord";

fn server() -> TestServer {
    TestServer::spawn(&[("PORTUNUS__GENERAL__ADMIN_SECRET", SECRET)], &[])
}

/// `POST /admin[path]` with the admin secret and a transaction.
async fn admin(client: &HttpClient, path: &str, name: &str, t: &str, extra: Value) -> Value {
    let mut req = json!({"janus": name, "transaction": t, "admin_secret": SECRET});
    crate::common::http::merge(&mut req, extra);
    client.post(&format!("/admin{path}"), req).await
}

#[tokio::test]
async fn missing_or_wrong_admin_secret_is_403() {
    let server = server();
    let a = server.admin();
    let reply = a.post("/admin", json!({"janus": "list_sessions", "transaction": "a2"})).await;
    assert_eq!(
        reply,
        json!({"janus": "error", "transaction": "a2",
               "error": {"code": 403, "reason": "Unauthorized request (wrong or missing secret/token)"}})
    );
    let reply = a.post("/admin", json!({"janus": "list_sessions", "transaction": "a2", "admin_secret": "nope"})).await;
    assert_error(&reply, 403, "Unauthorized request (wrong or missing secret/token)");
    let reply = a.post("/admin", json!({"janus": "get_status", "transaction": "a2", "admin_secret": 5})).await;
    assert_eq!(reply["error"]["code"], 403, "{reply}");
    // info and ping need no secret.
    let pong = a.post("/admin", json!({"janus": "ping", "transaction": "p"})).await;
    assert_eq!(pong, json!({"janus": "pong", "transaction": "p"}));
    let info = a.post("/admin", json!({"janus": "info", "transaction": "i"})).await;
    assert_eq!(info["janus"], "server_info");
}

#[tokio::test]
async fn admin_secret_protects_session_and_handle_requests() {
    let server = server();
    let (s, h) = server.http().session_with_echotest().await;
    let a = server.admin();
    let reply = a.post(&format!("/admin/{s}"), json!({"janus": "list_handles", "transaction": "t"})).await;
    assert_eq!(reply["error"]["code"], 403, "{reply}");
    let reply = a.post(&format!("/admin/{s}/{h}"), json!({"janus": "handle_info", "transaction": "t"})).await;
    assert_eq!(reply["error"]["code"], 403, "{reply}");
    let reply = a.post(&format!("/admin/{s}"), json!({"janus": "destroy_session", "transaction": "t"})).await;
    assert_eq!(reply["error"]["code"], 403, "{reply}");
    assert_eq!(server.http().keepalive(s).await["janus"], "ack", "the unauthorized destroy did nothing");
}

#[tokio::test]
async fn empty_admin_post_is_454() {
    let server = server();
    let reply = server.admin().post_raw("/admin", "").await.json();
    assert_eq!(reply, json!({"janus": "error", "error": {"code": 454, "reason": "Request payload missing"}}));
}

#[tokio::test]
async fn list_sessions_and_list_handles() {
    let server = server();
    let http = server.http();
    let a = server.admin();
    let reply = admin(&a, "", "list_sessions", "a1", json!({})).await;
    assert_eq!(reply, json!({"janus": "success", "transaction": "a1", "sessions": []}));
    let s1 = http.create().await;
    let mut ws = server.ws().await;
    let s2 = ws.create().await;
    let reply = admin(&a, "", "list_sessions", "a3", json!({})).await;
    assert_eq!(reply["janus"], "success");
    let mut listed: Vec<u64> =
        reply["sessions"].as_array().expect("sessions").iter().filter_map(Value::as_u64).collect();
    listed.sort_unstable();
    let mut expected = vec![s1, s2];
    expected.sort_unstable();
    assert_eq!(listed, expected);

    let reply = admin(&a, &format!("/{s1}"), "list_handles", "a5", json!({})).await;
    assert_eq!(reply, json!({"janus": "success", "session_id": s1, "transaction": "a5", "handles": []}));
    let h = http.attach(s1, ECHOTEST).await;
    // Ids in the body instead of the path work too.
    let reply = admin(&a, "", "list_handles", "a6", json!({"session_id": s1})).await;
    assert_eq!(reply, json!({"janus": "success", "session_id": s1, "transaction": "a6", "handles": [h]}));
}

#[tokio::test]
async fn handle_info_describes_the_handle() {
    let server = server();
    let http = server.http();
    let (s, h) = http.session_with_echotest().await;
    let a = server.admin();
    let reply = admin(&a, &format!("/{s}/{h}"), "handle_info", "hi", json!({})).await;
    assert_eq!(reply["janus"], "success", "{reply}");
    assert_eq!(reply["session_id"], s);
    assert_eq!(reply["transaction"], "hi");
    assert_eq!(reply["handle_id"], h);
    let info = &reply["info"];
    assert_eq!(info["session_id"], s);
    assert_eq!(info["handle_id"], h);
    assert_eq!(info["session_transport"], "janus.transport.http");
    assert_eq!(info["plugin"], ECHOTEST);
    assert!(info["plugin_specific"].is_object(), "plugin_specific: {info}");
    assert!(info["session_last_activity"].is_u64(), "{info}");
    assert!(info["session_timeout"].is_u64(), "{info}");
    let reply = admin(&a, &format!("/{s}/{h}"), "handle_info", "po", json!({"plugin_only": true})).await;
    assert_eq!(reply["janus"], "success", "{reply}");
    assert!(reply["info"]["plugin_specific"].is_object(), "{reply}");

    let mut ws = server.ws().await;
    let (s2, h2) = ws.session_with_echotest().await;
    let reply = admin(&a, "", "handle_info", "w", json!({"session_id": s2, "handle_id": h2})).await;
    assert_eq!(reply["info"]["session_transport"], "janus.transport.websockets", "{reply}");
}

#[tokio::test]
async fn unknown_session_and_handle() {
    let server = server();
    let a = server.admin();
    let reply = admin(&a, "/999", "list_handles", "t", json!({})).await;
    assert_eq!(
        reply,
        json!({"janus": "error", "session_id": 999, "transaction": "t", "error": {"code": 458, "reason": "No such session 999"}})
    );
    let s = server.http().create().await;
    let reply = admin(&a, &format!("/{s}/999"), "handle_info", "t", json!({})).await;
    assert_error(&reply, 459, &format!("No such handle 999 in session {s}"));
    let reply = admin(&a, &format!("/{s}/999"), "detach_handle", "t", json!({})).await;
    assert_error(&reply, 459, &format!("No such handle 999 in session {s}"));
}

#[tokio::test]
async fn misplaced_and_unknown_requests_are_457() {
    let server = server();
    let a = server.admin();
    let (s, h) = server.http().session_with_echotest().await;
    for (path, name) in [
        (String::new(), "foo"),
        (String::new(), "list_handles"),
        (String::new(), "handle_info"),
        (format!("/{s}"), "handle_info"),
        (format!("/{s}"), "list_sessions"),
        (format!("/{s}/{h}"), "list_handles"),
    ] {
        let reply = admin(&a, &path, name, "t", json!({})).await;
        assert_error(&reply, 457, &format!("Unhandled request '{name}' at this path"));
    }
}

#[tokio::test]
async fn set_session_timeout_global() {
    let server = server();
    let a = server.admin();
    let reply = admin(&a, "", "set_session_timeout", "a6", json!({"timeout": 60})).await;
    assert_eq!(reply, json!({"janus": "success", "transaction": "a6", "timeout": 60}));
    let reply = admin(&a, "", "set_session_timeout", "a7", json!({})).await;
    assert_error(&reply, 456, "Missing mandatory element (timeout)");
}

#[tokio::test]
async fn log_settings() {
    let server = server();
    let a = server.admin();
    let reply = admin(&a, "", "set_log_level", "l1", json!({"level": 5})).await;
    assert_eq!(reply, json!({"janus": "success", "transaction": "l1", "level": 5}));
    for bad in [8, 100] {
        let reply = admin(&a, "", "set_log_level", "l2", json!({"level": bad})).await;
        assert_eq!(
            reply,
            json!({"janus": "error", "transaction": "l2",
                   "error": {"code": 467, "reason": "Invalid element type (level should be between 0 and 7)"}}),
            "level {bad}"
        );
    }
    let reply = admin(&a, "", "set_log_level", "l3", json!({})).await;
    assert_error(&reply, 456, "Missing mandatory element (level)");
    let reply = admin(&a, "", "set_log_timestamps", "l4", json!({"timestamps": true})).await;
    assert_eq!(reply, json!({"janus": "success", "transaction": "l4", "log_timestamps": true}));
    let reply = admin(&a, "", "set_log_colors", "l5", json!({"colors": false})).await;
    assert_eq!(reply, json!({"janus": "success", "transaction": "l5", "log_colors": false}));
    let reply = admin(&a, "", "set_log_colors", "l6", json!({"colors": "yes"})).await;
    assert_error(&reply, 467, "Invalid element type (colors should be a boolean)");
    let status = admin(&a, "", "get_status", "g", json!({})).await;
    assert_eq!(status["status"]["log_level"], 5, "{status}");
    assert_eq!(status["status"]["log_timestamps"], true, "{status}");
    assert_eq!(status["status"]["log_colors"], false, "{status}");
    // Back to the default so the test log stays readable.
    let reply = admin(&a, "", "set_log_level", "l7", json!({"level": 4})).await;
    assert_eq!(reply["janus"], "success");
}

#[tokio::test]
async fn debug_and_media_settings() {
    let server = server();
    let a = server.admin();
    let reply = admin(&a, "", "set_locking_debug", "d1", json!({"debug": true})).await;
    assert_eq!(reply, json!({"janus": "success", "transaction": "d1", "locking_debug": true}));
    let reply = admin(&a, "", "set_refcount_debug", "d2", json!({"debug": false})).await;
    assert_eq!(reply, json!({"janus": "success", "transaction": "d2", "refcount_debug": false}));
    let reply = admin(&a, "", "set_locking_debug", "d3", json!({"debug": 1})).await;
    assert_error(&reply, 467, "Invalid element type (debug should be a boolean)");
    let reply = admin(&a, "", "set_min_nack_queue", "n1", json!({"min_nack_queue": 5000})).await;
    assert_eq!(reply, json!({"janus": "success", "transaction": "n1", "min_nack_queue": 1000}), "capped at 1000 ms");
    let reply = admin(&a, "", "set_nack_optimizations", "n2", json!({"nack_optimizations": true})).await;
    assert_eq!(reply, json!({"janus": "success", "transaction": "n2", "nack-optimizations": true}));
    let reply = admin(&a, "", "set_no_media_timer", "n3", json!({"no_media_timer": 3})).await;
    assert_eq!(reply, json!({"janus": "success", "transaction": "n3", "no_media_timer": 3}));
    let reply = admin(&a, "", "set_slowlink_threshold", "n4", json!({"slowlink_threshold": 4})).await;
    assert_eq!(reply, json!({"janus": "success", "transaction": "n4", "slowlink_threshold": 4}));
    let status = admin(&a, "", "get_status", "g", json!({})).await["status"].clone();
    assert_eq!(status["locking_debug"], true, "{status}");
    assert_eq!(status["min_nack_queue"], 1000, "{status}");
    assert_eq!(status["nack-optimizations"], true, "{status}");
    assert_eq!(status["no_media_timer"], 3, "{status}");
    assert_eq!(status["slowlink_threshold"], 4, "{status}");
}

#[tokio::test]
async fn get_status_lists_the_reference_fields() {
    let server = TestServer::spawn(&[("PORTUNUS__GENERAL__ADMIN_SECRET", SECRET)], &["-s", "45"]);
    let reply = admin(&server.admin(), "", "get_status", "gs", json!({})).await;
    assert_eq!(reply["janus"], "success", "{reply}");
    assert_eq!(reply["transaction"], "gs");
    let status = &reply["status"];
    for key in [
        "token_auth",
        "session_timeout",
        "reclaim_session_timeout",
        "candidates_timeout",
        "log_level",
        "log_timestamps",
        "log_colors",
        "locking_debug",
        "refcount_debug",
        "min_nack_queue",
        "nack-optimizations",
        "no_media_timer",
        "slowlink_threshold",
    ] {
        assert!(status.get(key).is_some(), "status lacks {key}: {status}");
    }
    assert_eq!(status["session_timeout"], 45);
    assert_eq!(status["token_auth"], false);
    assert_eq!(status["candidates_timeout"], 45);
}

#[tokio::test]
async fn accept_new_sessions() {
    let server = server();
    let http = server.http();
    let a = server.admin();
    let existing = http.create().await;
    let reply = admin(&a, "", "accept_new_sessions", "n1", json!({"accept": false})).await;
    assert_eq!(reply, json!({"janus": "success", "transaction": "n1", "accept": false}));
    let reply = http.post("/janus", json!({"janus": "create", "transaction": "c"})).await;
    assert_eq!(
        reply,
        json!({"janus": "error", "transaction": "c", "error": {"code": 472, "reason": "Currently not accepting new sessions"}})
    );
    let info = http.post("/janus", json!({"janus": "info", "transaction": "i"})).await;
    assert_eq!(info["accepting-new-sessions"], false);
    // Existing sessions keep working.
    let h = http.attach(existing, ECHOTEST).await;
    assert_eq!(http.handle_request(existing, h, "message", json!({"body": {"audio": true}})).await["janus"], "ack");
    let reply = admin(&a, "", "accept_new_sessions", "n2", json!({"accept": true})).await;
    assert_eq!(reply, json!({"janus": "success", "transaction": "n2", "accept": true}));
    http.create().await;
    let reply = admin(&a, "", "accept_new_sessions", "n3", json!({})).await;
    assert_error(&reply, 456, "Missing mandatory element (accept)");
}

#[tokio::test]
async fn destroy_session() {
    let server = server();
    let a = server.admin();
    let mut ws = server.ws().await;
    let (s, _h) = ws.session_with_echotest().await;
    let reply = admin(&a, &format!("/{s}"), "destroy_session", "x", json!({})).await;
    assert_eq!(reply, json!({"janus": "success", "session_id": s, "transaction": "x"}));
    let reply = ws.request(json!({"janus": "keepalive", "transaction": "k", "session_id": s})).await;
    assert_error(&reply, 458, &format!("No such session {s}"));
    let list = admin(&a, "", "list_sessions", "l", json!({})).await;
    assert_eq!(list["sessions"], json!([]));
}

#[tokio::test]
async fn detach_handle() {
    let server = TestServer::spawn(
        &[("PORTUNUS__GENERAL__ADMIN_SECRET", SECRET), ("PORTUNUS__HTTP__LONGPOLL_KEEPALIVE", "1")],
        &[],
    );
    let http = server.http();
    let a = server.admin();
    let (s, h) = http.session_with_echotest().await;
    let reply = admin(&a, &format!("/{s}/{h}"), "detach_handle", "dh", json!({})).await;
    assert_eq!(reply["janus"], "success", "{reply}");
    assert_eq!(reply["session_id"], s);
    assert_eq!(reply["transaction"], "dh");
    let event = http.poll_until(s, Duration::from_secs(10), |e| e["janus"] == "detached").await;
    assert_eq!(event, json!({"janus": "detached", "session_id": s, "sender": h}));
    let reply = admin(&a, &format!("/{s}"), "list_handles", "lh", json!({})).await;
    assert_eq!(reply["handles"], json!([]));
}

#[tokio::test]
async fn message_plugin() {
    let server = server();
    let a = server.admin();
    let reply = admin(&a, "", "message_plugin", "m1", json!({"plugin": "janus.plugin.nope", "request": {}})).await;
    assert_eq!(
        reply,
        json!({"janus": "error", "transaction": "m1", "error": {"code": 460, "reason": "Invalid plugin"}})
    );
    let reply =
        admin(&a, "", "message_plugin", "m2", json!({"plugin": ECHOTEST, "request": {"request": "list"}})).await;
    assert_error(&reply, 490, "Plugin doesn't support Admin API messages");
    let reply = admin(&a, "", "message_plugin", "m3", json!({"request": {}})).await;
    assert_error(&reply, 456, "Missing mandatory element (plugin)");
    let reply = admin(&a, "", "message_plugin", "m4", json!({"plugin": 5, "request": {}})).await;
    assert_error(&reply, 467, "Invalid element type (plugin should be a string)");
}

#[tokio::test]
async fn query_handlers_that_do_not_exist() {
    let server = server();
    let a = server.admin();
    let reply =
        admin(&a, "", "query_eventhandler", "q1", json!({"handler": "janus.eventhandler.nope", "request": {}})).await;
    assert_eq!(
        reply,
        json!({"janus": "error", "transaction": "q1", "error": {"code": 460, "reason": "Invalid event handler"}})
    );
    let reply =
        admin(&a, "", "query_transport", "q2", json!({"transport": "janus.transport.nope", "request": {}})).await;
    assert_error(&reply, 460, "Invalid transport");
    let reply = admin(&a, "", "query_logger", "q3", json!({"logger": "janus.logger.nope", "request": {}})).await;
    assert_error(&reply, 460, "Invalid logger");
}

#[tokio::test]
async fn token_requests_without_token_auth_are_490() {
    let server = server();
    let a = server.admin();
    for (name, extra) in [
        ("add_token", json!({"token": "t1"})),
        ("list_tokens", json!({})),
        ("allow_token", json!({"token": "t1", "plugins": [ECHOTEST]})),
        ("disallow_token", json!({"token": "t1", "plugins": [ECHOTEST]})),
        ("remove_token", json!({"token": "t1"})),
    ] {
        let reply = admin(&a, "", name, "tk", extra).await;
        assert_eq!(
            reply,
            json!({"janus": "error", "transaction": "tk", "error": {"code": 490, "reason": "Stored-Token based authentication disabled"}}),
            "{name}"
        );
    }
}

#[tokio::test]
async fn loops_info_custom_event_and_logline() {
    let server = server();
    let a = server.admin();
    let reply = admin(&a, "", "loops_info", "a10", json!({})).await;
    assert_eq!(reply, json!({"janus": "success", "transaction": "a10", "loops": []}));
    let reply = admin(&a, "", "custom_event", "ce", json!({"schema": "example.test", "data": {"x": 1}})).await;
    assert_eq!(reply, json!({"janus": "success", "transaction": "ce"}));
    let reply = admin(&a, "", "custom_event", "ce2", json!({"data": {}})).await;
    assert_error(&reply, 456, "Missing mandatory element (schema)");
    let reply = admin(&a, "", "custom_logline", "cl", json!({"line": "hello from the tests"})).await;
    assert_eq!(reply, json!({"janus": "success", "transaction": "cl"}));
    let reply = admin(&a, "", "custom_logline", "cl2", json!({})).await;
    assert_error(&reply, 456, "Missing mandatory element (line)");
}

#[tokio::test]
async fn admin_over_websocket() {
    let server = server();
    let mut ws = server.admin_ws().await;
    let pong = ws.request(json!({"janus": "ping", "transaction": "p"})).await;
    assert_eq!(pong, json!({"janus": "pong", "transaction": "p"}));
    let reply = ws.request(json!({"janus": "list_sessions", "transaction": "l1"})).await;
    assert_error(&reply, 403, "Unauthorized request (wrong or missing secret/token)");
    let s = server.http().create().await;
    let reply = ws.request(json!({"janus": "list_sessions", "transaction": "l2", "admin_secret": SECRET})).await;
    assert_eq!(reply, json!({"janus": "success", "transaction": "l2", "sessions": [s]}));
    let reply = ws
        .request(json!({"janus": "list_handles", "transaction": "l3", "admin_secret": SECRET, "session_id": s}))
        .await;
    assert_eq!(reply, json!({"janus": "success", "session_id": s, "transaction": "l3", "handles": []}));
}

#[tokio::test]
async fn admin_and_janus_protocols_are_not_mixed() {
    let server = server();
    let wrong = crate::common::WsClient::try_connect(server.admin_ws, Some(crate::common::JANUS_PROTOCOL)).await;
    assert!(wrong.is_err(), "the admin socket accepted janus-protocol");
    let wrong = crate::common::WsClient::try_connect(server.ws, Some(crate::common::ADMIN_PROTOCOL)).await;
    assert!(wrong.is_err(), "the Janus API socket accepted janus-admin-protocol");
}

#[tokio::test]
async fn without_admin_secret_everything_is_allowed() {
    let server = TestServer::start();
    let reply = server.admin().post("/admin", json!({"janus": "list_sessions", "transaction": "t"})).await;
    assert_eq!(reply, json!({"janus": "success", "transaction": "t", "sessions": []}));
}

#[tokio::test]
async fn hangup_webrtc_on_a_handle_without_media() {
    let server = server();
    let (s, h) = server.http().session_with_echotest().await;
    let reply = admin(&server.admin(), &format!("/{s}/{h}"), "hangup_webrtc", "hw", json!({})).await;
    assert_eq!(reply["janus"], "success", "{reply}");
    assert_eq!(reply["transaction"], "hw");
    assert_eq!(reply["session_id"], s);
    // The handle is still there.
    let list = admin(&server.admin(), &format!("/{s}"), "list_handles", "l", json!({})).await;
    assert_eq!(list["handles"], json!([h]));
}

#[tokio::test]
async fn resolve_address() {
    let server = server();
    let reply = admin(&server.admin(), "", "resolve_address", "ra", json!({"address": "127.0.0.1"})).await;
    assert_eq!(reply["janus"], "success", "{reply}");
    assert_eq!(reply["ip"], "127.0.0.1");
    assert!(reply["elapsed"].is_u64(), "{reply}");
    let reply = admin(&server.admin(), "", "resolve_address", "rb", json!({})).await;
    assert_error(&reply, 456, "Missing mandatory element (address)");
}

/// Every handle's media port goes with its handle, whichever plugin it was attached to and
/// however it ended (detach, session destroy). EchoTest's sink held its own port, so every
/// EchoTest handle used to stay in memory for good (about 1.5 KB a handle).
#[tokio::test]
async fn ended_handles_leave_no_media_port_behind() {
    let server = server();
    let (http, a) = (server.http(), server.admin());
    let plugins = [ECHOTEST, "janus.plugin.videoroom", "janus.plugin.textroom", "janus.plugin.videocall"];
    let mut sessions = Vec::new();
    for _ in 0..3 {
        let s = http.create().await;
        for plugin in plugins {
            let h = http.attach(s, plugin).await;
            let body = if plugin == ECHOTEST { json!({"audio": true}) } else { json!({"request": "list"}) };
            let reply = http.handle_request(s, h, "message", json!({"body": body})).await;
            assert!(reply["janus"] == "success" || reply["janus"] == "ack", "{plugin}: {reply}");
            let h2 = http.attach(s, plugin).await;
            assert_eq!(http.handle_request(s, h2, "detach", json!({})).await["janus"], "success");
        }
        sessions.push(s);
    }
    let status = admin(&a, "", "get_status", "g1", json!({})).await["status"].clone();
    assert_eq!(status["handles"], 12, "{status}");
    assert_eq!(status["media_ports"], 12, "one port per live handle: {status}");
    for s in sessions {
        assert_eq!(http.session_request(s, "destroy", json!({})).await["janus"], "success");
    }
    let status = crate::common::eventually(Duration::from_secs(5), "every handle to end", || async {
        let status = admin(&a, "", "get_status", "g2", json!({})).await["status"].clone();
        (status["handles"] == 0).then_some(status)
    })
    .await;
    assert_eq!(status["media_ports"], 0, "ports outlived their handles: {status}");
    let (_, metrics) = a.get("/metrics").await;
    assert!(metrics.contains("\nportunus_media_ports 0\n"), "{metrics}");
}
