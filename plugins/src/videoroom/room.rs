//! The room actor: participants, publications and subscriptions of one VideoRoom room.
//!
//! Every request a handle makes about a room is a [`RoomRequest`] handled here in order; the
//! media plane ([`super::media`]) is only reconfigured from here. Each request runs inside the
//! panic boundary: a panic ends this room alone (participants get `destroyed` and their
//! PeerConnections closed, the room leaves the registry and can be created again).

mod cascade;
mod configure;
mod manage;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix::prelude::*;
use portunus_actors::api::ids::random_id;
use portunus_actors::api::validate::Fields;
use portunus_actors::media::sdp::{Direction, SdpInfo};
use portunus_actors::media::AnswerSpec;
use portunus_actors::media::{MediaKind, OfferSpec, OfferTrack};
use portunus_actors::plugin::boundary::guard;
use portunus_actors::plugin::{answer_codecs, PluginCtx};
use serde_json::{json, Map, Value};

use super::errors::*;
use super::media::{Feed, Gate, LayerNotice, PublisherSink, RtpForwarder, SubStream, SubscriberSink, TalkDetector};
use super::props::RoomProps;
use super::registry::Registry;
use super::remote::Endpoint;
pub use cascade::CascadeRequest;

/// Codecs we can receive and forward, per kind.
const AUDIO: &[&str] = &["opus", "pcmu", "pcma"];
const VIDEO: &[&str] = &["vp8", "h264", "vp9", "av1"];

/// The audio-level header extension (RFC 6464).
const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

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

struct PubStream {
    talking: bool,
    kind: MediaKind,
    mindex: usize,
    mid: String,
    codec: Option<String>,
    description: Option<String>,
    feed: Arc<Feed>,
}

struct Publication {
    streams: Vec<PubStream>,
    up: bool,
    bitrate: u64,
}

struct Participant {
    id: u64,
    display: Option<String>,
    metadata: Option<Value>,
    private_id: u32,
    ctx: Endpoint,
    publication: Option<Publication>,
}

struct SubSlot {
    mindex: usize,
    mid: String,
    kind: MediaKind,
    codec: Option<String>,
    feed_id: u64,
    feed_mid: String,
    feed: Option<Arc<Feed>>,
    stream: Arc<SubStream>,
}

struct Subscriber {
    ctx: PluginCtx,
    gate: Arc<Gate>,
    sink: Arc<SubscriberSink>,
    slots: Vec<SubSlot>,
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

    fn participant(&mut self, handle: u64) -> Result<&mut Participant, VrError> {
        self.participants
            .get_mut(&handle)
            .ok_or_else(|| VrError::new(JOIN_FIRST, "Invalid request on unconfigured participant"))
    }

    fn subscriber(&mut self, handle: u64) -> Result<&mut Subscriber, VrError> {
        self.subscribers
            .get_mut(&handle)
            .ok_or_else(|| VrError::new(JOIN_FIRST, "Invalid request on unconfigured participant"))
    }

    fn publisher_by_id(&self, id: u64) -> Option<&Participant> {
        self.participants.values().find(|p| p.id == id && p.publication.is_some())
    }

    fn publisher_json(p: &Participant) -> Value {
        let mut v = json!({"id": p.id});
        let o = v.as_object_mut().expect("object");
        if let Some(d) = &p.display {
            o.insert("display".into(), json!(d));
        }
        if let Some(m) = &p.metadata {
            o.insert("metadata".into(), m.clone());
        }
        if let Some(publ) = &p.publication {
            if let Some(c) = publ.streams.iter().find(|s| s.kind == MediaKind::Audio).and_then(|s| s.codec.clone()) {
                o.insert("audio_codec".into(), json!(c));
            }
            if let Some(c) = publ.streams.iter().find(|s| s.kind == MediaKind::Video).and_then(|s| s.codec.clone()) {
                o.insert("video_codec".into(), json!(c));
            }
            o.insert("streams".into(), Value::Array(publ.streams.iter().map(stream_json).collect()));
        }
        v
    }

    fn publishers_list(&self, except: Option<u64>) -> Vec<Value> {
        self.participants
            .iter()
            .filter(|(h, p)| Some(**h) != except && p.publication.as_ref().is_some_and(|publ| publ.up))
            .map(|(_, p)| Self::publisher_json(p))
            .collect()
    }

    fn attendee_json(p: &Participant) -> Value {
        let mut v = json!({"id": p.id});
        if let Some(d) = &p.display {
            v["display"] = json!(d);
        }
        if let Some(m) = &p.metadata {
            v["metadata"] = m.clone();
        }
        v
    }

    /// Ends every subscription to `feeds` and tells the subscribers.
    fn drop_feeds(&mut self, feeds: &[Arc<Feed>]) {
        let room = self.id;
        for sub in self.subscribers.values_mut() {
            let mut changed = false;
            for slot in &mut sub.slots {
                if slot.feed.as_ref().is_some_and(|f| feeds.iter().any(|d| Arc::ptr_eq(d, f))) {
                    slot.feed = None;
                    changed = true;
                }
            }
            if changed {
                sub.sink.set_feeds(sub_feeds(&sub.slots));
                let streams: Vec<Value> = sub.slots.iter().map(|s| slot_json(s, None)).collect();
                let _ =
                    sub.ctx.push_event(None, json!({"videoroom": "updated", "room": room, "streams": streams}), None);
            }
        }
    }

    /// Removes a publisher's publication: forwarding stops, subscribers and others are told.
    fn unpublish(&mut self, handle: u64) -> bool {
        let Some(p) = self.participants.get_mut(&handle) else { return false };
        let Some(publ) = p.publication.take() else { return false };
        p.ctx.media().clear_sink();
        let id = p.id;
        let feeds: Vec<Arc<Feed>> = publ.streams.iter().map(|s| s.feed.clone()).collect();
        self.drop_feeds(&feeds);
        if publ.up {
            self.notify_participants(Some(handle), &json!({"videoroom": "event", "room": self.id, "unpublished": id}));
        }
        true
    }

    fn remove_subscriber(&mut self, handle: u64) {
        if let Some(sub) = self.subscribers.remove(&handle) {
            sub.gate.set(false);
            for slot in &sub.slots {
                if let Some(f) = &slot.feed {
                    f.remove_stream(&slot.stream);
                }
            }
            sub.ctx.media().clear_sink();
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

    /// Routes a request to its handler: room management (in `manage`), publishers, subscribers.
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
            RoomRequest::Publish { handle, offer, body } => self.publish(handle, &offer, &body, ctx.address()),
            RoomRequest::PublisherUp { handle } => self.publisher_up(handle),
            RoomRequest::ConfigurePublisher { handle, body, offer } => {
                self.configure_or_publish(handle, &body, offer, ctx.address())
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

    /// The publisher's PeerConnection is up: the others learn of its streams.
    fn publisher_up(&mut self, handle: u64) -> Result<RoomReply, VrError> {
        let room = self.id;
        let p = self.participant(handle)?;
        let Some(publ) = p.publication.as_mut() else { return Ok(RoomReply::default()) };
        publ.up = true;
        if publ.bitrate > 0 {
            p.ctx.media().send_remb(publ.bitrate);
        }
        let ev = json!({"videoroom": "event", "room": room, "publishers": [Self::publisher_json(p)]});
        self.notify_participants(Some(handle), &ev);
        Ok(RoomReply::default())
    }

    /// `configure` from a publisher; with an offer and nothing published yet, `publish` (Janus
    /// compat).
    fn configure_or_publish(
        &mut self,
        handle: u64,
        body: &Map<String, Value>,
        offer: Option<SdpInfo>,
        me: Addr<Room>,
    ) -> Result<RoomReply, VrError> {
        let publishing = self.participant(handle)?.publication.is_some();
        match offer {
            Some(offer) if !publishing => self.publish(handle, &offer, body, me),
            _ => self.configure_publisher(handle, body),
        }
    }

    /// `unpublish`.
    fn unpublish_request(&mut self, handle: u64) -> Result<RoomReply, VrError> {
        let room = self.id;
        self.participant(handle)?;
        if !self.unpublish(handle) {
            return Err(VrError::new(NOT_PUBLISHED, "Can't unpublish, not published"));
        }
        Ok(RoomReply {
            data: json!({"videoroom": "event", "room": room, "unpublished": "ok"}),
            close_pc: true,
            ..Default::default()
        })
    }

    /// From the media plane: a publisher's audio stream started or stopped talking.
    fn talking(&mut self, handle: u64, mid: String, talking: bool, level: u32) -> Result<RoomReply, VrError> {
        let room = self.id;
        let p = self.participant(handle)?;
        let Some(stream) = p.publication.as_mut().and_then(|publ| publ.streams.iter_mut().find(|s| s.mid == mid))
        else {
            return Ok(RoomReply::default());
        };
        stream.talking = talking;
        let ev = json!({"videoroom": if talking { "talking" } else { "stopped-talking" }, "room": room,
            "id": p.id, "mid": mid, "audio-level-dBov-avg": level});
        self.notify_participants(None, &ev);
        Ok(RoomReply::default())
    }

    /// A publisher's data channel message, for the subscribers of its data streams.
    fn publisher_data(&mut self, handle: u64, data: bytes::Bytes, binary: bool) -> Result<RoomReply, VrError> {
        let p = self.participant(handle)?;
        let feeds = p.publication.iter().flat_map(|publ| &publ.streams).filter(|s| s.kind == MediaKind::Data);
        for s in feeds {
            s.feed.forward_data(&data, binary);
        }
        Ok(RoomReply::default())
    }

    /// `start`: media flows (again); the publishers are asked for keyframes.
    fn start(&mut self, handle: u64) -> Result<RoomReply, VrError> {
        let room = self.id;
        let sub = self.subscriber(handle)?;
        sub.gate.set(true);
        for slot in &sub.slots {
            if let Some(f) = &slot.feed {
                f.request_keyframe();
            }
        }
        Ok(RoomReply::data(json!({"videoroom": "event", "room": room, "started": "ok"})))
    }

    /// `pause`.
    fn pause(&mut self, handle: u64) -> Result<RoomReply, VrError> {
        let room = self.id;
        self.subscriber(handle)?.gate.set(false);
        Ok(RoomReply::data(json!({"videoroom": "event", "room": room, "paused": "ok"})))
    }

    /// `configure` from a subscriber: per-stream `send` and layers, `restart` (ICE restart offer).
    fn configure_subscriber(&mut self, handle: u64, body: &Map<String, Value>) -> Result<RoomReply, VrError> {
        let room = self.id;
        let sub = self.subscriber(handle)?;
        apply_stream_changes(room, sub, body)?;
        let restart = body.opt_bool("restart")?.unwrap_or(false);
        let offer = restart.then(|| subscriber_offer(&sub.slots, true));
        Ok(RoomReply {
            data: json!({"videoroom": "event", "room": room, "configured": "ok"}),
            offer,
            ..Default::default()
        })
    }

    /// `subscribe`: more streams, with a new offer.
    fn subscribe(&mut self, handle: u64, streams: &[Value]) -> Result<RoomReply, VrError> {
        let room = self.id;
        let wanted = self.resolve_streams(streams)?;
        let sub = self.subscriber(handle)?;
        add_slots(room, sub, wanted);
        let streams: Vec<Value> = sub.slots.iter().map(|s| slot_json(s, None)).collect();
        let offer = subscriber_offer(&sub.slots, false);
        Ok(RoomReply {
            data: json!({"videoroom": "updated", "room": room, "streams": streams}),
            offer: Some(offer),
            ..Default::default()
        })
    }

    /// `unsubscribe`: the streams named stop (their m-lines stay, inactive).
    fn unsubscribe(&mut self, handle: u64, streams: &[Value]) -> Result<RoomReply, VrError> {
        let room = self.id;
        let sub = self.subscriber(handle)?;
        for s in streams {
            let Some(o) = s.as_object() else { continue };
            let feed = o.get("feed").and_then(Value::as_u64);
            let mid = o.get("mid").and_then(Value::as_str);
            let sub_mid = o.get("sub_mid").and_then(Value::as_str);
            for slot in &mut sub.slots {
                let hit = sub_mid.is_none_or(|m| slot.mid == m)
                    && feed.is_none_or(|f| slot.feed_id == f)
                    && mid.is_none_or(|m| slot.feed_mid == m);
                if hit {
                    if let Some(f) = slot.feed.take() {
                        f.remove_stream(&slot.stream);
                    }
                }
            }
        }
        sub.sink.set_feeds(sub_feeds(&sub.slots));
        let streams: Vec<Value> = sub.slots.iter().map(|s| slot_json(s, None)).collect();
        Ok(RoomReply::data(json!({"videoroom": "updated", "room": room, "streams": streams})))
    }

    /// The subscriber's PeerConnection is up: its publishers are asked for keyframes.
    fn subscriber_up(&mut self, handle: u64) -> Result<RoomReply, VrError> {
        let sub = self.subscriber(handle)?;
        for slot in &sub.slots {
            if let Some(f) = &slot.feed {
                f.request_keyframe();
            }
        }
        Ok(RoomReply::default())
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

    /// A participant id: the requested one if free (436 when taken), else a random free one.
    fn new_participant_id(&self, requested: Option<u64>) -> Result<u64, VrError> {
        let taken = |id: u64| self.participants.values().any(|p| p.id == id);
        match requested {
            Some(id) if taken(id) => Err(VrError::new(ID_EXISTS, format!("User ID {id} already exists"))),
            Some(id) => Ok(id),
            None => Ok(loop {
                let id = random_id();
                if !taken(id) {
                    break id;
                }
            }),
        }
    }
    fn join_publisher(
        &mut self,
        handle: u64,
        pctx: PluginCtx,
        body: &Map<String, Value>,
    ) -> Result<RoomReply, VrError> {
        if self.participants.contains_key(&handle) {
            return Err(VrError::new(ALREADY_JOINED, "Already in as a publisher on this handle"));
        }
        if self.subscribers.contains_key(&handle) {
            return Err(VrError::new(ALREADY_JOINED, "Already in as a subscriber on this handle"));
        }
        let props = self.props();
        check_password(props.pin.as_deref(), body, "pin").map_err(|e| {
            if e.code == UNAUTHORIZED {
                VrError::new(UNAUTHORIZED, "Unauthorized (wrong pin)")
            } else {
                e
            }
        })?;
        if !props.token_allowed(body.opt_str("token")?) {
            return Err(VrError::new(UNAUTHORIZED, "Unauthorized (not in the allowed list)"));
        }
        let display = body.opt_str("display")?.map(str::to_owned);
        let metadata = body.get("metadata").cloned();
        let id = self.new_participant_id(body.opt_u64("id")?)?;
        let private_id = (random_id() as u32).max(1);
        let p = Participant { id, display, metadata, private_id, ctx: Endpoint::Local(pctx), publication: None };
        let attendee = Self::attendee_json(&p);
        let mut joined = json!({
            "videoroom": "joined",
            "room": self.id,
            "description": props.description,
            "id": id,
            "private_id": private_id,
            "publishers": self.publishers_list(None),
        });
        if props.notify_joining {
            let attendees: Vec<Value> =
                self.participants.values().filter(|o| o.publication.is_none()).map(Self::attendee_json).collect();
            joined["attendees"] = json!(attendees);
            self.notify_participants(None, &json!({"videoroom": "event", "room": self.id, "joining": attendee}));
        }
        self.participants.insert(handle, p);
        self.count_changed();
        Ok(RoomReply::data(joined))
    }

    fn publish(
        &mut self,
        handle: u64,
        offer: &SdpInfo,
        body: &Map<String, Value>,
        me: Addr<Room>,
    ) -> Result<RoomReply, VrError> {
        let props = self.props();
        let publishing = self.participants.values().filter(|p| p.publication.is_some()).count() as u64;
        let room = self.id;
        let p = self.participant(handle)?;
        if p.publication.is_some() {
            return Err(VrError::new(ALREADY_PUBLISHED, "Can't publish, already published"));
        }
        if publishing >= props.publishers {
            return Err(VrError::new(
                PUBLISHERS_FULL,
                format!("Maximum number of publishers ({}) already reached", props.publishers),
            ));
        }
        refuse_recording(body)?;
        apply_identity(p, body)?;
        let descriptions = descriptions(body)?;
        // The room's codecs in its order, narrowed by the request's own `audiocodec`/`videocodec`.
        let allowed = |key: &str, room_list: &[String], ours: &[&str]| -> Result<Vec<String>, VrError> {
            let asked: Option<Vec<String>> =
                body.opt_str(key)?.map(|v| v.split(',').map(|c| c.trim().to_ascii_lowercase()).collect());
            let list = asked.unwrap_or_else(|| room_list.to_vec());
            Ok(list.into_iter().filter(|c| ours.contains(&c.as_str())).collect())
        };
        let answer = AnswerSpec {
            recv_only: true,
            audio_codecs: allowed("audiocodec", &props.audiocodec, AUDIO)?,
            video_codecs: allowed("videocodec", &props.videocodec, VIDEO)?,
            ..AnswerSpec::default()
        };
        // The codec of each stream is the one the core's answer will use.
        let codecs = answer_codecs(offer, &answer);
        let port = p.ctx.media().clone();
        let streams: Vec<PubStream> = offer
            .sections
            .iter()
            .filter(|s| {
                // Data channels have no direction: a publisher's is relayed to its subscribers.
                !s.disabled
                    && (s.kind == MediaKind::Data || matches!(s.direction, Direction::SendRecv | Direction::SendOnly))
            })
            .map(|s| {
                let mid = s.mid.clone().unwrap_or_else(|| s.mindex.to_string());
                let codec = codecs.get(&mid).cloned();
                let talk = s
                    .extmaps
                    .iter()
                    .find(|(_, uri)| uri == AUDIO_LEVEL_URI)
                    .filter(|_| s.kind == MediaKind::Audio && props.audiolevel_event)
                    .map(|(id, _)| {
                        let (me, mid) = (me.clone(), mid.clone());
                        let notify = move |talking, level| {
                            let _ = me.try_send(RoomRequest::Talking { handle, mid: mid.clone(), talking, level });
                        };
                        TalkDetector::new(
                            *id,
                            props.audio_active_packets as u32,
                            props.audio_level_average as u32,
                            Box::new(notify),
                        )
                    });
                // Janus compat (8.2): `video_svc` rooms let subscribers pick VP9 (and AV1) SVC layers.
                let svc =
                    props.video_svc && s.kind == MediaKind::Video && matches!(codec.as_deref(), Some("vp9" | "av1"));
                PubStream {
                    talking: false,
                    kind: s.kind,
                    mindex: s.mindex,
                    description: descriptions.iter().find(|(m, _)| *m == mid).map(|(_, d)| d.clone()),
                    feed: Arc::new(
                        Feed::new(s.kind, mid.clone(), port.clone(), codec.as_deref().unwrap_or_default())
                            .with_talk(talk)
                            .with_layers(&s.rids)
                            .with_svc(svc),
                    ),
                    mid,
                    codec,
                }
            })
            .collect();
        let sink = Arc::new(PublisherSink::default());
        sink.set_feeds(streams.iter().map(|s| s.feed.clone()).collect());
        port.set_sink(sink);
        let bitrate = body.opt_u64("bitrate")?.unwrap_or(props.bitrate);
        let bitrate = if props.bitrate_cap && props.bitrate > 0 { bitrate.min(props.bitrate) } else { bitrate };
        p.publication = Some(Publication { streams, up: false, bitrate });
        let mut data = json!({"videoroom": "event", "room": room, "configured": "ok"});
        if let (Value::Object(dst), Value::Object(src)) = (&mut data, Self::publisher_json(p)) {
            for key in ["audio_codec", "video_codec", "streams"] {
                if let Some(v) = src.get(key) {
                    dst.insert(key.into(), v.clone());
                }
            }
        }
        Ok(RoomReply { data, answer: Some(answer), ..Default::default() })
    }

    fn configure_publisher(&mut self, handle: u64, body: &Map<String, Value>) -> Result<RoomReply, VrError> {
        let props = self.props();
        let room = self.id;
        refuse_recording(body)?;
        let p = self.participant(handle)?;
        let changed = body.contains_key("display") || body.contains_key("metadata");
        apply_identity(p, body)?;
        if let Some(publ) = p.publication.as_mut() {
            if let Some(b) = body.opt_u64("bitrate")? {
                publ.bitrate = if props.bitrate_cap && props.bitrate > 0 { b.min(props.bitrate) } else { b };
                if publ.up && publ.bitrate > 0 {
                    p.ctx.media().send_remb(publ.bitrate);
                }
            }
            let keyframe = body.opt_bool("keyframe")?.unwrap_or(false);
            let descriptions = descriptions(body)?;
            for s in &mut publ.streams {
                if keyframe {
                    s.feed.request_keyframe();
                }
                if let Some((_, d)) = descriptions.iter().find(|(m, _)| *m == s.mid) {
                    s.description = Some(d.clone());
                }
            }
            if let Some(list) = body.opt_array("streams")? {
                for item in list.iter().filter_map(Value::as_object) {
                    let Some(mid) = item.get("mid").and_then(Value::as_str) else { continue };
                    if let Some(s) = publ.streams.iter().find(|s| s.mid == mid) {
                        if let Some(send) = item.get("send").and_then(Value::as_bool) {
                            s.feed.paused.store(!send, Ordering::Relaxed);
                        }
                        if item.get("keyframe").and_then(Value::as_bool) == Some(true) {
                            s.feed.request_keyframe();
                        }
                    }
                }
            }
        }
        if changed && p.publication.as_ref().is_some_and(|publ| publ.up) {
            let ev = json!({"videoroom": "event", "room": room, "publishers": [Self::publisher_json(p)]});
            self.notify_participants(Some(handle), &ev);
        }
        Ok(RoomReply::data(json!({"videoroom": "event", "room": room, "configured": "ok"})))
    }

    /// The publisher streams a `streams` list names (`feed`, optional `mid`).
    fn resolve_streams(&self, streams: &[Value]) -> Result<Vec<(u64, Arc<Feed>, PubInfo)>, VrError> {
        let mut out = Vec::new();
        for s in streams {
            let o = s.as_object().ok_or_else(|| {
                VrError::new(INVALID_ELEMENT, "Invalid element type (streams should be an array of objects)")
            })?;
            let feed = o.req_u64("feed")?;
            let mid = o.opt_str("mid")?;
            let p = self
                .publisher_by_id(feed)
                .ok_or_else(|| VrError::new(NO_SUCH_FEED, format!("No such feed ({feed})")))?;
            let publ = p.publication.as_ref().expect("publisher_by_id checks the publication");
            let picked: Vec<&PubStream> = publ.streams.iter().filter(|ps| mid.is_none_or(|m| ps.mid == m)).collect();
            if picked.is_empty() {
                return Err(VrError::new(
                    NO_SUCH_FEED,
                    format!("No such mid '{}' in feed ({feed})", mid.unwrap_or("")),
                ));
            }
            for ps in picked {
                let info = PubInfo { kind: ps.kind, codec: ps.codec.clone(), mid: ps.mid.clone(), layers: o.clone() };
                out.push((feed, ps.feed.clone(), info));
            }
        }
        Ok(out)
    }

    fn join_subscriber(
        &mut self,
        handle: u64,
        sctx: PluginCtx,
        body: &Map<String, Value>,
    ) -> Result<RoomReply, VrError> {
        if self.participants.contains_key(&handle) {
            return Err(VrError::new(ALREADY_JOINED, "Already in as a publisher on this handle"));
        }
        if self.subscribers.contains_key(&handle) {
            return Err(VrError::new(ALREADY_JOINED, "Already in as a subscriber on this handle"));
        }
        let props = self.props();
        if props.require_pvtid {
            let pvt = body.opt_u64("private_id")?;
            if !pvt.is_some_and(|pvt| self.participants.values().any(|p| u64::from(p.private_id) == pvt)) {
                return Err(VrError::new(UNAUTHORIZED, "Unauthorized (this room requires a valid private_id)"));
            }
        }
        // Legacy form: a single `feed`.
        let streams: Vec<Value> = match (body.opt_array("streams")?, body.opt_u64("feed")?) {
            (Some(list), _) => list.clone(),
            (None, Some(feed)) => vec![json!({"feed": feed})],
            (None, None) => return Err(VrError::new(MISSING_ELEMENT, "Missing mandatory element (streams)")),
        };
        let wanted = self.resolve_streams(&streams)?;
        let mut sub = Subscriber {
            ctx: sctx,
            gate: Arc::new(Gate::default()),
            sink: Arc::new(SubscriberSink::default()),
            slots: Vec::new(),
        };
        add_slots(self.id, &mut sub, wanted);
        sub.ctx.media().set_sink(sub.sink.clone());
        let displays: Vec<Value> = sub.slots.iter().map(|s| slot_json(s, self.display_of(s.feed_id))).collect();
        let offer = subscriber_offer(&sub.slots, false);
        self.subscribers.insert(handle, sub);
        Ok(RoomReply {
            data: json!({"videoroom": "attached", "room": self.id, "streams": displays}),
            offer: Some(offer),
            ..Default::default()
        })
    }

    /// `switch`: subscriber m-lines change source without renegotiation.
    fn switch(&mut self, handle: u64, body: &Map<String, Value>) -> Result<RoomReply, VrError> {
        let room = self.id;
        let slots = self.subscriber(handle)?.slots.iter().map(|s| (s.mid.clone(), s.kind)).collect::<Vec<_>>();
        // (subscriber mid, new feed, its stream)
        let mut plan: Vec<(String, u64, Arc<Feed>, PubInfo)> = Vec::new();
        match (body.opt_array("streams")?, body.opt_u64("feed")?) {
            (Some(list), _) => {
                for item in list {
                    let o = item.as_object().ok_or_else(|| {
                        VrError::new(INVALID_ELEMENT, "Invalid element type (streams should be an array of objects)")
                    })?;
                    let sub_mid = o.req_str("sub_mid")?.to_owned();
                    let [(feed, stream, info)]: [_; 1] = self
                        .resolve_streams(&[json!({"feed": o.req_u64("feed")?, "mid": o.req_str("mid")?})])?
                        .try_into()
                        .map_err(|_| VrError::new(NO_SUCH_FEED, "No such stream"))?;
                    let kind = slots.iter().find(|(m, _)| *m == sub_mid).map(|(_, k)| *k).ok_or_else(|| {
                        VrError::new(INVALID_ELEMENT, format!("Subscriber stream '{sub_mid}' not found"))
                    })?;
                    if kind != info.kind {
                        return Err(VrError::new(
                            INVALID_ELEMENT,
                            format!("Can't switch '{sub_mid}': media type differs"),
                        ));
                    }
                    plan.push((sub_mid, feed, stream, info));
                }
            }
            (None, Some(feed)) => {
                // Legacy: every m-line takes the new publisher's stream of the same kind.
                let mut offered = self.resolve_streams(&[json!({"feed": feed})])?;
                for (mid, kind) in &slots {
                    if let Some(pos) = offered.iter().position(|(_, _, i)| i.kind == *kind) {
                        let (f, stream, info) = offered.remove(pos);
                        plan.push((mid.clone(), f, stream, info));
                    }
                }
            }
            (None, None) => return Err(VrError::new(MISSING_ELEMENT, "Missing mandatory element (streams)")),
        }
        let sub = self.subscriber(handle)?;
        let changes = plan.len();
        for (sub_mid, feed_id, feed, info) in plan {
            let Some(slot) = sub.slots.iter_mut().find(|s| s.mid == sub_mid) else { continue };
            if let Some(old) = slot.feed.take() {
                old.remove_stream(&slot.stream);
            }
            feed.add_subscriber(slot.stream.clone());
            feed.request_keyframe();
            slot.feed = Some(feed);
            slot.feed_id = feed_id;
            slot.feed_mid = info.mid;
            slot.codec = info.codec;
        }
        sub.sink.set_feeds(sub_feeds(&sub.slots));
        let streams: Vec<Value> = sub.slots.iter().map(|s| slot_json(s, None)).collect();
        Ok(RoomReply::data(
            json!({"videoroom": "event", "switched": "ok", "room": room, "changes": changes, "streams": streams}),
        ))
    }

    fn display_of(&self, feed: u64) -> Option<String> {
        self.participants.values().find(|p| p.id == feed).and_then(|p| p.display.clone())
    }
}

/// What a subscriber needs to know about one publisher stream.
struct PubInfo {
    kind: MediaKind,
    codec: Option<String>,
    mid: String,
    /// The layers the subscription asks for (`substream`, `temporal`, `spatial_layer`, ...).
    layers: Map<String, Value>,
}

/// Applies a `streams` item's layer choices to a subscriber stream: simulcast `substream`,
/// `temporal`, `fallback` (µs) and SVC `spatial_layer`, `temporal_layer`.
fn apply_layer_choice(stream: &SubStream, item: &Map<String, Value>) {
    let layer = |key: &str| item.get(key).and_then(Value::as_u64).map(|n| n.min(2) as u8);
    let sel = &stream.selector;
    if let Some(n) = layer("substream") {
        sel.substream.store(n, Ordering::Relaxed);
    }
    if let Some(n) = layer("temporal") {
        sel.temporal.store(n, Ordering::Relaxed);
    }
    if let Some(us) = item.get("fallback").and_then(Value::as_u64) {
        sel.fallback_ms.store(us / 1000, Ordering::Relaxed);
        stream.fallback_us.store(us, Ordering::Relaxed);
    }
    if let Some(n) = layer("spatial_layer") {
        sel.svc.spatial.store(n, Ordering::Relaxed);
    }
    if let Some(n) = layer("temporal_layer") {
        sel.svc.temporal.store(n, Ordering::Relaxed);
    }
}

/// Tells the subscriber its stream `mid` switched layers (`substream` / `temporal`).
fn layer_notice(ctx: &PluginCtx, room: u64, mid: &str) -> LayerNotice {
    let (ctx, mid) = (ctx.clone(), mid.to_owned());
    Box::new(move |what, n| {
        let mut ev = json!({"videoroom": "event", "room": room, "mid": mid});
        ev[what] = json!(n);
        let _ = ctx.push_event(None, ev, None);
    })
}

fn add_slots(room: u64, sub: &mut Subscriber, wanted: Vec<(u64, Arc<Feed>, PubInfo)>) {
    for (feed_id, feed, info) in wanted {
        let mindex = sub.slots.len();
        let mid = mindex.to_string();
        let notice = (feed.layer_count() > 0 || feed.is_svc()).then(|| layer_notice(&sub.ctx, room, &mid));
        let stream = Arc::new(SubStream::new(mid.clone(), sub.ctx.media().clone(), sub.gate.clone(), notice));
        apply_layer_choice(&stream, &info.layers);
        feed.add_subscriber(stream.clone());
        if sub.gate.is_open() {
            feed.request_keyframe();
        }
        sub.slots.push(SubSlot {
            mindex,
            mid,
            kind: info.kind,
            codec: info.codec,
            feed_id,
            feed_mid: info.mid,
            feed: Some(feed),
            stream,
        });
    }
    sub.sink.set_feeds(sub_feeds(&sub.slots));
}

fn sub_feeds(slots: &[SubSlot]) -> Vec<(String, Arc<Feed>)> {
    slots.iter().filter_map(|s| Some((s.mid.clone(), s.feed.clone()?))).collect()
}

/// The plugin's offer to a subscriber: its audio and video slots as send-only tracks, and a data
/// channel when it subscribed to a publisher's data.
fn subscriber_offer(slots: &[SubSlot], ice_restart: bool) -> OfferSpec {
    OfferSpec { tracks: offer_tracks(slots), data: slots.iter().any(|s| s.kind == MediaKind::Data), ice_restart }
}

fn offer_tracks(slots: &[SubSlot]) -> Vec<OfferTrack> {
    slots
        .iter()
        .filter(|s| s.kind != MediaKind::Data)
        .map(|s| OfferTrack {
            kind: s.kind,
            codec: s.codec.clone().unwrap_or_default(),
            mid: Some(s.mid.clone()),
            send_only: true,
        })
        .collect()
}

/// A subscriber `configure`'s per-stream changes (`send`, layers; see [`configure::stream_changes`])
/// and the deprecated per-kind `audio`/`video` toggles.
fn apply_stream_changes(room: u64, sub: &mut Subscriber, body: &Map<String, Value>) -> Result<(), VrError> {
    let items = configure::stream_changes(body, |mid| sub.slots.iter().any(|s| s.mid == mid))?;
    for item in &items {
        // Janus compat (8.2): an item without `mid` is for every stream; layers only touch video.
        let mid = item.get("mid").and_then(Value::as_str);
        for slot in sub.slots.iter().filter(|s| mid.is_none_or(|m| s.mid == m)) {
            if let Some(send) = item.get("send").and_then(Value::as_bool) {
                slot.stream.send.store(send, Ordering::Relaxed);
            }
            if slot.kind != MediaKind::Video {
                continue;
            }
            notify_current_layers(room, &sub.ctx, slot, item);
            apply_layer_choice(&slot.stream, item);
            if let Some(f) = &slot.feed {
                f.request_keyframe();
            }
        }
    }
    // Deprecated per-kind toggles.
    for (key, kind) in [("audio", MediaKind::Audio), ("video", MediaKind::Video)] {
        if let Some(on) = body.opt_bool(key)? {
            for slot in sub.slots.iter().filter(|s| s.kind == kind) {
                slot.stream.send.store(on, Ordering::Relaxed);
            }
        }
    }
    Ok(())
}

/// Janus compat (8.2): a subscriber asking for the layer one of its video streams already gets
/// is told so at once (`{"videoroom":"event","room","mid","substream":n}`, likewise `temporal`
/// for VP8 simulcast, `spatial_layer`/`temporal_layer` for SVC), before `configured`; a change is
/// announced when it happens (see `layer_notice`).
fn notify_current_layers(room: u64, ctx: &PluginCtx, slot: &SubSlot, item: &Map<String, Value>) {
    let Some(feed) = slot.feed.as_ref().filter(|_| slot.kind == MediaKind::Video) else { return };
    let sel = &slot.stream.selector;
    let current: [(&str, Option<u8>); 2] = if feed.layer_count() > 0 {
        let (substream, temporal) = sel.simulcast_layers();
        let vp8 = slot.codec.as_deref() == Some("vp8");
        [("substream", substream.map(|n| n as u8)), ("temporal", temporal.filter(|_| vp8))]
    } else if feed.is_svc() {
        let (spatial, temporal) = sel.svc_layers();
        [("spatial_layer", spatial), ("temporal_layer", temporal)]
    } else {
        return;
    };
    for (key, now) in current {
        let asked = item.get(key).and_then(Value::as_u64);
        if let Some(n) = now.filter(|n| asked == Some(u64::from(*n))) {
            let _ = ctx.push_event(None, json!({"videoroom": "event", "room": room, "mid": slot.mid, key: n}), None);
        }
    }
}

/// Recording arrives with the Record&Play work; until then asking for it is a clear error.
fn refuse_recording(body: &Map<String, Value>) -> Result<(), VrError> {
    if body.opt_bool("record")? == Some(true) {
        return Err(VrError::new(UNKNOWN_ERROR, "Recording is not supported yet"));
    }
    Ok(())
}

fn apply_identity(p: &mut Participant, body: &Map<String, Value>) -> Result<(), VrError> {
    if let Some(d) = body.opt_str("display")? {
        p.display = Some(d.to_owned());
    }
    if let Some(m) = body.get("metadata") {
        p.metadata = Some(m.clone());
    }
    Ok(())
}

fn descriptions(body: &Map<String, Value>) -> Result<Vec<(String, String)>, VrError> {
    let Some(list) = body.opt_array("descriptions")? else { return Ok(Vec::new()) };
    Ok(list
        .iter()
        .filter_map(|d| {
            let o = d.as_object()?;
            Some((o.get("mid")?.as_str()?.to_owned(), o.get("description")?.as_str()?.to_owned()))
        })
        .collect())
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

fn stream_json(s: &PubStream) -> Value {
    let mut v = json!({"type": kind_str(s.kind), "mindex": s.mindex, "mid": s.mid});
    if let Some(c) = &s.codec {
        v["codec"] = json!(c);
    }
    if let Some(d) = &s.description {
        v["description"] = json!(d);
    }
    if s.feed.moderated.load(Ordering::Relaxed) {
        v["moderated"] = json!(true);
    }
    if s.feed.layer_count() > 0 {
        v["simulcast"] = json!(true);
    }
    if s.feed.is_svc() {
        v["svc"] = json!(true);
    }
    if s.kind == MediaKind::Audio && s.talking {
        v["talking"] = json!(true);
    }
    v
}

fn slot_json(s: &SubSlot, display: Option<String>) -> Value {
    let active = s.feed.is_some();
    let mut v = json!({
        "type": kind_str(s.kind),
        "active": active,
        "mindex": s.mindex,
        "mid": s.mid,
        "ready": false,
        "send": s.stream.send.load(Ordering::Relaxed),
    });
    if active {
        v["feed_id"] = json!(s.feed_id);
        v["feed_mid"] = json!(s.feed_mid);
        if let Some(d) = display {
            v["feed_display"] = json!(d);
        }
        if let Some(c) = &s.codec {
            v["codec"] = json!(c);
        }
        if s.feed.as_ref().is_some_and(|f| f.layer_count() > 0) {
            // Janus compat (8.2): the layers received (-1 before the first) and asked for, and
            // the fallback when one was asked for.
            let sel = &s.stream.selector;
            let (substream, temporal) = sel.simulcast_layers();
            v["simulcast"] = json!({
                "substream": substream.map_or(-1, |n| n as i64),
                "substream-target": sel.substream.load(Ordering::Relaxed),
                "temporal-layer": temporal.map_or(-1, i64::from),
                "temporal-layer-target": sel.temporal.load(Ordering::Relaxed),
            });
            let fallback = s.stream.fallback_us.load(Ordering::Relaxed);
            if fallback > 0 {
                v["simulcast"]["fallback"] = json!(fallback);
            }
        }
        if s.feed.as_ref().is_some_and(|f| f.is_svc()) {
            // Janus compat (8.2): the layers received (-1 before the first) and asked for.
            let (spatial, temporal) = s.stream.selector.svc.get();
            let (got_s, got_t) = s.stream.selector.svc_layers();
            let got = |n: Option<u8>| n.map_or(-1, i64::from);
            v["svc"] = json!({
                "spatial-layer": got(got_s),
                "target-spatial-layer": spatial,
                "temporal-layer": got(got_t),
                "target-temporal-layer": temporal,
            });
        }
    }
    v
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
