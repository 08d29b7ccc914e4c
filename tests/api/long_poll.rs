//! HTTP long polls (reference 1.7, 13, 14.13): `maxev` gives an object or an array, an idle
//! poll answers `keepalive` after `longpoll_keepalive` seconds, several polls can wait on one
//! session, events are delivered in order, and 404/302 rules.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{HttpClient, TestServer, ECHOTEST};

/// Idle polls answer after this many seconds in these tests.
const KEEPALIVE: &str = "1";

fn server_with_short_keepalive() -> TestServer {
    TestServer::spawn(&[("PORTUNUS__HTTP__LONGPOLL_KEEPALIVE", KEEPALIVE)], &[])
}

/// Sends an EchoTest message; returns its transaction.
async fn echo_message(http: &HttpClient, s: u64, h: u64, t: &str) {
    let ack = http
        .post(&format!("/janus/{s}/{h}"), json!({"janus": "message", "transaction": t, "body": {"audio": true}}))
        .await;
    assert_eq!(ack["janus"], "ack", "{ack}");
}

#[tokio::test]
async fn idle_poll_answers_keepalive_object() {
    let server = server_with_short_keepalive();
    let http = server.http();
    let s = http.create().await;
    let start = Instant::now();
    let reply = http.get_json(&format!("/janus/{s}")).await;
    assert_eq!(reply, json!({"janus": "keepalive"}));
    assert!(start.elapsed() >= Duration::from_millis(500), "an idle poll is held, not answered at once");
}

#[tokio::test]
async fn idle_poll_with_maxev_answers_array() {
    let server = server_with_short_keepalive();
    let http = server.http();
    let s = http.create().await;
    let reply = http.get_json(&format!("/janus/{s}?maxev=5")).await;
    assert_eq!(reply, json!([{"janus": "keepalive"}]));
    let reply = http.get_json(&format!("/janus/{s}?maxev=5&rid=1234567890")).await;
    assert_eq!(reply, json!([{"janus": "keepalive"}]), "rid is ignored");
}

#[tokio::test]
async fn maxev_one_or_invalid_answers_object() {
    let server = server_with_short_keepalive();
    let http = server.http();
    let s = http.create().await;
    for q in ["?maxev=1", "?maxev=0", "?maxev=-3", "?maxev=abc", "?rid=5"] {
        let reply = http.get_json(&format!("/janus/{s}{q}")).await;
        assert_eq!(reply, json!({"janus": "keepalive"}), "query {q}");
    }
}

#[tokio::test]
async fn queued_events_come_back_at_once_and_in_order() {
    let server = TestServer::start(); // 30 s keepalive: anything quick is a real event
    let http = server.http();
    let (s, h) = http.session_with_echotest().await;
    for t in ["q1", "q2", "q3"] {
        echo_message(&http, s, h, t).await;
    }
    let mut seen: Vec<Value> = Vec::new();
    let start = Instant::now();
    while seen.len() < 3 {
        let batch = http.get_json(&format!("/janus/{s}?maxev=10")).await;
        let batch = batch.as_array().cloned().expect("maxev=10 gives an array");
        assert!(!batch.is_empty() && batch.len() <= 10, "batch {batch:?}");
        seen.extend(batch.into_iter().filter(|e| e["janus"] == "event"));
        assert!(start.elapsed() < Duration::from_secs(20), "events: {seen:?}");
    }
    let order: Vec<&Value> = seen.iter().map(|e| &e["transaction"]).collect();
    assert_eq!(order, [&json!("q1"), &json!("q2"), &json!("q3")]);
    for e in &seen {
        assert_eq!(e["sender"], h);
        assert_eq!(e["plugindata"]["data"], json!({"echotest": "event", "result": "ok"}));
    }
}

#[tokio::test]
async fn maxev_one_returns_one_event_per_poll() {
    let server = TestServer::start();
    let http = server.http();
    let (s, h) = http.session_with_echotest().await;
    echo_message(&http, s, h, "o1").await;
    echo_message(&http, s, h, "o2").await;
    let first = http.get_json(&format!("/janus/{s}")).await;
    assert_eq!(first["janus"], "event", "{first}");
    assert_eq!(first["transaction"], "o1");
    let second = http.get_json(&format!("/janus/{s}?maxev=1")).await;
    assert_eq!(second["janus"], "event", "{second}");
    assert_eq!(second["transaction"], "o2");
}

#[tokio::test]
async fn an_event_wakes_a_parked_poll() {
    let server = TestServer::start(); // 30 s keepalive
    let http = server.http();
    let (s, h) = http.session_with_echotest().await;
    let poller = http.clone();
    let poll = tokio::spawn(async move { poller.get_json(&format!("/janus/{s}")).await });
    echo_message(&http, s, h, "w1").await;
    let event = tokio::time::timeout(Duration::from_secs(15), poll).await.expect("poll answered").expect("poll task");
    assert_eq!(event["janus"], "event", "{event}");
    assert_eq!(event["transaction"], "w1");
}

#[tokio::test]
async fn several_concurrent_polls_each_get_one_event() {
    let server = TestServer::spawn(&[("PORTUNUS__HTTP__LONGPOLL_KEEPALIVE", "3")], &[]);
    let http = server.http();
    let (s, h) = http.session_with_echotest().await;
    let polls: Vec<_> = (0..3)
        .map(|_| {
            let c = http.clone();
            tokio::spawn(async move { c.get_json(&format!("/janus/{s}")).await })
        })
        .collect();
    echo_message(&http, s, h, "p1").await;
    echo_message(&http, s, h, "p2").await;
    let mut results = Vec::new();
    for p in polls {
        results.push(p.await.expect("poll task"));
    }
    let events: Vec<&Value> = results.iter().filter(|r| r["janus"] == "event").collect();
    let keepalives = results.iter().filter(|r| **r == json!({"janus": "keepalive"})).count();
    assert_eq!((events.len(), keepalives), (2, 1), "results {results:?}");
    let mut ts: Vec<&str> = events.iter().filter_map(|e| e["transaction"].as_str()).collect();
    ts.sort_unstable();
    assert_eq!(ts, ["p1", "p2"]);
}

#[tokio::test]
async fn detached_event_is_delivered() {
    let server = server_with_short_keepalive();
    let http = server.http();
    let (s, h) = http.session_with_echotest().await;
    let ok = http.post(&format!("/janus/{s}/{h}"), json!({"janus": "detach", "transaction": "d"})).await;
    assert_eq!(ok["janus"], "success");
    let event = http.get_json(&format!("/janus/{s}")).await;
    assert_eq!(event, json!({"janus": "detached", "session_id": s, "sender": h}));
}

#[tokio::test]
async fn unknown_session_is_404_empty() {
    let server = TestServer::start();
    let (status, body) = server.http().get("/janus/999").await;
    assert_eq!((status.as_u16(), body.as_str()), (404, ""));
    let (status, body) = server.http().get("/janus/999?maxev=10").await;
    assert_eq!((status.as_u16(), body.as_str()), (404, ""));
}

#[tokio::test]
async fn websocket_session_is_404_over_http() {
    let server = TestServer::start();
    let mut ws = server.ws().await;
    let s = ws.create().await;
    let (status, body) = server.http().get(&format!("/janus/{s}")).await;
    assert_eq!((status.as_u16(), body.as_str()), (404, ""));
    // POSTs to it over HTTP still work: only the poll queue is missing.
    assert_eq!(server.http().keepalive(s).await["janus"], "ack");
}

#[tokio::test]
async fn handle_path_redirects_to_session() {
    let server = server_with_short_keepalive();
    let http = server.http();
    let (s, h) = http.session_with_echotest().await;
    let reply = http.request(reqwest::Method::GET, &format!("/janus/{s}/{h}"), None).await;
    assert_eq!(reply.status.as_u16(), 302);
    assert_eq!(reply.header("location"), Some(format!("/janus/{s}").as_str()));
    // Following it is an ordinary poll.
    assert_eq!(http.get_json(&format!("/janus/{s}")).await, json!({"janus": "keepalive"}));
}

#[tokio::test]
async fn polls_keep_the_session_alive() {
    let server = TestServer::spawn(&[("PORTUNUS__HTTP__LONGPOLL_KEEPALIVE", KEEPALIVE)], &["-s", "2"]);
    let http = server.http();
    let s = http.create().await;
    let idle = http.create().await;
    // Poll for well past the timeout; the idle session expires meanwhile.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(7) {
        let reply = http.get_json(&format!("/janus/{s}")).await;
        assert_eq!(reply, json!({"janus": "keepalive"}));
    }
    assert_eq!(http.keepalive(s).await["janus"], "ack", "polled session survived");
    let reply = http.keepalive(idle).await;
    assert_eq!(reply["error"]["code"], 458, "idle session expired: {reply}");
}

#[tokio::test]
async fn attach_and_message_on_two_handles_interleave_in_one_queue() {
    let server = TestServer::start();
    let http = server.http();
    let s = http.create().await;
    let h1 = http.attach(s, ECHOTEST).await;
    let h2 = http.attach(s, ECHOTEST).await;
    echo_message(&http, s, h1, "a").await;
    echo_message(&http, s, h2, "b").await;
    let mut senders = std::collections::BTreeMap::new();
    let start = Instant::now();
    while senders.len() < 2 {
        let batch = http.get_json(&format!("/janus/{s}?maxev=10")).await;
        for e in batch.as_array().cloned().unwrap_or_default() {
            if let Some(t) = e["transaction"].as_str() {
                senders.insert(t.to_owned(), e["sender"].clone());
            }
        }
        assert!(start.elapsed() < Duration::from_secs(20), "events so far: {senders:?}");
    }
    assert_eq!(senders["a"], h1);
    assert_eq!(senders["b"], h2);
}
