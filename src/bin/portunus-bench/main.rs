//! `portunus-bench`: a load generator for any server speaking the Janus
//! API (Janus itself, Portunus, ...). This file owns the command line and
//! the runtime; each scenario is a subcommand implemented in its own
//! module, so new ones (e.g. `echo`, `fanout` with WebRTC media) plug in as
//! another variant of [`Scenario`].

mod api;
mod broker_client;
mod echo;
mod fanout;
mod http_client;
mod idle;
mod janus;
mod janus_http;
mod media_peer;
mod procstat;
mod report;
mod ws_client;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::broker_client::BrokerTarget;
use crate::janus::{Target, Transport};

#[derive(Parser, Debug)]
#[command(
    name = "portunus-bench",
    version,
    about = "Load generator for Janus-API servers (HTTP, WebSocket, RabbitMQ and MQTT transports)"
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
    /// One VP8 publisher to N receive-only WebRTC subscribers (VideoRoom):
    /// server CPU per forwarded packet, loss and jitter; `--ramp` finds the
    /// largest N before loss.
    Fanout(FanoutArgs),
    /// N EchoTest WebRTC sessions sending VP8 at a fixed rate: server CPU per
    /// relayed (echoed) packet, loss and jitter; `--ramp` adds sessions step by step.
    Echo(EchoArgs),
}

/// Options every scenario shares: where the server is and how to talk to it.
#[derive(Args, Debug)]
struct Connection {
    /// Janus transport to use.
    #[arg(long, value_enum, default_value = "http")]
    transport: Transport,

    /// Server URL, or the broker's for rabbitmq/mqtt [default: http://127.0.0.1:8088/janus,
    /// ws://127.0.0.1:8188/, amqp://guest:guest@127.0.0.1:5672/%2f, tcp://127.0.0.1:1883]
    #[arg(long)]
    url: Option<String>,

    /// RabbitMQ queue / MQTT topic the server takes requests from.
    #[arg(long, default_value = "to-janus")]
    to_janus: String,

    /// RabbitMQ queue / MQTT topic the server sends replies and events to.
    #[arg(long, default_value = "from-janus")]
    from_janus: String,

    /// MQTT QoS of requests and of the reply subscription (the server's default is 1).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=2))]
    mqtt_qos: u8,

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
            broker: self
                .transport
                .is_broker()
                .then(|| BrokerTarget::new(self.to_janus.clone(), self.from_janus.clone(), self.mqtt_qos)),
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

#[derive(Args, Debug)]
struct FanoutArgs {
    /// Janus WebSocket URL (fanout always uses the WebSocket transport).
    #[arg(long, default_value = "ws://127.0.0.1:8188/")]
    url: String,

    /// Receive-only subscribers (ignored with --ramp).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=20_000))]
    subscribers: u32,

    /// Increasing subscriber counts, e.g. 100,200,400: one measured window
    /// each, stopping at the first whose loss reaches --max-loss.
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..=20_000))]
    ramp: Option<Vec<u32>>,

    /// Publisher packets per second (one VP8 frame per packet).
    #[arg(long, default_value_t = 50.0, value_parser = positive_rate)]
    rate: f64,

    /// Seconds between every subscriber receiving and the window.
    #[arg(long, default_value_t = 3.0, value_parser = non_negative_secs)]
    settle: f64,

    /// Subscriber handles per WebSocket (one session each).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    per_socket: u32,

    /// Subscribers set up in parallel.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1000))]
    concurrency: u32,

    /// Room id to create (default: a random one).
    #[arg(long)]
    room: Option<u64>,

    #[command(flatten)]
    media: MediaArgs,
}

#[derive(Args, Debug)]
struct EchoArgs {
    /// Janus WebSocket URL (echo always uses the WebSocket transport).
    #[arg(long, default_value = "ws://127.0.0.1:8188/")]
    url: String,

    /// Echo sessions (ignored with --ramp).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=20_000))]
    sessions: u32,

    /// Increasing session counts, e.g. 50,100,200: one measured window
    /// each, stopping at the first whose loss reaches --max-loss.
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..=20_000))]
    ramp: Option<Vec<u32>>,

    /// Packets per second each session sends (one VP8 frame per packet).
    #[arg(long, default_value_t = 50.0, value_parser = positive_rate)]
    rate: f64,

    /// Seconds between every session receiving its echo and the window.
    #[arg(long, default_value_t = 3.0, value_parser = non_negative_secs)]
    settle: f64,

    /// EchoTest handles per WebSocket (one session each).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    per_socket: u32,

    /// Sessions set up in parallel.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1000))]
    concurrency: u32,

    #[command(flatten)]
    media: MediaArgs,
}

/// Options the media scenarios (`fanout`, `echo`) share word for word;
/// those whose help names the scenario's own peers stay in its struct.
#[derive(Args, Debug)]
struct MediaArgs {
    /// API secret, sent as `apisecret` in every request.
    #[arg(long)]
    apisecret: Option<String>,

    /// Per-request timeout in seconds (includes waiting for async answers).
    #[arg(long, default_value_t = 10.0, value_parser = positive_secs)]
    timeout: f64,

    /// Print the result as one JSON object instead of text.
    #[arg(long)]
    json: bool,

    /// RTP payload bytes per packet.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(16..=1200))]
    payload: u32,

    /// A keyframe every this many packets (0: only when the server sends a PLI).
    #[arg(long, default_value_t = 100)]
    keyframe_every: u64,

    /// Measured window in seconds (per step).
    #[arg(long, default_value_t = 20.0, value_parser = positive_secs)]
    duration: f64,

    /// Server process to read CPU time from (/proc/PID/stat).
    #[arg(long)]
    server_pid: Option<u32>,

    /// Worker threads of the bench's media runtime [default: --threads or the CPUs available].
    #[arg(long)]
    media_threads: Option<usize>,

    /// Loss (percent) at which a ramp stops; the report names the largest N below it.
    #[arg(long, default_value_t = 1.0)]
    max_loss: f64,

    /// Local address for the bench's ICE host candidates (a non-loopback
    /// one for servers that skip loopback, such as Janus).
    #[arg(long, default_value = "127.0.0.1")]
    ice_ip: std::net::IpAddr,
}

/// What a media scenario's own flags say, next to the shared [`MediaArgs`].
struct MediaScenario {
    url: String,
    steps: Vec<usize>,
    rate: f64,
    settle: f64,
    per_socket: u32,
    concurrency: u32,
}

impl MediaArgs {
    /// The options `fanout::run` and `echo::run` take.
    fn options(&self, own: MediaScenario, threads: usize) -> media_peer::MediaOptions {
        media_peer::MediaOptions {
            url: own.url,
            apisecret: self.apisecret.clone(),
            timeout: Duration::from_secs_f64(self.timeout),
            steps: own.steps,
            send: media_peer::SendSpec {
                rate: own.rate,
                payload: self.payload as usize,
                keyframe_every: self.keyframe_every,
            },
            duration: Duration::from_secs_f64(self.duration),
            settle: Duration::from_secs_f64(own.settle),
            server_pid: self.server_pid,
            per_socket: own.per_socket as usize,
            concurrency: own.concurrency as usize,
            media_threads: self.media_threads.unwrap_or(threads),
            max_loss_pct: self.max_loss,
            ice_ip: self.ice_ip,
        }
    }
}

/// The steps of a media scenario: `--ramp` or the single count.
fn ramp_steps(ramp: &Option<Vec<u32>>, single: u32) -> Result<Vec<usize>, String> {
    let steps: Vec<usize> = match ramp {
        Some(list) => list.iter().map(|&n| n as usize).collect(),
        None => vec![single as usize],
    };
    if steps.windows(2).any(|w| w[0] >= w[1]) {
        return Err("--ramp needs strictly increasing counts".into());
    }
    Ok(steps)
}

fn positive_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 10_000.0 => Ok(v),
        _ => Err(format!("expected packets per second between 0 and 10000, got {s:?}")),
    }
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
    let outcome = runtime.block_on(run(cli.scenario, threads));
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

async fn run(scenario: Scenario, threads: usize) -> Result<(), String> {
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
            if a.conn.transport.is_broker() {
                return Err("idle supports the http and ws transports only".into());
            }
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
        Scenario::Fanout(a) => {
            let own = MediaScenario {
                url: a.url,
                steps: ramp_steps(&a.ramp, a.subscribers)?,
                rate: a.rate,
                settle: a.settle,
                per_socket: a.per_socket,
                concurrency: a.concurrency,
            };
            let report = fanout::run(a.media.options(own, threads), a.room).await?;
            report.print(a.media.json);
            if report.steps.iter().all(|s| s.window.tally.received == 0) {
                return Err("no subscriber received anything".into());
            }
        }
        Scenario::Echo(a) => {
            let own = MediaScenario {
                url: a.url,
                steps: ramp_steps(&a.ramp, a.sessions)?,
                rate: a.rate,
                settle: a.settle,
                per_socket: a.per_socket,
                concurrency: a.concurrency,
            };
            let report = echo::run(a.media.options(own, threads)).await?;
            report.print(a.media.json);
            if report.steps.iter().all(|s| s.window.tally.received == 0) {
                return Err("no session received its echo".into());
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
            _ => panic!("wrong scenario"),
        }
        assert!(Cli::try_parse_from(["portunus-bench", "idle", "--sessions", "10"]).is_err());
        assert!(Cli::try_parse_from(["portunus-bench", "api", "--duration", "-1"]).is_err());
    }

    #[test]
    fn parses_fanout() {
        let cli =
            Cli::try_parse_from(["portunus-bench", "fanout", "--ramp", "100,200,400", "--server-pid", "7"]).unwrap();
        match cli.scenario {
            Scenario::Fanout(a) => {
                assert_eq!(a.ramp, Some(vec![100, 200, 400]));
                assert_eq!(a.rate, 50.0);
                assert_eq!(a.media.server_pid, Some(7));
            }
            _ => panic!("wrong scenario"),
        }
        assert!(Cli::try_parse_from(["portunus-bench", "fanout", "--rate", "0"]).is_err());
        assert!(Cli::try_parse_from(["portunus-bench", "fanout", "--ramp", "200,100"]).is_ok());
        assert!(ramp_steps(&Some(vec![200, 100]), 1).is_err());
        assert_eq!(ramp_steps(&None, 7).unwrap(), vec![7]);
    }

    #[test]
    fn parses_echo_and_broker_transports() {
        let cli =
            Cli::try_parse_from(["portunus-bench", "echo", "--ramp", "50,100,200", "--ice-ip", "192.0.2.2"]).unwrap();
        match cli.scenario {
            Scenario::Echo(a) => {
                assert_eq!(a.ramp, Some(vec![50, 100, 200]));
                assert_eq!((a.rate, a.sessions), (50.0, 50));
            }
            _ => panic!("wrong scenario"),
        }
        let cli = Cli::try_parse_from(["portunus-bench", "api", "--transport", "rabbitmq"]).unwrap();
        match cli.scenario {
            Scenario::Api(a) => {
                let t = a.conn.target();
                assert_eq!(t.url, "amqp://guest:guest@127.0.0.1:5672/%2f");
                let b = t.broker.expect("broker options");
                assert_eq!((b.to_janus.as_str(), b.from_janus.as_str(), b.mqtt_qos), ("to-janus", "from-janus", 1));
            }
            _ => panic!("wrong scenario"),
        }
        let cli = Cli::try_parse_from(["portunus-bench", "api", "--transport", "mqtt", "--from-janus", "out"]).unwrap();
        match cli.scenario {
            Scenario::Api(a) => assert_eq!(a.conn.target().broker.map(|b| b.from_janus), Some("out".into())),
            _ => panic!("wrong scenario"),
        }
        assert!(Cli::try_parse_from(["portunus-bench", "api", "--transport", "mqtt", "--mqtt-qos", "3"]).is_err());
    }
}
