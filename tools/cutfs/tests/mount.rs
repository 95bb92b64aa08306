//! cutfs through a real FUSE mount: the kernel's fsync, fdatasync, fsync of a directory, rename
//! and unlink reach the model as they should, and a cut (SIGUSR1) keeps exactly what was synced.
//!
//! Needs root (or fusermount3) and /dev/fuse; as another user without them each test says so and
//! passes without checking anything. It must never leave a mount behind: every cutfs started
//! here is stopped by [`Mounted`]'s drop.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Mounted {
    child: Option<Child>,
    state: PathBuf,
    mnt: PathBuf,
}

impl Mounted {
    /// Mounts `state`/tree at a fresh mount point; `None` when this machine cannot mount FUSE.
    fn new(dir: &Path) -> Option<Mounted> {
        let (state, mnt) = (dir.join("state"), dir.join("mnt"));
        std::fs::create_dir_all(&state).unwrap();
        std::fs::create_dir_all(&mnt).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_cutfs"))
            .arg("mount")
            .arg(&state)
            .arg(&mnt)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        if line.trim() != "ready" {
            let out = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            // SAFETY: geteuid has no preconditions.
            assert!(
                unsafe { libc::geteuid() } != 0,
                "cutfs did not mount as root: {err}"
            );
            eprintln!("skipped: cannot mount FUSE here: {err}");
            return None;
        }
        Some(Mounted {
            child: Some(child),
            state,
            mnt,
        })
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// Sends `sig` and waits for cutfs to write back the tree and exit.
    fn stop(&mut self, sig: i32) {
        let mut child = self.child.take().unwrap();
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(child.id() as i32, sig) };
        let t0 = Instant::now();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                let mut err = String::new();
                let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
                assert!(st.success(), "cutfs failed: {err}");
                return;
            }
            assert!(t0.elapsed() < Duration::from_secs(10), "cutfs did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Power cut, then mount what survived.
    fn cut_and_remount(mut self, dir: &Path) -> Mounted {
        self.stop(libc::SIGUSR1);
        Mounted::new(dir).unwrap()
    }

    fn tree(&self, rel: &str) -> PathBuf {
        self.state.join("tree").join(rel)
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop(libc::SIGTERM);
        }
    }
}

fn fsync_dir(p: &Path) {
    File::open(p).unwrap().sync_all().unwrap();
}

fn read(p: &Path) -> Option<Vec<u8>> {
    std::fs::read(p).ok()
}

#[test]
fn what_a_cut_keeps_through_the_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let Some(m) = Mounted::new(dir.path()) else {
        return;
    };
    // A durable file, then more data without a sync.
    let mut f = File::create(m.path("kept")).unwrap();
    f.write_all(b"synced").unwrap();
    f.sync_data().unwrap();
    f.write_all(b" not synced").unwrap();
    drop(f);
    // Synced data, and its name synced by the directory's fsync below.
    let mut f = File::create(m.path("named")).unwrap();
    f.write_all(b"data").unwrap();
    f.sync_all().unwrap();
    drop(f);
    fsync_dir(&m.mnt);
    // A subdirectory made durable with its file.
    std::fs::create_dir(m.path("d")).unwrap();
    let mut f = File::create(m.path("d/f")).unwrap();
    f.write_all(b"in d").unwrap();
    f.sync_all().unwrap();
    fsync_dir(&m.path("d"));
    fsync_dir(&m.mnt);
    // Synced data, but created after the last sync of its directory.
    let mut f = File::create(m.path("no-name-2")).unwrap();
    f.write_all(b"data").unwrap();
    f.sync_all().unwrap();
    // Left open across the cut: cutfs detaches lazily, as for a process that never closes.
    assert_eq!(read(&m.path("kept")).unwrap(), b"synced not synced");

    let m = m.cut_and_remount(dir.path());
    assert_eq!(read(&m.path("kept")).unwrap(), b"synced");
    assert_eq!(read(&m.path("named")).unwrap(), b"data");
    assert!(
        read(&m.path("no-name-2")).is_none(),
        "directory not synced: name gone"
    );
    assert_eq!(read(&m.path("d/f")).unwrap(), b"in d");
}

#[test]
fn rename_and_unlink_need_the_directory_synced() {
    let dir = tempfile::tempdir().unwrap();
    let Some(m) = Mounted::new(dir.path()) else {
        return;
    };
    for (name, data) in [("old", &b"old"[..]), ("new.tmp", b"new"), ("gone", b"x")] {
        let mut f = File::create(m.path(name)).unwrap();
        f.write_all(data).unwrap();
        f.sync_all().unwrap();
    }
    fsync_dir(&m.mnt);
    std::fs::rename(m.path("new.tmp"), m.path("old")).unwrap();
    std::fs::remove_file(m.path("gone")).unwrap();
    assert_eq!(read(&m.path("old")).unwrap(), b"new");

    let m = m.cut_and_remount(dir.path());
    assert_eq!(read(&m.path("old")).unwrap(), b"old", "rename not synced");
    assert_eq!(read(&m.path("new.tmp")).unwrap(), b"new");
    assert_eq!(read(&m.path("gone")).unwrap(), b"x", "unlink not synced");
    std::fs::rename(m.path("new.tmp"), m.path("old")).unwrap();
    std::fs::remove_file(m.path("gone")).unwrap();
    fsync_dir(&m.mnt);

    let m = m.cut_and_remount(dir.path());
    assert_eq!(read(&m.path("old")).unwrap(), b"new");
    assert!(read(&m.path("new.tmp")).is_none());
    assert!(read(&m.path("gone")).is_none());
}

#[test]
fn truncate_and_overwrite_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let Some(m) = Mounted::new(dir.path()) else {
        return;
    };
    let mut f = File::create(m.path("f")).unwrap();
    f.write_all(b"0123456789").unwrap();
    f.sync_all().unwrap();
    fsync_dir(&m.mnt);
    f.set_len(4).unwrap();
    drop(f);
    let f = OpenOptions::new().write(true).open(m.path("f")).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"AB", 1).unwrap();
    f.sync_data().unwrap();
    f.set_len(2).unwrap(); // not synced
    drop(f);

    let mut m = m.cut_and_remount(dir.path());
    assert_eq!(read(&m.path("f")).unwrap(), b"0AB3");
    // A clean unmount keeps what was never synced.
    std::fs::write(m.path("g"), b"unsynced").unwrap();
    m.stop(libc::SIGTERM);
    assert_eq!(read(&m.tree("g")).unwrap(), b"unsynced");
}
