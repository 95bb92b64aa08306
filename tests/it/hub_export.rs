//! Evidence bundles at the hub, against a real object store (the harness is `fleet.rs`): two
//! boxes ship a call each, `callrec export` with the hub's config makes a bundle of each from the
//! archive that the real `sha256sum` and `openssl` verify exactly as a box bundle, carrying the
//! recording box's ledger entry and public key; a byte changed in the archived object makes the
//! export refuse.

use crate::evidence::{text, verify_with_standard_tools};
use crate::fleet::*;
use crate::web_export::{export_audits, post_export, unzip_verified};
use crate::webbox::PASSWORD;
use object_store::path::Path as ObjPath;
use object_store::ObjectStore;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

fn hub_cli(cfg: &Path, args: &[&str]) -> std::process::Output {
    crate::common::cli_with_stdin(cfg, args, "")
}

fn manifest(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

/// The checks a bundle made at the hub must pass, whatever way it was made: the standard tools,
/// `callrec verify`, and the recording box's chain (its key, its ledger entry, its file hash).
pub(crate) fn assert_hub_bundle(
    out: &Path,
    hub_id: i64,
    rec: &crate::common::Recorder,
    box_id: &str,
    box_call_id: i64,
) {
    let o = verify_with_standard_tools(out, hub_id);
    let t = text(&o);
    assert!(o.status.success(), "sha256sum/openssl: {t}");
    assert!(t.contains("Signature Verified Successfully"), "{t}");
    assert!(!t.contains("FAILED"), "{t}");
    let dir = out.join(format!("call-{hub_id}"));
    let v = crate::common::cli_with_stdin(&rec.cfg, &["verify", dir.to_str().unwrap()], "");
    assert!(v.status.success(), "callrec verify: {}", text(&v));
    let m = manifest(&dir);
    assert_eq!(m["call_id"], hub_id);
    assert_eq!(m["recorded_by"]["box_id"], box_id);
    assert_eq!(m["recorded_by"]["box_call_id"], box_call_id);
    let box_call = rec.call(box_call_id);
    let original = std::fs::read(dir.join(format!("call-{hub_id}.opus"))).unwrap();
    assert_eq!(
        Some(sha256_hex(&original).as_str()),
        box_call["sha256"].as_str(),
        "the original is the box's recording byte for byte"
    );
    // The box's own key, as `callrec key show` prints it on the box.
    let shown: Value = serde_json::from_str(&rec.cmd(&["key", "show", "--json"])).unwrap();
    assert_eq!(
        m["recorded_by"]["key_fingerprint_sha256"],
        shown["fingerprint_sha256"]
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("recording-box.pub")).unwrap(),
        shown["public_key_pem"].as_str().unwrap()
    );
    let fp = crate::evidence::run_in(
        &dir,
        "sh",
        &[
            "-c",
            "openssl pkey -pubin -in recording-box.pub -outform DER | sha256sum",
        ],
    );
    assert!(
        text(&fp).starts_with(shown["fingerprint_sha256"].as_str().unwrap()),
        "{}",
        text(&fp)
    );
    // The box's ledger entry, as the box's index holds it.
    let entries = m["ledger"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{m}");
    assert_eq!(entries[0]["call_id"], box_call_id);
    assert_eq!(entries[0]["file_sha256"], box_call["sha256"]);
    let db = rec.dir.path().join("store/callrec.db");
    let c = rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    let box_entry: String = c
        .query_row(
            "SELECT entry_sha256 FROM ledger WHERE call_id = ?1 AND kind = 'call'",
            [box_call_id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(entries[0]["entry_sha256"], box_entry);
}

#[test]
fn hub_exports_calls_of_two_floors_from_the_archive_and_refuses_a_changed_object() {
    let _shared = OUTAGE.read().unwrap_or_else(|e| e.into_inner());
    let bucket = "hub-export";
    rgw_sh(&["mkbucket", bucket]);
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| box_named(bucket, "exp-a", 1));
        let b = box_named(bucket, "exp-b", 1);
        (a.join().unwrap(), b)
    });
    let (ids_a, ids_b) = std::thread::scope(|s| {
        let ia = s.spawn(|| record_calls(&a, &["s1"], 2500));
        let ib = record_calls(&b, &["s1"], 2500);
        (ia.join().unwrap(), ib)
    });
    let (ship_a, ship_b) = (Ship::start(&a), Ship::start(&b));
    for rec in [&a, &b] {
        wait_status(rec, Duration::from_secs(60), "archived", |s| {
            s["backlog"]["archived_calls"] == 1
        });
    }
    ship_a.stop();
    ship_b.stop();
    let (hub_dir, hub_cfg, port) = hub_config(bucket);
    let hub = hub_start(hub_dir, hub_cfg.clone(), port);
    wait_hub_calls(&hub, 2, Duration::from_secs(60));
    let rows = hub_rows(&hub.db());

    // 1. A bundle of each floor's call, made at the hub; one of them with an excerpt.
    let out = tempfile::tempdir().unwrap();
    for (hub_id, box_id, box_call_id, _, _) in &rows {
        let (rec, want) = if box_id == "exp-a" {
            (&a, ids_a[0])
        } else {
            (&b, ids_b[0])
        };
        assert_eq!(*box_call_id, want);
        let mut args = vec![
            "export".to_owned(),
            hub_id.to_string(),
            "--out".into(),
            out.path().display().to_string(),
        ];
        if box_id == "exp-b" {
            args.extend(["--from", "0.5", "--to", "1.5"].map(String::from));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = hub_cli(&hub_cfg, &args);
        assert!(o.status.success(), "hub export {hub_id}: {}", text(&o));
        assert_hub_bundle(out.path(), *hub_id, rec, box_id, *box_call_id);
        let audits = export_audits(&hub.db(), *hub_id);
        assert_eq!(audits.len(), 1, "{audits:?}");
        assert_eq!(audits[0].1["recorded_by"]["box_id"], box_id.as_str());
        if box_id == "exp-b" {
            let m = manifest(&out.path().join(format!("call-{hub_id}")));
            let excerpt = m["files"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["kind"] == "excerpt-wav")
                .unwrap_or_else(|| panic!("no excerpt in {m}"));
            assert_eq!(excerpt["derived"], true);
            assert_eq!(audits[0].1["excerpt_s"], serde_json::json!([0.5, 1.5]));
        }
    }
    let leftovers: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // 2. The browser's zip at the hub: a lead downloads an excerpt of floor a's call; an agent
    // is refused.
    hub.add_user("lead", "supervisor", &[]);
    hub.add_user("alice", "agent", &["--agent-id", "nobody"]);
    let (hub_id, box_id, box_call_id, _, _) =
        rows.iter().find(|r| r.1 == "exp-a").cloned().unwrap();
    let mut lead = hub.login("lead", PASSWORD);
    let page = lead.get(&format!("/calls/{hub_id}"));
    assert!(
        page.body_text()
            .contains(&format!(r#"action="/calls/{hub_id}/export""#)),
        "{}",
        page.body_text()
    );
    let web_out = tempfile::tempdir().unwrap();
    let r = post_export(&mut lead, hub_id, "0.5", "1.5");
    unzip_verified(&r, hub_id, web_out.path());
    assert_hub_bundle(web_out.path(), hub_id, &a, &box_id, box_call_id);
    let audits = export_audits(&hub.db(), hub_id);
    assert_eq!(audits.len(), 2, "{audits:?}");
    assert!(audits[1].0.contains("lead"), "{audits:?}");
    assert_eq!(audits[1].1["excerpt_s"], serde_json::json!([0.5, 1.5]));
    let mut agent = hub.login("alice", PASSWORD);
    agent.get("/calls");
    let r = post_export(&mut agent, hub_id, "", "");
    assert_eq!(r.status, 403, "{}", r.body_text());

    // 3. One byte of an archived recording changed: the export refuses, naming the mismatch.
    let (hub_id, _, _, sha, key) = rows.iter().find(|r| r.1 == "exp-b").cloned().unwrap();
    let mut object = get(bucket, &key);
    let middle = object.len() / 2;
    object[middle] ^= 0x01;
    rt().block_on(client(bucket).put(&ObjPath::from(key.as_str()), object.into()))
        .unwrap();
    let out2 = tempfile::tempdir().unwrap();
    let o = hub_cli(
        &hub_cfg,
        &[
            "export",
            &hub_id.to_string(),
            "--out",
            out2.path().to_str().unwrap(),
        ],
    );
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("but its sidecar says") && t.contains(&sha) && t.contains(&key),
        "{t}"
    );
    let left: Vec<_> = std::fs::read_dir(out2.path()).unwrap().collect();
    assert!(left.is_empty(), "nothing is left behind: {left:?}");
    assert_eq!(
        export_audits(&hub.db(), hub_id).len(),
        1,
        "no audit row for a refused export"
    );
}
