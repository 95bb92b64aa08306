-- Schema migration 14: upgrades version 13 to 14.
-- The archive queue (archive_uploads): one row per finalized call the shipper (`callrec ship`) has taken up, with
-- what the object store confirmed. A call without a row is not yet queued; the shipper queues
-- every complete or interrupted call (recorded, recovered or imported) it finds without one.
-- Embedded by store::MIGRATIONS and run once per index, in one transaction. Never edit
-- this file once it has shipped (an index already past it would never see the change):
-- append a new migration instead.

CREATE TABLE archive_uploads (
    call_id              INTEGER PRIMARY KEY REFERENCES calls (id),
    -- pending: to be shipped (again); archived: the store confirmed every object;
    -- failed: cannot be shipped until an operator acts (the local file no longer matches its row).
    state                TEXT NOT NULL CHECK (state IN ('pending', 'archived', 'failed')),
    -- The audio object's key; the peaks and the sidecar sit next to it.
    object_key           TEXT NOT NULL,
    -- As the store returned them for the audio object (version id: versioned buckets only).
    etag                 TEXT,
    version_id           TEXT,
    attempts             INTEGER NOT NULL DEFAULT 0,
    next_attempt_at_utc  TEXT NOT NULL,
    last_error           TEXT,
    queued_at_utc        TEXT NOT NULL,
    archived_at_utc      TEXT,
    -- Archived means confirmed: never without the store's ETag and the time it said so.
    CHECK ((state = 'archived') = (coalesce(etag, '') <> '' AND archived_at_utc IS NOT NULL))
);
CREATE INDEX archive_uploads_due ON archive_uploads (state, next_attempt_at_utc);
-- The ledger in the archive: append-only JSON-lines segments of consecutive entries, each
-- recorded once the store confirmed it. The next segment starts after the highest last_seq.
CREATE TABLE archive_ledger_segments (
    first_seq       INTEGER PRIMARY KEY,
    last_seq        INTEGER NOT NULL CHECK (last_seq >= first_seq),
    object_key      TEXT NOT NULL,
    sha256          TEXT NOT NULL,
    etag            TEXT NOT NULL CHECK (etag <> ''),
    shipped_at_utc  TEXT NOT NULL
);
