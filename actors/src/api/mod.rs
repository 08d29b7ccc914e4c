//! The Janus API at the edge: ids, errors, request parsing, outgoing messages, `server_info`.
//!
//! Everything here is pure data and parsing; no actors. Transports and plugins use these types so
//! that wording and shapes are identical everywhere (reference sections 1, 2 and 13).

pub mod error;
pub mod ids;
pub mod jsep;
pub mod message;
pub mod request;
pub mod validate;

pub use error::{ApiError, ErrorCode};
pub use ids::{ConnectionId, HandleId, SessionId, Transaction};
pub use jsep::{Jsep, SdpType};
pub use message::{Outgoing, PluginData};
pub use request::{Envelope, EnvelopeError, PathIds};
