-- Schema migration 5: upgrades version 4 to 5.
-- QA sampling plans, their seeded draws, and reviewer assignments.
-- Embedded by store::MIGRATIONS and run once per index, in one transaction. Never edit
-- this file once it has shipped (an index already past it would never see the change):
-- append a new migration instead.

CREATE TABLE sampling_plans (
    id               INTEGER PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    filters          TEXT NOT NULL,
    quota_per_agent  INTEGER,
    reviewers        TEXT NOT NULL,
    scorecard        TEXT NOT NULL,
    due_days         INTEGER NOT NULL,
    created_by       TEXT NOT NULL,
    created_at_utc   TEXT NOT NULL
);
CREATE TABLE sample_draws (
    id                 INTEGER PRIMARY KEY,
    plan_id            INTEGER NOT NULL REFERENCES sampling_plans (id),
    since_utc          TEXT NOT NULL,
    until_utc          TEXT NOT NULL,
    seed               TEXT NOT NULL,
    candidates_sha256  TEXT NOT NULL,
    candidates         TEXT NOT NULL,
    drawn_by           TEXT NOT NULL,
    drawn_at_utc       TEXT NOT NULL
);
CREATE TABLE assignments (
    id              INTEGER PRIMARY KEY,
    draw_id         INTEGER NOT NULL REFERENCES sample_draws (id),
    call_id         INTEGER NOT NULL REFERENCES calls (id),
    agent           TEXT NOT NULL,
    reviewer        TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('open', 'swapped')),
    due_utc         TEXT NOT NULL,
    swap_reason     TEXT,
    replaced_by     INTEGER REFERENCES assignments (id)
);
CREATE INDEX assignments_reviewer ON assignments (reviewer, status);
CREATE INDEX assignments_draw ON assignments (draw_id);
