//! Publishing without waiting on lapin's I/O thread. lapin writes frames on its own thread and
//! resolves each `basic.publish` once the frames are written; awaiting that per message costs a
//! wake-up of our runtime (and a task switch) per reply. Here a publish is started (its frames
//! queued with lapin) and kept in flight; completed publishes are collected without registering
//! a waker, so lapin's thread never has to wake ours for a write.
//!
//! Invariant: a message leaves [`InFlight`] only once lapin reports its frames written. When the
//! attempt ends, [`InFlight::into_unwritten`] hands back every message not known to be written,
//! oldest first, to be published again after the reconnect (as before: at least once).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use lapin::options::{BasicAckOptions, BasicPublishOptions};
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel};

use super::Meta;
use crate::lanes::{JsonStyle, Reply};

/// Where one API's messages go out.
pub(super) struct Route {
    pub exchange: ShortString,
    pub routing_key: ShortString,
}

type Publish = Pin<Box<dyn Future<Output = lapin::Result<()>> + Send>>;

/// Publishes started on one channel and not yet known to be written, oldest first.
pub(super) struct InFlight {
    channel: Channel,
    style: JsonStyle,
    queue: VecDeque<(Reply<Meta>, Publish)>,
    /// A message whose publish failed at once (the channel is gone); newer than the queue's.
    failed: Option<Reply<Meta>>,
}

impl InFlight {
    pub fn new(channel: Channel, style: JsonStyle) -> Self {
        InFlight { channel, style, queue: VecDeque::new(), failed: None }
    }

    /// Whether the caller should wait for the oldest publish before starting another.
    pub fn is_full(&self) -> bool {
        self.queue.len() >= MAX_IN_FLIGHT
    }

    /// Starts publishing `msg`: its frames are queued with lapin before this returns. On error
    /// the message is kept for [`InFlight::into_unwritten`], not lost.
    pub fn start(&mut self, route: &Route, msg: Reply<Meta>) -> lapin::Result<()> {
        let mut props = BasicProperties::default()
            .with_content_type("application/json".into())
            // Janus compat (1.9): every message says who sent it.
            .with_reply_to("Janus".into());
        if let Some(Some(correlation)) = &msg.meta {
            props = props.with_correlation_id(correlation.clone());
        }
        let body = self.style.apply(msg.json.clone());
        let (ch, exchange, key) = (self.channel.clone(), route.exchange.clone(), route.routing_key.clone());
        let mut publish: Publish = Box::pin(async move {
            ch.basic_publish(exchange, key, BasicPublishOptions::default(), body.as_bytes(), props).await?;
            Ok(())
        });
        // The first poll queues the frames and wakes lapin's thread; the result comes later.
        match poll_once(&mut publish) {
            Poll::Ready(Ok(())) => Ok(()),
            Poll::Ready(Err(e)) => {
                self.failed = Some(msg);
                Err(e)
            }
            Poll::Pending => {
                self.queue.push_back((msg, publish));
                Ok(())
            }
        }
    }

    /// Forgets the publishes lapin has written, oldest first, without waiting. A failed one
    /// means the link is broken.
    pub fn settle(&mut self) -> lapin::Result<()> {
        while let Some((_, publish)) = self.queue.front_mut() {
            match poll_once(publish) {
                Poll::Ready(Ok(())) => {
                    self.queue.pop_front();
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => break,
            }
        }
        Ok(())
    }

    /// Waits until the oldest publish is written (only used when too many are in flight).
    pub async fn oldest_written(&mut self) -> lapin::Result<()> {
        if let Some((_, publish)) = self.queue.front_mut() {
            publish.await?;
            self.queue.pop_front();
        }
        Ok(())
    }

    /// The messages not known to be written, oldest first. Call once the connection is closed,
    /// so lapin has either written or rejected each of them.
    pub fn into_unwritten(self) -> impl Iterator<Item = Reply<Meta>> {
        let unwritten = self.queue.into_iter().filter_map(|(msg, mut publish)| match poll_once(&mut publish) {
            Poll::Ready(Ok(())) => None,
            _ => Some(msg),
        });
        unwritten.chain(self.failed)
    }
}

/// Acknowledges every delivery up to `tag` without waiting for lapin to write the ack: a lost
/// ack (the link breaks first) only means the broker delivers those requests again, as it
/// would with an awaited one.
pub(super) fn ack_up_to(ch: &Channel, tag: u64) -> lapin::Result<()> {
    let ch = ch.clone();
    let mut ack = Box::pin(async move { ch.basic_ack(tag, BasicAckOptions { multiple: true }).await });
    match poll_once(&mut ack) {
        Poll::Ready(Err(e)) => Err(e),
        _ => Ok(()),
    }
}

/// Polls without registering a waker: nothing wakes us when it completes.
fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(Waker::noop()))
}

/// Publishes in flight before [`InFlight::start`] waits for the oldest one.
const MAX_IN_FLIGHT: usize = 256;
