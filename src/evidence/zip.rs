//! A bundle folder as one `.zip` file for a browser download (the web's evidence export): every
//! file of `call-<id>/` stored uncompressed under that folder name (APPNOTE.TXT 4.4.5, method 0
//! "stored"; the recording is Opus, compressed already), so `unzip` gives back the bundle byte
//! for byte and `sha256sum -c` and `openssl` verify it as they verify the folder.
//!
//! The `zip` crate writes it to a file with bounded memory (each file is copied through a small
//! buffer; the crate seeks back to fill in each local header's CRC-32 and sizes). This module
//! must never read outside the folder it is given or follow a symbolic link in it.

use std::path::Path;
use zip::write::SimpleFileOptions;
use zip::CompressionMethod;

/// Writes every regular file directly in `dir` (sorted by name) into the new file `to`, each as
/// `<folder>/<name>`; returns the zip's size in bytes. Never overwrites `to`.
pub fn zip_folder(dir: &Path, folder: &str, to: &Path) -> std::io::Result<u64> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        // `DirEntry::file_type` does not follow symbolic links: a link is not a regular file.
        if e.file_type()?.is_file() {
            names.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)?;
    let mut zip = zip::ZipWriter::new(file);
    // No ZIP64: a bundle holds one call (an hour of Opus at 32 kbit/s is 15 MB); the crate
    // refuses a file of 4 GiB or more without it.
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .unix_permissions(0o644);
    for name in names {
        zip.start_file(format!("{folder}/{name}"), options)
            .map_err(std::io::Error::other)?;
        std::io::copy(&mut std::fs::File::open(dir.join(&name))?, &mut zip)?;
    }
    let file = zip.finish().map_err(std::io::Error::other)?;
    file.sync_all()?;
    Ok(file.metadata()?.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Every regular file in name order under the folder name, stored, byte for byte; nothing
    /// else; an existing zip is never overwritten.
    #[test]
    fn a_folder_zips_stored_in_name_order() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let src = dir.path().join("b");
        std::fs::create_dir(&src)?;
        std::fs::write(src.join("z.txt"), b"last")?;
        std::fs::write(src.join("a.txt"), b"first file")?;
        std::fs::create_dir(src.join("sub"))?; // not a regular file: left out
        std::os::unix::fs::symlink("/etc/passwd", src.join("link"))?; // never followed
        let to = dir.path().join("b.zip");
        let n = zip_folder(&src, "call-7", &to)?;
        assert_eq!(std::fs::metadata(&to)?.len(), n);
        let mut z = zip::ZipArchive::new(std::fs::File::open(&to)?)?;
        let names: Vec<String> = z.file_names().map(str::to_owned).collect();
        assert_eq!(names, ["call-7/a.txt", "call-7/z.txt"]);
        for (i, want) in [&b"first file"[..], b"last"].into_iter().enumerate() {
            let mut f = z.by_index(i)?;
            assert_eq!(f.compression(), CompressionMethod::Stored);
            let mut got = Vec::new();
            f.read_to_end(&mut got)?;
            assert_eq!(got, want);
        }
        assert!(zip_folder(&src, "call-7", &to).is_err(), "never overwrites");
        Ok(())
    }
}
