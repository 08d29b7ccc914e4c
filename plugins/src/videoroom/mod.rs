//! `janus.plugin.videoroom` (reference 8.2): a multistream SFU.
//!
//! Synchronous requests (room management) are answered from the registry or by the room actor;
//! asynchronous ones (join, publish, subscribe, ...) go to the handle's worker task, which runs
//! them one at a time in arrival order, as Janus's plugin thread does, and pushes the events.
//! Media never passes through either: see [`media`].

mod errors;
mod media;
mod props;
mod registry;
mod remote;
mod room;

use std::sync::{Arc, Mutex};

use futures_util::future::{ready, BoxFuture};
use portunus_actors::api::validate::{FieldError, Fields};
use portunus_actors::api::{SdpType, Transaction};
use portunus_actors::media::AnswerSpec;
use portunus_actors::plugin::{
    DataMessage, Plugin, PluginCtx, PluginDescriptor, PluginEnv, PluginError, PluginMessage, PluginReply, PluginSession,
};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use errors::*;
use props::RoomProps;
use registry::Registry;
use room::{check_password, CascadeRequest, RoomReply, RoomRequest};

const DESCRIPTOR: PluginDescriptor = PluginDescriptor {
    package: "janus.plugin.videoroom",
    name: "JANUS VideoRoom plugin",
    author: "Meetecho s.r.l.",
    description: "This is a plugin implementing a videoconferencing SFU (Selective Forwarding Unit) for Janus, that is an audio/video router.",
    version_string: "0.0.9",
    version: 9,
};

/// Asynchronous requests a handle may queue before it is refused.
const JOB_QUEUE: usize = 64;

/// The VideoRoom plugin.
#[derive(Default)]
pub struct VideoRoom {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    registry: Arc<Registry>,
    settings: Mutex<Settings>,
}

#[derive(Clone, Default)]
struct Settings {
    admin_key: Option<String>,
    lock_rtp_forward: bool,
}

impl Shared {
    fn settings(&self) -> Settings {
        self.settings.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Plugin for VideoRoom {
    fn descriptor(&self) -> &PluginDescriptor {
        &DESCRIPTOR
    }

    fn init(&self, env: &PluginEnv) -> Result<(), PluginError> {
        let settings = Settings {
            admin_key: env.config.get("admin_key").and_then(Value::as_str).filter(|k| !k.is_empty()).map(str::to_owned),
            lock_rtp_forward: matches!(env.config.get("lock_rtp_forward"), Some(Value::Bool(true))),
        };
        *self.shared.settings.lock().unwrap_or_else(|e| e.into_inner()) = settings;
        let registry = &self.shared.registry;
        registry.set_rooms_file(env.config.get("rooms_file").and_then(Value::as_str).map(std::path::PathBuf::from));
        let saved = registry.load_rooms_file().map_err(|e| PluginError { code: UNKNOWN_ERROR.into(), reason: e.0 })?;
        for (key, block, permanent) in
            env.config.iter().map(|(k, v)| (k, v, false)).chain(saved.iter().map(|(k, v)| (k, v, true)))
        {
            let (Some(id), Some(block)) = (key.strip_prefix("room-"), block.as_object()) else { continue };
            let Ok(id) = id.parse::<u64>() else {
                tracing::warn!(room = key, "VideoRoom: room ids must be numbers; skipped");
                continue;
            };
            match RoomProps::parse(block) {
                Ok(props) => {
                    registry.create(id, props, permanent);
                }
                Err(e) => tracing::warn!(room = id, error = %e.error, "VideoRoom: invalid room configuration; skipped"),
            }
        }
        Ok(())
    }

    fn gauges(&self) -> Vec<(&'static str, u64)> {
        let (rooms, participants) = self.shared.registry.totals();
        vec![("rooms", rooms as u64), ("participants", participants as u64)]
    }

    fn create_session(&self, ctx: PluginCtx) -> Result<Box<dyn PluginSession>, PluginError> {
        let (jobs, rx) = mpsc::channel(JOB_QUEUE);
        let info = Arc::new(Mutex::new(json!({"type": "none"})));
        actix::spawn(worker(rx, ctx.clone(), self.shared.clone(), info.clone()));
        Ok(Box::new(VrSession { shared: self.shared.clone(), jobs, info }))
    }

    fn handle_admin_message_later(&self, request: Map<String, Value>) -> Option<BoxFuture<'static, Value>> {
        let name = match request.get("request") {
            Some(Value::String(s)) => s.to_ascii_lowercase(),
            _ => return Some(Box::pin(ready(VrError::from(FieldError::Missing("request".into())).to_json()))),
        };
        // Janus compat: the Admin API reaches the synchronous requests only.
        if ASYNC_REQUESTS.contains(&name.as_str()) {
            let e = VrError::new(INVALID_REQUEST, format!("Unsupported request '{name}' through the Admin API"));
            return Some(Box::pin(ready(e.to_json())));
        }
        Some(match sync_request(&self.shared, &name, request) {
            PluginReply::Later(later) => later,
            PluginReply::Sync(v) => Box::pin(ready(v)),
            other => Box::pin(ready(VrError::new(UNKNOWN_ERROR, format!("{other:?}")).to_json())),
        })
    }
}

/// Requests answered from the registry alone.
fn registry_request(shared: &Shared, name: &str, body: &Map<String, Value>) -> Result<Value, VrError> {
    let registry = &shared.registry;
    match name {
        "list" => {
            let admin = shared.settings().admin_key;
            let include_private = admin.is_some() && body.opt_str("admin_key")? == admin.as_deref();
            Ok(json!({"videoroom": "success", "list": registry.list(include_private)}))
        }
        "exists" => {
            let room = body.req_u64("room")?;
            Ok(json!({"videoroom": "success", "room": room, "exists": registry.exists(room)}))
        }
        _ => {
            if let Some(key) = shared.settings().admin_key {
                check_password(Some(&key), body, "admin_key").map_err(|e| match e.code {
                    UNAUTHORIZED => VrError::new(UNAUTHORIZED, "Unauthorized (wrong admin_key)"),
                    _ => e,
                })?;
            }
            let props = RoomProps::parse(body)?;
            let room = match body.opt_u64("room")? {
                Some(id) => id,
                None => registry.free_id(),
            };
            let permanent = body.opt_bool("permanent")?.unwrap_or(false);
            if !registry.create(room, props, false) {
                return Err(VrError::new(ROOM_EXISTS, format!("Room {room} already exists")));
            }
            if permanent {
                if let Err(e) = registry.persist(room, true) {
                    tracing::warn!(room, error = %e.0, "VideoRoom: permanent room not saved");
                    return Ok(json!({"videoroom": "created", "room": room, "permanent": false}));
                }
            }
            Ok(json!({"videoroom": "created", "room": room, "permanent": permanent}))
        }
    }
}

/// Work for a handle's worker.
enum Job {
    Message(Box<PluginMessage>),
    SetupMedia,
    HangupMedia,
    /// A data channel message from this handle's peer (publishers' go to their subscribers).
    Data(DataMessage),
}

struct VrSession {
    shared: Arc<Shared>,
    jobs: mpsc::Sender<Job>,
    info: Arc<Mutex<Value>>,
}

/// The synchronous requests that need the room actor.
fn room_request(name: &str, body: Map<String, Value>) -> Option<RoomRequest> {
    Some(match name {
        "edit" => RoomRequest::Edit(body),
        "destroy" => RoomRequest::Destroy(body),
        "kick" => RoomRequest::Kick(body),
        "moderate" => RoomRequest::Moderate(body),
        "listparticipants" => RoomRequest::ListParticipants,
        "allowed" => RoomRequest::Allowed(body),
        "listforwarders" => RoomRequest::ListForwarders(body),
        "rtp_forward" => RoomRequest::RtpForward(body),
        "stop_rtp_forward" => RoomRequest::StopRtpForward(body),
        "enable_recording" => RoomRequest::EnableRecording(body),
        #[cfg(feature = "fault-injection")]
        "portunus_fault" => RoomRequest::Fault,
        _ => return CascadeRequest::named(name, body).map(RoomRequest::Cascade),
    })
}

const ASYNC_REQUESTS: &[&str] = &[
    "join",
    "joinandconfigure",
    "configure",
    "publish",
    "unpublish",
    "start",
    "pause",
    "switch",
    "subscribe",
    "unsubscribe",
    "update",
    "leave",
];

/// A synchronous request (from a handle or the Admin API).
fn sync_request(shared: &Shared, name: &str, body: Map<String, Value>) -> PluginReply {
    if matches!(name, "list" | "exists" | "create") {
        return PluginReply::Sync(registry_request(shared, name, &body).unwrap_or_else(|e| e.to_json()));
    }
    if room_request(name, Map::new()).is_none() {
        return PluginReply::Sync(VrError::new(INVALID_REQUEST, format!("Unknown request '{name}'")).to_json());
    }
    let room = match body.req_u64("room") {
        Ok(r) => r,
        Err(e) => return PluginReply::Sync(VrError::from(e).to_json()),
    };
    if matches!(name, "rtp_forward" | "publish_remotely") && shared.settings().lock_rtp_forward {
        let key = shared.settings().admin_key;
        if let Err(e) = check_password(key.as_deref(), &body, "admin_key") {
            return PluginReply::Sync(e.to_json());
        }
    }
    let Some(req) = room_request(name, body) else {
        return PluginReply::Sync(VrError::new(INVALID_REQUEST, format!("Unknown request '{name}'")).to_json());
    };
    // Janus compat: cascading requests are checked before their room is looked up.
    if let RoomRequest::Cascade(c) = &req {
        if let Err(e) = c.validate() {
            return PluginReply::Sync(e.to_json());
        }
    }
    let Some(addr) = shared.registry.room(room) else {
        return PluginReply::Sync(VrError::no_such_room(room).to_json());
    };
    let sent = addr.send(req);
    PluginReply::Later(Box::pin(async move {
        match sent.await {
            Ok(Ok(reply)) => reply.data,
            Ok(Err(e)) => e.to_json(),
            Err(_) => VrError::no_such_room(room).to_json(),
        }
    }))
}

impl PluginSession for VrSession {
    fn handle_message(&mut self, msg: PluginMessage) -> PluginReply {
        let name = match msg.body.get("request") {
            None => {
                return PluginReply::Sync(
                    VrError::new(MISSING_ELEMENT, "Missing mandatory element (request)").to_json(),
                )
            }
            Some(Value::String(s)) => s.to_ascii_lowercase(),
            Some(_) => {
                return PluginReply::Sync(
                    VrError::new(INVALID_ELEMENT, "Invalid element type (request should be a string)").to_json(),
                )
            }
        };
        if !ASYNC_REQUESTS.contains(&name.as_str()) {
            return sync_request(&self.shared, &name, msg.body);
        }
        match self.jobs.try_send(Job::Message(Box::new(msg))) {
            Ok(()) => PluginReply::Async { hint: None },
            Err(_) => PluginReply::Error("Too many requests queued on this handle".into()),
        }
    }

    fn setup_media(&mut self) {
        let _ = self.jobs.try_send(Job::SetupMedia);
    }

    fn incoming_data(&mut self, msg: DataMessage) {
        // Data is best effort: a handle with a full queue loses messages, not memory.
        let _ = self.jobs.try_send(Job::Data(msg));
    }

    fn hangup_media(&mut self) {
        let jobs = self.jobs.clone();
        // Must not be lost to a full queue: the room has to stop forwarding to a dead PC.
        actix::spawn(async move {
            let _ = jobs.send(Job::HangupMedia).await;
        });
    }

    fn query(&self) -> Value {
        self.info.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// What a handle is in a room.
#[derive(Clone)]
enum Role {
    None,
    Publisher { room: u64, addr: actix::Addr<room::Room>, id: u64, private_id: u64 },
    Subscriber { room: u64, addr: actix::Addr<room::Room> },
}

impl Role {
    fn room(&self) -> Option<(u64, &actix::Addr<room::Room>)> {
        match self {
            Role::None => None,
            Role::Publisher { room, addr, .. } | Role::Subscriber { room, addr } => Some((*room, addr)),
        }
    }

    fn describe(&self) -> Value {
        match self {
            Role::None => json!({"type": "none"}),
            Role::Publisher { room, id, private_id, .. } => {
                json!({"type": "publisher", "room": room, "id": id, "private_id": private_id})
            }
            Role::Subscriber { room, .. } => json!({"type": "subscriber", "room": room}),
        }
    }
}

/// Runs a handle's asynchronous requests in order; leaves the room when the handle goes away.
async fn worker(mut rx: mpsc::Receiver<Job>, ctx: PluginCtx, shared: Arc<Shared>, info: Arc<Mutex<Value>>) {
    let handle = ctx.handle_id().0;
    let mut role = Role::None;
    while let Some(job) = rx.recv().await {
        match job {
            Job::Message(msg) => {
                let tx = msg.transaction.clone();
                if let Err(e) = run_request(&mut role, &ctx, &shared, *msg).await {
                    let _ = ctx.push_event(Some(tx), e.to_json(), None);
                }
            }
            Job::SetupMedia => {
                let req = match role {
                    Role::Publisher { .. } => RoomRequest::PublisherUp { handle },
                    _ => RoomRequest::SubscriberUp { handle },
                };
                if let Some((_, addr)) = role.room() {
                    let _ = addr.send(req).await;
                }
            }
            Job::Data(msg) => {
                if let Role::Publisher { addr, .. } = &role {
                    let _ = addr.try_send(RoomRequest::Data { handle, data: msg.data, binary: msg.binary });
                }
            }
            Job::HangupMedia => {
                if let Some((_, addr)) = role.room() {
                    let _ = addr.send(RoomRequest::MediaGone { handle }).await;
                }
                if matches!(role, Role::Subscriber { .. }) {
                    role = Role::None;
                }
            }
        }
        *info.lock().unwrap_or_else(|e| e.into_inner()) = role.describe();
    }
    // The handle is gone.
    if let Some((_, addr)) = role.room() {
        let _ = addr.send(RoomRequest::Leave { handle }).await;
    }
}

/// Sends `req` to the room of `role`; a room that vanished or no longer knows this handle resets it.
async fn ask(role: &mut Role, req: RoomRequest) -> Result<RoomReply, VrError> {
    let Some((room, addr)) = role.room() else {
        return Err(VrError::new(JOIN_FIRST, "Invalid request on unconfigured participant"));
    };
    let addr = addr.clone();
    match addr.send(req).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => {
            if e.code == JOIN_FIRST {
                *role = Role::None;
            }
            Err(e)
        }
        Err(_) => {
            *role = Role::None;
            Err(VrError::no_such_room(room))
        }
    }
}

/// Sends the reply event: with the answer, the offer, or plain; then closes the PC if asked.
fn deliver(ctx: &PluginCtx, tx: Transaction, reply: RoomReply) {
    let tx = Some(tx);
    if let Some(spec) = reply.offer {
        let _ = ctx.push_offer(tx, reply.data, spec);
    } else if let Some(spec) = reply.answer {
        let _ = ctx.push_answer(tx, reply.data, spec);
    } else {
        let _ = ctx.push_event(tx, reply.data, None);
    }
    if reply.close_pc {
        let _ = ctx.close_pc();
    }
}

async fn run_request(
    role: &mut Role,
    ctx: &PluginCtx,
    shared: &Arc<Shared>,
    msg: PluginMessage,
) -> Result<(), VrError> {
    let handle = ctx.handle_id().0;
    let tx = msg.transaction.clone();
    let body = msg.body;
    let name = body.get("request").and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase();
    let offer = match &msg.jsep {
        Some(j) if j.kind == SdpType::Offer => {
            Some(portunus_actors::media::sdp::parse(&j.sdp).map_err(|e| VrError::new(INVALID_SDP, e.to_string()))?)
        }
        _ => None,
    };
    let e2ee = msg.jsep.as_ref().and_then(|j| j.e2ee) == Some(true);
    let is_publisher = matches!(role, Role::Publisher { .. });
    if is_publisher && msg.jsep.as_ref().is_some_and(|j| j.kind == SdpType::Answer) {
        return Err(VrError::new(INVALID_SDP_TYPE, "Unsupported SDP type 'answer' for a publisher"));
    }
    match name.as_str() {
        "join" | "joinandconfigure" => {
            if let Role::Publisher { .. } | Role::Subscriber { .. } = role {
                let what = if is_publisher { "publisher" } else { "subscriber" };
                return Err(VrError::new(ALREADY_JOINED, format!("Already in as a {what} on this handle")));
            }
            let ptype = body.req_str("ptype")?;
            let room = body.req_u64("room")?;
            let addr = shared.registry.room(room).ok_or_else(|| VrError::no_such_room(room))?;
            match ptype {
                "publisher" => {
                    let mut joined = match addr
                        .send(RoomRequest::JoinPublisher { handle, ctx: ctx.clone(), body: body.clone() })
                        .await
                    {
                        Ok(r) => r?,
                        Err(_) => return Err(VrError::no_such_room(room)),
                    };
                    let id = joined.data.get("id").and_then(Value::as_u64).unwrap_or_default();
                    let private_id = joined.data.get("private_id").and_then(Value::as_u64).unwrap_or_default();
                    *role = Role::Publisher { room, addr: addr.clone(), id, private_id };
                    if name == "joinandconfigure" {
                        if let Some(offer) = offer {
                            let published = ask(role, RoomRequest::Publish { handle, offer, e2ee, body }).await?;
                            if let (Some(dst), Some(src)) = (joined.data.as_object_mut(), published.data.as_object()) {
                                for key in ["audio_codec", "video_codec", "streams"] {
                                    if let Some(v) = src.get(key) {
                                        dst.insert(key.into(), v.clone());
                                    }
                                }
                            }
                            joined.answer = published.answer;
                        }
                    }
                    deliver(ctx, tx, joined);
                }
                "subscriber" | "listener" => {
                    let reply = match addr.send(RoomRequest::JoinSubscriber { handle, ctx: ctx.clone(), body }).await {
                        Ok(r) => r?,
                        Err(_) => return Err(VrError::no_such_room(room)),
                    };
                    *role = Role::Subscriber { room, addr };
                    deliver(ctx, tx, reply);
                }
                _ => return Err(VrError::new(INVALID_ELEMENT, "Invalid element (ptype)")),
            }
        }
        "publish" | "configure" if is_publisher => {
            let reply = match (name.as_str(), offer) {
                ("publish", Some(offer)) => ask(role, RoomRequest::Publish { handle, offer, e2ee, body }).await?,
                ("publish", None) => return Err(VrError::new(INVALID_SDP, "Missing SDP offer")),
                (_, Some(offer)) => {
                    // Publishing for the first time, or a renegotiation of the same streams:
                    // answered receive-only either way.
                    let mut r =
                        ask(role, RoomRequest::ConfigurePublisher { handle, body, offer: Some(offer), e2ee }).await?;
                    r.answer = r.answer.or(Some(AnswerSpec { recv_only: true, ..AnswerSpec::default() }));
                    r
                }
                (_, None) => ask(role, RoomRequest::ConfigurePublisher { handle, body, offer: None, e2ee }).await?,
            };
            deliver(ctx, tx, reply);
        }
        "unpublish" if is_publisher => {
            let reply = ask(role, RoomRequest::Unpublish { handle }).await?;
            deliver(ctx, tx, reply);
        }
        "configure" => {
            let reply = ask(role, RoomRequest::ConfigureSubscriber { handle, body }).await?;
            deliver(ctx, tx, reply);
        }
        "start" | "pause" if !is_publisher => {
            let req = if name == "start" { RoomRequest::Start { handle } } else { RoomRequest::Pause { handle } };
            let reply = ask(role, req).await?;
            deliver(ctx, tx, reply);
        }
        "subscribe" | "unsubscribe" | "update" if !is_publisher => {
            let mut reply = RoomReply::default();
            let lists: Vec<(bool, Vec<Value>)> = match name.as_str() {
                "subscribe" => vec![(true, streams_list(&body, "streams")?.unwrap_or_default())],
                "unsubscribe" => vec![(false, streams_list(&body, "streams")?.unwrap_or_default())],
                _ => {
                    let sub = streams_list(&body, "subscribe")?;
                    let unsub = streams_list(&body, "unsubscribe")?;
                    if sub.is_none() && unsub.is_none() {
                        return Err(VrError::new(MISSING_ELEMENT, "Missing mandatory element (subscribe)"));
                    }
                    vec![(false, unsub.unwrap_or_default()), (true, sub.unwrap_or_default())]
                }
            };
            for (subscribe, streams) in lists {
                if streams.is_empty() {
                    continue;
                }
                let req = if subscribe {
                    RoomRequest::Subscribe { handle, streams }
                } else {
                    RoomRequest::Unsubscribe { handle, streams }
                };
                let r = ask(role, req).await?;
                reply.data = r.data;
                reply.offer = r.offer.or(reply.offer);
            }
            deliver(ctx, tx, reply);
        }
        "leave" => {
            let reply = ask(role, RoomRequest::Leave { handle }).await?;
            *role = Role::None;
            deliver(ctx, tx, reply);
        }
        "switch" if !is_publisher => {
            let reply = ask(role, RoomRequest::Switch { handle, body }).await?;
            deliver(ctx, tx, reply);
        }
        _ if matches!(role, Role::None) => {
            return Err(VrError::new(JOIN_FIRST, "Invalid request on unconfigured participant"));
        }
        _ => return Err(VrError::new(INVALID_REQUEST, format!("Invalid request '{name}' for this participant"))),
    }
    Ok(())
}

fn streams_list(body: &Map<String, Value>, key: &str) -> Result<Option<Vec<Value>>, VrError> {
    Ok(body.opt_array(key)?.cloned())
}
