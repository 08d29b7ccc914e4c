//! Portunus core: the Janus API types, the actor tree (gateway, session registry, sessions,
//! handles, auth store, plugin registry, transaction router, event bus), the Admin API, and the
//! plugin and transport APIs.
//!
//! Dependencies point down: transports and plugins depend on this crate, never the reverse.

#![warn(missing_docs)]

pub mod admin;
pub mod api;
pub mod auth;
pub mod events;
pub mod gateway;
pub mod handle;
pub mod media;
pub mod metrics;
pub mod peer;
pub mod plugin;
pub mod router;
pub mod session;
pub mod settings;
pub mod state;
pub mod transport;

pub use gateway::{Core, Gateway, GatewayConfig};
