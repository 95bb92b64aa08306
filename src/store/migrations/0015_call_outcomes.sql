-- Schema migration 15: upgrades version 14 to 15.
-- Call outcomes (disposition codes): a per-campaign catalogue, the call's current outcome, and
-- the history of every setting (who, what, when, from where). store::outcomes is the only writer.
-- Embedded by store::MIGRATIONS and run once per index, in one transaction. Never edit
-- this file once it has shipped (an index already past it would never see the change):
-- append a new migration instead.

-- The allowed outcomes of a campaign; campaign `default` is the list of every campaign that has
-- none of its own. `takes_amount`: the outcome may carry an amount (a sale's value); no other
-- outcome may. `position` orders the list as the admin wrote it.
CREATE TABLE outcome_codes (
    campaign      TEXT NOT NULL,
    code          TEXT NOT NULL,
    label         TEXT NOT NULL,
    class         TEXT NOT NULL CHECK (class IN ('positive', 'negative', 'do_not_call',
                      'callback', 'not_right_party', 'other')),
    takes_amount  INTEGER NOT NULL DEFAULT 0 CHECK (takes_amount IN (0, 1)),
    position      INTEGER NOT NULL,
    PRIMARY KEY (campaign, code)
) WITHOUT ROWID;

-- Every outcome ever set on a call, oldest first; the newest is copied onto the call's row.
-- The class is the one the code had when it was set, so a later change of the catalogue does
-- not rewrite what a figure was computed from. Amounts are in hundredths of the currency unit
-- (no binary fractions in sums).
CREATE TABLE call_outcome_history (
    id               INTEGER PRIMARY KEY,
    call_id          INTEGER NOT NULL REFERENCES calls (id),
    code             TEXT NOT NULL,
    class            TEXT NOT NULL,
    amount_minor     INTEGER CHECK (amount_minor IS NULL OR amount_minor >= 0),
    source           TEXT NOT NULL CHECK (source IN ('cti', 'web', 'import', 'cli')),
    set_by           TEXT NOT NULL,
    set_at_utc       TEXT NOT NULL
);
CREATE INDEX call_outcome_history_by_call ON call_outcome_history (call_id, id);

-- The current outcome, on the row itself so that search filters on it like on any column.
ALTER TABLE calls ADD COLUMN outcome TEXT;
ALTER TABLE calls ADD COLUMN outcome_class TEXT;
ALTER TABLE calls ADD COLUMN outcome_amount_minor INTEGER;
CREATE INDEX calls_by_outcome ON calls (outcome) WHERE outcome IS NOT NULL;

-- History is a record: never rewritten, never removed except with its call.
CREATE TRIGGER call_outcome_history_no_update BEFORE UPDATE ON call_outcome_history
    BEGIN SELECT RAISE(ABORT, 'outcome history is never rewritten: set a new outcome instead'); END;
-- Nothing is added to a call whose deletion has begun (as migration 13 for notes).
CREATE TRIGGER call_outcome_history_only_on_live_calls BEFORE INSERT ON call_outcome_history
    WHEN (SELECT status FROM calls WHERE id = NEW.call_id) IN ('garbage', 'deleted')
    BEGIN SELECT RAISE(ABORT, 'call deleted: nothing can be added to a deleted call'); END;
