-- Schema migration 16: upgrades version 15 to 16.
-- Agent states from the CTI (login, logout, wrap-up, ready; hold as an interval of the call)
-- and each call's handle time: talk, hold and after-call work. store::agent_states is the only
-- writer of the new table and columns. And targets: a lead's goals for the figures
-- (store::targets, its only writer).
-- Embedded by store::MIGRATIONS and run once per index, in one transaction. Never edit
-- this file once it has shipped (an index already past it would never see the change):
-- append a new migration instead.

-- Intervals gain the kind `hold`: the CTI put the customer on hold. Unlike a pause it only marks
-- time (the audio is recorded as ever). SQLite cannot change a CHECK constraint in place, so the
-- table is rebuilt the way https://sqlite.org/lang_altertable.html#otheralter says (no other
-- table, trigger or view refers to it).
CREATE TABLE call_intervals_v16 (
    id        INTEGER PRIMARY KEY,
    call_id   INTEGER NOT NULL REFERENCES calls (id),
    kind      TEXT NOT NULL CHECK (kind IN ('pause', 'gap', 'hold')),
    start_ms  INTEGER NOT NULL,
    end_ms    INTEGER,
    by        TEXT,
    reason    TEXT
);
INSERT INTO call_intervals_v16 (id, call_id, kind, start_ms, end_ms, by, reason)
    SELECT id, call_id, kind, start_ms, end_ms, by, reason FROM call_intervals;
DROP TABLE call_intervals;
ALTER TABLE call_intervals_v16 RENAME TO call_intervals;
CREATE INDEX call_intervals_call ON call_intervals (call_id);

-- Handle time per call, in milliseconds. talk_ms + hold_ms = duration_ms (hold is the union of
-- the call's hold intervals), set when the call ends; acw_ms is the after-call work, the sum of
-- the call's wrap-up → ready spans, set when a wrap-up ends. NULL: not known (a call from before
-- this version, an imported one, or no wrap-up): the figures count such a call's duration as talk
-- and its hold and ACW as zero.
ALTER TABLE calls ADD COLUMN talk_ms INTEGER CHECK (talk_ms IS NULL OR talk_ms >= 0);
ALTER TABLE calls ADD COLUMN hold_ms INTEGER CHECK (hold_ms IS NULL OR hold_ms >= 0);
ALTER TABLE calls ADD COLUMN acw_ms INTEGER CHECK (acw_ms IS NULL OR acw_ms >= 0);

-- Every agent state the CTI reported at a seat, oldest first, and the ones the recorder implied
-- (`source = 'system'`: a login replacing another agent's logs that one out, a new call or a
-- logout ends a wrap-up, a recorder start logs every seat out). Logged-in time is login → the
-- seat's next login or logout; after-call work is wrapup → the seat's next ready (both rows name
-- the call). A record: never rewritten.
CREATE TABLE agent_states (
    id        INTEGER PRIMARY KEY,
    seat_id   TEXT NOT NULL,
    agent     TEXT,
    state     TEXT NOT NULL CHECK (state IN ('login', 'logout', 'wrapup', 'ready')),
    call_id   INTEGER REFERENCES calls (id),
    at_utc    TEXT NOT NULL,
    source    TEXT NOT NULL CHECK (source IN ('cti', 'system')),
    by        TEXT NOT NULL
);
CREATE INDEX agent_states_by_seat ON agent_states (seat_id, id);
CREATE INDEX agent_states_by_agent ON agent_states (agent, at_utc) WHERE state = 'login';
CREATE TRIGGER agent_states_no_update BEFORE UPDATE ON agent_states
    BEGIN SELECT RAISE(ABORT, 'agent states are a record: they are never rewritten'); END;

-- A goal for one figure (store::figures) of a team or a campaign, per day, week (from Monday)
-- or calendar month, UTC; direction: which way is better; tolerance: how far on the wrong side
-- of the goal still counts as near, in the figure's units. Setting one again replaces it (the
-- audit row `target.set` keeps the previous one).
CREATE TABLE figure_targets (
    scope_kind  TEXT NOT NULL CHECK (scope_kind IN ('team', 'campaign')),
    scope       TEXT NOT NULL,
    figure      TEXT NOT NULL,
    period      TEXT NOT NULL CHECK (period IN ('day', 'week', 'month')),
    goal        REAL NOT NULL,
    direction   TEXT NOT NULL CHECK (direction IN ('higher', 'lower')),
    tolerance   REAL NOT NULL CHECK (tolerance >= 0),
    set_by      TEXT NOT NULL,
    set_at_utc  TEXT NOT NULL,
    PRIMARY KEY (scope_kind, scope, figure, period)
) WITHOUT ROWID;
