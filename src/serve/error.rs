//! [`AppError`]: an error as the user sees it, a status and a message saying what to do, sent
//! as a page or as JSON; and how the library's errors map to it. An internal error is logged in
//! full and shown only as "internal error": never a path, a query or a stack to the client.

use super::db::DbError;
use super::html;
use crate::store::outcomes::OutcomeError;
use crate::store::users::UserError;
use crate::store::StoreError;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// An error as the user sees it: a status, a message saying what to do, as a page or JSON.
#[derive(Debug)]
pub struct AppError {
    pub status: StatusCode,
    pub message: String,
    html: bool,
    location: Option<String>,
}

impl AppError {
    pub fn api(status: StatusCode, message: &str) -> Self {
        AppError {
            status,
            message: message.to_owned(),
            html: false,
            location: None,
        }
    }
    pub fn page(status: StatusCode, message: &str) -> Self {
        AppError {
            status,
            message: message.to_owned(),
            html: true,
            location: None,
        }
    }
    pub fn bad_request(message: &str) -> Self {
        Self::api(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: &str) -> Self {
        Self::api(StatusCode::NOT_FOUND, message)
    }
    pub fn redirect(to: &str) -> Self {
        AppError {
            status: StatusCode::SEE_OTHER,
            message: String::new(),
            html: true,
            location: Some(to.to_owned()),
        }
    }
    pub fn with_html(mut self, html: bool) -> Self {
        self.html = html;
        self
    }
    fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!("request failed: {e}");
        Self::api(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; it has been logged (journalctl -u callrec). Retry, and tell the administrator if it persists",
        )
    }
}

impl From<DbError> for AppError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Store(s) => s.into(),
            other => Self::internal(other),
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NoSuchCall(id) => Self::not_found(&format!("no call {id}")),
            StoreError::CallDeleted(_) => Self::api(StatusCode::GONE, &e.to_string()),
            other => Self::internal(other),
        }
    }
}

impl From<UserError> for AppError {
    fn from(e: UserError) -> Self {
        match e {
            UserError::BadRole(_)
            | UserError::BadName(_)
            | UserError::Exists(_)
            | UserError::ShortPassword
            | UserError::BadTokenName(_) => Self::bad_request(&e.to_string()),
            UserError::NoSuchUser(_) => Self::not_found(&e.to_string()),
            UserError::Store(s) => s.into(),
            other => Self::internal(other),
        }
    }
}

impl From<OutcomeError> for AppError {
    fn from(e: OutcomeError) -> Self {
        match e {
            OutcomeError::Unknown { .. }
            | OutcomeError::NoAmount(_)
            | OutcomeError::BadAmount(_)
            | OutcomeError::BadList(_)
            | OutcomeError::BadImport(_) => Self::bad_request(&e.to_string()),
            OutcomeError::NoSuchCall(_) => Self::not_found(&e.to_string()),
            OutcomeError::CallDeleted(_) => Self::api(StatusCode::GONE, &e.to_string()),
            OutcomeError::Store(s) => s.into(),
        }
    }
}

impl From<rusqlite::Error> for AppError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sql(e).into()
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let Some(to) = self.location {
            return (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
        }
        if self.html {
            let body = html::page(
                None,
                "Error",
                &format!(
                    r#"<main><h1>{} {}</h1><p class="error">{}</p><p><a href="/calls">Back to the calls</a> · <a href="/login">Log in again</a></p></main>"#,
                    self.status.as_u16(),
                    self.status.canonical_reason().unwrap_or_default(),
                    html::esc(&self.message)
                ),
            );
            (self.status, axum::response::Html(body)).into_response()
        } else {
            (
                self.status,
                axum::Json(serde_json::json!({ "error": self.message })),
            )
                .into_response()
        }
    }
}
