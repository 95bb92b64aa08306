//! Proof that recording is complete (issue 16 item 4), against a real recorder: a seat whose
//! customer channel is silent raises `silent_channel` (after one long call, or after N short
//! ones in a row) in `/metrics`, `/healthz` and `/api/floor`, and a call with both parties heard
//! clears it; a refused start is counted and alarmed; an agent logged in without calls raises
//! `idle_logged_in` in working hours and not outside them; the completeness report's figures
//! are the hand-counted ones, from the API and the CLI alike.

use super::common::{write_wav, Recorder};
use super::webbox::{file_and_synthetic_seats, Session, WebBox, PASSWORD};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn text(url: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = agent.get(url).call().unwrap();
    (
        r.status().as_u16(),
        r.body_mut().read_to_string().unwrap_or_default(),
    )
}

fn floor_seat(s: &mut Session, seat: &str) -> Value {
    let f = s.get("/api/floor");
    assert_eq!(f.status, 200, "{}", f.body_text());
    let v = f.json();
    assert_eq!(v["recorder"], true, "{v}");
    v["seats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["seat"] == seat)
        .cloned()
        .unwrap_or_else(|| panic!("no seat {seat} in {v}"))
}

fn alarm_kinds(seat: &Value) -> Vec<String> {
    seat["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap().to_owned())
        .collect()
}

fn record(wb: &WebBox, seat: &str, secs: f64) -> i64 {
    wb.record_call(seat, secs, &[])
}

/// Two seats: `quiet` plays `silent_s` seconds with the customer silent, then 8 s with both
/// parties (looping from the recorder's start); `busy` is a synthetic conversation with both
/// parties talking all the time.
pub fn quiet_seats(dir: &Path, silent_s: f32) -> String {
    let wav = dir.join("quiet.wav");
    write_wav(&wav, &[(silent_s, true, false), (8.0, true, true)]);
    file_and_synthetic_seats(
        ("quiet", &wav),
        ("busy", "seed = 3\nspeech = \"continuous\""),
    )
}

#[test]
fn a_silent_customer_raises_an_alarm_that_a_heard_call_clears() {
    let wav_dir = tempfile::tempdir().unwrap();
    // Short thresholds so the test is quick: 2 s makes a call "long", 2 short ones a run.
    let wb = WebBox::start_with(
        "\n[alarms]\nsilent_call_min_s = 2\nsilent_calls_in_row = 2\nidle_logged_in_s = 0\n",
        &quiet_seats(wav_dir.path(), 20.0),
        &[],
    );
    let t0 = Instant::now();
    wb.add_user("sup", "supervisor", &[]);
    wb.add_user("aud", "auditor", &[]);
    let mut sup = wb.login("sup", PASSWORD);

    // Inside the first 20 s of the file: the customer channel is digital silence.
    let a1 = record(&wb, "quiet", 0.8);
    let after_one = floor_seat(&mut sup, "quiet");
    assert!(
        alarm_kinds(&after_one).is_empty(),
        "one short call is not yet a run: {after_one}"
    );
    let a2 = record(&wb, "quiet", 0.8);
    let raised = floor_seat(&mut sup, "quiet");
    assert_eq!(alarm_kinds(&raised), ["silent_channel"], "{raised}");
    let detail = raised["alarms"][0]["detail"].as_str().unwrap().to_owned();
    assert_eq!(
        detail,
        format!("customer under -60 dBFS through the last 2 calls ({a2}, {a1})")
    );

    // A long one-sided call says so; a start while it records is refused and counted.
    let a3 = wb
        .cli(&["call", "start", "--seat", "quiet"])
        .trim()
        .parse::<i64>()
        .unwrap();
    let refused = wb.cli_with_stdin(&["call", "start", "--seat", "quiet"], "");
    assert!(!refused.status.success(), "a second start must be refused");
    std::thread::sleep(Duration::from_millis(2300));
    wb.cli(&["call", "stop", "--seat", "quiet"]);
    let busy = record(&wb, "busy", 1.0);
    assert!(
        t0.elapsed() < Duration::from_secs(19),
        "the one-sided calls took too long ({:?}): the file reached its part with the customer",
        t0.elapsed()
    );
    let raised = floor_seat(&mut sup, "quiet");
    let mut kinds = alarm_kinds(&raised);
    kinds.sort();
    assert_eq!(kinds, ["silent_channel", "start_refused"], "{raised}");
    let silent = raised["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "silent_channel")
        .unwrap();
    assert_eq!(
        silent["detail"],
        format!("customer under -60 dBFS through call {a3} (2 s)")
    );
    assert!(alarm_kinds(&floor_seat(&mut sup, "busy")).is_empty());

    // /metrics (loopback, no login): one series per kind and seat.
    let (status, metrics) = text(&wb.url("/metrics"));
    assert_eq!(status, 200);
    for line in [
        "callrec_alarm_active{kind=\"silent_channel\",seat=\"quiet\"} 1",
        "callrec_alarm_active{kind=\"start_refused\",seat=\"quiet\"} 1",
        "callrec_alarm_active{kind=\"idle_logged_in\",seat=\"quiet\"} 0",
        "callrec_alarm_active{kind=\"silent_channel\",seat=\"busy\"} 0",
        "callrec_alarm_active{kind=\"disk_full\"} 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing:\n{metrics}"
        );
    }
    // /healthz: 503 naming each alarm and its seat.
    let (status, health) = text(&wb.url("/healthz"));
    assert_eq!(status, 503, "{health}");
    let lines: Vec<&str> = health.lines().collect();
    assert_eq!(lines.len(), 2, "{health}");
    assert!(lines
        .iter()
        .any(|l| l.starts_with("alarm silent_channel seat quiet since ")));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("alarm start_refused seat quiet since ")));
    // The floor page lists the seat and its alarm once floor.js runs; the page itself is there.
    let page = sup.get("/floor");
    assert_eq!(page.status, 200);
    assert!(page.body_text().contains("/static/floor.js"));

    // Into the file's second part, where both parties are heard: the next call clears both.
    let since = t0.elapsed();
    if since < Duration::from_secs(21) {
        std::thread::sleep(Duration::from_secs(21) - since);
    }
    let b1 = record(&wb, "quiet", 2.0);
    let cleared = floor_seat(&mut sup, "quiet");
    assert!(alarm_kinds(&cleared).is_empty(), "{cleared}");
    let (status, health) = text(&wb.url("/healthz"));
    assert_eq!((status, health.as_str()), (200, "ok\n"));

    // The day's report, counted by hand: quiet had 5 announced starts (a1, a2, a3, the refused
    // one, b1), 4 calls, all recorded, 3 of them one-sided; busy 1 call; no gaps, no drops.
    let mut aud = wb.login("aud", PASSWORD);
    let r = aud.get("/api/reports/completeness");
    assert_eq!(r.status, 200, "{}", r.body_text());
    let v = r.json();
    let seats = v["seats"].as_array().unwrap();
    let row = |s: &str| seats.iter().find(|x| x["seat"] == s).cloned().unwrap();
    let expect_quiet = serde_json::json!({
        "seat": "quiet", "announced": 5, "refused": 1, "calls": 4, "recorded": 4,
        "interrupted": 0, "recording": 0, "one_sided": 3, "gaps": 0, "gap_ms": 0,
        "dropped_frames": 0,
    });
    assert_eq!(row("quiet"), expect_quiet, "{v}");
    assert_eq!(row("busy")["calls"], 1);
    assert_eq!(row("busy")["announced"], 1);
    assert_eq!(row("busy")["one_sided"], 0);
    let cli: Value = serde_json::from_str(&wb.cli(&["report", "completeness", "--json"])).unwrap();
    assert_eq!(cli["seats"], v["seats"], "the CLI and the API agree");
    assert_eq!(cli["day"], v["day"]);
    // A day with nothing: zeros for every configured seat.
    let empty = aud.get("/api/reports/completeness?day=2001-01-01").json();
    assert_eq!(empty["seats"][0]["announced"], 0);
    assert_eq!(
        aud.get("/api/reports/completeness?day=yesterday").status,
        400
    );

    // Raising and clearing are audited, with the seat.
    let audit = aud.get("/api/audit?action=alarm.raise").json();
    let raised_on: Vec<String> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| {
            let d: Value = serde_json::from_str(r["detail"].as_str()?).ok()?;
            Some(format!(
                "{}@{}",
                d["kind"].as_str()?,
                d["subject"].as_str()?
            ))
        })
        .collect();
    assert!(
        raised_on.contains(&"silent_channel@quiet".to_owned())
            && raised_on.contains(&"start_refused@quiet".to_owned()),
        "{audit}"
    );
    let _ = (b1, busy);
}

/// The alarms in the index, active ones, as `kind@seat`.
fn active_alarms(db: &Path) -> Vec<String> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut st = conn
        .prepare(
            "SELECT kind || '@' || subject FROM alarms WHERE cleared_at_utc IS NULL ORDER BY id",
        )
        .unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn idle_config(working_days: &str) -> String {
    format!(
        "[alarms]\nidle_logged_in_s = 1\nworking_hours = \"00:00-24:00\"\nworking_days = [{working_days}]\n\
         [[seat]]\nid = \"s1\"\n[[seat.input]]\nkind = \"synthetic\"\nagent_channel = 0\ncustomer_channel = 1\n"
    )
}

#[test]
fn an_agent_logged_in_without_calls_raises_an_alarm_in_working_hours_only() {
    let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let today = chrono::Datelike::weekday(&chrono::Local::now()).num_days_from_monday() as usize;
    let quoted = |keep: &dyn Fn(usize) -> bool| {
        (0..7)
            .filter(|d| keep(*d))
            .map(|d| format!("\"{}\"", days[d]))
            .collect::<Vec<_>>()
            .join(", ")
    };

    // Working hours cover now: logged in 1 s without a call raises; a call clears it.
    let mut rec = Recorder::start(&idle_config(&quoted(&|_| true)), vec![]);
    rec.cmd(&["call", "login", "--seat", "s1", "--agent", "alice"]);
    wait_for("idle_logged_in on s1", Duration::from_secs(10), || {
        (active_alarms(&rec.db()) == ["idle_logged_in@s1"]).then_some(())
    });
    rec.start_call("s1", &[]);
    wait_for(
        "a call to clear idle_logged_in",
        Duration::from_secs(10),
        || active_alarms(&rec.db()).is_empty().then_some(()),
    );
    rec.cmd(&["call", "stop", "--seat", "s1"]);
    // Idle again after the call; a logout clears it.
    wait_for(
        "idle_logged_in after the call",
        Duration::from_secs(10),
        || (active_alarms(&rec.db()) == ["idle_logged_in@s1"]).then_some(()),
    );
    rec.cmd(&["call", "logout", "--seat", "s1"]);
    wait_for(
        "a logout to clear idle_logged_in",
        Duration::from_secs(10),
        || active_alarms(&rec.db()).is_empty().then_some(()),
    );
    rec.stop();

    // Today is not a working day: the same login raises nothing.
    let mut rec = Recorder::start(&idle_config(&quoted(&|d| d != today)), vec![]);
    rec.cmd(&["call", "login", "--seat", "s1", "--agent", "alice"]);
    // Two checks (every 2 s) past the 1 s threshold.
    std::thread::sleep(Duration::from_secs(6));
    assert!(active_alarms(&rec.db()).is_empty());
    rec.stop();
}
