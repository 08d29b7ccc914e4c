//! The rooms: pure state and the request processor. No I/O, no clock, no actix: a request and
//! its origin go in, an [`Outcome`] comes out (the reply, the messages to deliver to which handles,
//! the notes for event handlers). The plugin shell serializes and sends them.
//!
//! Invariants: a username is unique per room; a handle is at most once in a room; a room's
//! history never holds more than its `history` setting.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use portunus_actors::api::ids::random_id;
use portunus_actors::api::HandleId;
use serde_json::{json, Map, Value};

use super::api::{
    AllowedAction, Create, Edit, Join, Late, Message, Recipients, Request, RoomId, Strings, TrError, ALREADY_IN_ROOM,
    INVALID_ELEMENT, MISSING_ELEMENT, NOT_IN_ROOM, NO_SUCH_USER, ROOM_EXISTS, UNAUTHORIZED, UNKNOWN_ERROR,
    USERNAME_EXISTS,
};

/// Where a request came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The handle's data channel.
    DataChannel,
    /// A Janus API `message` on the handle.
    JanusApi,
    /// Admin API `message_plugin` (no handle).
    Admin,
}

/// A request's origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    /// Channel.
    pub via: Via,
    /// The handle, except for the Admin API.
    pub handle: Option<HandleId>,
}

/// Messages for some handles' data channels.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    /// Recipients, in order.
    pub to: Vec<HandleId>,
    /// The message.
    pub msg: Value,
}

/// What a request did.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    /// Data-channel messages, in sending order (all before the reply).
    pub deliveries: Vec<Delivery>,
    /// The reply (without transaction); `None` when none is due (`ack: false`, internal leaves).
    pub reply: Option<Result<Value, TrError>>,
    /// Notes for event handlers.
    pub notes: Vec<Value>,
    /// Public messages for rooms with a `post` backend: (URL, message).
    pub posts: Vec<(String, Value)>,
    /// The set of permanent rooms changed: rewrite the rooms file.
    pub persist: bool,
}

/// A room's settings, from the configuration or `create`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoomSettings {
    /// Description.
    pub description: String,
    /// Management secret.
    pub secret: Option<String>,
    /// Join pin.
    pub pin: Option<String>,
    /// Hidden from `list` without the admin key.
    pub is_private: bool,
    /// Messages kept for new joiners.
    pub history: u16,
    /// HTTP backend. Accepted and kept, but messages are not POSTed there.
    pub post: Option<String>,
    /// Token ACL; `Some` turns token checks on.
    pub allowed: Option<Vec<String>>,
}

/// One participant of a room.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Participant {
    handle: HandleId,
    display: Option<String>,
}

#[derive(Debug)]
struct Room {
    settings: RoomSettings,
    check_tokens: bool,
    allowed: BTreeSet<String>,
    /// By username.
    participants: BTreeMap<String, Participant>,
    /// The last `settings.history` public messages and announcements.
    history: VecDeque<Value>,
}

impl Room {
    fn new(mut settings: RoomSettings) -> Self {
        let allowed = settings.allowed.take();
        Room {
            check_tokens: allowed.is_some(),
            allowed: allowed.unwrap_or_default().into_iter().collect(),
            settings,
            participants: BTreeMap::new(),
            history: VecDeque::new(),
        }
    }

    fn username_of(&self, handle: HandleId) -> Option<&str> {
        self.participants.iter().find(|(_, p)| p.handle == handle).map(|(u, _)| u.as_str())
    }

    fn handles(&self) -> Vec<HandleId> {
        self.participants.values().map(|p| p.handle).collect()
    }

    fn remember(&mut self, msg: Value) {
        let cap = usize::from(self.settings.history);
        if cap == 0 {
            return;
        }
        while self.history.len() >= cap {
            self.history.pop_front();
        }
        self.history.push_back(msg);
    }
}

/// Every room, and the plugin-wide settings the processor needs.
#[derive(Debug, Default)]
pub struct Rooms {
    rooms: BTreeMap<RoomId, Room>,
    /// Plugin `admin_key`: needed for `create`, unlocks private rooms in `list`.
    pub admin_key: Option<String>,
    /// Room ids are strings.
    pub string_ids: bool,
    /// Rooms saved to the rooms file.
    permanent: BTreeSet<RoomId>,
}

impl Rooms {
    /// No rooms yet.
    pub fn new(admin_key: Option<String>, string_ids: bool) -> Self {
        Rooms { rooms: BTreeMap::new(), admin_key, string_ids, permanent: BTreeSet::new() }
    }

    /// Adds a room (from the configuration); `false` if the id is taken.
    pub fn add(&mut self, id: RoomId, settings: RoomSettings) -> bool {
        if self.rooms.contains_key(&id) {
            return false;
        }
        self.rooms.insert(id, Room::new(settings));
        true
    }

    /// Adds a room kept in the rooms file; `false` if the id is taken.
    pub fn add_permanent(&mut self, id: RoomId, settings: RoomSettings) -> bool {
        let added = self.add(id.clone(), settings);
        if added {
            self.permanent.insert(id);
        }
        added
    }

    /// The permanent rooms as configuration blocks, `{"room-<id>": {...}}`.
    pub fn permanent_blocks(&self) -> Map<String, Value> {
        self.permanent
            .iter()
            .filter_map(|id| Some((format!("room-{id}"), super::config::room_block(&self.rooms.get(id)?.settings))))
            .collect()
    }

    /// Number of rooms.
    pub fn count(&self) -> usize {
        self.rooms.len()
    }

    /// Number of participants over every room.
    pub fn participant_count(&self) -> usize {
        self.rooms.values().map(|r| r.participants.len()).sum()
    }

    /// The rooms `handle` is in: `[{room, username, display?}]`.
    pub fn memberships(&self, handle: HandleId) -> Vec<Value> {
        self.rooms
            .iter()
            .filter_map(|(id, room)| {
                let (username, p) = room.participants.iter().find(|(_, p)| p.handle == handle)?;
                Some(participant_json(Some(id), username, p))
            })
            .collect()
    }

    /// Runs one request.
    pub fn apply(&mut self, req: Request, from: Origin, date: &str) -> Outcome {
        let mut out = Outcome::default();
        let mut ack = true;
        let r = match req {
            Request::List { admin_key } => self.list(&admin_key),
            Request::ListParticipants { room } => self.participants(&room),
            Request::Exists { room } => Ok(json!({
                "textroom": "success",
                "room": room.to_json(),
                "exists": self.rooms.contains_key(&room),
            })),
            Request::Create(c) => self.create(c, from, &mut out),
            Request::Edit(e) => self.edit(e, from, &mut out),
            Request::Destroy { room, secret, permanent } => {
                let r = self.destroy(&room, &secret, from, &mut out);
                if permanent && r.is_ok() {
                    out.persist = self.permanent.remove(&room);
                }
                r.map(|mut v| {
                    v["permanent"] = permanent.into();
                    v
                })
            }
            Request::Allowed { room, secret, action, allowed } => self.allowed(&room, secret, action, allowed),
            Request::Kick { room, secret, username } => self.kick(&room, secret, &username, &mut out),
            Request::Announcement { room, secret, text } => self.announce(&room, secret, text, date, &mut out),
            Request::Join(j) => match from.handle {
                Some(h) => self.join(j, h, &mut out),
                None => Err(no_handle()),
            },
            Request::Leave { room } => match from.handle {
                Some(h) => self.leave(&room, h, &mut out),
                None => Err(no_handle()),
            },
            Request::Message(m) => {
                ack = m.ack;
                match from.handle {
                    Some(h) => self.message(m, h, date, &mut out),
                    None => Err(no_handle()),
                }
            }
        };
        // Janus compat (8.5): `ack: false` silences only the success reply.
        out.reply = match r {
            Ok(_) if !ack => None,
            r => Some(r),
        };
        out
    }

    /// Takes `handle` out of every room it is in (its PeerConnection or handle went away): the
    /// others get `leave`, as if it had asked. No reply.
    pub fn leave_all(&mut self, handle: HandleId) -> Outcome {
        let mut out = Outcome::default();
        let ids: Vec<RoomId> =
            self.rooms.iter().filter(|(_, r)| r.username_of(handle).is_some()).map(|(id, _)| id.clone()).collect();
        for id in ids {
            let _ = self.leave(&id, handle, &mut out);
        }
        out
    }

    fn room(&self, id: &RoomId) -> Result<&Room, TrError> {
        self.rooms.get(id).ok_or_else(|| TrError::no_such_room(id))
    }

    fn room_mut(&mut self, id: &RoomId) -> Result<&mut Room, TrError> {
        self.rooms.get_mut(id).ok_or_else(|| TrError::no_such_room(id))
    }

    fn list(&self, admin_key: &Late) -> Result<Value, TrError> {
        let mut include_private = false;
        if let (Some(key), Late::Str(given)) = (&self.admin_key, admin_key) {
            // Janus compat: a key is checked only when it is a non-empty string.
            if !given.is_empty() {
                check_secret(Some(key), admin_key, "admin_key")?;
                include_private = true;
            }
        }
        let list: Vec<Value> = self
            .rooms
            .iter()
            .filter(|(_, r)| include_private || !r.settings.is_private)
            .map(|(id, r)| {
                json!({
                    "room": id.to_json(),
                    "description": r.settings.description,
                    "pin_required": r.settings.pin.is_some(),
                    "num_participants": r.participants.len(),
                    "history": r.settings.history,
                })
            })
            .collect();
        Ok(json!({"textroom": "success", "list": list}))
    }

    fn participants(&self, id: &RoomId) -> Result<Value, TrError> {
        let room = self.room(id)?;
        let list: Vec<Value> = room.participants.iter().map(|(u, p)| participant_json(None, u, p)).collect();
        Ok(json!({"textroom": "success", "room": id.to_json(), "participants": list}))
    }

    fn create(&mut self, c: Create, from: Origin, out: &mut Outcome) -> Result<Value, TrError> {
        if let Some(key) = &self.admin_key {
            check_secret(Some(key), &c.admin_key, "admin_key")?;
        }
        let allowed = match c.allowed {
            Some(Strings::Invalid) => return Err(invalid_allowed()),
            Some(Strings::Valid(v)) => Some(v),
            None => None,
        };
        let id = match c.room {
            None | Some(RoomId::Num(0)) => self.free_id(),
            Some(id) if self.rooms.contains_key(&id) => {
                return Err(TrError::new(ROOM_EXISTS, format!("Room {id} already exists")));
            }
            Some(id) => id,
        };
        let description = match c.description {
            Some(d) if !d.is_empty() => d,
            _ => format!("Room {id}"),
        };
        let settings = RoomSettings {
            description,
            secret: c.secret,
            pin: c.pin,
            is_private: c.is_private,
            history: c.history,
            post: c.post,
            allowed,
        };
        self.rooms.insert(id.clone(), Room::new(settings));
        out.notes.push(json!({"event": "created", "room": id.to_json()}));
        // `permanent` is confirmed by the plugin once the rooms file is written.
        if c.permanent {
            self.permanent.insert(id.clone());
            out.persist = true;
        }
        Ok(json!({"textroom": api_kind(from, "created"), "room": id.to_json(), "permanent": c.permanent}))
    }

    fn edit(&mut self, e: Edit, from: Origin, out: &mut Outcome) -> Result<Value, TrError> {
        let room = self.room_mut(&e.room)?;
        check_secret(room.settings.secret.as_deref(), &e.secret.into(), "secret")?;
        let s = &mut room.settings;
        let non_empty = |v: Option<String>| v.filter(|v| !v.is_empty());
        if let Some(d) = non_empty(e.description) {
            s.description = d;
        }
        if let Some(p) = e.is_private {
            s.is_private = p;
        }
        if let Some(v) = non_empty(e.new_secret) {
            s.secret = Some(v);
        }
        if let Some(v) = non_empty(e.post) {
            s.post = Some(v);
        }
        if let Some(v) = non_empty(e.pin) {
            s.pin = Some(v);
        }
        out.notes.push(json!({"event": "edited", "room": e.room.to_json()}));
        if e.permanent {
            self.permanent.insert(e.room.clone());
            out.persist = true;
        }
        Ok(json!({"textroom": api_kind(from, "edited"), "room": e.room.to_json(), "permanent": e.permanent}))
    }

    fn destroy(&mut self, id: &RoomId, secret: &Late, from: Origin, out: &mut Outcome) -> Result<Value, TrError> {
        let room = self.room(id)?;
        check_secret(room.settings.secret.as_deref(), secret, "secret")?;
        let Some(room) = self.rooms.remove(id) else { return Err(TrError::no_such_room(id)) };
        // Janus compat: the requester's own channel is told too (once, even if it was in the room).
        let mut to = Vec::with_capacity(room.participants.len() + 1);
        if let Some(h) = from.handle {
            if room.username_of(h).is_none() {
                to.push(h);
            }
        }
        to.extend(room.handles());
        out.deliveries.push(Delivery { to, msg: json!({"textroom": "destroyed", "room": id.to_json()}) });
        out.notes.push(json!({"event": "destroyed", "room": id.to_json()}));
        Ok(json!({"textroom": api_kind(from, "destroyed"), "room": id.to_json(), "permanent": false}))
    }

    fn allowed(
        &mut self,
        id: &RoomId,
        secret: Option<String>,
        action: AllowedAction,
        tokens: Option<Strings>,
    ) -> Result<Value, TrError> {
        let room = self.room_mut(id)?;
        check_secret(room.settings.secret.as_deref(), &secret.into(), "secret")?;
        match action {
            AllowedAction::Enable => room.check_tokens = true,
            AllowedAction::Disable => room.check_tokens = false,
            AllowedAction::Add | AllowedAction::Remove => match tokens {
                Some(Strings::Invalid) => return Err(invalid_allowed()),
                Some(Strings::Valid(list)) => {
                    for t in list {
                        if action == AllowedAction::Add {
                            room.allowed.insert(t);
                        } else {
                            room.allowed.remove(&t);
                        }
                    }
                }
                None => {}
            },
        }
        let mut reply = json!({"textroom": "success", "room": id.to_json()});
        if action != AllowedAction::Disable {
            if let Some(obj) = reply.as_object_mut() {
                obj.insert("allowed".into(), room.allowed.iter().cloned().collect());
            }
        }
        Ok(reply)
    }

    fn kick(&mut self, id: &RoomId, secret: Option<String>, user: &str, out: &mut Outcome) -> Result<Value, TrError> {
        let room = self.room_mut(id)?;
        check_secret(room.settings.secret.as_deref(), &secret.into(), "secret")?;
        if !room.participants.contains_key(user) {
            return Err(TrError::new(NO_SUCH_USER, format!("No such user {user} in room {id}")));
        }
        // Everybody is told, the kicked user included; then they are out.
        let event = json!({"textroom": "kicked", "room": id.to_json(), "username": user});
        out.deliveries.push(Delivery { to: room.handles(), msg: event.clone() });
        room.participants.remove(user);
        out.notes.push(event);
        Ok(json!({"textroom": "success"}))
    }

    fn announce(
        &mut self,
        id: &RoomId,
        secret: Option<String>,
        text: String,
        date: &str,
        out: &mut Outcome,
    ) -> Result<Value, TrError> {
        let room = self.room_mut(id)?;
        check_secret(room.settings.secret.as_deref(), &secret.into(), "secret")?;
        let msg = json!({"textroom": "announcement", "room": id.to_json(), "date": date, "text": text});
        out.deliveries.push(Delivery { to: room.handles(), msg: msg.clone() });
        room.remember(msg);
        Ok(json!({"textroom": "success"}))
    }

    fn join(&mut self, j: Join, me: HandleId, out: &mut Outcome) -> Result<Value, TrError> {
        let id = j.room;
        let room = self.room_mut(&id)?;
        check_secret(room.settings.pin.as_deref(), &j.pin.into(), "pin")?;
        if room.username_of(me).is_some() {
            return Err(TrError::new(ALREADY_IN_ROOM, format!("Already in room {id}")));
        }
        if room.participants.contains_key(&j.username) {
            return Err(TrError::new(USERNAME_EXISTS, "Username already taken"));
        }
        if room.check_tokens && !j.token.as_ref().is_some_and(|t| room.allowed.contains(t)) {
            return Err(TrError::new(UNAUTHORIZED, "Unauthorized (not in the allowed list)"));
        }
        if j.history {
            for msg in &room.history {
                out.deliveries.push(Delivery { to: vec![me], msg: msg.clone() });
            }
        }
        let others: Vec<Value> = room.participants.iter().map(|(u, p)| participant_json(None, u, p)).collect();
        let mut event = Map::new();
        event.insert("textroom".into(), "join".into());
        event.insert("room".into(), id.to_json());
        event.insert("username".into(), j.username.as_str().into());
        if let Some(d) = &j.display {
            event.insert("display".into(), d.as_str().into());
        }
        // The joiner first, then the others (Janus's order).
        let mut to = vec![me];
        to.extend(room.handles());
        out.deliveries.push(Delivery { to, msg: Value::Object(event) });
        let mut note = json!({"event": "join", "room": id.to_json(), "username": j.username});
        if let (Some(d), Some(obj)) = (&j.display, note.as_object_mut()) {
            obj.insert("display".into(), d.as_str().into());
        }
        out.notes.push(note);
        room.participants.insert(j.username, Participant { handle: me, display: j.display });
        Ok(json!({"textroom": "success", "participants": others}))
    }

    fn leave(&mut self, id: &RoomId, me: HandleId, out: &mut Outcome) -> Result<Value, TrError> {
        let room = self.room_mut(id)?;
        let Some(username) = room.username_of(me).map(str::to_owned) else {
            return Err(TrError::new(NOT_IN_ROOM, format!("Not in room {id}")));
        };
        room.participants.remove(&username);
        let mut to = vec![me];
        to.extend(room.handles());
        let event = json!({"textroom": "leave", "room": id.to_json(), "username": username});
        out.deliveries.push(Delivery { to, msg: event });
        out.notes.push(json!({"event": "leave", "room": id.to_json(), "username": username}));
        Ok(json!({"textroom": "success"}))
    }

    fn message(&mut self, m: Message, me: HandleId, date: &str, out: &mut Outcome) -> Result<Value, TrError> {
        let id = m.room;
        let room = self.room_mut(&id)?;
        let Some((from, sender)) = room.participants.iter().find(|(_, p)| p.handle == me) else {
            return Err(TrError::new(NOT_IN_ROOM, format!("Not in room {id}")));
        };
        let (from, display) = (from.clone(), sender.display.clone());
        let whisper = match m.to {
            Recipients::Both => return Err(TrError::new(INVALID_ELEMENT, "Both to and tos array provided")),
            Recipients::BadTos => return Err(TrError::new(INVALID_ELEMENT, "Invalid tos provided")),
            Recipients::Room => None,
            Recipients::One(u) => Some(vec![u]),
            Recipients::Some(list) => Some(list),
        };
        let mut msg = Map::new();
        msg.insert("textroom".into(), "message".into());
        msg.insert("room".into(), id.to_json());
        msg.insert("from".into(), from.into());
        msg.insert("date".into(), date.into());
        msg.insert("text".into(), m.text.into());
        let Some(targets) = whisper else {
            out.deliveries.push(Delivery { to: room.handles(), msg: Value::Object(msg.clone()) });
            // Janus compat: only public messages go to the room's HTTP backend.
            if let Some(url) = &room.settings.post {
                out.posts.push((url.clone(), Value::Object(msg.clone())));
            }
            if let Some(d) = display {
                msg.insert("display".into(), d.into());
            }
            room.remember(Value::Object(msg));
            return Ok(json!({"textroom": "success"}));
        };
        msg.insert("whisper".into(), true.into());
        let msg = Value::Object(msg);
        let mut sent = Map::new();
        for user in targets {
            let found = room.participants.get(&user).map(|p| p.handle);
            if let Some(h) = found {
                out.deliveries.push(Delivery { to: vec![h], msg: msg.clone() });
            }
            sent.insert(user, found.is_some().into());
        }
        Ok(json!({"textroom": "success", "sent": sent}))
    }

    fn free_id(&self) -> RoomId {
        loop {
            let id = if self.string_ids { RoomId::Str(random_uuid()) } else { RoomId::Num(random_id()) };
            if !self.rooms.contains_key(&id) {
                return id;
            }
        }
    }
}

/// `{[room,] username, display?}`.
fn participant_json(room: Option<&RoomId>, username: &str, p: &Participant) -> Value {
    let mut m = Map::new();
    if let Some(r) = room {
        m.insert("room".into(), r.to_json());
    }
    m.insert("username".into(), username.into());
    if let Some(d) = &p.display {
        m.insert("display".into(), d.as_str().into());
    }
    Value::Object(m)
}

/// The reply kind of create/edit/destroy: `success` on the data channel, the named kind on the
/// Janus and Admin APIs (Janus compat 14.15).
fn api_kind(from: Origin, kind: &'static str) -> &'static str {
    match from.via {
        Via::DataChannel => "success",
        Via::JanusApi | Via::Admin => kind,
    }
}

/// Janus's `JANUS_CHECK_SECRET`: with a secret set, `member` must be there, a string, and equal.
fn check_secret(expected: Option<&str>, given: &Late, member: &str) -> Result<(), TrError> {
    let Some(expected) = expected else { return Ok(()) };
    match given {
        Late::Absent => Err(TrError::new(MISSING_ELEMENT, format!("Missing mandatory element ({member})"))),
        Late::WrongType => {
            Err(TrError::new(INVALID_ELEMENT, format!("Invalid element type ({member} should be a string)")))
        }
        Late::Str(s) if constant_time_eq(expected.as_bytes(), s.as_bytes()) => Ok(()),
        Late::Str(_) => Err(TrError::new(UNAUTHORIZED, format!("Unauthorized (wrong {member})"))),
    }
}

/// Compares without stopping at the first difference (secrets, pins, keys).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(!x));
    }
    diff == 0
}

fn invalid_allowed() -> TrError {
    TrError::new(INVALID_ELEMENT, "Invalid element in the allowed array (not a string)")
}

fn no_handle() -> TrError {
    TrError::new(UNKNOWN_ERROR, "No session associated with this handle...")
}

/// A random version-4 UUID string (Janus's `janus_random_uuid`, for `string_ids`).
fn random_uuid() -> String {
    let (a, b, c) = (random_id(), random_id(), random_id());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a & 0xffff_ffff,
        (a >> 32) & 0xffff,
        b & 0xfff,
        0x8000 | ((b >> 12) & 0x3fff),
        c & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &str = "2026-11-23T20:22:18+0000";
    const A: HandleId = HandleId(1);
    const B: HandleId = HandleId(2);
    const C: HandleId = HandleId(3);

    fn dc(h: HandleId) -> Origin {
        Origin { via: Via::DataChannel, handle: Some(h) }
    }

    fn demo() -> Rooms {
        let mut r = Rooms::new(None, false);
        let s = RoomSettings { description: "Demo Room".into(), secret: Some("adminpwd".into()), ..Default::default() };
        assert!(r.add(RoomId::Num(1234), s));
        r
    }

    fn run(r: &mut Rooms, from: Origin, v: Value) -> Outcome {
        let Value::Object(m) = v else { panic!("not an object") };
        let name = m.get("textroom").and_then(Value::as_str).unwrap_or_default().to_owned();
        match Request::parse(&name, &m, r.string_ids) {
            Ok(req) => r.apply(req, from, DATE),
            Err(e) => Outcome { reply: Some(Err(e)), ..Default::default() },
        }
    }

    fn ok(o: &Outcome) -> &Value {
        match &o.reply {
            Some(Ok(v)) => v,
            other => panic!("not a success: {other:?}"),
        }
    }

    fn code(o: &Outcome) -> (u16, &str) {
        match &o.reply {
            Some(Err(e)) => (e.code, e.reason.as_str()),
            other => panic!("not an error: {other:?}"),
        }
    }

    fn join(r: &mut Rooms, h: HandleId, user: &str) -> Outcome {
        run(r, dc(h), json!({"textroom": "join", "room": 1234, "username": user, "display": user.to_uppercase()}))
    }

    #[test]
    fn join_message_whisper_leave() {
        let mut r = demo();
        let o = join(&mut r, A, "alice");
        assert_eq!(ok(&o), &json!({"textroom": "success", "participants": []}));
        assert_eq!(
            o.deliveries,
            vec![Delivery {
                to: vec![A],
                msg: json!({"textroom": "join", "room": 1234, "username": "alice", "display": "ALICE"})
            }]
        );
        let o = join(&mut r, B, "bob");
        assert_eq!(ok(&o)["participants"], json!([{"username": "alice", "display": "ALICE"}]));
        assert_eq!(o.deliveries[0].to, vec![B, A]);
        assert_eq!(o.notes, vec![json!({"event": "join", "room": 1234, "username": "bob", "display": "BOB"})]);

        let o = run(&mut r, dc(A), json!({"textroom": "message", "room": 1234, "text": "hello"}));
        assert_eq!(ok(&o), &json!({"textroom": "success"}));
        assert_eq!(o.deliveries.len(), 1);
        let mut to = o.deliveries[0].to.clone();
        to.sort();
        assert_eq!(to, vec![A, B]);
        assert_eq!(
            o.deliveries[0].msg,
            json!({"textroom": "message", "room": 1234, "from": "alice", "date": DATE, "text": "hello"})
        );

        let o = run(&mut r, dc(A), json!({"textroom": "message", "room": 1234, "text": "psst", "to": "bob"}));
        assert_eq!(ok(&o), &json!({"textroom": "success", "sent": {"bob": true}}));
        assert_eq!(o.deliveries[0].to, vec![B]);
        assert_eq!(o.deliveries[0].msg["whisper"], json!(true));
        let o = run(&mut r, dc(A), json!({"textroom": "message", "room": 1234, "text": "x", "tos": ["bob", "zed"]}));
        assert_eq!(ok(&o)["sent"], json!({"bob": true, "zed": false}));
        let o = run(&mut r, dc(A), json!({"textroom": "message", "room": 1234, "text": "x", "ack": false}));
        assert_eq!(o.reply, None);
        assert_eq!(o.deliveries.len(), 1);

        let o = run(&mut r, dc(B), json!({"textroom": "leave", "room": 1234}));
        assert_eq!(ok(&o), &json!({"textroom": "success"}));
        assert_eq!(o.deliveries[0].to, vec![B, A]);
        assert_eq!(o.deliveries[0].msg, json!({"textroom": "leave", "room": 1234, "username": "bob"}));
        assert_eq!(r.memberships(B), Vec::<Value>::new());
        assert_eq!(r.memberships(A), vec![json!({"room": 1234, "username": "alice", "display": "ALICE"})]);
    }

    #[test]
    fn error_paths() {
        let mut r = demo();
        join(&mut r, A, "alice");
        assert_eq!(code(&join(&mut r, A, "again")), (421, "Already in room 1234"));
        assert_eq!(code(&join(&mut r, B, "alice")), (420, "Username already taken"));
        let o = run(&mut r, dc(B), json!({"textroom": "join", "room": 99, "username": "b"}));
        assert_eq!(code(&o), (417, "No such room (99)"));
        let o = run(&mut r, dc(B), json!({"textroom": "message", "room": 1234, "text": "x"}));
        assert_eq!(code(&o), (422, "Not in room 1234"));
        let o = run(&mut r, dc(B), json!({"textroom": "leave", "room": 1234}));
        assert_eq!(code(&o), (422, "Not in room 1234"));
        let o = run(&mut r, dc(A), json!({"textroom": "message", "room": 1234, "text": "x", "to": "a", "tos": []}));
        assert_eq!(code(&o), (414, "Both to and tos array provided"));
        let o = run(&mut r, dc(A), json!({"textroom": "message", "room": 1234, "text": "x", "tos": [1]}));
        assert_eq!(code(&o), (414, "Invalid tos provided"));
        let o = run(&mut r, dc(A), json!({"textroom": "announcement", "room": 1234, "text": "x"}));
        assert_eq!(code(&o), (413, "Missing mandatory element (secret)"));
        let o = run(&mut r, dc(A), json!({"textroom": "announcement", "room": 1234, "text": "x", "secret": "no"}));
        assert_eq!(code(&o), (419, "Unauthorized (wrong secret)"));
        let o = run(&mut r, dc(A), json!({"textroom": "destroy", "room": 1234, "secret": 7}));
        assert_eq!(code(&o), (414, "Invalid element type (secret should be a string)"));
        let o = run(&mut r, dc(A), json!({"textroom": "kick", "room": 1234, "secret": "adminpwd", "username": "zed"}));
        assert_eq!(code(&o), (423, "No such user zed in room 1234"));
        let o = run(&mut r, dc(A), json!({"textroom": "create", "room": 1234}));
        assert_eq!(code(&o), (418, "Room 1234 already exists"));
    }

    #[test]
    fn pin_tokens_and_admin_key() {
        let mut r = Rooms::new(Some("sekrit".into()), false);
        let o = run(&mut r, dc(A), json!({"textroom": "create", "room": 7, "pin": "1"}));
        assert_eq!(code(&o), (413, "Missing mandatory element (admin_key)"));
        let o = run(&mut r, dc(A), json!({"textroom": "create", "room": 7, "pin": "1", "admin_key": "x"}));
        assert_eq!(code(&o), (419, "Unauthorized (wrong admin_key)"));
        let o = run(
            &mut r,
            dc(A),
            json!({"textroom": "create", "room": 7, "pin": "1", "admin_key": "sekrit", "is_private": true, "allowed": ["tok"]}),
        );
        assert_eq!(ok(&o), &json!({"textroom": "success", "room": 7, "permanent": false}));
        let list = |r: &mut Rooms, key: Value| {
            let o = run(r, dc(A), json!({"textroom": "list", "admin_key": key}));
            ok(&o)["list"].as_array().map(Vec::len).unwrap_or(99)
        };
        assert_eq!(list(&mut r, json!(null)), 0);
        assert_eq!(list(&mut r, json!("sekrit")), 1);
        let o = run(&mut r, dc(A), json!({"textroom": "list", "admin_key": "bad"}));
        assert_eq!(code(&o), (419, "Unauthorized (wrong admin_key)"));

        let o = run(&mut r, dc(A), json!({"textroom": "join", "room": 7, "username": "a"}));
        assert_eq!(code(&o), (413, "Missing mandatory element (pin)"));
        let o = run(&mut r, dc(A), json!({"textroom": "join", "room": 7, "username": "a", "pin": "2"}));
        assert_eq!(code(&o), (419, "Unauthorized (wrong pin)"));
        let o = run(&mut r, dc(A), json!({"textroom": "join", "room": 7, "username": "a", "pin": "1"}));
        assert_eq!(code(&o), (419, "Unauthorized (not in the allowed list)"));
        let o = run(&mut r, dc(A), json!({"textroom": "join", "room": 7, "username": "a", "pin": "1", "token": "tok"}));
        ok(&o);
        let o = run(&mut r, dc(B), json!({"textroom": "allowed", "room": 7, "action": "add", "allowed": ["t2"]}));
        assert_eq!(ok(&o), &json!({"textroom": "success", "room": 7, "allowed": ["t2", "tok"]}));
        let o = run(&mut r, dc(B), json!({"textroom": "allowed", "room": 7, "action": "disable"}));
        assert_eq!(ok(&o), &json!({"textroom": "success", "room": 7}));
        let o = run(&mut r, dc(B), json!({"textroom": "join", "room": 7, "username": "b", "pin": "1"}));
        ok(&o);
    }

    #[test]
    fn history_is_bounded_and_replayed() {
        let mut r = Rooms::new(None, false);
        r.add(RoomId::Num(5), RoomSettings { description: "h".into(), history: 2, ..Default::default() });
        run(&mut r, dc(A), json!({"textroom": "join", "room": 5, "username": "a", "display": "Al"}));
        for i in 0..5 {
            run(&mut r, dc(A), json!({"textroom": "message", "room": 5, "text": format!("m{i}")}));
        }
        run(&mut r, dc(A), json!({"textroom": "message", "room": 5, "text": "secret", "to": "a"}));
        let o = run(&mut r, dc(B), json!({"textroom": "join", "room": 5, "username": "b"}));
        let replay: Vec<&Value> = o.deliveries.iter().filter(|d| d.to == vec![B]).map(|d| &d.msg).collect();
        assert_eq!(replay.len(), 2);
        assert_eq!(replay[0]["text"], "m3");
        assert_eq!(replay[1]["text"], "m4");
        assert_eq!(replay[1]["display"], "Al");
        let o = run(&mut r, dc(C), json!({"textroom": "join", "room": 5, "username": "c", "history": false}));
        assert_eq!(o.deliveries.len(), 1);
    }

    #[test]
    fn destroy_kick_and_leave_all() {
        let mut r = demo();
        join(&mut r, A, "alice");
        join(&mut r, B, "bob");
        let o = run(&mut r, dc(C), json!({"textroom": "kick", "room": 1234, "secret": "adminpwd", "username": "bob"}));
        assert_eq!(ok(&o), &json!({"textroom": "success"}));
        assert_eq!(o.deliveries[0].msg, json!({"textroom": "kicked", "room": 1234, "username": "bob"}));
        assert_eq!(o.deliveries[0].to.len(), 2);
        assert!(r.memberships(B).is_empty());

        let api = Origin { via: Via::JanusApi, handle: Some(C) };
        let o = run(&mut r, api, json!({"textroom": "destroy", "room": 1234, "secret": "adminpwd"}));
        assert_eq!(ok(&o), &json!({"textroom": "destroyed", "room": 1234, "permanent": false}));
        assert_eq!(
            o.deliveries,
            vec![Delivery { to: vec![C, A], msg: json!({"textroom": "destroyed", "room": 1234}) }]
        );
        assert_eq!(r.count(), 0);

        let mut r = demo();
        r.add(RoomId::Num(2), RoomSettings::default());
        join(&mut r, A, "alice");
        join(&mut r, B, "bob");
        run(&mut r, dc(A), json!({"textroom": "join", "room": 2, "username": "al"}));
        let o = r.leave_all(A);
        assert_eq!(o.reply, None);
        // Rooms in id order: room 2 (alone), then 1234 (with bob).
        let to: Vec<(Vec<HandleId>, Value)> =
            o.deliveries.iter().map(|d| (d.to.clone(), d.msg["room"].clone())).collect();
        assert_eq!(to, vec![(vec![A], json!(2)), (vec![A, B], json!(1234))]);
        assert!(r.memberships(A).is_empty());
    }

    #[test]
    fn create_edit_kinds_and_random_ids() {
        let mut r = demo();
        let admin = Origin { via: Via::Admin, handle: None };
        let o = run(&mut r, admin, json!({"textroom": "create", "description": ""}));
        let id = ok(&o)["room"].as_u64().unwrap_or(0);
        assert!(id > 0 && id < (1 << 53));
        assert_eq!(ok(&o)["textroom"], "created");
        let o = run(&mut r, admin, json!({"textroom": "listparticipants", "room": id}));
        assert_eq!(ok(&o), &json!({"textroom": "success", "room": id, "participants": []}));
        let o = run(
            &mut r,
            admin,
            json!({"textroom": "edit", "room": 1234, "secret": "adminpwd", "new_description": "New"}),
        );
        assert_eq!(ok(&o), &json!({"textroom": "edited", "room": 1234, "permanent": false}));
        let o = run(&mut r, dc(A), json!({"textroom": "list"}));
        assert_eq!(ok(&o)["list"][0]["description"], "New");
        let o = run(&mut r, admin, json!({"textroom": "join", "room": 1234, "username": "x"}));
        assert_eq!(code(&o).0, 499);

        let mut s = Rooms::new(None, true);
        let o = run(&mut s, dc(A), json!({"textroom": "create"}));
        let id = ok(&o)["room"].as_str().unwrap_or_default().to_owned();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        let o = run(&mut s, dc(A), json!({"textroom": "join", "room": id, "username": "u"}));
        assert_eq!(o.deliveries[0].msg["room"], json!(id));
    }

    #[test]
    fn constant_time_compare() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }
}
