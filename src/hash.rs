//! Hashing, in one place: SHA-256 (FIPS 180-4) of bytes and of files, and the canonical JSON text
//! whose SHA-256 identifies a scorecard's or a script's content.
//!
//! Every hash callrec writes (files, ledger entries, sessions, content versions) is lowercase
//! hex. Pure: no store, no network; a file is read in chunks and never held whole in memory.

use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// Read size for hashing: large enough that a one-hour call (≈ 15 MB) takes a few dozen reads.
const HASH_CHUNK_BYTES: usize = 256 * 1024;

/// SHA-256 (lowercase hex) and length of a file, read in chunks so that hashing a long call never
/// holds the whole file in memory.
pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; HASH_CHUNK_BYTES];
    let mut bytes = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok((hex::encode(h.finalize()), bytes))
}

/// SHA-256 of bytes in memory, lowercase hex.
pub fn sha256_hex(data: impl AsRef<[u8]>) -> String {
    hex::encode(Sha256::digest(data.as_ref()))
}

/// True for a 64-character lowercase hex string (how every hash here is written).
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// SHA-256 (hex) of a value's canonical JSON ([`canonical_json`]): two values with the same
/// content hash are the same document, whatever order their keys were written in.
pub fn content_hash(value: &serde_json::Value) -> String {
    sha256_hex(canonical_json(value))
}

/// [`content_hash`] of a document (a scorecard, a script) without the top-level keys named in
/// `without` (e.g. its version number, which an edit does not change by itself).
pub fn content_hash_of(
    doc: &(impl serde::Serialize + std::fmt::Debug),
    without: &[&str],
) -> String {
    let mut value = match serde_json::to_value(doc) {
        Ok(v) => v,
        // Serializing a struct with string keys cannot fail; hash the debug form if it does.
        Err(_) => serde_json::Value::String(format!("{doc:?}")),
    };
    if let serde_json::Value::Object(map) = &mut value {
        for key in without {
            map.remove(*key);
        }
    }
    content_hash(&value)
}

/// JSON with object keys sorted and no whitespace, whatever map type serde_json was built with,
/// so a content hash cannot change when another crate turns on `preserve_order`.
pub fn canonical_json(value: &serde_json::Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(v: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match v {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(item) = map.get(k) {
                    write_canonical(item, out);
                }
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    type TestResult = Result<(), Box<dyn std::error::Error>>;
    use super::*;

    #[test]
    fn streams_a_file_through_sha256() -> TestResult {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("f");
        // Longer than one chunk, so the loop runs more than once.
        let data: Vec<u8> = (0..HASH_CHUNK_BYTES * 2 + 17).map(|i| i as u8).collect();
        std::fs::write(&p, &data)?;
        let (hex, bytes) = sha256_file(&p)?;
        assert_eq!(bytes, data.len() as u64);
        assert_eq!(hex, sha256_hex(&data));
        // Known answer: SHA-256 of the empty string (FIPS 180-4 test vector).
        std::fs::write(&p, b"")?;
        assert_eq!(
            sha256_file(&p)?.0,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(is_sha256_hex(&sha256_hex(b"x")));
        assert!(!is_sha256_hex("E3B0"));
        Ok(())
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() -> TestResult {
        let a: serde_json::Value = serde_json::from_str(r#"{"b":[{"z":1,"a":"x"}],"a":null}"#)?;
        let b: serde_json::Value = serde_json::from_str(r#"{"a":null, "b":[{"a":"x","z":1}]}"#)?;
        assert_eq!(canonical_json(&a), r#"{"a":null,"b":[{"a":"x","z":1}]}"#);
        assert_eq!(content_hash(&a), content_hash(&b));
        Ok(())
    }
}
