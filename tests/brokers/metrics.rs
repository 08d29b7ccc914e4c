//! `/metrics`, `/healthz` and `/readyz` on the admin HTTP port: values change with activity, and
//! readiness follows the configured brokers.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{metric_value, request, Server};

async fn janus(server: &Server, path: &str, body: Value) -> Value {
    let url = format!("http://{}{path}", server.ready["http"]);
    reqwest::Client::new().post(url).json(&body).send().await.expect("POST").json().await.expect("JSON")
}

#[tokio::test]
async fn metrics_follow_activity() {
    let server = Server::spawn("");
    assert_eq!(server.admin_get("/healthz").await.0, 200);
    assert_eq!(server.admin_get("/readyz").await.0, 200);

    let (status, before) = server.admin_get("/metrics").await;
    assert_eq!(status, 200);
    assert!(before.contains("# TYPE portunus_sessions gauge"));
    let sessions0 = metric_value(&before, "portunus_sessions").expect("sessions gauge");
    let create = "portunus_requests_total{api=\"janus\",request=\"create\",code=\"0\"}";
    let created0 = metric_value(&before, create).unwrap_or(0.0);

    let reply = janus(&server, "/janus", request("create", json!({}))).await;
    let session = reply["data"]["id"].as_u64().expect("session");
    let reply = janus(&server, "/janus", request("create", json!({}))).await;
    assert_eq!(reply["janus"], "success");
    let missing = janus(&server, "/janus/1", request("keepalive", json!({}))).await;
    assert_eq!(missing["error"]["code"], 458);
    let listed = server.admin_api(request("list_sessions", json!({}))).await;
    assert!(listed["sessions"].as_array().expect("list").contains(&json!(session)));

    let (_, after) = server.admin_get("/metrics").await;
    assert_eq!(metric_value(&after, "portunus_sessions"), Some(sessions0 + 2.0));
    assert_eq!(metric_value(&after, create), Some(created0 + 2.0));
    let e458 = "portunus_requests_total{api=\"janus\",request=\"keepalive\",code=\"458\"}";
    assert!(metric_value(&after, e458).unwrap_or(0.0) >= 1.0, "{after}");
    let admin = "portunus_requests_total{api=\"admin\",request=\"list_sessions\",code=\"0\"}";
    assert!(metric_value(&after, admin).unwrap_or(0.0) >= 1.0);
    let count = "portunus_request_duration_seconds_count{api=\"janus\",request=\"create\"}";
    assert!(metric_value(&after, count).unwrap_or(0.0) >= 2.0);
    let inf = "portunus_request_duration_seconds_bucket{api=\"janus\",request=\"create\",le=\"+Inf\"}";
    assert_eq!(metric_value(&after, inf), metric_value(&after, count));

    janus(&server, &format!("/janus/{session}"), request("destroy", json!({}))).await;
    let sessions = server.wait_metric("portunus_sessions", Duration::from_secs(5), |v| v == sessions0 + 1.0).await;
    assert_eq!(sessions, sessions0 + 1.0);
}

#[tokio::test]
async fn readyz_waits_for_configured_brokers() {
    // Nothing listens on port 1: the RabbitMQ link stays down.
    let server = Server::spawn(
        r#"
[rabbitmq]
enabled = true
host = "127.0.0.1"
port = 1
reconnect_backoff = 50
reconnect_backoff_max = 200
"#,
    );
    let (status, body) = server.admin_get("/readyz").await;
    assert_eq!(status, 503);
    assert!(body.contains("janus.transport.rabbitmq not connected"), "{body}");
    assert_eq!(server.admin_get("/healthz").await.0, 200);
    let up = server.metric("portunus_broker_connected{link=\"janus.transport.rabbitmq\"}").await;
    assert_eq!(up, Some(0.0));
}
