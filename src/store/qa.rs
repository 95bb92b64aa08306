//! Scorecards (versioned) and evaluations with their disputes.
//!
//! A scorecard is stored as JSON with its content hash. Saving a card whose content changed
//! updates it in place only while no evaluation uses it; once used it is never edited: the change
//! becomes version + 1, so every evaluation keeps the exact form it was scored on.
//!
//! Evaluation life cycle: `draft` (reviewer saves answers) → `submitted` (scored) → the agent
//! `acknowledged` it, or `disputed` one or more questions → the reviewer decides each dispute
//! (`upheld`, `changed` with a new answer and a re-score, or `accepted`: the agent is right and
//! the question gets full marks) → `resolved`. Every step is audited by the caller.

use super::StoreError;
use crate::qa::scorecard::{self, AnswerEntry, Score, Scorecard};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum QaError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Card(#[from] scorecard::CardError),
    #[error(transparent)]
    Answers(#[from] scorecard::AnswerError),
    #[error("no scorecard {0:?}; list them with GET /api/scorecards")]
    NoCard(String),
    #[error("no evaluation {0}")]
    NoEvaluation(i64),
    #[error("evaluation {id} is {status}; {what}")]
    WrongState {
        id: i64,
        status: String,
        what: &'static str,
    },
    #[error("{0}")]
    Invalid(String),
}

impl From<rusqlite::Error> for QaError {
    fn from(e: rusqlite::Error) -> Self {
        QaError::Store(StoreError::Sql(e))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StoredCard {
    /// Row id: evaluations point at this exact version.
    pub row_id: i64,
    pub used: bool,
    pub card: Scorecard,
}

fn row_to_card(r: &rusqlite::Row) -> rusqlite::Result<(i64, bool, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
}

fn parse_stored((row_id, used, body): (i64, bool, String)) -> Result<StoredCard, QaError> {
    Ok(StoredCard {
        row_id,
        used,
        card: scorecard::from_json(&body)?,
    })
}

const CARD_SELECT: &str =
    "SELECT s.id, EXISTS (SELECT 1 FROM evaluations e WHERE e.scorecard_id = s.id), s.body
     FROM scorecards s";

/// The newest version of a card.
pub fn latest_card(conn: &Connection, slug: &str) -> Result<Option<StoredCard>, QaError> {
    conn.query_row(
        &format!("{CARD_SELECT} WHERE s.slug = ?1 ORDER BY s.version DESC LIMIT 1"),
        [slug],
        row_to_card,
    )
    .optional()?
    .map(parse_stored)
    .transpose()
}

pub fn card_version(
    conn: &Connection,
    slug: &str,
    version: u32,
) -> Result<Option<StoredCard>, QaError> {
    conn.query_row(
        &format!("{CARD_SELECT} WHERE s.slug = ?1 AND s.version = ?2"),
        params![slug, version],
        row_to_card,
    )
    .optional()?
    .map(parse_stored)
    .transpose()
}

pub fn card_by_row(conn: &Connection, row_id: i64) -> Result<StoredCard, QaError> {
    conn.query_row(
        &format!("{CARD_SELECT} WHERE s.id = ?1"),
        [row_id],
        row_to_card,
    )
    .optional()?
    .map(parse_stored)
    .transpose()?
    .ok_or_else(|| QaError::NoCard(format!("#{row_id}")))
}

/// The newest version of every card.
pub fn list_cards(conn: &Connection) -> Result<Vec<StoredCard>, QaError> {
    let mut st = conn.prepare(&format!(
        "{CARD_SELECT} WHERE s.version = (SELECT max(version) FROM scorecards x WHERE x.slug = s.slug) ORDER BY s.slug"
    ))?;
    let rows: Vec<(i64, bool, String)> =
        st.query_map([], row_to_card)?.collect::<Result<_, _>>()?;
    rows.into_iter().map(parse_stored).collect()
}

/// Saves a card: new slug → version 1; unchanged → nothing; changed and unused → in place;
/// changed and used → version + 1. Returns the stored version.
pub fn save_card(conn: &Connection, card: &Scorecard, by: &str) -> Result<StoredCard, QaError> {
    scorecard::validate(card)?;
    let hash = scorecard::content_hash(card);
    let now = crate::clock::utc_now();
    let prev = latest_card(conn, &card.id)?;
    let version = match &prev {
        Some(p) if scorecard::content_hash(&p.card) == hash => return Ok(p.clone()),
        Some(p) if !p.used => {
            let mut c = card.clone();
            c.version = p.card.version;
            conn.execute(
                "UPDATE scorecards SET name = ?2, content_hash = ?3, body = ?4, created_by = ?5, created_at_utc = ?6 WHERE id = ?1",
                params![p.row_id, c.name, hash, scorecard::to_json(&c)?, by, now],
            )?;
            return card_by_row(conn, p.row_id);
        }
        Some(p) => p.card.version + 1,
        None => 1,
    };
    let mut c = card.clone();
    c.version = version;
    conn.execute(
        "INSERT INTO scorecards (slug, version, name, content_hash, body, created_by, created_at_utc)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![c.id, version, c.name, hash, scorecard::to_json(&c)?, by, now],
    )?;
    card_by_row(conn, conn.last_insert_rowid())
}

/// Installs the shipped cards that are not there yet (a box always has a form to start with).
pub fn seed_default_cards(conn: &Connection) -> Result<Vec<String>, QaError> {
    let mut added = Vec::new();
    for card in scorecard::defaults() {
        if latest_card(conn, &card.id)?.is_none() {
            save_card(conn, &card, "system")?;
            added.push(card.id.clone());
        }
    }
    Ok(added)
}

#[derive(Debug, Clone, Serialize)]
pub struct Dispute {
    pub id: i64,
    pub q: String,
    pub reason: String,
    pub raised_by: String,
    pub raised_at_utc: String,
    pub decision: Option<String>,
    pub decided_by: Option<String>,
    pub decision_note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub id: i64,
    pub call_id: i64,
    pub scorecard: String,
    pub scorecard_version: u32,
    pub scorecard_row: i64,
    pub reviewer: String,
    /// The call's agent when the evaluation was made.
    pub agent: Option<String>,
    pub status: String,
    pub answers: Vec<AnswerEntry>,
    pub comment: Option<String>,
    pub score: Option<Score>,
    pub created_at_utc: String,
    pub submitted_at_utc: Option<String>,
    pub disputes: Vec<Dispute>,
    /// The calibration session this evaluation belongs to; None for an ordinary evaluation.
    pub calibration_id: Option<i64>,
}

pub fn create_evaluation(
    conn: &Connection,
    call_id: i64,
    card_row: i64,
    reviewer: &str,
    agent: Option<&str>,
) -> Result<i64, QaError> {
    let now = crate::clock::utc_now();
    conn.execute(
        "INSERT INTO evaluations (call_id, scorecard_id, reviewer, agent, status, answers, created_at_utc, updated_at_utc)
         VALUES (?1, ?2, ?3, ?4, 'draft', '[]', ?5, ?5)",
        params![call_id, card_row, reviewer, agent, now],
    )?;
    Ok(conn.last_insert_rowid())
}

/// A reviewer's draft in calibration session `calibration_id` (see `store::calibration`).
///
/// Unlike [`create_evaluation`] it records no agent: a calibration scores the reviewers, not the
/// agent, so the per-agent reports (which group by `agent`) leave it out and the agent is not
/// asked to acknowledge or dispute several practice scores of one call.
pub fn create_calibration_evaluation(
    conn: &Connection,
    call_id: i64,
    card_row_id: i64,
    reviewer: &str,
    calibration_id: i64,
) -> Result<i64, QaError> {
    let now = crate::clock::utc_now();
    conn.execute(
        "INSERT INTO evaluations (call_id, scorecard_id, reviewer, agent, status, answers, created_at_utc, updated_at_utc, calibration_id)
         VALUES (?1, ?2, ?3, NULL, 'draft', '[]', ?4, ?4, ?5)",
        params![call_id, card_row_id, reviewer, now, calibration_id],
    )?;
    Ok(conn.last_insert_rowid())
}

pub fn get_evaluation(conn: &Connection, id: i64) -> Result<Evaluation, QaError> {
    let row = conn
        .query_row(
            "SELECT e.id, e.call_id, s.slug, s.version, s.id, e.reviewer, e.agent, e.status, e.answers, e.comment,
                    e.score, e.created_at_utc, e.submitted_at_utc, e.calibration_id
             FROM evaluations e JOIN scorecards s ON s.id = e.scorecard_id WHERE e.id = ?1",
            [id],
            |r| {
                Ok((
                    (r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?, r.get::<_, u32>(3)?, r.get::<_, i64>(4)?),
                    (r.get::<_, String>(5)?, r.get::<_, Option<String>>(6)?, r.get::<_, String>(7)?, r.get::<_, String>(8)?),
                    (r.get::<_, Option<String>>(9)?, r.get::<_, Option<String>>(10)?, r.get::<_, String>(11)?, r.get::<_, Option<String>>(12)?, r.get::<_, Option<i64>>(13)?),
                ))
            },
        )
        .optional()?
        .ok_or(QaError::NoEvaluation(id))?;
    let (
        (id, call_id, scorecard, scorecard_version, scorecard_row),
        (reviewer, agent, status, answers),
        (comment, score, created_at_utc, submitted_at_utc, calibration_id),
    ) = row;
    let mut st = conn.prepare_cached(
        "SELECT id, question, reason, raised_by, raised_at_utc, decision, decided_by, decision_note
         FROM evaluation_disputes WHERE evaluation_id = ?1 ORDER BY id",
    )?;
    let disputes = st
        .query_map([id], |r| {
            Ok(Dispute {
                id: r.get(0)?,
                q: r.get(1)?,
                reason: r.get(2)?,
                raised_by: r.get(3)?,
                raised_at_utc: r.get(4)?,
                decision: r.get(5)?,
                decided_by: r.get(6)?,
                decision_note: r.get(7)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(Evaluation {
        id,
        call_id,
        scorecard,
        scorecard_version,
        scorecard_row,
        reviewer,
        agent,
        status,
        answers: serde_json::from_str(&answers).unwrap_or_default(),
        comment,
        score: score.and_then(|s| serde_json::from_str(&s).ok()),
        created_at_utc,
        submitted_at_utc,
        disputes,
        calibration_id,
    })
}

/// Evaluations of a call, oldest first.
pub fn evaluations_for_call(conn: &Connection, call_id: i64) -> Result<Vec<Evaluation>, QaError> {
    let ids: Vec<i64> = conn
        .prepare_cached("SELECT id FROM evaluations WHERE call_id = ?1 ORDER BY id")?
        .query_map([call_id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    ids.into_iter().map(|id| get_evaluation(conn, id)).collect()
}

fn set_state(conn: &Connection, id: i64, status: &str) -> Result<(), QaError> {
    conn.execute(
        "UPDATE evaluations SET status = ?2, updated_at_utc = ?3 WHERE id = ?1",
        params![id, status, crate::clock::utc_now()],
    )?;
    Ok(())
}

/// Saves a draft's answers (partial answers are fine until submit).
pub fn save_answers(
    conn: &Connection,
    id: i64,
    answers: &[AnswerEntry],
    comment: Option<&str>,
) -> Result<(), QaError> {
    let e = get_evaluation(conn, id)?;
    if e.status != "draft" {
        return Err(QaError::WrongState {
            id,
            status: e.status,
            what: "only a draft can be edited",
        });
    }
    conn.execute(
        "UPDATE evaluations SET answers = ?2, comment = ?3, updated_at_utc = ?4 WHERE id = ?1",
        params![
            id,
            serde_json::to_string(answers).unwrap_or_else(|_| "[]".into()),
            comment,
            crate::clock::utc_now()
        ],
    )?;
    Ok(())
}

fn store_score(
    conn: &Connection,
    id: i64,
    answers: &[AnswerEntry],
    score: &Score,
) -> Result<(), QaError> {
    conn.execute(
        "UPDATE evaluations SET answers = ?2, score = ?3, score_percent = ?4, passed = ?5, updated_at_utc = ?6 WHERE id = ?1",
        params![
            id,
            serde_json::to_string(answers).unwrap_or_else(|_| "[]".into()),
            serde_json::to_string(score).unwrap_or_else(|_| "null".into()),
            score.percent,
            score.passed,
            crate::clock::utc_now()
        ],
    )?;
    Ok(())
}

/// Scores the draft; every question must be answered. Returns the score.
pub fn submit(conn: &Connection, id: i64) -> Result<Score, QaError> {
    let e = get_evaluation(conn, id)?;
    if e.status != "draft" {
        return Err(QaError::WrongState {
            id,
            status: e.status,
            what: "it was submitted already",
        });
    }
    let card = card_by_row(conn, e.scorecard_row)?.card;
    let score = scorecard::score(&card, &e.answers)?;
    store_score(conn, id, &e.answers, &score)?;
    conn.execute(
        "UPDATE evaluations SET status = 'submitted', submitted_at_utc = ?2 WHERE id = ?1",
        params![id, crate::clock::utc_now()],
    )?;
    Ok(score)
}

pub fn acknowledge(conn: &Connection, id: i64) -> Result<(), QaError> {
    let e = get_evaluation(conn, id)?;
    if e.status != "submitted" && e.status != "resolved" {
        return Err(QaError::WrongState {
            id,
            status: e.status,
            what: "only a submitted or resolved evaluation can be acknowledged",
        });
    }
    set_state(conn, id, "acknowledged")
}

/// The agent disputes one question's answer.
pub fn dispute(
    conn: &Connection,
    id: i64,
    q: &str,
    reason: &str,
    by: &str,
) -> Result<i64, QaError> {
    let e = get_evaluation(conn, id)?;
    if e.status != "submitted" && e.status != "disputed" {
        return Err(QaError::WrongState {
            id,
            status: e.status,
            what: "only a submitted evaluation can be disputed",
        });
    }
    if !e.answers.iter().any(|a| a.q == q) {
        return Err(QaError::Invalid(format!(
            "evaluation {id} has no question {q:?}"
        )));
    }
    if reason.trim().chars().count() < 10 {
        return Err(QaError::Invalid(
            "a dispute needs a reason of at least 10 characters saying what the reviewer missed"
                .into(),
        ));
    }
    if e.disputes.iter().any(|d| d.q == q && d.decision.is_none()) {
        return Err(QaError::Invalid(format!(
            "question {q:?} is already disputed and awaits the reviewer"
        )));
    }
    conn.execute(
        "INSERT INTO evaluation_disputes (evaluation_id, question, reason, raised_by, raised_at_utc) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, q, reason.trim(), by, crate::clock::utc_now()],
    )?;
    let did = conn.last_insert_rowid();
    set_state(conn, id, "disputed")?;
    Ok(did)
}

/// The reviewer decides a dispute: `upheld` (answer stays), `changed` (to `value`, re-scored),
/// or `accepted` (the agent is right: the question gets full marks, re-scored).
/// When no dispute is left open the evaluation becomes `resolved`.
pub fn resolve(
    conn: &Connection,
    id: i64,
    dispute_id: i64,
    decision: &str,
    value: Option<scorecard::Answer>,
    note: Option<&str>,
    by: &str,
) -> Result<Score, QaError> {
    let e = get_evaluation(conn, id)?;
    let Some(d) = e
        .disputes
        .iter()
        .find(|d| d.id == dispute_id && d.decision.is_none())
    else {
        return Err(QaError::Invalid(format!(
            "evaluation {id} has no open dispute {dispute_id}"
        )));
    };
    let card = card_by_row(conn, e.scorecard_row)?.card;
    let mut answers = e.answers.clone();
    let new_value = match decision {
        "upheld" => None,
        "changed" => Some(value.ok_or_else(|| {
            QaError::Invalid("a `changed` decision needs the new `value`".into())
        })?),
        "accepted" => Some(
            scorecard::full_marks_answer(&card, &d.q)
                .ok_or_else(|| QaError::Invalid(format!("no question {:?}", d.q)))?,
        ),
        other => {
            return Err(QaError::Invalid(format!(
                "decision {other:?} must be upheld, changed or accepted"
            )))
        }
    };
    if let Some(v) = &new_value {
        if let Some(a) = answers.iter_mut().find(|a| a.q == d.q) {
            a.value = *v;
        }
    }
    let score = scorecard::score(&card, &answers)?;
    store_score(conn, id, &answers, &score)?;
    conn.execute(
        "UPDATE evaluation_disputes SET decision = ?2, new_value = ?3, decided_by = ?4, decided_at_utc = ?5, decision_note = ?6 WHERE id = ?1",
        params![
            dispute_id,
            decision,
            new_value.map(|v| serde_json::to_string(&v).unwrap_or_default()),
            by,
            crate::clock::utc_now(),
            note
        ],
    )?;
    let open: i64 = conn.query_row(
        "SELECT count(*) FROM evaluation_disputes WHERE evaluation_id = ?1 AND decision IS NULL",
        [id],
        |r| r.get(0),
    )?;
    if open == 0 {
        set_state(conn, id, "resolved")?;
    }
    Ok(score)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qa::scorecard::Answer;
    use crate::store::testutil::{TempStore, TestCall, TestResult};

    fn answers_all_yes(card: &Scorecard) -> Vec<AnswerEntry> {
        card.sections
            .iter()
            .flat_map(|s| &s.questions)
            // A question without a full-marks answer is left out; submit then names it.
            .filter_map(|q| {
                scorecard::full_marks_answer(card, &q.id).map(|v| AnswerEntry::new(q.id.clone(), v))
            })
            .collect()
    }

    #[test]
    fn versions_once_used_and_dispute_life_cycle() -> TestResult {
        let TempStore { dir: _dir, conn } = TempStore::new()?;
        assert_eq!(seed_default_cards(&conn)?.len(), 3);
        assert!(
            seed_default_cards(&conn)?.is_empty(),
            "seeding twice adds nothing"
        );
        let v1 = latest_card(&conn, "complaint")?.ok_or("not found")?;
        assert_eq!((v1.card.version, v1.used), (1, false));

        // Unused: an edit replaces version 1 in place.
        let mut edited = v1.card.clone();
        edited.name = "Complaint handling (edited)".into();
        let same = save_card(&conn, &edited, "lead")?;
        assert_eq!((same.row_id, same.card.version), (v1.row_id, 1));

        let call = TestCall::new().agent("alice").insert(&conn)?.id;
        let ev = create_evaluation(&conn, call, v1.row_id, "rita", Some("alice"))?;
        // Used now: the next edit becomes version 2; the evaluation keeps version 1.
        edited.name = "Complaint handling v2".into();
        let v2 = save_card(&conn, &edited, "lead")?;
        assert_eq!(v2.card.version, 2);
        assert_ne!(v2.row_id, v1.row_id);
        assert_eq!(get_evaluation(&conn, ev)?.scorecard_version, 1);

        // Submit needs every answer.
        assert!(matches!(submit(&conn, ev), Err(QaError::Answers(_))));
        let mut answers = answers_all_yes(&same.card);
        answers[0].value = Answer::No;
        answers[0].at_ms = Some(4200);
        save_answers(&conn, ev, &answers, Some("missed the acknowledgement"))?;
        let s = submit(&conn, ev)?;
        assert!(s.percent.ok_or("not scorable")? < 100.0);
        assert!(
            save_answers(&conn, ev, &answers, None).is_err(),
            "no edits after submit"
        );

        // The agent disputes the failed question; a short reason is refused.
        let q = answers[0].q.clone();
        assert!(dispute(&conn, ev, &q, "no", "alice").is_err());
        let d = dispute(
            &conn,
            ev,
            &q,
            "I acknowledged at 0:03, listen again",
            "alice",
        )?;
        assert_eq!(get_evaluation(&conn, ev)?.status, "disputed");
        let after = resolve(&conn, ev, d, "accepted", None, Some("agreed"), "rita")?;
        assert_eq!(after.percent, Some(100.0));
        let e = get_evaluation(&conn, ev)?;
        assert_eq!(e.status, "resolved");
        assert_eq!(e.answers[0].at_ms, Some(4200), "the moment heard is kept");
        assert_eq!(e.disputes[0].decision.as_deref(), Some("accepted"));
        acknowledge(&conn, ev)?;
        assert_eq!(get_evaluation(&conn, ev)?.status, "acknowledged");
        Ok(())
    }
}
