//! The binary's command line and configuration layers: defaults < Janus folder (-F) < TOML file
//! (-c) < PORTUNUS__SECTION__KEY < flags; `jcfg2toml`; graceful shutdown on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_portunus");

/// A running server and its listeners (from the PORTUNUS_READY line).
struct Server {
    child: Child,
    ready: Value,
}

impl Server {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.args([
            "--http-port",
            "0",
            "--ws-port",
            "0",
            "--admin-http-port",
            "0",
            "--admin-ws-port",
            "0",
            "--web-port",
            "0",
        ])
        .args(args)
        .env("PORTUNUS__HTTP__IP", "127.0.0.1")
        .env("PORTUNUS__WEBSOCKETS__WS_IP", "127.0.0.1")
        .env("PORTUNUS__GENERAL__DEBUG_LEVEL", "2")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn portunus");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(json) = line.strip_prefix("PORTUNUS_READY ") {
                    let _ = tx.send(json.to_owned());
                    return;
                }
            }
        });
        let ready = rx.recv_timeout(Duration::from_secs(20)).expect("server ready line");
        Server { child, ready: serde_json::from_str(&ready).expect("ready json") }
    }

    fn http(&self) -> String {
        format!("http://{}/janus", self.ready["http"].as_str().expect("http listener"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn info(server: &Server) -> Value {
    let body = reqwest::get(format!("{}/info", server.http())).await.expect("GET info").text().await.expect("body");
    serde_json::from_str(&body).expect("info json")
}

#[tokio::test]
async fn layers_apply_in_order() {
    let dir = std::env::temp_dir().join(format!("portunus-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let toml = dir.join("p.toml");
    std::fs::write(&toml, "[general]\nsession_timeout = 30\nserver_name = \"from-toml\"\n").expect("write toml");
    let toml = toml.to_string_lossy().to_string();

    let s = Server::start(&["-c", &toml], &[]);
    let i = info(&s).await;
    assert_eq!((i["session-timeout"].as_u64(), i["server-name"].as_str()), (Some(30), Some("from-toml")));
    drop(s);

    let s = Server::start(&["-c", &toml], &[("PORTUNUS__GENERAL__SESSION_TIMEOUT", "40")]);
    assert_eq!(info(&s).await["session-timeout"].as_u64(), Some(40), "environment beats the file");
    drop(s);

    let s = Server::start(&["-c", &toml, "-s", "50"], &[("PORTUNUS__GENERAL__SESSION_TIMEOUT", "40")]);
    let i = info(&s).await;
    assert_eq!(i["session-timeout"].as_u64(), Some(50), "flags beat the environment");
    assert_eq!(i["server-name"].as_str(), Some("from-toml"));
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn janus_configuration_folder_is_read() {
    let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jcfg");
    let s = Server::start(&["-F", folder], &[]);
    let i = info(&s).await;
    assert_eq!(i["name"].as_str(), Some("Janus WebRTC Server"));
    // The fixture's transport file turns the Admin API on HTTP off, as Janus's samples do.
    let expect_admin = std::fs::read_to_string(format!("{folder}/janus.transport.http.jcfg"))
        .map(|t| !t.contains("admin_http = false"))
        .unwrap_or(true);
    assert_eq!(s.ready.get("admin_http").is_some(), expect_admin, "{}", s.ready);
}

#[tokio::test]
async fn debian_janus_folder_starts() {
    if !std::path::Path::new("/etc/janus/janus.jcfg").exists() {
        assert!(std::env::var("PORTUNUS_REQUIRE_JANUS_SAMPLES").is_err(), "/etc/janus is missing");
        eprintln!("skipped: Debian's janus package is not installed");
        return;
    }
    let s = Server::start(&["-F", "/etc/janus"], &[]);
    let i = info(&s).await;
    assert!(i["plugins"]["janus.plugin.echotest"].is_object(), "{i}");
    // Debian's samples leave the Admin API on HTTP off.
    assert!(s.ready.get("admin_http").is_none(), "{}", s.ready);
}

#[test]
fn a_port_in_use_is_a_clean_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let out = Command::new(BIN)
        .args(["--http-port", &port, "--ws-port", "0", "--admin-http-port", "0", "--admin-ws-port", "0"])
        .args(["--web-port", "0"])
        .env("PORTUNUS__HTTP__IP", "127.0.0.1")
        .env("PORTUNUS__GENERAL__DEBUG_LEVEL", "2")
        .output()
        .expect("run portunus");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn jcfg2toml_converts_a_folder() {
    let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jcfg");
    let out = Command::new(BIN).args(["jcfg2toml", folder]).output().expect("run jcfg2toml");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let table: toml::Table = text.parse().expect("valid TOML");
    assert!(table.contains_key("general") && table.contains_key("http"), "{text}");
}

#[tokio::test]
async fn sigterm_shuts_down_gracefully() {
    let mut s = Server::start(&[], &[]);
    let ws_url = format!("ws://{}/", s.ready["ws"].as_str().expect("ws"));
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(ws_url.as_str())
        .expect("request");
    req.headers_mut().insert("Sec-WebSocket-Protocol", "janus-protocol".parse().expect("header"));
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("ws connect");
    use futures_util::{SinkExt, StreamExt};
    ws.send(tokio_tungstenite::tungstenite::Message::text(r#"{"janus":"create","transaction":"c"}"#))
        .await
        .expect("send");
    let reply = ws.next().await.expect("reply").expect("frame");
    assert!(reply.to_text().unwrap_or_default().contains("success"));

    terminate(&mut s);
    let status = s.child.wait().expect("exit status");
    assert!(status.success(), "exit status {status}");
    // The socket is closed by the shutdown.
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(m)) = ws.next().await {
            if m.is_close() {
                break;
            }
        }
    })
    .await;
    assert!(end.is_ok(), "WebSocket not closed by the shutdown");
}

/// Sends SIGTERM and waits for the exit.
fn terminate(s: &mut Server) {
    // SAFETY: kill(2) on our own child process has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(s.child.id() as libc::pid_t, libc::SIGTERM) }, 0);
    let start = Instant::now();
    while s.child.try_wait().expect("wait").is_none() {
        assert!(start.elapsed() < Duration::from_secs(10), "server did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn admin_switches_log_timestamps() {
    let log = std::env::temp_dir().join(format!("portunus-cli-log-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let path = log.to_string_lossy().to_string();
    let mut s = Server::start(
        &[],
        &[("PORTUNUS__GENERAL__DEBUG_LEVEL", "4"), ("PORTUNUS__GENERAL__LOG_TO_FILE", path.as_str())],
    );
    // Listeners log their start just after the ready line; let that settle.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let startup = std::fs::read_to_string(&log).expect("log file");
    let stamped = |line: &str| line.len() > 20 && line.as_bytes()[..4].iter().all(u8::is_ascii_digit);
    assert!(!startup.is_empty() && !startup.lines().any(stamped), "Janus's default is no timestamps:\n{startup}");

    let admin = format!("http://{}/admin", s.ready["admin_http"].as_str().expect("admin listener"));
    let body = serde_json::json!({"janus": "set_log_timestamps", "timestamps": true, "transaction": "t",
        "admin_secret": "janusoverlord"});
    let reply: Value = reqwest::Client::new()
        .post(&admin)
        .json(&body)
        .send()
        .await
        .expect("admin request")
        .json()
        .await
        .expect("admin json");
    assert_eq!(reply["log_timestamps"], true, "{reply}");
    // Shutting down logs at info level, now with timestamps.
    terminate(&mut s);
    let all = std::fs::read_to_string(&log).expect("log file");
    let later = &all[startup.len()..];
    assert!(!later.is_empty() && later.lines().all(stamped), "lines after the switch:\n{later}");
    let _ = std::fs::remove_file(&log);
}
