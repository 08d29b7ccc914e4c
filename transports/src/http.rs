//! `janus.transport.http`: the Janus API over HTTP REST with long polls, and the Admin API on its
//! own port (reference 1.7). One actix-web server per API; every route is handled by one
//! function that splits the path after the base path, so the 404/302/450 rules stay in one place.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use portunus_actors::api::{ApiError, ConnectionId, ErrorCode, HandleId, Outgoing, PathIds, SessionId, Transaction};
use portunus_actors::gateway::{PollResult, TransportDescriptor};
use portunus_actors::transport::Origin;
use portunus_actors::Core;

use crate::control::Control;
use crate::settings::{CorsSettings, HttpSettings};

/// Package name of this transport.
pub const PACKAGE: &str = "janus.transport.http";

/// Open HTTP connections to the Janus API port (for `/metrics`; the admin port, where scrapes
/// arrive, is not counted).
pub static CONNECTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Open HTTP connections to the Admin API port (for `query_transport`).
pub static ADMIN_CONNECTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Requests being served, both APIs (`query_transport`'s `messages`).
pub static IN_FLIGHT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// `server_info` entry.
pub const DESCRIPTOR: TransportDescriptor = TransportDescriptor {
    package: PACKAGE,
    name: "JANUS REST (HTTP/HTTPS) transport plugin",
    author: "Meetecho s.r.l.",
    description: "This transport plugin adds REST (HTTP/HTTPS) support to the Janus API via libmicrohttpd.",
    version_string: "0.0.2",
    version: 2,
};

/// Which API a server speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// The Janus API.
    Janus,
    /// The Admin/Monitor API.
    Admin,
}

/// Per-server state shared by its workers (immutable).
pub struct HttpState {
    core: Core,
    api: Api,
    base_path: String,
    origin: Origin,
    settings: HttpSettings,
    control: Arc<Control>,
}

impl HttpState {
    /// State for one server.
    pub fn new(core: Core, api: Api, settings: HttpSettings, control: Arc<Control>) -> Arc<Self> {
        let base = match api {
            Api::Janus => settings.base_path.clone(),
            Api::Admin => settings.admin.admin_base_path.clone(),
        };
        Arc::new(HttpState {
            core,
            api,
            base_path: base.trim_end_matches('/').to_owned(),
            // Janus compat (1.6): HTTP sessions belong to the transport as a whole.
            origin: Origin::long_poll(PACKAGE, ConnectionId::next()),
            settings,
            control,
        })
    }
}

/// Registers the catch-all handler.
pub fn configure(state: Arc<HttpState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::from(state)).default_service(web::to(entry));
    }
}

async fn entry(req: HttpRequest, payload: web::Payload, state: web::Data<HttpState>) -> HttpResponse {
    let cors = &state.settings.cors;
    if let Some(resp) = enforce_cors(cors, req.headers()) {
        return resp;
    }
    state.control.notify(state.origin.connection, || {
        let mut data = serde_json::json!({"event": "request", "admin_api": state.api == Api::Admin});
        if let Some(peer) = req.peer_addr() {
            data["ip"] = peer.ip().to_string().into();
            data["port"] = peer.port().into();
        }
        data
    });
    let _serving = crate::GaugeGuard::new(&IN_FLIGHT);
    let mut resp = route(&req, payload, &state).await;
    add_cors(cors, req.headers(), resp.headers_mut(), req.method() == Method::OPTIONS);
    resp
}

/// Path segments after the base path, or `None` if the path is outside it.
fn segments<'a>(base: &str, path: &'a str) -> Option<Vec<&'a str>> {
    let rest = if base.is_empty() { path } else { path.strip_prefix(base)? };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    Some(rest.split('/').filter(|s| !s.is_empty()).collect())
}

async fn route(req: &HttpRequest, payload: web::Payload, state: &HttpState) -> HttpResponse {
    let Some(segs) = segments(&state.base_path, req.path()) else {
        return not_found();
    };
    let method = req.method().clone();
    if method == Method::OPTIONS {
        return HttpResponse::Ok().finish();
    }
    if segs.len() > 3 {
        return not_found();
    }
    // Janus compat (1.7): info and ping are also reachable with a GET.
    if let [word @ ("info" | "ping")] = segs.as_slice() {
        if method != Method::GET {
            return HttpResponse::BadRequest().finish();
        }
        let t = Transaction::random(11);
        let reply = if *word == "info" { state.core.info_reply(&t) } else { Outgoing::reply("pong", None, &t) };
        return json(reply.to_json());
    }
    let ids = match parse_ids(&segs) {
        Some(ids) => ids,
        None => return not_found(),
    };
    match method {
        Method::POST => {
            let body = match read_body(payload, state.settings.max_body_size).await {
                Ok(b) => b,
                Err(BodyError::TooLarge) => {
                    let e = ApiError::new(
                        ErrorCode::TransportSpecific,
                        format!("Payload too large (limit {} bytes)", state.settings.max_body_size),
                    );
                    return json(Outgoing::error(None, None, &e).to_json());
                }
                Err(BodyError::Broken) => return HttpResponse::BadRequest().finish(),
            };
            let timeout = Duration::from_secs(state.settings.request_timeout.max(1));
            let work = async {
                match state.api {
                    Api::Janus => state.core.handle(&state.origin, &body, ids).await,
                    Api::Admin => state.core.admin(&body, ids).await,
                }
            };
            match tokio::time::timeout(timeout, work).await {
                Ok(reply) => json(reply.to_json()),
                // Janus compat (1.7): a reply that never comes closes the request without a body.
                Err(_) => HttpResponse::Ok().finish(),
            }
        }
        Method::GET => get(req, state, ids).await,
        other => {
            let e = ApiError::new(ErrorCode::TransportSpecific, format!("Unsupported method {other}"));
            json(Outgoing::error(None, None, &e).to_json())
        }
    }
}

async fn get(req: &HttpRequest, state: &HttpState, ids: PathIds) -> HttpResponse {
    let (Some(session), Api::Janus) = (ids.session, state.api) else {
        return not_found();
    };
    if ids.handle.is_some() {
        // Janus compat (1.7): an internal keepalive, then a redirect to the session path.
        if !state.core.touch(session).await {
            return not_found();
        }
        return HttpResponse::Found()
            .insert_header((header::LOCATION, format!("{}/{}", state.base_path, session)))
            .finish();
    }
    let query = web::Query::<LongPollQuery>::from_query(req.query_string()).map(|q| q.into_inner()).unwrap_or_default();
    let maxev = query.maxev.filter(|m| *m >= 1).unwrap_or(1);
    let wrap = |events: Vec<String>| {
        let events = if events.is_empty() { vec![r#"{"janus":"keepalive"}"#.to_owned()] } else { events };
        if maxev > 1 {
            json(format!("[{}]", events.join(",")))
        } else {
            json(events.into_iter().next().unwrap_or_default())
        }
    };
    match state.core.poll(session, maxev as usize, query.apisecret, query.token).await {
        PollResult::Unauthorized => HttpResponse::Forbidden().finish(),
        PollResult::NotFound => not_found(),
        PollResult::Ready(events) => wrap(events),
        PollResult::Wait(rx) => {
            let keepalive = Duration::from_secs(state.settings.longpoll_keepalive.max(1));
            match tokio::time::timeout(keepalive, rx).await {
                Ok(Ok(events)) => wrap(events),
                _ => wrap(Vec::new()),
            }
        }
    }
}

#[derive(serde::Deserialize, Default)]
struct LongPollQuery {
    maxev: Option<i64>,
    apisecret: Option<String>,
    token: Option<String>,
}

/// Session and handle ids from path segments; `None` (404) when they are not numbers.
fn parse_ids(segs: &[&str]) -> Option<PathIds> {
    let num = |s: &str| s.parse::<u64>().ok().filter(|n| *n > 0);
    Some(match segs {
        [] => PathIds::default(),
        [s] => PathIds { session: Some(SessionId(num(s)?)), handle: None },
        [s, h] => PathIds { session: Some(SessionId(num(s)?)), handle: Some(HandleId(num(h)?)) },
        _ => return None,
    })
}

enum BodyError {
    TooLarge,
    Broken,
}

/// Reads the body up to `limit` bytes.
async fn read_body(mut payload: web::Payload, limit: usize) -> Result<Bytes, BodyError> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| BodyError::Broken)?;
        if buf.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

fn json(body: String) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(body)
}

fn not_found() -> HttpResponse {
    HttpResponse::new(StatusCode::NOT_FOUND)
}

fn enforce_cors(cors: &CorsSettings, headers: &HeaderMap) -> Option<HttpResponse> {
    let (true, Some(allowed)) = (cors.enforce_cors, &cors.allow_origin) else { return None };
    match headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        Some(origin) if origin != allowed => Some(HttpResponse::Forbidden().finish()),
        _ => None,
    }
}

fn add_cors(cors: &CorsSettings, req: &HeaderMap, out: &mut HeaderMap, preflight: bool) {
    match &cors.allow_origin {
        Some(origin) => {
            if let Ok(v) = HeaderValue::from_str(origin) {
                out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
            }
            out.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        }
        None => {
            out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        }
    }
    if preflight {
        out.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
        if let Some(m) = req.get(header::ACCESS_CONTROL_REQUEST_METHOD) {
            out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, m.clone());
        } else {
            out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, OPTIONS"));
        }
        if let Some(h) = req.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, h.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_rules() {
        assert_eq!(segments("/janus", "/janus"), Some(vec![]));
        assert_eq!(segments("/janus", "/janus/1/2"), Some(vec!["1", "2"]));
        assert_eq!(segments("/janus", "/janusx"), None);
        assert_eq!(segments("", "/5"), Some(vec!["5"]));
        assert!(parse_ids(&["x"]).is_none());
        assert!(parse_ids(&["0"]).is_none());
        assert_eq!(parse_ids(&["7", "9"]).unwrap().handle, Some(HandleId(9)));
    }

    #[test]
    fn unused_error_body_is_json() {
        let e = ApiError::new(ErrorCode::TransportSpecific, "Unsupported method PUT");
        assert_eq!(
            Outgoing::error(None, None, &e).to_json(),
            r#"{"janus":"error","error":{"code":450,"reason":"Unsupported method PUT"}}"#
        );
    }
}
