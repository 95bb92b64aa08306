//! Call outcomes end to end (`callrec run`): the CTI stops a telesales call with a sale and its
//! amount through the HTTP control API, a lead corrects it, unknown outcomes are refused with
//! the campaign's list, an agent cannot touch another agent's call, the dialler back-fills a
//! second call by its external id from CSV, and search finds both by outcome.

use super::webbox::{Session, WebBox, PASSWORD};
use std::time::Duration;

fn sqlite(db: &std::path::Path, sql: &str) -> String {
    let o = std::process::Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

fn ids(v: &serde_json::Value) -> Vec<i64> {
    let mut ids: Vec<i64> = v["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    ids.sort();
    ids
}

#[test]
fn outcomes_from_the_cti_a_lead_and_the_dialler() {
    let wb = WebBox::start("");
    wb.add_user("lead", "supervisor", &[]);
    wb.add_user("alice", "agent", &[]);
    wb.add_user("bob", "agent", &[]);
    let token = wb.cli(&["tokens", "add", "cti"]).trim().to_owned();
    let mut cti = Session::anonymous(&wb);
    cti.bearer = Some(token);

    // A: a telesales call the CTI stops with a sale of 129.90.
    let r = cti.post_json(
        "/api/control/seats/seat02/start",
        r#"{"meta": {"agent": "alice", "campaign": "telesales"}}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body_text());
    let a = r.json()["call_id"].as_i64().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // An outcome the campaign does not have is refused before anything stops.
    let r = cti.post_json(
        "/api/control/seats/seat02/stop",
        r#"{"outcome": "complete"}"#,
    );
    assert_eq!(r.status, 400, "{}", r.body_text());
    let err = r.json()["error"].as_str().unwrap().to_owned();
    assert!(
        err.contains("complete") && err.contains("sale, not_interested, callback"),
        "{err}"
    );
    let r = cti.post_json(
        "/api/control/seats/seat02/stop",
        r#"{"outcome": "sale", "amount": 129.90}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.json()["call_id"], a);

    let mut lead = wb.login("lead", PASSWORD);
    let o = lead.get(&format!("/api/calls/{a}/outcome")).json();
    assert_eq!(o["current"]["code"], "sale", "{o}");
    assert_eq!(o["current"]["amount"], 129.9, "{o}");
    assert_eq!(o["current"]["source"], "cti", "{o}");
    assert_eq!(o["list_campaign"], "telesales");
    assert_eq!(o["allowed"].as_array().unwrap().len(), 6);

    // The lead corrects the amount; an unknown code and an amount on a callback are refused.
    let path = format!("/api/calls/{a}/outcome");
    let r = lead.send(
        "PUT",
        &path,
        "application/json",
        r#"{"outcome": "sale", "amount": 99.5}"#,
        true,
    );
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.json()["amount"], 99.5);
    let r = lead.send(
        "PUT",
        &path,
        "application/json",
        r#"{"outcome": "won"}"#,
        true,
    );
    assert_eq!(r.status, 400, "{}", r.body_text());
    let err = r.json()["error"].as_str().unwrap().to_owned();
    assert!(
        err.contains("won")
            && err.contains(
                "sale, not_interested, callback, do_not_call, wrong_number, answering_machine"
            ),
        "{err}"
    );
    let r = lead.send(
        "PUT",
        &path,
        "application/json",
        r#"{"outcome": "callback", "amount": 5}"#,
        true,
    );
    assert_eq!(r.status, 400, "{}", r.body_text());
    // Bob may not set the outcome of alice's call: as for any call he may not see, a 404.
    let mut bob = wb.login("bob", PASSWORD);
    let r = bob.send(
        "PUT",
        &path,
        "application/json",
        r#"{"outcome": "callback"}"#,
        true,
    );
    assert_eq!(r.status, 404, "{}", r.body_text());

    // B: a call recorded without outcome, back-filled by the dialler by its external id.
    let b = wb.record_call(
        "seat01",
        0.5,
        &[
            "--agent",
            "bob",
            "--campaign",
            "telesales",
            "--external-id",
            "DIAL-77",
        ],
    );
    let csv = wb.db().parent().unwrap().join("backfill.csv");
    std::fs::write(&csv, "external_id,outcome,amount\nDIAL-77,sale,45.00\n").unwrap();
    let out = wb.cli(&["outcomes", "import", csv.to_str().unwrap()]);
    assert!(out.contains("1 call outcome(s) set"), "{out}");

    // C: over the socket the indexer checks the outcome; a refused one does not keep the call
    // recording, and the answer says it was not set.
    let c: i64 = wb
        .cli(&["call", "start", "--seat", "seat01", "--campaign", "surveys"])
        .trim()
        .parse()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let o = wb.cli_with_stdin(
        &["call", "stop", "--seat", "seat01", "--outcome", "sale"],
        "",
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains(&format!("call {c} stopped, but its outcome was not set"))
            && err.contains("complete, partial, refusal, non_contact"),
        "{err}"
    );
    assert_eq!(
        sqlite(
            &wb.db(),
            &format!("SELECT status || ':' || coalesce(outcome, '-') FROM calls WHERE id = {c}")
        ),
        "complete:-"
    );

    // Search by outcome and by class.
    assert_eq!(ids(&lead.get("/api/calls?outcome=sale").json()), vec![a, b]);
    assert_eq!(
        ids(&lead.get("/api/calls?outcome_class=positive").json()),
        vec![a, b]
    );
    assert_eq!(ids(&bob.get("/api/calls?outcome=sale").json()), vec![b]);
    assert_eq!(lead.get("/api/calls?outcome_class=won").status, 400);
    let call_a = lead.get(&format!("/api/calls/{a}")).json();
    assert_eq!(
        (&call_a["outcome"], &call_a["outcome_amount"]),
        (&serde_json::json!("sale"), &serde_json::json!(99.5)),
        "{call_a}"
    );

    // The call page shows it; the search page filters on it.
    let page = lead.get(&format!("/calls/{a}")).body_text();
    assert!(
        page.contains(r#"data-outcome="sale""#) && page.contains("99.50"),
        "{page}"
    );
    assert!(
        page.contains(r#"<option value="sale" data-amount="1" selected>Sale (positive)</option>"#),
        "the lead's outcome form: {page}"
    );
    let qa_page = {
        wb.add_user("rita", "qa", &[]);
        wb.login("rita", PASSWORD)
            .get(&format!("/calls/{a}"))
            .body_text()
    };
    assert!(!qa_page.contains("outcome-form"), "QA sets no outcome");
    let js = lead.get("/static/outcome.js");
    assert_eq!(js.status, 200);
    let page = lead.get("/calls?outcome_class=positive").body_text();
    assert!(
        page.contains(&format!(r#"href="/calls/{a}""#))
            && page.contains(&format!(r#"href="/calls/{b}""#))
            && page.contains(r#"<option value="positive" selected"#),
        "{page}"
    );

    // Every change is in the history and audited: the CTI's and the lead's on A, the import's
    // on B; the refusals left nothing.
    assert_eq!(
        sqlite(
            &wb.db(),
            &format!("SELECT group_concat(source || ':' || code || ':' || amount_minor, ' ') FROM call_outcome_history WHERE call_id = {a}")
        ),
        "cti:sale:12990 web:sale:9950"
    );
    assert_eq!(
        sqlite(
            &wb.db(),
            "SELECT group_concat(call_id, ' ') FROM (SELECT call_id FROM audit WHERE action = 'outcome.set' ORDER BY id)"
        ),
        format!("{a} {a} {b}")
    );
    assert_eq!(
        sqlite(
            &wb.db(),
            "SELECT actor FROM audit WHERE action = 'outcome.set' ORDER BY id LIMIT 1 OFFSET 1"
        ),
        "lead"
    );
}
