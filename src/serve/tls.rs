//! TLS for the web service: the configured PEM pair, or a self-signed pair generated on first
//! start under `<storage.dir>/tls/` (key file mode 0600) and reused afterwards, so browsers only
//! need to accept it once.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS file {path}: {source}. Fix server.cert_path/key_path or remove them to use a generated certificate")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("generating the self-signed certificate: {0}")]
    Generate(String),
}

/// Returns (cert, key) paths, generating a self-signed pair if none is configured yet.
pub fn ensure_pair(
    cert: Option<&Path>,
    key: Option<&Path>,
    tls_dir: &Path,
    box_id: &str,
) -> Result<(PathBuf, PathBuf, bool), TlsError> {
    if let (Some(c), Some(k)) = (cert, key) {
        return Ok((c.to_owned(), k.to_owned(), false));
    }
    let (c, k) = (tls_dir.join("cert.pem"), tls_dir.join("key.pem"));
    if c.exists() && k.exists() {
        return Ok((c, k, false));
    }
    let io = |p: &Path| {
        let path = p.display().to_string();
        move |source| TlsError::Io { path, source }
    };
    std::fs::create_dir_all(tls_dir).map_err(io(tls_dir))?;
    let hostname = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if !hostname.is_empty() {
        names.push(hostname);
    }
    let ck =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    let mut kf = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&k)
        .map_err(io(&k))?;
    kf.write_all(ck.signing_key.serialize_pem().as_bytes())
        .map_err(io(&k))?;
    std::fs::write(&c, ck.cert.pem()).map_err(io(&c))?;
    tracing::info!(box_id, cert = %c.display(), "generated a self-signed TLS certificate");
    Ok((c, k, true))
}
