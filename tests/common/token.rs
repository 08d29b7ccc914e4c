//! HMAC-signed tokens as Janus builds them (reference section 5):
//! `<expiry>,<realm>[,<descriptor>...]:` + base64(HMAC-SHA1(secret, data)).

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// A signed token over `expiry,realm,descriptors...` with `secret`.
pub fn signed_token(secret: &str, expiry: i64, realm: &str, descriptors: &[&str]) -> String {
    let mut data = format!("{expiry},{realm}");
    for d in descriptors {
        data.push(',');
        data.push_str(d);
    }
    // unwrap: HMAC accepts keys of any length.
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(data.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    format!("{data}:{sig}")
}

/// UNIX time now, in seconds.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known vector: HMAC-SHA1("key", "The quick brown fox jumps over the lazy dog").
    #[test]
    fn hmac_sha1_known_vector() {
        let mut mac = Hmac::<Sha1>::new_from_slice(b"key").unwrap();
        mac.update(b"The quick brown fox jumps over the lazy dog");
        let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9");
    }
}
