//! Shipping finished calls to an S3-compatible object store (`[archive]`, `callrec ship`): the
//! store client, the credentials file, object keys and the sidecar. The loop itself is
//! [`ship`]; the queue's SQL is `store::archive`.
//!
//! Every object is uploaded with SigV4 over the *real* payload hash (`x-amz-content-sha256`, not
//! `UNSIGNED-PAYLOAD`): the store recomputes it and refuses a body changed in transit (Ceph RGW
//! verifies it, and silently ignores `x-amz-checksum-sha256`). Each object carries its SHA-256 as
//! user metadata (`x-amz-meta-sha256`), which makes uploads idempotent without conditional puts.
//!
//! This module must never write, move or delete a recording or a call row, never mark a call
//! archived before the store confirmed every object, and never log the secret key.

pub mod lock;
pub mod orders;
pub mod s3x;
pub mod ship;
pub mod sidecar;
pub mod verify;

use crate::config::ArchiveConfig;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::{ClientOptions, RetryConfig};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// User metadata key of every object's SHA-256 (lowercase hex): `x-amz-meta-sha256`.
pub const META_SHA256: &str = "sha256";

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("archive credentials {path}: {source}. Create it (AWS shared-credentials format, profile [default]) or fix archive.credentials_file")]
    CredentialsRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("archive credentials {path} is readable by group or others (mode {mode:o}): run chmod 600 {path}")]
    CredentialsPermissions { path: PathBuf, mode: u32 },
    #[error("archive credentials {path}: {message}")]
    CredentialsFormat { path: PathBuf, message: String },
    #[error("archive store client: {0}")]
    Client(String),
    #[error(
        "no [archive] section in the config: nothing to ship to (see docs/admin.md, \"Archive (S3)\")"
    )]
    NotConfigured,
}

/// The access key pair from the credentials file. `Debug` never shows the secret.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    secret_access_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// The secret key, for request signing only (never logged).
    pub(crate) fn secret(&self) -> &str {
        &self.secret_access_key
    }

    /// Reads profile `default` of an AWS shared-credentials file; refuses one that group or
    /// others may read (like the box key: a secret readable by others is a leaked secret).
    pub fn load(path: &Path) -> Result<Credentials, ArchiveError> {
        let read = |source| ArchiveError::CredentialsRead {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read)?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(ArchiveError::CredentialsPermissions {
                path: path.to_owned(),
                mode,
            });
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        Self::parse(&text).map_err(|message| ArchiveError::CredentialsFormat {
            path: path.to_owned(),
            message,
        })
    }

    /// The `[default]` section's `aws_access_key_id` and `aws_secret_access_key` (INI: `#` and
    /// `;` comments, `key = value`, surrounding blanks ignored).
    pub fn parse(text: &str) -> Result<Credentials, String> {
        let (mut section, mut id, mut secret) = (String::new(), None, None);
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.trim().to_owned();
                continue;
            }
            if section != "default" {
                continue;
            }
            if let Some((k, v)) = line.split_once('=') {
                match k.trim() {
                    "aws_access_key_id" => id = Some(v.trim().to_owned()),
                    "aws_secret_access_key" => secret = Some(v.trim().to_owned()),
                    _ => {}
                }
            }
        }
        match (id, secret) {
            (Some(i), Some(s)) if !i.is_empty() && !s.is_empty() => Ok(Credentials {
                access_key_id: i,
                secret_access_key: s,
            }),
            _ => Err("profile [default] needs aws_access_key_id and aws_secret_access_key".into()),
        }
    }
}

/// The store client for `[archive]`: path-style as configured, payload signing on, a short
/// client-side retry (the queue's own backoff does the long waits, so a dead store never holds
/// the shipper for minutes inside one request).
pub fn client(cfg: &ArchiveConfig, creds: &Credentials) -> Result<AmazonS3, ArchiveError> {
    let options = ClientOptions::new()
        .with_allow_http(true)
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(120));
    let retry = RetryConfig {
        max_retries: 2,
        retry_timeout: Duration::from_secs(15),
        ..RetryConfig::default()
    };
    AmazonS3Builder::new()
        .with_endpoint(cfg.endpoint.trim_end_matches('/'))
        .with_region(&cfg.region)
        .with_bucket_name(&cfg.bucket)
        .with_access_key_id(&creds.access_key_id)
        .with_secret_access_key(&creds.secret_access_key)
        .with_virtual_hosted_style_request(!cfg.path_style)
        // Signed payload: x-amz-content-sha256 is the body's real SHA-256 (the default, stated
        // here because integrity in transit depends on it).
        .with_unsigned_payload(false)
        .with_client_options(options)
        .with_retry(retry)
        .build()
        .map_err(|e| ArchiveError::Client(e.to_string()))
}

/// `<prefix><box>/<yyyy>/<mm>/<dd>/<call id>` (add `.opus`, `.dat`, `.json`): stable and
/// readable, dated by the call's start (UTC). None when the start time is not `YYYY-MM-DD…`.
pub fn object_stem(
    prefix: &str,
    box_id: &str,
    started_at_utc: &str,
    call_id: i64,
) -> Option<String> {
    let date = started_at_utc.get(..10)?;
    let (y, m, d) = (date.get(..4)?, date.get(5..7)?, date.get(8..10)?);
    let digits = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
    (digits(y) && digits(m) && digits(d) && &date[4..5] == "-" && &date[7..8] == "-")
        .then(|| format!("{prefix}{box_id}/{y}/{m}/{d}/{call_id}"))
}

/// The audio object's key of a call.
pub fn audio_key(prefix: &str, box_id: &str, started_at_utc: &str, call_id: i64) -> Option<String> {
    object_stem(prefix, box_id, started_at_utc, call_id).map(|s| format!("{s}.opus"))
}

/// Makes a store error readable for an operator: the S3 error code when there is one, with
/// what it usually means, and the whole chain of causes.
pub fn describe_store_error(
    e: &(dyn std::error::Error + 'static),
    endpoint: &str,
    bucket: &str,
) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let t = s.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        source = s.source();
    }
    let code = text
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(c, _)| c.to_owned());
    let cause = match code.as_deref() {
        Some("InvalidAccessKeyId") => "wrong credentials: the store does not know this access key (check archive.credentials_file)".to_owned(),
        Some("SignatureDoesNotMatch") => "wrong credentials: the secret key does not match the access key (check archive.credentials_file)".to_owned(),
        Some("AccessDenied") => format!("access denied to bucket {bucket}: the key may not write there"),
        Some("NoSuchBucket") => format!("bucket {bucket} does not exist at {endpoint}"),
        Some("QuotaExceeded") => "the store's quota for this user or bucket is exceeded".to_owned(),
        Some("XAmzContentSHA256Mismatch") | Some("BadDigest") => "the store received different bytes than were sent (corrupted in transit); retried".to_owned(),
        Some(c) => format!("store error {c}"),
        None if text.contains("403") => format!(
            "access denied (403): wrong credentials, or a key that may not write to bucket {bucket} (check archive.credentials_file)"
        ),
        None if text.contains("connect") || text.contains("Connection refused") => format!("store unreachable at {endpoint}"),
        None if text.contains("timed out") || text.contains("timeout") => format!("store at {endpoint} timed out"),
        None => "store request failed".to_owned(),
    };
    // The whole text after the cause, cut: an XML body can be long.
    let detail: String = text.chars().take(300).collect();
    format!("{cause} ({detail})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_dated_by_the_start_and_refuse_odd_times() {
        assert_eq!(
            audio_key("fleet/", "floor-1", "2026-12-05T23:59:59.999Z", 42).as_deref(),
            Some("fleet/floor-1/2026/12/05/42.opus")
        );
        assert_eq!(audio_key("", "b", "2026/12/05", 1), None);
        assert_eq!(audio_key("", "b", "26-1", 1), None);
    }

    #[test]
    fn credentials_come_from_the_default_profile_only() {
        let c = Credentials::parse(
            "[other]\naws_access_key_id = X\n\n# comment\n[default]\naws_access_key_id = AK\naws_secret_access_key= SK \n",
        );
        let c = c.map_err(|e| e.to_string());
        assert_eq!(c.as_ref().map(|c| c.access_key_id.as_str()), Ok("AK"));
        assert_eq!(c.as_ref().map(|c| c.secret_access_key.as_str()), Ok("SK"));
        assert!(
            !format!("{:?}", c).contains("SK"),
            "Debug must not show the secret"
        );
        assert!(
            Credentials::parse("[other]\naws_access_key_id = X\naws_secret_access_key = Y\n")
                .is_err()
        );
    }

    #[test]
    fn credentials_readable_by_others_are_refused() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("credentials");
        std::fs::write(
            &p,
            "[default]\naws_access_key_id = a\naws_secret_access_key = b\n",
        )?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644))?;
        let e = Credentials::load(&p).map(|_| ()).map_err(|e| e.to_string());
        assert!(e.as_ref().is_err_and(|m| m.contains("chmod 600")), "{e:?}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))?;
        assert_eq!(Credentials::load(&p)?.access_key_id, "a");
        Ok(())
    }
}
