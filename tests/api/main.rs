//! Integration tests of the control plane: the Janus API over HTTP and WebSocket, the Admin API,
//! authentication, limits and the plugin panic boundary, against the real `portunus` binary.
//!
//! One submodule per behaviour, named for it. Every test starts its own server on ephemeral
//! loopback ports (`tests/common`), so tests are independent and run in parallel. Replies are
//! compared with janus-reference.md (sections 1, 2, 4, 5, 13, 14) with random ids masked or
//! substituted. A reply that differs from the reference is a server bug: such a test keeps
//! asserting the reference and is `#[ignore = "server bug: ..."]`d until the server is fixed.
//!
//! Run: `cargo test --test api`; the panic boundary needs `--features fault-injection`.

#[path = "../common/mod.rs"]
mod common;

mod admin_api;
mod api_secret;
mod case_insensitive;
mod http_transport;
mod info_and_ping;
mod lifecycle;
mod limits;
mod long_poll;
mod malformed_input;
mod message_and_jsep;
mod opaque_id;
mod packet_dump;
#[cfg(feature = "fault-injection")]
mod panic_boundary;
mod reclaim;
mod session_timeout;
mod signed_tokens;
mod static_pages;
mod stored_tokens;
mod trickle;
mod validation_order;
mod websocket_transport;
