//! `callrec archive restore` against a real object store (the harness is `fleet.rs`): a box
//! ships its calls, its storage dir is lost, and a fresh box with the same box id rebuilds its
//! index from the archive: the rows, intervals, tags, metrics and ledger entries equal the
//! originals column for column, the recordings come back byte for byte, `verify --store` passes,
//! the calls are archived (nothing to ship again), and a second restore changes nothing.

use crate::evidence::text;
use crate::fleet::*;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// Every row of `sql`, each column as text (NULL as "NULL"), for a column-by-column comparison.
fn dump(db: &Path, sql: &str) -> Vec<Vec<String>> {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    let mut st = c.prepare(sql).unwrap();
    let n = st.column_count();
    st.query_map([], |r| {
        Ok((0..n)
            .map(|i| match r.get_ref(i).unwrap() {
                rusqlite::types::ValueRef::Null => "NULL".to_owned(),
                rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                rusqlite::types::ValueRef::Real(v) => v.to_string(),
                rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                    String::from_utf8_lossy(t).into_owned()
                }
            })
            .collect())
    })
    .unwrap()
    .map(|r| r.unwrap())
    .collect()
}

const CALLS: &str = "SELECT id, box_id, seat_id, mode, status, started_at_utc, started_mono_ms,
    ended_at_utc, duration_ms, bytes, sha256, dropped_frames, rate_hz, bitrate_bps, agent,
    direction, remote_number, campaign, external_id, rel_path, end_reason, note FROM calls ORDER BY id";
const TAGS: &str = "SELECT call_id, tag FROM call_tags ORDER BY call_id, tag";
const INTERVALS: &str =
    "SELECT call_id, kind, start_ms, end_ms, by, reason FROM call_intervals ORDER BY call_id, start_ms";
const LEDGER: &str = "SELECT * FROM ledger ORDER BY seq";
// The document (`detail`) last: the check below compares it as JSON.
const METRICS: &str = "SELECT call_id, agent_talk_ms, customer_talk_ms, talk_ratio, dead_air_count,
    dead_air_total_ms, dead_air_longest_ms, overtalk_count, overtalk_total_ms, agent_interruptions,
    response_latency_mean_ms, response_latency_max_ms, longest_silence_ms, agent_loudest_dbfs,
    customer_loudest_dbfs, detail FROM call_metrics ORDER BY call_id";

#[test]
fn a_replaced_box_restores_its_index_and_recordings_from_the_archive() {
    let _shared = OUTAGE.read().unwrap_or_else(|e| e.into_inner());
    let bucket = "box-restore";
    rgw_sh(&["mkbucket", bucket]);
    let mut rec = box_named(bucket, "rest-a", 2);
    // Two calls, one tagged and paused (an interval), so every table has something to restore.
    let first = rec.start_call("s1", &["--agent", "alice", "--tag", "vip"]);
    let second = rec.start_call("s2", &["--agent", "bob"]);
    std::thread::sleep(Duration::from_millis(800));
    rec.cmd(&["call", "pause", "--seat", "s1", "--reason", "card"]);
    std::thread::sleep(Duration::from_millis(500));
    rec.cmd(&["call", "resume", "--seat", "s1"]);
    std::thread::sleep(Duration::from_millis(800));
    rec.cmd(&["call", "stop", "--seat", "s1"]);
    rec.cmd(&["call", "stop", "--seat", "s2"]);
    let ship = Ship::start(&rec);
    wait_status(&rec, Duration::from_secs(60), "archived", |s| {
        s["backlog"]["archived_calls"] == 2 && s["backlog"]["ledger_entries_unshipped"] == 0
    });
    ship.stop();
    rec.stop();
    let db = rec.db();
    let before: Vec<Vec<Vec<String>>> = [CALLS, TAGS, INTERVALS, LEDGER, METRICS]
        .iter()
        .map(|q| dump(&db, q))
        .collect();
    assert_eq!(before[0].len(), 2);
    assert!(!before[1].is_empty() && !before[2].is_empty(), "{before:?}");
    let files: Vec<(String, Vec<u8>)> = before[0]
        .iter()
        .map(|row| {
            let rel = row[19].clone();
            let bytes = std::fs::read(rec.storage().join(&rel)).unwrap();
            (rel, bytes)
        })
        .collect();

    // The disk is lost; a new box with the same id and config restores.
    std::fs::remove_dir_all(rec.storage()).unwrap();
    let cli = |args: &[&str]| crate::common::cli_with_stdin(&rec.cfg, args, "");
    let o = cli(&[
        "archive",
        "restore",
        "--box",
        "rest-a",
        "--recordings-since",
        "30",
        "--json",
    ]);
    assert!(o.status.success(), "restore: {}", text(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["written"]["calls"], 2, "{r}");
    assert_eq!(r["recordings"], 2, "{r}");
    assert_eq!(r["ledger_broken_at_seq"], Value::Null, "{r}");
    let after: Vec<Vec<Vec<String>>> = [CALLS, TAGS, INTERVALS, LEDGER, METRICS]
        .iter()
        .map(|q| dump(&db, q))
        .collect();
    for (i, name) in ["calls", "tags", "intervals", "ledger"].iter().enumerate() {
        assert_eq!(after[i], before[i], "{name} restored as they were");
    }
    // Metrics: the figures column for column; the document (last column) as the same JSON (the
    // sidecar carries it as a JSON value, whose key order is not information).
    let as_json = |rows: &[Vec<String>]| -> Vec<(Vec<String>, Value)> {
        rows.iter()
            .map(|r| {
                let (doc, figures) = r.split_last().unwrap();
                (figures.to_vec(), serde_json::from_str(doc).unwrap())
            })
            .collect()
    };
    assert_eq!(before[4].len(), 2, "both calls have metrics");
    assert_eq!(as_json(&after[4]), as_json(&before[4]), "metrics restored");
    for (rel, bytes) in &files {
        assert_eq!(
            &std::fs::read(rec.storage().join(rel)).unwrap(),
            bytes,
            "{rel} byte for byte"
        );
    }
    let v = cli(&["verify", "--store"]);
    assert!(v.status.success(), "verify --store: {}", text(&v));
    let list = String::from_utf8_lossy(&cli(&["calls", "list"]).stdout).into_owned();
    for id in [first, second] {
        assert!(list.contains(&id.to_string()), "{list}");
    }
    let s: Value = serde_json::from_slice(&cli(&["archive", "status", "--json"]).stdout).unwrap();
    assert_eq!(s["backlog"]["archived_calls"], 2, "{s}");
    assert_eq!(s["backlog"]["calls"], 0, "nothing to ship again: {s}");
    assert_eq!(s["backlog"]["ledger_entries_unshipped"], 0, "{s}");

    // Idempotent: refused on a non-empty index without --force; with it, nothing changes.
    let o = cli(&["archive", "restore", "--box", "rest-a"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("--force"), "{}", text(&o));
    let o = cli(&[
        "archive",
        "restore",
        "--box",
        "rest-a",
        "--force",
        "--recordings-since",
        "30",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["written"]["calls"], 0, "{r}");
    assert_eq!(r["written"]["ledger_entries"], 0, "{r}");
    assert_eq!(r["recordings_present"], 2, "{r}");
    assert_eq!(dump(&db, CALLS), before[0]);
    // Another box's id is refused.
    let o = cli(&["archive", "restore", "--box", "other", "--force"]);
    assert!(
        !o.status.success() && text(&o).contains("[box] id"),
        "{}",
        text(&o)
    );
}
