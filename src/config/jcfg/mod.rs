//! Reading Janus's `.jcfg` configuration files (libconfig syntax) and turning
//! a Janus configuration folder into Portunus's TOML configuration tree.
//!
//! This module owns three things: the libconfig parser ([`parse`]), the
//! folder-to-tree mapping ([`load_folder`]) and the TOML rendering used by
//! `portunus jcfg2toml DIR` ([`to_toml_string`]).
//!
//! The parser follows libconfig as Janus uses it; what differs or is worth
//! knowing:
//! - a setting name that appears twice in one group is not an error: the later
//!   one wins (a repeated group replaces the earlier one, it is not merged),
//!   so a file with a copy-pasted block still converts;
//! - arrays and lists may end with a trailing comma;
//! - `@include` is rejected with an error, because the folder mapping cannot
//!   say where included settings belong;
//! - a backslash before a character that is not a known escape is kept, as
//!   libconfig does (`"a\d"` stays `a\d`);
//! - an unquoted value starting with `/` is read as a string up to the next
//!   blank, `;`, `,`, `#`, `"` or closing bracket: libconfig rejects it, but
//!   Debian's janus package ships `janus.transport.mqtt.jcfg` with
//!   `certfile = /etc/ssl/certs/ssl-cert-snakeoil.pem`, and such a path cannot
//!   mean anything else;
//! - integers are 64-bit whatever their suffix, and hexadecimal is a bit
//!   pattern (`0xFFFFFFFFFFFFFFFF` is -1).
//!
//! The lexer (`lexer`) and the grammar (`parser`) live in submodules.
//! Error positions are 1-based; columns count characters, a tab being one.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use self::lexer::Pos;

mod lexer;
mod parser;

/// What can go wrong while reading `.jcfg` text or a Janus folder.
#[derive(Debug, thiserror::Error)]
pub enum JcfgError {
    /// The text is not valid libconfig (or uses a feature we do not support).
    #[error("{}line {line}, column {column}: {reason}", file_prefix(path.as_deref()))]
    Syntax {
        /// The file, when the text came from one (set by [`load_folder`]).
        path: Option<PathBuf>,
        /// 1-based line of the offending token.
        line: usize,
        /// 1-based column (in characters) of the offending token.
        column: usize,
        /// What is wrong there.
        reason: String,
    },
    /// A folder or file could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// The folder or file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Two files (or a `janus.jcfg` group and a module file) claim the same
    /// top-level table.
    #[error(
        "top-level table `{name}` comes from both {} and {}",
        first.display(),
        second.display()
    )]
    DuplicateTable {
        /// The table name.
        name: String,
        /// The file read first.
        first: PathBuf,
        /// The file read second.
        second: PathBuf,
    },
    /// A module file sets `key` both in its `general` group and outside it,
    /// so the two cannot share the module's table.
    #[error(
        "{}: `{key}` is set both inside the `general` group and outside it",
        path.display()
    )]
    GeneralClash {
        /// The module file.
        path: PathBuf,
        /// The clashing name.
        key: String,
    },
}

/// The result of [`load_folder`].
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Loaded {
    /// The converted configuration tree.
    pub table: Table,
    /// Files of the folder that were not read: legacy `.cfg` files and any
    /// name that is neither `janus.jcfg` nor `janus.<kind>.<name>.jcfg`.
    pub ignored: Vec<PathBuf>,
}

/// Parses libconfig text into a table: groups become tables, arrays and lists
/// become arrays (a list of groups is an array of tables).
///
/// A leading byte-order mark is ignored.
pub fn parse(text: &str) -> Result<Table, JcfgError> {
    parser::parse(text)
}

/// Reads every Janus `.jcfg` file of `dir` into one tree laid out like Janus:
///
/// - each top-level group of `janus.jcfg` becomes a top-level table of the
///   same name (`general`, `nat`, ...);
/// - `janus.<kind>.<name>.jcfg`, with kind `transport`, `plugin`,
///   `eventhandler` or `logger`, becomes the table `<name>`: the settings of
///   its `general` group and its top-level plain settings go directly in it,
///   every other group becomes a subtable (`http.admin`, `videoroom.room-1234`).
///
/// Other files are listed in [`Loaded::ignored`]; subfolders are skipped.
/// Files are read in name order, so errors are reproducible.
pub fn load_folder(dir: &Path) -> Result<Loaded, JcfgError> {
    let mut paths = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let path = entry.map_err(io_error(dir))?.path();
        if path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();

    let mut loaded = Loaded::default();
    let mut owners: BTreeMap<String, PathBuf> = BTreeMap::new();
    for path in paths {
        let Some(role) = classify(&path) else {
            loaded.ignored.push(path);
            continue;
        };
        let text = fs::read_to_string(&path).map_err(io_error(&path))?;
        let parsed = parse(&text).map_err(|error| error.in_file(&path))?;
        let entries = match role {
            Role::Core => parsed.into_iter().collect(),
            Role::Module(name) => vec![(name, Value::Table(flatten_module(parsed, &path)?))],
        };
        for (name, value) in entries {
            if let Some(first) = owners.get(&name) {
                return Err(JcfgError::DuplicateTable { name, first: first.clone(), second: path });
            }
            owners.insert(name.clone(), path.clone());
            loaded.table.insert(name, value);
        }
    }
    Ok(loaded)
}

/// Renders a converted tree as TOML, tables as `[section]` headers.
///
/// Tables built by [`parse`] and [`load_folder`] always render; should
/// serialisation ever fail, the output is a single TOML comment saying why, so
/// that a caller printing it cannot mistake it for a configuration.
pub fn to_toml_string(table: &Table) -> String {
    match toml::to_string_pretty(table) {
        Ok(text) => text,
        Err(error) => format!("# cannot render this configuration as TOML: {error}\n"),
    }
}

// ---------------------------------------------------------------------------
// Folder mapping

/// Module kinds whose files become a top-level table named after the module.
const MODULE_KINDS: [&str; 4] = ["transport", "plugin", "eventhandler", "logger"];

enum Role {
    Core,
    Module(String),
}

fn classify(path: &Path) -> Option<Role> {
    let file_name = path.file_name()?.to_str()?;
    if file_name == "janus.jcfg" {
        return Some(Role::Core);
    }
    let stem = file_name.strip_prefix("janus.")?.strip_suffix(".jcfg")?;
    let (kind, name) = stem.split_once('.')?;
    // Janus module package names have exactly three parts; anything longer is
    // not a file Janus itself would load.
    if !MODULE_KINDS.contains(&kind) || name.is_empty() || name.contains('.') {
        return None;
    }
    Some(Role::Module(name.to_owned()))
}

/// Lifts the `general` group of a module file into the module's own table.
fn flatten_module(parsed: Table, path: &Path) -> Result<Table, JcfgError> {
    let mut module = Table::new();
    let mut rest = Vec::new();
    for (key, value) in parsed {
        match value {
            Value::Table(general) if key == "general" => module.extend(general),
            other => rest.push((key, other)),
        }
    }
    for (key, value) in rest {
        if module.contains_key(&key) {
            return Err(JcfgError::GeneralClash { path: path.to_path_buf(), key });
        }
        module.insert(key, value);
    }
    Ok(module)
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> JcfgError + '_ {
    move |source| JcfgError::Io { path: path.to_path_buf(), source }
}

fn file_prefix(path: Option<&Path>) -> String {
    path.map(|path| format!("{}: ", path.display())).unwrap_or_default()
}

impl JcfgError {
    fn syntax(pos: Pos, reason: impl Into<String>) -> Self {
        JcfgError::Syntax { path: None, line: pos.line, column: pos.column, reason: reason.into() }
    }

    fn in_file(self, file: &Path) -> Self {
        match self {
            JcfgError::Syntax { line, column, reason, .. } => {
                JcfgError::Syntax { path: Some(file.to_path_buf()), line, column, reason }
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `text`, failing the test with the error if it does not parse.
    fn jcfg(text: &str) -> Table {
        match parse(text) {
            Ok(table) => table,
            Err(error) => panic!("parse failed: {error}\n--- input ---\n{text}"),
        }
    }

    /// The expected value, written as TOML for readability.
    fn toml(text: &str) -> Table {
        match toml::from_str(text) {
            Ok(table) => table,
            Err(error) => panic!("bad expected TOML: {error}"),
        }
    }

    #[test]
    fn module_files_map_to_named_tables() {
        let dir = TempDir::new("mapping");
        dir.write("janus.jcfg", "general: { debug_level = 4 }\nnat: { nice_debug = false }\n");
        dir.write(
            "janus.transport.pfunix.jcfg",
            "general: { enabled = true }\nadmin: { admin_enabled = false }\nloose = 7\n",
        );
        dir.write("janus.eventhandler.myevh.jcfg", "general: { events = \"all\" }\n");
        dir.write("janus.logger.mylog.jcfg", "general: { }\n");
        dir.write("janus.plugin.echotest.cfg", "[general]\n");
        dir.write("janus.plugin.a.b.jcfg", "broken");
        dir.write("janus.other.thing.jcfg", "broken");
        dir.write("notes.txt", "broken");
        dir.subdir("janus.plugin.sub.jcfg");
        let loaded = load_folder(&dir.0);
        let expected = toml(
            "general = { debug_level = 4 }\nnat = { nice_debug = false }\n\
             myevh = { events = \"all\" }\nmylog = {}\n\
             [pfunix]\nenabled = true\nloose = 7\nadmin = { admin_enabled = false }",
        );
        let ignored = ["janus.other.thing.jcfg", "janus.plugin.a.b.jcfg", "janus.plugin.echotest.cfg", "notes.txt"]
            .map(|name| dir.0.join(name))
            .to_vec();
        assert_eq!(loaded.ok(), Some(Loaded { table: expected, ignored }));
    }

    #[test]
    fn folder_errors_name_the_files() {
        let dir = TempDir::new("errors");
        dir.write("janus.jcfg", "videoroom: { }\n");
        dir.write("janus.plugin.videoroom.jcfg", "general: { }\n");
        let message = load_folder(&dir.0).map(|_| ()).map_err(|e| e.to_string());
        let expected = format!(
            "top-level table `videoroom` comes from both {} and {}",
            dir.0.join("janus.jcfg").display(),
            dir.0.join("janus.plugin.videoroom.jcfg").display()
        );
        assert_eq!(message, Err(expected));

        let dir = TempDir::new("clash");
        dir.write("janus.plugin.x.jcfg", "general: { admin = 1 }\nadmin: { a = 2 }\n");
        assert!(matches!(
            load_folder(&dir.0),
            Err(JcfgError::GeneralClash { key, .. }) if key == "admin"
        ));

        let dir = TempDir::new("syntax");
        dir.write("janus.plugin.x.jcfg", "general: {\n  a = ?\n}\n");
        let message = load_folder(&dir.0).map(|_| ()).map_err(|e| e.to_string());
        let expected =
            format!("{}: line 2, column 7: unexpected character `?`", dir.0.join("janus.plugin.x.jcfg").display());
        assert_eq!(message, Err(expected));

        let missing = dir.0.join("missing");
        assert!(matches!(
            load_folder(&missing),
            Err(JcfgError::Io { path, .. }) if path == missing
        ));
    }

    #[test]
    fn fixture_folder() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jcfg");
        let loaded = match load_folder(&dir) {
            Ok(loaded) => loaded,
            Err(error) => panic!("{error}"),
        };
        let expected = toml(
            r#"
            [general]
            admin_secret = "fixture-secret"
            debug_level = 5
            protected_folders = ["/proc", "/sys"]

            [nat]
            stun_server = "stun.example.org"
            stun_port = 3478
            nice_debug = false

            [media]
            rtp_port_range = "20000-20100"

            [http]
            http = true
            port = 18088
            base_path = "/janus"

            [http.admin]
            admin_http = true
            admin_port = 17088

            [http.cors]
            allow_origin = "https://app.example.org"

            [videoroom]
            string_ids = false

            [videoroom.room-4242]
            description = "Fixture room"
            publishers = 3
            bitrate = 256000
            audiocodec = "opus,g722"
            record = false
            "#,
        );
        assert_eq!(loaded.table, expected);
        assert!(loaded.ignored.is_empty(), "{:?}", loaded.ignored);
        assert_round_trips(&loaded.table);
    }

    #[test]
    fn janus_sample_configuration() {
        let dir = Path::new("/etc/janus");
        if !dir.is_dir() {
            let required = std::env::var("PORTUNUS_REQUIRE_JANUS_SAMPLES").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "PORTUNUS_REQUIRE_JANUS_SAMPLES=1 but /etc/janus does not exist: \
                 install Debian's `janus` package to get its sample configuration"
            );
            eprintln!("note: /etc/janus not found; skipping the Janus sample configuration test");
            return;
        }
        let mut parsed_files = 0;
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|ext| ext == "jcfg") {
                let text = match fs::read_to_string(&path) {
                    Ok(text) => text,
                    Err(error) => panic!("cannot read {}: {error}", path.display()),
                };
                if let Err(error) = parse(&text) {
                    panic!("{}: {error}", path.display());
                }
                parsed_files += 1;
            }
        }
        assert!(parsed_files > 0, "no .jcfg file in /etc/janus");
        let loaded = match load_folder(dir) {
            Ok(loaded) => loaded,
            Err(error) => panic!("{error}"),
        };
        let get = |path: &str| {
            path.split('.').try_fold(Value::Table(loaded.table.clone()), |value, key| value.get(key).cloned())
        };
        let string = |text: &str| Some(Value::String(text.to_owned()));
        assert_eq!(get("general.admin_secret"), string("janusoverlord"));
        assert_eq!(get("http.port"), Some(Value::Integer(8088)));
        assert_eq!(get("http.admin.admin_port"), Some(Value::Integer(7088)));
        assert_eq!(get("websockets.ws_port"), Some(Value::Integer(8188)));
        assert_eq!(get("videoroom.room-1234.publishers"), Some(Value::Integer(6)));
        // Debian leaves this path unquoted (see the module docs).
        assert_eq!(get("mqtt.certfile"), string("/etc/ssl/certs/ssl-cert-snakeoil.pem"));
        assert_eq!(get("streaming.multistream-test.id"), Some(Value::Integer(123)));
        assert_eq!(get("streaming.multistream-test.media").as_ref().and_then(Value::as_array).map(Vec::len), Some(3));
        assert!(
            loaded.ignored.iter().all(|path| path.extension().is_none_or(|ext| ext != "jcfg")),
            "{:?}",
            loaded.ignored
        );
        assert_round_trips(&loaded.table);
    }

    #[test]
    fn toml_output_round_trips() {
        let parsed = jcfg(concat!(
            "general: { name = \"quote \\\" backslash \\\\ tab \\t newline \\n é\"; *odd* = 1 }\n",
            "empty: { }\n",
            "mixed = ( 1, \"two\", { three = 3 }, [4.5, -1e300], ( ), 1e999 )\n",
            "groups = ( { a = 1; inner = ( { b = [true, false] } ) }, { } )\n",
            "nested: { deeper: { deepest = -0x10 } }\n",
        ));
        assert_round_trips(&parsed);
        let text = to_toml_string(&parsed);
        assert!(text.contains("[nested.deeper]"), "{text}");
    }

    fn assert_round_trips(table: &Table) {
        let text = to_toml_string(table);
        match toml::from_str::<Table>(&text) {
            Ok(reparsed) => assert_eq!(&reparsed, table, "--- rendered ---\n{text}"),
            Err(error) => panic!("rendered TOML does not parse: {error}\n{text}"),
        }
    }

    /// A scratch folder under the system temp dir, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let path = std::env::temp_dir().join(format!("portunus-jcfg-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            if let Err(error) = fs::create_dir_all(&path) {
                panic!("cannot create {}: {error}", path.display());
            }
            TempDir(path)
        }

        fn write(&self, name: &str, text: &str) {
            if let Err(error) = fs::write(self.0.join(name), text) {
                panic!("cannot write {name}: {error}");
            }
        }

        fn subdir(&self, name: &str) {
            if let Err(error) = fs::create_dir_all(self.0.join(name)) {
                panic!("cannot create {name}: {error}");
            }
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}
