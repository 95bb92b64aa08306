//! `callrec key show`, `callrec export` and `callrec verify`: the box key, evidence bundles, and
//! checking a bundle or the whole store. The rules (what a bundle holds, what verifies) are in
//! `callrec::evidence`; this file only prints.

use super::{cli_actor, open_existing, open_index};
use anyhow::bail;
use callrec::config::Config;
use callrec::evidence::{bundle, key, verify};
use callrec::hub;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum KeyCmd {
    /// Print the public key (PEM) and its SHA-256 fingerprint (of the DER form).
    Show {
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
pub struct ExportArgs {
    /// Call ids.
    #[arg(required = true)]
    ids: Vec<i64>,
    /// Folder to write `call-<id>/` bundles into (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Also the whole call decoded to WAV (marked derived).
    #[arg(long)]
    wav: bool,
    /// Also an excerpt WAV from this many seconds into the call (with --to).
    #[arg(long, requires = "to")]
    from: Option<f64>,
    /// End of the excerpt, seconds from the start of the call (with --from).
    #[arg(long, requires = "from")]
    to: Option<f64>,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// A `call-<id>` folder made by `callrec export`.
    #[arg(required_unless_present = "store", conflicts_with = "store")]
    bundle: Option<PathBuf>,
    /// Check the whole store instead: files vs index rows vs ledger, the ledger chain,
    /// orphan files.
    #[arg(long)]
    pub store: bool,
    #[arg(long)]
    pub json: bool,
}

pub fn key(cfg: &Config, cmd: KeyCmd) -> anyhow::Result<()> {
    let KeyCmd::Show { json } = cmd;
    let k = key::load(&cfg.storage.dir)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "public_key_pem": k.public_pem(),
                "fingerprint_sha256": k.fingerprint_sha256(),
                "public_key_file": k.paths.public.display().to_string(),
                "algorithm": "Ed25519",
            }))?
        );
    } else {
        print!("{}", k.public_pem());
        println!(
            "fingerprint (SHA-256 of the DER public key): {}",
            k.fingerprint_sha256()
        );
        println!(
            "file: {}  (check: openssl pkey -pubin -in {} -outform DER | sha256sum)",
            k.paths.public.display(),
            k.paths.public.display()
        );
    }
    Ok(())
}

pub fn export(cfg: &Config, a: ExportArgs) -> anyhow::Result<()> {
    let options = bundle::Options::new(a.wav, a.from.zip(a.to))?;
    open_existing(cfg, ": nothing to export")?;
    let (key, made) = key::ensure(&cfg.storage.dir)?;
    if made {
        eprintln!(
            "made the box key {} (fingerprint {})",
            key.paths.public.display(),
            key.fingerprint_sha256()
        );
    }
    let conn = open_index(cfg)?;
    let actor = cli_actor();
    let x = bundle::Exporter {
        conn: &conn,
        storage_dir: &cfg.storage.dir,
        box_id: &cfg.box_.id,
        key: &key,
        actor: &actor,
        out_dir: &a.out,
        options,
        archived: None,
    };
    // At the hub the originals come from the archive: a store client only when a call needs it.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let mut remote = None;
    for &id in &a.ids {
        if remote.is_none() && hub::export::lookup(&conn, id)?.is_some() {
            let _in_rt = rt.enter();
            remote = Some(hub::remote::Remote::new(cfg)?);
        }
    }
    let prefix = cfg.archive.as_ref().map_or("", |c| c.prefix.as_str());
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for &id in &a.ids {
        match hub::export::export_call(rt.handle(), remote.as_ref(), prefix, &x, id) {
            Ok(e) => {
                if !a.json {
                    println!(
                        "call {id}: {} ({} files, manifest sha256 {})",
                        e.dir,
                        e.files.len() + 3,
                        e.manifest_sha256
                    );
                }
                done.push(e);
            }
            Err(e) => {
                eprintln!("callrec: export of call {id} failed: {e}");
                failed.push(serde_json::json!({"call_id": id, "error": e.to_string()}));
            }
        }
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"exported": done, "failed": failed}))?
        );
    } else if let Some(first) = done.first() {
        println!(
            "verify without callrec: {}",
            bundle::verify_command(first.call_id)
        );
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} call(s) not exported (see above); the others are in {}",
            failed.len(),
            a.ids.len(),
            a.out.display()
        );
    }
    Ok(())
}

/// `cfg` is this box's config when there is one: it says whether this box signed the bundle.
pub fn verify_bundle(cfg: Option<&Config>, a: VerifyArgs) -> anyhow::Result<()> {
    let Some(dir) = a.bundle else {
        bail!("give a bundle folder, or --store");
    };
    let r = verify::verify_bundle(&dir)?;
    let this_box = cfg
        .and_then(|c| key::load(&c.storage.dir).ok())
        .map(|k| k.fingerprint_sha256().to_owned());
    let signed_by_this_box = r.signed_by(this_box.as_deref());
    if a.json {
        let mut v = serde_json::to_value(&r)?;
        v["signed_by_this_box"] = serde_json::to_value(signed_by_this_box)?;
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_bundle_report(&r, this_box.as_deref());
    }
    if !r.problems.is_empty() {
        bail!(
            "the bundle does not verify: {} problem(s); do not rely on it, and ask for a fresh export from the box",
            r.problems.len()
        );
    }
    if !a.json {
        println!("bundle intact");
    }
    Ok(())
}

fn print_bundle_report(r: &verify::BundleReport, this_box: Option<&str>) {
    for p in &r.problems {
        println!("{p}");
    }
    println!(
        "{}: call {}, {} file(s) checked, signature {}, {} ledger entr{} checked",
        r.dir,
        r.call_id
            .map(|i| i.to_string())
            .unwrap_or_else(|| "?".into()),
        r.files_checked,
        if r.signature_valid {
            "valid"
        } else {
            "INVALID"
        },
        r.ledger_entries_checked,
        if r.ledger_entries_checked == 1 {
            "y"
        } else {
            "ies"
        }
    );
    if let Some(fp) = &r.key_fingerprint_sha256 {
        match (r.signed_by(this_box), this_box) {
            (Some(true), _) => println!("signed by this box's key ({fp})"),
            (_, Some(mine)) => println!(
                "signed by key {fp}, which is NOT this box's key ({mine}): compare it with `callrec key show` on the box that exported it"
            ),
            (_, None) => println!(
                "signing key fingerprint {fp}: compare it with `callrec key show` on the box"
            ),
        }
    }
}

pub fn verify_store(cfg: &Config, json: bool) -> anyhow::Result<()> {
    let conn = open_existing(cfg, ": nothing to verify")?;
    let r = verify::verify_store(&conn, &cfg.storage.dir)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print_store_report(&r);
    }
    if !r.problems.is_empty() {
        bail!(
            "the store does not verify: {} problem(s) listed above; keep the disk as it is (no repair, no cleanup) and treat the calls named as possibly tampered",
            r.problems.len()
        );
    }
    if !json {
        println!("store intact: every recording matches its index row and the ledger");
    }
    Ok(())
}

fn print_store_report(r: &verify::StoreReport) {
    for p in &r.problems {
        println!("{p}");
    }
    if r.temporary_files > 0 {
        println!(
            "{} temporary *.tmp file(s) under calls/ (a write in progress, or left by a crash; not checked)",
            r.temporary_files
        );
    }
    for p in &r.pending_deletions {
        println!("pending deletion: {p}");
    }
    if !r.pending_deletions.is_empty() {
        println!(
            "{} deletion(s) pending (the recorder finishes them; or stop it and run `callrec check --repair-garbage`)",
            r.pending_deletions.len()
        );
    }
    println!(
        "{} call(s) ({} still recording), {} file(s) hashed ({} bytes), {} ledger entries, head {}",
        r.calls,
        r.calls_recording,
        r.files_hashed,
        r.bytes_hashed,
        r.ledger_entries,
        r.ledger_head
            .as_ref()
            .map(|h| format!("#{} {}", h.seq, h.entry_sha256))
            .unwrap_or_else(|| "none".into())
    );
}
