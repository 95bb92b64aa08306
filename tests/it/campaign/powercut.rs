//! Item 10: the power-cut campaign. The recorder's storage (files and SQLite index, WAL
//! included) lives on cutfs (`tools/cutfs`), a FUSE filesystem that on a cut forgets every write
//! not made durable by fsync/fdatasync, and every new, renamed or removed name whose directory
//! was not fsynced. At random moments the recorder is killed and the power cut; the recorder
//! restarts on what survived. Each call may lose at most `fsync_interval_ms` plus one Ogg page.
//!
//! Needs root and /dev/fuse (or fusermount3 from Debian's fuse3, which `make test` installs).
//! This module must never leave a mount behind: [`CutDisk`]'s drop unmounts.

use super::{Campaign, Disk, Opts, PlainDir, PAGE_MS};
use crate::common::repo;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The cutfs binary, built (in its own target dir) if it is not there yet.
fn cutfs_bin() -> PathBuf {
    let manifest = repo().join("tools/cutfs/Cargo.toml");
    let bin = repo().join("tools/cutfs/target/release/cutfs");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "--release", "--locked", "-j2", "--manifest-path"])
            .arg(&manifest)
            .status()
            .unwrap();
        assert!(st.success(), "building tools/cutfs failed");
    }
    bin
}

/// A cutfs mount: `state/tree` between mounts, served at `mnt`.
pub struct CutDisk {
    state: PathBuf,
    mnt: PathBuf,
    child: Option<Child>,
    pub cuts: usize,
}

impl CutDisk {
    pub fn new(dir: &Path) -> CutDisk {
        let mut d = CutDisk {
            state: dir.join("cutfs-state"),
            mnt: dir.join("mnt"),
            child: None,
            cuts: 0,
        };
        std::fs::create_dir_all(&d.state).unwrap();
        std::fs::create_dir_all(&d.mnt).unwrap();
        d.mount();
        d
    }

    fn mount(&mut self) {
        let mut child = Command::new(cutfs_bin())
            .arg("mount")
            .arg(&self.state)
            .arg(&self.mnt)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        if line.trim() != "ready" {
            let st = child.wait().unwrap();
            panic!(
                "cutfs did not mount ({st}): the power-cut campaign needs root and /dev/fuse \
                 (or fusermount3: apt-get install fuse3; `make test` does it)"
            );
        }
        self.child = Some(child);
    }

    /// Sends `sig` to cutfs and waits until it has written back what survives and exited.
    fn unmount(&mut self, sig: i32) -> Result<(), String> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // SAFETY: a signal to the cutfs process this campaign started and has not reaped.
        unsafe { libc::kill(child.id() as i32, sig) };
        let t0 = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(st)) if st.success() => return Ok(()),
                Ok(Some(st)) => return Err(format!("cutfs failed on unmount ({st})")),
                Ok(None) if t0.elapsed() > Duration::from_secs(60) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err("cutfs did not unmount within 60 s".into());
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}

impl Disk for CutDisk {
    fn storage(&self) -> PathBuf {
        // The mount's root, as a disk mounted at storage.dir.
        self.mnt.clone()
    }
    fn after_kill(&mut self) {
        self.unmount(libc::SIGUSR1).unwrap();
        self.cuts += 1;
        self.mount();
    }
    fn what(&self) -> &'static str {
        "power cut"
    }
}

impl Drop for CutDisk {
    fn drop(&mut self) {
        // Never panic here (a test may be unwinding already): say it and go on.
        if let Err(e) = self.unmount(libc::SIGTERM) {
            eprintln!("{e}");
        }
    }
}

#[test]
fn powercut_campaign() {
    let dir = tempfile::tempdir().unwrap();
    let fsync_interval_ms = 2000;
    let opts = Opts::from_env(
        "powercut",
        fsync_interval_ms,
        fsync_interval_ms as i64 + PAGE_MS,
    );
    let disk = CutDisk::new(dir.path());
    let mut c = Campaign::new(opts, disk, dir.path());
    c.run();
    c.report("make powercut-campaign CYCLES=N (cargo test --release --test it campaign::powercut)");
}

/// Regression test for three durability bugs the campaign found (RELIABILITY.md): after a power
/// cut soon after the first start, (1) the whole `calls/` tree was gone, finished calls included
/// (call directories were not fsynced into their parents), (2) the box key was gone and a new one
/// made (its `keys` directory likewise), (3) a finished call's waveform peaks were empty or
/// missing (written without fsync), so `callrec check` failed.
#[test]
fn a_power_cut_keeps_call_directories_the_box_key_and_peaks() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = Opts::from_env("powercut-regression", 2000, 2000 + PAGE_MS);
    opts.seats = 2;
    let mut c = Campaign::new(opts, CutDisk::new(dir.path()), dir.path());
    c.spawn();
    assert!(c.wait_ready(), "{:?}", c.tally.problems);
    let key = |c: &Campaign<CutDisk>| {
        String::from_utf8_lossy(&c.cli(&["key", "show"]).stdout).to_string()
    };
    let key_before = key(&c);
    let start = |c: &Campaign<CutDisk>, seat: &str| -> i64 {
        let out = c.cli(&["call", "start", "--seat", seat]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    let a = start(&c, "s01");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(c.cli(&["call", "stop", "--seat", "s01"]).status.success());
    // The next call's start fsyncs the day directory: the peaks' name is durable from here on.
    let b = start(&c, "s02");
    std::thread::sleep(Duration::from_millis(3000));
    c.kill_now();
    c.disk.after_kill();
    c.spawn();
    assert!(c.wait_ready(), "{:?}", c.tally.problems);
    assert_eq!(key(&c), key_before, "the box key changed");
    let rows: Vec<serde_json::Value> = c.calls();
    let row = |id: i64| rows.iter().find(|r| r["id"] == id).unwrap().clone();
    assert_eq!(row(a)["status"], "complete", "{}", row(a));
    assert_eq!(row(b)["status"], "interrupted", "{}", row(b));
    let kept = row(b)["duration_ms"].as_i64().unwrap();
    assert!(
        kept >= 3000 - 2000 - PAGE_MS,
        "call {b} kept {kept} ms of ~3000"
    );
    for id in [a, b] {
        let path = c.disk.storage().join(row(id)["rel_path"].as_str().unwrap());
        super::opus_file_ok(&path, row(id)["duration_ms"].as_i64().unwrap()).unwrap();
    }
    let out = c.cli(&["check"]);
    assert!(
        out.status.success(),
        "callrec check after the cut: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Regression test (RELIABILITY.md): an fsync was asked only once `fsync_interval_ms` had
/// passed, at the next page boundary, so the durable audio advanced in steps of up to the
/// interval plus a page (2.5 s with the default 2 s) and a power cut could lose that plus the
/// fsync's latency. The row's durable `duration_ms` (written after each fsync) must advance in
/// steps of at most the interval. Needs no FUSE: it watches the index of a plain directory.
#[test]
fn durable_audio_advances_in_steps_of_at_most_the_fsync_interval() {
    let dir = tempfile::tempdir().unwrap();
    let interval_ms = 2000;
    let mut opts = Opts::from_env("fsync-steps", interval_ms, interval_ms as i64 + PAGE_MS);
    opts.seats = 1;
    let mut c = Campaign::new(opts, PlainDir(dir.path().join("store")), dir.path());
    c.spawn();
    assert!(c.wait_ready(), "{:?}", c.tally.problems);
    let out = c.cli(&["call", "start", "--seat", "s01"]);
    let id: i64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let db = rusqlite::Connection::open_with_flags(
        dir.path().join("store/callrec.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut durable = vec![0i64];
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(9000) {
        let ms: i64 = db
            .query_row("SELECT duration_ms FROM calls WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap();
        if ms != *durable.last().unwrap() {
            durable.push(ms);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // A recorder that stalled (a loaded machine) catches up several pages at once; then a step
    // may hold one page more without the schedule being wrong.
    let status: serde_json::Value =
        serde_json::from_slice(&c.cli(&["call", "status", "--json"]).stdout).unwrap();
    let page_latency_ms = status[0]["max_page_latency_ms"].as_i64().unwrap_or(0);
    c.kill_now();
    let steps: Vec<i64> = durable.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(steps.len() >= 3, "too few fsyncs in 9 s: {durable:?}");
    let allowed = if page_latency_ms > 2 * PAGE_MS {
        eprintln!("the recorder stalled (page latency {page_latency_ms} ms): one page of slack");
        interval_ms as i64 + PAGE_MS
    } else {
        interval_ms as i64
    };
    assert!(
        steps.iter().all(|&s| s <= allowed),
        "durable audio advanced in steps {steps:?} (ms), more than {allowed} ms"
    );
}
