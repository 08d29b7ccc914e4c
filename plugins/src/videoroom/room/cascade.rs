//! The room side of cascading (reference 8.2, Janus 1.1+): remote publishers
//! (`add_remote_publisher`, `update_remote_publisher`, `remove_remote_publisher`) and
//! remotizations of local publishers (`publish_remotely`, `unpublish_remotely`, `listremotes`).
//!
//! A remote publisher is an ordinary [`Participant`] whose endpoint is a
//! [`RemoteSource`](super::super::remote::RemoteSource) instead of a handle, so listing,
//! subscribing, kicking and leaving need nothing special; it is keyed in `participants` by
//! [`REMOTE_KEY`] `| id`, which no handle id (at most 2^53) can be. The sockets and threads are
//! in [`super::super::remote`]; this file only checks requests and edits room state.
//!
//! Janus compat (janus_videoroom.c): the checks, their order and their wording follow Janus, who
//! validates a request before looking up its room ([`CascadeRequest::validate`]). A remote
//! publisher's streams get mindex = their position in `streams` and mid = that number as a
//! string, whatever `mindex`/`mid` the request says; a stream whose codec the room does not
//! allow, or all media streams when the SRTP key is unusable, are kept but disabled.

use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use portunus_actors::api::ids::random_id;
use portunus_actors::api::validate::Fields;
use portunus_actors::media::srtp::{SrtpReceiver, SrtpSender};
use portunus_actors::media::{MediaKind, RELAYED_EXTENSIONS};
use serde_json::{json, Map, Value};

use super::super::media::{Feed, RtpForwarder};
use super::super::props::{AUDIO_CODECS, VIDEO_CODECS};
use super::super::remote::{remote_ssrc, Binding, Endpoint, RemoteSource, RemoteStream, Remotization, LAYER_RIDS};
use super::publisher::{Participant, PubStream, Publication};
use super::{Room, RoomReply, AUDIO, VIDEO};
use crate::videoroom::errors::*;

/// Participants keys of remote publishers have this bit set (handle ids never do).
const REMOTE_KEY: u64 = 1 << 63;

/// A cascading request, answered by the room.
pub enum CascadeRequest {
    Add(Map<String, Value>),
    Update(Map<String, Value>),
    Remove(Map<String, Value>),
    PublishRemotely(Map<String, Value>),
    UnpublishRemotely(Map<String, Value>),
    ListRemotes(Map<String, Value>),
}

impl CascadeRequest {
    /// The request called `name`, if it is one of these.
    pub fn named(name: &str, body: Map<String, Value>) -> Option<CascadeRequest> {
        Some(match name {
            "add_remote_publisher" => CascadeRequest::Add(body),
            "update_remote_publisher" => CascadeRequest::Update(body),
            "remove_remote_publisher" => CascadeRequest::Remove(body),
            "publish_remotely" => CascadeRequest::PublishRemotely(body),
            "unpublish_remotely" => CascadeRequest::UnpublishRemotely(body),
            // Janus compat (reference 8.2): the docs say `list_remotes`, the code matches this.
            "listremotes" => CascadeRequest::ListRemotes(body),
            _ => return None,
        })
    }

    /// Janus's checks of the request itself, made before the room is looked up.
    pub fn validate(&self) -> Result<(), VrError> {
        match self {
            CascadeRequest::Add(body) => {
                body.opt_u64("id")?;
                add_fields(body)?;
                parse_streams(body, true)?;
                parse_srtp(body)?;
            }
            CascadeRequest::Update(body) => {
                body.req_u64("id")?;
                body.opt_str("display")?;
                parse_streams(body, false)?;
                parse_srtp(body)?;
            }
            CascadeRequest::Remove(body) => {
                body.req_u64("id")?;
            }
            CascadeRequest::PublishRemotely(body) => {
                Remotize::parse(body)?;
            }
            CascadeRequest::UnpublishRemotely(body) => {
                body.req_str("remote_id")?;
                body.req_u64("publisher_id")?;
            }
            CascadeRequest::ListRemotes(body) => {
                body.req_u64("publisher_id")?;
            }
        }
        Ok(())
    }
}

/// One entry of a `streams` list (`add_remote_publisher` / `update_remote_publisher`).
struct StreamSpec {
    kind: MediaKind,
    mindex: usize,
    codec: Option<String>,
    description: Option<String>,
    disabled: bool,
    simulcast: bool,
    relayed: Vec<(u8, &'static str)>,
}

/// A checked `publish_remotely`.
struct Remotize {
    publisher_id: u64,
    remote_id: String,
    host: String,
    port: u16,
    rtcp_port: Option<u16>,
    ipv6: Option<bool>,
    srtp: Option<(u64, String)>,
}

impl Remotize {
    fn parse(body: &Map<String, Value>) -> Result<Remotize, VrError> {
        let remote_id = body.req_str("remote_id")?.to_owned();
        let host = body.req_str("host")?.to_owned();
        let family = body.opt_str("host_family")?;
        let port = body.req_u64("port")?;
        let rtcp_port = body.opt_u64("rtcp_port")?.unwrap_or(0);
        let publisher_id = body.req_u64("publisher_id")?;
        let srtp = parse_srtp(body)?;
        let port = u16::try_from(port).ok().filter(|p| *p > 0).ok_or_else(|| {
            VrError::new(INVALID_ELEMENT, "Invalid element (port must be a non-zero positive integer)")
        })?;
        let ipv6 = match family {
            None => None,
            Some(f) if f.eq_ignore_ascii_case("ipv4") => Some(false),
            Some(f) if f.eq_ignore_ascii_case("ipv6") => Some(true),
            Some(f) => return Err(VrError::new(INVALID_ELEMENT, format!("Unsupported protocol family ({f})"))),
        };
        let rtcp_port = u16::try_from(rtcp_port)
            .map_err(|_| VrError::new(INVALID_ELEMENT, "Invalid element (rtcp_port)"))
            .map(|p| (p > 0).then_some(p))?;
        Ok(Remotize { publisher_id, remote_id, host, port, rtcp_port, ipv6, srtp })
    }

    /// The destination for `port`, resolved as Janus does (first address of the family).
    fn resolve(&self, port: u16) -> Result<SocketAddr, VrError> {
        (self.host.as_str(), port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.find(|a| self.ipv6.is_none_or(|v6| a.is_ipv6() == v6)))
            .ok_or_else(|| VrError::new(INVALID_ELEMENT, format!("Could not resolve address ({})...", self.host)))
    }
}

impl Room {
    /// Handles one cascading request.
    pub(super) fn cascade(&mut self, req: CascadeRequest) -> Result<RoomReply, VrError> {
        req.validate()?;
        match req {
            CascadeRequest::Add(body) => self.add_remote_publisher(&body),
            CascadeRequest::Update(body) => self.update_remote_publisher(&body),
            CascadeRequest::Remove(body) => {
                self.check_secret(&body)?;
                let id = body.req_u64("id")?;
                let key = self.remote_key(id)?;
                self.leave(key);
                Ok(RoomReply::data(json!({"videoroom": "success"})))
            }
            CascadeRequest::PublishRemotely(body) => self.publish_remotely(&body),
            CascadeRequest::UnpublishRemotely(body) => {
                self.check_secret(&body)?;
                let id = body.req_u64("publisher_id")?;
                let remote_id = body.req_str("remote_id")?;
                let mut found = false;
                for feed in self.feeds_of(id)? {
                    for f in feed.forwarders().iter() {
                        if f.remote.as_ref().is_some_and(|r| r.remote_id == remote_id) {
                            found |= feed.remove_forwarder(f.stream_id);
                        }
                    }
                }
                if !found {
                    return Err(VrError::new(NO_SUCH_FEED, format!("No such remotization ({remote_id})")));
                }
                Ok(RoomReply::data(json!({"videoroom": "success", "room": self.id, "id": id})))
            }
            CascadeRequest::ListRemotes(body) => {
                self.check_secret(&body)?;
                let id = body.req_u64("publisher_id")?;
                let mut seen: Vec<Arc<Remotization>> = Vec::new();
                for feed in self.feeds_of(id)? {
                    for r in feed.forwarders().iter().filter_map(|f| f.remote.clone()) {
                        if !seen.iter().any(|s| Arc::ptr_eq(s, &r)) {
                            seen.push(r);
                        }
                    }
                }
                let list: Vec<Value> = seen.iter().map(|r| remotization_json(r)).collect();
                Ok(RoomReply::data(json!({"videoroom": "success", "room": self.id, "id": id, "list": list})))
            }
        }
    }

    fn add_remote_publisher(&mut self, body: &Map<String, Value>) -> Result<RoomReply, VrError> {
        self.check_secret(body)?;
        let specs = parse_streams(body, true)?.unwrap_or_default();
        let (port, rtcp_port) = add_fields(body)?;
        let id = self.new_participant_id(body.opt_u64("id")?.filter(|id| *id > 0))?;
        let iface = match body.opt_str("iface")? {
            None => None,
            Some(i) => Some(portunus_actors::media::network::interface_address(i).ok_or_else(|| {
                VrError::new(UNKNOWN_ERROR, "Invalid network interface configuration for remote publisher")
            })?),
        };
        let mcast = body.opt_str("mcast")?.and_then(|m| m.parse::<Ipv4Addr>().ok()).filter(Ipv4Addr::is_multicast);
        // Janus compat: an unusable key disables the media streams instead of failing.
        let srtp = parse_srtp(body)?.map(|(suite, crypto)| SrtpReceiver::new(suite, &crypto));
        let srtp_broken = matches!(srtp, Some(Err(_)));
        let binding = Binding { port, rtcp_port, iface, mcast };
        let source = RemoteSource::bind(&format!("{}-{id}", self.id), &binding, srtp.and_then(Result::ok))
            .map_err(|_| VrError::new(UNKNOWN_ERROR, "Could not open UDP socket for RTP stream"))?;
        let streams = self.remote_streams(&source, &specs, &[], srtp_broken);
        source.set_streams(streams.iter().map(|s| remote_stream(s, &specs, &source)).collect());
        let p = Participant {
            id,
            display: body.opt_str("display")?.map(str::to_owned),
            metadata: body.get("metadata").cloned(),
            private_id: (random_id() as u32).max(1),
            ctx: Endpoint::Remote(source.clone()),
            publication: Some(Publication { streams, up: true, bitrate: 0 }),
        };
        // Janus compat: a remote publisher is announced right away, before any media arrives.
        let ev = json!({"videoroom": "event", "room": self.id, "publishers": [Self::publisher_json(&p)]});
        self.participants.insert(REMOTE_KEY | id, p);
        self.count_changed();
        self.notify_participants(Some(REMOTE_KEY | id), &ev);
        tracing::info!(room = self.id, id, port = source.rtp_port, "VideoRoom: remote publisher added");
        let mut reply = json!({"videoroom": "success", "room": self.id, "id": id,
            "port": source.rtp_port, "rtcp_port": source.rtcp_port});
        // Janus compat: `ip` only when the socket is bound to an address (`iface`/`mcast`).
        if let Some(ip) = &source.ip {
            reply["ip"] = json!(ip);
        }
        Ok(RoomReply::data(reply))
    }

    fn update_remote_publisher(&mut self, body: &Map<String, Value>) -> Result<RoomReply, VrError> {
        self.check_secret(body)?;
        let id = body.req_u64("id")?;
        let key = self.remote_key(id)?;
        let specs = parse_streams(body, false)?;
        let srtp = parse_srtp(body)?.map(|(suite, crypto)| SrtpReceiver::new(suite, &crypto));
        let srtp_broken = matches!(srtp, Some(Err(_)));
        let display = body.opt_str("display")?.map(str::to_owned);
        let Some(p) = self.participants.get_mut(&key) else { return Err(no_such_remote(id)) };
        let Some(source) = p.ctx.remote().cloned() else { return Err(no_such_remote(id)) };
        if display.is_some() {
            p.display = display;
        }
        if let Some(m) = body.get("metadata") {
            p.metadata = Some(m.clone());
        }
        if let Some(Ok(srtp)) = srtp {
            source.set_srtp(Some(srtp));
        }
        let mut gone = Vec::new();
        if let Some(specs) = specs {
            // Only new or changed streams are listed: the others stay as they are.
            let old = p.publication.take().map(|publ| publ.streams).unwrap_or_default();
            let (replaced, kept): (Vec<PubStream>, Vec<PubStream>) =
                old.into_iter().partition(|s| specs.iter().any(|n| n.mindex == s.mindex));
            let streams = self.remote_streams(&source, &specs, &replaced, srtp_broken);
            gone = replaced
                .iter()
                .filter(|r| !streams.iter().any(|s| Arc::ptr_eq(&s.feed, &r.feed)))
                .map(|s| s.feed.clone())
                .collect();
            let mut all = kept;
            all.extend(streams);
            all.sort_by_key(|s| s.mindex);
            source.set_streams(all.iter().map(|s| remote_stream(s, &specs, &source)).collect());
            let Some(p) = self.participants.get_mut(&key) else { return Err(no_such_remote(id)) };
            p.publication = Some(Publication { streams: all, up: true, bitrate: 0 });
        }
        if !gone.is_empty() {
            self.drop_feeds(&gone);
        }
        if let Some(p) = self.participants.get(&key) {
            let ev = json!({"videoroom": "event", "room": self.id, "publishers": [Self::publisher_json(p)]});
            self.notify_participants(Some(key), &ev);
        }
        Ok(RoomReply::data(json!({"videoroom": "success"})))
    }

    /// The publisher streams of `specs` for `source`, leaving out disabled ones. A stream in
    /// `previous` with the same mindex, kind, codec and layering keeps its feed (and so its
    /// subscribers).
    fn remote_streams(
        &self,
        source: &RemoteSource,
        specs: &[StreamSpec],
        previous: &[PubStream],
        srtp_broken: bool,
    ) -> Vec<PubStream> {
        let props = self.props();
        let allowed = |spec: &StreamSpec| {
            let (room, ours) = match spec.kind {
                MediaKind::Audio => (&props.audiocodec, AUDIO),
                MediaKind::Video => (&props.videocodec, VIDEO),
                MediaKind::Data => return true,
            };
            let codec = spec.codec.as_deref().unwrap_or_default();
            !srtp_broken && room.iter().any(|c| c == codec) && ours.contains(&codec)
        };
        let mut out = Vec::new();
        for spec in specs.iter().filter(|s| !s.disabled && allowed(s)) {
            let mid = spec.mindex.to_string();
            let same = previous.iter().find(|p| {
                p.mindex == spec.mindex
                    && p.kind == spec.kind
                    && p.codec == spec.codec
                    && (p.feed.layer_count() > 0) == spec.simulcast
            });
            let feed = match same {
                Some(p) => p.feed.clone(),
                None => {
                    let codec = spec.codec.as_deref().unwrap_or_default();
                    let mut feed = Feed::new(spec.kind, mid.clone(), source.port(), codec)
                        .with_keyframe_hook(source.keyframe_hook(spec.mindex));
                    if spec.simulcast {
                        feed = feed.with_layers(&LAYER_RIDS.map(String::from));
                    }
                    Arc::new(feed)
                }
            };
            out.push(PubStream {
                talking: false,
                kind: spec.kind,
                mindex: spec.mindex,
                mid,
                codec: spec.codec.clone(),
                description: spec.description.clone(),
                feed,
            });
        }
        out
    }

    fn publish_remotely(&mut self, body: &Map<String, Value>) -> Result<RoomReply, VrError> {
        let req = Remotize::parse(body)?;
        let dest = req.resolve(req.port)?;
        let rtcp = req.rtcp_port.map(|p| req.resolve(p)).transpose()?;
        self.check_secret(body)?;
        let id = req.publisher_id;
        let p = self
            .participants
            .values()
            .find(|p| p.id == id)
            .ok_or_else(|| VrError::new(NO_SUCH_FEED, format!("No such feed ({id})")))?;
        if p.ctx.remote().is_some() {
            return Err(VrError::new(INVALID_ELEMENT, "Only local publishers can be remotized"));
        }
        let streams: Vec<(usize, MediaKind, Arc<Feed>)> = p
            .publication
            .iter()
            .flat_map(|publ| publ.streams.iter().map(|s| (s.mindex, s.kind, s.feed.clone())))
            .collect();
        let taken = streams.iter().any(|(_, _, f)| {
            f.forwarders().iter().any(|fw| fw.remote.as_ref().is_some_and(|r| r.remote_id == req.remote_id))
        });
        if taken {
            return Err(VrError::new(ID_EXISTS, format!("Remotization already exists ({})", req.remote_id)));
        }
        // Checked before any forwarder starts, so a bad key adds none.
        let sender = |srtp: &Option<(u64, String)>| {
            srtp.as_ref()
                .map(|(suite, crypto)| SrtpSender::new(*suite, crypto))
                .transpose()
                .map_err(|e| VrError::new(INVALID_ELEMENT, format!("Invalid SRTP settings: {e}")))
        };
        sender(&req.srtp)?;
        let feeds = streams
            .iter()
            .filter(|(_, k, _)| *k == MediaKind::Video)
            .map(|(m, _, f)| (remote_ssrc(*m, 0), Arc::downgrade(f)))
            .collect();
        let host = dest.ip().to_string();
        let remotization = Remotization::start(req.remote_id.clone(), host.clone(), req.port, rtcp, feeds)
            .map_err(|_| VrError::new(UNKNOWN_ERROR, "Could not open UDP socket for RTP stream"))?;
        let remotization = Arc::new(remotization);
        for (mindex, kind, feed) in &streams {
            let stream_id = self.next_forwarder;
            self.next_forwarder += 1;
            // Janus compat: data-channel messages go unencrypted, in their bare RTP envelope.
            let srtp = if *kind == MediaKind::Data { None } else { sender(&req.srtp)? };
            let f = RtpForwarder::new(stream_id, *kind, host.clone(), dest, remote_ssrc(*mindex, 0), 0)
                .map_err(|_| VrError::new(UNKNOWN_ERROR, "Could not open UDP socket for RTP stream"))?
                .with_srtp(srtp)
                .with_remote(remotization.clone(), feed.layer_rids());
            feed.add_forwarder(Arc::new(f));
            feed.request_keyframe();
        }
        tracing::info!(room = self.id, id, remote_id = %req.remote_id, %dest, "VideoRoom: publisher remotized");
        Ok(RoomReply::data(json!({"videoroom": "success", "room": self.id, "id": id, "remote_id": req.remote_id})))
    }

    /// The participants key of remote publisher `id`.
    fn remote_key(&self, id: u64) -> Result<u64, VrError> {
        self.participants
            .iter()
            .find(|(_, p)| p.id == id && p.ctx.remote().is_some())
            .map(|(k, _)| *k)
            .ok_or_else(|| no_such_remote(id))
    }

    /// The feeds of participant `id` (none when it does not publish).
    fn feeds_of(&self, id: u64) -> Result<Vec<Arc<Feed>>, VrError> {
        let p = self
            .participants
            .values()
            .find(|p| p.id == id)
            .ok_or_else(|| VrError::new(NO_SUCH_FEED, format!("No such publisher ({id})")))?;
        Ok(p.publication.iter().flat_map(|publ| publ.streams.iter().map(|s| s.feed.clone())).collect())
    }
}

/// The thread's view of a publisher stream: `specs` say how it is sent, else it stays as it was.
fn remote_stream(s: &PubStream, specs: &[StreamSpec], source: &RemoteSource) -> RemoteStream {
    let spec = specs.iter().find(|n| n.mindex == s.mindex);
    RemoteStream {
        mindex: s.mindex,
        mid: s.mid.clone(),
        kind: s.kind,
        simulcast: s.feed.layer_count() > 0,
        relayed: spec.map_or_else(|| source.relayed(s.mindex), |n| n.relayed.clone()),
        feed: s.feed.clone(),
    }
}

/// `port` and `rtcp_port` of `add_remote_publisher` (0 or missing: any free port), with the
/// other optional strings type-checked.
fn add_fields(body: &Map<String, Value>) -> Result<(u16, u16), VrError> {
    for key in ["display", "mcast", "iface"] {
        body.opt_str(key)?;
    }
    let port = |key: &str| -> Result<u16, VrError> {
        u16::try_from(body.opt_u64(key)?.unwrap_or(0))
            .map_err(|_| VrError::new(INVALID_ELEMENT, format!("Invalid element ({key})")))
    };
    Ok((port("port")?, port("rtcp_port")?))
}

/// The `streams` list: `{type, codec (audio/video), description?, disabled?, simulcast?,
/// audiolevel_ext_id?, videoorient_ext_id?, playoutdelay_ext_id?, ...}`. Required and not empty
/// when adding; when updating, an item's `mindex` says which stream it replaces.
fn parse_streams(body: &Map<String, Value>, adding: bool) -> Result<Option<Vec<StreamSpec>>, VrError> {
    let list = match body.opt_array("streams")? {
        None if adding => return Err(VrError::new(MISSING_ELEMENT, "Missing mandatory element (streams)")),
        None => return Ok(None),
        Some(list) => list,
    };
    if adding && list.is_empty() {
        return Err(VrError::new(INVALID_ELEMENT, "Invalid element value (streams can't be empty)"));
    }
    let mut out = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let o = item.as_object().ok_or_else(|| {
            VrError::new(INVALID_ELEMENT, "Invalid element type (streams should be an array of objects)")
        })?;
        let kind = match o.req_str("type")? {
            "audio" => MediaKind::Audio,
            "video" => MediaKind::Video,
            "data" => MediaKind::Data,
            _ => return Err(VrError::new(INVALID_ELEMENT, "Invalid element value (type)")),
        };
        let given = o.opt_u64("mindex")?;
        o.opt_str("mid")?;
        let mindex = if adding { i } else { given.map_or(i, |m| m as usize) };
        let codec = match kind {
            MediaKind::Data => None,
            _ => {
                let codec = o
                    .opt_str("codec")?
                    .ok_or_else(|| VrError::new(MISSING_ELEMENT, "Missing mandatory element (codec)"))?
                    .to_ascii_lowercase();
                let known = if kind == MediaKind::Audio { AUDIO_CODECS } else { VIDEO_CODECS };
                if !known.contains(&codec.as_str()) {
                    // Janus compat: this one is reported as a missing element.
                    return Err(VrError::new(MISSING_ELEMENT, "Invalid element value (unsupported codec)"));
                }
                Some(codec)
            }
        };
        let mut relayed = Vec::new();
        for (key, uri) in [
            ("audiolevel_ext_id", RELAYED_EXTENSIONS[0]),
            ("videoorient_ext_id", RELAYED_EXTENSIONS[1]),
            ("playoutdelay_ext_id", RELAYED_EXTENSIONS[2]),
        ] {
            if let Some(id) = o.opt_u64(key)?.filter(|id| (1..=14).contains(id)) {
                relayed.push((id as u8, uri));
            }
        }
        // Accepted, and not needed to relay the stream.
        for key in ["stereo", "fec", "dtx", "svc"] {
            o.opt_bool(key)?;
        }
        out.push(StreamSpec {
            kind,
            mindex,
            codec,
            description: o.opt_str("description")?.map(str::to_owned),
            disabled: o.opt_bool("disabled")?.unwrap_or(false),
            simulcast: kind == MediaKind::Video && o.opt_bool("simulcast")?.unwrap_or(false),
            relayed,
        });
    }
    Ok(Some(out))
}

/// `srtp_suite` + `srtp_crypto`: used only when both are given (Janus ignores one alone).
fn parse_srtp(body: &Map<String, Value>) -> Result<Option<(u64, String)>, VrError> {
    let (Some(suite), Some(crypto)) = (body.get("srtp_suite"), body.get("srtp_crypto")) else { return Ok(None) };
    let suite = suite.as_u64().filter(|s| *s == 32 || *s == 80).ok_or_else(|| {
        VrError::new(INVALID_ELEMENT, format!("Invalid SRTP suite ({})", suite.as_i64().unwrap_or_default()))
    })?;
    let crypto = crypto
        .as_str()
        .ok_or_else(|| VrError::new(INVALID_ELEMENT, "Invalid element type (srtp_crypto should be a string)"))?;
    Ok(Some((suite, crypto.to_owned())))
}

fn no_such_remote(id: u64) -> VrError {
    VrError::new(NO_SUCH_FEED, format!("No such remote publisher ({id})"))
}

fn remotization_json(r: &Remotization) -> Value {
    let mut v = json!({"remote_id": r.remote_id, "host": r.host, "port": r.port});
    if let Some(p) = r.rtcp_port {
        v["rtcp_port"] = json!(p);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn err<T>(r: Result<T, VrError>) -> (u16, String) {
        r.err().map(|e| (e.code, e.error)).unwrap_or_default()
    }

    #[test]
    fn streams_are_checked_with_janus_wording() {
        let body = obj(json!({"streams": [
            {"type": "audio", "mindex": 7, "mid": "a", "codec": "opus", "audiolevel_ext_id": 1},
            {"type": "video", "codec": "VP8", "simulcast": true},
            {"type": "data"}
        ]}));
        let specs = parse_streams(&body, true).unwrap().unwrap();
        assert_eq!(specs.iter().map(|s| s.mindex).collect::<Vec<_>>(), vec![0, 1, 2], "mindex is the position");
        assert_eq!(specs[0].relayed, vec![(1, RELAYED_EXTENSIONS[0])]);
        assert_eq!(specs[1].codec.as_deref(), Some("vp8"));
        assert!(specs[1].simulcast && !specs[0].simulcast);
        let update = parse_streams(&obj(json!({"streams": [{"type": "audio", "mindex": 7, "codec": "opus"}]})), false);
        assert_eq!(update.unwrap().unwrap()[0].mindex, 7, "an update names the stream it replaces");

        let adding = |v: Value| err(parse_streams(&obj(v), true));
        assert_eq!(adding(json!({})), (MISSING_ELEMENT, "Missing mandatory element (streams)".into()));
        assert_eq!(
            adding(json!({"streams": []})),
            (INVALID_ELEMENT, "Invalid element value (streams can't be empty)".into())
        );
        assert_eq!(adding(json!({"streams": "x"})).0, INVALID_ELEMENT);
        assert_eq!(
            adding(json!({"streams": [{"mid": "a"}]})),
            (MISSING_ELEMENT, "Missing mandatory element (type)".into())
        );
        assert_eq!(
            adding(json!({"streams": [{"type": "x"}]})),
            (INVALID_ELEMENT, "Invalid element value (type)".into())
        );
        assert_eq!(
            adding(json!({"streams": [{"type": "video"}]})),
            (MISSING_ELEMENT, "Missing mandatory element (codec)".into())
        );
        assert_eq!(
            adding(json!({"streams": [{"type": "video", "codec": "mpeg2"}]})),
            (MISSING_ELEMENT, "Invalid element value (unsupported codec)".into())
        );
        assert!(parse_streams(&obj(json!({})), false).unwrap().is_none());
    }

    #[test]
    fn srtp_needs_both_halves_and_a_known_suite() {
        assert!(parse_srtp(&obj(json!({}))).unwrap().is_none());
        assert!(parse_srtp(&obj(json!({"srtp_suite": 32}))).unwrap().is_none());
        assert_eq!(
            err(parse_srtp(&obj(json!({"srtp_suite": 81, "srtp_crypto": "x"})))),
            (INVALID_ELEMENT, "Invalid SRTP suite (81)".into())
        );
        assert_eq!(parse_srtp(&obj(json!({"srtp_suite": 80, "srtp_crypto": "k"}))).unwrap(), Some((80, "k".into())));
    }

    #[test]
    fn publish_remotely_checks() {
        let base = json!({"publisher_id": 1, "remote_id": "r", "host": "127.0.0.1", "port": 5000});
        let with = |k: &str, v: Value| {
            let mut b = obj(base.clone());
            b.insert(k.into(), v);
            b
        };
        let r = Remotize::parse(&obj(base.clone())).unwrap();
        assert_eq!((r.port, r.rtcp_port), (5000, None));
        assert_eq!(
            err(Remotize::parse(&with("port", json!(0)))),
            (INVALID_ELEMENT, "Invalid element (port must be a non-zero positive integer)".into())
        );
        assert_eq!(
            err(Remotize::parse(&with("host_family", json!("ipx")))),
            (INVALID_ELEMENT, "Unsupported protocol family (ipx)".into())
        );
        let mut no_remote = obj(base.clone());
        no_remote.remove("remote_id");
        assert_eq!(err(Remotize::parse(&no_remote)), (MISSING_ELEMENT, "Missing mandatory element (remote_id)".into()));
        let unresolvable = Remotize::parse(&with("host", json!("no-such-host.invalid"))).unwrap();
        assert_eq!(err(unresolvable.resolve(1)).0, INVALID_ELEMENT);
    }
}
