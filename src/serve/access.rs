//! Who may call which route: the access levels, the rule each route carries, and the one
//! function that decides. Pure policy over an [`Identity`]: no I/O, no requests, no HTML.
//!
//! `routes.rs` gives every route a rule (no route without one); `guard.rs` enforces it.

use super::identity::{Caller, Identity};
use crate::store::users::Role;
use axum::http::Method;

/// Who may call a route.
#[derive(Debug, Clone, PartialEq)]
pub enum Access {
    /// Anyone: login, health, static assets.
    Public,
    /// Any logged-in user, even one who still has to change a one-time password.
    Session,
    /// Logged-in users with one of these roles.
    Roles(&'static [Role]),
    /// API tokens (CTI integrations), and admin/supervisor sessions.
    Control,
    /// Loopback without login (the local Prometheus), or admin/supervisor/auditor sessions.
    Metrics,
}

pub const EVERYONE: &[Role] = &Role::ALL;
pub const REVIEWERS: &[Role] = &[Role::Admin, Role::Supervisor, Role::Qa];
pub const AUDITORS: &[Role] = &[Role::Admin, Role::Auditor];
pub const SUPERVISORS: &[Role] = &[Role::Admin, Role::Supervisor];
pub const ADMINS: &[Role] = &[Role::Admin];
pub const AGENTS: &[Role] = &[Role::Agent];
/// Who may download a call's evidence bundle from the browser: leads (supervisors), auditors and
/// admins; not QA reviewers or agents (issue 13, item 3).
pub const EXPORTERS: &[Role] = &[Role::Admin, Role::Supervisor, Role::Auditor];
/// Who reads the completeness report (calls announced vs recorded, one-sided calls, gaps): the
/// leads who run the floor, and auditors who must show that recording is complete; not QA
/// reviewers or agents (issue 16 item 4).
pub const COMPLETENESS_READERS: &[Role] = &[Role::Admin, Role::Supervisor, Role::Auditor];
/// Who sets a call's outcome: the agent who made it and the leads over it (scope decides which
/// calls); not QA reviewers or auditors, who judge calls rather than record their result.
pub const OUTCOME_SETTERS: &[Role] = &[Role::Admin, Role::Supervisor, Role::Agent];
/// Who may appeal a complaint's ruling (the store then admits only the agent concerned and
/// whoever filed it): every role but the auditor, who reads.
pub const APPELLANTS: &[Role] = &[Role::Admin, Role::Supervisor, Role::Qa, Role::Agent];

#[derive(Debug, Clone)]
pub struct Rule {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    /// The CSRF token may come in the query string (only for `navigator.sendBeacon`).
    pub csrf_in_query: bool,
    /// A GET that writes an audit row (search, download, play, audit view): refused when the
    /// browser says another site started it, so a link or redirect elsewhere cannot write rows
    /// in a logged-in user's name ([`cross_site`]).
    pub audited_get: bool,
}

/// Whether a request's `Sec-Fetch-Site` says another site started it. Browsers have sent the
/// header since 2020-2023 (Chrome 76, Firefox 90, Safari 16.4) and scripts cannot forge it;
/// `same-origin`, `same-site` (a sibling host of this one), `none` (typed, bookmarked, opened
/// from a mail program) and its absence (curl, scripts, older browsers, whose SameSite=Lax cookie
/// still stays off cross-site images and fetches) pass.
pub fn cross_site(sec_fetch_site: Option<&str>) -> bool {
    sec_fetch_site.is_some_and(|v| v.trim().eq_ignore_ascii_case("cross-site"))
}

/// Whether `id` may use a route with this rule's access (`loopback`: the request came from
/// this machine).
pub fn allowed(access: &Access, id: &Identity, loopback: bool) -> bool {
    match (access, &id.caller) {
        (Access::Public, _) => true,
        (Access::Session, Caller::User { .. }) => true,
        (Access::Roles(roles), Caller::User { user, .. }) => roles.contains(&user.role),
        (Access::Control, Caller::Token(_)) => true,
        (Access::Control, Caller::User { user, .. }) => {
            matches!(user.role, Role::Admin | Role::Supervisor)
        }
        // The local Prometheus scrapes without an account; from elsewhere a session is needed.
        (Access::Metrics, _) if loopback => true,
        (Access::Metrics, Caller::User { user, .. }) => {
            matches!(user.role, Role::Admin | Role::Supervisor | Role::Auditor)
        }
        _ => false,
    }
}
