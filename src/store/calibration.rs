//! Calibration sessions: several reviewers score one call blind; results side by side.
//!
//! A lead picks a call, a scorecard version and at least two reviewers, optionally naming one of
//! them the *reference* (the expert the others are measured against, as in Playvox). Creating
//! the session gives every reviewer an ordinary draft evaluation with `calibration_id` set, so
//! scoring uses the normal evaluation life cycle ([`super::qa::save_answers`],
//! [`super::qa::submit`]). The [`result`] shows each question's answers side by side with their
//! spread, and each reviewer's distance from the reference.
//!
//! Blind: while a session is open a reviewer must never see another reviewer's answers
//! ([`may_see`] is the one rule every caller asks). This module must never change an answer or
//! a score, and never let a draft's answers into a result: only evaluations submitted before
//! the session closed count.

use super::qa::{self, QaError};
use crate::qa::scorecard::{self, Answer, Kind, Question};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// Most reviewers in one session: each gets a draft and a column in the result table.
pub const MAX_REVIEWERS: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum CalibrationError {
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error(transparent)]
    Qa(#[from] QaError),
    #[error("no calibration session {0}")]
    NoSuchCalibration(i64),
    #[error("no call with id {0}")]
    NoSuchCall(i64),
    #[error("{0}")]
    Invalid(String),
    #[error("calibration session {0} is closed already")]
    Closed(i64),
}

#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    pub id: i64,
    pub call_id: i64,
    /// Row id of the exact scorecard version every reviewer scores on.
    pub scorecard_id: i64,
    pub scorecard_slug: String,
    pub scorecard_version: i64,
    pub title: String,
    /// In the order the lead gave them; the result's columns follow it.
    pub reviewers: Vec<String>,
    /// The reviewer the others are measured against, if any.
    pub reference: Option<String>,
    pub due_utc: Option<String>,
    /// `open` or `closed`.
    pub status: String,
    pub created_by: String,
    pub created_at_utc: String,
    pub closed_at_utc: Option<String>,
    /// Reviewer → their evaluation id, in reviewer order.
    pub evaluation_ids: Vec<(String, i64)>,
}

/// What a lead gives to start a session.
pub struct NewCalibration<'a> {
    pub call_id: i64,
    pub scorecard_row_id: i64,
    pub title: &'a str,
    pub reviewers: &'a [String],
    pub reference: Option<&'a str>,
    /// RFC 3339, or a bare date meaning the end of that day (UTC).
    pub due_utc: Option<&'a str>,
    pub by: &'a str,
}

/// One question's answers side by side.
#[derive(Debug, Clone, Serialize)]
pub struct QuestionSpread {
    /// Section id on the card.
    pub section: String,
    /// Question id on the card.
    pub question: String,
    pub text: String,
    /// Reviewer → answer as shown (`yes`, `no`, `na`, `4`, `7 pts`); None when the reviewer
    /// has not submitted (a draft's answers never show) or left it unanswered.
    pub values: Vec<(String, Option<String>)>,
    /// Reviewer → earned / max for this question, 0..=1; None for N/A or no answer.
    pub fractions: Vec<(String, Option<f64>)>,
    /// Highest minus lowest fraction present (0..=1); None when fewer than two are present.
    pub spread: Option<f64>,
    /// Every present answer (N/A included) is the same; true when fewer than two are present.
    pub agree: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReviewerResult {
    pub reviewer: String,
    /// Submitted while the session was open (a late submission after close does not count:
    /// by then the reviewer may have seen the others' answers).
    pub submitted: bool,
    pub score_percent: Option<f64>,
    pub passed: Option<bool>,
    /// Mean |fraction − reference fraction| over the questions both answered (not N/A), in
    /// percentage points 0..=100; Some(0.0) for the reference itself; None without a
    /// submitted reference or without a common question.
    pub distance_from_reference: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CalibrationResult {
    pub calibration: Calibration,
    /// In card order.
    pub questions: Vec<QuestionSpread>,
    /// In reviewer order.
    pub reviewers: Vec<ReviewerResult>,
    /// Mean of the questions' spreads that are present (0..=1).
    pub mean_spread: Option<f64>,
    /// Highest minus lowest score percent among submitted reviewers (percentage points);
    /// None when fewer than two have a score.
    pub score_spread: Option<f64>,
}

/// Starts a session: checks the input, then in one transaction inserts the calibration and one
/// draft evaluation per reviewer. Returns the calibration id.
pub fn create(conn: &Connection, c: &NewCalibration) -> Result<i64, CalibrationError> {
    let title = c.title.trim();
    if title.is_empty() {
        return Err(invalid("a calibration session needs a title"));
    }
    check_reviewers(c.reviewers)?;
    if let Some(r) = c.reference {
        check_reference(c.reviewers, r)?;
    }
    let due_utc = c.due_utc.map(parse_due).transpose()?;
    let call_exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM calls WHERE id = ?1)",
        [c.call_id],
        |r| r.get(0),
    )?;
    if !call_exists {
        return Err(CalibrationError::NoSuchCall(c.call_id));
    }
    // Fails with QaError::NoCard for an unknown row, before anything is written.
    qa::card_by_row(conn, c.scorecard_row_id)?;
    let reviewers_json = serde_json::to_string(c.reviewers)
        .map_err(|e| invalid(&format!("reviewers cannot be stored: {e}")))?;

    // One transaction: a session without its drafts (or drafts without a session) would leave
    // reviewers with work nobody can see in the session.
    let tx = conn.unchecked_transaction()?;
    tx.execute(
        "INSERT INTO calibrations (call_id, scorecard_id, title, reviewers, reference, due_utc, status, created_by, created_at_utc)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'open', ?7, ?8)",
        params![
            c.call_id,
            c.scorecard_row_id,
            title,
            reviewers_json,
            c.reference,
            due_utc,
            c.by,
            crate::clock::utc_now()
        ],
    )?;
    let id = tx.last_insert_rowid();
    for reviewer in c.reviewers {
        qa::create_calibration_evaluation(&tx, c.call_id, c.scorecard_row_id, reviewer, id)?;
    }
    tx.commit()?;
    Ok(id)
}

const SELECT: &str =
    "SELECT c.id, c.call_id, c.scorecard_id, s.slug, s.version, c.title, c.reviewers,
        c.reference, c.due_utc, c.status, c.created_by, c.created_at_utc, c.closed_at_utc
     FROM calibrations c JOIN scorecards s ON s.id = c.scorecard_id";

/// A row as stored: `reviewers` is still JSON and `evaluation_ids` still empty.
fn row_to_raw(r: &rusqlite::Row) -> rusqlite::Result<(Calibration, String)> {
    Ok((
        Calibration {
            id: r.get(0)?,
            call_id: r.get(1)?,
            scorecard_id: r.get(2)?,
            scorecard_slug: r.get(3)?,
            scorecard_version: r.get(4)?,
            title: r.get(5)?,
            reviewers: Vec::new(),
            reference: r.get(7)?,
            due_utc: r.get(8)?,
            status: r.get(9)?,
            created_by: r.get(10)?,
            created_at_utc: r.get(11)?,
            closed_at_utc: r.get(12)?,
            evaluation_ids: Vec::new(),
        },
        r.get(6)?,
    ))
}

fn finish(
    conn: &Connection,
    (mut c, reviewers_json): (Calibration, String),
) -> Result<Calibration, CalibrationError> {
    c.reviewers = serde_json::from_str(&reviewers_json).map_err(|e| {
        invalid(&format!(
            "calibration {}: stored reviewers are not a JSON list of names: {e}",
            c.id
        ))
    })?;
    // Inserted in reviewer order inside one transaction, so id order is reviewer order.
    c.evaluation_ids = conn
        .prepare_cached(
            "SELECT reviewer, id FROM evaluations WHERE calibration_id = ?1 ORDER BY id",
        )?
        .query_map([c.id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(c)
}

pub fn get(conn: &Connection, id: i64) -> Result<Calibration, CalibrationError> {
    let raw = conn
        .query_row(&format!("{SELECT} WHERE c.id = ?1"), [id], row_to_raw)
        .optional()?
        .ok_or(CalibrationError::NoSuchCalibration(id))?;
    finish(conn, raw)
}

/// Sessions newest first; with `Some(reviewer)` only those the reviewer takes part in.
pub fn list(
    conn: &Connection,
    reviewer: Option<&str>,
) -> Result<Vec<Calibration>, CalibrationError> {
    // Participation is read from the evaluations (indexed by calibration_id), which are the
    // reviewers' real work, rather than by searching the JSON list.
    let raws: Vec<(Calibration, String)> = conn
        .prepare(&format!(
            "{SELECT} WHERE ?1 IS NULL OR EXISTS (SELECT 1 FROM evaluations e WHERE e.calibration_id = c.id AND e.reviewer = ?1)
             ORDER BY c.created_at_utc DESC, c.id DESC"
        ))?
        .query_map([reviewer], row_to_raw)?
        .collect::<Result<_, _>>()?;
    raws.into_iter().map(|raw| finish(conn, raw)).collect()
}

/// Closes an open session (answers become visible to every participant) and may set or replace
/// the reference, which must be one of the reviewers.
pub fn close(conn: &Connection, id: i64, reference: Option<&str>) -> Result<(), CalibrationError> {
    let c = get(conn, id)?;
    if c.status == "closed" {
        return Err(CalibrationError::Closed(id));
    }
    if let Some(r) = reference {
        check_reference(&c.reviewers, r)?;
    }
    // `status = 'open'` in the WHERE makes two concurrent closes end in one Closed error
    // rather than two closing times.
    let changed = conn.execute(
        "UPDATE calibrations SET status = 'closed', closed_at_utc = ?2, reference = COALESCE(?3, reference)
         WHERE id = ?1 AND status = 'open'",
        params![id, crate::clock::utc_now(), reference],
    )?;
    if changed == 0 {
        return Err(CalibrationError::Closed(id));
    }
    Ok(())
}

/// Whether `viewer` may see evaluation `evaluation_id`'s answers: always if it is not a
/// calibration evaluation; for a calibration one: the session is closed, or the viewer is its
/// own reviewer, or the viewer is not a reviewer in the session (lead/admin) — blind means
/// reviewers do not see each other's answers while it is open.
pub fn may_see(
    conn: &Connection,
    evaluation_id: i64,
    viewer: &str,
) -> Result<bool, CalibrationError> {
    let (owner, calibration_id): (String, Option<i64>) = conn
        .query_row(
            "SELECT reviewer, calibration_id FROM evaluations WHERE id = ?1",
            [evaluation_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
        .ok_or(QaError::NoEvaluation(evaluation_id))?;
    let Some(calibration_id) = calibration_id else {
        return Ok(true);
    };
    if owner == viewer {
        return Ok(true);
    }
    let c = get(conn, calibration_id)?;
    Ok(c.status == "closed" || !c.reviewers.iter().any(|r| r == viewer))
}

/// The session's answers side by side. Only evaluations submitted while the session was open
/// count; the others are listed with `submitted = false` and no answers. The result shows every
/// reviewer's answers, so a caller shows it to a participant only once the session is closed.
pub fn result(conn: &Connection, id: i64) -> Result<CalibrationResult, CalibrationError> {
    let calibration = get(conn, id)?;
    let card = qa::card_by_row(conn, calibration.scorecard_id)?.card;
    let eval_of: HashMap<&str, i64> = calibration
        .evaluation_ids
        .iter()
        .map(|(r, e)| (r.as_str(), *e))
        .collect();

    // Per reviewer (in reviewer order): their counted answers by question id, and their score.
    let mut answers: Vec<HashMap<String, Answer>> = Vec::new();
    let mut reviewers: Vec<ReviewerResult> = Vec::new();
    for reviewer in &calibration.reviewers {
        let mut result = ReviewerResult {
            reviewer: reviewer.clone(),
            submitted: false,
            score_percent: None,
            passed: None,
            distance_from_reference: None,
        };
        let mut by_question = HashMap::new();
        if let Some(&eval_id) = eval_of.get(reviewer.as_str()) {
            let e = qa::get_evaluation(conn, eval_id)?;
            if counts(&calibration, &e) {
                result.submitted = true;
                result.score_percent = e.score.as_ref().and_then(|s| s.percent);
                result.passed = e.score.as_ref().and_then(|s| s.passed);
                by_question = e.answers.into_iter().map(|a| (a.q, a.value)).collect();
            }
        }
        answers.push(by_question);
        reviewers.push(result);
    }

    let mut questions = Vec::new();
    for section in &card.sections {
        for q in &section.questions {
            let given: Vec<Option<Answer>> =
                answers.iter().map(|m| m.get(&q.id).copied()).collect();
            let shown_values: Vec<Option<String>> =
                given.iter().map(|a| a.map(|a| shown(q, a))).collect();
            let fractions: Vec<Option<f64>> = given
                .iter()
                .map(|a| a.and_then(|a| earned_fraction(q, a)))
                .collect();
            let present: Vec<f64> = fractions.iter().flatten().copied().collect();
            let agree = shown_values.iter().flatten().collect::<HashSet<_>>().len() <= 1;
            questions.push(QuestionSpread {
                section: section.id.clone(),
                question: q.id.clone(),
                text: q.text.clone(),
                values: calibration
                    .reviewers
                    .iter()
                    .cloned()
                    .zip(shown_values)
                    .collect(),
                fractions: calibration
                    .reviewers
                    .iter()
                    .cloned()
                    .zip(fractions)
                    .collect(),
                spread: range(&present),
                agree,
            });
        }
    }

    let reference_index = calibration
        .reference
        .as_deref()
        .and_then(|r| calibration.reviewers.iter().position(|x| x == r));
    if let Some(ri) = reference_index {
        for (i, reviewer) in reviewers.iter_mut().enumerate() {
            reviewer.distance_from_reference = distance_points(&questions, i, ri);
        }
    }

    let spreads: Vec<f64> = questions.iter().filter_map(|q| q.spread).collect();
    let mean_spread =
        (!spreads.is_empty()).then(|| spreads.iter().sum::<f64>() / spreads.len() as f64);
    let scores: Vec<f64> = reviewers.iter().filter_map(|r| r.score_percent).collect();
    Ok(CalibrationResult {
        calibration,
        questions,
        reviewers,
        mean_spread,
        score_spread: range(&scores),
    })
}

/// Whether an evaluation's answers count in its session's result: submitted (or later), and,
/// once the session is closed, submitted no later than the close. Timestamps share one UTC
/// text format, so text order is time order.
fn counts(c: &Calibration, e: &qa::Evaluation) -> bool {
    if e.status == "draft" {
        return false;
    }
    match (&c.closed_at_utc, &e.submitted_at_utc) {
        (None, _) => true,
        (Some(closed), Some(submitted)) => submitted <= closed,
        (Some(_), None) => false,
    }
}

/// Mean |fraction_i − fraction_ref| × 100 over questions where both have a fraction.
fn distance_points(questions: &[QuestionSpread], i: usize, ri: usize) -> Option<f64> {
    let diffs: Vec<f64> = questions
        .iter()
        .filter_map(|q| {
            let mine = q.fractions.get(i)?.1?;
            let theirs = q.fractions.get(ri)?.1?;
            Some((mine - theirs).abs())
        })
        .collect();
    (!diffs.is_empty()).then(|| 100.0 * diffs.iter().sum::<f64>() / diffs.len() as f64)
}

/// Highest minus lowest; None for fewer than two values (one value has no spread to show).
fn range(values: &[f64]) -> Option<f64> {
    if values.len() < 2 {
        return None;
    }
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    Some(max - min)
}

/// Earned / max for one answer, 0..=1, or None for N/A or a value the question cannot take.
///
/// The scorecard's own [`scorecard::grade`], so that a calibration result and an evaluation's
/// score can never disagree on what an answer earns. A question earns `fraction × weight` of
/// `max = weight`, so its earned / max is the fraction itself; critical zeroing acts on the
/// section and the total, not on the question's own answer. An answer the card refuses (only a
/// stored answer could be one) shows no fraction, as N/A does, rather than failing the result.
fn earned_fraction(q: &Question, a: Answer) -> Option<f64> {
    scorecard::grade(q, a).ok().flatten().map(|g| g.fraction)
}

/// An answer as a reviewer reads it in the side-by-side table.
fn shown(q: &Question, a: Answer) -> String {
    let n = match a {
        Answer::Yes => return "yes".into(),
        Answer::No => return "no".into(),
        Answer::Na => return "na".into(),
        Answer::Scale(v) => u32::from(v),
        Answer::Points(v) => v,
    };
    match q.kind {
        Kind::Points { .. } if n == 1 => "1 pt".into(),
        Kind::Points { .. } => format!("{n} pts"),
        _ => n.to_string(),
    }
}

fn invalid(msg: &str) -> CalibrationError {
    CalibrationError::Invalid(msg.to_owned())
}

fn check_reviewers(reviewers: &[String]) -> Result<(), CalibrationError> {
    // Spread and agreement need at least two people scoring the same call.
    if reviewers.len() < 2 {
        return Err(invalid(
            "a calibration session needs at least two reviewers",
        ));
    }
    if reviewers.len() > MAX_REVIEWERS {
        return Err(invalid(&format!(
            "a calibration session takes at most {MAX_REVIEWERS} reviewers"
        )));
    }
    let mut seen = HashSet::new();
    for r in reviewers {
        if r.trim().is_empty() {
            return Err(invalid("a reviewer name is empty"));
        }
        if !seen.insert(r.as_str()) {
            return Err(invalid(&format!(
                "reviewer {r:?} is named twice; each reviewer scores the call once"
            )));
        }
    }
    Ok(())
}

fn check_reference(reviewers: &[String], reference: &str) -> Result<(), CalibrationError> {
    // The reference is measured like everyone else, so it must score the call too.
    if reviewers.iter().any(|r| r == reference) {
        Ok(())
    } else {
        Err(invalid(&format!(
            "reference {reference:?} is not one of the reviewers"
        )))
    }
}

/// RFC 3339 as UTC with milliseconds; a bare date means the end of that day, since "due
/// 2026-12-01" gives the reviewers that whole day.
fn parse_due(s: &str) -> Result<String, CalibrationError> {
    let s = s.trim();
    let bad = || {
        invalid(&format!(
            "due {s:?} must be a date (YYYY-MM-DD) or RFC 3339 time"
        ))
    };
    let start = crate::clock::parse_bound(s).ok_or_else(bad)?;
    let is_bare_date = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok();
    Ok(if is_bare_date {
        crate::clock::utc_plus_ms(&start, 86_400_000 - 1)
    } else {
        start
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qa::scorecard::AnswerEntry;
    use crate::store::testutil::{TempStore, TestCall, TestResult};
    use Answer::*;

    fn close_to(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    fn answers(list: &[(&str, Answer)]) -> Vec<AnswerEntry> {
        list.iter().map(|(q, a)| AnswerEntry::new(*q, *a)).collect()
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    /// A store with the default cards and one call by agent alice; returns the store (keep it
    /// for as long as the index is used), the inbound-service card's row id and the call id.
    fn setup() -> TestResult<(TempStore, i64, i64)> {
        let store = TempStore::new()?;
        qa::seed_default_cards(&store.conn)?;
        let card = qa::latest_card(&store.conn, "inbound-service")?.ok_or("no inbound card")?;
        let call = store.insert(&TestCall::new().agent("alice"))?.id;
        Ok((store, card.row_id, call))
    }

    fn new<'a>(call_id: i64, card: i64, reviewers: &'a [String]) -> NewCalibration<'a> {
        NewCalibration {
            call_id,
            scorecard_row_id: card,
            title: "November calibration",
            reviewers,
            reference: None,
            due_utc: None,
            by: "lead",
        }
    }

    fn eval_of(c: &Calibration, reviewer: &str) -> Result<i64, String> {
        c.evaluation_ids
            .iter()
            .find(|(r, _)| r == reviewer)
            .map(|(_, e)| *e)
            .ok_or_else(|| format!("no evaluation for {reviewer}"))
    }

    // The inbound-service card, in card order, with weights (w) and section weights (sw):
    //   opening (sw 1):     greeting yes_no; identity-verified yes_no/na; need-identified scale
    //   resolution (sw 2):  best-solution scale w2; order-taken yes_no/na; complaint-routed yes_no/na
    //   accuracy (sw 2):    accurate-information yes_no/na; data-entered points max 3
    //   soft-skills (sw 1): courtesy, patience, clear-speech scales
    //   closing (sw 1):     closed-properly points max 3
    fn rita() -> Vec<AnswerEntry> {
        answers(&[
            ("greeting", Yes),
            ("identity-verified", Yes),
            ("need-identified", Scale(5)),
            ("best-solution", Scale(4)),
            ("order-taken", Na),
            ("complaint-routed", Na),
            ("accurate-information", Yes),
            ("data-entered", Points(3)),
            ("courtesy", Scale(5)),
            ("patience", Scale(4)),
            ("clear-speech", Scale(5)),
            ("closed-properly", Points(3)),
        ])
    }

    fn sam() -> Vec<AnswerEntry> {
        answers(&[
            ("greeting", Yes),
            ("identity-verified", Yes),
            ("need-identified", Scale(3)),
            ("best-solution", Scale(4)),
            ("order-taken", Yes),
            ("complaint-routed", Na),
            ("accurate-information", Yes),
            ("data-entered", Points(2)),
            ("courtesy", Scale(5)),
            ("patience", Scale(5)),
            ("clear-speech", Scale(5)),
            ("closed-properly", Points(1)),
        ])
    }

    #[test]
    fn result_side_by_side_with_spread_and_distance() -> TestResult {
        let (TempStore { dir: _dir, conn }, card, call) = setup()?;
        let reviewers = names(&["rita", "sam", "tom"]);
        let id = create(
            &conn,
            &NewCalibration {
                reference: Some("rita"),
                due_utc: Some("2026-12-01"),
                ..new(call, card, &reviewers)
            },
        )?;
        let c = get(&conn, id)?;
        assert_eq!(c.reviewers, reviewers);
        assert_eq!(c.status, "open");
        assert_eq!(c.scorecard_slug, "inbound-service");
        assert_eq!(c.scorecard_version, 1);
        assert_eq!(c.due_utc.as_deref(), Some("2026-12-01T23:59:59.999Z"));
        let got: Vec<&str> = c.evaluation_ids.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(got, ["rita", "sam", "tom"]);
        for (_, e) in &c.evaluation_ids {
            let e = qa::get_evaluation(&conn, *e)?;
            assert_eq!((e.calibration_id, e.status.as_str()), (Some(id), "draft"));
            assert_eq!(
                e.agent, None,
                "calibration scores stay out of agent reports"
            );
        }

        qa::save_answers(&conn, eval_of(&c, "rita")?, &rita(), None)?;
        qa::submit(&conn, eval_of(&c, "rita")?)?;
        qa::save_answers(&conn, eval_of(&c, "sam")?, &sam(), None)?;
        qa::submit(&conn, eval_of(&c, "sam")?)?;
        // Tom only saves a draft, which disagrees everywhere: it must not show or count.
        let tom_draft = answers(&[("greeting", No), ("need-identified", Scale(1))]);
        qa::save_answers(&conn, eval_of(&c, "tom")?, &tom_draft, None)?;

        let r = result(&conn, id)?;
        // (question, rita, sam, spread, agree); tom is None everywhere (not submitted).
        // Fractions: yes 1, no 0, scale (v − 1) / 4, points v / 3, na none.
        let third = 1.0 / 3.0;
        let expected: [(&str, &str, &str, Option<f64>, bool); 12] = [
            ("greeting", "yes", "yes", Some(0.0), true),
            ("identity-verified", "yes", "yes", Some(0.0), true),
            ("need-identified", "5", "3", Some(0.5), false), // 1 vs 0.5
            ("best-solution", "4", "4", Some(0.0), true),
            ("order-taken", "na", "yes", None, false), // only sam has a fraction
            ("complaint-routed", "na", "na", None, true),
            ("accurate-information", "yes", "yes", Some(0.0), true),
            ("data-entered", "3 pts", "2 pts", Some(third), false), // 1 vs 2/3
            ("courtesy", "5", "5", Some(0.0), true),
            ("patience", "4", "5", Some(0.25), false), // 0.75 vs 1
            ("clear-speech", "5", "5", Some(0.0), true),
            ("closed-properly", "3 pts", "1 pt", Some(2.0 * third), false), // 1 vs 1/3
        ];
        assert_eq!(r.questions.len(), expected.len());
        for (q, (id_, a, b, spread, agree)) in r.questions.iter().zip(expected) {
            assert_eq!(q.question, id_);
            let values: Vec<Option<&str>> = q.values.iter().map(|(_, v)| v.as_deref()).collect();
            assert_eq!(values, [Some(a), Some(b), None], "{id_}");
            assert_eq!(q.fractions[2], ("tom".to_owned(), None), "{id_}");
            match (q.spread, spread) {
                (Some(x), Some(y)) => assert!(close_to(x, y), "{id_}: {x} vs {y}"),
                (x, y) => assert_eq!(x, y, "{id_}"),
            }
            assert_eq!(q.agree, agree, "{id_}");
        }
        assert_eq!(r.questions[0].section, "opening");
        assert_eq!(r.questions[11].fractions[1].1, Some(third));

        // Sum of the 10 spreads present: 0.5 + 1/3 + 0.25 + 2/3 = 1.75 → mean 0.175.
        assert!(close_to(r.mean_spread.ok_or("no mean spread")?, 0.175));

        // Scores (section weight × earned / section weight × max):
        // rita: opening 3/3, resolution 1.5/2 (best 0.75 × 2; order and complaint N/A),
        //   accuracy 2/2, soft 2.75/3, closing 1/1
        //   → (3 + 2×1.5 + 2×2 + 2.75 + 1) / (3 + 2×2 + 2×2 + 3 + 1) = 13.75 / 15 = 91.67 %.
        // sam: opening 2.5/3, resolution 2.5/3 (1.5 + order 1), accuracy (1 + 2/3)/2, soft 3/3,
        //   closing (1/3)/1 → (2.5 + 5 + 10/3 + 3 + 1/3) / (3 + 6 + 4 + 3 + 1) = 42.5/3 / 17
        //   = 83.33 %.
        let [rr, sr, tr] = [&r.reviewers[0], &r.reviewers[1], &r.reviewers[2]];
        assert_eq!((rr.reviewer.as_str(), rr.submitted), ("rita", true));
        assert!(close_to(
            rr.score_percent.ok_or("rita score")?,
            1375.0 / 15.0
        ));
        assert!(close_to(sr.score_percent.ok_or("sam score")?, 250.0 / 3.0));
        assert_eq!((rr.passed, sr.passed), (Some(true), Some(true)));
        assert!(close_to(
            r.score_spread.ok_or("no score spread")?,
            1375.0 / 15.0 - 250.0 / 3.0
        ));
        assert_eq!(tr.reviewer, "tom");
        assert!(!tr.submitted);
        assert_eq!((tr.score_percent, tr.passed), (None, None));

        // Distance from rita (the reference), over the 10 questions both answered (order-taken
        // and complaint-routed drop out: rita said N/A): |1−0.5| + |1−2/3| + |0.75−1| + |1−1/3|
        // = 0.5 + 0.3333 + 0.25 + 0.6667 = 1.75, the other six differ by 0 → 1.75 / 10 = 0.175
        // → 17.5 percentage points. Rita 0; tom has no answers → None.
        assert_eq!(rr.distance_from_reference, Some(0.0));
        assert!(close_to(
            sr.distance_from_reference.ok_or("sam distance")?,
            17.5
        ));
        assert_eq!(tr.distance_from_reference, None);

        // Closing with sam as the reference swaps the distances.
        close(&conn, id, Some("sam"))?;
        // Timestamps have millisecond resolution; make sure tom's submission is after the close.
        std::thread::sleep(std::time::Duration::from_millis(5));
        // Tom submits late, having been able to see the others: it does not count.
        let mut tom = sam();
        tom[0].value = No;
        qa::save_answers(&conn, eval_of(&c, "tom")?, &tom, None)?;
        qa::submit(&conn, eval_of(&c, "tom")?)?;
        let r = result(&conn, id)?;
        assert_eq!(r.calibration.status, "closed");
        assert!(r.calibration.closed_at_utc.is_some());
        assert_eq!(r.calibration.reference.as_deref(), Some("sam"));
        assert!(close_to(
            r.reviewers[0].distance_from_reference.ok_or("rita")?,
            17.5
        ));
        assert_eq!(r.reviewers[1].distance_from_reference, Some(0.0));
        assert!(
            !r.reviewers[2].submitted,
            "a late submission does not count"
        );
        assert_eq!(r.questions[0].values[2].1, None);
        assert!(r.questions[0].agree);
        Ok(())
    }

    #[test]
    fn blind_while_open() -> TestResult {
        let (TempStore { dir: _dir, conn }, card, call) = setup()?;
        let reviewers = names(&["rita", "sam"]);
        let id = create(&conn, &new(call, card, &reviewers))?;
        let c = get(&conn, id)?;
        let (rita_eval, sam_eval) = (eval_of(&c, "rita")?, eval_of(&c, "sam")?);

        assert!(
            !may_see(&conn, rita_eval, "sam")?,
            "a peer's answers are hidden"
        );
        assert!(!may_see(&conn, sam_eval, "rita")?);
        assert!(may_see(&conn, rita_eval, "rita")?, "one's own evaluation");
        assert!(
            may_see(&conn, rita_eval, "lead")?,
            "a non-participant (lead)"
        );

        // An ordinary evaluation of the same call is not blind.
        let plain = qa::create_evaluation(&conn, call, card, "rita", Some("alice"))?;
        assert!(may_see(&conn, plain, "sam")?);
        assert_eq!(qa::get_evaluation(&conn, plain)?.calibration_id, None);
        assert!(matches!(
            may_see(&conn, 9999, "sam"),
            Err(CalibrationError::Qa(QaError::NoEvaluation(9999)))
        ));

        close(&conn, id, None)?;
        assert!(may_see(&conn, rita_eval, "sam")?, "visible once closed");
        assert!(may_see(&conn, sam_eval, "rita")?);
        Ok(())
    }

    #[test]
    fn invalid_sessions_and_closing_twice() -> TestResult {
        let (TempStore { dir: _dir, conn }, card, call) = setup()?;
        let one = names(&["rita"]);
        let twice = names(&["rita", "sam", "rita"]);
        let two = names(&["rita", "sam"]);
        for bad in [
            new(call, card, &one),
            new(call, card, &twice),
            NewCalibration {
                reference: Some("lead"),
                ..new(call, card, &two)
            },
            NewCalibration {
                title: "  ",
                ..new(call, card, &two)
            },
            NewCalibration {
                due_utc: Some("next week"),
                ..new(call, card, &two)
            },
        ] {
            let e = create(&conn, &bad);
            assert!(matches!(e, Err(CalibrationError::Invalid(_))), "{e:?}");
        }
        let e = create(&conn, &new(call + 1, card, &two));
        assert!(matches!(e, Err(CalibrationError::NoSuchCall(_))), "{e:?}");
        let e = create(&conn, &new(call, 9999, &two));
        assert!(
            matches!(e, Err(CalibrationError::Qa(QaError::NoCard(_)))),
            "{e:?}"
        );
        // Nothing was written by the refused attempts.
        let rows: i64 = conn.query_row(
            "SELECT (SELECT count(*) FROM calibrations) + (SELECT count(*) FROM evaluations)",
            [],
            |r| r.get(0),
        )?;
        assert_eq!(rows, 0);
        assert!(matches!(
            get(&conn, 1),
            Err(CalibrationError::NoSuchCalibration(1))
        ));

        let id = create(&conn, &new(call, card, &two))?;
        let e = close(&conn, id, Some("lead"));
        assert!(matches!(e, Err(CalibrationError::Invalid(_))), "{e:?}");
        assert_eq!(
            get(&conn, id)?.status,
            "open",
            "a refused close changes nothing"
        );
        close(&conn, id, Some("rita"))?;
        assert_eq!(get(&conn, id)?.reference.as_deref(), Some("rita"));
        assert!(matches!(close(&conn, id, None), Err(CalibrationError::Closed(x)) if x == id));
        Ok(())
    }

    #[test]
    fn list_newest_first_and_by_reviewer() -> TestResult {
        let (TempStore { dir: _dir, conn }, card, call) = setup()?;
        let first = create(&conn, &new(call, card, &names(&["rita", "sam"])))?;
        let second = create(&conn, &new(call, card, &names(&["sam", "tom"])))?;
        let ids = |l: Vec<Calibration>| l.into_iter().map(|c| c.id).collect::<Vec<_>>();
        assert_eq!(ids(list(&conn, None)?), [second, first]);
        assert_eq!(ids(list(&conn, Some("sam"))?), [second, first]);
        assert_eq!(ids(list(&conn, Some("rita"))?), [first]);
        assert!(list(&conn, Some("lead"))?.is_empty());
        Ok(())
    }

    #[test]
    fn fractions_mirror_the_scorecard() -> TestResult {
        // Each question alone on a card, scored by score(), gives 100 × its fraction.
        let card = crate::qa::scorecard::defaults()
            .into_iter()
            .find(|c| c.id == "inbound-service")
            .ok_or("no inbound card")?;
        for q in card.sections.iter().flat_map(|s| &s.questions) {
            let values: Vec<Answer> = match q.kind {
                Kind::YesNo => vec![Yes, No],
                Kind::Scale => (1..=5).map(Scale).collect(),
                Kind::Points { max } => (0..=max).map(Points).collect(),
            };
            for v in values {
                let mut one = card.clone();
                one.sections = vec![crate::qa::scorecard::Section {
                    id: "s".into(),
                    title: "S".into(),
                    weight: 1.0,
                    questions: vec![Question {
                        critical: None,
                        ..q.clone()
                    }],
                }];
                let s = crate::qa::scorecard::score(&one, &[AnswerEntry::new(q.id.clone(), v)])?;
                let f = earned_fraction(q, v).ok_or("no fraction")?;
                assert!(
                    close_to(100.0 * f, s.percent.ok_or("no percent")?),
                    "{} {v:?}",
                    q.id
                );
            }
            assert_eq!(earned_fraction(q, Na), None);
        }
        Ok(())
    }
}
