//! Pseudonyms for personal data in append-only records: the audit log never holds a customer's
//! number, a CTI call id or free text a person typed (notes, comments, dispute reasons, search
//! terms) in the clear, because erasure (GDPR Art. 17) cannot rewrite it. It holds the keyed hash
//! HMAC-SHA256 (RFC 2104) of the value instead: `hmac-sha256:<64 hex digits>`.
//!
//! - A number is hashed over its digits only, so every notation of the same digits
//!   (`+44 20 7946 0001`, `+442079460001`, `44-20-7946-0001`) has the same pseudonym (the same
//!   rule erasure matches numbers by), and "who searched for this
//!   number?" stays answerable after erasure: `callrec audit list --number N` recomputes it, and
//!   so can an auditor with the key and OpenSSL alone:
//!   `printf %s 442079460001 | openssl dgst -sha256 -mac HMAC -macopt hexkey:$(cat keys/pseudonym.key)`.
//! - Text is hashed over its exact UTF-8 bytes: the log still proves what was written, to whoever
//!   holds the text, but does not disclose it.
//!
//! The key is 32 random bytes, hex, in `<storage.dir>/keys/pseudonym.key` (mode 0600, beside the
//! box key), made when the index is first opened read-write. It is not in the index: a copy of
//! `callrec.db` alone (a backup, a hub) cannot test guesses against the pseudonyms. Whoever holds
//! the key can (a phone number has few enough digits to try them all), so the key is as secret
//! as the box key.
//!
//! This module never writes a value it pseudonymises, and never replaces an existing key: a new
//! key would make every earlier pseudonym unanswerable.

use super::error::StoreError;
use hmac::{KeyInit, Mac};
use std::path::{Path, PathBuf};

/// Prefix of every pseudonym, so a reader of the audit log knows what the value is.
pub const PREFIX: &str = "hmac-sha256:";

/// Detail keys (at any depth of an audit row's JSON) whose values are customer numbers.
pub const NUMBER_KEYS: &[&str] = &["remote_number", "number", "number_from", "number_to"];

/// Detail keys whose values are text a person typed or a CTI sent, which may name the customer.
pub const TEXT_KEYS: &[&str] = &[
    "external_id",
    "note",
    "text",
    "comment",
    "reason",
    "q",
    "transcript",
    "source",
];

/// The pseudonym key of one store.
pub struct Key([u8; 32]);

/// `<storage_dir>/keys/pseudonym.key`.
pub fn key_path(storage_dir: &Path) -> PathBuf {
    storage_dir.join("keys").join("pseudonym.key")
}

fn key_error(path: &Path, problem: String) -> StoreError {
    StoreError::Key {
        path: path.display().to_string(),
        problem,
    }
}

impl Key {
    /// Loads the store's key.
    pub fn load(storage_dir: &Path) -> Result<Key, StoreError> {
        let path = key_path(storage_dir);
        let text = std::fs::read_to_string(&path).map_err(|e| key_error(&path, e.to_string()))?;
        let bytes = hex::decode(text.trim()).map_err(|e| key_error(&path, e.to_string()))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| key_error(&path, "not 32 bytes of hex".into()))?;
        Ok(Key(key))
    }

    /// Loads the store's key, making it first if there is none. Two processes starting at once
    /// agree on one key: it appears by hard link, which fails if the name exists.
    pub fn ensure(storage_dir: &Path) -> Result<Key, StoreError> {
        let path = key_path(storage_dir);
        if path.exists() {
            return Key::load(storage_dir);
        }
        let dir = storage_dir.join("keys");
        crate::durable::ensure_private_dir(storage_dir, &dir)
            .map_err(|e| key_error(&dir, e.to_string()))?;
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| key_error(&path, e.to_string()))?;
        let text = format!("{}\n", hex::encode(key));
        crate::durable::write_new_file(&dir, &path, text.as_bytes(), 0o600, false)
            .map_err(|e| key_error(&path, e.to_string()))?;
        Key::load(storage_dir)
    }

    /// A key for an index with no storage dir (an in-memory database in tests).
    pub fn ephemeral() -> Key {
        let mut key = [0u8; 32];
        // No randomness is not worth failing a test database for: the pseudonyms of an
        // in-memory index die with it.
        let _ = getrandom::fill(&mut key);
        Key(key)
    }

    fn mac(&self, data: &[u8]) -> String {
        // HMAC accepts keys of any length (RFC 2104 §2), so this cannot fail.
        let mut m = match hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes any key length"),
        };
        m.update(data);
        format!("{PREFIX}{}", hex::encode(m.finalize().into_bytes()))
    }

    /// The pseudonym of a number: over its digits only.
    pub fn number(&self, number: &str) -> String {
        let digits: String = number.chars().filter(char::is_ascii_digit).collect();
        self.mac(digits.as_bytes())
    }

    /// The pseudonym of text: over its exact bytes.
    pub fn text(&self, text: &str) -> String {
        self.mac(text.as_bytes())
    }

    /// Replaces, at any depth of `detail`, every string under a [`NUMBER_KEYS`] or
    /// [`TEXT_KEYS`] key (or every string in an array under one) by its pseudonym. Values that
    /// already are pseudonyms and empty strings are kept.
    pub fn redact(&self, detail: &mut serde_json::Value) {
        match detail {
            serde_json::Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    if NUMBER_KEYS.contains(&k.as_str()) {
                        self.replace_strings(v, &|s| self.number(s));
                    } else if TEXT_KEYS.contains(&k.as_str()) {
                        self.replace_strings(v, &|s| self.text(s));
                    } else {
                        self.redact(v);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.redact(v)),
            _ => {}
        }
    }

    fn replace_strings(&self, v: &mut serde_json::Value, f: &dyn Fn(&str) -> String) {
        match v {
            serde_json::Value::String(s) if !s.is_empty() && !s.starts_with(PREFIX) => {
                *s = f(s);
            }
            serde_json::Value::Array(items) => {
                items.iter_mut().for_each(|x| self.replace_strings(x, f))
            }
            serde_json::Value::Object(_) => self.redact(v),
            _ => {}
        }
    }
}

/// The key of the store `conn` is open on: `keys/pseudonym.key` beside its database file, or a
/// fresh key for an in-memory database.
pub fn key_for(conn: &rusqlite::Connection) -> Result<Key, StoreError> {
    match conn.path().filter(|p| !p.is_empty()) {
        Some(db) => {
            let dir = Path::new(db).parent().unwrap_or(Path::new("."));
            Key::load(dir)
        }
        None => Ok(Key::ephemeral()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn numbers_in_any_notation_share_a_pseudonym_that_openssl_recomputes() -> TestResult {
        let dir = tempfile::tempdir()?;
        let key = Key::ensure(dir.path())?;
        let p = key.number("+44 20 7946 0001");
        assert_eq!(p, key.number("+44 (20) 7946-0001"));
        assert_ne!(p, key.number("+44 20 7946 0002"));
        assert!(p.starts_with(PREFIX) && p.len() == PREFIX.len() + 64, "{p}");
        // The same value from a tool nobody here wrote.
        let hexkey = std::fs::read_to_string(key_path(dir.path()))?;
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "printf %s 442079460001 | openssl dgst -sha256 -mac HMAC -macopt hexkey:{}",
                hexkey.trim()
            ))
            .output()?;
        let text = String::from_utf8(out.stdout)?;
        assert!(
            text.trim_end().ends_with(&p[PREFIX.len()..]),
            "{text} vs {p}"
        );
        // Made once, then loaded: the key never changes.
        let again = Key::ensure(dir.path())?;
        assert_eq!(again.number("442079460001"), p);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(key_path(dir.path()))?
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        Ok(())
    }

    #[test]
    fn redact_replaces_personal_values_at_any_depth_and_keeps_the_rest() -> TestResult {
        let key = Key::ephemeral();
        let mut v = serde_json::json!({
            "seat": "s1",
            "request": {"cmd": "start", "meta": {"remote_number": "+4420", "external_id": "cti-9", "agent": "alice"}},
            "filters": {"number": "+4420", "q": "refund", "agent": "bob"},
            "tags": ["vip"],
            "note": "",
            "text": ["a", "b"],
        });
        key.redact(&mut v);
        let meta = &v["request"]["meta"];
        assert_eq!(meta["remote_number"], key.number("4420"));
        assert_eq!(meta["external_id"], key.text("cti-9"));
        assert_eq!(meta["agent"], "alice");
        assert_eq!(v["filters"]["number"], key.number("+4420"));
        assert_eq!(v["filters"]["q"], key.text("refund"));
        assert_eq!(v["filters"]["agent"], "bob");
        assert_eq!(v["seat"], "s1");
        assert_eq!(v["tags"][0], "vip");
        assert_eq!(v["note"], "");
        assert_eq!(v["text"][1], key.text("b"));
        // Redacting twice changes nothing.
        let once = v.clone();
        key.redact(&mut v);
        assert_eq!(v, once);
        Ok(())
    }
}
