//! Orders from the fleet's hub to a box (issue 13 item 4): the protocol, and the box's half.
//!
//! **Objects.** The hub publishes each order for each box that holds a copy as
//! `<prefix>orders/<box>/<seq>-<order-id>.json` (seq zero-padded to 12 digits, so key order is
//! application order). The object is an [`Envelope`]: the order's JSON text as `body`, its
//! Ed25519 signature (RFC 8032) by the hub's key, and that key's fingerprint. The hub's public
//! key is `<prefix>hub/hub.pub`. A box answers with an ack, `<prefix><box>/acks/<order-id>.json`,
//! an envelope signed by the box key, saying what it removed or held (box file, box index rows)
//! or why it refused (a local legal hold against an erasure).
//!
//! **Trust.** Only the hub's store user may write under `orders/` and `hub/`
//! (docs/archive-box-policy.json); a box may only list and read its own `orders/<box>/`. On top
//! of that, a box applies an order only when its signature verifies with the hub key it pinned:
//! fetched from `<prefix>hub/hub.pub` the first time an order is seen, then kept in
//! `hub_key_pin` (trust on first use; a later different key is refused, logged, until an admin
//! re-pins). An order whose signature, layout, box or sequence number is wrong is refused,
//! logged, and remembered with its ETag (`box_orders_refused`); it never stops the others.
//!
//! **Applying.** In sequence order, each order once (`box_orders`; a re-read object, a restart
//! or a box offline for a day that comes back all apply every pending order exactly once):
//! a hold goes into the box's own `legal_holds` (as `hub:<admin>`), so local retention, the
//! disk guard and the shipper's object legal holds follow it; a release releases that hold
//! (four eyes checked at the hub and again by the box's triggers); an erasure deletes the named
//! calls' recordings and scrubs their rows as `callrec erase` does (`store::lifecycle`), or is
//! refused whole when a local hold covers one. The box never deletes an archive object: the
//! hub does that.
//!
//! This module must never apply an order whose signature it did not verify, never apply one
//! twice, never write to the bucket outside `<prefix><box>/acks/`, and never delete an object.

use super::s3x::{S3Error, S3x};
use crate::evidence::key::{self, BoxKey};
use crate::store::holds::{self, Scope};
use crate::store::lifecycle::{self, Deletion, DeletionKind, LifecycleError};
use crate::store::orders::{self as sql, BoxOrder};
use crate::store::StoreError;
use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// First field of an order body; a new layout gets a new tag.
pub const ORDER_FORMAT: &str = "callrec-order-v1";
/// First field of an ack body.
pub const ACK_FORMAT: &str = "callrec-order-ack-v1";

#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("object store: {0}")]
    S3(#[from] S3Error),
    #[error("the hub's public key {key}: {detail}")]
    HubKey { key: String, detail: String },
}

/// A signed object: an order (signed by the hub) or an ack (signed by a box).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    /// The JSON text that was signed, exactly.
    pub body: String,
    /// Ed25519 over the bytes of `body`, hex.
    pub signature_hex: String,
    /// SHA-256 of the signer's DER public key (as `callrec key show` prints it).
    pub key_fingerprint_sha256: String,
}

/// What an order asks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum What {
    /// Place a legal hold; a `call` scope names the call by its id on this box.
    Hold {
        hub_hold_id: i64,
        scope: Scope,
        reason: String,
    },
    /// Release the hold that hold order `hub_hold_id` placed.
    Release { hub_hold_id: i64, reason: String },
    /// Erase these calls (ids on this box): recordings deleted, personal fields scrubbed.
    Erase {
        request_reference: String,
        box_call_ids: Vec<i64>,
    },
}

impl What {
    pub fn kind(&self) -> &'static str {
        match self {
            What::Hold { .. } => "hold",
            What::Release { .. } => "release",
            What::Erase { .. } => "erase",
        }
    }
}

/// An order's body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Order {
    pub format: String,
    pub seq: i64,
    pub order_id: String,
    pub box_id: String,
    /// The hub admin who made it (checked at the hub: password, role, four eyes).
    pub made_by: String,
    pub made_at_utc: String,
    #[serde(flatten)]
    pub what: What,
}

/// An ack's body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ack {
    pub format: String,
    pub order_id: String,
    pub seq: i64,
    pub box_id: String,
    pub kind: String,
    /// `applied`, or `refused` (with why in `detail`).
    pub outcome: String,
    pub detail: String,
    pub applied_at_utc: String,
    /// The box's own legal hold a hold order placed or a release released.
    #[serde(default)]
    pub box_hold_id: Option<i64>,
    /// Recordings deleted here (file hash, ledger tombstone), as an erasure receipt lists them.
    #[serde(default)]
    pub deleted_recordings: Vec<serde_json::Value>,
    /// Rows whose recordings were already gone: personal fields scrubbed.
    #[serde(default)]
    pub scrubbed_rows: Vec<i64>,
    /// Named calls this box does not have.
    #[serde(default)]
    pub not_on_box: Vec<i64>,
    #[serde(default)]
    pub ledger_head_sha256: Option<String>,
}

/// `<prefix>orders/<box>/`: where a box finds its orders.
pub fn orders_prefix(prefix: &str, box_id: &str) -> String {
    format!("{prefix}orders/{box_id}/")
}

/// The object of one order for one box.
pub fn order_key(prefix: &str, box_id: &str, seq: i64, order_id: &str) -> String {
    format!("{prefix}orders/{box_id}/{seq:012}-{order_id}.json")
}

/// `(seq, order id)` from an order object's key, or None for any other key.
pub fn parse_order_key(orders_prefix: &str, key: &str) -> Option<(i64, String)> {
    let name = key.strip_prefix(orders_prefix)?.strip_suffix(".json")?;
    let (seq, id) = name.split_once('-')?;
    let ok_id = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (seq.len() == 12 && ok_id)
        .then(|| seq.parse().ok())
        .flatten()
        .map(|s| (s, id.to_owned()))
}

/// Where a box writes its ack of one order.
pub fn ack_key(prefix: &str, box_id: &str, order_id: &str) -> String {
    format!("{prefix}{box_id}/acks/{order_id}.json")
}

/// Where the hub publishes its public key.
pub fn hub_key_object(prefix: &str) -> String {
    format!("{prefix}hub/hub.pub")
}

/// Signs `body` (serialized here, once) into an envelope's JSON text.
pub fn seal(key: &BoxKey, body: &impl Serialize) -> String {
    let body = serde_json::to_string_pretty(body).unwrap_or_default();
    let env = Envelope {
        signature_hex: hex::encode(key.sign(body.as_bytes())),
        key_fingerprint_sha256: key.fingerprint_sha256().to_owned(),
        body,
    };
    let mut text = serde_json::to_string_pretty(&env).unwrap_or_default();
    text.push('\n');
    text
}

/// The body of an envelope whose signature verifies with `public_pem`; otherwise why not.
pub fn open(envelope_text: &str, fingerprint: &str, public_pem: &str) -> Result<String, String> {
    let env: Envelope =
        serde_json::from_str(envelope_text).map_err(|e| format!("not a signed envelope: {e}"))?;
    if env.key_fingerprint_sha256 != fingerprint {
        return Err(format!(
            "signed by key {}, not the pinned key {fingerprint}",
            env.key_fingerprint_sha256
        ));
    }
    let vk = key::parse_public_pem(public_pem).map_err(|e| format!("the pinned key: {e}"))?;
    let sig = hex::decode(&env.signature_hex).map_err(|_| "signature is not hex".to_owned())?;
    if !key::verify_signature(&vk, env.body.as_bytes(), &sig) {
        return Err("the signature does not verify with the pinned key".to_owned());
    }
    Ok(env.body)
}

/// What one poll did on a box.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Poll {
    pub applied: usize,
    pub refused: usize,
    pub acked: usize,
}

/// The box's half, run by the shipper every `archive.orders_poll_s`: lists its orders, applies
/// the new ones in order, and writes the acks not yet written.
pub fn poll(
    conn: &Connection,
    s3: &S3x,
    prefix: &str,
    box_id: &str,
    storage_dir: &Path,
    box_key: &BoxKey,
    now_utc: &str,
) -> Result<Poll, OrderError> {
    let mut out = Poll::default();
    let op = orders_prefix(prefix, box_id);
    let mut pending = Vec::new();
    for (k, etag) in s3.list(&op)? {
        let Some((seq, order_id)) = parse_order_key(&op, &k) else {
            continue;
        };
        if sql::box_applied(conn, &order_id)?
            || sql::refused_etag(conn, &k)?.as_deref() == Some(&etag)
        {
            continue;
        }
        pending.push((seq, order_id, k, etag));
    }
    pending.sort();
    if !pending.is_empty() {
        let (fp, pem) = pinned_hub_key(conn, s3, prefix, now_utc)?;
        for (seq, order_id, k, etag) in pending {
            let text = s3.get_text(&k)?;
            let order = match read_order(&text, &fp, &pem, box_id, seq, &order_id) {
                Ok(o) => o,
                Err(why) => {
                    tracing::error!(object = k, "orders: refused an order object: {why}");
                    crate::store::audit::append(
                        conn,
                        &crate::store::audit::Event {
                            actor: "orders",
                            action: "order.refused",
                            call_id: None,
                            detail: serde_json::json!({"object": k, "reason": why}),
                            ip: None,
                        },
                    )?;
                    sql::refuse(conn, &k, &etag, &why, now_utc)?;
                    out.refused += 1;
                    continue;
                }
            };
            let rec = apply(conn, storage_dir, &order, &k, now_utc)?;
            tracing::info!(
                order_id = rec.order_id,
                kind = rec.kind,
                outcome = rec.outcome,
                "orders: applied an order from the hub"
            );
            out.applied += 1;
        }
    }
    for o in sql::box_unacked(conn)? {
        let ack: serde_json::Value =
            serde_json::from_str(&o.ack_json).unwrap_or(serde_json::Value::Null);
        s3.put(
            &ack_key(prefix, box_id, &o.order_id),
            seal(box_key, &ack).as_bytes(),
            "application/json",
        )?;
        sql::mark_box_acked(conn, &o.order_id, now_utc)?;
        out.acked += 1;
    }
    Ok(out)
}

/// The pinned hub key, pinning the published one the first time (module docs).
fn pinned_hub_key(
    conn: &Connection,
    s3: &S3x,
    prefix: &str,
    now_utc: &str,
) -> Result<(String, String), OrderError> {
    if let Some(p) = sql::hub_key(conn)? {
        return Ok(p);
    }
    let obj = hub_key_object(prefix);
    let pem = s3.get_text(&obj)?;
    let bad = |detail: String| OrderError::HubKey {
        key: obj.clone(),
        detail,
    };
    let vk = key::parse_public_pem(&pem).map_err(|e| bad(e.to_string()))?;
    let fp = key::fingerprint(&vk).map_err(|e| bad(e.to_string()))?;
    sql::pin_hub_key(conn, &fp, &pem, now_utc)?;
    tracing::info!(
        fingerprint_sha256 = fp,
        "orders: pinned the hub's public key"
    );
    Ok((fp, pem))
}

/// An order object checked: signature, layout, and that it is this box's order `seq`.
fn read_order(
    text: &str,
    fp: &str,
    pem: &str,
    box_id: &str,
    seq: i64,
    order_id: &str,
) -> Result<Order, String> {
    let body = open(text, fp, pem)?;
    let o: Order = serde_json::from_str(&body).map_err(|e| format!("not an order: {e}"))?;
    if o.format != ORDER_FORMAT {
        return Err(format!("unknown order format {:?}", o.format));
    }
    if o.box_id != box_id || o.seq != seq || o.order_id != order_id {
        return Err(format!(
            "the order is #{} {} for box {}, but its key says #{seq} {order_id} for box {box_id}",
            o.seq, o.order_id, o.box_id
        ));
    }
    Ok(o)
}

/// Applies one verified order and remembers it with its ack body (module docs).
fn apply(
    conn: &Connection,
    storage_dir: &Path,
    o: &Order,
    object_key: &str,
    now_utc: &str,
) -> Result<BoxOrder, OrderError> {
    let mut ack = Ack {
        format: ACK_FORMAT.to_owned(),
        order_id: o.order_id.clone(),
        seq: o.seq,
        box_id: o.box_id.clone(),
        kind: o.what.kind().to_owned(),
        outcome: "applied".to_owned(),
        detail: String::new(),
        applied_at_utc: now_utc.to_owned(),
        box_hold_id: None,
        deleted_recordings: Vec::new(),
        scrubbed_rows: Vec::new(),
        not_on_box: Vec::new(),
        ledger_head_sha256: None,
    };
    let mut hub_hold = None;
    match &o.what {
        What::Hold {
            hub_hold_id,
            scope,
            reason,
        } => {
            hub_hold = Some(*hub_hold_id);
            let reason = format!("{reason} (hub legal hold #{hub_hold_id})");
            // Placed by an earlier try that stopped before remembering the order: the same
            // hold, not a second one.
            let earlier: Option<i64> = conn
                .query_row(
                    "SELECT id FROM legal_holds WHERE placed_by = ?1 AND reason = ?2",
                    [holds::hub_actor(&o.made_by), reason.clone()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(StoreError::from)?;
            let placed = match earlier {
                Some(id) => Ok(id),
                None => holds::place_from_hub(conn, scope, &reason, &o.made_by, now_utc),
            };
            match placed {
                Ok(id) => {
                    ack.box_hold_id = Some(id);
                    ack.detail = format!("legal hold #{id} placed here");
                }
                Err(e) => refuse(&mut ack, e.to_string()),
            }
        }
        What::Release {
            hub_hold_id,
            reason,
        } => {
            hub_hold = Some(*hub_hold_id);
            match sql::box_hold_of(conn, *hub_hold_id)? {
                None => {
                    ack.detail = format!(
                        "hub legal hold #{hub_hold_id} was never placed here; nothing to release"
                    );
                }
                Some(id) => {
                    ack.box_hold_id = Some(id);
                    match holds::release_from_hub(conn, id, &o.made_by, reason, now_utc) {
                        Ok(_) => ack.detail = format!("legal hold #{id} released here"),
                        Err(holds::HoldError::AlreadyReleased(_)) => {
                            ack.detail = format!("legal hold #{id} was already released here")
                        }
                        Err(e) => refuse(&mut ack, e.to_string()),
                    }
                }
            }
        }
        What::Erase {
            request_reference,
            box_call_ids,
        } => erase(
            conn,
            storage_dir,
            o,
            request_reference,
            box_call_ids,
            now_utc,
            &mut ack,
        )?,
    }
    let rec = BoxOrder {
        order_id: o.order_id.clone(),
        seq: o.seq,
        kind: o.what.kind().to_owned(),
        object_key: object_key.to_owned(),
        hub_hold_id: hub_hold,
        box_hold_id: ack.box_hold_id,
        outcome: ack.outcome.clone(),
        ack_json: serde_json::to_string(&ack).unwrap_or_default(),
        applied_at_utc: now_utc.to_owned(),
        acked_at_utc: None,
    };
    sql::record_box_order(conn, &rec)?;
    crate::store::audit::append(
        conn,
        &crate::store::audit::Event {
            actor: &holds::hub_actor(&o.made_by),
            action: "order.apply",
            call_id: None,
            detail: serde_json::json!({"order_id": o.order_id, "seq": o.seq, "kind": rec.kind,
                "outcome": rec.outcome, "detail": ack.detail}),
            ip: None,
        },
    )?;
    Ok(rec)
}

fn refuse(ack: &mut Ack, why: String) {
    tracing::warn!(order_id = ack.order_id, "orders: refused here: {why}");
    ack.outcome = "refused".to_owned();
    ack.detail = why;
}

/// An erasure order on this box: the named calls' recordings and personal fields, as
/// `evidence::erasure` does for a local request (held calls refuse the whole order).
fn erase(
    conn: &Connection,
    storage_dir: &Path,
    o: &Order,
    reference: &str,
    ids: &[i64],
    now_utc: &str,
    ack: &mut Ack,
) -> Result<(), OrderError> {
    let (mut live, mut gone) = (Vec::new(), Vec::new());
    for &id in ids {
        let status: Option<crate::store::CallStatus> = conn
            .query_row("SELECT status FROM calls WHERE id = ?1", [id], |r| r.get(0))
            .optional()
            .map_err(StoreError::from)?;
        use crate::store::CallStatus as S;
        match status {
            None => ack.not_on_box.push(id),
            Some(S::Garbage | S::Deleted) => gone.push(id),
            Some(S::Recording) => {
                refuse(ack, format!("call {id} is still recording here"));
                return Ok(());
            }
            Some(S::Complete | S::Interrupted) => live.push(id),
        }
    }
    let actor = holds::hub_actor(&o.made_by);
    let reason = format!("erasure request {reference} (hub order {})", o.order_id);
    let d = Deletion {
        kind: DeletionKind::Erasure,
        reason: &reason,
        actor: &actor,
        now_utc,
    };
    let marked = match lifecycle::mark_garbage(conn, &live, &d) {
        Ok(m) => m,
        Err(LifecycleError::Store(e)) => return Err(e.into()),
        Err(e) => {
            // A local legal hold (or a call that started recording meanwhile): nothing changed.
            refuse(ack, e.to_string());
            return Ok(());
        }
    };
    lifecycle::scrub_rows(conn, &gone, &actor, now_utc)?;
    if let Err(e) = lifecycle::finish_garbage(conn, storage_dir, now_utc) {
        // The rows are marked; `callrec check --repair-garbage` (or the next retention run)
        // finishes the unlink. Say so in the ack rather than pretend.
        ack.detail = format!("files not all unlinked yet: {e}; ");
    }
    let _ = crate::store::empty_wal(conn, std::time::Duration::from_secs(10))?;
    ack.deleted_recordings = marked
        .calls
        .iter()
        .map(|c| serde_json::to_value(c).unwrap_or_default())
        .collect();
    ack.scrubbed_rows = gone;
    ack.ledger_head_sha256 = crate::store::ledger::head(conn)?.map(|h| h.entry_sha256);
    ack.detail.push_str(&format!(
        "deleted {} recording(s) and scrubbed {} already deleted row(s) here (deletion {})",
        marked.calls.len(),
        ack.scrubbed_rows.len(),
        marked.deletion_id
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_keys_sort_in_sequence_and_parse_back() {
        let p = orders_prefix("fleet/", "floor-1");
        let k9 = order_key("fleet/", "floor-1", 9, "abc");
        let k10 = order_key("fleet/", "floor-1", 10, "def");
        assert_eq!(k9, "fleet/orders/floor-1/000000000009-abc.json");
        assert!(k9 < k10, "zero-padded: key order is application order");
        assert_eq!(parse_order_key(&p, &k10), Some((10, "def".to_owned())));
        assert_eq!(parse_order_key(&p, "fleet/orders/floor-1/9-abc.json"), None);
        assert_eq!(
            parse_order_key(&p, "fleet/orders/floor-1/000000000009-a/b.json"),
            None
        );
        assert_eq!(
            parse_order_key(&p, "fleet/orders/floor-2/000000000009-abc.json"),
            None
        );
        assert_eq!(
            ack_key("fleet/", "floor-1", "abc"),
            "fleet/floor-1/acks/abc.json"
        );
    }

    #[test]
    fn an_order_opens_only_with_the_signing_key_and_unchanged() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let other = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (hub, _) = key::ensure(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let (forger, _) = key::ensure(other.path()).unwrap_or_else(|e| panic!("{e}"));
        let body = Order {
            format: ORDER_FORMAT.to_owned(),
            seq: 1,
            order_id: "o1".to_owned(),
            box_id: "floor-1".to_owned(),
            made_by: "ann".to_owned(),
            made_at_utc: "2026-12-05T10:00:00.000Z".to_owned(),
            what: What::Hold {
                hub_hold_id: 3,
                scope: Scope::Agent {
                    agent: "a-7".to_owned(),
                },
                reason: "matter 12".to_owned(),
            },
        };
        let (fp, pem) = (hub.fingerprint_sha256(), hub.public_pem());
        let text = seal(&hub, &body);
        let opened = open(&text, fp, pem).unwrap_or_else(|e| panic!("{e}"));
        let back: Order = serde_json::from_str(&opened).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.what, body.what);
        assert!(read_order(&text, fp, pem, "floor-1", 1, "o1").is_ok());
        assert!(read_order(&text, fp, pem, "floor-2", 1, "o1")
            .unwrap_err()
            .contains("for box floor-1"));
        // Signed by another key, naming the hub's fingerprint or its own: refused either way.
        let forged = seal(&forger, &body);
        assert!(open(&forged, fp, pem)
            .unwrap_err()
            .contains("not the pinned key"));
        let mut env: Envelope = serde_json::from_str(&forged).unwrap_or_else(|e| panic!("{e}"));
        env.key_fingerprint_sha256 = fp.to_owned();
        let relabelled = serde_json::to_string(&env).unwrap_or_default();
        assert!(open(&relabelled, fp, pem)
            .unwrap_err()
            .contains("does not verify"));
        // The hub's envelope with the body changed by one character.
        let mut env: Envelope = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        env.body = env.body.replace("matter 12", "matter 13");
        let edited = serde_json::to_string(&env).unwrap_or_default();
        assert!(open(&edited, fp, pem)
            .unwrap_err()
            .contains("does not verify"));
    }
}
