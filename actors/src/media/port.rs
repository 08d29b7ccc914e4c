//! The media port: how a plugin touches one handle's media without seeing the engine.
//!
//! A plugin installs a [`MediaSink`] to receive RTP (called on the media runtime, never through an
//! actor mailbox) and uses [`RtpWriter`]s, keyframe requests, REMB and data-channel sends. The port
//! exists for the handle's whole life; the PeerConnection side is attached when one is set up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use bytes::Bytes;

use super::capture::{CaptureError, CaptureInfo, CaptureSlot, CaptureSpec};
use super::peer::PeerIo;
use super::types::{Feedback, MediaKind, RtpPacket};
use super::writer::RtpWriter;

/// Receives a handle's incoming media. Runs on the media runtime: do not block; awaiting writes is
/// fine (that is the back-pressure of a slow peer).
#[async_trait::async_trait]
pub trait MediaSink: Send + Sync + 'static {
    /// An RTP packet arrived on `mid` of the handle whose port is `port`.
    async fn rtp(&self, port: &MediaPort, mid: &str, kind: MediaKind, pkt: RtpPacket);

    /// The peer sent feedback about what we send on `mid` (PLI, FIR, REMB).
    fn feedback(&self, _port: &MediaPort, _mid: &str, _fb: Feedback) {}
}

/// One handle's media, as its plugin sees it. Cheap to clone.
#[derive(Clone)]
pub struct MediaPort {
    inner: Arc<PortInner>,
}

/// Ports alive in the process (see [`live_ports`]).
static LIVE_PORTS: AtomicU64 = AtomicU64::new(0);

/// Media ports alive in the process: one per plugin handle, plus any a plugin made for itself.
/// More than that after the handles are gone means something still holds a port (a leak check
/// for the Admin API's `get_status` and `/metrics`).
pub fn live_ports() -> u64 {
    LIVE_PORTS.load(Ordering::Relaxed)
}

impl Default for MediaPort {
    fn default() -> Self {
        LIVE_PORTS.fetch_add(1, Ordering::Relaxed);
        MediaPort { inner: Arc::default() }
    }
}

impl Drop for PortInner {
    fn drop(&mut self) {
        LIVE_PORTS.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct PortInner {
    sink: RwLock<Option<Arc<dyn MediaSink>>>,
    io: RwLock<Option<Arc<PeerIo>>>,
    /// Admin packet dump; outlives PeerConnections, so a dump started early sees the first one.
    /// Made when a dump starts or a PeerConnection is set up: most handles never need one.
    capture: OnceLock<Arc<CaptureSlot>>,
}

impl MediaPort {
    /// Installs (or replaces) the sink for incoming media.
    pub fn set_sink(&self, sink: Arc<dyn MediaSink>) {
        if let Ok(mut s) = self.inner.sink.write() {
            *s = Some(sink);
        }
    }

    /// Removes the sink.
    pub fn clear_sink(&self) {
        if let Ok(mut s) = self.inner.sink.write() {
            *s = None;
        }
    }

    /// The sink, if any (called per packet: one uncontended read lock).
    pub(crate) fn sink(&self) -> Option<Arc<dyn MediaSink>> {
        self.inner.sink.read().ok().and_then(|s| s.clone())
    }

    pub(crate) fn attach(&self, io: Arc<PeerIo>) {
        if let Ok(mut slot) = self.inner.io.write() {
            *slot = Some(io);
        }
    }

    pub(crate) fn detach(&self) {
        if let Ok(mut slot) = self.inner.io.write() {
            *slot = None;
        }
    }

    fn io(&self) -> Option<Arc<PeerIo>> {
        self.inner.io.read().ok().and_then(|s| s.clone())
    }

    /// Whether a PeerConnection is attached.
    pub fn has_peer(&self) -> bool {
        self.io().is_some()
    }

    /// The writer for what we send on `mid`, once negotiated.
    pub fn writer(&self, mid: &str) -> Option<RtpWriter> {
        self.io()?.writer(mid)
    }

    /// All writers by mid.
    pub fn writers(&self) -> HashMap<String, RtpWriter> {
        self.io().map(|io| io.writers()).unwrap_or_default()
    }

    /// Asks the peer for a keyframe on the stream it sends on `mid` (PLI).
    pub fn request_keyframe(&self, mid: &str) {
        if let Some(io) = self.io() {
            io.send_feedback(mid, Feedback::Pli);
        }
    }

    /// Caps the peer's sending bitrate (REMB) on every stream it sends.
    pub fn send_remb(&self, bitrate: u64) {
        if let Some(io) = self.io() {
            io.send_remb(bitrate);
        }
    }

    /// Admin `start_pcap` / `start_text2pcap`: dumps what this handle's PeerConnections receive
    /// and send from now on. The file is created (or the error known) when this returns.
    pub async fn start_capture(&self, spec: CaptureSpec) -> Result<CaptureInfo, CaptureError> {
        self.capture_slot().start(spec).await
    }

    /// Admin `stop_pcap` / `stop_text2pcap`: ends the dump once its file is closed.
    pub async fn stop_capture(&self) -> Result<CaptureInfo, CaptureError> {
        self.capture_slot().stop().await
    }

    /// Ends the dump, if any, without waiting for the file to close (the handle is ending).
    pub fn abort_capture(&self) {
        if let Some(slot) = self.inner.capture.get() {
            slot.abort();
        }
    }

    /// The running dump, if any.
    pub fn capture(&self) -> Option<CaptureInfo> {
        self.inner.capture.get().and_then(|slot| slot.info())
    }

    pub(crate) fn capture_slot(&self) -> Arc<CaptureSlot> {
        self.inner.capture.get_or_init(Arc::default).clone()
    }

    /// Sends a data-channel message (on `label`, or the first channel).
    pub fn send_data(&self, label: Option<&str>, data: Bytes, binary: bool) {
        if let Some(io) = self.io() {
            io.send_data(label, data, binary);
        }
    }
}
