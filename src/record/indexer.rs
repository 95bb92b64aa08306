//! The indexer thread: the recorder's only connection to the SQLite index, and the only
//! recorder thread that waits for the index's write lock or for an fsync of a call's start or
//! end.
//!
//! Why: the index file is shared with other processes (the web service, `callrec` commands), any
//! of which may hold its write lock for seconds (up to the 10 s busy timeout, longer for a
//! frozen writer), and a slow disk can make an fsync take as long. A worker thread that waited
//! for either would stop draining its seats' capture rings (2 s each) and lose audio. So workers
//! only queue [`Job`]s here (an unbounded channel: sending never blocks) and poll, each tick,
//! for what comes back ([`Opened`]); the seat holds its frames in a backlog meanwhile
//! (`seat_io::StoreIo`).
//!
//! Jobs run one at a time in the order they were queued, so a call's row is inserted before its
//! intervals, tags and end are written. Workers name calls and intervals by tokens they drew
//! ([`CallToken`], [`IntervalToken`]); this thread maps them to row ids. A control request
//! waiting for the index is answered from here once its job is done (a start is answered by the
//! worker, once the seat shows the call).
//!
//! This thread must never touch a seat, a ring or an encoder, never hold anything a worker waits
//! for, and never drop a job's replies unanswered.

use super::call::{self, CallError, CallWriter, Closed, Storage};
use super::completeness::Rules;
use super::control::Response;
use super::disk_guard;
use super::seat_error::SeatError;
pub use crate::store::agent_states::State as AgentState;
use crate::store::{self, CallMeta, Progress};
use rusqlite::Connection;
use std::collections::HashMap;
use std::sync::mpsc::{Receiver, Sender};

/// A worker's name for a call, valid from the start request on (the row id comes later).
pub type CallToken = i64;
/// A worker's name for an interval (pause, gap) of a call.
pub type IntervalToken = i64;

/// A control request's way back to its client, answered once the work it asked for is done.
pub type Reply = Sender<Response>;

/// An outcome sent with a stop, for the indexer to check and record before the call's end.
#[derive(Debug, Clone)]
pub struct StopOutcome {
    pub code: String,
    /// In currency units.
    pub amount: Option<f64>,
    /// Who set it, for the audit row.
    pub by: String,
}

/// Work for the indexer, queued by workers and the syncer.
pub enum Job {
    /// Insert the row, create the file with its headers, make both durable, add `tags`; send the
    /// open writer (or the failure) to `worker`, with the answers to `replies`.
    Start {
        call: CallToken,
        seat: String,
        mode: &'static str,
        meta: CallMeta,
        tags: Vec<String>,
        /// When the seat was asked to start (read on the worker).
        started_at_utc: String,
        started_mono_ms: i64,
        worker: Sender<Opened>,
        replies: Vec<Reply>,
    },
    OpenInterval {
        call: CallToken,
        interval: IntervalToken,
        kind: &'static str,
        start_ms: u64,
        by: Option<String>,
        reason: Option<String>,
        replies: Vec<Reply>,
    },
    CloseInterval {
        call: CallToken,
        interval: IntervalToken,
        end_ms: u64,
        replies: Vec<Reply>,
    },
    Tag {
        call: CallToken,
        tags: Vec<String>,
        meta: CallMeta,
        replies: Vec<Reply>,
    },
    /// Record the call's outcome (store::outcomes). Queued before the call's `End`; a refusal
    /// is kept and told to the clients of the stop.
    Outcome {
        call: CallToken,
        outcome: StopOutcome,
    },
    /// The last job of a call. `closed`: the stream the worker closed, to make durable and
    /// complete (`Ok`), or why closing it failed (`Err`, the worker already handed it to the disk
    /// guard); `None` when there is no file to finish (the start failed, or the call was handed
    /// to the disk guard).
    End {
        call: CallToken,
        closed: Option<Result<Closed, CallError>>,
        end_reason: String,
        replies: Vec<Reply>,
    },
    /// A state the CTI reported for the agent at `seat` (store::agent_states), at `at_utc` (when
    /// the request reached the worker). `current_call`: the seat's call, whose row id a login
    /// or logout is answered with.
    AgentState {
        seat: String,
        state: AgentState,
        agent: Option<String>,
        at_utc: String,
        by: String,
        current_call: Option<CallToken>,
        replies: Vec<Reply>,
    },
    /// Answer `replies` once the jobs queued before for `call` are done.
    Reply {
        call: CallToken,
        replies: Vec<Reply>,
    },
    /// Durable lengths after the syncer's fsyncs.
    Progress(Vec<Progress>),
    /// The CTI announced a call at `seat` (a control `start`, at `at_utc`): `Ok` the call it
    /// made (queued after that call's `Start`), `Err` why the seat refused it.
    Announced {
        seat: String,
        at_utc: String,
        call: Result<CallToken, String>,
    },
    /// Time to evaluate the `idle_logged_in` alarm (record::completeness), at `now`.
    CheckIdle { now: chrono::DateTime<chrono::Utc> },
}

impl Job {
    /// The call a job is about, if any.
    pub fn call(&self) -> Option<CallToken> {
        match self {
            Job::Start { call, .. }
            | Job::OpenInterval { call, .. }
            | Job::CloseInterval { call, .. }
            | Job::Tag { call, .. }
            | Job::Outcome { call, .. }
            | Job::End { call, .. }
            | Job::Reply { call, .. } => Some(*call),
            Job::AgentState { .. }
            | Job::Progress(_)
            | Job::Announced { .. }
            | Job::CheckIdle { .. } => None,
        }
    }

    /// Where answers for a request waiting on this job go.
    pub fn replies_mut(&mut self) -> Option<&mut Vec<Reply>> {
        match self {
            Job::Start { replies, .. }
            | Job::OpenInterval { replies, .. }
            | Job::CloseInterval { replies, .. }
            | Job::Tag { replies, .. }
            | Job::End { replies, .. }
            | Job::AgentState { replies, .. }
            | Job::Reply { replies, .. } => Some(replies),
            Job::Outcome { .. }
            | Job::Progress(_)
            | Job::Announced { .. }
            | Job::CheckIdle { .. } => None,
        }
    }

    /// Answers the job's replies with `why` (the indexer is gone: the job will never run).
    pub fn refuse(mut self, why: &str) {
        if let Some(replies) = self.replies_mut() {
            for r in replies.drain(..) {
                let _ = r.send(Response::refused(why));
            }
        }
    }
}

/// What the indexer sends back to a worker for a start.
pub struct Opened {
    pub call: CallToken,
    /// The open call, or why it could not start (the seat goes idle).
    pub result: Result<CallWriter, String>,
    /// Answers to the start's control requests: the worker sends them once its seats have
    /// published the new state, so a `call status` right after `call start` shows the call.
    pub answers: Vec<(Reply, Response)>,
}

/// What the indexer knows of a call, from its start to its end.
struct CallState {
    seat: String,
    /// The row, once inserted and its file created.
    row: Option<i64>,
    /// Why the start failed, for the requests that come after it.
    start_error: Option<String>,
    /// Why the outcome sent with the stop was refused, for the stop's answer.
    outcome_error: Option<String>,
}

pub struct Indexer {
    conn: Connection,
    storage: Storage,
    calls: HashMap<CallToken, CallState>,
    /// Interval tokens to (call token, interval row id).
    /// Open intervals: their call, row id and kind (`pause`, `hold`, ...).
    intervals: HashMap<IntervalToken, (CallToken, i64, &'static str)>,
    /// The completeness alarms, judged here where the index is.
    rules: Rules,
}

impl Indexer {
    pub fn new(conn: Connection, storage: Storage, rules: Rules) -> Self {
        Indexer {
            conn,
            storage,
            calls: HashMap::new(),
            intervals: HashMap::new(),
            rules,
        }
    }

    /// Runs jobs until every sender is gone.
    pub fn run(mut self, rx: Receiver<Job>) {
        while let Ok(job) = rx.recv() {
            self.handle(job);
        }
    }

    // A `SeatError` is built only when a job fails, once, and turned into its message at once:
    // its size costs nothing here.
    #[allow(clippy::result_large_err)]
    fn handle(&mut self, job: Job) {
        match job {
            Job::Start {
                call,
                seat,
                mode,
                meta,
                tags,
                started_at_utc,
                started_mono_ms,
                worker,
                replies,
            } => {
                let started = started_at_utc.clone();
                let new = self
                    .storage
                    .new_call(&seat, mode, meta, started_at_utc, started_mono_ms);
                let opened = call::open(&mut self.storage, &self.conn, &new);
                let (result, state, answer) = match opened {
                    Ok(writer) => {
                        let row = writer.id;
                        tracing::info!(seat = %seat, call_id = row, call, "call started");
                        // The agent took the next call: a wrap-up left open at the seat ends.
                        let system = store::audit::Actor::local("system");
                        if let Err(e) =
                            store::agent_states::call_started(&self.conn, &seat, &started, system)
                        {
                            tracing::warn!(seat = %seat, "ending the seat's wrap-up: {e}");
                        }
                        let answer = if tags.is_empty() {
                            Ok(row)
                        } else {
                            // The call records either way; the client is told its tags are
                            // missing and can send them again.
                            store::add_tags(&self.conn, row, &tags)
                                .map(|()| row)
                                .map_err(|e| {
                                    SeatError::Tag {
                                        seat: seat.clone(),
                                        call_id: row,
                                        source: e.into(),
                                    }
                                    .to_string()
                                })
                        };
                        let state = CallState {
                            seat,
                            row: Some(row),
                            start_error: None,
                            outcome_error: None,
                        };
                        (Ok(writer), state, answer)
                    }
                    Err(source) => {
                        tracing::error!(seat = %seat, "cannot start a call: {source}");
                        let why = SeatError::Start {
                            seat: seat.clone(),
                            source,
                        }
                        .to_string();
                        let state = CallState {
                            seat,
                            row: None,
                            start_error: Some(why.clone()),
                            outcome_error: None,
                        };
                        (Err(why.clone()), state, Err(why))
                    }
                };
                self.calls.insert(call, state);
                let answers = replies
                    .into_iter()
                    .map(|r| (r, Response::from_result(answer.clone())))
                    .collect();
                if let Err(lost) = worker.send(Opened {
                    call,
                    result,
                    answers,
                }) {
                    // The worker is gone (shutting down after a timeout): leave the row
                    // `recording` with its header-only file; the next start's recovery seals it.
                    tracing::warn!(call, "worker gone before its call opened");
                    drop(lost.0);
                }
            }
            Job::OpenInterval {
                call,
                interval,
                kind,
                start_ms,
                by,
                reason,
                replies,
            } => {
                let result = self.with_row(call, |this, seat, row| {
                    match store::open_interval(
                        &this.conn,
                        row,
                        kind,
                        start_ms,
                        by.as_deref(),
                        reason.as_deref(),
                    ) {
                        Ok(id) => {
                            this.intervals.insert(interval, (call, id, kind));
                            Ok(row)
                        }
                        Err(e) if kind == "pause" => Err(SeatError::Pause {
                            seat: seat.to_owned(),
                            call_id: row,
                            source: e.into(),
                        }),
                        // The CTI learns its hold was not recorded (the call records on).
                        Err(e) if kind == "hold" => Err(SeatError::Hold {
                            seat: seat.to_owned(),
                            call_id: row,
                            source: e.into(),
                        }),
                        Err(e) => {
                            // A gap is the seat's own record: no client waits for it.
                            tracing::error!(
                                seat,
                                call_id = row,
                                "the index refused a {kind} interval: {e}"
                            );
                            Ok(row)
                        }
                    }
                });
                answer(replies, result);
            }
            Job::CloseInterval {
                call,
                interval,
                end_ms,
                replies,
            } => {
                let result = self.with_row(call, |this, seat, row| {
                    // An interval whose opening failed has no row: the failure was reported.
                    let Some((_, id, kind)) = this.intervals.remove(&interval) else {
                        return Ok(row);
                    };
                    store::close_interval(&this.conn, id, end_ms)
                        .map(|()| row)
                        .map_err(|e| {
                            let (seat, call_id, source) = (seat.to_owned(), row, e.into());
                            if kind == "hold" {
                                SeatError::Unhold {
                                    seat,
                                    call_id,
                                    source,
                                }
                            } else {
                                SeatError::Resume {
                                    seat,
                                    call_id,
                                    source,
                                }
                            }
                        })
                });
                answer(replies, result);
            }
            Job::Tag {
                call,
                tags,
                meta,
                replies,
            } => {
                let result = self.with_row(call, |this, seat, row| {
                    store::add_tags(&this.conn, row, &tags)
                        .and_then(|()| store::update_meta(&this.conn, row, &meta))
                        .map(|()| row)
                        .map_err(|e| SeatError::Tag {
                            seat: seat.to_owned(),
                            call_id: row,
                            source: e.into(),
                        })
                });
                answer(replies, result);
            }
            Job::Outcome { call, outcome } => {
                let row = self.calls.get(&call).and_then(|s| s.row);
                if let Some(row) = row {
                    let by = store::audit::Actor::local(&outcome.by);
                    let set = store::outcomes::set(
                        &self.conn,
                        row,
                        &outcome.code,
                        outcome.amount,
                        store::outcomes::Source::Cti,
                        by,
                    );
                    if let Err(e) = set {
                        tracing::warn!(call_id = row, "outcome at stop refused: {e}");
                        if let Some(state) = self.calls.get_mut(&call) {
                            state.outcome_error = Some(e.to_string());
                        }
                    }
                }
            }
            Job::End {
                call,
                closed,
                end_reason,
                replies,
            } => {
                let result = self.with_row(call, |this, seat, row| match closed {
                    None => Ok(row),
                    Some(closed) => closed
                        .and_then(|c| {
                            call::finalize(&this.storage.guard, &this.conn, c, &end_reason)
                        })
                        .map_err(|source| {
                            tracing::error!(seat, call_id = row, "finishing the call: {source}");
                            SeatError::Finish {
                                seat: seat.to_owned(),
                                call_id: row,
                                source,
                            }
                        }),
                });
                if let (Ok(row), Some(state)) = (&result, self.calls.get(&call)) {
                    tracing::info!(seat = %state.seat, call_id = row, reason = %end_reason, "call finished");
                    // Talk and hold, from the final duration and the hold intervals.
                    if let Err(e) = store::agent_states::settle_call(&self.conn, *row) {
                        tracing::warn!(call_id = row, "storing the call's talk and hold: {e}");
                    }
                    self.rules
                        .after_call(&self.conn, &state.seat, &crate::clock::utc_now());
                }
                // The call is finished either way; its client learns the outcome is missing.
                let outcome_error = self
                    .calls
                    .get_mut(&call)
                    .and_then(|s| s.outcome_error.take());
                let result = match (result, outcome_error) {
                    (Ok(row), Some(e)) => Err(format!(
                        "call {row} stopped, but its outcome was not set: {e}"
                    )),
                    (r, _) => r,
                };
                answer(replies, result);
                self.calls.remove(&call);
                self.intervals.retain(|_, (c, _, _)| *c != call);
            }
            Job::AgentState {
                seat,
                state,
                agent,
                at_utc,
                by,
                current_call,
                replies,
            } => {
                let by = store::audit::Actor::local(&by);
                let recorded = store::agent_states::record(
                    &self.conn,
                    &seat,
                    state,
                    agent.as_deref(),
                    &at_utc,
                    by,
                );
                let response = match recorded {
                    Ok(r) => Response {
                        ok: true,
                        call_id: current_call
                            .and_then(|c| self.calls.get(&c))
                            .and_then(|s| s.row)
                            .or(r.call_id),
                        ..Default::default()
                    },
                    Err(e) => {
                        tracing::warn!(seat = %seat, "agent state {} refused: {e}", state.as_str());
                        Response::refused(e)
                    }
                };
                for r in replies {
                    let _ = r.send(response.clone());
                }
            }
            Job::Reply { call, replies } => {
                let result = self.with_row(call, |_, _, row| Ok(row));
                answer(replies, result);
            }
            Job::Announced { seat, at_utc, call } => {
                let outcome = match &call {
                    Ok(token) => match self.calls.get(token) {
                        Some(CallState { row: Some(row), .. }) => Ok(*row),
                        Some(CallState {
                            start_error: Some(why),
                            ..
                        }) => Err(why.as_str()),
                        _ => Err("the call ended before the index had it"),
                    },
                    Err(why) => Err(why.as_str()),
                };
                self.rules.after_start(&self.conn, &seat, &at_utc, outcome);
            }
            Job::CheckIdle { now } => self.rules.check_idle(&self.conn, now),
            Job::Progress(batch) => {
                if let Err(e) = store::update_progress(&self.conn, &batch) {
                    tracing::error!("recording progress in the index: {e}");
                    if disk_guard::is_disk_full_store(&e) {
                        self.storage
                            .guard
                            .report_full(&format!("index update failed: {e}"));
                    }
                }
            }
        }
    }

    /// Runs `f` with the seat and row of `call`; a call whose start failed gets its start
    /// error instead, an unknown one a refusal.
    fn with_row(
        &mut self,
        call: CallToken,
        f: impl FnOnce(&mut Self, &str, i64) -> Result<i64, SeatError>,
    ) -> Result<i64, String> {
        let Some(state) = self.calls.get(&call) else {
            return Err("the call had already ended".into());
        };
        let Some(row) = state.row else {
            return Err(state
                .start_error
                .clone()
                .unwrap_or_else(|| "the call did not start".into()));
        };
        let seat = state.seat.clone();
        f(self, &seat, row).map_err(|e| {
            tracing::error!("{e}");
            e.to_string()
        })
    }
}

/// Sends `result` to every waiting client.
fn answer(replies: Vec<Reply>, result: Result<i64, String>) {
    for r in replies {
        let _ = r.send(Response::from_result(result.clone()));
    }
}
