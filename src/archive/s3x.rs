//! Raw S3 requests that `object_store` cannot make: S3 Object Lock (retention and legal holds),
//! object versions, deleting one version, and multipart uploads left behind. Each request is
//! signed with SigV4 by AWS's own `aws-sigv4` crate over the real payload hash
//! (`x-amz-content-sha256`), and sent with `ureq`, blocking (the shipper is one thread).
//!
//! The requests, as the AWS S3 API Reference names them: GetObjectLockConfiguration,
//! PutObjectRetention / GetObjectRetention, PutObjectLegalHold / GetObjectLegalHold,
//! HeadObject, ListObjectVersions, DeleteObject (with `versionId`), ListMultipartUploads and
//! AbortMultipartUpload; and ListObjectsV2, GetObject and PutObject of the small order, ack and
//! key objects (`archive::orders`). The two Object Lock PUTs carry `Content-MD5`, which the API reference
//! requires for them ("Content-MD5 ... is required for all requests with Object Lock
//! parameters").
//!
//! This module only speaks the protocol: it decides nothing (what to lock or delete is the
//! shipper's and `archive::lock`'s business) and never logs the secret key.

use super::{ArchiveError, Credentials};
use crate::config::ArchiveConfig;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
};
use aws_sigv4::sign::v4;
use base64::Engine as _;
use std::time::{Duration, SystemTime};

/// S3 Object Lock retention modes (`x-amz-object-lock-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LockMode {
    /// Deletable before the date only with `s3:BypassGovernanceRetention` and the
    /// `x-amz-bypass-governance-retention: true` header.
    Governance,
    /// Nobody, not even the root account, deletes the version or shortens the date before it.
    Compliance,
}

impl LockMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }
    pub fn parse(s: &str) -> Option<LockMode> {
        match s.trim() {
            "GOVERNANCE" => Some(LockMode::Governance),
            "COMPLIANCE" => Some(LockMode::Compliance),
            _ => None,
        }
    }
}

/// An object version's retention as GetObjectRetention returns it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Retention {
    pub mode: LockMode,
    /// ISO 8601, as the store wrote it.
    pub retain_until: String,
}

/// One entry of ListObjectVersions (versions and delete markers alike).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Version {
    pub key: String,
    pub version_id: String,
    pub is_latest: bool,
    pub delete_marker: bool,
    pub size: u64,
}

/// One entry of ListMultipartUploads.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Upload {
    pub key: String,
    pub upload_id: String,
    /// ISO 8601, the store's clock.
    pub initiated: String,
}

/// Why a request failed: the HTTP status and S3's error code and message when the store sent
/// them, or the transport error.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("{method} {what}: HTTP {status} {code}: {message}")]
    Status {
        method: &'static str,
        what: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{method} {what}: {detail}")]
    Transport {
        method: &'static str,
        what: String,
        detail: String,
    },
    #[error("signing a request: {0}")]
    Sign(String),
}

impl S3Error {
    /// The S3 error code (`AccessDenied`, `NoSuchKey`, …), empty for transport errors.
    pub fn code(&self) -> &str {
        match self {
            S3Error::Status { code, .. } => code,
            _ => "",
        }
    }
    pub fn status(&self) -> Option<u16> {
        match self {
            S3Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A response: status, headers (lowercase names) and body.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A signed-request client for one bucket.
pub struct S3x {
    endpoint: String,
    region: String,
    bucket: String,
    path_style: bool,
    creds: Credentials,
    agent: ureq::Agent,
}

/// RFC 3986 unreserved characters stay; everything else is %XX (SigV4's URI encoding). `/` is
/// kept in paths only.
fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The text of every `<tag>…</tag>` directly in `xml`, in order (S3's replies are flat enough).
fn tags<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(&after[..j]);
        rest = &after[j + close.len()..];
    }
    out
}

fn tag<'a>(xml: &'a str, t: &str) -> Option<&'a str> {
    tags(xml, t).into_iter().next()
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// `Content-MD5`: base64 of the body's MD5 (RFC 1864).
pub fn content_md5(body: &[u8]) -> String {
    use md5::Digest;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body))
}

impl S3x {
    pub fn new(cfg: &ArchiveConfig, creds: &Credentials) -> S3x {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_global(Some(Duration::from_secs(60)))
            .build();
        S3x {
            endpoint: cfg.endpoint.trim_end_matches('/').to_owned(),
            region: cfg.region.clone(),
            bucket: cfg.bucket.clone(),
            path_style: cfg.path_style,
            creds: creds.clone(),
            agent: ureq::Agent::new_with_config(config),
        }
    }

    /// The URL of `key` (empty: the bucket) with an already encoded query.
    fn url(&self, key: &str, query: &str) -> String {
        let path = if self.path_style {
            format!("{}/{}/{}", self.endpoint, self.bucket, encode(key, true))
        } else {
            let (scheme, host) = self
                .endpoint
                .split_once("://")
                .unwrap_or(("https", self.endpoint.as_str()));
            format!("{scheme}://{}.{host}/{}", self.bucket, encode(key, true))
        };
        if query.is_empty() {
            path
        } else {
            format!("{path}?{query}")
        }
    }

    /// Sends one signed request; any status comes back (the caller decides what is an error).
    pub fn send(
        &self,
        method: &'static str,
        key: &str,
        query: &[(&str, &str)],
        extra_headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<Reply, S3Error> {
        // An empty versionId means "the latest version": leave the parameter out.
        let query: Vec<(&str, &str)> = query
            .iter()
            .copied()
            .filter(|(k, v)| !(*k == "versionId" && v.is_empty()))
            .collect();
        let q = query
            .iter()
            .map(|(k, v)| {
                if v.is_empty() {
                    format!("{}=", encode(k, false))
                } else {
                    format!("{}={}", encode(k, false), encode(v, false))
                }
            })
            .collect::<Vec<_>>()
            .join("&");
        let url = self.url(key, &q);
        let what = if key.is_empty() {
            format!("bucket {} ?{q}", self.bucket)
        } else {
            format!("{key} ?{q}")
        };
        let mut headers: Vec<(&str, String)> = extra_headers.to_vec();
        if !body.is_empty() {
            headers.push(("content-md5", content_md5(body)));
        }
        let identity = aws_credential_types::Credentials::new(
            &self.creds.access_key_id,
            self.creds.secret(),
            None,
            None,
            "callrec-archive",
        )
        .into();
        let mut settings = SigningSettings::default();
        // S3 wants x-amz-content-sha256 signed: the body's real hash, so the store refuses a
        // body changed in transit.
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| S3Error::Sign(e.to_string()))?
            .into();
        let signable = SignableRequest::new(
            method,
            url.as_str(),
            headers.iter().map(|(k, v)| (*k, v.as_str())),
            SignableBody::Bytes(body),
        )
        .map_err(|e| S3Error::Sign(e.to_string()))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| S3Error::Sign(e.to_string()))?
            .into_parts();
        let mut req = http::Request::builder().method(method).uri(url.as_str());
        for (k, v) in &headers {
            req = req.header(*k, v.as_str());
        }
        for (k, v) in instructions.headers() {
            req = req.header(k, v);
        }
        let transport = |detail: String| S3Error::Transport {
            method,
            what: what.clone(),
            detail,
        };
        let resp = if body.is_empty() {
            let r = req.body(()).map_err(|e| transport(e.to_string()))?;
            self.agent.run(r)
        } else {
            let r = req
                .body(body.to_vec())
                .map_err(|e| transport(e.to_string()))?;
            self.agent.run(r)
        }
        .map_err(|e| transport(e.to_string()))?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    v.to_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        let body = if method == "HEAD" {
            String::new()
        } else {
            resp.into_body()
                .with_config()
                .limit(16 * 1024 * 1024)
                .read_to_string()
                .map_err(|e| transport(e.to_string()))?
        };
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// `send`, with any status other than 2xx made an [`S3Error::Status`].
    fn ok(
        &self,
        method: &'static str,
        key: &str,
        query: &[(&str, &str)],
        extra_headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<Reply, S3Error> {
        let r = self.send(method, key, query, extra_headers, body)?;
        if (200..300).contains(&r.status) {
            return Ok(r);
        }
        // An empty versionId means "the latest version": leave the parameter out.
        let query: Vec<(&str, &str)> = query
            .iter()
            .copied()
            .filter(|(k, v)| !(*k == "versionId" && v.is_empty()))
            .collect();
        let q = query
            .iter()
            .map(|(k, v)| {
                if v.is_empty() {
                    k.to_string()
                } else {
                    format!("{k}={v}")
                }
            })
            .collect::<Vec<_>>()
            .join("&");
        Err(S3Error::Status {
            method,
            what: if key.is_empty() {
                format!("bucket {} ?{q}", self.bucket)
            } else {
                format!("{key} ?{q}")
            },
            status: r.status,
            code: tag(&r.body, "Code").unwrap_or("").to_owned(),
            message: tag(&r.body, "Message").map(unescape).unwrap_or_default(),
        })
    }

    /// GetObjectLockConfiguration: whether the bucket has Object Lock enabled (it can only be
    /// enabled when the bucket is created, or on a versioned bucket by its administrator).
    pub fn object_lock_enabled(&self) -> Result<bool, S3Error> {
        match self.ok("GET", "", &[("object-lock", "")], &[], &[]) {
            Ok(r) => Ok(tag(&r.body, "ObjectLockEnabled") == Some("Enabled")),
            // What S3 (and RGW) answer for a bucket without Object Lock.
            Err(e)
                if e.code() == "ObjectLockConfigurationNotFoundError"
                    || e.code() == "ObjectLockConfigurationNotFound" =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// PutObjectRetention on one version. `retain_until` is ISO 8601 UTC. Only
    /// GOVERNANCE retention may be shortened or removed, and only with `bypass_governance`.
    pub fn put_retention(
        &self,
        key: &str,
        version_id: &str,
        mode: LockMode,
        retain_until: &str,
        bypass_governance: bool,
    ) -> Result<(), S3Error> {
        let body = format!(
            "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>{}</Mode><RetainUntilDate>{retain_until}</RetainUntilDate></Retention>",
            mode.as_str()
        );
        let headers = if bypass_governance {
            vec![("x-amz-bypass-governance-retention", "true".to_owned())]
        } else {
            vec![]
        };
        self.ok(
            "PUT",
            key,
            &[("retention", ""), ("versionId", version_id)],
            &headers,
            body.as_bytes(),
        )?;
        Ok(())
    }

    /// GetObjectRetention: None when the version has no retention.
    pub fn get_retention(&self, key: &str, version_id: &str) -> Result<Option<Retention>, S3Error> {
        match self.ok(
            "GET",
            key,
            &[("retention", ""), ("versionId", version_id)],
            &[],
            &[],
        ) {
            Ok(r) => Ok(tag(&r.body, "Mode")
                .and_then(LockMode::parse)
                .map(|mode| Retention {
                    mode,
                    retain_until: tag(&r.body, "RetainUntilDate").unwrap_or("").to_owned(),
                })),
            Err(e)
                if e.code() == "NoSuchObjectLockConfiguration"
                    || e.code() == "ObjectLockConfigurationNotFoundError" =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// PutObjectLegalHold: ON or OFF on one version.
    pub fn put_legal_hold(&self, key: &str, version_id: &str, on: bool) -> Result<(), S3Error> {
        let body = format!(
            "<LegalHold xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Status>{}</Status></LegalHold>",
            if on { "ON" } else { "OFF" }
        );
        self.ok(
            "PUT",
            key,
            &[("legal-hold", ""), ("versionId", version_id)],
            &[],
            body.as_bytes(),
        )?;
        Ok(())
    }

    /// GetObjectLegalHold: whether the version's legal hold is ON (a version that never had one
    /// is OFF).
    pub fn legal_hold(&self, key: &str, version_id: &str) -> Result<bool, S3Error> {
        match self.ok(
            "GET",
            key,
            &[("legal-hold", ""), ("versionId", version_id)],
            &[],
            &[],
        ) {
            Ok(r) => Ok(tag(&r.body, "Status") == Some("ON")),
            // RGW answers 404 ObjectLockConfigurationNotFoundError for a version that never had
            // a legal hold; S3 NoSuchObjectLockConfiguration.
            Err(e)
                if e.code() == "NoSuchObjectLockConfiguration"
                    || e.code() == "ObjectLockConfigurationNotFoundError" =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// HeadObject of one version (or the latest): status and headers, e.g.
    /// `x-amz-object-lock-mode`, `x-amz-object-lock-retain-until-date`,
    /// `x-amz-object-lock-legal-hold`, `x-amz-version-id`.
    pub fn head(&self, key: &str, version_id: Option<&str>) -> Result<Reply, S3Error> {
        let q: Vec<(&str, &str)> = version_id.map(|v| ("versionId", v)).into_iter().collect();
        self.send("HEAD", key, &q, &[], &[])
    }

    /// ListObjectVersions under `prefix`: every version and delete marker, all pages.
    pub fn versions(&self, prefix: &str) -> Result<Vec<Version>, S3Error> {
        let mut out = Vec::new();
        let (mut key_marker, mut version_marker) = (String::new(), String::new());
        loop {
            let mut q = vec![("versions", ""), ("prefix", prefix)];
            if !key_marker.is_empty() {
                q.push(("key-marker", key_marker.as_str()));
                q.push(("version-id-marker", version_marker.as_str()));
            }
            let r = self.ok("GET", "", &q, &[], &[])?;
            for (block, marker) in tags(&r.body, "Version")
                .into_iter()
                .map(|b| (b, false))
                .chain(tags(&r.body, "DeleteMarker").into_iter().map(|b| (b, true)))
            {
                out.push(Version {
                    key: tag(block, "Key").map(unescape).unwrap_or_default(),
                    version_id: tag(block, "VersionId").unwrap_or("null").to_owned(),
                    is_latest: tag(block, "IsLatest") == Some("true"),
                    delete_marker: marker,
                    size: tag(block, "Size").and_then(|s| s.parse().ok()).unwrap_or(0),
                });
            }
            if tag(&r.body, "IsTruncated") != Some("true") {
                break;
            }
            key_marker = tag(&r.body, "NextKeyMarker")
                .map(unescape)
                .unwrap_or_default();
            version_marker = tag(&r.body, "NextVersionIdMarker").unwrap_or("").to_owned();
            if key_marker.is_empty() {
                break;
            }
        }
        Ok(out)
    }

    /// DeleteObject of one version: removes it for good (no delete marker). With
    /// `bypass_governance`, a GOVERNANCE-retained version goes too; COMPLIANCE ones and any
    /// under a legal hold are refused by the store (AccessDenied).
    pub fn delete_version(
        &self,
        key: &str,
        version_id: &str,
        bypass_governance: bool,
    ) -> Result<(), S3Error> {
        let headers = if bypass_governance {
            vec![("x-amz-bypass-governance-retention", "true".to_owned())]
        } else {
            vec![]
        };
        self.ok("DELETE", key, &[("versionId", version_id)], &headers, &[])?;
        Ok(())
    }

    /// ListObjectsV2 under `prefix`: (key, ETag) of every current object, all pages.
    pub fn list(&self, prefix: &str) -> Result<Vec<(String, String)>, S3Error> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let mut q = vec![("list-type", "2"), ("prefix", prefix)];
            if !token.is_empty() {
                q.push(("continuation-token", token.as_str()));
            }
            let r = self.ok("GET", "", &q, &[], &[])?;
            for block in tags(&r.body, "Contents") {
                out.push((
                    tag(block, "Key").map(unescape).unwrap_or_default(),
                    tag(block, "ETag").map(unescape).unwrap_or_default(),
                ));
            }
            if tag(&r.body, "IsTruncated") != Some("true") {
                break;
            }
            token = tag(&r.body, "NextContinuationToken")
                .map(unescape)
                .unwrap_or_default();
            if token.is_empty() {
                break;
            }
        }
        Ok(out)
    }

    /// GetObject of the latest version, as text (orders, acks and keys are small JSON/PEM).
    pub fn get_text(&self, key: &str) -> Result<String, S3Error> {
        Ok(self.ok("GET", key, &[], &[], &[])?.body)
    }

    /// PutObject of a small body (Content-MD5 and the signed payload hash let the store refuse
    /// a body changed in transit).
    pub fn put(&self, key: &str, body: &[u8], content_type: &str) -> Result<(), S3Error> {
        self.ok(
            "PUT",
            key,
            &[],
            &[("content-type", content_type.to_owned())],
            body,
        )?;
        Ok(())
    }

    /// ListMultipartUploads under `prefix`, all pages.
    pub fn multipart_uploads(&self, prefix: &str) -> Result<Vec<Upload>, S3Error> {
        let mut out = Vec::new();
        let (mut key_marker, mut id_marker) = (String::new(), String::new());
        loop {
            let mut q = vec![("uploads", ""), ("prefix", prefix)];
            if !key_marker.is_empty() {
                q.push(("key-marker", key_marker.as_str()));
                q.push(("upload-id-marker", id_marker.as_str()));
            }
            let r = self.ok("GET", "", &q, &[], &[])?;
            for block in tags(&r.body, "Upload") {
                out.push(Upload {
                    key: tag(block, "Key").map(unescape).unwrap_or_default(),
                    upload_id: tag(block, "UploadId").map(unescape).unwrap_or_default(),
                    initiated: tag(block, "Initiated").unwrap_or("").to_owned(),
                });
            }
            if tag(&r.body, "IsTruncated") != Some("true") {
                break;
            }
            key_marker = tag(&r.body, "NextKeyMarker")
                .map(unescape)
                .unwrap_or_default();
            id_marker = tag(&r.body, "NextUploadIdMarker")
                .map(unescape)
                .unwrap_or_default();
            if key_marker.is_empty() {
                break;
            }
        }
        Ok(out)
    }

    /// AbortMultipartUpload: the store drops the parts uploaded so far.
    pub fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), S3Error> {
        match self.ok("DELETE", key, &[("uploadId", upload_id)], &[], &[]) {
            Ok(_) => Ok(()),
            // Completed or aborted meanwhile: nothing left to abort.
            Err(e) if e.code() == "NoSuchUpload" => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Builds the client from `[archive]` and its credentials file.
pub fn from_config(cfg: &ArchiveConfig) -> Result<S3x, ArchiveError> {
    let creds = Credentials::load(&cfg.credentials_file)?;
    Ok(S3x::new(cfg, &creds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_md5_is_base64_of_the_md5() {
        // RFC 1321 test suite: MD5("") = d41d8cd98f00b204e9800998ecf8427e.
        assert_eq!(content_md5(b""), "1B2M2Y8AsgTpgAmY7PhCfg==");
        assert_eq!(content_md5(b"abc"), "kAFQmDzST7DWlj99KOF/cg==");
    }

    #[test]
    fn replies_are_read_tag_by_tag() {
        let xml = "<ListVersionsResult><IsTruncated>false</IsTruncated><Version><Key>a/1.opus</Key><VersionId>v1</VersionId><IsLatest>true</IsLatest><Size>5</Size></Version><DeleteMarker><Key>a/1.dat</Key><VersionId>v2</VersionId><IsLatest>true</IsLatest></DeleteMarker><Version><Key>a&amp;b</Key><VersionId>v3</VersionId><IsLatest>false</IsLatest><Size>7</Size></Version></ListVersionsResult>";
        let v = tags(xml, "Version");
        assert_eq!(v.len(), 2);
        assert_eq!(tag(v[0], "Key"), Some("a/1.opus"));
        assert_eq!(tag(v[1], "Key").map(unescape).as_deref(), Some("a&b"));
        assert_eq!(tags(xml, "DeleteMarker").len(), 1);
        assert_eq!(encode("fleet/b 1/x", true), "fleet/b%201/x");
        assert_eq!(encode("fleet/", false), "fleet%2F");
    }
}
