//! A sidecar from the bucket, checked and turned into a hub call. The bucket is outside input: a
//! sidecar may be truncated, edited, from a newer layout, or put there by someone else. Every
//! field the index will hold is checked (format tag, types, ranges, SHA-256 hex, the ledger
//! entries' own hashes, the box key's fingerprint, and that its key is where its box, date and
//! call id say it must be); a bad one is refused with a reason, never indexed in part.
//!
//! This module must never panic on any input and never read or write anything but its argument.

use crate::archive::{object_stem, sidecar::FORMAT};
use crate::store::hub::{HubCall, HubObjects};
use crate::store::{ledger, CallMeta, Interval};
use serde::Deserialize;

/// A sidecar larger than this is refused unread (a real one is a few KiB; intervals and ledger
/// entries of a very long call stay far below).
pub const MAX_SIDECAR_BYTES: u64 = 4 << 20;

#[derive(Deserialize)]
struct Raw {
    format: String,
    box_id: String,
    call: RawCall,
    #[serde(default)]
    metrics: Option<serde_json::Value>,
    #[serde(default)]
    ledger: Vec<ledger::Entry>,
    #[serde(default)]
    box_key: Option<RawKey>,
    audio: RawObject,
    #[serde(default)]
    peaks: Option<RawObject>,
}

#[derive(Deserialize)]
struct RawCall {
    id: i64,
    box_id: String,
    seat_id: String,
    mode: String,
    status: String,
    started_at_utc: String,
    started_mono_ms: i64,
    ended_at_utc: Option<String>,
    duration_ms: i64,
    bytes: i64,
    sha256: Option<String>,
    dropped_frames: i64,
    rate_hz: i64,
    bitrate_bps: i64,
    agent: Option<String>,
    direction: Option<String>,
    remote_number: Option<String>,
    campaign: Option<String>,
    external_id: Option<String>,
    end_reason: Option<String>,
    note: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    intervals: Vec<RawInterval>,
}

#[derive(Deserialize)]
struct RawInterval {
    kind: String,
    start_ms: i64,
    end_ms: Option<i64>,
    by: Option<String>,
    reason: Option<String>,
}

#[derive(Deserialize)]
struct RawKey {
    fingerprint_sha256: String,
    public_pem: String,
}

#[derive(Deserialize)]
struct RawObject {
    key: String,
    sha256: String,
    bytes: u64,
}

/// A box id as the config allows it when `[archive]` is set: 1-64 of a-z, A-Z, 0-9, '-', '_'.
pub fn valid_box_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

fn is_utc(s: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

fn short(field: &str, v: &Option<String>, max: usize) -> Result<(), String> {
    match v {
        Some(s) if s.chars().count() > max || s.chars().any(char::is_control) => Err(format!(
            "call.{field} is longer than {max} characters or holds control characters"
        )),
        _ => Ok(()),
    }
}

/// Checks `bytes` (the object at `key`, listed with `etag`) against everything the hub relies
/// on, under the archive's `prefix`; the hub call it describes, or why not.
pub fn parse(bytes: &[u8], key: &str, etag: &str, prefix: &str) -> Result<HubCall, String> {
    if bytes.len() as u64 > MAX_SIDECAR_BYTES {
        return Err(format!(
            "{} bytes, more than a sidecar may have ({MAX_SIDECAR_BYTES})",
            bytes.len()
        ));
    }
    let raw: Raw = serde_json::from_slice(bytes).map_err(|e| format!("not a sidecar: {e}"))?;
    if raw.format != FORMAT {
        return Err(format!(
            "format {:?}, this hub reads {FORMAT:?}",
            raw.format.chars().take(64).collect::<String>()
        ));
    }
    let c = &raw.call;
    if !valid_box_id(&raw.box_id) {
        return Err("box_id must be 1-64 characters of a-z, A-Z, 0-9, '-', '_'".into());
    }
    if c.box_id != raw.box_id {
        return Err(format!(
            "call.box_id {:?} is not the sidecar's box {:?}",
            c.box_id.chars().take(64).collect::<String>(),
            raw.box_id
        ));
    }
    if c.id < 1 {
        return Err(format!("call.id {} is not a call id", c.id));
    }
    if !is_utc(&c.started_at_utc) {
        return Err("call.started_at_utc is not an RFC 3339 time".into());
    }
    if c.ended_at_utc.as_deref().is_some_and(|t| !is_utc(t)) {
        return Err("call.ended_at_utc is not an RFC 3339 time".into());
    }
    // The key must be where this box, date and call id put it: a sidecar copied under another
    // box's prefix (or another day) is not that box's call.
    let stem = object_stem(prefix, &raw.box_id, &c.started_at_utc, c.id)
        .ok_or("call.started_at_utc does not name a day")?;
    if key != format!("{stem}.json") {
        return Err(format!(
            "its key is not {stem}.json, where box {:?}'s call {} of that day belongs",
            raw.box_id, c.id
        ));
    }
    if raw.audio.key != format!("{stem}.opus") {
        return Err(format!("audio.key is not {stem}.opus"));
    }
    if !crate::hash::is_sha256_hex(&raw.audio.sha256) {
        return Err("audio.sha256 is not 64 lowercase hex digits".into());
    }
    if c.sha256.as_deref() != Some(raw.audio.sha256.as_str()) {
        return Err("call.sha256 is not audio.sha256".into());
    }
    if i64::try_from(raw.audio.bytes).ok() != Some(c.bytes) {
        return Err("call.bytes is not audio.bytes".into());
    }
    if let Some(p) = &raw.peaks {
        if p.key != format!("{stem}.dat") {
            return Err(format!("peaks.key is not {stem}.dat"));
        }
        if !crate::hash::is_sha256_hex(&p.sha256) {
            return Err("peaks.sha256 is not 64 lowercase hex digits".into());
        }
        if p.bytes > 64 << 20 {
            return Err("peaks.bytes is implausibly large".into());
        }
    }
    if !matches!(c.status.as_str(), "complete" | "interrupted") {
        return Err(format!(
            "call.status must be complete or interrupted (a finished call), not {:?}",
            c.status.chars().take(32).collect::<String>()
        ));
    }
    if !matches!(c.mode.as_str(), "control" | "vox" | "continuous") {
        return Err("call.mode must be control, vox or continuous".into());
    }
    if c.direction
        .as_deref()
        .is_some_and(|d| !matches!(d, "inbound" | "outbound"))
    {
        return Err("call.direction must be inbound or outbound".into());
    }
    if c.seat_id.is_empty() || c.seat_id.chars().count() > 128 {
        return Err("call.seat_id must be 1-128 characters".into());
    }
    for (n, v) in [
        ("agent", &c.agent),
        ("remote_number", &c.remote_number),
        ("campaign", &c.campaign),
        ("external_id", &c.external_id),
        ("end_reason", &c.end_reason),
    ] {
        short(n, v, 256)?;
    }
    short("note", &c.note, 4096)?;
    if c.duration_ms < 0 || c.dropped_frames < 0 || c.bytes < 0 || c.started_mono_ms < 0 {
        return Err(
            "call.duration_ms, bytes, dropped_frames and started_mono_ms must not be negative"
                .into(),
        );
    }
    if !crate::config::OPUS_RATES_HZ
        .iter()
        .any(|r| i64::from(*r) == c.rate_hz)
        || !(6000..=256_000).contains(&c.bitrate_bps)
    {
        return Err("call.rate_hz or call.bitrate_bps is not an encoder setting".into());
    }
    if c.tags.len() > 256
        || c.tags
            .iter()
            .any(|t| t.is_empty() || t.chars().count() > 128)
    {
        return Err("call.tags: at most 256 tags of 1-128 characters".into());
    }
    if c.intervals.len() > 100_000 {
        return Err("call.intervals: too many".into());
    }
    let mut intervals = Vec::with_capacity(c.intervals.len());
    for i in &c.intervals {
        if !matches!(i.kind.as_str(), "pause" | "gap")
            || i.start_ms < 0
            || i.end_ms.is_some_and(|e| e < i.start_ms)
        {
            return Err("call.intervals: kind pause or gap, 0 <= start_ms <= end_ms".into());
        }
        short("intervals.by", &i.by, 256)?;
        short("intervals.reason", &i.reason, 1024)?;
        intervals.push(Interval {
            kind: i.kind.clone(),
            start_ms: i.start_ms,
            end_ms: i.end_ms,
            by: i.by.clone(),
            reason: i.reason.clone(),
        });
    }
    for e in &raw.ledger {
        let problems = ledger::check_entry(e);
        if let Some(p) = problems.first() {
            return Err(format!("ledger entry {}: {p}", e.seq));
        }
        if e.call_id != c.id {
            return Err(format!("ledger entry {} is not call {}'s", e.seq, c.id));
        }
        if e.kind == "call" && e.file_sha256.as_deref() != Some(raw.audio.sha256.as_str()) {
            return Err(format!(
                "ledger entry {} commits to another file hash than audio.sha256",
                e.seq
            ));
        }
    }
    let box_key = match &raw.box_key {
        None => None,
        Some(k) => {
            let vk = crate::evidence::key::parse_public_pem(&k.public_pem)
                .map_err(|e| format!("box_key.public_pem: {e}"))?;
            let fp = crate::evidence::key::fingerprint(&vk).map_err(|e| format!("box_key: {e}"))?;
            if fp != k.fingerprint_sha256 {
                return Err("box_key.fingerprint_sha256 is not the key's fingerprint".into());
            }
            Some((fp, k.public_pem.clone()))
        }
    };
    if let Some(m) = &raw.metrics {
        if !m.is_object() && !m.is_null() {
            return Err("metrics must be an object".into());
        }
    }
    Ok(HubCall {
        box_id: raw.box_id.clone(),
        box_call_id: c.id,
        seat_id: c.seat_id.clone(),
        mode: c.mode.clone(),
        status: c.status.clone(),
        started_at_utc: c.started_at_utc.clone(),
        started_mono_ms: c.started_mono_ms,
        ended_at_utc: c.ended_at_utc.clone(),
        duration_ms: c.duration_ms,
        bytes: c.bytes,
        sha256: raw.audio.sha256.clone(),
        dropped_frames: c.dropped_frames,
        rate_hz: c.rate_hz,
        bitrate_bps: c.bitrate_bps,
        meta: CallMeta {
            agent: c.agent.clone(),
            direction: c.direction.clone(),
            remote_number: c.remote_number.clone(),
            campaign: c.campaign.clone(),
            external_id: c.external_id.clone(),
        },
        end_reason: c.end_reason.clone(),
        note: c.note.clone(),
        tags: c.tags.clone(),
        intervals,
        metrics: raw.metrics.clone().filter(|m| m.is_object()),
        ledger: raw.ledger.clone(),
        box_key,
        objects: HubObjects {
            box_id: raw.box_id.clone(),
            box_call_id: c.id,
            audio_key: raw.audio.key.clone(),
            audio_sha256: raw.audio.sha256.clone(),
            audio_bytes: raw.audio.bytes,
            peaks_key: raw.peaks.as_ref().map(|p| p.key.clone()),
            peaks_sha256: raw.peaks.as_ref().map(|p| p.sha256.clone()),
            peaks_bytes: raw.peaks.as_ref().map(|p| p.bytes),
        },
        sidecar_key: key.to_owned(),
        sidecar_etag: etag.to_owned(),
        sidecar_sha256: crate::hash::sha256_hex(bytes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> serde_json::Value {
        let sha = "ab".repeat(32);
        serde_json::json!({
            "format": FORMAT,
            "box_id": "floor-1",
            "call": {
                "id": 42, "box_id": "floor-1", "seat_id": "s1", "mode": "control",
                "status": "complete", "started_at_utc": "2026-12-05T10:00:00.000Z",
                "started_mono_ms": 1, "ended_at_utc": "2026-12-05T10:00:02.000Z",
                "duration_ms": 2000, "bytes": 1234, "sha256": sha, "dropped_frames": 0,
                "rate_hz": 16000, "bitrate_bps": 16000, "agent": "alice", "direction": "inbound",
                "remote_number": null, "campaign": null, "external_id": null,
                "rel_path": "calls/2026/12/05/42.opus", "end_reason": "stop", "note": null,
                "deleted_at_utc": null, "outcome": null, "tags": ["vip"],
                "intervals": [{"kind": "pause", "start_ms": 10, "end_ms": 20, "by": "cti", "reason": null}]
            },
            "metrics": null,
            "ledger": [],
            "box_key": null,
            "audio": {"key": "fleet/floor-1/2026/12/05/42.opus", "sha256": sha, "bytes": 1234},
            "peaks": {"key": "fleet/floor-1/2026/12/05/42.dat", "sha256": "cd".repeat(32), "bytes": 80}
        })
    }

    const KEY: &str = "fleet/floor-1/2026/12/05/42.json";

    fn try_parse(v: &serde_json::Value, key: &str) -> Result<HubCall, String> {
        parse(v.to_string().as_bytes(), key, "\"e\"", "fleet/")
    }

    #[test]
    fn a_good_sidecar_becomes_a_hub_call() -> Result<(), String> {
        let c = try_parse(&good(), KEY)?;
        assert_eq!((c.box_id.as_str(), c.box_call_id), ("floor-1", 42));
        assert_eq!(c.objects.audio_bytes, 1234);
        assert_eq!(c.tags, vec!["vip".to_owned()]);
        assert_eq!(c.intervals.len(), 1);
        assert_eq!(c.sidecar_sha256.len(), 64);
        Ok(())
    }

    /// Each way a sidecar can be wrong is refused with a reason naming what is wrong.
    #[test]
    fn bad_sidecars_are_refused_with_a_reason() {
        type Edit = Box<dyn Fn(&mut serde_json::Value)>;
        let cases: Vec<(Edit, &str, &str)> = vec![
            (Box::new(|v| v["format"] = "v0".into()), KEY, "format"),
            (
                Box::new(|v| v["call"]["box_id"] = "floor-2".into()),
                KEY,
                "box",
            ),
            (
                Box::new(|_| {}),
                "fleet/floor-2/2026/12/05/42.json",
                "its key",
            ),
            (
                Box::new(|_| {}),
                "fleet/floor-1/2026/12/06/42.json",
                "its key",
            ),
            (
                Box::new(|v| v["audio"]["sha256"] = "XYZ".into()),
                KEY,
                "audio.sha256",
            ),
            (
                Box::new(|v| v["call"]["sha256"] = "ef".repeat(32).into()),
                KEY,
                "call.sha256",
            ),
            (
                Box::new(|v| v["call"]["bytes"] = 1.into()),
                KEY,
                "call.bytes",
            ),
            (
                Box::new(|v| v["call"]["status"] = "recording".into()),
                KEY,
                "status",
            ),
            (Box::new(|v| v["call"]["mode"] = "x".into()), KEY, "mode"),
            (
                Box::new(|v| v["call"]["started_at_utc"] = "yesterday".into()),
                KEY,
                "started_at_utc",
            ),
            (
                Box::new(|v| v["call"]["id"] = "42".into()),
                KEY,
                "not a sidecar",
            ),
            (
                Box::new(|v| v["peaks"]["key"] = "elsewhere".into()),
                KEY,
                "peaks.key",
            ),
            (
                Box::new(|v| {
                    v["box_key"] =
                        serde_json::json!({"fingerprint_sha256": "00", "public_pem": "x"})
                }),
                KEY,
                "box_key",
            ),
        ];
        for (i, (edit, key, want)) in cases.iter().enumerate() {
            let mut v = good();
            edit(&mut v);
            let e = try_parse(&v, key).err().unwrap_or_default();
            assert!(e.contains(want), "case {i}: {e:?} should name {want}");
        }
        for junk in [&b""[..], b"{", b"null", b"\xff\xfe", b"[1,2]"] {
            assert!(parse(junk, KEY, "e", "fleet/").is_err());
        }
        let huge = vec![b' '; (MAX_SIDECAR_BYTES + 1) as usize];
        assert!(parse(&huge, KEY, "e", "fleet/").is_err_and(|e| e.contains("bytes")));
    }
}
