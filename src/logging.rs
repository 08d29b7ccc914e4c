//! Logging with `tracing`: Janus's 0..7 levels mapped onto tracing levels; level, timestamps and
//! colours changeable at runtime through the Admin API (`set_log_level`, `set_log_timestamps`,
//! `set_log_colors`).

use std::fs::{File, OpenOptions};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};
use portunus_actors::state::LogControl;
use tracing_subscriber::filter::LevelFilter;
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

type Base = Layered<reload::Layer<LevelFilter, Registry>, Registry>;
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
    level: reload::Handle<LevelFilter, Registry>,
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
        if let Err(e) = self.level.modify(|f| *f = level_filter(level)) {
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
    let (filter, level) = reload::Layer::new(level_filter(level));
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
