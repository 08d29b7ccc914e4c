//! Admin `start_pcap` / `stop_pcap` / `start_text2pcap` / `stop_text2pcap` (reference 4.3): the
//! replies, the one-dump-per-handle rule, refused folders and `handle_info`'s dump fields. The
//! files' contents with media flowing are checked in tests/e2e/test_pcap.py.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::common::{assert_error, HttpClient, TestServer};

/// A fresh folder under the system temp dir, removed on drop.
struct Folder(PathBuf);

impl Folder {
    fn new(name: &str) -> Folder {
        let dir = std::env::temp_dir().join(format!("portunus-dump-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Folder(dir)
    }

    fn path(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn request(a: &HttpClient, s: u64, h: u64, name: &str, extra: Value) -> Value {
    let mut req = json!({"janus": name, "transaction": "d"});
    crate::common::http::merge(&mut req, extra);
    a.post(&format!("/admin/{s}/{h}"), req).await
}

async fn info(a: &HttpClient, s: u64, h: u64) -> Value {
    request(a, s, h, "handle_info", json!({})).await["info"].clone()
}

#[tokio::test]
async fn start_and_stop_both_formats() {
    let server = TestServer::spawn(&[], &[]);
    let (s, h) = server.http().session_with_echotest().await;
    let a = server.admin();
    let folder = Folder::new("formats");

    // Janus compat: the success carries only janus and transaction.
    let reply = request(&a, s, h, "start_pcap", json!({"folder": folder.path(), "filename": "a.pcap"})).await;
    assert_eq!(reply, json!({"janus": "success", "transaction": "d"}));
    let i = info(&a, s, h).await;
    assert_eq!(i["dump-to-pcap"], true, "{i}");
    assert_eq!(i["pcap-file"], format!("{}/a.pcap", folder.path()));
    let reply = request(&a, s, h, "stop_pcap", json!({})).await;
    assert_eq!(reply, json!({"janus": "success", "transaction": "d"}));
    let i = info(&a, s, h).await;
    assert!(i.get("dump-to-pcap").is_none() && i.get("pcap-file").is_none(), "{i}");
    // A pcap with no packets is its 24-byte global header.
    assert_eq!(std::fs::metadata(folder.0.join("a.pcap")).map(|m| m.len()).ok(), Some(24));

    let reply = request(&a, s, h, "start_text2pcap", json!({"folder": folder.path(), "truncate": 20})).await;
    assert_eq!(reply["janus"], "success", "{reply}");
    let i = info(&a, s, h).await;
    assert_eq!(i["dump-to-text2pcap"], true, "{i}");
    let file = i["text2pcap-file"].as_str().unwrap_or_default().to_owned();
    let name = file.rsplit('/').next().unwrap_or_default();
    assert!(name.starts_with("janus-text2pcap-") && name.ends_with(".txt"), "Janus's default name: {file}");
    // plugin_only stops before the dump fields, as in Janus.
    let only = request(&a, s, h, "handle_info", json!({"plugin_only": true})).await;
    assert!(only["info"].get("dump-to-text2pcap").is_none(), "{only}");
    // Either stop ends whichever dump runs.
    assert_eq!(request(&a, s, h, "stop_pcap", json!({})).await["janus"], "success");
    assert!(std::path::Path::new(&file).exists());
}

#[tokio::test]
async fn one_dump_per_handle_and_stop_needs_one() {
    let server = TestServer::spawn(&[], &[]);
    let (s, h) = server.http().session_with_echotest().await;
    let a = server.admin();
    let folder = Folder::new("twice");

    assert_error(&request(&a, s, h, "stop_pcap", json!({})).await, 490, "Capture not started");
    assert_error(&request(&a, s, h, "stop_text2pcap", json!({})).await, 490, "Capture not started");
    let reply = request(&a, s, h, "start_text2pcap", json!({"folder": folder.path()})).await;
    assert_eq!(reply["janus"], "success", "{reply}");
    let again = request(&a, s, h, "start_pcap", json!({"folder": folder.path()})).await;
    assert_error(&again, 490, "pcap already started");
    let again = request(&a, s, h, "start_text2pcap", json!({"folder": folder.path()})).await;
    assert_error(&again, 490, "text2pcap already started");
    assert_eq!(request(&a, s, h, "stop_text2pcap", json!({})).await["janus"], "success");
    assert_error(&request(&a, s, h, "stop_text2pcap", json!({})).await, 490, "Capture not started");
}

#[tokio::test]
async fn bad_folders_and_fields_are_refused() {
    let server = TestServer::spawn(&[], &[]);
    let (s, h) = server.http().session_with_echotest().await;
    let a = server.admin();
    let folder = Folder::new("bad");

    // Protected by default (Janus's protected_folders), also when reached through `..`.
    let reply = request(&a, s, h, "start_pcap", json!({"folder": "/proc/portunus"})).await;
    assert_error(&reply, 490, "Error starting pcap dump");
    let reply = request(&a, s, h, "start_text2pcap", json!({"folder": "/tmp/../etc"})).await;
    assert_error(&reply, 490, "Error starting text2pcap dump");
    // A folder that can't be created.
    std::fs::create_dir_all(&folder.0).unwrap_or_default();
    let blocker = folder.0.join("file");
    std::fs::write(&blocker, b"x").unwrap_or_default();
    let reply = request(&a, s, h, "start_pcap", json!({"folder": blocker.to_string_lossy()})).await;
    assert_error(&reply, 490, "Error starting pcap dump");
    assert!(info(&a, s, h).await.get("dump-to-pcap").is_none());

    let reply = request(&a, s, h, "start_pcap", json!({"truncate": -1})).await;
    assert_error(&reply, 467, "Invalid element type (truncate should be a positive integer)");
    let reply = request(&a, s, h, "start_pcap", json!({"folder": 5})).await;
    assert_error(&reply, 467, "Invalid element type (folder should be a string)");
    let reply = request(&a, s, h, "start_text2pcap", json!({"filename": true})).await;
    assert_error(&reply, 467, "Invalid element type (filename should be a string)");

    // The handle is looked up before the fields are checked.
    let reply = request(&a, s, 1, "start_pcap", json!({"truncate": -1})).await;
    assert_error(&reply, 459, &format!("No such handle 1 in session {s}"));
    let reply = request(&a, s, 1, "stop_pcap", json!({})).await;
    assert_error(&reply, 459, &format!("No such handle 1 in session {s}"));
}

#[tokio::test]
async fn protected_folders_are_configurable() {
    let folder = Folder::new("configured");
    // Comma-separated in the environment, like a jcfg list.
    let list = format!("/proc,{}", folder.path());
    let server = TestServer::spawn(&[("PORTUNUS__GENERAL__PROTECTED_FOLDERS", &list)], &[]);
    let (s, h) = server.http().session_with_echotest().await;
    let a = server.admin();
    let reply = request(&a, s, h, "start_pcap", json!({"folder": format!("{}/sub", folder.path())})).await;
    assert_error(&reply, 490, "Error starting pcap dump");
    assert!(!folder.0.exists(), "nothing is created under a protected folder");
}
