//! Publisher requests: `join` as a publisher, `publish` (or `configure` with an offer),
//! `configure`, `unpublish`, and what the media plane reports about a publication (PeerConnection
//! up, talking, data channel messages). Also the participant types and their JSON in events.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use actix::prelude::*;
use portunus_actors::api::ids::random_id;
use portunus_actors::api::validate::Fields;
use portunus_actors::media::sdp::{Direction, SdpInfo};
use portunus_actors::media::{AnswerSpec, MediaKind};
use portunus_actors::plugin::{answer_codecs, PluginCtx};
use serde_json::{json, Map, Value};

use super::super::media::{Feed, PublisherSink, TalkDetector};
use super::super::remote::Endpoint;
use super::{check_password, kind_str, Room, RoomReply, RoomRequest, AUDIO, VIDEO};
use crate::videoroom::errors::*;

/// The audio-level header extension (RFC 6464).
const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

pub(super) struct Participant {
    pub(super) id: u64,
    pub(super) display: Option<String>,
    pub(super) metadata: Option<Value>,
    pub(super) private_id: u32,
    pub(super) ctx: Endpoint,
    pub(super) publication: Option<Publication>,
}

pub(super) struct Publication {
    pub(super) streams: Vec<PubStream>,
    pub(super) up: bool,
    pub(super) bitrate: u64,
}

pub(super) struct PubStream {
    pub(super) talking: bool,
    pub(super) kind: MediaKind,
    pub(super) mindex: usize,
    pub(super) mid: String,
    pub(super) codec: Option<String>,
    pub(super) description: Option<String>,
    pub(super) feed: Arc<Feed>,
}

impl Room {
    pub(super) fn join_publisher(
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

    /// A participant id: the requested one if free (436 when taken), else a random free one.
    pub(super) fn new_participant_id(&self, requested: Option<u64>) -> Result<u64, VrError> {
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

    pub(super) fn publish(
        &mut self,
        handle: u64,
        offer: &SdpInfo,
        e2ee: bool,
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
        if props.require_e2ee && !e2ee {
            return Err(VrError::new(UNAUTHORIZED, "Room requires end-to-end encrypted media"));
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
                            .with_svc(svc)
                            .with_e2ee(e2ee),
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

    /// `configure` from a publisher; with an offer and nothing published yet, `publish` (Janus
    /// compat).
    pub(super) fn configure_or_publish(
        &mut self,
        handle: u64,
        body: &Map<String, Value>,
        offer: Option<SdpInfo>,
        e2ee: bool,
        me: Addr<Room>,
    ) -> Result<RoomReply, VrError> {
        let publishing = self.participant(handle)?.publication.is_some();
        match offer {
            Some(offer) if !publishing => self.publish(handle, &offer, e2ee, body, me),
            _ => self.configure_publisher(handle, body),
        }
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

    /// The publisher's PeerConnection is up: the others learn of its streams.
    pub(super) fn publisher_up(&mut self, handle: u64) -> Result<RoomReply, VrError> {
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

    /// `unpublish`.
    pub(super) fn unpublish_request(&mut self, handle: u64) -> Result<RoomReply, VrError> {
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

    /// Removes a publisher's publication: forwarding stops, subscribers and others are told.
    pub(super) fn unpublish(&mut self, handle: u64) -> bool {
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

    /// From the media plane: a publisher's audio stream started or stopped talking.
    pub(super) fn talking(
        &mut self,
        handle: u64,
        mid: String,
        talking: bool,
        level: u32,
    ) -> Result<RoomReply, VrError> {
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
    pub(super) fn publisher_data(
        &mut self,
        handle: u64,
        data: bytes::Bytes,
        binary: bool,
    ) -> Result<RoomReply, VrError> {
        let p = self.participant(handle)?;
        let feeds = p.publication.iter().flat_map(|publ| &publ.streams).filter(|s| s.kind == MediaKind::Data);
        for s in feeds {
            s.feed.forward_data(&data, binary);
        }
        Ok(RoomReply::default())
    }

    fn participant(&mut self, handle: u64) -> Result<&mut Participant, VrError> {
        self.participants
            .get_mut(&handle)
            .ok_or_else(|| VrError::new(JOIN_FIRST, "Invalid request on unconfigured participant"))
    }

    pub(super) fn publisher_by_id(&self, id: u64) -> Option<&Participant> {
        self.participants.values().find(|p| p.id == id && p.publication.is_some())
    }

    pub(super) fn publisher_json(p: &Participant) -> Value {
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

    pub(super) fn attendee_json(p: &Participant) -> Value {
        let mut v = json!({"id": p.id});
        if let Some(d) = &p.display {
            v["display"] = json!(d);
        }
        if let Some(m) = &p.metadata {
            v["metadata"] = m.clone();
        }
        v
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
