//! Admin `start_pcap` / `start_text2pcap`: dumps of the plain (decrypted) RTP and RTCP one handle
//! receives and sends, to a pcap file or to Wireshark text2pcap text.
//!
//! Where packets are taken: a [`Tap`](super::tap::Tap) with the handle's [`CaptureSlot`] as its
//! observer, an interceptor at the wire end of every
//! PeerConnection's interceptor chain, so it sees inbound packets just after SRTP decryption and
//! outbound ones just before encryption, including the RTCP the engine makes itself (reports,
//! NACKs, TWCC), as Janus dumps at its ICE layer.
//!
//! Invariants:
//! - When no dump runs, the tap costs one relaxed atomic load per packet.
//! - The media path never touches a file: it copies the packet into a bounded channel with
//!   `try_send` and counts what does not fit. One writer thread per dump owns the file, opens it
//!   (so a bad folder is an error of the `start` request) and closes it when the dump stops.
//! - One dump per handle at a time, whatever its format (Janus keeps one too).

mod format;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, Endianness, TsResolution};
use rtc::interceptor::{Packet, TaggedPacket};

use super::tap::Observer;
use rtc::shared::marshal::Marshal;
use tokio::sync::oneshot;

/// Which file a dump writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureFormat {
    /// A libpcap file (`start_pcap`).
    Pcap,
    /// text2pcap input (`start_text2pcap`).
    Text2pcap,
}

impl CaptureFormat {
    /// The word Janus uses in its replies and `handle_info` keys.
    pub fn as_str(self) -> &'static str {
        match self {
            CaptureFormat::Pcap => "pcap",
            CaptureFormat::Text2pcap => "text2pcap",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            CaptureFormat::Pcap => "pcap",
            CaptureFormat::Text2pcap => "txt",
        }
    }
}

/// A `start_pcap` / `start_text2pcap` request.
#[derive(Clone, Debug)]
pub struct CaptureSpec {
    /// The file format.
    pub format: CaptureFormat,
    /// Folder for the file (created if missing); `None` = the server's working directory.
    pub folder: Option<String>,
    /// File name; `None` = `janus-text2pcap-<random>.pcap|.txt` as Janus names it.
    pub filename: Option<String>,
    /// Bytes of each packet to keep; 0 = all of it.
    pub truncate: usize,
    /// Folders no dump may be written under (`general.protected_folders`).
    pub protected: Vec<String>,
}

/// Why a dump could not start or stop.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    /// A dump already runs on this handle.
    #[error("a dump is already running")]
    AlreadyRunning,
    /// No dump runs on this handle.
    #[error("no dump is running")]
    NotRunning,
    /// The target is inside a protected folder.
    #[error("{0} is in a protected folder")]
    Protected(String),
    /// The folder or file could not be created.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        reason: String,
    },
}

/// A running dump, as `handle_info` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureInfo {
    /// The file format.
    pub format: CaptureFormat,
    /// The file, as `folder/filename`.
    pub path: String,
    /// Packets the writer could not keep up with.
    pub dropped: u64,
}

/// Packets that may wait for the writer thread; beyond it they are dropped (and counted).
const QUEUE: usize = 4096;
/// How long `stop` waits for the writer to close the file.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// One handle's dump state, shared by its media port (start/stop/info) and the taps of its
/// PeerConnections (packets).
#[derive(Default)]
pub(crate) struct CaptureSlot {
    /// Fast check for the per-packet path; true only while `running` holds a dump.
    active: AtomicBool,
    /// The dump; a std lock: taken briefly, never across an await.
    running: RwLock<Option<Running>>,
}

struct Running {
    info: CaptureInfo,
    truncate: usize,
    queue: SyncSender<Record>,
    dropped: Arc<AtomicU64>,
    /// Fires when the writer thread has closed the file.
    closed: oneshot::Receiver<()>,
}

/// One packet on its way to the writer.
struct Record {
    at: SystemTime,
    inbound: bool,
    rtcp: bool,
    /// The packet's length before truncation.
    full_len: usize,
    kept: Vec<u8>,
}

impl CaptureSlot {
    /// Starts a dump: the writer thread creates the file before this returns.
    pub(crate) async fn start(&self, spec: CaptureSpec) -> Result<CaptureInfo, CaptureError> {
        if self.is_running() {
            return Err(CaptureError::AlreadyRunning);
        }
        let name = spec
            .filename
            .clone()
            .unwrap_or_else(|| format!("janus-text2pcap-{}.{}", rand::random::<u32>(), spec.format.extension()));
        let path = match &spec.folder {
            Some(folder) => format!("{folder}/{name}"),
            None => name,
        };
        let (queue, records) = sync_channel(QUEUE);
        let (opened_tx, opened) = oneshot::channel();
        let (closed_tx, closed) = oneshot::channel();
        let job = WriterJob { spec: spec.clone(), path: path.clone() };
        std::thread::Builder::new()
            .name("portunus-capture".into())
            .spawn(move || job.run(records, opened_tx, closed_tx))
            .map_err(|e| CaptureError::Io { path: path.clone(), reason: e.to_string() })?;
        opened.await.unwrap_or_else(|_| Err(CaptureError::Io { path: path.clone(), reason: "writer gone".into() }))?;
        let info = CaptureInfo { format: spec.format, path, dropped: 0 };
        let mut slot = self.running.write().map_err(|_| CaptureError::AlreadyRunning)?;
        if slot.is_some() {
            // Another start won the race; dropping our queue closes the file we made.
            return Err(CaptureError::AlreadyRunning);
        }
        *slot = Some(Running { info: info.clone(), truncate: spec.truncate, queue, dropped: Arc::default(), closed });
        self.active.store(true, Ordering::Release);
        tracing::info!(path = %info.path, format = info.format.as_str(), "packet dump started");
        Ok(info)
    }

    /// Stops the dump and waits (bounded) for its file to be closed.
    pub(crate) async fn stop(&self) -> Result<CaptureInfo, CaptureError> {
        let running = self.take().ok_or(CaptureError::NotRunning)?;
        let mut info = running.info;
        info.dropped = running.dropped.load(Ordering::Relaxed);
        // Dropping the queue ends the writer's loop; it closes the file and says so.
        drop(running.queue);
        if tokio::time::timeout(CLOSE_WAIT, running.closed).await.is_err() {
            tracing::warn!(path = %info.path, "packet dump still closing");
        }
        if info.dropped > 0 {
            tracing::warn!(path = %info.path, dropped = info.dropped, "packet dump lost packets: the disk was too slow");
        }
        tracing::info!(path = %info.path, "packet dump stopped");
        Ok(info)
    }

    /// Ends the dump without waiting (the handle is going away).
    pub(crate) fn abort(&self) {
        drop(self.take());
    }

    /// The running dump, if any.
    pub(crate) fn info(&self) -> Option<CaptureInfo> {
        let slot = self.running.read().ok()?;
        let running = slot.as_ref()?;
        let mut info = running.info.clone();
        info.dropped = running.dropped.load(Ordering::Relaxed);
        Some(info)
    }

    fn is_running(&self) -> bool {
        self.running.read().map(|r| r.is_some()).unwrap_or(true)
    }

    fn take(&self) -> Option<Running> {
        let mut slot = self.running.write().ok()?;
        self.active.store(false, Ordering::Release);
        slot.take()
    }

    /// Hands one packet to the dump, if one runs. Called on the media path: never blocks.
    fn record(&self, inbound: bool, packet: &Packet) {
        if !self.active.load(Ordering::Relaxed) {
            return;
        }
        let Ok(slot) = self.running.read() else { return };
        let Some(running) = slot.as_ref() else { return };
        let (rtcp, bytes) = match packet {
            Packet::Rtp(p) => (false, p.marshal()),
            // An empty compound only carries attributes inside the engine; it never hits the wire.
            Packet::Rtcp(pkts) if !pkts.is_empty() => (true, rtc::rtcp::packet::marshal(pkts)),
            _ => return,
        };
        let Ok(bytes) = bytes else { return };
        let keep = if running.truncate == 0 { bytes.len() } else { bytes.len().min(running.truncate) };
        let record =
            Record { at: SystemTime::now(), inbound, rtcp, full_len: bytes.len(), kept: bytes[..keep].to_vec() };
        match running.queue.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                running.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// What the writer thread needs.
struct WriterJob {
    spec: CaptureSpec,
    path: String,
}

/// The open file, in one of the two formats.
enum Output {
    Pcap(PcapWriter<BufWriter<File>>),
    Text(BufWriter<File>),
}

impl WriterJob {
    fn run(
        self,
        records: Receiver<Record>,
        opened: oneshot::Sender<Result<(), CaptureError>>,
        closed: oneshot::Sender<()>,
    ) {
        let mut out = match self.open() {
            Ok(out) => {
                let _ = opened.send(Ok(()));
                out
            }
            Err(e) => {
                let _ = opened.send(Err(e));
                return;
            }
        };
        // Buffered like Janus's stdio writes: the file is complete once the dump stops.
        let mut failed = false;
        while let Ok(r) = records.recv() {
            if let Err(e) = out.write(&r) {
                if !failed {
                    tracing::warn!(path = %self.path, error = %e, "packet dump write failed");
                    failed = true;
                }
            }
        }
        if let Err(e) = out.finish() {
            tracing::warn!(path = %self.path, error = %e, "packet dump flush failed");
        }
        let _ = closed.send(());
    }

    fn open(&self) -> Result<Output, CaptureError> {
        let io = |reason: String| CaptureError::Io { path: self.path.clone(), reason };
        let path = Path::new(&self.path);
        // Checked on the path as written (so no protected folder is created) and again once the
        // folder exists (so a symlink can't lead into one).
        if is_protected(path, &self.spec.protected) {
            return Err(CaptureError::Protected(self.path.clone()));
        }
        if let Some(folder) = &self.spec.folder {
            std::fs::create_dir_all(folder).map_err(|e| io(e.to_string()))?;
        }
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let real = parent.canonicalize().map_err(|e| io(e.to_string()))?;
        if let Some(name) = path.file_name() {
            if is_protected(&real.join(name), &self.spec.protected) {
                return Err(CaptureError::Protected(self.path.clone()));
            }
        }
        let file = BufWriter::new(File::create(path).map_err(|e| io(e.to_string()))?);
        Ok(match self.spec.format {
            CaptureFormat::Pcap => {
                let header = PcapHeader {
                    version_major: 2,
                    version_minor: 4,
                    ts_correction: 0,
                    ts_accuracy: 0,
                    snaplen: SNAPLEN,
                    datalink: DataLink::ETHERNET,
                    ts_resolution: TsResolution::MicroSecond,
                    endianness: Endianness::native(),
                };
                Output::Pcap(PcapWriter::with_header(file, header).map_err(|e| io(e.to_string()))?)
            }
            CaptureFormat::Text2pcap => Output::Text(file),
        })
    }
}

/// Longest record a pcap dump keeps (fake headers included); see `format::MAX_PAYLOAD`.
const SNAPLEN: u32 = 65_535;

impl Output {
    fn write(&mut self, r: &Record) -> std::io::Result<()> {
        match self {
            Output::Pcap(w) => {
                let data = format::frame(r.inbound, &r.kept, r.full_len);
                let orig_len = (format::FRAME_HEADER + r.full_len.min(format::MAX_PAYLOAD)) as u32;
                let data = &data[..data.len().min(SNAPLEN as usize)];
                let ts = r.at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
                w.write_packet(&PcapPacket::new(ts, orig_len.min(SNAPLEN), data))
                    .map(|_| ())
                    .map_err(|e| std::io::Error::other(e.to_string()))
            }
            Output::Text(w) => w.write_all(format::text_line(r.at, r.inbound, r.rtcp, &r.kept).as_bytes()),
        }
    }

    /// Flushes and closes the file.
    fn finish(self) -> std::io::Result<()> {
        match self {
            Output::Pcap(w) => w.into_writer().flush(),
            Output::Text(mut w) => w.flush(),
        }
    }
}

/// Whether `path` lies in (or is) one of `protected`, comparing whole components after making
/// it absolute and resolving `.` and `..` by hand (the file need not exist yet).
pub(crate) fn is_protected(path: &Path, protected: &[String]) -> bool {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")).join(path)
    };
    let mut clean = PathBuf::new();
    for c in absolute.components() {
        match c {
            Component::ParentDir => {
                clean.pop();
            }
            Component::CurDir => {}
            other => clean.push(other),
        }
    }
    protected.iter().filter(|p| !p.is_empty()).any(|p| clean.starts_with(p))
}

/// Packet dumps watch the wire end of the chain (plain RTP/RTCP both ways).
impl Observer for Arc<CaptureSlot> {
    fn inbound(&mut self, msg: &mut TaggedPacket) {
        self.record(true, &msg.message.packet);
    }

    fn outbound(&mut self, msg: &TaggedPacket) {
        self.record(false, &msg.message.packet);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("portunus-capture-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn spec(format: CaptureFormat, dir: &Path, truncate: usize) -> CaptureSpec {
        CaptureSpec {
            format,
            folder: Some(dir.to_string_lossy().into_owned()),
            filename: Some("dump".into()),
            truncate,
            protected: vec!["/proc".into(), "/sys".into()],
        }
    }

    fn rtp_packet(seq: u16, ssrc: u32, payload: usize) -> Packet {
        Packet::Rtp(rtc::rtp::Packet {
            header: rtc::rtp::Header {
                version: 2,
                payload_type: 96,
                sequence_number: seq,
                timestamp: 1000,
                ssrc,
                ..Default::default()
            },
            payload: vec![0x55; payload].into(),
        })
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    #[test]
    fn pcap_dump_parses_back_with_both_directions() {
        let dir = temp_dir("pcap");
        let slot = CaptureSlot::default();
        let rt = runtime();
        let info = rt.block_on(slot.start(spec(CaptureFormat::Pcap, &dir, 0))).unwrap();
        assert_eq!(slot.info().map(|i| i.format), Some(CaptureFormat::Pcap));
        slot.record(true, &rtp_packet(1, 0x1111, 100));
        slot.record(false, &rtp_packet(2, 0x2222, 50));
        let pli = rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication {
            sender_ssrc: 1,
            media_ssrc: 0x2222,
        };
        slot.record(true, &Packet::Rtcp(vec![Box::new(pli)]));
        slot.record(true, &Packet::Rtcp(vec![]));
        let stopped = rt.block_on(slot.stop()).unwrap();
        assert_eq!(stopped.path, info.path);
        assert_eq!(stopped.dropped, 0);
        assert!(slot.info().is_none());
        slot.record(true, &rtp_packet(3, 0x1111, 100));

        let file = File::open(&info.path).unwrap();
        let mut reader = pcap_file::pcap::PcapReader::new(file).unwrap();
        assert_eq!(reader.header().datalink, DataLink::ETHERNET);
        let mut frames = Vec::new();
        while let Some(p) = reader.next_packet() {
            frames.push(p.unwrap().into_owned());
        }
        assert_eq!(frames.len(), 3);
        let ssrc = |d: &[u8]| u32::from_be_bytes([d[50], d[51], d[52], d[53]]);
        assert_eq!(frames[0].data.len(), format::FRAME_HEADER + 112);
        assert_eq!(&frames[0].data[26..30], &format::PEER_IP);
        assert_eq!(ssrc(&frames[0].data), 0x1111);
        assert_eq!(&frames[1].data[26..30], &format::SERVER_IP);
        assert_eq!(ssrc(&frames[1].data), 0x2222);
        // RTCP PSFB (206) after the fake headers.
        assert_eq!(frames[2].data[43], 206);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn truncation_keeps_the_first_bytes_and_the_original_length() {
        let dir = temp_dir("truncate");
        let slot = CaptureSlot::default();
        let rt = runtime();
        let info = rt.block_on(slot.start(spec(CaptureFormat::Pcap, &dir, 12))).unwrap();
        slot.record(true, &rtp_packet(1, 7, 500));
        rt.block_on(slot.stop()).unwrap();
        let mut reader = pcap_file::pcap::PcapReader::new(File::open(&info.path).unwrap()).unwrap();
        let p = reader.next_packet().unwrap().unwrap();
        assert_eq!(p.data.len(), format::FRAME_HEADER + 12);
        assert_eq!(p.orig_len as usize, format::FRAME_HEADER + 512);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn text2pcap_dump_writes_one_line_per_packet() {
        let dir = temp_dir("text");
        let slot = CaptureSlot::default();
        let rt = runtime();
        let info = rt.block_on(slot.start(spec(CaptureFormat::Text2pcap, &dir, 4))).unwrap();
        slot.record(true, &rtp_packet(1, 7, 10));
        slot.record(false, &rtp_packet(2, 8, 10));
        rt.block_on(slot.stop()).unwrap();
        let text = std::fs::read_to_string(&info.path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("I "), "{}", lines[0]);
        assert!(lines[0].ends_with(" 000000 80 60 00 01 RTP"), "{}", lines[0]);
        assert!(lines[1].starts_with("O "));
        assert!(lines[1].ends_with(" 000000 80 60 00 02 RTP"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn one_dump_at_a_time_and_stop_needs_one() {
        let dir = temp_dir("twice");
        let slot = CaptureSlot::default();
        let rt = runtime();
        assert_eq!(rt.block_on(slot.stop()), Err(CaptureError::NotRunning));
        rt.block_on(slot.start(spec(CaptureFormat::Pcap, &dir, 0))).unwrap();
        assert_eq!(rt.block_on(slot.start(spec(CaptureFormat::Text2pcap, &dir, 0))), Err(CaptureError::AlreadyRunning));
        rt.block_on(slot.stop()).unwrap();
        assert_eq!(rt.block_on(slot.stop()), Err(CaptureError::NotRunning));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn default_name_follows_janus() {
        let dir = temp_dir("default");
        let slot = CaptureSlot::default();
        let rt = runtime();
        let mut s = spec(CaptureFormat::Text2pcap, &dir, 0);
        s.filename = None;
        let info = rt.block_on(slot.start(s)).unwrap();
        let name = Path::new(&info.path).file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("janus-text2pcap-") && name.ends_with(".txt"), "{name}");
        rt.block_on(slot.stop()).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_targets_are_refused() {
        let slot = CaptureSlot::default();
        let rt = runtime();
        let mut s = spec(CaptureFormat::Pcap, Path::new("/proc/portunus"), 0);
        assert!(matches!(rt.block_on(slot.start(s.clone())), Err(CaptureError::Protected(_))));
        s.folder = Some("/tmp/../proc".into());
        assert!(matches!(rt.block_on(slot.start(s.clone())), Err(CaptureError::Protected(_))));
        // A folder that is a file can't be created.
        let file = temp_dir("notadir");
        std::fs::write(&file, b"x").unwrap();
        s.folder = Some(file.to_string_lossy().into_owned());
        assert!(matches!(rt.block_on(slot.start(s)), Err(CaptureError::Io { .. })));
        assert!(slot.info().is_none());
        let _ = std::fs::remove_file(&file);
    }

    #[test]
    fn protection_compares_whole_components() {
        let p = vec!["/etc".to_owned(), "/usr".to_owned()];
        assert!(is_protected(Path::new("/etc/x.pcap"), &p));
        assert!(is_protected(Path::new("/usr/local/../lib/x"), &p));
        assert!(!is_protected(Path::new("/etcetera/x.pcap"), &p));
        assert!(!is_protected(Path::new("/tmp/x.pcap"), &p));
    }
}
