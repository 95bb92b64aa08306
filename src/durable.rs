//! Files that must survive a power cut once written: secrets under `<storage.dir>/keys/` (the box
//! key, the pseudonym key) and the directory that names them.
//!
//! A new name is durable only after its directory is fsynced too (the power-cut campaign lost
//! `keys/` and the box key with it before this was done, RELIABILITY.md). This module never
//! replaces an existing file unless asked to (`replace`), and never leaves a half-written file
//! under the final name: the data goes to a temporary file first.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Makes `<storage_dir>/keys` (mode 0700 whatever the umask) if it is missing, and makes its
/// name durable. An existing directory is left as it is.
pub fn ensure_private_dir(storage_dir: &Path, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(storage_dir)?;
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        // The mode above is filtered by the umask, which can only remove bits; set it exactly.
        Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    std::fs::File::open(storage_dir)?.sync_all()
}

/// Writes `data` to a temporary file with `mode`, fsyncs it, then gives it its name: by rename
/// when `replace` (derived files), otherwise by hard link, which never replaces an existing file.
/// Returns false when `!replace` and the name already existed. Fsyncs the directory after.
/// Errors carry no path: the caller names the file.
pub fn write_new_file(
    dir: &Path,
    path: &Path,
    data: &[u8],
    mode: u32,
    replace: bool,
) -> std::io::Result<bool> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    let placed = if replace {
        std::fs::rename(&tmp, path)?;
        true
    } else {
        let r = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match r {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(e),
        }
    };
    std::fs::File::open(dir)?.sync_all()?;
    Ok(placed)
}
