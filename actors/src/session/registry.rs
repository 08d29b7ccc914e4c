//! The `SessionRegistry` actor: the clock side of session bookkeeping. Every 2 seconds it ends
//! the sessions that timed out or were not reclaimed in time. The table itself is the
//! [`SessionDirectory`], where requests create, resolve and destroy sessions on their own thread.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::directory::SessionDirectory;

/// How often expiry is checked (Janus's watchdog period).
pub const SWEEP_PERIOD: Duration = Duration::from_secs(2);

/// The registry actor.
pub struct SessionRegistry {
    directory: Arc<SessionDirectory>,
}

impl SessionRegistry {
    /// A registry sweeping `directory`.
    pub fn new(directory: Arc<SessionDirectory>) -> Self {
        SessionRegistry { directory }
    }
}

impl Actor for SessionRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(SWEEP_PERIOD, |this, _| this.directory.sweep());
    }
}
