//! Logging with `tracing`: Janus's 0..7 levels mapped onto tracing levels; level, timestamps and
//! colours changeable at runtime through the Admin API (`set_log_level`, `set_log_timestamps`,
//! `set_log_colors`).
//!
//! The media engine's crates (`rtc*`) log their internals freely, warnings included, on every
//! call (DTLS extensions they skip, packets before keys exist, ...): below Janus's debug levels
//! (5+) only their errors are shown, so an operator's log carries what concerns the server.

use std::fs::{File, OpenOptions};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};
use portunus_actors::state::LogControl;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{Layered, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, Layer, Registry};

/// Janus level to a tracing filter: 0 none, 1-2 errors, 3 warnings, 4 info, 5-6 debug, 7 trace.
pub fn level_filter(level: u8) -> LevelFilter {
    match level {
        0 => LevelFilter::OFF,
        1 | 2 => LevelFilter::ERROR,
        3 => LevelFilter::WARN,
        4 => LevelFilter::INFO,
        5 | 6 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    }
}

/// Target prefix of the media engine's crates (`rtc`, `rtc_dtls`, `rtc_ice`, ...).
const ENGINE: &str = "rtc";

/// What is logged at Janus level `level`: ours at its tracing level, the engine's errors only
/// below the debug levels.
pub fn log_filter(level: u8) -> Targets {
    let ours = level_filter(level);
    let engine = if level >= 5 { ours } else { ours.min(LevelFilter::ERROR) };
    Targets::new().with_default(ours).with_target(ENGINE, engine)
}

type Base = Layered<reload::Layer<Targets, Registry>, Registry>;
/// Where log lines go (stderr and/or a file), rebuilt whole when the style changes: the
/// formatter's timestamp setting is part of its type, so it cannot be flipped in place.
type Output = Box<dyn Layer<Base> + Send + Sync>;

/// Where to write, fixed at start.
struct Sinks {
    stderr: bool,
    file: Option<Arc<File>>,
}

/// How lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Style {
    /// A timestamp in front of every line.
    pub timestamps: bool,
    /// ANSI colours on stderr (never in the file).
    pub colors: bool,
}

impl Sinks {
    fn output(&self, style: Style) -> Output {
        fn finish<W>(layer: fmt::Layer<Base, fmt::format::DefaultFields, fmt::format::Format, W>, time: bool) -> Output
        where
            W: for<'w> fmt::MakeWriter<'w> + Send + Sync + 'static,
        {
            if time {
                layer.boxed()
            } else {
                layer.without_time().boxed()
            }
        }
        let stderr = self
            .stderr
            .then(|| finish(fmt::layer().with_ansi(style.colors).with_writer(std::io::stderr), style.timestamps));
        let file = self.file.clone().map(|f| finish(fmt::layer().with_ansi(false).with_writer(f), style.timestamps));
        Layer::and_then(stderr, file).boxed()
    }
}

/// The runtime handles on the level filter and the output.
pub struct Logging {
    level: reload::Handle<Targets, Registry>,
    output: reload::Handle<Output, Base>,
    sinks: Sinks,
    style: Mutex<Style>,
}

impl Logging {
    fn restyle(&self, change: impl FnOnce(&mut Style)) {
        let mut style = self.style.lock().unwrap_or_else(|p| p.into_inner());
        change(&mut style);
        if let Err(e) = self.output.reload(self.sinks.output(*style)) {
            tracing::warn!(error = %e, "could not change the log format");
        }
    }
}

impl LogControl for Logging {
    fn set_level(&self, level: u8) {
        if let Err(e) = self.level.modify(|f| *f = log_filter(level)) {
            tracing::warn!(error = %e, "could not change the log level");
        }
    }

    fn set_timestamps(&self, on: bool) {
        self.restyle(|s| s.timestamps = on);
    }

    fn set_colors(&self, on: bool) {
        self.restyle(|s| s.colors = on);
    }
}

/// Installs the global subscriber.
pub fn init(level: u8, to_stderr: bool, file: Option<&str>, style: Style) -> Result<Logging> {
    let (filter, level) = reload::Layer::new(log_filter(level));
    let file = match file {
        Some(path) => Some(Arc::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening log file {path}"))?,
        )),
        None => None,
    };
    let sinks = Sinks { stderr: to_stderr, file };
    let (output, output_handle) = reload::Layer::new(sinks.output(style));
    tracing_subscriber::registry().with(filter).with(output).try_init().ok();
    Ok(Logging { level, output: output_handle, sinks, style: Mutex::new(style) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn the_engine_is_heard_below_debug_levels_only_for_errors() {
        let info = log_filter(4);
        assert!(info.would_enable("portunus_actors::handle", &Level::INFO));
        assert!(info.would_enable("portunus_transports", &Level::WARN));
        // The engine's top crate, and two of its own crates.
        let core = format!("{ENGINE}::peer_connection");
        for engine in [core.as_str(), "rtc_dtls::config", "rtc_ice::agent"] {
            assert!(!info.would_enable(engine, &Level::WARN), "{engine}");
            assert!(info.would_enable(engine, &Level::ERROR), "{engine}");
        }
        let debug = log_filter(5);
        assert!(debug.would_enable("rtc_ice::agent", &Level::DEBUG));
        assert!(!debug.would_enable("rtc_ice::agent", &Level::TRACE));
        assert!(!log_filter(0).would_enable("rtc_ice::agent", &Level::ERROR));
        assert!(!log_filter(0).would_enable("portunus", &Level::ERROR));
    }
}
