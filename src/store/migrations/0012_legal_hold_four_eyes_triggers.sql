-- Schema migration 12: upgrades version 11 to 12.
-- Four eyes on legal holds, enforced by the database whatever tool writes to it. Migration 11's
-- CHECK only stopped `released_by = placed_by`; these triggers also stop the other ways round
-- it: a hold row is never deleted, what was placed (scope, call, agent, numbers, reason, who and
-- when) never changes, a release names its releasing admin (another one than the placer), and
-- a release is final (never undone, never rewritten). store::holds is the only writer.
-- Embedded by store::MIGRATIONS and run once per index, in one transaction. Never edit
-- this file once it has shipped (an index already past it would never see the change):
-- append a new migration instead.

CREATE TRIGGER legal_holds_no_delete BEFORE DELETE ON legal_holds
    BEGIN SELECT RAISE(ABORT, 'legal holds are never deleted: a second admin releases a hold (callrec hold release)'); END;
CREATE TRIGGER legal_holds_placement_fixed BEFORE UPDATE OF scope, call_id, agent, number_from,
    number_to, reason, placed_by, placed_at_utc, id ON legal_holds
    WHEN NEW.id IS NOT OLD.id OR NEW.scope IS NOT OLD.scope OR NEW.call_id IS NOT OLD.call_id
        OR NEW.agent IS NOT OLD.agent OR NEW.number_from IS NOT OLD.number_from
        OR NEW.number_to IS NOT OLD.number_to OR NEW.reason IS NOT OLD.reason
        OR NEW.placed_by IS NOT OLD.placed_by OR NEW.placed_at_utc IS NOT OLD.placed_at_utc
    BEGIN SELECT RAISE(ABORT, 'a legal hold''s placement never changes: release it and place a new one'); END;
CREATE TRIGGER legal_holds_release_final BEFORE UPDATE OF released_by, released_at_utc,
    release_reason ON legal_holds
    WHEN OLD.released_at_utc IS NOT NULL
        AND (NEW.released_at_utc IS NOT OLD.released_at_utc OR NEW.released_by IS NOT OLD.released_by
            OR NEW.release_reason IS NOT OLD.release_reason)
    BEGIN SELECT RAISE(ABORT, 'a legal hold''s release is final: place a new hold instead'); END;
CREATE TRIGGER legal_holds_release_named BEFORE UPDATE OF released_by, released_at_utc,
    release_reason ON legal_holds
    WHEN OLD.released_at_utc IS NULL
        AND (NEW.released_at_utc IS NOT NULL OR NEW.released_by IS NOT NULL
            OR NEW.release_reason IS NOT NULL)
        AND (NEW.released_at_utc IS NULL OR NEW.released_by IS NULL
            OR NEW.released_by = OLD.placed_by
            OR NEW.release_reason IS NULL OR length(trim(NEW.release_reason)) = 0)
    BEGIN SELECT RAISE(ABORT, 'releasing a legal hold needs released_at_utc, a release_reason and released_by naming a second admin (not the one who placed it)'); END;
CREATE TRIGGER legal_holds_placed_unreleased BEFORE INSERT ON legal_holds
    WHEN NEW.released_at_utc IS NOT NULL OR NEW.released_by IS NOT NULL
        OR NEW.release_reason IS NOT NULL
    BEGIN SELECT RAISE(ABORT, 'a legal hold is placed unreleased; a second admin releases it later'); END;
