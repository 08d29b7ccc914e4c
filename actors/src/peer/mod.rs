//! The PeerConnection actor (one per handle with media) and its pure negotiation state.

pub mod negotiation;
