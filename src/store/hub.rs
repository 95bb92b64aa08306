//! The hub's own tables (`callrec hub`): which box call each hub call is, where its objects are
//! in the bucket, the box keys and ledger entries the sidecars carried, and the sidecars refused.
//!
//! A hub call is an ordinary `calls` row with the hub's own id (box call ids collide across
//! boxes), so search, QA, reports and users work on it unchanged; `hub_calls` links it to
//! `(box_id, box_call_id)`, which is what keeps hub ids (and every QA row on them) stable when a
//! sidecar is indexed again or the index is rebuilt from the bucket.
//!
//! This module must never take a value from a sidecar it was not handed already checked (the
//! `hub` module validates them), and never delete a `calls` row: QA rows may point at it.

use super::{ledger, Interval, StoreError};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

/// A call as a validated sidecar describes it.
#[derive(Debug, Clone)]
pub struct HubCall {
    pub box_id: String,
    pub box_call_id: i64,
    pub seat_id: String,
    pub mode: String,
    pub status: String,
    pub started_at_utc: String,
    pub started_mono_ms: i64,
    pub ended_at_utc: Option<String>,
    pub duration_ms: i64,
    pub bytes: i64,
    pub sha256: String,
    pub dropped_frames: i64,
    pub rate_hz: i64,
    pub bitrate_bps: i64,
    pub meta: super::CallMeta,
    pub end_reason: Option<String>,
    pub note: Option<String>,
    pub tags: Vec<String>,
    pub intervals: Vec<Interval>,
    /// The `dsp::talk::Metrics` document as the box stored it.
    pub metrics: Option<serde_json::Value>,
    pub ledger: Vec<ledger::Entry>,
    /// (fingerprint, public PEM) of the box key, when the sidecar names one.
    pub box_key: Option<(String, String)>,
    pub objects: HubObjects,
    pub sidecar_key: String,
    pub sidecar_etag: String,
    pub sidecar_sha256: String,
}

/// Where a hub call's objects are, and what they must hash to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HubObjects {
    pub box_id: String,
    pub box_call_id: i64,
    pub audio_key: String,
    pub audio_sha256: String,
    pub audio_bytes: u64,
    pub peaks_key: Option<String>,
    pub peaks_sha256: Option<String>,
    pub peaks_bytes: Option<u64>,
}

/// What indexing one sidecar did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Indexed {
    /// A new hub call with this id.
    New(i64),
    /// A known call whose sidecar changed (re-shipped): its row was rewritten, its id kept.
    Updated(i64),
    /// The same sidecar bytes under a new ETag: nothing to do but remember the ETag.
    Same(i64),
}

/// The hub call file's place under the storage dir: the audio cache (`hub::cache` fills it).
/// Unique per (box, box call), which `calls.rel_path UNIQUE` needs.
pub fn cache_rel_path(box_id: &str, box_call_id: i64) -> String {
    format!("cache/{box_id}/{box_call_id}.opus")
}

/// The ETag this sidecar key was last indexed (or refused) with, if any: an unchanged one is not
/// fetched again.
pub fn known_etag(conn: &Connection, sidecar_key: &str) -> Result<Option<String>, StoreError> {
    let indexed: Option<String> = conn
        .prepare_cached("SELECT sidecar_etag FROM hub_calls WHERE sidecar_key = ?1")?
        .query_row([sidecar_key], |r| r.get(0))
        .optional()?;
    if indexed.is_some() {
        return Ok(indexed);
    }
    Ok(conn
        .prepare_cached("SELECT etag FROM hub_rejected WHERE sidecar_key = ?1")?
        .query_row([sidecar_key], |r| r.get(0))
        .optional()?)
}

/// The columns of `calls` a sidecar sets, in the order of [`call_values`].
const CALL_COLUMNS: &str = "box_id, seat_id, mode, status, started_at_utc, started_mono_ms, \
     ended_at_utc, duration_ms, bytes, sha256, dropped_frames, rate_hz, bitrate_bps, agent, \
     direction, remote_number, campaign, external_id, end_reason, note, rel_path";
/// `?1, ?2, …` for [`CALL_COLUMNS`], numbered from `first`.
fn call_placeholders(first: usize) -> String {
    (first..first + CALL_VALUES)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}
const CALL_VALUES: usize = 21;

/// The values of [`CALL_COLUMNS`] for a call from a sidecar whose file is at `rel_path`.
pub(super) fn call_values<'a>(
    c: &'a HubCall,
    rel_path: &'a dyn rusqlite::ToSql,
) -> [&'a dyn rusqlite::ToSql; CALL_VALUES] {
    [
        &c.box_id,
        &c.seat_id,
        &c.mode,
        &c.status,
        &c.started_at_utc,
        &c.started_mono_ms,
        &c.ended_at_utc,
        &c.duration_ms,
        &c.bytes,
        &c.sha256,
        &c.dropped_frames,
        &c.rate_hz,
        &c.bitrate_bps,
        &c.meta.agent,
        &c.meta.direction,
        &c.meta.remote_number,
        &c.meta.campaign,
        &c.meta.external_id,
        &c.end_reason,
        &c.note,
        rel_path,
    ]
}

/// `INSERT … INTO calls` of [`CALL_COLUMNS`], with `id` first when `with_id`.
pub(super) fn insert_call_sql(verb: &str, with_id: bool) -> String {
    let (id_col, first) = if with_id { ("id, ", 2) } else { ("", 1) };
    let id_val = if with_id { "?1, " } else { "" };
    format!(
        "{verb} INTO calls ({id_col}{CALL_COLUMNS}) VALUES ({id_val}{})",
        call_placeholders(first)
    )
}

/// Inserts or updates the hub call of one sidecar, in one transaction.
pub fn upsert(conn: &Connection, c: &HubCall, now_utc: &str) -> Result<Indexed, StoreError> {
    let tx = conn.unchecked_transaction()?;
    let known: Option<(i64, String)> = tx
        .prepare_cached(
            "SELECT call_id, sidecar_sha256 FROM hub_calls WHERE box_id = ?1 AND box_call_id = ?2",
        )?
        .query_row(params![c.box_id, c.box_call_id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let rel_path = cache_rel_path(&c.box_id, c.box_call_id);
    let outcome = match known {
        Some((id, sha)) if sha == c.sidecar_sha256 => {
            tx.execute(
                "UPDATE hub_calls SET sidecar_etag = ?2, sidecar_key = ?3 WHERE call_id = ?1",
                params![id, c.sidecar_etag, c.sidecar_key],
            )?;
            Indexed::Same(id)
        }
        Some((id, _)) => {
            tx.execute(
                &format!(
                    "UPDATE calls SET ({CALL_COLUMNS}) = ({}) WHERE id = ?1",
                    call_placeholders(2)
                ),
                rusqlite::params_from_iter(
                    std::iter::once(&id as &dyn rusqlite::ToSql).chain(call_values(c, &rel_path)),
                ),
            )?;
            tx.execute("DELETE FROM call_tags WHERE call_id = ?1", [id])?;
            tx.execute("DELETE FROM call_intervals WHERE call_id = ?1", [id])?;
            tx.execute("DELETE FROM call_metrics WHERE call_id = ?1", [id])?;
            write_hub_row(&tx, id, c, now_utc, true)?;
            Indexed::Updated(id)
        }
        None => {
            tx.execute(
                &insert_call_sql("INSERT", false),
                call_values(c, &rel_path).as_slice(),
            )?;
            let id = tx.last_insert_rowid();
            write_hub_row(&tx, id, c, now_utc, false)?;
            Indexed::New(id)
        }
    };
    if !matches!(outcome, Indexed::Same(_)) {
        let id = match outcome {
            Indexed::New(id) | Indexed::Updated(id) | Indexed::Same(id) => id,
        };
        for t in &c.tags {
            tx.execute(
                "INSERT OR IGNORE INTO call_tags (call_id, tag) VALUES (?1, ?2)",
                params![id, t],
            )?;
        }
        for i in &c.intervals {
            tx.execute(
                "INSERT INTO call_intervals (call_id, kind, start_ms, end_ms, by, reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, i.kind, i.start_ms, i.end_ms, i.by, i.reason],
            )?;
        }
        if let Some(m) = &c.metrics {
            put_metrics_json(&tx, id, m)?;
        }
        for e in &c.ledger {
            let json = serde_json::to_string(e).unwrap_or_default();
            tx.execute(
                "INSERT OR REPLACE INTO hub_ledger (box_id, seq, box_call_id, entry_sha256, entry_json)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![c.box_id, e.seq, e.call_id, e.entry_sha256, json],
            )?;
        }
        if let Some((fp, pem)) = &c.box_key {
            tx.execute(
                "INSERT OR IGNORE INTO box_keys (box_id, fingerprint_sha256, public_pem, first_seen_at_utc)
                 VALUES (?1, ?2, ?3, ?4)",
                params![c.box_id, fp, pem, now_utc],
            )?;
        }
    }
    tx.execute(
        "DELETE FROM hub_rejected WHERE sidecar_key = ?1",
        [&c.sidecar_key],
    )?;
    tx.commit()?;
    Ok(outcome)
}

fn write_hub_row(
    tx: &Connection,
    id: i64,
    c: &HubCall,
    now_utc: &str,
    replace: bool,
) -> Result<(), StoreError> {
    let o = &c.objects;
    let sql = if replace {
        "UPDATE hub_calls SET box_id = ?2, box_call_id = ?3, audio_key = ?4, audio_sha256 = ?5,
             audio_bytes = ?6, peaks_key = ?7, peaks_sha256 = ?8, peaks_bytes = ?9, sidecar_key = ?10,
             sidecar_etag = ?11, sidecar_sha256 = ?12, indexed_at_utc = ?13 WHERE call_id = ?1"
    } else {
        "INSERT INTO hub_calls (call_id, box_id, box_call_id, audio_key, audio_sha256, audio_bytes,
             peaks_key, peaks_sha256, peaks_bytes, sidecar_key, sidecar_etag, sidecar_sha256,
             indexed_at_utc)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
    };
    tx.execute(
        sql,
        params![
            id,
            c.box_id,
            c.box_call_id,
            o.audio_key,
            o.audio_sha256,
            i64::try_from(o.audio_bytes).unwrap_or(i64::MAX),
            o.peaks_key,
            o.peaks_sha256,
            o.peaks_bytes.map(|b| i64::try_from(b).unwrap_or(i64::MAX)),
            c.sidecar_key,
            c.sidecar_etag,
            c.sidecar_sha256,
            now_utc
        ],
    )?;
    Ok(())
}

/// The metrics document into `call_metrics`: the searchable figures by name, the whole
/// document as `detail` (what `metrics::get` returns), as `metrics::put` lays them out.
pub(super) fn put_metrics_json(
    tx: &Connection,
    call_id: i64,
    m: &serde_json::Value,
) -> Result<(), StoreError> {
    // The loudest frames ride in the archive's document (`metrics::get_for_archive`): back to
    // their columns, and the document stored as the box stored it.
    let mut m = m.clone();
    let loudest = m
        .as_object_mut()
        .and_then(|o| o.remove(super::metrics::LOUDEST_KEY));
    let party = |p: &str| {
        loudest
            .as_ref()
            .and_then(|l| l.get(p))
            .and_then(serde_json::Value::as_f64)
    };
    let int = |k: &str| m.get(k).and_then(serde_json::Value::as_i64);
    let (Some(agent), Some(customer)) = (int("agent_talk_ms"), int("customer_talk_ms")) else {
        // Not the layout this version knows: no searchable figures rather than wrong ones.
        return Ok(());
    };
    tx.execute(
        "INSERT OR REPLACE INTO call_metrics (call_id, agent_talk_ms, customer_talk_ms, talk_ratio,
             dead_air_count, dead_air_total_ms, dead_air_longest_ms, overtalk_count, overtalk_total_ms,
             agent_interruptions, response_latency_mean_ms, response_latency_max_ms, longest_silence_ms, detail,
             agent_loudest_dbfs, customer_loudest_dbfs)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        params![
            call_id,
            agent,
            customer,
            m.get("talk_ratio").and_then(serde_json::Value::as_f64),
            int("dead_air_count").unwrap_or(0),
            int("dead_air_total_ms").unwrap_or(0),
            int("dead_air_longest_ms").unwrap_or(0),
            int("overtalk_count").unwrap_or(0),
            int("overtalk_total_ms").unwrap_or(0),
            int("agent_interruptions").unwrap_or(0),
            int("response_latency_mean_ms"),
            int("response_latency_max_ms"),
            int("longest_silence_ms").unwrap_or(0),
            m.to_string(),
            party("agent"),
            party("customer")
        ],
    )?;
    Ok(())
}

/// Remembers a refused sidecar (and why) under its ETag.
pub fn reject(
    conn: &Connection,
    sidecar_key: &str,
    etag: &str,
    reason: &str,
    now_utc: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR REPLACE INTO hub_rejected (sidecar_key, etag, reason, seen_at_utc)
         VALUES (?1, ?2, ?3, ?4)",
        params![sidecar_key, etag, reason, now_utc],
    )?;
    Ok(())
}

/// The refused sidecars: (key, reason).
pub fn rejected(conn: &Connection) -> Result<Vec<(String, String)>, StoreError> {
    let mut st =
        conn.prepare("SELECT sidecar_key, reason FROM hub_rejected ORDER BY sidecar_key")?;
    let rows = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Hub calls per box: (box id, calls), by box id.
pub fn per_box(conn: &Connection) -> Result<Vec<(String, i64)>, StoreError> {
    let mut st =
        conn.prepare("SELECT box_id, count(*) FROM hub_calls GROUP BY box_id ORDER BY box_id")?;
    let rows = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Forgets every remembered ETag, so the next listing fetches every sidecar again (`callrec hub
/// rebuild`); the rows stay and are updated in place.
pub fn forget_etags(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch("UPDATE hub_calls SET sidecar_etag = ''; DELETE FROM hub_rejected;")?;
    Ok(())
}

/// A hub call's objects; None for a call that is not a hub call.
pub fn objects_of(conn: &Connection, call_id: i64) -> Result<Option<HubObjects>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT box_id, box_call_id, audio_key, audio_sha256, audio_bytes, peaks_key,
                 peaks_sha256, peaks_bytes FROM hub_calls WHERE call_id = ?1",
        )?
        .query_row([call_id], |r| {
            Ok(HubObjects {
                box_id: r.get(0)?,
                box_call_id: r.get(1)?,
                audio_key: r.get(2)?,
                audio_sha256: r.get(3)?,
                audio_bytes: u64::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
                peaks_key: r.get(5)?,
                peaks_sha256: r.get(6)?,
                peaks_bytes: r
                    .get::<_, Option<i64>>(7)?
                    .map(|b| u64::try_from(b).unwrap_or(0)),
            })
        })
        .optional()?)
}

/// One hub call as the archive names it: hub id, box, box call id, audio SHA-256, sidecar key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Known {
    pub call_id: i64,
    pub box_id: String,
    pub box_call_id: i64,
    pub audio_sha256: String,
    pub sidecar_key: String,
    pub sidecar_etag: String,
}

/// Every hub call, by box and box call id.
pub fn known(conn: &Connection) -> Result<Vec<Known>, StoreError> {
    let mut st = conn.prepare(
        "SELECT call_id, box_id, box_call_id, audio_sha256, sidecar_key, sidecar_etag FROM hub_calls
         ORDER BY box_id, box_call_id",
    )?;
    let rows = st
        .query_map([], |r| {
            Ok(Known {
                call_id: r.get(0)?,
                box_id: r.get(1)?,
                box_call_id: r.get(2)?,
                audio_sha256: r.get(3)?,
                sidecar_key: r.get(4)?,
                sidecar_etag: r.get(5)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// The box's ledger entries for one of its calls, as shipped (oldest first).
pub fn ledger_of(
    conn: &Connection,
    box_id: &str,
    box_call_id: i64,
) -> Result<Vec<ledger::Entry>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT entry_json FROM hub_ledger WHERE box_id = ?1 AND box_call_id = ?2 ORDER BY seq",
    )?;
    let texts: Vec<String> = st
        .query_map(params![box_id, box_call_id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(texts
        .iter()
        .filter_map(|t| serde_json::from_str(t).ok())
        .collect())
}

/// A box's public keys (fingerprint, PEM), first seen first.
pub fn box_keys(conn: &Connection, box_id: &str) -> Result<Vec<(String, String)>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT fingerprint_sha256, public_pem FROM box_keys WHERE box_id = ?1
         ORDER BY first_seen_at_utc, fingerprint_sha256",
    )?;
    let rows = st
        .query_map([box_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// The sidecar key and ETag a hub call was indexed from; None for a call that is not a hub call.
pub fn sidecar_of(conn: &Connection, call_id: i64) -> Result<Option<(String, String)>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT sidecar_key, sidecar_etag FROM hub_calls WHERE call_id = ?1")?
        .query_row([call_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// The newest entry of a box's ledger that the hub has seen (from its sidecars).
pub fn ledger_head(conn: &Connection, box_id: &str) -> Result<Option<ledger::Head>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT seq, entry_sha256 FROM hub_ledger WHERE box_id = ?1 ORDER BY seq DESC LIMIT 1",
        )?
        .query_row([box_id], |r| {
            Ok(ledger::Head {
                seq: r.get(0)?,
                entry_sha256: r.get(1)?,
            })
        })
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::{TempStore, TestResult};

    fn call(box_id: &str, box_call_id: i64, sha: &str) -> HubCall {
        HubCall {
            box_id: box_id.into(),
            box_call_id,
            seat_id: "s1".into(),
            mode: "control".into(),
            status: "complete".into(),
            started_at_utc: "2026-12-05T10:00:00.000Z".into(),
            started_mono_ms: 5,
            ended_at_utc: Some("2026-12-05T10:00:02.000Z".into()),
            duration_ms: 2000,
            bytes: 100,
            sha256: sha.into(),
            dropped_frames: 0,
            rate_hz: 16000,
            bitrate_bps: 16000,
            meta: crate::store::CallMeta {
                agent: Some("alice".into()),
                ..Default::default()
            },
            end_reason: Some("stop".into()),
            note: None,
            tags: vec!["vip".into()],
            intervals: Vec::new(),
            metrics: None,
            ledger: Vec::new(),
            box_key: None,
            objects: HubObjects {
                box_id: box_id.into(),
                box_call_id,
                audio_key: format!("f/{box_id}/2026/12/05/{box_call_id}.opus"),
                audio_sha256: sha.into(),
                audio_bytes: 100,
                peaks_key: None,
                peaks_sha256: None,
                peaks_bytes: None,
            },
            sidecar_key: format!("f/{box_id}/2026/12/05/{box_call_id}.json"),
            sidecar_etag: "\"e1\"".into(),
            sidecar_sha256: format!("side-{sha}"),
        }
    }

    /// The same box call id on two boxes gets two hub ids; the same sidecar again changes
    /// nothing; a re-shipped (changed) sidecar rewrites the row under the same hub id.
    #[test]
    fn hub_ids_are_per_box_call_and_stable() -> TestResult {
        let TempStore { dir: _dir, conn } = TempStore::new()?;
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let Indexed::New(x) = upsert(&conn, &call("floor-1", 7, &a), "t")? else {
            return Err("not new".into());
        };
        let Indexed::New(y) = upsert(&conn, &call("floor-2", 7, &a), "t")? else {
            return Err("not new".into());
        };
        assert_ne!(x, y);
        let mut again = call("floor-1", 7, &a);
        again.sidecar_etag = "\"e2\"".into();
        assert_eq!(upsert(&conn, &again, "t")?, Indexed::Same(x));
        assert_eq!(
            known_etag(&conn, &again.sidecar_key)?.as_deref(),
            Some("\"e2\"")
        );
        let mut changed = call("floor-1", 7, &b);
        changed.tags = vec!["disputed".into()];
        assert_eq!(upsert(&conn, &changed, "t")?, Indexed::Updated(x));
        let row = crate::store::get_call(&conn, x)?;
        assert_eq!(row.sha256.as_deref(), Some(b.as_str()));
        assert_eq!(row.tags, vec!["disputed".to_owned()]);
        assert_eq!(row.box_id, "floor-1");
        assert_eq!(
            objects_of(&conn, x)?.map(|o| o.audio_sha256),
            Some(b.clone())
        );
        assert_eq!(known(&conn)?.len(), 2);
        Ok(())
    }
}

/// A live hub call a legal hold may cover: what a hold matches on, and its audio object's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldCandidate {
    pub call_id: i64,
    pub agent: Option<String>,
    pub remote_number: Option<String>,
    pub audio_key: String,
}

/// The live hub calls (objects not removed) that `scope` may cover: the call of a call hold,
/// the agent's calls, or every call with a number for a number range (the caller matches the
/// range with `holds::Hold::covers`, which compares digits).
pub fn hold_candidates(
    conn: &Connection,
    scope: &super::holds::Scope,
) -> Result<Vec<HoldCandidate>, StoreError> {
    use super::holds::Scope;
    let base = "SELECT c.id, c.agent, c.remote_number, h.audio_key FROM calls c
                JOIN hub_calls h ON h.call_id = c.id
                WHERE c.status IN ('complete', 'interrupted')";
    let (sql, arg): (String, Option<rusqlite::types::Value>) = match scope {
        Scope::Call { call_id } => (format!("{base} AND c.id = ?1"), Some((*call_id).into())),
        Scope::Agent { agent } => (
            format!("{base} AND c.agent = ?1"),
            Some(agent.clone().into()),
        ),
        Scope::Numbers { .. } => (format!("{base} AND c.remote_number IS NOT NULL"), None),
    };
    let mut st = conn.prepare(&sql)?;
    let row = |r: &rusqlite::Row| {
        Ok(HoldCandidate {
            call_id: r.get(0)?,
            agent: r.get(1)?,
            remote_number: r.get(2)?,
            audio_key: r.get(3)?,
        })
    };
    let rows = match arg {
        Some(a) => st.query_map([a], row)?.collect::<Result<_, _>>()?,
        None => st.query_map([], row)?.collect::<Result<_, _>>()?,
    };
    Ok(rows)
}
