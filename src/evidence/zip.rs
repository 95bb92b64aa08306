//! A bundle folder as one `.zip` file for a browser download (the web's evidence export): every
//! file of `call-<id>/` stored uncompressed under that folder name (APPNOTE.TXT 6.3.10, method 0
//! "stored"; the recording is Opus, compressed already), so `unzip` gives back the bundle byte
//! for byte and `sha256sum -c` and `openssl` verify it as they verify the folder.
//!
//! The zip is written to a file with bounded memory (one buffer per file, read twice: once for
//! its CRC-32, once to copy). No ZIP64: a file or archive of 4 GiB or more is refused (a bundle
//! holds one call; an hour of Opus at 32 kbit/s is 15 MB). This module must never read outside
//! the folder it is given or follow a symbolic link in it.

use std::io::{Read, Write};
use std::path::Path;

const LOCAL_HEADER: u32 = 0x0403_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const END_OF_CENTRAL_DIR: u32 = 0x0605_4b50;
/// Version needed to extract a stored file: 1.0.
const VERSION_NEEDED: u16 = 10;
/// Made by: Unix (3) << 8, spec version 2.0, so `unzip` applies the permission bits below.
const VERSION_MADE_BY: u16 = (3 << 8) | 20;
/// General purpose bit 11: names are UTF-8.
const FLAG_UTF8: u16 = 1 << 11;
/// `-rw-r--r--` regular file, in the high half of the external attributes (Unix).
const UNIX_FILE_MODE: u32 = 0o100_644 << 16;
const BUF_BYTES: usize = 64 * 1024;

/// CRC-32 as ZIP uses it (ISO 3309, reflected polynomial 0xEDB88320, initial and final XOR
/// 0xFFFFFFFF).
struct Crc32 {
    table: [u32; 256],
    value: u32,
}

impl Crc32 {
    fn new() -> Crc32 {
        let mut table = [0u32; 256];
        for (n, slot) in table.iter_mut().enumerate() {
            let mut c = n as u32;
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *slot = c;
        }
        Crc32 {
            table,
            value: 0xFFFF_FFFF,
        }
    }

    fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.value =
                self.table[((self.value ^ u32::from(b)) & 0xFF) as usize] ^ (self.value >> 8);
        }
    }

    fn finish(&self) -> u32 {
        self.value ^ 0xFFFF_FFFF
    }
}

/// MS-DOS date and time (local fields of a UTC time: ZIP has no zone), for every entry.
fn dos_time_date(utc: chrono::DateTime<chrono::Utc>) -> (u16, u16) {
    use chrono::{Datelike, Timelike};
    let year = utc.year().clamp(1980, 2107) as u32;
    let time = (utc.hour() << 11) | (utc.minute() << 5) | (utc.second() / 2);
    let date = ((year - 1980) << 9) | (utc.month() << 5) | utc.day();
    (time as u16, date as u16)
}

struct Entry {
    name: String,
    crc: u32,
    size: u32,
    offset: u32,
}

fn too_large(what: &str) -> std::io::Error {
    std::io::Error::other(format!(
        "{what} is 4 GiB or more, beyond a zip without ZIP64: export to a folder instead (`callrec export`)"
    ))
}

/// Writes every regular file directly in `dir` (sorted by name) into the new file `to`, each as
/// `<folder>/<name>`; returns the zip's size in bytes.
pub fn zip_folder(dir: &Path, folder: &str, to: &Path) -> std::io::Result<u64> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_file() {
            names.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    let (time, date) = dos_time_date(chrono::Utc::now());
    let mut out = std::io::BufWriter::new(
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(to)?,
    );
    let mut buf = vec![0u8; BUF_BYTES];
    let mut offset: u64 = 0;
    let mut entries = Vec::with_capacity(names.len());
    for name in names {
        let path = dir.join(&name);
        // First pass: CRC-32 and size (the local header precedes the data).
        let mut crc = Crc32::new();
        let mut size: u64 = 0;
        let mut f = std::fs::File::open(&path)?;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            crc.update(&buf[..n]);
            size += n as u64;
        }
        let size32 = u32::try_from(size).map_err(|_| too_large(&name))?;
        let offset32 = u32::try_from(offset).map_err(|_| too_large("the zip"))?;
        let full = format!("{folder}/{name}");
        let name_len = u16::try_from(full.len()).map_err(|_| too_large(&name))?;
        let crc = crc.finish();
        let mut h = Vec::with_capacity(30 + full.len());
        h.extend_from_slice(&LOCAL_HEADER.to_le_bytes());
        h.extend_from_slice(&VERSION_NEEDED.to_le_bytes());
        h.extend_from_slice(&FLAG_UTF8.to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes()); // method: stored
        h.extend_from_slice(&time.to_le_bytes());
        h.extend_from_slice(&date.to_le_bytes());
        h.extend_from_slice(&crc.to_le_bytes());
        h.extend_from_slice(&size32.to_le_bytes()); // compressed size
        h.extend_from_slice(&size32.to_le_bytes()); // uncompressed size
        h.extend_from_slice(&name_len.to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes()); // extra field length
        h.extend_from_slice(full.as_bytes());
        out.write_all(&h)?;
        // Second pass: the bytes. A file that changed size meanwhile makes a wrong zip: refuse.
        let mut f = std::fs::File::open(&path)?;
        let copied = std::io::copy(&mut (&mut f).take(size + 1), &mut out)?;
        if copied != size {
            return Err(std::io::Error::other(format!(
                "{} changed while it was zipped",
                path.display()
            )));
        }
        offset += h.len() as u64 + size;
        entries.push(Entry {
            name: full,
            crc,
            size: size32,
            offset: offset32,
        });
    }
    let cd_start = u32::try_from(offset).map_err(|_| too_large("the zip"))?;
    let mut cd = Vec::new();
    for e in &entries {
        cd.extend_from_slice(&CENTRAL_HEADER.to_le_bytes());
        cd.extend_from_slice(&VERSION_MADE_BY.to_le_bytes());
        cd.extend_from_slice(&VERSION_NEEDED.to_le_bytes());
        cd.extend_from_slice(&FLAG_UTF8.to_le_bytes());
        cd.extend_from_slice(&0u16.to_le_bytes()); // method: stored
        cd.extend_from_slice(&time.to_le_bytes());
        cd.extend_from_slice(&date.to_le_bytes());
        cd.extend_from_slice(&e.crc.to_le_bytes());
        cd.extend_from_slice(&e.size.to_le_bytes());
        cd.extend_from_slice(&e.size.to_le_bytes());
        cd.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
        cd.extend_from_slice(&0u16.to_le_bytes()); // extra field length
        cd.extend_from_slice(&0u16.to_le_bytes()); // comment length
        cd.extend_from_slice(&0u16.to_le_bytes()); // disk number start
        cd.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        cd.extend_from_slice(&UNIX_FILE_MODE.to_le_bytes());
        cd.extend_from_slice(&e.offset.to_le_bytes());
        cd.extend_from_slice(e.name.as_bytes());
    }
    let count = u16::try_from(entries.len()).map_err(|_| too_large("the file count"))?;
    let cd_size = u32::try_from(cd.len()).map_err(|_| too_large("the zip"))?;
    cd.extend_from_slice(&END_OF_CENTRAL_DIR.to_le_bytes());
    cd.extend_from_slice(&0u16.to_le_bytes()); // this disk
    cd.extend_from_slice(&0u16.to_le_bytes()); // disk of the central directory
    cd.extend_from_slice(&count.to_le_bytes());
    cd.extend_from_slice(&count.to_le_bytes());
    cd.extend_from_slice(&cd_size.to_le_bytes());
    cd.extend_from_slice(&cd_start.to_le_bytes());
    cd.extend_from_slice(&0u16.to_le_bytes()); // comment length
    out.write_all(&cd)?;
    let f = out.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()?;
    Ok(offset + cd.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_the_zip_one() {
        let mut c = Crc32::new();
        c.update(b"123456789");
        assert_eq!(c.finish(), 0xCBF4_3926); // the standard check value
        assert_eq!(Crc32::new().finish(), 0);
    }

    /// The layout: local headers with their data in name order, then the central directory and
    /// its end record pointing back at them.
    #[test]
    fn a_folder_zips_stored_in_name_order() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let src = dir.path().join("b");
        std::fs::create_dir(&src)?;
        std::fs::write(src.join("z.txt"), b"last")?;
        std::fs::write(src.join("a.txt"), b"first file")?;
        std::fs::create_dir(src.join("sub"))?; // not a regular file: left out
        let to = dir.path().join("b.zip");
        let n = zip_folder(&src, "call-7", &to)?;
        let z = std::fs::read(&to)?;
        assert_eq!(z.len() as u64, n);
        assert_eq!(&z[..4], &LOCAL_HEADER.to_le_bytes());
        let first = 30 + "call-7/a.txt".len();
        assert_eq!(&z[30..first], b"call-7/a.txt");
        assert_eq!(&z[first..first + 10], b"first file");
        let eocd = z.len() - 22;
        assert_eq!(&z[eocd..eocd + 4], &END_OF_CENTRAL_DIR.to_le_bytes());
        assert_eq!(u16::from_le_bytes([z[eocd + 10], z[eocd + 11]]), 2);
        let cd_at = u32::from_le_bytes([z[eocd + 16], z[eocd + 17], z[eocd + 18], z[eocd + 19]]);
        assert_eq!(
            &z[cd_at as usize..cd_at as usize + 4],
            &CENTRAL_HEADER.to_le_bytes()
        );
        assert!(zip_folder(&src, "call-7", &to).is_err(), "never overwrites");
        Ok(())
    }
}
