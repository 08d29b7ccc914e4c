//! HTTP transport rules (reference 1.7): CORS, unsupported methods, 404 paths, the `GET`
//! shortcuts and the JSON content type. Long polls have their own module.

use reqwest::Method;
use serde_json::json;

use crate::common::{TestServer, ECHOTEST};

#[tokio::test]
async fn options_answers_cors_preflight() {
    let server = TestServer::start();
    let http = server.http();
    for path in ["/janus", "/janus/123", "/janus/123/456"] {
        let reply = http.request(Method::OPTIONS, path, None).await;
        assert_eq!(reply.status.as_u16(), 200, "OPTIONS {path}");
        assert_eq!(reply.header("access-control-allow-origin"), Some("*"), "OPTIONS {path}");
        assert_eq!(reply.header("access-control-max-age"), Some("86400"), "OPTIONS {path}");
    }
}

#[tokio::test]
async fn options_echoes_requested_methods_and_headers() {
    let server = TestServer::start();
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let resp = client
        .request(Method::OPTIONS, format!("http://{}/janus", server.http))
        .header("Origin", "http://example.test")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type, x-custom")
        .send()
        .await
        .expect("OPTIONS");
    assert_eq!(resp.status().as_u16(), 200);
    let h = resp.headers();
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(get("access-control-allow-origin").as_deref(), Some("*"));
    assert_eq!(get("access-control-max-age").as_deref(), Some("86400"));
    assert!(get("access-control-allow-methods").is_some_and(|m| m.contains("POST")), "{h:?}");
    assert!(get("access-control-allow-headers").is_some_and(|m| m.contains("x-custom")), "{h:?}");
}

#[tokio::test]
async fn replies_are_json_with_cors_header() {
    let server = TestServer::start();
    let reply = server.http().post_raw("/janus", json!({"janus": "ping", "transaction": "t"}).to_string()).await;
    assert_eq!(reply.status.as_u16(), 200);
    assert!(reply.header("content-type").is_some_and(|c| c.starts_with("application/json")), "{:?}", reply.headers);
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
    // Janus errors are HTTP 200 too, with the error in the body.
    let reply = server.http().post_raw("/janus", "{bad").await;
    assert_eq!(reply.status.as_u16(), 200);
    assert_eq!(reply.json()["janus"], "error");
}

#[tokio::test]
async fn unsupported_methods_are_450() {
    let server = TestServer::start();
    let http = server.http();
    let s = http.create().await;
    for (method, path) in [
        (Method::PUT, "/janus".to_owned()),
        (Method::DELETE, format!("/janus/{s}")),
        (Method::PATCH, "/janus".to_owned()),
    ] {
        let reply = http.request(method.clone(), &path, Some(b"{}".to_vec())).await;
        assert_eq!(reply.status.as_u16(), 200, "{method} {path}");
        assert_eq!(
            reply.json(),
            json!({"janus": "error", "error": {"code": 450, "reason": format!("Unsupported method {method}")}}),
            "{method} {path}"
        );
    }
    // The session was not touched by the DELETE.
    assert_eq!(http.keepalive(s).await["janus"], "ack");
}

#[tokio::test]
async fn paths_outside_the_api_are_404_with_empty_body() {
    let server = TestServer::start();
    let http = server.http();
    let s = http.create().await;
    let h = http.attach(s, ECHOTEST).await;
    for path in [
        "/janus".to_owned(),
        "/nope".to_owned(),
        "/janusx".to_owned(),
        format!("/janus/{s}/{h}/1"),
        format!("/janus/{s}/{h}/1/2"),
        "/janus/999".to_owned(),
    ] {
        let (status, body) = http.get(&path).await;
        assert_eq!((status.as_u16(), body.as_str()), (404, ""), "GET {path}");
    }
    let reply = http.post_raw("/nope", json!({"janus": "ping", "transaction": "t"}).to_string()).await;
    assert_eq!(reply.status.as_u16(), 404, "POST /nope");
}

#[tokio::test]
async fn non_get_on_info_is_400() {
    let server = TestServer::start();
    let reply = server.http().post_raw("/janus/info", json!({"janus": "info", "transaction": "t"}).to_string()).await;
    assert_eq!(reply.status.as_u16(), 400);
}

#[tokio::test]
async fn post_to_handle_path_of_unknown_session_is_458() {
    let server = TestServer::start();
    let reply = server.http().post("/janus/999/888", json!({"janus": "hangup", "transaction": "t"})).await;
    assert_eq!(
        reply,
        json!({"janus": "error", "session_id": 999, "transaction": "t", "error": {"code": 458, "reason": "No such session 999"}})
    );
}

async fn open_http_connections(server: &TestServer) -> u64 {
    let (_, text) = server.admin().get("/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix("portunus_transport_connections{transport=\"janus.transport.http\"} "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the HTTP connection gauge")
}

/// One keep-alive connection that has been served one request.
async fn served_connection(server: &TestServer) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(server.http).await.expect("connect to the HTTP port");
    tcp.write_all(b"GET /janus/ping HTTP/1.1\r\nHost: localhost\r\n\r\n").await.expect("send");
    let mut buf = [0u8; 1024];
    let n = tcp.read(&mut buf).await.expect("read the reply");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
    tcp
}

#[tokio::test]
async fn open_connections_are_counted_in_metrics() {
    let server = TestServer::start();
    let before = open_http_connections(&server).await;
    let a = served_connection(&server).await;
    let b = served_connection(&server).await;
    assert_eq!(open_http_connections(&server).await, before + 2);
    drop(a);
    drop(b);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while open_http_connections(&server).await != before {
        assert!(std::time::Instant::now() < deadline, "closed HTTP connections still counted");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
