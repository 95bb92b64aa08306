-- Schema migration 18: upgrades version 17 to 18.
-- S3 Object Lock on archived calls and the archive's own deletions (archive::lock, issue 13
-- item 2). Self-contained: it only adds columns to archive_uploads, two tables and two triggers.
-- Embedded by store::MIGRATIONS and run once per index, in one transaction. Never edit
-- this file once it has shipped (an index already past it would never see the change):
-- append a new migration instead.

-- One archive retention run or erasure that removed objects from the store: what went, signed
-- with the box key like an erasure receipt (receipt: the exact JSON bytes; receipt_sig: hex).
CREATE TABLE archive_removals (
    id               INTEGER PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind IN ('retention', 'erasure')),
    reason           TEXT NOT NULL CHECK (length(trim(reason)) > 0),
    requested_by     TEXT NOT NULL,
    created_at_utc   TEXT NOT NULL,
    receipt          TEXT NOT NULL,
    receipt_sig      TEXT NOT NULL
);

-- What the store holds for an archived call's objects (audio, peaks, sidecar), as confirmed
-- before the call was marked archived: the retention mode (GOVERNANCE or COMPLIANCE; NULL: no
-- Object Lock), its retain-until date, and whether the objects' legal hold is ON.
ALTER TABLE archive_uploads ADD COLUMN lock_mode TEXT
    CHECK (lock_mode IS NULL OR lock_mode IN ('GOVERNANCE', 'COMPLIANCE'));
ALTER TABLE archive_uploads ADD COLUMN retain_until_utc TEXT;
ALTER TABLE archive_uploads ADD COLUMN legal_hold INTEGER NOT NULL DEFAULT 0
    CHECK (legal_hold IN (0, 1));
-- Set when archive retention or an erasure removed every version of the call's objects
-- (archive_removals.id says which run); the row stays as history and is never shipped again.
ALTER TABLE archive_uploads ADD COLUMN removed_by INTEGER REFERENCES archive_removals (id);

-- Legal holds reach the archive: every change to legal_holds (a hold placed or released, by
-- any writer) bumps changed_seq in the same transaction; the shipper sets every archived
-- call's object legal hold to what the holds in force say, then records the changed_seq it
-- applied as synced_seq. While they differ, the work is pending, and it survives restarts.
CREATE TABLE archive_hold_sync (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    changed_seq  INTEGER NOT NULL,
    synced_seq   INTEGER NOT NULL
);
INSERT INTO archive_hold_sync (id, changed_seq, synced_seq) VALUES (1, 1, 0);
CREATE TRIGGER archive_hold_sync_on_place AFTER INSERT ON legal_holds
BEGIN
    UPDATE archive_hold_sync SET changed_seq = changed_seq + 1 WHERE id = 1;
END;
CREATE TRIGGER archive_hold_sync_on_release AFTER UPDATE ON legal_holds
BEGIN
    UPDATE archive_hold_sync SET changed_seq = changed_seq + 1 WHERE id = 1;
END;
