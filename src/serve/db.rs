//! SQLite access from async handlers: one write connection and a few read connections, each
//! used inside `spawn_blocking` so a slow query never stalls the async runtime.
//!
//! The recorder (same process under `callrec run`, or another process) writes calls through its
//! own connection; WAL lets readers run beside it, and `busy_timeout` queues the server's few
//! writes (sessions, notes, audit) behind the recorder's.

use crate::store::{self, StoreError};
use rusqlite::Connection;
use std::path::Path;
use std::sync::{Arc, Mutex};

const READERS: usize = 4;

#[derive(Clone)]
pub struct Db {
    writer: Arc<Mutex<Connection>>,
    readers: Arc<Vec<Mutex<Connection>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a database worker panicked; the server keeps running, retry the request")]
    Panicked,
}

impl Db {
    pub fn open(path: &Path) -> Result<Db, StoreError> {
        let writer = store::open_rw(path)?;
        let mut readers = Vec::new();
        for _ in 0..READERS {
            readers.push(Mutex::new(store::open_ro(path)?));
        }
        Ok(Db {
            writer: Arc::new(Mutex::new(writer)),
            readers: Arc::new(readers),
        })
    }

    /// Runs `f` on a read connection (whichever is free first, else the first).
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let guard = readers
                .iter()
                .find_map(|m| m.try_lock().ok())
                .map(Ok)
                .unwrap_or_else(|| readers[0].lock());
            match guard {
                Ok(conn) => snapshot(&conn, f),
                Err(_) => Err(E::from(DbError::Panicked)),
            }
        })
        .await
        .unwrap_or_else(|_| Err(E::from(DbError::Panicked)))
    }

    /// Runs `f` on a free read connection right here on the async worker, or, when all readers
    /// are busy, like [`Db::read`]. Only for indexed point lookups that take microseconds (a
    /// session by its hash, a call by its id): a hand-off to the blocking pool costs more than
    /// the query itself, and on the streaming path it was most of the time per request
    /// (benches/RESULTS.md, "Streaming vs nginx"). Never for searches or writes. Unlike
    /// [`Db::read`] it opens no transaction: a point lookup is one statement, and each
    /// statement is its own snapshot.
    pub async fn read_quick<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        // The guard must be gone before any await (it is not Send).
        let f = match self.readers.iter().find_map(|m| m.try_lock().ok()) {
            Some(conn) => return f(&conn),
            None => f,
        };
        self.read(f).await
    }

    /// Runs `f` on the write connection.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || match writer.lock() {
            Ok(conn) => f(&conn),
            Err(_) => Err(E::from(DbError::Panicked)),
        })
        .await
        .unwrap_or_else(|_| Err(E::from(DbError::Panicked)))
    }

    /// For start-up and the CLI-like bootstrap steps that run before the runtime serves.
    pub fn write_blocking<T>(&self, f: impl FnOnce(&Connection) -> T) -> Result<T, DbError> {
        let conn = self.writer.lock().map_err(|_| DbError::Panicked)?;
        Ok(f(&conn))
    }
}

/// Runs `f` inside one read transaction: its statements see one snapshot, and SQLite takes the
/// WAL read lock once instead of once per statement (the locks were a tenth of the server's CPU
/// when streaming; benches/RESULTS.md).
fn snapshot<T, E, F>(conn: &Connection, f: F) -> Result<T, E>
where
    E: From<DbError>,
    F: FnOnce(&Connection) -> Result<T, E>,
{
    let run = |sql: &str| {
        conn.prepare_cached(sql)
            .and_then(|mut st| st.execute([]))
            .map_err(|e| E::from(DbError::Store(StoreError::Sql(e))))
    };
    run("BEGIN")?;
    let out = f(conn);
    // Nothing was written, so ending the transaction cannot lose anything; a failure here only
    // means it is already over.
    let _ = run("COMMIT");
    out
}
