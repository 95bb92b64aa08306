//! Call outcomes (disposition codes): what a call achieved, from a per-campaign catalogue.
//!
//! Each campaign has a list of outcomes (code, label, class, whether it carries an amount); a
//! campaign without a list of its own, and a call without a campaign, use the list of campaign
//! [`DEFAULT_CAMPAIGN`]. Shipped lists ([`defaults`]) are installed on first start
//! ([`seed_defaults`]), like the default scorecards; `callrec outcomes set` replaces a list.
//!
//! An outcome is set by the CTI at stop (through the recorder's indexer), by an agent or a lead
//! on the web, from the command line, or back-filled from the dialler's CSV ([`import_csv`]).
//! Every setting is validated against the call's list, kept in `call_outcome_history`, copied
//! onto the call's row (so search filters on it) and audited — all in one transaction.

use super::audit::{self, Actor};
use super::{CallStatus, StoreError};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};

/// The campaign whose list applies to every campaign without one of its own.
pub const DEFAULT_CAMPAIGN: &str = "default";
/// Largest amount accepted, in hundredths (10 million currency units): beyond is a typo.
pub const MAX_AMOUNT_MINOR: i64 = 1_000_000_000;

/// What kind of result an outcome is; the figures (conversion, contact rate) count by class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// The goal was reached (a sale, an order, a completed survey, a resolved issue).
    Positive,
    /// A right-party contact that declined.
    Negative,
    /// The customer asked never to be called again.
    DoNotCall,
    /// Call again later.
    Callback,
    /// Not the person sought: wrong number, answering machine.
    NotRightParty,
    Other,
}

impl Class {
    pub const ALL: [Class; 6] = [
        Class::Positive,
        Class::Negative,
        Class::DoNotCall,
        Class::Callback,
        Class::NotRightParty,
        Class::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Positive => "positive",
            Class::Negative => "negative",
            Class::DoNotCall => "do_not_call",
            Class::Callback => "callback",
            Class::NotRightParty => "not_right_party",
            Class::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// One entry of a campaign's list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    pub code: String,
    pub label: String,
    pub class: Class,
    /// The outcome may carry an amount (a sale's or an order's value).
    #[serde(default)]
    pub amount: bool,
}

/// A campaign's list as `callrec outcomes set` reads it (TOML `[[outcome]]` tables, or JSON
/// `{"outcome": [...]}`) and `callrec outcomes list` writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct List {
    pub outcome: Vec<Outcome>,
}

/// Where a setting came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The CTI, at stop (control socket or HTTP control API).
    Cti,
    /// An agent or a lead on the web.
    Web,
    /// A dialler/CRM back-fill (`callrec outcomes import`).
    Import,
    /// `callrec outcomes` on the box.
    Cli,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Cti => "cti",
            Source::Web => "web",
            Source::Import => "import",
            Source::Cli => "cli",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OutcomeError {
    #[error("unknown outcome {code:?} for campaign {campaign}; allowed: {}", allowed.join(", "))]
    Unknown {
        code: String,
        campaign: String,
        allowed: Vec<String>,
    },
    #[error("outcome {0:?} takes no amount")]
    NoAmount(String),
    #[error("amount {0} is not valid: give a number from 0 to 10000000 with at most two decimals")]
    BadAmount(String),
    #[error("call {0} was deleted; its outcome cannot be set")]
    CallDeleted(i64),
    #[error("no call with id {0}")]
    NoSuchCall(i64),
    #[error("outcome list: {0}")]
    BadList(String),
    #[error("{0}")]
    BadImport(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for OutcomeError {
    fn from(e: rusqlite::Error) -> Self {
        OutcomeError::Store(StoreError::Sql(e))
    }
}

fn o(code: &str, label: &str, class: Class, amount: bool) -> Outcome {
    Outcome {
        code: code.to_owned(),
        label: label.to_owned(),
        class,
        amount,
    }
}

/// The shipped lists, by campaign.
pub fn defaults() -> Vec<(&'static str, List)> {
    use Class::*;
    let list = |v: Vec<Outcome>| List { outcome: v };
    vec![
        (
            DEFAULT_CAMPAIGN,
            list(vec![
                o("completed", "Completed", Positive, false),
                o("declined", "Declined", Negative, false),
                o("callback", "Callback", Callback, false),
                o("do_not_call", "Do not call", DoNotCall, false),
                o("wrong_number", "Wrong number", NotRightParty, false),
                o("other", "Other", Other, false),
            ]),
        ),
        (
            "telesales",
            list(vec![
                o("sale", "Sale", Positive, true),
                o("not_interested", "Not interested", Negative, false),
                o("callback", "Callback", Callback, false),
                o("do_not_call", "Do not call", DoNotCall, false),
                o("wrong_number", "Wrong number", NotRightParty, false),
                o(
                    "answering_machine",
                    "Answering machine",
                    NotRightParty,
                    false,
                ),
            ]),
        ),
        (
            "surveys",
            list(vec![
                o("complete", "Survey complete", Positive, false),
                o("partial", "Partial", Other, false),
                o("refusal", "Refusal", Negative, false),
                o("non_contact", "Non-contact", NotRightParty, false),
            ]),
        ),
        (
            "service",
            list(vec![
                o("resolved", "Resolved", Positive, false),
                o("escalated", "Escalated", Other, false),
                o("order_taken", "Order taken", Positive, true),
                o("information_given", "Information given", Positive, false),
            ]),
        ),
        (
            // Inbound consulting and information on services, tariffs and promotions: a
            // question answered is the goal; a tariff change or an accepted promotion is also
            // a sale (with its value).
            "information",
            list(vec![
                o("information_given", "Information given", Positive, false),
                o("tariff_changed", "Tariff changed", Positive, true),
                o("promotion_accepted", "Promotion accepted", Positive, true),
                o("promotion_declined", "Promotion declined", Negative, false),
                o("follow_up", "Follow-up promised", Callback, false),
                o("not_answered", "Question not answered", Negative, false),
                o("transferred", "Transferred", Other, false),
            ]),
        ),
        (
            // Order taking (inbound): an order, with its value.
            "orders",
            list(vec![
                o("order_taken", "Order taken", Positive, true),
                o("order_changed", "Order changed", Positive, false),
                o("order_cancelled", "Order cancelled", Negative, false),
                o("no_order", "No order", Negative, false),
                o("callback", "Callback", Callback, false),
            ]),
        ),
        (
            // Outbound informing (notices, appointments, service changes): reaching the
            // customer is the goal.
            "informing",
            list(vec![
                o("informed", "Customer informed", Positive, false),
                o("refused", "Refused to listen", Negative, false),
                o("callback", "Callback", Callback, false),
                o("do_not_call", "Do not call", DoNotCall, false),
                o(
                    "answering_machine",
                    "Answering machine",
                    NotRightParty,
                    false,
                ),
                o("wrong_number", "Wrong number", NotRightParty, false),
            ]),
        ),
        (
            // Resolved on the call is the complaint desk's goal; a referral is neither won nor
            // lost; a rejected complaint is the customer not getting what they asked for.
            "complaints",
            list(vec![
                o("upheld_on_call", "Upheld on the call", Positive, false),
                o("referred", "Referred", Other, false),
                o("rejected", "Rejected", Negative, false),
            ]),
        ),
    ]
}

fn valid_code(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn valid_campaign(s: &str) -> bool {
    !s.trim().is_empty() && s.chars().count() <= 128
}

/// Checks a list: codes `a-z 0-9 _` (1-64), unique, labels 1-100 characters, at least one.
pub fn validate_list(list: &List) -> Result<(), OutcomeError> {
    if list.outcome.is_empty() {
        return Err(OutcomeError::BadList("it has no outcome".into()));
    }
    let mut seen = std::collections::HashSet::new();
    for o in &list.outcome {
        if !valid_code(&o.code) {
            return Err(OutcomeError::BadList(format!(
                "code {:?} is not allowed: use 1-64 of a-z 0-9 _",
                o.code
            )));
        }
        if !seen.insert(o.code.as_str()) {
            return Err(OutcomeError::BadList(format!("code {:?} twice", o.code)));
        }
        let n = o.label.trim().chars().count();
        if n == 0 || n > 100 {
            return Err(OutcomeError::BadList(format!(
                "the label of {:?} needs 1 to 100 characters",
                o.code
            )));
        }
    }
    Ok(())
}

/// Reads a list from TOML or JSON text (`json`: the file ends in `.json`).
pub fn parse_list(text: &str, json: bool) -> Result<List, OutcomeError> {
    let list: List = if json {
        serde_json::from_str(text).map_err(|e| OutcomeError::BadList(e.to_string()))?
    } else {
        toml::from_str(text).map_err(|e| OutcomeError::BadList(e.to_string()))?
    };
    validate_list(&list)?;
    Ok(list)
}

fn write_list(conn: &Connection, campaign: &str, list: &List) -> Result<(), OutcomeError> {
    conn.execute("DELETE FROM outcome_codes WHERE campaign = ?1", [campaign])?;
    let mut st = conn.prepare_cached(
        "INSERT INTO outcome_codes (campaign, code, label, class, takes_amount, position)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (i, o) in list.outcome.iter().enumerate() {
        st.execute(params![
            campaign,
            o.code,
            o.label.trim(),
            o.class.as_str(),
            o.amount,
            i as i64
        ])?;
    }
    Ok(())
}

/// Installs the shipped list of every campaign that has none yet; returns the campaigns
/// installed. A list an admin replaced is never touched.
pub fn seed_defaults(conn: &Connection) -> Result<Vec<String>, OutcomeError> {
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let mut added = Vec::new();
    for (campaign, list) in defaults() {
        let has: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM outcome_codes WHERE campaign = ?1)",
            [campaign],
            |r| r.get(0),
        )?;
        if !has {
            write_list(&tx, campaign, &list)?;
            audit::append(
                &tx,
                &Actor::local("system").event(
                    "outcomes.seed",
                    None,
                    serde_json::json!({"campaign": campaign, "list": list}),
                ),
            )?;
            added.push(campaign.to_owned());
        }
    }
    tx.commit()?;
    Ok(added)
}

/// Replaces a campaign's list (audited with the old and the new list). Calls keep the outcome
/// they have even when its code leaves the list.
pub fn set_list(
    conn: &Connection,
    campaign: &str,
    list: &List,
    by: Actor,
) -> Result<(), OutcomeError> {
    if !valid_campaign(campaign) {
        return Err(OutcomeError::BadList(
            "the campaign name needs 1 to 128 characters".into(),
        ));
    }
    validate_list(list)?;
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let old = own_list(&tx, campaign)?;
    write_list(&tx, campaign, list)?;
    audit::append(
        &tx,
        &by.event(
            "outcomes.set",
            None,
            serde_json::json!({"campaign": campaign, "old": old, "new": list}),
        ),
    )?;
    tx.commit()?;
    Ok(())
}

/// The campaign's own list (None when it has none).
pub fn own_list(conn: &Connection, campaign: &str) -> Result<Option<List>, OutcomeError> {
    let mut st = conn.prepare_cached(
        "SELECT code, label, class, takes_amount FROM outcome_codes WHERE campaign = ?1
         ORDER BY position, code",
    )?;
    let rows = st
        .query_map([campaign], |r| {
            let class: String = r.get(2)?;
            Ok(Outcome {
                code: r.get(0)?,
                label: r.get(1)?,
                // The table's CHECK allows only known classes.
                class: Class::parse(&class).unwrap_or(Class::Other),
                amount: r.get(3)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok((!rows.is_empty()).then_some(List { outcome: rows }))
}

/// The list that applies to a call of `campaign`, and the campaign whose list it is (the
/// campaign itself, or [`DEFAULT_CAMPAIGN`]).
pub fn list_for(conn: &Connection, campaign: Option<&str>) -> Result<(String, List), OutcomeError> {
    if let Some(c) = campaign.filter(|c| !c.is_empty()) {
        if let Some(l) = own_list(conn, c)? {
            return Ok((c.to_owned(), l));
        }
    }
    let l = own_list(conn, DEFAULT_CAMPAIGN)?.unwrap_or(List {
        outcome: Vec::new(),
    });
    Ok((DEFAULT_CAMPAIGN.to_owned(), l))
}

/// Every campaign that has a list of its own, with it.
pub fn all_lists(conn: &Connection) -> Result<Vec<(String, List)>, OutcomeError> {
    let campaigns: Vec<String> = conn
        .prepare("SELECT DISTINCT campaign FROM outcome_codes ORDER BY campaign")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for c in campaigns {
        if let Some(l) = own_list(conn, &c)? {
            out.push((c, l));
        }
    }
    Ok(out)
}

/// An amount in currency units as hundredths: finite, 0 to 10 million, at most two decimals.
pub fn amount_minor(amount: f64) -> Result<i64, OutcomeError> {
    let scaled = amount * 100.0;
    let rounded = scaled.round();
    if !amount.is_finite()
        || amount < 0.0
        || (scaled - rounded).abs() > 1e-6
        || rounded > MAX_AMOUNT_MINOR as f64
    {
        return Err(OutcomeError::BadAmount(amount.to_string()));
    }
    Ok(rounded as i64)
}

/// Checks `code` and `amount` against the list of a call of `campaign`: the campaign whose list
/// applied, the outcome, and the amount in hundredths. Nothing is written.
pub fn check(
    conn: &Connection,
    campaign: Option<&str>,
    code: &str,
    amount: Option<f64>,
) -> Result<(String, Outcome, Option<i64>), OutcomeError> {
    let (list_campaign, list) = list_for(conn, campaign)?;
    let Some(outcome) = list.outcome.iter().find(|o| o.code == code) else {
        return Err(OutcomeError::Unknown {
            code: code.to_owned(),
            campaign: list_campaign,
            allowed: list.outcome.iter().map(|o| o.code.clone()).collect(),
        });
    };
    let minor = match amount {
        None => None,
        Some(_) if !outcome.amount => return Err(OutcomeError::NoAmount(code.to_owned())),
        Some(a) => Some(amount_minor(a)?),
    };
    Ok((list_campaign, outcome.clone(), minor))
}

/// What a call's outcome is now, as set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Setting {
    pub call_id: i64,
    pub code: String,
    pub class: Class,
    /// In currency units.
    pub amount: Option<f64>,
    pub source: String,
    pub set_by: String,
    pub set_at_utc: String,
}

/// Sets a call's outcome: checks `code` against the call's campaign's list and the amount
/// against the outcome, appends the history row, updates the call's row and writes the audit
/// row (`outcome.set`, with the previous outcome), all in one transaction.
pub fn set(
    conn: &Connection,
    call_id: i64,
    code: &str,
    amount: Option<f64>,
    source: Source,
    by: Actor,
) -> Result<Setting, OutcomeError> {
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let s = set_in(&tx, call_id, code, amount, source, by)?;
    tx.commit()?;
    Ok(s)
}

/// [`set`] inside the caller's transaction, which holds the write lock.
fn set_in(
    conn: &Connection,
    call_id: i64,
    code: &str,
    amount: Option<f64>,
    source: Source,
    by: Actor,
) -> Result<Setting, OutcomeError> {
    type Current = (Option<String>, Option<i64>);
    let row: Option<(CallStatus, Option<String>, Current)> = conn
        .query_row(
            "SELECT status, campaign, outcome, outcome_amount_minor FROM calls WHERE id = ?1",
            [call_id],
            |r| Ok((r.get(0)?, r.get(1)?, (r.get(2)?, r.get(3)?))),
        )
        .optional()?;
    let Some((status, campaign, (old_code, old_minor))) = row else {
        return Err(OutcomeError::NoSuchCall(call_id));
    };
    if matches!(status, CallStatus::Garbage | CallStatus::Deleted) {
        return Err(OutcomeError::CallDeleted(call_id));
    }
    let (list_campaign, outcome, minor) = check(conn, campaign.as_deref(), code, amount)?;
    let now = crate::clock::utc_now();
    conn.execute(
        "INSERT INTO call_outcome_history (call_id, code, class, amount_minor, source, set_by, set_at_utc)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![call_id, code, outcome.class.as_str(), minor, source.as_str(), by.name, now],
    )?;
    conn.execute(
        "UPDATE calls SET outcome = ?2, outcome_class = ?3, outcome_amount_minor = ?4 WHERE id = ?1",
        params![call_id, code, outcome.class.as_str(), minor],
    )?;
    let to_units = |m: Option<i64>| m.map(|m| m as f64 / 100.0);
    audit::append(
        conn,
        &by.event(
            "outcome.set",
            Some(call_id),
            serde_json::json!({
                "outcome": code, "class": outcome.class, "amount": to_units(minor),
                "campaign_list": list_campaign, "source": source,
                "previous": old_code, "previous_amount": to_units(old_minor),
            }),
        ),
    )?;
    Ok(Setting {
        call_id,
        code: code.to_owned(),
        class: outcome.class,
        amount: to_units(minor),
        source: source.as_str().to_owned(),
        set_by: by.name.to_owned(),
        set_at_utc: now,
    })
}

/// Every outcome set on the call, oldest first.
pub fn history(conn: &Connection, call_id: i64) -> Result<Vec<Setting>, OutcomeError> {
    let mut st = conn.prepare_cached(
        "SELECT code, class, amount_minor, source, set_by, set_at_utc FROM call_outcome_history
         WHERE call_id = ?1 ORDER BY id",
    )?;
    let rows = st
        .query_map([call_id], |r| {
            let class: String = r.get(1)?;
            let minor: Option<i64> = r.get(2)?;
            Ok(Setting {
                call_id,
                code: r.get(0)?,
                class: Class::parse(&class).unwrap_or(Class::Other),
                amount: minor.map(|m| m as f64 / 100.0),
                source: r.get(3)?,
                set_by: r.get(4)?,
                set_at_utc: r.get(5)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// What a CSV back-fill did.
#[derive(Debug, Clone, Serialize)]
pub struct Imported {
    pub set: Vec<Setting>,
}

/// Back-fills outcomes from a dialler/CRM export: a CSV with a header naming `call_id` or
/// `external_id`, `outcome`, and optionally `amount` (an empty cell: none). All or nothing: any
/// bad row (unknown call, an external id on several calls, an outcome or amount the call's list
/// refuses) refuses the whole file, naming every bad line, and nothing is changed.
pub fn import_csv(conn: &Connection, csv_text: &str, by: Actor) -> Result<Imported, OutcomeError> {
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(csv_text.as_bytes());
    let headers = rdr
        .headers()
        .map_err(|e| OutcomeError::BadImport(format!("CSV header: {e}")))?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let (by_id, by_ext, code_col, amount_col) = (
        col("call_id"),
        col("external_id"),
        col("outcome"),
        col("amount"),
    );
    let Some(code_col) = code_col else {
        return Err(OutcomeError::BadImport(
            "the CSV header needs an outcome column (and call_id or external_id, optionally amount)"
                .into(),
        ));
    };
    if by_id.is_none() && by_ext.is_none() {
        return Err(OutcomeError::BadImport(
            "the CSV header needs a call_id or an external_id column".into(),
        ));
    }
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let mut problems = Vec::new();
    let mut set = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        // Line 1 is the header.
        let line = i + 2;
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!("line {line}: {e}"));
                continue;
            }
        };
        let cell = |c: Option<usize>| c.and_then(|c| rec.get(c)).filter(|v| !v.is_empty());
        let call_id = match (cell(by_id), cell(by_ext)) {
            (Some(id), _) => match id.parse::<i64>() {
                Ok(id) => id,
                Err(_) => {
                    problems.push(format!("line {line}: call_id {id:?} is not a number"));
                    continue;
                }
            },
            (None, Some(ext)) => {
                let ids: Vec<i64> = tx
                    .prepare_cached("SELECT id FROM calls WHERE external_id = ?1 LIMIT 2")?
                    .query_map([ext], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                match ids[..] {
                    [id] => id,
                    [] => {
                        problems.push(format!("line {line}: no call with external_id {ext:?}"));
                        continue;
                    }
                    _ => {
                        problems.push(format!(
                            "line {line}: several calls have external_id {ext:?}; give call_id"
                        ));
                        continue;
                    }
                }
            }
            (None, None) => {
                problems.push(format!("line {line}: neither call_id nor external_id"));
                continue;
            }
        };
        let Some(code) = cell(Some(code_col)) else {
            problems.push(format!("line {line}: no outcome"));
            continue;
        };
        let amount = match cell(amount_col).map(str::parse::<f64>) {
            None => None,
            Some(Ok(a)) => Some(a),
            Some(Err(_)) => {
                problems.push(format!("line {line}: amount is not a number"));
                continue;
            }
        };
        match set_in(&tx, call_id, code, amount, Source::Import, by) {
            Ok(s) => set.push(s),
            Err(OutcomeError::Store(e)) => return Err(e.into()),
            Err(e) => problems.push(format!("line {line}: {e}")),
        }
    }
    if !problems.is_empty() {
        // Dropping the transaction rolls back the rows already set.
        return Err(OutcomeError::BadImport(format!(
            "nothing was imported: {}",
            problems.join("; ")
        )));
    }
    tx.commit()?;
    Ok(Imported { set })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::{TempStore, TestCall};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn audit_actions(conn: &Connection, call_id: i64) -> Result<Vec<String>, rusqlite::Error> {
        conn.prepare(
            "SELECT detail FROM audit WHERE action = 'outcome.set' AND call_id = ?1 ORDER BY id",
        )?
        .query_map([call_id], |r| r.get(0))?
        .collect()
    }

    #[test]
    fn shipped_lists_are_valid_and_seeded_once() -> TestResult {
        let TempStore { dir: _dir, conn } = TempStore::new()?;
        for (c, l) in defaults() {
            validate_list(&l).map_err(|e| format!("{c}: {e}"))?;
        }
        let added = seed_defaults(&conn)?;
        assert_eq!(
            added,
            [
                "default",
                "telesales",
                "surveys",
                "service",
                "information",
                "orders",
                "informing",
                "complaints"
            ]
        );
        assert!(
            seed_defaults(&conn)?.is_empty(),
            "seeding twice adds nothing"
        );
        let (c, l) = list_for(&conn, Some("telesales"))?;
        assert_eq!(c, "telesales");
        let codes: Vec<&str> = l.outcome.iter().map(|o| o.code.as_str()).collect();
        assert_eq!(
            codes,
            [
                "sale",
                "not_interested",
                "callback",
                "do_not_call",
                "wrong_number",
                "answering_machine"
            ]
        );
        assert_eq!(
            (l.outcome[0].class, l.outcome[0].amount),
            (Class::Positive, true)
        );
        assert_eq!(l.outcome[5].class, Class::NotRightParty);
        Ok(())
    }

    #[test]
    fn unknown_code_is_refused_with_the_allowed_list() -> TestResult {
        let TempStore { dir: _dir, conn } = TempStore::new()?;
        seed_defaults(&conn)?;
        let call = TestCall::new().campaign("surveys").insert(&conn)?.id;
        let e = set(&conn, call, "sale", None, Source::Web, Actor::local("lead"));
        match e {
            Err(OutcomeError::Unknown {
                code,
                campaign,
                allowed,
            }) => {
                assert_eq!(code, "sale");
                assert_eq!(campaign, "surveys");
                assert_eq!(allowed, ["complete", "partial", "refusal", "non_contact"]);
            }
            other => panic!("expected Unknown, got {other:?}"),
        }
        assert!(history(&conn, call)?.is_empty());
        assert!(audit_actions(&conn, call)?.is_empty());
        Ok(())
    }

    #[test]
    fn amount_rules() -> TestResult {
        let TempStore { dir: _dir, conn } = TempStore::new()?;
        seed_defaults(&conn)?;
        let call = TestCall::new().campaign("telesales").insert(&conn)?.id;
        let who = Actor::local("cli:root");
        assert!(matches!(
            set(&conn, call, "callback", Some(10.0), Source::Cli, who),
            Err(OutcomeError::NoAmount(_))
        ));
        for bad in [-1.0, 1.234, f64::NAN, 1e12] {
            assert!(
                matches!(
                    set(&conn, call, "sale", Some(bad), Source::Cli, who),
                    Err(OutcomeError::BadAmount(_))
                ),
                "{bad} accepted"
            );
        }
        let s = set(&conn, call, "sale", Some(129.9), Source::Cli, who)?;
        assert_eq!((s.class, s.amount), (Class::Positive, Some(129.9)));
        let stored: (String, String, i64) = conn.query_row(
            "SELECT outcome, outcome_class, outcome_amount_minor FROM calls WHERE id = ?1",
            [call],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        assert_eq!(stored, ("sale".into(), "positive".into(), 12990));
        // An outcome without amount is fine for one that takes one.
        set(&conn, call, "sale", None, Source::Cli, who)?;
        Ok(())
    }

    #[test]
    fn campaign_without_a_list_falls_back_to_default() -> TestResult {
        let TempStore { dir: _dir, conn } = TempStore::new()?;
        seed_defaults(&conn)?;
        let none = TestCall::new().insert(&conn)?.id;
        let other = TestCall::new().campaign("winback").insert(&conn)?.id;
        for call in [none, other] {
            let s = set(
                &conn,
                call,
                "completed",
                None,
                Source::Web,
                Actor::local("lead"),
            )?;
            assert_eq!(s.class, Class::Positive);
            match set(&conn, call, "sale", None, Source::Web, Actor::local("lead")) {
                Err(OutcomeError::Unknown { campaign, .. }) => assert_eq!(campaign, "default"),
                other => panic!("expected Unknown, got {other:?}"),
            }
        }
        // Once the campaign has its own list, that one applies.
        let list = parse_list(
            "[[outcome]]\ncode = \"won_back\"\nlabel = \"Won back\"\nclass = \"positive\"\namount = true\n",
            false,
        )?;
        set_list(&conn, "winback", &list, Actor::local("cli:root"))?;
        set(
            &conn,
            other,
            "won_back",
            Some(5.0),
            Source::Web,
            Actor::local("lead"),
        )?;
        assert!(set(
            &conn,
            other,
            "completed",
            None,
            Source::Web,
            Actor::local("lead")
        )
        .is_err());
        let n: i64 = conn.query_row(
            "SELECT count(*) FROM audit WHERE action = 'outcomes.set'",
            [],
            |r| r.get(0),
        )?;
        assert_eq!(n, 1);
        Ok(())
    }

    #[test]
    fn bad_lists_are_refused() {
        for (text, json) in [
            ("{\"outcome\": []}", true),
            ("{\"outcome\": [{\"code\": \"A b\", \"label\": \"x\", \"class\": \"other\"}]}", true),
            ("{\"outcome\": [{\"code\": \"a\", \"label\": \"x\", \"class\": \"won\"}]}", true),
            ("[[outcome]]\ncode = \"a\"\nlabel = \"x\"\nclass = \"other\"\n[[outcome]]\ncode = \"a\"\nlabel = \"y\"\nclass = \"other\"\n", false),
            ("[[outcome]]\ncode = \"a\"\nlabel = \" \"\nclass = \"other\"\n", false),
        ] {
            assert!(parse_list(text, json).is_err(), "{text} accepted");
        }
    }

    #[test]
    fn history_and_audit_keep_every_change() -> TestResult {
        let TempStore { dir: _dir, conn } = TempStore::new()?;
        seed_defaults(&conn)?;
        let call = TestCall::new().campaign("telesales").insert(&conn)?.id;
        set(
            &conn,
            call,
            "sale",
            Some(129.9),
            Source::Cti,
            Actor::local("cti"),
        )?;
        set(
            &conn,
            call,
            "callback",
            None,
            Source::Web,
            Actor::local("lead"),
        )?;
        let h = history(&conn, call)?;
        let got: Vec<(&str, Option<f64>, &str, &str)> = h
            .iter()
            .map(|s| {
                (
                    s.code.as_str(),
                    s.amount,
                    s.source.as_str(),
                    s.set_by.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("sale", Some(129.9), "cti", "cti"),
                ("callback", None, "web", "lead")
            ]
        );
        let audits = audit_actions(&conn, call)?;
        assert_eq!(audits.len(), 2);
        let last: serde_json::Value = serde_json::from_str(&audits[1])?;
        assert_eq!(last["outcome"], "callback");
        assert_eq!(last["previous"], "sale");
        assert_eq!(last["previous_amount"], 129.9);
        // History is never rewritten.
        assert!(conn
            .execute("UPDATE call_outcome_history SET code = 'x'", [])
            .is_err());
        Ok(())
    }

    #[test]
    fn deleted_calls_take_no_outcome() -> TestResult {
        let TempStore { dir: _dir, conn } = TempStore::new()?;
        seed_defaults(&conn)?;
        let call = TestCall::new().insert(&conn)?.id;
        crate::store::testutil::set_deleted_by_hand(&conn, call, "garbage", "root")?;
        assert!(matches!(
            set(
                &conn,
                call,
                "completed",
                None,
                Source::Web,
                Actor::local("lead")
            ),
            Err(OutcomeError::CallDeleted(_))
        ));
        assert!(matches!(
            set(
                &conn,
                999,
                "completed",
                None,
                Source::Web,
                Actor::local("lead")
            ),
            Err(OutcomeError::NoSuchCall(999))
        ));
        Ok(())
    }

    #[test]
    fn csv_import_is_all_or_nothing() -> TestResult {
        let TempStore { dir: _dir, conn } = TempStore::new()?;
        seed_defaults(&conn)?;
        let a = TestCall::new()
            .campaign("telesales")
            .external_id("D-1")
            .insert(&conn)?
            .id;
        let b = TestCall::new().campaign("surveys").insert(&conn)?.id;
        let who = Actor::local("cli:root");
        let bad = format!("external_id,call_id,outcome,amount\nD-1,,sale,10.5\n,{b},sale,\n");
        match import_csv(&conn, &bad, who) {
            Err(OutcomeError::BadImport(m)) => {
                assert!(m.contains("line 3") && m.contains("complete"), "{m}")
            }
            other => panic!("expected BadImport, got {other:?}"),
        }
        assert!(
            history(&conn, a)?.is_empty(),
            "a refused file changes nothing"
        );
        let good = format!("external_id,call_id,outcome,amount\nD-1,,sale,10.5\n,{b},complete,\n");
        let done = import_csv(&conn, &good, who)?;
        assert_eq!(done.set.len(), 2);
        assert_eq!(history(&conn, a)?[0].amount, Some(10.5));
        assert_eq!(history(&conn, b)?[0].source, "import");
        assert!(import_csv(&conn, "call_id,amount\n1,2\n", who).is_err());
        Ok(())
    }
}
