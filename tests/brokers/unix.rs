//! The Unix sockets transport (`pfunix`): the Janus API over SOCK_SEQPACKET and the Admin API
//! over SOCK_DGRAM, socket permissions, sessions destroyed when the connection closes, and Admin
//! `query_transport` on this transport.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use socket2::{Domain, SockAddr, Socket, Type};

use crate::harness::{request, unique, Server};

struct Paths {
    dir: PathBuf,
}

impl Paths {
    fn new() -> Paths {
        let dir = std::env::temp_dir().join(unique("pfunix"));
        std::fs::create_dir_all(&dir).expect("socket dir");
        Paths { dir }
    }
    fn api(&self) -> PathBuf {
        self.dir.join("api.sock")
    }
    fn admin(&self) -> PathBuf {
        self.dir.join("admin.sock")
    }
}

impl Drop for Paths {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A SOCK_SEQPACKET client.
struct Seq(Socket);

impl Seq {
    fn connect(path: &PathBuf) -> Seq {
        let s = Socket::new(Domain::UNIX, Type::SEQPACKET, None).expect("socket");
        s.connect(&SockAddr::unix(path).expect("addr")).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        Seq(s)
    }

    fn recv(&mut self) -> Value {
        let mut buf = vec![0u8; 256 * 1024];
        let n = (&self.0).read(&mut buf).expect("a packet in time");
        serde_json::from_slice(&buf[..n]).expect("JSON packet")
    }

    /// Sends and returns the reply with the same transaction (events are skipped).
    fn call(&mut self, body: Value) -> Value {
        (&self.0).write_all(body.to_string().as_bytes()).expect("send");
        loop {
            let v = self.recv();
            if v["transaction"] == body["transaction"] && v["janus"] != "event" {
                return v;
            }
        }
    }
}

fn admin_call(client: &UnixDatagram, server: &PathBuf, body: Value) -> Value {
    client.send_to(body.to_string().as_bytes(), server).expect("send datagram");
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = client.recv(&mut buf).expect("a datagram in time");
        let v: Value = serde_json::from_slice(&buf[..n]).expect("JSON datagram");
        if v["transaction"] == body["transaction"] {
            return v;
        }
    }
}

#[tokio::test]
async fn unix_seqpacket_api_and_dgram_admin() {
    let p = Paths::new();
    let server = Server::spawn(&format!(
        r#"
[pfunix]
enabled = true
path = "{}"
type = "SOCK_SEQPACKET"
permissions = "0600"

[pfunix.admin]
admin_enabled = true
admin_path = "{}"
admin_type = "SOCK_DGRAM"
"#,
        p.api().display(),
        p.admin().display()
    ));
    assert_eq!(server.ready.get("pfunix").map(String::as_str), p.api().to_str());
    assert_eq!(server.ready.get("pfunix_admin").map(String::as_str), p.admin().to_str());
    let mode = std::fs::metadata(p.api()).expect("socket file").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let api = p.api();
    let admin_path = p.admin();
    let client_path = p.dir.join("client.sock");
    let conns = "portunus_transport_connections{transport=\"janus.transport.pfunix\"}";
    assert_eq!(server.metric(conns).await, Some(0.0));
    tokio::task::spawn_blocking(move || {
        let mut c = Seq::connect(&api);
        let info = c.call(request("info", json!({})));
        assert!(info["transports"].as_object().expect("transports").contains_key("janus.transport.pfunix"));
        let created = c.call(request("create", json!({})));
        let session = created["data"]["id"].as_u64().expect("session");
        let attached = c.call(request("attach", json!({"session_id": session, "plugin": "janus.plugin.echotest"})));
        let handle = attached["data"]["id"].as_u64().expect("handle");
        let msg = request("message", json!({"session_id": session, "handle_id": handle, "body": {"audio": false}}));
        (&c.0).write_all(msg.to_string().as_bytes()).expect("send");
        let (mut ack, mut event) = (false, false);
        while !(ack && event) {
            let v = c.recv();
            assert_eq!(v["transaction"], msg["transaction"]);
            ack |= v["janus"] == "ack";
            event |= v["janus"] == "event";
        }
        let detached = c.call(request("detach", json!({"session_id": session, "handle_id": handle})));
        assert_eq!(detached["janus"], "success");

        let admin = UnixDatagram::bind(&client_path).expect("bind client");
        admin.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let listed = admin_call(&admin, &admin_path, request("list_sessions", json!({})));
        assert!(listed["sessions"].as_array().expect("sessions").contains(&json!(session)), "{listed}");

        // Admin `query_transport` reaches this transport (Janus's pfunix answers the same two
        // requests): `connections` counts both peers, the connection and this datagram one.
        let query = |req: Value| {
            let body = json!({"transport": "janus.transport.pfunix", "request": req});
            let reply = admin_call(&admin, &admin_path, request("query_transport", body));
            assert_eq!(reply["janus"], "success", "{reply}");
            reply["response"].clone()
        };
        assert_eq!(query(json!({"request": "connections"})), json!({"result": 200, "connections": 2}));
        assert_eq!(query(json!({"request": "configure", "events": false})), json!({"result": 200}));
        assert_eq!(query(json!({"request": "nope"})), json!({"error_code": 411, "error": "Unknown request 'nope'"}));

        // Closing the connection destroys its sessions (Janus compat 1.6).
        drop(c);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let listed = admin_call(&admin, &admin_path, request("list_sessions", json!({})));
            if !listed["sessions"].as_array().expect("sessions").contains(&json!(session)) {
                break;
            }
            assert!(Instant::now() < deadline, "session outlived its connection");
            std::thread::sleep(Duration::from_millis(50));
        }
        let bad = {
            let mut c = Seq::connect(&api);
            (&c.0).write_all(b"{nope").expect("send");
            c.recv()
        };
        assert_eq!(bad["error"]["code"], 454);
    })
    .await
    .expect("client thread");
    // Every SOCK_SEQPACKET connection closed; the datagram peer stays known.
    server.wait_metric(conns, Duration::from_secs(5), |v| v == 1.0).await;
}
