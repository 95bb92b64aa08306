//! Shipping to a real object store (the harness is `fleet.rs`): a recorder records calls,
//! `callrec ship` (its own process, as in production) ships them, and the bucket is read back with
//! the same client crate and compared with the index byte for byte. The outage test stops only
//! the gateway, so it holds the cluster exclusively (a write lock) while the others share it.

use crate::common::bin;
use crate::fleet::*;
use object_store::path::Path as ObjPath;
use object_store::{Attribute, ObjectStore};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn archive_ships_every_call_with_matching_hashes() {
    let _shared = OUTAGE.read().unwrap_or_else(|e| e.into_inner());
    let bucket = "ship-basic";
    let mut rec = boxed(bucket, 3, SECRET, "");
    let ids = record_calls(&rec, &["s1", "s2", "s3"], 1500);
    let before = status(&rec);
    assert_eq!(
        before["backlog"]["calls"], 3,
        "finalized calls wait for the shipper: {before}"
    );
    let ship = Ship::start(&rec);
    let s = wait_status(
        &rec,
        Duration::from_secs(60),
        "3 archived, ledger shipped",
        |s| {
            s["backlog"]["calls"] == 0
                && s["backlog"]["archived_calls"] == 3
                && s["backlog"]["ledger_entries_unshipped"] == 0
        },
    );
    assert_eq!(s["backlog"]["bytes"], 0);
    assert_eq!(s["alarm"], Value::Null);
    ship.stop();
    assert_archived_as_indexed(&rec, bucket, &ids);
    // Three objects per call (audio, peaks, sidecar) and nothing else.
    let list = listing(bucket);
    let with_peaks = ids
        .iter()
        .filter(|id| rec.file_of(&rec.call(**id)).with_extension("dat").exists())
        .count();
    let ledger_key = "fleet/test-box/ledger/000000000001-000000000003.jsonl";
    assert_eq!(list.len(), 2 * ids.len() + with_peaks + 1, "{list:#?}");
    // The ledger as one segment: the three entries, chained from genesis, the same entries the
    // sidecars carry, recorded with the store's ETag.
    let seg = String::from_utf8(get(bucket, ledger_key)).unwrap();
    let entries: Vec<Value> = seg
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        entries
            .iter()
            .map(|e| e["seq"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(entries[0]["prev_sha256"], "0".repeat(64));
    for w in entries.windows(2) {
        assert_eq!(w[1]["prev_sha256"], w[0]["entry_sha256"]);
    }
    for id in &ids {
        let e = entries.iter().find(|e| e["call_id"] == *id).unwrap();
        assert_eq!(e["file_sha256"], rec.call(*id)["sha256"]);
    }
    let c =
        rusqlite::Connection::open_with_flags(rec.db(), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let (seg_etag, seg_sha): (String, String) = c
        .query_row(
            "SELECT etag, sha256 FROM archive_ledger_segments WHERE object_key = ?1",
            [ledger_key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(seg_etag, list[ledger_key].1);
    assert_eq!(seg_sha, sha256_hex(seg.as_bytes()));
    rec.stop();
}

#[test]
fn archive_restart_uploads_nothing_twice() {
    let _shared = OUTAGE.read().unwrap_or_else(|e| e.into_inner());
    let bucket = "ship-restart";
    let mut rec = boxed(bucket, 3, SECRET, "");
    let ids = record_calls(&rec, &["s1", "s2", "s3"], 1200);
    // A shipper killed right after the store confirmed call 1's audio, before its mark: the
    // object is there (with our metadata), the row is not archived.
    let first = rec.call(ids[0]);
    let audio = std::fs::read(rec.file_of(&first)).unwrap();
    let started = first["started_at_utc"].as_str().unwrap();
    let key = format!(
        "fleet/test-box/{}/{}/{}/{}.opus",
        &started[..4],
        &started[5..7],
        &started[8..10],
        ids[0]
    );
    let pre = rt()
        .block_on(client(bucket).put_opts(
            &ObjPath::from(key.as_str()),
            audio.into(),
            object_store::PutOptions {
                attributes: object_store::Attributes::from_iter([(
                    Attribute::Metadata("sha256".into()),
                    object_store::AttributeValue::from(
                        first["sha256"].as_str().unwrap().to_owned(),
                    ),
                )]),
                ..Default::default()
            },
        ))
        .unwrap();
    std::thread::sleep(Duration::from_millis(1100)); // a re-upload would change last_modified
    let mut ship = Ship::start(&rec);
    wait_status(
        &rec,
        Duration::from_secs(60),
        "3 archived, ledger shipped",
        |s| s["backlog"]["archived_calls"] == 3 && s["backlog"]["ledger_entries_unshipped"] == 0,
    );
    // kill -9 mid-way through nothing in particular, then a clean restart: all rows back to
    // pending, as if every mark had been lost.
    let _ = ship.0.kill();
    let _ = ship.0.wait();
    let after_first = listing(bucket);
    assert_eq!(
        after_first[&key].1,
        pre.e_tag.clone().unwrap(),
        "the audio put before was not put again"
    );
    let c = rusqlite::Connection::open(rec.db()).unwrap();
    let reset = c
        .execute(
            "UPDATE archive_uploads SET state = 'pending', etag = NULL, version_id = NULL, archived_at_utc = NULL",
            [],
        )
        .unwrap();
    drop(c);
    assert_eq!(reset, 3);
    std::thread::sleep(Duration::from_millis(1100));
    let ship = Ship::start(&rec);
    wait_status(&rec, Duration::from_secs(60), "3 archived again", |s| {
        s["backlog"]["archived_calls"] == 3
    });
    ship.stop();
    let after_restart = listing(bucket);
    // Same keys, same ETags, same modification times: no object was written again.
    assert_eq!(after_first, after_restart);
    assert_archived_as_indexed(&rec, bucket, &ids);
    rec.stop();
}

#[test]
fn archive_wrong_credentials_raise_an_alarm_and_archive_nothing() {
    let _shared = OUTAGE.read().unwrap_or_else(|e| e.into_inner());
    let bucket = "ship-creds";
    let mut rec = boxed(bucket, 2, "not-the-secret", "backlog_alarm_s = 1");
    let ids = record_calls(&rec, &["s1", "s2"], 1000);
    let ship = Ship::start(&rec);
    let s = wait_status(&rec, Duration::from_secs(30), "alarm", |s| {
        s["alarm"] != Value::Null
    });
    ship.stop();
    let detail = s["alarm"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("wrong credentials"),
        "alarm names the cause: {detail}"
    );
    assert!(detail.contains("2 call(s)"), "{detail}");
    assert_eq!(s["backlog"]["calls"], 2);
    assert_eq!(s["backlog"]["archived_calls"], 0);
    assert!(rows(&rec)
        .values()
        .all(|r| r.0 == "pending" && r.2.is_none()));
    assert!(listing(bucket).is_empty(), "nothing reached the bucket");
    // Fixed credentials, restarted shipper: the backlog drains and the alarm clears.
    let creds = rec.dir.path().join("credentials");
    write_creds(&creds, SECRET);
    let ship = Ship::start(&rec);
    let s = wait_status(&rec, Duration::from_secs(60), "drained", |s| {
        s["backlog"]["calls"] == 0 && s["alarm"] == Value::Null
    });
    ship.stop();
    assert_eq!(s["backlog"]["archived_calls"], 2);
    assert_archived_as_indexed(&rec, bucket, &ids);
    rec.stop();
}

#[test]
fn archive_store_outage_drops_nothing_and_drains_after() {
    let _exclusive = OUTAGE.write().unwrap_or_else(|e| e.into_inner());
    let bucket = "ship-outage";
    let mut rec = boxed(bucket, 2, SECRET, "backlog_alarm_s = 1");
    let ship = Ship::start(&rec);
    let first = record_calls(&rec, &["s1", "s2"], 1000);
    wait_status(&rec, Duration::from_secs(60), "first 2 archived", |s| {
        s["backlog"]["archived_calls"] == 2
    });
    rgw_sh(&["stop-rgw"]);
    let during = [
        record_calls(&rec, &["s1", "s2"], 1500),
        record_calls(&rec, &["s1", "s2"], 1500),
    ]
    .concat();
    let s = wait_status(
        &rec,
        Duration::from_secs(30),
        "alarm while the store is down",
        |s| s["alarm"] != Value::Null && s["backlog"]["calls"] == 4,
    );
    let detail = s["alarm"]["detail"].as_str().unwrap().to_owned();
    assert!(
        detail.contains("unreachable"),
        "alarm names the cause: {detail}"
    );
    assert!(s["backlog"]["bytes"].as_i64().unwrap() > 0);
    let r = rows(&rec);
    for id in &during {
        assert_ne!(
            r.get(id).map(|x| x.0.as_str()),
            Some("archived"),
            "call {id} archived while the store was down"
        );
    }
    rgw_sh(&["start-rgw"]);
    let s = wait_status(
        &rec,
        Duration::from_secs(60),
        "drained after the outage",
        |s| s["backlog"]["calls"] == 0 && s["alarm"] == Value::Null,
    );
    ship.stop();
    assert_eq!(s["backlog"]["archived_calls"], 6);
    assert_archived_as_indexed(&rec, bucket, &[first, during].concat());
    for c in rec.calls() {
        assert_eq!(c["dropped_frames"], 0, "call {} dropped frames", c["id"]);
    }
    rec.stop();
}

/// `callrec run` with `[archive]` ships from a thread of its own, and stops cleanly with it.
#[test]
fn archive_run_ships_in_its_own_thread() {
    let _shared = OUTAGE.read().unwrap_or_else(|e| e.into_inner());
    let bucket = "ship-run";
    let mut rec = boxed(bucket, 1, SECRET, "");
    let ids = record_calls(&rec, &["s1"], 1000);
    rec.stop();
    let mut text = std::fs::read_to_string(&rec.cfg).unwrap();
    text.push_str("[server]\nenabled = false\n");
    std::fs::write(&rec.cfg, text).unwrap();
    let log = std::fs::File::create(rec.dir.path().join("ship.log")).unwrap();
    let mut run = Ship(
        Command::new(bin())
            .arg("--config")
            .arg(&rec.cfg)
            .arg("run")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    wait_status(&rec, Duration::from_secs(60), "archived by run", |s| {
        s["backlog"]["archived_calls"] == 1 && s["backlog"]["calls"] == 0
    });
    let pid = run.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let t0 = Instant::now();
    let code = loop {
        if let Some(st) = run.0.try_wait().unwrap() {
            break st.code();
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "run did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(0), "{}", ship_log(&rec));
    assert!(ship_log(&rec).contains("archive shipper stopped"));
    assert_archived_as_indexed(&rec, bucket, &ids);
}

/// A call above the single-PUT cap (32 MiB) goes up in parts, hashed on the way; one whose file
/// no longer matches its row is aborted before completion and marked failed, never archived.
/// (Rows inserted directly: recording 4.5 hours for the size would take too long here.)
#[test]
fn archive_large_call_goes_up_in_parts_and_a_changed_one_is_refused() {
    let _shared = OUTAGE.read().unwrap_or_else(|e| e.into_inner());
    let bucket = "ship-large";
    let mut rec = boxed(bucket, 1, SECRET, "");
    let size = 33 * 1024 * 1024 + 12_345;
    // Deterministic, incompressible-looking content (a counter through SHA-256).
    let mut big = Vec::with_capacity(size + 32);
    let mut i = 0u64;
    while big.len() < size {
        big.extend_from_slice(&Sha256::digest(i.to_le_bytes()));
        i += 1;
    }
    big.truncate(size);
    let dir = rec.storage().join("calls/2026/12/04");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("big-ok.opus"), &big).unwrap();
    let good_sha = sha256_hex(&big);
    // Same size, one byte changed after "finalize": its row keeps the old hash.
    let mut changed = big.clone();
    changed[size / 2] ^= 1;
    std::fs::write(dir.join("big-changed.opus"), &changed).unwrap();
    let c = rusqlite::Connection::open(rec.db()).unwrap();
    let insert = |name: &str| -> i64 {
        c.execute(
            "INSERT INTO calls (box_id, seat_id, mode, status, started_at_utc, started_mono_ms,
                 ended_at_utc, duration_ms, bytes, sha256, rate_hz, bitrate_bps, rel_path)
             VALUES ('test-box', 's1', 'control', 'complete', '2026-12-04T08:00:00.000Z', 0,
                 '2026-12-04T12:30:00.000Z', 16200000, ?1, ?2, 16000, 16000, ?3)",
            rusqlite::params![
                size as i64,
                good_sha,
                format!("calls/2026/12/04/{name}.opus")
            ],
        )
        .unwrap();
        c.last_insert_rowid()
    };
    let (ok_id, changed_id) = (insert("big-ok"), insert("big-changed"));
    drop(c);
    let ship = Ship::start(&rec);
    let s = wait_status(
        &rec,
        Duration::from_secs(120),
        "one archived, one failed",
        |s| s["backlog"]["archived_calls"] == 1 && s["backlog"]["failed_calls"] == 1,
    );
    ship.stop();
    let r = rows(&rec);
    let (state, key, etag, _) = &r[&ok_id];
    assert_eq!(state, "archived");
    let list = listing(bucket);
    assert_eq!(list[key].0, size as u64);
    assert_eq!(etag.as_deref(), Some(list[key].1.as_str()));
    // A multipart ETag is "<md5 of the part md5s>-<parts>": 34 MiB in 8 MiB parts = 5.
    assert!(
        list[key].1.trim_matches('"').ends_with("-5"),
        "{}",
        list[key].1
    );
    assert_eq!(sha256_hex(&get(bucket, key)), good_sha);
    let (state, key, etag, err) = &r[&changed_id];
    assert_eq!((state.as_str(), etag), ("failed", &None));
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("no longer matches")),
        "{err:?}"
    );
    assert!(!list.contains_key(key), "the changed file never completed");
    assert_eq!(
        s["backlog"]["calls"], 1,
        "a failed call stays in the backlog"
    );
    rec.stop();
}
