//! `janus.eventhandler.sampleevh`: events as HTTP POSTs of JSON (reference 7.2).
//!
//! One POST per batch (an array of up to 100 events with `grouping`, else one object), with a
//! timeout; a failed POST (no answer, timeout, non-2xx) is retried after
//! `retransmissions_backoff` ms, doubling each time, at most `max_retransmissions` times, then
//! the batch is lost (counted). Optional HTTP basic auth, and with `hmac_secret` an
//! `X-Portunus-Signature: sha256=<hex>` header, the HMAC-SHA256 of the exact body, so the
//! receiver can check who sent it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{HandlerSettings, SenderParts};
use crate::brokers::flag;

/// Package name.
pub const PACKAGE: &str = "janus.eventhandler.sampleevh";
/// The signature header.
pub const SIGNATURE_HEADER: &str = "X-Portunus-Signature";

/// `[sampleevh]` (janus.eventhandler.sampleevh.jcfg), plus Portunus's `timeout`, `queue_size`
/// and `hmac_secret`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct WebhookSettings {
    /// Run this handler.
    #[serde(deserialize_with = "flag")]
    pub enabled: bool,
    /// Event mask (`all`, `none` or a comma list of types).
    pub events: String,
    /// Send arrays of up to 100 events per POST.
    #[serde(deserialize_with = "flag")]
    pub grouping: bool,
    /// JSON layout: `indented`, `plain` or `compact`.
    pub json: String,
    /// Accepted for compatibility; bodies are not compressed.
    #[serde(deserialize_with = "flag")]
    pub compress: bool,
    /// Accepted for compatibility.
    pub compression: u32,
    /// Receiver URL (http:// or https://).
    pub backend: String,
    /// Basic auth user.
    pub backend_user: Option<String>,
    /// Basic auth password.
    pub backend_pwd: Option<String>,
    /// Retries of a failed POST before the batch is lost.
    pub max_retransmissions: u32,
    /// First retry delay in ms; doubles per retry.
    pub retransmissions_backoff: u64,
    /// Seconds a POST may take.
    pub timeout: u64,
    /// Events queued before new ones are dropped.
    pub queue_size: usize,
    /// Secret for the HMAC-SHA256 signature header (unset: no header).
    pub hmac_secret: Option<String>,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            enabled: false,
            events: "all".into(),
            grouping: true,
            json: "compact".into(),
            compress: false,
            compression: 9,
            backend: String::new(),
            backend_user: None,
            backend_pwd: None,
            max_retransmissions: 5,
            retransmissions_backoff: 100,
            timeout: 10,
            queue_size: 10_000,
            hmac_secret: None,
        }
    }
}

impl HandlerSettings for WebhookSettings {
    fn events(&self) -> &str {
        &self.events
    }
    fn grouping(&self) -> bool {
        self.grouping
    }
    fn json(&self) -> &str {
        &self.json
    }
    fn queue_size(&self) -> usize {
        self.queue_size
    }
}

/// `sha256=<hex>` of the HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // unwrap: HMAC accepts keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(7 + 64);
    hex.push_str("sha256=");
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// The sender task.
pub async fn run(mut parts: SenderParts<WebhookSettings>) {
    let client = match reqwest::Client::builder().build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "sampleevh: cannot build the HTTP client");
            return;
        }
    };
    let mut batch = Vec::new();
    while parts.next_batch(&mut batch).await.is_some() {
        let body = parts.render(&batch);
        let s = parts.settings.borrow().clone();
        let mut attempt = 0u32;
        loop {
            match post(&client, &s, &body).await {
                Ok(()) => {
                    parts.stats.sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    break;
                }
                Err(e) if attempt >= s.max_retransmissions => {
                    parts.stats.failed.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    tracing::warn!(error = %e, events = batch.len(), "sampleevh: giving up on a batch");
                    break;
                }
                Err(e) => {
                    let delay = s.retransmissions_backoff.saturating_mul(1u64 << attempt.min(20));
                    tracing::debug!(error = %e, attempt, delay, "sampleevh: retrying");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
            }
        }
    }
}

async fn post(client: &reqwest::Client, s: &WebhookSettings, body: &str) -> Result<(), String> {
    if !(s.backend.starts_with("http://") || s.backend.starts_with("https://")) {
        return Err(format!("backend '{}' is not an http(s) URL", s.backend));
    }
    let mut req = client
        .post(&s.backend)
        .timeout(Duration::from_secs(s.timeout.max(1)))
        .header("Content-Type", "application/json")
        .body(body.to_owned());
    if let Some(user) = &s.backend_user {
        req = req.basic_auth(user, s.backend_pwd.as_ref());
    }
    if let Some(secret) = &s.hmac_secret {
        req = req.header(SIGNATURE_HEADER, signature(secret, body.as_bytes()));
    }
    let resp = req.send().await.map_err(|e| e.to_string())?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {}", resp.status()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_known_answer() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
