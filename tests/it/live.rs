//! Live listening (issue 16, item 5) without a browser: the control socket's `listen` stream
//! (frames, a paused call's silence, the listener limits, the time limit), a listener that
//! stops reading (the seat neither drops frames nor lags, and the listener is cut off), and the
//! web relay (`/live/{seat}`, `/api/live/{seat}/audio`): its audit rows and the config switch.
//! The Chromium test that measures the delay is in browser.rs.

use crate::common::*;
use crate::webbox::{Session, WebBox, PASSWORD};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const SEAT: &str = r#"
[[seat]]
id = "s1"
mode = "control"
[[seat.input]]
kind = "synthetic"
seed = 3
agent_channel = 0
customer_channel = 1
"#;

const FLAG_PAUSED: u16 = 1;
const FLAG_CALL: u16 = 2;
/// 20 ms at the default 16 kHz: 320 samples per channel, s16, two channels, 16-byte header.
const FRAME_BYTES: usize = 16 + 320 * 4;

struct Frame {
    seq: u32,
    flags: u16,
    call: i64,
    pcm: Vec<i16>,
}

fn socket(rec: &Recorder) -> PathBuf {
    rec.storage().join("control.sock")
}

/// Sends `listen`; returns the reply and the stream positioned at the first frame.
fn listen(sock: &Path, seat: &str, max_s: Option<u64>) -> (Value, BufReader<UnixStream>) {
    let s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req = serde_json::json!({"cmd": "listen", "seat": seat});
    if let Some(m) = max_s {
        req["max_s"] = m.into();
    }
    (&s).write_all(format!("{req}\n").as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    (serde_json::from_str(&line).unwrap(), r)
}

fn parse(b: &[u8]) -> Frame {
    let n = u16::from_le_bytes([b[6], b[7]]) as usize;
    Frame {
        seq: u32::from_le_bytes(b[0..4].try_into().unwrap()),
        flags: u16::from_le_bytes([b[4], b[5]]),
        call: i64::from_le_bytes(b[8..16].try_into().unwrap()),
        pcm: b[16..16 + n * 4]
            .chunks(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect(),
    }
}

fn read_frames(r: &mut impl Read, n: usize) -> Vec<Frame> {
    (0..n)
        .map(|_| {
            let mut b = vec![0u8; FRAME_BYTES];
            r.read_exact(&mut b).unwrap();
            parse(&b)
        })
        .collect()
}

fn peak(frames: &[Frame]) -> i32 {
    frames
        .iter()
        .flat_map(|f| f.pcm.iter())
        .map(|v| i32::from(*v).abs())
        .max()
        .unwrap_or(0)
}

/// Reads frames until one satisfies `want` (at most 5 s of them); returns it.
fn until(r: &mut impl Read, want: impl Fn(&Frame) -> bool) -> Frame {
    for _ in 0..250 {
        let f = read_frames(r, 1).pop().unwrap();
        if want(&f) {
            return f;
        }
    }
    panic!("no such frame within 5 s of stream");
}

#[test]
fn listen_streams_the_seat_pause_is_silence_and_listeners_are_bounded() {
    let rec = Recorder::start(SEAT, vec![]);
    let sock = socket(&rec);
    let id = rec.start_call("s1", &[]);
    let (reply, mut r) = listen(&sock, "s1", None);
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(
        reply["live"],
        serde_json::json!({"rate_hz": 16000, "channels": 2, "frame_samples": 320,
            "header_bytes": 16, "frame_bytes": FRAME_BYTES, "max_s": 4 * 3600}),
    );
    let t0 = Instant::now();
    let frames = read_frames(&mut r, 100);
    let took = t0.elapsed();
    assert!(
        (1500..3000).contains(&took.as_millis()),
        "100 frames of 20 ms arrived in {took:?}: not real time"
    );
    for w in frames.windows(2) {
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1), "a frame is missing");
    }
    assert!(frames
        .iter()
        .all(|f| f.flags == FLAG_CALL && f.call == id && f.pcm.len() == 640));
    assert!(peak(&frames) > 1000, "the synthetic talk is not heard");

    // PCI pause: silence goes out live too, flagged; after resume the audio is back.
    rec.cmd(&["call", "pause", "--seat", "s1"]);
    until(&mut r, |f| f.flags & FLAG_PAUSED != 0);
    let paused = read_frames(&mut r, 100);
    assert!(paused.iter().all(|f| f.flags == FLAG_PAUSED | FLAG_CALL));
    assert_eq!(peak(&paused), 0, "audio leaked during a pause");
    rec.cmd(&["call", "resume", "--seat", "s1"]);
    until(&mut r, |f| f.flags & FLAG_PAUSED == 0);
    assert!(peak(&read_frames(&mut r, 150)) > 1000);

    // Four listeners per seat; the fifth is refused and says why.
    let more: Vec<_> = (0..3).map(|_| listen(&sock, "s1", None)).collect();
    assert!(more.iter().all(|(v, _)| v["ok"] == true));
    let (fifth, _) = listen(&sock, "s1", None);
    assert_eq!(fifth["ok"], false, "{fifth}");
    assert!(
        fifth["error"]
            .as_str()
            .unwrap()
            .contains("already has 4 listeners"),
        "{fifth}"
    );
    let (nosuch, _) = listen(&sock, "nope", None);
    assert_eq!(nosuch["error"], "no seat \"nope\" on this box");
    // Gone listeners free their places (the recorder sees the closed socket at its next write).
    drop(more);
    drop(r);
    std::thread::sleep(Duration::from_millis(300));
    let (again, mut r2) = listen(&sock, "s1", Some(1));
    assert_eq!(again["ok"], true, "{again}");
    assert_eq!(again["live"]["max_s"], 1);
    // The time limit ends the stream.
    let t0 = Instant::now();
    let mut rest = Vec::new();
    r2.read_to_end(&mut rest).unwrap();
    let secs = rest.len() as f64 / FRAME_BYTES as f64 * 0.02;
    assert!(
        (0.8..1.3).contains(&secs) && t0.elapsed() < Duration::from_secs(2),
        "a 1 s listen carried {secs} s of audio and lasted {:?}",
        t0.elapsed()
    );
    rec.cmd(&["call", "stop", "--seat", "s1"]);
}

#[test]
fn a_listener_that_stops_reading_never_slows_the_seat() {
    let rec = Recorder::start(SEAT, vec![]);
    let sock = socket(&rec);
    // Let the seat settle before the call whose length is checked.
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    let id = rec.start_call("s1", &[]);
    let (reply, mut stalled) = listen(&sock, "s1", None);
    assert_eq!(reply["ok"], true, "{reply}");
    // A second listener that does read, in the meantime.
    let (_, mut reader) = listen(&sock, "s1", None);
    let keeps_up = std::thread::spawn(move || {
        let frames = read_frames(&mut reader, 500);
        frames
            .windows(2)
            .filter(|w| w[1].seq != w[0].seq.wrapping_add(1))
            .count()
    });
    std::thread::sleep(Duration::from_secs(12));
    let st = rec.seat_status("s1");
    assert_eq!(st["dropped_frames"], 0, "{st}");
    assert!(st["max_lag_ms"].as_u64().unwrap() < 200, "{st}");
    // The last minute's worst is within the worst since start (the whole 12 s call).
    let recent = st["max_lag_1m_ms"].as_u64().unwrap();
    assert!(recent <= st["max_lag_ms"].as_u64().unwrap(), "{st}");
    rec.cmd(&["call", "stop", "--seat", "s1"]);
    let wall_ms = t0.elapsed().as_millis() as i64;
    assert_eq!(
        keeps_up.join().unwrap(),
        0,
        "the reading listener lost frames"
    );

    // The stalled listener was cut off: what it can still read ends (EOF) well short of the
    // 12 s that went by.
    let mut got = Vec::new();
    stalled.read_to_end(&mut got).unwrap();
    let secs = got.len() as f64 / FRAME_BYTES as f64 * 0.02;
    assert!(secs < 9.0, "the stalled listener still got {secs:.1} s");
    assert!(
        rec.log_text()
            .contains("live listener disconnected: the listener stopped reading"),
        "{}",
        rec.log_text()
    );
    let c = rec.call(id);
    assert_eq!(c["dropped_frames"], 0, "{c}");
    let ms = c["duration_ms"].as_i64().unwrap();
    assert!(
        (wall_ms - 700..=wall_ms).contains(&ms),
        "recorded {ms} ms over {wall_ms} ms of wall time"
    );
    println!(
        "stalled listener: cut off after {secs:.1} s of audio; call {ms} ms over {wall_ms} ms wall, 0 dropped"
    );
}

/// `select action, call_id, detail from audit where action like 'live.%'`, oldest first.
fn live_audit(db: &Path) -> Vec<Value> {
    let out = Command::new("sqlite3")
        .arg("-json")
        .arg(db)
        .arg("select actor, action, call_id, detail from audit where action like 'live.%' order by id")
        .output()
        .expect("sqlite3 must be installed");
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim().is_empty() {
        return Vec::new();
    }
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_array()
        .cloned()
        .unwrap()
}

/// A GET on the live stream with `s`'s session; the open response.
fn open_stream(wb: &WebBox, s: &Session, seat: &str) -> ureq::http::Response<ureq::Body> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    agent
        .get(wb.url(&format!("/api/live/{seat}/audio")))
        .header(
            "cookie",
            format!("callrec_session={}", s.cookie.as_deref().unwrap()),
        )
        .call()
        .unwrap()
}

#[test]
fn a_supervisor_listens_over_http_and_it_is_audited() {
    let wb = WebBox::start("");
    wb.add_user("sup", "supervisor", &[]);
    let mut s = wb.login("sup", PASSWORD);
    let page = s.get("/live/seat02");
    assert_eq!(page.status, 200);
    assert!(page
        .body_text()
        .contains(r#"<main id="live" data-seat="seat02">"#));
    assert_eq!(s.get("/live/nosuch").status, 404);
    let id: i64 = wb
        .cli(&["call", "start", "--seat", "seat02"])
        .trim()
        .parse()
        .unwrap();
    assert!(s
        .get(&format!("/calls/{id}"))
        .body_text()
        .contains(r#"<a href="/live/seat02">Listen live</a>"#));

    let mut resp = open_stream(&wb, &s, "seat02");
    assert_eq!(resp.status(), 200);
    let h = |k: &str| resp.headers()[k].to_str().unwrap().to_owned();
    assert_eq!(h("content-type"), "application/octet-stream");
    assert_eq!(h("x-live-rate-hz"), "16000");
    assert_eq!(h("x-live-frame-bytes"), FRAME_BYTES.to_string());
    let t0 = Instant::now();
    let frames = read_frames(&mut resp.body_mut().as_reader(), 75);
    assert!(frames.iter().all(|f| f.call == id && f.flags == FLAG_CALL));
    assert!(peak(&frames) > 1000);
    drop(resp);
    let held_ms = t0.elapsed().as_millis() as u64;
    let t0 = Instant::now();
    let rows = loop {
        let rows = live_audit(&wb.db());
        if rows.len() >= 2 || t0.elapsed() > Duration::from_secs(10) {
            break rows;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["actor"], "sup");
    assert_eq!(rows[0]["action"], "live.start");
    assert_eq!(rows[0]["call_id"], id);
    assert_eq!(rows[0]["detail"], r#"{"seat":"seat02"}"#);
    assert_eq!(rows[1]["action"], "live.end");
    assert_eq!(rows[1]["call_id"], id);
    let d: Value = serde_json::from_str(rows[1]["detail"].as_str().unwrap()).unwrap();
    assert_eq!(d["seat"], "seat02");
    assert_eq!(d["calls"], serde_json::json!([id]));
    assert!(
        d["from_utc"].as_str().unwrap() < d["to_utc"].as_str().unwrap(),
        "{d}"
    );
    let ms = d["duration_ms"].as_u64().unwrap();
    assert!(
        ms + 100 >= held_ms && ms < held_ms + 5000,
        "{d} over {held_ms} ms"
    );
    assert!(d["frames"].as_u64().unwrap() >= 75, "{d}");
    wb.cli(&["call", "stop", "--seat", "seat02"]);
}

#[test]
fn live_listening_switched_off_is_refused_and_not_linked() {
    let wb = WebBox::start("live_listen = false");
    wb.add_user("boss", "admin", &[]);
    let mut s = wb.login("boss", PASSWORD);
    let id: i64 = wb
        .cli(&["call", "start", "--seat", "seat02"])
        .trim()
        .parse()
        .unwrap();
    for path in ["/live/seat02", "/api/live/seat02/audio"] {
        let r = s.get(path);
        assert_eq!(r.status, 404, "{path}");
        assert!(
            r.body_text()
                .contains("live listening is off on this box ([server] live_listen = false)"),
            "{path}: {}",
            r.body_text()
        );
    }
    let call_page = s.get(&format!("/calls/{id}")).body_text();
    assert!(!call_page.contains("/live/"), "{call_page}");
    assert!(live_audit(&wb.db()).is_empty());
    wb.cli(&["call", "stop", "--seat", "seat02"]);
}

#[test]
fn the_hub_has_no_live_listening() {
    let (dir, cfg, port) = crate::fleet::hub_config("live-hub");
    let hub = crate::fleet::hub_start(dir, cfg, port);
    hub.add_user("lead", "supervisor", &[]);
    let mut s = hub.login("lead", PASSWORD);
    for path in ["/live/seat01", "/api/live/seat01/audio"] {
        let r = s.get(path);
        assert_eq!(r.status, 404, "{path}");
        assert!(
            r.body_text()
                .contains("live listening is a box feature: the hub has no seats"),
            "{path}: {}",
            r.body_text()
        );
    }
}
