//! Erased means erased: after `callrec erase --number N`, no byte of N (in any common notation),
//! of the erased CTI ids, note text or transcript words is left in any file under the storage
//! dir — index, WAL, SHM, FTS5 shadow tables, audit rows, peaks, other calls' OpusTags — while
//! `callrec run` keeps running. The audit chain still verifies, and "who searched for this
//! number?" is still answered through the keyed hash.

use crate::webbox::{WebBox, PASSWORD};
use std::path::Path;
use std::time::{Duration, Instant};

/// As a CTI sends it (E.164).
const NUMBER: &str = "+442079460001";
/// The same number as the customer wrote it in the request; erasure matches on the digits.
const NUMBER_AS_ERASED: &str = "+44 20 7946-0001";
const OTHER: &str = "+49 30 1234 5678";

/// Every byte sequence that would show the number, the CTI ids or the typed texts survived.
fn needles() -> Vec<(&'static str, Vec<u8>)> {
    let mut v: Vec<(&str, Vec<u8>)> = [
        "442079460001",
        "2079460001",
        "79460001",
        "7946 0001",
        "7946-0001",
        "20 7946",
        "CTI-A-4711",
        "CTI-B-0815",
        "CTI-D-2323",
        "Quackenbush",
        "Zebedee",
    ]
    .iter()
    .map(|s| (*s, s.as_bytes().to_vec()))
    .collect();
    // FTS5 stores tokens folded to lower case.
    v.push(("xylophonic", b"xylophonic".to_vec()));
    v.push(("marmalade", b"marmalade".to_vec()));
    v
}

/// (file, needle) for every needle found in any file under `dir`, case-insensitively.
fn grep_tree(dir: &Path) -> Vec<(String, &'static str)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let bytes = std::fs::read(&p).unwrap_or_default().to_ascii_lowercase();
            for (name, needle) in needles() {
                let n = needle.to_ascii_lowercase();
                if bytes.windows(n.len()).any(|w| w == n.as_slice()) {
                    found.push((p.display().to_string(), name));
                }
            }
        }
    }
    found
}

fn wait_final(wb: &WebBox, s: &mut crate::webbox::Session, ids: &[i64]) {
    let t0 = Instant::now();
    while ids
        .iter()
        .any(|id| s.get(&format!("/api/calls/{id}")).json()["status"] == "recording")
    {
        assert!(
            t0.elapsed().as_secs() < 15,
            "calls not finalized: {}",
            wb.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn erasure_leaves_no_byte_of_the_number_anywhere_under_the_storage_dir() {
    let wb = WebBox::start("");
    wb.add_user("ann", "admin", &[]);
    wb.add_user("rita", "qa", &[]);
    let token = wb.cli(&["tokens", "add", "cti"]).trim().to_owned();
    let store = wb.dir.path().join("store");

    // A: the number from the start, with a CTI id.
    let a = wb.record_call(
        "seat01",
        1.0,
        &["--number", NUMBER, "--external-id", "CTI-A-4711"],
    );
    // B: started with the number, corrected mid-call to another one: the file's OpusTags keep
    // the first, so erasure must still find B.
    let b = wb.cli(&[
        "call",
        "start",
        "--seat",
        "seat02",
        "--number",
        NUMBER,
        "--external-id",
        "CTI-B-0815",
    ]);
    let b: i64 = b.trim().parse().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    wb.cli(&[
        "call",
        "tag",
        "--seat",
        "seat02",
        "--number",
        "+442079460777",
    ]);
    std::thread::sleep(Duration::from_millis(500));
    wb.cli(&["call", "stop", "--seat", "seat02"]);
    // C: another customer, who must keep everything.
    let c = wb.record_call(
        "seat01",
        1.0,
        &["--number", OTHER, "--external-id", "CTI-C-1"],
    );
    // D: started by the CTI through the HTTP control API (its request is audited).
    let mut cti = crate::webbox::Session::anonymous(&wb);
    cti.bearer = Some(token);
    let body =
        format!(r#"{{"meta": {{"remote_number": "{NUMBER}", "external_id": "CTI-D-2323"}}}}"#);
    let r = cti.post_json("/api/control/seats/seat02/start", &body);
    assert_eq!(r.status, 200, "{}", r.body_text());
    let d = r.json()["call_id"].as_i64().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        cti.post_json("/api/control/seats/seat02/stop", "{}").status,
        200
    );

    let mut rita = wb.login("rita", PASSWORD);
    wait_final(&wb, &mut rita, &[a, b, c, d]);
    // A reviewer's note and a transcript on A, and searches for the number and a word.
    let r = rita.post_json(
        &format!("/api/calls/{a}/notes"),
        r#"{"at_ms": 100, "text": "Zebedee Quackenbush asked for a refund"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.body_text());
    let vtt = "WEBVTT\n\n00:00.000 --> 00:00.800\nmy xylophonic marmalade order\n";
    let r = rita.send(
        "POST",
        &format!("/api/calls/{a}/transcript"),
        "text/vtt",
        vtt,
        true,
    );
    assert_eq!(r.status, 201, "{}", r.body_text());
    let found = rita.get("/api/calls?number=%2B442079460001").json();
    assert_eq!(found["total"], 2, "A and D: {found}");
    let found = rita.get("/api/calls?transcript=marmalade").json();
    assert_eq!(found["total"], 1, "{found}");
    assert!(
        !grep_tree(&store).is_empty(),
        "the needles must be there before the erasure, or the grep proves nothing"
    );

    // The erasure, by the number in another notation, with the recorder and web running.
    let receipt = wb.dir.path().join("receipt");
    let o = wb.cli_with_stdin(
        &[
            "erase",
            "--number",
            NUMBER_AS_ERASED,
            "--request",
            "DSR-118",
            "--by",
            "ann",
            "--out",
            receipt.to_str().unwrap(),
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
    let receipt_json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut deleted: Vec<i64> = receipt_json["deleted_recordings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["call_id"].as_i64().unwrap())
        .collect();
    deleted.sort();
    assert_eq!(
        deleted,
        vec![a, b, d],
        "A, B (number corrected mid-call) and D"
    );

    // Not a byte left, in any file: index, WAL, SHM, FTS shadow tables, audit, peaks, OpusTags.
    let left = grep_tree(&store);
    assert!(left.is_empty(), "found after erasure: {left:?}");

    // C keeps its number and audio.
    let j = rita.get(&format!("/api/calls/{c}")).json();
    assert_eq!(j["remote_number"], OTHER);
    assert_eq!(rita.get(&format!("/api/calls/{c}/audio")).status, 200);

    // Nothing can be attached to or re-created for an erased call.
    let r = rita.post_json(
        &format!("/api/calls/{a}/notes"),
        r#"{"at_ms": 1, "text": "again"}"#,
    );
    assert!(
        r.status == 410 || r.status == 404,
        "{} {}",
        r.status,
        r.body_text()
    );
    let r = rita.send(
        "POST",
        &format!("/api/calls/{a}/transcript"),
        "text/vtt",
        vtt,
        true,
    );
    assert!(
        r.status == 410 || r.status == 404,
        "{} {}",
        r.status,
        r.body_text()
    );
    let r = rita.get(&format!("/api/calls/{a}/peaks.dat"));
    assert_eq!(r.status, 410, "{}", r.body_text());
    let rel: String = rusqlite::Connection::open(wb.db())
        .unwrap()
        .query_row("SELECT rel_path FROM calls WHERE id = ?1", [a], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(!store.join(&rel).with_extension("dat").exists());
    let left = grep_tree(&store);
    assert!(left.is_empty(), "found after the attempts: {left:?}");

    // The audit chain verifies, and "who searched for this number?" is answered by its hash.
    wb.cli(&["audit", "verify"]);
    let rows: serde_json::Value = serde_json::from_str(&wb.cli(&[
        "audit",
        "mentions",
        "--number",
        "+44 (20) 7946-0001",
        "--json",
    ]))
    .unwrap();
    let actions: Vec<(String, String)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["actor"].as_str().unwrap().to_owned(),
                r["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        actions.contains(&("rita".into(), "search".into())),
        "{actions:?}"
    );
    assert!(
        actions.iter().any(|(_, a)| a == "control.start"),
        "{actions:?}"
    );
    crate::common::integrity_ok(&wb.db());
}
