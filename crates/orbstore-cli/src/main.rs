//! `orb`: a resumable tabular Q-learning demo over orbstore, store statistics, and the data
//! operations of `orbstore-ops` (backup, restore, inspect, export, migrate, import) and the
//! journal's `sync`, one module per command.
//!
//! The backend comes from the environment (`DATABASE_URL`, `DB_BACKEND`, `ORB_PERSISTENCE`; by
//! default the file backend in `./data`), as for every orbstore program.

mod grid;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use orbstore::Store;
use orbstore_rl::{Experience, ExperienceStore, LearningMetrics, QTable, UserProfileStore};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::json;

use crate::grid::{Grid, ACTIONS};

/// `println!` that ignores a closed stdout (`orb stats | head` must not panic).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod audit;
mod bars;
mod cleanup;
mod compact;
mod import;
mod migrate;

mod backup;
mod export;
mod inspect;
mod output;
mod restore;
mod retention;
mod schema;
mod sync;
mod user;

/// The agent's user id in the stores.
const AGENT: &str = "grid-agent";

#[derive(Parser)]
#[command(name = "orb", version, about = "orbstore: persistence for learning agents")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a Q-learning agent on a small grid world; run it again and it resumes.
    Demo {
        /// Episodes to train in this run.
        #[arg(long, default_value_t = 300)]
        episodes: u32,
        /// Seed of the exploration's random numbers.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Import the JSON files EmotiStream or Orb wrote (checked before writing; again changes
    /// nothing).
    Import(import::ImportArgs),
    /// Copy collections between any two stores (resumable, verified); the environment's store
    /// is not used.
    Migrate(migrate::MigrateArgs),
    /// Back up every collection into one archive (BACKUP_DIR, BACKUP_RETENTION_DAYS,
    /// BACKUP_COMPRESSION).
    Backup(backup::BackupArgs),
    /// Restore an archive into the store, verified before and after writing.
    Restore(restore::RestoreArgs),
    /// Show what an archive holds and whether every checksum verifies (no store needed).
    Inspect(inspect::InspectArgs),
    /// Export documents as JSON lines or JSON, to a file or stdout.
    Export(export::ExportArgs),
    /// Retention policies kept in the store, and their run (delete, or archive then delete).
    Retention(retention::RetentionArgs),
    /// The cold archives retention wrote (ORB_ARCHIVE_DIR, default ./archives; no store needed).
    Archive(retention::ArchiveArgs),
    /// Reclaim the space of deleted and overwritten documents (file snapshots, SQLite VACUUM,
    /// PostgreSQL VACUUM (ANALYZE), MongoDB compact), with the bytes before and after.
    Compact {
        /// Print one JSON object instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// List what the backend left behind that belongs to no collection (temporary files, old
    /// quarantined copies, logs of dropped collections, catalog rows and indexes without a
    /// collection); --apply removes them.
    Cleanup {
        /// Remove what was found (without it, nothing is removed).
        #[arg(long)]
        apply: bool,
        /// Print one JSON object instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// Data subjects: which collections hold a user's data, and the export of one user's data.
    User(user::UserArgs),
    /// The store's audit log (access_logs): restores, retention runs, policy changes.
    Audit(audit::AuditArgs),
    /// The collections' JSON Schemas kept in the store, checked on every write (strict, warn,
    /// off).
    Schema(schema::SchemaArgs),
    /// Check stored documents against their collections' schemas; --fix repairs what it can.
    Validate(schema::ValidateArgs),
    /// Where the offline journal's sync to the server stands; --wait ships it and waits.
    Sync(sync::SyncArgs),
    /// Collections, counts, sizes, the backend and its health.
    Stats {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Commands that name their stores themselves run before the environment's store is opened.
    let command = match cli.command {
        Command::Migrate(args) => {
            return match migrate::run(args).await {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("orb migrate: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Inspect(args) => return inspect::run(args).await,
        Command::Archive(args) => return retention::archive(args),
        other => other,
    };
    // A restore writes back what the archive holds, as it was: validating it on the way would
    // stop it halfway (`orb validate` reports afterwards what does not match).
    let restoring = matches!(command, Command::Restore(_));
    let lookup = |k: &str| match k {
        orbstore::SCHEMA_VALIDATION_VAR if restoring => Some("off".to_owned()),
        _ => std::env::var(k).ok(),
    };
    let stacked = match orbstore::from_lookup_stacked(lookup).await {
        Ok(s) => s,
        Err(e) => {
            let as_json = match &command {
                Command::Backup(a) => a.json,
                Command::Restore(a) => a.json,
                Command::Export(a) => a.json,
                Command::Sync(a) => a.json,
                Command::Retention(a) => a.json,
                Command::Audit(a) => a.json,
                Command::User(a) => a.json,
                Command::Compact { json } => *json,
                Command::Cleanup { json, .. } => *json,
                Command::Schema(a) => a.json,
                Command::Validate(a) => a.json,
                Command::Import(a) => a.json,
                _ => false,
            };
            if as_json {
                let e = orbstore::Error::new(e.kind(), format!("cannot open the store: {}", e.message()));
                return output::failure(true, output::Channel::Stdout, "", &e, Default::default(), &[]);
            }
            eprintln!("orb: cannot open the store: {e}");
            return ExitCode::FAILURE;
        }
    };
    let store = stacked.store.clone();
    let result = match command {
        Command::Demo { episodes, seed } => demo(&store, episodes, seed).await,
        Command::Stats { json } => stats(&store, json).await,
        Command::Import(args) => import::run(&store, args).await,
        Command::Backup(args) => return closing(&store, backup::run(&store, args).await).await,
        Command::Restore(args) => return closing(&store, restore::run(&store, args).await).await,
        Command::Export(args) => return closing(&store, export::run(&store, args).await).await,
        Command::Sync(args) => return closing(&store, sync::run(&stacked, args).await).await,
        Command::Retention(args) => return closing(&store, retention::run(&store, args).await).await,
        Command::Audit(args) => return closing(&store, audit::run(&store, args).await).await,
        Command::User(args) => return closing(&store, user::run(&store, args).await).await,
        Command::Compact { json } => return closing(&store, compact::run(&store, json).await).await,
        Command::Cleanup { apply, json } => {
            return closing(&store, cleanup::run(&store, apply, json).await).await
        }
        Command::Schema(args) => return closing(&store, schema::run(&store, args).await).await,
        Command::Validate(args) => {
            return closing(&store, schema::validate_command(&store, args).await).await
        }
        Command::Migrate(_) | Command::Inspect(_) | Command::Archive(_) => {
            unreachable!("handled before the store is opened")
        }
    };
    let closed = store.close().await;
    match result.and(closed) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("orb: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Closes the store after a command that printed its own report; a failure to close (which
/// flushes) turns success into failure.
async fn closing(store: &Store, code: ExitCode) -> ExitCode {
    match store.close().await {
        Ok(()) => code,
        Err(e) => {
            eprintln!("orb: closing the store: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn demo(store: &Store, episodes: u32, seed: u64) -> orbstore::Result<()> {
    let q = QTable::open(&**store).await?;
    let experiences = ExperienceStore::open(&**store, Some(50_000)).await?;
    let profiles = UserProfileStore::open(&**store).await?;
    let metrics = LearningMetrics::open(&**store).await?;
    // Ctrl-C or SIGTERM: save what the Q-table has not saved yet, then exit.
    orbstore_rl::flush_on_signal(|| std::process::exit(130));

    let done_before = metrics.count("episode").await?;
    let health = store.health().await;
    if q.stats().entries == 0 && experiences.is_empty() {
        say!("Starting fresh on the {} backend ({}).", store.kind(), health.message);
    } else {
        say!(
            "Resumed on the {} backend: found {} Q-values and {} experiences from {} earlier episodes.",
            store.kind(),
            q.stats().entries,
            experiences.len(),
            done_before
        );
    }

    let grid = Grid::default();
    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(done_before));
    let bar = ProgressBar::new(u64::from(episodes));
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} episodes  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let actions: Vec<String> = ACTIONS.iter().map(|a| a.to_string()).collect();
    let mut last_steps = 0;
    for n in 0..episodes {
        let profile = profiles.get_or_create(AGENT).await?;
        let epsilon = profile.exploration_rate;
        let mut pos = grid.start;
        let mut batch = Vec::new();
        let mut total = 0.0;
        for _ in 0..grid.max_steps {
            let state = grid.state(pos);
            let action = q.select_actions(&state, &actions, epsilon, &mut rng).remove(0);
            let (next, reward, done) = grid.step(pos, &action);
            let next_state = grid.state(next);
            q.update(&state, &action, reward, &next_state, 0.3, 0.9).await?;
            let mut e = Experience::new(AGENT, &state, &action, reward, &next_state);
            e.completed = done;
            batch.push(e);
            total += reward;
            pos = next;
            if done {
                break;
            }
        }
        let steps = batch.len();
        last_steps = steps;
        experiences.add_batch(batch).await?;
        profiles.increment_experiences(AGENT, steps as u64).await?;
        let episode = done_before + u64::from(n) + 1;
        metrics
            .record(
                "episode",
                json!({"episode": episode, "steps": steps, "reward": total, "epsilon": epsilon}),
                None,
            )
            .await?;
        bar.set_message(format!("steps {steps:>3}  reward {total:>6.1}  epsilon {epsilon:.3}"));
        bar.inc(1);
    }
    bar.finish();
    q.flush().await?;

    let (path, reached) = grid.greedy_path(|s| q.best_action(s));
    say!("Last episode took {last_steps} steps. What the agent learned (greedy from the start):");
    say!("{}", grid.render(&path));
    if reached {
        say!(
            "It reaches the goal in {} steps (the shortest path is {}).",
            path.len() - 1,
            grid.shortest_path_len()
        );
    } else {
        say!("It does not reach the goal yet: run `orb demo` again to keep training.");
    }
    let s = q.stats();
    say!(
        "Saved: {} Q-values over {} states, {} experiences, exploration rate {:.3}.",
        s.entries,
        s.states,
        experiences.len(),
        profiles.get_or_create(AGENT).await?.exploration_rate
    );
    Ok(())
}

async fn stats(store: &Store, as_json: bool) -> orbstore::Result<()> {
    let health = store.health().await;
    let stats = store.stats().await?;
    let archive_dir =
        orbstore_ops::retention::RetentionOptions::from_lookup(|k| std::env::var(k).ok()).archive_dir;
    let (archived, archive_warning) = archived_per_collection(&archive_dir);
    let archived_json: Vec<_> = archived
        .iter()
        .map(|(name, documents, bytes, months)| json!({"name": name, "documents": documents, "bytes": bytes, "months": months}))
        .collect();
    if as_json {
        let collections: Vec<_> = stats
            .collections
            .iter()
            .map(
                |c| json!({"name": c.name, "documents": c.documents, "bytes": c.bytes, "indexes": c.indexes}),
            )
            .collect();
        let out = json!({
            "backend": stats.backend,
            "healthy": health.healthy,
            "latency_ms": health.latency.as_secs_f64() * 1000.0,
            "health": health.message,
            "collections": collections,
            "total_documents": stats.total_documents(),
            "storage_bytes": stats.storage_bytes,
            "warnings": stats.warnings.iter().chain(&archive_warning).collect::<Vec<_>>(),
            "archived": archived_json,
        });
        say!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return Ok(());
    }
    say!("backend: {}  healthy: {}  ({:?})", stats.backend, health.healthy, health.latency);
    say!("{}", health.message);
    say!("{:<24} {:>12} {:>14} {:>8}", "collection", "documents", "bytes", "indexes");
    for c in &stats.collections {
        let bytes = c.bytes.map_or_else(|| "-".to_owned(), |b| b.to_string());
        say!("{:<24} {:>12} {:>14} {:>8}", c.name, c.documents, bytes, c.indexes);
    }
    say!("{:<24} {:>12}", "total", stats.total_documents());
    if !archived.is_empty() {
        say!("cold archives in {}:", archive_dir.display());
        say!("{:<24} {:>12} {:>14} {:>8}", "collection", "documents", "bytes", "months");
        for (name, documents, bytes, months) in &archived {
            say!("{:<24} {:>12} {:>14} {:>8}", name, documents, bytes, months);
        }
    }
    for w in stats.warnings.iter().chain(&archive_warning) {
        say!("warning: {w}");
    }
    Ok(())
}

/// One collection's cold archives: name, documents, bytes, months.
type Archived = (String, u64, u64, usize);

/// The cold archives retention wrote (in `ORB_ARCHIVE_DIR`), per collection: documents, bytes,
/// months; each archive is read and verified. A damaged one is a warning here, not a failure.
fn archived_per_collection(dir: &std::path::Path) -> (Vec<Archived>, Option<String>) {
    match orbstore_ops::retention::cold::list(dir) {
        Ok(archives) => {
            let mut per: Vec<Archived> = Vec::new();
            for a in archives {
                match per.last_mut() {
                    Some(last) if last.0 == a.collection => {
                        last.1 += a.documents;
                        last.2 += a.bytes;
                        last.3 += 1;
                    }
                    _ => per.push((a.collection, a.documents, a.bytes, 1)),
                }
            }
            (per, None)
        }
        Err(e) => {
            (Vec::new(), Some(format!("the cold archives in {} could not be read: {e}", dir.display())))
        }
    }
}
