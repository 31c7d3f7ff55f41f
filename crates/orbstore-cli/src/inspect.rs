//! `orb inspect PATH [--json]`: what an archive holds and whether every checksum verifies,
//! offline (`orbstore_ops::inspect`): no store is opened. Exit code 0 only for an intact archive.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use orbstore_ops::InspectReport;
use serde_json::json;

use crate::bars::Bars;
use crate::output::{self, Channel};

/// The arguments of `orb inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The archive.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command (blocking work on a blocking thread).
pub async fn run(args: InspectArgs) -> ExitCode {
    let path = args.path.clone();
    let quiet = args.json;
    let result = tokio::task::spawn_blocking(move || orbstore_ops::inspect(&path, &Bars::new(quiet)))
        .await
        .unwrap_or_else(|e| Err(orbstore::Error::backend("the inspect thread failed", e)));
    match result {
        Ok(report) => print(&report, args.json),
        Err(e) => {
            let fields = output::fields(json!({"path": args.path, "verified": false}));
            output::failure(args.json, Channel::Stdout, "inspect", &e, fields, &[])
        }
    }
}

fn print(r: &InspectReport, as_json: bool) -> ExitCode {
    let m = &r.manifest;
    let collections: Vec<_> = r
        .collections
        .iter()
        .map(|c| {
            json!({"name": c.name, "count": c.count, "bytes": c.bytes, "sha256": c.sha256,
                   "indexes": output::indexes_json(&c.indexes), "verified": c.verified})
        })
        .collect();
    let fields = output::fields(json!({
        "path": r.path,
        "compression": r.compression.as_str(),
        "archive_bytes": r.archive_bytes,
        "format_version": m.format_version,
        "orbstore_version": m.orbstore_version,
        "source_backend": m.source_backend,
        "created_at": m.created_at,
        "consistency": m.consistency,
        "documents": m.total_documents(),
        "collections": collections,
        "verified": r.verified,
        "problems": r.problems,
    }));
    let mut human = vec![
        format!("{} ({}, {})", r.path.display(), r.compression.as_str(), output::size(r.archive_bytes)),
        format!(
            "orbstore backup format {} by orbstore {}, from the {} backend, created {} ({} snapshot)",
            m.format_version, m.orbstore_version, m.source_backend, m.created_at, m.consistency
        ),
        format!("{:<24} {:>10} {:>11}  {:<8}  indexes", "collection", "documents", "bytes", "checksum"),
    ];
    for c in &r.collections {
        human.push(format!(
            "{:<24} {:>10} {:>11}  {:<8}  {}",
            c.name,
            c.count,
            output::size(c.bytes),
            if c.verified { "ok" } else { "BAD" },
            output::indexes_human(&c.indexes)
        ));
    }
    human.push(format!("{:<24} {:>10}", "total", m.total_documents()));
    if r.verified {
        human.push("Every checksum, count and size verifies.".into());
    } else {
        human.push(format!(
            "The archive is damaged: {}",
            output::plural(r.problems.len() as u64, "problem", "problems")
        ));
        human.extend(r.problems.iter().map(|p| format!("  {p}")));
    }
    output::report(as_json, Channel::Stdout, r.verified, fields, &human)
}
