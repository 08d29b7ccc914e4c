//! `MediaEngine`: the dedicated media runtime plus everything a PeerConnection is built from
//! (codecs, interceptors, ICE/network settings, the DTLS certificate).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use rtc::crypto::SignatureScheme;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::ice::network_type::NetworkType;
use rtc::interceptor::Slot;
use rtc::peer_connection::certificate::CertificateParams;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use tokio::runtime::{Handle as RtHandle, Runtime};
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine as EngineCodecs, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCCertificate, RTCConfigurationBuilder, RTCIceServer, Registry, SettingEngineBuilder,
};
use webrtc::runtime::{Runtime as EngineRuntime, TokioRuntime};

use super::capture::{CaptureSlot, CaptureTap};
use super::rtcp_tap::RtcpTap;
use super::MediaError;

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
}

impl MediaEngine {
    /// Starts the media runtime and makes (or loads) the DTLS certificate.
    pub fn start(settings: IceSettings, cert_pem: Option<&str>) -> Result<MediaEngine, MediaError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(settings.threads.max(1))
            .thread_name("portunus-media")
            .enable_all()
            .build()
            .map_err(|e| MediaError::Engine(format!("media runtime: {e}")))?;
        let certificate = certificate(cert_pem)?;
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

    /// Builds a PeerConnection (must run on the media runtime).
    pub(crate) async fn build(
        &self,
        handler: Arc<dyn PeerConnectionEventHandler>,
        capture: Arc<CaptureSlot>,
    ) -> Result<Arc<dyn PeerConnection>, MediaError> {
        let s = &self.inner.settings;
        let attempts = match s.port_range {
            Some((lo, hi)) => (hi.saturating_sub(lo) as usize + 1).min(64),
            None => 1,
        };
        let mut last = String::from("no attempt");
        for _ in 0..attempts {
            let port = self.pick_port();
            let addrs: Vec<SocketAddr> = s.ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect();
            let mut codecs = codecs()?;
            let registry = register_default_interceptors(Registry::new(), &mut codecs)
                .map_err(|e| MediaError::Engine(e.to_string()))?
                .with(Slot::from(14_000), RtcpTap::default())
                // Wire-most: Admin packet dumps see what crosses SRTP, engine-made RTCP included.
                .with(Slot::from(500), CaptureTap::new(capture.clone()));
            let mut setting = SettingEngineBuilder::new()
                .with_multicast_dns_mode(MulticastDnsMode::Disabled)
                .with_network_types(vec![NetworkType::Udp4, NetworkType::Udp6])
                .with_lite(s.ice_lite);
            if !s.nat_1_1.is_empty() {
                setting =
                    setting.with_nat_1to1_ips(s.nat_1_1.clone(), webrtc::peer_connection::RTCIceCandidateType::Host);
            }
            let servers = s
                .ice_servers
                .iter()
                .map(|(url, user, pwd)| RTCIceServer {
                    urls: vec![url.clone()],
                    username: user.clone().unwrap_or_default(),
                    credential: pwd.clone().unwrap_or_default(),
                })
                .collect();
            let config = RTCConfigurationBuilder::new()
                .with_ice_servers(servers)
                .with_certificates(vec![self.inner.certificate.clone()])
                .build();
            let built = PeerConnectionBuilder::new()
                .with_configuration(config)
                .with_media_engine(codecs)
                .with_interceptor_registry(registry)
                .with_setting_engine(setting.build())
                .with_runtime(Arc::new(TokioRuntime) as Arc<dyn EngineRuntime>)
                .with_handler(handler.clone())
                .with_udp_addrs(addrs)
                .build()
                .await;
            match built {
                Ok(pc) => return Ok(Arc::new(pc)),
                Err(e) => last = e.to_string(),
            }
        }
        Err(MediaError::Engine(format!("could not bind a media socket: {last}")))
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

fn certificate(pem: Option<&str>) -> Result<RTCCertificate, MediaError> {
    let provider = rtc::crypto::default_provider().map_err(|e| MediaError::Engine(e.to_string()))?;
    if let Some(pem) = pem {
        match standard_pem(pem, provider.crypto())
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
fn standard_pem(pem: &str, crypto: &dyn rtc::crypto::RTCCrypto) -> Result<RTCCertificate, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(pem.as_bytes()).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
    if chain.is_empty() {
        return Err("no CERTIFICATE block".into());
    }
    let key = match PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| format!("private key: {e}"))? {
        PrivateKeyDer::Pkcs8(k) => k.secret_pkcs8_der().to_vec(),
        _ => return Err("the private key must be unencrypted PKCS#8 (BEGIN PRIVATE KEY)".into()),
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

/// The codecs we negotiate, by kind (Janus's defaults: opus, G.711, VP8, H.264, VP9, with nack,
/// pli, fir, goog-remb and transport-cc feedback on video).
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
        (RtpCodecKind::Video, codec("video/VP9", 90000, 0, "profile-id=0", video_fb, 98)),
    ]
}

/// The registered parameters of codec `name` (`opus`, `vp8`, ...) of `kind`.
pub(crate) fn registered_codec(kind: RtpCodecKind, name: &str) -> Option<RTCRtpCodecParameters> {
    codec_table().into_iter().find_map(|(k, c)| {
        (k == kind && c.rtp_codec.mime_type.rsplit('/').next().is_some_and(|n| n.eq_ignore_ascii_case(name)))
            .then_some(c)
    })
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
        // Simulcast: layers arrive without signalled SSRCs, identified by mid and rid.
        ("urn:ietf:params:rtp-hdrext:sdes:mid", RtpCodecKind::Video),
        ("urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id", RtpCodecKind::Video),
        ("urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id", RtpCodecKind::Video),
    ] {
        m.register_header_extension(RTCRtpHeaderExtensionCapability { uri: uri.into() }, kind, None).map_err(err)?;
    }
    Ok(m)
}
