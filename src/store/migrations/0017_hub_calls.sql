-- Schema migration 17: upgrades version 16 to 17.
-- The fleet's QA hub (`callrec hub`): its calls are indexed from the sidecars boxes ship to the
-- archive. A hub call has the hub's own id in `calls` (box call ids collide across boxes) and
-- one row here naming its box, its id on that box and its objects in the bucket. On a box these
-- tables stay empty. Self-contained: nothing else refers to them except by call id.
-- Embedded by store::MIGRATIONS and run once per index, in one transaction. Never edit
-- this file once it has shipped (an index already past it would never see the change):
-- append a new migration instead.

CREATE TABLE hub_calls (
    call_id         INTEGER PRIMARY KEY REFERENCES calls (id),
    box_id          TEXT NOT NULL,
    -- The call's id on its box: with box_id, what links a hub row (and the QA rows on its hub
    -- id) to the archive across `callrec hub rebuild` and restores.
    box_call_id     INTEGER NOT NULL,
    audio_key       TEXT NOT NULL,
    audio_sha256    TEXT NOT NULL CHECK (length(audio_sha256) = 64),
    audio_bytes     INTEGER NOT NULL CHECK (audio_bytes >= 0),
    peaks_key       TEXT,
    peaks_sha256    TEXT,
    peaks_bytes     INTEGER,
    sidecar_key     TEXT NOT NULL UNIQUE,
    -- As the store listed it: an unchanged ETag is not fetched again.
    sidecar_etag    TEXT NOT NULL,
    sidecar_sha256  TEXT NOT NULL,
    indexed_at_utc  TEXT NOT NULL,
    UNIQUE (box_id, box_call_id)
);
-- The box/floor filter and column of the search; with an agent, the pair (a reviewer's "this
-- agent on that floor": without it the agent's calls on every floor are read one by one).
CREATE INDEX calls_box ON calls (box_id, started_at_utc);
CREATE INDEX calls_agent_box ON calls (agent, box_id, started_at_utc);
-- Every box signing key a sidecar named (a box may renew its key).
CREATE TABLE box_keys (
    box_id              TEXT NOT NULL,
    fingerprint_sha256  TEXT NOT NULL CHECK (length(fingerprint_sha256) = 64),
    public_pem          TEXT NOT NULL,
    first_seen_at_utc   TEXT NOT NULL,
    PRIMARY KEY (box_id, fingerprint_sha256)
);
-- Copies of the boxes' ledger entries, as their sidecars carry them (for exports at the hub).
-- The box's own chain: entry_json is the entry exactly as shipped.
CREATE TABLE hub_ledger (
    box_id        TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    box_call_id   INTEGER NOT NULL,
    entry_sha256  TEXT NOT NULL,
    entry_json    TEXT NOT NULL,
    PRIMARY KEY (box_id, seq)
);
CREATE INDEX hub_ledger_call ON hub_ledger (box_id, box_call_id);
-- Sidecars the indexer refused (bad format, fields, hashes or key), with why; an unchanged
-- ETag is not fetched again, a changed one is retried.
CREATE TABLE hub_rejected (
    sidecar_key   TEXT PRIMARY KEY,
    etag          TEXT NOT NULL,
    reason        TEXT NOT NULL,
    seen_at_utc   TEXT NOT NULL
);
