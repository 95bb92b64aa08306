//! Orders from the hub to the boxes (issue 13 item 4) against the real RGW (harness:
//! `fleet.rs`): two boxes and a hub over one Object Lock bucket. A hold placed at the hub
//! reaches the box (its holds table) and blocks local retention and the hub's archive
//! retention; an erasure at the hub removes the copies on the boxes (file gone, row scrubbed),
//! in the hub's index and every object version, with one receipt that verifies with OpenSSL; a
//! box whose shipper was not running applies the order when it starts (`erase --complete`); a
//! release needs a second admin and propagates; a forged order object is refused and logged.
//! The hub sets the archive's object legal hold itself (before the box is online), and the web
//! UI's erasure and "complete" (`/admin/erasure`) work at the hub as the CLI's do.

use crate::common::{cli_with_stdin, Recorder};
use crate::fleet::*;
use callrec::archive::orders::{self, Order, What, ORDER_FORMAT};
use callrec::archive::s3x::{self, S3x};
use callrec::config::Config;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, PutPayload};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const ANN: (&str, &str) = ("ann", "ann-secret-password");
const BEN: (&str, &str) = ("ben", "ben-secret-password");
/// The customer whose erasure is asked: called on both floors.
const NUMBER: &str = "+44 20 7946 0123";

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ro(db: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

/// Waits until `ok()`; panics naming `what` and the logs.
fn wait_for(what: &str, limit: Duration, logs: &[&Path], ok: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        if t0.elapsed() > limit {
            let logs: Vec<String> = logs
                .iter()
                .map(|p| std::fs::read_to_string(p).unwrap_or_default())
                .collect();
            panic!(
                "{what} not reached in {limit:?}:\n{}",
                logs.join("\n----\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A box named `id` shipping to `bucket` whose shipper looks for orders every second.
fn floor(bucket: &str, id: &str, seats: usize) -> Recorder {
    let rec = box_named(bucket, id, seats);
    let mut toml = std::fs::read_to_string(&rec.cfg).unwrap();
    toml.push_str("orders_poll_s = 1\n");
    std::fs::write(&rec.cfg, toml).unwrap();
    rec
}

fn s3(cfg: &Path) -> S3x {
    let cfg = Config::load(cfg).unwrap();
    s3x::from_config(cfg.archive.as_ref().unwrap()).unwrap()
}

fn hold_count(rec: &Recorder, placed_by: &str, released: bool) -> i64 {
    ro(&rec.db())
        .query_row(
            "SELECT count(*) FROM legal_holds WHERE placed_by = ?1 AND (released_at_utc IS NOT NULL) = ?2",
            rusqlite::params![placed_by, released],
            |r| r.get(0),
        )
        .unwrap()
}

/// The call's row in the index at `db` is marked deleted and no longer holds the number.
fn assert_scrubbed(db: &Path, call_id: i64) {
    let (status, number): (String, Option<String>) = ro(db)
        .query_row(
            "SELECT status, remote_number FROM calls WHERE id = ?1",
            [call_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (status.as_str(), number),
        ("deleted", None),
        "call {call_id}"
    );
}

fn openssl_verify(dir: &Path, json: &str, sig: &str) -> Output {
    Command::new("openssl")
        .current_dir(dir)
        .args([
            "pkeyutl", "-verify", "-pubin", "-inkey", "box.pub", "-rawin", "-in", json, "-sigfile",
            sig,
        ])
        .output()
        .unwrap()
}

#[test]
fn orders_hold_release_and_erasure_reach_the_boxes() {
    let _shared = OUTAGE.read().unwrap_or_else(|e| e.into_inner());
    let bucket = "orders-fleet";
    rgw_sh(&["mkbucket", bucket, "lock"]);
    let a = floor(bucket, "floor-a", 2);
    let b = floor(bucket, "floor-b", 1);
    let a1 = a.start_call("s1", &["--number", NUMBER]);
    let a2 = a.start_call("s2", &["--number", "+44 20 7946 0999", "--agent", "a-7"]);
    let b1 = b.start_call("s1", &["--number", NUMBER]);
    std::thread::sleep(Duration::from_millis(1000));
    for s in ["s1", "s2"] {
        a.cmd(&["call", "stop", "--seat", s]);
    }
    b.cmd(&["call", "stop", "--seat", "s1"]);
    let ship_a = Ship::start(&a);
    let mut ship_b = Some(Ship::start(&b));
    for (r, n) in [(&a, 2), (&b, 1)] {
        wait_status(r, Duration::from_secs(30), "every call archived", |s| {
            s["backlog"]["archived_calls"] == n
        });
    }

    // The hub, with archive retention due at once ([retention] default_keep_days = 0).
    let (dir, cfg, port) = hub_config(bucket);
    let mut toml = std::fs::read_to_string(&cfg).unwrap();
    toml.push_str("[retention]\ndefault_keep_days = 0\n");
    std::fs::write(&cfg, toml).unwrap();
    let hub = hub_start(dir, cfg, port);
    wait_hub_calls(&hub, 3, Duration::from_secs(20));
    for (name, pw) in [ANN, BEN] {
        let o = hub.cli_with_stdin(
            &["users", "add", name, "--role", "admin", "--password-stdin"],
            &format!("{pw}\n"),
        );
        assert!(o.status.success(), "{}", text(&o));
    }
    let hub_id = |box_id: &str, id: i64| -> i64 {
        hub_rows(&hub.db())
            .iter()
            .find(|r| r.1 == box_id && r.2 == id)
            .unwrap()
            .0
    };
    let (h_a1, h_a2, h_b1) = (
        hub_id("floor-a", a1),
        hub_id("floor-a", a2),
        hub_id("floor-b", b1),
    );
    let as_admin = |who: (&str, &str), args: &[&str]| -> Output {
        let mut v: Vec<&str> = args.to_vec();
        v.extend_from_slice(&["--by", who.0]);
        cli_with_stdin(&hub.cfg, &v, &format!("{}\n", who.1))
    };
    // Ann places a hold at the hub on call a2 (hub id) for `reason`.
    let hold_a2 = |reason: &str| {
        as_admin(
            ANN,
            &[
                "hold",
                "place",
                "--call",
                &h_a2.to_string(),
                "--reason",
                reason,
            ],
        )
    };

    // A hold at the hub on call a2 (hub id): ordered to floor-a only, applied there with its
    // box call id, and acked.
    let o = hold_a2("matter 7");
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("ordered to box(es) [\"floor-a\"]"),
        "{}",
        text(&o)
    );
    let logs_a = [a.dir.path().join("ship.log"), hub.log.clone()];
    let logs_a: Vec<&Path> = logs_a.iter().map(|p| p.as_path()).collect();
    wait_for(
        "the hold on floor-a",
        Duration::from_secs(15),
        &logs_a,
        || hold_count(&a, "hub:ann", false) == 1,
    );
    let (scope, call_id): (String, i64) = ro(&a.db())
        .query_row(
            "SELECT scope, call_id FROM legal_holds WHERE placed_by = 'hub:ann'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((scope.as_str(), call_id), ("call", a2));
    assert_eq!(hold_count(&b, "hub:ann", false), 0, "floor-b holds no copy");
    wait_for(
        "the hold's ack at the hub",
        Duration::from_secs(10),
        &logs_a,
        || {
            ro(&hub.db())
            .query_row(
                "SELECT count(*) FROM hub_orders WHERE kind = 'hold' AND acked_at_utc IS NOT NULL",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
            == 1
        },
    );

    // Local retention on floor-a (all due at once in this copy of its config) keeps a2.
    let due_cfg = a.dir.path().join("due.toml");
    let mut t = std::fs::read_to_string(&a.cfg).unwrap();
    t.push_str("[retention]\ndefault_keep_days = 0\n");
    std::fs::write(&due_cfg, t).unwrap();
    let o = cli_with_stdin(&due_cfg, &["retention", "run", "--dry-run", "--json"], "");
    assert!(o.status.success(), "{}", text(&o));
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
    let held: Vec<i64> = plan["held"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["call_id"].as_i64().unwrap())
        .collect();
    assert_eq!(held, vec![a2], "{plan:#}");

    // An erasure at the hub while floor-b's shipper is down: floor-a applies it, floor-b is
    // pending; the hub deletes every version of a1's and b1's objects itself.
    ship_b.take().unwrap().stop();
    let s = s3(&hub.cfg);
    let key_of = |hid: i64| -> String {
        hub_rows(&hub.db())
            .into_iter()
            .find(|r| r.0 == hid)
            .unwrap()
            .4
    };
    let (k_a1, k_b1, k_a2) = (key_of(h_a1), key_of(h_b1), key_of(h_a2));
    let versions = |k: &str| callrec::archive::lock::call_versions(&s, k).unwrap();
    assert_eq!(versions(&k_a1).len(), 3, "audio, peaks and sidecar");
    let a1_file = a.file_of(&a.call(a1));
    let b1_file = b.file_of(&b.call(b1));
    assert!(a1_file.exists() && b1_file.exists());
    let out = hub.dir.path().join("receipt");
    let o = as_admin(
        ANN,
        &[
            "erase",
            "--number",
            NUMBER,
            "--request",
            "DSR-2026-31",
            "--out",
            out.to_str().unwrap(),
            "--wait-s",
            "10",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("pending on box(es) [\"floor-b\"]"),
        "{}",
        text(&o)
    );
    let receipt: Value =
        serde_json::from_slice(&std::fs::read(out.join("receipt.json")).unwrap()).unwrap();
    assert_eq!(receipt["format"], "callrec-erasure-receipt-v3");
    let copies = receipt["box_copies"].as_array().unwrap();
    let copy = |b: &str| copies.iter().find(|c| c["box_id"] == b).unwrap().clone();
    assert_eq!(copy("floor-a")["status"], "removed");
    assert_eq!(copy("floor-a")["box_call_ids"], serde_json::json!([a1]));
    let a_ack = &copy("floor-a")["ack"];
    assert_eq!(a_ack["deleted_recordings"][0]["call_id"], a1);
    assert_eq!(
        a_ack["deleted_recordings"][0]["file_sha256"],
        a.call(a1)["sha256"]
    );
    assert_eq!(copy("floor-b")["status"], "pending");
    let mut erased_hub: Vec<i64> = receipt["deleted_recordings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["call_id"].as_i64().unwrap())
        .collect();
    erased_hub.sort();
    assert_eq!(erased_hub, {
        let mut v = vec![h_a1, h_b1];
        v.sort();
        v
    });
    let mut archived: Vec<(i64, usize)> = receipt["archive_removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["call_id"].as_i64().unwrap(),
                c["versions"].as_array().unwrap().len(),
            )
        })
        .collect();
    archived.sort();
    let mut want = vec![(h_a1, 3), (h_b1, 3)];
    want.sort();
    assert_eq!(archived, want);
    let v = openssl_verify(&out, "receipt.json", "receipt.sig");
    assert!(v.status.success(), "{}", text(&v));
    assert!(
        !String::from_utf8_lossy(&std::fs::read(out.join("receipt.json")).unwrap())
            .contains("7946 0123")
    );
    // Every version gone; the held call's untouched.
    assert!(versions(&k_a1).is_empty() && versions(&k_b1).is_empty());
    assert_eq!(versions(&k_a2).len(), 3);
    // floor-a: file gone, row scrubbed. The hub's rows: deleted, number gone.
    assert!(!a1_file.exists());
    let row = a.call(a1);
    assert_eq!(row["status"], "deleted");
    assert!(row["remote_number"].is_null(), "{row:#}");
    for hid in [h_a1, h_b1] {
        assert_scrubbed(&hub.db(), hid);
    }
    assert!(b1_file.exists(), "floor-b was offline");

    // floor-b comes back: it applies the pending order; --complete records it, signed.
    let _ship_b = Ship::start(&b);
    let o = as_admin(
        ANN,
        &[
            "erase",
            "--complete",
            out.to_str().unwrap(),
            "--wait-s",
            "20",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let done: Value =
        serde_json::from_slice(&std::fs::read(out.join("completion.json")).unwrap()).unwrap();
    assert_eq!(done["still_pending"], serde_json::json!([]));
    let bc = done["box_copies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["box_id"] == "floor-b")
        .unwrap()
        .clone();
    assert_eq!(bc["status"], "removed");
    assert_eq!(bc["ack"]["deleted_recordings"][0]["call_id"], b1);
    assert_eq!(
        done["receipt_sha256"],
        sha256_hex(&std::fs::read(out.join("receipt.json")).unwrap())
    );
    let v = openssl_verify(&out, "completion.json", "completion.sig");
    assert!(v.status.success(), "{}", text(&v));
    assert!(!b1_file.exists());
    assert_eq!(b.call(b1)["status"], "deleted");

    // Archive retention at the hub: the held call is kept.
    let run = |_: ()| -> Value {
        let o = hub.cli_with_stdin(&["archive", "retention", "run", "--json"], "");
        assert!(o.status.success(), "{}", text(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let r = run(());
    assert_eq!(r["removed"], serde_json::json!([]), "{r:#}");
    assert_eq!(r["kept"][0]["call_id"], h_a2, "{r:#}");
    assert_eq!(versions(&k_a2).len(), 3);

    // Release: not by the admin who placed it; then by a second one, which floor-a applies.
    let o = as_admin(ANN, &["hold", "release", "1", "--reason", "settled"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("a second admin must release it"),
        "{}",
        text(&o)
    );
    let o = as_admin(BEN, &["hold", "release", "1", "--reason", "settled"]);
    assert!(o.status.success(), "{}", text(&o));
    wait_for(
        "the release on floor-a",
        Duration::from_secs(15),
        &logs_a,
        || hold_count(&a, "hub:ann", true) == 1,
    );
    let by: String = ro(&a.db())
        .query_row(
            "SELECT released_by FROM legal_holds WHERE placed_by = 'hub:ann'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(by, "hub:ben");

    // A forged order (signed by another key) in floor-a's orders: refused, logged, not applied.
    let forger_dir = tempfile::tempdir().unwrap();
    let (forger, _) = callrec::evidence::key::ensure(forger_dir.path()).unwrap();
    let forged = Order {
        format: ORDER_FORMAT.to_owned(),
        seq: 999,
        order_id: "forged".to_owned(),
        box_id: "floor-a".to_owned(),
        made_by: "mallory".to_owned(),
        made_at_utc: "2026-12-05T10:00:00.000Z".to_owned(),
        what: What::Erase {
            request_reference: "X".to_owned(),
            box_call_ids: vec![a2],
        },
    };
    let forged_key = orders::order_key("fleet/", "floor-a", 999, "forged");
    rt().block_on(client(bucket).put(
        &ObjPath::from(forged_key.as_str()),
        PutPayload::from(orders::seal(&forger, &forged).into_bytes()),
    ))
    .unwrap();
    wait_for(
        "the forged order refused",
        Duration::from_secs(15),
        &logs_a,
        || {
            ro(&a.db())
                .query_row(
                    "SELECT count(*) FROM box_orders_refused WHERE object_key = ?1",
                    [&forged_key],
                    |r| r.get::<_, i64>(0),
                )
                .unwrap()
                == 1
        },
    );
    assert!(ship_log(&a).contains("refused an order object"));
    assert_eq!(
        a.call(a2)["status"],
        "complete",
        "the forged erasure did nothing"
    );
    let applied: i64 = ro(&a.db())
        .query_row("SELECT count(*) FROM box_orders", [], |r| r.get(0))
        .unwrap();
    assert_eq!(applied, 3, "hold, erasure, release: each once");

    // The hub sets the archive's object legal hold itself: a hold placed at the hub while
    // floor-a's shipper is stopped is ON on every version at once, and OFF at its release.
    ship_a.stop();
    let legal = |k: &str| -> Vec<bool> {
        versions(k)
            .iter()
            .filter(|v| !v.delete_marker)
            .map(|v| s.legal_hold(&v.key, &v.version_id).unwrap())
            .collect()
    };
    assert_eq!(legal(&k_a2), vec![false; 3], "hold 1 was released");
    let o = hold_a2("matter 9");
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        legal(&k_a2),
        vec![true; 3],
        "set by the hub, before floor-a is online"
    );

    // The web erasure at the hub: refused with the reason while the hold is in force.
    let mut web = hub.login(ANN.0, ANN.1);
    let csrf = web.csrf.clone().unwrap();
    let web_erase = |s: &mut crate::webbox::Session| {
        s.post_form(
            "/admin/erasure",
            &[
                ("number", "+44 20 7946 0999"),
                ("request", "DSR-2026-40"),
                ("wait_s", "0"),
                ("password", ANN.1),
                ("csrf", &csrf),
            ],
        )
    };
    let r = web_erase(&mut web);
    assert_eq!(r.status, 409, "{}", r.body_text());
    assert!(r.body_text().contains("on legal hold"), "{}", r.body_text());
    assert_eq!(versions(&k_a2).len(), 3);
    let o = as_admin(BEN, &["hold", "release", "2", "--reason", "settled"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(legal(&k_a2), vec![false; 3], "no other hold covers a2");

    // Erased from the web while floor-a is offline: every archive version gone, the hub's
    // row scrubbed, floor-a pending on the receipt's page; the receipt verifies.
    let a2_file = a.file_of(&a.call(a2));
    let r = web_erase(&mut web);
    assert_eq!(r.status, 303, "{}", r.body_text());
    let to = r.header("location").unwrap().to_owned();
    let shown = web.get(&to).body_text();
    assert!(
        shown.contains("Pending") && shown.contains("floor-a"),
        "{shown}"
    );
    let wdir = hub.dir.path().join("web-receipt");
    let receipt = verified_download(&mut web, &to, &wdir, "receipt");
    assert_eq!(receipt["format"], "callrec-erasure-receipt-v3");
    assert_eq!(receipt["requested_by"], "ann");
    assert_eq!(receipt["box_copies"][0]["box_id"], "floor-a");
    assert_eq!(receipt["box_copies"][0]["status"], "pending");
    assert_eq!(receipt["archive_removed"][0]["call_id"], h_a2);
    assert_eq!(
        receipt["archive_removed"][0]["versions"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert!(versions(&k_a2).is_empty());
    assert_scrubbed(&hub.db(), h_a2);
    assert!(a2_file.exists(), "floor-a was offline");

    // floor-a comes back and applies the order; "complete" records its ack, signed.
    let ship_a = Ship::start(&a);
    let r = web.post_form(
        &format!("{to}/complete"),
        &[("wait_s", "30"), ("password", ANN.1), ("csrf", &csrf)],
    );
    assert_eq!(r.status, 303, "{}", r.body_text());
    let shown = web.get(&to).body_text();
    assert!(!shown.contains("Pending"), "{shown}");
    let done = verified_download(&mut web, &to, &wdir, "completion");
    assert_eq!(done["still_pending"], serde_json::json!([]));
    assert_eq!(done["box_copies"][0]["status"], "removed");
    assert_eq!(
        done["box_copies"][0]["ack"]["deleted_recordings"][0]["call_id"],
        a2
    );
    assert!(!a2_file.exists());
    assert_eq!(a.call(a2)["status"], "deleted");
    let completes: i64 = ro(&hub.db())
        .query_row(
            "SELECT count(*) FROM audit WHERE actor = 'ann' AND action = 'erasure.complete'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(completes, 2, "the CLI's --complete and the web's");
    ship_a.stop();
}

/// The legal-hold forms of the web UI (`/admin/holds`): the admin's password is typed again
/// (wrong: 403), the placing admin cannot release (403), a second admin can (303), a release
/// is final (409); every act is audited.
#[test]
fn web_hold_forms_check_the_password_and_four_eyes() {
    use crate::webbox::{WebBox, PASSWORD};
    let wb = WebBox::start("");
    wb.add_user("ann", "admin", &[]);
    wb.add_user("ben", "admin", &[]);
    let mut ann = wb.login("ann", PASSWORD);
    assert_eq!(ann.get("/admin/holds").status, 200);
    let csrf = ann.csrf.clone().unwrap();
    let place = |s: &mut crate::webbox::Session, password: &str| {
        s.post_form(
            "/admin/holds",
            &[
                ("scope", "agent"),
                ("value", "a-9"),
                ("reason", "matter 12"),
                ("password", password),
                ("csrf", &csrf),
            ],
        )
    };
    let r = place(&mut ann, "not my password");
    assert_eq!(r.status, 403, "{}", r.body_text());
    assert!(r.body_text().contains("wrong password"));
    let r = place(&mut ann, PASSWORD);
    assert_eq!(r.status, 303, "{}", r.body_text());
    let page = ann.get("/admin/holds").body_text();
    assert!(page.contains("every call of agent a-9") && page.contains("matter 12"));
    let release = |s: &mut crate::webbox::Session, csrf: &str| {
        s.post_form(
            "/admin/holds/1/release",
            &[
                ("reason", "settled"),
                ("password", PASSWORD),
                ("csrf", csrf),
            ],
        )
    };
    let r = release(&mut ann, &csrf);
    assert_eq!(r.status, 403, "{}", r.body_text());
    assert!(r.body_text().contains("a second admin must release it"));
    let mut ben = wb.login("ben", PASSWORD);
    assert_eq!(ben.get("/admin/holds").status, 200);
    let ben_csrf = ben.csrf.clone().unwrap();
    assert_eq!(release(&mut ben, &ben_csrf).status, 303);
    let r = release(&mut ben, &ben_csrf);
    assert_eq!(r.status, 409, "{}", r.body_text());
    let c = ro(&wb.db());
    let (placed_by, released_by): (String, String) = c
        .query_row(
            "SELECT placed_by, released_by FROM legal_holds WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((placed_by.as_str(), released_by.as_str()), ("ann", "ben"));
    let acts: Vec<(String, String)> = c
        .prepare("SELECT actor, action FROM audit WHERE action LIKE 'hold.%' ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(
        acts,
        vec![
            ("ann".to_owned(), "hold.place".to_owned()),
            ("ben".to_owned(), "hold.release".to_owned())
        ]
    );
}

/// `{stem}.json` and `{stem}.sig` (the receipt or the completion record) from a web erasure's
/// page, with the `box.pub` they are signed with, downloaded into `dir` as the CLI writes them;
/// the signature is checked with OpenSSL as a requester would, and the parsed JSON returned.
fn verified_download(s: &mut crate::webbox::Session, page: &str, dir: &Path, stem: &str) -> Value {
    std::fs::create_dir_all(dir).unwrap();
    let (json, sig) = (format!("{stem}.json"), format!("{stem}.sig"));
    for f in [json.as_str(), sig.as_str(), "box.pub"] {
        let r = s.get(&format!("{page}/{f}"));
        assert_eq!(r.status, 200, "{f}: {}", r.body_text());
        assert!(r
            .header("content-disposition")
            .is_some_and(|h| h.contains(f)));
        std::fs::write(dir.join(f), &r.body).unwrap();
    }
    let v = openssl_verify(dir, &json, &sig);
    assert!(v.status.success(), "{stem}: {}", text(&v));
    serde_json::from_slice(&std::fs::read(dir.join(&json)).unwrap()).unwrap()
}

/// Erasure from the web UI on a box (`/admin/erasure`, no archive): the admin's password is
/// typed again (wrong: 403), the CSRF token is required (403), a non-admin is refused (403), a
/// held call refuses the whole request (409 naming the hold); once released, the erasure
/// deletes the file, scrubs the row, audits it under the admin's name, and the receipt page
/// offers the signed receipt, which verifies with OpenSSL and never holds the number.
#[test]
fn web_erasure_checks_the_password_refuses_a_hold_and_signs_a_receipt() {
    use crate::webbox::{WebBox, PASSWORD};
    let wb = WebBox::start("");
    wb.add_user("ann", "admin", &[]);
    wb.add_user("ben", "admin", &[]);
    wb.add_user("quinn", "qa", &[]);
    let call = wb.record_call("seat02", 1.0, &["--number", NUMBER]);
    let (rel, sha): (String, String) = ro(&wb.db())
        .query_row(
            "SELECT rel_path, sha256 FROM calls WHERE id = ?1",
            [call],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let file = wb.dir.path().join("store").join(rel);
    assert!(file.exists());
    let mut ann = wb.login("ann", PASSWORD);
    let page = ann.get("/admin/erasure");
    assert_eq!(page.status, 200);
    assert!(page.body_text().contains("Carry out a request"));
    let csrf = ann.csrf.clone().unwrap();
    let erase = |s: &mut crate::webbox::Session, password: &str, csrf: Option<&str>| {
        let mut f = vec![
            ("number", NUMBER),
            ("request", "DSR-2026-77"),
            ("password", password),
        ];
        if let Some(c) = csrf {
            f.push(("csrf", c));
        }
        s.post_form("/admin/erasure", &f)
    };
    let r = erase(&mut ann, "not my password", Some(&csrf));
    assert_eq!(r.status, 403, "{}", r.body_text());
    assert!(r.body_text().contains("wrong password"));
    assert_eq!(erase(&mut ann, PASSWORD, None).status, 403, "no CSRF token");
    let mut quinn = wb.login("quinn", PASSWORD);
    let q_csrf = quinn.csrf.clone().unwrap();
    assert_eq!(quinn.get("/admin/erasure").status, 403);
    assert_eq!(erase(&mut quinn, PASSWORD, Some(&q_csrf)).status, 403);
    assert!(file.exists(), "nothing erased yet");

    // A hold on the call: the erasure is refused with the reason, and nothing changes.
    let r = ann.post_form(
        "/admin/holds",
        &[
            ("scope", "call"),
            ("value", &call.to_string()),
            ("reason", "matter 12"),
            ("password", PASSWORD),
            ("csrf", &csrf),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body_text());
    let r = erase(&mut ann, PASSWORD, Some(&csrf));
    assert_eq!(r.status, 409, "{}", r.body_text());
    assert!(
        r.body_text().contains("on legal hold") && r.body_text().contains("Art. 17(3)(e)"),
        "{}",
        r.body_text()
    );
    assert!(file.exists());
    let mut ben = wb.login("ben", PASSWORD);
    let b_csrf = ben.csrf.clone().unwrap();
    let r = ben.post_form(
        "/admin/holds/1/release",
        &[
            ("reason", "settled"),
            ("password", PASSWORD),
            ("csrf", &b_csrf),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body_text());

    // The erasure: 303 to its receipt's page.
    let r = erase(&mut ann, PASSWORD, Some(&csrf));
    assert_eq!(r.status, 303, "{}", r.body_text());
    let to = r.header("location").unwrap().to_owned();
    assert!(to.starts_with("/admin/erasure/"), "{to}");
    let shown = ann.get(&to).body_text();
    assert!(
        shown.contains("DSR-2026-77") && shown.contains(&format!("[{call}]")),
        "{shown}"
    );
    assert!(!shown.contains("7946 0123") && !shown.contains("79460123"));
    assert!(!shown.contains("Pending"), "a box has no boxes to wait for");
    let dir = wb.dir.path().join("web-receipt");
    let receipt = verified_download(&mut ann, &to, &dir, "receipt");
    assert_eq!(receipt["format"], "callrec-erasure-receipt-v1");
    assert_eq!(receipt["requested_by"], "ann");
    assert_eq!(receipt["deleted_recordings"][0]["call_id"], call);
    assert_eq!(receipt["deleted_recordings"][0]["file_sha256"], sha);
    assert!(
        !String::from_utf8_lossy(&std::fs::read(dir.join("receipt.json")).unwrap())
            .contains("79460123")
    );
    assert_eq!(ann.get(&format!("{to}/completion.json")).status, 404);
    assert_eq!(ann.get(&format!("{to}/../../callrec.db")).status, 404);
    // File gone, row scrubbed, audited under ann's name.
    assert!(!file.exists());
    assert_scrubbed(&wb.db(), call);
    let c = ro(&wb.db());
    let audited: i64 = c
        .query_row(
            "SELECT count(*) FROM audit WHERE actor = 'ann' AND call_id = ?1 AND action = 'delete'
             AND json_extract(detail, '$.kind') = 'erasure'",
            [call],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(audited, 1, "the erasure is audited under the admin's name");
    let list = ann.get("/admin/erasure").body_text();
    assert!(list.contains("erasure request DSR-2026-77"), "{list}");
}
