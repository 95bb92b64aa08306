//! `GET /api/figures?agent=&team=&from=&to=`: the operator's figures (store::figures) of one
//! agent or one team over `[from, to)`, within the caller's scope.
//!
//! Scope is decided here, on the server, from the caller's identity, never from the query: an
//! agent gets only their own figures (no parameter needed), a lead with team scope their team's
//! or one of its members', admins and auditors anyone's; API tokens (the CTI) read no figures.
//! A subject out of scope is a 403 that says why (figures name no call, so there is nothing to
//! hide by a 404). This module never computes a figure itself.

use super::error::AppError;
use super::identity::Identity;
use super::state::St;
use crate::store::figures::{self, Figures, Subject};
use crate::store::search::Scope;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use std::collections::HashMap;

fn forbidden(why: &str) -> AppError {
    AppError::api(StatusCode::FORBIDDEN, why)
}

/// Whether a caller with call scope `scope` may see the figures of `subject` (403 otherwise):
/// agents their own, a lead with team scope their team's or a member's, everyone else all.
pub(super) fn may_see(
    c: &rusqlite::Connection,
    scope: &Scope,
    subject: &Subject,
) -> Result<(), AppError> {
    match (&scope, &subject) {
        (Scope::All, _) => {}
        (Scope::Agent(me), Subject::Agent(a)) if a == me => {}
        (Scope::Agent(_), _) => {
            return Err(forbidden("agents see their own figures only"));
        }
        (Scope::Team(t), Subject::Team(x)) if x == t => {}
        (Scope::Team(t), Subject::Agent(a)) => {
            if !figures::team_members(c, t)?.contains(a) {
                return Err(forbidden(&format!("agent {a} is not in your team {t}")));
            }
        }
        (Scope::Team(t), _) => {
            return Err(forbidden(&format!("you see the figures of team {t} only")));
        }
    }
    Ok(())
}

/// The period: `from` defaults to 30 days ago, `to` to tomorrow (as the reports).
pub(super) fn period(q: &HashMap<String, String>) -> Result<(String, String), AppError> {
    let bound = |k: &str, days_ago: i64| -> Result<String, AppError> {
        match q.get(k).filter(|v| !v.is_empty()) {
            Some(v) => crate::clock::parse_bound(v).ok_or_else(|| {
                AppError::bad_request(&format!("{k} must be a date or RFC 3339 time"))
            }),
            None => Ok(crate::clock::format_utc(
                chrono::Utc::now() - chrono::Duration::days(days_ago),
            )),
        }
    };
    let (from, to) = (bound("from", 30)?, bound("to", -1)?);
    if from >= to {
        return Err(AppError::bad_request("from must be before to"));
    }
    Ok((from, to))
}

/// `GET /api/figures`.
pub async fn get_figures(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Figures>, AppError> {
    if let Some(k) = q
        .keys()
        .find(|k| !["agent", "team", "from", "to"].contains(&k.as_str()))
    {
        return Err(AppError::bad_request(&format!(
            "unknown parameter {k:?}; use agent or team, from, to"
        )));
    }
    let (from, to) = period(&q)?;
    let scope = id
        .scope(st.cfg.server.reviewer_scope)
        .ok_or_else(|| forbidden("API tokens cannot read figures"))?;
    let named = |k: &str| q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let subject = match (named("agent"), named("team")) {
        (Some(_), Some(_)) => return Err(AppError::bad_request("give agent or team, not both")),
        (Some(a), None) => Subject::Agent(a.to_owned()),
        (None, Some(t)) => Subject::Team(t.to_owned()),
        // An agent asking without a subject means themselves.
        (None, None) => match &scope {
            Scope::Agent(a) => Subject::Agent(a.clone()),
            _ => {
                return Err(AppError::bad_request(
                    "give agent=<agent id> or team=<team>",
                ))
            }
        },
    };
    st.db
        .read(move |c| {
            may_see(c, &scope, &subject)?;
            let now = crate::clock::utc_now();
            Ok(Json(figures::compute(c, &subject, &from, &to, &now)?))
        })
        .await
}
