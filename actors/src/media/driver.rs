//! The task that drives one PeerConnection: it reads its sockets, runs its timers and turns what
//! the core produces into our events (to the owning actor) and media (to the plugin's sink).
//!
//! Media is handed to the sink on this task, straight after the core decrypted it; the sink's
//! writes encrypt and send on the same thread (see `conn.rs`). The core is never locked while
//! the sink runs, so a sink may write to this very connection (EchoTest) or to any other one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use rtc::peer_connection::event::{RTCDataChannelEvent, RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::state::{RTCIceConnectionState, RTCIceGatheringState, RTCPeerConnectionState};
use rtc::peer_connection::RTCPeerConnection;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::sansio::Protocol;
use tokio::io::ReadBuf;
use tokio::sync::watch;

use super::conn::Conn;
use super::engine::TIMER_BEAT;
use super::peer::{DataChannelInfo, EventFn, PeerIo, RemoteTrack};
use super::port::MediaPort;
use super::sdp::MediaKind;
use super::types::{Feedback, HangupReason, LocalCandidate, PeerEvent, RtpPacket};
use crate::plugin::DataMessage;

/// Datagrams read in one go before the core's output is handled.
const RECV_BURST: usize = 64;
/// The largest datagram we take (above any path MTU).
const RECV_BUF: usize = 2048;
/// An already-due timer is handled at most this often (the core's timers are millisecond-grained;
/// a deadline that stays in the past must not spin the loop).
const MIN_TIMER_GAP: Duration = Duration::from_millis(1);
/// The first beat at or after `t`. Once connected, timers are handled on a beat shared by every
/// connection of the process (see `engine::TIMER_BEAT`). The core's periodic timers (NACK,
/// transport-wide CC feedback, RTCP reports, ICE keepalives) each re-arm from the instant they
/// fired, so left alone they drift apart and every connection wakes the media thread on its own
/// for each of them; on the shared beat one wake-up of the thread serves all of them. Nothing due
/// once connected needs to be sooner: what media needs (retransmissions, keyframe requests) is
/// sent as packets arrive.
fn on_beat(t: Instant) -> Instant {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    let beats = t.saturating_duration_since(origin).as_nanos().div_ceil(TIMER_BEAT.as_nanos());
    origin + TIMER_BEAT * u32::try_from(beats).unwrap_or(u32::MAX)
}

/// What the driver needs besides the connection: where events and media go.
pub(crate) struct Inbound {
    pub(crate) events: EventFn,
    pub(crate) io: Arc<PeerIo>,
    pub(crate) port: MediaPort,
    pub(crate) gathered: watch::Sender<bool>,
    /// Seconds of silence before `receiving:false` (changeable at runtime).
    pub(crate) no_media: Arc<AtomicU64>,
    /// The public address host candidates are advertised with (1:1 NAT).
    pub(crate) nat_1_1: Option<String>,
    /// The peer's tracks by the engine's track id.
    tracks: HashMap<String, TrackIn>,
    /// ICE is connected (or completed) and so is the PeerConnection: no checks, handshakes or
    /// gathering are under way, whose timers must not wait for the beat.
    ice_connected: bool,
    connected: bool,
}

/// One track the peer sends us.
struct TrackIn {
    mid: String,
    kind: MediaKind,
    /// The peer's ids of the relayed header extensions.
    extensions: Vec<(u8, &'static str)>,
    /// Payload types of negotiated DTMF events (RFC 4733 `telephone-event`).
    dtmf: Vec<u8>,
    /// Simulcast layers by SSRC.
    rids: Vec<(u32, Arc<str>)>,
    receiving: bool,
    last: Instant,
}

impl Inbound {
    pub(crate) fn new(
        events: EventFn,
        io: Arc<PeerIo>,
        port: MediaPort,
        gathered: watch::Sender<bool>,
        no_media: Arc<AtomicU64>,
        nat_1_1: Option<String>,
    ) -> Self {
        Inbound {
            events,
            io,
            port,
            gathered,
            no_media,
            nat_1_1,
            tracks: HashMap::new(),
            ice_connected: false,
            connected: false,
        }
    }
}

/// Drives `conn` until it closes.
pub(crate) async fn drive(conn: Arc<Conn>, mut inbound: Inbound) {
    let mut buf = vec![0u8; RECV_BUF];
    let sleep = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(sleep);
    let mut last_timer: Option<Instant> = None;
    let mut messages = Vec::new();
    // The last wake-up only fed datagrams to the core (see `take_reads`).
    let mut only_datagrams = false;
    loop {
        if conn.is_closing() {
            break;
        }
        // Everything the core has for us: datagrams out, events (handled here, they may need
        // the core), media and data (handled below, with the core unlocked).
        let core_deadline = conn.with(|core| {
            conn.flush(core);
            while let Some(ev) = core.poll_event() {
                inbound.event(core, ev);
            }
            take_reads(core, only_datagrams, &mut messages);
            core.poll_timeout().into_iter().chain(conn.relay_deadline()).min()
        });
        for m in messages.drain(..) {
            inbound.message(m).await;
        }
        let now = Instant::now();
        let mut deadline = [core_deadline, conn.gathering_deadline(), inbound.silence_deadline()]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + Duration::from_secs(3600));
        if let Some(last) = last_timer {
            deadline = deadline.max(last + MIN_TIMER_GAP);
        }
        if inbound.ice_connected && inbound.connected {
            deadline = on_beat(deadline);
        }
        // Re-arming costs a pass through the runtime's timer wheel; most wake-ups (a datagram)
        // leave the deadline as it was.
        if sleep.deadline() != deadline.into() {
            sleep.as_mut().reset(deadline.into());
        }
        tokio::select! {
            biased;
            _ = conn.kick.notified() => only_datagrams = false,
            got = recv(&conn, &mut buf) => {
                only_datagrams = true;
                conn.with(|core| {
                    if let Some((n, local, peer)) = got {
                        conn.receive(core, local, peer, &buf[..n]);
                    }
                    // Whatever else is already waiting, under the same lock.
                    for _ in 0..RECV_BURST {
                        let Some((n, local, peer)) = try_recv(&conn, &mut buf) else { break };
                        conn.receive(core, local, peer, &buf[..n]);
                    }
                });
            }
            _ = &mut sleep => {
                let now = Instant::now();
                last_timer = Some(now);
                only_datagrams = false;
                conn.with(|core| {
                    if let Err(e) = core.handle_timeout(now) {
                        tracing::trace!(error = %e, "engine timer");
                    }
                    conn.gathering_timeout(core, now);
                    conn.relay_timeout(core, now);
                });
                inbound.check_silence(now);
            }
        }
    }
    tracing::trace!("PeerConnection driver stopped");
}

/// Media and data the core has for the application. Each `poll_read` first walks every stage of
/// the core's read pipeline (the interceptor chain included) for output held back; reading a
/// datagram already ran that walk and left its output queued, so after datagrams alone media is
/// taken straight off the queue: two pipeline walks less per packet. Data channel messages still
/// end with a full walk, which lets SCTP hand over what it held back while the queue was full.
fn take_reads(core: &mut RTCPeerConnection, only_datagrams: bool, out: &mut Vec<RTCMessage>) {
    if only_datagrams {
        while let Some(TaggedRTCMessage { message, .. }) = core.poll_media_read() {
            out.push(message);
        }
        let mut data = false;
        while let Some(TaggedRTCMessage { message, .. }) = core.poll_data_read() {
            out.push(message);
            data = true;
        }
        if !data {
            return;
        }
    }
    while let Some(TaggedRTCMessage { message, .. }) = core.poll_read() {
        out.push(message);
    }
}

/// The next datagram of any of the connection's sockets: (length, our address, the sender).
/// A socket error is an empty read (the loop goes on).
async fn recv(conn: &Conn, buf: &mut [u8]) -> Option<(usize, SocketAddr, SocketAddr)> {
    std::future::poll_fn(|cx| {
        for (local, socket) in conn.sockets() {
            let mut rb = ReadBuf::new(buf);
            match socket.poll_recv_from(cx, &mut rb) {
                Poll::Ready(Ok(peer)) => return Poll::Ready(Some((rb.filled().len(), *local, peer))),
                Poll::Ready(Err(e)) => {
                    tracing::trace!(error = %e, "media socket read");
                    return Poll::Ready(None);
                }
                Poll::Pending => {}
            }
        }
        Poll::Pending
    })
    .await
}

fn try_recv(conn: &Conn, buf: &mut [u8]) -> Option<(usize, SocketAddr, SocketAddr)> {
    conn.sockets().iter().find_map(|(local, socket)| socket.try_recv_from(buf).ok().map(|(n, peer)| (n, *local, peer)))
}

impl Inbound {
    /// One event of the core (called with the core locked).
    fn event(&mut self, core: &mut RTCPeerConnection, ev: RTCPeerConnectionEvent) {
        match ev {
            RTCPeerConnectionEvent::OnIceCandidateEvent(e) => {
                let Ok(init) = e.candidate.to_json() else { return };
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
            RTCPeerConnectionEvent::OnIceGatheringStateChangeEvent(RTCIceGatheringState::Complete) => {
                let _ = self.gathered.send(true);
                (self.events)(PeerEvent::GatheringDone);
            }
            RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(state) => {
                self.ice_connected =
                    matches!(state, RTCIceConnectionState::Connected | RTCIceConnectionState::Completed);
            }
            RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                self.connected = state == RTCPeerConnectionState::Connected;
                match state {
                    RTCPeerConnectionState::Connected => (self.events)(PeerEvent::Connected),
                    RTCPeerConnectionState::Failed => (self.events)(PeerEvent::Failed(HangupReason::IceFailed)),
                    // Closed without our asking: the peer sent a DTLS close alert (our own close
                    // stops the owner first, so this event is then ignored).
                    RTCPeerConnectionState::Closed => (self.events)(PeerEvent::Failed(HangupReason::DtlsAlert)),
                    _ => {}
                }
            }
            RTCPeerConnectionEvent::OnDataChannel(RTCDataChannelEvent::OnOpen(id)) => {
                let Some(dc) = core.data_channel(id) else { return };
                let info = DataChannelInfo {
                    id,
                    label: dc.label().to_owned(),
                    protocol: Some(dc.protocol().to_owned()).filter(|p| !p.is_empty()),
                };
                let label = info.label.clone();
                if let Ok(mut chans) = self.io.channels.write() {
                    chans.retain(|c| c.id != id);
                    chans.push(info);
                }
                (self.events)(PeerEvent::DataOpen { label });
            }
            RTCPeerConnectionEvent::OnDataChannel(RTCDataChannelEvent::OnClose(id)) => {
                if let Ok(mut chans) = self.io.channels.write() {
                    chans.retain(|c| c.id != id);
                }
            }
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                // Once per simulcast layer, each with its own SSRC and rid.
                if !self.tracks.contains_key(&init.track_id) {
                    let Some(track) = receiver_track(core, init.receiver_id) else { return };
                    self.tracks.insert(init.track_id.clone(), track);
                }
                let Some(track) = self.tracks.get_mut(&init.track_id) else { return };
                if let Some(rid) = &init.rid {
                    track.rids.push((init.ssrc, Arc::from(rid.as_str())));
                }
                if let Ok(mut r) = self.io.remotes.write() {
                    let entry = r
                        .entry(track.mid.clone())
                        .or_insert_with(|| RemoteTrack { receiver: init.receiver_id, ssrcs: Vec::new() });
                    entry.receiver = init.receiver_id;
                    if !entry.ssrcs.contains(&init.ssrc) {
                        entry.ssrcs.push(init.ssrc);
                    }
                }
            }
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnClose(track_id)) => {
                if let Some(track) = self.tracks.remove(&track_id) {
                    if let Ok(mut r) = self.io.remotes.write() {
                        r.remove(&track.mid);
                    }
                }
            }
            _ => {}
        }
    }

    /// Media or data from the peer (called with the core unlocked).
    async fn message(&mut self, m: RTCMessage) {
        match m {
            RTCMessage::RtpPacket(track_id, pkt) => {
                let Some(track) = self.tracks.get_mut(&track_id) else { return };
                // Audio carries one codec plus, now and then, DTMF events (RFC 4733) with their
                // own payload type: plugins relay the codec, so the events stop here.
                if track.kind == MediaKind::Audio && track.dtmf.contains(&pkt.header.payload_type) {
                    return;
                }
                let counters = &self.io.counters;
                counters.rtp_in_packets.fetch_add(1, Ordering::Relaxed);
                counters.rtp_in_bytes.fetch_add(pkt.payload.len() as u64, Ordering::Relaxed);
                track.last = Instant::now();
                if !track.receiving {
                    track.receiving = true;
                    (self.events)(PeerEvent::Media { mid: track.mid.clone(), kind: track.kind, receiving: true });
                }
                let Some(sink) = self.port.sink() else { return };
                let mut pkt = RtpPacket::from_rtp(pkt, &track.extensions);
                if !track.rids.is_empty() {
                    pkt.rid = track.rids.iter().find(|(ssrc, _)| *ssrc == pkt.ssrc).map(|(_, rid)| rid.clone());
                }
                let (mid, kind) = (track.mid.clone(), track.kind);
                let delivered = std::panic::AssertUnwindSafe(sink.rtp(&self.port, &mid, kind, pkt)).catch_unwind();
                if delivered.await.is_err() {
                    tracing::error!(%mid, "the plugin's media sink panicked; packet dropped");
                }
            }
            RTCMessage::RtcpPacket(track_id, pkts) => {
                // Feedback about what we send (tagged with our track's id); reports about what
                // we receive are the engine's business.
                let Some(mid) = self.io.local_tracks.read().ok().and_then(|t| t.get(&track_id).cloned()) else {
                    return;
                };
                let Some(sink) = self.port.sink() else { return };
                for p in pkts {
                    let any = p.as_any();
                    let fb = if any.is::<PictureLossIndication>() {
                        Feedback::Pli
                    } else if any.is::<FullIntraRequest>() {
                        Feedback::Fir
                    } else if let Some(remb) = any.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
                        Feedback::Remb(remb.bitrate as u64)
                    } else {
                        continue;
                    };
                    if !matches!(fb, Feedback::Remb(_)) {
                        self.io.counters.keyframe_requests_in.fetch_add(1, Ordering::Relaxed);
                    }
                    sink.feedback(&self.port, &mid, fb);
                }
            }
            RTCMessage::DataChannelMessage(id, msg) => {
                let Some((label, protocol)) = self
                    .io
                    .channels
                    .read()
                    .ok()
                    .and_then(|c| c.iter().find(|c| c.id == id).map(|c| (c.label.clone(), c.protocol.clone())))
                else {
                    return;
                };
                (self.events)(PeerEvent::Data(DataMessage {
                    label,
                    protocol,
                    binary: !msg.is_string,
                    data: msg.data.freeze(),
                }));
            }
            _ => {}
        }
    }

    /// When the first receiving track goes silent for `no_media_timer`.
    fn silence_deadline(&self) -> Option<Instant> {
        let secs = self.no_media.load(Ordering::Relaxed);
        if secs == 0 {
            return None;
        }
        self.tracks.values().filter(|t| t.receiving).map(|t| t.last + Duration::from_secs(secs)).min()
    }

    /// `receiving:false` for the tracks silent for `no_media_timer`.
    fn check_silence(&mut self, now: Instant) {
        let secs = self.no_media.load(Ordering::Relaxed);
        if secs == 0 {
            return;
        }
        for t in self.tracks.values_mut().filter(|t| t.receiving) {
            if now >= t.last + Duration::from_secs(secs) {
                t.receiving = false;
                (self.events)(PeerEvent::Media { mid: t.mid.clone(), kind: t.kind, receiving: false });
            }
        }
    }
}

/// The track of receiver `receiver_id`: its mid and negotiated parameters.
fn receiver_track(
    core: &mut RTCPeerConnection,
    receiver_id: rtc::rtp_transceiver::RTCRtpReceiverId,
) -> Option<TrackIn> {
    let ids: Vec<_> = core.get_transceivers().collect();
    let mid = ids.into_iter().find_map(|id| {
        let t = core.rtp_transceiver(id)?;
        (t.receiver() == Some(receiver_id)).then(|| t.mid().clone().unwrap_or_default())
    })?;
    let mut receiver = core.rtp_receiver(receiver_id)?;
    let kind = match receiver.track().kind() {
        RtpCodecKind::Audio => MediaKind::Audio,
        _ => MediaKind::Video,
    };
    let params = &receiver.get_parameters().rtp_parameters;
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
    Some(TrackIn { mid, kind, extensions, dtmf, rids: Vec::new(), receiving: false, last: Instant::now() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_beat_is_shared_and_never_early() {
        let t = Instant::now() + Duration::from_millis(1234);
        let beat = on_beat(t);
        assert!(beat >= t && beat < t + TIMER_BEAT, "{:?} after {:?}", beat - t, t);
        assert_eq!(on_beat(beat), beat, "a beat is its own beat");
        // Every deadline of the same beat period lands on the same instant, whichever connection
        // asked: one wake-up of the media thread for all of them.
        let earlier = beat - TIMER_BEAT + Duration::from_micros(1);
        assert_eq!(on_beat(earlier), beat);
        assert_eq!(on_beat(beat + Duration::from_micros(1)), beat + TIMER_BEAT);
    }
}
