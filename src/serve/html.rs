//! Server-rendered HTML: escaping and the page layout shared by every page.
//!
//! Every value that came from a user, a recording or the database goes through [`esc`]; pages
//! load no inline script (the CSP forbids it), only `/static/*` files served from the binary.

use super::identity::Identity;
use crate::store::users::Role;

/// Escapes text for HTML element content and double-quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query-string value.
pub fn url_enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `m:ss`, or `h:mm:ss` from one hour.
pub fn clock(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

fn nav(id: &Identity) -> String {
    let Some(role) = id.role() else {
        return String::new();
    };
    let mut links = vec![("/calls", "Calls"), ("/complaints", "Complaints")];
    if matches!(role, Role::Admin | Role::Supervisor | Role::Qa) {
        links.push(("/qa", "Review queue"));
        links.push(("/reports", "Reports"));
    }
    if matches!(role, Role::Admin | Role::Supervisor) {
        links.push(("/floor", "Floor"));
    }
    if matches!(role, Role::Admin | Role::Auditor) {
        links.push(("/audit", "Audit log"));
    }
    if role == Role::Admin {
        links.push(("/admin/users", "Users"));
        links.push(("/admin/tokens", "API tokens"));
        links.push(("/admin/holds", "Legal holds"));
    }
    let items: String = links
        .iter()
        .map(|(href, label)| format!(r#"<a href="{href}">{label}</a> "#))
        .collect();
    format!(
        r#"<nav>{items}<a href="/password">Password</a> <span class="who">{user} ({role})</span>
<form method="post" action="/logout" class="logout"><input type="hidden" name="csrf" value="{csrf}"><button>Log out</button></form></nav>"#,
        user = esc(&id.actor),
        role = role.as_str(),
        csrf = esc(id.csrf().unwrap_or_default()),
    )
}

/// A whole page around `body` (which must already be escaped where needed).
pub fn page(id: Option<&Identity>, title: &str, body: &str) -> String {
    let csrf = id.and_then(Identity::csrf).unwrap_or_default();
    let user = id.map(|i| i.actor.as_str()).unwrap_or_default();
    let nav = id.map(nav).unwrap_or_default();
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="{csrf}"><meta name="user" content="{user}">
<title>{title} · callrec</title>
<link rel="stylesheet" href="/static/app.css"><link rel="icon" href="data:,">
</head><body>
<header class="top"><a class="brand" href="/calls">callrec</a>{nav}</header>
{body}
</body></html>"#,
        csrf = esc(csrf),
        user = esc(user),
        title = esc(title),
    )
}
