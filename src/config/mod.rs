//! Configuration loading, layered: built-in defaults, a Janus configuration folder (`-F`), a
//! TOML file (`-c`), `PORTUNUS__SECTION__KEY` environment variables, then command-line flags.

pub mod jcfg;

use std::path::Path;

use anyhow::{Context as _, Result};
use config::{Config, Environment, File, FileFormat};
use portunus_actors::settings::CoreSettings;
use portunus_transports::{HttpSettings, WsSettings};
use serde::Deserialize;

use crate::cli::Cli;

const DEFAULTS: &str = include_str!("defaults.toml");

/// Everything the binary needs, deserialized from the merged layers.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// `[general]`
    pub general: portunus_actors::settings::General,
    /// `[certificates]`
    pub certificates: portunus_actors::settings::Certificates,
    /// `[media]`
    pub media: portunus_actors::settings::Media,
    /// `[nat]`
    pub nat: portunus_actors::settings::Nat,
    /// `[limits]`
    pub limits: portunus_actors::settings::Limits,
    /// `[events]`
    pub events: portunus_actors::settings::Events,
    /// `[http]`
    pub http: HttpSettings,
    /// `[websockets]`
    pub websockets: WsSettings,
    /// `[web]` (the demo pages)
    pub web: portunus_transports::WebSettings,
    /// `[rabbitmq]` (janus.transport.rabbitmq.jcfg)
    pub rabbitmq: portunus_transports::rabbitmq::RabbitSettings,
    /// `[mqtt]` (janus.transport.mqtt.jcfg)
    pub mqtt: portunus_transports::mqtt::MqttSettings,
    /// `[pfunix]` (janus.transport.pfunix.jcfg)
    pub pfunix: portunus_transports::unix::UnixSettings,
    /// `[sampleevh]` (janus.eventhandler.sampleevh.jcfg)
    pub sampleevh: portunus_transports::evh::webhook::WebhookSettings,
    /// `[wsevh]` (janus.eventhandler.wsevh.jcfg)
    pub wsevh: portunus_transports::evh::ws::WsEvhSettings,
    /// `[rabbitmqevh]` (janus.eventhandler.rabbitmqevh.jcfg)
    pub rabbitmqevh: portunus_transports::evh::rabbitmq::RabbitEvhSettings,
    /// `[mqttevh]` (janus.eventhandler.mqttevh.jcfg)
    pub mqttevh: portunus_transports::evh::mqtt::MqttEvhSettings,
}

impl Settings {
    /// The message-bus transports' and event handlers' part.
    pub fn brokers(&self) -> portunus_transports::BrokerSettings {
        portunus_transports::BrokerSettings {
            rabbitmq: self.rabbitmq.clone(),
            mqtt: self.mqtt.clone(),
            pfunix: self.pfunix.clone(),
            evh: portunus_transports::evh::EvhSettings {
                sampleevh: self.sampleevh.clone(),
                wsevh: self.wsevh.clone(),
                rabbitmqevh: self.rabbitmqevh.clone(),
                mqttevh: self.mqttevh.clone(),
            },
        }
    }

    /// The core's part.
    pub fn core(&self) -> CoreSettings {
        CoreSettings {
            general: self.general.clone(),
            certificates: self.certificates.clone(),
            media: self.media.clone(),
            nat: self.nat.clone(),
            limits: self.limits.clone(),
            events: self.events.clone(),
        }
    }
}

/// The merged configuration: typed settings plus the raw tree (plugins read their own sections).
pub struct Loaded {
    /// Typed settings.
    pub settings: Settings,
    /// The whole merged tree as JSON, for plugin sections.
    pub tree: serde_json::Map<String, serde_json::Value>,
}

/// Loads every layer.
pub fn load(cli: &Cli) -> Result<Loaded> {
    let mut b = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
    if let Some(dir) = &cli.configs_folder {
        let loaded =
            jcfg::load_folder(Path::new(dir)).with_context(|| format!("reading Janus configuration folder {dir}"))?;
        for f in &loaded.ignored {
            tracing::debug!(file = %f.display(), "ignored in configuration folder");
        }
        b = b.add_source(File::from_str(&jcfg::to_toml_string(&loaded.table), FileFormat::Toml));
    }
    if let Some(file) = &cli.config {
        b = b.add_source(File::new(file, FileFormat::Toml).required(true));
    }
    // Lists from the environment are comma-separated, for the keys named here only.
    b = b.add_source(
        Environment::with_prefix("PORTUNUS")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("general.protected_folders"),
    );
    for (key, value) in cli.overrides() {
        b = b.set_override(key, value)?;
    }
    let cfg = b.build().context("merging configuration")?;
    let settings: Settings = cfg.clone().try_deserialize().context("invalid configuration")?;
    let tree: serde_json::Map<String, serde_json::Value> =
        cfg.try_deserialize().context("invalid configuration tree")?;
    Ok(Loaded { settings, tree })
}
