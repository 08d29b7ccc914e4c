//! The `brokers` suite's own harness: runs the real `portunus` binary with a TOML configuration,
//! waits for its `PORTUNUS_READY` line, and talks to the admin HTTP port (`/metrics`,
//! `/readyz`, the Admin API). It also knows where `tests/run.sh` started the brokers (from the
//! `PORTUNUS_TEST_*` variables written by `brokers.sh`) and can restart them.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

const READY_TIMEOUT: Duration = Duration::from_secs(20);
const LOG_LINES: usize = 200;

/// Where the brokers run, or `None` (the test is skipped) when `tests/run.sh` did not start them.
pub struct Brokers {
    /// AMQP port of rabbitmq-server.
    pub amqp_port: u16,
    /// MQTT port of mosquitto.
    pub mqtt_port: u16,
    ctl: String,
    dir: String,
}

impl Brokers {
    /// From the environment `brokers.sh start` exported.
    pub fn from_env() -> Option<Brokers> {
        let var = |k: &str| std::env::var(k).ok();
        let found = (|| {
            Some(Brokers {
                amqp_port: var("PORTUNUS_TEST_AMQP_PORT")?.parse().ok()?,
                mqtt_port: var("PORTUNUS_TEST_MQTT_PORT")?.parse().ok()?,
                ctl: var("PORTUNUS_TEST_BROKERS_CTL")?,
                dir: var("PORTUNUS_TEST_BROKERS_DIR")?,
            })
        })();
        if found.is_none() {
            eprintln!("brokers not running (start them with tests/run.sh or tests/brokers/brokers.sh): skipped");
        }
        found
    }

    /// Runs `brokers.sh <cmd>` (e.g. `restart-rabbitmq`) and waits for it.
    pub fn ctl(&self, cmd: &str) {
        let status = Command::new("bash").arg(&self.ctl).arg(cmd).arg(&self.dir).status().expect("run brokers.sh");
        assert!(status.success(), "brokers.sh {cmd} failed");
    }
}

/// Tests that restart a broker must not run while others use it: each broker test holds this
/// broker's lock for its whole run (an async lock: it is held across awaits).
pub async fn exclusive(broker: &'static tokio::sync::Mutex<()>) -> tokio::sync::MutexGuard<'static, ()> {
    broker.lock().await
}

/// A unique suffix for queue and topic names, so servers of different tests never share them.
pub fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// A running server; killed on drop (its log tail is printed when the test panicked).
pub struct Server {
    child: Child,
    /// Listener name to address, from the ready line.
    pub ready: BTreeMap<String, String>,
    log: Arc<Mutex<VecDeque<String>>>,
    config: PathBuf,
    http: reqwest::Client,
}

impl Server {
    /// Starts the binary with `toml` as its configuration file.
    pub fn spawn(toml: &str) -> Server {
        let config = std::env::temp_dir().join(format!("{}.toml", unique("portunus-brokers")));
        std::fs::write(&config, toml).expect("write config");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_portunus"));
        for (key, _) in std::env::vars() {
            if key.starts_with("PORTUNUS__") {
                cmd.env_remove(key);
            }
        }
        cmd.arg("-c")
            .arg(&config)
            .args(["--http-port", "0", "--ws-port", "0", "--admin-http-port", "0", "--admin-ws-port", "0"])
            .env("PORTUNUS__HTTP__IP", "127.0.0.1")
            .env("PORTUNUS__WEBSOCKETS__WS_IP", "127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn portunus");
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, rx) = mpsc::channel();
        for pipe in [
            child.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child.stderr.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = log.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if let Some(json) = line.strip_prefix("PORTUNUS_READY ") {
                        let _ = tx.send(json.to_owned());
                    }
                    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                    if log.len() == LOG_LINES {
                        log.pop_front();
                    }
                    log.push_back(line);
                }
            });
        }
        let ready = match rx.recv_timeout(READY_TIMEOUT) {
            Ok(json) => serde_json::from_str(&json).expect("ready line is JSON"),
            Err(_) => {
                let _ = child.kill();
                let log = log.lock().unwrap_or_else(|e| e.into_inner());
                panic!("no PORTUNUS_READY line; log:\n{}", log.iter().cloned().collect::<Vec<_>>().join("\n"));
            }
        };
        // No pooled connections: a test may sit idle (restarting a broker) longer than the
        // server's keep-alive, and a reused dead connection would fail the next request.
        let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("HTTP client");
        Server { child, ready, log, config, http }
    }

    fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.ready["admin_http"])
    }

    /// GET on the admin HTTP port: status and body.
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        let r = self.http.get(self.admin_url(path)).send().await.expect("admin GET");
        let status = r.status().as_u16();
        (status, r.text().await.unwrap_or_default())
    }

    /// An Admin API request over HTTP.
    pub async fn admin_api(&self, body: Value) -> Value {
        let r = self.http.post(self.admin_url("/admin")).json(&body).send().await.expect("admin POST");
        r.json().await.expect("admin reply is JSON")
    }

    /// Polls `/readyz` until it answers 200 (panics after `within`).
    pub async fn wait_ready(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let (status, body) = self.admin_get("/readyz").await;
            if status == 200 {
                return;
            }
            assert!(Instant::now() < deadline, "/readyz still {status}: {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One sample from `/metrics`: `series` is the name with its labels, exactly as printed.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let (_, text) = self.admin_get("/metrics").await;
        metric_value(&text, series)
    }

    /// Polls `/metrics` until `series` satisfies `ok` (panics after `within`).
    pub async fn wait_metric(&self, series: &str, within: Duration, ok: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + within;
        loop {
            if let Some(v) = self.metric(series).await.filter(|v| ok(*v)) {
                return v;
            }
            assert!(Instant::now() < deadline, "metric {series} never reached the expected value");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The value of one series in Prometheus text.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
        if std::thread::panicking() {
            let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
            eprintln!("--- server log (last {} lines) ---", log.len());
            for line in log.iter() {
                eprintln!("{line}");
            }
        }
    }
}

/// A Janus request with a random transaction.
pub fn request(janus: &str, extra: Value) -> Value {
    let mut v = serde_json::json!({"janus": janus, "transaction": unique("t")});
    if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
        m.extend(e);
    }
    v
}
