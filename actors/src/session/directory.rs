//! The session directory: every live session (id, address, owner, activity, timeout) in one
//! table shared by the request pipeline and the [`SessionRegistry`](super::SessionRegistry)
//! actor.
//!
//! Requests create, resolve and destroy sessions here on the thread they arrived on. Before it,
//! `create` and `destroy` hopped to the registry's thread and back (two sleeping threads woken per
//! request, which was most of the CPU of a lone client's API cycle), and every other request hopped
//! there to resolve its session. The registry actor keeps what has to happen on a clock: the
//! 2-second timeout sweep.
//!
//! Resolving a session takes the read lock and stamps its activity into an atomic ([`Stamp`]);
//! the sweep folds the stamps into the table under the write lock. Whoever removes a row (destroy,
//! sweep, transport gone, shutdown) is the one that ends the session, so it ends exactly once.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::json;

use super::table::{Expiry, SessionTable, TimeoutOverride};
use super::{Claimed, EndSession, Session};
use crate::api::{ApiError, ConnectionId, ErrorCode, SessionId};
use crate::events::EventType;
use crate::state::ServerState;
use crate::transport::{Origin, OwnerKind, SessionOver};

/// The last activity of one session, as nanoseconds after the directory's epoch (0 = none since
/// the sweep last folded it).
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

/// A session as the table holds it.
#[derive(Clone)]
pub struct Slot {
    addr: Addr<Session>,
    stamp: Arc<Stamp>,
}

/// What the Admin API reports about a session in `handle_info`.
#[derive(Clone, Debug)]
pub struct SessionFacts {
    /// The session's address.
    pub addr: Addr<Session>,
    /// Monotonic µs of last activity.
    pub last_activity_us: u64,
    /// Effective timeout in seconds (0 = never).
    pub timeout: u64,
    /// Owning transport package.
    pub transport: &'static str,
}

/// The directory. Shared as an `Arc`; no lock is held across an `.await` or while calling out.
pub struct SessionDirectory {
    epoch: Instant,
    table: RwLock<SessionTable<Slot>>,
    state: Arc<ServerState>,
    /// Dedicated session threads (`session_workers`), used round-robin; empty by default.
    workers: Vec<ArbiterHandle>,
    next_worker: AtomicUsize,
    /// Where sessions go when neither a worker nor the request's own arbiter is at hand.
    home: ArbiterHandle,
}

impl SessionDirectory {
    /// A directory placing sessions round-robin on `workers`; when empty, on the arbiter the
    /// `create` came from (the transport worker that will carry the session's requests), or on
    /// `home`.
    pub fn new(state: Arc<ServerState>, workers: Vec<ArbiterHandle>, home: ArbiterHandle) -> Self {
        SessionDirectory {
            epoch: Instant::now(),
            table: RwLock::default(),
            state,
            workers,
            next_worker: AtomicUsize::new(0),
            home,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, SessionTable<Slot>> {
        self.table.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, SessionTable<Slot>> {
        self.table.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Resolves a session for a request and stamps its activity (any request that resolves a
    /// session keeps it alive).
    pub fn lookup(&self, id: SessionId) -> Option<Addr<Session>> {
        let table = self.read();
        let slot = &table.get(id)?.addr;
        slot.stamp.set(self.epoch, Instant::now());
        Some(slot.addr.clone())
    }

    fn spawn_session(&self, id: SessionId, owner: OwnerKind) -> Addr<Session> {
        let arbiter = match self.workers.len() {
            0 => Arbiter::try_current().unwrap_or_else(|| self.home.clone()),
            n => self.workers[self.next_worker.fetch_add(1, Ordering::Relaxed) % n].clone(),
        };
        let state = self.state.clone();
        Session::start_in_arbiter(&arbiter, move |_| Session::new(id, owner, state))
    }

    /// `create`: a new session (`requested` is a client-chosen id), placed near the caller.
    pub fn create(&self, requested: Option<SessionId>, origin: &Origin) -> Result<SessionId, ApiError> {
        let limit = self.state.settings.limits.max_sessions;
        let id = {
            let mut table = self.write();
            if table.len() >= limit {
                return Err(ApiError::unknown(format!("Too many sessions (limit {limit})")));
            }
            let id = match requested {
                Some(id) if table.contains(id) => return Err(ApiError::plain(ErrorCode::SessionConflict)),
                Some(id) => id,
                None => loop {
                    let id = SessionId::random();
                    if !table.contains(id) {
                        break id;
                    }
                },
            };
            // Starting an actor only queues its construction on the arbiter: cheap under the lock,
            // and the row must exist before anyone can learn the id.
            let addr = self.spawn_session(id, origin.owner.clone());
            let slot = Slot { addr, stamp: Arc::default() };
            table.insert(id, slot, origin.connection, origin.transport, Instant::now());
            id
        };
        if let OwnerKind::Push(sink) = &origin.owner {
            sink.session_created(id);
        }
        self.state.events.publish(
            EventType::Session,
            None,
            Some(id),
            None,
            None,
            json!({"name": "created", "transport": {"transport": origin.transport, "id": origin.connection.0.to_string()}}),
        );
        Ok(id)
    }

    /// `destroy` (and Admin `destroy_session`).
    pub fn destroy(&self, id: SessionId) -> Result<(), ApiError> {
        let entry = self.write().remove(id).ok_or_else(|| ApiError::no_session(id))?;
        end(&entry.addr, SessionOver::Destroyed, true);
        Ok(())
    }

    /// `claim`: `origin` becomes the session's owner.
    pub fn claim(&self, id: SessionId, origin: &Origin) -> Result<(), ApiError> {
        let mut table = self.write();
        let current = table.get(id).ok_or_else(|| ApiError::no_session(id))?;
        if current.owner == origin.connection && !current.orphaned {
            // Janus compat (1.6): claiming from the owning connection is a no-op.
            table.touch(id, Instant::now());
            return Ok(());
        }
        let entry = table
            .claim(id, origin.connection, origin.transport, Instant::now())
            .ok_or_else(|| ApiError::no_session(id))?;
        entry.addr.addr.do_send(Claimed { owner: origin.owner.clone() });
        Ok(())
    }

    /// A transport connection closed: its sessions end, or wait to be reclaimed.
    pub fn transport_gone(&self, connection: ConnectionId) {
        let reclaim = self.state.settings.general.reclaim_session_timeout > 0;
        let gone = self.write().connection_gone(connection, reclaim, Instant::now());
        for (id, entry) in gone {
            tracing::debug!(session_id = id.0, "transport gone: destroying its session");
            end(&entry.addr, SessionOver::Destroyed, false);
        }
    }

    /// Admin `list_sessions`.
    pub fn ids(&self) -> Vec<SessionId> {
        self.read().ids()
    }

    /// Admin `set_session_timeout` for one session (-1 = global, 0 = never).
    pub fn set_timeout(&self, id: SessionId, timeout: i64) -> Result<(), ApiError> {
        let t = match timeout {
            -1 => TimeoutOverride::Global,
            0 => TimeoutOverride::Never,
            s if s > 0 => TimeoutOverride::Seconds(s as u64),
            _ => return Err(ApiError::invalid_type("timeout", "an integer greater than or equal to -1")),
        };
        if self.write().set_timeout(id, t) {
            Ok(())
        } else {
            Err(ApiError::no_session(id))
        }
    }

    /// Admin lookup that does not refresh activity.
    pub fn describe(&self, id: SessionId) -> Result<SessionFacts, ApiError> {
        let mut table = self.write();
        self.fold_stamps(&mut table);
        let e = table.get(id).ok_or_else(|| ApiError::no_session(id))?;
        let timeout = match e.timeout {
            TimeoutOverride::Global => self.state.session_timeout(),
            TimeoutOverride::Never => 0,
            TimeoutOverride::Seconds(s) => s,
        };
        Ok(SessionFacts {
            addr: e.addr.addr.clone(),
            last_activity_us: self.state.monotonic_us(e.last_activity),
            timeout,
            transport: e.transport,
        })
    }

    /// The timeout sweep: ends the sessions whose time is up.
    pub fn sweep(&self) {
        let expired = {
            let mut table = self.write();
            self.fold_stamps(&mut table);
            let reclaim = self.state.settings.general.reclaim_session_timeout;
            table.sweep(Instant::now(), self.state.session_timeout(), reclaim)
        };
        for (id, entry, why) in expired {
            tracing::info!(session_id = id.0, ?why, "session expired");
            match why {
                Expiry::TimedOut => end(&entry.addr, SessionOver::TimedOut, true),
                Expiry::NotReclaimed => end(&entry.addr, SessionOver::Destroyed, false),
            }
        }
    }

    /// Shutdown: ends every session, telling owners. Returns how many there were.
    pub fn destroy_all(&self) -> usize {
        let all = self.write().drain();
        for (_, e) in &all {
            end(&e.addr, SessionOver::Destroyed, true);
        }
        all.len()
    }

    /// Folds the activity stamped by lookups into the table.
    fn fold_stamps(&self, table: &mut SessionTable<Slot>) {
        table.refresh(|slot| slot.stamp.last(self.epoch));
    }
}

fn end(slot: &Slot, why: SessionOver, notify_owner: bool) {
    // The session may already be gone.
    slot.addr.do_send(EndSession { why, notify_owner });
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
