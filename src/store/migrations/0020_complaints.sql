-- Schema migration 20 (the 19th on branch h-complaint; renumbered at merge): upgrades the
-- version before it by one.
-- The complaints register (issue 14 item 5): complaints about an agent's call (or an agent and
-- a time), their categories, and every step of their life cycle. store::complaints is the only
-- writer. Embedded by store::MIGRATIONS and run once per index, in one transaction. Never edit
-- this file once it has shipped: append a new migration instead.

-- The categories a complaint is filed under; `position` orders the list as shipped or written.
CREATE TABLE complaint_categories (
    code      TEXT PRIMARY KEY,
    label     TEXT NOT NULL,
    position  INTEGER NOT NULL
) WITHOUT ROWID;

-- One complaint. `call_id` is NULL when it names an agent and a time instead of a call;
-- `occurred_at_utc` is the call's start or that time (the figures count complaints by it).
-- `source`: staff filed it for a customer, or a supervisor for their `department`.
-- `due_at_utc`: the final-response deadline (filed + [complaints] response_days).
-- `ruling` is the lead's; `appeal_ruling` the second lead's, which replaces it when given.
-- The personal text (complaint, response, reasons, appeal) is NULLed by an erasure
-- (`scrubbed_at_utc` says when); the row, its times and its ruling stay for the figures.
CREATE TABLE complaints (
    id                    INTEGER PRIMARY KEY,
    call_id               INTEGER REFERENCES calls (id),
    agent                 TEXT NOT NULL,
    occurred_at_utc       TEXT NOT NULL,
    source                TEXT NOT NULL CHECK (source IN ('customer', 'department')),
    department            TEXT,
    category              TEXT NOT NULL,
    text                  TEXT,
    status                TEXT NOT NULL CHECK (status IN ('filed', 'acknowledged',
                              'investigating', 'ruled', 'appealed', 'final')),
    filed_by              TEXT NOT NULL,
    filed_at_utc          TEXT NOT NULL,
    due_at_utc            TEXT NOT NULL,
    acknowledged_by       TEXT,
    acknowledged_at_utc   TEXT,
    investigating_by      TEXT,
    investigating_at_utc  TEXT,
    response              TEXT,
    responded_at_utc      TEXT,
    ruling                TEXT CHECK (ruling IN ('justified', 'partly_justified', 'not_justified')),
    ruling_reason         TEXT,
    ruled_by              TEXT,
    ruled_at_utc          TEXT,
    appeal_text           TEXT,
    appealed_by           TEXT,
    appealed_at_utc       TEXT,
    appeal_ruling         TEXT CHECK (appeal_ruling IN ('justified', 'partly_justified',
                              'not_justified')),
    appeal_reason         TEXT,
    decided_by            TEXT,
    decided_at_utc        TEXT,
    scrubbed_at_utc       TEXT,
    CHECK ((source = 'department') = (department IS NOT NULL)),
    -- The appeal is decided by a different lead than the one who ruled.
    CHECK (decided_by IS NULL OR decided_by != ruled_by)
);
CREATE INDEX complaints_by_agent ON complaints (agent, occurred_at_utc);
CREATE INDEX complaints_by_call ON complaints (call_id) WHERE call_id IS NOT NULL;
CREATE INDEX complaints_by_filed ON complaints (filed_at_utc);
