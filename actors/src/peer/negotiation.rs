//! Offer/answer bookkeeping for one PeerConnection, as a pure state machine: which side offered,
//! whether an exchange is pending, and which requests are refused with which Janus error
//! (reference 1.3: 469 for an answer nobody asked for or a failed renegotiation, 465 for a first
//! negotiation that fails, 471 for a PeerConnection still cleaning up).

use crate::api::{ApiError, ErrorCode, SdpType};

/// Negotiation state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum State {
    /// No offer/answer exchanged yet.
    #[default]
    Idle,
    /// The peer offered; the plugin has not answered yet.
    RemoteOffer,
    /// We offered; waiting for the peer's answer.
    LocalOffer,
    /// At least one exchange completed; both sides stable.
    Stable,
}

/// Who sent a description.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum From {
    /// The client, through a `message` jsep.
    Peer,
    /// The plugin, through `push_event` jsep.
    Plugin,
}

/// The bookkeeping.
#[derive(Clone, Copy, Debug, Default)]
pub struct Negotiation {
    state: State,
    /// Completed exchanges (0 until the first answer is applied).
    exchanges: u32,
}

impl Negotiation {
    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether a first exchange has completed.
    pub fn negotiated(&self) -> bool {
        self.exchanges > 0
    }

    /// Whether the next description is a renegotiation (the plugin gets `update: true`).
    pub fn is_update(&self) -> bool {
        self.negotiated()
    }

    /// Checks a description before it is applied; returns the error to send if it is refused.
    pub fn check(&self, from: From, kind: SdpType) -> Result<(), ApiError> {
        match (self.state, from, kind) {
            (State::Idle | State::Stable, From::Peer, SdpType::Offer) => Ok(()),
            (State::Idle | State::Stable, From::Plugin, SdpType::Offer) => Ok(()),
            (State::RemoteOffer, From::Plugin, SdpType::Answer) => Ok(()),
            (State::LocalOffer, From::Peer, SdpType::Answer) => Ok(()),
            (_, From::Peer, SdpType::Answer) => {
                Err(ApiError::new(ErrorCode::UnexpectedAnswer, "Unexpected ANSWER (did we offer?)"))
            }
            (State::RemoteOffer, From::Peer, SdpType::Offer) => {
                Err(ApiError::new(ErrorCode::WebrtcState, "An offer from this peer is still waiting for an answer"))
            }
            (State::LocalOffer, From::Peer, SdpType::Offer) => {
                Err(ApiError::new(ErrorCode::WebrtcState, "Can't accept an offer while waiting for the answer to ours"))
            }
            (_, From::Plugin, SdpType::Offer) => {
                Err(ApiError::new(ErrorCode::WebrtcState, "Can't offer while another negotiation is in progress"))
            }
            (_, From::Plugin, SdpType::Answer) => {
                Err(ApiError::new(ErrorCode::UnexpectedAnswer, "Unexpected ANSWER (no OFFER)"))
            }
        }
    }

    /// The error for a description the engine rejected: 465 on the first negotiation, 469 on a
    /// renegotiation (Janus compat 1.3, sic).
    pub fn processing_error(&self, detail: &str) -> ApiError {
        if self.negotiated() {
            ApiError::new(ErrorCode::UnexpectedAnswer, format!("Error processing SDP: {detail}"))
        } else {
            ApiError::new(ErrorCode::JsepInvalidSdp, format!("Error processing SDP: {detail}"))
        }
    }

    /// A description was applied.
    pub fn applied(&mut self, from: From, kind: SdpType) {
        self.state = match (from, kind) {
            (From::Peer, SdpType::Offer) => State::RemoteOffer,
            (From::Plugin, SdpType::Offer) => State::LocalOffer,
            (_, SdpType::Answer) => {
                self.exchanges += 1;
                State::Stable
            }
        };
    }

    /// The PeerConnection was torn down: back to the start.
    pub fn reset(&mut self) {
        *self = Negotiation::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_offers_then_renegotiates() {
        let mut n = Negotiation::default();
        n.check(From::Peer, SdpType::Offer).unwrap();
        n.applied(From::Peer, SdpType::Offer);
        assert_eq!(n.check(From::Peer, SdpType::Offer).unwrap_err().code(), 471);
        n.check(From::Plugin, SdpType::Answer).unwrap();
        n.applied(From::Plugin, SdpType::Answer);
        assert!(n.negotiated() && n.is_update());
        n.check(From::Peer, SdpType::Offer).unwrap();
        assert_eq!(n.processing_error("x").code(), 469);
    }

    #[test]
    fn answer_without_offer() {
        let n = Negotiation::default();
        let e = n.check(From::Peer, SdpType::Answer).unwrap_err();
        assert_eq!((e.code(), e.reason.as_str()), (469, "Unexpected ANSWER (did we offer?)"));
        assert_eq!(n.processing_error("bad").code(), 465);
    }

    #[test]
    fn plugin_offers() {
        let mut n = Negotiation::default();
        n.applied(From::Plugin, SdpType::Offer);
        assert_eq!(n.check(From::Peer, SdpType::Offer).unwrap_err().code(), 471);
        assert_eq!(n.check(From::Plugin, SdpType::Offer).unwrap_err().code(), 471);
        n.check(From::Peer, SdpType::Answer).unwrap();
        n.applied(From::Peer, SdpType::Answer);
        assert_eq!(n.state(), State::Stable);
        n.reset();
        assert!(!n.negotiated());
    }
}
