//! The gateway: the root of the actor tree and the [`Core`] handle transports call.
//!
//! [`Gateway::start`] starts the service actors (session registry, auth store, plugin registry,
//! transaction router, event bus) and the worker arbiters sessions live on, and returns a [`Core`].
//! `Core::handle` runs the Janus API validation order of reference 1.2 and dispatches; the admin
//! API lives in [`crate::admin`].

mod dispatch;
pub mod info;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use actix::prelude::*;
use serde_json::Value;

pub use dispatch::PollResult;
pub use info::TransportDescriptor;

use crate::auth::{AuthConfig, AuthStore, TokenMode};
use crate::events::{EventBus, EventPublisher, EventType};
use crate::plugin::boundary::guard;
use crate::plugin::{PluginDescriptor, PluginEnv, PluginRegistry, SharedPlugin};
use crate::router::TransactionRouter;
use crate::session::{SessionDirectory, SessionRegistry};
use crate::settings::CoreSettings;
use crate::state::{LogControl, ServerState};

/// What the core needs to start.
pub struct GatewayConfig {
    /// Core settings.
    pub settings: CoreSettings,
    /// Plugins with their configuration sections.
    pub plugins: Vec<(SharedPlugin, PluginEnv)>,
    /// Transports that will run (for `server_info`).
    pub transports: Vec<TransportDescriptor>,
    /// Logging hooks.
    pub log: Arc<dyn LogControl>,
}

/// The root supervisor actor: holds the service actors and coordinates shutdown.
pub struct Gateway {
    core: Core,
    _workers: Vec<Arbiter>,
}

impl Actor for Gateway {
    type Context = Context<Self>;
}

/// Graceful shutdown: destroy every session (owners are told), then stop plugins.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Shutdown {
    /// Signal number, for the core event.
    pub signum: i32,
}

impl Handler<Shutdown> for Gateway {
    type Result = ResponseFuture<usize>;
    fn handle(&mut self, msg: Shutdown, _: &mut Context<Self>) -> Self::Result {
        let core = self.core.clone();
        Box::pin(async move {
            core.inner.state.events.publish(
                EventType::Core,
                Some(2),
                None,
                None,
                None,
                serde_json::json!({"status": "shutdown", "signum": msg.signum}),
            );
            core.inner.state.runtime.accepting.store(false, Ordering::Relaxed);
            let n = core.inner.directory.destroy_all();
            for p in &core.inner.plugin_list {
                if let Err(panic) = guard(|| p.destroy()) {
                    tracing::error!(plugin = p.descriptor().package, panic = %panic.0, "plugin panicked in destroy");
                }
            }
            n
        })
    }
}

impl Gateway {
    /// Starts the core inside the running actix system. Plugins that fail `init` are left out
    /// (logged), like Janus does.
    pub fn start(cfg: GatewayConfig) -> (Addr<Gateway>, Core) {
        let g = &cfg.settings.general;
        let bus = cfg.settings.events.broadcast.then(|| EventBus::default().start());
        let events = EventPublisher::new(bus, &g.server_name);
        let tokens = match (g.token_auth, &g.token_auth_secret) {
            (false, _) => TokenMode::Off,
            (true, None) => TokenMode::Stored,
            (true, Some(secret)) => TokenMode::Signed(crate::auth::SignedTokens::new(secret)),
        };
        let auth_config = AuthConfig { api_secret: g.api_secret.clone(), tokens, admin_secret: g.admin_secret.clone() };
        let mut state = ServerState::new(cfg.settings.clone(), events, cfg.log);
        state.media = start_media(&cfg.settings);
        let router = TransactionRouter::new(state.requests.clone()).start();
        let state = Arc::new(state);

        let mut plugin_list = Vec::new();
        for (plugin, mut env) in cfg.plugins {
            env.events_enabled = state.events.enabled();
            match guard(|| plugin.init(&env)) {
                Ok(Ok(())) => plugin_list.push(plugin),
                Ok(Err(e)) => {
                    tracing::error!(plugin = plugin.descriptor().package, error = %e, "plugin failed to initialize")
                }
                Err(p) => {
                    tracing::error!(plugin = plugin.descriptor().package, panic = %p.0, "plugin panicked in init")
                }
            }
        }
        let plugin_descriptors: Vec<PluginDescriptor> = plugin_list.iter().map(|p| p.descriptor().clone()).collect();
        let packages = plugin_descriptors.iter().map(|d| d.package.to_owned()).collect();

        // By default (0) sessions live on the arbiter of the transport worker whose `create` made
        // them, so their requests and events rarely cross threads; transports already spread
        // connections over one worker per CPU. Dedicated session threads are opt-in.
        let workers: Vec<Arbiter> = (0..state.settings.limits.session_workers).map(|_| Arbiter::new()).collect();
        let directory = Arc::new(SessionDirectory::new(
            state.clone(),
            workers.iter().map(|a| a.handle()).collect(),
            Arbiter::current(),
        ));
        let registry = SessionRegistry::new(directory.clone()).start();
        let auth = AuthStore::new(auth_config.clone(), packages).start();
        let plugins = PluginRegistry::new(plugin_list.clone()).start();

        let core = Core {
            inner: Arc::new(CoreInner {
                state,
                _registry: registry,
                directory,
                auth,
                auth_config,
                plugins,
                _router: router,
                transports: cfg.transports,
                plugin_descriptors,
                plugin_map: plugin_list.iter().map(|p| (p.descriptor().package, p.clone())).collect(),
                plugin_list,
                transport_controls: Default::default(),
            }),
        };
        let info = core.server_info_fields();
        core.inner.state.events.publish(
            EventType::Core,
            Some(1),
            None,
            None,
            None,
            serde_json::json!({"status": "started", "info": info}),
        );
        let gateway = Gateway { core: core.clone(), _workers: workers }.start();
        (gateway, core)
    }
}

/// Starts the media engine; without one the control plane still runs and media requests fail.
fn start_media(settings: &CoreSettings) -> Option<crate::media::MediaEngine> {
    let ice = crate::media::network::ice_settings(settings);
    let c = &settings.certificates;
    let pem = match (&c.cert_pem, &c.cert_key) {
        (Some(cert), Some(key)) => match (std::fs::read_to_string(cert), std::fs::read_to_string(key)) {
            (Ok(a), Ok(b)) => Some(format!("{a}\n{b}")),
            _ => {
                tracing::error!(cert = %cert, key = %key, "cannot read the DTLS certificate; generating one");
                None
            }
        },
        (Some(cert), None) => std::fs::read_to_string(cert).ok(),
        _ => None,
    };
    tracing::info!(ips = ?ice.ips, port_range = ?ice.port_range, "media engine");
    let cert = pem.as_deref().map(|pem| crate::media::PemCertificate { pem, password: c.cert_pwd.as_deref() });
    match crate::media::MediaEngine::start(ice, cert) {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::error!(error = %e, "media engine failed to start; WebRTC is unavailable");
            None
        }
    }
}

/// The handle transports use to talk to the core. Cheap to clone.
#[derive(Clone)]
pub struct Core {
    pub(crate) inner: Arc<CoreInner>,
}

pub(crate) struct CoreInner {
    pub(crate) state: Arc<ServerState>,
    /// Kept so the registry keeps sweeping; requests use the directory directly.
    pub(crate) _registry: Addr<SessionRegistry>,
    /// Every session: created, resolved and destroyed on the request's own thread.
    pub(crate) directory: Arc<SessionDirectory>,
    pub(crate) auth: Addr<AuthStore>,
    pub(crate) auth_config: AuthConfig,
    pub(crate) plugins: Addr<PluginRegistry>,
    /// Kept so the router keeps sweeping; handles write to its table directly.
    pub(crate) _router: Addr<TransactionRouter>,
    pub(crate) transports: Vec<TransportDescriptor>,
    pub(crate) plugin_descriptors: Vec<PluginDescriptor>,
    pub(crate) plugin_list: Vec<SharedPlugin>,
    /// Plugins by package: immutable after start, so `attach` needs no actor round trip.
    pub(crate) plugin_map: std::collections::HashMap<&'static str, SharedPlugin>,
    /// What Admin `query_transport` reaches, by transport package (registered as transports start).
    pub(crate) transport_controls:
        std::sync::RwLock<std::collections::HashMap<&'static str, Arc<dyn crate::transport::TransportControl>>>,
}

impl Core {
    /// Every plugin's `/metrics` gauges: (package, name, value).
    pub fn plugin_gauges(&self) -> Vec<(&'static str, &'static str, u64)> {
        let mut out = Vec::new();
        for p in &self.inner.plugin_list {
            let package = p.descriptor().package;
            if let Ok(gauges) = crate::plugin::boundary::guard(|| p.gauges()) {
                out.extend(gauges.into_iter().map(|(name, v)| (package, name, v)));
            }
        }
        out
    }

    /// Shared server state (settings, runtime values, counters).
    pub fn state(&self) -> &Arc<ServerState> {
        &self.inner.state
    }

    /// Makes a transport reachable through Admin `query_transport`.
    pub fn register_transport_control(
        &self,
        package: &'static str,
        control: Arc<dyn crate::transport::TransportControl>,
    ) {
        let mut controls = self.inner.transport_controls.write().unwrap_or_else(|e| e.into_inner());
        controls.insert(package, control);
    }

    pub(crate) fn transport_control(&self, package: &str) -> Option<Arc<dyn crate::transport::TransportControl>> {
        let controls = self.inner.transport_controls.read().unwrap_or_else(|e| e.into_inner());
        controls.get(package).cloned()
    }

    /// Whether event handlers listen (Janus's `events_is_enabled`).
    pub fn events_enabled(&self) -> bool {
        self.inner.state.events.enabled()
    }

    /// A transport event (type 128) about one instance of `package` (a connection, a request).
    pub fn publish_transport_event(&self, package: &'static str, instance: crate::api::ConnectionId, data: Value) {
        let event = serde_json::json!({"transport": package, "id": instance.0.to_string(), "data": data});
        self.inner.state.events.publish(EventType::Transport, None, None, None, None, event);
    }

    /// `server_info` fields.
    pub fn server_info_fields(&self) -> serde_json::Map<String, serde_json::Value> {
        info::server_info(&self.inner.state, &self.inner.transports, &self.inner.plugin_descriptors)
    }
}
