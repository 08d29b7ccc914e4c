//! The `[textroom]` configuration section (Janus's `janus.plugin.textroom.jcfg`): general keys
//! (`admin_key`, `json`, `events`, `string_ids`) at the top or under `general`, and one
//! sub-object per room (`room-<id>`). Values may come as strings from .jcfg files, as typed TOML,
//! or from environment variables, so every key accepts the forms Janus's parser would.

use std::io;

use serde::Serialize as _;
use serde_json::ser::{Formatter, PrettyFormatter};
use serde_json::{Map, Value};

use super::api::RoomId;
use super::rooms::RoomSettings;

/// How data-channel messages are serialized (`json`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JsonFormat {
    /// No whitespace (Janus's default).
    #[default]
    Compact,
    /// One line, `", "` and `": "` separators.
    Plain,
    /// Three-space indentation.
    Indented,
}

impl JsonFormat {
    /// Serializes `v`.
    pub fn to_string(self, v: &Value) -> String {
        let mut buf = Vec::new();
        let r = match self {
            JsonFormat::Compact => serde_json::to_writer(&mut buf, v),
            JsonFormat::Plain => v.serialize(&mut serde_json::Serializer::with_formatter(&mut buf, Plain)),
            JsonFormat::Indented => {
                v.serialize(&mut serde_json::Serializer::with_formatter(&mut buf, PrettyFormatter::with_indent(b"   ")))
            }
        };
        match r {
            // serde_json writes valid UTF-8 for a Value.
            Ok(()) => String::from_utf8(buf).unwrap_or_default(),
            Err(_) => v.to_string(),
        }
    }
}

/// jansson's `JSON_INDENT(0)` without `JSON_COMPACT`: one line with spaced separators.
struct Plain;

impl Formatter for Plain {
    fn begin_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
}

/// Plugin-wide settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Required by `create`; unlocks private rooms in `list`.
    pub admin_key: Option<String>,
    /// Room ids are strings.
    pub string_ids: bool,
    /// Data-channel JSON formatting.
    pub format: JsonFormat,
    /// Notify event handlers.
    pub events: bool,
    /// Where `permanent` rooms are kept (JSON `{"room-<id>": {...}}`).
    pub rooms_file: Option<String>,
}

/// Everything the section holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// General settings.
    pub settings: Settings,
    /// Rooms to create at startup, in configuration order.
    pub rooms: Vec<(RoomId, RoomSettings)>,
}

impl Config {
    /// Reads the section; invalid rooms are skipped with a warning, as Janus does.
    pub fn parse(section: &Map<String, Value>) -> Config {
        let general = section.get("general").and_then(Value::as_object);
        let get = |k: &str| general.and_then(|g| g.get(k)).or_else(|| section.get(k));
        let format = match get("json").and_then(text).map(|s| s.to_ascii_lowercase()).as_deref() {
            None | Some("compact") => JsonFormat::Compact,
            Some("indented") => JsonFormat::Indented,
            Some("plain") => JsonFormat::Plain,
            Some(other) => {
                tracing::warn!(json = other, "TextRoom: unsupported JSON format option, using compact");
                JsonFormat::Compact
            }
        };
        let settings = Settings {
            admin_key: get("admin_key").and_then(text),
            string_ids: get("string_ids").is_some_and(flag),
            format,
            events: get("events").is_none_or(flag),
            rooms_file: get("rooms_file").and_then(text),
        };
        let mut rooms: Vec<(RoomId, RoomSettings)> = Vec::new();
        for (name, block) in section {
            let Some(block) = block.as_object() else { continue };
            if name.eq_ignore_ascii_case("general") {
                continue;
            }
            let Some(id) = room_id(name, settings.string_ids) else {
                tracing::warn!(room = name, "TextRoom: invalid room id in the configuration; skipped");
                continue;
            };
            if rooms.iter().any(|(r, _)| *r == id) {
                tracing::warn!(room = name, "TextRoom: room {id} already exists; skipped");
                continue;
            }
            rooms.push((id, room_settings(name, block)));
        }
        Config { settings, rooms }
    }

    /// The rooms kept in a rooms file (same blocks as the configuration).
    pub fn saved_rooms(blocks: &Map<String, Value>, string_ids: bool) -> Vec<(RoomId, RoomSettings)> {
        blocks
            .iter()
            .filter_map(|(name, block)| Some((room_id(name, string_ids)?, room_settings(name, block.as_object()?))))
            .collect()
    }
}

/// A room as a configuration block (what [`Config::saved_rooms`] reads back).
pub fn room_block(s: &RoomSettings) -> Value {
    let mut block = serde_json::json!({"description": s.description, "is_private": s.is_private, "history": s.history});
    for (key, value) in [("secret", &s.secret), ("pin", &s.pin), ("post", &s.post)] {
        if let Some(v) = value {
            block[key] = Value::from(v.clone());
        }
    }
    block
}

/// `room-1234` (or `1234`) -> the id; numeric ids must be canonical and non-zero.
fn room_id(name: &str, string_ids: bool) -> Option<RoomId> {
    let id = name.strip_prefix("room-").unwrap_or(name);
    if string_ids {
        return Some(RoomId::Str(id.to_owned()));
    }
    let n: u64 = id.parse().ok()?;
    (n != 0 && n.to_string() == id).then_some(RoomId::Num(n))
}

fn room_settings(name: &str, block: &Map<String, Value>) -> RoomSettings {
    let history = match block.get("history") {
        None => 0,
        Some(v) => match number(v).and_then(|n| u16::try_from(n).ok()) {
            Some(n) => n,
            None => {
                tracing::warn!(room = name, "TextRoom: invalid history size; history disabled");
                0
            }
        },
    };
    RoomSettings {
        // Janus compat: without a description the room is named after its section.
        description: block.get("description").and_then(text).filter(|d| !d.is_empty()).unwrap_or_else(|| name.into()),
        secret: block.get("secret").and_then(text),
        pin: block.get("pin").and_then(text),
        is_private: block.get("is_private").is_some_and(flag),
        history,
        post: block.get("post").and_then(text),
        // Janus compat: rooms from the configuration have no token ACL.
        allowed: None,
    }
}

/// A string setting; numbers and booleans are taken as their text.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Janus's `janus_is_true`: `true`, `yes` or `1`.
fn flag(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_u64() == Some(1),
        Value::String(s) => ["true", "yes", "1"].iter().any(|t| s.eq_ignore_ascii_case(t)),
        _ => false,
    }
}

fn number(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn section(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn stock_config() {
        let c = Config::parse(&section(json!({
            "admin_key": "supersecret",
            "json": "indented",
            "events": "no",
            "room-1234": {"description": "Demo Room", "secret": "adminpwd", "post": "http://x/"},
            "room-42": {"pin": 1234, "is_private": "yes", "history": "10"},
            "room-0": {},
            "room-007": {},
            "room-abc": {},
            "room-x": 5,
        })));
        assert_eq!(c.settings.admin_key.as_deref(), Some("supersecret"));
        assert_eq!(c.settings.format, JsonFormat::Indented);
        assert!(!c.settings.events && !c.settings.string_ids);
        assert_eq!(c.rooms.len(), 2);
        let (id, demo) = &c.rooms[0];
        assert_eq!(*id, RoomId::Num(1234));
        assert_eq!(demo.description, "Demo Room");
        assert_eq!(demo.secret.as_deref(), Some("adminpwd"));
        let (id, r) = &c.rooms[1];
        assert_eq!(*id, RoomId::Num(42));
        assert_eq!(
            (r.description.as_str(), r.pin.as_deref(), r.is_private, r.history),
            ("room-42", Some("1234"), true, 10)
        );
    }

    #[test]
    fn general_block_and_string_ids() {
        let c = Config::parse(&section(json!({
            "general": {"string_ids": true, "json": "weird"},
            "room-lobby": {"history": 100000},
        })));
        assert!(c.settings.string_ids && c.settings.events);
        assert_eq!(c.settings.format, JsonFormat::Compact);
        assert_eq!(c.rooms[0].0, RoomId::Str("lobby".into()));
        assert_eq!(c.rooms[0].1.history, 0);
    }

    #[test]
    fn formats() {
        let v = json!({"a": 1, "b": [1, 2], "c": {}});
        assert_eq!(JsonFormat::Compact.to_string(&v), r#"{"a":1,"b":[1,2],"c":{}}"#);
        assert_eq!(JsonFormat::Plain.to_string(&v), r#"{"a": 1, "b": [1, 2], "c": {}}"#);
        assert_eq!(JsonFormat::Indented.to_string(&json!({"a": [1]})), "{\n   \"a\": [\n      1\n   ]\n}");
    }
}
