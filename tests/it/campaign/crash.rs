//! Item 9: the crash campaign. The recorder is killed with SIGKILL at random moments while 16
//! seats record; every restart must recover each open call with at most ~1 s of audio lost
//! (README, "Durability"), and leave a store that `callrec check` and `verify --store` accept.

use super::{Campaign, Opts, PlainDir};

#[test]
fn crash_campaign() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Opts::from_env("crash", 2000, 1000);
    let mut c = Campaign::new(opts, PlainDir(dir.path().join("store")), dir.path());
    c.run();
    c.report("make crash-campaign CYCLES=N (cargo test --release --test it campaign::crash)");
}
