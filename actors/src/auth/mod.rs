//! Authentication: the `AuthStore` actor owns the stored tokens; API secret, signed tokens and the
//! admin secret are immutable configuration checked without state.
//!
//! Rule (reference 1.2/5): when api_secret and/or token auth are on, a request passes with EITHER a
//! valid `apisecret` OR a valid `token`. `info` and `ping` never need either. Secrets are compared
//! in constant time.

mod signed;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use subtle::ConstantTimeEq;

pub use signed::{SignedTokens, CORE_REALM};

use crate::api::{ApiError, ErrorCode};

/// Which token mechanism is configured.
#[derive(Clone, Debug)]
pub enum TokenMode {
    /// No token auth.
    Off,
    /// Tokens managed through the Admin API.
    Stored,
    /// HMAC-signed tokens.
    Signed(SignedTokens),
}

/// Immutable auth configuration, shared by everyone that checks requests.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// `api_secret`.
    pub api_secret: Option<String>,
    /// Token mode.
    pub tokens: TokenMode,
    /// `admin_secret`.
    pub admin_secret: Option<String>,
}

impl AuthConfig {
    /// Whether Janus API requests need credentials at all.
    pub fn api_auth_needed(&self) -> bool {
        self.api_secret.is_some() || !matches!(self.tokens, TokenMode::Off)
    }

    /// Whether `given` is the API secret.
    pub fn api_secret_ok(&self, given: Option<&str>) -> bool {
        matches!((&self.api_secret, given), (Some(s), Some(g)) if secret_eq(s, g))
    }

    /// Whether `given` is the admin secret (or none is configured).
    pub fn admin_ok(&self, given: Option<&str>) -> bool {
        match &self.admin_secret {
            None => true,
            Some(s) => given.is_some_and(|g| secret_eq(s, g)),
        }
    }
}

/// Constant-time string equality.
pub fn secret_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Seconds since the UNIX epoch.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Owns the stored tokens and answers access checks.
pub struct AuthStore {
    config: AuthConfig,
    /// token -> allowed plugin packages.
    tokens: BTreeMap<String, BTreeSet<String>>,
    /// Every plugin package, for `add_token` without a list.
    all_plugins: Vec<String>,
}

impl AuthStore {
    /// A store with no tokens.
    pub fn new(config: AuthConfig, all_plugins: Vec<String>) -> Self {
        AuthStore { config, tokens: BTreeMap::new(), all_plugins }
    }

    fn token_ok(&self, token: Option<&str>) -> bool {
        let Some(token) = token else { return false };
        match &self.config.tokens {
            TokenMode::Off => false,
            TokenMode::Stored => self.tokens.contains_key(token),
            TokenMode::Signed(s) => s.is_valid(token, CORE_REALM, unix_now()),
        }
    }

    fn stored(&mut self) -> Result<&mut BTreeMap<String, BTreeSet<String>>, ApiError> {
        match self.config.tokens {
            TokenMode::Stored => Ok(&mut self.tokens),
            _ => Err(ApiError::unknown("Stored-Token based authentication disabled")),
        }
    }

    fn check_plugins(&self, plugins: &[String]) -> Result<(), ApiError> {
        if plugins.iter().all(|p| self.all_plugins.contains(p)) {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::InvalidElementType,
                "Invalid element type (some of the provided plugins are invalid)",
            ))
        }
    }
}

impl Actor for AuthStore {
    type Context = Context<Self>;
}

/// Is a Janus API request (not info/ping) authorized?
#[derive(Message)]
#[rtype(result = "bool")]
pub struct CheckApiAccess {
    /// `apisecret` field.
    pub apisecret: Option<String>,
    /// `token` field.
    pub token: Option<String>,
}

impl Handler<CheckApiAccess> for AuthStore {
    type Result = bool;
    fn handle(&mut self, msg: CheckApiAccess, _: &mut Context<Self>) -> bool {
        !self.config.api_auth_needed()
            || self.config.api_secret_ok(msg.apisecret.as_deref())
            || self.token_ok(msg.token.as_deref())
    }
}

/// May this token attach to this plugin? (Only asked when a token was given.)
#[derive(Message)]
#[rtype(result = "bool")]
pub struct CheckPluginAccess {
    /// The token.
    pub token: String,
    /// Plugin package.
    pub plugin: String,
}

impl Handler<CheckPluginAccess> for AuthStore {
    type Result = bool;
    fn handle(&mut self, msg: CheckPluginAccess, _: &mut Context<Self>) -> bool {
        match &self.config.tokens {
            TokenMode::Off => true,
            TokenMode::Stored => self.tokens.get(&msg.token).is_some_and(|p| p.contains(&msg.plugin)),
            TokenMode::Signed(s) => s.contains(&msg.token, CORE_REALM, &msg.plugin, unix_now()),
        }
    }
}

/// Admin `add_token`: returns the plugins the token may access.
#[derive(Message)]
#[rtype(result = "Result<Vec<String>, ApiError>")]
pub struct AddToken {
    /// The token.
    pub token: String,
    /// Allowed plugins (all when `None`).
    pub plugins: Option<Vec<String>>,
}

impl Handler<AddToken> for AuthStore {
    type Result = Result<Vec<String>, ApiError>;
    fn handle(&mut self, msg: AddToken, _: &mut Context<Self>) -> Self::Result {
        let plugins = match msg.plugins {
            Some(p) => {
                self.check_plugins(&p)?;
                p
            }
            None => self.all_plugins.clone(),
        };
        let set: BTreeSet<String> = plugins.into_iter().collect();
        let list = set.iter().cloned().collect();
        self.stored()?.insert(msg.token, set);
        Ok(list)
    }
}

/// Admin `allow_token` (allow = true) or `disallow_token`: returns the plugins allowed now.
#[derive(Message)]
#[rtype(result = "Result<Vec<String>, ApiError>")]
pub struct ChangeTokenPlugins {
    /// The token.
    pub token: String,
    /// Plugins to allow or disallow.
    pub plugins: Vec<String>,
    /// Allow or disallow.
    pub allow: bool,
}

impl Handler<ChangeTokenPlugins> for AuthStore {
    type Result = Result<Vec<String>, ApiError>;
    fn handle(&mut self, msg: ChangeTokenPlugins, _: &mut Context<Self>) -> Self::Result {
        self.stored()?;
        self.check_plugins(&msg.plugins)?;
        let tokens = self.stored()?;
        let Some(set) = tokens.get_mut(&msg.token) else {
            return Err(ApiError::new(ErrorCode::TokenNotFound, format!("Token {} not found", msg.token)));
        };
        for p in msg.plugins {
            if msg.allow {
                set.insert(p);
            } else {
                set.remove(&p);
            }
        }
        Ok(set.iter().cloned().collect())
    }
}

/// Admin `list_tokens`.
#[derive(Message)]
#[rtype(result = "Result<Vec<(String, Vec<String>)>, ApiError>")]
pub struct ListTokens;

impl Handler<ListTokens> for AuthStore {
    type Result = Result<Vec<(String, Vec<String>)>, ApiError>;
    fn handle(&mut self, _: ListTokens, _: &mut Context<Self>) -> Self::Result {
        Ok(self.stored()?.iter().map(|(t, p)| (t.clone(), p.iter().cloned().collect())).collect())
    }
}

/// Admin `remove_token`.
#[derive(Message)]
#[rtype(result = "Result<(), ApiError>")]
pub struct RemoveToken(pub String);

impl Handler<RemoveToken> for AuthStore {
    type Result = Result<(), ApiError>;
    fn handle(&mut self, msg: RemoveToken, _: &mut Context<Self>) -> Self::Result {
        match self.stored()?.remove(&msg.0) {
            Some(_) => Ok(()),
            None => Err(ApiError::unknown("Error removing token")),
        }
    }
}
