//! The archive as an attacker or an accident would meet it (harness: `fleet.rs`): objects
//! altered, removed or added behind the boxes' backs (`callrec archive verify` must name each),
//! a box key used against another box's prefix (the bucket policy of
//! `docs/archive-box-policy.json` must refuse it), and a byte flipped in flight by a proxy (the
//! store must refuse the upload and the shipper retry it).

use crate::common::Recorder;
use crate::fleet::*;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, PutPayload};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `callrec archive verify` with `args`: (exit code, JSON report).
fn verify(rec: &Recorder, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["archive", "verify", "--json"];
    all.extend_from_slice(args);
    let out = rec.try_cmd(&all);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

fn ship_all(rec: &Recorder, calls: u64) {
    let ship = Ship::start(rec);
    wait_status(rec, Duration::from_secs(60), "all archived", |s| {
        s["backlog"]["calls"] == 0
            && s["backlog"]["archived_calls"] == calls
            && s["backlog"]["ledger_entries_unshipped"] == 0
    });
    ship.stop();
}

fn key_of(rec: &Recorder, id: i64, ext: &str) -> String {
    let started = rec.call(id)["started_at_utc"].as_str().unwrap().to_owned();
    format!(
        "fleet/test-box/{}/{}/{}/{id}.{ext}",
        &started[..4],
        &started[5..7],
        &started[8..10]
    )
}

#[test]
fn archive_verify_names_missing_extra_and_altered_objects() {
    let _shared = OUTAGE.read().unwrap_or_else(|e| e.into_inner());
    let bucket = "verify";
    let mut rec = boxed(bucket, 3, SECRET, "");
    let ids = record_calls(&rec, &["s1", "s2", "s3"], 1200);
    ship_all(&rec, 3);

    let (code, clean) = verify(&rec, &[]);
    assert_eq!(code, 0, "{clean:#}");
    assert_eq!(clean["findings"], serde_json::json!([]));
    let b = &clean["boxes"][0];
    assert_eq!(b["box_id"], "test-box");
    assert_eq!(b["calls"], 3);
    assert_eq!(b["ledger_entries"], 3);
    assert_eq!(b["ledger_head_seq"], 3);
    let audio_bytes: i64 = ids
        .iter()
        .map(|i| rec.call(*i)["bytes"].as_i64().unwrap())
        .sum();
    assert!(b["bytes_hashed"].as_i64().unwrap() >= audio_bytes, "{b}");
    // --since after today's calls checks none of them; another box has nothing.
    let (code, later) = verify(&rec, &["--since", "2999-01-01"]);
    assert_eq!((code, later["boxes"][0]["calls"].clone()), (0, 0.into()));
    let (code, other) = verify(&rec, &["--box", "no-such-box"]);
    assert_eq!((code, other["boxes"].clone()), (0, serde_json::json!([])));

    // Behind the box's back: call 1's audio changed (one byte), call 2's peaks removed, and an
    // object nobody shipped.
    let s = client(bucket);
    let audio_key = key_of(&rec, ids[0], "opus");
    let mut audio = get(bucket, &audio_key);
    audio[100] ^= 0x01;
    let peaks_key = key_of(&rec, ids[1], "dat");
    let extra_key = "fleet/test-box/2026/01/01/999.opus";
    rt().block_on(async {
        s.put(&ObjPath::from(audio_key.as_str()), PutPayload::from(audio))
            .await
            .unwrap();
        s.delete(&ObjPath::from(peaks_key.as_str())).await.unwrap();
        s.put(&ObjPath::from(extra_key), PutPayload::from_static(b"x"))
            .await
            .unwrap();
    });
    let (code, found) = verify(&rec, &[]);
    assert_eq!(code, 1, "findings make the exit status 1: {found:#}");
    let mut got: Vec<(String, String)> = found["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_owned(),
                f["key"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    let mut want = vec![
        ("altered".to_owned(), audio_key.clone()),
        ("extra".to_owned(), extra_key.to_owned()),
        ("missing".to_owned(), peaks_key.clone()),
    ];
    want.sort();
    assert_eq!(got, want, "{found:#}");
    let altered = found["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "altered")
        .unwrap();
    assert!(
        altered["detail"]
            .as_str()
            .unwrap()
            .contains(rec.call(ids[0])["sha256"].as_str().unwrap()),
        "names the hash it expected: {altered}"
    );
    // The plain text names them too, one line each.
    let out = rec.try_cmd(&["archive", "verify"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("ALTERED test-box {audio_key}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("MISSING test-box {peaks_key}")),
        "{text}"
    );
    rec.stop();
}

fn box_client(bucket: &str, access: &str, secret: &str) -> AmazonS3 {
    AmazonS3Builder::new()
        .with_endpoint(&rgw().endpoint)
        .with_region("us-east-1")
        .with_bucket_name(bucket)
        .with_access_key_id(access)
        .with_secret_access_key(secret)
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .build()
        .unwrap()
}

/// The README's policy (docs/archive-box-policy.json) as one bucket policy: the hub's
/// statement once (the hub here is the test user that owns the bucket), the box statements once
/// per box.
fn fleet_policy(bucket: &str, boxes: &[&str]) -> String {
    let template =
        std::fs::read_to_string(crate::common::repo().join("docs/archive-box-policy.json"))
            .unwrap()
            .replace("BUCKET", bucket)
            .replace("PREFIX", "fleet/")
            .replace("user/HUB", "user/test");
    let v: Value = serde_json::from_str(&template).unwrap();
    let mut statements = Vec::new();
    for s in v["Statement"].as_array().unwrap() {
        let text = s.to_string();
        if !text.contains("user/BOX") {
            statements.push(s.clone());
            continue;
        }
        for b in boxes {
            let mut one: Value = serde_json::from_str(&text.replace("BOX", b)).unwrap();
            one["Sid"] = format!("{}{}", s["Sid"].as_str().unwrap(), b.replace('-', "")).into();
            statements.push(one);
        }
    }
    serde_json::json!({"Version": "2012-10-17", "Statement": statements}).to_string()
}

fn status_of(r: Result<object_store::PutResult, object_store::Error>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(object_store::Error::PermissionDenied { .. }) => "denied".into(),
        Err(e) => format!("{e}"),
    }
}

#[test]
fn archive_box_key_writes_only_under_its_own_prefix_and_never_deletes() {
    let _shared = OUTAGE.read().unwrap_or_else(|e| e.into_inner());
    let bucket = "least-privilege";
    let mut rec = boxed(bucket, 2, SECRET, "");
    rgw_sh(&[
        "user",
        "test-box",
        "test-box-key",
        "test-box-secret-0123456789",
    ]);
    rgw_sh(&[
        "user",
        "other-box",
        "other-box-key",
        "other-box-secret-0123456789",
    ]);
    let policy = rec.dir.path().join("policy.json");
    std::fs::write(&policy, fleet_policy(bucket, &["test-box", "other-box"])).unwrap();
    rgw_sh(&["policy", bucket, policy.to_str().unwrap()]);
    // The box ships with its own key only.
    write_creds_as(
        &rec.dir.path().join("credentials"),
        "test-box-key",
        "test-box-secret-0123456789",
    );
    let ids = record_calls(&rec, &["s1", "s2"], 1000);
    ship_all(&rec, 2);
    assert_archived_as_indexed(&rec, bucket, &ids);

    // Another box's object, written with that box's key.
    let other = box_client(bucket, "other-box-key", "other-box-secret-0123456789");
    let theirs = ObjPath::from("fleet/other-box/2026/12/05/1.opus");
    let original = b"other floor's evidence".to_vec();
    rt().block_on(other.put(&theirs, PutPayload::from(original.clone())))
        .unwrap();

    let mine = box_client(bucket, "test-box-key", "test-box-secret-0123456789");
    let own_key = ObjPath::from(key_of(&rec, ids[0], "opus").as_str());
    rt().block_on(async {
        // Read, overwrite or delete another box's object: refused.
        let read = mine.get(&theirs).await.map(|_| ());
        assert!(
            matches!(read, Err(object_store::Error::PermissionDenied { .. })),
            "read of another box's object: {read:?}"
        );
        let over = mine.put(&theirs, PutPayload::from_static(b"forged")).await;
        assert_eq!(status_of(over), "denied");
        let del = mine.delete(&theirs).await;
        assert!(
            matches!(del, Err(object_store::Error::PermissionDenied { .. })),
            "delete of another box's object: {del:?}"
        );
        // Its own objects: never deleted either, and the bucket is not listable.
        let del_own = mine.delete(&own_key).await;
        assert!(
            matches!(del_own, Err(object_store::Error::PermissionDenied { .. })),
            "delete of its own object: {del_own:?}"
        );
        use futures_util::StreamExt;
        let listed = mine.list(None).next().await;
        let listed = format!("{listed:?}");
        assert!(
            listed.contains("status: 403") && listed.contains("AccessDenied"),
            "listing the bucket: {listed}"
        );
    });
    // Orders (issue 13 item 4): the hub (the bucket owner here) writes under orders/<box>/;
    // a box lists and reads only its own, and cannot write orders for itself.
    let owner = client(bucket);
    let my_order = ObjPath::from("fleet/orders/test-box/000000000001-a.json");
    let their_order = ObjPath::from("fleet/orders/other-box/000000000001-b.json");
    rt().block_on(async {
        use futures_util::StreamExt;
        owner
            .put(&my_order, PutPayload::from_static(b"{}"))
            .await
            .unwrap();
        owner
            .put(&their_order, PutPayload::from_static(b"{}"))
            .await
            .unwrap();
        let mine_listed: Vec<_> = mine
            .list(Some(&ObjPath::from("fleet/orders/test-box")))
            .collect()
            .await;
        let keys: Vec<String> = mine_listed
            .into_iter()
            .map(|m| m.unwrap().location.to_string())
            .collect();
        assert_eq!(
            keys,
            vec![my_order.to_string()],
            "a box lists its own orders"
        );
        assert_eq!(
            mine.get(&my_order)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .as_ref(),
            b"{}"
        );
        let read = mine.get(&their_order).await.map(|_| ());
        assert!(
            matches!(read, Err(object_store::Error::PermissionDenied { .. })),
            "read of another box's order: {read:?}"
        );
        let listed = format!(
            "{:?}",
            mine.list(Some(&ObjPath::from("fleet/orders/other-box")))
                .next()
                .await
        );
        assert!(
            listed.contains("status: 403"),
            "listing another box's orders: {listed}"
        );
        let forged = mine
            .put(
                &ObjPath::from("fleet/orders/test-box/000000000002-c.json"),
                PutPayload::from_static(b"{}"),
            )
            .await;
        assert_eq!(status_of(forged), "denied", "a box writes no orders");
    });
    // Nothing changed: the other floor's object and this box's audio are as written.
    assert_eq!(get(bucket, theirs.as_ref()), original);
    assert_eq!(
        sha256_hex(&get(bucket, own_key.as_ref())),
        rec.call(ids[0])["sha256"].as_str().unwrap()
    );
    rec.stop();
}

fn write_creds_as(path: &Path, access: &str, secret: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(
        path,
        format!("[default]\naws_access_key_id = {access}\naws_secret_access_key = {secret}\n"),
    )
    .unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A TCP proxy in front of the gateway that flips one byte in the body of the first `flips`
/// PUT requests with a body of at least 1 KiB (HTTP/1.1 parsed just enough: request line,
/// Content-Length, body). Returns its endpoint and the count of bodies it changed.
fn corrupting_proxy(upstream: &str, flips: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let upstream = upstream.trim_start_matches("http://").to_owned();
    let flipped = Arc::new(AtomicUsize::new(0));
    let count = flipped.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(&upstream) else {
                continue;
            };
            let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let (mut from, mut to) = (s2, c2);
                let _ = std::io::copy(&mut from, &mut to);
                let _ = to.shutdown(std::net::Shutdown::Write);
            });
            let count = count.clone();
            std::thread::spawn(move || forward_requests(client, server, &count, flips));
        }
    });
    (endpoint, flipped)
}

fn forward_requests(
    mut client: TcpStream,
    mut server: TcpStream,
    flipped: &AtomicUsize,
    flips: usize,
) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        // The head of the next request.
        let head_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            match client.read(&mut chunk) {
                Ok(0) | Err(_) => {
                    let _ = server.shutdown(std::net::Shutdown::Write);
                    return;
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            match client.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        if head.starts_with("put ") && len >= 1024 && flipped.fetch_add(1, Ordering::SeqCst) < flips
        {
            buf[head_end + len / 2] ^= 0x20;
        }
        if server.write_all(&buf[..head_end + len]).is_err() {
            return;
        }
        buf.drain(..head_end + len);
    }
}

#[test]
fn archive_upload_changed_in_flight_is_refused_and_retried() {
    let _shared = OUTAGE.read().unwrap_or_else(|e| e.into_inner());
    let bucket = "in-flight";
    let (proxy, flipped) = corrupting_proxy(&rgw().endpoint, 2);
    let mut rec = boxed(bucket, 1, SECRET, "");
    // The same box, its endpoint now the proxy.
    let cfg = std::fs::read_to_string(&rec.cfg).unwrap();
    std::fs::write(&rec.cfg, cfg.replace(&rgw().endpoint, &proxy)).unwrap();
    let ids = record_calls(&rec, &["s1"], 1500);
    let ship = Ship::start(&rec);
    wait_status(
        &rec,
        Duration::from_secs(60),
        "archived after retries",
        |s| s["backlog"]["archived_calls"] == 1 && s["backlog"]["calls"] == 0,
    );
    ship.stop();
    assert!(
        flipped.load(Ordering::SeqCst) >= 2,
        "the proxy changed two uploads"
    );
    let log = ship_log(&rec);
    assert!(
        log.contains("corrupted in transit"),
        "the refusal is named in the shipper's log: {log}"
    );
    // What the store kept is exactly the recording: the changed bodies were refused.
    assert_archived_as_indexed(&rec, bucket, &ids);
    let (code, report) = verify(&rec, &[]);
    assert_eq!(code, 0, "{report:#}");
    rec.stop();
}
