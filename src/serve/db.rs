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
                Ok(conn) => f(&conn),
                Err(_) => Err(E::from(DbError::Panicked)),
            }
        })
        .await
        .unwrap_or_else(|_| Err(E::from(DbError::Panicked)))
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
