//! The file where a plugin keeps its `permanent` rooms: a JSON object of room blocks
//! (`{"room-<id>": {...}}`, the keys of the plugin's configuration section), shared by VideoRoom
//! and TextRoom.

use std::path::Path;

use serde_json::{Map, Value};

/// The saved room blocks; none when the file does not exist yet.
pub fn load(file: &Path) -> Result<Map<String, Value>, String> {
    match std::fs::read(file) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(e) => Err(format!("{}: {e}", file.display())),
    }
}

/// Replaces the file's contents with `blocks`: written beside it, then renamed, so a crash never
/// leaves half a file.
pub fn save(file: &Path, blocks: &Map<String, Value>) -> Result<(), String> {
    let text = serde_json::to_vec_pretty(blocks).map_err(|e| e.to_string())?;
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, file)).map_err(|e| format!("{}: {e}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_missing_file() {
        let file = std::env::temp_dir().join(format!("portunus-rooms-{}.json", std::process::id()));
        let _ = std::fs::remove_file(&file);
        assert!(load(&file).unwrap().is_empty());
        let mut blocks = Map::new();
        blocks.insert("room-7".into(), serde_json::json!({"description": "x"}));
        save(&file, &blocks).unwrap();
        assert_eq!(load(&file).unwrap(), blocks);
        std::fs::write(&file, "not json").unwrap();
        assert!(load(&file).is_err());
        let _ = std::fs::remove_file(&file);
    }
}
