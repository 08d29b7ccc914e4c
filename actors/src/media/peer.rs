//! `Peer`: one PeerConnection behind our types.
//!
//! The engine is the sans-IO `rtc` core; [`Conn`] holds it with its sockets and
//! `driver.rs` runs it on the media runtime. Control calls (descriptions, candidates, stats) lock
//! the core briefly from the caller's thread; media never passes through a mailbox or a channel:
//! the driver hands decrypted RTP to the plugin's [`MediaSink`](super::MediaSink), and writers
//! encrypt and send where they are called.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtc::data_channel::RTCDataChannelId;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCOfferOptions;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::peer_connection::RTCPeerConnection;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpReceiverId, RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::statistics::StatsSelector;
use tokio::sync::watch;

use super::conn::Conn;
use super::driver::{drive, Inbound};
use super::engine::MediaEngine;
use super::port::MediaPort;
use super::sdp::{CodecInfo, MediaKind};
use super::types::{Feedback, MediaCounters, PeerEvent};
use super::writer::RtpWriter;
use super::MediaError;
use crate::api::request::TrickleCandidate;
use crate::api::SdpType;

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
    /// The media is end-to-end encrypted by its senders (JSEP `e2ee`): the client is told so.
    pub e2ee: bool,
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

/// Live I/O of a PeerConnection, shared with the plugin's [`MediaPort`] and the driver.
pub struct PeerIo {
    conn: Weak<Conn>,
    pub(crate) writers: RwLock<HashMap<String, RtpWriter>>,
    /// What the peer sends, by mid.
    pub(crate) remotes: RwLock<HashMap<String, RemoteTrack>>,
    /// Open data channels.
    pub(crate) channels: RwLock<Vec<DataChannelInfo>>,
    /// The mid of each of our tracks, by track id (RTCP feedback names the track).
    pub(crate) local_tracks: RwLock<HashMap<String, String>>,
    pub(crate) counters: Arc<MediaCounters>,
}

/// One open data channel.
pub(crate) struct DataChannelInfo {
    pub(crate) id: RTCDataChannelId,
    pub(crate) label: String,
    pub(crate) protocol: Option<String>,
}

/// Bytes a data channel may have waiting to be sent (SCTP's send buffer); beyond it messages
/// are dropped.
const DATA_BUFFER: usize = 4 << 20;

/// One stream the peer sends.
#[derive(Clone)]
pub(crate) struct RemoteTrack {
    pub(crate) receiver: RTCRtpReceiverId,
    /// One per simulcast layer (one without simulcast).
    pub(crate) ssrcs: Vec<u32>,
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
        let Some(conn) = self.conn.upgrade() else { return };
        let counter = match fb {
            Feedback::Remb(_) => &self.counters.remb_out,
            _ => &self.counters.keyframe_requests_out,
        };
        counter.fetch_add(1, Ordering::Relaxed);
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
        conn.write(|core| {
            if let Some(mut receiver) = core.rtp_receiver(remote.receiver) {
                if let Err(e) = receiver.write_rtcp(Instant::now(), pkts) {
                    tracing::debug!(error = %e, "feedback not sent");
                }
            }
        });
    }

    pub(crate) fn send_remb(&self, bitrate: u64) {
        let mids: Vec<String> = self.remotes.read().map(|r| r.keys().cloned().collect()).unwrap_or_default();
        for mid in mids {
            self.send_feedback(&mid, Feedback::Remb(bitrate));
        }
    }

    pub(crate) fn send_data(&self, label: Option<&str>, data: Bytes, binary: bool) {
        let id = self.channels.read().ok().and_then(|chans| {
            match label {
                Some(l) => chans.iter().find(|c| c.label == l),
                None => chans.first(),
            }
            .map(|c| c.id)
        });
        let (Some(id), Some(conn)) = (id, self.conn.upgrade()) else { return };
        conn.run(|core| {
            let Some(mut dc) = core.data_channel(id) else { return };
            if dc.outstanding_bytes() > DATA_BUFFER {
                tracing::debug!("data channel send buffer full; message dropped");
                return;
            }
            let r = if binary {
                dc.send(Instant::now(), BytesMut::from(&data[..]))
            } else {
                dc.send_text(Instant::now(), String::from_utf8_lossy(&data))
            };
            if let Err(e) = r {
                tracing::debug!(error = %e, "data channel send failed");
            }
        });
    }
}

/// One PeerConnection.
pub struct Peer {
    conn: Arc<Conn>,
    io: Arc<PeerIo>,
    port: MediaPort,
    gathered: watch::Receiver<bool>,
    created: Instant,
    nat_1_1: Option<String>,
    nack_queue_ms: u64,
    /// Byte counters at the previous `stats` call, for `bytes_lastsec`.
    last_bytes: std::sync::Mutex<Option<(Instant, ByteCounts)>>,
    live: Arc<AtomicU64>,
    /// A data channel was offered (it registers when it opens).
    data_offered: AtomicBool,
    closed: AtomicBool,
}

impl Peer {
    /// Builds a PeerConnection on the media runtime, starts its driver and attaches it to `port`.
    pub async fn create(engine: &MediaEngine, port: MediaPort, events: EventFn) -> Result<Peer, MediaError> {
        Peer::build(engine, port, events, false).await
    }

    /// A PeerConnection that will only send media (made for a plugin's offer of send-only
    /// tracks): lighter per sent packet, as it runs no receive-side RTCP machinery.
    pub async fn create_send_only(engine: &MediaEngine, port: MediaPort, events: EventFn) -> Result<Peer, MediaError> {
        Peer::build(engine, port, events, true).await
    }

    async fn build(
        engine: &MediaEngine,
        port: MediaPort,
        events: EventFn,
        send_only: bool,
    ) -> Result<Peer, MediaError> {
        let rt = engine.runtime();
        let build_engine = engine.clone();
        let nack_queue_ms = engine.nack_queue_ms();
        let capture = port.capture_slot();
        let (core, sockets, servers) = rt
            .spawn(async move { build_engine.build(nack_queue_ms, capture, send_only).await })
            .await
            .map_err(|e| MediaError::Engine(e.to_string()))??;
        let conn = Arc::new(Conn::new(core, sockets, servers));
        let io = Arc::new(PeerIo {
            conn: Arc::downgrade(&conn),
            writers: RwLock::default(),
            remotes: RwLock::default(),
            channels: RwLock::default(),
            local_tracks: RwLock::default(),
            counters: engine.counters(),
        });
        let (gathered_tx, gathered) = watch::channel(false);
        let nat_1_1 = engine.settings().nat_1_1.first().cloned();
        let inbound =
            Inbound::new(events, io.clone(), port.clone(), gathered_tx, engine.no_media_timer(), nat_1_1.clone());
        rt.spawn(drive(conn.clone(), inbound));
        port.attach(io.clone());
        let live = engine.live_counter();
        live.fetch_add(1, Ordering::Relaxed);
        Ok(Peer {
            conn,
            io,
            port,
            gathered,
            created: Instant::now(),
            nat_1_1,
            nack_queue_ms,
            last_bytes: std::sync::Mutex::default(),
            live,
            data_offered: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        })
    }

    /// When it was created.
    pub fn created(&self) -> Instant {
        self.created
    }

    /// Applies the peer's description.
    pub async fn set_remote(&self, kind: SdpType, sdp: String) -> Result<(), MediaError> {
        let desc = match kind {
            SdpType::Offer => RTCSessionDescription::offer(sdp),
            SdpType::Answer => RTCSessionDescription::answer(sdp),
        }
        .map_err(|e| MediaError::Sdp(e.to_string()))?;
        self.conn
            .run(|core| core.set_remote_description(Instant::now(), desc))
            .map_err(|e| MediaError::Sdp(e.to_string()))
    }

    /// Answers the applied offer, sending `send`; with `only_these_codecs` each sent m-line lists
    /// only its track's codec. `receive_codecs` are m-lines we only receive on whose codec the
    /// answer restricts the same way (an SFU publisher told which codec to send). Waits for
    /// gathering unless `trickle`.
    pub async fn answer(
        &self,
        send: Vec<SendTrack>,
        receive_codecs: Vec<SendTrack>,
        only_these_codecs: bool,
        trickle: bool,
    ) -> Result<String, MediaError> {
        let existing: Vec<String> = self.io.writers.read().map(|w| w.keys().cloned().collect()).unwrap_or_default();
        let early = self.conn.run(|core| {
            let mut added = Vec::new();
            // On a renegotiation the streams we already send keep their tracks.
            for t in send.iter().filter(|t| !existing.contains(&t.mid)) {
                let (track, ssrc) = local_track(t);
                let track_id = track.track_id().to_owned();
                let sender = core.add_track(track).map_err(|e| MediaError::Engine(e.to_string()))?;
                if only_these_codecs {
                    prefer_codec(core, Transceiver::Sending(sender), t);
                }
                added.push(Added { send: t.clone(), sender, ssrc, track_id });
            }
            for t in &receive_codecs {
                prefer_codec(core, Transceiver::Mid(&t.mid), t);
            }
            let answer = core.create_answer(None).map_err(|e| MediaError::Sdp(e.to_string()))?;
            core.set_local_description(Instant::now(), answer).map_err(|e| MediaError::Sdp(e.to_string()))?;
            self.register_writers(core, added);
            // Full trickle: the description goes out without candidates, they follow as events.
            let early = if trickle { core.local_description().map(|d| d.sdp) } else { None };
            self.conn.gather(core);
            Ok::<_, MediaError>(early)
        })?;
        self.finish_local(early).await
    }

    /// Makes an offer (plugin-initiated): adds the tracks and data channel of `spec`, waits for
    /// gathering unless `trickle`.
    pub async fn offer(&self, spec: OfferSpec, trickle: bool) -> Result<String, MediaError> {
        let existing: Vec<String> = self.io.writers.read().map(|w| w.keys().cloned().collect()).unwrap_or_default();
        let add_channel = spec.data && !self.data_offered.swap(true, Ordering::AcqRel);
        let early = self.conn.run(|core| {
            let mut added = Vec::new();
            for (n, t) in spec.tracks.iter().enumerate() {
                let mid = t.mid.clone().unwrap_or_else(|| n.to_string());
                if existing.contains(&mid) {
                    continue;
                }
                let send = SendTrack { mid, kind: t.kind, codec: default_codec(t.kind, &t.codec) };
                let (track, ssrc) = local_track(&send);
                let track_id = track.track_id().to_owned();
                let sender = if t.send_only {
                    let init = RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Sendonly,
                        streams: vec![],
                        send_encodings: vec![],
                    };
                    let transceiver = core
                        .add_transceiver_from_track(track, Some(init))
                        .map_err(|e| MediaError::Engine(e.to_string()))?;
                    core.rtp_transceiver(transceiver)
                        .and_then(|t| t.sender())
                        .ok_or_else(|| MediaError::Engine("transceiver without a sender".into()))?
                } else {
                    core.add_track(track).map_err(|e| MediaError::Engine(e.to_string()))?
                };
                prefer_codec(core, Transceiver::Sending(sender), &send);
                added.push(Added { send, sender, ssrc, track_id });
            }
            if add_channel {
                core.create_data_channel("JanusDataChannel", None).map_err(|e| MediaError::Engine(e.to_string()))?;
            }
            let options = spec.ice_restart.then_some(RTCOfferOptions { ice_restart: true });
            let offer = core.create_offer(options).map_err(|e| MediaError::Sdp(e.to_string()))?;
            core.set_local_description(Instant::now(), offer).map_err(|e| MediaError::Sdp(e.to_string()))?;
            self.register_writers(core, added);
            // Full trickle: the description goes out without candidates, they follow as events.
            let early = if trickle { core.local_description().map(|d| d.sdp) } else { None };
            self.conn.gather(core);
            Ok::<_, MediaError>(early)
        })?;
        self.finish_local(early).await
    }

    /// After a local description: the SDP taken before gathering (full trickle), or the one
    /// with the candidates once gathering is done (half-trickle).
    async fn finish_local(&self, early: Option<String>) -> Result<String, MediaError> {
        let sdp = match early {
            Some(sdp) => sdp,
            None => {
                let mut gathered = self.gathered.clone();
                let _ = tokio::time::timeout(GATHER_TIMEOUT, gathered.wait_for(|done| *done)).await;
                self.conn
                    .with(|core| core.local_description().map(|d| d.sdp))
                    .ok_or_else(|| MediaError::Engine("no local description".into()))?
            }
        };
        Ok(self.as_sent(&sdp))
    }

    /// Our description as the peer gets it: candidates of component 1 only, and with 1:1 NAT the
    /// public address on host candidates (the engine knows only the host addresses).
    fn as_sent(&self, sdp: &str) -> String {
        let sdp = super::sdp::drop_rtcp_component_candidates(sdp);
        match &self.nat_1_1 {
            Some(public) => super::sdp::rewrite_host_candidates(&sdp, public),
            None => sdp,
        }
    }

    /// Records the writer of every added track (mid, SSRC, negotiated payload type).
    fn register_writers(&self, core: &mut RTCPeerConnection, added: Vec<Added>) {
        for Added { send: t, sender, ssrc, track_id } in added {
            let (pt, extensions) = match core.rtp_sender(sender) {
                Some(mut s) => {
                    let p = &s.get_parameters().rtp_parameters;
                    let pt = p
                        .codecs
                        .iter()
                        .find(|c| c.rtp_codec.mime_type.to_ascii_lowercase().ends_with(&t.codec.name))
                        .map(|c| c.payload_type)
                        .unwrap_or(t.codec.pt);
                    let extensions: Arc<[(&'static str, u8)]> = p
                        .header_extensions
                        .iter()
                        .filter_map(|e| Some((super::types::relayed_extension(&e.uri)?, u8::try_from(e.id).ok()?)))
                        .collect();
                    (pt, extensions)
                }
                None => (t.codec.pt, Arc::from([])),
            };
            let mid = mid_of(core, Transceiver::Sending(sender)).unwrap_or_else(|| t.mid.clone());
            let writer = RtpWriter {
                conn: Arc::downgrade(&self.conn),
                sender,
                ssrc,
                payload_type: pt,
                kind: t.kind,
                counters: self.io.counters.clone(),
                extensions,
            };
            if let Ok(mut w) = self.io.writers.write() {
                w.insert(mid.clone(), writer);
            }
            if let Ok(mut l) = self.io.local_tracks.write() {
                l.insert(track_id, mid);
            }
        }
    }

    /// Adds a remote candidate (or end of candidates).
    pub async fn add_candidate(&self, c: TrickleCandidate) -> Result<(), MediaError> {
        let init = match c {
            TrickleCandidate::Completed => RTCIceCandidateInit { candidate: String::new(), ..Default::default() },
            TrickleCandidate::Candidate { candidate, sdp_mid, sdp_mline_index } => {
                RTCIceCandidateInit { candidate, sdp_mid, sdp_mline_index, ..Default::default() }
            }
        };
        self.conn.run(|core| core.add_remote_candidate(init)).map_err(|e| MediaError::Candidate(e.to_string()))
    }

    /// The current local SDP (as the peer got it) and remote SDP.
    pub async fn descriptions(&self) -> (Option<String>, Option<String>) {
        let (local, remote) = self
            .conn
            .with(|core| (core.local_description().map(|d| d.sdp), core.remote_description().map(|d| d.sdp.clone())));
        (local.map(|sdp| self.as_sent(&sdp)), remote)
    }

    fn report(&self) -> rtc::statistics::report::RTCStatsReport {
        self.conn.with(|core| core.get_stats(Instant::now(), StatsSelector::None))
    }

    /// Admin `handle_info` WebRTC statistics, laid out as Janus's `webrtc.media`: per mid its
    /// type, SSRCs, NACK settings and `stats.in`/`stats.out` (packets, bytes, `bytes_lastsec`,
    /// NACKs, retransmissions; loss and jitter in), plus the selected candidate pair.
    /// `bytes_lastsec` compares with the previous call when it was 0.25-10 s ago, else with a
    /// second sample taken one second later.
    pub async fn stats(&self) -> serde_json::Value {
        use rtc::statistics::report::RTCStatsReportEntry as E;
        use serde_json::{json, Map, Value};
        let mut report = self.report();
        let mut now = Instant::now();
        let recent = Duration::from_millis(250)..=Duration::from_secs(10);
        let previous = self.last_bytes.lock().ok().and_then(|mut l| l.take());
        let (then, before) = match previous {
            Some((t, b)) if recent.contains(&now.duration_since(t)) => (t, b),
            _ => {
                let first = (now, byte_counts(&report));
                tokio::time::sleep(Duration::from_secs(1)).await;
                report = self.report();
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
                _ => {}
            }
        }
        if let Ok(mut last) = self.last_bytes.lock() {
            *last = Some((now, counts));
        }
        let selected = self.conn.with(selected_pair);
        json!({"media": Value::Object(media), "selected-pair": selected})
    }

    /// Cumulative loss per stream and direction (for `slowlink`).
    pub async fn loss(&self) -> Vec<super::types::LossSample> {
        use rtc::statistics::report::RTCStatsReportEntry as E;
        let report = self.report();
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
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        self.live.fetch_sub(1, Ordering::Relaxed);
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
        self.conn.close();
    }
}

impl Drop for Peer {
    /// A Peer dropped without `close` still stops its driver (which would otherwise keep the
    /// sockets open).
    fn drop(&mut self) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            self.live.fetch_sub(1, Ordering::Relaxed);
        }
        self.conn.close();
    }
}

/// A track added by an offer or answer, before its writer exists.
struct Added {
    send: SendTrack,
    sender: RTCRtpSenderId,
    ssrc: u32,
    track_id: String,
}

/// Which transceiver: the one of a sender, or the one of a mid.
enum Transceiver<'a> {
    Sending(RTCRtpSenderId),
    Mid(&'a str),
}

/// The transceiver `which` names.
fn transceiver_of(
    core: &mut RTCPeerConnection,
    which: &Transceiver<'_>,
) -> Option<rtc::rtp_transceiver::RTCRtpTransceiverId> {
    let ids: Vec<_> = core.get_transceivers().collect();
    ids.into_iter().find(|&id| {
        core.rtp_transceiver(id).is_some_and(|t| match which {
            Transceiver::Sending(s) => t.sender() == Some(*s),
            Transceiver::Mid(mid) => t.mid().as_deref() == Some(*mid),
        })
    })
}

fn mid_of(core: &mut RTCPeerConnection, which: Transceiver<'_>) -> Option<String> {
    let id = transceiver_of(core, &which)?;
    core.rtp_transceiver(id)?.mid().clone()
}

/// Lists only the codec the plugin sends on this track: the peer must not pick another one (the
/// plugin relays its source's payloads as they are, or asked for this codec).
fn prefer_codec(core: &mut RTCPeerConnection, which: Transceiver<'_>, t: &SendTrack) {
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
    let Some(id) = transceiver_of(core, &which) else { return };
    let Some(mut transceiver) = core.rtp_transceiver(id) else { return };
    // With DTMF when the peer offered it; the engine refuses a list naming a codec the peer did
    // not offer, so without DTMF otherwise.
    let with_dtmf = prefs.len() > 1 && transceiver.set_codec_preferences(prefs).is_ok();
    if !with_dtmf {
        if let Err(e) = transceiver.set_codec_preferences(vec![params]) {
            tracing::debug!(error = %e, codec = %t.codec.name, "codec preference not applied");
        }
    }
}

/// Our track for `t`, with a fresh SSRC.
fn local_track(t: &SendTrack) -> (MediaStreamTrack, u32) {
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
    let track = MediaStreamTrack::new(
        "janus".to_owned(),
        format!("janus{}", t.mid),
        format!("janus{}", t.mid),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
            codec,
            ..Default::default()
        }],
    );
    (track, ssrc)
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

/// The pair ICE selected, as Janus shows it in `handle_info`
/// (`127.0.0.1:40000 [host,udp] <-> 127.0.0.1:50000 [prflx,udp]`). Asked of the ICE transport,
/// which also knows peer-reflexive remotes; the stats report names pairs by candidate ids that
/// its candidate entries do not use.
fn selected_pair(core: &mut RTCPeerConnection) -> Option<String> {
    let pair = match core.sctp() {
        Some(sctp) => sctp.transport().ice_transport().get_selected_candidate_pair(),
        None => {
            let sender = core.get_senders().next();
            match sender {
                Some(id) => core.rtp_sender(id)?.transport()?.ice_transport().get_selected_candidate_pair(),
                None => {
                    let id = core.get_receivers().next()?;
                    core.rtp_receiver(id)?.transport()?.ice_transport().get_selected_candidate_pair()
                }
            }
        }
    }?;
    let show = |c: &rtc::peer_connection::transport::RTCIceCandidate| {
        format!("{}:{} [{},{}]", c.address, c.port, c.typ, c.protocol)
    };
    Some(format!("{} <-> {}", show(pair.local()), show(pair.remote())))
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
