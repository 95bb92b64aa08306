//! The browser's evidence export on a box: leads, auditors and admins download a call (whole
//! or an excerpt) from the call page as a zip of the evidence bundle, which `unzip`, `sha256sum`
//! and `openssl` verify; every export is audited with who, the call and the excerpt; QA
//! reviewers and agents get 403, a request without the form's CSRF token 403, and an anonymous
//! one the login page.

use crate::evidence::{text, verify_with_standard_tools};
use crate::webbox::{Reply, Session, WebBox, PASSWORD};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The export form as the call page sends it (with its CSRF field).
pub(crate) fn post_export(s: &mut Session, call_id: i64, from: &str, to: &str) -> Reply {
    let csrf = s.csrf.clone().unwrap_or_default();
    s.post_form(
        &format!("/calls/{call_id}/export"),
        &[("csrf", csrf.as_str()), ("from", from), ("to", to)],
    )
}

/// A 200 zip answer unpacked into `into` (with `unzip`); the bundle folder, verified with the
/// exact standard-tool commands of VERIFY.md.
pub(crate) fn unzip_verified(r: &Reply, call_id: i64, into: &Path) -> PathBuf {
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.header("content-type"), Some("application/zip"));
    assert_eq!(
        r.header("content-disposition"),
        Some(format!("attachment; filename=\"call-{call_id}-evidence.zip\"").as_str())
    );
    let zip = into.join("bundle.zip");
    std::fs::write(&zip, &r.body).unwrap();
    let o = crate::evidence::run_in(into, "unzip", &["-q", "bundle.zip"]);
    assert!(o.status.success(), "unzip: {}", text(&o));
    std::fs::remove_file(&zip).unwrap();
    let o = verify_with_standard_tools(into, call_id);
    let t = text(&o);
    assert!(o.status.success(), "sha256sum/openssl: {t}");
    assert!(
        t.contains("Signature Verified Successfully") && !t.contains("FAILED"),
        "{t}"
    );
    into.join(format!("call-{call_id}"))
}

/// (actor, detail) of the `export` audit rows of a call.
pub(crate) fn export_audits(db: &Path, call_id: i64) -> Vec<(String, Value)> {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    let mut st = c
        .prepare(
            "SELECT actor, detail FROM audit WHERE action = 'export' AND call_id = ?1 ORDER BY id",
        )
        .unwrap();
    st.query_map([call_id], |r| Ok((r.get(0)?, r.get::<_, String>(1)?)))
        .unwrap()
        .map(|r| {
            let (a, d) = r.unwrap();
            (a, serde_json::from_str(&d).unwrap_or(Value::Null))
        })
        .collect()
}

#[test]
fn leads_and_auditors_download_a_verifiable_zip_others_are_refused() {
    let wb = WebBox::start("");
    let call = wb.record_call("seat02", 3.0, &["--agent", "alice"]);
    for (user, role) in [
        ("lead", "supervisor"),
        ("aud", "auditor"),
        ("rev", "qa"),
        ("alice", "agent"),
    ] {
        let extra: &[&str] = if role == "agent" {
            &["--agent-id", "alice"]
        } else {
            &[]
        };
        wb.add_user(user, role, extra);
    }
    let page = |s: &mut Session| {
        let r = s.get(&format!("/calls/{call}"));
        assert_eq!(r.status, 200, "{}", r.body_text());
        r.body_text()
    };

    // A lead: the whole call, once its row is final.
    let mut lead = wb.login("lead", PASSWORD);
    let t0 = std::time::Instant::now();
    while lead.get(&format!("/api/calls/{call}")).json()["status"] == "recording" {
        assert!(t0.elapsed().as_secs() < 10, "call {call} not finalized");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(page(&mut lead).contains(&format!(r#"action="/calls/{call}/export""#)));
    let out = tempfile::tempdir().unwrap();
    let r = post_export(&mut lead, call, "", "");
    let dir = unzip_verified(&r, call, out.path());
    let v = wb.cli_with_stdin(&["verify", dir.to_str().unwrap()], "");
    assert!(v.status.success(), "callrec verify: {}", text(&v));
    let m: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["call_id"], call);
    assert!(m.get("recorded_by").is_none(), "a box's own call: {m}");
    let files: Vec<&str> = m["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert!(!files.contains(&"excerpt-wav"), "{files:?}");

    // An auditor: an excerpt, 0.5 s to 2 s.
    let mut aud = wb.login("aud", PASSWORD);
    page(&mut aud);
    let out2 = tempfile::tempdir().unwrap();
    let r = post_export(&mut aud, call, "0.5", "2");
    let dir = unzip_verified(&r, call, out2.path());
    assert!(
        dir.join(format!("call-{call}-excerpt-0.5-2.wav")).is_file(),
        "{:?}",
        std::fs::read_dir(&dir).unwrap().collect::<Vec<_>>()
    );

    let audits = export_audits(&wb.db(), call);
    assert_eq!(audits.len(), 2, "{audits:?}");
    assert!(audits[0].0.contains("lead"), "{audits:?}");
    assert_eq!(audits[0].1["excerpt_s"], Value::Null);
    assert!(audits[1].0.contains("aud"), "{audits:?}");
    assert_eq!(audits[1].1["excerpt_s"], serde_json::json!([0.5, 2.0]));

    // Bad excerpts: 400 with a reason, no audit row.
    let r = post_export(&mut aud, call, "2", "1");
    assert_eq!(r.status, 400, "{}", r.body_text());
    let r = post_export(&mut aud, call, "1", "");
    assert_eq!(r.status, 400, "{}", r.body_text());
    let r = post_export(&mut aud, call, "0", "999");
    assert_eq!(r.status, 400, "{}", r.body_text());

    // No CSRF field: refused.
    let r = lead.post_form(
        &format!("/calls/{call}/export"),
        &[("from", ""), ("to", "")],
    );
    assert_eq!(r.status, 403, "{}", r.body_text());

    // QA reviewers and agents: 403, and no export form on their page.
    for user in ["rev", "alice"] {
        let mut s = wb.login(user, PASSWORD);
        assert!(
            !page(&mut s).contains("/export\""),
            "{user} sees no export form"
        );
        let r = post_export(&mut s, call, "", "");
        assert_eq!(r.status, 403, "{user}: {}", r.body_text());
    }
    // Anonymous: to the login page.
    let mut anon = Session::anonymous(&wb);
    let r = anon.post_form(&format!("/calls/{call}/export"), &[("from", "")]);
    assert_eq!(r.status, 303, "{}", r.body_text());
    assert_eq!(
        export_audits(&wb.db(), call).len(),
        2,
        "refusals write no export row"
    );
    // Nothing left behind in the storage dir.
    let tmp = wb.dir.path().join("store/export-tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|d| d.collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}
