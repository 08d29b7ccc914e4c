//! The VideoRoom media plane: per-stream fan-out lists, swapped by the room actor and walked by
//! the publisher's reader task for every packet. Nothing here goes through an actor mailbox.
//!
//! A publisher's [`PublisherSink`] maps its mids to [`Feed`]s. A feed holds the subscriber
//! streams ([`SubStream`]) and plain-RTP forwarders ([`RtpForwarder`]) that receive its packets.
//! The room replaces a feed's lists whole (copy, edit, swap) on join and leave, so the packet path
//! takes one uncontended read lock per packet and never waits for the room.

use std::borrow::Cow;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use portunus_actors::media::codec::VideoFrameInfo;
use portunus_actors::media::srtp::SrtpSender;
use portunus_actors::media::{Feedback, MediaKind, MediaPort, MediaSink, RtpPacket, RtpWriter};

use super::remote::Remotization;
use crate::simulcast::{KeyframeThrottle, Layering, Layers, Selector, Source};

/// A copy-on-write list: readers clone the `Arc`, writers swap in an edited copy.
struct SwapList<T> {
    items: RwLock<Arc<Vec<Arc<T>>>>,
}

impl<T> Default for SwapList<T> {
    fn default() -> Self {
        SwapList { items: RwLock::new(Arc::new(Vec::new())) }
    }
}

impl<T> SwapList<T> {
    fn snapshot(&self) -> Arc<Vec<Arc<T>>> {
        self.items.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn edit(&self, f: impl FnOnce(&mut Vec<Arc<T>>)) {
        let mut slot = self.items.write().unwrap_or_else(|e| e.into_inner());
        let mut next: Vec<Arc<T>> = slot.as_ref().clone();
        f(&mut next);
        *slot = Arc::new(next);
    }
}

/// One stream a publisher sends (one mid), and everyone it goes to.
pub struct Feed {
    /// Audio or video.
    pub kind: MediaKind,
    /// The publisher's mid.
    pub mid: String,
    publisher: MediaPort,
    subscribers: SwapList<SubStream>,
    forwarders: SwapList<RtpForwarder>,
    /// Muted by a moderator: nothing is forwarded.
    pub moderated: AtomicBool,
    /// The publisher asked not to send this stream (`configure` with `send:false`).
    pub paused: AtomicBool,
    /// Packets were held back (moderated, paused): subscribers restart when they flow again.
    held: AtomicBool,
    keyframes: KeyframeThrottle,
    /// Packets received from the publisher.
    pub packets: AtomicU64,
    talk: Option<TalkDetector>,
    /// Codec name, to find keyframes when switching simulcast layers.
    codec: String,
    /// The publisher's simulcast layers, if it sends simulcast.
    layers: Option<Layers>,
    /// Where keyframe requests go instead of the publisher's PeerConnection (remote publishers).
    keyframe_hook: Option<KeyframeHook>,
    /// The publisher sends VP9 SVC: subscribers choose layers (see [`crate::svc`]).
    svc: bool,
    /// The publisher encrypts this stream end to end (JSEP `e2ee`): subscribers are told so.
    e2ee: bool,
}

/// Asks a source without a PeerConnection for a keyframe.
pub type KeyframeHook = Arc<dyn Fn() + Send + Sync>;

impl Feed {
    /// A feed for the publisher stream `mid`.
    pub fn new(kind: MediaKind, mid: String, publisher: MediaPort, codec: &str) -> Self {
        Feed {
            talk: None,
            codec: codec.to_owned(),
            layers: None,
            keyframe_hook: None,
            svc: false,
            e2ee: false,
            kind,
            mid,
            publisher,
            subscribers: SwapList::default(),
            forwarders: SwapList::default(),
            moderated: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            held: AtomicBool::new(false),
            keyframes: KeyframeThrottle::default(),
            packets: AtomicU64::new(0),
        }
    }

    /// Detects talking on this (audio) stream.
    pub fn with_talk(mut self, talk: Option<TalkDetector>) -> Self {
        self.talk = talk;
        self
    }

    /// The publisher sends simulcast with these rids (`a=rid:<id> send`).
    pub fn with_layers(mut self, rids: &[String]) -> Self {
        self.layers = Layers::from_rids(rids);
        self
    }

    /// Sends keyframe requests to `hook` (a remote publisher's RTCP) instead of the publisher.
    pub fn with_keyframe_hook(mut self, hook: KeyframeHook) -> Self {
        self.keyframe_hook = Some(hook);
        self
    }

    /// The simulcast layers' rids, lowest quality first (empty without simulcast).
    pub fn layer_rids(&self) -> Vec<Arc<str>> {
        self.layers.as_ref().map(|l| l.rids().to_vec()).unwrap_or_default()
    }

    /// Subscribers choose SVC layers of this (VP9) stream.
    pub fn with_svc(mut self, svc: bool) -> Self {
        self.svc = svc;
        self
    }

    /// Marks the stream end-to-end encrypted by its publisher.
    pub fn with_e2ee(mut self, e2ee: bool) -> Self {
        self.e2ee = e2ee;
        self
    }

    /// Whether the publisher encrypts this stream end to end.
    pub fn is_e2ee(&self) -> bool {
        self.e2ee
    }

    /// Whether subscribers choose SVC layers of this stream.
    pub fn is_svc(&self) -> bool {
        self.svc
    }

    /// How many simulcast layers (0 without simulcast).
    pub fn layer_count(&self) -> usize {
        self.layers.as_ref().map_or(0, Layers::count)
    }

    /// Starts sending to `s`.
    pub fn add_subscriber(&self, s: Arc<SubStream>) {
        self.subscribers.edit(|v| v.push(s));
    }

    /// Stops sending to one subscriber stream.
    pub fn remove_stream(&self, stream: &Arc<SubStream>) {
        self.subscribers.edit(|v| v.retain(|s| !Arc::ptr_eq(s, stream)));
    }

    /// Adds a plain-RTP forwarder.
    pub fn add_forwarder(&self, f: Arc<RtpForwarder>) {
        self.forwarders.edit(|v| v.push(f));
    }

    /// Removes the forwarder `stream_id`; whether it was there.
    pub fn remove_forwarder(&self, stream_id: u32) -> bool {
        let mut found = false;
        self.forwarders.edit(|v| {
            let before = v.len();
            v.retain(|f| f.stream_id != stream_id);
            found = v.len() != before;
        });
        found
    }

    /// The forwarders, for `listforwarders`.
    pub fn forwarders(&self) -> Arc<Vec<Arc<RtpForwarder>>> {
        self.forwarders.snapshot()
    }

    /// Sends one of the publisher's data channel messages to every subscriber of this (data)
    /// stream that is started and has it on.
    pub fn forward_data(&self, data: &bytes::Bytes, binary: bool) {
        if self.moderated.load(Ordering::Relaxed) {
            return;
        }
        for f in self.forwarders.snapshot().iter() {
            f.send_data(data, binary);
        }
        for s in self.subscribers.snapshot().iter() {
            if s.gate.is_open() && s.send.load(Ordering::Relaxed) {
                s.port.send_data(None, data.clone(), binary);
            }
        }
    }

    /// Asks the publisher for a keyframe (throttled: see [`KeyframeThrottle`]).
    pub fn request_keyframe(&self) {
        if self.kind == MediaKind::Video && self.keyframes.allow() {
            match &self.keyframe_hook {
                Some(hook) => hook(),
                None => self.publisher.request_keyframe(&self.mid),
            }
        }
    }

    /// Sends one publisher packet to every subscriber stream and forwarder.
    async fn forward(&self, pkt: RtpPacket) {
        self.packets.fetch_add(1, Ordering::Relaxed);
        if let Some(talk) = &self.talk {
            talk.observe(&pkt);
        }
        if self.moderated.load(Ordering::Relaxed) || self.paused.load(Ordering::Relaxed) {
            self.held.store(true, Ordering::Relaxed);
            return;
        }
        let resumed = self.held.load(Ordering::Relaxed) && self.held.swap(false, Ordering::Relaxed);
        for f in self.forwarders.snapshot().iter() {
            f.send(&pkt);
        }
        let Some(layering) = Layering::of(&pkt, self.layers.as_ref(), self.svc && self.kind == MediaKind::Video) else {
            return;
        };
        let subs = self.subscribers.snapshot();
        if subs.is_empty() {
            return;
        }
        // Each subscriber's writer relays the media extensions (audio level, orientation) with
        // its own ids and drops the rest.
        let source = Source { kind: self.kind, codec: &self.codec, layering };
        let mut info = None;
        for s in subs.iter() {
            if resumed {
                s.selector.restart();
            }
            s.forward(&pkt, self, &source, &mut info);
        }
    }
}

/// Janus's talking detection: the average of the audio-level extension (dBov, 0 loudest, 127
/// silence) over every `window` packets, below `threshold` means talking.
pub struct TalkDetector {
    ext_id: u8,
    window: u32,
    threshold: u32,
    state: Mutex<(u32, u32, bool)>,
    notify: Box<dyn Fn(bool, u32) + Send + Sync>,
}

impl TalkDetector {
    /// A detector reading extension `ext_id`; `notify(talking, average)` on every change.
    pub fn new(ext_id: u8, window: u32, threshold: u32, notify: Box<dyn Fn(bool, u32) + Send + Sync>) -> Self {
        TalkDetector { ext_id, window: window.max(1), threshold, state: Mutex::new((0, 0, false)), notify }
    }

    fn observe(&self, pkt: &RtpPacket) {
        let Some(level) = pkt.extensions.iter().find(|e| e.id == self.ext_id).and_then(|e| e.value.first()) else {
            return;
        };
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (packets, sum, talking) = &mut *st;
        *packets += 1;
        *sum += u32::from(level & 0x7f);
        if *packets < self.window {
            return;
        }
        let avg = *sum / *packets;
        (*packets, *sum) = (0, 0);
        let now = avg < self.threshold;
        if now != *talking {
            *talking = now;
            (self.notify)(now, avg);
        }
    }
}

/// Whether a subscriber receives anything at all (`start` / `pause`).
#[derive(Default)]
pub struct Gate {
    open: AtomicBool,
}

impl Gate {
    /// Opens or closes the gate.
    pub fn set(&self, open: bool) {
        self.open.store(open, Ordering::Relaxed);
    }

    /// Whether media flows.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }
}

/// Called when a subscriber stream changes simulcast layer (substream) or temporal layer, or SVC
/// layer (spatial_layer, temporal_layer).
pub type LayerNotice = Box<dyn Fn(&'static str, usize) + Send + Sync>;

/// One m-line of a subscriber, fed by one publisher stream.
pub struct SubStream {
    /// The subscriber-side mid.
    pub mid: String,
    port: MediaPort,
    gate: Arc<Gate>,
    /// `configure` with `send:false` stops just this stream.
    pub send: AtomicBool,
    /// Packets were held back from this stream (paused, `send:false`): it restarts when they
    /// flow again.
    held: AtomicBool,
    /// The subscriber's simulcast/temporal layer choice and sequence continuity.
    pub selector: Selector,
    /// The `fallback` asked for (µs), reported back as Janus does; 0 when never asked.
    pub fallback_us: AtomicU64,
    writer: OnceLock<RtpWriter>,
    notice: Option<LayerNotice>,
}

impl SubStream {
    /// A stream to `port`'s m-line `mid`, gated by the subscriber's `gate`.
    pub fn new(mid: String, port: MediaPort, gate: Arc<Gate>, notice: Option<LayerNotice>) -> Self {
        SubStream {
            mid,
            port,
            gate,
            send: AtomicBool::new(true),
            held: AtomicBool::new(false),
            selector: Selector::default(),
            fallback_us: AtomicU64::new(0),
            writer: OnceLock::new(),
            notice,
        }
    }

    fn writer(&self) -> Option<&RtpWriter> {
        if let Some(w) = self.writer.get() {
            return Some(w);
        }
        // Negotiated once the subscriber's offer was made; cached from then on.
        let w = self.port.writer(&self.mid)?;
        Some(self.writer.get_or_init(|| w))
    }

    /// Forwards `pkt` of `feed` (seen as `source`) when this subscriber should get it. `info`
    /// caches the payload inspection across the subscribers of one packet.
    fn forward(&self, pkt: &RtpPacket, feed: &Feed, source: &Source<'_>, info: &mut Option<VideoFrameInfo>) {
        let Some(writer) = self.writer() else { return };
        if !self.gate.is_open() || !self.send.load(Ordering::Relaxed) {
            self.held.store(true, Ordering::Relaxed);
            return;
        }
        if self.held.load(Ordering::Relaxed) && self.held.swap(false, Ordering::Relaxed) {
            self.selector.restart();
        }
        let notify = |notices: &[(&'static str, usize)]| {
            if let Some(notice) = &self.notice {
                for &(what, n) in notices {
                    notice(what, n);
                }
            }
        };
        if let Some(out) = self.selector.step(Cow::Borrowed(pkt), source, info, notify, || feed.request_keyframe()) {
            // Never wait for one subscriber: a full queue costs that subscriber this packet only.
            let _ = writer.try_write(out);
        }
    }
}

/// `rtp_forward`: a publisher stream sent as plain RTP to a UDP address.
pub struct RtpForwarder {
    /// Id reported to the client.
    pub stream_id: u32,
    /// Audio or video.
    pub kind: MediaKind,
    /// Destination host as given.
    pub host: String,
    /// Destination port.
    pub port: u16,
    /// SSRC to send with (the publisher's when 0).
    pub ssrc: u32,
    /// Payload type to send with (the publisher's when 0).
    pub pt: u8,
    dest: SocketAddr,
    socket: UdpSocket,
    /// Encrypts what is sent (`srtp_suite`/`srtp_crypto`); plain RTP without.
    srtp: Option<SrtpSender>,
    /// The `publish_remotely` this forwarder is part of, if any.
    pub remote: Option<Arc<Remotization>>,
    /// Simulcast layers (rids, lowest first): layer `n` is sent with SSRC `ssrc + n`.
    layer_rids: Vec<Arc<str>>,
}

impl RtpForwarder {
    /// A forwarder to `dest`; binds an ephemeral local UDP socket.
    pub fn new(
        stream_id: u32,
        kind: MediaKind,
        host: String,
        dest: SocketAddr,
        ssrc: u32,
        pt: u8,
    ) -> std::io::Result<Self> {
        let local: SocketAddr = if dest.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("literal address");
        let socket = UdpSocket::bind(local)?;
        // Never block the media runtime: a full socket buffer drops the packet.
        socket.set_nonblocking(true)?;
        Ok(RtpForwarder {
            stream_id,
            kind,
            port: dest.port(),
            host,
            ssrc,
            pt,
            dest,
            socket,
            srtp: None,
            remote: None,
            layer_rids: Vec::new(),
        })
    }

    /// Sends SRTP instead of plain RTP.
    pub fn with_srtp(mut self, srtp: Option<SrtpSender>) -> Self {
        self.srtp = srtp;
        self
    }

    /// Part of a `publish_remotely`: simulcast layer `n` (of `layer_rids`) goes with SSRC `ssrc + n`.
    pub fn with_remote(mut self, remote: Arc<Remotization>, layer_rids: Vec<Arc<str>>) -> Self {
        self.remote = Some(remote);
        self.layer_rids = layer_rids;
        self
    }

    /// Whether it sends SRTP.
    pub fn is_srtp(&self) -> bool {
        self.srtp.is_some()
    }

    /// A data-channel message in Janus's envelope: a bare RTP header (payload type 1 for binary,
    /// 0 for text) and the message, never encrypted.
    fn send_data(&self, data: &[u8], binary: bool) {
        let mut out = Vec::with_capacity(12 + data.len());
        out.extend_from_slice(&[0x80, u8::from(binary), 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(data);
        let _ = self.socket.send_to(&out, self.dest);
    }

    fn send(&self, pkt: &RtpPacket) {
        let layer = pkt.rid.as_ref().and_then(|r| self.layer_rids.iter().position(|l| l == r)).unwrap_or(0);
        let ssrc = if self.ssrc == 0 { pkt.ssrc } else { self.ssrc.wrapping_add(layer as u32) };
        let pt = if self.pt == 0 { pkt.payload_type } else { self.pt };
        let Some(bytes) = pkt.to_bytes(ssrc, pt) else { return };
        let bytes = match &self.srtp {
            Some(srtp) => match srtp.protect(&bytes) {
                Some(b) => b,
                None => return,
            },
            None => bytes,
        };
        let _ = self.socket.send_to(&bytes, self.dest);
    }
}

/// A publisher's incoming media, by mid.
#[derive(Default)]
pub struct PublisherSink {
    feeds: RwLock<Vec<Arc<Feed>>>,
}

impl PublisherSink {
    /// Replaces the publisher's feeds (publish, renegotiation).
    pub fn set_feeds(&self, feeds: Vec<Arc<Feed>>) {
        *self.feeds.write().unwrap_or_else(|e| e.into_inner()) = feeds;
    }

    fn feed(&self, mid: &str) -> Option<Arc<Feed>> {
        self.feeds.read().unwrap_or_else(|e| e.into_inner()).iter().find(|f| f.mid == mid).cloned()
    }
}

#[async_trait::async_trait]
impl MediaSink for PublisherSink {
    async fn rtp(&self, _port: &MediaPort, mid: &str, _kind: MediaKind, pkt: RtpPacket) {
        if let Some(feed) = self.feed(mid) {
            feed.forward(pkt).await;
        }
    }
}

/// A subscriber's side: it sends nothing, but its keyframe requests go to the publishers.
#[derive(Default)]
pub struct SubscriberSink {
    feeds: RwLock<Vec<(String, Arc<Feed>)>>,
}

impl SubscriberSink {
    /// Which feed each subscriber mid shows.
    pub fn set_feeds(&self, feeds: Vec<(String, Arc<Feed>)>) {
        *self.feeds.write().unwrap_or_else(|e| e.into_inner()) = feeds;
    }
}

#[async_trait::async_trait]
impl MediaSink for SubscriberSink {
    async fn rtp(&self, _port: &MediaPort, _mid: &str, _kind: MediaKind, _pkt: RtpPacket) {}

    fn feedback(&self, _port: &MediaPort, mid: &str, fb: Feedback) {
        if matches!(fb, Feedback::Pli | Feedback::Fir) {
            let feeds = self.feeds.read().unwrap_or_else(|e| e.into_inner());
            if let Some((_, feed)) = feeds.iter().find(|(m, _)| m == mid) {
                feed.request_keyframe();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(ssrc: u32, seq: u16, ts: u32) -> RtpPacket {
        RtpPacket {
            marker: false,
            payload_type: 96,
            sequence_number: seq,
            timestamp: ts,
            ssrc,
            extensions: vec![],
            rid: None,
            payload: bytes::Bytes::new(),
        }
    }

    #[test]
    fn talking_is_the_window_average_below_the_threshold() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let t = TalkDetector::new(1, 4, 25, Box::new(move |on, avg| log.lock().unwrap().push((on, avg))));
        let with_level = |level: u8| RtpPacket {
            extensions: vec![portunus_actors::media::RtpExtension {
                id: 1,
                uri: Some(portunus_actors::media::RELAYED_EXTENSIONS[0]),
                value: bytes::Bytes::from(vec![0x80 | level]),
            }],
            ..pkt(1, 0, 0)
        };
        for level in [10, 20, 30, 20, 127, 127, 127, 127, 5, 5, 5, 5, 5, 5, 5, 5] {
            t.observe(&with_level(level));
        }
        assert_eq!(*seen.lock().unwrap(), vec![(true, 20), (false, 127), (true, 5)]);
    }
}
