-- Schema migration 4: upgrades version 3 to 4.
-- QA scorecards (versioned), evaluations and their disputes.
-- Embedded by store::MIGRATIONS and run once per index, in one transaction. Never edit
-- this file once it has shipped (an index already past it would never see the change):
-- append a new migration instead.

CREATE TABLE scorecards (
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
CREATE TABLE evaluations (
    id                INTEGER PRIMARY KEY,
    call_id           INTEGER NOT NULL REFERENCES calls (id),
    scorecard_id      INTEGER NOT NULL REFERENCES scorecards (id),
    reviewer          TEXT NOT NULL,
    agent             TEXT,
    status            TEXT NOT NULL CHECK (status IN ('draft', 'submitted', 'acknowledged', 'disputed', 'resolved')),
    answers           TEXT NOT NULL,
    comment           TEXT,
    score             TEXT,
    score_percent     REAL,
    passed            INTEGER,
    created_at_utc    TEXT NOT NULL,
    updated_at_utc    TEXT NOT NULL,
    submitted_at_utc  TEXT
);
CREATE INDEX evaluations_call ON evaluations (call_id);
CREATE INDEX evaluations_agent ON evaluations (agent, submitted_at_utc);
CREATE INDEX evaluations_reviewer ON evaluations (reviewer, status);
CREATE TABLE evaluation_disputes (
    id              INTEGER PRIMARY KEY,
    evaluation_id   INTEGER NOT NULL REFERENCES evaluations (id),
    question        TEXT NOT NULL,
    reason          TEXT NOT NULL,
    raised_by       TEXT NOT NULL,
    raised_at_utc   TEXT NOT NULL,
    decision        TEXT CHECK (decision IN ('upheld', 'changed', 'accepted')),
    new_value       TEXT,
    decided_by      TEXT,
    decided_at_utc  TEXT,
    decision_note   TEXT
);
CREATE INDEX evaluation_disputes_eval ON evaluation_disputes (evaluation_id);
