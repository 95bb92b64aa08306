-- Schema migration 2: upgrades version 1 to 2.
-- Search indexes on calls and tags; web accounts, sessions, API tokens, notes, and the
-- hash-chained audit log (append-only by trigger).
-- Embedded by store::MIGRATIONS and run once per index, in one transaction. Never edit
-- this file once it has shipped (an index already past it would never see the change):
-- append a new migration instead.

CREATE INDEX calls_number ON calls (remote_number);
CREATE INDEX calls_duration ON calls (duration_ms);
CREATE INDEX calls_campaign ON calls (campaign, started_at_utc);
CREATE INDEX call_tags_tag ON call_tags (tag, call_id);
CREATE TABLE users (
    id                      INTEGER PRIMARY KEY,
    username                TEXT NOT NULL UNIQUE,
    role                    TEXT NOT NULL CHECK (role IN ('admin', 'supervisor', 'qa', 'agent', 'auditor')),
    agent_id                TEXT,
    team                    TEXT,
    password_hash           TEXT NOT NULL,
    must_change             INTEGER NOT NULL DEFAULT 1,
    disabled                INTEGER NOT NULL DEFAULT 0,
    failed_logins           INTEGER NOT NULL DEFAULT 0,
    locked_until_utc        TEXT,
    created_at_utc          TEXT NOT NULL,
    password_changed_at_utc TEXT
);
CREATE TABLE sessions (
    token_sha256     TEXT PRIMARY KEY,
    user_id          INTEGER NOT NULL REFERENCES users (id),
    csrf             TEXT NOT NULL,
    created_at_utc   TEXT NOT NULL,
    last_seen_utc    TEXT NOT NULL,
    ip               TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE TABLE session_plays (
    token_sha256  TEXT NOT NULL REFERENCES sessions (token_sha256) ON DELETE CASCADE,
    call_id       INTEGER NOT NULL REFERENCES calls (id),
    PRIMARY KEY (token_sha256, call_id)
);
CREATE TABLE api_tokens (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    token_sha256    TEXT NOT NULL UNIQUE,
    created_by      TEXT NOT NULL,
    created_at_utc  TEXT NOT NULL,
    revoked_at_utc  TEXT,
    last_used_utc   TEXT
);
CREATE TABLE notes (
    id              INTEGER PRIMARY KEY,
    call_id         INTEGER NOT NULL REFERENCES calls (id),
    at_ms           INTEGER NOT NULL CHECK (at_ms >= 0),
    author          TEXT NOT NULL,
    text            TEXT NOT NULL,
    created_at_utc  TEXT NOT NULL,
    deleted_at_utc  TEXT
);
CREATE INDEX notes_call ON notes (call_id);
CREATE TABLE audit (
    id         INTEGER PRIMARY KEY,
    at_utc     TEXT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    call_id    INTEGER,
    detail     TEXT NOT NULL,
    ip         TEXT,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE INDEX audit_at ON audit (at_utc);
CREATE INDEX audit_actor ON audit (actor, id);
CREATE INDEX audit_action ON audit (action, id);
CREATE INDEX audit_call ON audit (call_id, id);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
