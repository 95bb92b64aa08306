-- Schema migration 1: upgrades version 0 to 1.
-- The call index: calls, their pause/gap intervals, and tags.
-- Embedded by store::MIGRATIONS and run once per index, in one transaction. Never edit
-- this file once it has shipped (an index already past it would never see the change):
-- append a new migration instead.

CREATE TABLE calls (
    id               INTEGER PRIMARY KEY,
    box_id           TEXT NOT NULL,
    seat_id          TEXT NOT NULL,
    mode             TEXT NOT NULL CHECK (mode IN ('control', 'vox', 'continuous')),
    status           TEXT NOT NULL CHECK (status IN ('recording', 'complete', 'interrupted')),
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
    note             TEXT
);
CREATE INDEX calls_started ON calls (started_at_utc);
CREATE INDEX calls_seat ON calls (seat_id, started_at_utc);
CREATE INDEX calls_agent ON calls (agent, started_at_utc);
CREATE INDEX calls_status ON calls (status);
CREATE TABLE call_intervals (
    id        INTEGER PRIMARY KEY,
    call_id   INTEGER NOT NULL REFERENCES calls (id),
    kind      TEXT NOT NULL CHECK (kind IN ('pause', 'gap')),
    start_ms  INTEGER NOT NULL,
    end_ms    INTEGER,
    by        TEXT,
    reason    TEXT
);
CREATE INDEX call_intervals_call ON call_intervals (call_id);
CREATE TABLE call_tags (
    call_id  INTEGER NOT NULL REFERENCES calls (id),
    tag      TEXT NOT NULL,
    PRIMARY KEY (call_id, tag)
);
