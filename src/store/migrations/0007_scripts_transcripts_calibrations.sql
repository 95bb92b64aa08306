-- Schema migration 7: upgrades version 6 to 7.
-- Scripts and spot checks, transcripts with full-text search, calibration sessions.
-- Embedded by store::MIGRATIONS and run once per index, in one transaction. Never edit
-- this file once it has shipped (an index already past it would never see the change):
-- append a new migration instead.

CREATE TABLE scripts (
    id              INTEGER PRIMARY KEY,
    slug            TEXT NOT NULL,
    version         INTEGER NOT NULL,
    name            TEXT NOT NULL,
    content_hash    TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_by      TEXT NOT NULL,
    created_at_utc  TEXT NOT NULL,
    UNIQUE (slug, version)
);
CREATE TABLE compliance_checks (
    id                INTEGER PRIMARY KEY,
    call_id           INTEGER NOT NULL REFERENCES calls (id),
    script_id         INTEGER NOT NULL REFERENCES scripts (id),
    reviewer          TEXT NOT NULL,
    agent             TEXT,
    status            TEXT NOT NULL CHECK (status IN ('draft', 'submitted')),
    marks             TEXT NOT NULL,
    outcome           TEXT,
    passed            INTEGER,
    created_at_utc    TEXT NOT NULL,
    updated_at_utc    TEXT NOT NULL,
    submitted_at_utc  TEXT
);
CREATE INDEX compliance_checks_call ON compliance_checks (call_id);
CREATE INDEX compliance_checks_agent ON compliance_checks (agent, submitted_at_utc);
CREATE TABLE transcript_segments (
    id        INTEGER PRIMARY KEY,
    call_id   INTEGER NOT NULL REFERENCES calls (id),
    start_ms  INTEGER NOT NULL,
    end_ms    INTEGER NOT NULL,
    speaker   TEXT,
    text      TEXT NOT NULL
);
CREATE INDEX transcript_segments_call ON transcript_segments (call_id, start_ms);
CREATE TABLE transcripts (
    call_id          INTEGER PRIMARY KEY REFERENCES calls (id),
    source           TEXT NOT NULL,
    format           TEXT NOT NULL,
    segments         INTEGER NOT NULL,
    imported_by      TEXT NOT NULL,
    imported_at_utc  TEXT NOT NULL
);
-- External-content FTS5 index over the segments, kept in step by triggers.
CREATE VIRTUAL TABLE transcript_fts USING fts5 (text, content = 'transcript_segments', content_rowid = 'id');
CREATE TRIGGER transcript_fts_ins AFTER INSERT ON transcript_segments BEGIN
    INSERT INTO transcript_fts (rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER transcript_fts_del AFTER DELETE ON transcript_segments BEGIN
    INSERT INTO transcript_fts (transcript_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TABLE calibrations (
    id              INTEGER PRIMARY KEY,
    call_id         INTEGER NOT NULL REFERENCES calls (id),
    scorecard_id    INTEGER NOT NULL REFERENCES scorecards (id),
    title           TEXT NOT NULL,
    reviewers       TEXT NOT NULL,
    reference       TEXT,
    due_utc         TEXT,
    status          TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    created_by      TEXT NOT NULL,
    created_at_utc  TEXT NOT NULL,
    closed_at_utc   TEXT
);
ALTER TABLE evaluations ADD COLUMN calibration_id INTEGER REFERENCES calibrations (id);
CREATE INDEX evaluations_calibration ON evaluations (calibration_id);
