//! `cutfs mount STATE MOUNTPOINT`: serves `STATE/tree` at MOUNTPOINT until a signal.
//! SIGUSR1 cuts the power (everything not fsynced is forgotten) and unmounts; SIGTERM or SIGINT
//! unmount cleanly (everything is kept, as a real unmount syncs). Either way `STATE/tree` then
//! holds what survived, ready for the next mount. Prints `ready` on stdout once mounted.
//!
//! It must never be pointed at data anyone wants to keep: while mounted, the tree lives in
//! `STATE/.cutfs/` and is only written back when cutfs exits through one of those signals.

use cutfs::fs::CutFs;
use cutfs::model::Model;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNAL.store(sig, Ordering::SeqCst);
}

const USAGE: &str = "usage: cutfs mount STATE_DIR MOUNTPOINT
  Serves STATE_DIR/tree at MOUNTPOINT (root, or fusermount3 from Debian's fuse3, needed).
  SIGUSR1: power cut - forget all that was not fsynced (files) or fsyncdir'ed (names), unmount.
  SIGTERM/SIGINT: clean unmount - keep everything.
  Afterwards STATE_DIR/tree holds what survived. Prints `ready` once mounted.";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (state, mnt) = match args.as_slice() {
        [cmd, state, mnt] if cmd == "mount" => (PathBuf::from(state), PathBuf::from(mnt)),
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&state, &mnt) {
        eprintln!("cutfs: {e}");
        std::process::exit(1);
    }
}

fn run(state: &std::path::Path, mnt: &std::path::Path) -> Result<(), String> {
    for sig in [libc::SIGUSR1, libc::SIGTERM, libc::SIGINT] {
        // SAFETY: the handler only stores into an atomic, which is async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    let model = Model::load(state).map_err(|e| format!("loading {}: {e}", state.display()))?;
    let model = Arc::new(Mutex::new(model));
    let mut cfg = fuser::Config::default();
    cfg.mount_options = vec![
        fuser::MountOption::FSName("cutfs".into()),
        fuser::MountOption::Subtype("cutfs".into()),
        fuser::MountOption::DefaultPermissions,
    ];
    let fs = CutFs::new(model.clone(), state.to_owned());
    let session = match fuser::spawn_mount(fs, mnt, &cfg) {
        Ok(s) => s,
        Err(e) => {
            let _ = model.lock().map(|mut m| m.finish());
            return Err(format!(
                "mounting at {}: {e} (needs root and /dev/fuse, or fusermount3 from the fuse3 package)",
                mnt.display()
            ));
        }
    };
    println!("ready");
    let _ = std::io::stdout().flush();
    let outside = loop {
        std::thread::sleep(Duration::from_millis(5));
        match SIGNAL.load(Ordering::SeqCst) {
            libc::SIGUSR1 => {
                model.lock().unwrap_or_else(|p| p.into_inner()).cut();
                eprintln!("cutfs: power cut at {}", mnt.display());
                break false;
            }
            libc::SIGTERM | libc::SIGINT => break false,
            _ if session.guard.is_finished() => break true,
            _ => {}
        }
    };
    if outside {
        eprintln!(
            "cutfs: {} was unmounted from outside: keeping everything",
            mnt.display()
        );
        session.join().map_err(|e| e.to_string())?;
    } else if unmount(mnt)? {
        session.join().map_err(|e| e.to_string())?;
    } else {
        // Files are still open there: detached lazily, the session ends with this process
        // (whoever still holds a file then gets errors, as from a dead disk).
        eprintln!("cutfs: {} is busy: detached lazily", mnt.display());
        drop(session);
    }
    let mut m = model.lock().unwrap_or_else(|p| p.into_inner());
    m.finish()
        .map_err(|e| format!("writing {}/tree: {e}", state.display()))?;
    Ok(())
}

/// Unmounts `mnt`; `Ok(false)` when it was busy and only detached lazily.
fn unmount(mnt: &std::path::Path) -> Result<bool, String> {
    let c =
        std::ffi::CString::new(mnt.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: umount2 only reads the NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EBUSY)
        // SAFETY: as above.
        && unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0
    {
        return Ok(false);
    }
    // Not root: the setuid helper from fuse3 may unmount.
    let st = std::process::Command::new("fusermount3")
        .args(["-u", "-z"])
        .arg(mnt)
        .status();
    match st {
        Ok(s) if s.success() => Ok(true),
        _ => Err(format!("unmounting {}: {err}", mnt.display())),
    }
}
