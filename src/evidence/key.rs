//! The box key: one Ed25519 key pair (RFC 8032) per box, which signs evidence manifests.
//!
//! Files, under `<storage.dir>/keys/` (directory mode 0700):
//! - `box.key`: the private key as PKCS#8 v1 PEM (`-----BEGIN PRIVATE KEY-----`, RFC 5958 with the
//!   Ed25519 algorithm identifier and `CurvePrivateKey` encoding of RFC 8410 §7), mode 0600;
//! - `box.pub`: the public key as SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`,
//!   RFC 8410 §4), which `openssl pkey -pubin` and `openssl pkeyutl -verify -pubin` read.
//!
//! The key is made on first use: when `callrec run`, `record` or `serve` starts, or by the first
//! `callrec export`. Its fingerprint is the SHA-256 of the DER public key (what
//! `openssl pkey -pubin -in box.pub -outform DER | sha256sum` prints).
//!
//! This module must never overwrite or replace an existing private key, never write it with
//! group or other permissions, never use a key file that has them, and never print or log the
//! private key.

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no box key at {0}: it is made when `callrec run`, `record` or `serve` first starts, or by the first `callrec export`")]
    Missing(PathBuf),
    #[error("{path} has mode {mode:04o}: group or others may read the box's private key. Run `chmod 600 {path}` (and consider the key exposed if anyone else could read it)", path = path.display())]
    Permissions { path: PathBuf, mode: u32 },
    #[error("{path}: {source}", path = path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not an Ed25519 private key in PKCS#8 PEM (RFC 8410): {message}. Restore it from a backup; never replace it with a new key while bundles signed by it are in use", path = path.display())]
    Malformed { path: PathBuf, message: String },
    #[error("{public} is not the public half of {private}: delete {public} and it is rewritten from the private key at the next start", public = public.display(), private = private.display())]
    Mismatch { public: PathBuf, private: PathBuf },
    #[error("not an Ed25519 public key in SubjectPublicKeyInfo PEM (RFC 8410 §4): {0}")]
    BadPublic(String),
    #[error("the operating system gave no random bytes for a new key: {0}")]
    Random(String),
    #[error("encoding the key: {0}")]
    Encode(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Where the key files live.
#[derive(Debug, Clone)]
pub struct KeyPaths {
    pub dir: PathBuf,
    pub private: PathBuf,
    pub public: PathBuf,
}

impl KeyPaths {
    pub fn new(storage_dir: &Path) -> KeyPaths {
        let dir = storage_dir.join("keys");
        KeyPaths {
            private: dir.join("box.key"),
            public: dir.join("box.pub"),
            dir,
        }
    }
}

/// The loaded key pair.
pub struct BoxKey {
    signing: SigningKey,
    public_pem: String,
    fingerprint: String,
    pub paths: KeyPaths,
}

impl std::fmt::Debug for BoxKey {
    // Never the private half.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoxKey")
            .field("fingerprint_sha256", &self.fingerprint)
            .field("paths", &self.paths)
            .finish()
    }
}

impl BoxKey {
    /// `box.pub`'s text.
    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }
    /// SHA-256 of the DER SubjectPublicKeyInfo, lowercase hex.
    pub fn fingerprint_sha256(&self) -> &str {
        &self.fingerprint
    }
    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }
    /// PureEdDSA signature (RFC 8032 §5.1.6) over `message`: the 64 raw bytes that
    /// `openssl pkeyutl -verify -rawin -sigfile` expects.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }
}

/// SPKI PEM of a public key (RFC 8410 §4).
pub fn public_pem(vk: &VerifyingKey) -> Result<String, KeyError> {
    vk.to_public_key_pem(LineEnding::LF)
        .map_err(|e| KeyError::Encode(e.to_string()))
}

/// SHA-256 of the DER SubjectPublicKeyInfo, lowercase hex.
pub fn fingerprint(vk: &VerifyingKey) -> Result<String, KeyError> {
    let der = vk
        .to_public_key_der()
        .map_err(|e| KeyError::Encode(e.to_string()))?;
    Ok(crate::hash::sha256_hex(der.as_bytes()))
}

/// Parses a `box.pub` (SPKI PEM).
pub fn parse_public_pem(pem: &str) -> Result<VerifyingKey, KeyError> {
    VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| KeyError::BadPublic(e.to_string()))
}

/// Checks a signature made by [`BoxKey::sign`]. Strict verification (RFC 8032 §5.1.7 plus the
/// rejection of small-order keys and non-canonical R), so a signature cannot be malleated.
pub fn verify_signature(vk: &VerifyingKey, message: &[u8], signature: &[u8]) -> bool {
    let Ok(bytes) = <[u8; 64]>::try_from(signature) else {
        return false;
    };
    vk.verify_strict(message, &Signature::from_bytes(&bytes))
        .is_ok()
}

/// Loads the box key; never creates it.
pub fn load(storage_dir: &Path) -> Result<BoxKey, KeyError> {
    let paths = KeyPaths::new(storage_dir);
    let meta = match std::fs::metadata(&paths.private) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(KeyError::Missing(paths.private))
        }
        Err(e) => return Err(io(&paths.private)(e)),
    };
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions {
            path: paths.private,
            mode,
        });
    }
    let pem = std::fs::read_to_string(&paths.private).map_err(io(&paths.private))?;
    let signing = SigningKey::from_pkcs8_pem(&pem).map_err(|e| KeyError::Malformed {
        path: paths.private.clone(),
        message: e.to_string(),
    })?;
    let vk = signing.verifying_key();
    let public_pem = public_pem(&vk)?;
    match std::fs::read_to_string(&paths.public) {
        Ok(text) => {
            if parse_public_pem(&text).ok() != Some(vk) {
                return Err(KeyError::Mismatch {
                    public: paths.public,
                    private: paths.private,
                });
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            crate::durable::write_new_file(
                &paths.dir,
                &paths.public,
                public_pem.as_bytes(),
                0o644,
                true,
            )
            .map_err(io(&paths.public))?;
        }
        Err(e) => return Err(io(&paths.public)(e)),
    }
    Ok(BoxKey {
        fingerprint: fingerprint(&vk)?,
        signing,
        public_pem,
        paths,
    })
}

/// Loads the box key, making it first if there is none. Returns the key and whether it was made
/// now. Safe against two processes doing this at once: the key file appears atomically (a hard
/// link of a finished temporary file, which fails if the name exists) and the loser loads the
/// winner's key.
pub fn ensure(storage_dir: &Path) -> Result<(BoxKey, bool), KeyError> {
    match load(storage_dir) {
        Err(KeyError::Missing(_)) => {}
        other => return other.map(|k| (k, false)),
    }
    let paths = KeyPaths::new(storage_dir);
    // The `keys` name lives in the storage dir: without its fsync a power cut soon after the
    // first start lost the directory with the key in it, and the next start made a new box key
    // (found by the power-cut campaign, RELIABILITY.md).
    crate::durable::ensure_private_dir(storage_dir, &paths.dir).map_err(io(&paths.dir))?;
    // RFC 8032 §5.1.5: the private key is 32 random bytes (hashed with SHA-512 into the scalar
    // and the nonce prefix by ed25519-dalek).
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| KeyError::Random(e.to_string()))?;
    let signing = SigningKey::from_bytes(&secret);
    secret.fill(0);
    // PKCS#8 v1 without the optional public key, exactly the form of RFC 8410 §10.3's example:
    // the most widely readable encoding (OpenSSL 1.1.1 and 3, Go, Java, ...).
    let pem = ed25519_dalek::pkcs8::KeypairBytes {
        secret_key: signing.to_bytes(),
        public_key: None,
    }
    .to_pkcs8_pem(LineEnding::LF)
    .map_err(|e| KeyError::Encode(e.to_string()))?;
    let created =
        crate::durable::write_new_file(&paths.dir, &paths.private, pem.as_bytes(), 0o600, false)
            .map_err(io(&paths.private))?;
    if !created {
        // Another process made the key between our load and now: use theirs.
        return load(storage_dir).map(|k| (k, false));
    }
    load(storage_dir).map(|k| (k, true))
}

#[cfg(test)]
mod tests {
    type TestResult = Result<(), Box<dyn std::error::Error>>;
    use super::*;

    #[test]
    fn made_once_private_and_reloaded() -> TestResult {
        let dir = tempfile::tempdir()?;
        let store = dir.path().join("store");
        let (k, created) = ensure(&store)?;
        assert!(created);
        let paths = KeyPaths::new(&store);
        let mode = |p: &Path| -> std::io::Result<u32> {
            Ok(std::fs::metadata(p)?.permissions().mode() & 0o777)
        };
        assert_eq!(mode(&paths.private)?, 0o600);
        assert_eq!(mode(&paths.dir)?, 0o700);
        let pem = std::fs::read_to_string(&paths.private)?;
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{pem}");
        let public = std::fs::read_to_string(&paths.public)?;
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert_eq!(public, k.public_pem());
        // RFC 8410 §10.1: an Ed25519 SPKI is 44 bytes of DER, the key's last 32.
        let der = k.verifying_key().to_public_key_der()?;
        assert_eq!(der.as_bytes().len(), 44);
        assert_eq!(&der.as_bytes()[12..], k.verifying_key().as_bytes());
        assert_eq!(
            k.fingerprint_sha256(),
            crate::hash::sha256_hex(der.as_bytes())
        );
        assert!(!format!("{k:?}").contains(&pem[28..60]));

        // A second start loads the same key and never replaces it.
        let (k2, created) = ensure(&store)?;
        assert!(!created);
        assert_eq!(k2.fingerprint_sha256(), k.fingerprint_sha256());
        assert_eq!(std::fs::read_to_string(&paths.private)?, pem);

        // Signatures verify with the public key alone; any change breaks them.
        let sig = k.sign(b"manifest");
        let vk = parse_public_pem(&public)?;
        assert!(verify_signature(&vk, b"manifest", &sig));
        assert!(!verify_signature(&vk, b"manifesT", &sig));
        assert!(!verify_signature(&vk, b"manifest", &sig[..63]));

        // box.pub is rewritten when missing, refused when it is another key's.
        std::fs::remove_file(&paths.public)?;
        load(&store)?;
        assert_eq!(std::fs::read_to_string(&paths.public)?, public);
        let other = ensure(&dir.path().join("other"))?.0;
        std::fs::write(&paths.public, other.public_pem())?;
        assert!(matches!(load(&store), Err(KeyError::Mismatch { .. })));
        std::fs::write(&paths.public, &public)?;
        Ok(())
    }

    #[test]
    fn refuses_a_key_others_can_read() -> TestResult {
        let dir = tempfile::tempdir()?;
        let (_k, _) = ensure(dir.path())?;
        let paths = KeyPaths::new(dir.path());
        std::fs::set_permissions(&paths.private, std::fs::Permissions::from_mode(0o640))?;
        let e = load(dir.path()).err().ok_or("a 0640 key was accepted")?;
        assert!(matches!(e, KeyError::Permissions { mode: 0o640, .. }));
        assert!(e.to_string().contains("chmod 600"), "{e}");
        // ensure() must not "fix" it by making a new key either.
        assert!(ensure(dir.path()).is_err());
        std::fs::set_permissions(&paths.private, std::fs::Permissions::from_mode(0o600))?;
        assert!(load(dir.path()).is_ok());
        assert!(matches!(
            load(&dir.path().join("nowhere")),
            Err(KeyError::Missing(_))
        ));
        Ok(())
    }
}
