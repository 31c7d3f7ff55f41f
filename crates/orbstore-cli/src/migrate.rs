//! `orb migrate --from URL --to URL`: copy collections between any two stores, resumable and
//! verified (`orbstore_ops::migrate`). The environment's store is not used.

use std::sync::Arc;

use clap::Args;
use orbstore::{Config, Error, Result, Store};
use orbstore_ops::{migrate, MigrateOptions, MigrateReport, MigrationState};
use serde_json::json;

use crate::bars::Bars;

/// The arguments of `orb migrate`.
#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// The source store, as `DATABASE_URL` reads it (`file://DIR`, `sqlite://PATH`, `postgres://…`,
    /// `mongodb://…`, `memory://`).
    #[arg(long, value_name = "URL")]
    pub from: String,
    /// The target store, likewise.
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Only these collections (repeat the flag); every collection by default.
    #[arg(long = "collection", value_name = "NAME")]
    pub collections: Vec<String>,
    /// Say what would be copied; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Documents per batch.
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command; `Ok(false)` when it ran but the stores do not verify equal.
pub async fn run(args: MigrateArgs) -> Result<bool> {
    if same_url(&args.from, &args.to) {
        return Err(Error::invalid("--from and --to name the same store"));
    }
    let source = open("--from", &args.from).await?;
    let target = match open("--to", &args.to).await {
        Ok(t) => t,
        Err(e) => {
            let _ = source.close().await;
            return Err(e);
        }
    };
    let options = MigrateOptions {
        collections: args.collections,
        dry_run: args.dry_run,
        batch_size: args.batch_size,
        progress: Arc::new(Bars::new(args.json)),
        // The target's erasure ledger is re-applied through the full map, orbstore-rl's included.
        subjects: crate::user::map(&target).await.ok(),
    };
    let result = migrate(&source, &target, &options).await;
    let closed = source.close().await.and(target.close().await);
    let report = result?;
    closed?;
    print(&report, &args.from, &args.to, args.json);
    Ok(report.verified())
}

async fn open(flag: &str, url: &str) -> Result<Store> {
    let config = Config::from_lookup(|k| (k == "DATABASE_URL").then(|| url.to_owned()))
        .map_err(|e| Error::new(e.kind(), format!("{flag}: {}", e.message())))?;
    orbstore::open(config).await.map_err(|e| Error::new(e.kind(), format!("{flag}: {}", e.message())))
}

/// The same URL after trimming and dropping a trailing `/`: the cheap check before opening; the
/// library's probe catches the aliases (`localhost` and `127.0.0.1`).
fn same_url(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.trim().trim_end_matches('/').to_owned();
    norm(a) == norm(b)
}

fn print(report: &MigrateReport, from: &str, to: &str, as_json: bool) {
    if as_json {
        let out = json!({
            "from": orbstore::config::redact_url(from),
            "to": orbstore::config::redact_url(to),
            "ok": report.verified(),
            "changed_nothing": report.changed_nothing(),
            "copied": report.copied(),
            "report": report,
        });
        say!("{}", serde_json::to_string(&out).unwrap_or_default());
        return;
    }
    let verb = if report.dry_run { "Would migrate" } else { "Migrated" };
    say!(
        "{verb} {} -> {} ({} collections, {:.1} s)",
        report.source,
        report.target,
        report.collections.len(),
        report.elapsed.as_secs_f64()
    );
    for c in &report.collections {
        let rate =
            if c.elapsed.as_secs_f64() > 0.0 { c.copied as f64 / c.elapsed.as_secs_f64() } else { 0.0 };
        let what = match c.state {
            MigrationState::Planned => format!(
                "{} documents in the source, {} in the target{}",
                c.source_count,
                c.target_count,
                c.resumed_after.as_ref().map(|id| format!(", would resume after {id:?}")).unwrap_or_default()
            ),
            MigrationState::Unchanged => {
                format!("already complete, {} documents verified equal", c.source_count)
            }
            MigrationState::Copied => format!(
                "copied {} ({:.0} docs/s){}, {} documents verified equal, {} indexes",
                c.copied,
                rate,
                c.resumed_after.as_ref().map(|id| format!(" resuming after {id:?}")).unwrap_or_default(),
                c.target_count,
                c.indexes
            ),
            MigrationState::Mismatch => format!(
                "MISMATCH: {} missing in the target {:?}, {} extra {:?}, {} differ {:?}",
                c.differences.missing_in_target,
                c.differences.missing_ids,
                c.differences.extra_in_target,
                c.differences.extra_ids,
                c.differences.content_differs,
                c.differences.differing_ids
            ),
        };
        say!("  {:<24} {what}", c.name);
    }
    if report.changed_nothing() && !report.dry_run {
        say!("Nothing to do: the target already holds exactly the source's documents.");
    }
}
