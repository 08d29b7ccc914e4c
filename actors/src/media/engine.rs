//! `MediaEngine`: the dedicated media runtime plus everything a PeerConnection is built from
//! (codecs, interceptors, ICE/network settings, the DTLS certificate).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rtc::crypto::SignatureScheme;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::ice::network_type::NetworkType;
use rtc::interceptor::Registry;
use rtc::interceptor::{
    NackGeneratorBuilder, NackResponderBuilder, ReceiverReportBuilder, SenderReportBuilder, Slot, TwccReceiverBuilder,
};
use rtc::peer_connection::certificate::CertificateParams;
use rtc::peer_connection::certificate::RTCCertificate;
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_simulcast_extension_headers, configure_twcc_receiver_only,
};
use rtc::peer_connection::configuration::media_engine::MediaEngine as EngineCodecs;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use tokio::net::UdpSocket;
use tokio::runtime::{Handle as RtHandle, Runtime};

use super::capture::CaptureSlot;
use super::conn::IceServers;
use super::relay::TurnServer;
use super::tap::{DeliverRtcp, NackCounter, Tap};
use super::MediaError;

/// Every timer of a connected PeerConnection runs on this beat, shared by all of them (see
/// `driver.rs`): it is how often missing packets are NACKed, and the other periods are whole
/// multiples of it.
pub(crate) const TIMER_BEAT: Duration = Duration::from_millis(100);
/// The engine's periodic timers re-arm from the instant they ran, a little after their beat
/// (connections are served one after another on it); their intervals are this much shorter than
/// the period they mean, so the next run falls due before the beat it belongs to, not after it.
const BEAT_SLACK: Duration = Duration::from_millis(20);
/// Receiver and sender reports: once a second, as the engine's default.
const REPORT_PERIOD: Duration = Duration::from_secs(1);

/// The interval to give the engine for a timer meant to run every `period` on the beat.
fn on_beat_interval(period: Duration) -> Duration {
    period.saturating_sub(BEAT_SLACK).max(TIMER_BEAT - BEAT_SLACK)
}

/// Janus's default `twcc_period`.
const DEFAULT_TWCC_PERIOD_MS: u64 = 200;

/// Network and ICE settings for every PeerConnection.
#[derive(Clone, Debug)]
pub struct IceSettings {
    /// Addresses host candidates are gathered on (one UDP socket each).
    pub ips: Vec<IpAddr>,
    /// UDP port range, inclusive; `None` = any free port.
    pub port_range: Option<(u16, u16)>,
    /// Public IPs to advertise instead of the host ones (1:1 NAT).
    pub nat_1_1: Vec<String>,
    /// ICE-Lite.
    pub ice_lite: bool,
    /// STUN/TURN servers for the server's own gathering.
    pub ice_servers: Vec<(String, Option<String>, Option<String>)>,
    /// Seconds without packets before `receiving:false` (0 = never).
    pub no_media_timer: u64,
    /// Send candidates as trickle events instead of in the SDP.
    pub full_trickle: bool,
    /// ms of sent packets kept for retransmission (Janus's `min_nack_queue`, at most 1000).
    pub nack_queue_ms: u64,
    /// ms between transport-wide CC feedback packets (Janus's `twcc_period`).
    pub twcc_period_ms: u64,
    /// Engine worker threads.
    pub threads: usize,
}

impl Default for IceSettings {
    fn default() -> Self {
        IceSettings {
            ips: vec![IpAddr::from([127, 0, 0, 1])],
            port_range: None,
            nat_1_1: Vec::new(),
            ice_lite: false,
            ice_servers: Vec::new(),
            no_media_timer: 1,
            full_trickle: false,
            nack_queue_ms: 200,
            twcc_period_ms: DEFAULT_TWCC_PERIOD_MS,
            threads: 2,
        }
    }
}

/// The engine: a runtime and the immutable recipe for PeerConnections. Cheap to clone.
#[derive(Clone)]
pub struct MediaEngine {
    inner: Arc<Inner>,
}

struct Inner {
    // Kept alive for the process; dropping it would stop every PeerConnection.
    _runtime: Option<Runtime>,
    handle: RtHandle,
    settings: IceSettings,
    certificate: RTCCertificate,
    next_port: AtomicU32,
    live: Arc<std::sync::atomic::AtomicU64>,
    counters: Arc<super::types::MediaCounters>,
    /// Seconds of silence before `receiving:false`; changeable at runtime (Admin API).
    no_media: Arc<std::sync::atomic::AtomicU64>,
    /// The retransmission buffer of new PeerConnections in ms; changeable at runtime (Admin API).
    nack_queue_ms: std::sync::atomic::AtomicU64,
    /// Resolved STUN and TURN servers.
    servers: std::sync::OnceLock<IceServers>,
}

impl MediaEngine {
    /// Starts the media runtime and makes (or loads) the DTLS certificate.
    pub fn start(settings: IceSettings, cert: Option<PemCertificate<'_>>) -> Result<MediaEngine, MediaError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(settings.threads.max(1))
            .thread_name("portunus-media")
            .enable_all()
            .build()
            .map_err(|e| MediaError::Engine(format!("media runtime: {e}")))?;
        let certificate = certificate(cert)?;
        let start = settings.port_range.map(|(lo, _)| lo as u32).unwrap_or(0);
        Ok(MediaEngine {
            inner: Arc::new(Inner {
                handle: runtime.handle().clone(),
                _runtime: Some(runtime),
                certificate,
                next_port: AtomicU32::new(start),
                live: Arc::default(),
                counters: Arc::default(),
                no_media: Arc::new(std::sync::atomic::AtomicU64::new(settings.no_media_timer)),
                nack_queue_ms: std::sync::atomic::AtomicU64::new(settings.nack_queue_ms),
                servers: std::sync::OnceLock::new(),
                settings,
            }),
        })
    }

    /// The media runtime.
    pub fn runtime(&self) -> RtHandle {
        self.inner.handle.clone()
    }

    /// The settings.
    pub fn settings(&self) -> &IceSettings {
        &self.inner.settings
    }

    /// Packet and feedback totals of every PeerConnection.
    pub fn counters(&self) -> Arc<super::types::MediaCounters> {
        self.inner.counters.clone()
    }

    pub(crate) fn live_counter(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.inner.live.clone()
    }

    /// Open PeerConnections and live tasks on the media runtime (for status and leak checks).
    pub fn load(&self) -> (u64, usize) {
        (self.inner.live.load(Ordering::Relaxed), self.inner.handle.metrics().num_alive_tasks())
    }

    pub(crate) fn no_media_timer(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.inner.no_media.clone()
    }

    /// Admin `set_no_media_timer`: applies to every PeerConnection from its next check.
    pub fn set_no_media_timer(&self, seconds: u64) {
        self.inner.no_media.store(seconds, Ordering::Relaxed);
    }

    /// Admin `set_min_nack_queue`: the retransmission buffer of PeerConnections created from now on.
    pub fn set_nack_queue_ms(&self, ms: u64) {
        self.inner.nack_queue_ms.store(ms, Ordering::Relaxed);
    }

    /// The retransmission buffer new PeerConnections get, in ms.
    pub fn nack_queue_ms(&self) -> u64 {
        self.inner.nack_queue_ms.load(Ordering::Relaxed)
    }

    /// SHA-256 fingerprint of the DTLS certificate.
    pub fn fingerprint(&self) -> Option<String> {
        let provider = rtc::crypto::default_provider().ok()?;
        self.inner
            .certificate
            .get_fingerprints(provider.crypto())
            .ok()?
            .into_iter()
            .find(|f| f.algorithm == "sha-256")
            .map(|f| f.value)
    }

    /// Builds a PeerConnection keeping `nack_queue_ms` of sent packets for retransmission
    /// (`send_only`: see [`Self::interceptors`]), with its sockets bound and its STUN and TURN
    /// servers resolved (must run on the media runtime).
    pub(crate) async fn build(
        &self,
        nack_queue_ms: u64,
        capture: Arc<CaptureSlot>,
        send_only: bool,
    ) -> Result<(RTCPeerConnection, Vec<(SocketAddr, UdpSocket)>, IceServers), MediaError> {
        let s = &self.inner.settings;
        let attempts = match s.port_range {
            Some((lo, hi)) => (hi.saturating_sub(lo) as usize + 1).min(64),
            None => 1,
        };
        let mut bound = Err(std::io::Error::other("no attempt"));
        for _ in 0..attempts {
            bound = super::conn::bind(&s.ips, self.pick_port());
            if bound.is_ok() {
                break;
            }
        }
        let sockets = bound.map_err(|e| MediaError::Engine(format!("could not bind a media socket: {e}")))?;
        let mut codecs = codecs()?;
        let registry = self.interceptors(&mut codecs, nack_queue_ms, capture, send_only)?;
        let provider = rtc::crypto::default_provider().map_err(|e| MediaError::Engine(e.to_string()))?;
        let setting = SettingEngineBuilder::new()
            .with_crypto_provider(provider)
            .with_multicast_dns_mode(MulticastDnsMode::Disabled)
            .with_network_types(vec![NetworkType::Udp4, NetworkType::Udp6])
            .with_lite(s.ice_lite);
        let config = RTCConfigurationBuilder::new().with_certificates(vec![self.inner.certificate.clone()]).build();
        let core = RTCPeerConnectionBuilder::new()
            .with_configuration(config)
            .with_media_engine(codecs)
            .with_interceptor_registry(registry)
            .with_setting_engine(setting.build())
            .build(std::time::Instant::now())
            .map_err(|e| MediaError::Engine(e.to_string()))?;
        Ok((core, sockets, self.ice_servers().await))
    }

    /// The STUN servers' addresses (`stun:host:port` URLs) and the first UDP TURN server's
    /// (`turn:host:port?transport=udp`, with its credentials). Resolved once and kept.
    async fn ice_servers(&self) -> IceServers {
        if let Some(known) = self.inner.servers.get() {
            return known.clone();
        }
        let mut out = IceServers::default();
        for (url, user, pwd) in &self.inner.settings.ice_servers {
            let (turn, rest) = match (url.strip_prefix("stun:"), url.strip_prefix("turn:")) {
                (Some(rest), _) => (false, rest),
                (None, Some(rest)) => (true, rest),
                (None, None) => {
                    tracing::warn!(%url, "unknown ICE server scheme; ignored");
                    continue;
                }
            };
            let (host_port, query) = rest.split_once('?').unwrap_or((rest, ""));
            if turn {
                if !matches!(query, "" | "transport=udp") {
                    tracing::warn!(%url, "only UDP TURN servers are supported (`turn_type` udp); ignored");
                    continue;
                }
                if out.turn.is_some() {
                    tracing::warn!(%url, "only one TURN server is used; ignored");
                    continue;
                }
            }
            let addrs: Vec<SocketAddr> = match tokio::net::lookup_host(host_port).await {
                Ok(addrs) => addrs.collect(),
                Err(e) => {
                    tracing::warn!(error = %e, %url, "cannot resolve the ICE server");
                    continue;
                }
            };
            if !turn {
                out.stun.extend(addrs);
                continue;
            }
            // One allocation per connection: on the first address, IPv4 preferred.
            let Some(addr) = addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()).copied() else { continue };
            out.turn = Some(TurnServer {
                addr,
                username: user.clone().unwrap_or_default(),
                password: pwd.clone().unwrap_or_default(),
            });
        }
        self.inner.servers.get_or_init(|| out).clone()
    }

    /// The engine's default interceptors (NACK, TWCC feedback, RTCP reports) with the NACK
    /// responder's buffer sized from `min_nack_queue`, plus our RTCP observers. A `send_only`
    /// connection (a plugin's offer of send-only tracks: SFU subscribers, streaming viewers)
    /// receives no media, so it skips the NACK generator, TWCC feedback and receiver reports:
    /// every interceptor costs every packet it sends a pass through its queue.
    fn interceptors(
        &self,
        codecs: &mut EngineCodecs,
        nack_queue_ms: u64,
        capture: Arc<CaptureSlot>,
        send_only: bool,
    ) -> Result<Registry, MediaError> {
        let err = |e: rtc::shared::error::Error| MediaError::Engine(e.to_string());
        configure_simulcast_extension_headers(codecs).map_err(err)?;
        let registry = Registry::new().with(
            Slot::NackResponder,
            NackResponderBuilder::new().with_size(nack_buffer_packets(nack_queue_ms)).build(),
        );
        let registry = if send_only {
            // The same SDP either way: transport-cc stays negotiated.
            configure_twcc_receiver_only(Registry::new(), codecs).map_err(err)?;
            registry.with(Slot::SenderReport, sender_reports())
        } else {
            // The engine's helper registers transport-cc in the SDP; its feedback interceptor
            // comes with the default period, so ours (Janus's `twcc_period`) is added instead.
            configure_twcc_receiver_only(Registry::new(), codecs).map_err(err)?;
            let period = Duration::from_millis(twcc_period_ms(self.inner.settings.twcc_period_ms));
            let twcc = TwccReceiverBuilder::new().with_interval(on_beat_interval(period));
            let nacks = NackGeneratorBuilder::new().with_interval(on_beat_interval(TIMER_BEAT));
            let receiver_reports = ReceiverReportBuilder::new().with_interval(on_beat_interval(REPORT_PERIOD));
            registry
                .with(Slot::NackGenerator, nacks.build())
                .with(Slot::TwccReceiver, twcc.build())
                .with(Slot::ReceiverReport, receiver_reports.build())
                .with(Slot::SenderReport, sender_reports())
        };
        // One tap for our observers, wire-side of everything the engine registers: packet dumps
        // see what crosses SRTP (engine-made RTCP included), NACKs are counted before the
        // responder acts on them, and inbound RTCP is marked for the application (attributes
        // travel with the packet through the interceptors above).
        let observers = (capture, (NackCounter(self.inner.counters.clone()), DeliverRtcp));
        Ok(registry.with(Slot::from(3_500), Tap::new(observers)))
    }

    fn pick_port(&self) -> u16 {
        match self.inner.settings.port_range {
            None => 0,
            Some((lo, hi)) => {
                let span = (hi.saturating_sub(lo) as u32) + 1;
                let n = self.inner.next_port.fetch_add(1, Ordering::Relaxed);
                lo + ((n.wrapping_sub(lo as u32)) % span) as u16
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Dropping a runtime from inside another runtime panics; shut it down in the background.
        if let Some(rt) = self._runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A DTLS certificate from PEM text.
#[derive(Clone, Copy, Debug)]
pub struct PemCertificate<'a> {
    /// The certificate chain and the private key, one after the other (Janus's `cert_pem` and
    /// `cert_key` files).
    pub pem: &'a str,
    /// The password of an encrypted key (`cert_pwd`).
    pub password: Option<&'a str>,
}

fn certificate(cert: Option<PemCertificate<'_>>) -> Result<RTCCertificate, MediaError> {
    let provider = rtc::crypto::default_provider().map_err(|e| MediaError::Engine(e.to_string()))?;
    if let Some(PemCertificate { pem, password }) = cert {
        match standard_pem(pem, password, provider.crypto())
            .or_else(|first| RTCCertificate::from_pem(pem, provider.crypto()).map_err(|_| first))
        {
            Ok(cert) => return Ok(cert),
            Err(e) => tracing::error!(error = %e, "cannot load the DTLS certificate; using a generated one"),
        }
    }
    let params = CertificateParams::new(vec!["portunus".to_owned()]).map_err(|e| MediaError::Engine(e.to_string()))?;
    RTCCertificate::generate(provider.crypto(), SignatureScheme::EcdsaP256Sha256, params)
        .map_err(|e| MediaError::Engine(format!("certificate: {e}")))
}

/// A certificate chain and its unencrypted PKCS#8 private key from standard PEM text (the
/// contents of Janus's `cert_pem` and `cert_key` files, one after the other).
fn standard_pem(
    pem: &str,
    password: Option<&str>,
    crypto: &dyn rtc::crypto::RTCCrypto,
) -> Result<RTCCertificate, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(pem.as_bytes()).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
    if chain.is_empty() {
        return Err("no CERTIFICATE block".into());
    }
    let key = match encrypted_pkcs8(pem, password)? {
        Some(key) => key,
        None => match PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| format!("private key: {e}"))? {
            PrivateKeyDer::Pkcs8(k) => k.secret_pkcs8_der().to_vec(),
            _ => return Err("the private key must be PKCS#8 (BEGIN PRIVATE KEY or BEGIN ENCRYPTED PRIVATE KEY)".into()),
        },
    };
    // Validity is the file's business; the engine only needs a date for its statistics.
    let expires = std::time::SystemTime::now() + std::time::Duration::from_secs(365 * 24 * 3600);
    let schemes = [
        SignatureScheme::EcdsaP256Sha256,
        SignatureScheme::EcdsaP384Sha384,
        SignatureScheme::Ed25519,
        SignatureScheme::RsaPkcs1Sha256,
    ];
    schemes
        .into_iter()
        .find_map(|scheme| RTCCertificate::from_pkcs8(crypto, scheme, chain.clone(), &key, expires).ok())
        .ok_or_else(|| "unsupported private key type".into())
}

/// Sender reports every `REPORT_PERIOD` on the beat.
fn sender_reports() -> impl rtc::interceptor::Interceptor {
    SenderReportBuilder::new().with_interval(on_beat_interval(REPORT_PERIOD)).build()
}

/// The feedback period in effect for Janus's `twcc_period` ms (what `info` reports): 0 is invalid
/// and means the default, as in Janus; otherwise rounded up to a whole number of NACK beats (a
/// connected PeerConnection's timers run on that beat), at least one.
pub fn twcc_period_ms(ms: u64) -> u64 {
    let ms = if ms == 0 { DEFAULT_TWCC_PERIOD_MS } else { ms };
    let beat = TIMER_BEAT.as_millis() as u64;
    ms.div_ceil(beat).max(1) * beat
}

/// Packets of retransmission buffer per sent stream for `ms` of history: sized for a 1000
/// packets/s stream (about 10 Mbit/s of video), as a power of two (the responder's ring), between
/// 64 and 1024 packets. The ring holds packets, not time, so slower streams keep more history.
pub(crate) fn nack_buffer_packets(ms: u64) -> u16 {
    (ms.min(1000) as u16).next_power_of_two().clamp(64, 1024)
}

/// The PKCS#8 key of an `ENCRYPTED PRIVATE KEY` block, decrypted with `password`; `None` when
/// the text has no such block.
fn encrypted_pkcs8(pem: &str, password: Option<&str>) -> Result<Option<Vec<u8>>, String> {
    const BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
    const END: &str = "-----END ENCRYPTED PRIVATE KEY-----";
    let Some(start) = pem.find(BEGIN) else { return Ok(None) };
    let end = pem[start..].find(END).map(|e| start + e + END.len()).ok_or("unterminated ENCRYPTED PRIVATE KEY")?;
    let password = password.ok_or("the private key is encrypted: set certificates.cert_pwd")?;
    let (_, der) = pkcs8::Document::from_pem(&pem[start..end]).map_err(|e| format!("encrypted key: {e}"))?;
    let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_bytes()).map_err(|e| format!("encrypted key: {e}"))?;
    let key = info.decrypt(password).map_err(|_| "cannot decrypt the private key (wrong cert_pwd?)".to_owned())?;
    Ok(Some(key.as_bytes().to_vec()))
}

/// The codecs we negotiate, by kind (Janus's defaults: opus, G.711, VP8, H.264, VP9, AV1, with
/// nack, pli, fir, goog-remb and transport-cc feedback on video).
pub(crate) fn codec_table() -> Vec<(RtpCodecKind, RTCRtpCodecParameters)> {
    let fb = |list: &[(&str, &str)]| -> Vec<RTCPFeedback> {
        list.iter().map(|(t, p)| RTCPFeedback { typ: (*t).into(), parameter: (*p).into() }).collect()
    };
    let video_fb = fb(&[("goog-remb", ""), ("ccm", "fir"), ("nack", ""), ("nack", "pli"), ("transport-cc", "")]);
    let codec =
        |mime: &str, clock: u32, ch: u16, fmtp: &str, rtcp_feedback: Vec<RTCPFeedback>, pt: u8| RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: mime.into(),
                clock_rate: clock,
                channels: ch,
                sdp_fmtp_line: fmtp.into(),
                rtcp_feedback,
            },
            payload_type: pt,
        };
    let h264 = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";
    let h264_baseline = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f";
    vec![
        (
            RtpCodecKind::Audio,
            codec("audio/opus", 48000, 2, "minptime=10;useinbandfec=1", fb(&[("transport-cc", "")]), 111),
        ),
        (RtpCodecKind::Audio, codec("audio/PCMU", 8000, 1, "", vec![], 0)),
        (RtpCodecKind::Audio, codec("audio/PCMA", 8000, 1, "", vec![], 8)),
        // DTMF (RFC 4733) next to the audio codec, so browsers can `insertDTMF`; the events are
        // taken off the audio stream before plugins see it.
        (RtpCodecKind::Audio, codec("audio/telephone-event", 48000, 1, "0-16", vec![], 110)),
        (RtpCodecKind::Audio, codec("audio/telephone-event", 8000, 1, "0-16", vec![], 126)),
        (RtpCodecKind::Video, codec("video/VP8", 90000, 0, "", video_fb.clone(), 96)),
        (RtpCodecKind::Video, codec("video/H264", 90000, 0, h264, video_fb.clone(), 102)),
        // Constrained Baseline is first; Baseline and VP9 profile 2 are what peers and
        // `videoprofile` may ask for next.
        (RtpCodecKind::Video, codec("video/H264", 90000, 0, h264_baseline, video_fb.clone(), 104)),
        (RtpCodecKind::Video, codec("video/VP9", 90000, 0, "profile-id=0", video_fb.clone(), 98)),
        (RtpCodecKind::Video, codec("video/VP9", 90000, 0, "profile-id=2", video_fb.clone(), 100)),
        // AV1 on Chromium's payload type. No fmtp: the engine matches a=fmtp parameters both
        // sides name, and an offer's `level-idx` or `tier` must not make it refuse AV1.
        (RtpCodecKind::Video, codec("video/AV1", 90000, 0, "", video_fb, 45)),
    ]
}

/// The registered parameters of codec `name` (`opus`, `vp8`, ...) of `kind`, the variant with the
/// same profile as `fmtp` when it names one.
pub(crate) fn registered_codec(kind: RtpCodecKind, name: &str, fmtp: &str) -> Option<RTCRtpCodecParameters> {
    let mut variants = codec_table().into_iter().filter_map(|(k, c)| {
        (k == kind && c.rtp_codec.mime_type.rsplit('/').next().is_some_and(|n| n.eq_ignore_ascii_case(name)))
            .then_some(c)
    });
    if profile(fmtp).is_none() {
        return variants.next();
    }
    variants.find(|c| same_profile(&c.rtp_codec.sdp_fmtp_line, fmtp))
}

/// Whether an offered codec (name and `a=fmtp`) is one the engine negotiates: H.264 needs the
/// same profile and packetization mode as a registered variant, VP9 the same profile.
pub fn negotiable(kind: super::MediaKind, name: &str, fmtp: &str) -> bool {
    let kind = if kind == super::MediaKind::Audio { RtpCodecKind::Audio } else { RtpCodecKind::Video };
    registered_codec(kind, name, fmtp).is_some_and(|c| same_profile(&c.rtp_codec.sdp_fmtp_line, fmtp))
}

/// The profile an `a=fmtp` line names: H.264's `profile-level-id` without the level (profile_idc
/// and constraint flags, lower case) plus the packetization mode, or VP9's `profile-id`.
fn profile(fmtp: &str) -> Option<String> {
    let param = |key: &str| super::sdp::fmtp_param(fmtp, key);
    if let Some(id) = param("profile-level-id") {
        let mode = param("packetization-mode").unwrap_or("0");
        return Some(format!("h264:{}:{mode}", id.get(..4).unwrap_or(id).to_ascii_lowercase()));
    }
    param("profile-id").map(|p| format!("vp9:{p}"))
}

/// Whether two `a=fmtp` lines name the same profile (both none counts as the same; a VP9 line
/// without `profile-id` is profile 0).
fn same_profile(a: &str, b: &str) -> bool {
    let norm = |f: &str| profile(f).filter(|p| p != "vp9:0");
    norm(a) == norm(b)
}

/// The codecs and header extensions we negotiate.
fn codecs() -> Result<EngineCodecs, MediaError> {
    let err = |e: rtc::shared::error::Error| MediaError::Engine(e.to_string());
    let mut m = EngineCodecs::default();
    for (kind, params) in codec_table() {
        m.register_codec(params, kind).map_err(err)?;
    }
    for (uri, kind) in [
        ("urn:ietf:params:rtp-hdrext:sdes:mid", RtpCodecKind::Audio),
        ("urn:ietf:params:rtp-hdrext:ssrc-audio-level", RtpCodecKind::Audio),
        ("http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time", RtpCodecKind::Video),
        // Relayed from publishers to subscribers (rotation from mobile senders, playout hints).
        ("urn:3gpp:video-orientation", RtpCodecKind::Video),
        ("http://www.webrtc.org/experiments/rtp-hdrext/playout-delay", RtpCodecKind::Video),
        // AV1 SVC: each packet's layers and frame dependencies, relayed to receivers.
        (super::types::DEPENDENCY_DESCRIPTOR_URI, RtpCodecKind::Video),
        // Simulcast: layers arrive without signalled SSRCs, identified by mid and rid.
        ("urn:ietf:params:rtp-hdrext:sdes:mid", RtpCodecKind::Video),
        ("urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id", RtpCodecKind::Video),
        ("urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id", RtpCodecKind::Video),
    ] {
        m.register_header_extension(RTCRtpHeaderExtensionCapability { uri: uri.into() }, kind, None).map_err(err)?;
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::{nack_buffer_packets, twcc_period_ms};

    #[test]
    fn offered_codecs_match_registered_profiles() {
        use super::negotiable;
        use crate::media::MediaKind::{Audio, Video};
        let h264 =
            |id: &str, mode: &str| format!("level-asymmetry-allowed=1;packetization-mode={mode};profile-level-id={id}");
        assert!(negotiable(Video, "h264", &h264("42e01f", "1")));
        assert!(negotiable(Video, "h264", &h264("42E034", "1")), "the level does not matter");
        assert!(negotiable(Video, "h264", &h264("42001f", "1")));
        assert!(!negotiable(Video, "h264", &h264("42e01f", "0")), "packetization mode 0 is not registered");
        assert!(!negotiable(Video, "h264", &h264("640c1f", "1")), "High profile is not registered");
        assert!(negotiable(Video, "vp9", "profile-id=0") && negotiable(Video, "vp9", ""));
        assert!(negotiable(Video, "vp9", "profile-id=2") && !negotiable(Video, "vp9", "profile-id=1"));
        assert!(negotiable(Video, "vp8", "") && negotiable(Audio, "opus", "minptime=10;useinbandfec=1"));
        assert!(!negotiable(Audio, "vp8", "") && !negotiable(Audio, "av1", ""));
        assert!(negotiable(Video, "av1", "") && negotiable(Video, "AV1", "level-idx=5;profile=0;tier=0"));
        assert!(!negotiable(Video, "h265", ""), "H.265 is not registered");
    }

    #[test]
    fn encrypted_keys_need_the_password() {
        use super::encrypted_pkcs8;
        assert_eq!(encrypted_pkcs8("-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n", None), Ok(None));
        let block = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert!(encrypted_pkcs8(block, None).unwrap_err().contains("cert_pwd"));
        assert!(encrypted_pkcs8(block, Some("x")).unwrap_err().starts_with("encrypted key"), "garbage is an error");
        assert!(encrypted_pkcs8(&block[..50], Some("x")).unwrap_err().contains("unterminated"));
    }

    #[test]
    fn twcc_period_is_whole_nack_beats() {
        let ms = twcc_period_ms;
        assert_eq!(ms(200), 200, "Janus's default");
        assert_eq!(ms(0), 200, "0 is invalid and means the default, as in Janus");
        assert_eq!(ms(100), 100);
        assert_eq!(ms(150), 200, "rounded up to the beat");
        assert_eq!(ms(30), 100, "never faster than the beat");
    }

    #[test]
    fn timers_fall_due_before_their_beat() {
        use super::{on_beat_interval, BEAT_SLACK, TIMER_BEAT};
        use std::time::Duration;
        // Re-armed up to BEAT_SLACK after a beat, a timer still falls due by the beat it means.
        for period in [TIMER_BEAT, Duration::from_millis(200), Duration::from_secs(1)] {
            assert_eq!(on_beat_interval(period) + BEAT_SLACK, period);
        }
        assert_eq!(on_beat_interval(Duration::ZERO), TIMER_BEAT - BEAT_SLACK, "never faster than the beat");
    }

    #[test]
    fn nack_buffer_is_a_bounded_power_of_two() {
        assert_eq!(nack_buffer_packets(200), 256, "Janus's default 200 ms");
        assert_eq!(nack_buffer_packets(1000), 1024);
        assert_eq!(nack_buffer_packets(5000), 1024, "capped like min_nack_queue");
        assert_eq!(nack_buffer_packets(0), 64, "never without a buffer");
        assert_eq!(nack_buffer_packets(300), 512);
    }
}
