//! The fleet's QA hub against a real object store (the harness is `fleet.rs`): two boxes with
//! different box ids record and ship calls into one bucket, `callrec hub` indexes both floors,
//! search filters by box, replay streams the archived bytes with Range passed through, a
//! corrupt sidecar is skipped with a log line, `hub rebuild` from the bucket alone gives the same
//! calls, and a backup of the hub's state restores with one command.

use crate::fleet::*;
use crate::webbox::PASSWORD;
use object_store::path::Path as ObjPath;
use object_store::ObjectStore;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn hub_cli(cfg: &std::path::Path, args: &[&str]) -> std::process::Output {
    crate::common::cli_with_stdin(cfg, args, "")
}

fn put(bucket: &str, key: &str, bytes: Vec<u8>) {
    rt().block_on(client(bucket).put(&ObjPath::from(key), bytes.into()))
        .unwrap();
}

/// (box, box call id, sha256) of a hub's calls: what must not depend on which hub indexed them.
fn identity(rows: &[(i64, String, i64, String, String)]) -> BTreeSet<(String, i64, String)> {
    rows.iter()
        .map(|r| (r.1.clone(), r.2, r.3.clone()))
        .collect()
}

#[test]
fn hub_indexes_two_floors_replays_ranges_rebuilds_and_restores() {
    let _shared = OUTAGE.read().unwrap_or_else(|e| e.into_inner());
    let bucket = "hub-fleet";
    rgw_sh(&["mkbucket", bucket]);
    let (mut a, mut b) = std::thread::scope(|s| {
        let a = s.spawn(|| box_named(bucket, "floor-a", 2));
        let b = box_named(bucket, "floor-b", 1);
        (a.join().unwrap(), b)
    });
    let (hub_dir, hub_cfg, port) = hub_config(bucket);
    let hub = hub_start(hub_dir, hub_cfg.clone(), port);
    assert!(!hub.admin_once.is_empty(), "the hub makes its first admin");
    // Calls on both floors (box call ids collide: both boxes start at 1).
    let (ids_a, ids_b) = std::thread::scope(|s| {
        let ia = s.spawn(|| record_calls(&a, &["s1", "s2"], 1500));
        let ib = record_calls(&b, &["s1"], 1500);
        (ia.join().unwrap(), ib)
    });
    assert!(
        ids_a.contains(&ids_b[0]),
        "ids collide across boxes: {ids_a:?} {ids_b:?}"
    );
    let (ship_a, ship_b) = (Ship::start(&a), Ship::start(&b));
    for (rec, n) in [(&a, 2), (&b, 1)] {
        wait_status(rec, Duration::from_secs(60), "archived", |s| {
            s["backlog"]["archived_calls"] == n
        });
    }
    let shipped_at = Instant::now();
    ship_a.stop();
    ship_b.stop();

    // 1. Both floors indexed within 60 s of the upload, with the hub's own ids.
    wait_hub_calls(&hub, 3, Duration::from_secs(60));
    let indexed_s = shipped_at.elapsed().as_secs_f64();
    eprintln!("hub: both floors indexed {indexed_s:.1} s after the last upload");
    let rows = hub_rows(&hub.db());
    let hub_ids: BTreeSet<i64> = rows.iter().map(|r| r.0).collect();
    assert_eq!(hub_ids.len(), 3, "three distinct hub ids: {rows:?}");
    // Every row's SHA-256 is its box's.
    for (_, box_id, box_call_id, sha, key) in &rows {
        let rec = if box_id == "floor-a" { &a } else { &b };
        assert_eq!(
            rec.call(*box_call_id)["sha256"].as_str(),
            Some(sha.as_str()),
            "{box_id} call {box_call_id}"
        );
        assert_eq!(sha256_hex(&get(bucket, key)), *sha, "{key}");
    }

    // 2. Search covers every floor; the box filter returns each floor's calls.
    hub.add_user("rita", "qa", &[]);
    let mut api = hub.login("rita", PASSWORD);
    for (floor, n) in [("floor-a", 2), ("floor-b", 1), ("floor-a,floor-b", 3)] {
        let r = api.get(&format!("/api/calls?box={floor}"));
        assert_eq!(r.status, 200, "{}", r.body_text());
        let v = r.json();
        let boxes: Vec<&str> = v["calls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["box_id"].as_str().unwrap())
            .collect();
        assert_eq!(boxes.len(), n, "box={floor}: {v}");
        assert!(
            boxes.iter().all(|b| floor.contains(b)),
            "box={floor}: {boxes:?}"
        );
    }
    let page = api.get("/calls?box=floor-b");
    assert_eq!(page.status, 200);
    let html = page.body_text();
    assert!(html.contains("<th>Box</th>") && html.contains(r#"<td class="box">floor-b</td>"#));
    assert!(!html.contains(r#"<td class="box">floor-a</td>"#));

    // 3. Replay: a Range GET through the hub returns exactly the object's slice (206).
    let (hub_id, box_id, box_call_id, sha, key) =
        rows.iter().find(|r| r.1 == "floor-a").cloned().unwrap();
    let object = get(bucket, &key);
    let len = object.len();
    assert!(len > 2000, "a 1.5 s call is a few kB: {len}");
    let t0 = Instant::now();
    let r = api.get_with(
        &format!("/api/calls/{hub_id}/audio"),
        &[("Range", "bytes=500-1499")],
    );
    let range_ms = t0.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(r.status, 206, "{}", r.body_text());
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 500-1499/{len}").as_str())
    );
    assert_eq!(r.body, object[500..1500], "the slice of the object");
    let r = api.get_with(
        &format!("/api/calls/{hub_id}/audio"),
        &[("Range", "bytes=-100")],
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, object[len - 100..]);
    let r = api.get_with(
        &format!("/api/calls/{hub_id}/audio"),
        &[("Range", format!("bytes={len}-").as_str())],
    );
    assert_eq!(r.status, 416);
    let r = api.get(&format!("/api/calls/{hub_id}/audio"));
    assert_eq!(r.status, 200);
    assert_eq!(
        sha256_hex(&r.body),
        sha,
        "the whole recording, byte for byte"
    );
    eprintln!("hub: a 1000-byte range through the hub took {range_ms:.1} ms (loopback)");
    // Peaks are the shipped .dat object; WAV reads the checked cached copy.
    let stem = key.trim_end_matches(".opus");
    let local_peaks = a.file_of(&a.call(box_call_id)).with_extension("dat");
    let r = api.get(&format!("/api/calls/{hub_id}/peaks.dat"));
    assert_eq!(r.status, 200, "{}", r.body_text());
    if local_peaks.exists() {
        assert_eq!(r.body, get(bucket, &format!("{stem}.dat")));
    }
    let r = api.get(&format!("/api/calls/{hub_id}/audio.wav"));
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(&r.body[..4], b"RIFF");
    let cached = hub
        .dir
        .path()
        .join(format!("store/cache/{box_id}/{box_call_id}.opus"));
    assert_eq!(
        sha256_hex(&std::fs::read(&cached).unwrap()),
        sha,
        "the cache holds the checked copy"
    );
    // Every listen audited, as on a box, naming the archive copy.
    let c =
        rusqlite::Connection::open_with_flags(hub.db(), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let plays: Vec<String> = c
        .prepare("SELECT detail FROM audit WHERE action = 'play' AND call_id = ?1")
        .unwrap()
        .query_map([hub_id], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    drop(c);
    assert_eq!(plays.len(), 1, "one play per session and call: {plays:?}");
    assert!(
        plays[0].contains("archive") && plays[0].contains("floor-a"),
        "{plays:?}"
    );

    // 4. A corrupt sidecar (and one copied under another box's prefix) is skipped with a log
    // line; nothing else changes.
    let today = chrono::Utc::now().format("%Y/%m/%d").to_string();
    let junk = format!("fleet/floor-a/{today}/999999.json");
    put(
        bucket,
        &junk,
        b"{\"format\": \"callrec-archive-sidecar-v1\", \"box_id\": ".to_vec(),
    );
    let stray = format!("fleet/floor-b/{today}/{box_call_id}.json");
    let stray = if rows
        .iter()
        .any(|r| format!("{}.json", r.4.trim_end_matches(".opus")) == stray)
    {
        format!("fleet/floor-b/{today}/888888.json")
    } else {
        stray
    };
    put(bucket, &stray, get(bucket, &format!("{stem}.json")));
    let t0 = Instant::now();
    while !(hub.log_text().contains(&format!("skipped sidecar {junk}"))
        && hub.log_text().contains(&format!("skipped sidecar {stray}")))
    {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no log line for the bad sidecars:\n{}",
            hub.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(2500)); // two more polls: nothing fetched twice
    assert_eq!(hub_rows(&hub.db()), rows, "bad sidecars index nothing");
    let logged = hub
        .log_text()
        .matches(&format!("skipped sidecar {junk}"))
        .count();
    assert_eq!(logged, 1, "an unchanged bad sidecar is not fetched again");
    // `hub status` names them, with why, and counts each floor's calls.
    let o = hub_cli(&hub_cfg, &["hub", "status", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let st: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        st["boxes"],
        serde_json::json!([{"box_id": "floor-a", "calls": 2}, {"box_id": "floor-b", "calls": 1}])
    );
    let refused: BTreeSet<&str> = st["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        refused,
        BTreeSet::from([junk.as_str(), stray.as_str()]),
        "{st}"
    );
    assert!(
        st["rejected"].to_string().contains("its key is not"),
        "the stray's reason: {st}"
    );

    // 5. A re-shipped sidecar with other content updates its row under the same hub id.
    let mut side: Value = serde_json::from_slice(&get(bucket, &format!("{stem}.json"))).unwrap();
    side["call"]["tags"] = serde_json::json!(["reshipped"]);
    put(
        bucket,
        &format!("{stem}.json"),
        serde_json::to_vec_pretty(&side).unwrap(),
    );
    let t0 = Instant::now();
    loop {
        let v = api.get(&format!("/api/calls/{hub_id}")).json();
        if v["call"]["tags"] == serde_json::json!(["reshipped"])
            || v["tags"] == serde_json::json!(["reshipped"])
        {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "row not updated: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(hub_rows(&hub.db()), rows, "same hub ids, same calls");
    let hub_dir_path = hub.dir.path().to_owned();

    // 5b. The replay figure (benches/RESULTS.md): an hour-long call (a 15 MB object with a
    // valid sidecar), started and then sought to 20 places in 64 KiB ranges (as a player asks),
    // first byte through the hub vs straight from the store.
    let bench_id = hour_long_call(&hub, bucket);
    let (hub_ms, direct_ms) = replay_latencies(&hub, &api, bucket, bench_id);
    let stats = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        (
            v[v.len() / 2],
            v[(v.len() * 95).div_ceil(100) - 1],
            v[v.len() - 1],
        )
    };
    let (h50, h95, hmax) = stats(&hub_ms[1..]);
    let (d50, d95, dmax) = stats(&direct_ms[1..]);
    eprintln!(
        "hub replay bench: start (bytes=0-) first byte: hub {:.1} ms, store {:.1} ms; \
         seeks (64 KiB ranges, n={}): hub p50 {h50:.1} / p95 {h95:.1} / max {hmax:.1} ms, \
         store p50 {d50:.1} / p95 {d95:.1} / max {dmax:.1} ms",
        hub_ms[0],
        direct_ms[0],
        hub_ms.len() - 1
    );
    assert!(
        hub_ms[0] <= 300.0 && h95 <= 300.0,
        "first byte through the hub over 300 ms: {hub_ms:?}"
    );
    let rows_before_stop = hub_rows(&hub.db());
    assert_eq!(rows_before_stop.len(), 4);

    // 6. The hub's state to the bucket: a snapshot while it runs; restore refused while it runs.
    let o = hub_cli(&hub_cfg, &["hub", "backup", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let snap: Value = serde_json::from_slice(&o.stdout).unwrap();
    let snap_key = snap["key"].as_str().unwrap().to_owned();
    assert!(snap_key.starts_with("fleet/hub/backup/") && snap_key.ends_with(".sqlite"));
    assert_eq!(
        sha256_hex(&get(bucket, &snap_key)),
        snap["sha256"].as_str().unwrap()
    );
    let o = hub_cli(&hub_cfg, &["hub", "restore-state"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("the hub is running"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    hub.add_user("late", "qa", &[]); // after the snapshot: the restore must not have it
                                     // Stop the hub (SIGTERM) but keep its directory: wait until it has exited (a zombie until
                                     // the WebBox reaps it when dropped, so its pid is never reused meanwhile).
    unsafe { libc::kill(hub.child.id() as i32, libc::SIGTERM) };
    let stat = format!("/proc/{}/stat", hub.child.id());
    let t0 = Instant::now();
    while std::fs::read_to_string(&stat)
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .map(|zombie| !zombie)
        .unwrap_or(false)
    {
        assert!(t0.elapsed() < Duration::from_secs(15), "hub did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    let dir = &hub.dir;
    assert_eq!(dir.path(), hub_dir_path);
    // A snapshot whose hash does not match its .sha256 is refused; the index stays.
    let bad_key = "fleet/hub/backup/29991231T235959Z.sqlite";
    put(bucket, bad_key, get(bucket, &snap_key));
    put(
        bucket,
        &format!("{bad_key}.sha256"),
        format!("{}  x\n", "0".repeat(64)).into_bytes(),
    );
    let o = hub_cli(&hub_cfg, &["hub", "restore-state"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not restored"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = hub_cli(
        &hub_cfg,
        &["hub", "restore-state", "--at", &snap_key, "--json"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let restored: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(restored["sha256"], snap["sha256"]);
    let users = String::from_utf8_lossy(&hub_cli(&hub_cfg, &["users", "list"]).stdout).into_owned();
    assert!(
        users.contains("rita") && !users.contains("late"),
        "the snapshot's users: {users}"
    );
    assert_eq!(
        hub_rows(&dir.path().join("store/callrec.db")),
        rows_before_stop
    );

    // 7. Rebuild: in place it keeps every hub id; from the bucket alone (a new, empty hub) it
    // yields the same calls.
    let o = hub_cli(&hub_cfg, &["hub", "rebuild", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["calls"], 4, "{r}");
    assert_eq!(r["pass"]["rejected"], 2, "the two bad sidecars again: {r}");
    assert_eq!(
        hub_rows(&dir.path().join("store/callrec.db")),
        rows_before_stop
    );
    let (fresh_dir, fresh_cfg, _) = hub_config(bucket);
    let o = hub_cli(&fresh_cfg, &["hub", "rebuild", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let fresh = hub_rows(&fresh_dir.path().join("store/callrec.db"));
    assert_eq!(
        identity(&fresh),
        identity(&rows_before_stop),
        "the same calls from the bucket alone"
    );
    drop(hub);
    a.stop();
    b.stop();
}

/// A valid sidecar and a 15 MB audio object (about an hour at the default encoder) on box
/// `floor-bench`, indexed by `hub`; returns its hub id.
fn hour_long_call(hub: &crate::webbox::WebBox, bucket: &str) -> i64 {
    let bytes = 15_000_000usize;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let audio: Vec<u8> = (0..bytes)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let sha = sha256_hex(&audio);
    let now = chrono::Utc::now();
    let started = now.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let stem = format!("fleet/floor-bench/{}/1", now.format("%Y/%m/%d"));
    put(bucket, &format!("{stem}.opus"), audio);
    let side = serde_json::json!({
        "format": "callrec-archive-sidecar-v1",
        "box_id": "floor-bench",
        "call": {
            "id": 1, "box_id": "floor-bench", "seat_id": "s1", "mode": "control",
            "status": "complete", "started_at_utc": started, "started_mono_ms": 0,
            "ended_at_utc": null, "duration_ms": 3_600_000, "bytes": bytes, "sha256": sha,
            "dropped_frames": 0, "rate_hz": 16000, "bitrate_bps": 16000, "agent": "bench",
            "direction": null, "remote_number": null, "campaign": null, "external_id": null,
            "end_reason": "stop", "note": null, "tags": [], "intervals": []
        },
        "metrics": null, "ledger": [], "box_key": null,
        "audio": {"key": format!("{stem}.opus"), "sha256": sha, "bytes": bytes},
        "peaks": null
    });
    put(
        bucket,
        &format!("{stem}.json"),
        serde_json::to_vec(&side).unwrap(),
    );
    let n = hub_rows(&hub.db()).len();
    wait_hub_calls(hub, n + 1, Duration::from_secs(30));
    hub_rows(&hub.db())
        .into_iter()
        .find(|r| r.1 == "floor-bench")
        .map(|r| r.0)
        .unwrap()
}

/// Milliseconds to the first body byte: [0] is the start of playback (`bytes=0-`, then cut),
/// the rest are 64 KiB ranges at 20 offsets spread over the object; through the hub (as the
/// logged-in `api` session) and straight from the store. Every body is checked against the
/// object's bytes.
fn replay_latencies(
    hub: &crate::webbox::WebBox,
    api: &crate::webbox::Session,
    bucket: &str,
    hub_id: i64,
) -> (Vec<f64>, Vec<f64>) {
    use futures_util::StreamExt;
    use std::io::Read;
    let rows = hub_rows(&hub.db());
    let key = rows
        .iter()
        .find(|r| r.0 == hub_id)
        .map(|r| r.4.clone())
        .unwrap();
    let object = get(bucket, &key);
    let len = object.len() as u64;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let cookie = format!("callrec_session={}", api.cookie.clone().unwrap());
    let store = client(bucket);
    let rt = rt();
    let mut ranges = vec![(0u64, 65_535u64)];
    ranges.extend((1..=20u64).map(|i| {
        let first = (i * 7_919_993) % (len - 65_536);
        (first, first + 65_535)
    }));
    let (mut via_hub, mut direct) = (Vec::new(), Vec::new());
    for (i, (first, last)) in ranges.into_iter().enumerate() {
        let header = if i == 0 {
            "bytes=0-".to_owned()
        } else {
            format!("bytes={first}-{last}")
        };
        let t0 = Instant::now();
        let mut r = agent
            .get(hub.url(&format!("/api/calls/{hub_id}/audio")))
            .header("cookie", &cookie)
            .header("range", &header)
            .call()
            .unwrap();
        let mut rd = r.body_mut().as_reader();
        let mut got = vec![0u8; 1];
        rd.read_exact(&mut got).unwrap();
        via_hub.push(t0.elapsed().as_secs_f64() * 1000.0);
        if i > 0 {
            rd.read_to_end(&mut got).unwrap();
            assert_eq!(
                got,
                object[first as usize..=last as usize],
                "range {header}"
            );
        }
        drop(rd);
        assert_eq!(r.status(), 206, "{header}");
        let t0 = Instant::now();
        let g = rt
            .block_on(store.get_opts(
                &ObjPath::from(key.as_str()),
                object_store::GetOptions {
                    range: Some((first..last + 1).into()),
                    ..Default::default()
                },
            ))
            .unwrap();
        let mut s = g.into_stream();
        let chunk = rt.block_on(s.next()).unwrap().unwrap();
        direct.push(t0.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(
            chunk[..],
            object[first as usize..first as usize + chunk.len()]
        );
        rt.block_on(async { while s.next().await.is_some() {} });
    }
    (via_hub, direct)
}
