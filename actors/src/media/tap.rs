//! Interceptors that only watch the engine's packet chain: [`Tap`] passes every packet on in
//! order and shows it to an [`Observer`] on the way. The observers here: [`DeliverRtcp`] hands
//! inbound RTCP to the application (without it the engine consumes RTCP and PLI/FIR/REMB never
//! reach plugins); [`NackCounter`] counts NACKs and retransmissions for `/metrics`, which the
//! engine's own NACK interceptors generate and answer out of the application's sight. Packet
//! dumps (`capture`) are one more.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

use super::types::MediaCounters;

/// What a [`Tap`] does with the packets going past it.
pub(crate) trait Observer: Send + Sync + 'static {
    /// A packet from the network, on its way to the application.
    fn inbound(&mut self, _msg: &mut TaggedPacket) {}
    /// A packet on its way to the network.
    fn outbound(&mut self, _msg: &TaggedPacket) {}
}

/// Two observers on one tap: each interceptor costs every packet a pass through its queues, so
/// ours share one.
impl<A: Observer, B: Observer> Observer for (A, B) {
    fn inbound(&mut self, msg: &mut TaggedPacket) {
        self.0.inbound(msg);
        self.1.inbound(msg);
    }

    fn outbound(&mut self, msg: &TaggedPacket) {
        self.0.outbound(msg);
        self.1.outbound(msg);
    }
}

/// An interceptor that changes nothing but what its observer marks.
pub(crate) struct Tap<O> {
    observer: O,
    reads: VecDeque<TaggedPacket>,
    writes: VecDeque<TaggedPacket>,
}

impl<O: Observer> Tap<O> {
    pub(crate) fn new(observer: O) -> Self {
        Tap { observer, reads: VecDeque::new(), writes: VecDeque::new() }
    }
}

impl<O: Observer> Protocol<TaggedPacket, TaggedPacket, ()> for Tap<O> {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        self.observer.inbound(&mut msg);
        self.reads.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.reads.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.observer.outbound(&msg);
        self.writes.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.writes.pop_front()
    }
}

impl<O: Observer> Interceptor for Tap<O> {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// Marks inbound RTCP for delivery to the application.
pub(crate) struct DeliverRtcp;

impl Observer for DeliverRtcp {
    fn inbound(&mut self, msg: &mut TaggedPacket) {
        if matches!(msg.message.packet, Packet::Rtcp(_)) {
            msg.message.add(Attribute::DeliverToApplication);
        }
    }
}

/// Counts NACKed packets both ways and the retransmissions sent. Sits between the pacer and the
/// NACK responder: on the way out it sees the generator's NACKs and the responder's resends; on
/// the way in it sees the peer's NACKs before the responder acts on them.
pub(crate) struct NackCounter(pub(crate) Arc<MediaCounters>);

/// Sequence numbers requested by the NACKs of one RTCP compound.
fn nacked(packet: &Packet) -> u64 {
    let Packet::Rtcp(compound) = packet else { return 0 };
    compound
        .iter()
        .filter_map(|p| p.as_any().downcast_ref::<TransportLayerNack>())
        .flat_map(|n| n.nacks.iter())
        .map(|pair| 1 + u64::from(pair.lost_packets.count_ones()))
        .sum()
}

impl Observer for NackCounter {
    fn inbound(&mut self, msg: &mut TaggedPacket) {
        let n = nacked(&msg.message.packet);
        if n > 0 {
            self.0.nacks_in.fetch_add(n, Ordering::Relaxed);
        }
    }

    fn outbound(&mut self, msg: &TaggedPacket) {
        if msg.message.has(&Attribute::Retransmission) {
            self.0.retransmissions_out.fetch_add(1, Ordering::Relaxed);
        } else {
            let n = nacked(&msg.message.packet);
            if n > 0 {
                self.0.nacks_out.fetch_add(n, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::interceptor::AttributedPacket;
    use rtc::rtcp::transport_feedbacks::transport_layer_nack::NackPair;

    fn tagged(packet: Packet) -> TaggedPacket {
        TaggedPacket { now: Instant::now(), transport: Default::default(), message: AttributedPacket::new(packet) }
    }

    #[test]
    fn counts_nacked_sequence_numbers_each_way() {
        let counters = Arc::new(MediaCounters::default());
        let mut c = Tap::new(NackCounter(counters.clone()));
        // Packet 10 plus the two flagged in the bitmap after it; then 20 alone.
        let nack = TransportLayerNack {
            sender_ssrc: 1,
            media_ssrc: 2,
            nacks: vec![NackPair { packet_id: 10, lost_packets: 0b101 }, NackPair { packet_id: 20, lost_packets: 0 }],
        };
        let rtcp = || Packet::Rtcp(vec![Box::new(nack.clone())]);
        c.handle_read(tagged(rtcp())).expect("read");
        c.handle_write(tagged(rtcp())).expect("write");
        c.handle_write(tagged(rtcp())).expect("write");
        assert_eq!(counters.nacks_in.load(Ordering::Relaxed), 4);
        assert_eq!(counters.nacks_out.load(Ordering::Relaxed), 8);
        // Everything passes through, in order.
        assert!(c.poll_read().is_some() && c.poll_write().is_some() && c.poll_write().is_some());
        assert!(c.poll_read().is_none() && c.poll_write().is_none());
    }

    #[test]
    fn inbound_rtcp_is_marked_for_the_application() {
        let mut t = Tap::new(DeliverRtcp);
        t.handle_read(tagged(Packet::Rtcp(vec![]))).expect("read");
        assert!(t.poll_read().expect("passed on").message.has(&Attribute::DeliverToApplication));
    }
}
