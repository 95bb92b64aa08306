//! Acoustic metrics per call (`dsp::talk`), stored when a call is finalized so that search and
//! sampling can filter on them. The searchable figures are columns; the spans behind them (for
//! drawing on the waveform) are one JSON document.

use super::StoreError;
use crate::dsp::talk::Metrics;
use rusqlite::{params, Connection, OptionalExtension};

pub fn put(conn: &Connection, call_id: i64, m: &Metrics) -> Result<(), StoreError> {
    let detail = serde_json::to_string(m).unwrap_or_else(|_| "{}".into());
    conn.execute(
        "INSERT OR REPLACE INTO call_metrics (call_id, agent_talk_ms, customer_talk_ms, talk_ratio,
             dead_air_count, dead_air_total_ms, dead_air_longest_ms, overtalk_count, overtalk_total_ms,
             agent_interruptions, response_latency_mean_ms, response_latency_max_ms, longest_silence_ms, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            call_id,
            m.agent_talk_ms,
            m.customer_talk_ms,
            m.talk_ratio,
            m.dead_air_count,
            m.dead_air_total_ms,
            m.dead_air_longest_ms,
            m.overtalk_count,
            m.overtalk_total_ms,
            m.agent_interruptions,
            m.response_latency_mean_ms,
            m.response_latency_max_ms,
            m.longest_silence_ms,
            detail
        ],
    )?;
    Ok(())
}

/// The stored metrics as JSON (the whole `Metrics` document), if computed.
pub fn get(conn: &Connection, call_id: i64) -> Result<Option<serde_json::Value>, StoreError> {
    let detail: Option<String> = conn
        .query_row(
            "SELECT detail FROM call_metrics WHERE call_id = ?1",
            [call_id],
            |r| r.get(0),
        )
        .optional()?;
    Ok(detail.and_then(|d| serde_json::from_str(&d).ok()))
}
