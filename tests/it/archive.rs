//! Shipping to a real object store: a one-node Ceph cluster with a RADOS Gateway, started once
//! for all tests here by `scripts/rgw.sh` (needs `make archive-deps`), each test in its own
//! bucket. A recorder (`callrec record`, synthetic seats) records calls; `callrec ship` (its own
//! process, as in production) ships them; the bucket is then read back with the same client
//! crate and compared with the index byte for byte.
//!
//! The cluster is stopped when the test binary exits (an atexit hook) and, should the binary be
//! killed, by the watcher rgw.sh leaves behind (RGW_OWNER_PID). The outage test stops only the
//! gateway, so it holds the cluster exclusively (a write lock) while the others share it.

use crate::common::{bin, repo, Recorder};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjPath;
use object_store::{Attribute, GetOptions, ObjectStore};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{OnceLock, RwLock};
use std::time::{Duration, Instant};

const ACCESS: &str = "callrec-test";
const SECRET: &str = "callrec-test-secret-0123456789";

struct Rgw {
    dir: PathBuf,
    endpoint: String,
}

static RGW: OnceLock<Result<Rgw, String>> = OnceLock::new();
/// Shared by the tests that only use the store; held for writing by the one that stops it.
static OUTAGE: RwLock<()> = RwLock::new(());

extern "C" fn stop_rgw_at_exit() {
    if let Some(Ok(r)) = RGW.get() {
        let _ = Command::new(repo().join("scripts/rgw.sh"))
            .arg("stop")
            .arg(&r.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn rgw() -> &'static Rgw {
    let r = RGW.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("callrec-rgw-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let t0 = Instant::now();
        let out = Command::new(repo().join("scripts/rgw.sh"))
            .arg("start")
            .arg(&dir)
            .args([ACCESS, SECRET])
            .env("RGW_OWNER_PID", std::process::id().to_string())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running scripts/rgw.sh: {e}"))?;
        // Registered whether or not start succeeded: it may have left daemons running.
        // SAFETY-free: libc::atexit takes a plain extern "C" fn.
        unsafe { libc::atexit(stop_rgw_at_exit) };
        if !out.status.success() {
            return Err(format!(
                "scripts/rgw.sh start failed (run `make archive-deps`): {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        eprintln!("rgw up in {:.1} s", t0.elapsed().as_secs_f64());
        Ok(Rgw {
            endpoint: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            dir,
        })
    });
    match r {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    }
}

fn rgw_sh(args: &[&str]) {
    let st = Command::new(repo().join("scripts/rgw.sh"))
        .args(&args[..1])
        .arg(&rgw().dir)
        .args(&args[1..])
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "rgw.sh {args:?} failed");
}

fn client(bucket: &str) -> AmazonS3 {
    AmazonS3Builder::new()
        .with_endpoint(&rgw().endpoint)
        .with_region("us-east-1")
        .with_bucket_name(bucket)
        .with_access_key_id(ACCESS)
        .with_secret_access_key(SECRET)
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .build()
        .unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// key → (size, e_tag, last_modified) of every object in the bucket.
fn listing(bucket: &str) -> BTreeMap<String, (u64, String, String)> {
    use futures_util::StreamExt;
    let s = client(bucket);
    rt().block_on(async {
        let mut out = BTreeMap::new();
        let mut l = s.list(None);
        while let Some(m) = l.next().await {
            let m = m.unwrap();
            out.insert(
                m.location.to_string(),
                (
                    m.size,
                    m.e_tag.unwrap_or_default(),
                    m.last_modified.to_rfc3339(),
                ),
            );
        }
        out
    })
}

fn get(bucket: &str, key: &str) -> Vec<u8> {
    let s = client(bucket);
    rt().block_on(async {
        s.get(&ObjPath::from(key))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec()
    })
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// A box with `seats` synthetic seats, `[archive]` pointing at `bucket` (made here).
fn boxed(bucket: &str, seats: usize, secret: &str, extra: &str) -> Recorder {
    rgw_sh(&["mkbucket", bucket]);
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials");
    write_creds(&creds, secret);
    let mut toml = String::new();
    for i in 1..=seats {
        toml.push_str(&format!(
            "[[seat]]\nid = \"s{i}\"\nmode = \"control\"\n[[seat.input]]\nkind = \"synthetic\"\nseed = {i}\nagent_channel = 0\ncustomer_channel = 1\n"
        ));
    }
    toml.push_str(&format!(
        "[archive]\nendpoint = \"{}\"\nbucket = \"{bucket}\"\nprefix = \"fleet/\"\ncredentials_file = \"{}\"\nretry_max_s = 2\n{extra}\n",
        rgw().endpoint,
        creds.display()
    ));
    Recorder::start_in(dir, &toml, vec![])
}

fn write_creds(path: &Path, secret: &str) {
    std::fs::write(
        path,
        format!("[default]\naws_access_key_id = {ACCESS}\naws_secret_access_key = {secret}\n"),
    )
    .unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Records one call on each of `seats` seats, `ms` long; returns their ids.
fn record_calls(rec: &Recorder, seats: &[&str], ms: u64) -> Vec<i64> {
    let ids: Vec<i64> = seats.iter().map(|s| rec.start_call(s, &[])).collect();
    std::thread::sleep(Duration::from_millis(ms));
    for s in seats {
        rec.cmd(&["call", "stop", "--seat", s]);
    }
    ids
}

/// `callrec ship` as its own process.
struct Ship(Child);

impl Ship {
    fn start(rec: &Recorder) -> Ship {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(rec.dir.path().join("ship.log"))
            .unwrap();
        Ship(
            Command::new(bin())
                .arg("--config")
                .arg(&rec.cfg)
                .arg("ship")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        )
    }

    fn stop(mut self) {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let t0 = Instant::now();
        while self.0.try_wait().unwrap().is_none() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "shipper did not stop"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Ship {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn status(rec: &Recorder) -> Value {
    serde_json::from_str(&rec.cmd(&["archive", "status", "--json"])).unwrap()
}

fn ship_log(rec: &Recorder) -> String {
    std::fs::read_to_string(rec.dir.path().join("ship.log")).unwrap_or_default()
}

/// Waits until `ok(status)`; panics with the last status and the shipper's log.
fn wait_status(rec: &Recorder, limit: Duration, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let t0 = Instant::now();
    loop {
        let s = status(rec);
        if ok(&s) {
            return s;
        }
        assert!(
            t0.elapsed() < limit,
            "{what} not reached in {limit:?}: {s:#}\n{}",
            ship_log(rec)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The archive rows: call id → (state, object_key, etag, last_error).
fn rows(rec: &Recorder) -> BTreeMap<i64, (String, String, Option<String>, Option<String>)> {
    let c =
        rusqlite::Connection::open_with_flags(rec.db(), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut st = c
        .prepare("SELECT call_id, state, object_key, etag, last_error FROM archive_uploads")
        .unwrap();
    st.query_map([], |r| {
        Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
    })
    .unwrap()
    .map(|r| r.unwrap())
    .collect()
}

/// Every call in `ids` is in the bucket as the index has it: the audio's SHA-256 is the row's,
/// the peaks are the local file's, the sidecar names the call, carries its ledger entry and the
/// box key, and the row is archived with the ETag the store reports for the audio object.
fn assert_archived_as_indexed(rec: &Recorder, bucket: &str, ids: &[i64]) {
    let list = listing(bucket);
    let rows = rows(rec);
    let key_fp = rec.cmd(&["key", "show", "--json"]);
    let key_fp: Value = serde_json::from_str(&key_fp).unwrap();
    for id in ids {
        let call = rec.call(*id);
        let (state, key, etag, _) = rows
            .get(id)
            .unwrap_or_else(|| panic!("no archive row for call {id}"));
        assert_eq!(state, "archived", "call {id}");
        let started = call["started_at_utc"].as_str().unwrap();
        let expect_key = format!(
            "fleet/test-box/{}/{}/{}/{id}.opus",
            &started[..4],
            &started[5..7],
            &started[8..10]
        );
        assert_eq!(key, &expect_key);
        let audio = get(bucket, key);
        assert_eq!(
            sha256_hex(&audio),
            call["sha256"].as_str().unwrap(),
            "call {id} audio"
        );
        assert_eq!(audio.len() as i64, call["bytes"].as_i64().unwrap());
        let (_, store_etag, _) = &list[key];
        assert_eq!(etag.as_deref(), Some(store_etag.as_str()), "call {id} ETag");
        // The user metadata the idempotency check reads.
        let head = rt().block_on(client(bucket).get_opts(
            &ObjPath::from(key.as_str()),
            GetOptions {
                head: true,
                ..Default::default()
            },
        ));
        let head = head.unwrap();
        assert_eq!(
            head.attributes
                .get(&Attribute::Metadata("sha256".into()))
                .map(|v| v.to_string()),
            call["sha256"].as_str().map(str::to_owned)
        );
        let stem = key.trim_end_matches(".opus");
        let local_peaks = rec.file_of(&call).with_extension("dat");
        if local_peaks.exists() {
            assert_eq!(
                get(bucket, &format!("{stem}.dat")),
                std::fs::read(&local_peaks).unwrap()
            );
        }
        let side: Value = serde_json::from_slice(&get(bucket, &format!("{stem}.json"))).unwrap();
        assert_eq!(side["format"], "callrec-archive-sidecar-v1");
        assert_eq!(side["call"]["id"], *id);
        assert_eq!(side["call"]["sha256"], call["sha256"]);
        assert_eq!(side["box_id"], "test-box");
        assert_eq!(side["audio"]["key"], key.as_str());
        let ledger = side["ledger"].as_array().unwrap();
        assert_eq!(ledger.len(), 1, "one ledger entry per finalized call");
        assert_eq!(ledger[0]["file_sha256"], call["sha256"]);
        assert_eq!(
            side["box_key"]["fingerprint_sha256"], key_fp["fingerprint_sha256"],
            "sidecar names the box key"
        );
    }
}

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
