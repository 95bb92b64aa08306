//! Targets on the web: `PUT /api/targets` sets a goal for a figure of a team or a campaign;
//! `GET /api/targets?team=|campaign=&at=` compares every goal with the actual figures of the
//! period holding `at` and the four before it. The rules and the arithmetic are
//! `store::targets`; this decides who may set or read which targets, on the server: a lead
//! with team scope their own team's only, campaign targets only someone who sees every call.

use super::api::json_body;
use super::error::AppError;
use super::identity::Identity;
use super::state::St;
use crate::store::search::Scope as CallScope;
use crate::store::targets::{self, Direction, Period, Report, Scope, Target, TargetError};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetTarget {
    team: Option<String>,
    campaign: Option<String>,
    figure: String,
    period: Period,
    goal: f64,
    direction: Direction,
    #[serde(default)]
    tolerance: f64,
}

fn refused(e: TargetError) -> AppError {
    match e {
        TargetError::Store(e) => e.into(),
        other => AppError::bad_request(&other.to_string()),
    }
}

fn scope_of(team: Option<String>, campaign: Option<String>) -> Result<Scope, AppError> {
    match (team, campaign) {
        (Some(t), None) if !t.trim().is_empty() => Ok(Scope::Team(t)),
        (None, Some(c)) if !c.trim().is_empty() => Ok(Scope::Campaign(c)),
        _ => Err(AppError::bad_request("give team or campaign (one of them)")),
    }
}

/// Whether the caller may set or read the targets of `scope`.
fn may(st: &St, id: &Identity, scope: &Scope) -> Result<(), AppError> {
    let forbidden = |why: &str| AppError::api(StatusCode::FORBIDDEN, why);
    match (id.scope(st.cfg.server.reviewer_scope), scope) {
        (Some(CallScope::All), _) => Ok(()),
        (Some(CallScope::Team(mine)), Scope::Team(t)) if *t == mine => Ok(()),
        (Some(CallScope::Team(mine)), Scope::Team(_)) => Err(forbidden(&format!(
            "you set and see the targets of team {mine} only"
        ))),
        (Some(_), Scope::Campaign(_)) => Err(forbidden(
            "campaign targets are for leads who see every call",
        )),
        _ => Err(forbidden("not for you")),
    }
}

/// `PUT /api/targets`.
pub async fn put_target(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    body: Bytes,
) -> Result<Json<Target>, AppError> {
    let b: SetTarget = json_body(&body)?;
    let t = Target {
        scope: scope_of(b.team, b.campaign)?,
        figure: b.figure,
        period: b.period,
        goal: b.goal,
        direction: b.direction,
        tolerance: b.tolerance,
    };
    may(&st, &id, &t.scope)?;
    st.db
        .write(move |c| {
            targets::set(c, &t, id.who()).map_err(refused)?;
            Ok(Json(t))
        })
        .await
}

/// `GET /api/targets?team=|campaign=&at=`.
pub async fn get_targets(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Vec<Report>>, AppError> {
    if let Some(k) = q
        .keys()
        .find(|k| !["team", "campaign", "at"].contains(&k.as_str()))
    {
        return Err(AppError::bad_request(&format!(
            "unknown parameter {k:?}; use team or campaign, at"
        )));
    }
    let scope = scope_of(q.get("team").cloned(), q.get("campaign").cloned())?;
    may(&st, &id, &scope)?;
    let now = crate::clock::utc_now();
    let at = match q.get("at").filter(|v| !v.is_empty()) {
        Some(v) => crate::clock::parse_bound(v)
            .ok_or_else(|| AppError::bad_request("at must be a date or RFC 3339 time"))?,
        None => now.clone(),
    };
    st.db
        .read(move |c| {
            Ok(Json(
                targets::report(c, &scope, &at, &now).map_err(refused)?,
            ))
        })
        .await
}
