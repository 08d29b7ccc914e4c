//! Id newtypes. Their `Display` prints what Janus prints in reasons (the bare number or string).

use std::fmt;
use std::sync::Arc;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Janus ids are random 53-bit integers so that JavaScript numbers hold them exactly.
pub const MAX_ID: u64 = (1 << 53) - 1;

/// A random non-zero 53-bit id.
pub fn random_id() -> u64 {
    loop {
        let id = rand::thread_rng().gen::<u64>() & MAX_ID;
        if id != 0 {
            return id;
        }
    }
}

macro_rules! numeric_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl $name {
            /// A fresh random 53-bit id.
            pub fn random() -> Self {
                $name(random_id())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

numeric_id!(
    /// A Janus session id.
    SessionId
);
numeric_id!(
    /// A plugin handle id (unique across the server).
    HandleId
);

/// A client-chosen transaction string, echoed in replies and in the events a request causes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Transaction(pub Arc<str>);

impl Transaction {
    /// Wraps a string.
    pub fn new(s: &str) -> Self {
        Transaction(Arc::from(s))
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A random alphanumeric transaction of `len` characters (`GET /janus/info` uses 11).
    pub fn random(len: usize) -> Self {
        const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut rng = rand::thread_rng();
        let s: String = (0..len).map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char).collect();
        Transaction(Arc::from(s.as_str()))
    }
}

impl fmt::Display for Transaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Identifies one transport connection (a WebSocket, a broker channel, the HTTP transport as a
/// whole) so that sessions can remember who owns them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub u64);

impl ConnectionId {
    /// A process-unique id.
    pub fn next() -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ConnectionId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_fit_in_53_bits() {
        for _ in 0..1000 {
            let id = random_id();
            assert!(id > 0 && id <= MAX_ID);
        }
    }

    #[test]
    fn random_transaction_length() {
        assert_eq!(Transaction::random(11).as_str().len(), 11);
    }
}
