//! The web service over real HTTP against `callrec run`: every route with every role, session
//! and CSRF attacks, lockout, expiry, path traversal, SQL metacharacters, Range requests checked
//! against the file's bytes, the control API with a token, TLS, and the audit chain (tampered
//! directly in SQLite with the `sqlite3` tool).

use super::common::bin;
use super::webbox::{free_port, Session, WebBox, PASSWORD};
use callrec::serve::routes::rules;
use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

const ROLES: [&str; 7] = [
    "anonymous",
    "supervisor",
    "qa",
    "agent",
    "auditor",
    "token",
    // Last: admin deletes the shared note and revokes the shared token.
    "admin",
];

struct Case {
    method: &'static str,
    pattern: &'static str,
    path: String,
    ctype: &'static str,
    body: String,
    /// Status per entry of ROLES.
    expect: [u16; 7],
}

fn sqlite(db: &std::path::Path, sql: &str) -> String {
    let o = Command::new("sqlite3").arg(db).arg(sql).output().unwrap();
    assert!(
        o.status.success(),
        "sqlite3 {sql}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

/// The expected status of every route for every role. A route added to the server without a
/// line here fails `every_route_with_every_role`.
/// Objects the matrix acts on, made before it runs.
struct Ids {
    call: i64,
    note: i64,
    /// Submitted evaluations of `call` by `writer`: one to acknowledge, one to dispute, and one
    /// already disputed (its open dispute is `dispute`).
    ev_ack: i64,
    ev_disp: i64,
    ev_res: i64,
    dispute: i64,
    first_q: String,
    plan: i64,
    assignment: i64,
    /// Spot checks of `call` by `writer`: one submitted, one still a draft.
    check_done: i64,
    check_draft: i64,
    /// A calibration session on `call` with reviewers qa1 and writer.
    calibration: i64,
    /// A complaint about alice's `call`, filed by writer (qa).
    complaint: i64,
}

fn cases(ids: &Ids, role: &str) -> Vec<Case> {
    let (call, note) = (ids.call, ids.note);
    let c = |method, pattern, path: String, ctype, body: String, expect| Case {
        method,
        pattern,
        path,
        ctype,
        body,
        expect,
    };
    let json = "application/json";
    let form = "application/x-www-form-urlencoded";
    // anonymous, supervisor, qa, agent, auditor, token, admin
    let page_all = [303, 200, 200, 200, 200, 403, 200];
    let api_all = [401, 200, 200, 200, 200, 403, 200];
    vec![
        c(
            "GET",
            "/login",
            "/login".into(),
            "",
            String::new(),
            [200; 7],
        ),
        // No login-form token: refused whoever asks.
        c(
            "POST",
            "/login",
            "/login".into(),
            form,
            "username=x&password=y".into(),
            [403; 7],
        ),
        c(
            "GET",
            "/healthz",
            "/healthz".into(),
            "",
            String::new(),
            [200; 7],
        ),
        c(
            "GET",
            "/static/{name}",
            "/static/app.css".into(),
            "",
            String::new(),
            [200; 7],
        ),
        c(
            "GET",
            "/password",
            "/password".into(),
            "",
            String::new(),
            [303, 200, 200, 200, 200, 403, 200],
        ),
        // Empty form: a 400 that says why, after auth and CSRF passed.
        c(
            "POST",
            "/password",
            "/password".into(),
            form,
            "current=&new=&confirm=".into(),
            [303, 400, 400, 400, 400, 403, 400],
        ),
        c(
            "POST",
            "/logout",
            "/logout".into(),
            form,
            String::new(),
            [303, 303, 303, 303, 303, 403, 303],
        ),
        c(
            "GET",
            "/",
            "/".into(),
            "",
            String::new(),
            [303, 303, 303, 303, 303, 403, 303],
        ),
        c(
            "GET",
            "/calls",
            "/calls".into(),
            "",
            String::new(),
            page_all,
        ),
        c(
            "GET",
            "/calls/{id}",
            format!("/calls/{call}"),
            "",
            String::new(),
            page_all,
        ),
        // The evidence zip: leads, auditors and admins (supervisor, auditor, admin).
        c(
            "POST",
            "/calls/{id}/export",
            format!("/calls/{call}/export"),
            form,
            String::new(),
            [303, 200, 403, 403, 200, 403, 200],
        ),
        c(
            "GET",
            "/api/me",
            "/api/me".into(),
            "",
            String::new(),
            api_all,
        ),
        c(
            "GET",
            "/api/calls",
            "/api/calls".into(),
            "",
            String::new(),
            api_all,
        ),
        c(
            "GET",
            "/api/calls/{id}",
            format!("/api/calls/{call}"),
            "",
            String::new(),
            api_all,
        ),
        c(
            "GET",
            "/api/calls/{id}/audio",
            format!("/api/calls/{call}/audio"),
            "",
            String::new(),
            api_all,
        ),
        c(
            "GET",
            "/api/calls/{id}/audio.wav",
            format!("/api/calls/{call}/audio.wav"),
            "",
            String::new(),
            api_all,
        ),
        c(
            "GET",
            "/api/calls/{id}/peaks.dat",
            format!("/api/calls/{call}/peaks.dat"),
            "",
            String::new(),
            api_all,
        ),
        c(
            "POST",
            "/api/calls/{id}/heard",
            format!("/api/calls/{call}/heard"),
            json,
            r#"{"ranges":[[0,1.5]]}"#.into(),
            [401, 204, 204, 204, 204, 403, 204],
        ),
        c(
            "GET",
            "/api/calls/{id}/outcome",
            format!("/api/calls/{call}/outcome"),
            "",
            String::new(),
            api_all,
        ),
        // The agent's own call and leads set outcomes; QA and auditors judge, they do not.
        c(
            "PUT",
            "/api/calls/{id}/outcome",
            format!("/api/calls/{call}/outcome"),
            json,
            r#"{"outcome":"callback"}"#.into(),
            [401, 200, 403, 200, 403, 403, 200],
        ),
        c(
            "POST",
            "/api/calls/{id}/notes",
            format!("/api/calls/{call}/notes"),
            json,
            r#"{"at_ms":500,"text":"matrix"}"#.into(),
            [401, 201, 201, 403, 403, 403, 201],
        ),
        // The note belongs to someone else: only an admin may delete it (the handler's rule).
        c(
            "DELETE",
            "/api/notes/{id}",
            format!("/api/notes/{note}"),
            "",
            String::new(),
            [401, 403, 403, 403, 403, 403, 204],
        ),
        c(
            "GET",
            "/audit",
            "/audit".into(),
            "",
            String::new(),
            [303, 403, 403, 403, 200, 403, 200],
        ),
        c(
            "GET",
            "/api/audit",
            "/api/audit".into(),
            "",
            String::new(),
            [401, 403, 403, 403, 200, 403, 200],
        ),
        c(
            "GET",
            "/api/seats",
            "/api/seats".into(),
            "",
            String::new(),
            [401, 200, 403, 403, 403, 403, 200],
        ),
        // Live listening: leads only. An unknown seat is 404 once the role passed (a real seat
        // would stream until closed; tests/it/live.rs listens to one).
        c(
            "GET",
            "/live/{seat}",
            "/live/nosuch".into(),
            "",
            String::new(),
            [303, 404, 403, 403, 403, 403, 404],
        ),
        c(
            "GET",
            "/api/live/{seat}/audio",
            "/api/live/nosuch/audio".into(),
            "",
            String::new(),
            [401, 404, 403, 403, 403, 403, 404],
        ),
        // The floor overview: supervisors and admins (as /api/seats).
        c(
            "GET",
            "/api/floor",
            "/api/floor".into(),
            "",
            String::new(),
            [401, 200, 403, 403, 403, 403, 200],
        ),
        c(
            "GET",
            "/floor",
            "/floor".into(),
            "",
            String::new(),
            [303, 200, 403, 403, 403, 403, 200],
        ),
        // The completeness report: supervisors, auditors and admins.
        c(
            "GET",
            "/api/reports/completeness",
            "/api/reports/completeness?day=2026-12-05".into(),
            "",
            String::new(),
            [401, 200, 403, 403, 200, 403, 200],
        ),
        c(
            "GET",
            "/admin/users",
            "/admin/users".into(),
            "",
            String::new(),
            [303, 403, 403, 403, 403, 403, 200],
        ),
        c(
            "POST",
            "/admin/users",
            "/admin/users".into(),
            form,
            format!("username=made-by-{role}&role=qa"),
            [303, 403, 403, 403, 403, 403, 201],
        ),
        c(
            "POST",
            "/admin/users/{name}",
            "/admin/users/victim".into(),
            form,
            "op=role&role=agent&agent_id=vic".into(),
            [303, 403, 403, 403, 403, 403, 200],
        ),
        c(
            "GET",
            "/admin/holds",
            "/admin/holds".into(),
            "",
            String::new(),
            [303, 403, 403, 403, 403, 403, 200],
        ),
        // An admin passes the access rule and then fails on the form: no scope (400), a hold
        // that does not exist (404, after the password typed again was checked).
        c(
            "POST",
            "/admin/holds",
            "/admin/holds".into(),
            form,
            "scope=&value=&reason=matrix".into(),
            [303, 403, 403, 403, 403, 403, 400],
        ),
        c(
            "POST",
            "/admin/holds/{id}/release",
            "/admin/holds/999999/release".into(),
            form,
            "reason=matrix&password=test+password+1234".into(),
            [303, 403, 403, 403, 403, 403, 404],
        ),
        c(
            "GET",
            "/admin/erasure",
            "/admin/erasure".into(),
            "",
            String::new(),
            [303, 403, 403, 403, 403, 403, 200],
        ),
        // An admin passes the access rule and then fails on the form (no number: 400) or on
        // an erasure that does not exist (404); "complete" is the hub's only (404 on a box).
        c(
            "POST",
            "/admin/erasure",
            "/admin/erasure".into(),
            form,
            "number=&request=matrix".into(),
            [303, 403, 403, 403, 403, 403, 400],
        ),
        c(
            "GET",
            "/admin/erasure/{id}",
            "/admin/erasure/999999".into(),
            "",
            String::new(),
            [303, 403, 403, 403, 403, 403, 404],
        ),
        c(
            "GET",
            "/admin/erasure/{id}/{file}",
            "/admin/erasure/999999/receipt.json".into(),
            "",
            String::new(),
            [303, 403, 403, 403, 403, 403, 404],
        ),
        c(
            "POST",
            "/admin/erasure/{id}/complete",
            "/admin/erasure/999999/complete".into(),
            form,
            "password=test+password+1234".into(),
            [303, 403, 403, 403, 403, 403, 404],
        ),
        c(
            "GET",
            "/admin/tokens",
            "/admin/tokens".into(),
            "",
            String::new(),
            [303, 403, 403, 403, 403, 403, 200],
        ),
        c(
            "POST",
            "/admin/tokens",
            "/admin/tokens".into(),
            form,
            format!("name=tok-{role}"),
            [303, 403, 403, 403, 403, 403, 201],
        ),
        c(
            "POST",
            "/admin/tokens/{name}/revoke",
            "/admin/tokens/old/revoke".into(),
            form,
            String::new(),
            [303, 403, 403, 403, 403, 403, 200],
        ),
        c(
            "GET",
            "/api/scorecards",
            "/api/scorecards".into(),
            "",
            String::new(),
            api_all,
        ),
        c(
            "GET",
            "/api/scorecards/{slug}",
            "/api/scorecards/complaint".into(),
            "",
            String::new(),
            api_all,
        ),
        c(
            "POST",
            "/api/scorecards",
            "/api/scorecards".into(),
            json,
            format!(
                r#"{{"id":"made-by-{role}","name":"M","sections":[{{"id":"s","title":"S","questions":[{{"id":"q","text":"Q?","kind":"yes_no"}}]}}]}}"#
            ),
            [401, 201, 403, 403, 403, 403, 201],
        ),
        c(
            "GET",
            "/api/calls/{id}/evaluations",
            format!("/api/calls/{call}/evaluations"),
            "",
            String::new(),
            api_all,
        ),
        c(
            "POST",
            "/api/calls/{id}/evaluations",
            format!("/api/calls/{call}/evaluations"),
            json,
            r#"{"scorecard":"complaint"}"#.into(),
            [401, 201, 201, 403, 403, 403, 201],
        ),
        c(
            "GET",
            "/api/evaluations/{id}",
            format!("/api/evaluations/{}", ids.ev_ack),
            "",
            String::new(),
            api_all,
        ),
        // Only the evaluation's reviewer (`writer`) may change it.
        c(
            "POST",
            "/api/evaluations/{id}/answers",
            format!("/api/evaluations/{}/answers", ids.ev_ack),
            json,
            r#"{"answers":[]}"#.into(),
            [401, 403, 403, 403, 403, 403, 403],
        ),
        c(
            "POST",
            "/api/evaluations/{id}/submit",
            format!("/api/evaluations/{}/submit", ids.ev_ack),
            json,
            String::new(),
            [401, 403, 403, 403, 403, 403, 403],
        ),
        // Only the evaluated agent acknowledges or disputes.
        c(
            "POST",
            "/api/evaluations/{id}/acknowledge",
            format!("/api/evaluations/{}/acknowledge", ids.ev_ack),
            json,
            String::new(),
            [401, 403, 403, 200, 403, 403, 403],
        ),
        c(
            "POST",
            "/api/evaluations/{id}/dispute",
            format!("/api/evaluations/{}/dispute", ids.ev_disp),
            json,
            format!(
                r#"{{"q":"{}","reason":"I did that at 0:02, please listen again"}}"#,
                ids.first_q
            ),
            [401, 403, 403, 201, 403, 403, 403],
        ),
        // The reviewer or a lead decides; the supervisor comes first, so the admin finds it closed.
        c(
            "POST",
            "/api/evaluations/{id}/resolve",
            format!("/api/evaluations/{}/resolve", ids.ev_res),
            json,
            format!(
                r#"{{"dispute_id":{},"decision":"upheld","note":"heard it: no acknowledgement"}}"#,
                ids.dispute
            ),
            [401, 200, 403, 403, 403, 403, 400],
        ),
        c(
            "GET",
            "/api/plans",
            "/api/plans".into(),
            "",
            String::new(),
            [401, 200, 200, 403, 403, 403, 200],
        ),
        c(
            "POST",
            "/api/plans",
            "/api/plans".into(),
            json,
            format!(
                r#"{{"name":"plan-{role}","filters":{{"agent":"alice"}},"quota_per_agent":1,"reviewers":["qa1"],"scorecard":"complaint"}}"#
            ),
            [401, 201, 403, 403, 403, 403, 201],
        ),
        c(
            "POST",
            "/api/plans/{id}/draw",
            format!("/api/plans/{}/draw", ids.plan),
            json,
            "{}".into(),
            [401, 200, 403, 403, 403, 403, 200],
        ),
        c(
            "GET",
            "/api/assignments",
            "/api/assignments".into(),
            "",
            String::new(),
            [401, 200, 200, 403, 403, 403, 200],
        ),
        // The supervisor (a lead) swaps it first; afterwards it is no longer open.
        c(
            "POST",
            "/api/assignments/{id}/swap",
            format!("/api/assignments/{}/swap", ids.assignment),
            json,
            r#"{"reason":"wrong number, customer hung up"}"#.into(),
            [401, 200, 404, 403, 403, 403, 404],
        ),
        // Alice's own figures: agents see only theirs, tokens none.
        c(
            "GET",
            "/api/figures",
            "/api/figures?agent=alice&from=2020-01-01".into(),
            "",
            String::new(),
            [401, 200, 200, 200, 200, 403, 200],
        ),
        c(
            "PUT",
            "/api/targets",
            "/api/targets".into(),
            json,
            r#"{"team":"red","figure":"aht_ms","period":"week","goal":300000,"direction":"lower","tolerance":30000}"#.into(),
            [401, 200, 403, 403, 403, 403, 200],
        ),
        c(
            "GET",
            "/api/targets",
            "/api/targets?team=red".into(),
            "",
            String::new(),
            [401, 200, 200, 403, 403, 403, 200],
        ),
        // The complaints register. Roles run in ROLES order on one complaint (filed by writer
        // about alice's call): supervisor1 acknowledges, investigates and rules it; alice
        // appeals (too late to respond); admin, another lead, decides the appeal. The store
        // refuses steps out of order (409) and people it does not admit (403).
        c("GET", "/api/complaints", "/api/complaints".into(), "", String::new(), api_all),
        c(
            "POST",
            "/api/complaints",
            "/api/complaints".into(),
            json,
            format!(r#"{{"call_id":{call},"source":"customer","category":"billing","text":"x"}}"#),
            [401, 201, 201, 403, 403, 403, 201],
        ),
        c(
            "GET",
            "/api/complaints/{id}",
            format!("/api/complaints/{}", ids.complaint),
            "",
            String::new(),
            api_all,
        ),
        c(
            "POST",
            "/api/complaints/{id}/acknowledge",
            format!("/api/complaints/{}/acknowledge", ids.complaint),
            json,
            String::new(),
            [401, 200, 403, 403, 403, 403, 409],
        ),
        c(
            "POST",
            "/api/complaints/{id}/investigate",
            format!("/api/complaints/{}/investigate", ids.complaint),
            json,
            String::new(),
            [401, 200, 403, 403, 403, 403, 409],
        ),
        c(
            "POST",
            "/api/complaints/{id}/respond",
            format!("/api/complaints/{}/respond", ids.complaint),
            json,
            r#"{"text":"my side"}"#.into(),
            [401, 403, 403, 409, 403, 403, 403],
        ),
        c(
            "POST",
            "/api/complaints/{id}/rule",
            format!("/api/complaints/{}/rule", ids.complaint),
            json,
            r#"{"ruling":"justified","reason":"heard it"}"#.into(),
            [401, 200, 403, 403, 403, 403, 409],
        ),
        c(
            "POST",
            "/api/complaints/{id}/appeal",
            format!("/api/complaints/{}/appeal", ids.complaint),
            json,
            r#"{"text":"not so"}"#.into(),
            [401, 403, 403, 200, 403, 403, 409],
        ),
        c(
            "POST",
            "/api/complaints/{id}/decide",
            format!("/api/complaints/{}/decide", ids.complaint),
            json,
            r#"{"ruling":"not_justified","reason":"line dropped"}"#.into(),
            [401, 409, 403, 403, 403, 403, 200],
        ),
        c(
            "GET",
            "/api/complaint-categories",
            "/api/complaint-categories".into(),
            "",
            String::new(),
            api_all,
        ),
        c("GET", "/complaints", "/complaints".into(), "", String::new(), page_all),
        c(
            "GET",
            "/complaints/{id}",
            format!("/complaints/{}", ids.complaint),
            "",
            String::new(),
            page_all,
        ),
        // The operator's page: alice's own, and a team's (not for agents).
        c("GET", "/agents/{agent}", "/agents/alice".into(), "", String::new(), page_all),
        c(
            "GET",
            "/teams/{team}",
            "/teams/red".into(),
            "",
            String::new(),
            [303, 200, 200, 403, 200, 403, 200],
        ),
        c(
            "GET",
            "/api/reports/agents",
            "/api/reports/agents".into(),
            "",
            String::new(),
            [401, 200, 200, 403, 403, 403, 200],
        ),
        c(
            "GET",
            "/api/reports/questions",
            "/api/reports/questions?format=csv".into(),
            "",
            String::new(),
            [401, 200, 200, 403, 403, 403, 200],
        ),
        c(
            "GET",
            "/api/reports/trend",
            "/api/reports/trend".into(),
            "",
            String::new(),
            [401, 200, 200, 403, 403, 403, 200],
        ),
        c(
            "GET",
            "/api/reports/reviewers",
            "/api/reports/reviewers?format=csv".into(),
            "",
            String::new(),
            [401, 200, 200, 403, 403, 403, 200],
        ),
        c(
            "GET",
            "/reports",
            "/reports".into(),
            "",
            String::new(),
            [303, 200, 200, 403, 403, 403, 200],
        ),
        c(
            "GET",
            "/qa",
            "/qa".into(),
            "",
            String::new(),
            [303, 200, 200, 403, 403, 403, 200],
        ),
        c(
            "GET",
            "/qa/edit/{kind}/{slug}",
            "/qa/edit/script/inbound-compliance".into(),
            "",
            String::new(),
            [303, 200, 403, 403, 403, 403, 200],
        ),
        c(
            "GET",
            "/api/scripts",
            "/api/scripts".into(),
            "",
            String::new(),
            api_all,
        ),
        c(
            "GET",
            "/api/scripts/{slug}",
            "/api/scripts/inbound-compliance?format=toml".into(),
            "",
            String::new(),
            api_all,
        ),
        c(
            "POST",
            "/api/scripts",
            "/api/scripts".into(),
            json,
            format!(
                r#"{{"slug":"script-{role}","name":"Test","steps":[{{"key":"hello","text":"Say hello","window":{{"within_first_s":10}}}}]}}"#
            ),
            [401, 201, 403, 403, 403, 403, 201],
        ),
        c(
            "GET",
            "/api/calls/{id}/checks",
            format!("/api/calls/{call}/checks"),
            "",
            String::new(),
            api_all,
        ),
        c(
            "POST",
            "/api/calls/{id}/checks",
            format!("/api/calls/{call}/checks"),
            json,
            r#"{"script":"inbound-compliance"}"#.into(),
            [401, 201, 201, 403, 403, 403, 201],
        ),
        // Submitted: everyone who sees the call sees the check.
        c(
            "GET",
            "/api/checks/{id}",
            format!("/api/checks/{}", ids.check_done),
            "",
            String::new(),
            api_all,
        ),
        // A draft check is its reviewer's (writer, not among these roles): hidden from the rest.
        c(
            "POST",
            "/api/checks/{id}/marks",
            format!("/api/checks/{}/marks", ids.check_draft),
            json,
            r#"{"marks":[]}"#.into(),
            [401, 404, 404, 403, 403, 403, 404],
        ),
        c(
            "POST",
            "/api/checks/{id}/submit",
            format!("/api/checks/{}/submit", ids.check_draft),
            json,
            String::new(),
            [401, 404, 404, 403, 403, 403, 404],
        ),
        c(
            "GET",
            "/api/calls/{id}/transcript",
            format!("/api/calls/{call}/transcript"),
            "",
            String::new(),
            api_all,
        ),
        c(
            "POST",
            "/api/calls/{id}/transcript",
            format!("/api/calls/{call}/transcript"),
            "text/vtt",
            "WEBVTT\n\n00:00.000 --> 00:01.000\n<v Agent>this call is recorded\n".into(),
            [401, 201, 201, 403, 403, 403, 201],
        ),
        c(
            "GET",
            "/api/calibrations",
            "/api/calibrations".into(),
            "",
            String::new(),
            [401, 200, 200, 403, 403, 403, 200],
        ),
        c(
            "POST",
            "/api/calibrations",
            "/api/calibrations".into(),
            json,
            format!(r#"{{"call_id":{call},"scorecard":"complaint","reviewers":["qa1","writer"]}}"#),
            [401, 201, 403, 403, 403, 403, 201],
        ),
        // qa1 takes part: sees the session, not yet the answers.
        c(
            "GET",
            "/api/calibrations/{id}",
            format!("/api/calibrations/{}", ids.calibration),
            "",
            String::new(),
            [401, 200, 200, 403, 403, 403, 200],
        ),
        c(
            "GET",
            "/calibrations/{id}",
            format!("/calibrations/{}", ids.calibration),
            "",
            String::new(),
            [303, 200, 200, 403, 403, 403, 200],
        ),
        // The supervisor closes it first; the admin then finds it closed.
        c(
            "POST",
            "/api/calibrations/{id}/close",
            format!("/api/calibrations/{}/close", ids.calibration),
            json,
            String::new(),
            [401, 200, 403, 403, 403, 403, 409],
        ),
        c(
            "POST",
            "/api/control/seats/{seat}/{action}",
            "/api/control/seats/seat02/login".into(),
            json,
            r#"{"agent":"zed"}"#.into(),
            [401, 200, 403, 403, 403, 200, 200],
        ),
        // Loopback: the local Prometheus needs no account.
        c(
            "GET",
            "/metrics",
            "/metrics".into(),
            "",
            String::new(),
            [200; 7],
        ),
    ]
}

fn session_for(wb: &WebBox, role: &str, token: &str) -> Session {
    match role {
        "anonymous" => Session::anonymous(wb),
        "token" => {
            let mut s = Session::anonymous(wb);
            s.bearer = Some(token.to_owned());
            s
        }
        "agent" => wb.login("alice", PASSWORD),
        r => wb.login(&format!("{r}1"), PASSWORD),
    }
}

#[test]
fn every_route_with_every_role() {
    let wb = WebBox::start("");
    for r in ["supervisor", "qa", "auditor", "admin"] {
        wb.add_user(&format!("{r}1"), r, &[]);
    }
    wb.add_user("alice", "agent", &[]);
    wb.add_user("victim", "qa", &[]);
    wb.add_user("writer", "qa", &[]);
    let token = wb.cli(&["tokens", "add", "cti"]).trim().to_owned();
    wb.cli(&["tokens", "add", "old"]);
    let call = wb.record_call("seat02", 1.5, &["--agent", "alice"]);
    let mut writer = wb.login("writer", PASSWORD);
    let note = writer
        .post_json(
            &format!("/api/calls/{call}/notes"),
            r#"{"at_ms":100,"text":"shared"}"#,
        )
        .json()["id"]
        .as_i64()
        .unwrap();
    let mut alice = wb.login("alice", PASSWORD);
    let card = writer.get("/api/scorecards/complaint").json()["card"].clone();
    let questions: Vec<serde_json::Value> = card["sections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["questions"].as_array().unwrap().clone())
        .collect();
    let answers: Vec<serde_json::Value> = questions
        .iter()
        .map(|q| {
            let v = match q["kind"].as_str().unwrap() {
                "yes_no" => serde_json::json!("yes"),
                "scale" => serde_json::json!(5),
                _ => q["max_points"].clone(),
            };
            serde_json::json!({"q": q["id"], "value": v, "at_ms": 500})
        })
        .collect();
    let mut evaluate = || -> i64 {
        let r = writer.post_json(
            &format!("/api/calls/{call}/evaluations"),
            r#"{"scorecard":"complaint"}"#,
        );
        assert_eq!(r.status, 201, "{}", r.body_text());
        let ev = r.json()["id"].as_i64().unwrap();
        let body = serde_json::json!({ "answers": answers }).to_string();
        let r = writer.post_json(&format!("/api/evaluations/{ev}/answers"), &body);
        assert_eq!(r.status, 204, "{}", r.body_text());
        let r = writer.post_json(&format!("/api/evaluations/{ev}/submit"), "");
        assert_eq!(r.status, 200, "{}", r.body_text());
        assert_eq!(r.json()["score"]["percent"], 100.0);
        ev
    };
    let (ev_ack, ev_disp, ev_res) = (evaluate(), evaluate(), evaluate());
    let first_q = questions[0]["id"].as_str().unwrap().to_owned();
    let r = alice.post_json(
        &format!("/api/evaluations/{ev_res}/dispute"),
        &format!(r#"{{"q":"{first_q}","reason":"the greeting was there at 0:01"}}"#),
    );
    assert_eq!(r.status, 201, "{}", r.body_text());
    let dispute = r.json()["disputes"][0]["id"].as_i64().unwrap();
    // The reports reflect the three evaluations and the open dispute.
    let rep = writer.get("/api/reports/agents").json();
    let alice_row = rep
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["agent"] == "alice")
        .unwrap()
        .clone();
    assert_eq!(
        (
            alice_row["evaluations"].as_i64(),
            alice_row["mean_percent"].as_f64(),
            alice_row["pass_rate"].as_f64(),
            alice_row["disputes"].as_i64()
        ),
        (Some(3), Some(100.0), Some(100.0), Some(1)),
        "{rep}"
    );
    let csv = writer.get("/api/reports/agents?format=csv").body_text();
    assert!(
        csv.starts_with("agent,calls,evaluations,mean_percent")
            && csv.contains("\nalice,1,3,100.0,100.0,1,0,0,0,\n"),
        "{csv}"
    );
    let qrep = writer.get("/api/reports/questions").json();
    assert!(
        qrep.as_array()
            .unwrap()
            .iter()
            .any(|r| r["question"] == first_q.as_str() && r["answered"] == 3 && r["failed"] == 0),
        "{qrep}"
    );
    assert_eq!(writer.get("/api/reports/agents?from=someday").status, 400);

    let mut lead = wb.login("supervisor1", PASSWORD);
    let r = lead.post_json(
        "/api/plans",
        r#"{"name":"setup","filters":{},"quota_per_agent":1,"reviewers":["qa1"],"scorecard":"complaint"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.body_text());
    let plan = r.json()["id"].as_i64().unwrap();
    let r = lead.post_json(&format!("/api/plans/{plan}/draw"), "{}");
    assert_eq!(r.status, 200, "{}", r.body_text());
    let assignment = r.json()["assignments"][0]["id"].as_i64().unwrap();
    // Spot checks: one submitted (every step N/A), one left a draft.
    let new_check = |writer: &mut Session| -> (i64, Vec<String>) {
        let r = writer.post_json(
            &format!("/api/calls/{call}/checks"),
            r#"{"script":"inbound-compliance"}"#,
        );
        assert_eq!(r.status, 201, "{}", r.body_text());
        let v = r.json();
        let steps = v["script"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["key"].as_str().unwrap().to_owned())
            .collect();
        (v["id"].as_i64().unwrap(), steps)
    };
    let (check_done, steps) = new_check(&mut writer);
    let marks: Vec<serde_json::Value> = steps
        .iter()
        .map(|k| serde_json::json!({"step": k, "mark": "na"}))
        .collect();
    let r = writer.post_json(
        &format!("/api/checks/{check_done}/marks"),
        &serde_json::json!({ "marks": marks }).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body_text());
    let r = writer.post_json(&format!("/api/checks/{check_done}/submit"), "");
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.json()["passed"], true, "{}", r.body_text());
    let (check_draft, _) = new_check(&mut writer);
    // A transcript, so that GET /api/calls/{id}/transcript has one to answer with.
    let r = writer.send(
        "POST",
        &format!("/api/calls/{call}/transcript"),
        "text/vtt",
        "WEBVTT\n\n00:00.100 --> 00:01.000\n<v Agent>hello there\n",
        true,
    );
    assert_eq!(r.status, 201, "{}", r.body_text());
    let r = lead.post_json(
        "/api/calibrations",
        &format!(r#"{{"call_id":{call},"scorecard":"complaint","reviewers":["qa1","writer"]}}"#),
    );
    assert_eq!(r.status, 201, "{}", r.body_text());
    let calibration = r.json()["id"].as_i64().unwrap();
    let r = writer.post_json(
        "/api/complaints",
        &format!(r#"{{"call_id":{call},"source":"customer","category":"rudeness","text":"rude at 0:01"}}"#),
    );
    assert_eq!(r.status, 201, "{}", r.body_text());
    let complaint = r.json()["id"].as_i64().unwrap();
    let ids = Ids {
        call,
        note,
        ev_ack,
        ev_disp,
        ev_res,
        dispute,
        first_q,
        plan,
        assignment,
        check_done,
        check_draft,
        calibration,
        complaint,
    };

    // Every rule has an expectation and every expectation a rule.
    let table = cases(&ids, "x");
    let rule_keys: Vec<(String, &str)> = rules()
        .iter()
        .map(|r| (r.method.to_string(), r.path))
        .collect();
    for (m, p) in &rule_keys {
        assert!(
            table.iter().any(|c| c.method == m && c.pattern == *p),
            "route {m} {p} has no expectation in tests/it/web.rs: add one for every role"
        );
    }
    assert_eq!(
        table.len(),
        rule_keys.len(),
        "expectations for routes that do not exist"
    );

    let mut failures = Vec::new();
    for (ri, role) in ROLES.iter().enumerate() {
        let mut s = session_for(&wb, role, &token);
        for case in cases(&ids, role) {
            // Logging out ends the session: use a throwaway one.
            let mut throwaway;
            let sess = if case.pattern == "/logout" && !matches!(*role, "anonymous" | "token") {
                throwaway = session_for(&wb, role, &token);
                &mut throwaway
            } else {
                &mut s
            };
            let r = match case.method {
                "GET" => sess.get(&case.path),
                m => sess.send(m, &case.path, case.ctype, &case.body, true),
            };
            if r.status != case.expect[ri] {
                failures.push(format!(
                    "{role:>10} {} {} → {} (expected {}): {}",
                    case.method,
                    case.path,
                    r.status,
                    case.expect[ri],
                    r.body_text().chars().take(160).collect::<String>()
                ));
            }
            assert_ne!(
                r.status,
                500,
                "{role} {} {}: {}",
                case.method,
                case.path,
                r.body_text()
            );
        }
    }
    assert!(
        failures.is_empty(),
        "role × route mismatches:\n{}",
        failures.join("\n")
    );
}

#[test]
fn agents_see_only_their_calls_and_filters_are_data() {
    let wb = WebBox::start("");
    wb.add_user("alice", "agent", &[]);
    wb.add_user("bob", "agent", &["--agent-id", "bob.b"]);
    wb.add_user("qa1", "qa", &[]);
    let a = wb.record_call(
        "seat02",
        1.0,
        &[
            "--agent",
            "alice",
            "--number",
            "+4930111",
            "--direction",
            "inbound",
            "--campaign",
            "spring",
        ],
    );
    let b = wb.record_call(
        "seat02",
        1.0,
        &[
            "--agent",
            "bob.b",
            "--number",
            "+4940222",
            "--direction",
            "outbound",
        ],
    );
    let mut alice = wb.login("alice", PASSWORD);
    let ids = |r: &serde_json::Value| -> Vec<i64> {
        r["calls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(ids(&alice.get("/api/calls").json()), vec![a]);
    assert_eq!(alice.get(&format!("/api/calls/{b}")).status, 404);
    assert_eq!(alice.get(&format!("/api/calls/{b}/audio")).status, 404);
    assert_eq!(alice.get(&format!("/calls/{b}")).status, 404);
    // Asking for bob's calls by filter does not widen the scope.
    assert_eq!(
        ids(&alice.get("/api/calls?agent=bob.b").json()),
        Vec::<i64>::new()
    );

    let mut qa = wb.login("qa1", PASSWORD);
    let r = qa.get("/api/calls?sort=started&order=asc").json();
    assert_eq!(ids(&r), vec![a, b]);
    assert_eq!(r["total"], 2);
    assert_eq!(ids(&qa.get("/api/calls?number=%2B4940").json()), vec![b]);
    assert_eq!(
        ids(&qa
            .get("/api/calls?direction=inbound&campaign=spring")
            .json()),
        vec![a]
    );
    assert_eq!(
        ids(&qa.get("/api/calls?min_duration_s=600").json()),
        Vec::<i64>::new()
    );
    assert_eq!(ids(&qa.get("/api/calls?per_page=1&page=2").json()), vec![a]);
    // The search page renders the same results and keeps the filters in its URL.
    let page = qa.get("/calls?agent=alice").body_text();
    assert!(
        page.contains(&format!(r#"href="/calls/{a}""#))
            && !page.contains(&format!(r#"href="/calls/{b}""#))
    );

    // An evaluation of bob's call, asked for by alice: "no evaluation", never which call it
    // is of.
    let ev = qa.post_json(
        &format!("/api/calls/{b}/evaluations"),
        r#"{"scorecard":"complaint"}"#,
    );
    assert_eq!(ev.status, 201, "{}", ev.body_text());
    let ev_id = ev.json()["id"].as_i64().unwrap();
    let r = alice.get(&format!("/api/evaluations/{ev_id}"));
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json()["error"],
        format!("no evaluation {ev_id}"),
        "{}",
        r.body_text()
    );

    // SQL metacharacters in every filter: a 200 with nothing found, or a 400 naming the
    // parameter; never a 500, and the index stays intact.
    for evil in [
        "' OR '1'='1",
        "%",
        "_",
        "\\",
        "1; DROP TABLE calls; --",
        "\") OR 1=1 --",
    ] {
        for key in callrec::store::search::SEARCH_KEYS {
            let path = format!("/api/calls?{key}={}", url_enc(evil));
            let r = qa.get(&path);
            match r.status {
                200 => assert_eq!(
                    r.json()["total"],
                    0,
                    "{path} matched calls: {}",
                    r.body_text()
                ),
                400 => assert!(
                    r.json()["error"].as_str().unwrap().contains(key),
                    "{path}: {}",
                    r.body_text()
                ),
                s => panic!("{path}: status {s}: {}", r.body_text()),
            }
        }
    }
    assert_eq!(sqlite(&wb.db(), "PRAGMA integrity_check"), "ok");
    assert_eq!(sqlite(&wb.db(), "SELECT count(*) FROM calls"), "2");
    // Malformed JSON and bad parameters are 400s with a message.
    let r = qa.post_json(&format!("/api/calls/{a}/notes"), "{\"at_ms\": ");
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("malformed JSON"));
    let r = qa.post_json(
        &format!("/api/calls/{a}/notes"),
        r#"{"at_ms": -5, "text": "x"}"#,
    );
    assert_eq!(r.status, 400);
    assert_eq!(qa.get("/api/calls/notanumber").status, 400);
    assert_eq!(qa.get("/api/calls?page=0").status, 400);
    assert_eq!(qa.get("/api/calls?from=yesterday").status, 400);
}

#[test]
fn sessions_csrf_fixation_and_lockout() {
    let wb =
        WebBox::start("session_idle_s = 2\nsession_max_s = 6\nlockout_after = 3\nlockout_s = 60");
    wb.add_user("qa1", "qa", &[]);
    wb.add_user("qa2", "qa", &[]);
    let call = wb.record_call("seat02", 1.0, &["--agent", "alice"]);

    // The bootstrap admin must change the one-time password before anything else.
    let mut admin = Session::anonymous(&wb);
    let r = admin.login("admin", &wb.admin_once);
    assert_eq!((r.status, r.header("location")), (303, Some("/password")));
    let r = admin.get("/api/calls");
    assert_eq!(r.status, 403, "{}", r.body_text());
    assert!(r.body_text().contains("one-time password"));
    let r = admin.post_form(
        "/password",
        &[
            ("current", &wb.admin_once),
            ("new", "brand new password"),
            ("confirm", "brand new password"),
            ("csrf", &admin.csrf.clone().unwrap()),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body_text());
    assert_eq!(admin.get("/api/calls").status, 200);

    // Fixation: a session id planted before login is replaced, and dies.
    let mut victim = wb.login("qa1", PASSWORD);
    let planted = victim.cookie.clone().unwrap();
    let r = victim.login("qa2", PASSWORD);
    assert_eq!(r.status, 303);
    let fresh = victim.cookie.clone().unwrap();
    assert_ne!(planted, fresh, "login must issue a new session id");
    let mut old = Session::anonymous(&wb);
    old.cookie = Some(planted);
    assert_eq!(
        old.get("/api/me").status,
        401,
        "the pre-login session must be gone"
    );
    assert_eq!(victim.get("/api/me").json()["user"], "qa2");

    // Live sessions are cached for up to 1 s; logout and an admin's changes still end them at
    // once. Each session is used first so that it is in the cache.
    let mut leaving = wb.login("qa2", PASSWORD);
    assert_eq!(leaving.get("/api/me").status, 200);
    let mut replay = Session::anonymous(&wb);
    replay.cookie = leaving.cookie.clone();
    let csrf = leaving.csrf.clone().unwrap();
    assert_eq!(leaving.post_form("/logout", &[("csrf", &csrf)]).status, 303);
    assert_eq!(
        replay.get("/api/me").status,
        401,
        "a logged-out cookie must die at once"
    );
    let mut qa2 = wb.login("qa2", PASSWORD);
    assert_eq!(qa2.get("/api/me").status, 200);
    assert_eq!(admin.get("/admin/users").status, 200); // the page carries the CSRF token
    let admin_csrf = admin.csrf.clone().unwrap();
    let r = admin.post_form(
        "/admin/users/qa2",
        &[("op", "disable"), ("csrf", &admin_csrf)],
    );
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(
        qa2.get("/api/me").status,
        401,
        "a disabled user's session must die at once"
    );
    let r = admin.post_form(
        "/admin/users/qa2",
        &[("op", "enable"), ("csrf", &admin_csrf)],
    );
    assert_eq!(r.status, 200, "{}", r.body_text());

    // CSRF: no token, a wrong token, another session's token: all refused, nothing written.
    let mut qa1 = wb.login("qa1", PASSWORD);
    let body = r#"{"at_ms":0,"text":"csrf"}"#;
    let path = format!("/api/calls/{call}/notes");
    let r = qa1.send("POST", &path, "application/json", body, false);
    assert_eq!(r.status, 403, "{}", r.body_text());
    let good = qa1.csrf.clone();
    qa1.csrf = Some("0".repeat(64));
    assert_eq!(qa1.post_json(&path, body).status, 403);
    qa1.csrf = victim.csrf.clone();
    assert_eq!(qa1.post_json(&path, body).status, 403);
    assert_eq!(sqlite(&wb.db(), "SELECT count(*) FROM notes"), "0");
    qa1.csrf = good;
    assert_eq!(qa1.post_json(&path, body).status, 201);
    // A cross-site form post (no CSRF field) is refused too.
    let r = qa1.post_form("/logout", &[]);
    assert_eq!(r.status, 403);

    // Idle expiry: 2 s without a request ends the session.
    std::thread::sleep(Duration::from_millis(2600));
    assert_eq!(qa1.get("/api/me").status, 401);
    // Absolute expiry: activity every second does not extend past 6 s.
    let mut busy = wb.login("qa2", PASSWORD);
    let mut last = 0;
    for _ in 0..8 {
        last = busy.get("/api/me").status;
        if last != 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(1000));
    }
    assert_eq!(
        last, 401,
        "a session must end at session_max_s however busy"
    );

    // Lockout: 3 wrong passwords lock the account; the right one is then refused too.
    for _ in 0..3 {
        assert_eq!(
            Session::anonymous(&wb)
                .login("qa1", "wrong password!!")
                .status,
            401
        );
    }
    let r = Session::anonymous(&wb).login("qa1", PASSWORD);
    assert_eq!(r.status, 401, "{}", r.body_text());
    // A locked account and a name that does not exist get the same answer (no enumeration).
    let unknown = Session::anonymous(&wb).login("nobody-by-this-name", PASSWORD);
    assert_eq!(unknown.status, 401);
    let error = |body: String| {
        body.split(r#"<p class="error">"#)
            .nth(1)
            .and_then(|t| t.split("</p>").next())
            .map(str::to_owned)
    };
    assert!(error(r.body_text()).is_some(), "{}", r.body_text());
    assert_eq!(error(r.body_text()), error(unknown.body_text()));
    let actions = sqlite(&wb.db(), "SELECT group_concat(action) FROM (SELECT action FROM audit WHERE actor = 'qa1' AND action LIKE 'login%' ORDER BY id)");
    assert!(
        actions.ends_with("login.failed,login.failed,login.locked,login.failed,login.refused"),
        "{actions}"
    );
    // An admin resets it (new one-time password) and it works again.
    let out = wb.cli(&["users", "passwd", "qa1"]);
    let once = out.rsplit(' ').next().unwrap().trim().to_owned();
    assert_eq!(Session::anonymous(&wb).login("qa1", &once).status, 303);
}

#[test]
fn ranges_traversal_audit_chain_control_api_and_metrics() {
    let wb = WebBox::start("");
    wb.add_user("qa1", "qa", &[]);
    let call = wb.record_call("seat01", 3.0, &["--agent", "alice"]);
    let mut qa = wb.login("qa1", PASSWORD);
    let rel = sqlite(
        &wb.db(),
        &format!("SELECT rel_path FROM calls WHERE id = {call}"),
    );
    let file = std::fs::read(wb.dir.path().join("store").join(&rel)).unwrap();
    let len = file.len();
    let sha = sqlite(
        &wb.db(),
        &format!("SELECT sha256 FROM calls WHERE id = {call}"),
    );
    let audio = format!("/api/calls/{call}/audio");

    let full = qa.get(&audio);
    assert_eq!(full.status, 200);
    assert_eq!(full.body, file);
    assert_eq!(full.header("content-type"), Some("audio/ogg; codecs=opus"));
    assert_eq!(full.header("accept-ranges"), Some("bytes"));
    let etag = full.header("etag").unwrap().to_owned();
    assert_eq!(etag, format!("\"{}\"", &sha[..32]));
    for (range, first, last) in [
        ("bytes=0-99", 0, 99),
        ("bytes=1000-1999", 1000, 1999),
        ("bytes=-500", len - 500, len - 1),
        (&*format!("bytes={}-", len - 10), len - 10, len - 1),
    ] {
        let r = qa.get_with(&audio, &[("range", range)]);
        assert_eq!(r.status, 206, "{range}");
        assert_eq!(
            r.header("content-range"),
            Some(&*format!("bytes {first}-{last}/{len}")),
            "{range}"
        );
        assert_eq!(r.body, file[first..=last], "{range}");
    }
    for bad in [
        format!("bytes={len}-"),
        "bytes=-0".to_owned(),
        format!("bytes={}-{}", len + 5, len + 10),
    ] {
        let r = qa.get_with(&audio, &[("range", &bad)]);
        assert_eq!(r.status, 416, "{bad}");
        assert_eq!(r.header("content-range"), Some(&*format!("bytes */{len}")));
    }
    assert_eq!(qa.get_with(&audio, &[("if-none-match", &etag)]).status, 304);
    // If-Range with a stale validator: the whole file, not a range of a different version.
    let r = qa.get_with(&audio, &[("range", "bytes=0-9"), ("if-range", "\"stale\"")]);
    assert_eq!((r.status, r.body.len()), (200, len));

    // The WAV rendering decodes to the call's duration and seeks by byte range.
    let wav = qa.get(&format!("/api/calls/{call}/audio.wav"));
    assert_eq!(wav.status, 200);
    let reader = hound::WavReader::new(std::io::Cursor::new(&wav.body)).unwrap();
    let dur_ms: i64 = sqlite(
        &wb.db(),
        &format!("SELECT duration_ms FROM calls WHERE id = {call}"),
    )
    .parse()
    .unwrap();
    assert!(
        (reader.duration() as i64 * 1000 / 16000 - dur_ms).abs() <= 20,
        "wav {} frames vs {dur_ms} ms",
        reader.duration()
    );
    let mid = qa.get_with(
        &format!("/api/calls/{call}/audio.wav"),
        &[("range", "bytes=48044-48443")],
    );
    assert_eq!(mid.status, 206);
    // Sample-for-sample what the full rendering holds at that offset (window decode ≈ full decode).
    let diff = mid
        .body
        .chunks(2)
        .zip(wav.body[48044..48444].chunks(2))
        .map(|(a, b)| {
            (i16::from_le_bytes([a[0], a[1]]) as i32 - i16::from_le_bytes([b[0], b[1]]) as i32)
                .abs()
        })
        .max()
        .unwrap();
    assert!(
        diff < 1500,
        "seeked WAV differs from the full rendering by {diff}"
    );

    // Acoustic metrics computed at finalize: 3 s of the dialogue is the agent speaking.
    let m = qa.get(&format!("/api/calls/{call}")).json()["metrics"].clone();
    let agent_ms = m["agent_talk_ms"].as_i64().unwrap_or(-1);
    assert!(
        (1500..=3100).contains(&agent_ms),
        "agent talk {agent_ms} ms in a 3 s dialogue call: {m}"
    );
    assert_eq!(
        m["talk_ratio"].as_f64(),
        Some(1.0),
        "only the agent speaks in the first seconds: {m}"
    );
    assert_eq!(
        sqlite(
            &wb.db(),
            &format!("SELECT count(*) FROM call_metrics WHERE call_id = {call}")
        ),
        "1"
    );

    // Peaks: the .dat written at finalize, 100 pixels per second, two channels.
    let peaks = qa.get(&format!("/api/calls/{call}/peaks.dat"));
    let p = callrec::dsp::peaks::parse(&peaks.body).unwrap();
    assert_eq!((p.channels, p.samples_per_pixel), (2, 160));
    assert!((i64::from(p.length) - dur_ms / 10).abs() <= 2);
    assert!(peaks.header("cache-control").unwrap().contains("max-age"));

    // Path traversal in file-serving routes: refused, nothing outside the store is read.
    for path in [
        "/static/..%2f..%2f..%2fetc%2fpasswd",
        "/static/%2e%2e/Cargo.toml",
        "/api/calls/..%2f..%2fetc%2fpasswd/audio",
        "/api/calls/1%2f..%2f2/audio",
    ] {
        let r = qa.get(path);
        assert!(matches!(r.status, 400 | 404), "{path}: {}", r.status);
        assert!(!r.body_text().contains("root:"), "{path} leaked a file");
    }
    sqlite(
        &wb.db(),
        &format!("UPDATE calls SET rel_path = '../../../../etc/passwd' WHERE id = {call}"),
    );
    let r = qa.get(&audio);
    assert_eq!(r.status, 404);
    assert!(!r.body_text().contains("root:"));
    sqlite(
        &wb.db(),
        &format!("UPDATE calls SET rel_path = '{rel}' WHERE id = {call}"),
    );

    // Control API with a per-integration token drives the recorder like the socket does.
    let token = wb.cli(&["tokens", "add", "softphone"]).trim().to_owned();
    let mut cti = Session::anonymous(&wb);
    cti.bearer = Some(token.clone());
    let r = cti.post_json("/api/control/seats/seat02/login", r#"{"agent":"carol"}"#);
    assert_eq!(r.status, 200, "{}", r.body_text());
    let r = cti.post_json(
        "/api/control/seats/seat02/start",
        r#"{"meta":{"direction":"inbound","remote_number":"+4911"},"tags":["vip"]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body_text());
    let started = r.json()["call_id"].as_i64().unwrap();
    assert_eq!(
        cti.post_json("/api/control/seats/seat02/start", "{}")
            .status,
        409,
        "a second start on a busy seat"
    );
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        cti.post_json(
            "/api/control/seats/seat02/pause",
            r#"{"reason":"card number"}"#
        )
        .status,
        200
    );
    assert_eq!(
        cti.post_json("/api/control/seats/seat02/resume", "").status,
        200
    );
    assert_eq!(
        cti.post_json("/api/control/seats/seat02/stop", "").status,
        200
    );
    assert_eq!(
        cti.post_json("/api/control/seats/seat99/stop", "").status,
        409
    );
    assert_eq!(
        cti.post_json("/api/control/seats/seat02/explode", "")
            .status,
        404
    );
    assert_eq!(
        cti.post_json("/api/control/seats/seat02/start", "{nope")
            .status,
        400
    );
    let row = sqlite(
        &wb.db(),
        &format!("SELECT agent, direction, remote_number, status FROM calls WHERE id = {started}"),
    );
    assert_eq!(row, "carol|inbound|+4911|complete");
    assert_eq!(
        sqlite(
            &wb.db(),
            &format!("SELECT by || ':' || reason FROM call_intervals WHERE call_id = {started}")
        ),
        "token:softphone:card number"
    );
    // The request's own audit row comes from the web service; `agent.login` (the state the
    // index stores) from the recorder's indexer, so the two may land in either order.
    let audited = sqlite(&wb.db(), "SELECT group_concat(action) FROM (SELECT action FROM audit WHERE actor = 'token:softphone' ORDER BY action, id)");
    assert_eq!(audited, "agent.login,control.login,control.pause,control.resume,control.start,control.start,control.stop,control.stop");
    wb.cli(&["tokens", "revoke", "softphone"]);
    assert_eq!(
        cti.post_json("/api/control/seats/seat02/stop", "").status,
        401
    );

    // Metrics from loopback: seat gauges, disk, request counters.
    let m = Session::anonymous(&wb).get("/metrics").body_text();
    for needle in [
        "callrec_recorder_up 1",
        "callrec_seat_state{seat=\"seat01\",state=\"idle\"} 1",
        "callrec_seat_dropped_frames_total{seat=\"seat02\"} 0",
        "callrec_disk_free_bytes ",
        "callrec_http_requests_total{method=\"GET\",route=\"/api/calls/{id}/audio\",status=\"206\"} 4",
        "callrec_http_request_duration_seconds_bucket{route=\"/api/calls/{id}/audio\",le=\"+Inf\"}",
    ] {
        assert!(m.contains(needle), "metrics lack {needle:?}:\n{m}");
    }
    // Every seat has the worst lag of the last minute, a small number on an idle test box.
    for seat in ["seat01", "seat02"] {
        let prefix = format!("callrec_seat_encoder_lag_max_1m_ms{{seat=\"{seat}\"}} ");
        let value: u64 = m
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix:?} in:\n{m}"));
        assert!(value < 2000, "{seat}: {value} ms");
    }

    // The audit log: one play row per call per session, then verify and tamper.
    let plays = sqlite(
        &wb.db(),
        &format!("SELECT count(*) FROM audit WHERE action = 'play' AND call_id = {call}"),
    );
    assert_eq!(plays, "1", "play is audited once per call per session");
    let out = wb.cli(&["audit", "verify"]);
    assert!(out.contains("audit chain intact"), "{out}");
    assert!(
        Command::new("sqlite3")
            .arg(wb.db())
            .arg("UPDATE audit SET actor = 'mallory' WHERE id = 2")
            .output()
            .unwrap()
            .stderr
            .windows(11)
            .any(|w| w == b"append-only"),
        "the trigger must refuse edits"
    );
    sqlite(
        &wb.db(),
        "DROP TRIGGER audit_no_update; UPDATE audit SET actor = 'mallory' WHERE id = 2",
    );
    let o = wb.cli_with_stdin(&["audit", "verify"], "");
    assert!(!o.status.success(), "verify must fail on an edited row");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("row 2: contents do not match"), "{text}");
}

fn url_enc(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

#[test]
fn tls_by_default_with_a_generated_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let port = super::webbox::free_port();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[box]\nid = \"tls\"\n[storage]\ndir = \"{}\"\n[server]\nbind = \"127.0.0.1:{port}\"\n",
            dir.path().join("store").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(super::common::bin())
        .arg("--config")
        .arg(&cfg)
        .arg("serve")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let cert = dir.path().join("store/tls/cert.pem");
    let url = format!("https://localhost:{port}/healthz");
    let mut ok = None;
    for _ in 0..100 {
        let o = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(&cert)
            .arg(&url)
            .output()
            .unwrap();
        if o.stdout == b"200" {
            ok = Some(());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Plain HTTP to the TLS port gets no page.
    let plain = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://127.0.0.1:{port}/healthz"))
        .output()
        .unwrap();
    let hsts = Command::new("curl")
        .args(["-s", "-D", "-", "-o", "/dev/null", "--cacert"])
        .arg(&cert)
        .arg(&url)
        .output()
        .unwrap();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    assert!(
        ok.is_some(),
        "https with the generated certificate did not answer 200"
    );
    assert_ne!(plain.stdout, b"200");
    assert!(String::from_utf8_lossy(&hsts.stdout)
        .to_lowercase()
        .contains("strict-transport-security"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("store/tls/key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the private key must be 0600");
}

#[test]
fn sampling_plans_draw_reproducibly_honour_filters_and_quotas() {
    let wb = WebBox::start("");
    wb.add_user("lead", "supervisor", &[]);
    wb.add_user("qa1", "qa", &[]);
    wb.add_user("qa2", "qa", &[]);
    let mut calls: HashMap<&str, Vec<i64>> = HashMap::new();
    for (agent, dir) in [
        ("alice", "inbound"),
        ("alice", "inbound"),
        ("alice", "inbound"),
        ("bob", "inbound"),
        ("bob", "inbound"),
        ("bob", "outbound"),
        ("carol", "inbound"),
    ] {
        let id = wb.record_call("seat02", 0.5, &["--agent", agent, "--direction", dir]);
        calls.entry(agent).or_default().push(id);
    }
    let mut lead = wb.login("lead", PASSWORD);
    let r = lead.post_json(
        "/api/plans",
        r#"{"name":"weekly inbound","filters":{"direction":"inbound"},"quota_per_agent":2,"reviewers":["qa1","qa2"],"scorecard":"inbound-service"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.body_text());
    let plan = r.json()["id"].as_i64().unwrap();
    // A plan whose filters are not a valid search is refused with the reason.
    let bad = lead.post_json(
        "/api/plans",
        r#"{"name":"bad","filters":{"min_duration_s":"long"},"reviewers":["qa1"],"scorecard":"complaint"}"#,
    );
    assert_eq!(bad.status, 400);

    let draw = |lead: &mut Session, seed: u64| -> serde_json::Value {
        let r = lead.post_json(
            &format!("/api/plans/{plan}/draw"),
            &format!(r#"{{"seed":{seed}}}"#),
        );
        assert_eq!(r.status, 200, "{}", r.body_text());
        r.json()
    };
    let picked = |d: &serde_json::Value| -> Vec<i64> {
        let mut v: Vec<i64> = d["assignments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["call_id"].as_i64().unwrap())
            .collect();
        v.sort();
        v
    };
    let d1 = draw(&mut lead, 7);
    let d2 = draw(&mut lead, 7);
    assert_eq!(picked(&d1), picked(&d2), "same seed, same sample");
    assert_eq!(d1["candidates_sha256"], d2["candidates_sha256"]);
    assert_eq!(d1["candidates"], 6, "the outbound call is not a candidate");
    // Quotas: 2 of alice's 3, both of bob's inbound calls, carol's only one (listed as short).
    let p = picked(&d1);
    let count = |agent: &str| p.iter().filter(|id| calls[agent].contains(id)).count();
    assert_eq!((count("alice"), count("bob"), count("carol")), (2, 2, 1));
    assert!(
        !p.contains(&calls["bob"][2]),
        "filters honoured: no outbound call"
    );
    assert_eq!(d1["short"], serde_json::json!([["carol", 1, 2]]));
    // Dealt evenly over the two reviewers.
    let per_reviewer = |r: &str| {
        d1["assignments"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["reviewer"] == r)
            .count()
    };
    assert_eq!(per_reviewer("qa1") + per_reviewer("qa2"), 5);
    assert!(per_reviewer("qa1").abs_diff(per_reviewer("qa2")) <= 1);
    // Different seeds eventually pick a different pair of alice's calls.
    assert!(
        (8..40).any(|s| picked(&draw(&mut lead, s)) != p),
        "the seed must matter"
    );

    // Swap: a reason is required; the replacement is alice's call that was not picked.
    let a = d1["assignments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agent"] == "alice")
        .unwrap()
        .clone();
    let mut reviewer = wb.login(a["reviewer"].as_str().unwrap(), PASSWORD);
    let path = format!("/api/assignments/{}/swap", a["id"]);
    for reason in [r#"{"reason":""}"#, r#"{"reason":"   short  "}"#, "{}"] {
        let r = reviewer.post_json(&path, reason);
        assert_eq!(r.status, 400, "{reason}: {}", r.body_text());
    }
    let r = reviewer.post_json(&path, r#"{"reason":"wrong number: a fax machine"}"#);
    assert_eq!(r.status, 200, "{}", r.body_text());
    let replacement = r.json()["call_id"].as_i64().unwrap();
    let alice_in_d1: Vec<i64> = p
        .iter()
        .copied()
        .filter(|id| calls["alice"].contains(id))
        .collect();
    assert!(calls["alice"].contains(&replacement) && !alice_in_d1.contains(&replacement));
    let queue = reviewer.get("/api/assignments").json();
    assert!(queue
        .as_array()
        .unwrap()
        .iter()
        .any(|q| q["status"] == "swapped"
            && q["swap_reason"]
                .as_str()
                .unwrap()
                .starts_with("wrong number")));
    let audited = sqlite(
        &wb.db(),
        "SELECT count(*) FROM audit WHERE action = 'plan.draw' AND detail LIKE '%\"seed\":7,%'",
    );
    assert_eq!(audited, "2", "each draw is audited with its seed");
    assert_eq!(
        sqlite(
            &wb.db(),
            "SELECT count(*) FROM audit WHERE action = 'assignment.swap'"
        ),
        "1"
    );
}

/// Full marks on every question of a scorecard (as JSON), except `fail` answered "no".
fn answers_for(card: &serde_json::Value, fail: Option<&str>) -> serde_json::Value {
    let answers: Vec<serde_json::Value> = card["sections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["questions"].as_array().unwrap().clone())
        .map(|q| {
            let v = match q["kind"].as_str().unwrap() {
                "yes_no" if Some(q["id"].as_str().unwrap()) == fail => serde_json::json!("no"),
                "yes_no" => serde_json::json!("yes"),
                "scale" => serde_json::json!(5),
                _ => q["max_points"].clone(),
            };
            serde_json::json!({"q": q["id"], "value": v, "at_ms": 200})
        })
        .collect();
    serde_json::json!({ "answers": answers })
}

#[test]
fn calibration_is_blind_until_closed_and_measures_reviewers() {
    let wb = WebBox::start("");
    wb.add_user("lead", "supervisor", &[]);
    wb.add_user("qa1", "qa", &[]);
    wb.add_user("qa2", "qa", &[]);
    wb.add_user("alice", "agent", &["--agent-id", "alice"]);
    let call = wb.record_call("seat02", 1.0, &["--agent", "alice"]);
    let mut lead = wb.login("lead", PASSWORD);
    let (mut qa1, mut qa2) = (wb.login("qa1", PASSWORD), wb.login("qa2", PASSWORD));
    let mut alice = wb.login("alice", PASSWORD);

    // One reviewer only is no calibration.
    let r = lead.post_json(
        "/api/calibrations",
        &format!(r#"{{"call_id":{call},"scorecard":"complaint","reviewers":["qa1"]}}"#),
    );
    assert_eq!(r.status, 400, "{}", r.body_text());
    let r = lead.post_json(
        "/api/calibrations",
        &format!(
            r#"{{"call_id":{call},"scorecard":"complaint","reviewers":["qa1","qa2"],"reference":"qa1","due_days":2}}"#
        ),
    );
    assert_eq!(r.status, 201, "{}", r.body_text());
    let cal = r.json();
    let id = cal["id"].as_i64().unwrap();
    let ev_of = |who: &str| {
        cal["evaluation_ids"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p[0] == who)
            .unwrap()[1]
            .as_i64()
            .unwrap()
    };
    let (ev1, ev2) = (ev_of("qa1"), ev_of("qa2"));
    let card = qa1.get("/api/scorecards/complaint").json()["card"].clone();
    let first_yes_no = card["sections"][0]["questions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["kind"] == "yes_no" && q["critical"] != true)
        .map(|q| q["id"].as_str().unwrap().to_owned());
    for (s, ev, fail) in [
        (&mut qa1, ev1, None),
        (&mut qa2, ev2, first_yes_no.as_deref()),
    ] {
        let r = s.post_json(
            &format!("/api/evaluations/{ev}/answers"),
            &answers_for(&card, fail).to_string(),
        );
        assert_eq!(r.status, 204, "{}", r.body_text());
        assert_eq!(
            s.post_json(&format!("/api/evaluations/{ev}/submit"), "")
                .status,
            200
        );
    }

    // Blind while open: qa1 sees neither qa2's evaluation nor the answers side by side.
    assert_eq!(qa1.get(&format!("/api/evaluations/{ev2}")).status, 404);
    let listed = qa1.get(&format!("/api/calls/{call}/evaluations")).json();
    let seen: Vec<i64> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(seen, vec![ev1], "{listed}");
    let v = qa1.get(&format!("/api/calibrations/{id}")).json();
    assert!(
        v["result"].is_null() && v["hidden_because"].is_string(),
        "{v}"
    );
    // The agent never sees calibration scores, nor the session.
    assert_eq!(alice.get(&format!("/api/evaluations/{ev1}")).status, 404);
    assert_eq!(alice.get(&format!("/api/calibrations/{id}")).status, 403);
    // Calibration scores stay out of the agent's report.
    let rep = lead.get("/api/reports/agents").json();
    assert!(
        rep.as_array()
            .unwrap()
            .iter()
            .all(|r| r["agent"] != "alice" || r["evaluations"] == 0),
        "{rep}"
    );

    // The lead sees the result at any time; after closing, so do the reviewers.
    let r = lead.post_json(&format!("/api/calibrations/{id}/close"), "");
    assert_eq!(r.status, 200, "{}", r.body_text());
    let result = qa2.get(&format!("/api/calibrations/{id}")).json()["result"].clone();
    let reviewers = result["reviewers"].as_array().unwrap();
    let dist = |who: &str| {
        reviewers.iter().find(|r| r["reviewer"] == who).unwrap()["distance_from_reference"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(dist("qa1"), 0.0, "{result:#}");
    let n_questions = result["questions"].as_array().unwrap().len() as f64;
    if first_yes_no.is_some() {
        // One question differs by its whole share (100 points), the rest agree.
        assert!(
            (dist("qa2") - 100.0 / n_questions).abs() < 1e-6,
            "{result:#}"
        );
        let disagree: Vec<&serde_json::Value> = result["questions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|q| q["agree"] == false)
            .collect();
        assert_eq!(disagree.len(), 1, "{result:#}");
        assert_eq!(disagree[0]["spread"], 1.0);
    }
    // The lead's TOML editor for scorecards carries the exported card; a reviewer has none.
    let editor = lead.get("/qa/edit/scorecard/complaint").body_text();
    assert!(
        editor.contains(r#"<textarea id="edit-text""#)
            && editor.contains("id = &quot;complaint&quot;"),
        "{editor}"
    );
    assert_eq!(qa1.get("/qa/edit/scorecard/complaint").status, 403);
    assert_eq!(lead.get("/qa/edit/scorecard/nope").status, 404);
    let page = qa2.get(&format!("/calibrations/{id}")).body_text();
    assert!(
        page.contains("Answers side by side") && page.contains("qa1"),
        "{page}"
    );
    let rv = lead.get("/api/reports/reviewers").json();
    let qa2_row = rv["reviewers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["reviewer"] == "qa2")
        .cloned()
        .unwrap();
    assert_eq!(qa2_row["calibrations"], 1, "{rv}");
}

#[test]
fn transcripts_search_and_demo_content() {
    let wb = WebBox::start("");
    wb.add_user("qa1", "qa", &[]);
    let sam = wb.record_call("seat01", 6.0, &["--agent", "sam", "--direction", "inbound"]);
    let ana = wb.record_call(
        "seat02",
        6.0,
        &["--agent", "ana", "--direction", "outbound"],
    );
    let mut qa1 = wb.login("qa1", PASSWORD);

    // CLI import of a WebVTT file; a transcript that runs past the call is refused.
    let dir = tempfile::tempdir().unwrap();
    let vtt = dir.path().join("sam.vtt");
    std::fs::write(
        &vtt,
        "WEBVTT\n\n00:00.200 --> 00:02.000\n<v Agent>This call is recorded for quality.\n\n00:02.500 --> 00:04.000\n<v Customer>My router keeps dropping.\n",
    )
    .unwrap();
    let out = wb.cli(&[
        "transcript",
        "import",
        &sam.to_string(),
        vtt.to_str().unwrap(),
    ]);
    assert!(out.contains("imported 2 segment(s)"), "{out}");
    let long = dir.path().join("long.json");
    std::fs::write(
        &long,
        r#"{"segments":[{"start":1.0,"end":95.0,"speaker":"agent","text":"far too long"}]}"#,
    )
    .unwrap();
    let o = wb.cli_with_stdin(
        &[
            "transcript",
            "import",
            &ana.to_string(),
            long.to_str().unwrap(),
        ],
        "",
    );
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("does not fit call"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // Full-text search over transcripts: words, a prefix, and FTS syntax treated as text.
    let found = |s: &mut Session, q: &str| -> Vec<i64> {
        let r = s.get(&format!("/api/calls?transcript={}", q));
        assert_eq!(r.status, 200, "{q}: {}", r.body_text());
        r.json()["calls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(found(&mut qa1, "recorded"), vec![sam]);
    assert_eq!(found(&mut qa1, "rout*"), vec![sam]);
    assert_eq!(found(&mut qa1, "recorded%20router"), vec![sam]);
    assert!(found(&mut qa1, "recorded%20refund").is_empty());
    assert!(found(&mut qa1, "%22%20OR%20NEAR(%2A").is_empty());
    let t = qa1.get(&format!("/api/calls/{sam}/transcript")).json();
    assert_eq!(t["segments"][1]["speaker"], "customer", "{t}");
    assert_eq!(t["format"], "webvtt");
    assert_eq!(qa1.get(&format!("/api/calls/{ana}/transcript")).status, 204);

    // The demo seeding: accounts, a plan drawn with the fixed seed, evaluations, a spot check.
    let out = wb.cli(&["qa", "seed-demo"]);
    assert!(
        !out.contains("demo account qa1"),
        "qa1 exists already: {out}"
    );
    assert!(out.contains("demo account lead (supervisor)"), "{out}");
    assert!(
        out.contains("2 call(s) assigned, 2 evaluated, 1 spot check(s)"),
        "{out}"
    );
    assert!(out.contains("ruled justified by lead"), "{out}");
    let db = wb.db();
    assert_eq!(
        sqlite(
            &db,
            "SELECT status || ' ' || ruling || ' ' || filed_by || ' ' || ruled_by FROM complaints"
        ),
        "ruled justified qa1 lead"
    );
    assert_eq!(
        sqlite(
            &db,
            "SELECT group_concat(status, ',') FROM (SELECT status FROM evaluations ORDER BY id)"
        ),
        "acknowledged,disputed"
    );
    assert_eq!(
        sqlite(
            &db,
            "SELECT count(*) FROM compliance_checks WHERE status = 'submitted' AND passed = 1"
        ),
        "1"
    );
    assert_eq!(sqlite(&db, "PRAGMA integrity_check"), "ok");
    assert_eq!(
        wb.cli(&["qa", "seed-demo"]).trim(),
        "demo QA content is there already"
    );
    let rep = qa1.get("/api/reports/agents").json();
    let evaluated: i64 = rep
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["evaluations"].as_i64().unwrap())
        .sum();
    assert_eq!(evaluated, 2, "{rep}");
}

#[test]
fn storage_identity_refuses_a_wrong_or_unmounted_disk() {
    let wb = WebBox::start("");
    let store = wb.db().parent().unwrap().to_owned();
    let id = std::fs::read_to_string(store.join("STORAGE-ID"))
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(id.len(), 32, "{id}");
    assert_eq!(
        sqlite(
            &wb.db(),
            "SELECT value FROM box_meta WHERE key = 'storage_id'"
        ),
        id
    );
    // `callrec serve` with a config naming another storage id, or an empty mount point.
    let tmp = tempfile::tempdir().unwrap();
    let serve_with = |dir: &std::path::Path, storage_id: &str| {
        let cfg = tmp.path().join("other.toml");
        std::fs::write(
            &cfg,
            format!(
                "[box]\nid = \"web-box\"\n[storage]\ndir = \"{}\"\nid = \"{storage_id}\"\n[server]\nbind = \"127.0.0.1:{}\"\ntls = false\n",
                dir.display(),
                free_port()
            ),
        )
        .unwrap();
        let o = Command::new(bin())
            .arg("--config")
            .arg(&cfg)
            .arg("serve")
            .output()
            .unwrap();
        assert!(!o.status.success(), "serve must refuse");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let err = serve_with(&store, "0123456789abcdef0123456789abcdef");
    assert!(err.contains("is the right disk mounted"), "{err}");
    let empty = tmp.path().join("mnt");
    std::fs::create_dir(&empty).unwrap();
    let err = serve_with(&empty, &id);
    assert!(err.contains("probably not mounted"), "{err}");
    assert_eq!(
        std::fs::read_dir(&empty).unwrap().count(),
        0,
        "nothing may be written to an unmounted mount point"
    );
}

/// The role × route matrix's team-scope axis: with `reviewer_scope = "team"`, a qa and a
/// supervisor of team red meet each of team blue's objects (call, note, evaluation, spot check,
/// calibration, assignment) on every route that takes one, and get 404 where their role may use
/// the route (403 where it may not), with a message naming neither the call nor its agent; and
/// every list (search, reports and their CSV, the review queue, sampling draws, calibration
/// sessions, the QA page) holds only red's calls. Team blue's lead sees blue's, as a control.
#[test]
fn every_route_with_team_scope() {
    use callrec::serve::access::Access;
    let wb = WebBox::start("reviewer_scope = \"team\"");
    for (name, role, team) in [
        ("lead_a", "supervisor", "red"),
        ("qa_a", "qa", "red"),
        ("lead_b", "supervisor", "blue"),
        ("qa_b", "qa", "blue"),
        ("alice", "agent", "red"),
        ("bob", "agent", "blue"),
    ] {
        wb.add_user(name, role, &["--team", team]);
    }
    let call_a = wb.record_call("seat02", 1.0, &["--agent", "alice", "--number", "+4930111"]);
    let call_b = wb.record_call("seat02", 1.0, &["--agent", "bob", "--number", "+4940222"]);
    let (mut lead_b, mut qa_b) = (wb.login("lead_b", PASSWORD), wb.login("qa_b", PASSWORD));
    let ok = |r: &super::webbox::Reply, want: u16| {
        assert_eq!(r.status, want, "{}", r.body_text());
        r.json()
    };

    // Team blue's objects on bob's call.
    let note_b = ok(
        &qa_b.post_json(
            &format!("/api/calls/{call_b}/notes"),
            r#"{"at_ms":100,"text":"blue note"}"#,
        ),
        201,
    )["id"]
        .as_i64()
        .unwrap();
    let card = qa_b.get("/api/scorecards/complaint").json()["card"].clone();
    let ev_b = ok(
        &qa_b.post_json(
            &format!("/api/calls/{call_b}/evaluations"),
            r#"{"scorecard":"complaint"}"#,
        ),
        201,
    )["id"]
        .as_i64()
        .unwrap();
    let r = qa_b.post_json(
        &format!("/api/evaluations/{ev_b}/answers"),
        &answers_for(&card, None).to_string(),
    );
    assert_eq!(r.status, 204, "{}", r.body_text());
    ok(
        &qa_b.post_json(&format!("/api/evaluations/{ev_b}/submit"), ""),
        200,
    );
    let check_b = ok(
        &qa_b.post_json(
            &format!("/api/calls/{call_b}/checks"),
            r#"{"script":"inbound-compliance"}"#,
        ),
        201,
    )["id"]
        .as_i64()
        .unwrap();
    let r = qa_b.send(
        "POST",
        &format!("/api/calls/{call_b}/transcript"),
        "text/vtt",
        "WEBVTT\n\n00:00.100 --> 00:01.000\n<v Agent>blue words\n",
        true,
    );
    assert_eq!(r.status, 201, "{}", r.body_text());
    // qa_a takes part in blue's session, yet may not see it: the call decides.
    let cal_b = ok(
        &lead_b.post_json(
            "/api/calibrations",
            &format!(
                r#"{{"call_id":{call_b},"scorecard":"complaint","reviewers":["qa_a","qa_b"]}}"#
            ),
        ),
        201,
    );
    let cal_ev_b = cal_b["evaluation_ids"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p[0] == "qa_a")
        .unwrap()[1]
        .as_i64()
        .unwrap();
    let cal_b = cal_b["id"].as_i64().unwrap();
    let plan_b = ok(
        &lead_b.post_json(
            "/api/plans",
            r#"{"name":"blue","filters":{},"reviewers":["qa_b"],"scorecard":"complaint"}"#,
        ),
        201,
    )["id"]
        .as_i64()
        .unwrap();
    let drawn = ok(
        &lead_b.post_json(&format!("/api/plans/{plan_b}/draw"), "{}"),
        200,
    );
    assert_eq!(
        drawn["candidates"], 1,
        "blue's lead draws blue's call only: {drawn}"
    );
    let asg_b = drawn["assignments"][0]["id"].as_i64().unwrap();
    assert_eq!(drawn["assignments"][0]["call_id"], call_b);

    // Every route that names one object, pointed at blue's.
    let target = |pattern: &str| -> Option<(String, &'static str)> {
        let id_of = |p: &str| -> Option<i64> {
            Some(match p {
                p if p.starts_with("/api/calls/{id}") || p == "/calls/{id}" => call_b,
                "/api/notes/{id}" => note_b,
                p if p.starts_with("/api/evaluations/") => ev_b,
                p if p.starts_with("/api/checks/") => check_b,
                p if p.contains("/calibrations/{id}") => cal_b,
                p if p.starts_with("/api/assignments/{id}") => asg_b,
                _ => return None,
            })
        };
        let body = match pattern {
            p if p.ends_with("/notes") => r#"{"at_ms":1,"text":"x"}"#,
            p if p.ends_with("/evaluations") => r#"{"scorecard":"complaint"}"#,
            p if p.ends_with("/answers") => r#"{"answers":[]}"#,
            p if p.ends_with("/checks") => r#"{"script":"inbound-compliance"}"#,
            p if p.ends_with("/marks") => r#"{"marks":[]}"#,
            p if p.ends_with("/dispute") => r#"{"q":"x","reason":"y"}"#,
            p if p.ends_with("/resolve") => r#"{"dispute_id":1,"decision":"upheld","note":"z"}"#,
            p if p.ends_with("/swap") => r#"{"reason":"not mine"}"#,
            p if p.ends_with("/heard") => r#"{"ranges":[[0.0,0.5]]}"#,
            p if p.ends_with("/outcome") => r#"{"outcome":"completed"}"#,
            _ => "",
        };
        id_of(pattern).map(|id| (pattern.replace("{id}", &id.to_string()), body))
    };
    let mut failures = Vec::new();
    let mut covered = 0;
    for (user, role) in [
        ("lead_a", callrec::store::users::Role::Supervisor),
        ("qa_a", callrec::store::users::Role::Qa),
    ] {
        let mut s = wb.login(user, PASSWORD);
        let r = s.get(&format!("/api/calls/{call_a}"));
        assert_eq!(r.status, 200, "{user} sees red's call: {}", r.body_text());
        for rule in rules() {
            let Some((path, body)) = target(rule.path) else {
                continue;
            };
            covered += 1;
            let may = matches!(&rule.access, Access::Roles(roles) if roles.contains(&role));
            let want = if may { 404 } else { 403 };
            let r = match rule.method.as_str() {
                "GET" => s.get(&path),
                m => {
                    let ctype = if rule.path.ends_with("/transcript") {
                        "text/vtt"
                    } else {
                        "application/json"
                    };
                    let body = if ctype == "text/vtt" {
                        "WEBVTT\n\n00:00.000 --> 00:00.500\nx\n"
                    } else {
                        body
                    };
                    s.send(m, &path, ctype, body, true)
                }
            };
            let text = r.body_text();
            let names_call = !rule.path.contains("calls/{id}")
                && (text.contains(&format!("call {call_b}"))
                    || text.contains(&format!("call_id\":{call_b}")));
            if r.status != want || text.contains("bob") || text.contains("+4940222") || names_call {
                failures.push(format!(
                    "{user} {} {path} → {} (expected {want}, naming nothing): {}",
                    rule.method,
                    r.status,
                    text.chars().take(160).collect::<String>()
                ));
            }
        }
        // The lists: search, reports, queue, calibrations, the QA page.
        let calls = s.get("/api/calls").json();
        let ids: Vec<i64> = calls["calls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_i64().unwrap())
            .collect();
        assert_eq!(
            ids,
            vec![call_a],
            "{user} searches red's calls only: {calls}"
        );
        let page = s.get("/calls").body_text();
        assert!(
            !page.contains("+4940222") && page.contains("+4930111"),
            "{user} /calls"
        );
        for report in ["agents", "questions", "trend", "reviewers"] {
            for fmt in ["json", "csv"] {
                let r = s.get(&format!("/api/reports/{report}?format={fmt}"));
                assert_eq!(r.status, 200, "{}", r.body_text());
                let t = r.body_text();
                assert!(
                    !t.contains("bob") && !t.contains("qa_b") && !t.contains("blue"),
                    "{user}'s {report} report ({fmt}) counts blue's calls: {t}"
                );
            }
        }
        let agents = s.get("/api/reports/agents").json();
        assert_eq!(agents.as_array().map(Vec::len), Some(1), "{agents}");
        assert_eq!(
            (agents[0]["agent"].as_str(), agents[0]["calls"].as_i64()),
            (Some("alice"), Some(1))
        );
        let t = s.get("/reports").body_text();
        assert!(!t.contains("bob") && !t.contains("qa_b"), "{user} /reports");
        let queue = if role == callrec::store::users::Role::Supervisor {
            s.get("/api/assignments?all=1").json()
        } else {
            s.get("/api/assignments").json()
        };
        assert_eq!(
            queue.as_array().map(Vec::len),
            Some(0),
            "{user}'s queue: {queue}"
        );
        let cals = s.get("/api/calibrations").json();
        assert!(
            !cals.as_array().unwrap().iter().any(|c| c["id"] == cal_b),
            "{user} lists blue's calibration: {cals}"
        );
        let t = s.get("/qa").body_text();
        assert!(
            !t.contains(&format!("data-call=\"{call_b}\""))
                && !t.contains(&format!("/calibrations/{cal_b}\""))
                && !t.contains("bob"),
            "{user} /qa shows blue's work"
        );
        let r = s.get(&format!("/api/evaluations/{cal_ev_b}"));
        assert_eq!(r.status, 404, "{user}: {}", r.body_text());
    }
    assert!(covered >= 2 * 20, "only {covered} per-object routes tried");
    assert!(
        failures.is_empty(),
        "team scope leaks:\n{}",
        failures.join("\n")
    );

    // Sampling: red's lead aiming a plan at bob's number draws nothing and counts nothing.
    let mut lead_a = wb.login("lead_a", PASSWORD);
    for (filters, want) in [(r#"{"number":"+4940"}"#, 0), ("{}", 1)] {
        let plan = ok(
            &lead_a.post_json(
                "/api/plans",
                &format!(r#"{{"name":"red {want}","filters":{filters},"reviewers":["qa_a"],"scorecard":"complaint"}}"#),
            ),
            201,
        )["id"]
            .as_i64()
            .unwrap();
        let d = ok(
            &lead_a.post_json(&format!("/api/plans/{plan}/draw"), "{}"),
            200,
        );
        assert_eq!(d["candidates"], want, "{filters}: {d}");
        assert!(
            d["assignments"]
                .as_array()
                .unwrap()
                .iter()
                .all(|a| a["call_id"] == call_a),
            "{d}"
        );
    }
    // Control: blue's lead sees blue's figures, queue and session.
    let t = lead_b.get("/api/reports/agents?format=csv").body_text();
    assert!(t.contains("\nbob,1,1,"), "{t}");
    let q = lead_b.get("/api/assignments?all=1").json();
    assert!(
        q.as_array().unwrap().iter().any(|a| a["call_id"] == call_b),
        "{q}"
    );
    assert!(lead_b
        .get("/api/calibrations")
        .json()
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["id"] == cal_b));
}

/// `[server] trusted_proxies`: from a trusted peer the rightmost untrusted `X-Forwarded-For`
/// hop is the client (its own login-rate bucket, its address in the audit rows) and `/metrics`
/// is no longer open to "loopback", the proxy being local; from any other peer the header is
/// ignored, so a client cannot pick its bucket or its logged address.
#[test]
fn trusted_proxies_name_the_client_and_keep_metrics_private() {
    // 30 attempts per address per 5 minutes (login.rs), then 429.
    let fail = |wb: &WebBox, xff: &str| {
        Session::anonymous(wb)
            .login_with("nobody", "wrong password 1234", &[("x-forwarded-for", xff)])
            .status
    };
    let count = |wb: &WebBox, sql: &str| sqlite(&wb.db(), sql).parse::<i64>().unwrap();

    // Behind a proxy on this machine (the test client plays it).
    let wb = WebBox::start(r#"trusted_proxies = ["127.0.0.1", "10.1.0.0/16"]"#);
    for _ in 0..30 {
        // The left hop is the client's own claim; 10.1.2.3 is another trusted proxy.
        assert_eq!(fail(&wb, "198.51.100.7, 203.0.113.1, 10.1.2.3"), 401);
    }
    assert_eq!(fail(&wb, "203.0.113.1"), 429, "the client's bucket is full");
    assert_eq!(fail(&wb, "203.0.113.2"), 401, "another client has its own");
    assert_eq!(
        count(
            &wb,
            "SELECT count(*) FROM audit WHERE action = 'login.failed' AND ip = '203.0.113.1'"
        ),
        30
    );
    assert_eq!(
        count(
            &wb,
            "SELECT count(*) FROM audit WHERE ip IN ('198.51.100.7', '127.0.0.1', '10.1.2.3')"
        ),
        0
    );
    let r = Session::anonymous(&wb).get("/metrics");
    assert_eq!(
        r.status,
        401,
        "/metrics through the proxy: {}",
        r.body_text()
    );
    let r = Session::anonymous(&wb).get_with("/metrics", &[("x-forwarded-for", "127.0.0.1")]);
    assert_eq!(r.status, 401, "a forwarded loopback is no loopback");
    drop(wb);

    // The proxy is elsewhere: this peer's header is a spoof and changes nothing.
    let wb = WebBox::start(r#"trusted_proxies = ["10.0.0.5"]"#);
    for i in 0..30 {
        assert_eq!(fail(&wb, &format!("203.0.113.{i}")), 401);
    }
    assert_eq!(
        fail(&wb, "203.0.113.200"),
        429,
        "one bucket whatever the header says"
    );
    assert_eq!(
        count(
            &wb,
            "SELECT count(*) FROM audit WHERE action = 'login.failed' AND ip = '127.0.0.1'"
        ),
        30
    );
    assert_eq!(
        Session::anonymous(&wb).get("/metrics").status,
        200,
        "local Prometheus"
    );
}

/// GETs that write audit rows (search, play and download, the audit log) refuse a request the
/// browser marks `Sec-Fetch-Site: cross-site`, so a link or redirect on another site cannot write
/// rows in the user's name; the same request from callrec's own pages (`same-origin`), typed
/// (`none`) or from a client that sends no such header passes and is audited. Pages without an
/// audit row (a call's page) still open from a link in a web mail.
#[test]
fn audited_gets_refuse_cross_site_requests() {
    let wb = WebBox::start("");
    wb.add_user("qa1", "qa", &[]);
    wb.add_user("auditor1", "auditor", &[]);
    let call = wb.record_call("seat02", 1.0, &["--agent", "alice", "--number", "+4930111"]);
    let rows = || {
        sqlite(&wb.db(), "SELECT count(*) FROM audit")
            .parse::<i64>()
            .unwrap()
    };
    for (who, path) in [
        ("qa", "/api/calls?number=%2B4930".to_owned()),
        ("qa", "/calls?number=%2B4930".to_owned()),
        ("qa", format!("/api/calls/{call}/audio")),
        ("qa", format!("/api/calls/{call}/audio?download=1")),
        ("qa", format!("/api/calls/{call}/audio.wav")),
        ("auditor", "/audit".to_owned()),
        ("auditor", "/api/audit".to_owned()),
    ] {
        // A session per route: `play` (audio, WAV) is audited once per session and call.
        let mut s = wb.login(&format!("{who}1"), PASSWORD);
        let once = path.contains("/audio") && !path.contains("download=1");
        let before = rows();
        let r = s.get_with(&path, &[("sec-fetch-site", "cross-site")]);
        assert_eq!(r.status, 403, "cross-site {path}: {}", r.body_text());
        assert_eq!(rows(), before, "cross-site {path} wrote an audit row");
        for site in ["same-origin", "same-site", "none", ""] {
            let before = rows();
            let extra: &[(&str, &str)] = if site.is_empty() {
                &[]
            } else {
                &[("sec-fetch-site", site)]
            };
            let r = s.get_with(&path, extra);
            assert_eq!(r.status, 200, "{site:?} {path}: {}", r.body_text());
            if !once || site == "same-origin" {
                assert_eq!(rows(), before + 1, "{site:?} {path} not audited");
            }
        }
    }
    let r = wb.login("qa1", PASSWORD).get_with(
        &format!("/calls/{call}"),
        &[("sec-fetch-site", "cross-site")],
    );
    assert_eq!(r.status, 200, "a call's page opens from a mail link");
}
