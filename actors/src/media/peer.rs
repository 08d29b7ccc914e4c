//! `Peer`: one engine PeerConnection behind our types.
//!
//! Every engine call runs on the dedicated media runtime (`Peer` methods spawn there and await the
//! result), so actors never drive webrtc futures on their own threads. Engine callbacks only
//! forward a [`PeerEvent`] to the owner; RTP goes from the engine's track reader straight to the
//! plugin's [`MediaSink`], never through a mailbox.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtc::peer_connection::configuration::RTCOfferOptions;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use tokio::runtime::Handle as RtHandle;
use tokio::sync::watch;
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::media_stream::{MediaStreamTrack, Track};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCIceCandidateInit, RTCIceGatheringState, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, RTCSessionDescription,
};

use super::engine::MediaEngine;
use super::port::MediaPort;
use super::sdp::{CodecInfo, MediaKind};
use super::types::{Feedback, HangupReason, LocalCandidate, PeerEvent, RtpPacket};
use super::writer::RtpWriter;
use super::MediaError;
use crate::api::request::TrickleCandidate;
use crate::api::SdpType;
use crate::plugin::DataMessage;

/// Where engine events go (the owning actor's mailbox).
pub type EventFn = Arc<dyn Fn(PeerEvent) + Send + Sync>;

/// How long to wait for candidate gathering before answering with what we have.
const GATHER_TIMEOUT: Duration = Duration::from_secs(5);

/// One track of a plugin-initiated offer.
#[derive(Clone, Debug)]
pub struct OfferTrack {
    /// Audio or video.
    pub kind: MediaKind,
    /// Codec name (`opus`, `vp8`, `h264`, ...); empty for the default of the kind.
    pub codec: String,
    /// The mid to use, when the plugin cares.
    pub mid: Option<String>,
    /// Offer `sendonly` (SFU subscribers, streaming viewers) instead of `sendrecv`.
    pub send_only: bool,
}

/// What a plugin offers.
#[derive(Clone, Debug, Default)]
pub struct OfferSpec {
    /// Tracks we send.
    pub tracks: Vec<OfferTrack>,
    /// Offer a data channel.
    pub data: bool,
    /// New ICE credentials.
    pub ice_restart: bool,
}

/// How a plugin wants the client's offer answered.
#[derive(Clone, Debug, Default)]
pub struct AnswerSpec {
    /// Send nothing back (SFU publishers): every m-line is answered `recvonly`.
    pub recv_only: bool,
    /// Audio codecs to answer with, in preference order (`opus`, `pcmu`, ...); empty = the first
    /// offered one we can send.
    pub audio_codecs: Vec<String>,
    /// Video codecs to answer with, in preference order (`vp8`, `h264`, `vp9`).
    pub video_codecs: Vec<String>,
    /// Video profile to pick among the offered variants of the codec: H.264 `profile-level-id`
    /// (e.g. `42e01f`) or VP9 `profile-id` (e.g. `2`).
    pub video_profile: Option<String>,
}

impl AnswerSpec {
    /// Whether the plugin chose codecs (the answer then lists only the chosen one per m-line,
    /// so the peer sends exactly that).
    pub fn has_codec_preferences(&self) -> bool {
        !self.audio_codecs.is_empty() || !self.video_codecs.is_empty() || self.video_profile.is_some()
    }
}

/// The codec we send for a kind when the plugin names one (its first registered variant), or
/// the default (opus, VP8).
fn default_codec(kind: MediaKind, name: &str) -> CodecInfo {
    let (engine_kind, fallback) = match kind {
        MediaKind::Audio => (RtpCodecKind::Audio, "opus"),
        _ => (RtpCodecKind::Video, "vp8"),
    };
    let registered = |name: &str| super::engine::registered_codec(engine_kind, name, "");
    match registered(name).or_else(|| registered(fallback)) {
        Some(c) => CodecInfo {
            pt: c.payload_type,
            name: c.rtp_codec.mime_type.rsplit('/').next().unwrap_or_default().to_ascii_lowercase(),
            clock_rate: c.rtp_codec.clock_rate,
            fmtp: c.rtp_codec.sdp_fmtp_line,
        },
        // Not reached: opus and VP8 are in the codec table.
        None => CodecInfo { pt: 96, name: fallback.to_owned(), clock_rate: 90000, fmtp: String::new() },
    }
}

/// What we send on one m-line.
#[derive(Clone, Debug)]
pub struct SendTrack {
    /// The m-line's mid.
    pub mid: String,
    /// Audio or video.
    pub kind: MediaKind,
    /// The codec to send with (one the peer offered).
    pub codec: CodecInfo,
}

/// Live I/O handles of a PeerConnection, shared with the plugin's [`MediaPort`].
pub struct PeerIo {
    rt: RtHandle,
    /// Weak: the engine's callbacks hold this struct, a strong reference would be a cycle.
    pc: std::sync::OnceLock<std::sync::Weak<dyn PeerConnection>>,
    writers: RwLock<HashMap<String, RtpWriter>>,
    remotes: RwLock<HashMap<String, RemoteTrack>>,
    channels: RwLock<Vec<OutChannel>>,
    counters: Arc<super::types::MediaCounters>,
}

/// Outgoing messages of one data channel: a bounded queue drained by one task, so messages leave
/// in the order they were sent.
struct OutChannel {
    label: String,
    dc: Arc<dyn DataChannel>,
    queue: tokio::sync::mpsc::Sender<(Bytes, bool)>,
}

/// Messages a data channel may have waiting to be sent; beyond it they are dropped.
const DATA_QUEUE: usize = 1024;

#[derive(Clone)]
struct RemoteTrack {
    track: Arc<dyn TrackRemote>,
    /// One per simulcast layer (one without simulcast).
    ssrcs: Vec<u32>,
}

impl PeerIo {
    pub(crate) fn writer(&self, mid: &str) -> Option<RtpWriter> {
        self.writers.read().ok()?.get(mid).cloned()
    }

    pub(crate) fn writers(&self) -> HashMap<String, RtpWriter> {
        self.writers.read().map(|w| w.clone()).unwrap_or_default()
    }

    pub(crate) fn send_feedback(&self, mid: &str, fb: Feedback) {
        let Some(remote) = self.remotes.read().ok().and_then(|r| r.get(mid).cloned()) else { return };
        let counter = match fb {
            Feedback::Remb(_) => &self.counters.remb_out,
            _ => &self.counters.keyframe_requests_out,
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.rt.spawn(async move {
            let pkts: Vec<Box<dyn rtc::rtcp::Packet>> = match fb {
                // Every layer: a simulcast subscriber may be about to switch to any of them.
                Feedback::Pli | Feedback::Fir => remote
                    .ssrcs
                    .iter()
                    .map(|&media_ssrc| {
                        Box::new(PictureLossIndication { sender_ssrc: 0, media_ssrc }) as Box<dyn rtc::rtcp::Packet>
                    })
                    .collect(),
                Feedback::Remb(bitrate) => vec![Box::new(ReceiverEstimatedMaximumBitrate {
                    sender_ssrc: 0,
                    bitrate: bitrate as f32,
                    ssrcs: remote.ssrcs.clone(),
                })],
            };
            let _ = remote.track.write_rtcp(pkts).await;
        });
    }

    pub(crate) fn send_remb(&self, bitrate: u64) {
        let mids: Vec<String> = self.remotes.read().map(|r| r.keys().cloned().collect()).unwrap_or_default();
        for mid in mids {
            self.send_feedback(&mid, Feedback::Remb(bitrate));
        }
    }

    pub(crate) fn send_data(&self, label: Option<&str>, data: Bytes, binary: bool) {
        let queue = self.channels.read().ok().and_then(|chans| {
            match label {
                Some(l) => chans.iter().find(|c| c.label == l),
                None => chans.first(),
            }
            .map(|c| c.queue.clone())
        });
        let Some(queue) = queue else { return };
        if queue.try_send((data, binary)).is_err() {
            tracing::debug!("data channel queue full or closed; message dropped");
        }
    }
}

/// Sends a data channel's queued messages, one at a time, until the channel goes away.
async fn drain_channel(dc: Arc<dyn DataChannel>, mut queue: tokio::sync::mpsc::Receiver<(Bytes, bool)>) {
    while let Some((data, binary)) = queue.recv().await {
        let r = if binary {
            dc.send(BytesMut::from(&data[..])).await
        } else {
            dc.send_text(&String::from_utf8_lossy(&data)).await
        };
        if let Err(e) = r {
            tracing::debug!(error = %e, "data channel send failed");
        }
    }
}

/// The engine's callbacks for one PeerConnection.
struct Callbacks {
    events: EventFn,
    io: Arc<PeerIo>,
    port: MediaPort,
    gathered: watch::Sender<bool>,
    no_media: Arc<std::sync::atomic::AtomicU64>,
    /// The public address host candidates are advertised with (1:1 NAT).
    nat_1_1: Option<String>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Callbacks {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            // Trickled candidates get the same 1:1 NAT rewrite as the ones in the SDP.
            let candidate = match &self.nat_1_1 {
                Some(public) => super::sdp::public_host_candidate(&init.candidate, public),
                None => init.candidate,
            };
            (self.events)(PeerEvent::LocalCandidate(LocalCandidate {
                candidate,
                sdp_mid: init.sdp_mid,
                sdp_mline_index: init.sdp_mline_index,
            }));
        }
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(true);
            (self.events)(PeerEvent::GatheringDone);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        match state {
            RTCPeerConnectionState::Connected => (self.events)(PeerEvent::Connected),
            RTCPeerConnectionState::Failed => (self.events)(PeerEvent::Failed(HangupReason::IceFailed)),
            // Closed without our asking: the peer sent a DTLS close alert (our own close stops
            // the owner first, so this event is then ignored).
            RTCPeerConnectionState::Closed => (self.events)(PeerEvent::Failed(HangupReason::DtlsAlert)),
            _ => {}
        }
    }

    async fn on_data_channel(&self, dc: Arc<dyn DataChannel>) {
        tokio::spawn(watch_channel(dc, self.events.clone(), self.io.clone()));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let events = self.events.clone();
        let io = self.io.clone();
        let port = self.port.clone();
        let no_media = self.no_media.clone();
        tokio::spawn(read_track(track, events, io, port, no_media));
    }
}

/// Serves one data channel until it closes: messages and opening to the owner.
async fn watch_channel(dc: Arc<dyn DataChannel>, events: EventFn, io: Arc<PeerIo>) {
    {
        let label = dc.label().await.unwrap_or_default();
        let protocol = dc.protocol().await.ok().filter(|p| !p.is_empty());
        let (queue, pending) = tokio::sync::mpsc::channel(DATA_QUEUE);
        tokio::spawn(drain_channel(dc.clone(), pending));
        if let Ok(mut chans) = io.channels.write() {
            chans.push(OutChannel { label: label.clone(), dc: dc.clone(), queue });
        }
        while let Some(ev) = dc.poll().await {
            match ev {
                DataChannelEvent::OnOpen => events(PeerEvent::DataOpen { label: label.clone() }),
                DataChannelEvent::OnMessage(msg) => events(PeerEvent::Data(DataMessage {
                    label: label.clone(),
                    protocol: protocol.clone(),
                    binary: !msg.is_string,
                    data: Bytes::from(msg.data.to_vec()),
                })),
                DataChannelEvent::OnClose => break,
                _ => {}
            }
        }
        if let Ok(mut chans) = io.channels.write() {
            chans.retain(|c| c.dc.id() != dc.id());
        }
    }
}

/// Reads one remote track until it ends: RTP to the plugin's sink, media events to the owner.
async fn read_track(
    track: Arc<dyn TrackRemote>,
    events: EventFn,
    io: Arc<PeerIo>,
    port: MediaPort,
    no_media_secs: Arc<std::sync::atomic::AtomicU64>,
) {
    let kind = match track.kind().await {
        RtpCodecKind::Audio => MediaKind::Audio,
        _ => MediaKind::Video,
    };
    let mut info: Option<ReceiverInfo> = None;
    let mut mid = String::new();
    let mut rids: Vec<(u32, Arc<str>)> = Vec::new();
    let mut receiving = false;
    loop {
        let no_media = Duration::from_secs(no_media_secs.load(std::sync::atomic::Ordering::Relaxed));
        let next = if receiving && !no_media.is_zero() {
            match tokio::time::timeout(no_media, track.poll()).await {
                Ok(ev) => ev,
                Err(_) => {
                    receiving = false;
                    events(PeerEvent::Media { mid: mid.clone(), kind, receiving: false });
                    continue;
                }
            }
        } else {
            track.poll().await
        };
        match next {
            Some(TrackRemoteEvent::OnOpen(init)) => {
                // Once per simulcast layer, each with its own SSRC and rid.
                if info.is_none() {
                    let found = receiver_info(&io, init.receiver_id).await.unwrap_or_default();
                    mid = found.mid.clone();
                    info = Some(found);
                }
                if let Some(rid) = &init.rid {
                    rids.push((init.ssrc, Arc::from(rid.as_str())));
                }
                if let Ok(mut r) = io.remotes.write() {
                    let entry =
                        r.entry(mid.clone()).or_insert_with(|| RemoteTrack { track: track.clone(), ssrcs: Vec::new() });
                    if !entry.ssrcs.contains(&init.ssrc) {
                        entry.ssrcs.push(init.ssrc);
                    }
                }
            }
            Some(TrackRemoteEvent::OnRtpPacket(pkt)) => {
                let info = info.get_or_insert_with(ReceiverInfo::default);
                // Audio carries one codec plus, now and then, DTMF events (RFC 4733) with their own
                // payload type: plugins relay the codec, so the events stop here.
                if kind == MediaKind::Audio && info.dtmf.contains(&pkt.header.payload_type) {
                    continue;
                }
                io.counters.rtp_in_packets.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                io.counters.rtp_in_bytes.fetch_add(pkt.payload.len() as u64, std::sync::atomic::Ordering::Relaxed);
                if !receiving {
                    receiving = true;
                    events(PeerEvent::Media { mid: mid.clone(), kind, receiving: true });
                }
                if let Some(sink) = port.sink() {
                    let mut pkt = RtpPacket::from_rtp(pkt, &info.extensions);
                    if !rids.is_empty() {
                        pkt.rid = rids.iter().find(|(ssrc, _)| *ssrc == pkt.ssrc).map(|(_, rid)| rid.clone());
                    }
                    sink.rtp(&port, &mid, kind, pkt).await;
                }
            }
            Some(TrackRemoteEvent::OnEnded) | None => break,
            Some(_) => {}
        }
    }
    if let Ok(mut r) = io.remotes.write() {
        r.remove(&mid);
    }
}

/// What the read loop needs to know about one negotiated receiver.
#[derive(Default)]
struct ReceiverInfo {
    mid: String,
    /// The peer's ids of the relayed header extensions.
    extensions: Vec<(u8, &'static str)>,
    /// Payload types of negotiated DTMF events (RFC 4733 `telephone-event`).
    dtmf: Vec<u8>,
}

/// The transceiver whose receiver is `receiver_id`: its mid and negotiated parameters.
async fn receiver_info(io: &PeerIo, receiver_id: rtc::rtp_transceiver::RTCRtpReceiverId) -> Option<ReceiverInfo> {
    let pc = io.pc.get()?.upgrade()?;
    for t in pc.get_transceivers().await {
        let Ok(Some(r)) = t.receiver().await else { continue };
        if r.id() != receiver_id {
            continue;
        }
        let mid = t.mid().await.ok().flatten().unwrap_or_default();
        let params = r.get_parameters().await.ok().map(|p| p.rtp_parameters);
        let Some(params) = params else { return Some(ReceiverInfo { mid, ..ReceiverInfo::default() }) };
        let extensions = params
            .header_extensions
            .iter()
            .filter_map(|e| Some((u8::try_from(e.id).ok()?, super::types::relayed_extension(&e.uri)?)))
            .collect();
        let dtmf = params
            .codecs
            .iter()
            .filter(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case("audio/telephone-event"))
            .map(|c| c.payload_type)
            .collect();
        return Some(ReceiverInfo { mid, extensions, dtmf });
    }
    None
}

/// One PeerConnection.
pub struct Peer {
    pc: Arc<dyn PeerConnection>,
    events: EventFn,
    io: Arc<PeerIo>,
    port: MediaPort,
    gathered: watch::Receiver<bool>,
    rt: RtHandle,
    created: Instant,
    nat_1_1: Option<String>,
    nack_queue_ms: u64,
    /// Byte counters at the previous `stats` call, for `bytes_lastsec`.
    last_bytes: std::sync::Mutex<Option<(Instant, ByteCounts)>>,
    live: Arc<std::sync::atomic::AtomicU64>,
    closed: std::sync::atomic::AtomicBool,
}

impl Peer {
    /// Builds a PeerConnection on the media runtime and attaches it to `port`.
    pub async fn create(engine: &MediaEngine, port: MediaPort, events: EventFn) -> Result<Peer, MediaError> {
        let rt = engine.runtime();
        let io = Arc::new(PeerIo {
            rt: rt.clone(),
            pc: std::sync::OnceLock::new(),
            writers: RwLock::default(),
            remotes: RwLock::default(),
            channels: RwLock::default(),
            counters: engine.counters(),
        });
        let (gathered_tx, gathered) = watch::channel(false);
        let callbacks = Arc::new(Callbacks {
            events: events.clone(),
            io: io.clone(),
            port: port.clone(),
            gathered: gathered_tx,
            no_media: engine.no_media_timer(),
            nat_1_1: engine.settings().nat_1_1.first().cloned(),
        });
        let build_engine = engine.clone();
        let nack_queue_ms = engine.nack_queue_ms();
        let capture = port.capture_slot();
        let pc = rt
            .spawn(async move { build_engine.build(callbacks, nack_queue_ms, capture).await })
            .await
            .map_err(|e| MediaError::Engine(e.to_string()))??;
        let _ = io.pc.set(Arc::downgrade(&pc));
        port.attach(io.clone());
        let live = engine.live_counter();
        live.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Peer {
            pc,
            events,
            io,
            port,
            gathered,
            rt,
            created: Instant::now(),
            nat_1_1: engine.settings().nat_1_1.first().cloned(),
            nack_queue_ms,
            last_bytes: std::sync::Mutex::default(),
            live,
            closed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// When it was created.
    pub fn created(&self) -> Instant {
        self.created
    }

    async fn on_rt<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = Result<T, MediaError>> + Send + 'static,
    ) -> Result<T, MediaError> {
        self.rt.spawn(f).await.map_err(|e| MediaError::Engine(e.to_string()))?
    }

    /// Applies the peer's description.
    pub async fn set_remote(&self, kind: SdpType, sdp: String) -> Result<(), MediaError> {
        let pc = self.pc.clone();
        self.on_rt(async move {
            let desc = match kind {
                SdpType::Offer => RTCSessionDescription::offer(sdp),
                SdpType::Answer => RTCSessionDescription::answer(sdp),
            }
            .map_err(|e| MediaError::Sdp(e.to_string()))?;
            pc.set_remote_description(desc).await.map_err(|e| MediaError::Sdp(e.to_string()))
        })
        .await
    }

    /// Answers the applied offer, sending on `send`; waits for gathering unless `trickle`.
    /// Answers the applied offer, sending `send`; with `only_these_codecs` each sent m-line lists
    /// only its track's codec.
    /// `receive_codecs` are m-lines we only receive on whose codec the answer restricts the same
    /// way (an SFU publisher told which codec to send).
    pub async fn answer(
        &self,
        send: Vec<SendTrack>,
        receive_codecs: Vec<SendTrack>,
        only_these_codecs: bool,
        trickle: bool,
    ) -> Result<String, MediaError> {
        let pc = self.pc.clone();
        let io = self.io.clone();
        let port = self.port.clone();
        let mut gathered = self.gathered.clone();
        // The engine ignores its NAT 1:1 setting, so host candidates are rewritten here.
        let nat = self.nat_1_1.clone();
        self.on_rt(async move {
            let mut added = Vec::new();
            let existing: Vec<String> = io.writers.read().map(|w| w.keys().cloned().collect()).unwrap_or_default();
            // On a renegotiation the streams we already send keep their tracks.
            for t in send.iter().filter(|t| !existing.contains(&t.mid)) {
                let track = local_track(t);
                let sender = pc
                    .add_track(track.clone() as Arc<dyn TrackLocal>)
                    .await
                    .map_err(|e| MediaError::Engine(e.to_string()))?;
                if only_these_codecs {
                    prefer_codec(&pc, Transceiver::Sending(sender.id()), t).await;
                }
                added.push((t.clone(), track, sender));
            }
            for t in &receive_codecs {
                prefer_codec(&pc, Transceiver::Mid(&t.mid), t).await;
            }
            let answer = pc.create_answer(None).await.map_err(|e| MediaError::Sdp(e.to_string()))?;
            pc.set_local_description(answer).await.map_err(|e| MediaError::Sdp(e.to_string()))?;
            register_writers(&pc, &io, &port, added).await;
            finish_local(&pc, &mut gathered, trickle, nat.as_deref()).await
        })
        .await
    }

    /// Makes an offer (plugin-initiated): adds the tracks and data channel of `spec`, waits for
    /// gathering unless `trickle`.
    pub async fn offer(&self, spec: OfferSpec, trickle: bool) -> Result<String, MediaError> {
        let pc = self.pc.clone();
        let io = self.io.clone();
        let port = self.port.clone();
        let events = self.events.clone();
        let mut gathered = self.gathered.clone();
        let nat = self.nat_1_1.clone();
        self.on_rt(async move {
            let existing: Vec<String> = io.writers.read().map(|w| w.keys().cloned().collect()).unwrap_or_default();
            let mut added = Vec::new();
            for (n, t) in spec.tracks.iter().enumerate() {
                let mid = t.mid.clone().unwrap_or_else(|| n.to_string());
                if existing.contains(&mid) {
                    continue;
                }
                let send = SendTrack { mid, kind: t.kind, codec: default_codec(t.kind, &t.codec) };
                let track = local_track(&send);
                let sender = if t.send_only {
                    let init = RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Sendonly,
                        streams: vec![],
                        send_encodings: vec![],
                    };
                    let transceiver = pc
                        .add_transceiver_from_track(track.clone() as Arc<dyn TrackLocal>, Some(init))
                        .await
                        .map_err(|e| MediaError::Engine(e.to_string()))?;
                    transceiver
                        .sender()
                        .await
                        .ok()
                        .flatten()
                        .ok_or_else(|| MediaError::Engine("transceiver without a sender".into()))?
                } else {
                    pc.add_track(track.clone() as Arc<dyn TrackLocal>)
                        .await
                        .map_err(|e| MediaError::Engine(e.to_string()))?
                };
                prefer_codec(&pc, Transceiver::Sending(sender.id()), &send).await;
                added.push((send, track, sender));
            }
            let has_channel = io.channels.read().map(|c| !c.is_empty()).unwrap_or(false);
            if spec.data && !has_channel {
                let dc = pc
                    .create_data_channel("JanusDataChannel", None)
                    .await
                    .map_err(|e| MediaError::Engine(e.to_string()))?;
                tokio::spawn(watch_channel(dc, events, io.clone()));
            }
            let options = spec.ice_restart.then_some(RTCOfferOptions { ice_restart: true });
            let offer = pc.create_offer(options).await.map_err(|e| MediaError::Sdp(e.to_string()))?;
            pc.set_local_description(offer).await.map_err(|e| MediaError::Sdp(e.to_string()))?;
            register_writers(&pc, &io, &port, added).await;
            finish_local(&pc, &mut gathered, trickle, nat.as_deref()).await
        })
        .await
    }
}

/// RTP bytes so far per (mid, inbound).
type ByteCounts = HashMap<(String, bool), u64>;

/// The byte counters of a statistics report.
fn byte_counts(report: &rtc::statistics::report::RTCStatsReport) -> ByteCounts {
    use rtc::statistics::report::RTCStatsReportEntry as E;
    report
        .iter()
        .filter_map(|e| match e {
            E::InboundRtp(s) => Some(((s.mid.clone(), true), s.bytes_received)),
            E::OutboundRtp(s) => Some(((s.mid.clone(), false), s.sent_rtp_stream_stats.bytes_sent)),
            _ => None,
        })
        .collect()
}

/// After a local description: wait for candidates (half-trickle) and return the SDP.
async fn finish_local(
    pc: &Arc<dyn PeerConnection>,
    gathered: &mut watch::Receiver<bool>,
    trickle: bool,
    nat: Option<&str>,
) -> Result<String, MediaError> {
    if !trickle {
        let _ = tokio::time::timeout(GATHER_TIMEOUT, gathered.wait_for(|done| *done)).await;
    }
    let sdp =
        pc.local_description().await.map(|d| d.sdp).ok_or_else(|| MediaError::Engine("no local description".into()))?;
    Ok(match nat {
        Some(public) => super::sdp::rewrite_host_candidates(&sdp, public),
        None => sdp,
    })
}

/// Records the writer of every added track (mid, SSRC, negotiated payload type) and starts
/// reading the peer's feedback about it.
async fn register_writers(
    pc: &Arc<dyn PeerConnection>,
    io: &Arc<PeerIo>,
    port: &MediaPort,
    added: Vec<(SendTrack, Arc<TrackLocalStaticRTP>, Arc<dyn webrtc::rtp_transceiver::RtpSender>)>,
) {
    {
        for (t, track, sender) in added {
            let params = sender.get_parameters().await.ok();
            let pt = params
                .as_ref()
                .and_then(|p| {
                    p.rtp_parameters
                        .codecs
                        .iter()
                        .find(|c| c.rtp_codec.mime_type.to_ascii_lowercase().ends_with(&t.codec.name))
                        .map(|c| c.payload_type)
                })
                .unwrap_or(t.codec.pt);
            let extensions: Arc<[(&'static str, u8)]> = params
                .as_ref()
                .map(|p| {
                    p.rtp_parameters
                        .header_extensions
                        .iter()
                        .filter_map(|e| Some((super::types::relayed_extension(&e.uri)?, u8::try_from(e.id).ok()?)))
                        .collect()
                })
                .unwrap_or_default();
            let ssrc = track.ssrcs().await.first().copied().unwrap_or(0);
            let mid = mid_of_sender(pc, sender.id()).await.unwrap_or_else(|| t.mid.clone());
            let writer = RtpWriter {
                track: track.clone(),
                ssrc,
                payload_type: pt,
                kind: t.kind,
                counters: io.counters.clone(),
                extensions,
            };
            if let Ok(mut w) = io.writers.write() {
                w.insert(mid.clone(), writer);
            }
            tokio::spawn(read_feedback(track, mid, port.clone(), io.counters.clone()));
        }
    }
}

impl Peer {
    /// Adds a remote candidate (or end of candidates).
    pub async fn add_candidate(&self, c: TrickleCandidate) -> Result<(), MediaError> {
        let pc = self.pc.clone();
        self.on_rt(async move {
            let init = match c {
                TrickleCandidate::Completed => RTCIceCandidateInit { candidate: String::new(), ..Default::default() },
                TrickleCandidate::Candidate { candidate, sdp_mid, sdp_mline_index } => {
                    RTCIceCandidateInit { candidate, sdp_mid, sdp_mline_index, ..Default::default() }
                }
            };
            pc.add_ice_candidate(init).await.map_err(|e| MediaError::Candidate(e.to_string()))
        })
        .await
    }

    /// The current local and remote SDPs.
    pub async fn descriptions(&self) -> (Option<String>, Option<String>) {
        let pc = self.pc.clone();
        self.rt
            .spawn(async move {
                (pc.local_description().await.map(|d| d.sdp), pc.remote_description().await.map(|d| d.sdp))
            })
            .await
            .unwrap_or((None, None))
    }

    async fn report(&self) -> Option<rtc::statistics::report::RTCStatsReport> {
        let pc = self.pc.clone();
        self.rt
            .spawn(async move { pc.get_stats(Instant::now(), webrtc::peer_connection::StatsSelector::None).await })
            .await
            .ok()
    }

    /// Admin `handle_info` WebRTC statistics, laid out as Janus's `webrtc.media`: per mid its
    /// type, SSRCs, NACK settings and `stats.in`/`stats.out` (packets, bytes, `bytes_lastsec`,
    /// NACKs, retransmissions; loss and jitter in), plus the selected candidate pair.
    /// `bytes_lastsec` compares with the previous call when it was 0.25-10 s ago, else with a
    /// second sample taken one second later.
    pub async fn stats(&self) -> serde_json::Value {
        use rtc::statistics::report::RTCStatsReportEntry as E;
        use serde_json::{json, Map, Value};
        let Some(mut report) = self.report().await else { return Value::Null };
        let mut now = Instant::now();
        let recent = Duration::from_millis(250)..=Duration::from_secs(10);
        let previous = self.last_bytes.lock().ok().and_then(|mut l| l.take());
        let (then, before) = match previous {
            Some((t, b)) if recent.contains(&now.duration_since(t)) => (t, b),
            _ => {
                let first = (now, byte_counts(&report));
                tokio::time::sleep(Duration::from_secs(1)).await;
                let Some(second) = self.report().await else { return Value::Null };
                report = second;
                now = Instant::now();
                first
            }
        };
        let counts = byte_counts(&report);
        let secs = now.duration_since(then).as_secs_f64().max(0.001);
        let lastsec = |key: &(String, bool)| {
            let delta = counts.get(key).copied().unwrap_or(0).saturating_sub(before.get(key).copied().unwrap_or(0));
            (delta as f64 / secs).round() as u64
        };
        let mut media: Map<String, Value> = Map::new();
        let mut local = Map::new();
        let mut remote = Map::new();
        let mut pair: Option<(String, String)> = None;
        let nack_queue_ms = self.nack_queue_ms;
        let entry = |media: &mut Map<String, Value>, mid: &str, kind: RtpCodecKind| {
            let video = kind == RtpCodecKind::Video;
            media.entry(mid.to_owned()).or_insert_with(|| {
                json!({"mid": mid, "type": if video { "video" } else { "audio" }, "do_nacks": video,
                    "nack-queue-ms": nack_queue_ms, "ssrc": {}, "stats": {}})
            });
        };
        for e in report.iter() {
            match e {
                E::InboundRtp(s) => {
                    let r = &s.received_rtp_stream_stats;
                    entry(&mut media, &s.mid, r.rtp_stream_stats.kind);
                    let m = &mut media[&s.mid];
                    m["ssrc"]["ssrc-peer"] = json!(r.rtp_stream_stats.ssrc);
                    m["stats"]["in"] = json!({
                        "packets": r.packets_received,
                        "bytes": s.bytes_received,
                        "bytes_lastsec": lastsec(&(s.mid.clone(), true)),
                        "nacks": s.nack_count,
                        "retransmissions": s.retransmitted_packets_received,
                        "lost": r.packets_lost,
                        "jitter": r.jitter,
                    });
                }
                E::OutboundRtp(s) => {
                    let o = &s.sent_rtp_stream_stats;
                    entry(&mut media, &s.mid, o.rtp_stream_stats.kind);
                    let m = &mut media[&s.mid];
                    m["ssrc"]["ssrc"] = json!(o.rtp_stream_stats.ssrc);
                    m["stats"]["out"] = json!({
                        "packets": o.packets_sent,
                        "bytes": o.bytes_sent,
                        "bytes_lastsec": lastsec(&(s.mid.clone(), false)),
                        "nacks": s.nack_count,
                        "retransmissions": s.retransmitted_packets_sent,
                    });
                }
                E::IceCandidatePair(p) if p.nominated => {
                    pair = Some((p.local_candidate_id.clone(), p.remote_candidate_id.clone()));
                }
                E::LocalCandidate(c) => {
                    local.insert(
                        c.stats.id.clone(),
                        json!(format!("{}:{}", c.address.clone().unwrap_or_default(), c.port)),
                    );
                }
                E::RemoteCandidate(c) => {
                    remote.insert(
                        c.stats.id.clone(),
                        json!(format!("{}:{}", c.address.clone().unwrap_or_default(), c.port)),
                    );
                }
                _ => {}
            }
        }
        if let Ok(mut last) = self.last_bytes.lock() {
            *last = Some((now, counts));
        }
        // Reported only when both candidates of the nominated pair are in the report.
        let selected =
            pair.and_then(|(l, r)| Some(format!("{} <-> {}", local.get(&l)?.as_str()?, remote.get(&r)?.as_str()?)));
        json!({"media": Value::Object(media), "selected-pair": selected})
    }

    /// Cumulative loss per stream and direction (for `slowlink`).
    pub async fn loss(&self) -> Vec<super::types::LossSample> {
        use rtc::statistics::report::RTCStatsReportEntry as E;
        let pc = self.pc.clone();
        let Ok(report) = self
            .rt
            .spawn(async move { pc.get_stats(Instant::now(), webrtc::peer_connection::StatsSelector::None).await })
            .await
        else {
            return Vec::new();
        };
        let kind = |k: RtpCodecKind| if k == RtpCodecKind::Audio { MediaKind::Audio } else { MediaKind::Video };
        let mut outbound: HashMap<String, (String, MediaKind)> = HashMap::new();
        let mut out = Vec::new();
        for entry in report.iter() {
            match entry {
                E::InboundRtp(s) => {
                    let r = &s.received_rtp_stream_stats;
                    out.push(super::types::LossSample {
                        mid: s.mid.clone(),
                        kind: kind(r.rtp_stream_stats.kind),
                        uplink: false,
                        lost: r.packets_lost.max(0) as u64,
                    });
                }
                E::OutboundRtp(s) => {
                    let o = &s.sent_rtp_stream_stats.rtp_stream_stats;
                    outbound.insert(o.stats.id.to_string(), (s.mid.clone(), kind(o.kind)));
                }
                _ => {}
            }
        }
        for entry in report.iter() {
            if let E::RemoteInboundRtp(s) = entry {
                if let Some((mid, k)) = outbound.get(&s.local_id.to_string()) {
                    out.push(super::types::LossSample {
                        mid: mid.clone(),
                        kind: *k,
                        uplink: true,
                        lost: s.received_rtp_stream_stats.packets_lost.max(0) as u64,
                    });
                }
            }
        }
        out
    }

    /// Closes the PeerConnection and releases its sockets and tasks.
    pub async fn close(&self) {
        if self.closed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        self.live.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        self.port.detach();
        if let Ok(mut w) = self.io.writers.write() {
            w.clear();
        }
        if let Ok(mut r) = self.io.remotes.write() {
            r.clear();
        }
        if let Ok(mut c) = self.io.channels.write() {
            c.clear();
        }
        let pc = self.pc.clone();
        let _ = self.rt.spawn(async move { pc.close().await }).await;
    }
}

/// Lists only the codec the plugin sends on this track: the peer must not pick another one (the
/// plugin relays its source's payloads as they are, or asked for this codec).
/// Which transceiver: the one of a sender, or the one of a mid.
enum Transceiver<'a> {
    Sending(rtc::rtp_transceiver::RTCRtpSenderId),
    Mid(&'a str),
}

async fn prefer_codec(pc: &Arc<dyn PeerConnection>, which: Transceiver<'_>, t: &SendTrack) {
    let kind = if t.kind == MediaKind::Audio { RtpCodecKind::Audio } else { RtpCodecKind::Video };
    let Some(mut params) = super::engine::registered_codec(kind, &t.codec.name, &t.codec.fmtp) else { return };
    // The exact variant: an offered codec keeps the peer's payload type and profile.
    params.payload_type = t.codec.pt;
    if !t.codec.fmtp.is_empty() {
        params.rtp_codec.sdp_fmtp_line = t.codec.fmtp.clone();
    }
    // DTMF (telephone-event at the audio codec's clock rate) stays next to a chosen audio codec.
    let mut prefs = vec![params.clone()];
    if kind == RtpCodecKind::Audio {
        prefs.extend(super::engine::codec_table().into_iter().filter_map(|(k, c)| {
            (k == RtpCodecKind::Audio
                && c.rtp_codec.mime_type.eq_ignore_ascii_case("audio/telephone-event")
                && c.rtp_codec.clock_rate == params.rtp_codec.clock_rate)
                .then_some(c)
        }));
    }
    for transceiver in pc.get_transceivers().await {
        let this = match which {
            Transceiver::Sending(id) => transceiver.sender().await.ok().flatten().is_some_and(|s| s.id() == id),
            Transceiver::Mid(mid) => transceiver.mid().await.ok().flatten().as_deref() == Some(mid),
        };
        if this {
            // With DTMF when the peer offered it; the engine refuses a list naming a codec the
            // peer did not offer, so without DTMF otherwise.
            let with_dtmf = prefs.len() > 1 && transceiver.set_codec_preferences(prefs).await.is_ok();
            if !with_dtmf {
                if let Err(e) = transceiver.set_codec_preferences(vec![params]).await {
                    tracing::debug!(error = %e, codec = %t.codec.name, "codec preference not applied");
                }
            }
            return;
        }
    }
}

async fn mid_of_sender(
    pc: &Arc<dyn PeerConnection>,
    sender_id: rtc::rtp_transceiver::RTCRtpSenderId,
) -> Option<String> {
    for t in pc.get_transceivers().await {
        if let Ok(Some(s)) = t.sender().await {
            if s.id() == sender_id {
                return t.mid().await.ok().flatten();
            }
        }
    }
    None
}

/// RTCP the peer sends about one of our streams: keyframe requests and REMB to the plugin.
async fn read_feedback(
    track: Arc<TrackLocalStaticRTP>,
    mid: String,
    port: MediaPort,
    counters: Arc<super::types::MediaCounters>,
) {
    while let Some(TrackLocalEvent::OnRtcpPacket(pkts)) = track.poll().await {
        let Some(sink) = port.sink() else { continue };
        for p in pkts {
            let any = p.as_any();
            if any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>() {
                counters.keyframe_requests_in.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            if any.is::<PictureLossIndication>() {
                sink.feedback(&port, &mid, Feedback::Pli);
            } else if any.is::<FullIntraRequest>() {
                sink.feedback(&port, &mid, Feedback::Fir);
            } else if let Some(remb) = any.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
                sink.feedback(&port, &mid, Feedback::Remb(remb.bitrate as u64));
            }
        }
    }
}

fn local_track(t: &SendTrack) -> Arc<TrackLocalStaticRTP> {
    let (kind, mime, channels) = match t.kind {
        MediaKind::Audio => (RtpCodecKind::Audio, format!("audio/{}", t.codec.name), 2),
        _ => (RtpCodecKind::Video, format!("video/{}", t.codec.name), 0),
    };
    let ssrc = crate::api::ids::random_id() as u32 | 1;
    let codec = RTCRtpCodec {
        mime_type: mime,
        clock_rate: t.codec.clock_rate,
        channels: if t.codec.name == "opus" { channels } else { 0 },
        sdp_fmtp_line: t.codec.fmtp.clone(),
        rtcp_feedback: vec![],
    };
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        "janus".to_owned(),
        format!("janus{}", t.mid),
        format!("janus{}", t.mid),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
            codec,
            ..Default::default()
        }],
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_offers_use_the_registered_codecs() {
        let c = |kind, name| {
            let c = default_codec(kind, name);
            (c.pt, c.name, c.clock_rate, c.fmtp)
        };
        assert_eq!(c(MediaKind::Video, "av1"), (45, "av1".into(), 90000, String::new()));
        assert_eq!(c(MediaKind::Video, "VP9"), (98, "vp9".into(), 90000, "profile-id=0".into()));
        assert_eq!(c(MediaKind::Video, "h264").0, 102);
        assert_eq!(c(MediaKind::Video, "h265"), (96, "vp8".into(), 90000, String::new()), "unknown: VP8");
        assert_eq!(c(MediaKind::Audio, "pcma"), (8, "pcma".into(), 8000, String::new()));
        assert_eq!(c(MediaKind::Audio, "").1, "opus");
    }
}
