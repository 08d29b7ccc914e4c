//! The `TransactionRouter`: asynchronous plugin requests in flight, keyed by (session,
//! transaction).
//!
//! Direct replies travel back on the request's own future, so the router does not carry them. It
//! keeps the table of `message` requests a plugin acknowledged (`ack`) but has not answered with
//! an event yet, so that a stuck plugin is seen (a warning and a counter after [`STUCK_AFTER`])
//! and the Admin API can report how many requests are in flight. Handles write both ends straight
//! into the shared [`InFlightTable`] (a short lock, no message: a thread wake-up per request
//! would cost more than the bookkeeping); the actor sweeps it once a second. A session that ends
//! takes its entries with it, and an entry never answered is dropped after [`FORGET_AFTER`], so
//! a plugin that never answers cannot fill the table.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::api::{SessionId, Transaction};

/// A plugin call taking longer than this is reported as stuck.
pub const STUCK_AFTER: Duration = Duration::from_secs(10);
/// An unanswered request is forgotten after this (it was reported stuck long before).
pub const FORGET_AFTER: Duration = Duration::from_secs(120);
/// Most requests tracked at once; beyond it new ones are not tracked (and counted).
const CAPACITY: usize = 65_536;

struct Pending {
    since: Instant,
    reported: bool,
}

#[derive(Default)]
struct Table {
    pending: HashMap<(SessionId, Transaction), Pending>,
    stuck: u64,
    untracked: u64,
}

/// The requests in flight, shared by every handle and the router actor. Cheap to clone.
#[derive(Clone, Default)]
pub struct InFlightTable(Arc<Mutex<Table>>);

impl InFlightTable {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A plugin acknowledged a request and will answer with an event.
    pub fn begin(&self, session: SessionId, transaction: Transaction) {
        let mut t = self.lock();
        if t.pending.len() >= CAPACITY {
            t.untracked += 1;
            return;
        }
        t.pending.insert((session, transaction), Pending { since: Instant::now(), reported: false });
    }

    /// The plugin pushed an event for that transaction.
    pub fn end(&self, session: SessionId, transaction: &Transaction) {
        let mut t = self.lock();
        if !t.pending.is_empty() {
            t.pending.remove(&(session, transaction.clone()));
        }
    }

    /// A session ended: its requests will never be answered.
    pub fn forget(&self, session: SessionId) {
        let mut t = self.lock();
        if !t.pending.is_empty() {
            t.pending.retain(|(s, _), _| *s != session);
        }
    }

    /// How many requests are in flight, and how many were ever reported stuck.
    pub fn counts(&self) -> (usize, u64) {
        let t = self.lock();
        (t.pending.len(), t.stuck)
    }

    /// Reports requests stuck for [`STUCK_AFTER`] and forgets those older than [`FORGET_AFTER`].
    fn sweep(&self, now: Instant) {
        let mut guard = self.lock();
        let Table { pending, stuck, .. } = &mut *guard;
        pending.retain(|(session, transaction), p| {
            let age = now.saturating_duration_since(p.since);
            if !p.reported && age >= STUCK_AFTER {
                p.reported = true;
                *stuck += 1;
                tracing::warn!(session_id = session.0, transaction = %transaction, "plugin has not answered for 10 s");
            }
            age < FORGET_AFTER
        });
    }
}

/// The router actor: sweeps the table.
pub struct TransactionRouter {
    table: InFlightTable,
}

impl TransactionRouter {
    /// A router sweeping `table`.
    pub fn new(table: InFlightTable) -> Self {
        TransactionRouter { table }
    }
}

impl Actor for TransactionRouter {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(Duration::from_secs(1), |this, _| this.table.sweep(Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(t: &str) -> Transaction {
        Transaction(Arc::from(t))
    }

    #[test]
    fn unanswered_requests_are_reported_then_forgotten() {
        let table = InFlightTable::default();
        table.begin(SessionId(1), tx("a"));
        table.begin(SessionId(1), tx("b"));
        let t0 = Instant::now();
        table.lock().pending.get_mut(&(SessionId(1), tx("b"))).expect("b").since = t0 + Duration::from_secs(100);
        table.sweep(t0 + STUCK_AFTER + Duration::from_secs(1));
        assert_eq!(table.counts(), (2, 1));
        table.sweep(t0 + STUCK_AFTER + Duration::from_secs(2));
        assert_eq!(table.counts().1, 1, "reported once");
        table.sweep(t0 + FORGET_AFTER + Duration::from_secs(1));
        assert_eq!(table.counts().0, 1, "the old one is gone, the recent one stays");
    }

    #[test]
    fn answered_and_ended_sessions_leave_the_table() {
        let table = InFlightTable::default();
        table.begin(SessionId(1), tx("a"));
        table.begin(SessionId(2), tx("a"));
        table.begin(SessionId(2), tx("b"));
        table.end(SessionId(1), &tx("a"));
        assert_eq!(table.counts().0, 2);
        table.forget(SessionId(2));
        assert_eq!(table.counts().0, 0);
    }
}
