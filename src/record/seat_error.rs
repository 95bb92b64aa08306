//! Why a seat refused or failed a control request, in words for the client (the CLI, or CTI
//! through the HTTP API). Both the seat (what it refuses at once) and the indexer (what the
//! index refused later) build these; this module must never depend on either.

use super::call::CallError;

/// A call in a message: by its row id, or as the one being started (no row id yet).
#[derive(Debug, Clone, Copy)]
pub struct CallName(pub Option<i64>);

impl std::fmt::Display for CallName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(id) => write!(f, "call {id}"),
            None => f.write_str("the call being started"),
        }
    }
}

/// Why a seat refused or failed a request. The text goes back to the control socket's client
/// (the CLI, or CTI through the HTTP API), so it names what to do, not a command to type.
#[derive(Debug, thiserror::Error)]
pub enum SeatError {
    #[error("seat {seat} is already recording {call}; stop it first")]
    AlreadyRecording { seat: String, call: CallName },
    #[error("storage {dir} is full: seat {seat} cannot start a call until space returns (alarm disk_full); recording resumes by itself once space is freed")]
    StorageFull { dir: String, seat: String },
    #[error("seat {seat} is not recording; start a call first")]
    NotRecording { seat: String },
    #[error("{call} on seat {seat} is already paused; resume it first")]
    AlreadyPaused { seat: String, call: CallName },
    #[error("{call} on seat {seat} is not paused; nothing to resume")]
    NotPaused { seat: String, call: CallName },
    #[error("{call} on seat {seat} is already on hold; unhold it first")]
    AlreadyOnHold { seat: String, call: CallName },
    #[error("{call} on seat {seat} is not on hold; nothing to unhold")]
    NotOnHold { seat: String, call: CallName },
    #[error("seat {seat} is recording {call}: wrap-up comes after the call; stop it first")]
    WrapupWhileRecording { seat: String, call: CallName },
    #[error("direction {0:?} must be \"inbound\" or \"outbound\" (or left out)")]
    Direction(String),
    #[error("seat {seat} cannot start a call: {source}. The seat stays idle; free space or fix the storage directory's permissions, then start again")]
    Start { seat: String, source: CallError },
    #[error("call {call_id} on seat {seat} did not finish cleanly: {source}. It is sealed as interrupted at its last intact page; `callrec calls show {call_id}` shows what was kept")]
    Finish {
        seat: String,
        call_id: i64,
        source: CallError,
    },
    /// Pausing is never refused for the index's sake: silence is written from the request on
    /// (invariant 6); only the interval's record can fail.
    #[error("call {call_id} on seat {seat} is paused (silence is recorded) but the index refused to record the pause ({source}), so the call's page will not show it; `callrec check` checks the index")]
    Pause {
        seat: String,
        call_id: i64,
        source: CallError,
    },
    /// Hold only marks time: the call records on whether or not the index took the interval.
    #[error("call {call_id} on seat {seat} is on hold, but the index refused to record the hold ({source}), so its handle time will not show it; `callrec check` checks the index")]
    Hold {
        seat: String,
        call_id: i64,
        source: CallError,
    },
    #[error("call {call_id} on seat {seat} records audio again, but the end of its pause could not be written to the index ({source}); the index shows the pause running to the end of the call")]
    Resume {
        seat: String,
        call_id: i64,
        source: CallError,
    },
    #[error("call {call_id} on seat {seat} is off hold, but the end of its hold could not be written to the index ({source}); the index shows the hold running to the end of the call")]
    Unhold {
        seat: String,
        call_id: i64,
        source: CallError,
    },
    #[error("tags or details for call {call_id} on seat {seat} were not saved: {source}; send them again")]
    Tag {
        seat: String,
        call_id: i64,
        source: CallError,
    },
}
