//! The rooms of the plugin: their settings (read directly by `list` and `exists`) and their actors,
//! started on first use so rooms from the configuration cost nothing until someone joins.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use actix::{Actor, Addr};
use serde_json::{Map, Value};

use super::props::RoomProps;
use super::room::Room;

struct Entry {
    props: Arc<RwLock<RoomProps>>,
    /// Saved to the rooms file.
    permanent: bool,
    participants: usize,
    generation: u64,
    addr: Option<Addr<Room>>,
}

/// Every room by id.
#[derive(Default)]
pub struct Registry {
    rooms: Mutex<BTreeMap<u64, Entry>>,
    generations: AtomicU64,
    /// Where permanent rooms are kept (`rooms_file`), if anywhere.
    rooms_file: Mutex<Option<PathBuf>>,
}

/// Why a permanent room could not be saved.
#[derive(Debug)]
pub struct SaveError(pub String);

impl Registry {
    fn rooms(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Entry>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a room; `false` if the id is taken.
    pub fn create(&self, id: u64, props: RoomProps, permanent: bool) -> bool {
        let mut rooms = self.rooms();
        if rooms.contains_key(&id) {
            return false;
        }
        let generation = self.generations.fetch_add(1, Ordering::Relaxed);
        let entry = Entry { props: Arc::new(RwLock::new(props)), permanent, participants: 0, generation, addr: None };
        rooms.insert(id, entry);
        true
    }

    /// Keeps permanent rooms in `file` from now on.
    pub fn set_rooms_file(&self, file: Option<PathBuf>) {
        *self.rooms_file.lock().unwrap_or_else(|e| e.into_inner()) = file;
    }

    /// The room blocks stored in the rooms file (`{"room-<id>": {...}}`), if there is one.
    pub fn load_rooms_file(&self) -> Result<Map<String, Value>, SaveError> {
        let Some(file) = self.rooms_file.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
            return Ok(Map::new());
        };
        crate::rooms_file::load(&file).map_err(SaveError)
    }

    /// Marks room `id` permanent or not and rewrites the rooms file (Janus's `permanent`).
    pub fn persist(&self, id: u64, permanent: bool) -> Result<(), SaveError> {
        let file = self.rooms_file.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(file) = file else {
            return Err(SaveError("no rooms_file configured for permanent rooms".into()));
        };
        let blocks: Map<String, Value> = {
            let mut rooms = self.rooms();
            if let Some(e) = rooms.get_mut(&id) {
                e.permanent = permanent;
            }
            rooms
                .iter()
                .filter(|(room, e)| e.permanent && (**room != id || permanent))
                .map(|(room, e)| {
                    (format!("room-{room}"), e.props.read().unwrap_or_else(|p| p.into_inner()).to_config())
                })
                .collect()
        };
        crate::rooms_file::save(&file, &blocks).map_err(SaveError)
    }

    /// A free random room id.
    pub fn free_id(&self) -> u64 {
        loop {
            let id = portunus_actors::api::ids::random_id();
            if !self.rooms().contains_key(&id) {
                return id;
            }
        }
    }

    /// Whether room `id` exists.
    pub fn exists(&self, id: u64) -> bool {
        self.rooms().contains_key(&id)
    }

    /// The room's actor, started now if it is not running. Must be called inside an actix system.
    pub fn room(self: &Arc<Self>, id: u64) -> Option<Addr<Room>> {
        let mut rooms = self.rooms();
        let entry = rooms.get_mut(&id)?;
        if let Some(addr) = entry.addr.as_ref().filter(|a| a.connected()) {
            return Some(addr.clone());
        }
        let addr = Room::new(id, entry.generation, entry.props.clone(), self.clone()).start();
        entry.addr = Some(addr.clone());
        Some(addr)
    }

    /// Removes room `id` if it is still the incarnation `generation` (a room re-created under the
    /// same id is left alone).
    pub fn remove(&self, id: u64, generation: u64) {
        let mut rooms = self.rooms();
        if rooms.get(&id).is_some_and(|e| e.generation == generation) {
            rooms.remove(&id);
        }
    }

    /// The room actor reports its participant count.
    pub fn set_participants(&self, id: u64, generation: u64, n: usize) {
        if let Some(e) = self.rooms().get_mut(&id).filter(|e| e.generation == generation) {
            e.participants = n;
        }
    }

    /// `list` entries; private rooms only with `include_private`.
    pub fn list(&self, include_private: bool) -> Vec<Value> {
        self.rooms()
            .iter()
            .filter_map(|(id, e)| {
                let props = e.props.read().unwrap_or_else(|p| p.into_inner());
                (include_private || !props.is_private).then(|| props.list_entry(*id, e.participants))
            })
            .collect()
    }

    /// How many rooms, and participants in them (publishers and attendees).
    pub fn totals(&self) -> (usize, usize) {
        let rooms = self.rooms();
        (rooms.len(), rooms.values().map(|e| e.participants).sum())
    }
}
