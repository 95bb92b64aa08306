//! Process death: SIGKILL while several calls record (recovery on restart), SIGTERM (clean
//! finalize), and a second SIGTERM (exit at once, recovered on the next start).

use crate::common::*;
use std::time::{Duration, Instant};

fn synthetic_seats(n: usize, mode: &str) -> String {
    (1..=n)
        .map(|i| format!("[[seat]]\nid = \"s{i}\"\nmode = \"{mode}\"\n[[seat.input]]\nkind = \"synthetic\"\nseed = {i}\nagent_channel = 0\ncustomer_channel = 1\n"))
        .collect()
}

/// Every row has its file and every file under calls/ has its row.

#[test]
fn sigkill_while_recording_loses_at_most_a_second_and_recovers() {
    let mut rec = Recorder::start(&synthetic_seats(3, "control"), vec![]);
    let mut started = Vec::new();
    for s in ["s1", "s2", "s3"] {
        // Taken before the request: the call may start recording before `callrec call start`
        // has returned (by tens of ms on a loaded machine), never before it was sent.
        let asked_at = Instant::now();
        started.push((rec.start_call(s, &["--agent", s]), asked_at));
        std::thread::sleep(Duration::from_millis(700));
    }
    std::thread::sleep(Duration::from_secs(3));
    rec.signal("KILL");
    let killed_at = Instant::now();
    rec.wait(Duration::from_secs(5));
    for (id, _) in &started {
        assert_eq!(
            rec.call(*id)["status"],
            "recording",
            "row must exist while recording"
        );
    }

    rec.spawn(); // start-up recovery runs before anything records
    rec.stop();
    for (id, t) in &started {
        let c = rec.call(*id);
        assert_eq!(c["status"], "interrupted", "{c}");
        assert_eq!(c["end_reason"], "recovered");
        let captured_ms = killed_at.duration_since(*t).as_millis() as i64;
        let ms = c["duration_ms"].as_i64().unwrap();
        assert!(
            ms <= captured_ms && captured_ms - ms <= 1000,
            "call {id}: kept {ms} ms of {captured_ms} ms"
        );
        let path = rec.file_of(&c);
        check_opus_file(&path, ms, 30);
        assert_eq!(c["sha256"].as_str().unwrap(), sha256sum(&path));
        assert_eq!(
            c["bytes"].as_u64().unwrap(),
            std::fs::metadata(&path).unwrap().len()
        );
        let (a, cu) = decode(&path);
        assert!(
            (a.len() as i64 - ms * 48).abs() <= 48,
            "decodes to {} samples for {ms} ms",
            a.len()
        );
        assert!(
            rms_dbfs(&a).max(rms_dbfs(&cu)) > -40.0,
            "recovered audio is silent"
        );
    }
    integrity_ok(&rec.db());
    rows_and_files_match(&rec);
}

#[test]
fn sigterm_finalizes_every_open_call() {
    let mut rec = Recorder::start(
        &format!(
            "{}{}",
            synthetic_seats(2, "control"),
            synthetic_seats(3, "continuous")
                .replace("\"s1\"", "\"c1\"")
                .replace("\"s2\"", "\"c2\"")
                .replace("\"s3\"", "\"c3\"")
        ),
        vec![],
    );
    let a = rec.start_call("s1", &[]);
    let b = rec.start_call("s2", &[]);
    std::thread::sleep(Duration::from_secs(3));
    rec.cmd(&["call", "pause", "--seat", "s2"]);
    std::thread::sleep(Duration::from_millis(500));
    rec.stop();
    let calls = rec.calls();
    assert!(calls.len() >= 5, "{calls:?}");
    for c in &calls {
        assert_eq!(c["status"], "complete", "{c}");
        assert_eq!(c["end_reason"], "shutdown");
        let path = rec.file_of(c);
        check_opus_file(&path, c["duration_ms"].as_i64().unwrap(), 30);
        assert_eq!(c["sha256"].as_str().unwrap(), sha256sum(&path));
    }
    assert!(rec.call(a)["duration_ms"].as_i64().unwrap() >= 3000);
    // A pause open at shutdown is closed at the end of the audio.
    let c = rec.call(b);
    assert_eq!(c["intervals"][0]["end_ms"], c["duration_ms"]);
    integrity_ok(&rec.db());
    rows_and_files_match(&rec);
}

#[test]
fn second_sigterm_exits_at_once_and_the_next_start_recovers() {
    let mut rec = Recorder::start(&synthetic_seats(1, "control"), vec![]);
    let id = rec.start_call("s1", &[]);
    std::thread::sleep(Duration::from_millis(1500));
    // Hold the worker busy is not needed: two signals back to back hit before the clean stop ends.
    let pid = rec.child.as_ref().unwrap().id().to_string();
    let st = std::process::Command::new("sh")
        .args(["-c", &format!("kill -TERM {pid}; kill -TERM {pid}")])
        .status()
        .unwrap();
    assert!(st.success());
    let code = rec.wait(Duration::from_secs(10));
    let c = rec.call(id);
    if code == Some(1) {
        // Exited at once: the call is left `recording` for the next start to recover.
        assert_eq!(c["status"], "recording");
        rec.spawn();
        rec.stop();
        assert_eq!(rec.call(id)["status"], "interrupted");
    } else {
        // The clean stop won the race; it must then be complete.
        assert_eq!(code, Some(0));
        assert_eq!(c["status"], "complete");
    }
    check_opus_file(
        &rec.file_of(&rec.call(id)),
        rec.call(id)["duration_ms"].as_i64().unwrap(),
        30,
    );
}
