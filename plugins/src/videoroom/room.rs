//! The room actor: participants, publications and subscriptions of one VideoRoom room.
//!
//! Every request a handle makes about a room is a [`RoomRequest`] handled here in order; the
//! media plane ([`super::media`]) is only reconfigured from here. Each request runs inside the
//! panic boundary: a panic ends this room alone (participants get `destroyed` and their
//! PeerConnections closed, the room leaves the registry and can be created again).
//!
//! This file holds the actor, its lifecycle and the dispatch; the requests are handled in
//! [`publisher`], [`subscriber`], [`manage`] (room management) and [`cascade`] (remote publishers).

mod cascade;
mod configure;
mod manage;
mod publisher;
mod subscriber;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix::prelude::*;
use portunus_actors::api::validate::Fields;
use portunus_actors::media::sdp::SdpInfo;
use portunus_actors::media::{AnswerSpec, MediaKind, OfferSpec};
use portunus_actors::plugin::boundary::guard;
use portunus_actors::plugin::PluginCtx;
use serde_json::{json, Map, Value};

use super::errors::*;
use super::media::RtpForwarder;
use super::props::RoomProps;
use super::registry::Registry;
pub use cascade::CascadeRequest;
use publisher::Participant;
use subscriber::Subscriber;

/// Codecs we can receive and forward, per kind.
const AUDIO: &[&str] = &["opus", "pcmu", "pcma"];
const VIDEO: &[&str] = &["vp8", "h264", "vp9", "av1"];

/// How often publishers are reminded of the room's bitrate cap (REMB).
const REMB_INTERVAL: Duration = Duration::from_secs(3);

/// What a handle asks of a room.
#[derive(Message)]
#[rtype(result = "Result<RoomReply, VrError>")]
pub enum RoomRequest {
    Edit(Map<String, Value>),
    Destroy(Map<String, Value>),
    Kick(Map<String, Value>),
    Moderate(Map<String, Value>),
    ListParticipants,
    Allowed(Map<String, Value>),
    ListForwarders(Map<String, Value>),
    RtpForward(Map<String, Value>),
    StopRtpForward(Map<String, Value>),
    EnableRecording(Map<String, Value>),
    JoinPublisher {
        handle: u64,
        ctx: PluginCtx,
        body: Map<String, Value>,
    },
    Publish {
        handle: u64,
        offer: SdpInfo,
        /// The offer's JSEP was marked `e2ee`.
        e2ee: bool,
        body: Map<String, Value>,
    },
    PublisherUp {
        handle: u64,
    },
    ConfigurePublisher {
        handle: u64,
        body: Map<String, Value>,
        /// An offer from a participant not publishing yet publishes (Janus compat).
        offer: Option<SdpInfo>,
        /// The offer's JSEP was marked `e2ee`.
        e2ee: bool,
    },
    Unpublish {
        handle: u64,
    },
    JoinSubscriber {
        handle: u64,
        ctx: PluginCtx,
        body: Map<String, Value>,
    },
    Start {
        handle: u64,
    },
    Pause {
        handle: u64,
    },
    ConfigureSubscriber {
        handle: u64,
        body: Map<String, Value>,
    },
    Subscribe {
        handle: u64,
        streams: Vec<Value>,
    },
    Unsubscribe {
        handle: u64,
        streams: Vec<Value>,
    },
    Switch {
        handle: u64,
        body: Map<String, Value>,
    },
    /// From the media plane: a publisher's audio started or stopped being loud enough.
    Talking {
        handle: u64,
        mid: String,
        talking: bool,
        level: u32,
    },
    SubscriberUp {
        handle: u64,
    },
    /// A publisher's data channel message, for the subscribers of its data stream.
    Data {
        handle: u64,
        data: bytes::Bytes,
        binary: bool,
    },
    /// The handle's PeerConnection went away.
    MediaGone {
        handle: u64,
    },
    /// `leave`, or the handle went away.
    Leave {
        handle: u64,
    },
    /// Remote publishers and remotizations (see [`cascade`]).
    Cascade(CascadeRequest),
    /// Test builds: panic inside the room.
    #[cfg(feature = "fault-injection")]
    Fault,
}

/// A room's answer to the requesting handle.
#[derive(Debug, Default)]
pub struct RoomReply {
    /// The plugin data of the event (or the synchronous reply).
    pub data: Value,
    /// Offer this (subscribers).
    pub offer: Option<OfferSpec>,
    /// Answer the client's offer like this (publishers: receive-only, in the room's codecs).
    pub answer: Option<AnswerSpec>,
    /// Close the requester's PeerConnection after replying.
    pub close_pc: bool,
}

impl RoomReply {
    fn data(data: Value) -> Self {
        RoomReply { data, ..Default::default() }
    }
}

/// One room.
pub struct Room {
    id: u64,
    generation: u64,
    props: Arc<RwLock<RoomProps>>,
    registry: Arc<Registry>,
    /// Publishers and attendees by handle.
    participants: BTreeMap<u64, Participant>,
    subscribers: BTreeMap<u64, Subscriber>,
    next_forwarder: u32,
}

impl Room {
    pub fn new(id: u64, generation: u64, props: Arc<RwLock<RoomProps>>, registry: Arc<Registry>) -> Self {
        Room {
            id,
            generation,
            props,
            registry,
            participants: BTreeMap::new(),
            subscribers: BTreeMap::new(),
            next_forwarder: 1,
        }
    }

    fn props(&self) -> RoomProps {
        self.props.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn count_changed(&self) {
        self.registry.set_participants(self.id, self.generation, self.participants.len());
    }

    fn check_secret(&self, body: &Map<String, Value>) -> Result<(), VrError> {
        check_password(self.props().secret.as_deref(), body, "secret")
    }

    /// Sends `data` to every participant (publishers and attendees) but `except`.
    fn notify_participants(&self, except: Option<u64>, data: &Value) {
        for (h, p) in &self.participants {
            if Some(*h) != except {
                let _ = p.ctx.push_event(None, data.clone(), None);
            }
        }
    }

    fn leave(&mut self, handle: u64) -> Option<RoomReply> {
        if self.subscribers.contains_key(&handle) {
            self.remove_subscriber(handle);
            return Some(RoomReply {
                data: json!({"videoroom": "event", "left": "ok"}),
                close_pc: true,
                ..Default::default()
            });
        }
        if !self.participants.contains_key(&handle) {
            return None;
        }
        let was_publishing = self.unpublish(handle);
        let p = self.participants.remove(&handle)?;
        self.count_changed();
        let notify_joining = self.props().notify_joining;
        if was_publishing || notify_joining {
            let mut ev = json!({"videoroom": "event", "room": self.id, "leaving": p.id});
            if let Some(d) = &p.display {
                ev["display"] = json!(d);
            }
            self.notify_participants(None, &ev);
        }
        Some(RoomReply {
            data: json!({"videoroom": "event", "room": self.id, "leaving": "ok"}),
            close_pc: was_publishing,
            ..Default::default()
        })
    }

    /// Ends the room: everyone is told `data`, their media is detached, their PCs closed.
    fn teardown(&mut self, ctx: &mut Context<Self>, data: &Value) {
        let handles: Vec<u64> = self.subscribers.keys().copied().collect();
        for h in handles {
            if let Some(sub) = self.subscribers.get(&h) {
                let _ = sub.ctx.push_event(None, data.clone(), None);
                let _ = sub.ctx.close_pc();
            }
            self.remove_subscriber(h);
        }
        for p in self.participants.values_mut() {
            p.ctx.media().clear_sink();
            let _ = p.ctx.push_event(None, data.clone(), None);
            if p.publication.take().is_some() {
                let _ = p.ctx.close_pc();
            }
        }
        self.participants.clear();
        self.registry.remove(self.id, self.generation);
        ctx.stop();
    }

    /// Routes a request to its handler: room management (in `manage`), publishers (in
    /// `publisher`), subscribers (in `subscriber`).
    fn handle_request(&mut self, req: RoomRequest, ctx: &mut Context<Self>) -> Result<RoomReply, VrError> {
        match req {
            // Room management.
            RoomRequest::Edit(body) => self.edit(&body),
            RoomRequest::Destroy(body) => self.destroy(&body, ctx),
            RoomRequest::Kick(body) => self.kick(&body),
            RoomRequest::Moderate(body) => self.moderate(&body),
            RoomRequest::ListParticipants => self.list_participants(),
            RoomRequest::Allowed(body) => self.allowed(&body),
            RoomRequest::ListForwarders(body) => self.list_forwarders(&body),
            RoomRequest::RtpForward(body) => self.rtp_forward(&body),
            RoomRequest::StopRtpForward(body) => self.stop_rtp_forward(&body),
            RoomRequest::EnableRecording(body) => self.enable_recording(&body),
            RoomRequest::Cascade(req) => self.cascade(req),
            // Publishers.
            RoomRequest::JoinPublisher { handle, ctx: pctx, body } => self.join_publisher(handle, pctx, &body),
            RoomRequest::Publish { handle, offer, e2ee, body } => {
                self.publish(handle, &offer, e2ee, &body, ctx.address())
            }
            RoomRequest::PublisherUp { handle } => self.publisher_up(handle),
            RoomRequest::ConfigurePublisher { handle, body, offer, e2ee } => {
                self.configure_or_publish(handle, &body, offer, e2ee, ctx.address())
            }
            RoomRequest::Unpublish { handle } => self.unpublish_request(handle),
            RoomRequest::Talking { handle, mid, talking, level } => self.talking(handle, mid, talking, level),
            RoomRequest::Data { handle, data, binary } => self.publisher_data(handle, data, binary),
            // Subscribers.
            RoomRequest::JoinSubscriber { handle, ctx: sctx, body } => self.join_subscriber(handle, sctx, &body),
            RoomRequest::Start { handle } => self.start(handle),
            RoomRequest::Pause { handle } => self.pause(handle),
            RoomRequest::ConfigureSubscriber { handle, body } => self.configure_subscriber(handle, &body),
            RoomRequest::Subscribe { handle, streams } => self.subscribe(handle, &streams),
            RoomRequest::Unsubscribe { handle, streams } => self.unsubscribe(handle, &streams),
            RoomRequest::Switch { handle, body } => self.switch(handle, &body),
            RoomRequest::SubscriberUp { handle } => self.subscriber_up(handle),
            // Either.
            RoomRequest::MediaGone { handle } => self.media_gone(handle),
            RoomRequest::Leave { handle } => self
                .leave(handle)
                .ok_or_else(|| VrError::new(JOIN_FIRST, "Invalid request on unconfigured participant")),
            #[cfg(feature = "fault-injection")]
            RoomRequest::Fault => panic!("fault injected into room {}", self.id),
        }
    }

    /// The handle's PeerConnection went away.
    fn media_gone(&mut self, handle: u64) -> Result<RoomReply, VrError> {
        if self.subscribers.contains_key(&handle) {
            self.remove_subscriber(handle);
        } else {
            self.unpublish(handle);
        }
        Ok(RoomReply::default())
    }
}

/// Janus's secret/pin check: missing -> 429, wrong -> 433.
pub fn check_password(expected: Option<&str>, body: &Map<String, Value>, key: &str) -> Result<(), VrError> {
    let Some(expected) = expected else { return Ok(()) };
    match body.opt_str(key)? {
        None => Err(VrError::new(MISSING_ELEMENT, format!("Missing mandatory element ({key})"))),
        Some(given) if given == expected => Ok(()),
        Some(_) => Err(VrError::new(UNAUTHORIZED, format!("Unauthorized (wrong {key})"))),
    }
}

fn kind_str(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Audio => "audio",
        MediaKind::Video => "video",
        MediaKind::Data => "data",
    }
}

fn forwarder_json(f: &RtpForwarder, mid: &str) -> Value {
    let mut v = json!({"stream_id": f.stream_id, "type": kind_str(f.kind), "mid": mid,
        "host": f.host, "port": f.port, "srtp": f.is_srtp()});
    if f.ssrc != 0 {
        v["ssrc"] = json!(f.ssrc);
    }
    if f.pt != 0 {
        v["pt"] = json!(f.pt);
    }
    v
}

impl Actor for Room {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1024);
        let fir = self.props().fir_freq;
        if fir > 0 {
            ctx.run_interval(Duration::from_secs(fir), |room, _| {
                for p in room.participants.values() {
                    for s in p.publication.iter().flat_map(|publ| publ.streams.iter()) {
                        s.feed.request_keyframe();
                    }
                }
            });
        }
        ctx.run_interval(REMB_INTERVAL, |room, _| {
            for p in room.participants.values() {
                if let Some(publ) = p.publication.as_ref().filter(|publ| publ.up && publ.bitrate > 0) {
                    p.ctx.media().send_remb(publ.bitrate);
                }
            }
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.registry.remove(self.id, self.generation);
    }
}

impl Handler<RoomRequest> for Room {
    type Result = Result<RoomReply, VrError>;

    fn handle(&mut self, req: RoomRequest, ctx: &mut Context<Self>) -> Self::Result {
        match guard(|| self.handle_request(req, ctx)) {
            Ok(r) => r,
            Err(panic) => {
                tracing::error!(room = self.id, panic = %panic.0, "VideoRoom room panicked; destroying it");
                let data = json!({"videoroom": "destroyed", "room": self.id});
                // The state may be half-updated; tearing down only detaches and notifies.
                let _ = guard(|| self.teardown(ctx, &data));
                self.registry.remove(self.id, self.generation);
                ctx.stop();
                Err(VrError::new(UNKNOWN_ERROR, format!("Room {} failed and was destroyed", self.id)))
            }
        }
    }
}
