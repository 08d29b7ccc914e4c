//! The Admin/Monitor API (reference section 4): same envelope as the Janus API plus
//! `admin_secret`; global, session and handle requests.

use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::{json, Map, Value};

use crate::api::validate::Fields;
use crate::api::{ApiError, Envelope, ErrorCode, HandleId, Outgoing, PathIds, SessionId, Transaction};
use crate::auth::{AddToken, ChangeTokenPlugins, ListTokens, RemoveToken};
use crate::events::{EventType, FindHandler, QueryHandler};
use crate::gateway::Core;
use crate::handle::HandleRequest;
use crate::media::{CaptureFormat, CaptureSpec};
use crate::plugin::registry::MessagePlugin;
use crate::session::{HandleInfo, ListHandles, ToHandle};

type Reply = Result<Outgoing, ApiError>;

impl Core {
    /// Handles one Admin API request from raw bytes.
    pub async fn admin(&self, payload: &[u8], path: PathIds) -> Outgoing {
        if payload.iter().all(u8::is_ascii_whitespace) {
            return Outgoing::error(None, None, &ApiError::new(ErrorCode::InvalidJson, "Request payload missing"));
        }
        match Envelope::parse(payload, path) {
            Ok(env) => self.admin_envelope(env).await,
            Err(e) => Outgoing::error(e.context.session, e.context.transaction.as_ref(), &e.error),
        }
    }

    /// Handles one decoded Admin API request.
    pub async fn admin_value(&self, value: Value) -> Outgoing {
        match Envelope::from_value(value, PathIds::default()) {
            Ok(env) => self.admin_envelope(env).await,
            Err(e) => Outgoing::error(e.context.session, e.context.transaction.as_ref(), &e.error),
        }
    }

    async fn admin_envelope(&self, env: Envelope) -> Outgoing {
        let started = Instant::now();
        let t = env.transaction.clone();
        let session = env.session;
        let name = env.name.clone();
        let reply = match self.admin_dispatch(env).await {
            Ok(o) => o,
            Err(e) => Outgoing::error(session, Some(&t), &e),
        };
        let code = reply.error.as_ref().map(|e| e.code);
        crate::metrics::record(crate::metrics::ApiKind::Admin, &name, code, started.elapsed());
        reply
    }

    async fn admin_dispatch(&self, env: Envelope) -> Reply {
        let t = env.transaction.clone();
        let name = env.name.as_str();
        if env.session.is_none() && env.handle.is_none() {
            match name {
                "info" => return Ok(self.info_reply(&t)),
                "ping" => return Ok(Outgoing::reply("pong", None, &t)),
                _ => {}
            }
        }
        if !self.inner.auth_config.admin_ok(env.admin_secret.as_deref()) {
            return Err(ApiError::unauthorized());
        }
        let reply = match (env.session, env.handle) {
            (None, None) => self.admin_global(name, &t, &env.body).await,
            // Janus compat (14.14): an invalid handle is reported as 458.
            (None, Some(_)) => Err(ApiError::plain(ErrorCode::SessionNotFound)),
            (Some(s), None) => self.admin_session(name, &t, s, &env.body).await,
            (Some(s), Some(h)) => self.admin_handle(name, &t, s, h, &env.body).await,
        };
        // Reasons quote the request name as sent, not lowercased (Janus prints it verbatim).
        reply.map_err(|mut e| {
            if e.code == ErrorCode::InvalidRequestPath {
                e.reason = ApiError::unhandled_at_path(&env.raw_name).reason;
            }
            e
        })
    }

    async fn admin_global(&self, name: &str, t: &Transaction, body: &Map<String, Value>) -> Reply {
        let st = &self.inner.state;
        let rt = &st.runtime;
        let ok = || Outgoing::success(None, t);
        let directory = &self.inner.directory;
        let bad = |e: crate::api::validate::FieldError| ApiError::from(e);
        match name {
            "get_status" => {
                let (in_flight, stuck) = st.requests.counts();
                Ok(ok().with(
                    "status",
                    json!({
                        "token_auth": st.settings.general.token_auth,
                        "session_timeout": st.session_timeout(),
                        "reclaim_session_timeout": st.settings.general.reclaim_session_timeout,
                        "candidates_timeout": st.settings.general.candidates_timeout,
                        "log_level": rt.log_level.load(Ordering::Relaxed),
                        "log_timestamps": rt.log_timestamps.load(Ordering::Relaxed),
                        "log_colors": rt.log_colors.load(Ordering::Relaxed),
                        "locking_debug": rt.locking_debug.load(Ordering::Relaxed),
                        "refcount_debug": rt.refcount_debug.load(Ordering::Relaxed),
                        "min_nack_queue": rt.min_nack_queue.load(Ordering::Relaxed),
                        "nack-optimizations": rt.nack_optimizations.load(Ordering::Relaxed),
                        "no_media_timer": rt.no_media_timer.load(Ordering::Relaxed),
                        "slowlink_threshold": rt.slowlink_threshold.load(Ordering::Relaxed),
                        "sessions": st.counters.sessions.load(Ordering::Relaxed),
                        "handles": st.counters.handles.load(Ordering::Relaxed),
                        "requests_in_flight": in_flight,
                        "requests_stuck": stuck,
                        "events_dropped": st.counters.events_dropped.load(Ordering::Relaxed),
                        "plugin_panics": st.counters.plugin_panics.load(Ordering::Relaxed),
                        "peerconnections": st.media.as_ref().map(|m| m.load().0),
                        "media_tasks": st.media.as_ref().map(|m| m.load().1),
                        "media_ports": crate::media::live_ports(),
                    }),
                ))
            }
            "set_session_timeout" => {
                let timeout = body.req_u64("timeout").map_err(bad)?;
                rt.session_timeout.store(timeout, Ordering::Relaxed);
                Ok(ok().with("timeout", timeout))
            }
            "set_log_level" => {
                let level = body.req_u64("level").map_err(bad)?;
                if level > 7 {
                    return Err(ApiError::invalid_type("level", "between 0 and 7"));
                }
                rt.log_level.store(level as u8, Ordering::Relaxed);
                st.log.set_level(level as u8);
                Ok(ok().with("level", level))
            }
            "set_log_timestamps" => {
                let on = body.req_bool("timestamps").map_err(bad)?;
                rt.log_timestamps.store(on, Ordering::Relaxed);
                st.log.set_timestamps(on);
                Ok(ok().with("log_timestamps", on))
            }
            "set_log_colors" => {
                let on = body.req_bool("colors").map_err(bad)?;
                rt.log_colors.store(on, Ordering::Relaxed);
                st.log.set_colors(on);
                Ok(ok().with("log_colors", on))
            }
            "set_locking_debug" => {
                let on = body.req_bool("debug").map_err(bad)?;
                rt.locking_debug.store(on, Ordering::Relaxed);
                Ok(ok().with("locking_debug", on))
            }
            "set_refcount_debug" => {
                let on = body.req_bool("debug").map_err(bad)?;
                rt.refcount_debug.store(on, Ordering::Relaxed);
                Ok(ok().with("refcount_debug", on))
            }
            "set_min_nack_queue" => {
                let v = body.req_u64("min_nack_queue").map_err(bad)?.min(1000);
                rt.min_nack_queue.store(v, Ordering::Relaxed);
                if let Some(media) = &st.media {
                    media.set_nack_queue_ms(v);
                }
                Ok(ok().with("min_nack_queue", v))
            }
            "set_nack_optimizations" => {
                let v = body.req_bool("nack_optimizations").map_err(bad)?;
                rt.nack_optimizations.store(v, Ordering::Relaxed);
                Ok(ok().with("nack-optimizations", v))
            }
            "set_no_media_timer" => {
                let v = body.req_u64("no_media_timer").map_err(bad)?;
                rt.no_media_timer.store(v, Ordering::Relaxed);
                if let Some(media) = &st.media {
                    media.set_no_media_timer(v);
                }
                Ok(ok().with("no_media_timer", v))
            }
            "set_slowlink_threshold" => {
                let v = body.req_u64("slowlink_threshold").map_err(bad)?;
                rt.slowlink_threshold.store(v, Ordering::Relaxed);
                Ok(ok().with("slowlink_threshold", v))
            }
            "accept_new_sessions" => {
                let v = body.req_bool("accept").map_err(bad)?;
                rt.accepting.store(v, Ordering::Relaxed);
                Ok(ok().with("accept", v))
            }
            "list_sessions" => {
                let mut ids = directory.ids();
                ids.sort_unstable();
                Ok(ok().with("sessions", ids.into_iter().map(|s| s.0).collect::<Vec<_>>()))
            }
            "message_plugin" => {
                let plugin = body.req_str("plugin").map_err(bad)?.to_owned();
                let request =
                    body.opt_object("request").map_err(bad)?.cloned().ok_or_else(|| ApiError::missing("request"))?;
                let response = self
                    .inner
                    .plugins
                    .send(MessagePlugin { plugin, request })
                    .await
                    .map_err(|_| ApiError::unknown("Plugin registry unavailable"))??;
                Ok(ok().with("response", response))
            }
            "query_transport" => {
                let transport = body.req_str("transport").map_err(bad)?;
                let request = body.opt_object("request").map_err(bad)?.ok_or_else(|| ApiError::missing("request"))?;
                let control = self
                    .transport_control(transport)
                    .ok_or_else(|| ApiError::new(ErrorCode::PluginNotFound, "Invalid transport"))?;
                let response = crate::plugin::boundary::guard(|| control.query(request))
                    .map_err(|p| ApiError::unknown(format!("Transport query failed: {}", p.0)))?;
                Ok(ok().with("response", response))
            }
            "query_eventhandler" => {
                let handler = body.req_str("handler").map_err(bad)?.to_owned();
                let request =
                    body.opt_object("request").map_err(bad)?.cloned().ok_or_else(|| ApiError::missing("request"))?;
                let invalid = || ApiError::new(ErrorCode::PluginNotFound, "Invalid event handler");
                let bus = st.events.bus().ok_or_else(invalid)?;
                let target = bus.send(FindHandler(handler)).await.ok().flatten().ok_or_else(invalid)?;
                let response = target.send(QueryHandler(request)).await.map_err(|_| invalid())?;
                Ok(ok().with("response", response))
            }
            "query_logger" => {
                body.req_str("logger").map_err(bad)?;
                Err(ApiError::new(ErrorCode::PluginNotFound, "Invalid logger"))
            }
            "custom_event" => {
                let schema = body.req_str("schema").map_err(bad)?;
                let data = body.opt_object("data").map_err(bad)?.ok_or_else(|| ApiError::missing("data"))?;
                st.events.publish(EventType::External, None, None, None, None, json!({"schema": schema, "data": data}));
                Ok(ok())
            }
            "custom_logline" => {
                let line = body.req_str("line").map_err(bad)?;
                let level = body.opt_u64("level").map_err(bad)?.unwrap_or(4);
                match level {
                    0..=2 => tracing::error!(target: "custom_logline", "{line}"),
                    3 => tracing::warn!(target: "custom_logline", "{line}"),
                    4 => tracing::info!(target: "custom_logline", "{line}"),
                    5 | 6 => tracing::debug!(target: "custom_logline", "{line}"),
                    _ => tracing::trace!(target: "custom_logline", "{line}"),
                }
                Ok(ok())
            }
            "loops_info" => Ok(ok().with("loops", json!([]))),
            "resolve_address" => {
                let address = body.req_str("address").map_err(bad)?.to_owned();
                let start = Instant::now();
                let ip = tokio::net::lookup_host((address.as_str(), 0))
                    .await
                    .ok()
                    .and_then(|mut it| it.next())
                    .ok_or_else(|| ApiError::unknown("Could not resolve address"))?;
                Ok(ok().with("ip", ip.ip().to_string()).with("elapsed", start.elapsed().as_micros() as u64))
            }
            "add_token" => {
                let token = body.req_str("token").map_err(bad)?.to_owned();
                let plugins = plugin_list(body, false)?;
                let allowed = self.token_call(AddToken { token, plugins }).await??;
                Ok(ok().with("data", json!({ "plugins": allowed })))
            }
            "allow_token" | "disallow_token" => {
                let token = body.req_str("token").map_err(bad)?.to_owned();
                let plugins = plugin_list(body, true)?.unwrap_or_default();
                let allowed =
                    self.token_call(ChangeTokenPlugins { token, plugins, allow: name == "allow_token" }).await??;
                Ok(ok().with("data", json!({ "plugins": allowed })))
            }
            "list_tokens" => {
                let tokens = self.token_call(ListTokens).await??;
                let list: Vec<Value> =
                    tokens.into_iter().map(|(t, p)| json!({"token": t, "allowed_plugins": p})).collect();
                Ok(ok().with("data", json!({ "tokens": list })))
            }
            "remove_token" => {
                let token = body.req_str("token").map_err(bad)?.to_owned();
                self.token_call(RemoveToken(token)).await??;
                Ok(ok())
            }
            other => Err(ApiError::unhandled_at_path(other)),
        }
    }

    async fn token_call<M>(&self, msg: M) -> Result<M::Result, ApiError>
    where
        M: actix::Message + Send + 'static,
        M::Result: Send,
        crate::auth::AuthStore: actix::Handler<M>,
    {
        self.inner.auth.send(msg).await.map_err(|_| ApiError::unknown("Auth store unavailable"))
    }

    async fn admin_session(&self, name: &str, t: &Transaction, s: SessionId, body: &Map<String, Value>) -> Reply {
        let directory = &self.inner.directory;
        let facts = directory.describe(s)?;
        match name {
            "list_handles" => {
                let mut handles = facts.addr.send(ListHandles).await.unwrap_or_default();
                handles.sort_unstable();
                Ok(Outgoing::success(Some(s), t).with("handles", handles.into_iter().map(|h| h.0).collect::<Vec<_>>()))
            }
            "destroy_session" => {
                directory.destroy(s)?;
                Ok(Outgoing::success(Some(s), t))
            }
            "set_session_timeout" => {
                let timeout =
                    body.opt_i64("timeout").map_err(ApiError::from)?.ok_or_else(|| ApiError::missing("timeout"))?;
                directory.set_timeout(s, timeout)?;
                Ok(Outgoing::success(Some(s), t).with("timeout", timeout))
            }
            other => Err(ApiError::unhandled_at_path(other)),
        }
    }

    async fn admin_handle(
        &self,
        name: &str,
        t: &Transaction,
        s: SessionId,
        h: HandleId,
        body: &Map<String, Value>,
    ) -> Reply {
        let facts = self.inner.directory.describe(s)?;
        let to_handle = |request| facts.addr.send(ToHandle { handle: h, request });
        match name {
            "handle_info" => {
                let plugin_only = body.opt_bool("plugin_only").map_err(ApiError::from)?.unwrap_or(false);
                let handle_part = facts
                    .addr
                    .send(HandleInfo { handle: h, plugin_only })
                    .await
                    .map_err(|_| ApiError::no_handle(s, h))??;
                let mut info = Map::new();
                info.insert("session_id".into(), json!(s.0));
                info.insert("session_last_activity".into(), json!(facts.last_activity_us));
                info.insert("session_timeout".into(), json!(facts.timeout));
                info.insert("session_transport".into(), json!(facts.transport));
                if let Value::Object(part) = handle_part {
                    info.extend(part);
                }
                Ok(Outgoing::success(Some(s), t).with("handle_id", h.0).with("info", Value::Object(info)))
            }
            "detach_handle" => {
                to_handle(HandleRequest::Detach).await.map_err(|_| ApiError::no_handle(s, h))??;
                Ok(Outgoing::success(Some(s), t).with("handle_id", h.0))
            }
            "hangup_webrtc" => {
                to_handle(HandleRequest::Hangup(crate::media::HangupReason::AdminApi))
                    .await
                    .map_err(|_| ApiError::no_handle(s, h))??;
                Ok(Outgoing::success(Some(s), t).with("handle_id", h.0))
            }
            "start_pcap" | "start_text2pcap" => {
                let format = if name == "start_pcap" { CaptureFormat::Pcap } else { CaptureFormat::Text2pcap };
                let protected = &self.inner.state.settings.general.protected_folders;
                let spec = capture_spec(format, body, protected);
                to_handle(HandleRequest::StartCapture(format, spec)).await.map_err(|_| ApiError::no_handle(s, h))??;
                // Janus compat: this success carries neither session_id nor handle_id.
                Ok(Outgoing::success(None, t))
            }
            "stop_pcap" | "stop_text2pcap" => {
                to_handle(HandleRequest::StopCapture).await.map_err(|_| ApiError::no_handle(s, h))??;
                Ok(Outgoing::success(None, t))
            }
            other => Err(ApiError::unhandled_at_path(other)),
        }
    }
}

/// The fields of `start_pcap` / `start_text2pcap` (all optional; `truncate` 0 keeps everything).
fn capture_spec(
    format: CaptureFormat,
    body: &Map<String, Value>,
    protected: &[String],
) -> Result<CaptureSpec, ApiError> {
    Ok(CaptureSpec {
        format,
        folder: body.opt_str("folder")?.map(str::to_owned),
        filename: body.opt_str("filename")?.map(str::to_owned),
        truncate: usize::try_from(body.opt_u64("truncate")?.unwrap_or(0)).unwrap_or(usize::MAX),
        protected: protected.to_vec(),
    })
}

/// `plugins` of the token requests: optional for `add_token`, a non-empty array otherwise.
fn plugin_list(body: &Map<String, Value>, required: bool) -> Result<Option<Vec<String>>, ApiError> {
    let Some(list) = body.opt_array("plugins")? else {
        return if required { Err(ApiError::missing("plugins")) } else { Ok(None) };
    };
    if required && list.is_empty() {
        return Err(ApiError::invalid_type("plugins", "a non-empty array"));
    }
    list.iter()
        .map(|p| p.as_str().map(str::to_owned))
        .collect::<Option<Vec<_>>>()
        .map(Some)
        .ok_or_else(|| ApiError::invalid_type("plugins", "an array of strings"))
}
