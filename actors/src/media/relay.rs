//! `TurnRelay`: the server's own TURN allocation for one PeerConnection (Janus's `nat.turn_*`),
//! driven through the engine's sans-IO TURN client.
//!
//! It owns the client and what we track around it: the allocation's state, and the peers we
//! asked permissions for. It does no I/O itself: callers feed it datagrams from the TURN server
//! and timer ticks, and send what `poll_transmit` hands out from `local`, the media socket the
//! allocation was made from. Everything it holds is bounded: the client's queues are drained
//! after every call, and permissions stop at `MAX_PEERS` peers.
//!
//! Invariant: it is only used with its connection's core locked (see `conn.rs`), so its own
//! mutex is never contended.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use rtc::stun::message::TransactionId;
use rtc::turn::client::{Client, ClientConfig, Event};

/// Peers a connection's relay creates permissions for; further ones are not reachable through it
/// (ICE sends to a handful of peer candidates, not more).
const MAX_PEERS: usize = 16;

/// A TURN server for the server's own candidates: resolved address and long-term credentials.
#[derive(Clone)]
pub(crate) struct TurnServer {
    pub(crate) addr: SocketAddr,
    pub(crate) username: String,
    pub(crate) password: String,
}

impl std::fmt::Debug for TurnServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The credentials stay out of logs.
        f.debug_struct("TurnServer").field("addr", &self.addr).finish_non_exhaustive()
    }
}

/// One connection's allocation.
pub(crate) struct TurnRelay {
    client: Client,
    server: SocketAddr,
    /// Our socket the allocation is made from (and the TURN server answers to).
    local: SocketAddr,
    state: State,
    /// Peers we asked a permission for, with the request while it is in flight.
    peers: Vec<(SocketAddr, Option<TransactionId>)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Not asked yet.
    Idle,
    /// The Allocate exchange in flight: the id of its authenticated request (what a success
    /// carries; the first, unauthenticated attempt's id is one less in the last byte).
    Allocating(TransactionId),
    /// Allocated: the relayed address peers send to.
    Ready(SocketAddr),
    /// Failed, given up or released: nothing more happens.
    Gone,
}

/// What a datagram or a timer brought about.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RelayEvent {
    /// The allocation succeeded: a relay candidate for this address.
    Allocated(SocketAddr),
    /// The allocation failed (refused, or no answer): no relay candidate.
    Failed,
    /// Data a peer sent to our relayed address.
    Data { from: SocketAddr, data: BytesMut },
}

impl TurnRelay {
    /// A relay to `server` from our socket `local` (no request is sent before [`Self::allocate`]).
    pub(crate) fn new(server: &TurnServer, local: SocketAddr) -> Result<TurnRelay, String> {
        let crypto = rtc::crypto::default_provider().map_err(|e| e.to_string())?;
        let config = ClientConfig {
            // An address, not a name: the client's own lookup would block (resolved beforehand).
            turn_serv_addr: server.addr.to_string(),
            local_addr: local,
            transport_protocol: TransportProtocol::UDP,
            username: server.username.clone(),
            password: server.password.clone(),
            software: "portunus".to_owned(),
            ..Default::default()
        };
        let client = Client::new(config, crypto).map_err(|e| e.to_string())?;
        Ok(TurnRelay { client, server: server.addr, local, state: State::Idle, peers: Vec::new() })
    }

    /// Our socket the allocation is made from.
    pub(crate) fn local(&self) -> SocketAddr {
        self.local
    }

    /// The relayed address, once allocated.
    pub(crate) fn relayed(&self) -> Option<SocketAddr> {
        match self.state {
            State::Ready(addr) => Some(addr),
            _ => None,
        }
    }

    /// Whether the Allocate request is still unanswered.
    pub(crate) fn is_allocating(&self) -> bool {
        matches!(self.state, State::Allocating(_))
    }

    /// Whether a datagram that reached our socket `local` from `peer` is the TURN server's.
    pub(crate) fn is_from_server(&self, local: SocketAddr, peer: SocketAddr) -> bool {
        local == self.local && peer == self.server && self.state != State::Gone
    }

    /// Sends the Allocate request (once; later calls do nothing).
    pub(crate) fn allocate(&mut self, now: Instant) {
        if self.state != State::Idle {
            return;
        }
        match self.client.allocate(now) {
            Ok(tid) => self.state = State::Allocating(tid),
            Err(e) => {
                tracing::warn!(error = %e, server = %self.server, "TURN Allocate not sent");
                self.state = State::Gone;
            }
        }
    }

    /// Gives up an allocation still unanswered (gathering ended without it): its retransmissions
    /// stop and a late answer is ignored.
    pub(crate) fn give_up(&mut self) {
        if self.is_allocating() {
            tracing::warn!(server = %self.server, "the TURN server did not answer in time; no relay candidate");
            let _ = self.client.close();
            self.state = State::Gone;
        }
    }

    /// A datagram from the TURN server. Its effects are in `events`.
    pub(crate) fn handle_read(&mut self, now: Instant, data: &[u8], events: &mut Vec<RelayEvent>) {
        // A datagram neither STUN nor ChannelData is ignored by the client: from the server's
        // address, it is garbage either way.
        let msg = TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: self.local,
                peer_addr: self.server,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: BytesMut::from(data),
        };
        if let Err(e) = self.client.handle_read(msg) {
            tracing::trace!(error = %e, "datagram from the TURN server refused");
        }
        self.drain_events(events);
    }

    /// Sends `data` through the relay to `peer`: what the core writes from the relayed address.
    /// Dropped (as the network would) until the server grants a permission for `peer`, which the
    /// first such write asks for.
    pub(crate) fn send(&mut self, now: Instant, data: &[u8], peer: SocketAddr) {
        let State::Ready(relayed) = self.state else { return };
        let Ok(mut relay) = self.client.relay(relayed) else { return };
        let Err(e) = relay.send_to(now, data, peer) else { return };
        if self.peers.iter().any(|(p, _)| *p == peer) {
            // Asked already: the answer is on its way (or the server refused and this peer is
            // unreachable through the relay).
            tracing::trace!(error = %e, %peer, "relayed datagram dropped");
            return;
        }
        if self.peers.len() >= MAX_PEERS {
            tracing::trace!(%peer, "too many TURN peers; relayed datagram dropped");
            return;
        }
        match relay.create_permission(now, peer) {
            Ok(tid) => self.peers.push((peer, tid)),
            Err(e) => tracing::debug!(error = %e, %peer, "TURN permission not requested"),
        }
    }

    /// The next datagram for the TURN server: (our socket, the server, the bytes).
    pub(crate) fn poll_transmit(&mut self) -> Option<(SocketAddr, SocketAddr, BytesMut)> {
        self.client.poll_write().map(|out| (out.transport.local_addr, out.transport.peer_addr, out.message))
    }

    /// When the client next needs [`Self::handle_timeout`]: retransmissions and refreshes.
    pub(crate) fn poll_timeout(&mut self) -> Option<Instant> {
        if self.state == State::Gone {
            return None;
        }
        self.client.poll_timeout()
    }

    /// Retransmits, refreshes the allocation, its permissions and channels when due.
    pub(crate) fn handle_timeout(&mut self, now: Instant, events: &mut Vec<RelayEvent>) {
        if self.state == State::Gone {
            return;
        }
        if let Err(e) = self.client.handle_timeout(now) {
            tracing::trace!(error = %e, "TURN timer");
        }
        self.drain_events(events);
    }

    /// Releases the allocation (a Refresh with lifetime 0, sent once: the connection is going
    /// away and nobody would act on the answer).
    pub(crate) fn close(&mut self, now: Instant) {
        if let State::Ready(relayed) = self.state {
            if let Err(e) = self.client.relay(relayed).and_then(|mut r| r.close(now)) {
                tracing::debug!(error = %e, "TURN allocation not released");
            }
        }
        let _ = self.client.close();
        self.state = State::Gone;
    }

    /// Whether `tid` is one of the Allocate exchange's two requests (see [`State::Allocating`]).
    fn is_allocate(&self, tid: &TransactionId) -> bool {
        let State::Allocating(auth) = self.state else { return false };
        let mut first = auth;
        if let Some(last) = first.0.last_mut() {
            *last = last.wrapping_sub(1);
        }
        *tid == auth || *tid == first
    }

    fn drain_events(&mut self, events: &mut Vec<RelayEvent>) {
        while let Some(ev) = self.client.poll_event() {
            match ev {
                Event::AllocateResponse(tid, relayed) if self.is_allocate(&tid) => {
                    tracing::info!(%relayed, server = %self.server, "TURN allocation made");
                    self.state = State::Ready(relayed);
                    events.push(RelayEvent::Allocated(relayed));
                }
                Event::AllocateError(tid, e) if self.is_allocate(&tid) => {
                    tracing::warn!(error = %e, server = %self.server, "TURN allocation refused; no relay candidate");
                    self.state = State::Gone;
                    events.push(RelayEvent::Failed);
                }
                Event::TransactionTimeout(tid) if self.is_allocate(&tid) => {
                    tracing::warn!(server = %self.server, "the TURN server did not answer; no relay candidate");
                    self.state = State::Gone;
                    events.push(RelayEvent::Failed);
                }
                Event::TransactionTimeout(tid) | Event::CreatePermissionError(tid, _)
                    if self.peers.iter().any(|(_, t)| *t == Some(tid)) =>
                {
                    // Asked again by the next write to this peer.
                    tracing::debug!(server = %self.server, "TURN permission not granted");
                    self.peers.retain(|(_, t)| *t != Some(tid));
                }
                Event::CreatePermissionResponse(tid, peer) => {
                    tracing::debug!(%peer, "TURN permission granted");
                    if let Some(entry) = self.peers.iter_mut().find(|(_, t)| *t == Some(tid)) {
                        entry.1 = None;
                    }
                }
                Event::DataIndicationOrChannelData(_, from, data) => {
                    if self.relayed().is_some() {
                        events.push(RelayEvent::Data { from, data });
                    }
                }
                other => tracing::trace!(event = ?other, "TURN client event"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rtc::stun::error_code::{ErrorCodeAttribute, CODE_BAD_REQUEST};
    use rtc::stun::message::{Message, MessageType, CLASS_ERROR_RESPONSE, CLASS_REQUEST, METHOD_ALLOCATE};

    use super::*;

    fn relay() -> TurnRelay {
        let server = TurnServer { addr: addr("127.0.0.1:3478"), username: "u".into(), password: "p".into() };
        TurnRelay::new(&server, addr("127.0.0.1:5000")).unwrap()
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// The Allocate request `relay` just sent.
    fn sent_allocate(relay: &mut TurnRelay) -> Message {
        let (local, server, data) = relay.poll_transmit().expect("an Allocate request");
        assert_eq!((local, server), (addr("127.0.0.1:5000"), addr("127.0.0.1:3478")));
        let mut msg = Message::new();
        msg.unmarshal_binary(&data).unwrap();
        assert_eq!(msg.typ, MessageType::new(METHOD_ALLOCATE, CLASS_REQUEST));
        msg
    }

    #[test]
    fn allocates_once_from_our_socket() {
        let (mut r, now) = (relay(), Instant::now());
        r.send(now, b"early", addr("192.0.2.1:9"));
        assert!(r.poll_transmit().is_none(), "nothing is relayed before the allocation");
        r.allocate(now);
        sent_allocate(&mut r);
        assert!(r.is_allocating() && r.relayed().is_none() && r.poll_timeout().is_some());
        assert!(r.is_from_server(addr("127.0.0.1:5000"), addr("127.0.0.1:3478")));
        assert!(!r.is_from_server(addr("127.0.0.1:5001"), addr("127.0.0.1:3478")), "another socket");
        r.allocate(now);
        assert!(r.poll_transmit().is_none(), "one Allocate per connection");
    }

    #[test]
    fn a_refused_allocation_fails_and_garbage_is_ignored() {
        let (mut r, now) = (relay(), Instant::now());
        r.allocate(now);
        let request = sent_allocate(&mut r);
        let mut events = Vec::new();
        r.handle_read(now, b"\x00\x01 not quite STUN", &mut events);
        r.handle_read(now, &[], &mut events);
        assert!(events.is_empty() && r.is_allocating());
        let mut refusal = Message::new();
        let code = ErrorCodeAttribute { code: CODE_BAD_REQUEST, reason: b"no".to_vec() };
        refusal
            .build(&[
                Box::new(request.transaction_id),
                Box::new(MessageType::new(METHOD_ALLOCATE, CLASS_ERROR_RESPONSE)),
                Box::new(code),
            ])
            .unwrap();
        r.handle_read(now, &refusal.raw, &mut events);
        assert_eq!(events, vec![RelayEvent::Failed]);
        assert!(!r.is_allocating() && r.relayed().is_none() && r.poll_timeout().is_none());
        assert!(!r.is_from_server(addr("127.0.0.1:5000"), addr("127.0.0.1:3478")), "gone");
    }

    #[test]
    fn giving_up_stops_the_retransmissions() {
        let (mut r, now) = (relay(), Instant::now());
        r.allocate(now);
        sent_allocate(&mut r);
        r.give_up();
        assert!(!r.is_allocating() && r.poll_timeout().is_none());
        let mut events = Vec::new();
        r.handle_timeout(now + Duration::from_secs(10), &mut events);
        assert!(events.is_empty() && r.poll_transmit().is_none());
        r.close(now);
        assert!(r.poll_transmit().is_none(), "nothing to release");
    }
}
