-- Schema migration 3: upgrades version 2 to 3.
-- Per-call conversation metrics (talk time, dead air, overtalk).
-- Embedded by store::MIGRATIONS and run once per index, in one transaction. Never edit
-- this file once it has shipped (an index already past it would never see the change):
-- append a new migration instead.

CREATE TABLE call_metrics (
    call_id                   INTEGER PRIMARY KEY REFERENCES calls (id),
    agent_talk_ms             INTEGER NOT NULL,
    customer_talk_ms          INTEGER NOT NULL,
    talk_ratio                REAL,
    dead_air_count            INTEGER NOT NULL,
    dead_air_total_ms         INTEGER NOT NULL,
    dead_air_longest_ms       INTEGER NOT NULL,
    overtalk_count            INTEGER NOT NULL,
    overtalk_total_ms         INTEGER NOT NULL,
    agent_interruptions       INTEGER NOT NULL,
    response_latency_mean_ms  INTEGER,
    response_latency_max_ms   INTEGER,
    longest_silence_ms        INTEGER NOT NULL,
    detail                    TEXT NOT NULL
);
CREATE INDEX call_metrics_dead_air ON call_metrics (dead_air_longest_ms);
CREATE INDEX call_metrics_overtalk ON call_metrics (overtalk_total_ms);
