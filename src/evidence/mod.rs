//! Evidence: what lets a third party trust a recording without trusting callrec.
//!
//! - [`ledger`]: an append-only, hash-chained record of every finalized call (and, later, every
//!   deletion as a tombstone), written in the same transaction that finalizes the call.
//! - [`key`]: the box's Ed25519 key (RFC 8032), kept as PEM files (RFC 8410) that OpenSSL reads.
//! - [`bundle`]: `callrec export`: one folder per call that `sha256sum` and `openssl` can verify.
//! - [`verify`]: `callrec verify`: a bundle, or the whole store (files vs index vs ledger).
//!
//! Nothing in this module ever changes a recording, an index row or a ledger entry after the
//! fact: it only appends (ledger, audit) and reads.

pub mod bundle;
pub mod erasure;
pub mod key;
pub mod ledger;
pub mod verify;

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
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// True for a 64-character lowercase hex string (how every hash here is written).
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
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
}
