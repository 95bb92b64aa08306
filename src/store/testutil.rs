//! Test fixtures for the store: a throw-away index in its own temp dir, calls put into it, an
//! index left at an older schema version, and a text dump of the schema.
//!
//! Compiled for unit tests only (`#[cfg(test)]` in `store/mod.rs`); shipping code must never
//! call it. It must never touch a path outside the temp dir it made (or was handed), and never
//! reach the index other than through the store's own functions ([`super::open_rw`],
//! [`super::insert_call`], [`super::update_progress`], [`super::finalize_call`]), so that a test
//! built on it sees exactly what production code writes.
//!
//! The layout is the production one: the index is `callrec.db` in the storage dir and a call's
//! recording is `<dir>/<rel_path>`, so that checks, evidence bundles, verification and imports
//! (which take a storage dir) can be tested on a [`TempStore`] as they are.

use super::{CallMeta, Finalized, NewCall, Progress, StoreError, MIGRATIONS};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// What the helpers return: tests propagate anything with `?`.
pub type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// The index file name inside the storage dir, as `Config::db_path` has it.
pub const DB_FILE: &str = "callrec.db";

/// When every test call starts unless it says otherwise.
pub const DEFAULT_STARTED_AT_UTC: &str = "2026-11-27T10:00:00.000Z";

/// A fresh, fully migrated index in a temp dir that is removed when this is dropped.
///
/// Tests usually take it apart, `let TempStore { dir, conn } = TempStore::new()?;`, so that the
/// rest reads as with any connection. Keep `dir` bound (as `dir` or `_dir`, never `_`) for as
/// long as the index is used: dropping it removes the files under the open connection.
pub struct TempStore {
    /// The storage dir: the index is [`DB_FILE`], recordings are under `calls/`.
    pub dir: TempDir,
    /// Opened by [`super::open_rw`], so migrated and configured like the recorder's.
    pub conn: Connection,
}

impl TempStore {
    /// A new temp dir with a new index in it.
    pub fn new() -> TestResult<Self> {
        Self::in_dir(tempfile::tempdir()?)
    }

    /// Opens (creating or migrating) the index in `dir`, for a test that must put files there
    /// before the index exists, or that made an old index with [`index_at_version`] first.
    pub fn in_dir(dir: TempDir) -> TestResult<Self> {
        let conn = super::open_rw(&dir.path().join(DB_FILE))?;
        Ok(TempStore { dir, conn })
    }

    /// The storage dir.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The index file.
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join(DB_FILE)
    }

    /// Puts `call` (and its file, if it has one) into this store; see [`TestCall::insert_in`].
    pub fn insert(&self, call: &TestCall) -> TestResult<InsertedCall> {
        call.insert_in(&self.conn, self.dir.path())
    }
}

/// What [`TestCall::insert_in`] made.
#[derive(Debug, Clone)]
pub struct InsertedCall {
    pub id: i64,
    /// As the index has it, relative to the storage dir (`calls/2026/11/27/1.opus`).
    pub rel_path: String,
    /// `<storage dir>/<rel_path>` (relative after [`TestCall::insert`]); the file exists only if
    /// the call was given one.
    pub path: PathBuf,
    /// The hash finalize stored: the file's, or the one given with [`TestCall::sha256`].
    pub sha256: Option<String>,
}

/// A call to put into a test index, built field by field from plain defaults (box `b`, seat `s`,
/// mode `control`, started [`DEFAULT_STARTED_AT_UTC`], monotonic 0 ms, 16 kHz, 16 kbit/s, no
/// metadata, still `recording`, no file). Only what a test sets differs from them.
#[derive(Debug, Clone)]
pub struct TestCall {
    new: NewCall,
    duration_ms: u64,
    bytes: u64,
    /// The recording's content, written to `<dir>/<rel_path>` by insert.
    file: Option<Vec<u8>>,
    /// A hash to store without a file (when the file's own is not wanted).
    sha256: Option<String>,
    /// Finalized with this status (`complete`, `interrupted`); None leaves it `recording`.
    final_status: Option<String>,
    end_reason: String,
}

impl Default for TestCall {
    fn default() -> Self {
        TestCall {
            new: NewCall {
                box_id: "b".into(),
                seat_id: "s".into(),
                mode: "control".into(),
                started_at_utc: DEFAULT_STARTED_AT_UTC.into(),
                started_mono_ms: 0,
                rate_hz: 16000,
                bitrate_bps: 16000,
                meta: CallMeta::default(),
            },
            duration_ms: 0,
            bytes: 0,
            file: None,
            sha256: None,
            final_status: None,
            end_reason: "stop".into(),
        }
    }
}

/// Sets a call's status to `garbage` or `deleted` by hand, with a `deletions` row by
/// `requested_by` but no tombstone and no audit row: for tests of what the store does with rows
/// changed behind `store::lifecycle`'s back. Returns the deletion's id.
pub fn set_deleted_by_hand(
    conn: &Connection,
    call_id: i64,
    status: &str,
    requested_by: &str,
) -> TestResult<i64> {
    conn.execute(
        "INSERT INTO deletions (kind, reason, requested_by, created_at_utc, calls)
         VALUES ('manual', 'by hand', ?1, '2026-12-01T00:00:00.000Z', 1)",
        [requested_by],
    )?;
    let deletion = conn.last_insert_rowid();
    conn.execute(
        "UPDATE calls SET status = ?2, deletion_id = ?3 WHERE id = ?1",
        rusqlite::params![call_id, status, deletion],
    )?;
    Ok(deletion)
}

impl TestCall {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn box_id(mut self, box_id: &str) -> Self {
        self.new.box_id = box_id.into();
        self
    }

    pub fn seat(mut self, seat_id: &str) -> Self {
        self.new.seat_id = seat_id.into();
        self
    }

    pub fn mode(mut self, mode: &str) -> Self {
        self.new.mode = mode.into();
        self
    }

    pub fn agent(mut self, agent: &str) -> Self {
        self.new.meta.agent = Some(agent.into());
        self
    }

    pub fn direction(mut self, direction: &str) -> Self {
        self.new.meta.direction = Some(direction.into());
        self
    }

    /// The customer's number (`remote_number`).
    pub fn number(mut self, remote_number: &str) -> Self {
        self.new.meta.remote_number = Some(remote_number.into());
        self
    }

    pub fn campaign(mut self, campaign: &str) -> Self {
        self.new.meta.campaign = Some(campaign.into());
        self
    }

    pub fn external_id(mut self, external_id: &str) -> Self {
        self.new.meta.external_id = Some(external_id.into());
        self
    }

    /// UTC text as the store writes it (`2026-11-27T10:00:00.000Z`); the day names the file's
    /// folder.
    pub fn started_at(mut self, started_at_utc: &str) -> Self {
        self.new.started_at_utc = started_at_utc.into();
        self
    }

    pub fn started_mono_ms(mut self, started_mono_ms: i64) -> Self {
        self.new.started_mono_ms = started_mono_ms;
        self
    }

    /// Recorded so far (still recording) or in all (finalized); the end time follows from it.
    pub fn duration_ms(mut self, duration_ms: u64) -> Self {
        self.duration_ms = duration_ms;
        self
    }

    /// Size in the index when there is no file (a file's own length wins).
    pub fn bytes(mut self, bytes: u64) -> Self {
        self.bytes = bytes;
        self
    }

    /// Writes `content` as the recording, and stores its length (and, when finalized, its hash).
    pub fn file(mut self, content: impl Into<Vec<u8>>) -> Self {
        self.file = Some(content.into());
        self
    }

    /// A hash to store at finalize instead of the file's (64 lowercase hex, or anything a test
    /// wants to see refused).
    pub fn sha256(mut self, sha256_hex: &str) -> Self {
        self.sha256 = Some(sha256_hex.into());
        self
    }

    /// Finalize the call with `status` (`complete`, `interrupted`), which also writes its ledger
    /// entry when it has a hash, as in production.
    pub fn finalized(mut self, status: &str) -> Self {
        self.final_status = Some(status.into());
        self
    }

    pub fn end_reason(mut self, end_reason: &str) -> Self {
        self.end_reason = end_reason.into();
        self
    }

    /// What `insert_call` is given, for a test of `insert_call` itself.
    pub fn new_call(&self) -> &NewCall {
        &self.new
    }

    /// Inserts a call that has no file (an index-only test); see [`TestCall::insert_in`].
    pub fn insert(&self, conn: &Connection) -> TestResult<InsertedCall> {
        if self.file.is_some() {
            return Err(
                "a call with a file needs insert_in (or TempStore::insert): the file \
                        goes under the storage dir"
                    .into(),
            );
        }
        // Without a file nothing is written outside the index, so any dir will do.
        self.insert_in(conn, Path::new(""))
    }

    /// Inserts the row, writes the file under `storage_dir` if there is one, then records the
    /// duration and size (a recording call) or finalizes it — each through the store's own
    /// function.
    pub fn insert_in(&self, conn: &Connection, storage_dir: &Path) -> TestResult<InsertedCall> {
        let (id, rel_path) = super::insert_call(conn, &self.new)?;
        let path = storage_dir.join(&rel_path);
        let bytes = match &self.file {
            Some(content) => {
                let parent = path
                    .parent()
                    .ok_or_else(|| format!("{} has no parent folder", path.display()))?;
                std::fs::create_dir_all(parent)?;
                std::fs::write(&path, content)?;
                content.len() as u64
            }
            None => self.bytes,
        };
        let sha256 = match (&self.sha256, &self.file) {
            (Some(given), _) => Some(given.clone()),
            (None, Some(content)) => Some(crate::hash::sha256_hex(content)),
            (None, None) => None,
        };
        match &self.final_status {
            Some(status) => {
                let ended_at_utc =
                    crate::clock::utc_plus_ms(&self.new.started_at_utc, self.duration_ms);
                super::finalize_call(
                    conn,
                    &Finalized {
                        call_id: id,
                        status: super::CallStatus::parse(status)?,
                        ended_at_utc: &ended_at_utc,
                        duration_ms: self.duration_ms,
                        bytes,
                        sha256: sha256.as_deref(),
                        dropped_frames: 0,
                        end_reason: &self.end_reason,
                        note: None,
                    },
                )?;
            }
            // A call still recording has only progress; untouched when there is none, so the row
            // is exactly what insert_call wrote.
            None if self.duration_ms > 0 || bytes > 0 => {
                super::update_progress(
                    conn,
                    &[Progress {
                        call_id: id,
                        duration_ms: self.duration_ms,
                        bytes,
                        dropped_frames: 0,
                    }],
                )?;
            }
            None => {}
        }
        Ok(InsertedCall {
            id,
            rel_path,
            path,
            // Only a finalized call has its hash in the index.
            sha256: self.final_status.as_ref().and(sha256),
        })
    }
}

/// Creates the index `path` at schema `version` (0..=current), as a callrec of that version
/// would have left it: each migration up to it applied the way `migrate` applies them (foreign
/// keys off, one transaction each, `user_version` set in it). For upgrade tests: put rows of
/// that version in, then open it with [`super::open_rw`] (or [`TempStore::in_dir`]).
pub fn index_at_version(path: &Path, version: usize) -> TestResult<Connection> {
    let migrations = MIGRATIONS.get(..version).ok_or_else(|| {
        format!(
            "no schema version {version}: the newest is {}",
            MIGRATIONS.len()
        )
    })?;
    let conn = Connection::open(path).map_err(|source| StoreError::Open {
        path: path.display().to_string(),
        source,
    })?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    for (i, m) in migrations.iter().enumerate() {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(m.sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// The schema as text: `-- user_version: N`, then for every row of `sqlite_master` by name (and
/// type) a `-- <type> <name> on <table>` line and its SQL with a `;` (SQLite's own indexes have
/// none). The same text as
/// `sqlite3 callrec.db "SELECT '-- user_version: ' || user_version FROM pragma_user_version;
/// SELECT char(10) || '-- ' || type || ' ' || name || ' on ' || tbl_name
/// || coalesce(char(10) || sql || ';', '') FROM sqlite_master ORDER BY name, type;"`,
/// which is how the `fixtures/schema-v<N>.sql` files are made.
pub fn schema_dump(conn: &Connection) -> TestResult<String> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let mut out = format!("-- user_version: {version}\n");
    let mut st =
        conn.prepare("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name, type")?;
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Option<String>>(3)?,
        ))
    })?;
    for row in rows {
        let (kind, name, table, sql) = row?;
        out.push_str(&format!("\n-- {kind} {name} on {table}"));
        if let Some(sql) = sql {
            out.push_str(&format!("\n{sql};"));
        }
        out.push('\n');
    }
    Ok(out)
}

/// Every row `PRAGMA integrity_check` gives (`["ok"]` for a sound file) and every table
/// `PRAGMA foreign_key_check` names (none for a sound index).
pub fn integrity(conn: &Connection) -> TestResult<(Vec<String>, Vec<String>)> {
    let integrity = conn
        .prepare("PRAGMA integrity_check")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let broken = conn
        .prepare("PRAGMA foreign_key_check")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok((integrity, broken))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call with a file is what the recorder leaves: the file at its path, the row finalized
    /// with the file's size and hash, its ledger entry — so `verify --store` finds nothing.
    #[test]
    fn a_finalized_call_with_a_file_is_what_the_recorder_leaves() -> TestResult {
        let store = TempStore::new()?;
        let content = b"not really opus".to_vec();
        let call = store.insert(
            &TestCall::new()
                .seat("s1")
                .agent("alice")
                .direction("inbound")
                .number("+4930123456")
                .campaign("sales")
                .duration_ms(2500)
                .file(content.clone())
                .finalized("complete"),
        )?;
        assert_eq!(std::fs::read(&call.path)?, content);
        assert_eq!(call.path, store.path().join(&call.rel_path));
        let row = super::super::get_call_row(&store.conn, call.id)?;
        assert_eq!(
            (row.status.as_str(), row.duration_ms, row.bytes),
            ("complete", 2500, content.len() as i64)
        );
        assert_eq!(
            row.ended_at_utc.as_deref(),
            Some("2026-11-27T10:00:02.500Z")
        );
        let sha = crate::hash::sha256_hex(&content);
        assert_eq!(row.sha256.as_deref(), Some(sha.as_str()));
        assert_eq!(call.sha256.as_deref(), Some(sha.as_str()));
        // What `callrec verify --store` would check, from inside the store: the file on disk
        // has the row's hash and size, the one ledger entry commits to that hash and to the
        // row's detail, and the chain verifies.
        let (on_disk, bytes) = crate::hash::sha256_file(&call.path)?;
        assert_eq!((on_disk.as_str(), bytes as i64), (sha.as_str(), row.bytes));
        let entries = crate::store::ledger::entries_for_call(&store.conn, call.id)?;
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].file_sha256.as_deref(), Some(sha.as_str()));
        assert_eq!(entries[0].detail, row.ledger_detail().canonical_json());
        let chain = crate::store::ledger::verify_chain(&store.conn)?;
        assert!(chain.problems.is_empty(), "{:?}", chain.problems);
        Ok(())
    }

    /// Without `finalized` a call is still recording, with its progress only; without a file
    /// [`TestCall::insert`] needs no storage dir, and refuses a call that has one.
    #[test]
    fn a_recording_call_has_progress_only() -> TestResult {
        let TempStore { dir: _dir, conn } = TempStore::new()?;
        let call = TestCall::new().duration_ms(700).bytes(99).insert(&conn)?;
        let row = super::super::get_call_row(&conn, call.id)?;
        assert_eq!(
            (row.status.as_str(), row.duration_ms, row.bytes, row.sha256),
            ("recording", 700, 99, None)
        );
        assert!(TestCall::new().file(b"x".to_vec()).insert(&conn).is_err());
        Ok(())
    }

    /// An index made at an old version has that version's tables only; opening it upgrades it.
    #[test]
    fn an_old_index_opens_upgraded() -> TestResult {
        let dir = tempfile::tempdir()?;
        let old = index_at_version(&dir.path().join(DB_FILE), 1)?;
        let tables = |conn: &Connection| -> rusqlite::Result<i64> {
            conn.query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'users'",
                [],
                |r| r.get(0),
            )
        };
        assert_eq!(tables(&old)?, 0);
        drop(old);
        let store = TempStore::in_dir(dir)?;
        assert_eq!(tables(&store.conn)?, 1);
        assert!(index_at_version(&store.path().join("other.db"), MIGRATIONS.len() + 1).is_err());
        Ok(())
    }
}
