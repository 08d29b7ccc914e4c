//! `portunus-bench`: a load generator for any server speaking the Janus
//! API (Janus itself, Portunus, ...). This file owns the command line and
//! the runtime; each scenario is a subcommand implemented in its own
//! module, so new ones (e.g. `echo`, `fanout` with WebRTC media) plug in as
//! another variant of [`Scenario`].

mod api;
mod http_client;
mod idle;
mod janus;
mod janus_http;
mod procstat;
mod report;
mod ws_client;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::janus::{Target, Transport};

#[derive(Parser, Debug)]
#[command(
    name = "portunus-bench",
    version,
    about = "Load generator for Janus-API servers (HTTP and WebSocket transports)"
)]
struct Cli {
    /// Tokio worker threads (default: CPUs this process may run on, so
    /// `taskset -c 1` gives one).
    #[arg(long, global = true)]
    threads: Option<usize>,

    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// K clients looping create -> attach(echotest) -> message -> detach -> destroy.
    Api(ApiArgs),
    /// Memory and fds held by N idle sessions, each with one echotest handle.
    Idle(IdleArgs),
}

/// Options every scenario shares: where the server is and how to talk to it.
#[derive(Args, Debug)]
struct Connection {
    /// Janus transport to use.
    #[arg(long, value_enum, default_value = "http")]
    transport: Transport,

    /// Server URL [default: http://127.0.0.1:8088/janus or ws://127.0.0.1:8188/]
    #[arg(long)]
    url: Option<String>,

    /// API secret, sent as `apisecret` in every request.
    #[arg(long)]
    apisecret: Option<String>,

    /// Per-request timeout in seconds (includes waiting for async answers).
    #[arg(long, default_value_t = 10.0, value_parser = positive_secs)]
    timeout: f64,

    /// Print the result as one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

impl Connection {
    fn target(&self) -> Target {
        Target {
            transport: self.transport,
            url: self.url.clone().unwrap_or_else(|| self.transport.default_url().to_string()),
            apisecret: self.apisecret.clone(),
            timeout: Duration::from_secs_f64(self.timeout),
        }
    }
}

#[derive(Args, Debug)]
struct ApiArgs {
    #[command(flatten)]
    conn: Connection,

    /// Concurrent clients (each with its own connection).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    clients: u32,

    /// Measured window in seconds.
    #[arg(long, default_value_t = 15.0, value_parser = positive_secs)]
    duration: f64,

    /// Seconds of load before the measured window (excluded from figures).
    #[arg(long, default_value_t = 2.0, value_parser = non_negative_secs)]
    warmup: f64,

    /// Server process to read CPU time from (/proc/PID/stat).
    #[arg(long)]
    server_pid: Option<u32>,
}

#[derive(Args, Debug)]
struct IdleArgs {
    #[command(flatten)]
    conn: Connection,

    /// Sessions to create, each with one attached echotest handle.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    sessions: u32,

    /// Seconds to wait with all sessions up before sampling (and again
    /// after cleanup), so memory settles.
    #[arg(long, default_value_t = 5.0, value_parser = non_negative_secs)]
    hold: f64,

    /// Server process to read RSS and fds from (/proc/PID/status, /proc/PID/fd).
    #[arg(long)]
    server_pid: u32,

    /// Sessions carried by one WebSocket.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    per_socket: u32,

    /// HTTP keep-alive connections creating and keeping sessions in parallel.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1000))]
    concurrency: u32,

    /// Seconds between keepalives for one session (Janus times sessions out after 60 s).
    #[arg(long, default_value_t = 20.0, value_parser = positive_secs)]
    keepalive: f64,
}

fn non_negative_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=86_400.0).contains(&v) => Ok(v),
        _ => Err(format!("expected seconds between 0 and 86400, got {s:?}")),
    }
}

fn positive_secs(s: &str) -> Result<f64, String> {
    match non_negative_secs(s)? {
        v if v > 0.0 => Ok(v),
        _ => Err("expected a positive number of seconds".into()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let threads =
        cli.threads.or_else(|| std::thread::available_parallelism().ok().map(usize::from)).unwrap_or(1).max(1);
    // With one core (the usual `taskset -c 1` setup) a current-thread
    // runtime avoids cross-thread wakeups, keeping the bench's own CPU per
    // request low; otherwise spread clients over worker threads.
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("portunus-bench: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(cli.scenario));
    // Client tasks are all joined or aborted by now; do not wait on
    // anything still parked (e.g. a socket's close handshake).
    runtime.shutdown_timeout(Duration::from_secs(1));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portunus-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(scenario: Scenario) -> Result<(), String> {
    match scenario {
        Scenario::Api(a) => {
            let report = api::run(api::ApiOptions {
                target: a.conn.target(),
                clients: a.clients as usize,
                warmup: Duration::from_secs_f64(a.warmup),
                duration: Duration::from_secs_f64(a.duration),
                server_pid: a.server_pid,
            })
            .await?;
            report.print(a.conn.json);
            // Figures without a single completed cycle are meaningless; say
            // so through the exit status for scripts.
            if report.cycles == 0 {
                return Err("no cycle completed in the measured window".into());
            }
        }
        Scenario::Idle(a) => {
            let report = idle::run(idle::IdleOptions {
                target: a.conn.target(),
                sessions: a.sessions as usize,
                hold: Duration::from_secs_f64(a.hold),
                server_pid: a.server_pid,
                per_socket: a.per_socket as usize,
                concurrency: a.concurrency as usize,
                keepalive: Duration::from_secs_f64(a.keepalive),
            })
            .await?;
            report.print(a.conn.json);
            if report.held == 0 {
                return Err("no session could be created".into());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_api_and_idle() {
        let cli = Cli::try_parse_from([
            "portunus-bench",
            "api",
            "--transport",
            "ws",
            "--clients",
            "8",
            "--duration",
            "15",
            "--json",
        ])
        .unwrap();
        match cli.scenario {
            Scenario::Api(a) => {
                assert_eq!(a.clients, 8);
                assert_eq!(a.conn.target().url, "ws://127.0.0.1:8188/");
                assert!(a.conn.json);
            }
            Scenario::Idle(_) => panic!("wrong scenario"),
        }
        assert!(Cli::try_parse_from(["portunus-bench", "idle", "--sessions", "10"]).is_err());
        assert!(Cli::try_parse_from(["portunus-bench", "api", "--duration", "-1"]).is_err());
    }
}
