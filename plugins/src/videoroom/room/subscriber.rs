//! Subscriber requests: `join` as a subscriber, `subscribe`, `unsubscribe`, `switch`,
//! `configure` (per-stream `send` and simulcast/SVC layers), `start`, `pause`; and the effect of
//! a publication ending on the subscriptions to it. Also the subscription types and their JSON.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use portunus_actors::api::validate::Fields;
use portunus_actors::media::{MediaKind, OfferSpec, OfferTrack};
use portunus_actors::plugin::PluginCtx;
use serde_json::{json, Map, Value};

use super::super::media::{Feed, Gate, LayerNotice, SubStream, SubscriberSink};
use super::publisher::PubStream;
use super::{configure, kind_str, Room, RoomReply};
use crate::videoroom::errors::*;

pub(super) struct Subscriber {
    pub(super) ctx: PluginCtx,
    gate: Arc<Gate>,
    sink: Arc<SubscriberSink>,
    slots: Vec<SubSlot>,
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

/// What a subscriber needs to know about one publisher stream.
struct PubInfo {
    kind: MediaKind,
    codec: Option<String>,
    mid: String,
    /// The layers the subscription asks for (`substream`, `temporal`, `spatial_layer`, ...).
    layers: Map<String, Value>,
}

impl Room {
    pub(super) fn join_subscriber(
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
        // Legacy form: a single `feed`, whose streams of a kind `offer_audio`/`offer_video`/
        // `offer_data` false leave out.
        let (streams, legacy): (Vec<Value>, bool) = match (body.opt_array("streams")?, body.opt_u64("feed")?) {
            (Some(list), _) => (list.clone(), false),
            (None, Some(feed)) => (vec![json!({"feed": feed})], true),
            (None, None) => return Err(VrError::new(MISSING_ELEMENT, "Missing mandatory element (streams)")),
        };
        let mut wanted = self.resolve_streams(&streams)?;
        let toggles = kind_flags(body, "")?;
        if legacy {
            let left_out = kind_flags(body, "offer_")?;
            wanted.retain(|(_, _, info)| !left_out.contains(&(info.kind, false)));
        }
        let mut sub = Subscriber {
            ctx: sctx,
            gate: Arc::new(Gate::default()),
            sink: Arc::new(SubscriberSink::default()),
            slots: Vec::new(),
        };
        add_slots(self.id, &mut sub, wanted);
        apply_kind_toggles(&sub, &toggles);
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

    /// `subscribe`: more streams, with a new offer.
    pub(super) fn subscribe(&mut self, handle: u64, streams: &[Value]) -> Result<RoomReply, VrError> {
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
    pub(super) fn unsubscribe(&mut self, handle: u64, streams: &[Value]) -> Result<RoomReply, VrError> {
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

    /// `switch`: subscriber m-lines change source without renegotiation.
    pub(super) fn switch(&mut self, handle: u64, body: &Map<String, Value>) -> Result<RoomReply, VrError> {
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

    /// `configure` from a subscriber: per-stream `send` and layers, `restart` (ICE restart offer).
    pub(super) fn configure_subscriber(
        &mut self,
        handle: u64,
        body: &Map<String, Value>,
    ) -> Result<RoomReply, VrError> {
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

    /// `start`: media flows (again); the publishers are asked for keyframes.
    pub(super) fn start(&mut self, handle: u64) -> Result<RoomReply, VrError> {
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
    pub(super) fn pause(&mut self, handle: u64) -> Result<RoomReply, VrError> {
        let room = self.id;
        self.subscriber(handle)?.gate.set(false);
        Ok(RoomReply::data(json!({"videoroom": "event", "room": room, "paused": "ok"})))
    }

    /// The subscriber's PeerConnection is up: its publishers are asked for keyframes.
    pub(super) fn subscriber_up(&mut self, handle: u64) -> Result<RoomReply, VrError> {
        let sub = self.subscriber(handle)?;
        for slot in &sub.slots {
            if let Some(f) = &slot.feed {
                f.request_keyframe();
            }
        }
        Ok(RoomReply::default())
    }

    pub(super) fn remove_subscriber(&mut self, handle: u64) {
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

    /// Ends every subscription to `feeds` and tells the subscribers.
    pub(super) fn drop_feeds(&mut self, feeds: &[Arc<Feed>]) {
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

    fn subscriber(&mut self, handle: u64) -> Result<&mut Subscriber, VrError> {
        self.subscribers
            .get_mut(&handle)
            .ok_or_else(|| VrError::new(JOIN_FIRST, "Invalid request on unconfigured participant"))
    }

    fn display_of(&self, feed: u64) -> Option<String> {
        self.participants.values().find(|p| p.id == feed).and_then(|p| p.display.clone())
    }
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

/// The plugin's offer to a subscriber: its audio and video slots as send-only tracks, and a data
/// channel when it subscribed to a publisher's data.
fn subscriber_offer(slots: &[SubSlot], ice_restart: bool) -> OfferSpec {
    OfferSpec {
        tracks: offer_tracks(slots),
        data: slots.iter().any(|s| s.kind == MediaKind::Data),
        ice_restart,
        // Janus compat: a subscription to any end-to-end encrypted stream is offered as e2ee.
        e2ee: slots.iter().any(|s| s.feed.as_ref().is_some_and(|f| f.is_e2ee())),
    }
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
/// and the deprecated per-kind `audio`/`video`/`data` toggles.
fn apply_stream_changes(room: u64, sub: &mut Subscriber, body: &Map<String, Value>) -> Result<(), VrError> {
    let items = configure::stream_changes(body, |mid| sub.slots.iter().any(|s| s.mid == mid))?;
    let toggles = kind_flags(body, "")?;
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
            // Janus asks for a keyframe only when the picture changes layer; the selector asks
            // again (throttled) while it waits for one.
            if let Some(f) = slot.feed.as_ref().filter(|_| switches_picture(slot, item)) {
                f.request_keyframe();
            }
        }
    }
    apply_kind_toggles(sub, &toggles);
    Ok(())
}

/// The deprecated per-kind flags of a subscriber `join` or `configure` that are present: the
/// toggles `audio`/`video`/`data` (`prefix` ""), or the legacy join's `offer_audio`/... ("offer_").
fn kind_flags(body: &Map<String, Value>, prefix: &str) -> Result<Vec<(MediaKind, bool)>, VrError> {
    let mut flags = Vec::new();
    for kind in [MediaKind::Audio, MediaKind::Video, MediaKind::Data] {
        if let Some(on) = body.opt_bool(&format!("{prefix}{}", kind_str(kind)))? {
            flags.push((kind, on));
        }
    }
    Ok(flags)
}

fn apply_kind_toggles(sub: &Subscriber, toggles: &[(MediaKind, bool)]) {
    for &(kind, on) in toggles {
        for slot in sub.slots.iter().filter(|s| s.kind == kind) {
            slot.stream.send.store(on, Ordering::Relaxed);
        }
    }
}

/// Janus compat (8.2): a subscriber asking for the layer one of its video streams already gets
/// is told so at once (`{"videoroom":"event","room","mid","substream":n}`, likewise `temporal`
/// for VP8 simulcast, `spatial_layer`/`temporal_layer` for SVC), before `configured`; a change is
/// announced when it happens (see `layer_notice`).
fn notify_current_layers(room: u64, ctx: &PluginCtx, slot: &SubSlot, item: &Map<String, Value>) {
    for (key, now) in current_layers(slot).into_iter().flatten() {
        let asked = item.get(key).and_then(Value::as_u64);
        if let Some(n) = now.filter(|n| asked == Some(u64::from(*n))) {
            let _ = ctx.push_event(None, json!({"videoroom": "event", "room": room, "mid": slot.mid, key: n}), None);
        }
    }
}

/// The layers a video stream of a simulcast or SVC feed gets now, by request key: the picture
/// layer (`substream` / `spatial_layer`) first, then the temporal one (`temporal` for VP8
/// simulcast only, `temporal_layer`). `None` for other streams.
fn current_layers(slot: &SubSlot) -> Option<[(&'static str, Option<u8>); 2]> {
    let feed = slot.feed.as_ref().filter(|_| slot.kind == MediaKind::Video)?;
    let sel = &slot.stream.selector;
    if feed.layer_count() > 0 {
        let (substream, temporal) = sel.simulcast_layers();
        let vp8 = slot.codec.as_deref() == Some("vp8");
        Some([("substream", substream.map(|n| n as u8)), ("temporal", temporal.filter(|_| vp8))])
    } else if feed.is_svc() {
        let (spatial, temporal) = sel.svc_layers();
        Some([("spatial_layer", spatial), ("temporal_layer", temporal)])
    } else {
        None
    }
}

/// Whether `item` asks `slot` for another simulcast substream or SVC spatial layer than the one
/// it gets (a switch needs a keyframe; a temporal layer does not).
fn switches_picture(slot: &SubSlot, item: &Map<String, Value>) -> bool {
    let Some([(key, now), _]) = current_layers(slot) else { return false };
    item.get(key).and_then(Value::as_u64).is_some_and(|asked| Some(asked.min(2)) != now.map(u64::from))
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
