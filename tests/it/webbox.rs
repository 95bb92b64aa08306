//! A running `callrec run` (recorder + web service, plain HTTP on a loopback port) with users,
//! and an HTTP client that keeps one session like a browser would (cookie + CSRF token).

#![allow(dead_code)]

use super::common::{bin, repo};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "test password 1234";

pub struct WebBox {
    pub dir: tempfile::TempDir,
    pub cfg: PathBuf,
    pub child: Child,
    pub port: u16,
    /// The one-time admin password printed at first start.
    pub admin_once: String,
    pub log: PathBuf,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A seat playing the espeak dialogue fixture (control mode), and one synthetic seat.
pub fn seats() -> String {
    let fixture = repo().join("fixtures/demo-call.wav");
    if !fixture.exists() {
        let st = Command::new(repo().join("fixtures/make-demo-call.sh"))
            .arg(&fixture)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "making the demo fixture failed");
    }
    file_and_synthetic_seats(("seat01", &fixture), ("seat02", "seed = 7"))
}

/// Two `[[seat]]` sections in control mode, agent on channel 0 and customer on 1: one playing
/// a WAV file (its id and path), one synthetic (its id and its input's keys, the seed first).
pub fn file_and_synthetic_seats(file: (&str, &Path), synthetic: (&str, &str)) -> String {
    format!(
        r#"
[[seat]]
id = "{}"
mode = "control"
[[seat.input]]
kind = "file"
path = "{}"
agent_channel = 0
customer_channel = 1

[[seat]]
id = "{}"
mode = "control"
[[seat.input]]
kind = "synthetic"
{}
agent_channel = 0
customer_channel = 1
"#,
        file.0,
        file.1.display(),
        synthetic.0,
        synthetic.1
    )
}

impl WebBox {
    /// Starts `callrec run` with `server_extra` lines added to `[server]`.
    pub fn start(server_extra: &str) -> WebBox {
        Self::start_with(server_extra, &seats(), &[])
    }

    /// Starts `callrec run` with these `[[seat]]` sections and environment (an ALSA config).
    pub fn start_with(server_extra: &str, seats: &str, env: &[(String, String)]) -> WebBox {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let cfg = dir.path().join("callrec.toml");
        std::fs::write(
            &cfg,
            format!(
                "[box]\nid = \"web-box\"\nworkers = 2\n[storage]\ndir = \"{}\"\n[server]\nbind = \"127.0.0.1:{port}\"\ntls = false\n{server_extra}\n{}",
                dir.path().join("store").display(),
                seats
            ),
        )
        .unwrap();
        let log = dir.path().join("run.log");
        let (child, admin_once) = spawn_web_env(&cfg, "run", &log, env);
        let wb = WebBox {
            dir,
            cfg,
            child,
            port,
            admin_once,
            log,
        };
        let t0 = Instant::now();
        while ureq::get(&wb.url("/healthz")).call().is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "no /healthz: {}",
                wb.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // The web half answers before the recorder's control socket is up: wait for both.
        while !wb.cli_with_stdin(&["call", "status"], "").status.success() {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "the recorder did not come up: {}",
                wb.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            !wb.admin_once.is_empty(),
            "no one-time admin password printed"
        );
        wb
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("store/callrec.db")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn cli_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        super::common::cli_with_stdin(&self.cfg, args, stdin)
    }

    pub fn cli(&self, args: &[&str]) -> String {
        let o = self.cli_with_stdin(args, "");
        assert!(
            o.status.success(),
            "callrec {args:?}: {}\n--- server log:\n{}",
            String::from_utf8_lossy(&o.stderr),
            self.log_text()
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Adds a user with [`PASSWORD`] (set from stdin, so no forced change).
    pub fn add_user(&self, name: &str, role: &str, extra: &[&str]) {
        let mut args = vec!["users", "add", name, "--role", role, "--password-stdin"];
        args.extend_from_slice(extra);
        let o = self.cli_with_stdin(&args, &format!("{PASSWORD}\n"));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    /// Records a call of about `secs` seconds on `seat` with this metadata; returns its id.
    pub fn record_call(&self, seat: &str, secs: f64, meta: &[&str]) -> i64 {
        let mut args = vec!["call", "start", "--seat", seat];
        args.extend_from_slice(meta);
        let id: i64 = self.cli(&args).trim().parse().unwrap();
        std::thread::sleep(Duration::from_secs_f64(secs));
        self.cli(&["call", "stop", "--seat", seat]);
        id
    }

    pub fn login(&self, user: &str, password: &str) -> Session {
        let mut s = Session::anonymous(self);
        let r = s.login(user, password);
        assert_eq!(r.status, 303, "login {user}: {}", r.body_text());
        s
    }
}

impl Drop for WebBox {
    fn drop(&mut self) {
        // SIGTERM: finish calls cleanly; the temp dir goes afterwards.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body_text()))
    }
}

/// One browser-like client: a session cookie and the page's CSRF token.
pub struct Session {
    base: String,
    agent: ureq::Agent,
    pub cookie: Option<String>,
    pub csrf: Option<String>,
    pub bearer: Option<String>,
}

fn extract(html: &str, marker: &str) -> Option<String> {
    let start = html.find(marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_owned())
}

impl Session {
    pub fn anonymous(wb: &WebBox) -> Session {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Session {
            base: wb.url(""),
            agent,
            cookie: None,
            csrf: None,
            bearer: None,
        }
    }

    fn finish(&mut self, r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
        let mut r = r.expect("request failed at the transport level");
        let headers: Vec<(String, String)> = r
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        for (k, v) in &headers {
            if k.eq_ignore_ascii_case("set-cookie") && v.starts_with("callrec_session=") {
                let val = v["callrec_session=".len()..]
                    .split(';')
                    .next()
                    .unwrap_or_default();
                self.cookie = (!val.is_empty()).then(|| val.to_owned());
            }
        }
        let status = r.status().as_u16();
        let body = r
            .body_mut()
            .with_config()
            .limit(512 * 1024 * 1024)
            .read_to_vec()
            .unwrap_or_default();
        if let Some(t) = extract(
            &String::from_utf8_lossy(&body),
            r#"<meta name="csrf-token" content=""#,
        )
        .filter(|t| !t.is_empty())
        {
            self.csrf = Some(t);
        }
        Reply {
            status,
            headers,
            body,
        }
    }

    fn auth_headers(&self, mut headers: Vec<(String, String)>) -> Vec<(String, String)> {
        if let Some(c) = &self.cookie {
            headers.push(("cookie".into(), format!("callrec_session={c}")));
        }
        if let Some(b) = &self.bearer {
            headers.push(("authorization".into(), format!("Bearer {b}")));
        }
        headers
    }

    pub fn get_with(&mut self, path: &str, extra: &[(&str, &str)]) -> Reply {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        let hs = self.auth_headers(
            extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        for (k, v) in hs {
            req = req.header(k, v);
        }
        let r = req.call();
        self.finish(r)
    }

    pub fn get(&mut self, path: &str) -> Reply {
        self.get_with(path, &[])
    }

    /// A state-changing request; sends the CSRF header unless `csrf` is false.
    pub fn send(&mut self, method: &str, path: &str, ctype: &str, body: &str, csrf: bool) -> Reply {
        let url = format!("{}{path}", self.base);
        let mut hs = vec![("content-type".to_owned(), ctype.to_owned())];
        if csrf {
            if let Some(t) = &self.csrf {
                hs.push(("x-csrf-token".into(), t.clone()));
            }
        }
        let hs = self.auth_headers(hs);
        let r = match method {
            "DELETE" => {
                let mut req = self.agent.delete(&url);
                for (k, v) in hs {
                    req = req.header(k, v);
                }
                req.call()
            }
            "PUT" => {
                let mut req = self.agent.put(&url);
                for (k, v) in hs {
                    req = req.header(k, v);
                }
                req.send(body.as_bytes())
            }
            _ => {
                let mut req = self.agent.post(&url);
                for (k, v) in hs {
                    req = req.header(k, v);
                }
                req.send(body.as_bytes())
            }
        };
        self.finish(r)
    }

    pub fn post_json(&mut self, path: &str, body: &str) -> Reply {
        self.send("POST", path, "application/json", body, true)
    }

    pub fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let body = serde_urlencoded::to_string(fields).unwrap();
        self.send(
            "POST",
            path,
            "application/x-www-form-urlencoded",
            &body,
            false,
        )
    }

    /// The login form round trip: GET /login (form token cookie) then POST.
    pub fn login(&mut self, user: &str, password: &str) -> Reply {
        self.login_with(user, password, &[])
    }

    /// [`Session::login`] with extra headers on both requests (`X-Forwarded-For`).
    pub fn login_with(&mut self, user: &str, password: &str, extra: &[(&str, &str)]) -> Reply {
        let page = self.get_with("/login", extra);
        let token = extract(&page.body_text(), r#"name="csrf" value=""#).expect("login form token");
        let form_cookie = page
            .header("set-cookie")
            .and_then(|c| c.split(';').next())
            .expect("login cookie")
            .to_owned();
        let body = serde_urlencoded::to_string([
            ("username", user),
            ("password", password),
            ("csrf", &token),
            ("next", "/calls"),
        ])
        .unwrap();
        let mut cookies = vec![form_cookie];
        if let Some(c) = &self.cookie {
            cookies.push(format!("callrec_session={c}"));
        }
        let mut req = self
            .agent
            .post(format!("{}/login", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", cookies.join("; "));
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let r = req.send(body.as_bytes());
        let reply = self.finish(r);
        if reply.status == 303 {
            // Load a page to pick up this session's CSRF token.
            let _ = self.get("/password");
        }
        reply
    }
}

impl WebBox {
    /// A call of `secs` seconds added behind the recorder's back, as an older recording would
    /// be: 10 s of the dialogue through the real encoder, its Opus packets repeated (fast, where
    /// encoding an hour would take a minute), granules and pages rebuilt per RFC 7845, and a
    /// `complete` row without peaks (so they are computed on demand).
    pub fn long_call(&self, secs: u64) -> i64 {
        use callrec::codec::ogg_read;
        use ogg::writing::{PacketWriteEndInfo, PacketWriter};
        let d = self.dir.path();
        let wav = d.join("ten.wav");
        let st = Command::new("sox")
            .arg(repo().join("fixtures/demo-call.wav"))
            .arg(&wav)
            .args(["trim", "0", "10"])
            .status()
            .unwrap();
        assert!(st.success());
        let short = d.join("ten.opus");
        self.cli(&["encode", wav.to_str().unwrap(), short.to_str().unwrap()]);
        let data = std::fs::read(&short).unwrap();
        let info = ogg_read::inspect(&data).unwrap();
        let pk = ogg_read::packets(&data, &info.pages);
        let audio = &pk[2..];
        let pre_skip = u64::from(info.head.pre_skip);
        let rel = format!("calls/long/{secs}.opus");
        let path = d.join("store").join(&rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut out = Vec::new();
        {
            let mut pw = PacketWriter::new(&mut out);
            let serial = 4711;
            for p in &pk[..2] {
                pw.write_packet(p.clone(), serial, PacketWriteEndInfo::EndPage, 0)
                    .unwrap();
            }
            let n = secs * 50; // 20 ms packets
            for i in 0..n {
                let end = if i + 1 == n {
                    PacketWriteEndInfo::EndStream
                } else if (i + 1) % 25 == 0 {
                    PacketWriteEndInfo::EndPage
                } else {
                    PacketWriteEndInfo::NormalPacket
                };
                let p = audio[(i % audio.len() as u64) as usize].clone();
                pw.write_packet(p, serial, end, pre_skip + (i + 1) * 960)
                    .unwrap();
            }
        }
        std::fs::write(&path, &out).unwrap();
        let sha = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(&out))
        };
        let conn = rusqlite::Connection::open(self.db()).unwrap();
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        conn.execute(
            "INSERT INTO calls (box_id, seat_id, mode, status, started_at_utc, started_mono_ms,
                 ended_at_utc, duration_ms, bytes, sha256, rate_hz, bitrate_bps, agent, rel_path, end_reason)
             VALUES ('web-box', 'seat01', 'control', 'complete', '2026-11-01T09:00:00.000Z', 0,
                 '2026-11-01T10:00:00.000Z', ?1, ?2, ?3, 16000, 16000, 'alice', ?4, 'stop')",
            rusqlite::params![secs as i64 * 1000, out.len() as i64, sha, rel],
        )
        .unwrap();
        conn.last_insert_rowid()
    }
}

/// The urlencoded body that logs `user` in with [`PASSWORD`] from the login form's `html` (its
/// CSRF token), going on to `/calls`.
pub fn login_form_body(html: &str, user: &str) -> String {
    let token = extract(html, r#"name="csrf" value=""#).expect("login form token");
    serde_urlencoded::to_string([
        ("username", user),
        ("password", PASSWORD),
        ("csrf", token.as_str()),
        ("next", "/calls"),
    ])
    .unwrap()
}

/// Starts `callrec --config CFG SUB` (`run`, `serve` or `hub`) with stderr appended to `log`,
/// reads its stdout until the web UI is announced (and the one-time admin password, if one was
/// made), then keeps draining it so the child never blocks on a full pipe.
pub fn spawn_web(cfg: &std::path::Path, sub: &str, log: &std::path::Path) -> (Child, String) {
    spawn_web_env(cfg, sub, log, &[])
}

/// [`spawn_web`] with extra environment variables.
pub fn spawn_web_env(
    cfg: &std::path::Path,
    sub: &str,
    log: &std::path::Path,
    env: &[(String, String)],
) -> (Child, String) {
    let mut child = Command::new(bin())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .arg("--config")
        .arg(cfg)
        .arg(sub)
        .stdout(Stdio::piped())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap(),
        )
        .spawn()
        .unwrap();
    let mut admin_once = String::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let t0 = Instant::now();
    while let Some(Ok(line)) = lines.next() {
        if let Some(pw) = line.split("one-time password: ").nth(1) {
            admin_once = pw.trim().to_owned();
        }
        if line.contains("web UI at") {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "callrec {sub} did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
    std::thread::spawn(move || for _ in lines {});
    (child, admin_once)
}
