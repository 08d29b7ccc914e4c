//! Hostile input sweep: wrong types for every envelope and request field, huge and negative
//! numbers, deep nesting, odd unicode, broken encodings and empty bodies, at every path level and
//! over WebSocket. Every reply must be a Janus error with a code from the reference table (2.1),
//! and the server must keep answering, with the session and handle used for the sweep intact.

use serde_json::{json, Value};

use crate::common::{HttpClient, TestServer, ECHOTEST, ERROR_CODES};

/// Where a payload is posted.
#[derive(Clone, Copy, Debug)]
enum At {
    Root,
    Session,
    Handle,
}

/// A payload and the codes the reference allows for it.
struct Case {
    at: At,
    payload: Vec<u8>,
    codes: &'static [u64],
    /// Only meaningful where the path supplies ids (payload/path conflicts).
    http_only: bool,
}

impl Case {
    fn http_only(mut self) -> Case {
        self.http_only = true;
        self
    }
}

fn case(at: At, payload: impl Into<Vec<u8>>, codes: &'static [u64]) -> Case {
    Case { at, payload: payload.into(), codes, http_only: false }
}

fn j(v: Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

fn nested_arrays(depth: usize) -> String {
    format!(r#"{{"janus":"ping","transaction":"t","x":{}{}}}"#, "[".repeat(depth), "]".repeat(depth))
}

fn nested_objects(depth: usize) -> String {
    let mut s = String::from("1");
    for _ in 0..depth {
        s = format!(r#"{{"a":{s}}}"#);
    }
    format!(r#"{{"janus":"message","transaction":"t","body":{s}}}"#)
}

/// The sweep. `s` and `h` are a live session and EchoTest handle.
fn cases(s: u64, h: u64) -> Vec<Case> {
    use At::*;
    const PARSE: &[u64] = &[454];
    const NOT_OBJECT: &[u64] = &[455];
    const MISSING: &[u64] = &[456];
    const BAD_TYPE: &[u64] = &[467];
    const MISSING_OR_TYPE: &[u64] = &[456, 467];
    const PATH: &[u64] = &[457];
    let other_handle = if h == 1 { 2 } else { 1 };
    vec![
        // Not JSON, or not an object.
        case(Root, "", &[454]),
        case(Root, "   ", &[454]),
        case(Root, "{", PARSE),
        case(Root, r#"{"janus":"create""#, PARSE),
        case(Root, r#"{"janus":"ping","transaction":"t"} trailing"#, PARSE),
        case(Root, r#"{'janus':'ping','transaction':'t'}"#, PARSE),
        case(Root, r#"{"janus":"create","transaction":"t","id":NaN}"#, PARSE),
        case(Root, b"{\"janus\":\"\xff\xfe\",\"transaction\":\"t\"}".to_vec(), PARSE),
        case(Root, nested_arrays(100_000), PARSE),
        case(Handle, nested_objects(5_000), PARSE),
        case(Handle, r#"{"janus":"message","transaction":"t","body":{"bitrate":1e400}}"#, PARSE),
        case(Root, "null", NOT_OBJECT),
        case(Root, "true", NOT_OBJECT),
        case(Root, "-1", NOT_OBJECT),
        case(Root, "\"create\"", NOT_OBJECT),
        case(Root, "[]", NOT_OBJECT),
        case(Root, r#"[{"janus":"ping","transaction":"t"}]"#, NOT_OBJECT),
        // Envelope fields.
        case(Root, "{}", MISSING),
        case(Root, j(json!({"janus": "ping"})), MISSING),
        case(Root, j(json!({"transaction": "t"})), MISSING),
        case(Root, j(json!({"janus": null, "transaction": null})), MISSING_OR_TYPE),
        case(Root, j(json!({"janus": "ping", "transaction": {"t": 1}})), BAD_TYPE),
        case(Root, j(json!({"janus": "ping", "transaction": ["t"]})), BAD_TYPE),
        case(Root, j(json!({"janus": "ping", "transaction": 1e300})), BAD_TYPE),
        case(Root, j(json!({"janus": ["create"], "transaction": "t"})), BAD_TYPE),
        case(Root, j(json!({"janus": {"a": 1}, "transaction": "t"})), BAD_TYPE),
        case(Root, j(json!({"janus": true, "transaction": "t"})), BAD_TYPE),
        case(Root, j(json!({"janus": "create", "transaction": "t", "id": "12"})), BAD_TYPE),
        case(Root, j(json!({"janus": "create", "transaction": "t", "id": -1})), BAD_TYPE),
        case(Root, j(json!({"janus": "create", "transaction": "t", "id": i64::MIN})), BAD_TYPE),
        case(Root, j(json!({"janus": "create", "transaction": "t", "id": 1.5})), BAD_TYPE),
        case(Root, j(json!({"janus": "create", "transaction": "t", "id": 1e300})), BAD_TYPE),
        // Janus's parser rejects integers beyond 64 bits (454); a parser that reads them as
        // floats reports the type instead (467).
        case(Root, r#"{"janus":"create","transaction":"t","id":18446744073709551616}"#, &[454, 467]),
        case(Root, r#"{"janus":"create","transaction":"t","id":123456789012345678901234567890}"#, &[454, 467]),
        case(Root, j(json!({"janus": "create", "transaction": "t", "id": [1]})), BAD_TYPE),
        // Root path rules: ids that are not integers count as absent.
        case(Root, j(json!({"janus": "", "transaction": "t"})), PATH),
        // Janus's parser refuses \u0000 in strings (454); otherwise it is just an odd name.
        case(Root, j(json!({"janus": "💥\u{0}\u{202e}", "transaction": "t"})), &[454, 457]),
        case(Root, j(json!({"janus": "💥\u{202e}ab", "transaction": "t"})), PATH),
        case(Root, j(json!({"janus": "attach", "transaction": "t", "plugin": ECHOTEST})), PATH),
        case(Root, j(json!({"janus": "keepalive", "transaction": "t", "session_id": -1})), PATH),
        case(Root, j(json!({"janus": "keepalive", "transaction": "t", "session_id": 1e20})), PATH),
        case(Root, j(json!({"janus": "keepalive", "transaction": "t", "session_id": "1"})), PATH),
        case(Root, j(json!({"janus": "foo", "transaction": "x".repeat(100_000)})), PATH),
        case(Root, j(json!({"janus": "keepalive", "transaction": "t", "session_id": u64::MAX})), &[454, 458]),
        // Session level.
        case(Session, j(json!({"janus": "attach", "transaction": "t"})), MISSING),
        case(Session, j(json!({"janus": "attach", "transaction": "t", "plugin": null})), MISSING_OR_TYPE),
        case(Session, j(json!({"janus": "attach", "transaction": "t", "plugin": ["x"]})), BAD_TYPE),
        case(Session, j(json!({"janus": "attach", "transaction": "t", "plugin": {"p": ECHOTEST}})), BAD_TYPE),
        case(Session, j(json!({"janus": "attach", "transaction": "t", "plugin": ""})), &[460]),
        case(
            Session,
            j(json!({"janus": "attach", "transaction": "t", "plugin": format!("{ECHOTEST}\u{0}")})),
            &[454, 460],
        ),
        case(Session, j(json!({"janus": "attach", "transaction": "t", "plugin": "ＪＡＮＵＳ"})), &[460]),
        case(Session, j(json!({"janus": "attach", "transaction": "t", "plugin": ECHOTEST, "opaque_id": 5})), BAD_TYPE),
        case(
            Session,
            j(json!({"janus": "attach", "transaction": "t", "plugin": ECHOTEST, "loop_index": -1})),
            BAD_TYPE,
        ),
        case(
            Session,
            j(json!({"janus": "attach", "transaction": "t", "plugin": ECHOTEST, "loop_index": "0"})),
            BAD_TYPE,
        ),
        case(Session, j(json!({"janus": "message", "transaction": "t", "body": {}})), PATH),
        case(Session, j(json!({"janus": "trickle", "transaction": "t", "candidate": null})), PATH),
        case(Session, j(json!({"janus": "keepalive", "transaction": "t", "session_id": s + 1})), PATH).http_only(),
        case(Session, j(json!({"janus": "ünïcödé", "transaction": "t"})), &[453]),
        // Handle level.
        case(Handle, j(json!({"janus": "message", "transaction": "t"})), MISSING),
        case(Handle, j(json!({"janus": "message", "transaction": "t", "body": null})), MISSING_OR_TYPE),
        case(Handle, j(json!({"janus": "message", "transaction": "t", "body": "x"})), BAD_TYPE),
        case(Handle, j(json!({"janus": "message", "transaction": "t", "body": []})), BAD_TYPE),
        case(Handle, j(json!({"janus": "message", "transaction": "t", "body": 1e300})), BAD_TYPE),
        case(Handle, j(json!({"janus": "message", "transaction": "t", "body": {}, "jsep": "x"})), &[455]),
        case(Handle, j(json!({"janus": "message", "transaction": "t", "body": {}, "jsep": []})), &[455]),
        case(Handle, j(json!({"janus": "message", "transaction": "t", "body": {}, "jsep": {}})), MISSING),
        case(
            Handle,
            j(json!({"janus": "message", "transaction": "t", "body": {}, "jsep": {"type": 5, "sdp": "v=0"}})),
            BAD_TYPE,
        ),
        case(
            Handle,
            j(json!({"janus": "message", "transaction": "t", "body": {}, "jsep": {"type": "offer", "sdp": 5}})),
            BAD_TYPE,
        ),
        case(
            Handle,
            j(json!({"janus": "message", "transaction": "t", "body": {}, "jsep": {"type": "rollback", "sdp": "v=0"}})),
            &[464],
        ),
        case(
            Handle,
            j(json!({"janus": "message", "transaction": "t", "body": {}, "jsep": {"type": "", "sdp": "v=0"}})),
            &[464],
        ),
        case(Handle, j(json!({"janus": "trickle", "transaction": "t"})), MISSING),
        case(Handle, j(json!({"janus": "trickle", "transaction": "t", "candidate": {}, "candidates": []})), &[454]),
        case(Handle, j(json!({"janus": "trickle", "transaction": "t", "candidates": "x"})), BAD_TYPE),
        case(Handle, j(json!({"janus": "trickle", "transaction": "t", "candidate": {"candidate": "c"}})), MISSING),
        case(Handle, j(json!({"janus": "trickle", "transaction": "t", "candidate": {"sdpMid": "0"}})), MISSING),
        case(
            Handle,
            j(json!({"janus": "trickle", "transaction": "t", "candidate": {"sdpMid": 5, "candidate": "c"}})),
            BAD_TYPE,
        ),
        case(
            Handle,
            j(json!({"janus": "trickle", "transaction": "t", "candidate": {"sdpMLineIndex": -1, "candidate": "c"}})),
            BAD_TYPE,
        ),
        case(
            Handle,
            j(json!({"janus": "trickle", "transaction": "t", "candidate": {"sdpMLineIndex": 1e300, "candidate": "c"}})),
            BAD_TYPE,
        ),
        case(
            Handle,
            j(json!({"janus": "trickle", "transaction": "t", "candidate": {"sdpMid": "0", "candidate": 5}})),
            BAD_TYPE,
        ),
        case(Handle, j(json!({"janus": "detach", "transaction": "t", "handle_id": other_handle})), PATH).http_only(),
        case(Handle, j(json!({"janus": "attach", "transaction": "t", "plugin": ECHOTEST})), PATH),
        case(Handle, j(json!({"janus": "destroy", "transaction": "t"})), PATH),
        case(Handle, j(json!({"janus": "\u{1F600}", "transaction": "t"})), &[453]),
    ]
}

fn path(at: At, s: u64, h: u64) -> String {
    match at {
        At::Root => "/janus".to_owned(),
        At::Session => format!("/janus/{s}"),
        At::Handle => format!("/janus/{s}/{h}"),
    }
}

fn check(what: &str, reply: &Value, codes: &[u64]) -> Option<String> {
    let code = reply["error"]["code"].as_u64();
    let reason_ok = reply["error"]["reason"].as_str().is_some_and(|r| !r.is_empty());
    match code {
        Some(c) if reply["janus"] == "error" && reason_ok && ERROR_CODES.contains(&c) && codes.contains(&c) => None,
        _ => Some(format!("{what}: expected an error with a code in {codes:?}, got {reply}")),
    }
}

async fn assert_still_serving(http: &HttpClient, s: u64, h: u64) {
    assert!(http.pings().await, "the server stopped answering ping");
    assert_eq!(http.keepalive(s).await["janus"], "ack", "the sweep's session was damaged");
    let ack = http.handle_request(s, h, "message", json!({"body": {"audio": true}})).await;
    assert_eq!(ack["janus"], "ack", "the sweep's handle was damaged: {ack}");
}

#[tokio::test]
async fn hostile_http_payloads_get_json_errors() {
    let server = TestServer::start();
    let http = server.http();
    let (s, h) = http.session_with_echotest().await;
    let cases = cases(s, h);
    assert!(cases.len() >= 50, "the sweep has {} cases", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        let shown = String::from_utf8_lossy(&c.payload).chars().take(120).collect::<String>();
        let what = format!("POST {} {shown}", path(c.at, s, h));
        let reply = http.post_raw(&path(c.at, s, h), c.payload.clone()).await;
        if reply.status.as_u16() != 200 {
            failures.push(format!("{what}: HTTP {} {:?}", reply.status, reply.body));
            continue;
        }
        match serde_json::from_str::<Value>(&reply.body) {
            Ok(v) => failures.extend(check(&what, &v, c.codes)),
            Err(e) => failures.push(format!("{what}: reply is not JSON ({e}): {:?}", reply.body)),
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
    assert_still_serving(&http, s, h).await;
}

#[tokio::test]
async fn hostile_websocket_frames_get_json_errors() {
    let server = TestServer::start();
    let mut ws = server.ws().await;
    let (s, h) = ws.session_with_echotest().await;
    let mut failures = Vec::new();
    let mut sent = 0;
    for c in cases(s, h).into_iter().filter(|c| !c.http_only) {
        // WebSocket frames are text and carry the ids in the body: inject them as HTTP paths do.
        let Ok(text) = String::from_utf8(c.payload.clone()) else { continue };
        // An empty frame has nothing to answer; an object followed by more text is a batch.
        let first = serde_json::Deserializer::from_str(&text).into_iter::<Value>().next();
        if text.trim().is_empty() || (matches!(first, Some(Ok(_))) && serde_json::from_str::<Value>(&text).is_err()) {
            continue;
        }
        let text = match (serde_json::from_str::<Value>(&text), c.at) {
            (Ok(Value::Object(mut o)), at) => {
                if matches!(at, At::Session | At::Handle) {
                    o.entry("session_id").or_insert(json!(s));
                }
                if matches!(at, At::Handle) {
                    o.entry("handle_id").or_insert(json!(h));
                }
                Value::Object(o).to_string()
            }
            // Payloads that are not objects are only meaningful at the root.
            (_, At::Root) => text,
            _ => continue,
        };
        let shown: String = text.chars().take(120).collect();
        ws.send_text(&text).await;
        sent += 1;
        let reply = ws.recv_until(|v| v["janus"] != "event").await;
        failures.extend(check(&format!("WS {shown}"), &reply, c.codes));
    }
    assert!(sent >= 50, "sent {sent} frames");
    assert!(failures.is_empty(), "{} frames failed:\n{}", failures.len(), failures.join("\n"));
    let ack = ws.request(json!({"janus": "keepalive", "transaction": "k", "session_id": s})).await;
    assert_eq!(ack["janus"], "ack", "{ack}");
    assert_still_serving(&server.http(), s, h).await;
}

#[tokio::test]
async fn hostile_admin_payloads_get_json_errors() {
    let server = TestServer::start();
    let admin = server.admin();
    let s = server.http().create().await;
    let cases: Vec<(String, Vec<u8>, &[u64])> = vec![
        ("/admin".into(), b"{".to_vec(), &[454]),
        ("/admin".into(), b"[]".to_vec(), &[455]),
        ("/admin".into(), j(json!({"janus": "list_sessions"})), &[456]),
        ("/admin".into(), j(json!({"janus": "set_log_level", "transaction": "t", "level": -1})), &[467]),
        ("/admin".into(), j(json!({"janus": "set_log_level", "transaction": "t", "level": "5"})), &[467]),
        ("/admin".into(), j(json!({"janus": "set_log_level", "transaction": "t", "level": 1e300})), &[467]),
        ("/admin".into(), j(json!({"janus": "set_session_timeout", "transaction": "t", "timeout": -5})), &[467]),
        ("/admin".into(), j(json!({"janus": "accept_new_sessions", "transaction": "t", "accept": "no"})), &[467]),
        (
            "/admin".into(),
            j(json!({"janus": "message_plugin", "transaction": "t", "plugin": ECHOTEST, "request": 5})),
            &[467],
        ),
        (
            "/admin".into(),
            j(json!({"janus": "add_token", "transaction": "t", "token": "x", "plugins": "all"})),
            &[467, 490],
        ),
        ("/admin".into(), j(json!({"janus": "custom_event", "transaction": "t", "schema": 5, "data": {}})), &[467]),
        (format!("/admin/{s}"), j(json!({"janus": "set_session_timeout", "transaction": "t", "timeout": "x"})), &[467]),
        (format!("/admin/{s}/999"), j(json!({"janus": "handle_info", "transaction": "t"})), &[459]),
        ("/admin/999".into(), j(json!({"janus": "list_handles", "transaction": "t"})), &[458]),
    ];
    let mut failures = Vec::new();
    for (path, payload, codes) in &cases {
        let what = format!("POST {path} {}", String::from_utf8_lossy(payload));
        let reply = admin.post_raw(path, payload.clone()).await;
        match serde_json::from_str::<Value>(&reply.body) {
            Ok(v) => failures.extend(check(&what, &v, codes)),
            Err(e) => failures.push(format!("{what}: not JSON ({e}): {:?}", reply.body)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let pong = admin.post("/admin", json!({"janus": "ping", "transaction": "p"})).await;
    assert_eq!(pong["janus"], "pong");
    assert_eq!(server.http().keepalive(s).await["janus"], "ack");
}
