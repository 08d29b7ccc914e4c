//! Remote publishers (Janus 1.1 "cascading"), media side: the UDP sockets and threads of a
//! publisher fed by plain RTP from another Janus/Portunus (`add_remote_publisher`), and the RTCP
//! listener of a local publisher sent to one (`publish_remotely`).
//!
//! Janus compat (janus_videoroom.c, remote publishers): every stream of a remote publisher arrives
//! on ONE port and is told apart by SSRC: `1000 + mindex * 10 + substream` (substream 0..=2 for
//! simulcast, always 0 otherwise). `publish_remotely` forwards with exactly those SSRCs, so one
//! instance cascades into another. Data-channel messages travel inside a bare 12-byte RTP header
//! whose payload type is 0 for text and 1 for binary. Keyframe requests go back as RTCP PLI
//! (media SSRC = the forwarded SSRC) to whatever address last sent a packet to the RTCP port.
//!
//! Owns no room state: the room ([`super::room`]) decides what exists; this module only moves
//! packets. Each remote publisher has one thread that ends (closing its sockets) when its
//! [`RemoteSource`] is dropped, that is when the participant leaves the room or the room goes.
//! Buffers are fixed-size and nothing is queued: a packet is read, forwarded and forgotten.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use portunus_actors::media::plain;
use portunus_actors::media::srtp::SrtpReceiver;
use portunus_actors::media::{MediaKind, MediaPort, MediaSink};
use portunus_actors::plugin::{PluginCtx, PushError};
use serde_json::Value;
use tokio::sync::oneshot;

use super::media::{Feed, KeyframeHook, PublisherSink};
use portunus_actors::api::{Jsep, Transaction};

/// The SSRC of mindex 0, substream 0 (Janus's `REMOTE_PUBLISHER_BASE_SSRC`).
pub const BASE_SSRC: u32 = 1000;
/// SSRCs per mindex (Janus's `REMOTE_PUBLISHER_SSRC_STEP`).
pub const SSRC_STEP: u32 = 10;
/// Simulcast rids given to substreams 0, 1, 2 (lowest quality first, as [`Feed::with_layers`]).
pub const LAYER_RIDS: [&str; 3] = ["l", "m", "h"];

/// Largest datagram read; anything longer is truncated and then refused as malformed.
const MAX_DATAGRAM: usize = 1500;
/// How often a remotization reminds the remote RTCP port where to send keyframe requests.
const LATCH_INTERVAL: Duration = Duration::from_secs(5);

/// The SSRC `publish_remotely` sends stream `mindex` (simulcast layer `substream`) with.
pub fn remote_ssrc(mindex: usize, substream: usize) -> u32 {
    BASE_SSRC.wrapping_add(SSRC_STEP.wrapping_mul(mindex as u32)).wrapping_add(substream as u32)
}

/// The (mindex, substream) an incoming SSRC stands for; `None` below the base.
pub fn demux_ssrc(ssrc: u32) -> Option<(usize, usize)> {
    let diff = ssrc.checked_sub(BASE_SSRC)?;
    Some(((diff / SSRC_STEP) as usize, (diff % SSRC_STEP) as usize))
}

/// Who a VideoRoom participant is on the wire: a handle with its PeerConnection, or a remote
/// publisher that has neither (events to it go nowhere, its media comes from [`RemoteSource`]).
#[derive(Clone)]
pub enum Endpoint {
    /// A participant on a handle of ours.
    Local(PluginCtx),
    /// A remote publisher.
    Remote(Arc<RemoteSource>),
}

impl Endpoint {
    /// `push_event` on a local participant; nothing for a remote one.
    pub fn push_event(&self, tx: Option<Transaction>, data: Value, jsep: Option<Jsep>) -> Result<(), PushError> {
        match self {
            Endpoint::Local(ctx) => ctx.push_event(tx, data, jsep),
            Endpoint::Remote(_) => Ok(()),
        }
    }

    /// `close_pc` on a local participant; nothing for a remote one.
    pub fn close_pc(&self) -> Result<(), PushError> {
        match self {
            Endpoint::Local(ctx) => ctx.close_pc(),
            Endpoint::Remote(_) => Ok(()),
        }
    }

    /// The media port (a remote publisher's has no PeerConnection behind it).
    pub fn media(&self) -> &MediaPort {
        match self {
            Endpoint::Local(ctx) => ctx.media(),
            Endpoint::Remote(r) => &r.port,
        }
    }

    /// The remote publisher, if this is one.
    pub fn remote(&self) -> Option<&Arc<RemoteSource>> {
        match self {
            Endpoint::Local(_) => None,
            Endpoint::Remote(r) => Some(r),
        }
    }
}

/// One stream of a remote publisher, as the receiving thread needs it.
pub struct RemoteStream {
    /// The m-line index the sender's SSRCs encode.
    pub mindex: usize,
    /// The publisher mid subscribers know it by.
    pub mid: String,
    /// Audio, video or data.
    pub kind: MediaKind,
    /// Substreams 1 and 2 are accepted (simulcast).
    pub simulcast: bool,
    /// The sender's ids of the relayed header extensions.
    pub relayed: Vec<(u8, &'static str)>,
    /// Where its packets go.
    pub feed: Arc<Feed>,
}

/// A remote publisher's sockets and receiving thread. Dropping it stops the thread.
pub struct RemoteSource {
    port: MediaPort,
    /// The address the RTP socket is bound to, when not every address (`ip` of the reply).
    pub ip: Option<String>,
    /// The port all RTP arrives on.
    pub rtp_port: u16,
    /// The port the sender latches to for our RTCP feedback.
    pub rtcp_port: u16,
    demux: Arc<Demux>,
    back: Arc<Back>,
    _thread: IoThread,
}

/// Where a remote publisher's RTP goes: its streams by mindex.
struct Demux {
    streams: RwLock<Vec<Arc<RemoteStream>>>,
    sink: Arc<PublisherSink>,
    port: MediaPort,
    srtp: RwLock<Option<Arc<SrtpReceiver>>>,
    rids: [Arc<str>; 3],
}

/// The RTCP way back to a remote publisher's sender.
struct Back {
    socket: UdpSocket,
    /// The last address a packet reached the RTCP port from.
    to: Mutex<Option<SocketAddr>>,
}

/// How the sockets of a remote publisher are bound.
pub struct Binding {
    /// RTP port; 0 picks a free one.
    pub port: u16,
    /// RTCP port; 0 picks a free one.
    pub rtcp_port: u16,
    /// Local address to bind to (`iface`); every address when `None`.
    pub iface: Option<IpAddr>,
    /// IPv4 multicast group to join on the RTP socket (`mcast`).
    pub mcast: Option<Ipv4Addr>,
}

impl RemoteSource {
    /// Binds the RTP and RTCP sockets and starts the receiving thread (named after `label`).
    pub fn bind(label: &str, binding: &Binding, srtp: Option<SrtpReceiver>) -> std::io::Result<Arc<RemoteSource>> {
        let any: IpAddr =
            if binding.iface.is_some_and(|i| i.is_ipv6()) { IpAddr::from([0u16; 8]) } else { IpAddr::from([0u8; 4]) };
        let local = binding.iface.filter(|_| binding.mcast.is_none()).unwrap_or(any);
        let rtp = UdpSocket::bind((local, binding.port))?;
        if let Some(group) = binding.mcast {
            let on = match binding.iface {
                Some(IpAddr::V4(v4)) => v4,
                _ => Ipv4Addr::UNSPECIFIED,
            };
            rtp.join_multicast_v4(&group, &on)?;
        }
        let rtcp = UdpSocket::bind((binding.iface.unwrap_or(any), binding.rtcp_port))?;
        let (rtp_port, rtcp_port) = (rtp.local_addr()?.port(), rtcp.local_addr()?.port());
        let back_socket = rtcp.try_clone()?;
        back_socket.set_nonblocking(true)?;
        rtp.set_nonblocking(true)?;
        rtcp.set_nonblocking(true)?;
        let port = MediaPort::default();
        let demux = Arc::new(Demux {
            streams: RwLock::new(Vec::new()),
            sink: Arc::new(PublisherSink::default()),
            port: port.clone(),
            srtp: RwLock::new(srtp.map(Arc::new)),
            rids: LAYER_RIDS.map(Arc::from),
        });
        let back = Arc::new(Back { socket: back_socket, to: Mutex::new(None) });
        let (d, b) = (demux.clone(), back.clone());
        let thread = IoThread::spawn(format!("vr-remote-{label}"), move || receive(rtp, rtcp, d, b))?;
        let ip = binding.mcast.map(IpAddr::V4).or(binding.iface).map(|ip| ip.to_string());
        Ok(Arc::new(RemoteSource { port, ip, rtp_port, rtcp_port, demux, back, _thread: thread }))
    }

    /// The media port its feeds report as their publisher's (no PeerConnection behind it).
    pub fn port(&self) -> MediaPort {
        self.port.clone()
    }

    /// A keyframe request for stream `mindex`: an RTCP PLI to the sender, once it latched.
    pub fn keyframe_hook(&self, mindex: usize) -> KeyframeHook {
        let back = self.back.clone();
        let media = remote_ssrc(mindex, 0);
        Arc::new(move || back.picture_loss(media))
    }

    /// Replaces the streams (add or update).
    pub fn set_streams(&self, streams: Vec<RemoteStream>) {
        self.demux.sink.set_feeds(streams.iter().map(|s| s.feed.clone()).collect());
        *self.demux.streams.write().unwrap_or_else(|e| e.into_inner()) = streams.into_iter().map(Arc::new).collect();
    }

    /// The header extension ids stream `mindex` is received with now.
    pub fn relayed(&self, mindex: usize) -> Vec<(u8, &'static str)> {
        let streams = self.demux.streams.read().unwrap_or_else(|e| e.into_inner());
        streams.iter().find(|s| s.mindex == mindex).map(|s| s.relayed.clone()).unwrap_or_default()
    }

    /// Replaces the SRTP key (`update_remote_publisher` with `srtp_suite`/`srtp_crypto`).
    pub fn set_srtp(&self, srtp: Option<SrtpReceiver>) {
        *self.demux.srtp.write().unwrap_or_else(|e| e.into_inner()) = srtp.map(Arc::new);
    }
}

impl Back {
    fn picture_loss(&self, media_ssrc: u32) {
        let to = *self.to.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(to) = to {
            // Non-blocking: a full socket buffer loses this request; the next one will do.
            let _ = self.socket.send_to(&plain::picture_loss(1, media_ssrc), to);
        }
    }

    fn latch(&self, from: SocketAddr) {
        *self.to.lock().unwrap_or_else(|e| e.into_inner()) = Some(from);
    }
}

impl Demux {
    /// One datagram from the RTP port.
    async fn packet(&self, buf: &[u8]) {
        let Some((mindex, substream)) = plain::rtp_ssrc(buf).and_then(demux_ssrc) else { return };
        let stream = {
            let streams = self.streams.read().unwrap_or_else(|e| e.into_inner());
            match streams.iter().find(|s| s.mindex == mindex) {
                Some(s) => s.clone(),
                None => return,
            }
        };
        if substream > 2 || (substream > 0 && !stream.simulcast) {
            return;
        }
        if stream.kind == MediaKind::Data {
            if let Some(payload) = plain::rtp_payload(buf) {
                let binary = buf[1] & 0x7f != 0;
                stream.feed.forward_data(&Bytes::copy_from_slice(payload), binary);
            }
            return;
        }
        let srtp = self.srtp.read().unwrap_or_else(|e| e.into_inner()).clone();
        let bytes = match srtp {
            Some(srtp) => match srtp.unprotect(buf) {
                Some(b) => b,
                None => return,
            },
            None => Bytes::copy_from_slice(buf),
        };
        let Some(mut pkt) = plain::parse_rtp(bytes, &stream.relayed) else { return };
        if stream.simulcast {
            pkt.rid = Some(self.rids[substream].clone());
        }
        self.sink.rtp(&self.port, &stream.mid, stream.kind, pkt).await;
    }
}

/// The receiving loop of one remote publisher: RTP to the feeds, RTCP only to learn where to
/// send keyframe requests.
async fn receive(rtp: UdpSocket, rtcp: UdpSocket, demux: Arc<Demux>, back: Arc<Back>) {
    let (Ok(rtp), Ok(rtcp)) = (tokio::net::UdpSocket::from_std(rtp), tokio::net::UdpSocket::from_std(rtcp)) else {
        tracing::error!("VideoRoom remote publisher: sockets could not join the runtime");
        return;
    };
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut rtcp_buf = vec![0u8; MAX_DATAGRAM];
    loop {
        tokio::select! {
            r = rtp.recv_from(&mut buf) => match r {
                Ok((n, _)) => demux.packet(&buf[..n]).await,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            r = rtcp.recv_from(&mut rtcp_buf) => match r {
                Ok((n, from)) => {
                    let b = &rtcp_buf[..n];
                    if plain::is_rtp(b) || plain::is_rtcp(b) {
                        back.latch(from);
                    }
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
}

/// `publish_remotely`: one remotization of a local publisher. Its RTP forwarders (one per stream,
/// in the feeds) hold it; when the last goes, its RTCP listener stops.
pub struct Remotization {
    /// The caller's name for it.
    pub remote_id: String,
    /// Destination host as given.
    pub host: String,
    /// Destination RTP port.
    pub port: u16,
    /// The remote RTCP port we latch to and hear keyframe requests from.
    pub rtcp_port: Option<u16>,
    _thread: Option<IoThread>,
}

impl Remotization {
    /// Starts listening for keyframe requests from `rtcp` (when given): `feeds` are the
    /// publisher's streams with the SSRC each is forwarded with (plus its simulcast layers).
    pub fn start(
        remote_id: String,
        host: String,
        port: u16,
        rtcp: Option<SocketAddr>,
        feeds: Vec<(u32, Weak<Feed>)>,
    ) -> std::io::Result<Remotization> {
        let thread = match rtcp {
            None => None,
            Some(to) => {
                let local: SocketAddr = if to.is_ipv4() {
                    (Ipv4Addr::UNSPECIFIED, 0).into()
                } else {
                    "[::]:0".parse().expect("literal address")
                };
                let socket = UdpSocket::bind(local)?;
                socket.set_nonblocking(true)?;
                // Not named after `remote_id`: a client string cannot name a thread (NUL bytes).
                Some(IoThread::spawn("vr-remotize".into(), move || listen(socket, to, feeds))?)
            }
        };
        Ok(Remotization { remote_id, host, port, rtcp_port: rtcp.map(|a| a.port()), _thread: thread })
    }
}

/// A remotization's RTCP side: latch to the remote RTCP port now and then, and turn the PLIs and
/// FIRs it sends into keyframe requests on the matching local stream.
async fn listen(socket: UdpSocket, to: SocketAddr, feeds: Vec<(u32, Weak<Feed>)>) {
    let Ok(socket) = tokio::net::UdpSocket::from_std(socket) else { return };
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut latch = tokio::time::interval(LATCH_INTERVAL);
    loop {
        tokio::select! {
            _ = latch.tick() => {
                let _ = socket.send_to(&plain::empty_receiver_report(1), to).await;
            }
            r = socket.recv_from(&mut buf) => {
                let Ok((n, _)) = r else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                for ssrc in plain::keyframe_requests(&buf[..n]) {
                    let hit = feeds.iter().find(|(base, _)| (*base..base.saturating_add(3)).contains(&ssrc));
                    if let Some(feed) = hit.and_then(|(_, f)| f.upgrade()) {
                        feed.request_keyframe();
                    }
                }
            }
        }
    }
}

/// A thread running one future on its own small runtime, until the owner drops it.
struct IoThread {
    stop: Option<oneshot::Sender<()>>,
}

impl IoThread {
    fn spawn<F, Fut>(name: String, make: F) -> std::io::Result<IoThread>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new().name(name).spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build() {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "VideoRoom remote: no runtime for the socket thread");
                    return;
                }
            };
            rt.block_on(async move {
                let work = make();
                tokio::select! {
                    _ = work => {}
                    _ = stopped => {}
                }
            });
        })?;
        Ok(IoThread { stop: Some(stop) })
    }
}

impl Drop for IoThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssrcs_encode_mindex_and_substream_as_janus_does() {
        assert_eq!(remote_ssrc(0, 0), 1000);
        assert_eq!(remote_ssrc(1, 0), 1010);
        assert_eq!(remote_ssrc(2, 2), 1022);
        assert_eq!(demux_ssrc(1022), Some((2, 2)));
        assert_eq!(demux_ssrc(1000), Some((0, 0)));
        assert_eq!(demux_ssrc(999), None);
        for (m, s) in [(0, 0), (3, 1), (7, 2)] {
            assert_eq!(demux_ssrc(remote_ssrc(m, s)), Some((m, s)));
        }
    }

    #[test]
    fn the_thread_ends_and_the_port_is_freed_when_the_source_is_dropped() {
        let binding = Binding { port: 0, rtcp_port: 0, iface: Some(IpAddr::from([127, 0, 0, 1])), mcast: None };
        let source = RemoteSource::bind("t", &binding, None).expect("bound");
        let port = source.rtp_port;
        assert_eq!(source.ip.as_deref(), Some("127.0.0.1"));
        drop(source);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "port {port} still bound");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
