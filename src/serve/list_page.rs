//! The shape the admin's legal-act pages share (`/admin/holds`, `/admin/erasure`): a list read
//! from the index, drawn as a table, and under it the form that acts, posted with the session's
//! CSRF token and the acting admin's password typed again (a session left open is not enough
//! for a legal act; the handler the form posts to checks it).
//!
//! This module must never write to the index, and never print a value unescaped: the headers
//! are escaped here; the intro, rows, fields and outro come as HTML from the caller, which
//! escapes what it puts in them.

use super::error::AppError;
use super::html::{esc, page};
use super::identity::Identity;
use super::state::St;
use crate::store::StoreError;
use axum::response::Html;
use rusqlite::Connection;

/// What one list page shows besides its rows.
pub struct ListPage<'a> {
    /// The page's title and heading.
    pub title: &'a str,
    /// HTML between the heading and the table.
    pub intro: &'a str,
    pub headers: &'a [&'a str],
    /// The heading above the form, its target, its inputs (HTML) before the password, and
    /// its button's label.
    pub form_heading: &'a str,
    pub form_action: &'a str,
    pub form_fields: &'a str,
    pub form_button: &'a str,
    /// HTML after the form.
    pub outro: &'a str,
}

/// The page: the items `read` returns, one table row each from `row`, then the form.
pub async fn list_page<T: Send + 'static>(
    st: &St,
    id: &Identity,
    read: fn(&Connection) -> Result<Vec<T>, StoreError>,
    row: impl Fn(&T) -> String,
    p: ListPage<'_>,
) -> Result<Html<String>, AppError> {
    let items = st.db.read(move |c| read(c).map_err(AppError::from)).await?;
    let rows: String = items.iter().map(row).collect();
    let headers: String = p
        .headers
        .iter()
        .map(|h| format!("<th>{}</th>", esc(h)))
        .collect();
    let body = format!(
        r#"<main><h1>{title}</h1>{intro}
<table class="results"><thead><tr>{headers}</tr></thead><tbody>{rows}</tbody></table>
<h2>{heading}</h2>
<form class="filters" method="post" action="{action}"><input type="hidden" name="csrf" value="{csrf}">
{fields}
<label>Your password <input type="password" name="password" required autocomplete="current-password"></label>
<button type="submit">{button}</button></form>{outro}</main>"#,
        title = esc(p.title),
        intro = p.intro,
        heading = esc(p.form_heading),
        action = esc(p.form_action),
        csrf = esc(id.csrf().unwrap_or_default()),
        fields = p.form_fields,
        button = esc(p.form_button),
        outro = p.outro,
    );
    Ok(Html(page(Some(id), p.title, &body)))
}
