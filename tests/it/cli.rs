//! CLI behaviour: config errors name their key, devices are listed through cpal/ALSA, bad
//! control requests and filters are refused with a reason.

use crate::common::*;
use std::process::Command;

fn check(config: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.toml");
    std::fs::write(&p, config).unwrap();
    let o = Command::new(bin())
        .arg("--config")
        .arg(&p)
        .args(["config", "check"])
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

const BASE: &str = "[box]\nid = \"b\"\n[storage]\ndir = \"/tmp/callrec-cli\"\n[[seat]]\nid = \"s1\"\n[[seat.input]]\nkind = \"device\"\ndevice = \"alsa:line01\"\nchannels = 2\nagent_channel = 0\ncustomer_channel = 1\n";

#[test]
fn config_check_names_the_offending_key() {
    let (code, out) = check(BASE);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok (1 seat(s)"), "{out}");
    let cases = [
        (BASE.replace("[box]", "[box]\ncolour = \"red\""), "colour"),
        (
            BASE.replace("device = \"alsa:line01\"\n", ""),
            "seat[0].input[0].device",
        ),
        (
            BASE.replace("channels = 2", "channels = 2\nrate_hz = 1000"),
            "seat[0].input[0].rate_hz",
        ),
        (
            format!("{BASE}[encoder]\nrate_hz = 44100\n"),
            "encoder.rate_hz",
        ),
        (
            BASE.replace("customer_channel = 1", "customer_channel = 5"),
            "seat[0].input[0].customer_channel",
        ),
        (
            BASE.replace("mode", "x")
                .replace("id = \"s1\"", "id = \"s 1\""),
            "seat[0].id",
        ),
        ("[box]\nid = \"b\"\n".to_string(), "storage"),
    ];
    for (cfg, key) in cases {
        let (code, out) = check(&cfg);
        assert_eq!(code, 1, "{cfg} was accepted: {out}");
        assert!(out.contains(key), "error for {key} does not name it: {out}");
        // The units run this as ExecStartPre: the journal line says what refused.
        assert!(out.contains("callrec config check"), "{out}");
        assert_eq!(
            out.trim().lines().count(),
            1,
            "one-line reason expected: {out}"
        );
    }
    let o = Command::new(bin())
        .args(["--config", "/no/such/callrec.toml", "config", "check"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/no/such/callrec.toml"));
}

#[test]
fn devices_are_listed_through_cpal_and_alsa() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = alsa_config(dir.path(), &[("line01", 2)]);
    mkfifo(&dir.path().join("line01.fifo"));
    // Opening the PCM opens its FIFO, which blocks until a writer is there: feed it.
    let _feeder = Feeder::start(
        &dir.path().join("line01.fifo"),
        std::sync::Arc::new(vec![0.0; 96000]),
        2,
    );
    let o = Command::new(bin())
        .args(["devices", "--json"])
        .env("ALSA_CONFIG_PATH", &cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let dev = v
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == "alsa:line01")
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(dev["description"], "callrec test capture (line01)");
    assert!(dev["configs"][0].as_str().unwrap().contains("I16"), "{dev}");
}

#[test]
fn bad_requests_are_refused_with_a_reason() {
    let seat = "[[seat]]\nid = \"s1\"\n[[seat.input]]\nkind = \"synthetic\"\nagent_channel = 0\ncustomer_channel = 1\n";
    let mut rec = Recorder::start(seat, vec![]);
    let err = |args: &[&str]| {
        let o = rec.try_cmd(args);
        assert_eq!(o.status.code(), Some(1), "{args:?} succeeded");
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    // One writer per storage dir: a second recorder refuses to start and leaves the first alone.
    let mut second = Command::new(bin())
        .arg("--config")
        .arg(&rec.cfg)
        .arg("record")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while second.try_wait().unwrap().is_none() {
        if t0.elapsed() > std::time::Duration::from_secs(10) {
            let _ = second.kill();
            panic!("a second recorder started on the same storage dir");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = second.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(msg.contains("already using"), "{msg}");
    assert!(err(&["call", "stop", "--seat", "s1"]).contains("not recording"));
    assert!(err(&["call", "start", "--seat", "nope"]).contains("no seat \"nope\""));
    assert!(err(&["call", "start", "--seat", "s1", "--direction", "sideways"]).contains("inbound"));
    let id = rec.start_call("s1", &["--agent", "o'brien; DROP TABLE calls; --"]);
    assert!(err(&["call", "start", "--seat", "s1"]).contains("already recording"));
    assert!(err(&["call", "resume", "--seat", "s1"]).contains("not paused"));
    rec.cmd(&[
        "call",
        "tag",
        "--seat",
        "s1",
        "vip",
        "complaint",
        "--campaign",
        "winter",
    ]);
    // Malformed JSON straight to the socket.
    let sock = rec.storage().join("control.sock");
    let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    use std::io::{Read, Write};
    s.write_all(b"{\"cmd\":\"start\",\"seat\":1}\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(
        reply.contains("\"ok\":false") && reply.contains("malformed request"),
        "{reply}"
    );
    rec.cmd(&["call", "stop", "--seat", "s1"]);
    // Filters bind values: SQL metacharacters match literally.
    let c = rec.call(id);
    assert_eq!(c["agent"], "o'brien; DROP TABLE calls; --");
    assert_eq!(c["tags"], serde_json::json!(["complaint", "vip"]));
    assert_eq!(c["campaign"], "winter");
    let found = rec.cmd(&[
        "calls",
        "list",
        "--json",
        "--agent",
        "o'brien; DROP TABLE calls; --",
    ]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&found)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(err(&["calls", "list", "--since", "last tuesday"]).contains("--since"));
    assert!(err(&["calls", "list", "--status", "weird"]).contains("--status"));
    let today = &c["started_at_utc"].as_str().unwrap()[..10];
    let none = rec.cmd(&["calls", "list", "--json", "--until", today]);
    assert_eq!(none.trim(), "[]");
    assert!(err(&["calls", "show", "999"]).contains("no call with id 999"));
    rec.stop();
}
