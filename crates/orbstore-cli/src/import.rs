//! `orb import --format emotistream|orb DIR`: the JSON files EmotiStream or Orb wrote, into the
//! environment's store (`orbstore_rl::import`). Each file is checked whole before anything of it
//! is written; a missing file is skipped; importing again leaves the same data.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use orbstore::{Error, Result, Store};
use orbstore_ops::validate::{validate_with_schemas_of, ValidateOptions};
use orbstore_rl::import::{import, FileStatus, ImportFormat, ImportReport};
use orbstore_schema::Mode;
use serde_json::{json, Value};

/// The arguments of `orb import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Which application wrote the files.
    #[arg(long, value_enum)]
    pub format: Format,
    /// The directory holding them (EmotiStream: `qtable.json`, `experiences.json`,
    /// `user-profiles.json`; Orb: `luna/profiles.json`, `te/reflections.json`).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
}

/// The applications `orb import` reads.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Format {
    /// EmotiStream's Q-table, experiences and user profiles.
    Emotistream,
    /// Orb's Luna profiles and Te reflections.
    Orb,
}

/// Runs the command; an error when the directory cannot be read or any file failed (after the
/// report is printed), so that the exit code says whether everything was imported.
pub async fn run(store: &Store, args: ImportArgs) -> Result<()> {
    let format = match args.format {
        Format::Emotistream => ImportFormat::EmotiStream,
        Format::Orb => ImportFormat::Orb,
    };
    let checked = match check_schemas(store, format, &args.dir).await {
        Ok(()) => import(&**store, format, &args.dir).await,
        Err(e) => Err(e),
    };
    let report = match checked {
        Ok(r) => r,
        Err(e) => {
            if args.json {
                // Still one JSON object on stdout, for scripts that parse it.
                let dir = args.dir.display().to_string();
                say!("{}", json!({"ok": false, "format": format, "dir": dir, "error": e.to_string()}));
            }
            return Err(e);
        }
    };
    // The store's erasure ledger, re-applied: old files must not bring an erased user back.
    let map = crate::user::map(store).await?;
    let erased = orbstore_ops::subjects::reapply_ledger(&**store, &map).await?;
    let erased_total: u64 = erased.values().sum();
    if args.json {
        let mut out = as_json(&report, store.kind());
        if let Some(o) = out.as_object_mut() {
            o.insert("erased".into(), json!(erased));
        }
        say!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        print_summary(&report, store.kind());
        if erased_total > 0 {
            say!("Removed {erased_total} imported documents of users the store's erasure ledger has erased.");
        }
    }
    let failed = report.failed().count();
    if failed > 0 {
        return Err(Error::invalid(format!(
            "{failed} of {} {format} files could not be imported",
            report.files.len()
        )));
    }
    Ok(())
}

/// Imports into a store in memory first and checks every document that would be written
/// against the target's schemas: a collection in strict mode refuses the whole import before
/// anything is written (naming the documents, paths and rules); warn mode only warns.
async fn check_schemas(store: &Store, format: ImportFormat, dir: &std::path::Path) -> Result<()> {
    let staging = orbstore::open(orbstore::Config::new(orbstore::BackendConfig::Memory)).await?;
    // Files that fail here fail the same way in the real import, which reports them.
    import(&*staging, format, dir).await?;
    let options = ValidateOptions { max_listed: 5, ..ValidateOptions::default() };
    let report = validate_with_schemas_of(&**store, &*staging, &options).await?;
    let mut refused = Vec::new();
    for c in report.collections.iter().filter(|c| c.invalid > 0) {
        let first: Vec<String> = c
            .documents
            .iter()
            .map(|d| {
                format!("{} {}", d.id, d.violations.first().map(ToString::to_string).unwrap_or_default())
            })
            .collect();
        let line =
            format!("{}: {} of {} documents, e.g. {}", c.collection, c.invalid, c.scanned, first.join("; "));
        match c.mode {
            Mode::Strict => refused.push(line),
            Mode::Warn => {
                eprintln!("orb import: warning: not matching the schema (warn mode, imported): {line}")
            }
            Mode::Off => {}
        }
    }
    if refused.is_empty() {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "the files do not match the store's schemas (strict), nothing was imported: {}",
        refused.join(" | ")
    )))
}

fn as_json(report: &ImportReport, backend: &str) -> Value {
    // The directory as displayed: a path that is not UTF-8 has no JSON string of its own.
    let dir = report.dir.display().to_string();
    json!({
        "ok": report.is_success(),
        "format": report.format,
        "dir": dir,
        "backend": backend,
        "imported": report.imported(),
        "files": report.files,
    })
}

fn print_summary(report: &ImportReport, backend: &str) {
    say!("Importing {} files from {} into the {backend} backend:", report.format, report.dir.display());
    let width = report.files.iter().map(|f| f.file.len()).max().unwrap_or(0);
    for f in &report.files {
        let what = match f.status {
            FileStatus::Imported => format!("imported {} {}", f.imported, f.records),
            FileStatus::Missing => "not there, skipped".to_owned(),
            // The message names the file and what was wrong in it.
            FileStatus::Failed => format!("FAILED: {}", f.error.as_deref().unwrap_or("unknown error")),
        };
        say!("  {:<width$}  {what}", f.file);
    }
    let present = report.files.iter().filter(|f| f.status != FileStatus::Missing).count();
    let failed = report.failed().count();
    say!(
        "{} records imported from {} of {} files{}.",
        report.imported(),
        present - failed,
        report.files.len(),
        match failed {
            0 => String::new(),
            1 => "; 1 file failed".to_owned(),
            n => format!("; {n} files failed"),
        }
    );
}
