//! A room's HTTP backend (`post`): public messages are POSTed there as JSON, one at a time from a
//! bounded queue, so a slow or dead backend costs dropped posts, never memory or a stalled room.

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

/// Posts waiting for the backend; beyond it they are dropped.
const QUEUE: usize = 1024;
/// One POST may take this long.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The sender of posts; its task starts with the first post.
#[derive(Default)]
pub struct Backend {
    queue: OnceLock<mpsc::Sender<(String, Bytes)>>,
}

impl Backend {
    /// Queues `body` for `url`. Must be called inside the actix system (plugin calls are).
    pub fn post(&self, url: String, body: Bytes) {
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            actix::spawn(deliver(rx));
            tx
        });
        if queue.try_send((url, body)).is_err() {
            tracing::warn!("TextRoom: backend queue full; message not posted");
        }
    }
}

async fn deliver(mut rx: mpsc::Receiver<(String, Bytes)>) {
    let client = match reqwest::Client::builder().timeout(TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "TextRoom: no HTTP client; posts disabled");
            return;
        }
    };
    while let Some((url, body)) = rx.recv().await {
        let sent = client
            .post(&url)
            .header("Accept", "application/json")
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => tracing::warn!(url, status = %r.status(), "TextRoom: backend refused a message"),
            Err(e) => tracing::warn!(url, error = %e, "TextRoom: couldn't post a message to the backend"),
        }
    }
}
