//! Call scripts: ordered required steps with time windows; spot-check outcomes; suggestions from transcripts.
//!
//! A script lists what an agent must do or say on a call (the recording notice in the first
//! 30 s, identity verified before account details, a goodbye in the last 30 s, ...). A reviewer
//! listens and marks each step `present` (with the moment it was heard), `absent` or `na`;
//! [`evaluate`] turns those marks into a pass or fail per step and for the call. When a
//! transcript exists, [`suggest`] points the reviewer at the first segment that seems to say each
//! step, so they can jump there and confirm.
//!
//! This module never decides compliance by itself: a suggestion is only a place to listen, and
//! only a reviewer's mark counts. It does no I/O; versioning stored scripts is the store's job
//! (`store::compliance`), and [`content_hash`] tells whether an edited script differs.
//!
//! # Windows and order
//!
//! * `within_first_s = 30`: the step must be heard in `[0, 30 000]` ms of the call.
//! * `within_last_s = 60`: the step must be heard in `[duration − 60 000, duration]` ms.
//! * Neither: anywhere in the call. Both bounds are clamped to the call, so a 20 s call meets a
//!   "first 30 s" step anywhere.
//! * `before = "x"` / `after = "x"`: checked against the moment step `x` was heard, and only when
//!   `x` is marked present (when it is absent or N/A there is nothing to be before or after).
//!   The same second counts as in order: reviewers mark to the second, and one sentence may
//!   carry two steps ("this call is recorded, my name is Sam").

use crate::qa::transcript::{normalize_speaker, Segment};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::fmt;

/// Longest script slug or step key.
pub const MAX_KEY_LEN: usize = 64;

/// A compliance script. `slug` names it; the store keys scripts by `(slug, version)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    pub slug: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub steps: Vec<Step>,
}

/// One thing the agent must do or say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Unique within the script, `[a-z0-9_-]+`.
    pub key: String,
    /// What the agent must do or say, shown to the reviewer.
    pub text: String,
    #[serde(default)]
    pub window: Window,
    /// Phrases and their variants for transcript matching (case-, punctuation-insensitive,
    /// whole words). Variants are listed as more phrases, because speech recognition mishears
    /// ("collect a debt" / "collect a death").
    #[serde(default)]
    pub phrases: Vec<String>,
    #[serde(default)]
    pub speaker: Speaker,
    /// A step that is not required is still marked and shown, but never fails the check.
    #[serde(default = "yes")]
    pub required: bool,
}

/// Where in the call a step must fall. All `None`: anywhere.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_first_s: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_last_s: Option<u32>,
    /// Key of a step this one must come before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// Key of a step this one must come after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// Who must say a step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Speaker {
    #[default]
    Agent,
    Customer,
    Any,
}

/// A reviewer's finding for one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mark {
    Present,
    Absent,
    Na,
}

/// One mark on the wire: `{"step": "greeting", "mark": "present", "at_ms": 12000}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMark {
    pub step: String,
    pub mark: Mark,
    /// When the step was heard; required for `present`.
    #[serde(default)]
    pub at_ms: Option<u64>,
    #[serde(default)]
    pub comment: String,
}

/// How one step fared, in script order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    pub step: String,
    pub text: String,
    pub required: bool,
    /// None while the step is not marked (draft preview only).
    pub mark: Option<Mark>,
    pub at_ms: Option<u64>,
    /// The absolute range of the call the step must fall in (see [`window_ms`]).
    pub window_ms: (u64, u64),
    pub passed: bool,
    /// Why the step did not pass, as a sentence for the reviewer.
    pub problem: Option<String>,
}

/// The result of [`evaluate`]: `passed` when every required step passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckOutcome {
    pub passed: bool,
    pub steps: Vec<StepResult>,
}

/// A transcript segment that seems to say a step: a place to listen, not a mark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suggestion {
    pub step: String,
    pub at_ms: u64,
    pub end_ms: u64,
    pub speaker: Option<String>,
    pub text: String,
    /// The script phrase that matched, as written in the script.
    pub phrase: String,
}

fn yes() -> bool {
    true
}

/// A script that cannot be read, written or used.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("script TOML: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("script JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("script `{slug}` cannot be written as TOML: {source}")]
    TomlWrite {
        slug: String,
        source: toml::ser::Error,
    },
    #[error("script `{slug}` is not valid: {}", join(.problems))]
    Invalid {
        slug: String,
        problems: Vec<ScriptProblem>,
    },
}

/// One thing wrong with a script; [`validate`] reports all of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptProblem {
    #[error("script slug `{0}` must be 1–64 characters of a–z, 0–9, `-` and `_`")]
    BadSlug(String),
    #[error("the script needs a name")]
    NoName,
    #[error("the script has no steps; add at least one [[steps]]")]
    NoSteps,
    #[error("step key `{0}` must be 1–64 characters of a–z, 0–9, `-` and `_`")]
    BadKey(String),
    #[error("step key `{0}` is used more than once; step keys must be unique")]
    DuplicateKey(String),
    #[error("step `{0}` needs a text saying what the agent must do or say")]
    NoText(String),
    #[error("step `{step}`: {field} = `{other}` names no step of this script")]
    UnknownStep {
        step: String,
        field: &'static str,
        other: String,
    },
    #[error("step `{step}`: {field} names the step itself; name another step or remove it")]
    SelfReference { step: String, field: &'static str },
    #[error("steps {} must each come before the next, which cannot be; remove one of these before/after", cycle_text(.0))]
    Cycle(Vec<String>),
    #[error("step `{step}`: {field} = 0 leaves no time; use at least 1 s or remove it")]
    ZeroWindow { step: String, field: &'static str },
    #[error("step `{0}` sets both within_first_s and within_last_s; a step can only be tied to one end of the call")]
    BothEnds(String),
    #[error("step `{0}` has an empty phrase (nothing but spaces or punctuation); remove it")]
    EmptyPhrase(String),
}

/// Marks that cannot be evaluated, with what the reviewer should do about them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MarkError {
    #[error("`{step}` is not a step of this script; remove that mark")]
    UnknownStep { step: String },
    #[error("step `{step}` is marked more than once; keep one mark per step")]
    Duplicate { step: String },
    #[error("step `{step}` is marked present without a time; enter when it was heard (m:ss)")]
    PresentWithoutTime { step: String },
    #[error("step `{step}`: {} is after the end of the call ({}); correct the time", m_ss(*.at_ms), m_ss(*.duration_ms))]
    BeyondCall {
        step: String,
        at_ms: u64,
        duration_ms: u64,
    },
    #[error("{} not marked yet: {}; mark each present (with the time heard), absent or na before submitting", if .steps.len() == 1 { "a step is" } else { "steps are" }, quoted(.steps))]
    Unmarked { steps: Vec<String> },
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn quoted(keys: &[String]) -> String {
    keys.iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn cycle_text(keys: &[String]) -> String {
    keys.iter()
        .chain(keys.first())
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(" → ")
}

/// `m:ss`, minutes unbounded (a 75-minute call shows `75:03`); seconds are truncated, as a
/// player's clock shows them.
fn m_ss(ms: u64) -> String {
    format!("{}:{:02}", ms / 60_000, (ms / 1000) % 60)
}

fn is_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_KEY_LEN
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Checks a script: slug and keys, a name, at least one step, unique keys, a text per step,
/// windows of at least 1 s tied to one end, before/after naming other existing steps without
/// cycles, phrases that are not empty. Reports every problem.
pub fn validate(script: &Script) -> Result<(), ScriptError> {
    let mut p = Vec::new();
    if !is_key(&script.slug) {
        p.push(ScriptProblem::BadSlug(script.slug.clone()));
    }
    if script.name.trim().is_empty() {
        p.push(ScriptProblem::NoName);
    }
    if script.steps.is_empty() {
        p.push(ScriptProblem::NoSteps);
    }
    let mut keys = HashSet::new();
    for s in &script.steps {
        if !is_key(&s.key) {
            p.push(ScriptProblem::BadKey(s.key.clone()));
        }
        if !keys.insert(s.key.as_str()) {
            p.push(ScriptProblem::DuplicateKey(s.key.clone()));
        }
    }
    for s in &script.steps {
        if s.text.trim().is_empty() {
            p.push(ScriptProblem::NoText(s.key.clone()));
        }
        let w = &s.window;
        for (field, v) in [
            ("within_first_s", w.within_first_s),
            ("within_last_s", w.within_last_s),
        ] {
            if v == Some(0) {
                p.push(ScriptProblem::ZeroWindow {
                    step: s.key.clone(),
                    field,
                });
            }
        }
        if w.within_first_s.is_some() && w.within_last_s.is_some() {
            p.push(ScriptProblem::BothEnds(s.key.clone()));
        }
        for (field, other) in [("before", &w.before), ("after", &w.after)] {
            let Some(other) = other else { continue };
            if *other == s.key {
                p.push(ScriptProblem::SelfReference {
                    step: s.key.clone(),
                    field,
                });
            } else if !keys.contains(other.as_str()) {
                p.push(ScriptProblem::UnknownStep {
                    step: s.key.clone(),
                    field,
                    other: other.clone(),
                });
            }
        }
        if s.phrases.iter().any(|ph| normalize(ph).is_empty()) {
            p.push(ScriptProblem::EmptyPhrase(s.key.clone()));
        }
    }
    p.extend(order_cycles(script).into_iter().map(ScriptProblem::Cycle));
    if p.is_empty() {
        Ok(())
    } else {
        Err(ScriptError::Invalid {
            slug: script.slug.clone(),
            problems: p,
        })
    }
}

/// Cycles in the "comes before" graph (`a.before = b` and `b.after = a` are both the edge
/// a → b), each as the keys along it, found by a depth-first search in script order. Self and
/// unknown references are reported elsewhere and left out here.
fn order_cycles(script: &Script) -> Vec<Vec<String>> {
    let index: HashMap<&str, usize> = script
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.key.as_str(), i))
        .collect();
    let n = script.steps.len();
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, s) in script.steps.iter().enumerate() {
        if let Some(&j) = s.window.before.as_deref().and_then(|k| index.get(k)) {
            if i != j {
                edges[i].push(j);
            }
        }
        if let Some(&j) = s.window.after.as_deref().and_then(|k| index.get(k)) {
            if i != j {
                edges[j].push(i);
            }
        }
    }
    // 0 = not seen, 1 = on the current path, 2 = done.
    let mut state = vec![0u8; n];
    let mut cycles = Vec::new();
    for root in 0..n {
        if state[root] != 0 {
            continue;
        }
        // Iterative DFS: (node, next edge to follow); `path` mirrors the stack's nodes.
        let mut stack = vec![(root, 0usize)];
        state[root] = 1;
        while let Some(top) = stack.last_mut() {
            let (node, next) = *top;
            if let Some(&to) = edges[node].get(next) {
                top.1 += 1;
                match state[to] {
                    0 => {
                        state[to] = 1;
                        stack.push((to, 0));
                    }
                    1 => {
                        let from = stack.iter().position(|&(v, _)| v == to).unwrap_or(0);
                        cycles.push(
                            stack[from..]
                                .iter()
                                .map(|&(v, _)| script.steps[v].key.clone())
                                .collect(),
                        );
                    }
                    _ => {}
                }
            } else {
                state[node] = 2;
                stack.pop();
            }
        }
    }
    cycles
}

/// Parses and validates a script written in TOML.
pub fn from_toml(text: &str) -> Result<Script, ScriptError> {
    let script: Script = toml::from_str(text)?;
    validate(&script)?;
    Ok(script)
}

/// The script as TOML.
pub fn to_toml(s: &Script) -> Result<String, ScriptError> {
    toml::to_string_pretty(s).map_err(|source| ScriptError::TomlWrite {
        slug: s.slug.clone(),
        source,
    })
}

/// Parses and validates a script sent as JSON (the script editor, the store).
pub fn from_json(text: &str) -> Result<Script, ScriptError> {
    let script: Script = serde_json::from_str(text)?;
    validate(&script)?;
    Ok(script)
}

/// The script as pretty JSON, the same shape as the TOML.
pub fn to_json(s: &Script) -> Result<String, ScriptError> {
    Ok(serde_json::to_string_pretty(s)?)
}

/// SHA-256 (hex) of the script's canonical JSON: object keys sorted, no whitespace, defaults
/// written out. Two scripts with the same hash check every call the same way and read the same;
/// the store compares it to decide whether an edit needs a new version.
pub fn content_hash(s: &Script) -> String {
    crate::hash::content_hash_of(s, &[])
}

/// Shorthand for building the shipped scripts.
struct StepSpec<'a> {
    key: &'a str,
    text: &'a str,
    first_s: Option<u32>,
    last_s: Option<u32>,
    before: Option<&'a str>,
    after: Option<&'a str>,
    speaker: Speaker,
    required: bool,
    phrases: &'a [&'a str],
}

impl StepSpec<'_> {
    fn build(&self) -> Step {
        Step {
            key: self.key.to_owned(),
            text: self.text.to_owned(),
            window: Window {
                within_first_s: self.first_s,
                within_last_s: self.last_s,
                before: self.before.map(str::to_owned),
                after: self.after.map(str::to_owned),
            },
            phrases: self.phrases.iter().map(|p| (*p).to_owned()).collect(),
            speaker: self.speaker,
            required: self.required,
        }
    }
}

const ANYWHERE: StepSpec<'static> = StepSpec {
    key: "",
    text: "",
    first_s: None,
    last_s: None,
    before: None,
    after: None,
    speaker: Speaker::Agent,
    required: true,
    phrases: &[],
};

/// Recording notices as agents and IVR prompts phrase them.
const RECORDING_PHRASES: &[&str] = &[
    "this call is recorded",
    "this call may be recorded",
    "this call is being recorded",
    "this call will be recorded",
    "calls are recorded",
    "calls may be recorded",
    "calls are monitored",
    "calls may be monitored",
    "monitored or recorded",
    "monitored and recorded",
    "recorded for quality",
    "recorded for training",
];

/// The scripts a new box ships with (built in code, so they cannot fail to load; the tests
/// validate them).
pub fn defaults() -> Vec<Script> {
    let inbound = Script {
        slug: "inbound-compliance".into(),
        name: "Inbound service compliance".into(),
        description: "Spot check for inbound service calls: recording notice, introduction, \
                      identity verification before any account data, and a proper close."
            .into(),
        steps: [
            StepSpec {
                key: "recording_notice",
                text: "Recording notice: the caller hears that the call is recorded",
                first_s: Some(30),
                // The notice is often played by the IVR before the agent picks up.
                speaker: Speaker::Any,
                phrases: RECORDING_PHRASES,
                ..ANYWHERE
            },
            StepSpec {
                key: "greeting",
                text: "Greets the caller and gives own name",
                first_s: Some(20),
                phrases: &[
                    "my name is",
                    "you're speaking to",
                    "you are speaking to",
                    "you're speaking with",
                    "you are speaking with",
                    "you're through to",
                    "you are through to",
                ],
                ..ANYWHERE
            },
            StepSpec {
                key: "identity",
                text: "Verifies the caller's identity",
                phrases: &[
                    "date of birth",
                    "postcode",
                    "post code",
                    "zip code",
                    "security question",
                    "verify your identity",
                    "confirm your identity",
                    "first line of your address",
                    "memorable word",
                ],
                ..ANYWHERE
            },
            StepSpec {
                key: "account_details",
                text: "Discusses account details only after identity is verified",
                // The violation is disclosing too early, so the order is this step's rule.
                after: Some("identity"),
                phrases: &[
                    "your balance",
                    "your account shows",
                    "on your account",
                    "your last payment",
                    "your statement",
                ],
                ..ANYWHERE
            },
            StepSpec {
                key: "anything_else",
                text: "Offers further help before closing",
                last_s: Some(60),
                phrases: &[
                    "anything else",
                    "is there anything else i can help",
                    "anything more i can do",
                    "help with anything else",
                ],
                ..ANYWHERE
            },
            StepSpec {
                key: "closing",
                text: "Thanks the caller and says goodbye",
                last_s: Some(30),
                after: Some("anything_else"),
                phrases: &[
                    "thank you for calling",
                    "thanks for calling",
                    "goodbye",
                    "good bye",
                    "bye bye",
                    "have a good day",
                    "have a nice day",
                ],
                ..ANYWHERE
            },
        ]
        .iter()
        .map(StepSpec::build)
        .collect(),
    };

    let collections = Script {
        slug: "collections-mini-miranda".into(),
        name: "Collections: mini-Miranda".into(),
        description: "Spot check for collection calls (15 U.S.C. §1692e(11)): the collector \
                      says it is trying to collect a debt and that information will be used for \
                      that purpose, and verifies the right party before discussing the debt."
            .into(),
        steps: [
            StepSpec {
                key: "recording_notice",
                text: "Recording notice: the consumer hears that the call is recorded",
                first_s: Some(30),
                speaker: Speaker::Any,
                phrases: RECORDING_PHRASES,
                ..ANYWHERE
            },
            StepSpec {
                key: "mini_miranda",
                text: "Mini-Miranda: this is an attempt to collect a debt and any information \
                       obtained will be used for that purpose",
                first_s: Some(30),
                // "death" variants: speech recognition often mishears "debt".
                phrases: &[
                    "attempt to collect a debt",
                    "attempting to collect a debt",
                    "attempt to collect a death",
                    "attempting to collect a death",
                    "information obtained will be used for that purpose",
                    "communication from a debt collector",
                    "communication from a death collector",
                    "this is a debt collector",
                ],
                ..ANYWHERE
            },
            StepSpec {
                key: "identity",
                text: "Verifies the right party's identity",
                phrases: &[
                    "date of birth",
                    "last four digits",
                    "last 4 digits",
                    "social security",
                    "verify your identity",
                    "confirm your identity",
                    "confirm your address",
                    "am i speaking with",
                    "am i speaking to",
                ],
                ..ANYWHERE
            },
            StepSpec {
                key: "debt_discussion",
                text: "Discusses the debt (balance, creditor) only after identity is verified",
                // Disclosing a debt to a third party is the violation (§1692c(b)).
                after: Some("identity"),
                phrases: &[
                    "balance of",
                    "you owe",
                    "amount owed",
                    "outstanding balance",
                    "past due",
                    "the original creditor",
                ],
                ..ANYWHERE
            },
            StepSpec {
                key: "payment_options",
                text: "Offers payment options",
                required: false,
                after: Some("identity"),
                phrases: &[
                    "payment plan",
                    "payment arrangement",
                    "pay in full",
                    "set up a payment",
                ],
                ..ANYWHERE
            },
            StepSpec {
                key: "closing",
                text: "Thanks the consumer and says goodbye",
                last_s: Some(30),
                phrases: &[
                    "thank you for your time",
                    "thanks for your time",
                    "goodbye",
                    "good bye",
                    "bye bye",
                    "have a good day",
                ],
                ..ANYWHERE
            },
        ]
        .iter()
        .map(StepSpec::build)
        .collect(),
    };
    vec![inbound, collections]
}

/// The range of the call a step must fall in: `within_first_s` caps the end, `within_last_s`
/// raises the start, both clamped to `[0, duration_ms]`.
fn step_window(step: &Step, duration_ms: u64) -> (u64, u64) {
    let w = &step.window;
    let start = w
        .within_last_s
        .map_or(0, |s| duration_ms.saturating_sub(u64::from(s) * 1000));
    let end = w
        .within_first_s
        .map_or(duration_ms, |s| (u64::from(s) * 1000).min(duration_ms));
    (start, end)
}

/// The absolute time range (ms) step `step_key` must fall in, on a call of `duration_ms`;
/// `None` when the script has no such step. Before/after do not narrow it: they are checked
/// against the other steps' marks. (A script with both ends set, which [`validate`] refuses,
/// gets their intersection, empty when start > end.)
pub fn window_ms(script: &Script, step_key: &str, duration_ms: u64) -> Option<(u64, u64)> {
    script
        .steps
        .iter()
        .find(|s| s.key == step_key)
        .map(|s| step_window(s, duration_ms))
}

/// Why a time is outside the step's window, e.g. "after the first 30 s"; None when inside.
fn window_clause(step: &Step, (start, end): (u64, u64), at_ms: u64) -> Option<String> {
    if (start..=end).contains(&at_ms) {
        return None;
    }
    let w = &step.window;
    Some(match (w.within_first_s, w.within_last_s) {
        (Some(first), None) => format!("after the first {first} s"),
        (None, Some(last)) => format!("before the last {last} s (from {})", m_ss(start)),
        _ => format!("outside {}–{}", m_ss(start), m_ss(end)),
    })
}

/// Checks marks against the script on a call of `duration_ms`. `require_all = false` is a draft
/// preview: unmarked steps fail with "not marked yet" instead of being an error.
pub fn evaluate(
    script: &Script,
    duration_ms: u64,
    marks: &[StepMark],
    require_all: bool,
) -> Result<CheckOutcome, MarkError> {
    let mut by_step: HashMap<&str, &StepMark> = HashMap::new();
    for m in marks {
        let step = || m.step.clone();
        if !script.steps.iter().any(|s| s.key == m.step) {
            return Err(MarkError::UnknownStep { step: step() });
        }
        if by_step.insert(m.step.as_str(), m).is_some() {
            return Err(MarkError::Duplicate { step: step() });
        }
        if m.mark == Mark::Present && m.at_ms.is_none() {
            return Err(MarkError::PresentWithoutTime { step: step() });
        }
        if let Some(at_ms) = m.at_ms.filter(|&t| t > duration_ms) {
            return Err(MarkError::BeyondCall {
                step: step(),
                at_ms,
                duration_ms,
            });
        }
    }
    if require_all {
        let unmarked: Vec<String> = script
            .steps
            .iter()
            .filter(|s| !by_step.contains_key(s.key.as_str()))
            .map(|s| s.key.clone())
            .collect();
        if !unmarked.is_empty() {
            return Err(MarkError::Unmarked { steps: unmarked });
        }
    }
    // The moment each other step was heard, for before/after.
    let heard = |key: &str| -> Option<u64> {
        by_step
            .get(key)
            .filter(|m| m.mark == Mark::Present)
            .and_then(|m| m.at_ms)
    };
    let text_of = |key: &str| -> String {
        script
            .steps
            .iter()
            .find(|s| s.key == key)
            .map_or_else(|| key.to_owned(), |s| s.text.clone())
    };

    let mut steps = Vec::with_capacity(script.steps.len());
    for step in &script.steps {
        let window = step_window(step, duration_ms);
        let mark = by_step.get(step.key.as_str()).copied();
        let problem = match mark {
            None => Some("not marked yet".to_owned()),
            Some(m) => match (m.mark, m.at_ms) {
                (Mark::Na, _) => None,
                (Mark::Absent, _) => Some("not heard (marked absent)".to_owned()),
                // Rejected above; kept total rather than trusting that.
                (Mark::Present, None) => Some("marked present without a time".to_owned()),
                (Mark::Present, Some(at)) => {
                    let outside = window_clause(step, window, at);
                    let mut order = Vec::new();
                    if let Some(other) = step.window.before.as_deref() {
                        if let Some(t) = heard(other).filter(|&t| at > t) {
                            order.push(format!(
                                "before \"{}\" (heard at {})",
                                text_of(other),
                                m_ss(t)
                            ));
                        }
                    }
                    if let Some(other) = step.window.after.as_deref() {
                        if let Some(t) = heard(other).filter(|&t| at < t) {
                            order.push(format!(
                                "after \"{}\" (heard at {})",
                                text_of(other),
                                m_ss(t)
                            ));
                        }
                    }
                    let order =
                        (!order.is_empty()).then(|| format!("must come {}", order.join(" and ")));
                    match (outside, order) {
                        (None, None) => None,
                        (Some(w), None) => Some(format!("heard at {}, {w}", m_ss(at))),
                        (None, Some(o)) => Some(format!("heard at {}, but {o}", m_ss(at))),
                        (Some(w), Some(o)) => Some(format!("heard at {}, {w}, and {o}", m_ss(at))),
                    }
                }
            },
        };
        steps.push(StepResult {
            step: step.key.clone(),
            text: step.text.clone(),
            required: step.required,
            mark: mark.map(|m| m.mark),
            at_ms: mark.and_then(|m| m.at_ms),
            window_ms: window,
            passed: problem.is_none(),
            problem,
        });
    }
    Ok(CheckOutcome {
        passed: steps.iter().all(|s| s.passed || !s.required),
        steps,
    })
}

/// Text as phrases are matched: lowercase, apostrophes dropped ("you're" = "youre"), every
/// other non-alphanumeric character a space, whitespace collapsed.
fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            out.push(c);
        } else if c == '\'' || c == '\u{2019}' {
            // Dropped, not spaced: ASR writes "you're", "youre" and "you’re" alike.
        } else if !out.is_empty() && !out.ends_with(' ') {
            out.push(' ');
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

fn speaker_matches(want: Speaker, segment_speaker: Option<&str>) -> bool {
    // A segment without a speaker may be anyone: offering it costs the reviewer one listen.
    let Some(raw) = segment_speaker else {
        return true;
    };
    match want {
        Speaker::Any => true,
        Speaker::Agent => normalize_speaker(raw).as_deref() == Some("agent"),
        Speaker::Customer => normalize_speaker(raw).as_deref() == Some("customer"),
    }
}

/// For each step with phrases, the earliest segment (by start) from a matching speaker that
/// starts inside the step's window and contains one of its phrases as whole words. At most one
/// suggestion per step, in script order.
pub fn suggest(script: &Script, duration_ms: u64, segments: &[Segment]) -> Vec<Suggestion> {
    let mut order: Vec<&Segment> = segments.iter().collect();
    order.sort_by_key(|s| (s.start_ms, s.end_ms));
    // Padded with spaces so that " recorded " cannot match inside " prerecorded ".
    let texts: Vec<String> = order
        .iter()
        .map(|s| format!(" {} ", normalize(&s.text)))
        .collect();
    let mut out = Vec::new();
    for step in &script.steps {
        let phrases: Vec<(&String, String)> = step
            .phrases
            .iter()
            .map(|p| (p, normalize(p)))
            .filter(|(_, n)| !n.is_empty())
            .map(|(p, n)| (p, format!(" {n} ")))
            .collect();
        if phrases.is_empty() {
            continue;
        }
        let (start, end) = step_window(step, duration_ms);
        let found = order.iter().zip(&texts).find_map(|(seg, text)| {
            if !(start..=end).contains(&seg.start_ms)
                || !speaker_matches(step.speaker, seg.speaker.as_deref())
            {
                return None;
            }
            phrases
                .iter()
                .find(|(_, n)| text.contains(n.as_str()))
                .map(|(p, _)| (seg, *p))
        });
        if let Some((seg, phrase)) = found {
            out.push(Suggestion {
                step: step.key.clone(),
                at_ms: seg.start_ms,
                end_ms: seg.end_ms,
                speaker: seg.speaker.clone(),
                text: seg.text.clone(),
                phrase: phrase.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    type TestResult = Result<(), Box<dyn std::error::Error>>;
    use super::*;

    /// A 5-minute call.
    const CALL_MS: u64 = 300_000;

    const SCRIPT: &str = r#"
slug = "test-script"
name = "Test script"

[[steps]]
key = "notice"
text = "Recording notice"
window = { within_first_s = 30 }
phrases = ["this call is recorded", "recorded for quality"]
speaker = "any"

[[steps]]
key = "identity"
text = "Identity verified"
window = { before = "account" }
phrases = ["date of birth"]

[[steps]]
key = "account"
text = "Account details"
window = { after = "identity" }

[[steps]]
key = "upsell"
text = "Mentions the new tariff"
required = false

[[steps]]
key = "closing"
text = "Says goodbye"
window = { within_last_s = 30 }
phrases = ["goodbye"]
"#;

    fn script() -> Result<Script, ScriptError> {
        from_toml(SCRIPT)
    }

    fn present(step: &str, at_ms: u64) -> StepMark {
        StepMark {
            step: step.into(),
            mark: Mark::Present,
            at_ms: Some(at_ms),
            comment: String::new(),
        }
    }

    fn marked(step: &str, mark: Mark) -> StepMark {
        StepMark {
            step: step.into(),
            mark,
            at_ms: None,
            comment: String::new(),
        }
    }

    /// Marks under which every step passes.
    fn good_marks() -> Vec<StepMark> {
        vec![
            present("notice", 12_000),
            present("identity", 40_000),
            present("account", 50_000),
            marked("upsell", Mark::Na),
            present("closing", 290_000),
        ]
    }

    fn result<'a>(o: &'a CheckOutcome, step: &str) -> Result<&'a StepResult, String> {
        o.steps
            .iter()
            .find(|s| s.step == step)
            .ok_or_else(|| format!("no result for {step}"))
    }

    fn problems(s: &Script) -> Vec<ScriptProblem> {
        match validate(s) {
            Err(ScriptError::Invalid { problems, .. }) => problems,
            _ => Vec::new(),
        }
    }

    #[test]
    fn validate_rejects_each_kind_of_bad_script() -> TestResult {
        let good = script()?;
        assert_eq!(problems(&good), vec![]);

        let mut s = good.clone();
        s.slug = String::new();
        s.name = "  ".into();
        assert_eq!(
            problems(&s),
            vec![ScriptProblem::BadSlug(String::new()), ScriptProblem::NoName]
        );

        let mut s = good.clone();
        s.steps.clear();
        assert_eq!(problems(&s), vec![ScriptProblem::NoSteps]);

        let mut s = good.clone();
        s.steps[3].key = "Up Sell".into();
        s.steps[4].key = "notice".into();
        s.steps[4].text = String::new();
        assert_eq!(
            problems(&s),
            vec![
                ScriptProblem::BadKey("Up Sell".into()),
                ScriptProblem::DuplicateKey("notice".into()),
                ScriptProblem::NoText("notice".into()),
            ]
        );

        let mut s = good.clone();
        s.steps[1].window.before = Some("acount".into());
        s.steps[2].window.after = Some("account".into());
        assert_eq!(
            problems(&s),
            vec![
                ScriptProblem::UnknownStep {
                    step: "identity".into(),
                    field: "before",
                    other: "acount".into()
                },
                ScriptProblem::SelfReference {
                    step: "account".into(),
                    field: "after"
                },
            ]
        );

        // identity before account, account before identity: a cycle, reported once.
        let mut s = good.clone();
        s.steps[2].window.after = None;
        s.steps[2].window.before = Some("identity".into());
        assert_eq!(
            problems(&s),
            vec![ScriptProblem::Cycle(vec![
                "identity".into(),
                "account".into()
            ])]
        );
        // A longer cycle through `after`: notice → identity → account → notice.
        let mut s = good.clone();
        s.steps[0].window.after = Some("account".into());
        s.steps[1].window.after = Some("notice".into());
        let p = problems(&s);
        assert_eq!(p.len(), 1, "{p:?}");
        let msg = p[0].to_string();
        assert!(
            msg.contains("`notice` → `identity` → `account` → `notice`"),
            "{msg}"
        );

        let mut s = good.clone();
        s.steps[0].window.within_first_s = Some(0);
        s.steps[4].window.within_first_s = Some(10);
        s.steps[1].phrases.push(" ?! ".into());
        assert_eq!(
            problems(&s),
            vec![
                ScriptProblem::ZeroWindow {
                    step: "notice".into(),
                    field: "within_first_s"
                },
                ScriptProblem::EmptyPhrase("identity".into()),
                ScriptProblem::BothEnds("closing".into()),
            ]
        );

        // The whole error names the script and each problem.
        let Err(e) = validate(&s) else {
            return Err("expected an invalid script".into());
        };
        let msg = e.to_string();
        assert!(
            msg.contains("`test-script`") && msg.contains("within_first_s = 0"),
            "{msg}"
        );

        // Typos in field names are parse errors naming the field.
        let Err(e) = from_toml(&SCRIPT.replace("phrases = [\"goodbye\"]", "phrase = [\"bye\"]"))
        else {
            return Err("expected a TOML error".into());
        };
        assert!(e.to_string().contains("phrase"), "{e}");
        let Err(e) = from_json(
            r#"{"slug":"x","name":"X","steps":[{"key":"a","text":"A","speaker":"robot"}]}"#,
        ) else {
            return Err("expected a JSON error".into());
        };
        assert!(e.to_string().contains("robot"), "{e}");
        Ok(())
    }

    #[test]
    fn defaults_are_valid_and_round_trip() -> TestResult {
        let scripts = defaults();
        let slugs: Vec<&str> = scripts.iter().map(|s| s.slug.as_str()).collect();
        assert_eq!(slugs, ["inbound-compliance", "collections-mini-miranda"]);
        for s in &scripts {
            validate(s)?;
            assert!(
                s.steps.iter().all(|st| !st.phrases.is_empty()),
                "{}",
                s.slug
            );
            let text = to_toml(s)?;
            assert_eq!(&from_toml(&text)?, s, "TOML round trip\n{text}");
            let json = to_json(s)?;
            assert_eq!(&from_json(&json)?, s, "JSON round trip");
            // Every default can pass: each step heard inside its window, in order.
            let marks: Vec<StepMark> = s
                .steps
                .iter()
                .enumerate()
                .map(|(i, st)| {
                    let (start, end) = step_window(st, CALL_MS);
                    let at = if st.window.within_last_s.is_some() {
                        start + 1000 * i as u64
                    } else {
                        end.min(start + 1000 * i as u64)
                    };
                    present(&st.key, at)
                })
                .collect();
            let o = evaluate(s, CALL_MS, &marks, true)?;
            assert!(o.passed, "{}: {o:?}", s.slug);
        }
        let inbound = &scripts[0];
        assert_eq!(
            window_ms(inbound, "recording_notice", CALL_MS),
            Some((0, 30_000))
        );
        assert_eq!(
            window_ms(inbound, "closing", CALL_MS),
            Some((270_000, CALL_MS))
        );
        Ok(())
    }

    #[test]
    fn toml_and_json_round_trip() -> TestResult {
        let s = script()?;
        // Defaults filled in: speaker agent, required true, window anywhere.
        let account = s.steps.get(2).ok_or("no step 2")?;
        assert_eq!(account.speaker, Speaker::Agent);
        assert!(account.required);
        assert_eq!(account.window.after.as_deref(), Some("identity"));
        assert!(!s.steps.get(3).ok_or("no step 3")?.required);

        let text = to_toml(&s)?;
        assert_eq!(from_toml(&text)?, s, "{text}");
        assert_eq!(to_toml(&from_toml(&text)?)?, text);
        let json = to_json(&s)?;
        assert_eq!(from_json(&json)?, s);
        // None window fields are left out of the JSON.
        assert!(!json.contains("null"), "{json}");
        assert!(json.contains("\"speaker\": \"any\""), "{json}");

        // The content hash ignores how the script was written, not what it says.
        let h = content_hash(&s);
        assert_eq!(h.len(), 64);
        assert_eq!(content_hash(&from_json(&json)?), h);
        let spelled = SCRIPT.replace(
            "text = \"Account details\"\n",
            "text = \"Account details\"\nrequired = true\nspeaker = \"agent\"\n",
        );
        assert_eq!(content_hash(&from_toml(&spelled)?), h);
        let mut edited = s.clone();
        edited.steps[0].phrases.push("calls are recorded".into());
        assert_ne!(content_hash(&edited), h);
        Ok(())
    }

    #[test]
    fn evaluate_window_in_the_first_seconds() -> TestResult {
        let s = script()?;
        let o = evaluate(&s, CALL_MS, &good_marks(), true)?;
        assert!(o.passed, "{o:?}");
        let notice = result(&o, "notice")?;
        assert_eq!(notice.window_ms, (0, 30_000));
        assert!(notice.passed && notice.problem.is_none());
        assert_eq!(notice.at_ms, Some(12_000));
        assert_eq!(notice.text, "Recording notice");

        let mut late = good_marks();
        late[0] = present("notice", 42_000);
        let o = evaluate(&s, CALL_MS, &late, true)?;
        assert!(!o.passed);
        let notice = result(&o, "notice")?;
        assert!(!notice.passed);
        assert_eq!(
            notice.problem.as_deref(),
            Some("heard at 0:42, after the first 30 s")
        );
        // The window edge itself is inside.
        late[0] = present("notice", 30_000);
        assert!(evaluate(&s, CALL_MS, &late, true)?.passed);
        Ok(())
    }

    #[test]
    fn evaluate_window_in_the_last_seconds() -> TestResult {
        let s = script()?;
        assert_eq!(window_ms(&s, "closing", CALL_MS), Some((270_000, 300_000)));
        assert_eq!(window_ms(&s, "closing", 20_000), Some((0, 20_000)));
        assert_eq!(window_ms(&s, "notice", 20_000), Some((0, 20_000)));
        assert_eq!(window_ms(&s, "account", CALL_MS), Some((0, CALL_MS)));
        assert_eq!(window_ms(&s, "nope", CALL_MS), None);

        let mut m = good_marks();
        m[4] = present("closing", 230_000);
        let o = evaluate(&s, CALL_MS, &m, true)?;
        assert!(!o.passed);
        assert_eq!(
            result(&o, "closing")?.problem.as_deref(),
            Some("heard at 3:50, before the last 30 s (from 4:30)")
        );
        // The same moment on a 4-minute call is inside the last 30 s.
        assert!(evaluate(&s, 240_000, &m, true)?.passed);
        Ok(())
    }

    #[test]
    fn evaluate_order_violations() -> TestResult {
        let s = script()?;
        let mut m = good_marks();
        m[1] = present("identity", 65_000);
        let o = evaluate(&s, CALL_MS, &m, true)?;
        assert!(!o.passed);
        assert_eq!(
            result(&o, "identity")?.problem.as_deref(),
            Some("heard at 1:05, but must come before \"Account details\" (heard at 0:50)")
        );
        assert_eq!(
            result(&o, "account")?.problem.as_deref(),
            Some("heard at 0:50, but must come after \"Identity verified\" (heard at 1:05)")
        );
        // The same second is in order.
        m[1] = present("identity", 50_000);
        assert!(evaluate(&s, CALL_MS, &m, true)?.passed);
        // Only checked against a step that is present.
        m[1] = marked("identity", Mark::Na);
        m[2] = present("account", 10_000);
        assert!(evaluate(&s, CALL_MS, &m, true)?.passed);
        m[2] = marked("account", Mark::Absent);
        m[1] = present("identity", 290_000);
        let o = evaluate(&s, CALL_MS, &m, true)?;
        assert!(result(&o, "identity")?.passed);
        assert!(!o.passed, "account is absent");

        // Window and order at once: one sentence with both.
        let mut m = good_marks();
        m[0] = present("notice", 40_000);
        let mut ordered = s.clone();
        ordered.steps[0].window.after = Some("identity".into());
        m[1] = present("identity", 45_000);
        m[2] = present("account", 46_000);
        let o = evaluate(&ordered, CALL_MS, &m, true)?;
        assert_eq!(
            result(&o, "notice")?.problem.as_deref(),
            Some("heard at 0:40, after the first 30 s, and must come after \"Identity verified\" (heard at 0:45)")
        );
        Ok(())
    }

    #[test]
    fn evaluate_na_absent_and_optional_steps() -> TestResult {
        let s = script()?;
        let mut m = good_marks();
        m[0] = marked("notice", Mark::Na);
        let o = evaluate(&s, CALL_MS, &m, true)?;
        assert!(o.passed);
        assert!(result(&o, "notice")?.passed);

        // An absent required step fails the check.
        m[0] = marked("notice", Mark::Absent);
        let o = evaluate(&s, CALL_MS, &m, true)?;
        assert!(!o.passed);
        let r = result(&o, "notice")?;
        assert_eq!((r.passed, r.mark), (false, Some(Mark::Absent)));
        assert_eq!(r.problem.as_deref(), Some("not heard (marked absent)"));

        // An absent optional step shows as failed but does not fail the check.
        let mut m = good_marks();
        m[3] = marked("upsell", Mark::Absent);
        let o = evaluate(&s, CALL_MS, &m, true)?;
        assert!(o.passed);
        let r = result(&o, "upsell")?;
        assert!(!r.passed && !r.required && r.problem.is_some());

        // A draft preview: unmarked steps fail with "not marked yet".
        let o = evaluate(&s, CALL_MS, &good_marks()[..2], false)?;
        assert!(!o.passed);
        let r = result(&o, "closing")?;
        assert_eq!((r.mark, r.at_ms), (None, None));
        assert_eq!(r.problem.as_deref(), Some("not marked yet"));
        assert_eq!(o.steps.len(), 5);
        Ok(())
    }

    #[test]
    fn evaluate_mark_errors() -> TestResult {
        let s = script()?;
        let Err(e) = evaluate(&s, CALL_MS, &good_marks()[..3], true) else {
            return Err("unmarked steps must be an error on submit".into());
        };
        assert_eq!(
            e,
            MarkError::Unmarked {
                steps: vec!["upsell".into(), "closing".into()]
            }
        );
        assert!(e.to_string().contains("`upsell`, `closing`"), "{e}");

        let mut m = good_marks();
        m[0].at_ms = None;
        let Err(e) = evaluate(&s, CALL_MS, &m, false) else {
            return Err("present without at_ms must be an error".into());
        };
        assert_eq!(
            e,
            MarkError::PresentWithoutTime {
                step: "notice".into()
            }
        );
        assert!(e.to_string().contains("when it was heard"), "{e}");

        let mut m = good_marks();
        m.push(present("notice", 1000));
        assert_eq!(
            evaluate(&s, CALL_MS, &m, false).err(),
            Some(MarkError::Duplicate {
                step: "notice".into()
            })
        );
        let mut m = good_marks();
        m.push(present("greeting", 1000));
        assert_eq!(
            evaluate(&s, CALL_MS, &m, false).err(),
            Some(MarkError::UnknownStep {
                step: "greeting".into()
            })
        );
        let mut m = good_marks();
        m[4] = present("closing", 301_000);
        let Err(e) = evaluate(&s, CALL_MS, &m, false) else {
            return Err("a time after the call must be an error".into());
        };
        assert_eq!(
            e.to_string(),
            "step `closing`: 5:01 is after the end of the call (5:00); correct the time"
        );
        Ok(())
    }

    fn seg(start_ms: u64, speaker: Option<&str>, text: &str) -> Segment {
        Segment {
            start_ms,
            end_ms: start_ms + 3000,
            speaker: speaker.map(str::to_owned),
            text: text.into(),
        }
    }

    #[test]
    fn suggest_matches_window_speaker_variants_and_whole_words() -> TestResult {
        let s = script()?;
        let found = |segments: &[Segment]| -> Vec<(String, u64, String)> {
            suggest(&s, CALL_MS, segments)
                .into_iter()
                .map(|x| (x.step, x.at_ms, x.phrase))
                .collect()
        };
        let segments = vec![
            // Out of order on purpose: the earliest start wins, not the first listed.
            seg(20_000, Some("agent"), "Please note: this call is RECORDED."),
            seg(5_000, Some("customer"), "Hi, it's about my bill."),
            seg(8_000, None, "Calls are recorded for quality purposes"),
            seg(
                60_000,
                Some("customer"),
                "My date of birth is the 3rd of May",
            ),
            seg(70_000, Some("agent"), "Can you confirm your date-of-birth?"),
            seg(200_000, Some("agent"), "goodbye for now, I'll transfer you"),
            seg(285_000, Some("Agent"), "Thanks, good-bye! Goodbye."),
        ];
        assert_eq!(
            found(&segments),
            vec![
                ("notice".into(), 8_000, "recorded for quality".into()),
                ("identity".into(), 70_000, "date of birth".into()),
                ("closing".into(), 285_000, "goodbye".into()),
            ]
        );
        let all = suggest(&s, CALL_MS, &segments);
        let first = all.first().ok_or("no suggestion")?;
        assert_eq!(first.end_ms, 11_000);
        assert_eq!(first.speaker, None);
        assert_eq!(first.text, "Calls are recorded for quality purposes");

        // Outside the window: the same phrase after the first 30 s is not offered.
        let late = vec![seg(31_000, Some("agent"), "this call is recorded")];
        assert_eq!(found(&late), vec![]);
        // Wrong speaker: the customer saying "date of birth" is not the agent verifying.
        let customer = vec![seg(60_000, Some("customer"), "my date of birth is")];
        assert_eq!(found(&customer), vec![]);
        // Whole words only: "recorded" is not found inside "prerecorded".
        let mut one = s.clone();
        one.steps[0].phrases = vec!["recorded".into()];
        let inside = vec![seg(
            1_000,
            Some("agent"),
            "a prerecorded message, unrecorded",
        )];
        assert!(suggest(&one, CALL_MS, &inside).is_empty());
        let whole = vec![seg(1_000, Some("agent"), "it's (recorded)")];
        assert_eq!(suggest(&one, CALL_MS, &whole).len(), 1);

        // Variants: ASR writes "death" for "debt"; the phrase list carries both.
        let mut debt = s.clone();
        debt.steps[0].phrases = vec![
            "attempt to collect a debt".into(),
            "attempt to collect a death".into(),
        ];
        let misheard = vec![seg(
            9_000,
            Some("spk_0"),
            "This is an attempt to collect a death.",
        )];
        let sug = suggest(&debt, CALL_MS, &misheard);
        assert_eq!(sug.len(), 1);
        assert_eq!(
            sug.first().map(|x| x.phrase.as_str()),
            Some("attempt to collect a death")
        );
        Ok(())
    }

    #[test]
    fn normalize_for_matching() {
        assert_eq!(
            normalize("  You're  speaking—to SAM! "),
            "youre speaking to sam"
        );
        assert_eq!(normalize("?!"), "");
        assert_eq!(m_ss(65_999), "1:05");
        assert_eq!(m_ss(4_503_000), "75:03");
    }
}
