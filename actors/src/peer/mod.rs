//! The `PeerConnection` actor: one per handle with media, child of the `Handle`. It owns the
//! engine PeerConnection (through the media facade's [`Peer`]), applies descriptions in order,
//! queues trickle candidates until a remote description exists, and turns engine events into
//! notices for its handle. RTP never passes through here: it flows from the engine's readers to
//! the plugin's media sink.

pub mod answer;
pub mod negotiation;
pub mod slowlink;

use std::sync::Arc;

use actix::prelude::*;
use actix::WeakAddr;
use serde_json::{json, Value};

use crate::api::request::TrickleCandidate;
use crate::api::{ApiError, ErrorCode, Jsep, SdpType};
use crate::handle::Handle;
use crate::media::sdp::{self, SdpInfo};
use crate::media::{AnswerSpec, HangupReason, MediaEngine, MediaPort, OfferSpec, Peer, PeerEvent};
use answer::send_plan;
use negotiation::{From, Negotiation};

/// An engine event, posted by the engine's callbacks.
#[derive(Message)]
#[rtype(result = "()")]
pub struct EngineEvent(pub PeerEvent);

/// What the handle hears from its PeerConnection.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PeerNotice(pub PeerEvent);

/// Apply the client's description (the handle validated it already).
#[derive(Message)]
#[rtype(result = "Result<(), ApiError>")]
pub struct ApplyRemote {
    /// The description.
    pub jsep: Jsep,
    /// Its summary.
    pub info: SdpInfo,
}

/// Produce our answer to the applied offer.
#[derive(Message)]
#[rtype(result = "Result<Jsep, ApiError>")]
pub struct CreateAnswer(pub AnswerSpec);

/// Produce a plugin-initiated offer.
#[derive(Message)]
#[rtype(result = "Result<Jsep, ApiError>")]
pub struct CreateOffer(pub OfferSpec);

/// Add remote candidates.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AddCandidates(pub Vec<TrickleCandidate>);

/// Close the PeerConnection and stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ClosePeer;

/// Admin `handle_info` WebRTC part.
#[derive(Message)]
#[rtype(result = "Value")]
pub struct DescribePeer;

/// The actor.
pub struct PeerConnection {
    engine: MediaEngine,
    port: MediaPort,
    handle: WeakAddr<Handle>,
    peer: Option<Arc<Peer>>,
    negotiation: Negotiation,
    remote_info: Option<SdpInfo>,
    /// Candidates that arrived before a remote description was applied.
    pending: Vec<TrickleCandidate>,
    trickle: bool,
    connected: bool,
    closed: bool,
    state: Arc<crate::state::ServerState>,
    slowlink: slowlink::SlowLinkDetector,
}

impl PeerConnection {
    /// A PeerConnection for the handle at `handle`, whose plugin uses `port`.
    pub fn new(
        engine: MediaEngine,
        port: MediaPort,
        handle: WeakAddr<Handle>,
        state: Arc<crate::state::ServerState>,
    ) -> Self {
        PeerConnection {
            engine,
            port,
            handle,
            peer: None,
            negotiation: Negotiation::default(),
            remote_info: None,
            pending: Vec::new(),
            trickle: true,
            connected: false,
            closed: false,
            state,
            slowlink: slowlink::SlowLinkDetector::default(),
        }
    }

    /// Once a second while connected: loss against `slowlink_threshold` (skipped when it is 0).
    fn watch_loss(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(std::time::Duration::from_secs(1), |act, ctx| {
            let threshold = act.state.runtime.slowlink_threshold.load(std::sync::atomic::Ordering::Relaxed);
            let Some(peer) = act.peer.clone().filter(|_| threshold > 0 && !act.closed) else { return };
            ctx.spawn(async move { peer.loss().await }.into_actor(act).map(move |samples, act, _| {
                for ev in act.slowlink.check(samples, threshold, std::time::Instant::now()) {
                    act.notify(ev);
                }
            }));
        });
    }

    fn notify(&self, ev: PeerEvent) {
        if let Some(h) = self.handle.upgrade() {
            h.do_send(PeerNotice(ev));
        }
    }
}

impl Actor for PeerConnection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(256);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(peer) = self.peer.take() {
            // Closing releases the socket and the engine's tasks; run it on the media runtime.
            self.engine.runtime().spawn(async move { peer.close().await });
        }
    }
}

impl Handler<ApplyRemote> for PeerConnection {
    type Result = AtomicResponse<Self, Result<(), ApiError>>;

    fn handle(&mut self, msg: ApplyRemote, ctx: &mut Context<Self>) -> Self::Result {
        // Atomic: a second description must not start before this one is applied.
        if let Err(e) = self.negotiation.check(From::Peer, msg.jsep.kind) {
            return AtomicResponse::new(Box::pin(async move { Err(e) }.into_actor(self)));
        }
        let engine = self.engine.clone();
        let port = self.port.clone();
        let existing = self.peer.clone();
        let addr = ctx.address().downgrade();
        let kind = msg.jsep.kind;
        let sdp_text = msg.jsep.sdp.clone();
        let trickle = msg.jsep.trickle.unwrap_or(true);
        let fut = async move {
            let peer = existing_or_new(existing, &engine, port, addr, false).await.map_err(ApplyError::Setup)?;
            peer.set_remote(kind, sdp_text).await.map_err(|e| ApplyError::Sdp(e.to_string()))?;
            Ok(peer)
        };
        let info = msg.info;
        AtomicResponse::new(Box::pin(fut.into_actor(self).map(move |res: Result<Arc<Peer>, _>, act, _ctx| {
            let peer = match res {
                Ok(p) => p,
                Err(ApplyError::Setup(e)) => return Err(e),
                Err(ApplyError::Sdp(detail)) => return Err(act.negotiation.processing_error(&detail)),
            };
            act.peer = Some(peer.clone());
            act.negotiation.applied(From::Peer, kind);
            act.remote_info = Some(info);
            act.trickle = trickle;
            let queued = std::mem::take(&mut act.pending);
            if !queued.is_empty() {
                let rt = act.engine.runtime();
                rt.spawn(async move {
                    for c in queued {
                        let _ = peer.add_candidate(c).await;
                    }
                });
            }
            Ok(())
        })))
    }
}

/// The PeerConnection, built on first use; engine events post to the actor at `addr`.
async fn existing_or_new(
    existing: Option<Arc<Peer>>,
    engine: &MediaEngine,
    port: MediaPort,
    addr: WeakAddr<PeerConnection>,
    send_only: bool,
) -> Result<Arc<Peer>, ApiError> {
    if let Some(p) = existing {
        return Ok(p);
    }
    let events: crate::media::EventFn = Arc::new(move |ev| {
        if let Some(a) = addr.upgrade() {
            a.do_send(EngineEvent(ev));
        }
    });
    let peer = if send_only {
        Peer::create_send_only(engine, port, events).await
    } else {
        Peer::create(engine, port, events).await
    };
    peer.map(Arc::new).map_err(|e| ApiError::new(ErrorCode::Unknown, format!("Error setting ICE locally ({e})")))
}

enum ApplyError {
    Setup(ApiError),
    Sdp(String),
}

impl Handler<CreateAnswer> for PeerConnection {
    type Result = AtomicResponse<Self, Result<Jsep, ApiError>>;

    fn handle(&mut self, msg: CreateAnswer, _: &mut Context<Self>) -> Self::Result {
        let checked = self.negotiation.check(From::Plugin, SdpType::Answer);
        let (Ok(()), Some(peer), Some(info)) = (checked.clone(), self.peer.clone(), self.remote_info.as_ref()) else {
            let e = checked.err().unwrap_or_else(|| ApiError::new(ErrorCode::WebrtcState, "Invalid PeerConnection"));
            return AtomicResponse::new(Box::pin(async move { Err(e) }.into_actor(self)));
        };
        let plan = send_plan(info, &msg.0);
        let only_these = msg.0.has_codec_preferences();
        // Receive-only answers send nothing, but still name the one codec the peer must use when
        // the plugin chose.
        let (send, receive) = match (msg.0.recv_only, only_these) {
            (false, _) => (plan, Vec::new()),
            (true, true) => (Vec::new(), plan),
            (true, false) => (Vec::new(), Vec::new()),
        };
        let full_trickle = self.engine.settings().full_trickle;
        let fut = async move { peer.answer(send, receive, only_these, full_trickle).await };
        AtomicResponse::new(Box::pin(fut.into_actor(self).map(|res, act, _| match res {
            Ok(sdp) => {
                act.negotiation.applied(From::Plugin, SdpType::Answer);
                Ok(Jsep::new(SdpType::Answer, sdp))
            }
            Err(e) => Err(act.negotiation.processing_error(&e.to_string())),
        })))
    }
}

impl Handler<CreateOffer> for PeerConnection {
    type Result = AtomicResponse<Self, Result<Jsep, ApiError>>;

    fn handle(&mut self, msg: CreateOffer, ctx: &mut Context<Self>) -> Self::Result {
        if let Err(e) = self.negotiation.check(From::Plugin, SdpType::Offer) {
            return AtomicResponse::new(Box::pin(async move { Err(e) }.into_actor(self)));
        }
        let engine = self.engine.clone();
        let port = self.port.clone();
        let existing = self.peer.clone();
        let addr = ctx.address().downgrade();
        let full_trickle = self.engine.settings().full_trickle;
        // An offer of send-only tracks and no data channel (SFU subscribers) makes a connection
        // that will only send.
        let send_only = !msg.0.data && !msg.0.tracks.is_empty() && msg.0.tracks.iter().all(|t| t.send_only);
        let fut = async move {
            let peer = existing_or_new(existing, &engine, port, addr, send_only).await?;
            let sdp = peer
                .offer(msg.0, full_trickle)
                .await
                .map_err(|e| ApiError::new(ErrorCode::JsepInvalidSdp, format!("Error generating the offer: {e}")))?;
            Ok((peer, sdp))
        };
        AtomicResponse::new(Box::pin(fut.into_actor(self).map(|res: Result<(Arc<Peer>, String), ApiError>, act, _| {
            let (peer, sdp) = res?;
            act.peer = Some(peer);
            act.negotiation.applied(From::Plugin, SdpType::Offer);
            act.remote_info = act.remote_info.take().or_else(|| sdp::parse(&sdp).ok());
            Ok(Jsep::new(SdpType::Offer, sdp))
        })))
    }
}

impl Handler<AddCandidates> for PeerConnection {
    type Result = ();
    fn handle(&mut self, msg: AddCandidates, _: &mut Context<Self>) {
        match (&self.peer, self.remote_info.is_some()) {
            (Some(peer), true) => {
                let peer = peer.clone();
                self.engine.runtime().spawn(async move {
                    for c in msg.0 {
                        if let Err(e) = peer.add_candidate(c).await {
                            tracing::debug!(error = %e, "remote candidate refused");
                        }
                    }
                });
            }
            _ => {
                let room = 256usize.saturating_sub(self.pending.len());
                self.pending.extend(msg.0.into_iter().take(room));
            }
        }
    }
}

impl Handler<ClosePeer> for PeerConnection {
    type Result = ();
    fn handle(&mut self, _: ClosePeer, ctx: &mut Context<Self>) {
        self.closed = true;
        ctx.stop();
    }
}

impl Handler<EngineEvent> for PeerConnection {
    type Result = ();
    fn handle(&mut self, msg: EngineEvent, ctx: &mut Context<Self>) {
        if self.closed {
            return;
        }
        match msg.0 {
            PeerEvent::Connected if self.connected => {}
            PeerEvent::Connected => {
                self.connected = true;
                self.notify(PeerEvent::Connected);
                self.watch_loss(ctx);
            }
            PeerEvent::Failed(reason) => {
                // The handle hangs up (event to the client, plugin told) and closes us.
                self.notify(PeerEvent::Failed(reason));
                self.closed = true;
                ctx.stop();
            }
            // Half-trickle (the default): candidates already are in the SDP.
            PeerEvent::LocalCandidate(_) if !self.engine.settings().full_trickle => {}
            PeerEvent::LocalCandidate(mut c) => {
                // The engine leaves sdpMid empty; everything is bundled on the first m-line.
                let first = self.remote_info.as_ref().and_then(|i| i.sections.first());
                c.sdp_mid = first.and_then(|s| s.mid.clone()).or(c.sdp_mid.filter(|m| !m.is_empty()));
                c.sdp_mline_index = Some(0);
                self.notify(PeerEvent::LocalCandidate(c));
            }
            other => self.notify(other),
        }
    }
}

impl Handler<DescribePeer> for PeerConnection {
    type Result = ResponseFuture<Value>;
    fn handle(&mut self, _: DescribePeer, _: &mut Context<Self>) -> Self::Result {
        let peer = self.peer.clone();
        let negotiated = self.negotiation.negotiated();
        let connected = self.connected;
        let trickle = self.trickle;
        let pending = self.pending.len();
        let fingerprint = self.engine.fingerprint();
        let rt = self.engine.runtime();
        Box::pin(async move {
            let (local, remote, stats) = match peer {
                Some(p) => rt
                    .spawn(async move {
                        let (l, r) = p.descriptions().await;
                        (l, r, p.stats().await)
                    })
                    .await
                    .unwrap_or((None, None, Value::Null)),
                None => (None, None, Value::Null),
            };
            json!({
                "flags": {"negotiated": negotiated, "ready": connected, "trickle": trickle},
                "sdps": {"profile": "UDP/TLS/RTP/SAVPF", "local": local, "remote": remote},
                "pending-trickles": pending,
                "webrtc": {
                    "media": stats.get("media").cloned().unwrap_or(Value::Null),
                    "ice": {"state": if connected { "ready" } else { "connecting" }, "selected-pair": stats.get("selected-pair").cloned().unwrap_or(Value::Null)},
                    "dtls": {"fingerprint": fingerprint, "dtls-state": if connected { "connected" } else { "trying" }, "srtp-profile": if connected { "SRTP_AES128_CM_SHA1_80" } else { "none" }},
                }
            })
        })
    }
}

/// Validates a client description the way Janus does before anything else (465 wording).
pub fn validate_remote(jsep: &Jsep) -> Result<SdpInfo, ApiError> {
    let info = sdp::parse(&jsep.sdp).map_err(|e| ApiError::new(ErrorCode::JsepInvalidSdp, e.0))?;
    sdp::require_transport(&info).map_err(|e| ApiError::new(ErrorCode::JsepInvalidSdp, e.0))?;
    Ok(info)
}

/// Hangup reason for a closed PeerConnection.
pub fn reason_text(r: HangupReason) -> &'static str {
    r.as_str()
}
