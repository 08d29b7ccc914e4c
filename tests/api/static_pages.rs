//! The static web server (`[web]`): demo pages with the right MIME types, a folder of the user's
//! own pages with `--web-root`, nothing outside the folder, and off with `--no-web`.

use std::net::SocketAddr;

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::http::HttpClient;
use crate::common::TestServer;

/// Sends `path` exactly as written (no client-side normalization of `..`); returns the status line.
async fn raw_get(addr: SocketAddr, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect to the web port");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("send");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    String::from_utf8_lossy(&out).lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn demo_pages_are_served_from_static() {
    let server = TestServer::start();
    let web = HttpClient::new(server.web.expect("the ready line names the web listener"));
    let reply = web.request(reqwest::Method::GET, "/", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.header("content-type").is_some_and(|t| t.starts_with("text/html")), "{:?}", reply.headers);
    assert!(reply.body.contains("Portunus"));
    let (status, _) = web.get("/no-such-page.html").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn own_pages_with_mime_types_and_no_way_out() {
    let dir = std::env::temp_dir().join(format!("portunus-web-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("index.html"), "<p>mine</p>").unwrap();
    std::fs::write(dir.join("app.js"), "console.log(1)").unwrap();
    std::fs::write(dir.join("sub/style.css"), "p{}").unwrap();
    std::fs::write(dir.join("sub/index.html"), "<p>sub</p>").unwrap();
    let root = dir.to_string_lossy().into_owned();
    let server = TestServer::spawn(&[], &["--web-root", &root]);
    let addr = server.web.expect("web listener");
    let web = HttpClient::new(addr);

    let page = web.request(reqwest::Method::GET, "/", None).await;
    assert_eq!(page.body, "<p>mine</p>");
    for (path, mime) in [("/app.js", "text/javascript"), ("/sub/style.css", "text/css"), ("/sub/", "text/html")] {
        let reply = web.request(reqwest::Method::GET, path, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        let ty = reply.header("content-type").unwrap_or_default().to_owned();
        assert!(
            ty.starts_with(mime) || (mime == "text/javascript" && ty.starts_with("application/javascript")),
            "{path}: {ty}"
        );
    }
    // The folder is the whole world: parent segments never reach the repository around it.
    for path in ["/../Cargo.toml", "/sub/../../Cargo.toml", "/%2e%2e/Cargo.toml", "/..%2fCargo.toml"] {
        let status = raw_get(addr, path).await;
        assert!(!status.contains(" 200 "), "{path}: {status}");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn no_web_turns_it_off() {
    let server = TestServer::spawn(&[], &["--no-web"]);
    assert!(server.web.is_none());
}
