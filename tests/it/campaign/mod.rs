//! Durability campaigns ("Trust under attack", items 9 and 10): cycle after cycle, 16 simulated
//! seats record calls started and stopped through the control socket (`callrec call
//! start|stop --seat`), the recorder dies at a random moment — `kill -9` ([`crash`]) or a power
//! cut on a filesystem that forgets everything not fsynced ([`powercut`], on `tools/cutfs`) —
//! and restarts on what survived. After each restart every new call is checked against its
//! file (`opusinfo`, `ffprobe`, size, SHA-256), the whole store with `callrec check`, `callrec
//! verify --store` and `PRAGMA integrity_check`, and the audio lost per call is measured: the
//! time the call was running, from the monotonic clock reading the recorder stored when it
//! started the call (`started_mono_ms`, CLOCK_MONOTONIC) to the same clock read just before the
//! kill, minus the `duration_ms` recovered. A call stopped before the crash must hold all the
//! audio between its `call start` returning and its `call stop` being sent. A call also holds
//! what its seat's ring had buffered when it started (the worker's lag, up to the 2 s ring): the
//! largest such excess seen on stopped calls is reported, as the loss measure cannot tell that
//! audio from audio at the end.
//!
//! `make test` runs 3 cycles of each; `make crash-campaign` / `make powercut-campaign` run the
//! long versions (`CYCLES=…`; env `CALLREC_CAMPAIGN_CYCLES`, `CALLREC_CAMPAIGN_SEED`,
//! `CALLREC_CAMPAIGN_MAX_PHASE_MS`). Each run prints its figures and writes them to
//! `test-artifacts/<name>-campaign.txt`; a failed run keeps its store there too.
//!
//! A campaign must never stop at the first problem (it counts and lists them all, then fails),
//! never send a signal to a process it did not start, and never leave a recorder or a mount
//! behind.

mod crash;
mod powercut;

use crate::common::{artifacts, bin};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A seat's ring holds 2 s: no call can hold more audio than it ran plus this.
const RING_MS: i64 = 2000;

/// Ogg page interval of the writer (codec::ogg_write::PAGE_MS).
pub const PAGE_MS: i64 = callrec::codec::ogg_write::PAGE_MS as i64;

/// Small deterministic generator (xorshift64*), so a failing run can be replayed by its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `[lo, hi)` milliseconds.
    pub fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo).max(1))
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Where the recorder's storage lives and what a "crash" does to it.
pub trait Disk {
    /// The storage dir to put in the config.
    fn storage(&self) -> PathBuf;
    /// Called after the recorder was killed: a power cut forgets here what was not durable.
    fn after_kill(&mut self);
    /// What the campaign calls the crash, for messages.
    fn what(&self) -> &'static str;
}

/// An ordinary directory: a killed process loses only what it had not yet handed to the OS.
pub struct PlainDir(pub PathBuf);

impl Disk for PlainDir {
    fn storage(&self) -> PathBuf {
        self.0.clone()
    }
    fn after_kill(&mut self) {}
    fn what(&self) -> &'static str {
        "kill -9"
    }
}

pub struct Opts {
    pub name: &'static str,
    pub seats: usize,
    pub fsync_interval_ms: u64,
    /// Largest audio loss allowed for one call, in ms.
    pub loss_bound_ms: i64,
    pub cycles: usize,
    pub max_phase: Duration,
    pub seed: u64,
}

impl Opts {
    pub fn from_env(name: &'static str, fsync_interval_ms: u64, loss_bound_ms: i64) -> Opts {
        let seed = std::env::var("CALLREC_CAMPAIGN_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        Opts {
            name,
            seats: 16,
            fsync_interval_ms,
            loss_bound_ms,
            cycles: env_u64("CALLREC_CAMPAIGN_CYCLES", 3) as usize,
            max_phase: Duration::from_millis(env_u64("CALLREC_CAMPAIGN_MAX_PHASE_MS", 8000)),
            seed,
        }
    }
}

/// CLOCK_MONOTONIC in ms, the clock of the rows' `started_mono_ms`.
fn mono_ms() -> i64 {
    callrec::clock::mono_ms()
}

/// What the campaign knows about one call it started (times: [`mono_ms`]).
#[derive(Debug)]
struct Track {
    seat: String,
    /// Just before `call start` was sent, and when it returned.
    start_sent: i64,
    start_returned: i64,
    /// When `call stop` was sent and returned, if it returned before the crash.
    stopped: Option<(i64, i64)>,
    /// The crash that interrupted it, if any.
    crashed: Option<i64>,
    done: bool,
}

/// Loss figures and problems over the whole run.
#[derive(Default)]
pub struct Tally {
    pub cycles: usize,
    pub calls: usize,
    pub interrupted: usize,
    pub complete: usize,
    /// Calls whose `call start` was in flight at the crash (found in the index afterwards).
    pub unconfirmed: usize,
    /// Loss of every call the crash interrupted (ms).
    pub losses: Vec<i64>,
    /// Largest shortfall of a call stopped before the crash against the time between its start
    /// returning and its stop being sent (ms; 0 when none fell short).
    pub worst_complete_shortfall_ms: i64,
    /// Largest excess of a call stopped before the crash over the time it ran: audio buffered
    /// in its seat's ring when it started (ms).
    pub worst_complete_excess_ms: i64,
    pub problems: Vec<String>,
}

pub struct Campaign<D: Disk> {
    pub opts: Opts,
    pub disk: D,
    cfg: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    tracks: BTreeMap<i64, Track>,
    /// Starts sent but unanswered when the recorder died: (seat, sent at, crash at).
    unanswered: Vec<(String, i64, i64)>,
    pub tally: Tally,
    rng: Rng,
    /// Rows of unanswered starts already counted.
    accounted: std::collections::BTreeSet<i64>,
    /// Error lines of the recorder's log already reported.
    log_errors_seen: usize,
    /// The box key's fingerprint as first seen: a crash must never make a new key.
    key: Option<String>,
}

fn seats_toml(n: usize) -> String {
    (1..=n)
        .map(|i| {
            format!(
                "[[seat]]\nid = \"s{i:02}\"\nmode = \"control\"\n[[seat.input]]\nkind = \"synthetic\"\nseed = {i}\nagent_channel = 0\ncustomer_channel = 1\n"
            )
        })
        .collect()
}

impl<D: Disk> Campaign<D> {
    pub fn new(opts: Opts, disk: D, dir: &Path) -> Campaign<D> {
        let cfg = dir.join("callrec.toml");
        std::fs::write(
            &cfg,
            format!(
                "[box]\nid = \"campaign\"\nworkers = 2\ncontrol_socket = \"{}\"\n[storage]\ndir = \"{}\"\nfsync_interval_ms = {}\n{}",
                dir.join("control.sock").display(),
                disk.storage().display(),
                opts.fsync_interval_ms,
                seats_toml(opts.seats)
            ),
        )
        .unwrap();
        let rng = Rng::new(opts.seed);
        Campaign {
            opts,
            disk,
            cfg,
            log: dir.join("recorder.log"),
            child: None,
            tracks: BTreeMap::new(),
            unanswered: Vec::new(),
            tally: Tally::default(),
            rng,
            accounted: Default::default(),
            log_errors_seen: 0,
            key: None,
        }
    }

    fn problem(&mut self, p: String) {
        eprintln!("PROBLEM: {p}");
        self.tally.problems.push(p);
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(bin())
            .arg("--config")
            .arg(&self.cfg)
            .args(args)
            .output()
            .unwrap()
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(bin())
            .arg("--config")
            .arg(&self.cfg)
            .arg("record")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// Waits until the control socket answers (recovery has run by then).
    fn wait_ready(&mut self) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(60) {
            if self.cli(&["call", "status", "--json"]).status.success() {
                return true;
            }
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail: String = log.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
                self.problem(format!("the recorder exited at start-up ({st}): {tail}"));
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.problem("the recorder did not come up within 60 s".into());
        false
    }

    fn kill_now(&mut self) -> i64 {
        let at = mono_ms();
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        at
    }

    /// Runs every cycle, then a last restart and a clean stop, each followed by the checks.
    pub fn run(&mut self) {
        eprintln!(
            "{} campaign: {} cycles, {} seats, fsync_interval_ms = {}, seed {} (CALLREC_CAMPAIGN_SEED to replay)",
            self.opts.name, self.opts.cycles, self.opts.seats, self.opts.fsync_interval_ms, self.opts.seed
        );
        let t0 = Instant::now();
        for cycle in 1..=self.opts.cycles {
            self.spawn();
            if cycle > 1 && self.rng.chance(10) {
                // Now and then the crash hits start-up itself (recovery of the previous crash
                // included): the next start must recover from that too.
                let d = self.rng.ms(0, 400);
                std::thread::sleep(d);
                self.kill_now();
                self.disk.after_kill();
                eprintln!(
                    "cycle {cycle}: {} {} ms into start-up",
                    self.disk.what(),
                    d.as_millis()
                );
                self.tally.cycles += 1;
                continue;
            }
            if !self.wait_ready() {
                self.kill_now();
                self.disk.after_kill();
                continue;
            }
            self.check_store(cycle);
            let (crashed, started) = self.record_until_crash();
            self.disk.after_kill();
            self.tally.cycles += 1;
            eprintln!(
                "cycle {cycle}/{}: {} after {} ms, {started} call start(s); {:.0} s so far",
                self.opts.cycles,
                self.disk.what(),
                crashed.as_millis(),
                t0.elapsed().as_secs_f64()
            );
        }
        // The last crash is recovered and checked, then a clean stop is checked too.
        self.spawn();
        if self.wait_ready() {
            self.check_store(self.opts.cycles + 1);
            if let Some(c) = &self.child {
                let _ = Command::new("kill")
                    .args(["-TERM", &c.id().to_string()])
                    .status();
            }
            let st = self.child.take().unwrap().wait().unwrap();
            if !st.success() {
                self.problem(format!("clean stop exited with {st}"));
            }
            self.check_global("after the clean stop");
        }
    }

    /// Starts and stops calls on every seat at random until the killer strikes; returns when
    /// (after the recording started) the crash came, and how many starts were sent.
    fn record_until_crash(&mut self) -> (Duration, usize) {
        let crash_after = if self.rng.chance(10) {
            self.rng.ms(0, 600) // into the burst of starts
        } else {
            self.rng.ms(300, self.opts.max_phase.as_millis() as u64)
        };
        let killed = Arc::new(AtomicBool::new(false));
        let killed_at = Arc::new(Mutex::new(None::<i64>));
        let pid = self.child.as_ref().unwrap().id() as i32;
        let phase_start = Instant::now();
        let phase_start_ms = mono_ms();
        let killer = {
            let (k, at) = (killed.clone(), killed_at.clone());
            std::thread::spawn(move || {
                std::thread::sleep(crash_after);
                *at.lock().unwrap() = Some(mono_ms());
                // SAFETY: SIGKILL to the recorder this campaign spawned and has not reaped yet
                // (it is reaped below, after this thread is joined).
                unsafe { libc::kill(pid, libc::SIGKILL) };
                k.store(true, Ordering::SeqCst);
            })
        };
        // Per seat: the call on it (if any) and when to act next.
        let seats: Vec<String> = (1..=self.opts.seats).map(|i| format!("s{i:02}")).collect();
        let mut on_call: Vec<Option<i64>> = vec![None; seats.len()];
        let mut next: Vec<Instant> = (0..seats.len())
            .map(|_| phase_start + self.rng.ms(0, 1000))
            .collect();
        let mut starts = 0;
        let mut in_flight: Vec<(String, i64)> = Vec::new();
        let mut stops_in_flight: Vec<i64> = Vec::new();
        while !killed.load(Ordering::SeqCst) {
            let (i, &when) = next.iter().enumerate().min_by_key(|(_, t)| **t).unwrap();
            if let Some(d) = when.checked_duration_since(Instant::now()) {
                std::thread::sleep(d.min(Duration::from_millis(20)));
                continue;
            }
            let seat = seats[i].clone();
            match on_call[i] {
                None => {
                    let sent = mono_ms();
                    starts += 1;
                    let out = self.cli(&["call", "start", "--seat", &seat, "--agent", &seat]);
                    let id = String::from_utf8_lossy(&out.stdout).trim().parse::<i64>();
                    match (out.status.success(), id) {
                        (true, Ok(id)) => {
                            self.tracks.insert(
                                id,
                                Track {
                                    seat: seat.clone(),
                                    start_sent: sent,
                                    start_returned: mono_ms(),
                                    stopped: None,
                                    crashed: None,
                                    done: false,
                                },
                            );
                            on_call[i] = Some(id);
                            next[i] = Instant::now() + self.rng.ms(500, 6000);
                        }
                        _ if killed.load(Ordering::SeqCst) => in_flight.push((seat, sent)),
                        _ => {
                            let err = String::from_utf8_lossy(&out.stderr).to_string();
                            self.problem(format!("call start on {seat} failed: {err}"));
                            next[i] = Instant::now() + Duration::from_secs(1);
                        }
                    }
                }
                Some(id) => {
                    let sent = mono_ms();
                    let out = self.cli(&["call", "stop", "--seat", &seat]);
                    if out.status.success() {
                        self.tracks.get_mut(&id).unwrap().stopped = Some((sent, mono_ms()));
                        on_call[i] = None;
                        next[i] = Instant::now() + self.rng.ms(0, 1000);
                    } else if killed.load(Ordering::SeqCst) {
                        stops_in_flight.push(id);
                    } else {
                        let err = String::from_utf8_lossy(&out.stderr).to_string();
                        self.problem(format!("call stop on {seat} (call {id}) failed: {err}"));
                        next[i] = Instant::now() + Duration::from_secs(1);
                    }
                }
            }
        }
        killer.join().unwrap();
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
        let at = killed_at.lock().unwrap().unwrap();
        let phase_ms = at - phase_start_ms;
        for t in self
            .tracks
            .values_mut()
            .filter(|t| !t.done && t.stopped.is_none())
        {
            t.crashed = Some(at);
        }
        for (seat, sent) in in_flight {
            self.unanswered.push((seat, sent, at));
        }
        (Duration::from_millis(phase_ms.max(0) as u64), starts)
    }

    fn calls(&mut self) -> Vec<Value> {
        let out = self.cli(&["calls", "list", "--json", "--limit", "1000000"]);
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr).to_string();
            self.problem(format!("calls list failed: {err}"));
            return Vec::new();
        }
        serde_json::from_slice::<Value>(&out.stdout)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }

    /// After a restart: every call not yet checked, then the whole store.
    fn check_store(&mut self, cycle: usize) {
        let rows = self.calls();
        let by_id: BTreeMap<i64, Value> = rows
            .iter()
            .filter_map(|r| Some((r["id"].as_i64()?, r.clone())))
            .collect();
        for r in &rows {
            if r["status"] == "recording" {
                self.problem(format!(
                    "cycle {cycle}: call {} still `recording` after start-up recovery",
                    r["id"]
                ));
            }
        }
        let ids: Vec<i64> = self
            .tracks
            .iter()
            .filter(|(_, t)| !t.done)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let Some(row) = by_id.get(&id) else {
                self.problem(format!(
                    "cycle {cycle}: call {id} was started (its id was returned) but has no row"
                ));
                self.tracks.get_mut(&id).unwrap().done = true;
                continue;
            };
            self.check_call(cycle, id, row);
        }
        // Rows for starts that were in flight at the crash.
        let unanswered = std::mem::take(&mut self.unanswered);
        let unknown: Vec<&Value> = rows
            .iter()
            .filter(|r| {
                let id = r["id"].as_i64().unwrap_or(0);
                !self.tracks.contains_key(&id) && !self.accounted.contains(&id)
            })
            .collect();
        for r in unknown {
            let id = r["id"].as_i64().unwrap();
            self.accounted.insert(id);
            let seat = r["seat_id"].as_str().unwrap_or("").to_owned();
            match unanswered.iter().find(|(s, _, _)| *s == seat) {
                Some((_, sent, at)) => {
                    self.tally.unconfirmed += 1;
                    self.tally.calls += 1;
                    let wall = *at - *sent;
                    let ms = r["duration_ms"].as_i64().unwrap_or(-1);
                    if ms > wall + 100 {
                        self.problem(format!(
                            "cycle {cycle}: call {id} (start unanswered) has {ms} ms, more than the {wall} ms it can have run"
                        ));
                    }
                    self.check_file(cycle, id, r);
                }
                None => self.problem(format!(
                    "cycle {cycle}: call {id} on {seat} was never started by the campaign"
                )),
            }
        }
        self.check_global(&format!("cycle {cycle}"));
    }

    /// One call the campaign started: its row, its file and the audio it lost.
    fn check_call(&mut self, cycle: usize, id: i64, row: &Value) {
        let t = self.tracks.get_mut(&id).unwrap();
        t.done = true;
        let (seat, start_sent, start_returned, stopped, crashed) = (
            t.seat.clone(),
            t.start_sent,
            t.start_returned,
            t.stopped,
            t.crashed,
        );
        self.tally.calls += 1;
        let status = row["status"].as_str().unwrap_or("").to_owned();
        let ms = row["duration_ms"].as_i64().unwrap_or(-1);
        let started = row["started_mono_ms"].as_i64().unwrap_or(-1);
        if !(start_sent..=start_returned).contains(&started) {
            self.problem(format!(
                "cycle {cycle}: call {id}: started_mono_ms {started} is not between the start sent ({start_sent}) and answered ({start_returned})"
            ));
        }
        match (stopped, crashed) {
            (Some((stop_sent, stop_returned)), _) => {
                // Stopped before the crash: complete, with at least the audio between the start
                // returning and the stop being sent, and no more than the recorder could have.
                self.tally.complete += 1;
                let (least, most) = (stop_sent - start_returned, stop_returned - started);
                self.tally.worst_complete_shortfall_ms =
                    self.tally.worst_complete_shortfall_ms.max(least - ms);
                self.tally.worst_complete_excess_ms =
                    self.tally.worst_complete_excess_ms.max(ms - most);
                if status != "complete" || ms < least - 40 || ms > most + RING_MS {
                    self.problem(format!(
                        "cycle {cycle}: call {id} on {seat} was stopped before the crash but is {status} with {ms} ms (it ran at least {least} ms, at most {most} ms)"
                    ));
                }
            }
            (None, Some(at)) => {
                let ran = at - started;
                let loss = ran - ms;
                if status == "interrupted" {
                    self.tally.interrupted += 1;
                    self.tally.losses.push(loss);
                } else {
                    // A stop in flight at the crash may have completed.
                    self.tally.complete += 1;
                }
                if !["interrupted", "complete"].contains(&status.as_str()) {
                    self.problem(format!(
                        "cycle {cycle}: call {id} is {status} after recovery"
                    ));
                }
                if loss > self.opts.loss_bound_ms || loss < -RING_MS {
                    self.problem(format!(
                        "cycle {cycle}: call {id} on {seat} kept {ms} ms of the {ran} ms it ran: lost {loss} ms (bound {} ms)",
                        self.opts.loss_bound_ms
                    ));
                }
            }
            (None, None) => {
                self.problem(format!(
                    "cycle {cycle}: call {id} neither stopped nor crashed"
                ));
            }
        }
        self.check_file(cycle, id, row);
    }

    /// The row's file: a standard Ogg Opus file of the row's duration, size and SHA-256.
    fn check_file(&mut self, cycle: usize, id: i64, row: &Value) {
        let rel = row["rel_path"].as_str().unwrap_or("");
        let path = self.disk.storage().join(rel);
        let ms = row["duration_ms"].as_i64().unwrap_or(-1);
        // A call the crash hit before its first audio page reached the disk is sealed with
        // 0 ms, no hash and no file (recovery removes a header-only file).
        if row["sha256"].is_null() && row["bytes"] == 0 && ms == 0 {
            if path.exists() {
                self.problem(format!(
                    "cycle {cycle}: call {id}: sealed without audio, yet {rel} exists"
                ));
            }
            return;
        }
        if !path.exists() {
            self.problem(format!(
                "cycle {cycle}: call {id}: file {rel} missing ({row})"
            ));
            return;
        }
        if let Err(e) = opus_file_ok(&path, ms) {
            self.problem(format!("cycle {cycle}: call {id}: {e} (row: {row})"));
        }
        let data = std::fs::read(&path).unwrap_or_default();
        if row["bytes"].as_u64() != Some(data.len() as u64) {
            self.problem(format!(
                "cycle {cycle}: call {id}: file has {} bytes, row says {}",
                data.len(),
                row["bytes"]
            ));
        }
        let sha = callrec::hash::sha256_hex(&data);
        if row["sha256"].as_str() != Some(sha.as_str()) {
            self.problem(format!(
                "cycle {cycle}: call {id}: file SHA-256 {sha}, row says {}",
                row["sha256"]
            ));
        }
    }

    /// `callrec check`, `callrec verify --store`, `PRAGMA integrity_check`, the box key, and the
    /// recorder's log.
    fn check_global(&mut self, when: &str) {
        let out = self.cli(&["key", "show", "--json"]);
        let key = serde_json::from_slice::<Value>(&out.stdout)
            .ok()
            .and_then(|v| v["fingerprint_sha256"].as_str().map(str::to_owned));
        match (&self.key, key) {
            (_, None) => {
                let err = String::from_utf8_lossy(&out.stderr).to_string();
                self.problem(format!("{when}: callrec key show failed: {err}"));
            }
            (None, Some(k)) => self.key = Some(k),
            (Some(first), Some(k)) if *first != k => {
                let first = first.clone();
                self.problem(format!("{when}: the box key changed from {first} to {k}"));
            }
            _ => {}
        }
        for args in [&["check"][..], &["verify", "--store"][..]] {
            let out = self.cli(args);
            if !out.status.success() {
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                self.problem(format!("{when}: callrec {} failed: {text}", args.join(" ")));
            }
        }
        let db = self.disk.storage().join("callrec.db");
        let out = Command::new("sqlite3")
            .arg(&db)
            .arg("PRAGMA integrity_check")
            .output()
            .expect("sqlite3 must be installed");
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if text != "ok" {
            let err = String::from_utf8_lossy(&out.stderr).to_string();
            self.problem(format!("{when}: integrity_check: {text} {err}"));
        }
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let bad: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("panicked") || l.contains("ERROR"))
            .collect();
        if bad.len() > self.log_errors_seen {
            let new: Vec<String> = bad[self.log_errors_seen..]
                .iter()
                .map(|s| s.to_string())
                .collect();
            self.log_errors_seen = bad.len();
            for l in new {
                self.problem(format!("{when}: recorder log: {l}"));
            }
        }
    }

    /// Prints the figures, writes them to test-artifacts/, and fails on any problem.
    pub fn report(mut self, command: &str) {
        let mut losses = self.tally.losses.clone();
        losses.sort_unstable();
        let worst = losses.last().copied().unwrap_or(0);
        let median = if losses.is_empty() {
            0
        } else {
            losses[losses.len() / 2]
        };
        let p90 = if losses.is_empty() {
            0
        } else {
            losses[losses.len() * 9 / 10]
        };
        let date = Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M UTC"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        self.kill_now();
        let t = &self.tally;
        let text = format!(
            "{name} campaign\ncommand: {command}\ndate: {date}\nseed: {seed}\nseats: {seats}\nfsync_interval_ms: {fi}\n\
             cycles: {cycles}\ncalls: {calls} ({int} interrupted, {comp} complete, {unc} started as the recorder died)\n\
             loss per interrupted call (ms): worst {worst}, median {median}, p90 {p90} (bound {bound})\n\
             calls stopped before the crash: worst shortfall {dev} ms, most audio from before the start {exc} ms\nproblems: {np}\n{list}",
            name = self.opts.name,
            seed = self.opts.seed,
            seats = self.opts.seats,
            fi = self.opts.fsync_interval_ms,
            cycles = t.cycles,
            calls = t.calls,
            int = t.interrupted,
            comp = t.complete,
            unc = t.unconfirmed,
            bound = self.opts.loss_bound_ms,
            dev = t.worst_complete_shortfall_ms,
            exc = t.worst_complete_excess_ms,
            np = t.problems.len(),
            list = t.problems.iter().map(|p| format!("  - {p}\n")).collect::<String>(),
        );
        eprintln!("\n{text}");
        std::fs::write(
            artifacts().join(format!("{}-campaign.txt", self.opts.name)),
            &text,
        )
        .unwrap();
        if !t.problems.is_empty() {
            let keep = artifacts().join(format!("{}-campaign-store", self.opts.name));
            let _ = std::fs::remove_dir_all(&keep);
            let _ = Command::new("cp")
                .arg("-a")
                .arg(self.disk.storage())
                .arg(&keep)
                .status();
            let _ = std::fs::copy(
                &self.log,
                artifacts().join(format!("{}-campaign.log", self.opts.name)),
            );
        }
        assert!(
            self.tally.problems.is_empty(),
            "{} problem(s); see above and test-artifacts/{}-campaign.*",
            self.tally.problems.len(),
            self.opts.name
        );
        assert!(self.tally.calls > 0, "the campaign recorded no call");
    }
}

impl<D: Disk> Drop for Campaign<D> {
    fn drop(&mut self) {
        self.kill_now();
    }
}

/// `opusinfo` without warnings, `ffprobe` agreeing on the duration (ms, ±37 with the pre-skip).
pub fn opus_file_ok(path: &Path, expected_ms: i64) -> Result<(), String> {
    let out = Command::new("opusinfo")
        .arg(path)
        .output()
        .map_err(|e| format!("opusinfo (opus-tools) must be installed: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() || text.contains("WARNING") || text.contains("ERROR") {
        return Err(format!("opusinfo rejects {}: {text}", path.display()));
    }
    if !(text.contains("Channel Mapping Family: 1") && text.contains("Streams: 2, Coupled: 0")) {
        return Err(format!(
            "{}: not two uncoupled streams: {text}",
            path.display()
        ));
    }
    let v = crate::common::ffprobe_streams(path)?;
    let s = &v["streams"][0];
    if s["codec_name"] != "opus" || s["channels"] != 2 {
        return Err(format!(
            "ffprobe: {} is not two-channel Opus: {s}",
            path.display()
        ));
    }
    let dur_ms = s["duration"]
        .as_str()
        .and_then(|d| d.parse::<f64>().ok())
        .map(|d| (d * 1000.0).round() as i64)
        .unwrap_or(-1);
    if (dur_ms - expected_ms).abs() > 37 {
        return Err(format!(
            "ffprobe says {dur_ms} ms, the row {expected_ms} ms: {}",
            path.display()
        ));
    }
    Ok(())
}
