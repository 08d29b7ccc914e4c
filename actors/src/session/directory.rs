//! The session directory: a read-mostly index from session id to the session's address, written
//! only by the [`SessionRegistry`](super::SessionRegistry) and read by the request pipeline.
//!
//! Without it every request that names a session would first hop to the registry's thread to
//! resolve the id (a cross-thread wake-up and a context switch each way), then on to the session.
//! With it a request resolves the session where it arrived and, since sessions live on the
//! arbiter of the transport worker that created them, usually reaches the session and its handles
//! without leaving that thread.
//!
//! The registry still owns the bookkeeping (ids, owners, timeouts, the sweep); a lookup here only
//! stamps the session's last activity into an atomic that the registry folds into its table
//! before it looks at activity ([`Stamp`]). Invariant: the registry inserts a row before it
//! replies to `create` and removes it before it replies to `destroy` or ends the session, so a
//! lookup never finds a session the registry no longer knows.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use actix::Addr;

use super::Session;
use crate::api::SessionId;

/// The last activity of one session, as nanoseconds after the directory's epoch (0 = none since
/// the registry last set it).
#[derive(Debug, Default)]
pub struct Stamp(AtomicU64);

impl Stamp {
    /// When the session was last resolved by a request, if after `epoch`.
    pub fn last(&self, epoch: Instant) -> Option<Instant> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(epoch + Duration::from_nanos(ns)),
        }
    }

    fn set(&self, epoch: Instant, now: Instant) {
        let ns = now.saturating_duration_since(epoch).as_nanos().max(1);
        self.0.store(u64::try_from(ns).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

struct Row {
    addr: Addr<Session>,
    stamp: Arc<Stamp>,
}

/// The directory. Cheap to share (`Arc`); lookups take a read lock for a hash probe.
pub struct SessionDirectory {
    epoch: Instant,
    // A std lock, never held across an `.await` or while calling out: readers probe and clone an
    // address, the one writer (the registry actor) inserts or removes a row.
    rows: RwLock<HashMap<SessionId, Row>>,
}

impl Default for SessionDirectory {
    fn default() -> Self {
        SessionDirectory { epoch: Instant::now(), rows: RwLock::default() }
    }
}

impl SessionDirectory {
    /// Resolves a session for a request and stamps its activity (any request that resolves a
    /// session keeps it alive).
    pub fn lookup(&self, id: SessionId) -> Option<Addr<Session>> {
        let rows = self.rows.read().unwrap_or_else(|e| e.into_inner());
        let row = rows.get(&id)?;
        row.stamp.set(self.epoch, Instant::now());
        Some(row.addr.clone())
    }

    /// The epoch stamps count from.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// Registry only: adds a session; returns its activity stamp.
    pub(crate) fn insert(&self, id: SessionId, addr: Addr<Session>) -> Arc<Stamp> {
        let stamp = Arc::new(Stamp::default());
        let mut rows = self.rows.write().unwrap_or_else(|e| e.into_inner());
        rows.insert(id, Row { addr, stamp: stamp.clone() });
        stamp
    }

    /// Registry only: removes a session.
    pub(crate) fn remove(&self, id: SessionId) {
        let mut rows = self.rows.write().unwrap_or_else(|e| e.into_inner());
        rows.remove(&id);
    }

    /// Registry only: removes every session.
    pub(crate) fn clear(&self) {
        let mut rows = self.rows.write().unwrap_or_else(|e| e.into_inner());
        rows.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trips() {
        let epoch = Instant::now();
        let s = Stamp::default();
        assert_eq!(s.last(epoch), None);
        let later = epoch + Duration::from_millis(1500);
        s.set(epoch, later);
        assert_eq!(s.last(epoch), Some(later));
    }
}
