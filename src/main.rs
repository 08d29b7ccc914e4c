//! `portunus`: the server binary. Parses the command line, loads the layered configuration,
//! starts the core, the plugins and the transports, prints one ready line, and shuts down
//! gracefully on SIGINT/SIGTERM.

mod cli;
mod config;
mod logging;

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use clap::Parser;
use portunus_actors::gateway::{GatewayConfig, Shutdown};
use portunus_actors::plugin::PluginEnv;
use portunus_actors::Gateway;

use crate::cli::{Cli, Command};

fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Jcfg2toml { dir }) = &cli.command {
        let loaded = config::jcfg::load_folder(std::path::Path::new(dir)).with_context(|| format!("reading {dir}"))?;
        print!("{}", config::jcfg::to_toml_string(&loaded.table));
        for f in loaded.ignored {
            eprintln!("# ignored: {}", f.display());
        }
        return Ok(());
    }
    let loaded = config::load(&cli)?;
    let g = &loaded.settings.general;
    let style = logging::Style { timestamps: g.debug_timestamps, colors: g.debug_colors };
    let logging = logging::init(g.debug_level, g.log_to_stdout, g.log_to_file.as_deref(), style)?;
    let system = actix_rt::System::new();
    if let Err(e) = system.block_on(run(loaded, Arc::new(logging))) {
        // Dropping the runtime now would stop actors that never got to start (a listener failed
        // first) outside of it, which panics: report and leave.
        eprintln!("Error: {e:?}");
        std::process::exit(1);
    }
    Ok(())
}

async fn run(loaded: config::Loaded, logging: Arc<logging::Logging>) -> Result<()> {
    let s = &loaded.settings;
    let plugins = portunus_plugins::builtin()
        .into_iter()
        .map(|(section, plugin)| {
            let config = match loaded.tree.get(section) {
                Some(serde_json::Value::Object(m)) => m.clone(),
                _ => serde_json::Map::new(),
            };
            (plugin, PluginEnv { config, events_enabled: false })
        })
        .collect();
    let (gateway, core) = Gateway::start(GatewayConfig {
        settings: s.core(),
        plugins,
        transports: [
            portunus_transports::descriptors(&s.http, &s.websockets),
            portunus_transports::brokers::descriptors(&s.brokers()),
        ]
        .concat(),
        log: logging,
    });
    let obs = portunus_transports::metrics::Observability::new(core.clone());
    let brokers = portunus_transports::start_brokers(&core, &s.brokers(), &obs)?;
    let mut listeners =
        portunus_transports::bind_all(&core, &s.http, &s.websockets, s.limits.connection_queue, Some(obs.clone()))?;
    listeners.extend(portunus_transports::bind_web(&s.web));
    obs.set_listeners_up();
    let mut ready: BTreeMap<&str, String> = listeners.iter().map(|l| (l.name, l.addr.to_string())).collect();
    ready.extend(brokers.ready.iter().map(|(name, addr)| (*name, addr.clone())));
    // One machine-readable line for tests and scripts.
    println!("PORTUNUS_READY {}", serde_json::to_string(&ready)?);
    for l in &listeners {
        tracing::info!(listener = l.name, addr = %l.addr, "listening");
    }
    let handles: Vec<_> = listeners.iter().map(|l| l.handle()).collect();
    for l in listeners {
        actix_rt::spawn(l.server);
    }

    let signum = wait_for_signal().await;
    tracing::info!(signum, "shutting down");
    let ended = gateway.send(Shutdown { signum }).await.unwrap_or(0);
    tracing::info!(sessions = ended, "sessions closed");
    for h in handles {
        h.stop(true).await;
    }
    Ok(())
}

/// Waits for SIGINT or SIGTERM; returns the signal number.
async fn wait_for_signal() -> i32 {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        // Without signal handlers the server runs until killed.
        std::future::pending::<()>().await;
        return 0;
    };
    tokio::select! {
        _ = int.recv() => 2,
        _ = term.recv() => 15,
    }
}
