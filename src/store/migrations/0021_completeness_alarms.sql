-- Schema migration 21: upgrades version 20 to 21.
-- Proof that recording is complete (issue 16 item 4): alarms per seat, every call start the CTI
-- announced, and each call's loudest frame per party. store::alarms, store::completeness and
-- store::finalize_call's caller (record::call) are the writers. Embedded by store::MIGRATIONS
-- and run once per index, in one transaction. Never edit this file once it has shipped: append
-- a new migration instead.

-- An alarm is about a subject: '' for the box (disk_full, disk_pressure, archive_backlog, as
-- before), a seat id for the seat alarms. At most one alarm per kind and subject is active.
ALTER TABLE alarms ADD COLUMN subject TEXT NOT NULL DEFAULT '';
DROP INDEX alarms_active;
CREATE UNIQUE INDEX alarms_active ON alarms (kind, subject) WHERE cleared_at_utc IS NULL;

-- Every `start` the control socket received for a seat (the CTI announcing a call), written by
-- the recorder's indexer: `call_id` is the call it became, NULL when the start was refused or
-- failed (`refused` says why). A record: never rewritten.
CREATE TABLE call_announcements (
    id        INTEGER PRIMARY KEY,
    seat_id   TEXT NOT NULL,
    at_utc    TEXT NOT NULL,
    call_id   INTEGER REFERENCES calls (id),
    refused   TEXT,
    CHECK ((call_id IS NULL) <> (refused IS NULL))
);
CREATE INDEX call_announcements_by_time ON call_announcements (at_utc);
CREATE TRIGGER call_announcements_no_update BEFORE UPDATE ON call_announcements
    BEGIN SELECT RAISE(ABORT, 'call announcements are a record: they are never rewritten'); END;

-- The loudest 20 ms frame of each party over the call's unpaused audio, in dBFS (RMS), set when
-- the call finishes. NULL: not known (a call from before this version, recovered after a crash,
-- imported, or paused throughout); -120 is digital silence (dsp::level floors there).
ALTER TABLE call_metrics ADD COLUMN agent_loudest_dbfs REAL;
ALTER TABLE call_metrics ADD COLUMN customer_loudest_dbfs REAL;
