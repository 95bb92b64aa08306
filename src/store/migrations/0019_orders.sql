-- Schema migration 19: upgrades version 18 to 19.
-- Orders from the fleet's hub to its boxes (issue 13 item 4): a legal hold, a hold release or
-- an erasure made at the hub is written here, signed with the hub's key and published to the
-- bucket as `<prefix>orders/<box>/<seq>-<order-id>.json`, one object per box; each box applies
-- it once and writes an ack under its own prefix. The hub uses `hub_orders`; a box uses
-- `box_orders`, `box_orders_refused` and `hub_key_pin`. Nothing else refers to these tables.
-- Embedded by store::MIGRATIONS and run once per index, in one transaction. Never edit
-- this file once it has shipped (an index already past it would never see the change):
-- append a new migration instead.

-- At the hub: one row per (order, box). `seq` orders them for every box.
CREATE TABLE hub_orders (
    seq               INTEGER PRIMARY KEY,
    order_id          TEXT NOT NULL,
    box_id            TEXT NOT NULL,
    kind              TEXT NOT NULL CHECK (kind IN ('hold', 'release', 'erase')),
    -- The hub's legal hold a hold/release order is about; the deletion an erasure is part of.
    hub_hold_id       INTEGER,
    request_reference TEXT,
    object_key        TEXT NOT NULL UNIQUE,
    -- The exact object published: the signed body and its signature.
    envelope_json     TEXT NOT NULL,
    made_by           TEXT NOT NULL,
    made_at_utc       TEXT NOT NULL,
    published_at_utc  TEXT,
    -- The box's ack, as it wrote it (checked against the box's key before it is kept).
    acked_at_utc      TEXT,
    ack_json          TEXT,
    UNIQUE (order_id, box_id)
);
CREATE INDEX hub_orders_pending ON hub_orders (acked_at_utc, box_id);

-- On a box: every order applied (or refused by its rules, e.g. a local hold against an
-- erasure), once: a re-read object is never applied again.
CREATE TABLE box_orders (
    order_id        TEXT PRIMARY KEY,
    seq             INTEGER NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('hold', 'release', 'erase')),
    object_key      TEXT NOT NULL,
    hub_hold_id     INTEGER,
    -- The box's own legal hold a hold order placed.
    box_hold_id     INTEGER REFERENCES legal_holds (id),
    outcome         TEXT NOT NULL CHECK (outcome IN ('applied', 'refused')),
    -- The ack's body (what was removed or held here), signed when written to the bucket.
    ack_json        TEXT NOT NULL,
    applied_at_utc  TEXT NOT NULL,
    acked_at_utc    TEXT
);
-- Order objects a box refused to read (bad signature, layout, or not for this box), with why;
-- an unchanged ETag is not fetched again.
CREATE TABLE box_orders_refused (
    object_key   TEXT PRIMARY KEY,
    etag         TEXT NOT NULL,
    reason       TEXT NOT NULL,
    seen_at_utc  TEXT NOT NULL
);
-- The hub's public key a box trusts orders from: fetched from `<prefix>hub/hub.pub` the first
-- time (only the hub's store user can write there) and pinned; a different key later is
-- refused and logged (a new hub key is pinned by deleting this row after checking its
-- fingerprint: `callrec key show` at the hub).
CREATE TABLE hub_key_pin (
    id                  INTEGER PRIMARY KEY CHECK (id = 1),
    fingerprint_sha256  TEXT NOT NULL CHECK (length(fingerprint_sha256) = 64),
    public_pem          TEXT NOT NULL,
    pinned_at_utc       TEXT NOT NULL
);
