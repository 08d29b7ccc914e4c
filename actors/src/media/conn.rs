//! `Conn`: one engine PeerConnection (the sans-IO `rtc` core) and its UDP sockets.
//!
//! The core sits behind a plain mutex that every user takes briefly: the connection's own driver
//! task (reads, timers, events: `driver.rs`) and whoever writes to it. A writer encrypts and sends
//! on the caller's thread (an EchoTest echo, a VideoRoom fan-out): no channel and no wake-up of
//! another task per packet, which is what a relayed packet used to spend most of its time on.
//!
//! With a TURN server configured, the connection also holds a TURN allocation (`relay.rs`): what
//! the core writes from the relayed address is wrapped for the TURN server, and what the server
//! relays to us is fed to the core as arriving on that address.
//!
//! Locks: the gathering state and the relay are only ever taken with the core locked, so the
//! order between those two does not matter (`gathering_deadline` takes gathering alone, and
//! nothing while holding it).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, CandidateRelayConfig, CandidateServerReflexiveConfig, RTCIceCandidate,
    RTCIceCandidateInit,
};
use rtc::peer_connection::RTCPeerConnection;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use rtc::stun::message::{Getter, Message as StunMessage, TransactionId, BINDING_REQUEST};
use rtc::stun::xoraddr::XorMappedAddress;
use tokio::net::UdpSocket;
use tokio::sync::Notify;

use super::relay::{RelayEvent, TurnRelay, TurnServer};

/// How long server-reflexive and relay gathering may take before the candidates end without them.
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
    /// The TURN allocation for a relay candidate, when a TURN server is configured.
    turn: Option<Mutex<TurnRelay>>,
}

/// The servers a connection gathers candidates from, resolved when it was built.
#[derive(Clone, Debug, Default)]
pub(crate) struct IceServers {
    pub(crate) stun: Vec<SocketAddr>,
    pub(crate) turn: Option<TurnServer>,
}

/// Candidate gathering of the current ICE generation.
#[derive(Default)]
struct Gathering {
    /// The local ICE username fragment candidates were last gathered for.
    ufrag: Option<String>,
    /// Binding requests in flight: transaction, the socket it left from, the server.
    pending: Vec<(TransactionId, SocketAddr, SocketAddr)>,
    /// The TURN allocation is awaited before the end of candidates.
    relay_pending: bool,
    /// When the pending requests are given up.
    deadline: Option<Instant>,
}

impl Gathering {
    fn is_waiting(&self) -> bool {
        !self.pending.is_empty() || self.relay_pending
    }
}

impl Conn {
    pub(crate) fn new(core: RTCPeerConnection, sockets: Vec<(SocketAddr, UdpSocket)>, servers: IceServers) -> Self {
        let turn = servers.turn.and_then(|server| {
            let local = turn_socket(sockets.iter().map(|(a, _)| *a), server.addr);
            if local.is_none() {
                tracing::warn!(?server, "no media socket of the TURN server's address family; no relay candidate");
            }
            let local = local?;
            match TurnRelay::new(&server, local) {
                Ok(relay) => Some(Mutex::new(relay)),
                Err(e) => {
                    tracing::warn!(error = %e, ?server, "TURN client not started; no relay candidate");
                    None
                }
            }
        });
        Conn {
            core: Mutex::new(core),
            sockets,
            kick: Notify::new(),
            closing: AtomicBool::new(false),
            stun_servers: servers.stun,
            gathering: Mutex::default(),
            turn,
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

    /// Runs `f`, which writes one RTP packet, and sends the one datagram it makes. Not polling
    /// the core again to find it empty saves a pass through every stage of the engine per
    /// packet; whatever else it holds (nothing, for an RTP write) goes with the next flush.
    pub(crate) fn write_one<R>(&self, f: impl FnOnce(&mut RTCPeerConnection) -> R) -> R {
        let mut core = self.lock();
        let r = f(&mut core);
        self.flush_at_most(&mut core, 1);
        r
    }

    /// Runs `f` on the core without sending (the driver's own passes, which flush themselves).
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut RTCPeerConnection) -> R) -> R {
        f(&mut self.lock())
    }

    /// Sends every datagram the core has queued, those from the relayed address through the TURN
    /// server. A socket that cannot take one right now drops it, as the network would.
    pub(crate) fn flush(&self, core: &mut RTCPeerConnection) {
        self.flush_at_most(core, usize::MAX);
    }

    fn flush_at_most(&self, core: &mut RTCPeerConnection, limit: usize) {
        for out in std::iter::from_fn(|| core.poll_write()).take(limit) {
            let (local, peer) = (out.transport.local_addr, out.transport.peer_addr);
            if !self.sockets.iter().any(|(a, _)| *a == local) {
                if let Some(mut relay) = self.relay().filter(|r| r.relayed() == Some(local)) {
                    relay.send(out.now, &out.message, peer);
                    self.flush_relay(&mut relay);
                    continue;
                }
            }
            if let Err(e) = self.socket_for(local).try_send_to(&out.message, peer) {
                tracing::trace!(error = %e, %peer, "datagram not sent");
            }
        }
    }

    /// The TURN relay, locked (the core must be locked: see the module docs).
    fn relay(&self) -> Option<MutexGuard<'_, TurnRelay>> {
        self.turn.as_ref().map(|t| t.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Sends what the TURN client has for the TURN server.
    fn flush_relay(&self, relay: &mut TurnRelay) {
        while let Some((local, server, data)) = relay.poll_transmit() {
            if let Err(e) = self.socket_for(local).try_send_to(&data, server) {
                tracing::trace!(error = %e, %server, "datagram to the TURN server not sent");
            }
        }
    }

    fn socket_for(&self, local: SocketAddr) -> &UdpSocket {
        self.sockets.iter().find(|(a, _)| *a == local).map(|(_, s)| s).unwrap_or(&self.sockets[0].1)
    }

    pub(crate) fn sockets(&self) -> &[(SocketAddr, UdpSocket)] {
        &self.sockets
    }

    /// Hands one received datagram to the core (or to gathering, when it answers our STUN, or to
    /// the TURN client, when it comes from the TURN server).
    pub(crate) fn receive(&self, core: &mut RTCPeerConnection, local: SocketAddr, peer: SocketAddr, data: &[u8]) {
        // A closed core has no candidates left: what still arrives would only be refused (and
        // logged as a warning by the ICE agent).
        if self.is_closing() {
            return;
        }
        if self.stun_servers.contains(&peer) && self.stun_answer(core, local, data) {
            return;
        }
        if let Some(mut relay) = self.relay().filter(|r| r.is_from_server(local, peer)) {
            let mut events = Vec::new();
            relay.handle_read(Instant::now(), data, &mut events);
            self.relay_events(core, &mut relay, events);
            return;
        }
        feed(core, local, peer, BytesMut::from(data));
    }

    /// Carries out what the TURN client reported, and sends what it has for the server.
    fn relay_events(&self, core: &mut RTCPeerConnection, relay: &mut TurnRelay, events: Vec<RelayEvent>) {
        self.flush_relay(relay);
        for ev in events {
            match ev {
                RelayEvent::Data { from, data } => {
                    if let Some(relayed) = relay.relayed() {
                        feed(core, relayed, from, data);
                    }
                }
                RelayEvent::Allocated(relayed) => {
                    let mut g = self.gathering.lock().unwrap_or_else(|p| p.into_inner());
                    if std::mem::take(&mut g.relay_pending) {
                        add_relay(core, relayed, relay.local());
                        self.end_if_done(core, &mut g);
                    }
                }
                RelayEvent::Failed => {
                    let mut g = self.gathering.lock().unwrap_or_else(|p| p.into_inner());
                    if std::mem::take(&mut g.relay_pending) {
                        self.end_if_done(core, &mut g);
                    }
                }
            }
        }
        // What the core answered goes out with the caller's next flush (never from here: the
        // relay is locked, and `flush` takes it).
    }

    /// Ends the candidates once nothing is awaited any more.
    fn end_if_done(&self, core: &mut RTCPeerConnection, g: &mut Gathering) {
        if !g.is_waiting() && g.deadline.take().is_some() {
            end_of_candidates(core);
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
        self.with(|_core| {
            if let Some(mut relay) = self.relay() {
                relay.close(Instant::now());
                self.flush_relay(&mut relay);
            }
        });
        self.kick.notify_one();
    }

    /// After a local description: gathers candidates when its ICE credentials are new (the first
    /// description, or an ICE restart). Host candidates go in at once; server-reflexive ones
    /// when the STUN servers answer, the relay one when the TURN server has allocated it (the
    /// allocation is made once and kept across ICE restarts), then the end of candidates.
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
        g.relay_pending = false;
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
        if let Some(mut relay) = self.relay() {
            relay.allocate(Instant::now());
            if let Some(relayed) = relay.relayed() {
                add_relay(core, relayed, relay.local());
            }
            g.relay_pending = relay.is_allocating();
            self.flush_relay(&mut relay);
        }
        if g.is_waiting() {
            g.deadline = Some(Instant::now() + STUN_TIMEOUT);
        } else {
            end_of_candidates(core);
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
        self.end_if_done(core, &mut g);
        true
    }

    /// When unanswered STUN requests are given up.
    pub(crate) fn gathering_deadline(&self) -> Option<Instant> {
        self.gathering.lock().ok()?.deadline
    }

    /// Gives up on the STUN and TURN servers that did not answer in time.
    pub(crate) fn gathering_timeout(&self, core: &mut RTCPeerConnection, now: Instant) {
        let mut g = self.gathering.lock().unwrap_or_else(|p| p.into_inner());
        if g.deadline.is_some_and(|d| d <= now) {
            g.deadline = None;
            g.pending.clear();
            if std::mem::take(&mut g.relay_pending) {
                if let Some(mut relay) = self.relay() {
                    relay.give_up();
                }
            }
            end_of_candidates(core);
        }
    }

    /// When the TURN client next needs its timer (retransmissions, refreshes).
    pub(crate) fn relay_deadline(&self) -> Option<Instant> {
        self.relay()?.poll_timeout()
    }

    /// The TURN client's timer: retransmits, refreshes the allocation, permissions and channels.
    pub(crate) fn relay_timeout(&self, core: &mut RTCPeerConnection, now: Instant) {
        if let Some(mut relay) = self.relay() {
            let mut events = Vec::new();
            relay.handle_timeout(now, &mut events);
            self.relay_events(core, &mut relay, events);
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

/// Hands `data` from `peer` to the core as arriving on our address `local`.
fn feed(core: &mut RTCPeerConnection, local: SocketAddr, peer: SocketAddr, data: BytesMut) {
    let msg = TaggedBytesMut {
        now: Instant::now(),
        transport: TransportContext {
            local_addr: local,
            peer_addr: peer,
            ecn: None,
            transport_protocol: TransportProtocol::UDP,
        },
        message: data,
    };
    if let Err(e) = core.handle_read(msg) {
        tracing::trace!(error = %e, %peer, "datagram refused by the engine");
    }
}

/// Adds the relay candidate for `relayed`, allocated from our socket `base`.
fn add_relay(core: &mut RTCPeerConnection, relayed: SocketAddr, base: SocketAddr) {
    let relay = CandidateRelayConfig {
        base_config: CandidateConfig {
            network: "udp".to_owned(),
            address: relayed.ip().to_string(),
            port: relayed.port(),
            component: 1,
            ..Default::default()
        },
        rel_addr: base.ip().to_string(),
        rel_port: base.port(),
        url: None,
    }
    .new_candidate_relay();
    add_local(core, relay.map(|c| RTCIceCandidate::from(&c)));
}

/// The socket a TURN server is reached from, among our sockets' `addrs`: one of its address
/// family, a loopback one for a server on loopback and a non-loopback one otherwise when there is
/// a choice.
fn turn_socket(addrs: impl Iterator<Item = SocketAddr> + Clone, server: SocketAddr) -> Option<SocketAddr> {
    let mut same_family = addrs.filter(|a| a.is_ipv4() == server.is_ipv4());
    same_family.clone().find(|a| a.ip().is_loopback() == server.ip().is_loopback()).or_else(|| same_family.next())
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

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::turn_socket;

    #[test]
    fn turn_server_is_reached_from_a_socket_of_its_kind() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let ours = [a("10.0.0.5:4000"), a("127.0.0.1:4001"), a("[::1]:4002")];
        let pick = |server: &str| turn_socket(ours.iter().copied(), a(server));
        assert_eq!(pick("127.0.0.1:3478"), Some(a("127.0.0.1:4001")), "loopback server, loopback socket");
        assert_eq!(pick("192.0.2.1:3478"), Some(a("10.0.0.5:4000")), "remote server, non-loopback socket");
        assert_eq!(pick("[2001:db8::1]:3478"), Some(a("[::1]:4002")), "only the family must match");
        assert_eq!(turn_socket([a("127.0.0.1:4001")].into_iter(), a("[2001:db8::1]:3478")), None);
    }
}
