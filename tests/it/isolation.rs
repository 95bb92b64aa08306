//! The recorder is isolated from the web service: `callrec record` and `callrec serve` as two
//! processes on one storage dir (the shipped split units), and recording goes on, with no
//! dropped frame, while the web process is frozen (SIGSTOP) or dead (SIGKILL). Also checks the
//! shipped systemd units with `systemd-analyze verify` and the isolation settings they promise.
//!
//! These tests must never leave a process behind: every child is owned by a value whose `Drop`
//! stops it, and every wait is bounded.

use super::common::{bin, check_opus_file, integrity_ok, repo, Recorder};
use super::webbox::{free_port, Session, WebBox, PASSWORD};
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};

/// `n` synthetic seats `s0`…, all driven through the control socket.
pub fn synthetic_seats(n: usize) -> String {
    (0..n)
        .map(|i| format!("[[seat]]\nid = \"s{i}\"\nmode = \"control\"\n[[seat.input]]\nkind = \"synthetic\"\nseed = {i}\nagent_channel = 0\ncustomer_channel = 1\n"))
        .collect()
}

/// A recorder process and a separate web process on one storage dir (plain HTTP on loopback).
pub struct SplitBox {
    /// Dropped first: the web process gets SIGTERM before the recorder goes.
    pub web: Option<WebBox>,
    pub rec: Recorder,
    pub port: u16,
    pub tls: bool,
}

impl SplitBox {
    /// Starts `callrec record` with `seats` synthetic seats, then `callrec serve` with
    /// `server_extra` lines in `[server]`.
    pub fn start(seats: usize, server_extra: &str) -> SplitBox {
        Self::start_with(seats, false, server_extra)
    }

    /// As [`SplitBox::start`], with TLS on or off (a self-signed certificate for `localhost`).
    pub fn start_with(seats: usize, tls: bool, server_extra: &str) -> SplitBox {
        let port = free_port();
        let toml = format!(
            "{}\n[server]\nbind = \"127.0.0.1:{port}\"\ntls = {tls}\n{server_extra}\n",
            synthetic_seats(seats)
        );
        let rec = Recorder::start(&toml, vec![]);
        let mut b = SplitBox {
            web: None,
            rec,
            port,
            tls,
        };
        b.start_web();
        b
    }

    /// Starts (or restarts) `callrec serve` and waits until `/healthz` answers.
    pub fn start_web(&mut self) -> &WebBox {
        let log = self.rec.dir.path().join("web.log");
        let (child, admin_once) = crate::webbox::spawn_web(&self.rec.cfg, "serve", &log);
        let wb = WebBox {
            dir: tempfile::tempdir().unwrap(),
            cfg: self.rec.cfg.clone(),
            child,
            port: self.port,
            admin_once,
            log,
        };
        let t0 = Instant::now();
        while !healthz(self.port, self.tls, Duration::from_secs(1)) {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "web service did not answer /healthz: {}",
                wb.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.web = Some(wb);
        self.web.as_ref().unwrap()
    }

    pub fn web(&self) -> &WebBox {
        self.web.as_ref().expect("web service running")
    }

    pub fn web_pid(&self) -> i32 {
        self.web().child.id() as i32
    }

    /// Starts a call on every seat, waits `secs`, stops them all; returns the longest time one
    /// `callrec call start|stop` took.
    pub fn calls_on_every_seat(&self, seats: usize, secs: f64) -> Duration {
        let mut worst = Duration::ZERO;
        for i in 0..seats {
            let t0 = Instant::now();
            self.rec.start_call(&format!("s{i}"), &[]);
            worst = worst.max(t0.elapsed());
        }
        std::thread::sleep(Duration::from_secs_f64(secs));
        for i in 0..seats {
            let t0 = Instant::now();
            self.rec.cmd(&["call", "stop", "--seat", &format!("s{i}")]);
            worst = worst.max(t0.elapsed());
        }
        worst
    }

    /// Dropped frames over every seat, from `callrec call status --json`.
    pub fn dropped_frames(&self) -> u64 {
        self.rec
            .status()
            .iter()
            .map(|s| s["dropped_frames"].as_u64().unwrap())
            .sum()
    }

    /// Per seat: dropped frames and the longest lag, for failure messages.
    pub fn drops_and_lag(&self) -> String {
        self.rec
            .status()
            .iter()
            .map(|s| {
                format!(
                    "{}: dropped {} max_lag_ms {}",
                    s["seat"], s["dropped_frames"], s["max_lag_ms"]
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Seats in state `idle` (no call open).
    pub fn idle_seats(&self) -> usize {
        self.rec
            .status()
            .iter()
            .filter(|s| s["state"] == "idle")
            .count()
    }
}

/// A client for a loopback test server (accepts its self-signed certificate).
pub fn agent(limit: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(limit))
        .http_status_as_error(false)
        .max_redirects(0)
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .disable_verification(true)
                .build(),
        )
        .build()
        .into()
}

/// Whether `/healthz` answers 200 within `limit`.
pub fn healthz(port: u16, tls: bool, limit: Duration) -> bool {
    let scheme = if tls { "https" } else { "http" };
    agent(limit)
        .get(format!("{scheme}://127.0.0.1:{port}/healthz"))
        .call()
        .is_ok_and(|r| r.status() == 200)
}

fn signal(pid: i32, sig: i32) {
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill({pid}, {sig})");
}

const SEATS: usize = 16;

// Found a real stall before the indexer thread: 1 run in 5 dropped 53 754 frames after the web
// process was killed (a worker blocked on SQLite's write lock, or the WAL recovery the dead
// writer left, up to busy_timeout, while its rings overflowed). Workers no longer touch the
// index; `recording_goes_on_while_another_process_holds_the_index_write_lock` pins it down.
#[test]
fn recording_goes_on_while_the_web_service_is_frozen_or_dead() {
    let mut b = SplitBox::start(SEATS, "");
    b.web().add_user("qa1", "qa", &[]);
    assert_eq!(b.web().login("qa1", PASSWORD).get("/calls").status, 200);

    // Frozen: the web process is stopped with its socket open (connections queue in the kernel).
    signal(b.web_pid(), libc::SIGSTOP);
    assert!(
        !healthz(b.port, false, Duration::from_millis(500)),
        "a stopped web service cannot answer"
    );
    let worst_frozen = b.calls_on_every_seat(SEATS, 2.0);
    assert_eq!(b.idle_seats(), SEATS);
    assert_eq!(b.dropped_frames(), 0, "{}", b.drops_and_lag());
    signal(b.web_pid(), libc::SIGCONT);
    let t0 = Instant::now();
    while !healthz(b.port, false, Duration::from_secs(1)) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no answer after SIGCONT"
        );
    }
    let after_cont = t0.elapsed();

    // Dead: SIGKILL, and calls still start and stop.
    let mut web = b.web.take().unwrap();
    signal(web.child.id() as i32, libc::SIGKILL);
    let _ = web.child.wait();
    drop(web);
    let worst_dead = b.calls_on_every_seat(SEATS, 2.0);
    assert_eq!(b.idle_seats(), SEATS);
    assert_eq!(b.dropped_frames(), 0, "{}", b.drops_and_lag());

    // Restarted: the web answers again and shows the calls recorded while it was gone.
    let t0 = Instant::now();
    b.start_web();
    let restart = t0.elapsed();
    let mut s: Session = b.web().login("qa1", PASSWORD);
    let found = s.get("/api/calls?per_page=100");
    assert_eq!(found.status, 200, "{}", found.body_text());
    let json: Value = found.json();
    let n = json["total"].as_u64().unwrap_or(0);
    assert_eq!(
        n,
        2 * SEATS as u64,
        "calls recorded while the web was frozen or dead: {json}"
    );
    eprintln!(
        "isolation: {SEATS} seats; slowest call start/stop with web frozen {worst_frozen:?}, \
         with web dead {worst_dead:?}; /healthz {after_cont:?} after SIGCONT; restart {restart:?}; \
         dropped frames 0"
    );
}

/// Another process holds the index's write lock (`BEGIN IMMEDIATE`, as a web request's
/// transaction or a frozen writer would) for 5 s while 16 seats start, record and stop calls:
/// no frame is dropped, `call status` answers meanwhile, each start is answered with its id and
/// each stop once its row is final, after the lock goes, and every call is complete with the
/// length that was asked for (start request to stop request).
#[test]
fn recording_goes_on_while_another_process_holds_the_index_write_lock() {
    const LOCK: Duration = Duration::from_secs(5);
    const STOP_AFTER: Duration = Duration::from_secs(3);
    let rec = Recorder::start(&synthetic_seats(SEATS), vec![]);
    let run = |args: &[&str]| {
        let t0 = Instant::now();
        let out = rec.try_cmd(args);
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(
            out.status.success(),
            "callrec {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (t0, t0.elapsed(), text)
    };
    let locker = rusqlite::Connection::open(rec.db()).unwrap();
    locker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let locked_at = Instant::now();
    let (starts, stops, status_while_locked) = std::thread::scope(|sc| {
        let starts: Vec<_> = (0..SEATS)
            .map(|i| {
                let seat = format!("s{i}");
                sc.spawn(move || run(&["call", "start", "--seat", &seat]))
            })
            .collect();
        std::thread::sleep(Duration::from_secs(1));
        let t0 = Instant::now();
        let status = rec.status();
        let status_took = t0.elapsed();
        assert!(
            status
                .iter()
                .all(|s| s["state"] == "starting" && s["call_id"].is_null()),
            "while the index is locked every seat holds its call's audio: {status:?}"
        );
        std::thread::sleep(STOP_AFTER.saturating_sub(locked_at.elapsed()));
        let stops: Vec<_> = (0..SEATS)
            .map(|i| {
                let seat = format!("s{i}");
                sc.spawn(move || run(&["call", "stop", "--seat", &seat]))
            })
            .collect();
        std::thread::sleep(LOCK.saturating_sub(locked_at.elapsed()));
        locker.execute_batch("COMMIT").unwrap();
        let join = |v: Vec<std::thread::ScopedJoinHandle<'_, (Instant, Duration, String)>>| {
            v.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
        };
        (join(starts), join(stops), status_took)
    });
    assert!(
        status_while_locked < Duration::from_millis(500),
        "`call status` took {status_while_locked:?} while the index was locked"
    );
    let status = rec.status();
    assert!(status.iter().all(|s| s["state"] == "idle"), "{status:?}");
    let dropped: u64 = status
        .iter()
        .map(|s| s["dropped_frames"].as_u64().unwrap())
        .sum();
    assert_eq!(dropped, 0, "{status:?}");
    let mut slowest_start = Duration::ZERO;
    let mut slowest_stop = Duration::ZERO;
    for (i, ((start_at, start_took, id), (stop_at, stop_took, stopped))) in
        starts.iter().zip(&stops).enumerate()
    {
        slowest_start = slowest_start.max(*start_took);
        slowest_stop = slowest_stop.max(*stop_took);
        assert!(
            *start_at + *start_took >= locked_at + LOCK,
            "s{i}: a start is answered once its row exists"
        );
        assert_eq!(id, stopped, "s{i}: the stop names the call the start named");
        let call = rec.call(id.parse().unwrap());
        assert_eq!(call["status"], "complete", "s{i}: {call}");
        assert_eq!(call["dropped_frames"], 0, "s{i}: {call}");
        let asked_ms = stop_at.duration_since(*start_at).as_millis() as i64;
        let got_ms = call["duration_ms"].as_i64().unwrap();
        assert!(
            (got_ms - asked_ms).abs() <= 300,
            "s{i}: {got_ms} ms recorded for {asked_ms} ms asked"
        );
        check_opus_file(&rec.file_of(&call), got_ms, 40);
    }
    integrity_ok(&rec.db());
    eprintln!(
        "index locked {LOCK:?}: {SEATS} seats, dropped frames 0; `call status` {status_while_locked:?} \
         while locked; slowest start {slowest_start:?}, slowest stop {slowest_stop:?}"
    );
}

/// Each shipped unit passes `systemd-analyze verify` (with ExecStart pointed at the built
/// binary, which is not installed here) and keeps the isolation it promises.
#[test]
fn systemd_units_verify_and_isolate_the_recorder() {
    let units = [
        "callrec.service",
        "callrec-record.service",
        "callrec-web.service",
        "callrec-ship.service",
        "callrec-hub.service",
    ];
    let tmp = tempfile::tempdir().unwrap();
    for u in units {
        let text = std::fs::read_to_string(repo().join("systemd").join(u)).unwrap();
        let p = tmp.path().join(u);
        std::fs::write(&p, text.replace("/usr/local/bin/callrec", bin())).unwrap();
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&p)
            .output()
            .expect("systemd-analyze (apt package systemd; `make test-deps` installs it)");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{u}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let settings = |u: &str| -> Vec<String> {
        std::fs::read_to_string(repo().join("systemd").join(u))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains('='))
            .map(str::to_owned)
            .collect()
    };
    let has = |s: &[String], l: &str| s.iter().any(|x| x == l);
    // The shipper: no devices, recordings read-only, the network only through inet sockets.
    let ship = settings("callrec-ship.service");
    assert!(has(&ship, "PrivateDevices=yes"), "{ship:?}");
    assert!(ship
        .iter()
        .any(|l| l.starts_with("ReadOnlyPaths=/var/lib/callrec/calls")));
    assert!(!ship.iter().any(|l| l.starts_with("SupplementaryGroups=")));
    assert!(ship
        .iter()
        .any(|l| l.starts_with("ExecStart=") && l.ends_with(" ship")));
    let rec = settings("callrec-record.service");
    assert!(has(&rec, "RestrictAddressFamilies=AF_UNIX"), "{rec:?}");
    assert!(has(&rec, "PrivateNetwork=yes"));
    assert!(rec
        .iter()
        .any(|l| l.contains(" record") && l.starts_with("ExecStart=")));
    assert!(rec.iter().any(|l| l.starts_with("LimitNOFILE=")));
    let web = settings("callrec-web.service");
    assert!(web
        .iter()
        .any(|l| l.contains(" serve") && l.starts_with("ExecStart=")));
    assert!(has(&web, "DevicePolicy=closed"));
    assert!(!web.iter().any(|l| l.starts_with("DeviceAllow=")));
    assert!(!web.iter().any(|l| l.contains("audio")), "{web:?}");
    assert!(has(&web, "ReadOnlyPaths=/var/lib/callrec/calls"));
    assert!(web.iter().any(|l| l.starts_with("LimitNOFILE=")));
}
