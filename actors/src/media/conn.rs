//! `Conn`: one engine PeerConnection (the sans-IO `rtc` core) and its UDP sockets.
//!
//! The core sits behind a plain mutex that every user takes briefly: the connection's own driver
//! task (reads, timers, events: `driver.rs`) and whoever writes to it. A writer encrypts and sends
//! on the caller's thread (an EchoTest echo, a VideoRoom fan-out): no channel and no wake-up of
//! another task per packet, which is what a relayed packet used to spend most of its time on.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, CandidateServerReflexiveConfig, RTCIceCandidate, RTCIceCandidateInit,
};
use rtc::peer_connection::RTCPeerConnection;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use rtc::stun::message::{Getter, Message as StunMessage, TransactionId, BINDING_REQUEST};
use rtc::stun::xoraddr::XorMappedAddress;
use tokio::net::UdpSocket;
use tokio::sync::Notify;

/// How long server-reflexive gathering may take before the candidates end without it.
const STUN_TIMEOUT: Duration = Duration::from_secs(2);

/// A PeerConnection's core and sockets, shared by its driver task and its writers.
pub(crate) struct Conn {
    core: Mutex<RTCPeerConnection>,
    sockets: Vec<(SocketAddr, UdpSocket)>,
    /// Wakes the driver after a change that may move its timers or queue events.
    pub(crate) kick: Notify,
    closing: AtomicBool,
    /// STUN servers for server-reflexive candidates, resolved when the connection was built.
    stun_servers: Vec<SocketAddr>,
    gathering: Mutex<Gathering>,
}

/// Candidate gathering of the current ICE generation.
#[derive(Default)]
struct Gathering {
    /// The local ICE username fragment candidates were last gathered for.
    ufrag: Option<String>,
    /// Binding requests in flight: transaction, the socket it left from, the server.
    pending: Vec<(TransactionId, SocketAddr, SocketAddr)>,
    /// When the pending requests are given up.
    deadline: Option<Instant>,
}

impl Conn {
    pub(crate) fn new(core: RTCPeerConnection, sockets: Vec<(SocketAddr, UdpSocket)>, stun: Vec<SocketAddr>) -> Self {
        Conn {
            core: Mutex::new(core),
            sockets,
            kick: Notify::new(),
            closing: AtomicBool::new(false),
            stun_servers: stun,
            gathering: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, RTCPeerConnection> {
        // A panic while holding the core leaves it as it was between two calls; keep going.
        self.core.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` on the core and sends what it produced; the driver then re-reads the core.
    pub(crate) fn run<R>(&self, f: impl FnOnce(&mut RTCPeerConnection) -> R) -> R {
        let r = self.write(f);
        self.kick.notify_one();
        r
    }

    /// Runs `f` on the core and sends what it produced, without waking the driver: for RTP and
    /// RTCP writes, which queue nothing but packets.
    pub(crate) fn write<R>(&self, f: impl FnOnce(&mut RTCPeerConnection) -> R) -> R {
        let mut core = self.lock();
        let r = f(&mut core);
        self.flush(&mut core);
        r
    }

    /// Runs `f` on the core without sending (the driver's own passes, which flush themselves).
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut RTCPeerConnection) -> R) -> R {
        f(&mut self.lock())
    }

    /// Sends every datagram the core has queued. A socket that cannot take one right now drops
    /// it, as the network would.
    pub(crate) fn flush(&self, core: &mut RTCPeerConnection) {
        while let Some(out) = core.poll_write() {
            let socket = self.socket_for(out.transport.local_addr);
            if let Err(e) = socket.try_send_to(&out.message, out.transport.peer_addr) {
                tracing::trace!(error = %e, peer = %out.transport.peer_addr, "datagram not sent");
            }
        }
    }

    fn socket_for(&self, local: SocketAddr) -> &UdpSocket {
        self.sockets.iter().find(|(a, _)| *a == local).map(|(_, s)| s).unwrap_or(&self.sockets[0].1)
    }

    pub(crate) fn sockets(&self) -> &[(SocketAddr, UdpSocket)] {
        &self.sockets
    }

    /// Hands one received datagram to the core (or to gathering, when it answers our STUN).
    pub(crate) fn receive(&self, core: &mut RTCPeerConnection, local: SocketAddr, peer: SocketAddr, data: &[u8]) {
        if self.stun_servers.contains(&peer) && self.stun_answer(core, local, data) {
            return;
        }
        let msg = TaggedBytesMut {
            now: Instant::now(),
            transport: TransportContext {
                local_addr: local,
                peer_addr: peer,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: BytesMut::from(data),
        };
        if let Err(e) = core.handle_read(msg) {
            tracing::trace!(error = %e, %peer, "datagram refused by the engine");
        }
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Closes the core (sending what closing produces) and stops the driver.
    pub(crate) fn close(&self) {
        if self.closing.swap(true, Ordering::AcqRel) {
            return;
        }
        self.write(|core| {
            if let Err(e) = core.close() {
                tracing::debug!(error = %e, "closing the PeerConnection");
            }
        });
        self.kick.notify_one();
    }

    /// After a local description: gathers candidates when its ICE credentials are new (the first
    /// description, or an ICE restart). Host candidates go in at once; server-reflexive ones
    /// when the STUN servers answer, then the end of candidates.
    pub(crate) fn gather(&self, core: &mut RTCPeerConnection) {
        let ufrag = core
            .local_description()
            .and_then(|d| d.sdp.lines().find_map(|l| l.strip_prefix("a=ice-ufrag:")).map(|u| u.trim().to_owned()));
        let mut g = self.gathering.lock().unwrap_or_else(|p| p.into_inner());
        if ufrag.is_none() || g.ufrag == ufrag {
            return;
        }
        g.ufrag = ufrag;
        g.pending.clear();
        for (addr, socket) in &self.sockets {
            let host = CandidateHostConfig {
                base_config: CandidateConfig {
                    network: "udp".to_owned(),
                    address: addr.ip().to_string(),
                    port: addr.port(),
                    component: 1,
                    ..Default::default()
                },
                ..Default::default()
            }
            .new_candidate_host();
            add_local(core, host.map(|c| RTCIceCandidate::from(&c)));
            for server in self.stun_servers.iter().filter(|s| s.is_ipv4() == addr.is_ipv4()) {
                let mut req = StunMessage::new();
                if req.build(&[Box::<TransactionId>::default(), Box::new(BINDING_REQUEST)]).is_ok()
                    && socket.try_send_to(&req.raw, *server).is_ok()
                {
                    g.pending.push((req.transaction_id, *addr, *server));
                }
            }
        }
        if g.pending.is_empty() {
            end_of_candidates(core);
        } else {
            g.deadline = Some(Instant::now() + STUN_TIMEOUT);
        }
    }

    /// A STUN server's answer to one of our binding requests: adds the server-reflexive
    /// candidate it reports. False when the datagram is not such an answer.
    fn stun_answer(&self, core: &mut RTCPeerConnection, local: SocketAddr, data: &[u8]) -> bool {
        let mut msg = StunMessage::new();
        if msg.unmarshal_binary(data).is_err() {
            return false;
        }
        let mut g = self.gathering.lock().unwrap_or_else(|p| p.into_inner());
        let Some(i) = g.pending.iter().position(|(tx, at, _)| *tx == msg.transaction_id && *at == local) else {
            return false;
        };
        g.pending.swap_remove(i);
        let mut mapped = XorMappedAddress::default();
        if mapped.get_from(&msg).is_ok() {
            let srflx = CandidateServerReflexiveConfig {
                base_config: CandidateConfig {
                    network: "udp".to_owned(),
                    address: mapped.ip.to_string(),
                    port: mapped.port,
                    component: 1,
                    ..Default::default()
                },
                rel_addr: local.ip().to_string(),
                rel_port: local.port(),
                url: None,
            }
            .new_candidate_server_reflexive();
            add_local(core, srflx.map(|c| RTCIceCandidate::from(&c)));
        }
        if g.pending.is_empty() {
            g.deadline = None;
            end_of_candidates(core);
        }
        true
    }

    /// When unanswered STUN requests are given up.
    pub(crate) fn gathering_deadline(&self) -> Option<Instant> {
        self.gathering.lock().ok()?.deadline
    }

    /// Gives up on the STUN servers that did not answer in time.
    pub(crate) fn gathering_timeout(&self, core: &mut RTCPeerConnection, now: Instant) {
        let mut g = self.gathering.lock().unwrap_or_else(|p| p.into_inner());
        if g.deadline.is_some_and(|d| d <= now) {
            g.deadline = None;
            g.pending.clear();
            end_of_candidates(core);
        }
    }
}

fn add_local<E: std::fmt::Display>(core: &mut RTCPeerConnection, candidate: Result<RTCIceCandidate, E>) {
    let init = match candidate {
        Ok(c) => c.to_json().map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match init.and_then(|init| core.add_local_candidate(init).map_err(|e| e.to_string())) {
        Ok(()) => {}
        Err(e) => tracing::debug!(error = %e, "local candidate not added"),
    }
}

fn end_of_candidates(core: &mut RTCPeerConnection) {
    if let Err(e) = core.add_local_candidate(RTCIceCandidateInit::default()) {
        tracing::debug!(error = %e, "end of candidates not added");
    }
}

/// Binds one UDP socket per address, all on `port` (0: any free port each).
pub(crate) fn bind(ips: &[std::net::IpAddr], port: u16) -> std::io::Result<Vec<(SocketAddr, UdpSocket)>> {
    let mut out = Vec::with_capacity(ips.len());
    for ip in ips {
        let std = std::net::UdpSocket::bind(SocketAddr::new(*ip, port))?;
        std.set_nonblocking(true)?;
        let addr = std.local_addr()?;
        out.push((addr, UdpSocket::from_std(std)?));
    }
    if out.is_empty() {
        return Err(std::io::Error::other("no address to bind media sockets on"));
    }
    Ok(out)
}
