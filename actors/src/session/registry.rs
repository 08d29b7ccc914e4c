//! The `SessionRegistry` actor: session ids to addresses, creation (with client-chosen ids and the
//! session limit), lookup (which refreshes activity), destroy, claim, transport-gone handling and
//! the 2-second timeout sweep. The bookkeeping itself is the pure [`SessionTable`]; the
//! [`SessionDirectory`] mirrors id -> address so that requests resolve sessions without a hop to
//! this actor (see its module docs).

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::json;

use super::directory::{SessionDirectory, Stamp};
use super::table::{Expiry, SessionTable, TimeoutOverride};
use super::{Claimed, EndSession, Session};
use crate::api::{ApiError, ConnectionId, ErrorCode, SessionId};
use crate::events::EventType;
use crate::state::ServerState;
use crate::transport::{Origin, OwnerKind, SessionOver};

/// How often expiry is checked (Janus's watchdog period).
pub const SWEEP_PERIOD: Duration = Duration::from_secs(2);

/// A session as the registry's table holds it.
#[derive(Clone)]
pub struct Slot {
    addr: Addr<Session>,
    stamp: Arc<Stamp>,
}

/// The registry actor.
pub struct SessionRegistry {
    table: SessionTable<Slot>,
    directory: Arc<SessionDirectory>,
    state: Arc<ServerState>,
    workers: Vec<ArbiterHandle>,
    next_worker: usize,
    sweep_period: Duration,
}

impl SessionRegistry {
    /// A registry placing sessions round-robin on `workers`; when empty, on the arbiter the
    /// `create` came from (the transport worker that will carry the session's requests), or on
    /// its own. It publishes sessions in `directory`.
    pub fn new(state: Arc<ServerState>, workers: Vec<ArbiterHandle>, directory: Arc<SessionDirectory>) -> Self {
        SessionRegistry {
            table: SessionTable::default(),
            directory,
            state,
            workers,
            next_worker: 0,
            sweep_period: SWEEP_PERIOD,
        }
    }

    fn spawn_session(&mut self, id: SessionId, owner: OwnerKind, near: Option<ArbiterHandle>) -> Addr<Session> {
        let state = self.state.clone();
        let worker = match (self.workers.len(), near) {
            (0, None) => return Session::new(id, owner, state).start(),
            (0, Some(near)) => near,
            (n, _) => {
                let w = self.workers[self.next_worker % n].clone();
                self.next_worker = self.next_worker.wrapping_add(1);
                w
            }
        };
        Session::start_in_arbiter(&worker, move |_| Session::new(id, owner, state))
    }

    fn end(&self, id: SessionId, slot: &Slot, why: SessionOver, notify_owner: bool) {
        self.directory.remove(id);
        // Rare lifecycle notification; the session may already be gone.
        slot.addr.do_send(EndSession { why, notify_owner });
    }

    /// Folds the activity requests stamped in the directory into the table.
    fn refresh(&mut self) {
        let epoch = self.directory.epoch();
        self.table.refresh(|slot| slot.stamp.last(epoch));
    }
}

impl Actor for SessionRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(8192);
        ctx.run_interval(self.sweep_period, |this, _| {
            this.refresh();
            let now = Instant::now();
            let reclaim = this.state.settings.general.reclaim_session_timeout;
            for (id, entry, why) in this.table.sweep(now, this.state.session_timeout(), reclaim) {
                tracing::info!(session_id = id.0, ?why, "session expired");
                match why {
                    Expiry::TimedOut => this.end(id, &entry.addr, SessionOver::TimedOut, true),
                    Expiry::NotReclaimed => this.end(id, &entry.addr, SessionOver::Destroyed, false),
                }
            }
        });
    }
}

/// `create`.
#[derive(Message)]
#[rtype(result = "Result<SessionId, ApiError>")]
pub struct CreateSession {
    /// Client-chosen id.
    pub id: Option<SessionId>,
    /// Who asks (and will own it).
    pub origin: Origin,
    /// The arbiter the request arrived on, where the session is best placed (its requests
    /// usually come from there).
    pub near: Option<ArbiterHandle>,
}

impl Handler<CreateSession> for SessionRegistry {
    type Result = Result<SessionId, ApiError>;
    fn handle(&mut self, msg: CreateSession, _: &mut Context<Self>) -> Self::Result {
        let limit = self.state.settings.limits.max_sessions;
        if self.table.len() >= limit {
            return Err(ApiError::unknown(format!("Too many sessions (limit {limit})")));
        }
        let id = match msg.id {
            Some(id) if self.table.contains(id) => return Err(ApiError::plain(ErrorCode::SessionConflict)),
            Some(id) => id,
            None => loop {
                let id = SessionId::random();
                if !self.table.contains(id) {
                    break id;
                }
            },
        };
        let addr = self.spawn_session(id, msg.origin.owner.clone(), msg.near);
        let stamp = self.directory.insert(id, addr.clone());
        self.table.insert(id, Slot { addr, stamp }, msg.origin.connection, msg.origin.transport, Instant::now());
        if let OwnerKind::Push(sink) = &msg.origin.owner {
            sink.session_created(id);
        }
        self.state.events.publish(
            EventType::Session,
            None,
            Some(id),
            None,
            None,
            json!({"name": "created", "transport": {"transport": msg.origin.transport, "id": msg.origin.connection.0.to_string()}}),
        );
        Ok(id)
    }
}

/// `destroy` (and Admin `destroy_session`).
#[derive(Message)]
#[rtype(result = "Result<(), ApiError>")]
pub struct DestroySession(pub SessionId);

impl Handler<DestroySession> for SessionRegistry {
    type Result = Result<(), ApiError>;
    fn handle(&mut self, msg: DestroySession, _: &mut Context<Self>) -> Self::Result {
        let entry = self.table.remove(msg.0).ok_or_else(|| ApiError::no_session(msg.0))?;
        self.end(msg.0, &entry.addr, SessionOver::Destroyed, true);
        Ok(())
    }
}

/// `claim`.
#[derive(Message)]
#[rtype(result = "Result<(), ApiError>")]
pub struct ClaimSession {
    /// Which session.
    pub id: SessionId,
    /// The new owner.
    pub origin: Origin,
}

impl Handler<ClaimSession> for SessionRegistry {
    type Result = Result<(), ApiError>;
    fn handle(&mut self, msg: ClaimSession, _: &mut Context<Self>) -> Self::Result {
        let current = self.table.get(msg.id).ok_or_else(|| ApiError::no_session(msg.id))?;
        if current.owner == msg.origin.connection && !current.orphaned {
            // Janus compat (1.6): claiming from the owning connection is a no-op.
            self.table.touch(msg.id, Instant::now());
            return Ok(());
        }
        let entry = self
            .table
            .claim(msg.id, msg.origin.connection, msg.origin.transport, Instant::now())
            .ok_or_else(|| ApiError::no_session(msg.id))?;
        entry.addr.addr.do_send(Claimed { owner: msg.origin.owner });
        Ok(())
    }
}

/// A transport connection closed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TransportGone(pub ConnectionId);

impl Handler<TransportGone> for SessionRegistry {
    type Result = ();
    fn handle(&mut self, msg: TransportGone, _: &mut Context<Self>) {
        let reclaim = self.state.settings.general.reclaim_session_timeout > 0;
        for (id, entry) in self.table.connection_gone(msg.0, reclaim, Instant::now()) {
            tracing::debug!(session_id = id.0, "transport gone: destroying its session");
            self.end(id, &entry.addr, SessionOver::Destroyed, false);
        }
    }
}

/// Admin `list_sessions`.
#[derive(Message)]
#[rtype(result = "Vec<SessionId>")]
pub struct ListSessions;

impl Handler<ListSessions> for SessionRegistry {
    type Result = Vec<SessionId>;
    fn handle(&mut self, _: ListSessions, _: &mut Context<Self>) -> Self::Result {
        self.table.ids()
    }
}

/// Admin `set_session_timeout` for one session (-1 = global, 0 = never).
#[derive(Message)]
#[rtype(result = "Result<(), ApiError>")]
pub struct SetSessionTimeout {
    /// Which session.
    pub id: SessionId,
    /// Seconds, 0 or -1.
    pub timeout: i64,
}

impl Handler<SetSessionTimeout> for SessionRegistry {
    type Result = Result<(), ApiError>;
    fn handle(&mut self, msg: SetSessionTimeout, _: &mut Context<Self>) -> Self::Result {
        let t = match msg.timeout {
            -1 => TimeoutOverride::Global,
            0 => TimeoutOverride::Never,
            s if s > 0 => TimeoutOverride::Seconds(s as u64),
            _ => return Err(ApiError::invalid_type("timeout", "an integer greater than or equal to -1")),
        };
        if self.table.set_timeout(msg.id, t) {
            Ok(())
        } else {
            Err(ApiError::no_session(msg.id))
        }
    }
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

/// Admin lookup that does not refresh activity.
#[derive(Message)]
#[rtype(result = "Result<SessionFacts, ApiError>")]
pub struct DescribeSession(pub SessionId);

impl Handler<DescribeSession> for SessionRegistry {
    type Result = Result<SessionFacts, ApiError>;
    fn handle(&mut self, msg: DescribeSession, _: &mut Context<Self>) -> Self::Result {
        self.refresh();
        let e = self.table.get(msg.0).ok_or_else(|| ApiError::no_session(msg.0))?;
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
}

/// Shutdown: end every session, telling owners.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct DestroyAll;

impl Handler<DestroyAll> for SessionRegistry {
    type Result = usize;
    fn handle(&mut self, _: DestroyAll, _: &mut Context<Self>) -> usize {
        let all = self.table.drain();
        self.directory.clear();
        for (_, e) in &all {
            e.addr.addr.do_send(EndSession { why: SessionOver::Destroyed, notify_owner: true });
        }
        all.len()
    }
}
