//! Observability on the admin HTTP port: Prometheus text at `/metrics`, `/healthz` (the process
//! answers) and `/readyz` (listeners bound, every configured broker link connected).
//!
//! [`Observability`] is the registry the binary builds at start-up: broker links and event
//! handlers register their live state (atomics) once, and a scrape reads it together with the
//! core's counters. Nothing here sits on a request path except `/metrics` itself.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::{web, HttpResponse};
use portunus_actors::Core;

/// Live state of one broker link (RabbitMQ, MQTT; transport or event handler).
#[derive(Debug)]
pub struct LinkState {
    /// What it is, e.g. `janus.transport.rabbitmq`.
    pub name: &'static str,
    connected: AtomicBool,
    reconnects: AtomicU64,
    dropped: AtomicU64,
}

impl LinkState {
    /// A disconnected link.
    pub fn new(name: &'static str) -> Arc<Self> {
        Arc::new(LinkState {
            name,
            connected: AtomicBool::new(false),
            reconnects: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        })
    }

    /// Marks the link up or down; a transition to up after the first counts as a reconnect.
    pub fn set_connected(&self, up: bool) {
        let was = self.connected.swap(up, Ordering::Relaxed);
        if up && !was {
            self.reconnects.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether the link is up.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Successful connections so far (the first included).
    pub fn connections(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    /// Counts messages the link could not keep.
    pub fn add_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// Messages the link could not keep.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Live state of one event handler.
#[derive(Debug)]
pub struct HandlerStats {
    /// The handler's package.
    pub package: &'static str,
    /// Events accepted into its queue.
    pub queued: AtomicU64,
    /// Events dropped because its queue was full.
    pub dropped: AtomicU64,
    /// Events delivered to the receiver.
    pub sent: AtomicU64,
    /// Deliveries that failed for good (after retries).
    pub failed: AtomicU64,
    /// Events waiting now.
    pub depth: AtomicU64,
}

impl HandlerStats {
    /// Zeroed stats.
    pub fn new(package: &'static str) -> Arc<Self> {
        Arc::new(HandlerStats {
            package,
            queued: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            depth: AtomicU64::new(0),
        })
    }
}

/// One per-handler series: name, type, help, getter.
type Series = (&'static str, &'static str, &'static str, fn(&HandlerStats) -> u64);

/// The registry scraped by `/metrics` and `/readyz`.
pub struct Observability {
    core: Core,
    links: Mutex<Vec<Arc<LinkState>>>,
    handlers: Mutex<Vec<Arc<HandlerStats>>>,
    listeners_up: AtomicBool,
}

impl Observability {
    /// An empty registry for `core`.
    pub fn new(core: Core) -> Arc<Self> {
        Arc::new(Observability {
            core,
            links: Mutex::default(),
            handlers: Mutex::default(),
            listeners_up: AtomicBool::new(false),
        })
    }

    /// Registers a broker link (at start-up).
    pub fn add_link(&self, link: Arc<LinkState>) {
        // A std mutex: registration happens at start-up and scrapes are rare; never held across
        // an await.
        self.links.lock().unwrap_or_else(|e| e.into_inner()).push(link);
    }

    /// Registers an event handler (at start-up).
    pub fn add_handler(&self, stats: Arc<HandlerStats>) {
        self.handlers.lock().unwrap_or_else(|e| e.into_inner()).push(stats);
    }

    /// Every listener is bound.
    pub fn set_listeners_up(&self) {
        self.listeners_up.store(true, Ordering::Relaxed);
    }

    fn links(&self) -> Vec<Arc<LinkState>> {
        self.links.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn handlers(&self) -> Vec<Arc<HandlerStats>> {
        self.handlers.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// What `/readyz` reports: `Ok` when ready, otherwise the reasons.
    pub fn readiness(&self) -> Result<(), Vec<String>> {
        let mut why = Vec::new();
        if !self.listeners_up.load(Ordering::Relaxed) {
            why.push("listeners not bound yet".to_owned());
        }
        for l in self.links() {
            if !l.connected() {
                why.push(format!("{} not connected", l.name));
            }
        }
        if why.is_empty() {
            Ok(())
        } else {
            Err(why)
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        let c = &self.core.state().counters;
        let gauge = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        gauge(&mut out, "portunus_sessions", "Live Janus sessions.", c.sessions.load(Ordering::Relaxed));
        gauge(&mut out, "portunus_handles", "Live plugin handles.", c.handles.load(Ordering::Relaxed));
        gauge(
            &mut out,
            "portunus_media_ports",
            "Live media ports: one per plugin handle (more once the handles are gone means a leak).",
            portunus_actors::media::live_ports(),
        );
        counter(
            &mut out,
            "portunus_session_events_dropped_total",
            "Session events dropped because a connection or long-poll queue was full.",
            c.events_dropped.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "portunus_plugin_panics_total",
            "Plugin calls that panicked.",
            c.plugin_panics.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "portunus_event_bus_dropped_total",
            "Events lost because the event bus was full.",
            self.core.state().events.dropped(),
        );
        if let Some(media) = &self.core.state().media {
            let m = media.counters();
            let (pcs, _) = media.load();
            gauge(&mut out, "portunus_peerconnections", "Open PeerConnections.", pcs);
            for (name, help, v) in [
                ("portunus_rtp_in_packets_total", "RTP packets received from peers.", &m.rtp_in_packets),
                ("portunus_rtp_in_bytes_total", "RTP payload bytes received from peers.", &m.rtp_in_bytes),
                ("portunus_rtp_out_packets_total", "RTP packets sent to peers.", &m.rtp_out_packets),
                ("portunus_rtp_out_bytes_total", "RTP payload bytes sent to peers.", &m.rtp_out_bytes),
                (
                    "portunus_rtp_out_dropped_total",
                    "RTP packets dropped for a receiver whose queue was full.",
                    &m.rtp_out_dropped,
                ),
                ("portunus_keyframe_requests_in_total", "PLI/FIR received from peers.", &m.keyframe_requests_in),
                ("portunus_keyframe_requests_out_total", "PLI sent to peers.", &m.keyframe_requests_out),
                ("portunus_remb_out_total", "REMB messages sent to peers.", &m.remb_out),
                ("portunus_nacks_in_total", "Packets peers asked us to retransmit (NACKed).", &m.nacks_in),
                ("portunus_nacks_out_total", "Packets we asked peers to retransmit (NACKed).", &m.nacks_out),
                ("portunus_retransmissions_out_total", "Packets retransmitted to peers.", &m.retransmissions_out),
            ] {
                counter(&mut out, name, help, v.load(Ordering::Relaxed));
            }
        }
        // Plugin gauges, one family per name, labelled by plugin.
        let mut gauges = self.core.plugin_gauges();
        gauges.sort_by_key(|(_, name, _)| *name);
        let mut last = "";
        for (plugin, name, v) in gauges {
            if name != last {
                let _ =
                    writeln!(out, "# HELP portunus_plugin_{name} Plugin {name}.\n# TYPE portunus_plugin_{name} gauge");
                last = name;
            }
            let _ = writeln!(out, "portunus_plugin_{name}{{plugin=\"{plugin}\"}} {v}");
        }
        portunus_actors::metrics::render(&mut out);
        out.push_str(
            "# HELP portunus_transport_connections Open transport connections (HTTP, Unix socket peers, WebSockets).\n",
        );
        out.push_str("# TYPE portunus_transport_connections gauge\n");
        for (transport, open) in [
            (crate::http::PACKAGE, &crate::http::CONNECTIONS),
            (crate::unix::PACKAGE, &crate::unix::CONNECTIONS),
            (crate::websocket::PACKAGE, &crate::websocket::CONNECTIONS),
        ] {
            let _ = writeln!(
                out,
                "portunus_transport_connections{{transport=\"{transport}\"}} {}",
                open.load(Ordering::Relaxed)
            );
        }

        let links = self.links();
        if !links.is_empty() {
            out.push_str("# HELP portunus_broker_connected Whether a broker link is connected (1) or not (0).\n");
            out.push_str("# TYPE portunus_broker_connected gauge\n");
            for l in &links {
                let _ = writeln!(out, "portunus_broker_connected{{link=\"{}\"}} {}", l.name, u8::from(l.connected()));
            }
            out.push_str(
                "# HELP portunus_broker_connections_total Successful broker connections (reconnects included).\n",
            );
            out.push_str("# TYPE portunus_broker_connections_total counter\n");
            for l in &links {
                let _ = writeln!(out, "portunus_broker_connections_total{{link=\"{}\"}} {}", l.name, l.connections());
            }
            out.push_str(
                "# HELP portunus_broker_dropped_total Messages a broker link dropped because its queue was full.\n",
            );
            out.push_str("# TYPE portunus_broker_dropped_total counter\n");
            for l in &links {
                let _ = writeln!(
                    out,
                    "portunus_broker_dropped_total{{link=\"{}\"}} {}",
                    l.name,
                    l.dropped.load(Ordering::Relaxed)
                );
            }
        }

        let handlers = self.handlers();
        if !handlers.is_empty() {
            let series: [Series; 5] = [
                ("portunus_eventhandler_queue_depth", "gauge", "Events waiting in a handler's queue.", |h| {
                    h.depth.load(Ordering::Relaxed)
                }),
                ("portunus_eventhandler_queued_total", "counter", "Events accepted by a handler.", |h| {
                    h.queued.load(Ordering::Relaxed)
                }),
                ("portunus_eventhandler_dropped_total", "counter", "Events a handler dropped (queue full).", |h| {
                    h.dropped.load(Ordering::Relaxed)
                }),
                ("portunus_eventhandler_sent_total", "counter", "Events a handler delivered.", |h| {
                    h.sent.load(Ordering::Relaxed)
                }),
                ("portunus_eventhandler_failed_total", "counter", "Events lost after the last retry.", |h| {
                    h.failed.load(Ordering::Relaxed)
                }),
            ];
            for (name, kind, help, get) in series {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                for h in &handlers {
                    let _ = writeln!(out, "{name}{{handler=\"{}\"}} {}", h.package, get(h));
                }
            }
        }
        out
    }
}

/// Adds `/metrics`, `/healthz` and `/readyz` to an app (the admin HTTP server).
pub fn configure(obs: Arc<Observability>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::from(obs))
            .route("/metrics", web::get().to(metrics))
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz));
    }
}

async fn metrics(obs: web::Data<Observability>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(obs.render())
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

async fn readyz(obs: web::Data<Observability>) -> HttpResponse {
    match obs.readiness() {
        Ok(()) => HttpResponse::Ok().content_type("text/plain").body("ready\n"),
        Err(why) => HttpResponse::ServiceUnavailable().content_type("text/plain").body(why.join("\n") + "\n"),
    }
}
