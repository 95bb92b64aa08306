//! S3 Object Lock and retention that trusts the archive, against the real RGW (harness:
//! `fleet.rs`), each test in an Object Lock bucket of its own (`rgw.sh mkbucket … lock`): what
//! the store says about every object version (HeadObject's `x-amz-object-lock-*` headers,
//! GetObjectLegalHold, ListObjectVersions) is read back with `archive::s3x`, and what it refuses
//! is tried.

use crate::common::{cli_with_stdin, Recorder};
use crate::fleet::*;
use callrec::archive::s3x::{self, S3x};
use callrec::config::Config;
use object_store::path::Path as ObjPath;
use object_store::ObjectStore;
use serde_json::Value;
use std::process::Output;
use std::time::{Duration, Instant};

const PASSWORDS: [(&str, &str); 2] = [
    ("ann", "ann-secret-password"),
    ("ben", "ben-secret-password"),
];

/// A box whose `[archive]` is an Object Lock bucket made here; `retention` is a whole
/// `[retention]` section (or empty), `archive_extra` more `[archive]` keys.
fn locked_box(bucket: &str, seats: usize, archive_extra: &str, retention: &str) -> Recorder {
    rgw_sh(&["mkbucket", bucket, "lock"]);
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials");
    write_creds(&creds, SECRET);
    let mut toml = String::new();
    for i in 1..=seats {
        toml.push_str(&format!(
            "[[seat]]\nid = \"s{i}\"\nmode = \"control\"\n[[seat.input]]\nkind = \"synthetic\"\nseed = {i}\nagent_channel = 0\ncustomer_channel = 1\n"
        ));
    }
    toml.push_str(retention);
    toml.push_str(&format!(
        "\n[archive]\nendpoint = \"{}\"\nbucket = \"{bucket}\"\nprefix = \"fleet/\"\ncredentials_file = \"{}\"\nretry_max_s = 2\n{archive_extra}\n",
        rgw().endpoint,
        creds.display()
    ));
    Recorder::start_in(dir, &toml, vec![])
}

fn s3(rec: &Recorder) -> S3x {
    let cfg = Config::load(&rec.cfg).unwrap();
    s3x::from_config(cfg.archive.as_ref().unwrap()).unwrap()
}

fn add_admins(rec: &Recorder) {
    let conn = rusqlite::Connection::open(rec.db()).unwrap();
    for (name, password) in PASSWORDS {
        callrec::store::users::add_user(
            &conn,
            &callrec::store::users::NewUser {
                username: name,
                role: callrec::store::users::Role::Admin,
                agent_id: None,
                team: None,
                password,
                must_change: false,
            },
            callrec::store::audit::Actor::local("test"),
        )
        .unwrap();
    }
}

fn as_admin(rec: &Recorder, who: usize, args: &[&str]) -> Output {
    cli_with_stdin(&rec.cfg, args, &format!("{}\n", PASSWORDS[who].1))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// One call per (seat, customer number), recorded together for `ms`.
fn record_numbered(rec: &Recorder, calls: &[(&str, &str)], ms: u64) -> Vec<i64> {
    let ids: Vec<i64> = calls
        .iter()
        .map(|(seat, number)| rec.start_call(seat, &["--number", number]))
        .collect();
    std::thread::sleep(Duration::from_millis(ms));
    for (seat, _) in calls {
        rec.cmd(&["call", "stop", "--seat", seat]);
    }
    ids
}

fn db(rec: &Recorder) -> rusqlite::Connection {
    rusqlite::Connection::open(rec.db()).unwrap()
}

fn call_status(rec: &Recorder, id: i64) -> String {
    db(rec)
        .query_row("SELECT status FROM calls WHERE id = ?1", [id], |r| r.get(0))
        .unwrap()
}

fn audio_key(rec: &Recorder, id: i64) -> String {
    db(rec)
        .query_row(
            "SELECT object_key FROM archive_uploads WHERE call_id = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap()
}

/// Every version and delete marker of call `id`'s objects.
fn versions(s: &S3x, rec: &Recorder, id: i64) -> Vec<s3x::Version> {
    callrec::archive::lock::call_versions(s, &audio_key(rec, id)).unwrap()
}

fn ids_of(v: &Value) -> Vec<i64> {
    let mut out: Vec<i64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["call_id"].as_i64().unwrap())
        .collect();
    out.sort();
    out
}

/// Governance by default on an Object Lock bucket: every object version of every call carries
/// the mode and the retain-until date of its rule, a held call's versions have legal hold ON
/// and cannot be deleted, local retention deletes only archived calls and keeps the held one;
/// a release (four eyes) turns the legal hold OFF; an erasure of the governance-locked call
/// then deletes every version (bypass) and lists them in its receipt.
#[test]
fn archive_lock_governance_retention_holds_and_local_retention() {
    let _shared = OUTAGE.read().unwrap_or_else(|e| e.into_inner());
    let mut rec = locked_box(
        "lock-gov",
        3,
        "keep_days = 1",
        "[retention]\ndefault_keep_days = 0\n",
    );
    add_admins(&rec);
    let ids = record_numbered(
        &rec,
        &[
            ("s1", "+44 20 7946 0101"),
            ("s2", "+44 20 7946 0102"),
            ("s3", "+44 20 7946 0103"),
        ],
        1200,
    );
    let (held, free) = (ids[0], [ids[1], ids[2]]);
    let o = as_admin(
        &rec,
        0,
        &[
            "hold",
            "place",
            "--call",
            &held.to_string(),
            "--reason",
            "case 7",
            "--by",
            "ann",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    // Stopped, so the recorder's hourly retention pass cannot race the commands below.
    rec.stop();

    // Nothing archived yet: local retention deletes nothing and says why.
    let out = rec.cmd(&["retention", "run", "--json"]);
    let plan: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(ids_of(&plan["delete"]), Vec::<i64>::new(), "{plan:#}");
    assert_eq!(ids_of(&plan["not_archived"]), free.to_vec());
    assert_eq!(ids_of(&plan["held"]), vec![held]);
    let human = rec.cmd(&["retention", "run", "--dry-run"]);
    assert!(
        human.contains("kept: not yet archived: 2 due call(s)"),
        "{human}"
    );
    for id in &ids {
        assert_eq!(call_status(&rec, *id), "complete");
    }

    let ship = Ship::start(&rec);
    wait_status(&rec, Duration::from_secs(60), "3 archived", |s| {
        s["backlog"]["archived_calls"] == 3
    });
    assert!(
        ship_log(&rec).contains("object_lock=\"GOVERNANCE\"")
            || ship_log(&rec).contains("object_lock=GOVERNANCE"),
        "auto picks governance on an Object Lock bucket: {}",
        ship_log(&rec)
    );
    let s = s3(&rec);
    for id in &ids {
        let call = rec.call(*id);
        let started = call["started_at_utc"].as_str().unwrap();
        let until =
            chrono::DateTime::parse_from_rfc3339(started).unwrap() + chrono::Duration::days(1);
        let (mode, row_until, row_hold): (Option<String>, Option<String>, bool) = db(&rec)
            .query_row(
                "SELECT lock_mode, retain_until_utc, legal_hold FROM archive_uploads WHERE call_id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(mode.as_deref(), Some("GOVERNANCE"));
        assert_eq!(row_hold, *id == held, "call {id}");
        let row_until = row_until.unwrap();
        assert_eq!(
            chrono::DateTime::parse_from_rfc3339(&row_until).unwrap(),
            until,
            "start + keep_days"
        );
        let vs = versions(&s, &rec, *id);
        assert!(vs.len() >= 2, "audio, sidecar (and peaks): {vs:?}");
        for v in &vs {
            assert!(!v.delete_marker);
            let h = s.head(&v.key, Some(&v.version_id)).unwrap();
            assert_eq!(h.status, 200, "{}", v.key);
            assert_eq!(
                h.header("x-amz-object-lock-mode"),
                Some("GOVERNANCE"),
                "{}",
                v.key
            );
            let store_until = h.header("x-amz-object-lock-retain-until-date").unwrap();
            assert_eq!(
                chrono::DateTime::parse_from_rfc3339(store_until)
                    .unwrap()
                    .timestamp(),
                until.timestamp(),
                "{}: {store_until}",
                v.key
            );
            assert_eq!(
                s.legal_hold(&v.key, &v.version_id).unwrap(),
                *id == held,
                "legal hold of {}",
                v.key
            );
        }
    }
    // The held call's versions cannot be deleted, not even with the governance bypass.
    let vs = versions(&s, &rec, held);
    for v in &vs {
        let e = s.delete_version(&v.key, &v.version_id, true).unwrap_err();
        assert_eq!(e.status(), Some(403), "{e}");
    }
    assert_eq!(versions(&s, &rec, held).len(), vs.len());

    // Archived now: local retention deletes the two free calls and keeps the held one.
    let out = rec.cmd(&["retention", "run", "--json"]);
    let plan: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(ids_of(&plan["delete"]), free.to_vec(), "{plan:#}");
    assert_eq!(ids_of(&plan["held"]), vec![held]);
    assert_eq!(plan["deleted_calls"], 2);
    for id in free {
        assert_eq!(call_status(&rec, id), "deleted");
        assert!(!versions(&s, &rec, id).is_empty(), "the archive copy stays");
    }
    assert_eq!(call_status(&rec, held), "complete");

    // Release by the second admin: the shipper turns the object legal holds OFF.
    let hold_id: i64 = db(&rec)
        .query_row("SELECT max(id) FROM legal_holds", [], |r| r.get(0))
        .unwrap();
    let o = as_admin(
        &rec,
        1,
        &[
            "hold",
            "release",
            &hold_id.to_string(),
            "--reason",
            "case closed",
            "--by",
            "ben",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let t0 = Instant::now();
    while vs
        .iter()
        .any(|v| s.legal_hold(&v.key, &v.version_id).unwrap())
    {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "legal hold not released in the store: {}",
            ship_log(&rec)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let row_hold: bool = db(&rec)
        .query_row(
            "SELECT legal_hold FROM archive_uploads WHERE call_id = ?1",
            [held],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!row_hold);
    ship.stop();

    // Erasure of the (governance-retained) call: every version goes, and the receipt says so.
    let out_dir = rec.dir.path().join("erasure");
    let o = as_admin(
        &rec,
        0,
        &[
            "erase",
            "--number",
            "+44 20 7946 0101",
            "--request",
            "ticket-1",
            "--by",
            "ann",
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(versions(&s, &rec, held).is_empty(), "every version erased");
    assert_eq!(call_status(&rec, held), "deleted");
    let receipt: Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("receipt.json")).unwrap()).unwrap();
    assert_eq!(receipt["format"], "callrec-erasure-receipt-v2");
    let removed = receipt["archive_removed"].as_array().unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0]["call_id"], held);
    assert_eq!(
        removed[0]["versions"].as_array().unwrap().len(),
        vs.len(),
        "{receipt:#}"
    );
    let audited: i64 = db(&rec)
        .query_row(
            "SELECT count(*) FROM audit WHERE action = 'archive.delete' AND call_id = ?1",
            [held],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(audited, 1);
}

/// Archive retention removes every version (and delete marker) of due calls' objects, keeps a
/// held call and one the store still retains (saying so), records and audits what it removed,
/// and a dry run removes nothing.
#[test]
fn archive_retention_removes_every_version_and_nothing_held() {
    let _shared = OUTAGE.read().unwrap_or_else(|e| e.into_inner());
    let bucket = "lock-ret";
    // Archive keep 0 days: due at once, so no retention date is set at upload.
    let mut rec = locked_box(bucket, 3, "", "[retention]\ndefault_keep_days = 0\n");
    add_admins(&rec);
    let ids = record_numbered(
        &rec,
        &[
            ("s1", "+44 20 7946 0201"),
            ("s2", "+44 20 7946 0202"),
            ("s3", "+44 20 7946 0203"),
        ],
        1000,
    );
    let (due, held, retained) = (ids[0], ids[1], ids[2]);
    let o = as_admin(
        &rec,
        0,
        &[
            "hold",
            "place",
            "--call",
            &held.to_string(),
            "--reason",
            "case 8",
            "--by",
            "ann",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    rec.stop();
    let ship = Ship::start(&rec);
    wait_status(&rec, Duration::from_secs(60), "3 archived", |s| {
        s["backlog"]["archived_calls"] == 3
    });
    ship.stop();
    let s = s3(&rec);
    // A second version of the due call's audio and a delete marker on its sidecar.
    let key = audio_key(&rec, due);
    let audio = get(bucket, &key);
    let c = client(bucket);
    rt().block_on(c.put(&ObjPath::from(key.as_str()), audio.into()))
        .unwrap();
    let side = key.replace(".opus", ".json");
    rt().block_on(c.delete(&ObjPath::from(side.as_str())))
        .unwrap();
    let due_versions = versions(&s, &rec, due);
    assert!(
        due_versions.iter().any(|v| v.delete_marker),
        "{due_versions:?}"
    );
    assert!(
        due_versions
            .iter()
            .filter(|v| v.key == key && !v.delete_marker)
            .count()
            == 2
    );
    // The third call's audio retained by the store until tomorrow.
    let tomorrow = callrec::clock::format_utc(chrono::Utc::now() + chrono::Duration::days(1));
    let rv = versions(&s, &rec, retained);
    let ra = rv.iter().find(|v| v.key.ends_with(".opus")).unwrap();
    s.put_retention(
        &ra.key,
        &ra.version_id,
        s3x::LockMode::Governance,
        &tomorrow,
        false,
    )
    .unwrap();
    let held_versions = versions(&s, &rec, held);

    let dry: Value =
        serde_json::from_str(&rec.cmd(&["archive", "retention", "run", "--dry-run", "--json"]))
            .unwrap();
    assert_eq!(ids_of(&dry["removed"]), vec![due], "{dry:#}");
    assert_eq!(ids_of(&dry["kept"]), vec![held, retained]);
    assert_eq!(versions(&s, &rec, due).len(), due_versions.len(), "dry run");

    let out_dir = rec.dir.path().join("removal");
    let run: Value = serde_json::from_str(&rec.cmd(&[
        "archive",
        "retention",
        "run",
        "--json",
        "--out",
        out_dir.to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(ids_of(&run["removed"]), vec![due], "{run:#}");
    assert_eq!(
        run["removed"][0]["versions"].as_array().unwrap().len(),
        due_versions.len(),
        "every version and marker"
    );
    let kept = run["kept"].as_array().unwrap();
    let why = |id: i64| {
        kept.iter()
            .find(|k| k["call_id"] == id)
            .map(|k| k["why"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert!(why(held).contains("legal hold"), "{}", why(held));
    assert!(
        why(retained).contains("retained by the store in GOVERNANCE mode until"),
        "{}",
        why(retained)
    );
    assert!(
        versions(&s, &rec, due).is_empty(),
        "nothing of the due call is left"
    );
    assert_eq!(versions(&s, &rec, held), held_versions);
    assert_eq!(versions(&s, &rec, retained), rv);
    // Recorded, signed and audited; a second run finds nothing more.
    let removal: Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("removal.json")).unwrap()).unwrap();
    assert_eq!(removal["format"], "callrec-archive-removal-v1");
    assert_eq!(removal["removed"][0]["call_id"], due);
    assert_eq!(
        std::fs::read(out_dir.join("removal.sig")).unwrap().len(),
        64
    );
    let (removed_by, audited): (Option<i64>, i64) = db(&rec)
        .query_row(
            "SELECT (SELECT removed_by FROM archive_uploads WHERE call_id = ?1),
                    (SELECT count(*) FROM audit WHERE action = 'archive.delete' AND call_id = ?1)",
            [due],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(removed_by, run["removal_id"].as_i64());
    assert_eq!(audited, 1);
    let again: Value =
        serde_json::from_str(&rec.cmd(&["archive", "retention", "run", "--json"])).unwrap();
    assert_eq!(ids_of(&again["removed"]), Vec::<i64>::new());
}

/// `object_lock = "compliance"`: the objects carry COMPLIANCE, the store refuses to delete them
/// even with the bypass header, and an erasure is refused with the reason (GDPR Art. 17(3)(b)),
/// nothing deleted here or there.
#[test]
fn archive_erasure_of_a_compliance_locked_call_is_refused() {
    let _shared = OUTAGE.read().unwrap_or_else(|e| e.into_inner());
    let mut rec = locked_box(
        "lock-comp",
        1,
        "object_lock = \"compliance\"\nkeep_days = 1",
        "",
    );
    add_admins(&rec);
    let ids = record_numbered(&rec, &[("s1", "+44 20 7946 0301")], 1000);
    rec.stop();
    let ship = Ship::start(&rec);
    wait_status(&rec, Duration::from_secs(60), "archived", |s| {
        s["backlog"]["archived_calls"] == 1
    });
    ship.stop();
    let s = s3(&rec);
    let vs = versions(&s, &rec, ids[0]);
    for v in &vs {
        let h = s.head(&v.key, Some(&v.version_id)).unwrap();
        assert_eq!(h.header("x-amz-object-lock-mode"), Some("COMPLIANCE"));
        let e = s.delete_version(&v.key, &v.version_id, true).unwrap_err();
        assert_eq!(e.status(), Some(403), "{e}");
    }
    let o = as_admin(
        &rec,
        0,
        &[
            "erase",
            "--number",
            "+44 20 7946 0301",
            "--request",
            "ticket-2",
            "--by",
            "ann",
            "--out",
            rec.dir.path().join("erasure").to_str().unwrap(),
        ],
    );
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("COMPLIANCE retention until"), "{t}");
    assert!(t.contains("GDPR Art. 17(3)(b)"), "{t}");
    assert_eq!(call_status(&rec, ids[0]), "complete", "nothing erased here");
    assert_eq!(versions(&s, &rec, ids[0]), vs, "nothing erased there");
    assert!(rec.file_of(&rec.call(ids[0])).exists());
}

/// `kill -9` of the shipper in the middle of a multipart upload leaves an upload in the store;
/// the next start aborts it, uploads the call again, and no multipart upload remains.
#[test]
fn archive_kill_9_mid_multipart_upload_leaves_no_orphan() {
    let _shared = OUTAGE.read().unwrap_or_else(|e| e.into_inner());
    let bucket = "lock-mpu";
    let mut rec = locked_box(bucket, 1, "", "");
    rec.stop();
    let size = 64 * 1024 * 1024 + 777;
    let mut big = Vec::with_capacity(size + 32);
    let mut i = 0u64;
    while big.len() < size {
        big.extend_from_slice(&<sha2::Sha256 as sha2::Digest>::digest(i.to_le_bytes()));
        i += 1;
    }
    big.truncate(size);
    let dir = rec.storage().join("calls/2026/12/04");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("long.opus"), &big).unwrap();
    let sha = sha256_hex(&big);
    drop(big);
    let c = db(&rec);
    c.execute(
        "INSERT INTO calls (box_id, seat_id, mode, status, started_at_utc, started_mono_ms,
             ended_at_utc, duration_ms, bytes, sha256, rate_hz, bitrate_bps, rel_path)
         VALUES ('test-box', 's1', 'control', 'complete', '2026-12-04T08:00:00.000Z', 0,
             '2026-12-04T21:00:00.000Z', 46800000, ?1, ?2, 16000, 16000, 'calls/2026/12/04/long.opus')",
        rusqlite::params![size as i64, sha],
    )
    .unwrap();
    let id = c.last_insert_rowid();
    drop(c);
    let s = s3(&rec);
    let mut ship = Ship::start(&rec);
    let t0 = Instant::now();
    let uploads = loop {
        let u = s.multipart_uploads("fleet/test-box/").unwrap();
        if !u.is_empty() {
            break u;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no multipart upload seen: {}",
            ship_log(&rec)
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = ship.0.kill();
    let _ = ship.0.wait();
    assert_ne!(rows(&rec)[&id].0, "archived", "killed before completion");
    let left = s.multipart_uploads("fleet/test-box/").unwrap();
    assert_eq!(left, uploads, "the killed shipper left its upload behind");

    let ship = Ship::start(&rec);
    wait_status(
        &rec,
        Duration::from_secs(120),
        "archived after restart",
        |s| s["backlog"]["archived_calls"] == 1,
    );
    ship.stop();
    assert_eq!(
        s.multipart_uploads("fleet/test-box/").unwrap(),
        vec![],
        "no multipart upload remains"
    );
    assert!(
        ship_log(&rec).contains("aborted a multipart upload left behind"),
        "{}",
        ship_log(&rec)
    );
    let key = audio_key(&rec, id);
    assert_eq!(sha256_hex(&get(bucket, &key)), sha);
}
