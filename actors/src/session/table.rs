//! The session table: pure bookkeeping for the registry (ids, owners, activity, timeouts).
//! No actors and no clock reads: callers pass `now`, so the timeout rules are unit-tested.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::api::{ConnectionId, SessionId};

/// Per-session timeout override (Admin `set_session_timeout` with a session).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutOverride {
    /// Use the global setting.
    Global,
    /// Never expire.
    Never,
    /// Expire after this many seconds.
    Seconds(u64),
}

/// One row.
#[derive(Clone, Debug)]
pub struct Entry<A> {
    /// The session's address.
    pub addr: A,
    /// Last request that resolved this session.
    pub last_activity: Instant,
    /// Owning connection.
    pub owner: ConnectionId,
    /// Owning transport package.
    pub transport: &'static str,
    /// Set when the owner went away and a reclaim window is open.
    pub orphaned: bool,
    /// Per-session timeout.
    pub timeout: TimeoutOverride,
}

/// Why the sweep removes a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// Inactive for longer than its timeout.
    TimedOut,
    /// Its transport left and nobody claimed it in time.
    NotReclaimed,
}

/// The table.
#[derive(Debug)]
pub struct SessionTable<A> {
    rows: HashMap<SessionId, Entry<A>>,
}

impl<A: Clone> Default for SessionTable<A> {
    fn default() -> Self {
        SessionTable { rows: HashMap::new() }
    }
}

impl<A: Clone> SessionTable<A> {
    /// Number of sessions.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Whether the id is taken.
    pub fn contains(&self, id: SessionId) -> bool {
        self.rows.contains_key(&id)
    }

    /// Adds a session.
    pub fn insert(&mut self, id: SessionId, addr: A, owner: ConnectionId, transport: &'static str, now: Instant) {
        self.rows.insert(
            id,
            Entry { addr, last_activity: now, owner, transport, orphaned: false, timeout: TimeoutOverride::Global },
        );
    }

    /// Looks a session up, refreshing its activity (any request that resolves it counts).
    pub fn touch(&mut self, id: SessionId, now: Instant) -> Option<&Entry<A>> {
        let e = self.rows.get_mut(&id)?;
        e.last_activity = now;
        Some(e)
    }

    /// Folds activity seen elsewhere (the directory's stamps) into the rows: each row's last
    /// activity becomes the later of its own and what `seen` reports for it.
    pub fn refresh(&mut self, seen: impl Fn(&A) -> Option<Instant>) {
        for e in self.rows.values_mut() {
            if let Some(t) = seen(&e.addr) {
                e.last_activity = e.last_activity.max(t);
            }
        }
    }

    /// Looks a session up without refreshing it.
    pub fn get(&self, id: SessionId) -> Option<&Entry<A>> {
        self.rows.get(&id)
    }

    /// Removes a session.
    pub fn remove(&mut self, id: SessionId) -> Option<Entry<A>> {
        self.rows.remove(&id)
    }

    /// Sets the per-session timeout.
    pub fn set_timeout(&mut self, id: SessionId, timeout: TimeoutOverride) -> bool {
        match self.rows.get_mut(&id) {
            Some(e) => {
                e.timeout = timeout;
                true
            }
            None => false,
        }
    }

    /// A new owner claimed the session.
    pub fn claim(
        &mut self,
        id: SessionId,
        owner: ConnectionId,
        transport: &'static str,
        now: Instant,
    ) -> Option<&Entry<A>> {
        let e = self.rows.get_mut(&id)?;
        e.owner = owner;
        e.transport = transport;
        e.orphaned = false;
        e.last_activity = now;
        Some(e)
    }

    /// A connection went away: with a reclaim window its sessions are orphaned (returned empty),
    /// without one they are removed and returned.
    pub fn connection_gone(&mut self, conn: ConnectionId, reclaim: bool, now: Instant) -> Vec<(SessionId, Entry<A>)> {
        let ids: Vec<SessionId> =
            self.rows.iter().filter(|(_, e)| e.owner == conn && !e.orphaned).map(|(id, _)| *id).collect();
        let mut removed = Vec::new();
        for id in ids {
            if reclaim {
                if let Some(e) = self.rows.get_mut(&id) {
                    e.orphaned = true;
                    // The reclaim window counts from the moment the transport left.
                    e.last_activity = now;
                }
            } else if let Some(e) = self.rows.remove(&id) {
                removed.push((id, e));
            }
        }
        removed
    }

    /// Removes and returns the sessions whose time is up at `now`.
    pub fn sweep(
        &mut self,
        now: Instant,
        global_timeout: u64,
        reclaim_timeout: u64,
    ) -> Vec<(SessionId, Entry<A>, Expiry)> {
        let expired: Vec<(SessionId, Expiry)> = self
            .rows
            .iter()
            .filter_map(|(id, e)| {
                let idle = now.saturating_duration_since(e.last_activity);
                if e.orphaned && idle >= Duration::from_secs(reclaim_timeout) {
                    return Some((*id, Expiry::NotReclaimed));
                }
                let limit = match e.timeout {
                    TimeoutOverride::Never => return None,
                    TimeoutOverride::Seconds(s) => s,
                    TimeoutOverride::Global if global_timeout == 0 => return None,
                    TimeoutOverride::Global => global_timeout,
                };
                (idle >= Duration::from_secs(limit)).then_some((*id, Expiry::TimedOut))
            })
            .collect();
        expired.into_iter().filter_map(|(id, why)| self.rows.remove(&id).map(|e| (id, e, why))).collect()
    }

    /// All ids.
    pub fn ids(&self) -> Vec<SessionId> {
        self.rows.keys().copied().collect()
    }

    /// Removes everything (shutdown).
    pub fn drain(&mut self) -> Vec<(SessionId, Entry<A>)> {
        self.rows.drain().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C1: ConnectionId = ConnectionId(1);
    const T: &str = "janus.transport.test";

    #[test]
    fn timeout_rules() {
        let t0 = Instant::now();
        let mut t: SessionTable<()> = SessionTable::default();
        t.insert(SessionId(1), (), C1, T, t0);
        t.insert(SessionId(2), (), C1, T, t0);
        t.insert(SessionId(3), (), C1, T, t0);
        t.set_timeout(SessionId(2), TimeoutOverride::Seconds(3));
        t.set_timeout(SessionId(3), TimeoutOverride::Never);
        assert!(t.sweep(t0 + Duration::from_secs(2), 60, 0).is_empty());
        let gone = t.sweep(t0 + Duration::from_secs(3), 60, 0);
        assert_eq!(gone.len(), 1);
        assert_eq!((gone[0].0, gone[0].2), (SessionId(2), Expiry::TimedOut));
        t.touch(SessionId(1), t0 + Duration::from_secs(50));
        assert!(t.sweep(t0 + Duration::from_secs(100), 60, 0).is_empty());
        assert_eq!(t.sweep(t0 + Duration::from_secs(110), 60, 0).len(), 1);
        assert!(t.sweep(t0 + Duration::from_secs(10_000), 60, 0).is_empty(), "Never stays");
        assert!(t.sweep(t0 + Duration::from_secs(10_000), 0, 0).is_empty());
    }

    #[test]
    fn refresh_keeps_the_later_activity() {
        let t0 = Instant::now();
        let mut t: SessionTable<u32> = SessionTable::default();
        t.insert(SessionId(1), 1, C1, T, t0 + Duration::from_secs(10));
        t.insert(SessionId(2), 2, C1, T, t0);
        t.refresh(|a| Some(t0 + Duration::from_secs(u64::from(*a) * 20)));
        assert_eq!(t.get(SessionId(1)).map(|e| e.last_activity), Some(t0 + Duration::from_secs(20)));
        assert_eq!(t.get(SessionId(2)).map(|e| e.last_activity), Some(t0 + Duration::from_secs(40)));
        t.refresh(|_| Some(t0));
        assert_eq!(t.get(SessionId(1)).map(|e| e.last_activity), Some(t0 + Duration::from_secs(20)), "never back");
    }

    #[test]
    fn reclaim_window() {
        let t0 = Instant::now();
        let mut t: SessionTable<()> = SessionTable::default();
        t.insert(SessionId(1), (), C1, T, t0);
        t.insert(SessionId(2), (), C1, T, t0);
        assert!(t.connection_gone(C1, true, t0).is_empty());
        t.claim(SessionId(2), ConnectionId(9), T, t0 + Duration::from_secs(1));
        let gone = t.sweep(t0 + Duration::from_secs(5), 0, 5);
        assert_eq!(gone.len(), 1);
        assert_eq!((gone[0].0, gone[0].2), (SessionId(1), Expiry::NotReclaimed));
        assert!(t.contains(SessionId(2)));
        assert_eq!(t.connection_gone(ConnectionId(9), false, t0).len(), 1);
        assert!(t.is_empty());
    }
}
