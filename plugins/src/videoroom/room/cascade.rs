//! The room side of cascading (reference 8.2, Janus 1.1+): remote publishers
//! (`add_remote_publisher`, `update_remote_publisher`, `remove_remote_publisher`) and
//! remotizations of local publishers (`publish_remotely`, `unpublish_remotely`, `listremotes`).
//!
//! A remote publisher is an ordinary [`Participant`] whose endpoint is a
//! [`RemoteSource`](super::super::remote::RemoteSource) instead of a handle, so listing,
//! subscribing, kicking and leaving need nothing special; it is keyed in `participants` by
//! [`REMOTE_KEY`] `| id`, which no handle id (at most 2^53) can be. The sockets and threads are
//! in [`super::super::remote`]; this file only parses requests and edits room state.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use portunus_actors::api::ids::random_id;
use portunus_actors::api::validate::Fields;
use portunus_actors::media::srtp::{SrtpReceiver, SrtpSender};
use portunus_actors::media::{MediaKind, RELAYED_EXTENSIONS};
use serde_json::{json, Map, Value};

use super::super::media::{Feed, RtpForwarder};
use super::super::remote::{remote_ssrc, Binding, Endpoint, RemoteSource, RemoteStream, Remotization, LAYER_RIDS};
use super::{kind_str, Participant, PubStream, Publication, Room, RoomReply, AUDIO, VIDEO};
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
}

/// One entry of a `streams` list (`add_remote_publisher` / `update_remote_publisher`).
struct StreamSpec {
    kind: MediaKind,
    mindex: usize,
    mid: String,
    codec: Option<String>,
    description: Option<String>,
    disabled: bool,
    simulcast: bool,
    relayed: Vec<(u8, &'static str)>,
}

impl Room {
    /// Handles one cascading request.
    pub(super) fn cascade(&mut self, req: CascadeRequest) -> Result<RoomReply, VrError> {
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
                let feeds = self.local_feeds(id)?;
                let mut found = false;
                for feed in &feeds {
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
                for feed in self.local_feeds(id)? {
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
        let specs =
            parse_streams(body)?.ok_or_else(|| VrError::new(MISSING_ELEMENT, "Missing mandatory element (streams)"))?;
        let id = match body.opt_u64("id")? {
            Some(id) if self.participants.values().any(|p| p.id == id) => {
                return Err(VrError::new(ID_EXISTS, format!("User ID {id} already exists")));
            }
            Some(id) => id,
            None => loop {
                let id = random_id();
                if !self.participants.values().any(|p| p.id == id) {
                    break id;
                }
            },
        };
        let display = body.opt_str("display")?.map(str::to_owned);
        let srtp = parse_srtp(body)?.map(|(suite, crypto)| srtp_receiver(suite, &crypto)).transpose()?;
        let port = body.opt_u64("port")?.unwrap_or(0);
        let port = u16::try_from(port).map_err(|_| VrError::new(INVALID_ELEMENT, "Invalid element (port)"))?;
        let iface = match body.opt_str("iface")? {
            None => None,
            Some(i) => Some(i.parse::<IpAddr>().map_err(|_| VrError::new(INVALID_ELEMENT, "Invalid element (iface)"))?),
        };
        let mcast = match body.opt_str("mcast")? {
            None => None,
            Some(m) => Some(
                m.parse::<Ipv4Addr>()
                    .ok()
                    .filter(Ipv4Addr::is_multicast)
                    .ok_or_else(|| VrError::new(INVALID_ELEMENT, "Invalid element (mcast)"))?,
            ),
        };
        let binding = Binding { port, iface, mcast };
        let source = RemoteSource::bind(&format!("{}-{id}", self.id), &binding, srtp)
            .map_err(|e| VrError::new(UNKNOWN_ERROR, format!("Error binding port for remote publisher: {e}")))?;
        let streams = self.remote_streams(&source, &specs, &[]);
        source.set_streams(streams.iter().map(|s| remote_stream(s, &specs, &source)).collect());
        let p = Participant {
            id,
            display,
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
        Ok(RoomReply::data(json!({"videoroom": "success", "room": self.id, "id": id, "ip": source.ip,
            "port": source.rtp_port, "rtcp_port": source.rtcp_port})))
    }

    fn update_remote_publisher(&mut self, body: &Map<String, Value>) -> Result<RoomReply, VrError> {
        self.check_secret(body)?;
        let id = body.req_u64("id")?;
        let key = self.remote_key(id)?;
        let specs = parse_streams(body)?;
        let srtp = parse_srtp(body)?.map(|(suite, crypto)| srtp_receiver(suite, &crypto)).transpose()?;
        let display = body.opt_str("display")?.map(str::to_owned);
        let Some(p) = self.participants.get_mut(&key) else { return Err(no_such_remote(id)) };
        let Some(source) = p.ctx.remote().cloned() else { return Err(no_such_remote(id)) };
        if display.is_some() {
            p.display = display;
        }
        if let Some(m) = body.get("metadata") {
            p.metadata = Some(m.clone());
        }
        if srtp.is_some() {
            source.set_srtp(srtp);
        }
        let mut gone = Vec::new();
        if let Some(specs) = specs {
            // Only new or changed streams are listed: the others stay as they are.
            let old = p.publication.take().map(|publ| publ.streams).unwrap_or_default();
            let (replaced, kept): (Vec<PubStream>, Vec<PubStream>) =
                old.into_iter().partition(|s| specs.iter().any(|n| n.mindex == s.mindex));
            let streams = self.remote_streams(&source, &specs, &replaced);
            let Some(p) = self.participants.get_mut(&key) else { return Err(no_such_remote(id)) };
            gone = replaced
                .iter()
                .filter(|r| !streams.iter().any(|s| Arc::ptr_eq(&s.feed, &r.feed)))
                .map(|s| s.feed.clone())
                .collect();
            let mut all = kept;
            all.extend(streams);
            all.sort_by_key(|s| s.mindex);
            source.set_streams(all.iter().map(|s| remote_stream(s, &specs, &source)).collect());
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

    /// The publisher streams of `specs` for `source`. A stream in `previous` with the same
    /// mindex, mid, kind and codec keeps its feed (and so its subscribers).
    fn remote_streams(&self, source: &RemoteSource, specs: &[StreamSpec], previous: &[PubStream]) -> Vec<PubStream> {
        let props = self.props();
        specs
            .iter()
            .filter(|s| !s.disabled)
            .map(|spec| {
                let codec = match spec.kind {
                    MediaKind::Audio => spec.codec.clone().or_else(|| props.audiocodec.first().cloned()),
                    MediaKind::Video => spec.codec.clone().or_else(|| props.videocodec.first().cloned()),
                    MediaKind::Data => None,
                };
                let same = previous
                    .iter()
                    .find(|p| p.mindex == spec.mindex && p.mid == spec.mid && p.kind == spec.kind && p.codec == codec);
                let feed = match same {
                    Some(p) if (p.feed.layer_count() > 0) == spec.simulcast => p.feed.clone(),
                    _ => {
                        let mut feed =
                            Feed::new(spec.kind, spec.mid.clone(), source.port(), codec.as_deref().unwrap_or_default())
                                .with_keyframe_hook(source.keyframe_hook(spec.mindex));
                        if spec.simulcast {
                            feed = feed.with_layers(&LAYER_RIDS.map(String::from));
                        }
                        Arc::new(feed)
                    }
                };
                PubStream {
                    talking: false,
                    kind: spec.kind,
                    mindex: spec.mindex,
                    mid: spec.mid.clone(),
                    codec,
                    description: spec.description.clone(),
                    feed,
                }
            })
            .collect()
    }

    fn publish_remotely(&mut self, body: &Map<String, Value>) -> Result<RoomReply, VrError> {
        self.check_secret(body)?;
        let id = body.req_u64("publisher_id")?;
        let remote_id = body.req_str("remote_id")?.to_owned();
        let host = body.req_str("host")?.to_owned();
        let port = body.req_u64("port")?;
        let port = u16::try_from(port).map_err(|_| VrError::new(INVALID_ELEMENT, "Invalid element (port)"))?;
        let rtcp_port = body.opt_u64("rtcp_port")?.filter(|p| *p > 0);
        let rtcp_port = rtcp_port
            .map(|p| u16::try_from(p).map_err(|_| VrError::new(INVALID_ELEMENT, "Invalid element (rtcp_port)")))
            .transpose()?;
        let ipv6 = match body.opt_str("host_family")? {
            None => None,
            Some("ipv4") => Some(false),
            Some("ipv6") => Some(true),
            Some(_) => return Err(VrError::new(INVALID_ELEMENT, "Unsupported protocol family (host_family)")),
        };
        let srtp = parse_srtp(body)?;
        if let Some((suite, crypto)) = &srtp {
            SrtpSender::new(*suite, crypto)
                .map_err(|e| VrError::new(INVALID_ELEMENT, format!("Invalid SRTP settings: {e}")))?;
        }
        let streams: Vec<(usize, MediaKind, Arc<Feed>)> = {
            let p = self.local_publisher(id)?;
            let publ = p.publication.as_ref().ok_or_else(|| no_such_publisher(id))?;
            publ.streams.iter().map(|s| (s.mindex, s.kind, s.feed.clone())).collect()
        };
        if streams.iter().any(|(_, _, f)| {
            f.forwarders().iter().any(|fw| fw.remote.as_ref().is_some_and(|r| r.remote_id == remote_id))
        }) {
            return Err(VrError::new(ID_EXISTS, format!("Remote ID {remote_id} already exists")));
        }
        let resolve = |port: u16| -> Result<SocketAddr, VrError> {
            (host.as_str(), port)
                .to_socket_addrs()
                .ok()
                .and_then(|mut addrs| addrs.find(|a| ipv6.is_none_or(|v6| a.is_ipv6() == v6)))
                .ok_or_else(|| VrError::new(INVALID_ELEMENT, format!("Could not resolve address ({host})")))
        };
        let dest = resolve(port)?;
        let rtcp = rtcp_port.map(resolve).transpose()?;
        let media: Vec<&(usize, MediaKind, Arc<Feed>)> =
            streams.iter().filter(|(_, k, _)| *k != MediaKind::Data).collect();
        let weak = media.iter().map(|(m, _, f)| (remote_ssrc(*m, 0), Arc::downgrade(f))).collect();
        let remotization = Remotization::start(remote_id.clone(), host.clone(), port, rtcp, weak)
            .map_err(|e| VrError::new(UNKNOWN_ERROR, format!("Error creating remotization: {e}")))?;
        let remotization = Arc::new(remotization);
        for (mindex, kind, feed) in media {
            let sender = srtp
                .as_ref()
                .map(|(suite, crypto)| SrtpSender::new(*suite, crypto))
                .transpose()
                .map_err(|e| VrError::new(INVALID_ELEMENT, format!("Invalid SRTP settings: {e}")))?;
            let stream_id = self.next_forwarder;
            self.next_forwarder += 1;
            let f = RtpForwarder::new(stream_id, *kind, host.clone(), dest, remote_ssrc(*mindex, 0), 0)
                .map_err(|e| VrError::new(UNKNOWN_ERROR, format!("Error creating forwarder: {e}")))?
                .with_srtp(sender)
                .with_remote(remotization.clone(), feed.layer_rids());
            feed.add_forwarder(Arc::new(f));
            feed.request_keyframe();
        }
        tracing::info!(room = self.id, id, remote_id, %dest, "VideoRoom: publisher remotized");
        Ok(RoomReply::data(json!({"videoroom": "success", "room": self.id, "id": id, "remote_id": remote_id})))
    }

    /// The participants key of remote publisher `id`.
    fn remote_key(&self, id: u64) -> Result<u64, VrError> {
        self.participants
            .iter()
            .find(|(_, p)| p.id == id && p.ctx.remote().is_some())
            .map(|(k, _)| *k)
            .ok_or_else(|| no_such_remote(id))
    }

    /// Local (not remote) publisher `id`.
    fn local_publisher(&self, id: u64) -> Result<&Participant, VrError> {
        self.participants
            .values()
            .find(|p| p.id == id && p.ctx.remote().is_none() && p.publication.is_some())
            .ok_or_else(|| no_such_publisher(id))
    }

    /// The feeds of local publisher `id`.
    fn local_feeds(&self, id: u64) -> Result<Vec<Arc<Feed>>, VrError> {
        let p = self.local_publisher(id)?;
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

/// The `streams` list, if given: each `{type, mindex, mid, codec?, description?, disabled?,
/// simulcast?, svc?, audiolevel_ext_id?, videoorient_ext_id?, playoutdelay_ext_id?, ...}`.
fn parse_streams(body: &Map<String, Value>) -> Result<Option<Vec<StreamSpec>>, VrError> {
    let Some(list) = body.opt_array("streams")? else { return Ok(None) };
    let mut out: Vec<StreamSpec> = Vec::new();
    for item in list {
        let o = item.as_object().ok_or_else(|| {
            VrError::new(INVALID_ELEMENT, "Invalid element type (streams should be an array of objects)")
        })?;
        let kind = match o.req_str("type")? {
            "audio" => MediaKind::Audio,
            "video" => MediaKind::Video,
            "data" => MediaKind::Data,
            other => return Err(VrError::new(INVALID_ELEMENT, format!("Invalid element type ({other})"))),
        };
        let mindex = o.req_u64("mindex")? as usize;
        let mid = o.req_str("mid")?.to_owned();
        if out.iter().any(|s| s.mindex == mindex || s.mid == mid) {
            return Err(VrError::new(INVALID_ELEMENT, format!("Duplicate mindex/mid ({mindex}/{mid})")));
        }
        let disabled = o.opt_bool("disabled")?.unwrap_or(false);
        let codec = o.opt_str("codec")?.map(str::to_ascii_lowercase);
        if let Some(c) = &codec {
            let ours = match kind {
                MediaKind::Audio => AUDIO,
                MediaKind::Video => VIDEO,
                MediaKind::Data => &[][..],
            };
            if !disabled && !ours.contains(&c.as_str()) {
                return Err(VrError::new(INVALID_ELEMENT, format!("Unsupported codec '{c}' ({})", kind_str(kind))));
            }
        }
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
        // Accepted and not needed to relay: stereo, fec, dtx, h264-profile, vp9-profile, svc.
        for key in ["stereo", "fec", "dtx", "svc"] {
            o.opt_bool(key)?;
        }
        out.push(StreamSpec {
            kind,
            mindex,
            mid,
            codec,
            description: o.opt_str("description")?.map(str::to_owned),
            disabled,
            simulcast: kind == MediaKind::Video && o.opt_bool("simulcast")?.unwrap_or(false),
            relayed,
        });
    }
    Ok(Some(out))
}

/// `srtp_suite` + `srtp_crypto`, both or neither.
fn parse_srtp(body: &Map<String, Value>) -> Result<Option<(u64, String)>, VrError> {
    match (body.opt_u64("srtp_suite")?, body.opt_str("srtp_crypto")?) {
        (None, None) => Ok(None),
        (Some(suite), Some(crypto)) => Ok(Some((suite, crypto.to_owned()))),
        (_, None) => Err(VrError::new(MISSING_ELEMENT, "Missing mandatory element (srtp_crypto)")),
        (None, _) => Err(VrError::new(MISSING_ELEMENT, "Missing mandatory element (srtp_suite)")),
    }
}

fn srtp_receiver(suite: u64, crypto: &str) -> Result<SrtpReceiver, VrError> {
    SrtpReceiver::new(suite, crypto).map_err(|e| VrError::new(INVALID_ELEMENT, format!("Invalid SRTP settings: {e}")))
}

fn no_such_remote(id: u64) -> VrError {
    VrError::new(NO_SUCH_FEED, format!("No such remote publisher ({id})"))
}

fn no_such_publisher(id: u64) -> VrError {
    VrError::new(NO_SUCH_FEED, format!("No such publisher ({id})"))
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

    #[test]
    fn streams_are_parsed_with_janus_wording() {
        let body = obj(json!({"streams": [
            {"type": "audio", "mindex": 0, "mid": "a", "codec": "opus", "audiolevel_ext_id": 1},
            {"type": "video", "mindex": 1, "mid": "v", "codec": "VP8", "simulcast": true},
            {"type": "data", "mindex": 2, "mid": "d"}
        ]}));
        let specs = parse_streams(&body).unwrap().unwrap();
        assert_eq!(specs.len(), 3);
        assert_eq!(specs[0].relayed, vec![(1, RELAYED_EXTENSIONS[0])]);
        assert_eq!(specs[1].codec.as_deref(), Some("vp8"));
        assert!(specs[1].simulcast && !specs[0].simulcast);
        let missing = parse_streams(&obj(json!({"streams": [{"type": "audio", "mid": "a"}]})));
        assert_eq!(
            missing.err().map(|e| (e.code, e.error)),
            Some((MISSING_ELEMENT, "Missing mandatory element (mindex)".into()))
        );
        let typed = parse_streams(&obj(json!({"streams": "x"})));
        assert_eq!(typed.err().map(|e| e.code), Some(INVALID_ELEMENT));
        let codec =
            parse_streams(&obj(json!({"streams": [{"type": "video", "mindex": 0, "mid": "v", "codec": "h265"}]})));
        assert_eq!(codec.err().map(|e| e.code), Some(INVALID_ELEMENT));
        let dup = parse_streams(&obj(
            json!({"streams": [{"type": "video", "mindex": 0, "mid": "v"}, {"type": "audio", "mindex": 0, "mid": "a"}]}),
        ));
        assert_eq!(dup.err().map(|e| e.code), Some(INVALID_ELEMENT));
        assert!(parse_streams(&obj(json!({}))).unwrap().is_none());
    }

    #[test]
    fn srtp_needs_both_halves() {
        assert!(parse_srtp(&obj(json!({}))).unwrap().is_none());
        assert_eq!(parse_srtp(&obj(json!({"srtp_suite": 32}))).err().map(|e| e.code), Some(MISSING_ELEMENT));
        assert_eq!(parse_srtp(&obj(json!({"srtp_crypto": "x"}))).err().map(|e| e.code), Some(MISSING_ELEMENT));
    }
}
