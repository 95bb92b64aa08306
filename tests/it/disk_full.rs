//! Disk full and disk pressure, on a small filesystem made by the test (a size-limited tmpfs
//! holding the storage dir and the index): the recorder binary with simulated seats, a filler
//! file that eats the space, and the results checked with `opusinfo`, `ffprobe`, `sqlite3`.
//!
//! Mounting needs root; without it each test re-runs itself inside `unshare -rm` (a user and
//! mount namespace where it is root). If neither works the test fails saying so: it must never
//! pass without having filled a disk.

use crate::common::*;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Set in the environment of a test re-run inside `unshare -rm`.
const IN_NAMESPACE: &str = "CALLREC_TEST_IN_MOUNT_NS";

/// A tmpfs of a fixed size, unmounted when dropped.
struct SmallFs {
    path: PathBuf,
}

impl SmallFs {
    fn mount(path: &Path, size_kib: u64) -> Result<SmallFs, String> {
        std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size_kib}k,mode=0755"),
                "tmpfs",
            ])
            .arg(path)
            .output()
            .map_err(|e| format!("running mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(SmallFs {
            path: path.to_owned(),
        })
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        // Lazy: the recorder may still hold files open if the test failed half-way.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Mounts a `size_kib` tmpfs at `path`, or explains why the test has to re-run itself.
fn small_fs(path: &Path, size_kib: u64) -> SmallFs {
    SmallFs::mount(path, size_kib).unwrap_or_else(|e| {
        panic!(
            "cannot mount a {size_kib} KiB tmpfs at {} ({e}); these tests need root or unprivileged user namespaces (`unshare -rm`)",
            path.display()
        )
    })
}

/// True if the caller should go on in this process (root, or already in the namespace);
/// otherwise re-runs test `name` under `unshare -rm` and checks that it ran and passed there.
fn run_here_or_in_namespace(name: &str) -> bool {
    if std::env::var_os(IN_NAMESPACE).is_some() || unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let out = Command::new("unshare")
        .args(["-r", "-m", "--"])
        .arg(&exe)
        .args([name, "--exact", "--test-threads=1", "--nocapture"])
        .env(IN_NAMESPACE, "1")
        .output()
        .unwrap_or_else(|e| {
            panic!("not root, and `unshare` cannot run ({e}): cannot make a small filesystem")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("1 passed"),
        "not root; re-running {name} under `unshare -rm` failed or ran nothing:\n{text}"
    );
    eprintln!("ran under `unshare -rm`:\n{text}");
    false
}

fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(
            t0.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One query through the real `sqlite3`; rows are lines, columns separated by '|'.
fn sql(db: &Path, query: &str) -> String {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(query)
        .output()
        .expect("sqlite3 must be installed");
    assert!(
        out.status.success(),
        "sqlite3 {query}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The active box-wide alarms (a refused start also raises the seat alarm `start_refused`,
/// which `completeness` tests).
fn active_alarms(db: &Path) -> Vec<String> {
    sql(
        db,
        "SELECT kind FROM alarms WHERE cleared_at_utc IS NULL AND subject = '' ORDER BY kind",
    )
    .lines()
    .map(str::to_owned)
    .collect()
}

/// (used, avail) bytes of the filesystem holding `dir`, as the guard counts them.
fn fs_usage(dir: &Path) -> (u64, u64) {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut s) }, 0);
    let unit = s.f_frsize as u64;
    (
        (s.f_blocks - s.f_bfree) as u64 * unit,
        s.f_bavail as u64 * unit,
    )
}

fn used_percent(dir: &Path) -> f64 {
    let (used, avail) = fs_usage(dir);
    used as f64 * 100.0 / (used + avail) as f64
}

/// Writes zeros to `path` until `limit` bytes or the filesystem is full; returns bytes written
/// and whether it stopped on ENOSPC.
fn fill(path: &Path, limit: u64) -> (u64, bool) {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    while written < limit {
        let n = (limit - written).min(chunk.len() as u64) as usize;
        match f.write(&chunk[..n]) {
            Ok(0) => return (written, true),
            Ok(k) => written += k as u64,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => return (written, true),
            Err(e) => panic!("writing {}: {e}", path.display()),
        }
    }
    (written, false)
}

/// A recorder on a fresh tmpfs of `size_kib`; `storage` is extra `[storage]` keys.
fn recorder_on_small_fs(size_kib: u64, storage: &str, seats: &str) -> (Recorder, SmallFs) {
    let dir = tempfile::tempdir().unwrap();
    let fs = small_fs(&dir.path().join("store"), size_kib);
    let cfg = dir.path().join("callrec.toml");
    std::fs::write(&cfg, format!("{}{seats}", header(dir.path(), storage))).unwrap();
    let log = dir.path().join("recorder.log");
    let mut rec = Recorder {
        dir,
        cfg,
        child: None,
        env: vec![("RUST_LOG".into(), "info".into())],
        log,
    };
    rec.spawn();
    (rec, fs)
}

fn seat(id: &str, mode: &str, seed: u32) -> String {
    format!("[[seat]]\nid = \"{id}\"\nmode = \"{mode}\"\n[[seat.input]]\nkind = \"synthetic\"\nseed = {seed}\nagent_channel = 0\ncustomer_channel = 1\n")
}

/// The row's figures agree with its file, which real tools accept.
fn sealed_file_ok(rec: &Recorder, c: &Value) {
    let path = rec.file_of(c);
    let ms = c["duration_ms"].as_i64().unwrap();
    check_opus_file(&path, ms, 30);
    assert_eq!(c["sha256"].as_str().unwrap(), sha256sum(&path), "{c}");
    assert_eq!(
        c["bytes"].as_u64().unwrap(),
        std::fs::metadata(&path).unwrap().len(),
        "{c}"
    );
}

fn utc_ms(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap()
        .timestamp_millis()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[test]
fn disk_full_interrupts_calls_keeps_the_index_and_recording_resumes() {
    if !run_here_or_in_namespace(
        "disk_full::disk_full_interrupts_calls_keeps_the_index_and_recording_resumes",
    ) {
        return;
    }
    let seats = format!(
        "{}{}",
        seat("c1", "continuous", 1),
        seat("k1", "control", 2)
    );
    // 32 MiB: a 1 MiB reserve; the index lives on the same filesystem, as on a real box. The
    // pressure guard is kept out of the way (it would delete the sealed calls, the oldest ones),
    // and its periodic look at free space too: a writer must hit ENOSPC and report it.
    let (mut rec, _fs) = recorder_on_small_fs(
        32 * 1024,
        "high_water_percent = 100\nlow_water_percent = 99\nguard_interval_ms = 60000\nfsync_interval_ms = 60000\n",
        &seats,
    );
    let db = rec.db();
    assert!(
        rec.storage().join("DISK-RESERVE").exists(),
        "reserve not created"
    );
    wait_for(Duration::from_secs(5), "c1 to record", || {
        rec.seat_status("c1")["state"] == "recording"
    });
    let k1 = rec.start_call("k1", &[]);
    std::thread::sleep(Duration::from_secs(3));
    let c1 = rec.seat_status("c1")["call_id"].as_i64().unwrap();

    let filler = rec.storage().join("filler");
    let (filled, hit_full) = fill(&filler, u64::MAX);
    let filled_at_ms = now_ms();
    assert!(hit_full, "the filler must run into ENOSPC");
    let t_full = Instant::now();
    wait_for(Duration::from_secs(10), "both calls to be sealed", || {
        [c1, k1]
            .iter()
            .all(|id| rec.call(*id)["status"] == "interrupted")
    });
    let reaction_ms = t_full.elapsed().as_millis();
    let sealed_at_ms = now_ms();

    for id in [c1, k1] {
        let c = rec.call(id);
        assert_eq!(c["end_reason"], "disk_full", "{c}");
        assert!(
            c["note"].as_str().unwrap().contains("full"),
            "the note says why: {c}"
        );
        sealed_file_ok(&rec, &c);
        // Everything that reached the disk is kept: the call may go on a little after the
        // filler stopped (tmpfs pages partly used still take a page or two), and at most the
        // page being filled (≤ 500 ms) plus the time the filler took are lost before that.
        let ms = c["duration_ms"].as_i64().unwrap();
        let started = utc_ms(c["started_at_utc"].as_str().unwrap());
        let (at_fill, at_seal) = (filled_at_ms - started, sealed_at_ms - started);
        eprintln!(
            "call {id}: kept {ms} ms; {at_fill} ms had been captured when the disk was full, {at_seal} ms when the call was seen sealed"
        );
        assert!(
            ms <= at_seal + 100 && ms >= at_fill - 1500,
            "call {id}: kept {ms} ms, full at {at_fill} ms, sealed by {at_seal} ms"
        );
        // What was kept is the conversation, decodable to the stated length.
        let (a, cu) = decode(&rec.file_of(&c));
        assert!(
            (a.len() as i64 - ms * 48).abs() <= 48,
            "call {id} decodes to {} samples for {ms} ms",
            a.len()
        );
        assert!(
            rms_dbfs(&a).max(rms_dbfs(&cu)) > -40.0,
            "call {id} is silent"
        );
    }
    integrity_ok(&db);
    rows_and_files_match(&rec);
    assert_eq!(active_alarms(&db), ["disk_full"]);
    let detail = sql(
        &db,
        "SELECT detail FROM alarms WHERE kind = 'disk_full' AND cleared_at_utc IS NULL",
    );
    assert!(detail.contains("full"), "{detail}");
    assert!(
        rec.child.as_mut().unwrap().try_wait().unwrap().is_none(),
        "the recorder must keep running: {}",
        rec.log_text()
    );

    // While full: nothing starts (neither the continuous seat nor a control start), and the
    // workers keep draining the rings (capture does not back up).
    let rows_before = rec.calls().len();
    let out = rec.try_cmd(&["call", "start", "--seat", "k1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("full"), "refusal must say why: {err}");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        rec.calls().len(),
        rows_before,
        "no call may start while full"
    );
    for s in rec.status() {
        assert_eq!(s["state"], "idle", "{s}");
        assert!(s["lag_ms"].as_u64().unwrap() < 200, "rings back up: {s}");
    }

    // Space returns: the alarm clears and recording resumes by itself.
    std::fs::remove_file(&filler).unwrap();
    let t_free = Instant::now();
    wait_for(Duration::from_secs(10), "recording to resume", || {
        active_alarms(&db).is_empty() && rec.seat_status("c1")["state"] == "recording"
    });
    let resume_ms = t_free.elapsed().as_millis();
    let k1b = rec.start_call("k1", &[]);
    let c1b = rec.seat_status("c1")["call_id"].as_i64().unwrap();
    assert!(c1b > c1 && k1b > k1);
    std::thread::sleep(Duration::from_secs(2));
    rec.stop();
    for id in [c1b, k1b] {
        let c = rec.call(id);
        assert_eq!(c["status"], "complete", "{c}");
        assert_eq!(c["end_reason"], "shutdown");
        assert!(c["duration_ms"].as_i64().unwrap() >= 1800, "{c}");
        sealed_file_ok(&rec, &c);
    }
    integrity_ok(&db);
    rows_and_files_match(&rec);
    assert!(
        rec.storage().join("DISK-RESERVE").exists(),
        "reserve not recreated"
    );
    let audited = sql(
        &db,
        "SELECT action || ' ' || json_extract(detail, '$.kind') FROM audit
         WHERE actor = 'callrec' AND action LIKE 'alarm.%' ORDER BY id",
    );
    // The start refused while full raised start_refused on k1; k1's next start cleared it.
    assert_eq!(
        audited,
        "alarm.raise disk_full\nalarm.raise start_refused\nalarm.clear disk_full\nalarm.clear start_refused"
    );
    let log = rec.log_text();
    for line in log.lines().filter(|l| {
        [
            "storage is full",
            "recording stopped",
            "sealed",
            "resumes",
            "alarm",
        ]
        .iter()
        .any(|k| l.contains(k))
    }) {
        eprintln!("log: {}", line.get(..300).unwrap_or(line));
    }
    assert!(log.contains("storage is full"), "{log}");
    assert!(log.contains("recording resumes"), "{log}");
    eprintln!(
        "filler {} KiB; calls sealed {reaction_ms} ms after the disk filled; recording resumed {resume_ms} ms after space returned",
        filled / 1024
    );
}

/// `pressure_policy = "oldest_first"` (opt-in): the oldest unheld calls go, whatever retention
/// promised them.
#[test]
fn pressure_guard_deletes_the_oldest_calls_not_on_hold() {
    if !run_here_or_in_namespace("disk_full::pressure_guard_deletes_the_oldest_calls_not_on_hold") {
        return;
    }
    const HIGH: u8 = 50;
    const LOW: u8 = 49;
    let names = ["k1", "k2", "k3", "k4", "k5", "k6"];
    let seats: String = names
        .iter()
        .zip(1..)
        .map(|(n, seed)| seat(n, "control", seed))
        .collect();
    // 8 MiB, calls at up to 2 × 128 kbit/s: each 8 s call takes ~110 KB, 1.3 % of the
    // filesystem, large against what each deletion adds to the index's write-ahead log.
    let storage = format!(
        "high_water_percent = {HIGH}\nlow_water_percent = {LOW}\nguard_interval_ms = 200\npressure_policy = \"oldest_first\"\n[encoder]\nbitrate_bps = 128000\n"
    );
    let (mut rec, _fs) = recorder_on_small_fs(8 * 1024, &storage, &seats);
    let db = rec.db();
    let store = rec.storage();

    // Six finished calls, oldest first by id (started one after the other).
    let mut ids = Vec::new();
    for s in names {
        ids.push(rec.start_call(s, &[]));
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(8));
    for s in names {
        rec.cmd(&["call", "stop", "--seat", s]);
    }
    let start_pct = used_percent(&store);
    assert!(
        start_pct < f64::from(HIGH) - 5.0,
        "starts well below high water: {start_pct:.1}%"
    );

    // A legal hold on the oldest call, placed by an admin through the library.
    let held = ids[0];
    {
        let conn = callrec::store::open_rw(&db).unwrap();
        callrec::store::users::add_user(
            &conn,
            &callrec::store::users::NewUser {
                username: "legal1",
                role: callrec::store::users::Role::Admin,
                agent_id: None,
                team: None,
                password: "correct horse battery staple",
                must_change: false,
            },
            callrec::store::audit::Actor::local("test"),
        )
        .unwrap();
        callrec::store::holds::place(
            &conn,
            &callrec::store::holds::Scope::Call { call_id: held },
            "matter 2026-17",
            "legal1",
            &callrec::clock::utc_now(),
        )
        .unwrap();
    }
    let others: Vec<i64> = ids[1..].to_vec();
    let files: Vec<(i64, PathBuf)> = ids
        .iter()
        .map(|id| (*id, rec.file_of(&rec.call(*id))))
        .collect();
    let call_bytes: u64 = others
        .iter()
        .map(|id| rec.call(*id)["bytes"].as_u64().unwrap())
        .sum();

    // Phase 1: above high water, and about two calls' worth above low water.
    let footprint = call_bytes / others.len() as u64 + 8192; // + page rounding and peaks
    let (used, avail) = fs_usage(&store);
    let total = used + avail;
    let target =
        (total * u64::from(HIGH) / 100 + 8192).max(total * u64::from(LOW) / 100 + footprint * 2);
    let (_, full) = fill(&store.join("filler1"), target - used);
    assert!(!full);
    let before = used_percent(&store);
    assert!(before >= f64::from(HIGH), "{before}");
    let t0 = Instant::now();
    wait_for(Duration::from_secs(10), "the guard to delete", || {
        used_percent(&store) <= f64::from(LOW)
    });
    let phase1_ms = t0.elapsed().as_millis();
    std::thread::sleep(Duration::from_millis(600)); // a few more guard ticks: nothing more goes
    let after = used_percent(&store);
    let status = |id: i64| rec.call(id)["status"].as_str().unwrap().to_owned();
    let deleted: Vec<i64> = others
        .iter()
        .copied()
        .filter(|id| status(*id) == "deleted")
        .collect();
    eprintln!(
        "phase 1: started at {start_pct:.1}%; {before:.2}% -> {after:.2}% used in {phase1_ms} ms; deleted {deleted:?} of {others:?} (held {held}); {call_bytes} bytes in unheld calls"
    );
    assert!(!deleted.is_empty());
    assert_eq!(
        deleted,
        others[..deleted.len()],
        "the oldest go first, the held one is skipped"
    );
    assert!(
        deleted.len() < others.len(),
        "stops at low water: deleted {deleted:?}"
    );
    assert_eq!(status(held), "complete");
    assert!(active_alarms(&db).is_empty(), "{:?}", active_alarms(&db));

    // Phase 2: far above high water; deleting every unheld call cannot get below it.
    let (used, avail) = fs_usage(&store);
    let total = used + avail;
    let (_, full) = fill(&store.join("filler2"), total * 5 / 100);
    assert!(!full);
    wait_for(Duration::from_secs(10), "the disk_pressure alarm", || {
        active_alarms(&db) == ["disk_pressure"]
    });
    for id in &others {
        assert_eq!(status(*id), "deleted", "call {id}");
    }
    let detail = sql(
        &db,
        "SELECT detail FROM alarms WHERE kind = 'disk_pressure' AND cleared_at_utc IS NULL",
    );
    assert!(detail.contains("legal hold"), "{detail}");
    eprintln!("phase 2: alarm: {detail}");

    // What a deletion leaves: status, no files, a tombstone, an audit row, a deletion record.
    for (id, path) in &files {
        if *id == held {
            assert!(path.exists());
            sealed_file_ok(&rec, &rec.call(*id));
            continue;
        }
        assert!(!path.exists(), "{} still exists", path.display());
        assert!(!path.with_extension("dat").exists());
        assert_eq!(
            sql(
                &db,
                &format!("SELECT count(*) FROM ledger WHERE kind = 'tombstone' AND call_id = {id}")
            ),
            "1"
        );
        assert_eq!(
            sql(
                &db,
                &format!(
                    "SELECT count(*) FROM audit WHERE action = 'delete' AND actor = 'callrec' AND call_id = {id}
                       AND json_extract(detail, '$.kind') = 'pressure'"
                )
            ),
            "1"
        );
    }
    let reasons = sql(
        &db,
        "SELECT DISTINCT reason FROM deletions WHERE kind = 'pressure' AND finished_at_utc IS NOT NULL",
    );
    assert!(
        reasons
            .lines()
            .all(|r| r.starts_with("disk pressure: storage ")
                && r.ends_with(&format!("(high water {HIGH}%)"))),
        "{reasons}"
    );
    assert_eq!(
        sql(&db, "SELECT count(*) FROM calls WHERE status = 'garbage'"),
        "0"
    );

    // Space returns: the alarm clears.
    std::fs::remove_file(store.join("filler1")).unwrap();
    std::fs::remove_file(store.join("filler2")).unwrap();
    wait_for(Duration::from_secs(5), "the alarm to clear", || {
        active_alarms(&db).is_empty()
    });
    rec.stop();
    for line in rec
        .log_text()
        .lines()
        .filter(|l| l.contains("disk pressure"))
    {
        eprintln!("log: {}", line.get(..300).unwrap_or(line));
    }
    integrity_ok(&db);
    rows_and_files_match(&rec);
    let out = rec.try_cmd(&["verify", "--store", "--json"]);
    assert!(
        out.status.success(),
        "verify after pressure deletions: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `pressure_policy` not set, so `keep`: above high water nothing retention still promises to
/// keep is deleted (no rule matches the recorded calls, so they are kept forever; one of them
/// is a complaint, kept 5 years); the `disk_pressure` alarm is raised at once and calls still
/// start. Legacy calls imported with a start long past their 30-day rule are due: they go at
/// the next guard tick (retention run early), not at the next hourly pass.
#[test]
fn pressure_under_keep_deletes_only_what_retention_made_due() {
    if !run_here_or_in_namespace(
        "disk_full::pressure_under_keep_deletes_only_what_retention_made_due",
    ) {
        return;
    }
    const HIGH: u8 = 50;
    const LOW: u8 = 49;
    let names = ["k1", "k2", "k3", "k4"];
    let seats: String = names
        .iter()
        .zip(1..)
        .map(|(n, seed)| seat(n, "control", seed))
        .collect();
    let storage = format!(
        "high_water_percent = {HIGH}\nlow_water_percent = {LOW}\nguard_interval_ms = 200\n[encoder]\nbitrate_bps = 128000\n[retention]\n[[retention.rule]]\nname = \"legacy\"\ntag = \"imported\"\nkeep_days = 30\n[[retention.rule]]\nname = \"complaints\"\ntag = \"complaint\"\nkeep_days = 1825\n"
    );
    let (mut rec, _fs) = recorder_on_small_fs(8 * 1024, &storage, &seats);
    let db = rec.db();
    let store = rec.storage();
    let mut ids = vec![rec.start_call("k1", &["--tag", "complaint"])];
    for s in &names[1..] {
        ids.push(rec.start_call(s, &[]));
    }
    std::thread::sleep(Duration::from_secs(8));
    for s in names {
        rec.cmd(&["call", "stop", "--seat", s]);
    }
    let status = |id: i64| rec.call(id)["status"].as_str().unwrap().to_owned();
    wait_for(Duration::from_secs(10), "the calls to finish", || {
        ids.iter().all(|id| status(*id) == "complete")
    });
    let files: Vec<PathBuf> = ids.iter().map(|id| rec.file_of(&rec.call(*id))).collect();
    let call_bytes: u64 = ids
        .iter()
        .map(|id| rec.call(*id)["bytes"].as_u64().unwrap())
        .sum();

    // Phase 1: above high water, two calls' worth above low water (what oldest_first would
    // delete), with no call due.
    let footprint = call_bytes / ids.len() as u64 + 8192;
    let (used, avail) = fs_usage(&store);
    let total = used + avail;
    let target =
        (total * u64::from(HIGH) / 100 + 8192).max(total * u64::from(LOW) / 100 + footprint * 2);
    let (_, full) = fill(&store.join("filler"), target - used);
    assert!(!full);
    let before = used_percent(&store);
    assert!(before >= f64::from(HIGH), "{before}");
    let t0 = Instant::now();
    wait_for(Duration::from_secs(10), "the disk_pressure alarm", || {
        active_alarms(&db) == ["disk_pressure"]
    });
    let alarm_ms = t0.elapsed().as_millis();
    std::thread::sleep(Duration::from_secs(1)); // five more guard ticks: still nothing goes
    for (id, path) in ids.iter().zip(&files) {
        assert_eq!(status(*id), "complete", "call {id}");
        assert!(path.exists(), "{}", path.display());
    }
    assert_eq!(sql(&db, "SELECT count(*) FROM deletions"), "0");
    let detail = sql(
        &db,
        "SELECT detail FROM alarms WHERE kind = 'disk_pressure' AND cleared_at_utc IS NULL",
    );
    assert!(
        detail.contains("pressure_policy = \"keep\"") && detail.contains("retention period"),
        "{detail}"
    );
    // Not the full-disk state: a call still starts and is recorded.
    let extra = rec.start_call("k2", &[]);
    std::thread::sleep(Duration::from_millis(1500));
    rec.cmd(&["call", "stop", "--seat", "k2"]);
    wait_for(Duration::from_secs(10), "the extra call to finish", || {
        status(extra) == "complete"
    });
    let after = used_percent(&store);
    eprintln!(
        "keep, phase 1: {before:.2}% used (high water {HIGH}%); alarm after {alarm_ms} ms, {after:.2}% used after 1 s more and one more call; nothing deleted; alarm: {detail}"
    );

    // Phase 2: two legacy calls (copies of k3's and k4's recordings) imported with a start
    // in 2020: their 30-day rule has long passed, so they go, as retention, within a few ticks.
    let legacy = rec.dir.path().join("legacy");
    std::fs::create_dir_all(&legacy).unwrap();
    let old = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_577_880_000); // 2020-01-01
    for (i, f) in files[2..].iter().enumerate() {
        let to = legacy.join(format!("old{i}.opus"));
        std::fs::copy(f, &to).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&to)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    let out = rec.try_cmd(&["import", legacy.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "import: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let t0 = Instant::now();
    let imported: Vec<i64> = sql(
        &db,
        "SELECT call_id FROM call_tags WHERE tag = 'imported' ORDER BY call_id",
    )
    .lines()
    .map(|l| l.parse().unwrap())
    .collect();
    assert_eq!(imported.len(), 2, "{imported:?}");
    wait_for(Duration::from_secs(10), "the due calls to go", || {
        imported.iter().all(|id| status(*id) == "deleted")
    });
    let gone_ms = t0.elapsed().as_millis();
    assert_eq!(
        sql(
            &db,
            "SELECT DISTINCT kind || ': ' || reason FROM deletions WHERE finished_at_utc IS NOT NULL"
        ),
        "retention: retention rule \"legacy\": kept 30 days"
    );
    for (id, path) in ids.iter().zip(&files) {
        assert_eq!(status(*id), "complete", "call {id}");
        assert!(path.exists(), "{}", path.display());
    }
    assert_eq!(status(extra), "complete");
    assert_eq!(
        active_alarms(&db),
        ["disk_pressure"],
        "still above high water"
    );
    eprintln!(
        "keep, phase 2: imported calls {imported:?} (started 2020, 30-day rule) deleted {gone_ms} ms after the import; recorded calls {ids:?} and {extra} kept; {:.2}% used",
        used_percent(&store)
    );

    // Space returns: the alarm clears.
    std::fs::remove_file(store.join("filler")).unwrap();
    wait_for(Duration::from_secs(5), "the alarm to clear", || {
        active_alarms(&db).is_empty()
    });
    rec.stop();
    integrity_ok(&db);
    rows_and_files_match(&rec);
    let out = rec.try_cmd(&["verify", "--store", "--json"]);
    assert!(
        out.status.success(),
        "verify after keep-policy deletions: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
