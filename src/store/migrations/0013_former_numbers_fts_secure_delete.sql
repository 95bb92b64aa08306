-- Schema migration 13: upgrades version 12 to 13.
-- Erasure finds every call that ever carried a number, and leaves nothing of it behind.
-- Embedded by store::MIGRATIONS and run once per index, in one transaction. Never edit
-- this file once it has shipped (an index already past it would never see the change):
-- append a new migration instead.

-- A number or CTI id corrected mid-call (`callrec call tag`, the control API) replaces the row's
-- value, but the recording's OpusTags keep the first one: erasure by the first number must still
-- find the call. The triggers keep every earlier value; erasure deletes them with the call's
-- personal fields.
CREATE TABLE call_former_meta (
    call_id  INTEGER NOT NULL REFERENCES calls (id),
    field    TEXT NOT NULL CHECK (field IN ('remote_number', 'external_id')),
    value    TEXT NOT NULL,
    PRIMARY KEY (call_id, field, value)
) WITHOUT ROWID;

CREATE TRIGGER calls_keep_former_number AFTER UPDATE OF remote_number ON calls
    WHEN OLD.remote_number IS NOT NULL AND NEW.remote_number IS NOT NULL
        AND NEW.remote_number <> OLD.remote_number
BEGIN
    INSERT OR IGNORE INTO call_former_meta (call_id, field, value)
        VALUES (OLD.id, 'remote_number', OLD.remote_number);
END;

CREATE TRIGGER calls_keep_former_external_id AFTER UPDATE OF external_id ON calls
    WHEN OLD.external_id IS NOT NULL AND NEW.external_id IS NOT NULL
        AND NEW.external_id <> OLD.external_id
BEGIN
    INSERT OR IGNORE INTO call_former_meta (call_id, field, value)
        VALUES (OLD.id, 'external_id', OLD.external_id);
END;

-- FTS5 keeps a deleted transcript's words in its index segments until they are merged away;
-- with secure-delete (SQLite 3.42, https://sqlite.org/fts5.html#the_secure_delete_configuration_option)
-- a delete removes them at once, so a deleted or erased transcript leaves no word behind.
INSERT INTO transcript_fts (transcript_fts, rank) VALUES ('secure-delete', 1);
-- Words of transcripts deleted before this version: a full rebuild from the (current) content
-- table drops every entry whose row is gone.
INSERT INTO transcript_fts (transcript_fts) VALUES ('rebuild');

-- Nothing is added to a call whose deletion has begun: a note, a transcript or a transcript
-- segment written after an erasure would bring back what it removed. Checked in the same
-- statement as the insert, so no race with a concurrent deletion can slip through.
CREATE TRIGGER notes_only_on_live_calls BEFORE INSERT ON notes
    WHEN (SELECT status FROM calls WHERE id = NEW.call_id) IN ('garbage', 'deleted')
    BEGIN SELECT RAISE(ABORT, 'call deleted: nothing can be added to a deleted call'); END;
CREATE TRIGGER transcripts_only_on_live_calls BEFORE INSERT ON transcripts
    WHEN (SELECT status FROM calls WHERE id = NEW.call_id) IN ('garbage', 'deleted')
    BEGIN SELECT RAISE(ABORT, 'call deleted: nothing can be added to a deleted call'); END;
CREATE TRIGGER transcript_segments_only_on_live_calls BEFORE INSERT ON transcript_segments
    WHEN (SELECT status FROM calls WHERE id = NEW.call_id) IN ('garbage', 'deleted')
    BEGIN SELECT RAISE(ABORT, 'call deleted: nothing can be added to a deleted call'); END;
