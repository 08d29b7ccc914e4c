//! The long-poll queue of a session owned by a polling transport (HTTP): bounded events plus
//! parked polls. Pure data: no actors; the session actor drives it.

use std::collections::VecDeque;

use tokio::sync::oneshot;

/// What a poll gets.
#[derive(Debug)]
pub enum PollOutcome {
    /// Events were waiting: here they are (at most `maxev`).
    Ready(Vec<String>),
    /// Nothing yet: wait on this (the transport applies its own 30 s keepalive timeout).
    Wait(oneshot::Receiver<Vec<String>>),
}

/// Bounded event queue with parked polls.
#[derive(Debug)]
pub struct PollQueue {
    events: VecDeque<String>,
    waiters: VecDeque<oneshot::Sender<Vec<String>>>,
    capacity: usize,
    max_waiters: usize,
    dropped: u64,
}

impl PollQueue {
    /// A queue holding at most `capacity` events and `max_waiters` parked polls.
    pub fn new(capacity: usize, max_waiters: usize) -> Self {
        PollQueue {
            events: VecDeque::new(),
            waiters: VecDeque::new(),
            capacity: capacity.max(1),
            max_waiters: max_waiters.max(1),
            dropped: 0,
        }
    }

    /// Adds an event: hands it to a parked poll if one is still waiting, else queues it, dropping
    /// the oldest event when full. Returns whether something was dropped.
    pub fn push(&mut self, event: String) -> bool {
        let mut event = event;
        while let Some(waiter) = self.waiters.pop_front() {
            match waiter.send(vec![event]) {
                Ok(()) => return false,
                // That poll timed out meanwhile; try the next one.
                Err(mut back) => event = back.pop().unwrap_or_default(),
            }
        }
        let mut dropped = false;
        if self.events.len() >= self.capacity {
            self.events.pop_front();
            self.dropped += 1;
            dropped = true;
        }
        self.events.push_back(event);
        dropped
    }

    /// A poll for up to `maxev` events.
    pub fn poll(&mut self, maxev: usize) -> PollOutcome {
        if !self.events.is_empty() {
            let n = maxev.max(1).min(self.events.len());
            return PollOutcome::Ready(self.events.drain(..n).collect());
        }
        self.waiters.retain(|w| !w.is_closed());
        if self.waiters.len() >= self.max_waiters {
            // Too many parked polls: release the oldest with an empty answer (a keepalive).
            if let Some(old) = self.waiters.pop_front() {
                let _ = old.send(Vec::new());
            }
        }
        let (tx, rx) = oneshot::channel();
        self.waiters.push_back(tx);
        PollOutcome::Wait(rx)
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Queued events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether no event is queued.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_then_poll() {
        let mut q = PollQueue::new(2, 1);
        q.push("a".into());
        q.push("b".into());
        assert!(q.push("c".into()), "oldest dropped");
        assert_eq!(q.dropped(), 1);
        match q.poll(10) {
            PollOutcome::Ready(v) => assert_eq!(v, vec!["b", "c"]),
            PollOutcome::Wait(_) => panic!("expected events"),
        }
    }

    #[test]
    fn parked_poll_gets_next_event() {
        let mut q = PollQueue::new(4, 1);
        let PollOutcome::Wait(mut rx) = q.poll(1) else { panic!("expected wait") };
        q.push("x".into());
        assert_eq!(rx.try_recv().ok(), Some(vec!["x".to_string()]));
        assert!(q.is_empty());
    }

    #[test]
    fn timed_out_poll_does_not_eat_events() {
        let mut q = PollQueue::new(4, 2);
        let PollOutcome::Wait(rx) = q.poll(1) else { panic!("expected wait") };
        drop(rx);
        q.push("x".into());
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn too_many_polls_release_oldest() {
        let mut q = PollQueue::new(4, 1);
        let PollOutcome::Wait(mut first) = q.poll(1) else { panic!() };
        let PollOutcome::Wait(_second) = q.poll(1) else { panic!() };
        assert_eq!(first.try_recv().ok(), Some(Vec::new()));
    }
}
