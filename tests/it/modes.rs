//! Seat modes (vox, continuous) with file inputs, and `callrec encode`.

use crate::common::*;
use std::time::Duration;

#[test]
fn vox_keeps_the_pre_roll_and_stops_after_silence() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("vox.wav");
    // Silence 3 s, agent 2 s, silence 3 s, customer 2 s, silence 4 s (loops).
    write_wav(
        &wav,
        &[
            (3.0, false, false),
            (2.0, true, false),
            (3.0, false, false),
            (2.0, false, true),
            (4.0, false, false),
        ],
    );
    let seat = format!(
        "[[seat]]\nid = \"v1\"\nmode = \"vox\"\nvox_pre_roll_ms = 1000\nvox_stop_after_ms = 1500\n[[seat.input]]\nkind = \"file\"\npath = \"{}\"\nagent_channel = 0\ncustomer_channel = 1\n",
        wav.display()
    );
    let mut rec = Recorder::start_in(dir, &seat, vec![]);
    std::thread::sleep(Duration::from_millis(12_500));
    rec.stop();
    let mut calls = rec.calls();
    calls.reverse();
    assert!(calls.len() >= 2, "{calls:?}");
    for (c, party) in calls.iter().take(2).zip([0, 1]) {
        assert_eq!(c["mode"], "vox");
        assert_eq!(c["end_reason"], "vox_silence", "{c}");
        let ms = c["duration_ms"].as_i64().unwrap();
        // pre-roll 1 s + 2 s of speech + 1.5 s of silence before stopping
        assert!((4300..4700).contains(&ms), "vox call lasted {ms} ms");
        let path = rec.file_of(c);
        check_opus_file(&path, ms, 30);
        let (a, cu) = decode(&path);
        let x = if party == 0 { a } else { cu };
        // The first word is kept: activity starts about one pre-roll into the file.
        let onset = envelope(&x).iter().position(|e| *e > 0.05).unwrap() * 10;
        assert!(
            (900..1100).contains(&onset),
            "speech starts at {onset} ms, expected ~1000 ms of pre-roll"
        );
    }
}

#[test]
fn continuous_rolls_files_on_the_interval() {
    let seat = "[[seat]]\nid = \"c1\"\nmode = \"continuous\"\nroll_interval_s = 10\n[[seat.input]]\nkind = \"synthetic\"\nseed = 5\nagent_channel = 0\ncustomer_channel = 1\n";
    let mut rec = Recorder::start(seat, vec![]);
    std::thread::sleep(Duration::from_millis(21_500));
    rec.stop();
    let mut calls = rec.calls();
    calls.reverse();
    assert_eq!(calls.len(), 3, "{calls:?}");
    for c in &calls[..2] {
        assert_eq!(c["end_reason"], "roll");
        assert_eq!(c["duration_ms"], 10_000);
        check_opus_file(&rec.file_of(c), 10_000, 30);
    }
    assert_eq!(calls[2]["end_reason"], "shutdown");
    // Files follow each other without a gap: starts are ~10 s apart.
    let t = |c: &serde_json::Value| chrono_ms(c["started_at_utc"].as_str().unwrap());
    let step = t(&calls[1]) - t(&calls[0]);
    assert!((9_900..10_100).contains(&step), "roll step {step} ms");
}

fn chrono_ms(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap()
        .timestamp_millis()
}

#[test]
fn encode_runs_a_wav_through_the_seat_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("in.wav");
    write_wav(
        &wav,
        &[(1.0, true, false), (1.5, false, true), (0.5, false, false)],
    );
    let out = dir.path().join("out.opus");
    let o = std::process::Command::new(bin())
        .args(["--config", "/nonexistent.toml", "encode", "--json"])
        .arg(&wav)
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["duration_ms"], 3000);
    assert_eq!(r["sha256"].as_str().unwrap(), sha256sum(&out));
    check_opus_file(&out, 3000, 20);
    let (a, c) = decode(&out);
    assert_eq!(a.len(), 3 * 48000);
    // Agent tone in the first second only, customer tone in the next 1.5 s only.
    assert!(rms_dbfs(&a[4800..43200]) > -15.0 && rms_dbfs(&c[4800..43200]) < -60.0);
    assert!(rms_dbfs(&c[52800..110400]) > -15.0 && rms_dbfs(&a[52800..110400]) < -60.0);
    // A text file is refused with a reason, not a panic.
    let bad = dir.path().join("bad.wav");
    std::fs::write(&bad, "not audio").unwrap();
    let o = std::process::Command::new(bin())
        .args(["--config", "/nonexistent.toml", "encode"])
        .arg(&bad)
        .arg(dir.path().join("x.opus"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("bad.wav"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
