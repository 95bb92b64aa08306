-- Schema migration 11: upgrades version 10 to 11.
-- Data lifecycle (retention, legal hold, erasure, disk pressure). The calls table is
-- rebuilt (SQLite's 12-step ALTER, https://sqlite.org/lang_altertable.html#otheralter) because
-- its status CHECK gains `garbage` (marked for deletion, file not yet unlinked) and `deleted`.
-- That drops a table other tables reference, so it needs foreign keys off, which
-- store::migrate arranges for every migration.
-- Embedded by store::MIGRATIONS and run once per index, in one transaction. Never edit
-- this file once it has shipped (an index already past it would never see the change):
-- append a new migration instead.

CREATE TABLE deletions (
    id               INTEGER PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind IN ('retention', 'erasure', 'pressure', 'manual')),
    reason           TEXT NOT NULL CHECK (length(trim(reason)) > 0),
    requested_by     TEXT NOT NULL,
    created_at_utc   TEXT NOT NULL,
    finished_at_utc  TEXT,
    calls            INTEGER NOT NULL,
    receipt          TEXT,
    receipt_sig      TEXT
);
CREATE TABLE calls_new (
    id               INTEGER PRIMARY KEY,
    box_id           TEXT NOT NULL,
    seat_id          TEXT NOT NULL,
    mode             TEXT NOT NULL CHECK (mode IN ('control', 'vox', 'continuous')),
    status           TEXT NOT NULL CHECK (status IN ('recording', 'complete', 'interrupted', 'garbage', 'deleted')),
    started_at_utc   TEXT NOT NULL,
    started_mono_ms  INTEGER NOT NULL,
    ended_at_utc     TEXT,
    duration_ms      INTEGER NOT NULL DEFAULT 0,
    bytes            INTEGER NOT NULL DEFAULT 0,
    sha256           TEXT,
    dropped_frames   INTEGER NOT NULL DEFAULT 0,
    rate_hz          INTEGER NOT NULL,
    bitrate_bps      INTEGER NOT NULL,
    agent            TEXT,
    direction        TEXT CHECK (direction IN ('inbound', 'outbound')),
    remote_number    TEXT,
    campaign         TEXT,
    external_id      TEXT,
    rel_path         TEXT NOT NULL UNIQUE,
    end_reason       TEXT,
    note             TEXT,
    deletion_id      INTEGER REFERENCES deletions (id),
    deleted_at_utc   TEXT,
    CHECK ((status IN ('garbage', 'deleted')) = (deletion_id IS NOT NULL))
);
INSERT INTO calls_new (id, box_id, seat_id, mode, status, started_at_utc, started_mono_ms,
    ended_at_utc, duration_ms, bytes, sha256, dropped_frames, rate_hz, bitrate_bps, agent,
    direction, remote_number, campaign, external_id, rel_path, end_reason, note)
SELECT id, box_id, seat_id, mode, status, started_at_utc, started_mono_ms,
    ended_at_utc, duration_ms, bytes, sha256, dropped_frames, rate_hz, bitrate_bps, agent,
    direction, remote_number, campaign, external_id, rel_path, end_reason, note FROM calls;
DROP TABLE calls;
ALTER TABLE calls_new RENAME TO calls;
CREATE INDEX calls_started ON calls (started_at_utc);
CREATE INDEX calls_seat ON calls (seat_id, started_at_utc);
CREATE INDEX calls_agent ON calls (agent, started_at_utc);
CREATE INDEX calls_duration ON calls (duration_ms);
CREATE INDEX calls_campaign ON calls (campaign, started_at_utc);
CREATE INDEX calls_number ON calls (remote_number, started_at_utc);
CREATE INDEX calls_status ON calls (status, started_at_utc);
CREATE INDEX calls_agent_campaign ON calls (agent, campaign, started_at_utc);
CREATE INDEX calls_deletion ON calls (deletion_id);
CREATE TABLE legal_holds (
    id               INTEGER PRIMARY KEY,
    scope            TEXT NOT NULL CHECK (scope IN ('call', 'agent', 'numbers')),
    call_id          INTEGER REFERENCES calls (id),
    agent            TEXT,
    number_from      TEXT,
    number_to        TEXT,
    reason           TEXT NOT NULL CHECK (length(trim(reason)) > 0),
    placed_by        TEXT NOT NULL,
    placed_at_utc    TEXT NOT NULL,
    released_by      TEXT,
    released_at_utc  TEXT,
    release_reason   TEXT,
    CHECK ((scope = 'call') = (call_id IS NOT NULL)),
    CHECK ((scope = 'agent') = (agent IS NOT NULL)),
    CHECK ((scope = 'numbers') = (number_from IS NOT NULL AND number_to IS NOT NULL)),
    -- Four eyes: the admin who placed a hold can never be the one who releases it.
    CHECK (released_by IS NULL OR released_by <> placed_by)
);
CREATE INDEX legal_holds_active ON legal_holds (released_at_utc);
CREATE TABLE alarms (
    id              INTEGER PRIMARY KEY,
    kind            TEXT NOT NULL,
    detail          TEXT NOT NULL,
    raised_at_utc   TEXT NOT NULL,
    cleared_at_utc  TEXT
);
CREATE UNIQUE INDEX alarms_active ON alarms (kind) WHERE cleared_at_utc IS NULL;
