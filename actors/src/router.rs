//! The `TransactionRouter` actor: asynchronous plugin requests in flight, keyed by (session,
//! transaction).
//!
//! Direct replies travel back on the request's own future, so the router does not carry them. It
//! keeps the table of `message` requests a plugin acknowledged (`ack`) but has not answered with
//! an event yet, so that a stuck plugin is seen (a warning and a counter after [`STUCK_AFTER`])
//! and the Admin API can report how many requests are in flight. Handles report both ends; a
//! session that ends takes its entries with it, and an entry never answered is dropped after
//! [`FORGET_AFTER`], so a plugin that never answers cannot fill the table.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::api::{SessionId, Transaction};

/// A plugin call taking longer than this is reported as stuck.
pub const STUCK_AFTER: Duration = Duration::from_secs(10);
/// An unanswered request is forgotten after this (it was reported stuck long before).
pub const FORGET_AFTER: Duration = Duration::from_secs(120);
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

/// A session ended: its requests will never be answered.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Forget {
    /// Session.
    pub session: SessionId,
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
        ctx.run_interval(Duration::from_secs(1), |this, _| this.sweep(Instant::now()));
    }
}

impl TransactionRouter {
    /// Reports requests stuck for [`STUCK_AFTER`] and forgets those older than [`FORGET_AFTER`].
    fn sweep(&mut self, now: Instant) {
        let stuck = &mut self.stuck;
        self.pending.retain(|_, p| {
            let age = now.saturating_duration_since(p.since);
            if !p.reported && age >= STUCK_AFTER {
                p.reported = true;
                *stuck += 1;
                tracing::warn!(session_id = p.session.0, transaction = %p.transaction, "plugin has not answered for 10 s");
            }
            age < FORGET_AFTER
        });
    }
}

impl Handler<Forget> for TransactionRouter {
    type Result = ();
    fn handle(&mut self, msg: Forget, _: &mut Context<Self>) {
        if !self.pending.is_empty() {
            self.pending.retain(|_, p| p.session != msg.session);
        }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn begin(r: &mut TransactionRouter, session: u64, t: &str, since: Instant) {
        let transaction = Transaction(Arc::from(t));
        r.pending.insert(
            (SessionId(session), transaction.clone()),
            Pending { session: SessionId(session), transaction, since, reported: false },
        );
    }

    #[test]
    fn unanswered_requests_are_reported_then_forgotten() {
        let mut r = TransactionRouter::default();
        let t0 = Instant::now();
        begin(&mut r, 1, "a", t0);
        begin(&mut r, 1, "b", t0 + Duration::from_secs(100));
        r.sweep(t0 + STUCK_AFTER);
        assert_eq!((r.pending.len(), r.stuck), (2, 1));
        r.sweep(t0 + STUCK_AFTER + Duration::from_secs(1));
        assert_eq!(r.stuck, 1, "reported once");
        r.sweep(t0 + FORGET_AFTER);
        assert_eq!(r.pending.len(), 1, "the old one is gone, the recent one stays");
    }
}
