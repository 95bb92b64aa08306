//! Shared helpers: a running recorder, FIFO feeders for ALSA capture, and output checks.

#![allow(dead_code)]

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_callrec")
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where screenshots, logs and kept files go (`test-artifacts/`, ignored by git).
pub fn artifacts() -> PathBuf {
    let d = repo().join("test-artifacts");
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub struct Recorder {
    pub dir: tempfile::TempDir,
    pub cfg: PathBuf,
    pub child: Option<Child>,
    pub env: Vec<(String, String)>,
    pub log: PathBuf,
}

/// `[box]`/`[storage]` header for a config rooted in `dir`.
pub fn header(dir: &Path, extra_storage: &str) -> String {
    format!(
        "[box]\nid = \"test-box\"\nworkers = 2\n[storage]\ndir = \"{}\"\n{extra_storage}\n",
        dir.join("store").display()
    )
}

impl Recorder {
    /// Writes `seats` (TOML) under a standard header and starts `callrec record`.
    pub fn start(seats: &str, env: Vec<(String, String)>) -> Recorder {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, seats, env)
    }

    pub fn start_in(dir: tempfile::TempDir, seats: &str, env: Vec<(String, String)>) -> Recorder {
        let cfg = dir.path().join("callrec.toml");
        std::fs::write(&cfg, format!("{}{}", header(dir.path(), ""), seats)).unwrap();
        let log = dir.path().join("recorder.log");
        let mut r = Recorder {
            dir,
            cfg,
            child: None,
            env,
            log,
        };
        r.spawn();
        r
    }

    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(bin());
        cmd.arg("--config")
            .arg(&self.cfg)
            .arg("record")
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().unwrap());
        let t0 = Instant::now();
        loop {
            if self.try_cmd(&["call", "status", "--json"]).status.success() {
                return;
            }
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("recorder exited early ({st}): {}", self.log_text());
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "recorder did not come up: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    pub fn db(&self) -> PathBuf {
        self.storage().join("callrec.db")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn try_cmd(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(bin());
        cmd.arg("--config").arg(&self.cfg).args(args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    /// Runs a CLI command that must succeed; returns stdout.
    pub fn cmd(&self, args: &[&str]) -> String {
        let out = self.try_cmd(args);
        assert!(
            out.status.success(),
            "callrec {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Starts a call on `seat` and returns its id.
    pub fn start_call(&self, seat: &str, extra: &[&str]) -> i64 {
        let mut args = vec!["call", "start", "--seat", seat];
        args.extend_from_slice(extra);
        self.cmd(&args).trim().parse().unwrap()
    }

    pub fn status(&self) -> Vec<Value> {
        serde_json::from_str::<Value>(&self.cmd(&["call", "status", "--json"]))
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    pub fn seat_status(&self, seat: &str) -> Value {
        self.status()
            .into_iter()
            .find(|s| s["seat"] == seat)
            .unwrap()
    }

    pub fn calls(&self) -> Vec<Value> {
        serde_json::from_str::<Value>(&self.cmd(&["calls", "list", "--json", "--limit", "10000"]))
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    pub fn call(&self, id: i64) -> Value {
        serde_json::from_str(&self.cmd(&["calls", "show", &id.to_string(), "--json"])).unwrap()
    }

    pub fn file_of(&self, call: &Value) -> PathBuf {
        self.storage().join(call["rel_path"].as_str().unwrap())
    }

    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        assert!(Command::new("kill")
            .args(["-s", sig, &pid])
            .status()
            .unwrap()
            .success());
    }

    /// Waits for the process to exit; returns its exit code.
    pub fn wait(&mut self, limit: Duration) -> Option<i32> {
        let t0 = Instant::now();
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                self.child = None;
                return st.code();
            }
            assert!(
                t0.elapsed() < limit,
                "recorder did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        self.signal("TERM");
        let code = self.wait(Duration::from_secs(20));
        assert_eq!(code, Some(0), "clean stop must exit 0: {}", self.log_text());
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            let _ = std::fs::copy(
                &self.log,
                artifacts().join(format!("recorder-{}.log", std::process::id())),
            );
        }
    }
}

/// opusinfo must accept the file without warnings, and ffprobe must agree on its duration.
/// ffprobe's view of a file's streams (duration, channels, codec), as JSON; Err names why
/// ffprobe could not give it.
pub fn ffprobe_streams(path: &Path) -> Result<Value, String> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=duration,channels,codec_name",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .map_err(|e| format!("ffprobe (ffmpeg) must be installed: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ffprobe rejects {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("ffprobe output: {e}"))
}

pub fn check_opus_file(path: &Path, expected_ms: i64, tolerance_ms: i64) {
    let out = Command::new("opusinfo")
        .arg(path)
        .output()
        .expect("opusinfo (opus-tools) must be installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "opusinfo failed on {}: {text}",
        path.display()
    );
    assert!(
        !text.contains("WARNING") && !text.contains("ERROR"),
        "opusinfo complains about {}: {text}",
        path.display()
    );
    assert!(
        text.contains("Channel Mapping Family: 1") && text.contains("Streams: 2, Coupled: 0"),
        "{text}"
    );
    let v = ffprobe_streams(path).unwrap_or_else(|e| panic!("{e}"));
    let s = &v["streams"][0];
    assert_eq!(s["codec_name"], "opus");
    assert_eq!(s["channels"], 2);
    let dur_ms = (s["duration"].as_str().unwrap().parse::<f64>().unwrap() * 1000.0).round() as i64;
    // ffprobe's stream duration includes the 6.5 ms pre-skip.
    assert!(
        (dur_ms - expected_ms).abs() <= tolerance_ms + 7,
        "ffprobe says {dur_ms} ms, expected {expected_ms} ± {tolerance_ms}: {}",
        path.display()
    );
}

pub fn integrity_ok(db: &Path) {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg("PRAGMA integrity_check")
        .output()
        .expect("sqlite3 must be installed");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ok",
        "integrity_check on {}",
        db.display()
    );
}

pub fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Decodes with libopus at 48 kHz; returns (agent, customer).
pub fn decode(path: &Path) -> (Vec<f32>, Vec<f32>) {
    let data = std::fs::read(path).unwrap();
    let d = callrec::codec::ogg_read::decode(&data, 48000).unwrap();
    (d.channel(0), d.channel(1))
}

pub fn rms_dbfs(x: &[f32]) -> f32 {
    callrec::dsp::level::rms_dbfs(x)
}

/// RMS envelope in 10 ms windows at 48 kHz.
pub fn envelope(x: &[f32]) -> Vec<f32> {
    x.chunks(480)
        .map(|c| (c.iter().map(|v| v * v).sum::<f32>() / c.len() as f32).sqrt())
        .collect()
}

/// Pearson correlation of `a` against `b[off..]`.
pub fn corr_at(a: &[f32], b: &[f32], off: usize) -> f32 {
    let n = a.len().min(b.len().saturating_sub(off));
    if n < 10 {
        return 0.0;
    }
    let (a, b) = (&a[..n], &b[off..off + n]);
    let ma = a.iter().sum::<f32>() / n as f32;
    let mb = b.iter().sum::<f32>() / n as f32;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (x, y) = (a[i] - ma, b[i] - mb);
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    sab / (saa * sbb).sqrt().max(1e-12)
}

/// Best alignment of envelope `a` inside envelope `b`: (offset in 10 ms steps, correlation).
pub fn best_offset(a: &[f32], b: &[f32]) -> (usize, f32) {
    (0..b.len().saturating_sub(a.len() / 2))
        .map(|o| (o, corr_at(a, b, o)))
        .fold((0, -1.0), |best, x| if x.1 > best.1 { x } else { best })
}

/// Goertzel power of `freq_hz` over `x` (48 kHz), in dBFS of an equivalent sine.
pub fn tone_dbfs(x: &[f32], freq_hz: f32) -> f32 {
    let w = 2.0 * std::f32::consts::PI * freq_hz / 48000.0;
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0f32, 0f32);
    for &v in x {
        let s = v + c * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - c * s1 * s2;
    let amp = 2.0 * power.max(0.0).sqrt() / x.len() as f32;
    20.0 * (amp / std::f32::consts::SQRT_2).max(1e-9).log10()
}

/// What a feeder writes: the fixture, or a test tone (to prove it never reaches the disk).
pub const FEED_FIXTURE: u8 = 0;
pub const FEED_TONE: u8 = 1;
/// Writes nothing: the device stalls.
pub const FEED_STALL: u8 = 2;
pub const TONE_HZ: f32 = 3150.0;

/// Feeds a FIFO that an ALSA `file` PCM reads, in real time, 20 ms at a time.
pub struct Feeder {
    stop: Arc<AtomicBool>,
    pub mode: Arc<AtomicU8>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Feeder {
    /// `frames`: interleaved f32 at 48 kHz with `channels` channels; written as S16_LE, looping.
    pub fn start(fifo: &Path, frames: Arc<Vec<f32>>, channels: usize) -> Feeder {
        let stop = Arc::new(AtomicBool::new(false));
        let mode = Arc::new(AtomicU8::new(FEED_FIXTURE));
        let (st, md, path) = (stop.clone(), mode.clone(), fifo.to_owned());
        let handle = std::thread::spawn(move || feed(&path, &frames, channels, &st, &md));
        Feeder {
            stop,
            mode,
            handle: Some(handle),
        }
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn open_fifo(path: &Path, stop: &AtomicBool) -> Option<std::fs::File> {
    // Non-blocking open fails (ENXIO) until a reader exists; poll so `stop` is honoured.
    use std::os::unix::fs::OpenOptionsExt;
    while !stop.load(Ordering::Relaxed) {
        if let Ok(f) = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
        {
            // Back to blocking writes: the reader's pace is the point.
            unsafe {
                let fd = std::os::unix::io::AsRawFd::as_raw_fd(&f);
                let fl = libc::fcntl(fd, libc::F_GETFL);
                libc::fcntl(fd, libc::F_SETFL, fl & !libc::O_NONBLOCK);
            }
            return Some(f);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

fn feed(path: &Path, frames: &[f32], channels: usize, stop: &AtomicBool, mode: &AtomicU8) {
    let chunk = 960; // 20 ms at 48 kHz
    let total = frames.len() / channels;
    let mut pos = 0usize;
    let mut tone_t = 0usize;
    let Some(mut f) = open_fifo(path, stop) else {
        return;
    };
    let t0 = Instant::now();
    let mut sent = 0u64;
    let mut buf = Vec::with_capacity(chunk * channels * 2);
    while !stop.load(Ordering::Relaxed) {
        let m = mode.load(Ordering::Relaxed);
        buf.clear();
        if m == FEED_STALL {
            // Keep the pacing clock running: a stalled device delivers nothing, not a burst later.
            sent += chunk as u64;
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        for _ in 0..chunk {
            for c in 0..channels {
                let v = if m == FEED_TONE {
                    0.5 * (2.0 * std::f32::consts::PI * TONE_HZ * tone_t as f32 / 48000.0).sin()
                } else {
                    frames[(pos % total) * channels + c]
                };
                buf.extend_from_slice(&((v.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes());
            }
            pos += 1;
            tone_t += 1;
        }
        if f.write_all(&buf).is_err() {
            // The reader went away (device enumeration opens and closes PCMs): reopen.
            match open_fifo(path, stop) {
                Some(nf) => f = nf,
                None => return,
            }
            if pos < 48000 {
                pos = 0;
            }
            continue;
        }
        sent += chunk as u64;
        let due = t0 + Duration::from_secs_f64(sent as f64 / 48000.0);
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    }
}

/// An ALSA config (for ALSA_CONFIG_PATH) with one FIFO-fed capture PCM per (name, channels).
pub fn alsa_config(dir: &Path, pcms: &[(&str, u16)]) -> PathBuf {
    let template = std::fs::read_to_string(repo().join("hw/alsa/filecap.conf.in")).unwrap();
    let mut text = String::new();
    for (name, channels) in pcms {
        let fifo = dir.join(format!("{name}.fifo"));
        text.push_str(
            &template
                .replace("@NAME@", name)
                .replace("@INFILE@", &fifo.display().to_string())
                .replace("@RATE@", "48000")
                .replace("@CHANNELS@", &channels.to_string()),
        );
    }
    let path = dir.join("asound.conf");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    path
}

/// Creates the FIFO of PCM `name` (see `alsa_config`) and feeds it `frames` in real time.
pub fn fed_pcm(dir: &Path, name: &str, frames: Vec<f32>, channels: usize) -> Feeder {
    let fifo = dir.join(format!("{name}.fifo"));
    mkfifo(&fifo);
    Feeder::start(&fifo, Arc::new(frames), channels)
}

pub fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o600) },
        0,
        "mkfifo {}",
        path.display()
    );
}

/// A speech-like two-party conversation at 48 kHz, interleaved [agent, customer].
pub fn conversation(seed: u64, seconds: usize) -> Vec<f32> {
    let mut conv = callrec::capture::synth::Conversation::new(seed, 48000);
    let mut v = Vec::with_capacity(seconds * 48000 * 2);
    for _ in 0..seconds * 48000 {
        let (a, c) = conv.next_pair();
        v.push(a);
        v.push(c);
    }
    v
}

pub fn channel(interleaved: &[f32], channels: usize, c: usize) -> Vec<f32> {
    interleaved
        .iter()
        .skip(c)
        .step_by(channels)
        .copied()
        .collect()
}

/// Every call that is not deleted has its file, and every audio file under calls/ is a call's
/// (beside it only waveform peaks may live).
pub fn rows_and_files_match(rec: &Recorder) {
    let rows: std::collections::BTreeSet<PathBuf> = rec
        .calls()
        .iter()
        .filter(|c| c["status"] != "deleted")
        .map(|c| rec.file_of(c))
        .collect();
    let mut files = std::collections::BTreeSet::new();
    let mut stack = vec![rec.storage().join("calls")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "opus") {
                files.insert(p);
            } else {
                assert_eq!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("dat"),
                    "{}",
                    p.display()
                );
            }
        }
    }
    assert_eq!(rows, files, "rows and files differ");
}

/// Runs `callrec --config CFG ARGS` with `stdin` as its standard input (a password).
pub fn cli_with_stdin(cfg: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(bin())
        .arg("--config")
        .arg(cfg)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// A stereo WAV at 48 kHz for file inputs (which loop): for each `(seconds, agent on, customer
/// on)` a 440 Hz tone at -10 dBFS on the parties that are on, digital silence on the others.
pub fn write_wav(path: &std::path::Path, pattern: &[(f32, bool, bool)]) {
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 48000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let mut t = 0usize;
    for &(secs, a, c) in pattern {
        for _ in 0..(secs * 48000.0) as usize {
            let v = (0.3
                * (2.0 * std::f32::consts::PI * 440.0 * t as f32 / 48000.0).sin()
                * 32767.0) as i16;
            w.write_sample(if a { v } else { 0 }).unwrap();
            w.write_sample(if c { v } else { 0 }).unwrap();
            t += 1;
        }
    }
    w.finalize().unwrap();
}
