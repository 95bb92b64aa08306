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

/// The key under which [`get_for_archive`] adds each party's loudest frame to the document.
pub const LOUDEST_KEY: &str = "loudest_dbfs";

/// The metrics document as the archive carries it (the sidecar): [`get`]'s document plus each
/// party's loudest 20 ms frame (`store::completeness`), so an index rebuilt from the archive
/// judges one-sided calls as the box did. `hub::put_metrics_json` takes the key out again.
pub fn get_for_archive(
    conn: &Connection,
    call_id: i64,
) -> Result<Option<serde_json::Value>, StoreError> {
    let Some(mut doc) = get(conn, call_id)? else {
        return Ok(None);
    };
    let loudest: Option<(Option<f64>, Option<f64>)> = conn
        .query_row(
            "SELECT agent_loudest_dbfs, customer_loudest_dbfs FROM call_metrics WHERE call_id = ?1",
            [call_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let (Some((agent, customer)), Some(obj)) = (loudest, doc.as_object_mut()) {
        if agent.is_some() || customer.is_some() {
            obj.insert(
                LOUDEST_KEY.into(),
                serde_json::json!({ "agent": agent, "customer": customer }),
            );
        }
    }
    Ok(Some(doc))
}
