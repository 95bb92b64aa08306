//! Legal holds in the web UI (`/admin/holds`, admins only; issue 13 item 4): the list, and
//! forms to place and release a hold. Each form asks the admin to type their password again
//! (a hold is a legal act: a session left open is not enough), and the rules are the CLI's,
//! from the same store functions: a reason is required, and a release needs a second admin
//! (`store::holds`; the database's triggers enforce it too). At the fleet's hub a hold goes
//! through `hub::orders`, which writes the orders that carry it to the boxes (`callrec hub`
//! publishes them). Placing and releasing are audited by `store::holds`.
//!
//! This module must never place or release a hold without the acting admin's password checked
//! in the same request, and never decide the four-eyes rule itself (the store does).

use super::error::AppError;
use super::html::esc;
use super::identity::Identity;
use super::list_page::{list_page, ListPage};
use super::state::St;
use crate::store::holds::{self, HoldError, Scope};
use crate::store::users::{self, UserError};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, Redirect};
use axum::{Extension, Form};
use std::collections::HashMap;

fn hold_error(e: HoldError) -> AppError {
    let status = match e {
        HoldError::Store(s) => return AppError::from(s).with_html(true),
        HoldError::SameAdmin { .. } | HoldError::NotAdmin(_) | HoldError::MustChangePassword(_) => {
            StatusCode::FORBIDDEN
        }
        HoldError::AlreadyReleased(_) => StatusCode::CONFLICT,
        HoldError::NoSuchHold(_) => StatusCode::NOT_FOUND,
        HoldError::NoReason | HoldError::BadRange(_) => StatusCode::BAD_REQUEST,
    };
    AppError::page(status, &e.to_string())
}

fn field(f: &HashMap<String, String>, k: &str) -> String {
    f.get(k).map(|v| v.trim().to_owned()).unwrap_or_default()
}

/// The acting admin's password, typed again on the form.
fn check_password(c: &rusqlite::Connection, id: &Identity, password: &str) -> Result<(), AppError> {
    match users::authenticate_admin(c, &id.actor, password) {
        Ok(_) => Ok(()),
        Err(UserError::Store(s)) => Err(AppError::from(s)),
        Err(_) => Err(AppError::page(
            StatusCode::FORBIDDEN,
            "wrong password: type your own password again to place or release a legal hold",
        )),
    }
}

fn describe(s: &Scope) -> String {
    match s {
        Scope::Call { call_id } => format!("call {call_id}"),
        Scope::Agent { agent } => format!("every call of agent {agent}"),
        Scope::Numbers { from, to } if from == to => format!("numbers starting {from}"),
        Scope::Numbers { from, to } => format!("numbers {from}-{to}"),
    }
}

pub async fn list(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
) -> Result<Html<String>, AppError> {
    let csrf = esc(id.csrf().unwrap_or_default());
    let row = |h: &holds::Hold| {
        let state = match (&h.released_at_utc, &h.released_by) {
            (Some(t), Some(by)) => format!("released {} by {}", esc(t), esc(by)),
            _ => format!(
                r#"in force <form method="post" action="/admin/holds/{hid}/release"><input type="hidden" name="csrf" value="{csrf}"><input name="reason" placeholder="why released" required> <input type="password" name="password" placeholder="your password" required autocomplete="current-password"> <button>Release</button></form>"#,
                hid = h.id
            ),
        };
        format!(
            "<tr><td>#{}</td><td>{}</td><td>{}</td><td>{} by {}</td><td>{state}</td></tr>",
            h.id,
            esc(&describe(&h.scope)),
            esc(&h.reason),
            esc(&h.placed_at_utc),
            esc(&h.placed_by)
        )
    };
    let fleet = if crate::hub::is_hub(&st.cfg) {
        "<p>This is the fleet's hub: a hold placed here is sent to every box holding a copy (a call hold to the call's box), and applies there within a minute of the box being online.</p>"
    } else {
        ""
    };
    let form_fields = r#"<label>Covers <select name="scope"><option value="call">one call (id)</option><option value="agent">every call of an agent</option><option value="numbers">customer numbers (one, a prefix ending in *, or FROM-TO)</option></select></label>
<label>Call id, agent or numbers <input name="value" required></label>
<label>Reason (the matter or case) <input name="reason" required></label>"#;
    let p = ListPage {
        title: "Legal holds",
        intro: fleet,
        headers: &["Hold", "Covers", "Reason", "Placed", "State"],
        form_heading: "Place a hold",
        form_action: "/admin/holds",
        form_fields,
        form_button: "Place hold",
        outro: "\n<p>A hold can only be released by another admin.</p>",
    };
    list_page(&st, &id, holds::list, row, p).await
}

pub async fn place(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Form(f): Form<HashMap<String, String>>,
) -> Result<Redirect, AppError> {
    let value = field(&f, "value");
    let scope = match field(&f, "scope").as_str() {
        "call" => Scope::Call {
            call_id: value.parse().map_err(|_| {
                AppError::page(StatusCode::BAD_REQUEST, "a call hold needs the call's id")
            })?,
        },
        "agent" if !value.is_empty() => Scope::Agent { agent: value },
        "numbers" => holds::parse_range(&value).map_err(hold_error)?,
        _ => {
            return Err(AppError::page(
                StatusCode::BAD_REQUEST,
                "choose what the hold covers and give its call id, agent or numbers",
            ))
        }
    };
    let (reason, password) = (
        field(&f, "reason"),
        f.get("password").cloned().unwrap_or_default(),
    );
    let (cfg, now) = (st.cfg.clone(), st.clock.utc_string());
    st.db
        .write(move |c| {
            check_password(c, &id, &password)?;
            if crate::hub::is_hub(&cfg) {
                crate::hub::orders::place_hold(c, &cfg, &scope, &reason, &id.actor, &now).map_err(
                    |e| match e {
                        crate::hub::orders::OrderError::Hold(h) => hold_error(h),
                        other => AppError::page(StatusCode::BAD_REQUEST, &other.to_string()),
                    },
                )?;
            } else {
                holds::place(c, &scope, &reason, &id.actor, &now).map_err(hold_error)?;
            }
            Ok::<_, AppError>(())
        })
        .await?;
    Ok(Redirect::to("/admin/holds"))
}

pub async fn release(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(hold_id): Path<i64>,
    Form(f): Form<HashMap<String, String>>,
) -> Result<Redirect, AppError> {
    let (reason, password) = (
        field(&f, "reason"),
        f.get("password").cloned().unwrap_or_default(),
    );
    let (cfg, now) = (st.cfg.clone(), st.clock.utc_string());
    st.db
        .write(move |c| {
            check_password(c, &id, &password)?;
            if crate::hub::is_hub(&cfg) {
                crate::hub::orders::release_hold(c, &cfg, hold_id, &id.actor, &reason, &now)
                    .map_err(|e| match e {
                        crate::hub::orders::OrderError::Hold(h) => hold_error(h),
                        other => AppError::page(StatusCode::BAD_REQUEST, &other.to_string()),
                    })?;
            } else {
                holds::release(c, hold_id, &id.actor, &reason, &now).map_err(hold_error)?;
            }
            Ok::<_, AppError>(())
        })
        .await?;
    Ok(Redirect::to("/admin/holds"))
}
