-- Schema migration 9: upgrades version 8 to 9.
-- Legacy imports: one row per source file (by content hash), so importing the same source
-- twice imports it once.
-- Embedded by store::MIGRATIONS and run once per index, in one transaction. Never edit
-- this file once it has shipped (an index already past it would never see the change):
-- append a new migration instead.

CREATE TABLE imports (
    source_sha256    TEXT PRIMARY KEY,
    call_id          INTEGER NOT NULL REFERENCES calls (id),
    source_path      TEXT NOT NULL,
    source_format    TEXT NOT NULL,
    imported_by      TEXT NOT NULL,
    imported_at_utc  TEXT NOT NULL
);
