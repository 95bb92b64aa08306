//! Capture through real cpal/ALSA: FIFO-fed `file` PCMs stand in for a line adapter and for a
//! headset + line tap pair. Checks channel placement, similarity to the fixture, separation,
//! two-device alignment, PCI pause, and device faults.

use crate::common::*;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn alsa_env(cfg: &std::path::Path) -> Vec<(String, String)> {
    vec![
        ("ALSA_CONFIG_PATH".into(), cfg.display().to_string()),
        ("RUST_LOG".into(), "info".into()),
    ]
}

const STEREO_SEAT: &str = r#"
[[seat]]
id = "s1"
[[seat.input]]
kind = "device"
rate_hz = 48000
device = "alsa:line01"
channels = 2
agent_channel = 0
customer_channel = 1
"#;

const TWO_DEVICE_SEAT: &str = r#"
[[seat]]
id = "s2"
[[seat.input]]
kind = "device"
rate_hz = 48000
device = "alsa:head02"
channels = 1
agent_channel = 0
[[seat.input]]
kind = "device"
rate_hz = 48000
device = "alsa:tap02"
channels = 1
customer_channel = 0
"#;

/// Aligns a decoded party against the fixture party: (offset in 10 ms steps, correlation).
fn align(decoded: &[f32], fixture: &[f32]) -> (usize, f32) {
    best_offset(&envelope(decoded), &envelope(fixture))
}

/// Where the fixture has only `speaking` talking (the other party exactly silent for 300 ms
/// around), the decoded silent party must stay below -60 dBFS.
fn assert_separated(
    decoded_silent: &[f32],
    fixture_silent: &[f32],
    offset_10ms: usize,
    label: &str,
) {
    let start = offset_10ms * 480;
    let mut checked = 0;
    for (w, chunk) in decoded_silent.chunks(4800).enumerate() {
        let f0 = start + w * 4800;
        let lo = f0.saturating_sub(14400);
        let hi = (f0 + 4800 + 14400).min(fixture_silent.len());
        if hi <= lo || fixture_silent[lo..hi].iter().any(|v| *v != 0.0) {
            continue;
        }
        let level = rms_dbfs(chunk);
        assert!(
            level < -60.0,
            "{label}: silent party at {level:.1} dBFS in window {w}"
        );
        checked += 1;
    }
    assert!(
        checked >= 5,
        "{label}: only {checked} one-party windows to check"
    );
}

/// The decoded file's parties each follow their own fixture channel (envelope correlation
/// above 0.9), sit within `max_skew_10ms` of each other, are not swapped, and each stays below
/// -60 dBFS while only the other one talks.
fn check_parties(
    path: &std::path::Path,
    fix_agent: &[f32],
    fix_customer: &[f32],
    max_skew_10ms: usize,
    label: &str,
) {
    let (agent, customer) = decode(path);
    let (oa, ra) = align(&agent, fix_agent);
    let (oc, rc) = align(&customer, fix_customer);
    assert!(
        ra > 0.9 && rc > 0.9,
        "{label}: envelope correlation agent {ra:.3}, customer {rc:.3}"
    );
    assert!(
        oa.abs_diff(oc) <= max_skew_10ms,
        "{label}: parties misaligned: {oa} vs {oc} (10 ms steps)"
    );
    let swapped = corr_at(&envelope(&agent), &envelope(fix_customer), oa);
    assert!(
        swapped < 0.5,
        "{label}: agent channel resembles the customer ({swapped:.3})"
    );
    assert_separated(
        &customer,
        fix_customer,
        oc,
        &format!("{label}: customer while agent talks"),
    );
    assert_separated(
        &agent,
        fix_agent,
        oa,
        &format!("{label}: agent while customer talks"),
    );
}

#[test]
fn alsa_capture_lands_in_the_right_channels_and_matches_the_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = alsa_config(dir.path(), &[("line01", 2), ("head02", 1), ("tap02", 1)]);
    let fix1 = conversation(11, 60);
    let (fix1_agent, fix1_customer) = (channel(&fix1, 2, 0), channel(&fix1, 2, 1));
    let fix2 = conversation(12, 60);
    let (fix2_agent, fix2_customer) = (channel(&fix2, 2, 0), channel(&fix2, 2, 1));
    let _f1 = fed_pcm(dir.path(), "line01", fix1, 2);
    let _f2a = fed_pcm(dir.path(), "head02", fix2_agent.clone(), 1);
    let _f2c = fed_pcm(dir.path(), "tap02", fix2_customer.clone(), 1);

    let env = alsa_env(&cfg);
    let mut rec = Recorder::start(&format!("{STEREO_SEAT}{TWO_DEVICE_SEAT}"), env);
    std::thread::sleep(Duration::from_millis(1500));
    let id1 = rec.start_call(
        "s1",
        &[
            "--agent",
            "alice",
            "--direction",
            "inbound",
            "--number",
            "+15551230001",
        ],
    );
    let id2 = rec.start_call("s2", &["--agent", "bob", "--direction", "outbound"]);
    std::thread::sleep(Duration::from_secs(12));
    for s in ["s1", "s2"] {
        let st = rec.seat_status(s);
        assert_eq!(st["dropped_frames"], 0, "{st}");
        assert!(st["inputs_down"].as_array().unwrap().is_empty(), "{st}");
    }
    rec.cmd(&["call", "stop", "--seat", "s1"]);
    rec.cmd(&["call", "stop", "--seat", "s2"]);
    rec.stop();

    for id in [id1, id2] {
        let c = rec.call(id);
        assert_eq!(c["status"], "complete", "{c}");
        assert_eq!(c["dropped_frames"], 0);
        let ms = c["duration_ms"].as_i64().unwrap();
        assert!((11_500..13_500).contains(&ms), "duration {ms}");
        let path = rec.file_of(&c);
        check_opus_file(&path, ms, 30);
        assert_eq!(c["sha256"].as_str().unwrap(), sha256sum(&path));
    }
    assert_eq!(rec.call(id1)["agent"], "alice");
    assert_eq!(rec.call(id1)["remote_number"], "+15551230001");

    // One device, two channels: each decoded party follows its own fixture channel, in step.
    let path1 = rec.file_of(&rec.call(id1));
    check_parties(
        &path1,
        &fix1_agent,
        &fix1_customer,
        1,
        "seat s1 (one device)",
    );
    // Two devices (two clocks): still within 20 ms of each other.
    let path2 = rec.file_of(&rec.call(id2));
    check_parties(
        &path2,
        &fix2_agent,
        &fix2_customer,
        2,
        "seat s2 (two devices)",
    );
    integrity_ok(&rec.db());
}

#[test]
fn pci_pause_keeps_the_tone_off_the_disk_and_the_timeline_intact() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = alsa_config(dir.path(), &[("line01", 2)]);
    let feeder = fed_pcm(dir.path(), "line01", conversation(21, 60), 2);
    let mut rec = Recorder::start(STEREO_SEAT, alsa_env(&cfg));
    std::thread::sleep(Duration::from_millis(1000));

    let t0 = Instant::now();
    let id = rec.start_call("s1", &[]);
    std::thread::sleep(Duration::from_millis(1500));
    rec.cmd(&[
        "call",
        "pause",
        "--seat",
        "s1",
        "--by",
        "cti",
        "--reason",
        "card number",
    ]);
    assert_eq!(rec.seat_status("s1")["state"], "paused");
    feeder.mode.store(FEED_TONE, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(2500));
    feeder.mode.store(FEED_FIXTURE, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(300)); // let the tone drain out of the pipeline
    rec.cmd(&["call", "resume", "--seat", "s1"]);
    std::thread::sleep(Duration::from_millis(1500));
    rec.cmd(&["call", "stop", "--seat", "s1"]);
    let wall_ms = t0.elapsed().as_millis() as i64;
    rec.stop();

    let c = rec.call(id);
    let ms = c["duration_ms"].as_i64().unwrap();
    assert!(
        (ms - wall_ms).abs() < 400,
        "timeline {ms} ms vs wall clock {wall_ms} ms"
    );
    let path = rec.file_of(&c);
    check_opus_file(&path, ms, 30);
    let iv = &c["intervals"][0];
    assert_eq!(iv["kind"], "pause");
    assert_eq!(iv["by"], "cti");
    assert_eq!(iv["reason"], "card number");
    let (p0, p1) = (
        iv["start_ms"].as_i64().unwrap(),
        iv["end_ms"].as_i64().unwrap(),
    );
    assert!(
        (2500..3500).contains(&(p1 - p0)),
        "pause length {}",
        p1 - p0
    );

    let (a, cu) = decode(&path);
    let span = |x: &[f32]| x[(p0 as usize) * 48..(p1 as usize) * 48].to_vec();
    assert!(
        rms_dbfs(&span(&a)) < -60.0 && rms_dbfs(&span(&cu)) < -60.0,
        "paused span is not silent"
    );
    for (w, (wa, wc)) in a.chunks(4800).zip(cu.chunks(4800)).enumerate() {
        let (ta, tc) = (tone_dbfs(wa, TONE_HZ), tone_dbfs(wc, TONE_HZ));
        assert!(
            ta < -50.0 && tc < -50.0,
            "tone leaked at {} ms: {ta:.1} / {tc:.1} dBFS",
            w * 100
        );
    }
    // Audio before and after the pause was kept.
    assert!(rms_dbfs(&a[..(p0 as usize) * 48]).max(rms_dbfs(&cu[..(p0 as usize) * 48])) > -40.0);
    integrity_ok(&rec.db());
}

#[test]
fn a_device_that_is_absent_or_stalls_is_reopened_and_the_call_kept() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = alsa_config(dir.path(), &[("line01", 2)]);
    let mut rec = Recorder::start(STEREO_SEAT, alsa_env(&cfg));
    let pid = rec.child.as_ref().unwrap().id();

    // Unplugged at start: the seat is down, naming the device; a call still keeps time.
    let st = rec.seat_status("s1");
    assert_eq!(st["inputs_down"][0], "s1.input[0]", "{st}");
    let t0 = Instant::now();
    let id = rec.start_call("s1", &[]);
    std::thread::sleep(Duration::from_millis(1500));

    // Plugged in: the supervisor reopens it without a restart.
    let feeder = fed_pcm(dir.path(), "line01", conversation(31, 120), 2);
    let wait_for = |want_down: bool| {
        let t = Instant::now();
        while rec.seat_status("s1")["inputs_down"]
            .as_array()
            .unwrap()
            .is_empty()
            == want_down
        {
            assert!(
                t.elapsed() < Duration::from_secs(8),
                "seat never became {}",
                if want_down { "down" } else { "up" }
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for(false);
    std::thread::sleep(Duration::from_millis(1500));

    // Stalls (no audio for 2.5 s): marked down, gap recorded, then back.
    feeder.mode.store(FEED_STALL, Ordering::Relaxed);
    wait_for(true);
    std::thread::sleep(Duration::from_millis(2000));
    feeder.mode.store(FEED_FIXTURE, Ordering::Relaxed);
    wait_for(false);
    std::thread::sleep(Duration::from_millis(2000));
    rec.cmd(&["call", "stop", "--seat", "s1"]);
    let wall_ms = t0.elapsed().as_millis() as i64;
    assert_eq!(rec.child.as_ref().unwrap().id(), pid);
    rec.stop();

    let c = rec.call(id);
    assert_eq!(c["status"], "complete");
    let ms = c["duration_ms"].as_i64().unwrap();
    assert!(
        (ms - wall_ms).abs() < 1500,
        "timeline {ms} ms vs wall clock {wall_ms} ms"
    );
    check_opus_file(&rec.file_of(&c), ms, 30);
    let gaps: Vec<_> = c["intervals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "gap")
        .collect();
    assert!(gaps.len() >= 2, "expected two gaps: {c}");
    assert_eq!(gaps[0]["start_ms"], 0);
    assert!(
        gaps[0]["reason"]
            .as_str()
            .unwrap()
            .contains("s1.input[0] down"),
        "{}",
        gaps[0]
    );
    let len =
        |g: &serde_json::Value| g["end_ms"].as_i64().unwrap() - g["start_ms"].as_i64().unwrap();
    assert!(len(gaps[0]) >= 1000, "absent gap {}", len(gaps[0]));
    let stall = gaps.iter().skip(1).map(|g| len(g)).max().unwrap();
    assert!(stall >= 1500, "stall gap {stall}");
    // Audio resumed after the last gap.
    let (a, cu) = decode(&rec.file_of(&c));
    let after = gaps.last().unwrap()["end_ms"].as_i64().unwrap() as usize * 48;
    assert!(
        rms_dbfs(&a[after..]).max(rms_dbfs(&cu[after..])) > -40.0,
        "no audio after the device came back"
    );
}
