//! Scorecards: the forms a QA reviewer fills in for one call, and the score they give.
//!
//! A scorecard has sections, a section has questions. Cards are written in TOML (the shipped
//! defaults live in `defaults/*.toml`) and travel to the browser as JSON of the same shape.
//! Versioning is the store's job: a card that has been used is never edited in place, a change
//! becomes version + 1; [`content_hash`] tells whether an edited card differs from a stored one.
//!
//! # Questions
//!
//! | `kind`    | answer                      | earned fraction | failing answer |
//! |-----------|-----------------------------|-----------------|----------------|
//! | `yes_no`  | `yes` / `no`                | yes = 1, no = 0 | `no`           |
//! | `scale`   | whole number 1–5            | (v − 1) / 4     | 1              |
//! | `points`  | whole number 0..=max_points | v / max_points  | 0              |
//!
//! Any question may also allow `na` (`allow_na = true`). Each question has a `weight` (default 1),
//! each section a `weight` (default 1). A question may be `critical = "section"` or
//! `critical = "evaluation"`.
//!
//! # Score (the specification)
//!
//! 1. Each answered question has `max = weight` and `earned = fraction × weight`. An `na` answer
//!    gives `max = 0` and `earned = 0`: the question leaves the maximum.
//! 2. Section: `earned_s = Σ earned`, `max_s = Σ max` over its questions;
//!    section percent `= 100 × earned_s / max_s`, or none when `max_s = 0` (every question N/A).
//! 3. Total: `percent = 100 × Σ_s (section_weight × earned_s) / Σ_s (section_weight × max_s)`.
//!    A section's weight multiplies both its earned and its maximum weight-points, so a section
//!    of weight 2 counts like two copies of that section. When the denominator is 0 (every
//!    question N/A) the evaluation is *not scorable*: percent and passed are none.
//! 4. Critical questions. A failing answer (`no`, scale 1, 0 points) to a question with
//!    `critical = "section"` sets that section's `earned_s` to 0; its `max_s` stays, so the
//!    section still weighs on the total. With `critical = "evaluation"` the total is 0 % and the
//!    evaluation fails whatever the pass mark; section scores are still reported as answered. An
//!    `na` answer never triggers a critical question. Every failed critical question id is listed
//!    in [`Score::failed_critical`], in card order; every answer is kept.
//! 5. `passed = percent ≥ pass_mark_percent` (default 80; compared with a 1e-9 tolerance so
//!    that float rounding cannot flip an exact 80 %), and always false after an
//!    evaluation-critical failure.
//! 6. Every question must be answered exactly once, with a value of its type; otherwise
//!    [`score`] and [`validate_answers`] return every problem at once, each naming the question.
//!
//! # Answers on the wire
//!
//! Answers are a JSON array of `{"q": "<question id>", "value": <value>}` where value is
//! `"yes"`, `"no"`, `"na"` or a whole number (a string of digits such as `"3"` is accepted too,
//! as HTML form fields give). [`Answer::Scale`] and [`Answer::Points`] both serialize as the bare
//! number, and a bare number deserializes as [`Answer::Points`]; the *question's* kind decides
//! how a number is read, so either numeric variant answers either numeric question. A wrong type
//! is a word for a numeric question or a number for a yes/no question.

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{HashMap, HashSet};
use std::fmt;

/// Pass mark when a card does not set `pass_mark_percent`.
pub const DEFAULT_PASS_MARK_PERCENT: f64 = 80.0;
/// The answer range of a `scale` question.
pub const SCALE_MIN: u32 = 1;
pub const SCALE_MAX: u32 = 5;
/// Longest card, section or question id.
pub const MAX_ID_LEN: usize = 64;
/// Tolerance when comparing a percent with the pass mark.
const PASS_TOLERANCE: f64 = 1e-9;

/// The shipped default cards, as TOML text (file name without `.toml`, text).
pub const DEFAULT_CARDS: &[(&str, &str)] = &[
    (
        "inbound-service",
        include_str!("defaults/inbound-service.toml"),
    ),
    ("outbound", include_str!("defaults/outbound.toml")),
    ("complaint", include_str!("defaults/complaint.toml")),
];

/// A QA form. `id` is a slug; the store keys cards by `(id, version)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scorecard {
    pub id: String,
    pub name: String,
    #[serde(default = "first_version")]
    pub version: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default = "default_pass_mark")]
    pub pass_mark_percent: f64,
    #[serde(default)]
    pub sections: Vec<Section>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    pub id: String,
    pub title: String,
    /// Multiplies the section's earned and maximum weight-points in the total (default 1).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub weight: f64,
    #[serde(default)]
    pub questions: Vec<Question>,
}

/// One question. In TOML/JSON the kind is flat: `kind = "points"` with `max_points = 3`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "QuestionRepr", into = "QuestionRepr")]
pub struct Question {
    /// Unique across the whole card (answers name only the question).
    pub id: String,
    pub text: String,
    /// What the reviewer listens for (one line).
    pub help: String,
    pub kind: Kind,
    /// Default 1.
    pub weight: f64,
    pub critical: Option<CriticalScope>,
    pub allow_na: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    YesNo,
    /// 1–5.
    Scale,
    /// 0..=max.
    Points {
        max: u32,
    },
}

/// What a failing answer to a critical question zeroes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CriticalScope {
    Section,
    Evaluation,
}

/// The serialized form of a [`Question`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuestionRepr {
    id: String,
    text: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    help: String,
    kind: KindName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_points: Option<u32>,
    #[serde(default = "one", skip_serializing_if = "is_one")]
    weight: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    critical: Option<CriticalScope>,
    #[serde(default, skip_serializing_if = "is_false")]
    allow_na: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum KindName {
    YesNo,
    Scale,
    Points,
}

impl TryFrom<QuestionRepr> for Question {
    type Error = String;

    fn try_from(r: QuestionRepr) -> Result<Self, String> {
        let kind = match (r.kind, r.max_points) {
            (KindName::YesNo, None) => Kind::YesNo,
            (KindName::Scale, None) => Kind::Scale,
            (KindName::Points, Some(max)) => Kind::Points { max },
            (KindName::Points, None) => {
                return Err(format!(
                "question `{}`: kind = \"points\" needs max_points (the highest score, at least 1)",
                r.id
            ))
            }
            (_, Some(_)) => {
                return Err(format!(
                    "question `{}`: max_points only applies to kind = \"points\"; remove it",
                    r.id
                ))
            }
        };
        Ok(Question {
            id: r.id,
            text: r.text,
            help: r.help,
            kind,
            weight: r.weight,
            critical: r.critical,
            allow_na: r.allow_na,
        })
    }
}

impl From<Question> for QuestionRepr {
    fn from(q: Question) -> Self {
        let (kind, max_points) = match q.kind {
            Kind::YesNo => (KindName::YesNo, None),
            Kind::Scale => (KindName::Scale, None),
            Kind::Points { max } => (KindName::Points, Some(max)),
        };
        QuestionRepr {
            id: q.id,
            text: q.text,
            help: q.help,
            kind,
            max_points,
            weight: q.weight,
            critical: q.critical,
            allow_na: q.allow_na,
        }
    }
}

fn first_version() -> u32 {
    1
}
fn default_pass_mark() -> f64 {
    DEFAULT_PASS_MARK_PERCENT
}
fn one() -> f64 {
    1.0
}
fn is_one(w: &f64) -> bool {
    *w == 1.0
}
fn is_false(b: &bool) -> bool {
    !*b
}

/// One answer value. See the module doc for the JSON form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Yes,
    No,
    Na,
    Scale(u8),
    Points(u32),
}

impl Answer {
    fn describe(&self) -> String {
        match self {
            Answer::Yes => "yes".into(),
            Answer::No => "no".into(),
            Answer::Na => "na".into(),
            Answer::Scale(v) => v.to_string(),
            Answer::Points(v) => v.to_string(),
        }
    }
}

impl Serialize for Answer {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Answer::Yes => s.serialize_str("yes"),
            Answer::No => s.serialize_str("no"),
            Answer::Na => s.serialize_str("na"),
            Answer::Scale(v) => s.serialize_u32(u32::from(*v)),
            Answer::Points(v) => s.serialize_u32(*v),
        }
    }
}

impl<'de> Deserialize<'de> for Answer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Answer;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"yes\", \"no\", \"na\" or a whole number")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Answer, E> {
                match s {
                    "yes" => Ok(Answer::Yes),
                    "no" => Ok(Answer::No),
                    "na" => Ok(Answer::Na),
                    _ if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s
                        .parse::<u32>()
                        .map(Answer::Points)
                        .map_err(|_| E::invalid_value(de::Unexpected::Str(s), &self)),
                    _ => Err(E::invalid_value(de::Unexpected::Str(s), &self)),
                }
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Answer, E> {
                u32::try_from(v)
                    .map(Answer::Points)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Answer, E> {
                match u64::try_from(v) {
                    Ok(u) => self.visit_u64(u),
                    Err(_) => Err(E::invalid_value(de::Unexpected::Signed(v), &self)),
                }
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Answer, E> {
                Err(E::invalid_value(de::Unexpected::Float(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

/// One submitted answer: `{"q": "greeting", "value": "yes"}`, optionally with the moment of the
/// call it was heard at (`"at_ms": 83000`) and the reviewer's comment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerEntry {
    pub q: String,
    pub value: Answer,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl AnswerEntry {
    pub fn new(q: impl Into<String>, value: Answer) -> Self {
        AnswerEntry {
            q: q.into(),
            value,
            at_ms: None,
            comment: None,
        }
    }
}

/// The result of [`score`]. Percentages are 0–100, unrounded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// None when every question was answered N/A (not scorable).
    pub percent: Option<f64>,
    /// None when not scorable.
    pub passed: Option<bool>,
    /// In card order.
    pub sections: Vec<SectionScore>,
    /// Ids of critical questions with a failing answer, in card order.
    pub failed_critical: Vec<String>,
}

/// One section's score, in question weight-points (the section weight is not applied here).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SectionScore {
    pub id: String,
    /// 0 when zeroed by a section-critical question.
    pub earned: f64,
    pub max: f64,
    /// None when every question in the section was N/A.
    pub percent: Option<f64>,
    /// The first section-critical question that failed, if any.
    pub zeroed_by: Option<String>,
}

/// A scorecard that cannot be read, written or used.
#[derive(Debug, thiserror::Error)]
pub enum CardError {
    #[error("scorecard TOML: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("scorecard JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("scorecard `{card}` cannot be written as TOML: {source}")]
    TomlWrite {
        card: String,
        source: toml::ser::Error,
    },
    #[error("scorecard `{card}` is not valid: {}", join(.problems))]
    Invalid {
        card: String,
        problems: Vec<CardProblem>,
    },
}

/// One thing wrong with a card; [`validate`] reports all of them.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CardProblem {
    #[error("scorecard id `{0}` must be 1–64 characters of a–z, 0–9, `-` and `_`")]
    BadCardId(String),
    #[error("the scorecard needs a name")]
    NoName,
    #[error("pass_mark_percent {0} must be a number from 0 to 100")]
    BadPassMark(f64),
    #[error("the scorecard has no sections; add at least one [[sections]]")]
    NoSections,
    #[error("section id `{0}` must be 1–64 characters of a–z, 0–9, `-` and `_`")]
    BadSectionId(String),
    #[error("section id `{0}` is used more than once; section ids must be unique")]
    DuplicateSection(String),
    #[error("section `{0}` needs a title")]
    NoTitle(String),
    #[error("section `{section}`: weight {weight} must be a number greater than 0")]
    SectionWeight { section: String, weight: f64 },
    #[error("section `{0}` has no questions; add at least one [[sections.questions]]")]
    EmptySection(String),
    #[error(
        "section `{section}`: question id `{question}` must be 1–64 characters of a–z, 0–9, `-` and `_`"
    )]
    BadQuestionId { section: String, question: String },
    #[error("question id `{question}` is used in section `{first}` and again in section `{again}`; question ids must be unique across the scorecard")]
    DuplicateQuestion {
        question: String,
        first: String,
        again: String,
    },
    #[error("question `{question}` (section `{section}`) needs a text")]
    NoText { section: String, question: String },
    #[error(
        "question `{question}` (section `{section}`): weight {weight} must be a number greater than 0"
    )]
    QuestionWeight {
        section: String,
        question: String,
        weight: f64,
    },
    #[error("question `{question}` (section `{section}`): max_points must be at least 1")]
    PointsMax { section: String, question: String },
}

/// Answers that cannot be scored: every problem, each naming its question.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{} answer problem(s): {}", .problems.len(), join(.problems))]
pub struct AnswerError {
    pub problems: Vec<AnswerProblem>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnswerProblem {
    #[error("question `{question}` (section `{section}`) is not answered")]
    Missing { section: String, question: String },
    #[error("`{question}` is not a question on this scorecard")]
    Unknown { question: String },
    #[error("question `{question}` is answered more than once")]
    Duplicate { question: String },
    #[error(
        "question `{question}` (section `{section}`): N/A is not allowed here; answer {expected}"
    )]
    NaNotAllowed {
        section: String,
        question: String,
        expected: String,
    },
    #[error(
        "question `{question}` (section `{section}`): {value} is out of range; answer {expected}"
    )]
    OutOfRange {
        section: String,
        question: String,
        value: u32,
        expected: String,
    },
    #[error(
        "question `{question}` (section `{section}`): `{got}` is the wrong type; answer {expected}"
    )]
    WrongType {
        section: String,
        question: String,
        got: String,
        expected: String,
    },
}

impl AnswerProblem {
    /// The question id the problem is about (for highlighting the field in a form).
    pub fn question(&self) -> &str {
        match self {
            AnswerProblem::Missing { question, .. }
            | AnswerProblem::Unknown { question }
            | AnswerProblem::Duplicate { question }
            | AnswerProblem::NaNotAllowed { question, .. }
            | AnswerProblem::OutOfRange { question, .. }
            | AnswerProblem::WrongType { question, .. } => question,
        }
    }
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn good_weight(w: f64) -> bool {
    w.is_finite() && w > 0.0
}

/// Checks a card: slug ids, unique section ids, question ids unique across the card, non-empty
/// name/titles/texts, at least one section and one question per section, weights > 0,
/// `max_points` ≥ 1, pass mark 0–100. Reports every problem.
pub fn validate(card: &Scorecard) -> Result<(), CardError> {
    let mut p = Vec::new();
    if !is_slug(&card.id) {
        p.push(CardProblem::BadCardId(card.id.clone()));
    }
    if card.name.trim().is_empty() {
        p.push(CardProblem::NoName);
    }
    if !(0.0..=100.0).contains(&card.pass_mark_percent) {
        p.push(CardProblem::BadPassMark(card.pass_mark_percent));
    }
    if card.sections.is_empty() {
        p.push(CardProblem::NoSections);
    }
    let mut section_ids = HashSet::new();
    let mut question_section: HashMap<&str, &str> = HashMap::new();
    for s in &card.sections {
        if !is_slug(&s.id) {
            p.push(CardProblem::BadSectionId(s.id.clone()));
        }
        if !section_ids.insert(s.id.as_str()) {
            p.push(CardProblem::DuplicateSection(s.id.clone()));
        }
        if s.title.trim().is_empty() {
            p.push(CardProblem::NoTitle(s.id.clone()));
        }
        if !good_weight(s.weight) {
            p.push(CardProblem::SectionWeight {
                section: s.id.clone(),
                weight: s.weight,
            });
        }
        if s.questions.is_empty() {
            p.push(CardProblem::EmptySection(s.id.clone()));
        }
        for q in &s.questions {
            let at = || (s.id.clone(), q.id.clone());
            if !is_slug(&q.id) {
                let (section, question) = at();
                p.push(CardProblem::BadQuestionId { section, question });
            }
            if let Some(first) = question_section.insert(q.id.as_str(), s.id.as_str()) {
                p.push(CardProblem::DuplicateQuestion {
                    question: q.id.clone(),
                    first: first.to_owned(),
                    again: s.id.clone(),
                });
            }
            if q.text.trim().is_empty() {
                let (section, question) = at();
                p.push(CardProblem::NoText { section, question });
            }
            if !good_weight(q.weight) {
                let (section, question) = at();
                p.push(CardProblem::QuestionWeight {
                    section,
                    question,
                    weight: q.weight,
                });
            }
            if q.kind == (Kind::Points { max: 0 }) {
                let (section, question) = at();
                p.push(CardProblem::PointsMax { section, question });
            }
        }
    }
    if p.is_empty() {
        Ok(())
    } else {
        Err(CardError::Invalid {
            card: card.id.clone(),
            problems: p,
        })
    }
}

/// Parses and validates a card written in TOML.
pub fn from_toml(text: &str) -> Result<Scorecard, CardError> {
    let card: Scorecard = toml::from_str(text)?;
    validate(&card)?;
    Ok(card)
}

/// The card as TOML (defaults such as `weight = 1` are left out).
pub fn to_toml(card: &Scorecard) -> Result<String, CardError> {
    toml::to_string_pretty(card).map_err(|source| CardError::TomlWrite {
        card: card.id.clone(),
        source,
    })
}

/// Parses and validates a card sent as JSON (the card editor).
pub fn from_json(text: &str) -> Result<Scorecard, CardError> {
    let card: Scorecard = serde_json::from_str(text)?;
    validate(&card)?;
    Ok(card)
}

/// The card as pretty JSON, the same shape as the TOML (`kind` flat, `max_points` beside it).
pub fn to_json(card: &Scorecard) -> Result<String, CardError> {
    Ok(serde_json::to_string_pretty(card)?)
}

/// SHA-256 (hex) of the card's canonical JSON without `version`: object keys sorted, no
/// whitespace, defaults left out as in [`to_json`]. Two cards with the same hash score every
/// call the same way and read the same; the store compares it to decide whether an edit needs a
/// new version.
pub fn content_hash(card: &Scorecard) -> String {
    crate::hash::content_hash_of(card, &["version"])
}

/// The shipped default cards (`inbound-service`, `outbound`, `complaint`), version 1.
pub fn defaults() -> Vec<Scorecard> {
    DEFAULT_CARDS
        .iter()
        .map(|(name, text)| match from_toml(text) {
            Ok(card) => card,
            // Compiled in and checked by the tests, so this is a build defect, not bad input.
            Err(e) => panic!("shipped default scorecard {name}.toml is invalid: {e}"),
        })
        .collect()
}

/// What a valid answer to `q` looks like, for error messages.
fn expected(q: &Question) -> String {
    let base = match q.kind {
        Kind::YesNo => "yes or no".to_owned(),
        Kind::Scale => format!("a whole number from {SCALE_MIN} to {SCALE_MAX}"),
        Kind::Points { max } => format!("a whole number of points from 0 to {max}"),
    };
    if q.allow_na && q.kind == Kind::YesNo {
        "yes, no or na".to_owned()
    } else if q.allow_na {
        format!("{base}, or na")
    } else {
        base
    }
}

/// One answer graded against its question.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Graded {
    /// Earned / max for the question, 0..=1 (the "earned fraction" column of the module doc).
    pub fraction: f64,
    /// A failing answer (`no`, scale 1, 0 points): what sets off a critical question.
    pub failing: bool,
}

/// Why an answer cannot be graded; [`score`] turns it into an [`AnswerProblem`] naming the
/// question and its section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ungradable {
    /// `na` to a question without `allow_na`.
    NaNotAllowed,
    /// A number outside the question's range.
    OutOfRange(u32),
    /// A word for a numeric question or a number for a yes/no question.
    WrongType,
}

impl Ungradable {
    fn problem(self, section: &Section, q: &Question, a: Answer) -> AnswerProblem {
        match self {
            Ungradable::NaNotAllowed => AnswerProblem::NaNotAllowed {
                section: section.id.clone(),
                question: q.id.clone(),
                expected: expected(q),
            },
            Ungradable::OutOfRange(value) => AnswerProblem::OutOfRange {
                section: section.id.clone(),
                question: q.id.clone(),
                value,
                expected: expected(q),
            },
            Ungradable::WrongType => wrong_type(section, q, a),
        }
    }
}

/// Grades one answer by the question table in the module doc: `Ok(None)` for an allowed N/A
/// (the question leaves the maximum), else the earned fraction and whether it fails. This is
/// the one place the per-question formula lives: [`score`] and calibration
/// (`store::calibration`) both grade through it, so they cannot disagree on what an answer
/// earns.
pub fn grade(q: &Question, a: Answer) -> Result<Option<Graded>, Ungradable> {
    let number = match a {
        Answer::Scale(v) => Some(u32::from(v)),
        Answer::Points(v) => Some(v),
        _ => None,
    };
    let graded = |fraction: f64, failing| Ok(Some(Graded { fraction, failing }));
    match (q.kind, a) {
        (_, Answer::Na) if q.allow_na => Ok(None),
        (_, Answer::Na) => Err(Ungradable::NaNotAllowed),
        (Kind::YesNo, Answer::Yes) => graded(1.0, false),
        (Kind::YesNo, Answer::No) => graded(0.0, true),
        (Kind::Scale, _) => match number {
            Some(v) if (SCALE_MIN..=SCALE_MAX).contains(&v) => graded(
                f64::from(v - SCALE_MIN) / f64::from(SCALE_MAX - SCALE_MIN),
                v == SCALE_MIN,
            ),
            Some(value) => Err(Ungradable::OutOfRange(value)),
            None => Err(Ungradable::WrongType),
        },
        (Kind::Points { max }, _) => match number {
            Some(v) if v <= max && max > 0 => graded(f64::from(v) / f64::from(max), v == 0),
            Some(value) => Err(Ungradable::OutOfRange(value)),
            None => Err(Ungradable::WrongType),
        },
        (Kind::YesNo, _) => Err(Ungradable::WrongType),
    }
}

fn wrong_type(section: &Section, q: &Question, a: Answer) -> AnswerProblem {
    AnswerProblem::WrongType {
        section: section.id.clone(),
        question: q.id.clone(),
        got: a.describe(),
        expected: expected(q),
    }
}

/// The answer that gives a question full marks (`yes`, scale 5, max points): what an accepted
/// dispute changes the answer to. None for an unknown question id.
pub fn full_marks_answer(card: &Scorecard, question: &str) -> Option<Answer> {
    let q = card
        .sections
        .iter()
        .flat_map(|s| &s.questions)
        .find(|q| q.id == question)?;
    Some(match q.kind {
        Kind::YesNo => Answer::Yes,
        Kind::Scale => Answer::Scale(SCALE_MAX as u8),
        Kind::Points { max } => Answer::Points(max),
    })
}

/// Checks that every question of `card` is answered exactly once with a value of its type, and
/// that no answer names a question the card does not have. Reports every problem.
pub fn validate_answers(card: &Scorecard, answers: &[AnswerEntry]) -> Result<(), AnswerError> {
    score(card, answers).map(|_| ())
}

/// Scores `answers` against `card` by the formula in the module doc. Fails (listing every
/// problem) unless every question is answered exactly once with a valid value.
pub fn score(card: &Scorecard, answers: &[AnswerEntry]) -> Result<Score, AnswerError> {
    let mut problems = Vec::new();
    let known: HashSet<&str> = card
        .sections
        .iter()
        .flat_map(|s| s.questions.iter().map(|q| q.id.as_str()))
        .collect();
    let mut by_id: HashMap<&str, Answer> = HashMap::new();
    let mut duplicates = HashSet::new();
    for a in answers {
        if !known.contains(a.q.as_str()) {
            problems.push(AnswerProblem::Unknown {
                question: a.q.clone(),
            });
        } else if by_id.insert(a.q.as_str(), a.value).is_some() && duplicates.insert(a.q.as_str()) {
            problems.push(AnswerProblem::Duplicate {
                question: a.q.clone(),
            });
        }
    }

    let mut sections = Vec::with_capacity(card.sections.len());
    let mut failed_critical = Vec::new();
    let mut evaluation_failed = false;
    let (mut total_earned, mut total_max) = (0.0, 0.0);
    for s in &card.sections {
        let (mut earned, mut max) = (0.0, 0.0);
        let mut zeroed_by = None;
        for q in &s.questions {
            let Some(&a) = by_id.get(q.id.as_str()) else {
                problems.push(AnswerProblem::Missing {
                    section: s.id.clone(),
                    question: q.id.clone(),
                });
                continue;
            };
            let g = match grade(q, a) {
                Ok(Some(g)) => g,
                Ok(None) => continue,
                Err(why) => {
                    problems.push(why.problem(s, q, a));
                    continue;
                }
            };
            earned += g.fraction * q.weight;
            max += q.weight;
            if g.failing {
                match q.critical {
                    Some(CriticalScope::Section) => {
                        zeroed_by.get_or_insert_with(|| q.id.clone());
                        failed_critical.push(q.id.clone());
                    }
                    Some(CriticalScope::Evaluation) => {
                        evaluation_failed = true;
                        failed_critical.push(q.id.clone());
                    }
                    None => {}
                }
            }
        }
        if zeroed_by.is_some() {
            earned = 0.0;
        }
        total_earned += s.weight * earned;
        total_max += s.weight * max;
        sections.push(SectionScore {
            id: s.id.clone(),
            earned,
            max,
            percent: (max > 0.0).then(|| 100.0 * earned / max),
            zeroed_by,
        });
    }
    if !problems.is_empty() {
        return Err(AnswerError { problems });
    }
    let percent = (total_max > 0.0).then(|| {
        if evaluation_failed {
            0.0
        } else {
            100.0 * total_earned / total_max
        }
    });
    let passed =
        percent.map(|p| !evaluation_failed && p + PASS_TOLERANCE >= card.pass_mark_percent);
    Ok(Score {
        percent,
        passed,
        sections,
        failed_critical,
    })
}

#[cfg(test)]
mod tests {
    type TestResult = Result<(), Box<dyn std::error::Error>>;
    use super::*;
    use Answer::*;

    /// Section `a` (weight 2): yn1 yes_no w1; sc1 scale w2; pt1 points max 4 w1, N/A allowed.
    /// Section `b` (weight 1): yn2 yes_no w3, N/A allowed, critical section; sc2 scale w1,
    /// critical evaluation.
    const CARD: &str = r#"
id = "test"
name = "Test card"
version = 3

[[sections]]
id = "a"
title = "Section A"
weight = 2

[[sections.questions]]
id = "yn1"
text = "Greeted?"
kind = "yes_no"

[[sections.questions]]
id = "sc1"
text = "Tone"
kind = "scale"
weight = 2

[[sections.questions]]
id = "pt1"
text = "Data entered"
kind = "points"
max_points = 4
allow_na = true

[[sections]]
id = "b"
title = "Section B"

[[sections.questions]]
id = "yn2"
text = "Accurate tariff?"
kind = "yes_no"
weight = 3
allow_na = true
critical = "section"

[[sections.questions]]
id = "sc2"
text = "Identity verified (scaled)"
kind = "scale"
critical = "evaluation"
"#;

    fn card() -> Result<Scorecard, CardError> {
        from_toml(CARD)
    }

    fn answers(list: &[(&str, Answer)]) -> Vec<AnswerEntry> {
        list.iter().map(|(q, a)| AnswerEntry::new(*q, *a)).collect()
    }

    /// The mixed answers of test 2.
    fn mixed() -> Vec<AnswerEntry> {
        answers(&[
            ("yn1", Yes),
            ("sc1", Scale(4)),
            ("pt1", Points(3)),
            ("yn2", Yes),
            ("sc2", Scale(3)),
        ])
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    fn problems(card: &Scorecard, a: &[AnswerEntry]) -> Vec<AnswerProblem> {
        match validate_answers(card, a) {
            Ok(()) => Vec::new(),
            Err(e) => e.problems,
        }
    }

    #[test]
    fn all_best_answers_score_100_and_pass() -> TestResult {
        let s = score(
            &card()?,
            &answers(&[
                ("yn1", Yes),
                ("sc1", Scale(5)),
                ("pt1", Points(4)),
                ("yn2", Yes),
                ("sc2", Scale(5)),
            ]),
        )?;
        assert_eq!(s.percent, Some(100.0));
        assert_eq!(s.passed, Some(true));
        assert!(s.failed_critical.is_empty());
        assert!(s.sections.iter().all(|x| x.percent == Some(100.0)));
        Ok(())
    }

    #[test]
    fn mixed_answers_with_weights() -> TestResult {
        // a: yn1 yes 1×1 = 1; sc1 4 → (4−1)/4 = 0.75 × 2 = 1.5; pt1 3/4 = 0.75 × 1 = 0.75.
        //    earned 3.25, max 1 + 2 + 1 = 4 → 81.25 %.
        // b: yn2 yes 1×3 = 3; sc2 3 → 0.5 × 1 = 0.5. earned 3.5, max 4 → 87.5 %.
        // total = 100 × (2×3.25 + 1×3.5) / (2×4 + 1×4) = 100 × 10 / 12 = 83.333… % ≥ 80 → pass.
        let s = score(&card()?, &mixed())?;
        let a = &s.sections[0];
        assert!(close(a.earned, 3.25) && close(a.max, 4.0));
        assert!(close(a.percent.unwrap_or(f64::NAN), 81.25));
        let b = &s.sections[1];
        assert!(close(b.earned, 3.5) && close(b.max, 4.0));
        assert!(close(b.percent.unwrap_or(f64::NAN), 87.5));
        assert!(close(s.percent.unwrap_or(f64::NAN), 250.0 / 3.0));
        assert_eq!(s.passed, Some(true));
        assert!(s.failed_critical.is_empty());
        assert_eq!(a.zeroed_by, None);

        // The same answers as they come from a browser.
        let json = r#"[{"q":"yn1","value":"yes"},{"q":"sc1","value":4},
            {"q":"pt1","value":"3"},{"q":"yn2","value":"yes"},{"q":"sc2","value":3}]"#;
        let from_browser: Vec<AnswerEntry> = serde_json::from_str(json)?;
        assert_eq!(score(&card()?, &from_browser)?, s);
        let back: Vec<AnswerEntry> = serde_json::from_str(&serde_json::to_string(&mixed())?)?;
        assert_eq!(score(&card()?, &back)?, s);
        Ok(())
    }

    #[test]
    fn na_removes_the_question_from_the_maximum() -> TestResult {
        // pt1 N/A: a: earned 1 + 1.5 = 2.5, max 3; b unchanged 3.5 / 4.
        // total = 100 × (2×2.5 + 3.5) / (2×3 + 4) = 100 × 8.5 / 10 = 85 %.
        let mut with_na = mixed();
        with_na[2].value = Na;
        let s = score(&card()?, &with_na)?;
        assert!(close(s.sections[0].max, 3.0));
        assert!(close(s.percent.unwrap_or(f64::NAN), 85.0));

        // The same card without pt1, the same other answers: identical score.
        let mut without = card()?;
        without.sections[0].questions.retain(|q| q.id != "pt1");
        let mut fewer = mixed();
        fewer.remove(2);
        assert_eq!(score(&without, &fewer)?, s);
        Ok(())
    }

    #[test]
    fn section_critical_zeroes_only_its_section() -> TestResult {
        // yn2 no (critical section): b earned 0 + 0.5 → zeroed to 0, max stays 4.
        // a unchanged 3.25 / 4. total = 100 × (2×3.25 + 0) / 12 = 54.1666… % → fail.
        let mut a = mixed();
        a[3].value = No;
        let s = score(&card()?, &a)?;
        assert!(close(s.sections[0].percent.unwrap_or(f64::NAN), 81.25));
        assert_eq!(s.sections[0].zeroed_by, None);
        let b = &s.sections[1];
        assert_eq!(b.earned, 0.0);
        assert!(close(b.max, 4.0));
        assert_eq!(b.percent, Some(0.0));
        assert_eq!(b.zeroed_by.as_deref(), Some("yn2"));
        assert!(close(s.percent.unwrap_or(f64::NAN), 650.0 / 12.0));
        assert_eq!(s.passed, Some(false));
        assert_eq!(s.failed_critical, vec!["yn2".to_owned()]);
        Ok(())
    }

    #[test]
    fn evaluation_critical_fails_everything_but_keeps_answers() -> TestResult {
        // sc2 = 1 (critical evaluation) → total 0 %, failed. Sections keep their own scores:
        // a 3.25 / 4; b: yn2 yes 3 + sc2 0 = 3 / 4 (not zeroed: the scope is the evaluation).
        let mut a = mixed();
        a[4].value = Scale(1);
        let s = score(&card()?, &a)?;
        assert_eq!(s.percent, Some(0.0));
        assert_eq!(s.passed, Some(false));
        assert_eq!(s.failed_critical, vec!["sc2".to_owned()]);
        assert!(close(s.sections[0].earned, 3.25));
        assert!(close(s.sections[1].earned, 3.0));
        assert_eq!(s.sections[1].zeroed_by, None);
        assert_eq!(a.len(), 5);

        // Fails even with a pass mark of 0; a critical N/A or a passing answer does not fail.
        let mut lenient = card()?;
        lenient.pass_mark_percent = 0.0;
        assert_eq!(score(&lenient, &a)?.passed, Some(false));
        let mut na = mixed();
        na[3].value = Na;
        assert!(score(&card()?, &na)?.failed_critical.is_empty());

        // Both scopes failing at once: both listed, card order.
        a[3].value = No;
        let s = score(&card()?, &a)?;
        assert_eq!(s.failed_critical, vec!["yn2".to_owned(), "sc2".to_owned()]);
        assert_eq!(s.percent, Some(0.0));
        Ok(())
    }

    #[test]
    fn all_na_is_not_scorable() -> TestResult {
        let mut c = card()?;
        for q in c.sections.iter_mut().flat_map(|s| s.questions.iter_mut()) {
            q.allow_na = true;
        }
        let all_na = answers(&[
            ("yn1", Na),
            ("sc1", Na),
            ("pt1", Na),
            ("yn2", Na),
            ("sc2", Na),
        ]);
        let s = score(&c, &all_na)?;
        assert_eq!(s.percent, None);
        assert_eq!(s.passed, None);
        assert!(s
            .sections
            .iter()
            .all(|x| x.percent.is_none() && x.max == 0.0));

        // One section all N/A: that section has no percent, the total uses the other only.
        // a: 3.25 / 4 → total = 100 × 2×3.25 / (2×4) = 81.25 %.
        let mut one = mixed();
        one[3].value = Na;
        one[4].value = Na;
        let s = score(&c, &one)?;
        assert_eq!(s.sections[1].percent, None);
        assert!(close(s.percent.unwrap_or(f64::NAN), 81.25));
        Ok(())
    }

    #[test]
    fn answer_validation_names_each_problem() -> TestResult {
        let c = card()?;
        let (a, b) = ("a".to_owned(), "b".to_owned());

        let mut missing = mixed();
        missing.remove(1);
        assert_eq!(
            problems(&c, &missing),
            vec![AnswerProblem::Missing {
                section: a.clone(),
                question: "sc1".into()
            }]
        );

        for bad in [0, 6] {
            let mut x = mixed();
            x[1].value = Scale(bad);
            assert_eq!(
                problems(&c, &x),
                vec![AnswerProblem::OutOfRange {
                    section: a.clone(),
                    question: "sc1".into(),
                    value: u32::from(bad),
                    expected: "a whole number from 1 to 5".into()
                }]
            );
        }

        let mut over = mixed();
        over[2].value = Points(5);
        assert_eq!(
            problems(&c, &over),
            vec![AnswerProblem::OutOfRange {
                section: a.clone(),
                question: "pt1".into(),
                value: 5,
                expected: "a whole number of points from 0 to 4, or na".into()
            }]
        );

        let mut na = mixed();
        na[4].value = Na;
        assert_eq!(
            problems(&c, &na),
            vec![AnswerProblem::NaNotAllowed {
                section: b.clone(),
                question: "sc2".into(),
                expected: "a whole number from 1 to 5".into()
            }]
        );

        let mut unknown = mixed();
        unknown.push(AnswerEntry::new("nope", Yes));
        assert_eq!(
            problems(&c, &unknown),
            vec![AnswerProblem::Unknown {
                question: "nope".into()
            }]
        );

        let mut dup = mixed();
        dup.push(AnswerEntry::new("yn1", No));
        dup.push(AnswerEntry::new("yn1", No));
        assert_eq!(
            problems(&c, &dup),
            vec![AnswerProblem::Duplicate {
                question: "yn1".into()
            }]
        );

        let mut wrong = mixed();
        wrong[0].value = Points(1);
        wrong[1].value = Yes;
        assert_eq!(
            problems(&c, &wrong),
            vec![
                AnswerProblem::WrongType {
                    section: a.clone(),
                    question: "yn1".into(),
                    got: "1".into(),
                    expected: "yes or no".into()
                },
                AnswerProblem::WrongType {
                    section: a.clone(),
                    question: "sc1".into(),
                    got: "yes".into(),
                    expected: "a whole number from 1 to 5".into()
                }
            ]
        );

        // Several at once, all reported; the message names the questions.
        let mut many = mixed();
        many.remove(0);
        many[0].value = Scale(9);
        let err = score(&c, &many).unwrap_err();
        assert_eq!(err.problems.len(), 2);
        assert_eq!(err.problems[0].question(), "yn1");
        let msg = err.to_string();
        assert!(msg.contains("`yn1`") && msg.contains("`sc1`"), "{msg}");
        assert!(msg.contains("from 1 to 5"), "{msg}");

        // Bad JSON values fail at parse time with what was expected.
        for bad in [r#"{"q":"x","value":"maybe"}"#, r#"{"q":"x","value":-1}"#] {
            let e = serde_json::from_str::<AnswerEntry>(bad).unwrap_err();
            assert!(e.to_string().contains("\"yes\", \"no\", \"na\""), "{e}");
        }
        assert!(serde_json::from_str::<AnswerEntry>(r#"{"q":"x","value":2.5}"#).is_err());
        assert!(serde_json::from_str::<AnswerEntry>(r#"{"q":"x","vlaue":2}"#).is_err());
        Ok(())
    }

    #[test]
    fn card_validation_names_each_problem() -> TestResult {
        let mut c = card()?;
        c.id = "Bad Id".into();
        c.pass_mark_percent = 120.0;
        c.sections[0].weight = 0.0;
        c.sections[0].questions[1].id = "yn1".into();
        c.sections[0].questions[2].kind = Kind::Points { max: 0 };
        c.sections[1].questions[0].weight = -1.0;
        c.sections[1].questions.clear();
        c.sections[1].id = "a".into();
        let Err(CardError::Invalid { problems, .. }) = validate(&c) else {
            panic!("card should be invalid");
        };
        assert_eq!(
            problems,
            vec![
                CardProblem::BadCardId("Bad Id".into()),
                CardProblem::BadPassMark(120.0),
                CardProblem::SectionWeight {
                    section: "a".into(),
                    weight: 0.0
                },
                CardProblem::DuplicateQuestion {
                    question: "yn1".into(),
                    first: "a".into(),
                    again: "a".into()
                },
                CardProblem::PointsMax {
                    section: "a".into(),
                    question: "pt1".into()
                },
                CardProblem::DuplicateSection("a".into()),
                CardProblem::EmptySection("a".into()),
            ]
        );

        // Structural mistakes are TOML errors naming the question or the field.
        let no_max = CARD.replace("max_points = 4\n", "");
        let e = from_toml(&no_max).unwrap_err().to_string();
        assert!(e.contains("`pt1`") && e.contains("max_points"), "{e}");
        let typo = CARD.replace("allow_na = true\ncritical", "alow_na = true\ncritical");
        let e = from_toml(&typo).unwrap_err().to_string();
        assert!(e.contains("alow_na"), "{e}");
        let e = from_toml(&CARD.replace("kind = \"scale\"\nweight", "kind = \"stars\"\nweight"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("stars"), "{e}");
        let e = from_toml(&CARD.replace("id = \"b\"", "id = \"B\"")).unwrap_err();
        assert!(e.to_string().contains("section id `B`"), "{e}");
        Ok(())
    }

    #[test]
    fn defaults_parse_validate_and_round_trip() -> TestResult {
        let cards = defaults();
        let ids: Vec<&str> = cards.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["inbound-service", "outbound", "complaint"]);
        for ((file, _), c) in DEFAULT_CARDS.iter().zip(&cards) {
            assert_eq!(*file, c.id);
            assert_eq!(c.version, 1);
            validate(c)?;
            let questions = || c.sections.iter().flat_map(|s| s.questions.iter());
            assert!(
                questions().all(|q| !q.help.trim().is_empty()),
                "{file}: help"
            );
            assert!(
                questions().any(|q| q.critical.is_some()),
                "{file}: critical"
            );

            let toml_text = to_toml(c)?;
            let again = from_toml(&toml_text)?;
            assert_eq!(&again, c, "{file}: TOML round trip\n{toml_text}");
            assert_eq!(to_toml(&again)?, toml_text);

            let json = to_json(c)?;
            let again = from_json(&json)?;
            assert_eq!(&again, c, "{file}: JSON round trip");
            assert_eq!(to_json(&again)?, json);

            // Every default can score a call: best answers give 100 %.
            let best: Vec<AnswerEntry> = questions()
                .map(|q| {
                    let v = match q.kind {
                        Kind::YesNo => Yes,
                        Kind::Scale => Scale(5),
                        Kind::Points { max } => Points(max),
                    };
                    AnswerEntry::new(q.id.clone(), v)
                })
                .collect();
            assert_eq!(score(c, &best)?.percent, Some(100.0), "{file}");
        }

        let inbound = &cards[0];
        let kinds: HashSet<_> = inbound
            .sections
            .iter()
            .flat_map(|s| s.questions.iter())
            .map(|q| std::mem::discriminant(&q.kind))
            .collect();
        assert_eq!(kinds.len(), 3, "inbound mixes yes_no, scale and points");
        Ok(())
    }

    #[test]
    fn content_hash_ignores_version_only() -> TestResult {
        let c = card()?;
        let h = content_hash(&c);
        assert_eq!(h.len(), 64);
        let mut bumped = c.clone();
        bumped.version += 1;
        assert_eq!(content_hash(&bumped), h);

        let mut edited = c.clone();
        edited.sections[1].questions[0]
            .text
            .push_str(" (incl. promotions)");
        assert_ne!(content_hash(&edited), h);
        let mut reweighted = c.clone();
        reweighted.sections[0].questions[0].weight = 2.0;
        assert_ne!(content_hash(&reweighted), h);

        // The same card written differently (explicit defaults, other key order) hashes equal.
        let spelled = CARD
            .replace("version = 3", "version = 9\npass_mark_percent = 80")
            .replacen("kind = \"yes_no\"\n", "kind = \"yes_no\"\nweight = 1\n", 1);
        assert_eq!(content_hash(&from_toml(&spelled)?), h);
        assert_eq!(content_hash(&from_json(&to_json(&c)?)?), h);
        for c in defaults() {
            assert_ne!(content_hash(&c), h);
        }
        Ok(())
    }

    /// Differences between `got` and `want` (numbers within 1e-9), as "path: got vs want".
    fn differences(got: &serde_json::Value, want: &serde_json::Value, path: &str) -> Vec<String> {
        use serde_json::Value;
        match (got, want) {
            (Value::Number(g), Value::Number(w)) => match (g.as_f64(), w.as_f64()) {
                (Some(g), Some(w)) if (g - w).abs() <= 1e-9 => Vec::new(),
                _ => vec![format!("{path}: {got} vs {want}")],
            },
            (Value::Array(g), Value::Array(w)) if g.len() == w.len() => g
                .iter()
                .zip(w)
                .enumerate()
                .flat_map(|(i, (g, w))| differences(g, w, &format!("{path}[{i}]")))
                .collect(),
            (Value::Object(g), Value::Object(w)) => w
                .iter()
                .flat_map(|(k, w)| {
                    differences(g.get(k).unwrap_or(&Value::Null), w, &format!("{path}.{k}"))
                })
                .collect(),
            _ if got == want => Vec::new(),
            _ => vec![format!("{path}: {got} vs {want}")],
        }
    }

    /// The cases shared with the browser's live preview (common.js `computeScore`, checked by
    /// scripts/check-score-preview.mjs in `make lint-js`): both must give these scores.
    #[test]
    fn score_cases_fixture() -> TestResult {
        let fixture: serde_json::Value =
            serde_json::from_str(include_str!("../../fixtures/score-cases.json"))?;
        let mut cards = HashMap::new();
        for (name, card) in fixture["cards"].as_object().ok_or("no cards")? {
            let card: Scorecard = serde_json::from_value(card.clone())?;
            validate(&card)?;
            cards.insert(name.as_str(), card);
        }
        let cases = fixture["cases"].as_array().ok_or("no cases")?;
        assert!(cases.len() >= 10, "only {} cases", cases.len());
        let mut failures = Vec::new();
        for case in cases {
            let name = case["name"].as_str().ok_or("a case without a name")?;
            let card_name = case["card"].as_str().ok_or("a case without a card")?;
            let card = cards
                .get(card_name)
                .ok_or_else(|| format!("{name}: no card {card_name:?}"))?;
            let answers: Vec<AnswerEntry> = serde_json::from_value(case["answers"].clone())?;
            let got = serde_json::to_value(score(card, &answers)?)?;
            let diff = differences(&got, &case["expected"], "score");
            if !diff.is_empty() {
                failures.push(format!("{name}:\n  {}", diff.join("\n  ")));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        Ok(())
    }
}
