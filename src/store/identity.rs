//! The storage identity: a `STORAGE-ID` file in the storage directory and the same id in the
//! index (`box_meta.storage_id`), so the box never records into the wrong disk, a disk whose
//! index was swapped, or — when `storage.id` is set in the config — an empty mount point left
//! by a disk that failed to mount (the recorder would otherwise start a fresh store on the root
//! filesystem and fill it).
//!
//! [`ensure`] runs before anything writes to the store. It must never overwrite or "repair" an
//! existing identity: a mismatch is for a person to resolve.

use rusqlite::{Connection, OptionalExtension};
use std::io::Write;
use std::path::Path;

pub const FILE: &str = "STORAGE-ID";

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "storage dir {dir} has identity {file} but its index belongs to storage {index}: the index \
         and the recordings come from different disks; put the right index back (or the right disk) \
         before recording"
    )]
    Mismatch {
        dir: String,
        file: String,
        index: String,
    },
    #[error(
        "storage dir {dir} is storage {found}, but the config says storage.id = {expected}: is the \
         right disk mounted at {dir}? Mount it, or correct storage.id"
    )]
    Unexpected {
        dir: String,
        found: String,
        expected: String,
    },
    #[error(
        "storage dir {dir} has no {FILE} file but the config says storage.id = {expected}: the disk \
         is probably not mounted. Mount it; nothing was written"
    )]
    NotMounted { dir: String, expected: String },
    #[error(
        "{FILE} is missing from {dir}, but the index there belongs to storage {index}; if this is the \
         right disk, restore the file with: echo {index} > {dir}/{FILE}"
    )]
    FileMissing { dir: String, index: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{FILE} in {dir} does not hold a storage id (32 hex digits); restore it from a backup"
    )]
    Garbled { dir: String },
    #[error("index: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("no randomness for a new storage id: {0}")]
    Random(String),
}

fn read_file(dir: &Path) -> Result<Option<String>, IdentityError> {
    let path = dir.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim().to_owned();
            if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(Some(id))
            } else {
                Err(IdentityError::Garbled {
                    dir: dir.display().to_string(),
                })
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(IdentityError::Io {
            path: path.display().to_string(),
            source: e,
        }),
    }
}

/// Writes the file durably: temp file, fsync, rename, fsync of the directory.
fn write_file(dir: &Path, id: &str) -> Result<(), IdentityError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| IdentityError::Io {
            path: path.clone(),
            source,
        }
    };
    let tmp = dir.join(format!("{FILE}.{}.tmp", new_id()?));
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    writeln!(f, "{id}").map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    let path = dir.join(FILE);
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

fn new_id() -> Result<String, IdentityError> {
    crate::store::users::random_bytes::<16>()
        .map(hex::encode)
        .map_err(|e| IdentityError::Random(e.to_string()))
}

fn index_id(conn: &Connection) -> Result<Option<String>, IdentityError> {
    Ok(conn
        .query_row(
            "SELECT value FROM box_meta WHERE key = 'storage_id'",
            [],
            |r| r.get(0),
        )
        .optional()?)
}

/// Before anything is created or opened: with `storage.id` configured, the identity file must
/// be there, or the disk is not mounted (and creating the index would write to the mount point).
pub fn precheck(dir: &Path, expected: Option<&str>) -> Result<(), IdentityError> {
    match (expected, read_file(dir)?) {
        (Some(e), None) => Err(IdentityError::NotMounted {
            dir: dir.display().to_string(),
            expected: e.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// Checks (or, for a new store, creates) the identity. Returns the storage id and whether it was
/// created just now.
pub fn ensure(
    dir: &Path,
    conn: &Connection,
    expected: Option<&str>,
) -> Result<(String, bool), IdentityError> {
    // One writer at a time: `callrec run` starts the recorder and the web service together, and
    // without the lock one could see the other's index row before its file (and call the file
    // missing). BEGIN IMMEDIATE takes SQLite's write lock; the other waits (busy_timeout).
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let out = ensure_locked(dir, conn, expected);
    let end = if out.is_ok() { "COMMIT" } else { "ROLLBACK" };
    conn.execute_batch(end)?;
    out
}

fn ensure_locked(
    dir: &Path,
    conn: &Connection,
    expected: Option<&str>,
) -> Result<(String, bool), IdentityError> {
    let d = || dir.display().to_string();
    let (file, index) = (read_file(dir)?, index_id(conn)?);
    let id = match (file, index) {
        (Some(f), Some(i)) if f != i => {
            return Err(IdentityError::Mismatch {
                dir: d(),
                file: f,
                index: i,
            })
        }
        (Some(f), _) => f,
        (None, Some(i)) => return Err(IdentityError::FileMissing { dir: d(), index: i }),
        (None, None) => {
            if let Some(e) = expected {
                return Err(IdentityError::NotMounted {
                    dir: d(),
                    expected: e.to_owned(),
                });
            }
            // The file first, inside the transaction: if writing it fails, the row is rolled
            // back and nothing claims an identity the disk does not carry.
            let id = new_id()?;
            write_file(dir, &id)?;
            conn.execute(
                "INSERT INTO box_meta (key, value) VALUES ('storage_id', ?1)",
                [&id],
            )?;
            return Ok((id, true));
        }
    };
    // A STORAGE-ID file with a brand-new index: the index was recreated (restored from
    // nothing); adopt the disk's identity.
    conn.execute(
        "INSERT OR IGNORE INTO box_meta (key, value) VALUES ('storage_id', ?1)",
        [&id],
    )?;
    match expected {
        Some(e) if e != id => Err(IdentityError::Unexpected {
            dir: d(),
            found: id,
            expected: e.to_owned(),
        }),
        _ => Ok((id, false)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::{TempStore, TestResult};

    #[test]
    fn created_once_then_checked() -> TestResult {
        let TempStore { dir, conn } = TempStore::new()?;
        let (id, created) = ensure(dir.path(), &conn, None)?;
        assert!(created && id.len() == 32);
        assert_eq!(std::fs::read_to_string(dir.path().join(FILE))?.trim(), id);
        assert_eq!(ensure(dir.path(), &conn, None)?, (id.clone(), false));
        assert_eq!(ensure(dir.path(), &conn, Some(&id))?, (id.clone(), false));
        // The config names another disk.
        assert!(matches!(
            ensure(dir.path(), &conn, Some("0123456789abcdef0123456789abcdef")),
            Err(IdentityError::Unexpected { .. })
        ));
        // The file of another disk next to this index.
        std::fs::write(dir.path().join(FILE), "ffffffffffffffffffffffffffffffff\n")?;
        assert!(matches!(
            ensure(dir.path(), &conn, None),
            Err(IdentityError::Mismatch { .. })
        ));
        std::fs::remove_file(dir.path().join(FILE))?;
        let e = ensure(dir.path(), &conn, None).err().ok_or("must refuse")?;
        assert!(e.to_string().contains(&format!("echo {id} >")), "{e}");
        std::fs::write(dir.path().join(FILE), "not an id")?;
        assert!(matches!(
            ensure(dir.path(), &conn, None),
            Err(IdentityError::Garbled { .. })
        ));
        Ok(())
    }

    #[test]
    fn an_empty_mount_point_is_refused_when_the_id_is_configured() -> TestResult {
        let TempStore { dir, conn } = TempStore::new()?;
        let expected = Some("0123456789abcdef0123456789abcdef");
        let e = precheck(dir.path(), expected).err().ok_or("must refuse")?;
        assert!(matches!(e, IdentityError::NotMounted { .. }), "{e}");
        let e = ensure(dir.path(), &conn, expected)
            .err()
            .ok_or("must refuse")?;
        assert!(matches!(e, IdentityError::NotMounted { .. }), "{e}");
        assert!(!dir.path().join(FILE).exists(), "nothing written");
        Ok(())
    }

    #[test]
    fn a_new_index_adopts_the_disk_identity() -> TestResult {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join(FILE), "00112233445566778899aabbccddeeff\n")?;
        let TempStore { dir, conn } = TempStore::in_dir(dir)?;
        let (id, created) = ensure(dir.path(), &conn, None)?;
        assert_eq!(
            (id.as_str(), created),
            ("00112233445566778899aabbccddeeff", false)
        );
        assert_eq!(index_id(&conn)?.as_deref(), Some(id.as_str()));
        Ok(())
    }
}
