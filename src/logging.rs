//! Logging with `tracing`: Janus's 0..7 levels mapped onto tracing levels, changeable at runtime
//! through the Admin API (`set_log_level`).

use std::fs::OpenOptions;
use std::sync::Mutex;

use anyhow::{Context as _, Result};
use portunus_actors::state::LogControl;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
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

/// The runtime handle on the level filter.
pub struct Logging {
    level: reload::Handle<LevelFilter, Registry>,
}

impl LogControl for Logging {
    fn set_level(&self, level: u8) {
        if let Err(e) = self.level.modify(|f| *f = level_filter(level)) {
            tracing::warn!(error = %e, "could not change the log level");
        }
    }
}

/// Installs the global subscriber.
pub fn init(level: u8, to_stdout: bool, file: Option<&str>, colors: bool) -> Result<Logging> {
    let (filter, handle) = reload::Layer::new(level_filter(level));
    let stdout = to_stdout.then(|| fmt::layer().with_ansi(colors).with_writer(std::io::stderr).boxed());
    let file_layer = match file {
        Some(path) => {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening log file {path}"))?;
            Some(fmt::layer().with_ansi(false).with_writer(Mutex::new(f)).boxed())
        }
        None => None,
    };
    tracing_subscriber::registry().with(filter).with(stdout).with(file_layer).try_init().ok();
    Ok(Logging { level: handle })
}
