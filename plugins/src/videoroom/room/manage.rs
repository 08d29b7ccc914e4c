//! Room management requests, the ones that need the room's `secret` or list its state:
//! `edit`, `destroy`, `kick`, `moderate`, `listparticipants`, `allowed`, `listforwarders`,
//! `rtp_forward`, `stop_rtp_forward`, `enable_recording`.

use std::net::ToSocketAddrs;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use actix::prelude::*;
use portunus_actors::api::validate::Fields;
use portunus_actors::media::srtp::SrtpSender;
use portunus_actors::media::MediaKind;
use serde_json::{json, Map, Value};

use super::super::media::{Feed, RtpForwarder};
use super::super::props::tokens;
use super::{forwarder_json, Room, RoomReply};
use crate::videoroom::errors::*;

impl Room {
    /// `edit`: new room properties (and, with `permanent`, the rooms file).
    pub(super) fn edit(&mut self, body: &Map<String, Value>) -> Result<RoomReply, VrError> {
        let room = self.id;
        self.check_secret(body)?;
        let mut props = self.props();
        props.edit(body)?;
        *self.props.write().unwrap_or_else(|e| e.into_inner()) = props;
        if body.opt_bool("permanent")? == Some(true) {
            self.registry.persist(room, true).map_err(|e| VrError::new(UNKNOWN_ERROR, e.0))?;
        }
        Ok(RoomReply::data(json!({"videoroom": "edited", "room": room})))
    }

    /// `destroy`: everyone is told, the room ends.
    pub(super) fn destroy(&mut self, body: &Map<String, Value>, ctx: &mut Context<Self>) -> Result<RoomReply, VrError> {
        let room = self.id;
        self.check_secret(body)?;
        let permanent = body.opt_bool("permanent")?.unwrap_or(false);
        if permanent {
            self.registry.persist(room, false).map_err(|e| VrError::new(UNKNOWN_ERROR, e.0))?;
        }
        self.teardown(ctx, &json!({"videoroom": "destroyed", "room": room}));
        Ok(RoomReply::data(json!({"videoroom": "destroyed", "room": room, "permanent": permanent})))
    }

    /// `kick`: the participant leaves, the others are told.
    pub(super) fn kick(&mut self, body: &Map<String, Value>) -> Result<RoomReply, VrError> {
        let room = self.id;
        self.check_secret(body)?;
        let id = body.req_u64("id")?;
        let handle = self
            .participants
            .iter()
            .find(|(_, p)| p.id == id)
            .map(|(h, _)| *h)
            .ok_or_else(|| VrError::new(NO_SUCH_FEED, format!("No such user {id} in room {room}")))?;
        let display = self.participants.get(&handle).and_then(|p| p.display.clone());
        let kicked = self.participants.get(&handle).map(|p| p.ctx.clone());
        let was_publishing = self.unpublish(handle);
        self.participants.remove(&handle);
        self.count_changed();
        if let Some(kctx) = kicked {
            let _ = kctx.push_event(
                None,
                json!({"videoroom": "event", "room": room, "leaving": "ok", "reason": "kicked"}),
                None,
            );
            if was_publishing {
                let _ = kctx.close_pc();
            }
        }
        let mut ev = json!({"videoroom": "event", "room": room, "kicked": id});
        if let Some(d) = display {
            ev["display"] = json!(d);
        }
        self.notify_participants(None, &ev);
        Ok(RoomReply::data(json!({"videoroom": "success"})))
    }

    /// `moderate`: mutes or unmutes one stream of a publisher.
    pub(super) fn moderate(&self, body: &Map<String, Value>) -> Result<RoomReply, VrError> {
        let room = self.id;
        self.check_secret(body)?;
        let id = body.req_u64("id")?;
        let mid = body.req_str("mid")?.to_owned();
        let mute = body.req_bool("mute")?;
        let p = self
            .participants
            .values()
            .find(|p| p.id == id)
            .ok_or_else(|| VrError::new(NO_SUCH_FEED, format!("No such user {id} in room {room}")))?;
        let stream = p
            .publication
            .as_ref()
            .and_then(|publ| publ.streams.iter().find(|s| s.mid == mid))
            .ok_or_else(|| VrError::new(NO_SUCH_FEED, format!("No such mid {mid} for user {id} in room {room}")))?;
        stream.feed.moderated.store(mute, Ordering::Relaxed);
        let ev = json!({"videoroom": "event", "room": room, "id": id, "mid": mid,
            "moderation": if mute { "muted" } else { "unmuted" }});
        self.notify_participants(None, &ev);
        Ok(RoomReply::data(json!({"videoroom": "success"})))
    }

    /// `listparticipants`.
    pub(super) fn list_participants(&self) -> Result<RoomReply, VrError> {
        let room = self.id;
        let audiolevel_event = self.props().audiolevel_event;
        let list: Vec<Value> = self
            .participants
            .values()
            .map(|p| {
                let mut v = Self::attendee_json(p);
                v["publisher"] = json!(p.publication.as_ref().is_some_and(|publ| publ.up));
                if audiolevel_event {
                    let talking = p.publication.iter().flat_map(|publ| &publ.streams).any(|s| s.talking);
                    v["talking"] = json!(talking);
                }
                v
            })
            .collect();
        Ok(RoomReply::data(json!({"videoroom": "participants", "room": room, "participants": list})))
    }

    /// `allowed`: edits the token list.
    pub(super) fn allowed(&self, body: &Map<String, Value>) -> Result<RoomReply, VrError> {
        let room = self.id;
        self.check_secret(body)?;
        let action = body.req_str("action")?.to_owned();
        let list = match body.opt_array("allowed")? {
            Some(a) => tokens(a)?,
            None if action == "add" || action == "remove" => {
                return Err(VrError::new(MISSING_ELEMENT, "Missing mandatory element (allowed)"))
            }
            None => Vec::new(),
        };
        let mut props = self.props();
        match action.as_str() {
            "enable" => props.allowed = Some(props.allowed.take().unwrap_or_default()),
            "disable" => props.allowed = None,
            "add" => {
                let acl = props.allowed.get_or_insert_with(Vec::new);
                for t in list {
                    if !acl.contains(&t) {
                        acl.push(t);
                    }
                }
            }
            "remove" => {
                if let Some(acl) = props.allowed.as_mut() {
                    acl.retain(|t| !list.contains(t));
                }
            }
            _ => {
                return Err(VrError::new(INVALID_ELEMENT, "Unsupported action '".to_owned() + &action + "' (allowed)"))
            }
        }
        let allowed = props.allowed.clone().unwrap_or_default();
        *self.props.write().unwrap_or_else(|e| e.into_inner()) = props;
        Ok(RoomReply::data(json!({"videoroom": "success", "room": room, "allowed": allowed})))
    }

    /// `listforwarders`.
    pub(super) fn list_forwarders(&self, body: &Map<String, Value>) -> Result<RoomReply, VrError> {
        let room = self.id;
        self.check_secret(body)?;
        let publishers: Vec<Value> = self
            .participants
            .values()
            .filter_map(|p| {
                let publ = p.publication.as_ref()?;
                let fwds: Vec<Value> = publ
                    .streams
                    .iter()
                    .flat_map(|s| s.feed.forwarders().iter().map(|f| forwarder_json(f, &s.mid)).collect::<Vec<_>>())
                    .collect();
                (!fwds.is_empty()).then(|| json!({"publisher_id": p.id, "forwarders": fwds}))
            })
            .collect();
        Ok(RoomReply::data(json!({"videoroom": "forwarders", "room": room, "publishers": publishers})))
    }

    /// `stop_rtp_forward`.
    pub(super) fn stop_rtp_forward(&self, body: &Map<String, Value>) -> Result<RoomReply, VrError> {
        let room = self.id;
        self.check_secret(body)?;
        let publisher_id = body.req_u64("publisher_id")?;
        let stream_id = body.req_u64("stream_id")? as u32;
        let p = self
            .publisher_by_id(publisher_id)
            .ok_or_else(|| VrError::new(NO_SUCH_FEED, format!("No such publisher ({publisher_id})")))?;
        let found =
            p.publication.as_ref().is_some_and(|publ| publ.streams.iter().any(|s| s.feed.remove_forwarder(stream_id)));
        if !found {
            return Err(VrError::new(NO_SUCH_FEED, format!("No such stream ({stream_id})")));
        }
        Ok(RoomReply::data(json!({"videoroom": "stop_rtp_forward", "room": room,
            "publisher_id": publisher_id, "stream_id": stream_id})))
    }

    /// `enable_recording` (only turning it off, until recording exists).
    pub(super) fn enable_recording(&self, body: &Map<String, Value>) -> Result<RoomReply, VrError> {
        self.check_secret(body)?;
        let record = body.req_bool("record")?;
        if record {
            return Err(VrError::new(UNKNOWN_ERROR, "Recording is not supported yet"));
        }
        Ok(RoomReply::data(json!({"videoroom": "success", "record": false})))
    }

    /// `rtp_forward`: publisher streams sent as plain RTP (or SRTP) to UDP addresses.
    pub(super) fn rtp_forward(&mut self, body: &Map<String, Value>) -> Result<RoomReply, VrError> {
        self.check_secret(body)?;
        let room = self.id;
        let publisher_id = body.req_u64("publisher_id")?;
        let default_host = body.opt_str("host")?.map(str::to_owned);
        let p = self
            .publisher_by_id(publisher_id)
            .ok_or_else(|| VrError::new(NO_SUCH_FEED, format!("No such publisher ({publisher_id})")))?;
        let publ = p.publication.as_ref().expect("publisher_by_id checks the publication");
        let mut wanted: Vec<(String, String, u16, u32, u8)> = Vec::new();
        if let Some(list) = body.opt_array("streams")? {
            for s in list {
                let o = s.as_object().ok_or_else(|| {
                    VrError::new(INVALID_ELEMENT, "Invalid element type (streams should be an array of objects)")
                })?;
                let mid = o.req_str("mid")?.to_owned();
                let host = match o.opt_str("host")? {
                    Some(h) => h.to_owned(),
                    None => default_host
                        .clone()
                        .ok_or_else(|| VrError::new(MISSING_ELEMENT, "Missing mandatory element (host)"))?,
                };
                let port = o.req_u64("port")?;
                let ssrc = o.opt_u64("ssrc")?.unwrap_or(0) as u32;
                let pt = o.opt_u64("pt")?.unwrap_or(0) as u8;
                wanted.push((mid, host, port as u16, ssrc, pt));
            }
        } else {
            // Deprecated flat form: audio_port / video_port for the first stream of each kind.
            let host = default_host
                .clone()
                .ok_or_else(|| VrError::new(MISSING_ELEMENT, "Missing mandatory element (host)"))?;
            for (kind, prefix) in [(MediaKind::Audio, "audio"), (MediaKind::Video, "video")] {
                if let Some(port) = body.opt_u64(&format!("{prefix}_port"))? {
                    if let Some(s) = publ.streams.iter().find(|s| s.kind == kind) {
                        let ssrc = body.opt_u64(&format!("{prefix}_ssrc"))?.unwrap_or(0) as u32;
                        let pt = body.opt_u64(&format!("{prefix}_pt"))?.unwrap_or(0) as u8;
                        wanted.push((s.mid.clone(), host.clone(), port as u16, ssrc, pt));
                    }
                }
            }
        }
        // One SRTP key for every stream of the request, as Janus does.
        let srtp = match (body.opt_u64("srtp_suite")?, body.opt_str("srtp_crypto")?) {
            (None, None) => None,
            (Some(suite), Some(crypto)) => Some((suite, crypto.to_owned())),
            (_, None) => return Err(VrError::new(MISSING_ELEMENT, "Missing mandatory element (srtp_crypto)")),
            (None, _) => return Err(VrError::new(MISSING_ELEMENT, "Missing mandatory element (srtp_suite)")),
        };
        let srtp_sender = |(suite, crypto): &(u64, String)| {
            SrtpSender::new(*suite, crypto)
                .map_err(|e| VrError::new(INVALID_ELEMENT, format!("Invalid SRTP settings: {e}")))
        };
        // Checked before any forwarder starts, so a bad key adds none.
        if let Some(settings) = &srtp {
            srtp_sender(settings)?;
        }
        let feeds: Vec<Arc<Feed>> = publ.streams.iter().map(|s| s.feed.clone()).collect();
        let mut created = Vec::new();
        for (mid, host, port, ssrc, pt) in wanted {
            let stream = feeds
                .iter()
                .find(|f| f.mid == mid)
                .ok_or_else(|| VrError::new(NO_SUCH_FEED, format!("No such mid '{mid}' in feed ({publisher_id})")))?;
            let dest = (host.as_str(), port)
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| VrError::new(INVALID_ELEMENT, format!("Could not resolve address ({host})")))?;
            let id = self.next_forwarder;
            self.next_forwarder += 1;
            let sender = srtp.as_ref().map(srtp_sender).transpose()?;
            let f = RtpForwarder::new(id, stream.kind, host, dest, ssrc, pt)
                .map_err(|e| VrError::new(UNKNOWN_ERROR, format!("Error creating forwarder: {e}")))?
                .with_srtp(sender);
            let f = Arc::new(f);
            stream.add_forwarder(f.clone());
            stream.request_keyframe();
            created.push(forwarder_json(&f, &mid));
        }
        Ok(RoomReply::data(
            json!({"videoroom": "rtp_forward", "room": room, "publisher_id": publisher_id, "forwarders": created}),
        ))
    }
}
