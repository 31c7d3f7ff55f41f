//! `orb backup [--out PATH] [--json]`: the environment's store into one archive
//! (`orbstore_ops::backup`); without `--out`, a timestamped archive in `BACKUP_DIR` with
//! rotation (`BACKUP_RETENTION_DAYS`). `BACKUP_COMPRESSION` chooses gzip, zstd or none; when it
//! is unset, an `--out` ending in `.tar.zst` or `.tar` chooses for it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use orbstore::Store;
use orbstore_ops::{BackupOptions, BackupReport, Compression};
use serde_json::json;

use crate::bars::Bars;
use crate::output::{self, Channel};

/// The arguments of `orb backup`.
#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Write this file instead of a timestamped archive in BACKUP_DIR (no rotation then).
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command.
pub async fn run(store: &Store, args: BackupArgs) -> ExitCode {
    let result = backup(store, &args).await;
    // Recorded after the archive is complete, so the archive never holds its own record.
    let (target, counts) = match &result {
        Ok(r) => (
            r.path.display().to_string(),
            Ok(
                json!({"documents": r.manifest.total_documents(), "collections": r.manifest.collections.len(),
                      "archive_bytes": r.archive_bytes}),
            ),
        ),
        Err(e) => ("an archive".to_owned(), Err(e)),
    };
    crate::audit::note(&**store, "backup", &target, counts).await;
    match result {
        Ok(report) => print(&report, args.json),
        Err(e) => output::failure(args.json, Channel::Stdout, "backup", &e, Default::default(), &[]),
    }
}

async fn backup(store: &Store, args: &BackupArgs) -> orbstore::Result<BackupReport> {
    let mut options = BackupOptions::from_env()?;
    if let Some(out) = &args.out {
        let chosen =
            std::env::var(orbstore_ops::archive::COMPRESSION_VAR).is_ok_and(|v| !v.trim().is_empty());
        if !chosen {
            options.compression = compression_for(out);
        }
        options.out = Some(out.clone());
    }
    options.progress = Arc::new(Bars::new(args.json));
    orbstore_ops::backup(store, &options).await
}

/// The compression a file name asks for: `.tar.zst`/`.zst` zstd, `.tar` none, anything else gzip.
fn compression_for(path: &std::path::Path) -> Compression {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_ascii_lowercase();
    if name.ends_with(".zst") {
        Compression::Zstd
    } else if name.ends_with(".tar") {
        Compression::None
    } else {
        Compression::Gzip
    }
}

fn print(r: &BackupReport, as_json: bool) -> ExitCode {
    let m = &r.manifest;
    let collections: Vec<_> = m
        .collections
        .iter()
        .map(|c| {
            json!({"name": c.name, "count": c.count, "bytes": c.bytes, "sha256": c.sha256,
                   "indexes": output::indexes_json(&c.indexes)})
        })
        .collect();
    let fields = output::fields(json!({
        "path": r.path,
        "archive_bytes": r.archive_bytes,
        "source_backend": m.source_backend,
        "consistency": m.consistency,
        "created_at": m.created_at,
        "format_version": m.format_version,
        "documents": m.total_documents(),
        "collections": collections,
        "pruned": r.pruned,
        "elapsed_ms": r.elapsed.as_millis() as u64,
    }));
    let mut human = vec![format!(
        "Backed up {} and {} from the {} backend ({} snapshot) to {} ({}, {:.1} s).",
        output::plural(m.collections.len() as u64, "collection", "collections"),
        output::plural(m.total_documents(), "document", "documents"),
        m.source_backend,
        m.consistency,
        r.path.display(),
        output::size(r.archive_bytes),
        r.elapsed.as_secs_f64()
    )];
    for c in &m.collections {
        human.push(format!(
            "  {:<24} {:>10} documents {:>11}  sha256 {}…",
            c.name,
            c.count,
            output::size(c.bytes),
            &c.sha256[..16.min(c.sha256.len())]
        ));
    }
    if !r.pruned.is_empty() {
        human.push(format!(
            "Removed {} by rotation:",
            output::plural(r.pruned.len() as u64, "old archive", "old archives")
        ));
        human.extend(r.pruned.iter().map(|p| format!("  {}", p.display())));
    }
    output::success(as_json, Channel::Stdout, fields, &human)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_out_name_chooses_the_compression() {
        for (name, c) in [
            ("b.tar.gz", Compression::Gzip),
            ("b.tgz", Compression::Gzip),
            ("b.tar.zst", Compression::Zstd),
            ("b.tar", Compression::None),
            ("backup", Compression::Gzip),
        ] {
            assert_eq!(compression_for(std::path::Path::new(name)), c, "{name}");
        }
    }
}
