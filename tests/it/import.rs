//! `callrec import`: legacy recordings made by real tools (sox, ffmpeg, opusenc) into a fresh
//! store, checked by tools nobody here wrote (opusinfo, ffprobe, sqlite3).
//!
//! The first runs drive the library entry point `callrec::import::run` (the CLI form is noted
//! beside each, `// CLI:`); the re-import runs the `callrec import` binary itself.

use crate::common::{check_opus_file, decode, integrity_ok, tone_dbfs};
use callrec::config::Config;
use callrec::import::{self, sidecar::ColumnMap, ImportRequest, ImportSummary, Outcome};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

fn run_tool(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sox(args: &[&str]) {
    run_tool(Command::new("sox").args(args));
}

fn ffmpeg(args: &[&str]) {
    run_tool(
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y"])
            .args(args),
    );
}

fn config(root: &Path) -> Config {
    let text = format!(
        "[box]\nid = \"import-box\"\n[storage]\ndir = \"{}\"\n",
        root.join("store").display()
    );
    let path = root.join("callrec.toml");
    std::fs::write(&path, &text).unwrap();
    Config::parse(&text, &path).expect("minimal config parses")
}

struct Fixtures {
    dir: PathBuf,
    sidecar: PathBuf,
}

/// A legacy folder: µ-law WAV, stereo MP3, 24-bit FLAC, Ogg Opus, Ogg Vorbis, a WAV cut in half,
/// a text file named .wav, a copy of the FLAC under another name, and a CSV sidecar.
fn make_folder(root: &Path) -> Fixtures {
    let dir = root.join("legacy");
    let sub = dir.join("2019");
    std::fs::create_dir_all(&sub).unwrap();
    let p = |n: &str| dir.join(n).display().to_string();
    // 8 kHz µ-law, mono (the old recorder's mix), 3 s.
    sox(&[
        "-n",
        "-r",
        "8000",
        "-c",
        "1",
        "-e",
        "u-law",
        &p("ulaw.wav"),
        "synth",
        "3",
        "sine",
        "440",
        "gain",
        "-6",
    ]);
    // 44.1 kHz stereo MP3, 4 s: agent (left) 500 Hz tone, customer (right) 1700 Hz tone.
    let tmp = root.join("stereo-src.wav");
    sox(&[
        "-n",
        "-r",
        "44100",
        "-c",
        "2",
        "-b",
        "16",
        tmp.to_str().unwrap(),
        "synth",
        "4",
        "sine",
        "500",
        "sine",
        "1700",
        "gain",
        "-6",
    ]);
    ffmpeg(&[
        "-i",
        tmp.to_str().unwrap(),
        "-c:a",
        "libmp3lame",
        "-b:a",
        "128k",
        &p("stereo.mp3"),
    ]);
    // 24-bit FLAC, 48 kHz stereo, 2 s, in a subfolder.
    sox(&[
        "-n",
        "-r",
        "48000",
        "-c",
        "2",
        "-b",
        "24",
        sub.join("hd.flac").to_str().unwrap(),
        "synth",
        "2",
        "pinknoise",
        "gain",
        "-12",
    ]);
    // The same FLAC again under another name: imported once.
    std::fs::copy(sub.join("hd.flac"), dir.join("hd-copy.flac")).unwrap();
    // Ogg Opus (opusenc, mono 16 kHz source), 2.5 s, and Ogg Vorbis (ffmpeg), 1.5 s.
    let mono = root.join("mono16.wav");
    sox(&[
        "-n",
        "-r",
        "16000",
        "-c",
        "1",
        "-b",
        "16",
        mono.to_str().unwrap(),
        "synth",
        "2.5",
        "sine",
        "300",
        "gain",
        "-6",
    ]);
    run_tool(
        Command::new("opusenc")
            .args(["--quiet", "--bitrate", "24"])
            .arg(&mono)
            .arg(p("voice.opus")),
    );
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=700:sample_rate=22050:duration=1.5",
        "-c:a",
        "libvorbis",
        &p("vorbis.ogg"),
    ]);
    // Truncated: the first half of a 4 s 16 kHz WAV. Its header still promises 4 s; the 2 s
    // that are there are imported, with a warning (the crash-recovery rule: keep what exists).
    let whole = root.join("whole.wav");
    sox(&[
        "-n",
        "-r",
        "16000",
        "-c",
        "1",
        "-b",
        "16",
        whole.to_str().unwrap(),
        "synth",
        "4",
        "sine",
        "350",
        "gain",
        "-6",
    ]);
    let bytes = std::fs::read(&whole).unwrap();
    std::fs::write(dir.join("cut.wav"), &bytes[..bytes.len() / 2]).unwrap();
    // Not audio at all.
    std::fs::write(
        dir.join("notes.wav"),
        "Call notes: customer called about the invoice.\n",
    )
    .unwrap();
    // A non-audio file in the folder is ignored (not tried).
    std::fs::write(dir.join("README.txt"), "exported 2019\n").unwrap();
    // The FLAC's start time comes from its mtime.
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_561_975_200); // 2019-07-01T10:00:00Z
    std::fs::File::options()
        .write(true)
        .open(sub.join("hd.flac"))
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    // Sidecar for two of them, with the old system's column names, ';'-separated.
    let sidecar = root.join("export.csv");
    std::fs::write(
        &sidecar,
        "filename;agent;ani;start_time;dir;queue;call_id\n\
         legacy/ulaw.wav;alice;+441632960001;2019-03-04 09:15:00;in;billing;OLD-1\n\
         stereo.mp3;bob;+441632960002;04/03/2019 10:20:30;out;sales;OLD-2\n",
    )
    .unwrap();
    Fixtures { dir, sidecar }
}

fn request(f: &Fixtures) -> ImportRequest {
    ImportRequest {
        paths: vec![f.dir.clone()],
        sidecar: Some(f.sidecar.clone()),
        columns: ColumnMap {
            file: Some("filename".into()),
            number: Some("ani".into()),
            started: Some("start_time".into()),
            direction: Some("dir".into()),
            campaign: Some("queue".into()),
            external_id: Some("call_id".into()),
            ..ColumnMap::default()
        },
        time_format: None,
        jobs: 2,
        actor: "test-importer".into(),
        ..ImportRequest::default()
    }
}

fn outcome<'a>(s: &'a ImportSummary, name: &str) -> &'a Outcome {
    &s.files
        .iter()
        .find(|r| r.path.ends_with(name))
        .unwrap_or_else(|| panic!("{name} missing from the summary: {s}"))
        .outcome
}

fn call_id(s: &ImportSummary, name: &str) -> i64 {
    match outcome(s, name) {
        Outcome::Imported {
            call_id: Some(id), ..
        } => *id,
        other => panic!("{name} was not imported: {other:?}\n{s}"),
    }
}

#[test]
fn mixed_legacy_folder_is_imported_once() {
    let root = tempfile::tempdir().unwrap();
    let f = make_folder(root.path());
    let cfg = config(root.path());

    // 1. Dry run: everything is decoded and checked, nothing is written. The sidecar's second
    //    start time is not in a default layout: that file (and only that file) fails.
    // CLI: callrec --config C import legacy/ --sidecar export.csv --col-file=filename
    //      --col-number=ani --col-started=start_time --col-direction=dir --col-campaign=queue
    //      --col-external-id=call_id --jobs 2 --dry-run
    let mut dry = request(&f);
    dry.dry_run = true;
    let d = import::run(&cfg, &dry, false).unwrap();
    println!("{d}");
    assert!(d.dry_run);
    assert_eq!((d.imported, d.skipped, d.failed), (5, 1, 2), "{d}");
    match outcome(&d, "stereo.mp3") {
        Outcome::Failed { reason } => assert!(
            reason.contains("sidecar line 3") && reason.contains("--time-format"),
            "{reason}"
        ),
        other => panic!("stereo.mp3 must fail on its start time: {other:?}"),
    }
    match outcome(&d, "voice.opus") {
        Outcome::Imported {
            call_id,
            duration_ms,
            ..
        } => {
            assert_eq!(*call_id, None);
            assert!((*duration_ms as i64 - 2500).abs() <= 50, "{duration_ms}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        !cfg.storage.dir.exists(),
        "a dry run must not create the store"
    );

    // 2. The operator puts the sidecar in one layout and names it.
    // CLI: (as above, without --dry-run) --time-format '%d/%m/%Y %H:%M:%S'
    std::fs::write(
        &f.sidecar,
        "filename;agent;ani;start_time;dir;queue;call_id\n\
         legacy/ulaw.wav;alice;+441632960001;04/03/2019 09:15:00;in;billing;OLD-1\n\
         stereo.mp3;bob;+441632960002;04/03/2019 10:20:30;out;sales;OLD-2\n",
    )
    .unwrap();
    let mut req = request(&f);
    req.time_format = Some("%d/%m/%Y %H:%M:%S".into());
    let s = import::run(&cfg, &req, true).unwrap();
    println!("{s}");
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["imported"], 6, "{json:#}");
    assert!(json["files"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["outcome"] == "failed" && f["path"].as_str().unwrap().ends_with("notes.wav")));

    // The batch went through the bad files; the good ones are in.
    assert_eq!((s.imported, s.skipped, s.failed), (6, 1, 1), "{s}");
    assert!(s.sidecar_unmatched_lines.is_empty(), "{s}");
    match outcome(&s, "notes.wav") {
        Outcome::Failed { reason } => {
            assert!(reason.contains("not a supported audio file"), "{reason}")
        }
        other => panic!("notes.wav must fail: {other:?}"),
    }
    // Of the two identical FLACs, one is imported and the other skipped as a duplicate.
    let (kept, dropped) = match outcome(&s, "hd.flac") {
        Outcome::Imported { .. } => ("hd.flac", "hd-copy.flac"),
        _ => ("hd-copy.flac", "hd.flac"),
    };
    match outcome(&s, dropped) {
        // "same content as ..." while the other copy is still being encoded, or "already
        // imported as call N" once it is in.
        Outcome::Skipped { reason, .. } => assert!(
            reason.contains("same content as")
                || reason == &format!("already imported as call {}", call_id(&s, kept)),
            "{reason}"
        ),
        other => panic!("one FLAC copy must be skipped: {other:?}"),
    }
    assert!(s.ignored.iter().any(|p| p.ends_with("README.txt")), "{s}");
    match outcome(&s, "cut.wav") {
        Outcome::Imported { warnings, .. } => assert!(
            warnings.iter().any(|w| w.contains("source truncated")),
            "{warnings:?}"
        ),
        other => panic!("cut.wav must be imported with a warning: {other:?}"),
    }

    let db = cfg.db_path();
    integrity_ok(&db);
    let conn = callrec::store::open_ro(&db).unwrap();
    let expect = [
        ("ulaw.wav", 3000, "wave/pcm_mulaw"),
        ("stereo.mp3", 4000, "mp3/mp3"),
        (kept, 2000, "flac/flac"),
        ("voice.opus", 2500, "ogg/opus"),
        ("vorbis.ogg", 1500, "ogg/vorbis"),
        ("cut.wav", 2000, "wave/pcm_s16le"),
    ];
    for (name, ms, fmt) in expect {
        let id = call_id(&s, name);
        let c = callrec::store::get_call(&conn, id).unwrap();
        assert_eq!(c.status, "complete", "{name}");
        assert_eq!(c.mode, "control", "{name}");
        assert_eq!(c.seat_id, "import", "{name}");
        assert_eq!(c.box_id, "import-box");
        // A source below the box's 16 kHz is encoded at its own rate (8 kHz µ-law stays 8 kHz).
        let rate_hz = if name == "ulaw.wav" { 8000 } else { 16000 };
        assert_eq!(c.rate_hz, rate_hz, "{name}");
        // cut.wav holds 2 s minus its 44-byte header's share; everything else its full length.
        assert!(
            (c.duration_ms - ms).abs() <= 50,
            "{name}: row says {} ms, expected {ms}",
            c.duration_ms
        );
        assert!(
            c.tags.contains(&"imported".to_owned()),
            "{name}: {:?}",
            c.tags
        );
        assert!(
            c.tags.iter().any(|t| t.starts_with("source:")),
            "{name}: {:?}",
            c.tags
        );
        if let Outcome::Imported { source_format, .. } = outcome(&s, name) {
            assert!(
                source_format.starts_with(fmt.split('/').next().unwrap()),
                "{name}: {source_format}"
            );
        }
        let path = cfg.storage.dir.join(&c.rel_path);
        assert!(c.rel_path.starts_with("calls/"), "{}", c.rel_path);
        check_opus_file(&path, ms, 50);
        assert_eq!(
            crate::common::sha256sum(&path),
            c.sha256.clone().unwrap(),
            "{name}: file hash vs row"
        );
        assert_eq!(std::fs::metadata(&path).unwrap().len() as i64, c.bytes);
        assert!(path.with_extension("dat").exists(), "{name}: peaks");
        // Every imported call has its evidence-ledger entry and its imports row.
        let ledger: i64 = conn
            .query_row(
                "SELECT count(*) FROM ledger WHERE call_id = ?1 AND kind = 'call'",
                [id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(ledger, 1, "{name}: ledger entry");
        let (by, format): (String, String) = conn
            .query_row(
                "SELECT imported_by, source_format FROM imports WHERE call_id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(by, "test-importer");
        assert_eq!(format, fmt, "{name}");
    }
    // No temporary files left behind.
    let leftovers = Command::new("find")
        .arg(&cfg.storage.dir)
        .args(["-name", ".import-*"])
        .output()
        .unwrap();
    assert!(leftovers.stdout.is_empty(), "{:?}", leftovers);

    // Sidecar metadata landed; the file lives under the sidecar's date.
    let ulaw = callrec::store::get_call(&conn, call_id(&s, "ulaw.wav")).unwrap();
    assert_eq!(ulaw.meta.agent.as_deref(), Some("alice"));
    assert_eq!(ulaw.meta.remote_number.as_deref(), Some("+441632960001"));
    assert_eq!(ulaw.meta.direction.as_deref(), Some("inbound"));
    assert_eq!(ulaw.meta.campaign.as_deref(), Some("billing"));
    assert_eq!(ulaw.meta.external_id.as_deref(), Some("OLD-1"));
    assert_eq!(ulaw.started_at_utc, "2019-03-04T09:15:00.000Z");
    assert_eq!(
        ulaw.ended_at_utc.as_deref().map(|e| &e[..19]),
        Some("2019-03-04T09:15:03")
    );
    assert!(
        ulaw.rel_path.starts_with("calls/2019/03/04/"),
        "{}",
        ulaw.rel_path
    );
    assert!(
        ulaw.tags.contains(&"mono-mix".to_owned()),
        "{:?}",
        ulaw.tags
    );
    assert!(
        ulaw.tags.contains(&"source:wave/pcm_mulaw".to_owned()),
        "{:?}",
        ulaw.tags
    );
    let mp3 = callrec::store::get_call(&conn, call_id(&s, "stereo.mp3")).unwrap();
    assert_eq!(mp3.meta.agent.as_deref(), Some("bob"));
    assert_eq!(mp3.meta.direction.as_deref(), Some("outbound"));
    assert_eq!(mp3.started_at_utc, "2019-03-04T10:20:30.000Z");
    // Without a sidecar row the start time is the file's mtime.
    let flac = callrec::store::get_call(&conn, call_id(&s, kept)).unwrap();
    if kept == "hd.flac" {
        assert_eq!(flac.started_at_utc, "2019-07-01T10:00:00.000Z");
    }
    assert_eq!(flac.meta.agent, None);
    let cut = callrec::store::get_call(&conn, call_id(&s, "cut.wav")).unwrap();
    assert!(
        cut.tags.contains(&"source-damaged".to_owned()),
        "{:?}",
        cut.tags
    );
    assert!(cut.note.unwrap_or_default().contains("truncated"));

    // Channel mapping: the MP3's left channel (500 Hz) is the agent, the right (1700 Hz) the
    // customer, each well separated; the mono mix is in both channels.
    let (a, c) = decode(&cfg.storage.dir.join(&mp3.rel_path));
    let mid = |x: &[f32]| x[48_000..120_000].to_vec();
    assert!(tone_dbfs(&mid(&a), 500.0) > tone_dbfs(&mid(&a), 1700.0) + 30.0);
    assert!(tone_dbfs(&mid(&c), 1700.0) > tone_dbfs(&mid(&c), 500.0) + 30.0);
    let (a, c) = decode(&cfg.storage.dir.join(&ulaw.rel_path));
    assert!(tone_dbfs(&mid(&a), 440.0) > -20.0 && tone_dbfs(&mid(&c), 440.0) > -20.0);

    // One audit row for the batch (two batches ran), naming the actor.
    let audits: Vec<(String, String)> = conn
        .prepare("SELECT actor, detail FROM audit WHERE action = 'import' ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        audits.len(),
        1,
        "one batch so far (a dry run is not audited)"
    );
    assert_eq!(audits[0].0, "test-importer");
    let detail: serde_json::Value = serde_json::from_str(&audits[0].1).unwrap();
    assert_eq!(detail["imported"], 6);
    drop(conn);

    // The same folder again, through the CLI this time: nothing new; every good file is
    // "already imported as call N"; the text file fails again, so the exit status is non-zero.
    let out = Command::new(crate::common::bin())
        .arg("--config")
        .arg(root.path().join("callrec.toml"))
        .arg("import")
        .arg(&f.dir)
        .arg("--sidecar")
        .arg(&f.sidecar)
        .args([
            "--col-file=filename",
            "--col-number=ani",
            "--col-started=start_time",
            "--col-direction=dir",
            "--col-campaign=queue",
            "--col-external-id=call_id",
            "--time-format=%d/%m/%Y %H:%M:%S",
            "--jobs=2",
            "--json",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "one file failed: the exit status says so"
    );
    assert!(
        stderr.contains("1 file(s) could not be imported"),
        "{stderr}"
    );
    let again: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again["imported"], 0, "{again:#}");
    assert_eq!(
        again["failed"], 1,
        "only the text file fails again: {again:#}"
    );
    assert_eq!(again["skipped"], 7, "{again:#}");
    for (name, _, _) in expect {
        let id = call_id(&s, name);
        let r = again["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["path"].as_str().unwrap().ends_with(name))
            .unwrap();
        assert_eq!(r["outcome"], "skipped", "{name}: {r}");
        assert_eq!(r["call_id"], id, "{name}: {r}");
        assert_eq!(r["reason"], format!("already imported as call {id}"));
    }
    assert!(
        cfg.storage.dir.join("STORAGE-ID").exists(),
        "the store has its identity"
    );
    let conn = Connection::open(&db).unwrap();
    let calls: i64 = conn
        .query_row("SELECT count(*) FROM calls", [], |r| r.get(0))
        .unwrap();
    assert_eq!(calls, 6);
    let audits: i64 = conn
        .query_row(
            "SELECT count(*) FROM audit WHERE action = 'import'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(audits, 2);
    integrity_ok(&db);
}
