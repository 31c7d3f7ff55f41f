//! `orb restore PATH [--replace] [--json]`: an archive into the environment's store
//! (`orbstore_ops::restore`), verified whole before the first write and read back after. On a
//! failure the report says what the target holds at that point.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use orbstore::Store;
use orbstore_ops::{CollectionRestore, RestoreOptions, RestoreReport};
use serde_json::{json, Value};

use crate::bars::Bars;
use crate::output::{self, Channel};

/// The arguments of `orb restore`.
#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The archive (`orb backup` wrote it).
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// Drop the store's collections that the archive also holds, instead of refusing.
    #[arg(long)]
    pub replace: bool,
    /// Documents per insert.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub batch_size: usize,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command.
pub async fn run(store: &Store, args: RestoreArgs) -> ExitCode {
    let options = RestoreOptions {
        replace: args.replace,
        batch_size: args.batch_size,
        progress: Arc::new(Bars::new(args.json)),
        // The target's erasure ledger is re-applied through the full map, orbstore-rl's included.
        subjects: crate::user::map(store).await.ok(),
    };
    let result = orbstore_ops::restore(store, &args.path, &options).await;
    let target = args.path.display().to_string();
    match &result {
        Ok(r) => {
            let counts =
                json!({"documents": r.manifest.total_documents(), "collections": r.collections.len()});
            crate::audit::note(&**store, "restore", &target, Ok(counts)).await
        }
        Err(e) => crate::audit::note(&**store, "restore", &target, Err(&e.error)).await,
    }
    match result {
        Ok(report) => print(store, &report, args.json),
        Err(e) => {
            let mut fields = output::fields(json!({"archive": args.path}));
            let mut human = Vec::new();
            match &e.report {
                Some(r) => {
                    fields.insert("wrote_anything".into(), Value::Bool(r.wrote_anything()));
                    fields.insert("collections".into(), collections_json(&r.collections));
                    human.push(format!("orb restore: {}.", capitalized(&r.target_summary())));
                }
                None => {
                    fields.insert("wrote_anything".into(), Value::Bool(false));
                }
            }
            output::failure(args.json, Channel::Stdout, "restore", &e.error, fields, &human)
        }
    }
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

fn collections_json(cs: &[CollectionRestore]) -> Value {
    cs.iter()
        .map(|c| {
            json!({"name": c.name, "expected": c.expected, "written": c.written, "indexes": c.indexes,
                   "replaced": c.replaced, "state": c.state.as_str(), "erased": c.erased,
                   "kept_target_copy": c.kept_target_copy})
        })
        .collect()
}

fn print(store: &Store, r: &RestoreReport, as_json: bool) -> ExitCode {
    let m = &r.manifest;
    let fields = output::fields(json!({
        "archive": r.archive,
        "target_backend": store.kind(),
        "source_backend": m.source_backend,
        "created_at": m.created_at,
        "documents": m.total_documents(),
        "collections": collections_json(&r.collections),
        "verified": true,
        "elapsed_ms": r.elapsed.as_millis() as u64,
    }));
    let replaced: Vec<&str> = r.collections.iter().filter(|c| c.replaced).map(|c| c.name.as_str()).collect();
    let mut human = vec![format!(
        "Restored {} and {} from {} (a {} backup of {}) into the {} backend in {:.1} s; each collection read back \
         with the archive's count and hash.",
        output::plural(r.collections.len() as u64, "collection", "collections"),
        output::plural(m.total_documents(), "document", "documents"),
        r.archive.display(),
        m.source_backend,
        m.created_at,
        store.kind(),
        r.elapsed.as_secs_f64()
    )];
    for c in &r.collections {
        human.push(format!(
            "  {:<24} {:>10} documents  {}",
            c.name,
            c.written,
            output::plural(c.indexes as u64, "index", "indexes")
        ));
    }
    let erased: u64 = r.collections.iter().map(|c| c.erased).sum();
    if erased > 0 {
        human.push(format!(
            "Left out {} of users the store's erasure ledger has erased: they do not come back.",
            output::plural(erased, "document", "documents")
        ));
    }
    if r.collections.iter().any(|c| c.kept_target_copy) {
        let kept: Vec<&str> =
            r.collections.iter().filter(|c| c.kept_target_copy).map(|c| c.name.as_str()).collect();
        human.push(format!(
            "Kept the store's own {} (the archive's copies were not written over them).",
            kept.join(", ")
        ));
    }
    if !replaced.is_empty() {
        human.push(format!("Replaced: {}.", replaced.join(", ")));
    }
    output::success(as_json, Channel::Stdout, fields, &human)
}
