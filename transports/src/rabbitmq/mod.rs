//! `janus.transport.rabbitmq`: the Janus API (and optionally the Admin API) over RabbitMQ
//! (reference 1.9), with `lapin`.
//!
//! Requests arrive on the incoming queue (`to_janus`, or `queue_name` bound to the exchange);
//! replies and notifications are published with routing key `from_janus` on `janus_exchange` (the
//! default exchange when unset). A reply copies the request's AMQP `correlation_id`;
//! notifications carry none; every message has `reply_to: "Janus"` and `content_type:
//! application/json`. Janus compat (1.9): ids travel in the JSON body, and every session created
//! over RabbitMQ belongs to the one broker link, so its events are published on `from_janus`.
//!
//! The link is a supervised actor ([`RabbitTransport`]): one attempt connects, declares the
//! queues, consumes and publishes until the connection fails; then the actor stops, the
//! supervisor restarts it, and the next attempt waits an exponential backoff. The request lanes
//! and the outgoing queue live outside the attempt, so sessions survive a broker restart and
//! replies produced while the broker is away are published after the reconnect.

mod link;
mod publish;
pub mod settings;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use lapin::types::ShortString;
use portunus_actors::api::ConnectionId;
use portunus_actors::gateway::TransportDescriptor;
use portunus_actors::transport::Origin;
use portunus_actors::Core;
use tokio::sync::mpsc;

pub use settings::{RabbitAdminSettings, RabbitSettings};

use crate::lanes::{backoff_ms, Lanes, Outbox, Reply};
use crate::metrics::LinkState;

/// Package name of this transport.
pub const PACKAGE: &str = "janus.transport.rabbitmq";

/// `server_info` entry.
pub const DESCRIPTOR: TransportDescriptor = TransportDescriptor {
    package: PACKAGE,
    name: "JANUS RabbitMQ transport plugin",
    author: "Meetecho s.r.l.",
    description: "This transport plugin adds RabbitMQ support to the Janus API via lapin.",
    version_string: "0.0.1",
    version: 1,
};

/// What a reply needs from its request: the AMQP correlation id.
pub(crate) type Meta = Option<ShortString>;

/// A running RabbitMQ transport.
pub struct RabbitHandle {
    /// The supervised link actor.
    pub addr: Addr<RabbitTransport>,
    /// Connection state, for `/metrics` and `/readyz`.
    pub link: Arc<LinkState>,
}

/// Starts the transport (inside the actix system). It connects in the background and keeps
/// reconnecting; nothing here blocks on the broker.
pub fn start(core: &Core, settings: RabbitSettings) -> RabbitHandle {
    let link = LinkState::new(PACKAGE);
    let (outbox, rx) = Outbox::<Meta>::new(settings.outgoing_queue, link.clone());
    let origin = Origin::push(PACKAGE, ConnectionId::next(), outbox.clone());
    let lanes = Arc::new(Lanes::start(core.clone(), origin, outbox.clone(), settings.lanes, settings.lane_queue));
    let settings = Arc::new(settings);
    let state = link.clone();
    let addr = actix::Supervisor::start(move |_| RabbitTransport {
        settings,
        lanes,
        outbox,
        rx: Some(rx),
        pending: VecDeque::new(),
        attempt: 0,
        link: state,
    });
    RabbitHandle { addr, link }
}

/// The supervised broker link.
pub struct RabbitTransport {
    settings: Arc<RabbitSettings>,
    lanes: Arc<Lanes<Meta>>,
    outbox: Arc<Outbox<Meta>>,
    /// The outgoing queue; lent to the running attempt and handed back when it ends.
    rx: Option<mpsc::Receiver<Reply<Meta>>>,
    /// Messages not written when the link broke, oldest first; published first after
    /// reconnecting.
    pending: VecDeque<Reply<Meta>>,
    /// Failed attempts in a row (0 = connect at once).
    attempt: u32,
    link: Arc<LinkState>,
}

impl Actor for RabbitTransport {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let delay = backoff_ms(self.attempt, self.settings.reconnect_backoff, self.settings.reconnect_backoff_max);
        ctx.run_later(Duration::from_millis(delay), |this, ctx| this.connect(ctx));
    }
}

impl Supervised for RabbitTransport {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.link.set_connected(false);
    }
}

impl RabbitTransport {
    fn connect(&mut self, ctx: &mut Context<Self>) {
        let Some(rx) = self.rx.take() else {
            // The queue is lent out: an attempt is already running.
            return;
        };
        let attempt = link::Attempt {
            settings: self.settings.clone(),
            lanes: self.lanes.clone(),
            link: self.link.clone(),
            rx,
            pending: std::mem::take(&mut self.pending),
        };
        let span = tracing::info_span!("conn", transport = "rabbitmq", host = %self.settings.host);
        let _e = span.enter();
        ctx.spawn(attempt.run().into_actor(self).map(|end, this, ctx| {
            this.rx = Some(end.rx);
            this.pending = end.pending;
            this.attempt = if end.was_connected { 1 } else { this.attempt.saturating_add(1) };
            let dropped = this.outbox.dropped();
            tracing::warn!(error = %end.error, attempt = this.attempt, dropped, "RabbitMQ link down; reconnecting");
            // The supervisor restarts the actor; `started` waits the backoff.
            ctx.stop();
        }));
    }
}
