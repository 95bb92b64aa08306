-- Schema migration 10: upgrades version 9 to 10.
-- Facts about the store itself; `storage_id` must match the STORAGE-ID file (store::identity).
-- Embedded by store::MIGRATIONS and run once per index, in one transaction. Never edit
-- this file once it has shipped (an index already past it would never see the change):
-- append a new migration instead.

CREATE TABLE box_meta (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
