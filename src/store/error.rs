//! [`StoreError`]: what can go wrong with the index, in words that say what to do next. Its own
//! file so that every table's module can use it without importing `store/mod.rs`, which uses
//! some of them (the ledger) in turn.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}. Check the path and permissions; `callrec check` verifies the index")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error(
        "database schema version {found} is newer than this callrec ({supported}); upgrade callrec"
    )]
    TooNew { found: i64, supported: i64 },
    #[error("pseudonym key {path}: {problem}. It is made when the index is first opened read-write; restore it from the backup of the box's keys/ directory (a new key would orphan every pseudonym in the audit log)")]
    Key { path: String, problem: String },
    #[error("call {0} was deleted; nothing can be added to it")]
    CallDeleted(i64),
    #[error("no call with id {0}")]
    NoSuchCall(i64),
    #[error("upgrading the index to schema version {version} failed: {problem}. Nothing was changed; restore the index from a backup or report this")]
    Migration { version: i64, problem: String },
}
