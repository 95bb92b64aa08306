//! The SQL of orders from the hub to the boxes (migration 19; the protocol is
//! `archive::orders`). At the hub, `hub_orders` keeps one row per (order, box): the signed
//! object as published, when it was published, and the box's ack. On a box, `box_orders`
//! remembers every order applied so that a re-read object is never applied twice,
//! `box_orders_refused` the objects it would not read, and `hub_key_pin` the hub key it trusts.
//!
//! This module must never sign or verify anything (callers do, with `evidence::key`), and
//! never change a row's envelope once written: what was published is what is kept.

use super::StoreError;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;

/// One order row at the hub.
#[derive(Debug, Clone, Serialize)]
pub struct HubOrder {
    pub seq: i64,
    pub order_id: String,
    pub box_id: String,
    pub kind: String,
    pub hub_hold_id: Option<i64>,
    pub request_reference: Option<String>,
    pub object_key: String,
    /// The signed object as published.
    pub envelope_json: String,
    pub made_by: String,
    pub made_at_utc: String,
    pub published_at_utc: Option<String>,
    pub acked_at_utc: Option<String>,
    pub ack_json: Option<String>,
}

/// What an order row carries besides its seq-dependent object.
pub struct NewHubOrder<'a> {
    pub order_id: &'a str,
    pub box_id: &'a str,
    pub kind: &'a str,
    pub hub_hold_id: Option<i64>,
    pub request_reference: Option<&'a str>,
    pub made_by: &'a str,
    pub made_at_utc: &'a str,
}

const HUB_COLUMNS: &str = "seq, order_id, box_id, kind, hub_hold_id, request_reference, object_key,
    envelope_json, made_by, made_at_utc, published_at_utc, acked_at_utc, ack_json";

fn row_to_order(r: &rusqlite::Row) -> rusqlite::Result<HubOrder> {
    Ok(HubOrder {
        seq: r.get(0)?,
        order_id: r.get(1)?,
        box_id: r.get(2)?,
        kind: r.get(3)?,
        hub_hold_id: r.get(4)?,
        request_reference: r.get(5)?,
        object_key: r.get(6)?,
        envelope_json: r.get(7)?,
        made_by: r.get(8)?,
        made_at_utc: r.get(9)?,
        published_at_utc: r.get(10)?,
        acked_at_utc: r.get(11)?,
        ack_json: r.get(12)?,
    })
}

/// Adds one order row; `make(seq)` returns its object key and the signed envelope (both
/// depend on the sequence number, which is the next one). Returns the seq.
pub fn add_hub_order(
    conn: &Connection,
    o: &NewHubOrder,
    make: impl FnOnce(i64) -> (String, String),
) -> Result<i64, StoreError> {
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let seq: i64 = tx.query_row(
        "SELECT COALESCE(MAX(seq), 0) + 1 FROM hub_orders",
        [],
        |r| r.get(0),
    )?;
    let (object_key, envelope) = make(seq);
    tx.execute(
        "INSERT INTO hub_orders (seq, order_id, box_id, kind, hub_hold_id, request_reference,
             object_key, envelope_json, made_by, made_at_utc)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            seq,
            o.order_id,
            o.box_id,
            o.kind,
            o.hub_hold_id,
            o.request_reference,
            object_key,
            envelope,
            o.made_by,
            o.made_at_utc
        ],
    )?;
    tx.commit()?;
    Ok(seq)
}

/// Orders not yet published: (seq, object key, envelope).
pub fn unpublished(conn: &Connection) -> Result<Vec<(i64, String, String)>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT seq, object_key, envelope_json FROM hub_orders WHERE published_at_utc IS NULL ORDER BY seq",
    )?;
    let v = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    Ok(v)
}

pub fn mark_published(conn: &Connection, seq: i64, now_utc: &str) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE hub_orders SET published_at_utc = ?2 WHERE seq = ?1 AND published_at_utc IS NULL",
        params![seq, now_utc],
    )?;
    Ok(())
}

/// Published orders whose box has not acked yet.
pub fn unacked(conn: &Connection) -> Result<Vec<HubOrder>, StoreError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {HUB_COLUMNS} FROM hub_orders
         WHERE acked_at_utc IS NULL AND published_at_utc IS NOT NULL ORDER BY seq"
    ))?;
    let v = st.query_map([], row_to_order)?.collect::<Result<_, _>>()?;
    Ok(v)
}

pub fn mark_acked(
    conn: &Connection,
    seq: i64,
    ack_json: &str,
    now_utc: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE hub_orders SET acked_at_utc = ?2, ack_json = ?3 WHERE seq = ?1 AND acked_at_utc IS NULL",
        params![seq, now_utc, ack_json],
    )?;
    Ok(())
}

/// Every row of one order (one per box).
pub fn hub_order(conn: &Connection, order_id: &str) -> Result<Vec<HubOrder>, StoreError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {HUB_COLUMNS} FROM hub_orders WHERE order_id = ?1 ORDER BY box_id"
    ))?;
    let v = st
        .query_map([order_id], row_to_order)?
        .collect::<Result<_, _>>()?;
    Ok(v)
}

/// Every order at the hub, newest first (`callrec orders list`).
pub fn hub_orders(conn: &Connection) -> Result<Vec<HubOrder>, StoreError> {
    let mut st = conn.prepare(&format!(
        "SELECT {HUB_COLUMNS} FROM hub_orders ORDER BY seq DESC"
    ))?;
    let v = st.query_map([], row_to_order)?.collect::<Result<_, _>>()?;
    Ok(v)
}

/// Every box the hub knows: those with calls in its index and those whose key a sidecar named.
pub fn known_boxes(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut st =
        conn.prepare("SELECT box_id FROM hub_calls UNION SELECT box_id FROM box_keys ORDER BY 1")?;
    let v = st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    Ok(v)
}

/// The boxes a hold order for hub hold `hub_hold_id` went to.
pub fn boxes_of_hold(conn: &Connection, hub_hold_id: i64) -> Result<Vec<String>, StoreError> {
    let mut st = conn.prepare(
        "SELECT DISTINCT box_id FROM hub_orders WHERE kind = 'hold' AND hub_hold_id = ?1 ORDER BY 1",
    )?;
    let v = st
        .query_map([hub_hold_id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(v)
}

/// One order as a box applied it.
#[derive(Debug, Clone, Serialize)]
pub struct BoxOrder {
    pub order_id: String,
    pub seq: i64,
    pub kind: String,
    pub object_key: String,
    pub hub_hold_id: Option<i64>,
    pub box_hold_id: Option<i64>,
    pub outcome: String,
    pub ack_json: String,
    pub applied_at_utc: String,
    pub acked_at_utc: Option<String>,
}

fn row_to_box_order(r: &rusqlite::Row) -> rusqlite::Result<BoxOrder> {
    Ok(BoxOrder {
        order_id: r.get(0)?,
        seq: r.get(1)?,
        kind: r.get(2)?,
        object_key: r.get(3)?,
        hub_hold_id: r.get(4)?,
        box_hold_id: r.get(5)?,
        outcome: r.get(6)?,
        ack_json: r.get(7)?,
        applied_at_utc: r.get(8)?,
        acked_at_utc: r.get(9)?,
    })
}

const BOX_COLUMNS: &str = "order_id, seq, kind, object_key, hub_hold_id, box_hold_id, outcome,
    ack_json, applied_at_utc, acked_at_utc";

/// Whether this box already applied (or refused by its rules) the order.
pub fn box_applied(conn: &Connection, order_id: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM box_orders WHERE order_id = ?1")?
        .query_row([order_id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Remembers an applied order (idempotent: a second call for the same order changes nothing).
pub fn record_box_order(conn: &Connection, o: &BoxOrder) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR IGNORE INTO box_orders (order_id, seq, kind, object_key, hub_hold_id,
             box_hold_id, outcome, ack_json, applied_at_utc)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            o.order_id,
            o.seq,
            o.kind,
            o.object_key,
            o.hub_hold_id,
            o.box_hold_id,
            o.outcome,
            o.ack_json,
            o.applied_at_utc
        ],
    )?;
    Ok(())
}

/// The box's hold that hub hold `hub_hold_id`'s order placed here.
pub fn box_hold_of(conn: &Connection, hub_hold_id: i64) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT box_hold_id FROM box_orders WHERE kind = 'hold' AND hub_hold_id = ?1
             AND box_hold_id IS NOT NULL ORDER BY seq DESC LIMIT 1",
        )?
        .query_row([hub_hold_id], |r| r.get(0))
        .optional()?)
}

/// Orders applied whose ack is not yet in the bucket.
pub fn box_unacked(conn: &Connection) -> Result<Vec<BoxOrder>, StoreError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {BOX_COLUMNS} FROM box_orders WHERE acked_at_utc IS NULL ORDER BY seq"
    ))?;
    let v = st
        .query_map([], row_to_box_order)?
        .collect::<Result<_, _>>()?;
    Ok(v)
}

/// Every order this box applied, newest first.
pub fn box_orders(conn: &Connection) -> Result<Vec<BoxOrder>, StoreError> {
    let mut st = conn.prepare(&format!(
        "SELECT {BOX_COLUMNS} FROM box_orders ORDER BY seq DESC"
    ))?;
    let v = st
        .query_map([], row_to_box_order)?
        .collect::<Result<_, _>>()?;
    Ok(v)
}

pub fn mark_box_acked(conn: &Connection, order_id: &str, now_utc: &str) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE box_orders SET acked_at_utc = ?2 WHERE order_id = ?1",
        params![order_id, now_utc],
    )?;
    Ok(())
}

/// The ETag an order object was refused with, if it was.
pub fn refused_etag(conn: &Connection, object_key: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT etag FROM box_orders_refused WHERE object_key = ?1")?
        .query_row([object_key], |r| r.get(0))
        .optional()?)
}

pub fn refuse(
    conn: &Connection,
    object_key: &str,
    etag: &str,
    reason: &str,
    now_utc: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR REPLACE INTO box_orders_refused (object_key, etag, reason, seen_at_utc)
         VALUES (?1, ?2, ?3, ?4)",
        params![object_key, etag, reason, now_utc],
    )?;
    Ok(())
}

/// Order objects refused, with why: (key, reason).
pub fn refused(conn: &Connection) -> Result<Vec<(String, String)>, StoreError> {
    let mut st =
        conn.prepare("SELECT object_key, reason FROM box_orders_refused ORDER BY object_key")?;
    let v = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(v)
}

/// The pinned hub key: (fingerprint, PEM).
pub fn hub_key(conn: &Connection) -> Result<Option<(String, String)>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT fingerprint_sha256, public_pem FROM hub_key_pin WHERE id = 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// Pins the hub key, unless one is pinned already (never replaced here).
pub fn pin_hub_key(
    conn: &Connection,
    fingerprint: &str,
    pem: &str,
    now_utc: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR IGNORE INTO hub_key_pin (id, fingerprint_sha256, public_pem, pinned_at_utc)
         VALUES (1, ?1, ?2, ?3)",
        params![fingerprint, pem, now_utc],
    )?;
    Ok(())
}
