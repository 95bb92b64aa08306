-- Schema migration 8: upgrades version 7 to 8.
-- The evidence ledger: one hash-chained entry per finalized call, and a tombstone per
-- deletion. No foreign key: a tombstone outlives its call. Append-only like the audit log.
-- Embedded by store::MIGRATIONS and run once per index, in one transaction. Never edit
-- this file once it has shipped (an index already past it would never see the change):
-- append a new migration instead.

CREATE TABLE ledger (
    seq            INTEGER PRIMARY KEY,
    kind           TEXT NOT NULL CHECK (kind IN ('call', 'tombstone')),
    call_id        INTEGER NOT NULL,
    file_sha256    TEXT,
    detail         TEXT NOT NULL,
    prev_sha256    TEXT NOT NULL,
    entry_sha256   TEXT NOT NULL UNIQUE,
    at_utc         TEXT NOT NULL
);
CREATE INDEX ledger_call ON ledger (call_id);
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
