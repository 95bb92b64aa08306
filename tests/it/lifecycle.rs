//! Retention, legal holds, erasure and the garbage step, with a fake clock.
//!
//! Calls are recorded by a real `callrec record` (synthetic seat), so every row has a real file,
//! peaks and ledger entry. The fake clock is the `now` handed to `store::retention`: "31 days
//! later" is today's calls seen from `now + 31 days`, so no row is ever edited behind the
//! ledger's back. Holds and erasure go through the CLI with admin passwords on stdin, and the
//! erasure receipt is checked with the real `openssl`.

use crate::common::*;
use callrec::store::{self, lifecycle, retention};
use chrono::{Duration, Utc};
use rusqlite::Connection;
use std::path::Path;
use std::process::{Command, Output};

const SEAT: &str = "[[seat]]\nid = \"s1\"\nmode = \"control\"\n[[seat.input]]\nkind = \"synthetic\"\nseed = 5\nagent_channel = 0\ncustomer_channel = 1\n";

const RETENTION: &str = r#"
[retention]
default_keep_days = 365
[[retention.rule]]
name = "sales"
campaign = "sales"
keep_days = 30
[[retention.rule]]
name = "complaints"
tag = "complaint"
keep_days = 730
"#;

const NUMBER: &str = "+44 20 7946 0001";

fn record(rec: &Recorder, extra: &[&str]) -> i64 {
    let id = rec.start_call("s1", extra);
    std::thread::sleep(std::time::Duration::from_millis(1200));
    rec.cmd(&["call", "stop", "--seat", "s1"]);
    let t0 = std::time::Instant::now();
    while rec.call(id)["status"] == "recording" {
        assert!(t0.elapsed().as_secs() < 10, "call {id} not finalized");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    id
}

/// Runs the CLI with `stdin` as standard input (an admin's password).
fn cli_with_stdin(rec: &Recorder, stdin: &str, args: &[&str]) -> Output {
    crate::common::cli_with_stdin(&rec.cfg, args, &format!("{stdin}\n"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn status(conn: &Connection, id: i64) -> String {
    conn.query_row("SELECT status FROM calls WHERE id = ?1", [id], |r| r.get(0))
        .unwrap()
}

fn files_of(storage: &Path, conn: &Connection, id: i64) -> (bool, bool) {
    let rel: String = conn
        .query_row("SELECT rel_path FROM calls WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .unwrap();
    let audio = storage.join(rel);
    (audio.exists(), audio.with_extension("dat").exists())
}

fn add_admin(conn: &Connection, name: &str, password: &str) {
    store::users::add_user(
        conn,
        &store::users::NewUser {
            username: name,
            role: store::users::Role::Admin,
            agent_id: None,
            team: None,
            password,
            must_change: false,
        },
        callrec::store::audit::Actor::local("test"),
    )
    .unwrap();
}

fn ids(v: &[retention::Due]) -> Vec<i64> {
    v.iter().map(|d| d.call_id).collect()
}

#[test]
fn retention_holds_erasure_and_the_garbage_step_on_a_fake_clock() {
    let mut rec = Recorder::start(&format!("{SEAT}{RETENTION}"), vec![]);
    let a = record(
        &rec,
        &[
            "--campaign",
            "sales",
            "--agent",
            "alice",
            "--number",
            NUMBER,
        ],
    );
    let b = record(
        &rec,
        &[
            "--campaign",
            "sales",
            "--agent",
            "bob",
            "--tag",
            "complaint",
        ],
    );
    let c = record(
        &rec,
        &[
            "--campaign",
            "support",
            "--agent",
            "carol",
            "--number",
            "+442079460001",
        ],
    );
    let d = record(&rec, &["--campaign", "sales", "--agent", "dave"]);
    let e = record(&rec, &["--campaign", "support", "--agent", "erin"]);
    rec.stop();
    let storage = rec.storage();
    let conn = store::open_rw(&rec.db()).unwrap();
    add_admin(&conn, "ann", "ann-secret-pw-1");
    add_admin(&conn, "ben", "ben-secret-pw-2");
    let cfg = callrec::config::Config::load(&rec.cfg).unwrap();
    let now = Utc::now();

    // Day 29: nothing is due; `retention run --dry-run` (real clock) lists nothing either.
    let p = retention::plan(&conn, &cfg.retention, now + Duration::days(29)).unwrap();
    assert!(p.delete.is_empty() && p.held.is_empty(), "{p:?}");
    let dry = rec.cmd(&["retention", "run", "--dry-run"]);
    assert!(dry.contains("would delete 0 call(s)"), "{dry}");

    // A legal hold on dave's calls: needs an admin's password, and a second admin to release.
    let wrong = cli_with_stdin(
        &rec,
        "not-the-password",
        &[
            "hold", "place", "--agent", "dave", "--reason", "case 17", "--by", "ann",
        ],
    );
    assert!(!wrong.status.success(), "{}", text(&wrong));
    assert!(text(&wrong).contains("wrong password"), "{}", text(&wrong));
    let placed = cli_with_stdin(
        &rec,
        "ann-secret-pw-1",
        &[
            "hold", "place", "--agent", "dave", "--reason", "case 17", "--by", "ann",
        ],
    );
    assert!(placed.status.success(), "{}", text(&placed));
    assert!(text(&placed).contains("legal hold #1 placed by ann"));
    let no_reason = cli_with_stdin(
        &rec,
        "ann-secret-pw-1",
        &[
            "hold",
            "place",
            "--call",
            &a.to_string(),
            "--reason",
            " ",
            "--by",
            "ann",
        ],
    );
    assert!(!no_reason.status.success(), "a hold needs a reason");
    let same = cli_with_stdin(
        &rec,
        "ann-secret-pw-1",
        &["hold", "release", "1", "--reason", "done", "--by", "ann"],
    );
    assert!(!same.status.success());
    assert!(
        text(&same).contains("a second admin must release it"),
        "{}",
        text(&same)
    );
    let listed = rec.cmd(&["hold", "list"]);
    assert!(
        listed.contains("every call of agent dave") && listed.contains("case 17"),
        "{listed}"
    );

    // Day 31: the sales calls are due (30 days), except the complaint (730) and dave's (held).
    let day31 = now + Duration::days(31);
    let p = retention::plan(&conn, &cfg.retention, day31).unwrap();
    assert_eq!(ids(&p.delete), vec![a]);
    assert_eq!(ids(&p.held), vec![d]);
    assert_eq!(p.delete[0].rule, "sales");
    let sha_a: String = conn
        .query_row("SELECT sha256 FROM calls WHERE id = ?1", [a], |r| r.get(0))
        .unwrap();
    let out = retention::run(&conn, &storage, &cfg.retention, day31, "test", false).unwrap();
    assert_eq!(out.deleted_calls, 1);
    assert_eq!(status(&conn, a), "deleted");
    assert_eq!(
        files_of(&storage, &conn, a),
        (false, false),
        "audio and peaks gone"
    );
    for id in [b, c, d, e] {
        assert_eq!(status(&conn, id), "complete", "call {id}");
        assert_eq!(files_of(&storage, &conn, id), (true, true), "call {id}");
    }
    let (tomb_sha, tomb_detail): (String, String) = conn
        .query_row(
            "SELECT file_sha256, detail FROM ledger WHERE call_id = ?1 AND kind = 'tombstone'",
            [a],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(tomb_sha, sha_a, "the tombstone names the deleted file");
    assert!(
        tomb_detail.contains("retention rule \\\"sales\\\": kept 30 days"),
        "{tomb_detail}"
    );
    let audited: i64 = conn
        .query_row(
            "SELECT count(*) FROM audit WHERE action = 'delete' AND call_id = ?1",
            [a],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(audited, 1);
    // The same day again deletes nothing more.
    let again = retention::run(&conn, &storage, &cfg.retention, day31, "test", false).unwrap();
    assert_eq!(again.deleted_calls, 0);

    // The garbage step: a deletion marked but not finished (the process died in between) keeps
    // its file and row; the next retention run finishes it.
    let marked = lifecycle::mark_garbage(
        &conn,
        &[e],
        &lifecycle::Deletion {
            kind: lifecycle::DeletionKind::Manual,
            reason: "duplicate of a test call",
            actor: "test",
            now_utc: &callrec::clock::format_utc(day31),
        },
    )
    .unwrap();
    assert_eq!(marked.calls.len(), 1);
    assert_eq!(status(&conn, e), "garbage");
    assert_eq!(
        files_of(&storage, &conn, e),
        (true, true),
        "not unlinked yet"
    );
    drop(conn);
    let dry = rec.cmd(&["retention", "run", "--dry-run"]);
    assert!(dry.contains("would delete 0 call(s)"), "{dry}");
    let conn = store::open_rw(&rec.db()).unwrap();
    assert_eq!(status(&conn, e), "garbage", "a dry run changes nothing");
    drop(conn);
    rec.cmd(&["retention", "run"]);
    let conn = store::open_rw(&rec.db()).unwrap();
    assert_eq!(status(&conn, e), "deleted");
    assert_eq!(files_of(&storage, &conn, e), (false, false));
    let finished: Option<String> = conn
        .query_row(
            "SELECT finished_at_utc FROM deletions WHERE id = ?1",
            [marked.deletion_id],
            |r| r.get(0),
        )
        .unwrap();
    assert!(finished.is_some());

    // Erasure of NUMBER: c is live (deleted now), a was deleted by retention (row scrubbed).
    // Refused while a hold covers one of the calls.
    let hold_c = cli_with_stdin(
        &rec,
        "ben-secret-pw-2",
        &[
            "hold",
            "place",
            "--numbers",
            "+44207946*",
            "--reason",
            "case 18",
            "--by",
            "ben",
        ],
    );
    assert!(hold_c.status.success(), "{}", text(&hold_c));
    let receipt_dir = rec.dir.path().join("receipt");
    let erase_args = [
        "erase",
        "--number",
        NUMBER,
        "--request",
        "DSR-118",
        "--by",
        "ann",
        "--out",
        receipt_dir.to_str().unwrap(),
    ];
    let refused = cli_with_stdin(&rec, "ann-secret-pw-1", &erase_args);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("on legal hold"),
        "{}",
        text(&refused)
    );
    assert_eq!(status(&conn, c), "complete", "nothing erased while held");
    let in_ref = cli_with_stdin(
        &rec,
        "ann-secret-pw-1",
        &[
            "erase",
            "--number",
            NUMBER,
            "--request",
            "DSR for 442079460001",
            "--by",
            "ann",
            "--out",
            "x",
        ],
    );
    assert!(
        text(&in_ref).contains("must not contain the number"),
        "{}",
        text(&in_ref)
    );
    let release = cli_with_stdin(
        &rec,
        "ann-secret-pw-1",
        &[
            "hold",
            "release",
            "2",
            "--reason",
            "case 18 closed",
            "--by",
            "ann",
        ],
    );
    assert!(release.status.success(), "{}", text(&release));
    let erased = cli_with_stdin(&rec, "ann-secret-pw-1", &erase_args);
    assert!(erased.status.success(), "{}", text(&erased));
    assert_eq!(status(&conn, c), "deleted");
    assert_eq!(files_of(&storage, &conn, c), (false, false));
    let left: i64 = conn
        .query_row(
            "SELECT count(*) FROM calls WHERE remote_number IS NOT NULL AND id IN (?1, ?2)",
            [a, c],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0, "the number is gone from both rows");
    let receipt: serde_json::Value =
        serde_json::from_slice(&std::fs::read(receipt_dir.join("receipt.json")).unwrap()).unwrap();
    assert_eq!(receipt["request_reference"], "DSR-118");
    assert_eq!(receipt["deleted_recordings"][0]["call_id"], c);
    assert_eq!(receipt["scrubbed_rows"], serde_json::json!([a]));
    let raw = std::fs::read_to_string(receipt_dir.join("receipt.json")).unwrap();
    assert!(!raw.contains("7946"), "the receipt never holds the number");
    let openssl_verify = || {
        Command::new("openssl")
            .args([
                "pkeyutl", "-verify", "-pubin", "-inkey", "box.pub", "-rawin",
            ])
            .args(["-in", "receipt.json", "-sigfile", "receipt.sig"])
            .current_dir(&receipt_dir)
            .output()
            .unwrap()
    };
    let verified = openssl_verify();
    assert!(verified.status.success(), "{}", text(&verified));
    let mut tampered = raw.clone().into_bytes();
    tampered[10] ^= 1;
    std::fs::write(receipt_dir.join("receipt.json"), tampered).unwrap();
    let bad = openssl_verify();
    assert!(!bad.status.success(), "a changed receipt fails");
    // The receipt is stored with the deletion, byte for byte.
    let stored: String = conn
        .query_row(
            "SELECT receipt FROM deletions WHERE kind = 'erasure'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, raw);
    drop(conn);
    // Not in the index file, nor its log, in any notation the rows held.
    for f in ["callrec.db", "callrec.db-wal"] {
        if let Ok(bytes) = std::fs::read(storage.join(f)) {
            for needle in [NUMBER, "+442079460001"] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                    "{needle} still in {f}"
                );
            }
        }
    }

    // Day 400: b (complaint, 730 days) stays; d is still held; nothing else is left to delete.
    let conn = store::open_rw(&rec.db()).unwrap();
    let p = retention::plan(&conn, &cfg.retention, now + Duration::days(400)).unwrap();
    assert!(p.delete.is_empty(), "{p:?}");
    assert_eq!(ids(&p.held), vec![d]);
    let p = retention::plan(&conn, &cfg.retention, now + Duration::days(731)).unwrap();
    assert_eq!(ids(&p.delete), vec![b]);

    // The ledger still verifies end to end, with two call entries' files gone.
    let chain = callrec::store::ledger::verify_chain(&conn).unwrap();
    assert!(chain.problems.is_empty(), "{:?}", chain.problems);
    let tombstones: i64 = conn
        .query_row(
            "SELECT count(*) FROM ledger WHERE kind = 'tombstone'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tombstones, 3, "a, e and c");
    let audit = store::audit::verify(&conn).unwrap();
    assert!(audit.breaks.is_empty(), "{:?}", audit.breaks);
    integrity_ok(&rec.db());
    // `callrec check` agrees: three deleted recordings, each with its tombstone, no orphan.
    drop(conn);
    let checked = rec.cmd(&["check"]);
    assert!(checked.contains("no problems"), "{checked}");
    let v = rec.cmd(&["verify", "--store", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&v).unwrap();
    assert_eq!(v["calls_deleted"], 3, "{v:#}");
}

/// What staff see of a deleted or held call, and an alarm on `/healthz`, through `callrec run`.
#[test]
fn deleted_and_held_calls_on_the_web_and_alarms_on_healthz() {
    use crate::webbox::{WebBox, PASSWORD};
    let wb = WebBox::start("");
    wb.add_user("ann", "admin", &[]);
    wb.add_user("ben", "admin", &[]);
    wb.add_user("rita", "qa", &[]);
    wb.add_user("alice", "agent", &[]);
    let held = wb.record_call(
        "seat01",
        1.0,
        &["--agent", "alice", "--number", "+4930111222"],
    );
    let gone = wb.record_call(
        "seat01",
        1.0,
        &["--agent", "alice", "--number", "+4930999888"],
    );
    let mut rita = wb.login("rita", PASSWORD);
    let t0 = std::time::Instant::now();
    while [held, gone]
        .iter()
        .any(|id| rita.get(&format!("/api/calls/{id}")).json()["status"] == "recording")
    {
        assert!(t0.elapsed().as_secs() < 10, "calls not finalized");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let pw = format!("{PASSWORD}\n");
    let o = wb.cli_with_stdin(
        &[
            "hold",
            "place",
            "--call",
            &held.to_string(),
            "--reason",
            "case 9",
            "--by",
            "ann",
        ],
        &pw,
    );
    assert!(o.status.success(), "{}", text(&o));
    let receipt = wb.dir.path().join("receipt");
    let o = wb.cli_with_stdin(
        &[
            "erase",
            "--number",
            "+49 30 999 888",
            "--request",
            "DSR-7",
            "--by",
            "ben",
            "--out",
            receipt.to_str().unwrap(),
        ],
        &pw,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("deleted 1 recording(s) [{gone}]")),
        "{}",
        text(&o)
    );

    // The erased call: 410 for its audio, a page that says when and why, no number anywhere.
    let r = rita.get(&format!("/api/calls/{gone}/audio"));
    assert_eq!(r.status, 410, "{}", r.body_text());
    assert!(
        r.body_text().contains("was deleted on"),
        "{}",
        r.body_text()
    );
    let j = rita.get(&format!("/api/calls/{gone}")).json();
    assert_eq!(j["status"], "deleted");
    assert_eq!(j["remote_number"], serde_json::Value::Null);
    assert_eq!(j["deletion"]["kind"], "erasure");
    assert_eq!(j["deletion"]["reason"], "erasure request DSR-7");
    let page = rita.get(&format!("/calls/{gone}")).body_text();
    assert!(page.contains("was deleted (erasure)"), "{page}");
    assert!(
        !page.contains("<audio"),
        "no player for a deleted recording"
    );
    assert!(!page.contains("999") || !page.contains("888"), "{page}");
    let found = rita.get("/api/calls?status=deleted").json();
    assert!(found["calls"].is_array(), "{found}");
    let ids: Vec<i64> = found["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![gone]);

    // The held call: playable, and its page shows the hold.
    let j = rita.get(&format!("/api/calls/{held}")).json();
    assert_eq!(j["legal_holds"][0]["reason"], "case 9");
    assert_eq!(j["legal_holds"][0]["placed_by"], "ann");
    assert_eq!(rita.get(&format!("/api/calls/{held}/audio")).status, 200);
    // The agent sees that her call is held and that the other was erased, never why or by whom.
    let mut alice = wb.login("alice", PASSWORD);
    let j = alice.get(&format!("/api/calls/{held}")).json();
    assert_eq!(j["legal_holds"][0]["id"], 1, "{j}");
    assert_eq!(
        j["legal_holds"][0]["reason"], "(not shown to agents)",
        "{j}"
    );
    assert_eq!(
        j["legal_holds"][0]["placed_by"], "(not shown to agents)",
        "{j}"
    );
    let j = alice.get(&format!("/api/calls/{gone}")).json();
    assert_eq!(j["deletion"]["kind"], "erasure", "{j}");
    assert!(!j.to_string().contains("DSR-7"), "{j}");
    let page = alice.get(&format!("/calls/{held}")).body_text();
    assert!(
        page.contains("hold #1") && !page.contains("case 9"),
        "{page}"
    );
    assert!(rita
        .get(&format!("/calls/{held}"))
        .body_text()
        .contains("hold #1"));

    // /healthz turns 503 while an alarm is active, and back to 200 when it clears.
    let mut anon = crate::webbox::Session::anonymous(&wb);
    let h = anon.get("/healthz");
    assert_eq!((h.status, h.body_text().as_str()), (200, "ok\n"));
    let sql = |q: &str| {
        let o = Command::new("sqlite3")
            .arg(wb.db())
            .arg(q)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
    };
    sql("INSERT INTO alarms (kind, detail, raised_at_utc) VALUES ('disk_full', 'test', '2026-11-28T04:00:00.000Z')");
    let h = anon.get("/healthz");
    assert_eq!(h.status, 503);
    assert_eq!(
        h.body_text(),
        "alarm disk_full since 2026-11-28T04:00:00.000Z\n"
    );
    let m = anon.get("/metrics").body_text();
    assert!(
        m.contains("callrec_alarm_active{kind=\"disk_full\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("callrec_alarm_active{kind=\"disk_pressure\"} 0"),
        "{m}"
    );
    sql("UPDATE alarms SET cleared_at_utc = '2026-11-28T04:01:00.000Z'");
    assert_eq!(anon.get("/healthz").status, 200);
}

/// Four eyes through the CLI: the first admin makes a second admin account, which gets a
/// one-time password the first admin has seen. With it, the second admin can neither place
/// nor release a hold (told to change it first); after changing it, they can release.
#[test]
fn an_admin_still_on_a_one_time_password_cannot_release_a_hold() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("callrec.toml");
    std::fs::write(&cfg, header(dir.path(), "")).unwrap();
    // Commands that read no password get no stdin (writing to one that exited is EPIPE).
    let run = |stdin: &str, args: &[&str]| {
        let o = if stdin.is_empty() {
            Command::new(bin())
                .arg("--config")
                .arg(&cfg)
                .args(args)
                .output()
                .unwrap()
        } else {
            crate::common::cli_with_stdin(&cfg, args, &format!("{stdin}\n"))
        };
        (o.status.success(), text(&o))
    };
    let (ok, out) = run(
        "ann-secret-pw-1",
        &["users", "add", "ann", "--role", "admin", "--password-stdin"],
    );
    assert!(ok, "{out}");
    // ann makes ben's account: ben's password is one ann has seen.
    let (ok, out) = run("", &["users", "add", "ben", "--role", "admin"]);
    assert!(ok, "{out}");
    let otp = out
        .split("one-time password (change at first login): ")
        .nth(1)
        .map(str::trim)
        .unwrap_or_else(|| panic!("no one-time password printed: {out}"))
        .to_owned();

    let (ok, out) = run(
        "ann-secret-pw-1",
        &[
            "hold", "place", "--agent", "dave", "--reason", "case 17", "--by", "ann",
        ],
    );
    assert!(ok && out.contains("legal hold #1 placed by ann"), "{out}");
    let release = [
        "hold",
        "release",
        "1",
        "--reason",
        "case closed",
        "--by",
        "ben",
    ];
    let (ok, out) = run(&otp, &release);
    assert!(!ok, "released with a one-time password: {out}");
    assert!(
        out.contains("\"ben\" still has a one-time password") && out.contains("change it first"),
        "{out}"
    );
    let (ok, out) = run(
        &otp,
        &[
            "hold", "place", "--agent", "erin", "--reason", "case 18", "--by", "ben",
        ],
    );
    assert!(!ok && out.contains("one-time password"), "{out}");
    let (ok, out) = run("", &["hold", "list"]);
    assert!(
        ok && out.contains("case 17") && !out.contains("case 18"),
        "{out}"
    );

    // ben sets his own password (as the web UI's forced change does); now he may release.
    let conn = store::open_rw(&dir.path().join("store").join("callrec.db")).unwrap();
    store::users::change_own_password(
        &conn,
        "ben",
        "ben-own-password-2",
        callrec::store::audit::Actor::local("ben"),
    )
    .unwrap();
    drop(conn);
    let (ok, out) = run(&otp, &release);
    assert!(!ok, "the old one-time password no longer works: {out}");
    let (ok, out) = run("ben-own-password-2", &release);
    assert!(ok, "{out}");
    let (ok, out) = run("", &["hold", "list"]);
    assert!(ok && !out.contains("case 17"), "released: {out}");
}
