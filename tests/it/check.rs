//! `callrec check`: a real store (calls recorded by `callrec record` from a synthetic seat, one
//! killed mid-call) is clean, then damaged in precise ways; the check names each problem by call
//! and kind without changing anything, each repair flag fixes exactly its class (audited), a
//! hash mismatch is never "repaired", and repairs are refused while a recorder runs.
//!
//! Drives the library entry point `callrec::check::run` (CLI: `callrec check
//! [--repair-...]`).

use crate::common::*;
use callrec::check::{self, CheckError, CheckOptions, CheckReport, Repair};
use callrec::config::Config;
use callrec::evidence::verify::ProblemKind as K;
use callrec::store::lifecycle::{self, Deletion, DeletionKind};
use rusqlite::Connection;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

const SEAT: &str = "[[seat]]\nid = \"s1\"\nmode = \"control\"\n[[seat.input]]\nkind = \"synthetic\"\nseed = 5\nagent_channel = 0\ncustomer_channel = 1\n";

/// Records a call of about `secs` seconds and waits until its row is final.
fn record(rec: &Recorder, secs: f64) -> i64 {
    let id = rec.start_call("s1", &["--agent", "alice"]);
    std::thread::sleep(Duration::from_secs_f64(secs));
    rec.cmd(&["call", "stop", "--seat", "s1"]);
    let t0 = Instant::now();
    while rec.call(id)["status"] == "recording" {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "call {id} not final"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    id
}

/// Every regular file under the storage dir (not the control socket) except the index (its bytes move with checkpoints) and its
/// SHA-256: what "nothing changed on disk" compares.
fn files(storage: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![storage.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(storage).unwrap().display().to_string();
            if p.is_dir() {
                stack.push(p);
            } else if p.is_file() && !rel.starts_with("callrec.db") {
                out.insert(rel, callrec::hash::sha256_file(&p).unwrap().0);
            }
        }
    }
    out
}

/// The index as text: every call row, ledger entry and audit row.
fn index_dump(db: &Path) -> String {
    let conn = callrec::store::open_ro(db).unwrap();
    let mut out = String::new();
    for sql in [
        "SELECT * FROM calls ORDER BY id",
        "SELECT * FROM ledger ORDER BY seq",
        "SELECT * FROM audit ORDER BY id",
        "SELECT * FROM deletions ORDER BY id",
    ] {
        let mut st = conn.prepare(sql).unwrap();
        let n = st.column_count();
        let mut rows = st.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            for i in 0..n {
                let v: rusqlite::types::Value = r.get(i).unwrap();
                out.push_str(&format!("{v:?}|"));
            }
            out.push('\n');
        }
    }
    out
}

/// (kind, call id, path) of each problem.
fn found(r: &CheckReport) -> Vec<(K, Option<i64>, String)> {
    let mut v: Vec<_> = r
        .problems
        .iter()
        .map(|p| (p.kind, p.call_id, p.path.clone().unwrap_or_default()))
        .collect();
    v.sort();
    v
}

fn only(repair: Repair) -> CheckOptions {
    let mut o = CheckOptions::default();
    match repair {
        Repair::Recording => o.repair_recording = true,
        Repair::Ledger => o.repair_ledger = true,
        Repair::Garbage => o.repair_garbage = true,
        Repair::Orphans => o.repair_orphans = true,
        Repair::Peaks => o.repair_peaks = true,
    }
    o
}

/// Audit rows written by `callrec check`: (action, call id).
fn check_audit(db: &Path) -> Vec<(String, Option<i64>)> {
    let conn = callrec::store::open_ro(db).unwrap();
    let mut st = conn
        .prepare("SELECT action, call_id FROM audit WHERE actor = 'callrec check' ORDER BY id")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn status(db: &Path, id: i64) -> String {
    let conn = callrec::store::open_ro(db).unwrap();
    conn.query_row("SELECT status FROM calls WHERE id = ?1", [id], |r| r.get(0))
        .unwrap()
}

fn rel_path(db: &Path, id: i64) -> String {
    let conn = callrec::store::open_ro(db).unwrap();
    conn.query_row("SELECT rel_path FROM calls WHERE id = ?1", [id], |r| {
        r.get(0)
    })
    .unwrap()
}

fn rel(storage: &Path, p: &Path) -> String {
    p.strip_prefix(storage).unwrap().display().to_string()
}

fn peaks_of(audio: &Path) -> PathBuf {
    audio.with_extension("dat")
}

#[test]
fn check_names_each_problem_and_each_flag_repairs_only_its_class() {
    let mut rec = Recorder::start(SEAT, vec![]);
    let cfg = Config::load(&rec.cfg).unwrap();
    let storage = rec.storage();
    let db = rec.db();
    // a: peaks deleted; g: peaks cut short; b: one byte flipped; c: marked for deletion only;
    // d: deleted, then its file comes back; e: copied as a call from before the ledger.
    let ids: Vec<i64> = (0..6).map(|_| record(&rec, 1.2)).collect();
    let [a, b, c, d, e, g] = ids[..] else {
        unreachable!()
    };
    let file = |id: i64| storage.join(rel_path(&db, id));

    // Clean, and read-only beside a running recorder.
    let r = check::run(&cfg, &CheckOptions::default()).unwrap();
    assert_eq!(found(&r), vec![], "{r}");
    assert!(r.recorder_running);
    assert_eq!((r.calls, r.files_hashed, r.peaks_checked), (6, 6, 6));
    assert!(r.to_string().ends_with("no problems"), "{r}");
    // Repairs are refused while the recorder holds the storage lock, and change nothing.
    let (disk, index) = (files(&storage), index_dump(&db));
    match check::run(&cfg, &CheckOptions::repair_all()) {
        Err(CheckError::RecorderRunning { .. }) => {}
        other => panic!("repair beside a running recorder: {other:?}"),
    }
    assert_eq!((files(&storage), index_dump(&db)), (disk, index));

    // f: the recorder is killed while it records.
    let f = rec.start_call("s1", &["--agent", "bob"]);
    std::thread::sleep(Duration::from_millis(1500));
    rec.signal("KILL");
    rec.wait(Duration::from_secs(5));
    assert_eq!(status(&db, f), "recording");

    // The damage.
    std::fs::remove_file(peaks_of(&file(a))).unwrap();
    let g_dat = std::fs::read(peaks_of(&file(g))).unwrap();
    std::fs::write(peaks_of(&file(g)), &g_dat[..g_dat.len() / 2]).unwrap();
    let fb = file(b);
    let mut tampered = std::fs::read(&fb).unwrap();
    let at = tampered.len() - 10;
    tampered[at] ^= 0x01;
    std::fs::write(&fb, &tampered).unwrap();
    let day_dir = fb.parent().unwrap().to_path_buf();
    let stray = day_dir.join("stray.opus");
    std::fs::write(&stray, b"not a call").unwrap();
    let tmp = day_dir.join(".import-0042.tmp");
    std::fs::File::create(&tmp)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(2 * 3600))
        .unwrap();
    let fresh_tmp = day_dir.join("7.dat.tmp"); // a write in progress: not a problem
    std::fs::write(&fresh_tmp, b"half").unwrap();
    let conn = callrec::store::open_rw(&db).unwrap();
    let del = |reason| Deletion {
        kind: DeletionKind::Retention,
        reason,
        actor: "admin",
        now_utc: "2026-12-01T00:00:00.000Z",
    };
    let fd = file(d);
    let d_bytes = std::fs::read(&fd).unwrap();
    lifecycle::delete_calls(&conn, &storage, &[d], &del("90 days")).unwrap();
    std::fs::write(&fd, &d_bytes).unwrap();
    // After that deletion: its second step finishes every pending one.
    lifecycle::mark_garbage(&conn, &[c], &del("90 days")).unwrap();
    // A call finalized by a callrec from before the ledger: row and files, no entry.
    let old = 900i64;
    let old_rel = "calls/2019/03/04/900.opus";
    let old_path = storage.join(old_rel);
    std::fs::create_dir_all(old_path.parent().unwrap()).unwrap();
    std::fs::copy(file(e), &old_path).unwrap();
    std::fs::copy(peaks_of(&file(e)), peaks_of(&old_path)).unwrap();
    conn.execute(
        "INSERT INTO calls (id, box_id, seat_id, mode, status, started_at_utc, started_mono_ms,
             ended_at_utc, duration_ms, bytes, sha256, rate_hz, bitrate_bps, agent, rel_path, end_reason)
         SELECT 900, box_id, seat_id, mode, status, '2019-03-04T09:00:00.000Z', 0,
             '2019-03-04T09:00:01.200Z', duration_ms, bytes, sha256, rate_hz, bitrate_bps, agent, ?1, end_reason
         FROM calls WHERE id = ?2",
        rusqlite::params![old_rel, e],
    )
    .unwrap();
    drop(conn);

    // Every problem, by kind and call, and nothing else.
    let (disk, index) = (files(&storage), index_dump(&db));
    let r = check::run(&cfg, &CheckOptions::default()).unwrap();
    let s = |p: &Path| rel(&storage, p);
    let mut expected = vec![
        (K::PeaksMissing, Some(a), s(&peaks_of(&file(a)))),
        (K::HashMismatch, Some(b), s(&fb)),
        (K::PendingDeletion, Some(c), s(&file(c))),
        (K::ResurrectedFile, Some(d), s(&fd)),
        (K::StuckRecording, Some(f), s(&file(f))),
        (K::PeaksCorrupt, Some(g), s(&peaks_of(&file(g)))),
        (K::LedgerEntryMissing, Some(old), old_rel.to_owned()),
        (K::OrphanFile, None, s(&stray)),
        (K::StaleTemporaryFile, None, s(&tmp)),
    ];
    expected.sort();
    assert_eq!(found(&r), expected, "{r}");
    assert!(!r.recorder_running);
    assert_eq!(r.problems(), 9);
    assert_eq!(r.temporary_files, 2);
    let text = r.to_string();
    let mut want_b = tampered.clone();
    want_b[at] ^= 0x01;
    assert!(
        text.contains(&format!(
            "[hash_mismatch] call {b}: {}: content changed: SHA-256 differs from the index (expected sha256 {}, found sha256 {}) (never repaired",
            s(&fb),
            callrec::hash::sha256_hex(&want_b),
            callrec::hash::sha256_hex(&tampered),
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "[peaks_missing] call {a}: {}: waveform peaks are missing (expected audiowaveform .dat v2, 8-bit, 2 channels, found no file) (repair: --repair-peaks)",
            s(&peaks_of(&file(a)))
        )),
        "{text}"
    );
    assert!(
        text.ends_with("9 problem(s): 8 repairable (stop the recorder, then --repair-recording --repair-ledger --repair-garbage --repair-orphans --repair-peaks), 1 to investigate"),
        "{text}"
    );
    // JSON for scripts: the kind is a stable word.
    let json = serde_json::to_value(&r).unwrap();
    assert!(json["problems"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["kind"] == "ledger_entry_missing" && p["call_id"] == old));
    // A check without flags changed nothing.
    assert_eq!((files(&storage), index_dump(&db)), (disk, index));

    // Each flag alone fixes exactly its class.
    let without = |mut v: Vec<(K, Option<i64>, String)>, kinds: &[K]| {
        v.retain(|p| !kinds.contains(&p.0));
        v
    };
    let r = check::run(&cfg, &only(Repair::Peaks)).unwrap();
    let expected = without(expected, &[K::PeaksMissing, K::PeaksCorrupt]);
    assert_eq!(found(&r), expected, "{r}");
    assert_eq!(
        r.repairs
            .iter()
            .map(|x| (x.repair, x.call_id, x.error.clone()))
            .collect::<Vec<_>>(),
        vec![
            (Repair::Peaks, Some(a), None),
            (Repair::Peaks, Some(g), None)
        ]
    );
    for id in [a, g] {
        let p = callrec::dsp::peaks::parse(&std::fs::read(peaks_of(&file(id))).unwrap())
            .expect("rebuilt peaks parse");
        assert_eq!(p.channels, 2);
    }
    assert_eq!(
        check_audit(&db),
        vec![
            ("check.peaks".into(), Some(a)),
            ("check.peaks".into(), Some(g))
        ]
    );

    let r = check::run(&cfg, &only(Repair::Garbage)).unwrap();
    let expected = without(expected, &[K::PendingDeletion]);
    assert_eq!(found(&r), expected, "{r}");
    assert_eq!(status(&db, c), "deleted");
    assert!(!file(c).exists() && !peaks_of(&file(c)).exists());

    let r = check::run(&cfg, &only(Repair::Orphans)).unwrap();
    let expected = without(
        expected,
        &[K::OrphanFile, K::ResurrectedFile, K::StaleTemporaryFile],
    );
    assert_eq!(found(&r), expected, "{r}");
    // Moved aside with their paths, never deleted; the fresh temporary file left alone.
    let orphans = storage.join(check::ORPHANS_DIR);
    assert_eq!(
        std::fs::read(orphans.join(s(&fd))).unwrap(),
        d_bytes,
        "the resurrected recording is kept"
    );
    assert_eq!(
        std::fs::read(orphans.join(s(&stray))).unwrap(),
        b"not a call"
    );
    assert!(orphans.join(s(&tmp)).exists());
    assert!(!fd.exists() && !stray.exists() && !tmp.exists() && fresh_tmp.exists());

    let r = check::run(&cfg, &only(Repair::Ledger)).unwrap();
    let expected = without(expected, &[K::LedgerEntryMissing]);
    assert_eq!(found(&r), expected, "{r}");
    let conn = Connection::open(&db).unwrap();
    let kinds: Vec<String> = conn
        .prepare("SELECT kind FROM ledger WHERE call_id = ?1")
        .unwrap()
        .query_map([old], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(kinds, vec!["call"]);
    let b_entries: i64 = conn
        .query_row("SELECT count(*) FROM ledger WHERE call_id = ?1", [b], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(b_entries, 1, "the tampered call's hash is never re-entered");
    drop(conn);

    // Recovery finalizes the stuck call and, like the recorder's own recovery, writes its
    // peaks: no new problem appears.
    let r = check::run(&cfg, &only(Repair::Recording)).unwrap();
    let expected = without(expected, &[K::StuckRecording]);
    assert_eq!(found(&r), expected, "{r}");
    assert_eq!(status(&db, f), "interrupted");
    assert!(peaks_of(&file(f)).exists(), "recovery wrote the peaks");

    // Everything: only the tampered recording is left, byte for byte as it was found.
    let r = check::run(&cfg, &CheckOptions::repair_all()).unwrap();
    assert_eq!(found(&r), vec![(K::HashMismatch, Some(b), s(&fb))], "{r}");
    assert_eq!(r.problems(), 1);
    assert_eq!(std::fs::read(&fb).unwrap(), tampered);
    assert_eq!(
        check_audit(&db)
            .into_iter()
            .map(|(action, id)| format!("{action} {}", id.unwrap_or(0)))
            .collect::<Vec<_>>(),
        vec![
            format!("check.peaks {a}"),
            format!("check.peaks {g}"),
            format!("check.garbage {c}"),
            format!("check.orphan {d}"),
            "check.orphan 0".into(),
            "check.orphan 0".into(),
            format!("check.ledger {old}"),
            format!("check.recover {f}"),
        ]
    );
    // The repairs kept the audit chain and the index sound, and a restarted recorder starts.
    integrity_ok(&db);
    rec.spawn();
    let r = check::run(&cfg, &CheckOptions::default()).unwrap();
    assert!(r.recorder_running);
    assert_eq!(found(&r), vec![(K::HashMismatch, Some(b), s(&fb))], "{r}");
}
