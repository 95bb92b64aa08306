//! Evidence: `callrec export` bundles checked by the real `sha256sum` and `openssl` (and caught
//! when one byte of audio or manifest changes), `callrec verify` of a bundle and of the whole
//! store, the ledger's append-only trigger through the `sqlite3` tool, and the box key.
//!
//! Calls are recorded by a real `callrec record` from a synthetic seat (no ALSA, no web service:
//! the cheapest recorder that writes real files, rows and ledger entries).

use crate::common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const SEAT: &str = "[[seat]]\nid = \"s1\"\nmode = \"control\"\n[[seat.input]]\nkind = \"synthetic\"\nseed = 3\nagent_channel = 0\ncustomer_channel = 1\n";

/// Records a call of about `secs` seconds and waits until its row is final.
fn record(rec: &Recorder, secs: f64, extra: &[&str], pause_at: Option<f64>) -> i64 {
    let id = rec.start_call("s1", extra);
    let t0 = Instant::now();
    if let Some(p) = pause_at {
        std::thread::sleep(Duration::from_secs_f64(p));
        rec.cmd(&["call", "pause", "--seat", "s1", "--reason", "card"]);
        std::thread::sleep(Duration::from_millis(400));
        rec.cmd(&["call", "resume", "--seat", "s1"]);
    }
    std::thread::sleep(Duration::from_secs_f64(secs).saturating_sub(t0.elapsed()));
    rec.cmd(&["call", "stop", "--seat", "s1"]);
    let t0 = Instant::now();
    while rec.call(id)["status"] == "recording" {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "call {id} not finalized"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    id
}

pub(crate) fn run_in(dir: &Path, prog: &str, args: &[&str]) -> Output {
    Command::new(prog)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{prog}: {e}"))
}

pub(crate) fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The exact command of VERIFY.md, through a shell, from the bundle's parent folder.
pub(crate) fn verify_with_standard_tools(out: &Path, id: i64) -> Output {
    let cmd = format!("cd call-{id} && sha256sum -c SHA256SUMS && openssl pkeyutl -verify -pubin -inkey box.pub -rawin -in manifest.json -sigfile manifest.sig");
    run_in(out, "sh", &["-c", &cmd])
}

fn openssl_verify(dir: &Path) -> Output {
    run_in(
        dir,
        "openssl",
        &[
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            "box.pub",
            "-rawin",
            "-in",
            "manifest.json",
            "-sigfile",
            "manifest.sig",
        ],
    )
}

fn flip_byte(path: &Path, at: usize) {
    let mut d = std::fs::read(path).unwrap();
    d[at] ^= 0x01;
    std::fs::write(path, d).unwrap();
}

fn ffprobe_s(path: &Path) -> f64 {
    let o = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "default=nw=1:nk=1",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "ffprobe {}: {}",
        path.display(),
        text(&o)
    );
    String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
}

fn sqlite(db: &Path, sql: &str) -> Output {
    Command::new("sqlite3").arg(db).arg(sql).output().unwrap()
}

#[test]
fn export_bundle_passes_sha256sum_and_openssl_and_tampering_is_caught() {
    let rec = Recorder::start(SEAT, vec![]);
    let a = record(
        &rec,
        3.0,
        &["--agent", "o'brien", "--number", "+4930123"],
        Some(1.0),
    );
    let b = record(&rec, 1.5, &["--agent", "bob"], None);
    let out = rec.dir.path().join("dispute");
    let outs = out.to_str().unwrap();

    // Two good ids and one unknown: the good ones are exported, the run fails naming the bad one.
    let o = rec.try_cmd(&[
        "export",
        &a.to_string(),
        "999999",
        &b.to_string(),
        "--out",
        outs,
        "--wav",
        "--from",
        "0.5",
        "--to",
        "1.5",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("999999") && err.contains("no call with id 999999"),
        "{err}"
    );
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        summary["exported"].as_array().unwrap().len(),
        2,
        "{summary}"
    );
    assert_eq!(summary["failed"][0]["call_id"], 999999);

    let dir = out.join(format!("call-{a}"));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let excerpt = format!("call-{a}-excerpt-0.5-1.5.wav");
    let mut want = vec![
        "SHA256SUMS".to_string(),
        "VERIFY.md".into(),
        "box.pub".into(),
        excerpt.clone(),
        format!("call-{a}.opus"),
        format!("call-{a}.wav"),
        "manifest.json".into(),
        "manifest.sig".into(),
        "report.html".into(),
    ];
    want.sort();
    assert_eq!(names, want);
    assert!(out.join(format!("call-{b}/call-{b}.opus")).exists());
    assert!(!out.join("call-999999").exists());

    // The original, byte for byte.
    let row = rec.call(a);
    let stored = rec.file_of(&row);
    let copy = dir.join(format!("call-{a}.opus"));
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        std::fs::read(&stored).unwrap()
    );
    assert_eq!(sha256sum(&copy), row["sha256"].as_str().unwrap());

    // The manifest: metadata, the pause, hashes and derived flags, ledger, box key.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["call"]["agent"], "o'brien");
    assert_eq!(manifest["call"]["remote_number"], "+4930123");
    assert_eq!(manifest["call"]["intervals"][0]["kind"], "pause");
    assert_eq!(manifest["call"]["intervals"][0]["reason"], "card");
    assert!(manifest["notes"].is_array() && manifest["evaluations"].is_array());
    assert!(manifest["exported_by"]
        .as_str()
        .unwrap()
        .starts_with("cli:"));
    assert_eq!(manifest["exporting_box_id"], "test-box");
    let files = manifest["files"].as_array().unwrap();
    for f in files {
        let name = f["name"].as_str().unwrap();
        assert_eq!(f["sha256"], sha256sum(&dir.join(name)), "{name}");
        let derived = name.ends_with(".wav");
        assert_eq!(f["derived"], derived, "{name}");
    }
    assert_eq!(files.len(), 6, "{files:?}");
    let entries = manifest["ledger"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["file_sha256"], row["sha256"]);
    assert!(
        manifest["ledger"]["head_at_export"]["seq"]
            .as_i64()
            .unwrap()
            >= 2
    );
    let audit = manifest["audit"].as_array().unwrap();
    assert!(audit.iter().all(|r| r["call_id"] == a), "{audit:?}");

    // The ledger entry recomputes with printf + sha256sum alone, as the module documents.
    let e = &entries[0];
    let o = Command::new("sh")
        .args([
            "-c",
            r#"printf 'callrec-ledger-v2\n%s\n%s\n%s\n%s\n%s\n%s\n%s\n' "$@" | sha256sum"#,
            "sh",
        ])
        .arg(e["seq"].to_string())
        .arg(e["kind"].as_str().unwrap())
        .arg(e["call_id"].to_string())
        .arg(e["file_sha256"].as_str().unwrap())
        .arg(e["detail"].as_str().unwrap())
        .arg(e["prev_sha256"].as_str().unwrap())
        .arg(e["at_utc"].as_str().unwrap())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).split_whitespace().next(),
        e["entry_sha256"].as_str()
    );
    // ...and so does the literal command VERIFY.md gives (shell quoting of o'brien included).
    let md = std::fs::read_to_string(dir.join("VERIFY.md")).unwrap();
    let line = md
        .lines()
        .find(|l| l.starts_with("printf 'callrec-ledger-v2"))
        .unwrap();
    let o = run_in(&dir, "sh", &["-c", line]);
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with(e["entry_sha256"].as_str().unwrap()),
        "{line}: {}",
        text(&o)
    );
    assert!(md.contains(&format!("cd call-{a} && sha256sum -c SHA256SUMS && openssl pkeyutl -verify -pubin -inkey box.pub -rawin -in manifest.json -sigfile manifest.sig")));
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        !html.contains("<script"),
        "report.html must not run scripts"
    );
    assert!(html.contains("o&#39;brien") && html.contains(row["sha256"].as_str().unwrap()));

    // Derived audio: the whole call and a 1.0 s excerpt, as ffprobe measures them.
    let dur_s = row["duration_ms"].as_f64().unwrap() / 1000.0;
    let wav_s = ffprobe_s(&dir.join(format!("call-{a}.wav")));
    assert!(
        (wav_s - dur_s).abs() < 0.05,
        "wav {wav_s} s vs call {dur_s} s"
    );
    let ex_s = ffprobe_s(&dir.join(&excerpt));
    assert!((ex_s - 1.0).abs() <= 0.05, "excerpt {ex_s} s");

    // The real tools accept the bundle, and so does callrec.
    let o = verify_with_standard_tools(&out, a);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("manifest.json: OK") && t.contains("manifest.sig: OK"),
        "{t}"
    );
    assert!(t.contains("Signature Verified Successfully"), "{t}");
    let o = rec.try_cmd(&["verify", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("signed by this box's key"),
        "{}",
        text(&o)
    );

    // One byte of audio changed: sha256sum and callrec verify fail and name the file.
    let original = std::fs::read(&copy).unwrap();
    flip_byte(&copy, original.len() / 2);
    let o = run_in(&dir, "sha256sum", &["-c", "SHA256SUMS"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains(&format!("call-{a}.opus: FAILED")),
        "{}",
        text(&o)
    );
    let o = rec.try_cmd(&["verify", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains(&format!("call-{a}.opus: content changed")),
        "{}",
        text(&o)
    );
    assert!(
        openssl_verify(&dir).status.success(),
        "the manifest itself is untouched"
    );
    std::fs::write(&copy, &original).unwrap();
    assert!(verify_with_standard_tools(&out, a).status.success());

    // One byte of the manifest changed: the signature and SHA256SUMS both fail.
    let mpath = dir.join("manifest.json");
    let mbytes = std::fs::read(&mpath).unwrap();
    let at = String::from_utf8_lossy(&mbytes).find("o'brien").unwrap();
    flip_byte(&mpath, at); // o'brien -> n'brien: still valid JSON
    let o = openssl_verify(&dir);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("Signature Verification Failure"),
        "{}",
        text(&o)
    );
    let o = run_in(&dir, "sha256sum", &["-c", "SHA256SUMS"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("manifest.json: FAILED"), "{}", text(&o));
    let o = rec.try_cmd(&["verify", dir.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["signature_valid"], false);
    assert!(r["problems"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["path"] == "manifest.json"));
    std::fs::write(&mpath, &mbytes).unwrap();
    assert!(verify_with_standard_tools(&out, a).status.success());

    // Exported calls are audited: one `export` row each, naming the folder and manifest hash.
    let db = rec.db();
    let o = sqlite(
        &db,
        &format!("SELECT detail FROM audit WHERE action = 'export' AND call_id = {a}"),
    );
    let rows = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(rows.lines().count(), 1, "{rows}");
    let detail: serde_json::Value = serde_json::from_str(rows.trim()).unwrap();
    assert_eq!(detail["manifest_sha256"], sha256sum(&mpath));
    assert_eq!(detail["out_dir"], dir.to_str().unwrap());
    let o = sqlite(&db, "SELECT count(*) FROM audit WHERE action = 'export'");
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "2");
    rec.cmd(&["audit", "verify"]);

    // A bundle is never overwritten.
    let o = rec.try_cmd(&["export", &a.to_string(), "--out", outs]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("exists already"), "{}", text(&o));
}

#[test]
fn verify_store_names_changed_and_missing_recordings() {
    let rec = Recorder::start(SEAT, vec![]);
    let a = record(&rec, 1.5, &["--agent", "alice"], None);
    let b = record(&rec, 1.5, &["--agent", "bob"], None);
    let o = rec.try_cmd(&["verify", "--store"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("store intact"), "{}", text(&o));
    let db = rec.db();

    // Exactly one ledger entry per finalized call, and the ledger refuses edits.
    let o = sqlite(&db, "SELECT call_id, kind FROM ledger ORDER BY seq");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("{a}|call\n{b}|call\n")
    );
    let o = sqlite(
        &db,
        &format!("UPDATE ledger SET file_sha256 = NULL WHERE call_id = {a}"),
    );
    assert!(!o.status.success());
    assert!(
        text(&o).contains("the ledger is append-only"),
        "{}",
        text(&o)
    );
    let o = sqlite(&db, "DELETE FROM ledger");
    assert!(!o.status.success() && text(&o).contains("append-only"));

    // One byte of a stored recording changed.
    let fa = rec.file_of(&rec.call(a));
    let data = std::fs::read(&fa).unwrap();
    flip_byte(&fa, data.len() - 10);
    let o = rec.try_cmd(&["verify", "--store"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    let rel_a = fa
        .strip_prefix(rec.storage())
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        t.contains(&format!("call {a}: {rel_a}: content changed")),
        "{t}"
    );
    assert!(!t.contains(&format!("call {b}:")), "{t}");
    std::fs::write(&fa, &data).unwrap();
    assert!(rec.try_cmd(&["verify", "--store"]).status.success());

    // A stored recording deleted; an index row edited behind callrec's back.
    let fb = rec.file_of(&rec.call(b));
    let kept = std::fs::read(&fb).unwrap();
    std::fs::remove_file(&fb).unwrap();
    let o = sqlite(
        &db,
        &format!("UPDATE calls SET agent = 'mallory' WHERE id = {a}"),
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = rec.try_cmd(&["verify", "--store", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let problems = r["problems"].as_array().unwrap();
    assert!(
        problems.iter().any(|p| p["call_id"] == b
            && p["what"] == "recording file is missing"
            && p["path"].as_str().unwrap().ends_with(&format!("/{b}.opus"))),
        "{problems:#?}"
    );
    assert!(
        problems.iter().any(|p| p["call_id"] == a
            && p["what"].as_str().unwrap().contains("field agent")
            && p["expected"] == "\"alice\""
            && p["found"] == "\"mallory\""),
        "{problems:#?}"
    );
    let o = rec.try_cmd(&["verify", "--store"]);
    assert!(text(&o).contains(&format!("call {b}: ")) && text(&o).contains("missing"));

    // An orphan file in calls/ is reported too.
    std::fs::write(&fb, &kept).unwrap();
    sqlite(
        &db,
        &format!("UPDATE calls SET agent = 'alice' WHERE id = {a}"),
    );
    let stray: PathBuf = fb.with_file_name("stray.opus");
    std::fs::write(&stray, &kept).unwrap();
    let o = rec.try_cmd(&["verify", "--store"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("stray.opus: file in calls/ that no index row accounts for"),
        "{}",
        text(&o)
    );
    std::fs::remove_file(&stray).unwrap();
    let o = rec.try_cmd(&["verify", "--store"]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn key_show_matches_openssl_and_the_key_is_private() {
    let rec = Recorder::start(SEAT, vec![]);
    // Made at the recorder's first start.
    let keys = rec.storage().join("keys");
    let key = keys.join("box.key");
    let public = keys.join("box.pub");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&keys), 0o700);
    let shown = rec.cmd(&["key", "show"]);
    assert!(shown.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{shown}");
    assert!(shown.contains(&std::fs::read_to_string(&public).unwrap()));
    let o = run_in(
        &keys,
        "sh",
        &[
            "-c",
            "openssl pkey -pubin -in box.pub -outform DER | sha256sum",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let openssl_fp = String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let json: serde_json::Value =
        serde_json::from_str(&rec.cmd(&["key", "show", "--json"])).unwrap();
    assert_eq!(json["fingerprint_sha256"], openssl_fp.as_str());
    assert!(shown.contains(&format!(
        "fingerprint (SHA-256 of the DER public key): {openssl_fp}"
    )));
    // OpenSSL reads the private key as an Ed25519 PKCS#8 key (RFC 8410) too.
    let o = Command::new("openssl")
        .args(["pkey", "-in"])
        .arg(&key)
        .args(["-noout", "-text"])
        .output()
        .unwrap();
    assert!(
        o.status.success() && text(&o).contains("ED25519 Private-Key"),
        "{}",
        text(&o)
    );

    // A key others can read is refused with the fix in the message; the key is not replaced.
    let before = std::fs::read(&key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = rec.try_cmd(&["key", "show"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains(&format!("chmod 600 {}", key.display())),
        "{}",
        text(&o)
    );
    let o = rec.try_cmd(&[
        "export",
        "1",
        "--out",
        rec.dir.path().join("x").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("chmod 600"), "{}", text(&o));
    assert_eq!(std::fs::read(&key).unwrap(), before);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(rec.try_cmd(&["key", "show"]).status.success());
}

#[test]
fn a_call_recovered_after_sigkill_gets_its_ledger_entry() {
    let mut rec = Recorder::start(SEAT, vec![]);
    let id = rec.start_call("s1", &["--agent", "alice"]);
    std::thread::sleep(Duration::from_millis(2500));
    rec.signal("KILL");
    rec.wait(Duration::from_secs(10));
    let db = rec.db();
    let o = sqlite(&db, "SELECT count(*) FROM ledger");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "0",
        "no entry while recording"
    );
    rec.spawn(); // start-up recovery finalizes the call
    let row = rec.call(id);
    assert_eq!(row["status"], "interrupted");
    let o = sqlite(
        &db,
        &format!("SELECT file_sha256, detail FROM ledger WHERE call_id = {id}"),
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(out.lines().count(), 1, "{out}");
    let (sha, detail) = out.trim().split_once('|').unwrap();
    assert_eq!(sha, row["sha256"].as_str().unwrap());
    assert_eq!(sha, sha256sum(&rec.file_of(&row)));
    assert!(detail.contains(r#""status":"interrupted""#), "{detail}");
    let o = rec.try_cmd(&["verify", "--store"]);
    assert!(o.status.success(), "{}", text(&o));
    rec.stop();
}
