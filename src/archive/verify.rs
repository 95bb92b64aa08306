//! `callrec archive verify`: proves from the bucket alone that the archive holds what the boxes
//! recorded. For each box it rebuilds the shipped ledger from its segments (every link and entry
//! hash recomputed, as `store::ledger::scan_chain` does for a box's own index), then re-hashes
//! every archived object (streamed, never held whole in memory) against its sidecar and the
//! ledger, and lists what is missing, extra or altered.
//!
//! This module only reads the bucket: it must never write, overwrite or delete an object, and
//! never trust a sidecar (bucket content is outside input: a bad one is a finding, not a panic).

use super::sidecar::ObjectRef;
use super::{describe_store_error, ArchiveError, Credentials};
use crate::config::ArchiveConfig;
use crate::store::ledger::{self, Entry};
use futures_util::StreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectMeta, ObjectStore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// What to check: one box or all, and only calls started on or after a date.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub box_id: Option<String>,
    /// `YYYY-MM-DD` (UTC): calls started before it are skipped; the ledger is checked whole.
    pub since: Option<String>,
}

/// One finding. `kind`: `missing` (named by a sidecar or the shipped ledger, not in the bucket),
/// `extra` (in the bucket, named by nothing), `altered` (bytes differ from what the sidecar and
/// the ledger say), `ledger` (a broken chain), `sidecar` (unreadable or inconsistent sidecar).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub kind: &'static str,
    pub box_id: String,
    pub key: String,
    pub detail: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct BoxSummary {
    pub box_id: String,
    pub calls: u64,
    pub objects_hashed: u64,
    pub bytes_hashed: u64,
    pub ledger_entries: u64,
    pub ledger_head_seq: Option<i64>,
    /// Calls whose ledger entry is newer than the last shipped segment (the shipper cuts a
    /// segment at least every minute): checked against the sidecar's own copy only.
    pub ledger_pending: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub boxes: Vec<BoxSummary>,
    pub findings: Vec<Finding>,
}

/// The sidecar fields verification reads (`sidecar::Sidecar` is the writer's side).
#[derive(Debug, Deserialize)]
struct SidecarIn {
    format: String,
    box_id: String,
    call: CallIn,
    audio: ObjectRef,
    peaks: Option<ObjectRef>,
    #[serde(default)]
    ledger: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
struct CallIn {
    id: i64,
    sha256: Option<String>,
    started_at_utc: String,
}

/// Walks the bucket under `[archive] prefix` and checks what `scope` selects.
pub fn run(cfg: &ArchiveConfig, scope: &Scope) -> Result<Report, ArchiveError> {
    let creds = Credentials::load(&cfg.credentials_file)?;
    let store = super::client(cfg, &creds)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ArchiveError::Client(format!("starting a runtime: {e}")))?;
    let v = Verifier {
        store: &store,
        cfg,
        scope,
    };
    rt.block_on(v.run())
}

struct Verifier<'a> {
    store: &'a dyn ObjectStore,
    cfg: &'a ArchiveConfig,
    scope: &'a Scope,
}

impl Verifier<'_> {
    fn store_err(&self, e: &object_store::Error) -> ArchiveError {
        ArchiveError::Client(describe_store_error(
            e,
            &self.cfg.endpoint,
            &self.cfg.bucket,
        ))
    }

    async fn run(&self) -> Result<Report, ArchiveError> {
        let root = match &self.scope.box_id {
            Some(b) => format!("{}{b}/", self.cfg.prefix),
            None => self.cfg.prefix.clone(),
        };
        let mut by_box: BTreeMap<String, BTreeMap<String, ObjectMeta>> = BTreeMap::new();
        let prefix = (!root.is_empty()).then(|| ObjPath::from(root.as_str()));
        let mut list = self.store.list(prefix.as_ref());
        while let Some(m) = list.next().await {
            let m = m.map_err(|e| self.store_err(&e))?;
            let key = m.location.to_string();
            let Some(rest) = key.strip_prefix(self.cfg.prefix.as_str()) else {
                continue;
            };
            let Some((box_id, _)) = rest.split_once('/') else {
                continue;
            };
            if crate::config::RESERVED_ARCHIVE_NAMES.contains(&box_id) {
                continue;
            }
            by_box.entry(box_id.to_owned()).or_default().insert(key, m);
        }
        let mut report = Report::default();
        for (box_id, objects) in by_box {
            self.check_box(&box_id, objects, &mut report).await?;
        }
        Ok(report)
    }

    async fn check_box(
        &self,
        box_id: &str,
        mut objects: BTreeMap<String, ObjectMeta>,
        report: &mut Report,
    ) -> Result<(), ArchiveError> {
        let mut sum = BoxSummary {
            box_id: box_id.to_owned(),
            ..BoxSummary::default()
        };
        let finding = |kind, key: &str, detail: String| Finding {
            kind,
            box_id: box_id.to_owned(),
            key: key.to_owned(),
            detail,
        };
        let (entries, segment_keys) = self.shipped_ledger(box_id, &objects, report).await?;
        for k in &segment_keys {
            objects.remove(k);
        }
        sum.ledger_entries = entries.len() as u64;
        sum.ledger_head_seq = entries.keys().next_back().copied();
        for p in chain_problems(&entries) {
            report
                .findings
                .push(finding("ledger", &format!("{box_id}/ledger/"), p));
        }
        // The shipped ledger's last word on each call: its call entry, unless a tombstone
        // (an erasure or retention deletion) came after it.
        let mut ledgered: BTreeMap<i64, &Entry> = BTreeMap::new();
        for e in entries.values() {
            match e.kind.as_str() {
                "call" => {
                    ledgered.insert(e.call_id, e);
                }
                _ => {
                    ledgered.remove(&e.call_id);
                }
            }
        }
        let sidecars: Vec<String> = objects
            .keys()
            .filter(|k| k.ends_with(".json") && !k.contains("/ledger/"))
            .cloned()
            .collect();
        let mut seen_calls = BTreeSet::new();
        for key in sidecars {
            objects.remove(&key);
            let Some(side) = self.sidecar(box_id, &key, report).await? else {
                continue;
            };
            seen_calls.insert(side.call.id);
            if !self.in_scope(&side.call.started_at_utc) {
                for o in [Some(&side.audio), side.peaks.as_ref()]
                    .into_iter()
                    .flatten()
                {
                    objects.remove(&o.key);
                }
                continue;
            }
            sum.calls += 1;
            let shipped = ledgered.get(&side.call.id).copied();
            let own = side.ledger.iter().find(|e| e.kind == "call");
            match (shipped, own) {
                (Some(s), Some(o)) if s.entry_sha256 != o.entry_sha256 => {
                    report.findings.push(finding(
                        "altered",
                        &key,
                        format!(
                            "the sidecar's ledger entry (seq {}) differs from the shipped ledger's",
                            o.seq
                        ),
                    ));
                }
                (None, Some(o)) if sum.ledger_head_seq.is_none_or(|h| o.seq > h) => {
                    sum.ledger_pending += 1;
                }
                (None, _) => report.findings.push(finding(
                    "altered",
                    &key,
                    format!(
                        "call {} is not in the shipped ledger as a recorded call",
                        side.call.id
                    ),
                )),
                _ => {}
            }
            let ledger_sha = shipped.or(own).and_then(|e| e.file_sha256.clone());
            if ledger_sha.as_deref() != Some(side.audio.sha256.as_str())
                || side.call.sha256.as_deref() != Some(side.audio.sha256.as_str())
            {
                report.findings.push(finding(
                    "altered",
                    &key,
                    format!(
                        "the sidecar's audio SHA-256 {} is not the call's ({:?}) or the ledger's ({ledger_sha:?})",
                        side.audio.sha256, side.call.sha256
                    ),
                ));
            }
            for o in [Some(&side.audio), side.peaks.as_ref()]
                .into_iter()
                .flatten()
            {
                match objects.remove(&o.key) {
                    None => report.findings.push(finding(
                        "missing",
                        &o.key,
                        format!("named by {key}, not in the bucket"),
                    )),
                    Some(_) => {
                        sum.objects_hashed += 1;
                        sum.bytes_hashed += o.bytes;
                        if let Some(d) = self.rehash(o).await? {
                            report.findings.push(finding("altered", &o.key, d));
                        }
                    }
                }
            }
        }
        for (call_id, e) in &ledgered {
            if seen_calls.contains(call_id) {
                continue;
            }
            let started = serde_json::from_str::<serde_json::Value>(&e.detail)
                .ok()
                .and_then(|d| d["started_at_utc"].as_str().map(str::to_owned))
                .unwrap_or_default();
            if self.in_scope(&started) {
                report.findings.push(finding(
                    "missing",
                    &format!("{}{box_id}/…/{call_id}.json", self.cfg.prefix),
                    format!(
                        "call {call_id} (started {started}) is in the shipped ledger (seq {}) but has no sidecar",
                        e.seq
                    ),
                ));
            }
        }
        for key in objects.keys() {
            report.findings.push(finding(
                "extra",
                key,
                "named by no sidecar and no ledger segment (an upload in flight, or put there by hand)".into(),
            ));
        }
        report.boxes.push(sum);
        Ok(())
    }

    fn in_scope(&self, started_at_utc: &str) -> bool {
        match &self.scope.since {
            Some(d) => started_at_utc.get(..10).is_some_and(|s| s >= d.as_str()),
            None => true,
        }
    }

    /// Every entry of the box's shipped segments by seq (overlapping segments must agree),
    /// and the segments' keys.
    async fn shipped_ledger(
        &self,
        box_id: &str,
        objects: &BTreeMap<String, ObjectMeta>,
        report: &mut Report,
    ) -> Result<(BTreeMap<i64, Entry>, Vec<String>), ArchiveError> {
        let dir = format!("{}{box_id}/ledger/", self.cfg.prefix);
        let keys: Vec<String> = objects
            .keys()
            .filter(|k| k.starts_with(&dir) && k.ends_with(".jsonl"))
            .cloned()
            .collect();
        let mut entries: BTreeMap<i64, Entry> = BTreeMap::new();
        for key in &keys {
            let body = self.get(key).await?;
            for (n, line) in body.split(|b| *b == b'\n').enumerate() {
                if line.is_empty() {
                    continue;
                }
                let e: Entry = match serde_json::from_slice(line) {
                    Ok(e) => e,
                    Err(err) => {
                        report.findings.push(Finding {
                            kind: "ledger",
                            box_id: box_id.to_owned(),
                            key: key.clone(),
                            detail: format!("line {}: not a ledger entry: {err}", n + 1),
                        });
                        continue;
                    }
                };
                if let Some(prev) = entries.get(&e.seq) {
                    if prev.entry_sha256 != e.entry_sha256 {
                        report.findings.push(Finding {
                            kind: "ledger",
                            box_id: box_id.to_owned(),
                            key: key.clone(),
                            detail: format!(
                                "entry {} differs from the same entry in an earlier segment",
                                e.seq
                            ),
                        });
                    }
                    continue;
                }
                entries.insert(e.seq, e);
            }
        }
        Ok((entries, keys))
    }

    /// The sidecar at `key`, or None with a finding when it cannot be trusted.
    async fn sidecar(
        &self,
        box_id: &str,
        key: &str,
        report: &mut Report,
    ) -> Result<Option<SidecarIn>, ArchiveError> {
        let body = self.get(key).await?;
        let bad = |detail: String| Finding {
            kind: "sidecar",
            box_id: box_id.to_owned(),
            key: key.to_owned(),
            detail,
        };
        let side: SidecarIn = match serde_json::from_slice(&body) {
            Ok(s) => s,
            Err(e) => {
                report.findings.push(bad(format!("not a sidecar: {e}")));
                return Ok(None);
            }
        };
        let stem = key.trim_end_matches(".json");
        let problem = if side.format != super::sidecar::FORMAT {
            Some(format!("unknown format {:?}", side.format))
        } else if side.box_id != box_id {
            Some(format!(
                "names box {:?} but sits under {box_id}/",
                side.box_id
            ))
        } else if side.audio.key != format!("{stem}.opus") {
            Some(format!("names audio {:?}, not {stem}.opus", side.audio.key))
        } else if side
            .peaks
            .as_ref()
            .is_some_and(|p| p.key != format!("{stem}.dat"))
        {
            Some(format!("names peaks outside {stem}.dat"))
        } else if !stem.ends_with(&format!("/{}", side.call.id)) {
            Some(format!("is for call {}, not {stem}", side.call.id))
        } else {
            None
        };
        match problem {
            Some(p) => {
                report.findings.push(bad(p));
                Ok(None)
            }
            None => Ok(Some(side)),
        }
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, ArchiveError> {
        let path = ObjPath::from(key);
        let r = self
            .store
            .get(&path)
            .await
            .map_err(|e| self.store_err(&e))?;
        let b = r.bytes().await.map_err(|e| self.store_err(&e))?;
        Ok(b.to_vec())
    }

    /// Streams the object through SHA-256; Some(why) when size or hash differ from `o`.
    async fn rehash(&self, o: &ObjectRef) -> Result<Option<String>, ArchiveError> {
        let path = ObjPath::from(o.key.as_str());
        let r = self
            .store
            .get(&path)
            .await
            .map_err(|e| self.store_err(&e))?;
        let mut stream = r.into_stream();
        let (mut h, mut n) = (Sha256::new(), 0u64);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.store_err(&e))?;
            n += chunk.len() as u64;
            h.update(&chunk);
        }
        let sha = hex::encode(h.finalize());
        Ok((n != o.bytes || sha != o.sha256).then(|| {
            format!(
                "{n} bytes with SHA-256 {sha}; the sidecar says {} bytes, {}",
                o.bytes, o.sha256
            )
        }))
    }
}

/// Breaks in the shipped chain: a gap in seq from 1, a wrong link, an entry whose hash does not
/// match its contents (the same checks as `ledger::scan_chain`, over entries from the bucket).
fn chain_problems(entries: &BTreeMap<i64, Entry>) -> Vec<String> {
    let mut out = Vec::new();
    let (mut expected_seq, mut expected_prev) = (1i64, ledger::GENESIS.to_owned());
    for e in entries.values() {
        if e.seq != expected_seq {
            out.push(format!(
                "entries {expected_seq}..{} are not in any shipped segment",
                e.seq - 1
            ));
        } else if e.prev_sha256 != expected_prev {
            out.push(format!(
                "entry {}: prev_sha256 does not match entry {}'s hash",
                e.seq,
                e.seq - 1
            ));
        }
        for p in ledger::check_entry(e) {
            out.push(format!("entry {}: {p}", e.seq));
        }
        expected_seq = e.seq + 1;
        expected_prev = e.entry_sha256.clone();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: i64, prev: &str, kind: &str) -> Entry {
        let mut e = Entry {
            seq,
            kind: kind.into(),
            call_id: seq,
            file_sha256: (kind == "call").then(|| "ab".repeat(32)),
            detail: "{}".into(),
            prev_sha256: prev.into(),
            entry_sha256: String::new(),
            at_utc: "2026-12-05T10:00:00.000Z".into(),
        };
        e.entry_sha256 = ledger::entry_hash(&e);
        e
    }

    #[test]
    fn a_shipped_chain_with_a_gap_or_an_edit_is_reported() {
        let e1 = entry(1, ledger::GENESIS, "call");
        let e2 = entry(2, &e1.entry_sha256, "call");
        let e3 = entry(3, &e2.entry_sha256, "tombstone");
        let whole: BTreeMap<i64, Entry> = [e1.clone(), e2.clone(), e3.clone()]
            .map(|e| (e.seq, e))
            .into();
        assert_eq!(chain_problems(&whole), Vec::<String>::new());

        let gap: BTreeMap<i64, Entry> = [e1.clone(), e3.clone()].map(|e| (e.seq, e)).into();
        assert_eq!(
            chain_problems(&gap),
            vec!["entries 2..2 are not in any shipped segment".to_owned()]
        );

        let mut edited = e2.clone();
        edited.detail = r#"{"agent":"someone else"}"#.into();
        let bad: BTreeMap<i64, Entry> = [e1, edited, e3].map(|e| (e.seq, e)).into();
        let p = chain_problems(&bad);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("entry 2: contents do not match"), "{p:?}");
    }
}
