//! The fleet's test harness: a one-node Ceph cluster with a RADOS Gateway, started once per test
//! binary by `scripts/rgw.sh` (needs `make archive-deps`), each test in its own bucket; boxes
//! (`callrec record`, synthetic seats) with `[archive]` pointing at it; `callrec ship` as its own
//! process; and readers that list and fetch the bucket with the same client crate.
//!
//! The cluster is stopped when the test binary exits (an atexit hook) and, should the binary be
//! killed, by the watcher rgw.sh leaves behind (RGW_OWNER_PID). A test that stops the gateway
//! holds [`OUTAGE`] for writing; every other test holds it for reading while it uses the store.

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

pub(crate) const ACCESS: &str = "callrec-test";
pub(crate) const SECRET: &str = "callrec-test-secret-0123456789";

pub(crate) struct Rgw {
    pub(crate) dir: PathBuf,
    pub(crate) endpoint: String,
}

pub(crate) static RGW: OnceLock<Result<Rgw, String>> = OnceLock::new();
/// Shared by the tests that only use the store; held for writing by the one that stops it.
pub(crate) static OUTAGE: RwLock<()> = RwLock::new(());

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

pub(crate) fn rgw() -> &'static Rgw {
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

pub(crate) fn rgw_sh(args: &[&str]) {
    let st = Command::new(repo().join("scripts/rgw.sh"))
        .args(&args[..1])
        .arg(&rgw().dir)
        .args(&args[1..])
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "rgw.sh {args:?} failed");
}

pub(crate) fn client(bucket: &str) -> AmazonS3 {
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

pub(crate) fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// key → (size, e_tag, last_modified) of every object in the bucket.
pub(crate) fn listing(bucket: &str) -> BTreeMap<String, (u64, String, String)> {
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

pub(crate) fn get(bucket: &str, key: &str) -> Vec<u8> {
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

pub(crate) fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// A box with `seats` synthetic seats, `[archive]` pointing at `bucket` (made here).
pub(crate) fn boxed(bucket: &str, seats: usize, secret: &str, extra: &str) -> Recorder {
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

pub(crate) fn write_creds(path: &Path, secret: &str) {
    std::fs::write(
        path,
        format!("[default]\naws_access_key_id = {ACCESS}\naws_secret_access_key = {secret}\n"),
    )
    .unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Records one call on each of `seats` seats, `ms` long; returns their ids.
pub(crate) fn record_calls(rec: &Recorder, seats: &[&str], ms: u64) -> Vec<i64> {
    let ids: Vec<i64> = seats.iter().map(|s| rec.start_call(s, &[])).collect();
    std::thread::sleep(Duration::from_millis(ms));
    for s in seats {
        rec.cmd(&["call", "stop", "--seat", s]);
    }
    ids
}

/// `callrec ship` as its own process.
pub(crate) struct Ship(pub(crate) Child);

impl Ship {
    pub(crate) fn start(rec: &Recorder) -> Ship {
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

    pub(crate) fn stop(mut self) {
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

pub(crate) fn status(rec: &Recorder) -> Value {
    serde_json::from_str(&rec.cmd(&["archive", "status", "--json"])).unwrap()
}

pub(crate) fn ship_log(rec: &Recorder) -> String {
    std::fs::read_to_string(rec.dir.path().join("ship.log")).unwrap_or_default()
}

/// Waits until `ok(status)`; panics with the last status and the shipper's log.
pub(crate) fn wait_status(
    rec: &Recorder,
    limit: Duration,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
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
pub(crate) fn rows(
    rec: &Recorder,
) -> BTreeMap<i64, (String, String, Option<String>, Option<String>)> {
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
pub(crate) fn assert_archived_as_indexed(rec: &Recorder, bucket: &str, ids: &[i64]) {
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

/// A box named `box_id` with `seats` synthetic seats, shipping to `bucket` (which must exist:
/// [`boxed`] or `rgw_sh(&["mkbucket", …])` makes it) under `fleet/`.
pub(crate) fn box_named(bucket: &str, box_id: &str, seats: usize) -> Recorder {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials");
    write_creds(&creds, SECRET);
    let mut toml = format!(
        "[box]\nid = \"{box_id}\"\nworkers = 2\n[storage]\ndir = \"{}\"\n",
        dir.path().join("store").display()
    );
    for i in 1..=seats {
        toml.push_str(&format!(
            "[[seat]]\nid = \"s{i}\"\nmode = \"control\"\n[[seat.input]]\nkind = \"synthetic\"\nseed = {i}\nagent_channel = 0\ncustomer_channel = 1\n"
        ));
    }
    toml.push_str(&format!(
        "[archive]\nendpoint = \"{}\"\nbucket = \"{bucket}\"\nprefix = \"fleet/\"\ncredentials_file = \"{}\"\nretry_max_s = 2\n",
        rgw().endpoint,
        creds.display()
    ));
    let cfg = dir.path().join("callrec.toml");
    std::fs::write(&cfg, toml).unwrap();
    let log = dir.path().join("recorder.log");
    let mut r = Recorder {
        dir,
        cfg,
        child: None,
        env: Vec::new(),
        log,
    };
    r.spawn();
    r
}

/// A hub's config (`[hub] poll_s = 1`) over `bucket` in a new temp dir; not started.
pub(crate) fn hub_config(bucket: &str) -> (tempfile::TempDir, PathBuf, u16) {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials");
    write_creds(&creds, SECRET);
    let port = crate::webbox::free_port();
    let cfg = dir.path().join("hub.toml");
    std::fs::write(
        &cfg,
        format!(
            "[box]\nid = \"qa-hub\"\n[storage]\ndir = \"{}\"\n[server]\nbind = \"127.0.0.1:{port}\"\ntls = false\n\
             [archive]\nendpoint = \"{}\"\nbucket = \"{bucket}\"\nprefix = \"fleet/\"\ncredentials_file = \"{}\"\n\
             [hub]\npoll_s = 1\ncache_bytes = 33554432\n",
            dir.path().join("store").display(),
            rgw().endpoint,
            creds.display()
        ),
    )
    .unwrap();
    (dir, cfg, port)
}

/// `callrec hub` on a config made by [`hub_config`], as a [`crate::webbox::WebBox`] (users,
/// sessions and the CLI work as on a box); dropping it stops the hub.
pub(crate) fn hub_start(dir: tempfile::TempDir, cfg: PathBuf, port: u16) -> crate::webbox::WebBox {
    let log = dir.path().join("hub.log");
    let (child, admin_once) = crate::webbox::spawn_web(&cfg, "hub", &log);
    let t0 = Instant::now();
    let hub = crate::webbox::WebBox {
        dir,
        cfg,
        child,
        port,
        admin_once,
        log,
    };
    while ureq::get(&hub.url("/healthz")).call().is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no /healthz from the hub: {}",
            hub.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    hub
}

/// (hub call id, box id, box call id, sha256, audio key) of every call in a hub's index.
pub(crate) fn hub_rows(db: &Path) -> Vec<(i64, String, i64, String, String)> {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    let mut st = c
        .prepare(
            "SELECT c.id, h.box_id, h.box_call_id, c.sha256, h.audio_key FROM calls c
             JOIN hub_calls h ON h.call_id = c.id ORDER BY h.box_id, h.box_call_id",
        )
        .unwrap();
    st.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })
    .unwrap()
    .map(|r| r.unwrap())
    .collect()
}

/// Waits until the hub's index holds `n` calls; returns how long that took.
pub(crate) fn wait_hub_calls(hub: &crate::webbox::WebBox, n: usize, limit: Duration) -> Duration {
    let t0 = Instant::now();
    loop {
        if hub.db().exists() && hub_rows(&hub.db()).len() == n {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < limit,
            "the hub did not index {n} calls in {limit:?}: {:?}\n{}",
            hub_rows(&hub.db()),
            hub.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
