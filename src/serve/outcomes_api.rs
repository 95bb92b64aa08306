//! Call outcomes on the web: read a call's outcome, its history and the outcomes its campaign
//! allows; set it (agents on their own calls, leads on the calls in their scope). The rules are
//! in `store::outcomes`; this only checks who may see the call and maps the errors.

use super::api::{json_body, visible_call};
use super::error::AppError;
use super::identity::Identity;
use super::state::St;
use crate::store::outcomes::{self, Outcome, Setting, Source};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetOutcome {
    outcome: String,
    /// In currency units, for an outcome that takes one.
    #[serde(default)]
    amount: Option<f64>,
}

/// A call's outcome page data: the current setting, every earlier one, and the choices.
#[derive(Serialize)]
pub struct CallOutcome {
    pub current: Option<Setting>,
    pub history: Vec<Setting>,
    /// The campaign whose list applies (the call's own, or `default`).
    pub list_campaign: String,
    pub allowed: Vec<Outcome>,
}

/// `GET /api/calls/{id}/outcome`.
pub async fn get_outcome(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(call_id): Path<i64>,
) -> Result<Json<CallOutcome>, AppError> {
    let call = visible_call(&st, &id, call_id).await?;
    let campaign = call.meta.campaign.clone();
    st.db
        .read(move |c| {
            let history = outcomes::history(c, call_id)?;
            let (list_campaign, list) = outcomes::list_for(c, campaign.as_deref())?;
            Ok::<_, AppError>(Json(CallOutcome {
                current: history.last().cloned(),
                history,
                list_campaign,
                allowed: list.outcome,
            }))
        })
        .await
}

/// `PUT /api/calls/{id}/outcome` `{"outcome": "sale", "amount": 129.90}`: a call the caller
/// may not see is a 404 (as everywhere, so ids cannot be probed); an outcome or amount the
/// call's list refuses is a 400 naming the allowed codes.
pub async fn put_outcome(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(call_id): Path<i64>,
    body: Bytes,
) -> Result<Json<Setting>, AppError> {
    // The call first: a call out of scope is a 404 whatever the body says.
    visible_call(&st, &id, call_id).await?;
    let b: SetOutcome = json_body(&body)?;
    st.db
        .write(move |c| {
            outcomes::set(c, call_id, &b.outcome, b.amount, Source::Web, id.who())
                .map(Json)
                .map_err(AppError::from)
        })
        .await
}
