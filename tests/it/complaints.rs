//! The complaints register and the operator's page end to end (`callrec run`, team scope):
//! who may take which step of a complaint's life cycle (role × route × scope, with the status
//! codes), the one appeal decided by a different lead, the final-response deadline, the
//! complaint figures and the operator's page (and its CSV) changing with a ruling, the command
//! line; and erasure and retention reaching complaint text (bytes of the index checked).

use super::webbox::{Session, WebBox, PASSWORD};
use std::path::Path;

fn sqlite(db: &Path, sql: &str) -> String {
    let o = std::process::Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

fn status(s: &mut Session, path: &str, body: &str) -> (u16, serde_json::Value) {
    let r = s.post_json(path, body);
    let v = serde_json::from_str(&r.body_text()).unwrap_or(serde_json::Value::Null);
    (r.status, v)
}

#[test]
fn complaint_life_cycle_permissions_deadline_figures_and_the_operators_page() {
    let wb = WebBox::start("reviewer_scope = \"team\"");
    for (name, role, team) in [
        ("lead_r", "supervisor", "red"),
        ("lead_r2", "supervisor", "red"),
        ("lead_b", "supervisor", "blue"),
        ("bill", "supervisor", "billing"),
        ("qa_r", "qa", "red"),
        ("alice", "agent", "red"),
        ("bob", "agent", "blue"),
        ("aud", "auditor", "red"),
        ("ann", "admin", "red"),
    ] {
        wb.add_user(name, role, &["--team", team]);
    }
    let call = wb.record_call(
        "seat01",
        1.0,
        &["--agent", "alice", "--number", "+441632960111"],
    );
    let s = |u: &str| wb.login(u, PASSWORD);
    let (mut lead_r, mut lead_r2, mut lead_b, mut bill) =
        (s("lead_r"), s("lead_r2"), s("lead_b"), s("bill"));
    let (mut qa_r, mut alice, mut bob, mut aud, mut ann) =
        (s("qa_r"), s("alice"), s("bob"), s("aud"), s("ann"));

    // The operator's page before: no complaint.
    let page = alice.get("/agents/alice").body_text();
    assert!(
        page.contains(r#"id="fig-complaints-justified">0<"#),
        "{page}"
    );

    // Filing: staff in scope for a customer (201); an agent (403 by route); a lead of another
    // team for a customer (403 by scope); blue's lead as a department is no supervisor of a
    // department with that name — billing's supervisor is.
    let body = format!(
        r#"{{"call_id":{call},"source":"customer","category":"rudeness","text":"Mrs Featherstonehaugh says he hung up at 0:01"}}"#
    );
    assert_eq!(status(&mut alice, "/api/complaints", &body).0, 403);
    assert_eq!(status(&mut lead_b, "/api/complaints", &body).0, 403);
    assert_eq!(status(&mut aud, "/api/complaints", &body).0, 403);
    let bad = body.replace("rudeness", "no_such_category");
    let (st, v) = status(&mut qa_r, "/api/complaints", &bad);
    assert_eq!(st, 400);
    assert!(v["error"].as_str().unwrap().contains("rudeness"), "{v}");
    let (st, k) = status(&mut qa_r, "/api/complaints", &body);
    assert_eq!(st, 201, "{k}");
    let id = k["id"].as_i64().unwrap();
    assert_eq!(
        (k["status"].as_str(), k["agent"].as_str()),
        (Some("filed"), Some("alice"))
    );
    assert_eq!(k["overdue"], false);
    let dep = format!(
        r#"{{"call_id":{call},"source":"department","category":"process_breach","text":"skipped the billing check"}}"#
    );
    assert_eq!(status(&mut lead_b, "/api/complaints", &dep).0, 201);
    let (st, d) = status(&mut bill, "/api/complaints", &dep);
    assert_eq!((st, d["department"].as_str()), (201, Some("billing")));

    // Seeing it: alice (her call), red's staff, the auditor, the admin, its filer; bob and
    // blue's lead get a 404, as for a call out of scope.
    let path = format!("/api/complaints/{id}");
    for (who, sess, want) in [
        ("alice", &mut alice, 200),
        ("lead_r", &mut lead_r, 200),
        ("qa_r", &mut qa_r, 200),
        ("aud", &mut aud, 200),
        ("ann", &mut ann, 200),
        ("bob", &mut bob, 404),
        ("lead_b", &mut lead_b, 404),
        ("bill", &mut bill, 404),
    ] {
        assert_eq!(sess.get(&path).status, want, "{who} GET {path}");
    }
    assert_eq!(bob.get("/api/complaints").json(), serde_json::json!([]));
    assert_eq!(bob.get(&format!("/complaints/{id}")).status, 404);

    // The steps: (who, step, body, expected status), in order.
    let steps: Vec<(&str, &str, &str, u16)> = vec![
        ("alice", "acknowledge", "", 403),
        ("qa_r", "acknowledge", "", 403),
        ("lead_b", "acknowledge", "", 404),
        ("aud", "acknowledge", "", 403),
        ("lead_r", "acknowledge", "", 200),
        ("lead_r", "acknowledge", "", 409),
        ("lead_r", "investigate", "", 200),
        ("bob", "respond", r#"{"text":"x"}"#, 404),
        ("lead_r", "respond", r#"{"text":"x"}"#, 403),
        ("alice", "respond", r#"{"text":"He swore; see 0:01"}"#, 200),
        ("alice", "respond", r#"{"text":"again"}"#, 409),
        ("alice", "appeal", r#"{"text":"too early"}"#, 409),
        ("lead_r", "rule", r#"{"ruling":"maybe","reason":"x"}"#, 400),
        (
            "lead_r",
            "rule",
            r#"{"ruling":"justified","reason":""}"#,
            400,
        ),
        (
            "qa_r",
            "rule",
            r#"{"ruling":"justified","reason":"x"}"#,
            403,
        ),
        (
            "lead_b",
            "rule",
            r#"{"ruling":"justified","reason":"x"}"#,
            404,
        ),
        (
            "lead_r",
            "rule",
            r#"{"ruling":"justified","reason":"hung up at 0:01"}"#,
            200,
        ),
        (
            "lead_r2",
            "rule",
            r#"{"ruling":"not_justified","reason":"x"}"#,
            409,
        ),
        ("alice", "respond", r#"{"text":"late"}"#, 409),
        (
            "lead_r",
            "decide",
            r#"{"ruling":"not_justified","reason":"x"}"#,
            409,
        ),
    ];
    let mut failures = Vec::new();
    for (who, step, body, want) in steps {
        let sess = match who {
            "alice" => &mut alice,
            "qa_r" => &mut qa_r,
            "lead_b" => &mut lead_b,
            "aud" => &mut aud,
            "lead_r" => &mut lead_r,
            "lead_r2" => &mut lead_r2,
            "bob" => &mut bob,
            other => panic!("{other}"),
        };
        let (st, v) = status(sess, &format!("/api/complaints/{id}/{step}"), body);
        if st != want {
            failures.push(format!("{who} {step} {body}: {st} (expected {want}): {v}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Ruled justified: the figures and the operator's page change (for alice and her team).
    let f = alice.get("/api/figures?from=2020-01-01").json();
    assert_eq!(
        (
            f["complaints"]["filed"].as_i64(),
            f["complaints"]["justified"].as_i64(),
            f["complaints"]["pending"].as_i64()
        ),
        (Some(3), Some(1), Some(2)),
        "{f}"
    );
    let page = alice.get("/agents/alice?from=2020-01-01").body_text();
    assert!(
        page.contains(r#"id="fig-complaints-justified">1<"#),
        "{page}"
    );
    assert!(page.contains("svg") && page.contains("Volume") && page.contains("Targets"));
    // Figures link to the calls and complaints behind them.
    assert!(
        page.contains("/calls?agent=alice&amp;from=2020-01-01"),
        "{page}"
    );
    assert!(
        page.contains("/complaints?agent=alice&amp;from=2020-01-01"),
        "{page}"
    );
    // A "no justified complaints" target for red: missed this month.
    let r = lead_r.send(
        "PUT",
        "/api/targets",
        "application/json",
        r#"{"team":"red","figure":"complaints_justified","period":"month","goal":0,"direction":"lower"}"#,
        true,
    );
    assert_eq!(r.status, 200, "{}", r.body_text());
    let t = lead_r.get("/api/targets?team=red").json();
    assert_eq!(
        (
            t[0]["current"]["actual"].as_f64(),
            t[0]["current"]["verdict"].as_str()
        ),
        (Some(1.0), Some("missed")),
        "{t}"
    );
    let team = lead_r.get("/teams/red?from=2020-01-01").body_text();
    assert!(
        team.contains("complaints_justified per month")
            && team.contains(r#"<span class="badge missed">missed</span>"#),
        "{team}"
    );
    assert!(
        team.contains(r#"id="fig-complaints-justified">1<"#),
        "{team}"
    );
    assert!(
        team.contains("/calls?team=red&amp;from=2020-01-01"),
        "{team}"
    );
    let calls = lead_r.get("/api/calls?team=red").json();
    assert_eq!(calls["total"], 1, "{calls}");
    // Scope of the page: alice sees hers only, blue's lead not red's, the admin all.
    assert_eq!(alice.get("/agents/bob").status, 403);
    assert_eq!(alice.get("/teams/red").status, 403);
    assert_eq!(lead_b.get("/agents/alice").status, 403);
    assert_eq!(lead_b.get("/teams/red").status, 403);
    assert_eq!(ann.get("/teams/blue").status, 200);
    // CSV, audited as an export.
    let r = lead_r.get("/agents/alice?from=2020-01-01&format=csv");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/csv; charset=utf-8"));
    let csv = r.body_text();
    assert!(csv.starts_with("figure,value,from_utc,to_utc\r\n"), "{csv}");
    assert!(
        csv.contains("\r\ncomplaints_justified,1,2020-01-01T00:00:00.000Z,"),
        "{csv}"
    );
    assert!(csv.contains("\r\ncalls_handled,1,"), "{csv}");
    assert_eq!(
        sqlite(
            &wb.db(),
            "SELECT count(*) FROM audit WHERE action = 'figures.export' AND actor = 'lead_r'"
        ),
        "1"
    );

    // The complaint page: the player, moments as links, the step forms by role.
    let html = alice.get(&format!("/complaints/{id}")).body_text();
    assert!(
        html.contains(&format!(r#"<div id="call" data-call-id="{call}""#)),
        "{html}"
    );
    assert!(
        html.contains(r##"<a class="moment" href="#t=1">0:01</a>"##),
        "{html}"
    );
    assert!(html.contains(r#"data-step="appeal""#) && !html.contains(r#"data-step="rule""#));

    // One appeal, by alice; not by the lead who ruled, nor a second time; the lead who ruled
    // may not decide it, another red lead does.
    assert_eq!(
        status(
            &mut lead_r,
            &format!("/api/complaints/{id}/appeal"),
            r#"{"text":"x"}"#
        )
        .0,
        403
    );
    assert_eq!(
        status(
            &mut alice,
            &format!("/api/complaints/{id}/appeal"),
            r#"{"text":"the line dropped at 0:01"}"#
        )
        .0,
        200
    );
    assert_eq!(
        status(
            &mut alice,
            &format!("/api/complaints/{id}/appeal"),
            r#"{"text":"again"}"#
        )
        .0,
        409
    );
    let (st, v) = status(
        &mut lead_r,
        &format!("/api/complaints/{id}/decide"),
        r#"{"ruling":"not_justified","reason":"x"}"#,
    );
    assert_eq!(st, 403, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("different lead"),
        "{v}"
    );
    assert_eq!(
        status(
            &mut lead_b,
            &format!("/api/complaints/{id}/decide"),
            r#"{"ruling":"not_justified","reason":"x"}"#
        )
        .0,
        404
    );
    let (st, k) = status(
        &mut lead_r2,
        &format!("/api/complaints/{id}/decide"),
        r#"{"ruling":"partly_justified","reason":"line log shows a drop"}"#,
    );
    assert_eq!(st, 200, "{k}");
    assert_eq!(
        (k["status"].as_str(), k["final_ruling"].as_str()),
        (Some("final"), Some("partly_justified"))
    );
    let f = alice.get("/api/figures?from=2020-01-01").json();
    assert_eq!(
        (
            f["complaints"]["justified"].as_i64(),
            f["complaints"]["partly_justified"].as_i64()
        ),
        (Some(0), Some(1)),
        "{f}"
    );
    // Every step audited, the text only as a keyed hash.
    let actions = sqlite(
        &wb.db(),
        &format!("SELECT group_concat(action, ' ') FROM (SELECT action FROM audit WHERE json_extract(detail, '$.complaint') = {id} ORDER BY id)"),
    );
    assert_eq!(
        actions,
        "complaint.file complaint.acknowledge complaint.investigate complaint.respond complaint.rule complaint.appeal complaint.decide"
    );
    assert_eq!(
        sqlite(
            &wb.db(),
            "SELECT count(*) FROM audit WHERE detail LIKE '%Featherstonehaugh%'"
        ),
        "0"
    );

    // The deadline: a complaint whose due date has passed is overdue (its due date moved to
    // the past in the index, as a clock 8 weeks on would see it), in the list, the figures and
    // the page; a ruling ends it.
    let open = d["id"].as_i64().unwrap();
    sqlite(
        &wb.db(),
        &format!("UPDATE complaints SET due_at_utc = '2020-01-02T00:00:00.000Z' WHERE id = {open}"),
    );
    let od = lead_r.get("/api/complaints?overdue=1").json();
    let ids: Vec<i64> = od
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![open], "{od}");
    assert_eq!(
        alice.get("/api/figures?from=2020-01-01").json()["complaints"]["overdue"],
        1
    );
    assert!(lead_r
        .get("/complaints")
        .body_text()
        .contains(r#"<span class="badge overdue">overdue</span>"#));
    let (st, _) = status(
        &mut lead_r,
        &format!("/api/complaints/{open}/rule"),
        r#"{"ruling":"not_justified","reason":"checked"}"#,
    );
    assert_eq!(st, 200);
    assert_eq!(
        lead_r.get("/api/complaints?overdue=1").json(),
        serde_json::json!([])
    );

    // The command line, for an account: the same rules.
    let out = wb.cli_with_stdin(
        &["complaints", "ack", &id.to_string(), "--as", "lead_r2"],
        "",
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is final"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let filed = wb.cli(&[
        "complaints",
        "file",
        "--as",
        "lead_r",
        "--agent",
        "alice",
        "--at",
        "2026-12-01T09:00:00Z",
        "--category",
        "wait_time",
        "--text",
        "kept waiting",
    ]);
    let cid: i64 = filed.split_whitespace().next().unwrap().parse().unwrap();
    assert!(filed.contains("filed agent alice call -"), "{filed}");
    let ruled = wb.cli(&[
        "complaints",
        "rule",
        &cid.to_string(),
        "--as",
        "lead_r2",
        "--ruling",
        "justified",
        "--reason",
        "queue log",
    ]);
    assert!(
        ruled.contains("ruled") && ruled.contains("justified"),
        "{ruled}"
    );
    let listed = wb.cli(&["complaints", "list", "--as", "bob"]);
    assert!(listed.trim().is_empty(), "bob sees none: {listed}");
    let json: serde_json::Value =
        serde_json::from_str(&wb.cli(&["complaints", "show", &cid.to_string(), "--json"])).unwrap();
    assert_eq!(json["final_ruling"], "justified");
}

#[test]
fn erasure_scrubs_complaint_text_and_retention_removes_old_complaints() {
    let wb = WebBox::start("");
    wb.add_user("ann", "admin", &[]);
    wb.add_user("rita", "supervisor", &[]);
    let a = wb.record_call(
        "seat01",
        1.0,
        &["--agent", "al", "--number", "+442079460077"],
    );
    let b = wb.record_call(
        "seat01",
        1.0,
        &["--agent", "al", "--number", "+493012345678"],
    );
    let mut ann = wb.login("ann", PASSWORD);
    let mut rita = wb.login("rita", PASSWORD);
    let file = |s: &mut Session, call: i64, text: &str| -> i64 {
        let (st, v) = status(
            s,
            "/api/complaints",
            &format!(
                r#"{{"call_id":{call},"source":"customer","category":"billing","text":"{text}"}}"#
            ),
        );
        assert_eq!(st, 201, "{v}");
        v["id"].as_i64().unwrap()
    };
    let ka = file(&mut ann, a, "Ottoline Quibbleworth was overcharged");
    let (st, _) = status(
        &mut rita,
        &format!("/api/complaints/{ka}/rule"),
        r#"{"ruling":"justified","reason":"Quibbleworth tariff wrong"}"#,
    );
    assert_eq!(st, 200);
    let kb = file(&mut ann, b, "Bartholomew Zeppelin kept");
    let db = wb.db();
    let grep = |needle: &str| -> bool {
        let dir = db.parent().unwrap();
        std::fs::read_dir(dir).unwrap().any(|e| {
            let p = e.unwrap().path();
            p.is_file()
                && std::fs::read(&p)
                    .unwrap_or_default()
                    .windows(needle.len())
                    .any(|w| w == needle.as_bytes())
        })
    };
    assert!(
        grep("Quibbleworth"),
        "the text must be there first, or the grep proves nothing"
    );

    let o = wb.cli_with_stdin(
        &[
            "erase",
            "--number",
            "+44 20 7946 0077",
            "--request",
            "DSR-9",
            "--by",
            "ann",
            "--out",
            wb.dir.path().join("receipt").to_str().unwrap(),
            "--json",
        ],
        &format!("{PASSWORD}\n"),
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let receipt: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        receipt["complaints_scrubbed"],
        serde_json::json!([ka]),
        "{receipt}"
    );
    assert!(
        receipt["removed"].to_string().contains("complaints"),
        "{receipt}"
    );
    // Not a byte of the text left in the index, its WAL or SHM; the ruling stays.
    assert!(
        !grep("Quibbleworth") && !grep("Ottoline"),
        "complaint text survived the erasure"
    );
    assert!(
        grep("Bartholomew Zeppelin"),
        "another customer's complaint keeps its text"
    );
    let k = ann.get(&format!("/api/complaints/{ka}")).json();
    assert!(k["text"].is_null() && k["ruling_reason"].is_null(), "{k}");
    assert_eq!(
        (k["final_ruling"].as_str(), k["scrubbed_at_utc"].is_string()),
        (Some("justified"), true)
    );
    assert!(ann
        .get(&format!("/complaints/{ka}"))
        .body_text()
        .contains("<em>erased</em>"));

    // Retention: settled complaints go 3 years after filing, open ones stay. Filing dates are
    // moved back in the index, as a clock 3 years on would see them.
    sqlite(&db, &format!("UPDATE complaints SET filed_at_utc = '2022-01-01T00:00:00.000Z' WHERE id IN ({ka}, {kb})"));
    let run: serde_json::Value =
        serde_json::from_str(&wb.cli(&["retention", "run", "--json"])).unwrap();
    assert_eq!(run["deleted_complaints"], serde_json::json!([ka]), "{run}");
    assert_eq!(
        sqlite(&db, "SELECT group_concat(id) FROM complaints"),
        kb.to_string()
    );
    assert_eq!(
        sqlite(
            &db,
            "SELECT count(*) FROM audit WHERE action = 'complaint.purge'"
        ),
        "1"
    );
}
