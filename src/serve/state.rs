//! What every handler shares: the config, the database, the route rules, metrics, the
//! session cache and the small in-memory tables of the login limiter and the play audit.
//! Plain data: nothing here handles a request.

use super::access::Rule;
use super::db::Db;
use super::identity::SessionCache;
use super::metrics::Metrics;
use crate::clock::Clock;
use crate::config::Config;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub struct AppState {
    pub cfg: Config,
    /// Sessions' idle and absolute expiry and the login lockout read this clock.
    pub clock: Arc<dyn Clock>,
    pub db: Db,
    pub rules: Vec<Rule>,
    pub metrics: Metrics,
    /// Login attempts per client address (the account lockout lives in the database).
    pub login_attempts: Mutex<HashMap<String, (Instant, u32)>>,
    /// Verified against when a login names no existing user, so timing reveals nothing.
    pub dummy_hash: String,
    /// (session hash, call) pairs whose `play` is already audited (the table `session_plays` is
    /// the durable record; this spares a write per range request).
    pub plays_seen: Mutex<std::collections::HashSet<(String, i64)>>,
    /// Calls whose metrics are being computed from their file right now: a second viewer of the
    /// same call does not start a second decode (see `api::compute_metrics`).
    pub metrics_running: Mutex<std::collections::HashSet<i64>>,
    pub sessions: SessionCache,
    /// `[server] trusted_proxies`, parsed once.
    pub trusted_proxies: Vec<crate::config::IpNet>,
    /// At the hub (`callrec hub`): the object store its calls' audio and peaks come from. None
    /// on a box, whose calls are its own files.
    pub hub: Option<Arc<crate::hub::remote::Remote>>,
}

pub type St = Arc<AppState>;
