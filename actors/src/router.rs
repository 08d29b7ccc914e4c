//! The `TransactionRouter` actor: asynchronous plugin requests in flight, keyed by (session,
//! transaction).
//!
//! Direct replies travel back on the request's own future, so the router does not carry them. It
//! keeps the table of `message` requests a plugin acknowledged (`ack`) but has not answered with
//! an event yet, so that a stuck plugin is seen (a warning and a counter after [`STUCK_AFTER`])
//! and the Admin API can report how many requests are in flight. Handles report both ends.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::api::{SessionId, Transaction};

/// A plugin call taking longer than this is reported as stuck.
pub const STUCK_AFTER: Duration = Duration::from_secs(10);
/// Most requests tracked at once; beyond it new ones are not tracked (and counted).
const CAPACITY: usize = 65_536;

/// A plugin acknowledged a request and will answer with an event.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Begin {
    /// Session.
    pub session: SessionId,
    /// Transaction.
    pub transaction: Transaction,
}

/// The plugin pushed an event for that transaction.
#[derive(Message)]
#[rtype(result = "()")]
pub struct End {
    /// Session.
    pub session: SessionId,
    /// Transaction.
    pub transaction: Transaction,
}

/// How many requests are in flight, and how many were ever reported stuck.
#[derive(Message)]
#[rtype(result = "(usize, u64)")]
pub struct InFlight;

struct Pending {
    session: SessionId,
    transaction: Transaction,
    since: Instant,
    reported: bool,
}

/// The router actor.
#[derive(Default)]
pub struct TransactionRouter {
    pending: HashMap<(SessionId, Transaction), Pending>,
    stuck: u64,
    untracked: u64,
}

impl Actor for TransactionRouter {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(16_384);
        ctx.run_interval(Duration::from_secs(1), |this, _| {
            let now = Instant::now();
            for p in this.pending.values_mut() {
                if !p.reported && now.duration_since(p.since) >= STUCK_AFTER {
                    p.reported = true;
                    this.stuck += 1;
                    tracing::warn!(session_id = p.session.0, transaction = %p.transaction, "plugin has not answered for 10 s");
                }
            }
        });
    }
}

impl Handler<Begin> for TransactionRouter {
    type Result = ();
    fn handle(&mut self, msg: Begin, _: &mut Context<Self>) {
        if self.pending.len() >= CAPACITY {
            self.untracked += 1;
            return;
        }
        self.pending.insert(
            (msg.session, msg.transaction.clone()),
            Pending { session: msg.session, transaction: msg.transaction, since: Instant::now(), reported: false },
        );
    }
}

impl Handler<End> for TransactionRouter {
    type Result = ();
    fn handle(&mut self, msg: End, _: &mut Context<Self>) {
        self.pending.remove(&(msg.session, msg.transaction));
    }
}

impl Handler<InFlight> for TransactionRouter {
    type Result = MessageResult<InFlight>;
    fn handle(&mut self, _: InFlight, _: &mut Context<Self>) -> Self::Result {
        MessageResult((self.pending.len(), self.stuck))
    }
}
