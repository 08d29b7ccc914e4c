//! The `idle` scenario: what idle sessions cost a server. Samples the
//! server's RSS and fd count, creates N sessions each with one attached
//! EchoTest handle, keeps them alive while memory settles, samples again,
//! destroys everything and samples a last time.
//!
//! Sessions are spread over a few client connections so the bench's own
//! sockets do not dominate the server's fd count: over HTTP, `concurrency`
//! keep-alive connections carry requests and keepalives (no long polls,
//! which would cost the server one connection per session); over
//! WebSocket, one socket carries `per_socket` sessions.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::janus::{BenchError, Conn, Target, Transport, ECHOTEST};
use crate::procstat::{check_pid, MemSample, Proc};
use crate::report::{Errors, IdleReport};

/// A worker gives up creating more sessions after this many errors in a
/// row: the server is clearly not coping, and continuing would only pile
/// up timeouts.
const MAX_CONSECUTIVE_ERRORS: u32 = 10;

pub struct IdleOptions {
    pub target: Target,
    pub sessions: usize,
    pub hold: Duration,
    pub server_pid: u32,
    /// Sessions per WebSocket.
    pub per_socket: usize,
    /// HTTP connections (each works through its share sequentially).
    pub concurrency: usize,
    /// Interval between keepalives for one session.
    pub keepalive: Duration,
}

struct WorkerResult {
    held: u64,
    keepalives: u64,
    errors: Errors,
}

pub async fn run(opts: IdleOptions) -> Result<IdleReport, String> {
    let pid = opts.server_pid;
    check_pid(pid).map_err(|e| format!("cannot read /proc/{pid}: {e}"))?;
    let sample = || MemSample::take(Proc::Pid(pid)).map_err(|e| format!("reading /proc/{pid}: {e}"));
    let baseline = sample()?;

    let workers = match opts.target.transport {
        Transport::Ws => opts.sessions.div_ceil(opts.per_socket.max(1)).max(1),
        // HTTP (main.rs turns the broker transports away before this).
        _ => opts.concurrency.clamp(1, opts.sessions.max(1)),
    };
    eprintln!("idle: {} sessions over {} {} connection(s)", opts.sessions, workers, opts.target.transport.name());

    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<()>();
    let (release_tx, release_rx) = watch::channel(false);
    let setup_start = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|i| {
            // Spread the remainder so shares differ by at most one.
            let share = opts.sessions / workers + usize::from(i < opts.sessions % workers);
            tokio::spawn(worker(opts.target.clone(), share, opts.keepalive, ready_tx.clone(), release_rx.clone()))
        })
        .collect();
    drop(ready_tx);

    // Every worker reports ready once its sessions exist (or it gave up);
    // a worker that died closes its sender, which also ends this loop.
    let mut ready = 0;
    while ready < workers && ready_rx.recv().await.is_some() {
        ready += 1;
    }
    let setup_s = setup_start.elapsed().as_secs_f64();
    eprintln!("idle: setup took {setup_s:.2} s, holding {:.1} s", opts.hold.as_secs_f64());
    tokio::time::sleep(opts.hold).await;
    let loaded = sample()?;

    let _ = release_tx.send(true);
    let mut held = 0;
    let mut keepalives = 0;
    let mut errors = Errors::default();
    // Teardown is bounded by the per-request timeout and the worker's
    // error cut-off; cap the wait anyway.
    let deadline = Instant::now() + opts.target.timeout * (MAX_CONSECUTIVE_ERRORS + 2);
    for task in tasks {
        let abort = task.abort_handle();
        match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(r)) => {
                held += r.held;
                keepalives += r.keepalives;
                errors.merge(r.errors);
            }
            Ok(Err(e)) => errors.add("worker", &BenchError::Protocol(e.to_string())),
            Err(_) => {
                abort.abort();
                errors.add("teardown", &BenchError::Timeout);
            }
        }
    }
    // Give the server the same time to release memory as it had to settle.
    tokio::time::sleep(opts.hold).await;
    let after_cleanup = sample()?;

    Ok(IdleReport {
        transport: opts.target.transport.name(),
        url: opts.target.url.clone(),
        sessions_requested: opts.sessions,
        held,
        client_connections: workers,
        setup_s,
        hold_s: opts.hold.as_secs_f64(),
        keepalives,
        server_pid: pid,
        baseline,
        loaded,
        after_cleanup,
        errors,
    })
}

/// Keeps sessions alive in creation order: the front of the queue is
/// always the session that was touched longest ago.
struct Held {
    queue: VecDeque<(u64, Instant)>,
    interval: Duration,
    sent: u64,
}

impl Held {
    fn next_due(&self) -> Option<Instant> {
        self.queue.front().map(|(_, t)| *t + self.interval)
    }

    /// Sends keepalives for every session whose interval has elapsed.
    async fn refresh_due(&mut self, conn: &mut Conn, errors: &mut Errors) {
        while self.next_due().is_some_and(|due| due <= Instant::now()) {
            let Some((session, _)) = self.queue.pop_front() else {
                break;
            };
            self.sent += 1;
            match conn.keepalive(session).await {
                Ok(()) => self.queue.push_back((session, Instant::now())),
                // Keep it anyway: teardown will try to destroy it.
                Err(e) => {
                    errors.add("keepalive", &e);
                    self.queue.push_back((session, Instant::now()));
                }
            }
        }
    }
}

async fn worker(
    target: Target,
    share: usize,
    keepalive: Duration,
    ready: mpsc::UnboundedSender<()>,
    mut release: watch::Receiver<bool>,
) -> WorkerResult {
    let mut errors = Errors::default();
    let mut held = Held { queue: VecDeque::with_capacity(share), interval: keepalive, sent: 0 };
    let mut conn = match Conn::open(&target).await {
        Ok(c) => c,
        Err(e) => {
            errors.add("connect", &e);
            let _ = ready.send(());
            return WorkerResult { held: 0, keepalives: 0, errors };
        }
    };

    let mut consecutive = 0;
    for _ in 0..share {
        if consecutive >= MAX_CONSECUTIVE_ERRORS {
            errors.add("setup", &BenchError::Protocol("gave up after repeated errors".into()));
            break;
        }
        held.refresh_due(&mut conn, &mut errors).await;
        let session = match conn.create_session().await {
            Ok(s) => s,
            Err(e) => {
                errors.add("create", &e);
                consecutive += 1;
                continue;
            }
        };
        match conn.attach(session, ECHOTEST).await {
            Ok(_handle) => {
                consecutive = 0;
                held.queue.push_back((session, Instant::now()));
            }
            Err(e) => {
                errors.add("attach", &e);
                consecutive += 1;
                if let Err(e) = conn.destroy(session).await {
                    errors.add("destroy", &e);
                }
            }
        }
    }
    let count = held.queue.len() as u64;
    let _ = ready.send(());

    // Hold: keep sessions alive until released.
    while !*release.borrow_and_update() {
        let wake = held.next_due().unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            changed = release.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            _ = tokio::time::sleep_until(wake) => held.refresh_due(&mut conn, &mut errors).await,
        }
    }

    // Teardown: destroying a session also detaches its handle.
    let mut consecutive = 0;
    while let Some((session, _)) = held.queue.pop_front() {
        if consecutive >= MAX_CONSECUTIVE_ERRORS {
            errors.add("teardown", &BenchError::Protocol("gave up after repeated errors".into()));
            break;
        }
        match conn.destroy(session).await {
            Ok(()) => consecutive = 0,
            Err(e) => {
                errors.add("destroy", &e);
                consecutive += 1;
            }
        }
    }
    conn.close().await;
    WorkerResult { held: count, keepalives: held.sent, errors }
}
