//! State shared by the core's actors: immutable settings, runtime-tunable values (atomics) and
//! counters. Nothing here is locked; everything mutable is a single atomic.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::auth::SignedTokens;
use crate::events::EventPublisher;
use crate::settings::CoreSettings;

/// Hooks into the process's logging, provided by the binary (the core does not own the subscriber).
pub trait LogControl: Send + Sync + 'static {
    /// Janus level 0..7.
    fn set_level(&self, level: u8);
    /// Timestamps on/off.
    fn set_timestamps(&self, _on: bool) {}
    /// Colours on/off.
    fn set_colors(&self, _on: bool) {}
}

/// A [`LogControl`] that only remembers values (tests, embedded use).
#[derive(Debug, Default)]
pub struct NoLogControl;

impl LogControl for NoLogControl {
    fn set_level(&self, _level: u8) {}
}

/// Values the Admin API can change at runtime.
#[derive(Debug)]
pub struct Runtime {
    /// Global session timeout in seconds.
    pub session_timeout: AtomicU64,
    /// `accept_new_sessions`.
    pub accepting: AtomicBool,
    /// Log level 0..7.
    pub log_level: AtomicU8,
    /// Log timestamps.
    pub log_timestamps: AtomicBool,
    /// Log colours.
    pub log_colors: AtomicBool,
    /// `set_locking_debug` (accepted and reported; Rust has no lock debugging to switch).
    pub locking_debug: AtomicBool,
    /// `set_refcount_debug` (accepted and reported).
    pub refcount_debug: AtomicBool,
    /// ms of retransmission buffer.
    pub min_nack_queue: AtomicU64,
    /// `nack-optimizations`.
    pub nack_optimizations: AtomicBool,
    /// Seconds without media before `receiving:false`.
    pub no_media_timer: AtomicU64,
    /// Slow-link threshold.
    pub slowlink_threshold: AtomicU64,
}

/// Counters for status and metrics.
#[derive(Debug, Default)]
pub struct Counters {
    /// Live sessions.
    pub sessions: AtomicU64,
    /// Live handles.
    pub handles: AtomicU64,
    /// Events dropped because a session's queue or a connection was full.
    pub events_dropped: AtomicU64,
    /// Plugin calls that panicked.
    pub plugin_panics: AtomicU64,
    /// Requests handled.
    pub requests: AtomicU64,
}

/// Shared by every core actor and by [`crate::gateway::Core`].
pub struct ServerState {
    /// Immutable configuration.
    pub settings: CoreSettings,
    /// Runtime-tunable values.
    pub runtime: Runtime,
    /// Counters.
    pub counters: Counters,
    /// Event bus entry point.
    pub events: EventPublisher,
    /// Signed-token verifier, for plugins' room tokens.
    pub signed_tokens: Option<SignedTokens>,
    /// Logging hooks.
    pub log: Arc<dyn LogControl>,
    /// Tracks async plugin requests until their event (set by the gateway at start).
    pub requests: crate::router::InFlightTable,
    /// The media engine (`None` when it could not start: media requests then fail with 490).
    pub media: Option<crate::media::MediaEngine>,
    /// Process start, the zero of monotonic times reported in µs.
    pub started: Instant,
}

impl ServerState {
    /// State from settings.
    pub fn new(settings: CoreSettings, events: EventPublisher, log: Arc<dyn LogControl>) -> Self {
        let g = &settings.general;
        let m = &settings.media;
        let runtime = Runtime {
            session_timeout: AtomicU64::new(g.session_timeout),
            accepting: AtomicBool::new(true),
            log_level: AtomicU8::new(g.debug_level.min(7)),
            log_timestamps: AtomicBool::new(g.debug_timestamps),
            log_colors: AtomicBool::new(g.debug_colors),
            locking_debug: AtomicBool::new(false),
            refcount_debug: AtomicBool::new(false),
            min_nack_queue: AtomicU64::new(m.min_nack_queue.min(1000)),
            nack_optimizations: AtomicBool::new(m.nack_optimizations),
            no_media_timer: AtomicU64::new(m.no_media_timer),
            slowlink_threshold: AtomicU64::new(m.slowlink_threshold),
        };
        let signed_tokens = match (g.token_auth, &g.token_auth_secret) {
            (true, Some(secret)) => Some(SignedTokens::new(secret)),
            _ => None,
        };
        ServerState {
            settings,
            runtime,
            counters: Counters::default(),
            events,
            signed_tokens,
            log,
            requests: crate::router::InFlightTable::default(),
            media: None,
            started: Instant::now(),
        }
    }

    /// Microseconds since start (Janus reports monotonic times in µs).
    pub fn monotonic_us(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.started).as_micros() as u64
    }

    /// Global session timeout now.
    pub fn session_timeout(&self) -> u64 {
        self.runtime.session_timeout.load(Ordering::Relaxed)
    }

    /// Whether `create` is allowed.
    pub fn accepting(&self) -> bool {
        self.runtime.accepting.load(Ordering::Relaxed)
    }
}
