//! SRTP for plain RTP destinations and sources (VideoRoom `rtp_forward` and remote publishers
//! with `srtp_suite`/`srtp_crypto`): the engine's own SRTP implementation, keyed by the caller
//! instead of by DTLS.

use std::sync::Mutex;

use base64::Engine as _;
use bytes::Bytes;
use rtc::srtp::context::Context;
use rtc::srtp::protection_profile::ProtectionProfile;

/// Bytes of an AES-128 master key followed by its salt (what `srtp_crypto` decodes to).
const KEY_AND_SALT: usize = 30;

/// Encrypts the RTP of one outgoing plain-RTP stream.
pub struct SrtpSender {
    ctx: Mutex<Context>,
}

impl std::fmt::Debug for SrtpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.write_str("SrtpSender")
    }
}

impl SrtpSender {
    /// `suite` is Janus's `srtp_suite`: 32 or 80 (AES_CM_128_HMAC_SHA1_32 / _80); `crypto` its
    /// `srtp_crypto`: base64 of the 16-byte master key and 14-byte salt, as in SDES.
    pub fn new(suite: u64, crypto: &str) -> Result<SrtpSender, String> {
        Ok(SrtpSender { ctx: Mutex::new(context(suite, crypto)?) })
    }

    /// One plain RTP packet as SRTP; `None` when it is not valid RTP.
    pub fn protect(&self, rtp: &[u8]) -> Option<Bytes> {
        let mut ctx = self.ctx.lock().unwrap_or_else(|e| e.into_inner());
        ctx.encrypt_rtp(rtp).ok().map(|b| b.freeze())
    }
}

/// Decrypts the SRTP of one incoming plain-RTP source (any number of SSRCs).
pub struct SrtpReceiver {
    ctx: Mutex<Context>,
}

impl std::fmt::Debug for SrtpReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SrtpReceiver")
    }
}

impl SrtpReceiver {
    /// The same `suite` and `crypto` as [`SrtpSender::new`].
    pub fn new(suite: u64, crypto: &str) -> Result<SrtpReceiver, String> {
        Ok(SrtpReceiver { ctx: Mutex::new(context(suite, crypto)?) })
    }

    /// One SRTP packet as plain RTP; `None` when it fails authentication or is not SRTP.
    pub fn unprotect(&self, srtp: &[u8]) -> Option<Bytes> {
        let mut ctx = self.ctx.lock().unwrap_or_else(|e| e.into_inner());
        ctx.decrypt_rtp(srtp).ok().map(|b| b.freeze())
    }
}

fn context(suite: u64, crypto: &str) -> Result<Context, String> {
    let profile = match suite {
        32 => ProtectionProfile::Aes128CmHmacSha1_32,
        80 => ProtectionProfile::Aes128CmHmacSha1_80,
        _ => return Err(format!("unsupported SRTP suite {suite} (32 or 80)")),
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(crypto.trim())
        .map_err(|_| "the SRTP crypto is not base64".to_owned())?;
    if raw.len() != KEY_AND_SALT {
        return Err(format!("the SRTP crypto must be {KEY_AND_SALT} bytes (key and salt), not {}", raw.len()));
    }
    let provider = rtc::crypto::default_provider().map_err(|e| e.to_string())?;
    Context::new(&raw[..16], &raw[16..], profile, None, None, provider.crypto())
        .map_err(|e| format!("SRTP context: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_suites_are_checked_and_packets_grow_by_the_tag() {
        let key = base64::engine::general_purpose::STANDARD.encode([7u8; 30]);
        assert!(SrtpSender::new(81, &key).unwrap_err().contains("suite"));
        assert!(SrtpSender::new(80, "not base64!").unwrap_err().contains("base64"));
        assert!(SrtpSender::new(80, &base64::engine::general_purpose::STANDARD.encode([7u8; 16])).is_err());
        let rtp = [0x80, 96, 0, 1, 0, 0, 0, 10, 0, 0, 0, 42, 1, 2, 3, 4];
        for (suite, tag) in [(80, 10), (32, 4)] {
            let s = SrtpSender::new(suite, &key).expect("sender");
            let out = s.protect(&rtp).expect("protected");
            assert_eq!(out.len(), rtp.len() + tag);
            assert_eq!(&out[..12], &rtp[..12], "the header stays in the clear");
            assert_ne!(&out[12..16], &rtp[12..], "the payload does not");
        }
        assert!(SrtpSender::new(80, &key).unwrap().protect(&[1, 2]).is_none());
    }

    #[test]
    fn a_receiver_with_the_same_key_gets_the_packet_back() {
        let key = base64::engine::general_purpose::STANDARD.encode([9u8; 30]);
        let rtp = [0x80, 96, 0, 1, 0, 0, 0, 10, 0, 0, 3, 0xe8, 1, 2, 3, 4];
        let sent = SrtpSender::new(32, &key).unwrap().protect(&rtp).unwrap();
        assert_eq!(&SrtpReceiver::new(32, &key).unwrap().unprotect(&sent).unwrap()[..], &rtp[..]);
        let other = base64::engine::general_purpose::STANDARD.encode([8u8; 30]);
        assert!(SrtpReceiver::new(32, &other).unwrap().unprotect(&sent).is_none());
        assert!(SrtpReceiver::new(32, &key).unwrap().unprotect(&[0x80, 1]).is_none());
    }
}
