//! `orb retention …` (policies kept in the store, and their run) and `orb archive …` (the cold
//! archives retention writes, in `ORB_ARCHIVE_DIR`, default `./archives`), over
//! `orbstore_ops::retention`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use orbstore::{Error, Result, Store};
use orbstore_ops::retention::{self, cold, presets, Action, RetentionOptions, RetentionPolicy, TimeUnit};
use serde_json::{json, Map, Value};

use crate::bars::Bars;
use crate::output::{self, Channel};

/// `orb retention`.
#[derive(Args, Debug)]
pub struct RetentionArgs {
    #[command(subcommand)]
    command: RetentionCommand,
    /// Print one JSON object instead of a summary.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
enum RetentionCommand {
    /// The stored policies.
    List,
    /// Store (or replace) one collection's policy.
    Set(SetArgs),
    /// Store a preset: `sml-guardian` (needs --time-field and --unit) or `experience-events`.
    Preset {
        /// `sml-guardian` or `experience-events`.
        name: String,
        /// The time field of the SML Guardian collections.
        #[arg(long)]
        time_field: Option<String>,
        /// Its unit: seconds, millis, micros or rfc3339.
        #[arg(long)]
        unit: Option<String>,
    },
    /// Remove one collection's policy.
    Remove {
        /// The collection.
        collection: String,
    },
    /// Apply the policies: delete (or archive, then delete) what is due.
    Run {
        /// Report what is due, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Only this collection's policy (repeat the flag for several).
        #[arg(long = "collection", value_name = "NAME")]
        collections: Vec<String>,
    },
}

#[derive(Args, Debug)]
struct SetArgs {
    /// The collection.
    collection: String,
    /// The field holding each document's time (a dotted path).
    #[arg(long)]
    time_field: String,
    /// How it is read: seconds, millis, micros or rfc3339.
    #[arg(long)]
    unit: String,
    /// The oldest a document may get, e.g. 90d, 2years, 12h.
    #[arg(long)]
    max_age: Option<String>,
    /// Keep only the newest N documents (per --group-by value).
    #[arg(long, value_name = "N")]
    keep_newest: Option<u64>,
    /// The field whose value makes a group for --keep-newest.
    #[arg(long, requires = "keep_newest")]
    group_by: Option<String>,
    /// Archive due documents (zstd month files in ORB_ARCHIVE_DIR) before deleting them.
    #[arg(long)]
    archive: bool,
}

/// `orb archive`.
#[derive(Args, Debug)]
pub struct ArchiveArgs {
    #[command(subcommand)]
    command: ArchiveCommand,
}

#[derive(Subcommand, Debug)]
enum ArchiveCommand {
    /// Every cold archive file, verified: collection, month, documents, bytes.
    List {
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print a collection's archived documents as JSON lines on stdout.
    Read {
        /// The collection.
        collection: String,
        /// From this month on (YYYY-MM).
        #[arg(long)]
        from: Option<String>,
        /// Up to this month (YYYY-MM), included.
        #[arg(long)]
        to: Option<String>,
    },
}

fn archive_dir() -> PathBuf {
    RetentionOptions::from_lookup(|k| std::env::var(k).ok()).archive_dir
}

/// Runs `orb retention`.
pub async fn run(store: &Store, args: RetentionArgs) -> ExitCode {
    let json = args.json;
    let result = match args.command {
        RetentionCommand::List => list(store).await,
        RetentionCommand::Set(set) => match policy_of(&set) {
            Ok(p) => store_policies(store, vec![p]).await,
            Err(e) => Err(e),
        },
        RetentionCommand::Preset { name, time_field, unit } => match preset(&name, time_field, unit) {
            Ok(ps) => store_policies(store, ps).await,
            Err(e) => Err(e),
        },
        RetentionCommand::Remove { collection } => {
            let removed = retention::remove_policy(&**store, &collection).await;
            if !matches!(removed, Ok(false)) {
                let counts = removed.as_ref().map(|_| json!({"removed": true}));
                crate::audit::note(&**store, "retention-policy", &collection, counts).await;
            }
            removed.map(|removed| {
                let human = if removed {
                    format!("Removed the retention policy of {collection}.")
                } else {
                    format!("{collection} had no retention policy.")
                };
                (output::fields(json!({"collection": collection, "removed": removed})), vec![human])
            })
        }
        RetentionCommand::Run { dry_run, collections } => {
            let result = apply(store, dry_run, collections, json).await;
            // A dry run changes nothing, so it is not an operation to audit.
            if !dry_run {
                let counts = result.as_ref().map(|(fields, _)| audit_counts(fields));
                crate::audit::note(&**store, "retention", "every policy", counts).await;
            }
            result
        }
    };
    match result {
        Ok((fields, human)) => output::success(json, Channel::Stdout, fields, &human),
        Err(e) => output::failure(json, Channel::Stdout, "retention", &e, Default::default(), &[]),
    }
}

type Report = (serde_json::Map<String, serde_json::Value>, Vec<String>);

/// A run's audit figures: deleted and archived per collection.
fn audit_counts(fields: &Map<String, Value>) -> Value {
    let per: Map<String, Value> = fields
        .get("collections")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let name = c.get("collection")?.as_str()?.to_owned();
            Some((name, json!({"deleted": c.get("deleted"), "archived": c.get("archived")})))
        })
        .collect();
    Value::Object(per)
}

fn describe(p: &RetentionPolicy) -> String {
    let mut rule = Vec::new();
    if let Some(age) = p.max_age {
        rule.push(format!("older than {}", humantime::format_duration(age)));
    }
    if let Some(k) = &p.keep_newest {
        rule.push(match &k.group_by {
            Some(g) => format!("beyond the newest {} per {g}", k.count),
            None => format!("beyond the newest {}", k.count),
        });
    }
    format!(
        "{:<24} {} documents {} by {} ({})",
        p.collection,
        p.action.as_str(),
        rule.join(" or "),
        p.time_field,
        p.unit.as_str()
    )
}

async fn list(store: &Store) -> Result<Report> {
    let policies = retention::policies(&**store).await?;
    let mut human: Vec<String> = policies.iter().map(describe).collect();
    if human.is_empty() {
        human.push("No retention policies.".to_owned());
    }
    Ok((output::fields(json!({"policies": policies})), human))
}

async fn store_policies(store: &Store, policies: Vec<RetentionPolicy>) -> Result<Report> {
    // All checked before any is stored.
    for p in &policies {
        p.validate()?;
    }
    for p in &policies {
        let stored = retention::set_policy(&**store, p).await;
        let counts = stored.as_ref().map(|()| serde_json::to_value(p).unwrap_or_default());
        crate::audit::note(&**store, "retention-policy", &p.collection, counts).await;
        stored?;
    }
    let human = policies.iter().map(|p| format!("Stored: {}", describe(p))).collect();
    Ok((output::fields(json!({"stored": policies})), human))
}

fn policy_of(a: &SetArgs) -> Result<RetentionPolicy> {
    let unit = TimeUnit::parse(&a.unit).map_err(|e| Error::invalid(format!("--unit: {}", e.message())))?;
    let max_age = a.max_age.as_deref().map(parse_age).transpose()?;
    if max_age.is_none() && a.keep_newest.is_none() {
        return Err(Error::invalid("give --max-age, --keep-newest, or both"));
    }
    let action = if a.archive { Action::Archive } else { Action::Delete };
    let mut p = RetentionPolicy::max_age(&a.collection, &a.time_field, unit, Duration::from_secs(1), action);
    p.max_age = max_age;
    if let Some(n) = a.keep_newest {
        p = p.keeping_newest(n, a.group_by.as_deref());
    }
    Ok(p)
}

fn parse_age(s: &str) -> Result<Duration> {
    humantime::parse_duration(s)
        .map_err(|e| Error::invalid(format!("--max-age {s:?}: {e} (write e.g. 90d, 2years, 12h)")))
}

fn preset(name: &str, time_field: Option<String>, unit: Option<String>) -> Result<Vec<RetentionPolicy>> {
    match name {
        "experience-events" => Ok(vec![presets::experience_events()]),
        "sml-guardian" => {
            let (Some(field), Some(unit)) = (time_field, unit) else {
                return Err(Error::invalid(
                    "the sml-guardian preset needs --time-field and --unit (the field its collections keep their times in)",
                ));
            };
            let unit =
                TimeUnit::parse(&unit).map_err(|e| Error::invalid(format!("--unit: {}", e.message())))?;
            Ok(presets::sml_guardian(&field, unit))
        }
        other => Err(Error::invalid(format!(
            "no preset {other:?}: the presets are sml-guardian, experience-events"
        ))),
    }
}

async fn apply(store: &Store, dry_run: bool, collections: Vec<String>, json: bool) -> Result<Report> {
    let mut options = RetentionOptions::from_lookup(|k| std::env::var(k).ok());
    options.dry_run = dry_run;
    options.collections = collections;
    options.progress = Arc::new(Bars::new(json));
    let report = retention::run(store, &options).await?;
    let verb = if dry_run { "due" } else { "removed" };
    let mut human: Vec<String> = report
        .collections
        .iter()
        .map(|c| {
            let span = match (&c.oldest, &c.newest) {
                (Some(o), Some(n)) => format!(", from {o} to {n}"),
                _ => String::new(),
            };
            let archived =
                if c.archived > 0 { format!(" ({} archived first)", c.archived) } else { String::new() };
            let unreadable = if c.unreadable_time > 0 {
                format!("; {} kept: no readable time", c.unreadable_time)
            } else {
                String::new()
            };
            let n = if dry_run { c.due } else { c.deleted };
            let unit = if c.before_2000 * 2 > c.due {
                format!(
                    "; warning: {} of them date from before 2000, is the unit right? (a real run refuses)",
                    c.before_2000
                )
            } else {
                String::new()
            };
            format!("{:<24} {n} {verb}{archived}{span}{unreadable}{unit}", c.collection)
        })
        .collect();
    if human.is_empty() {
        human.push("No retention policies: nothing to do (orb retention set …).".to_owned());
    } else if dry_run {
        human.push(format!("Dry run: nothing changed; {} documents are due.", report.total_due()));
    }
    let fields = serde_json::to_value(&report).map(output::fields).unwrap_or_default();
    Ok((fields, human))
}

/// Runs `orb archive`.
pub fn archive(args: ArchiveArgs) -> ExitCode {
    let dir = archive_dir();
    match args.command {
        ArchiveCommand::List { json } => match cold::list(&dir) {
            Ok(archives) => {
                let mut human: Vec<String> = archives
                    .iter()
                    .map(|a| {
                        format!(
                            "{:<24} {}  {:>10}  {:>10}  {}",
                            a.collection,
                            a.period,
                            output::plural(a.documents, "document", "documents"),
                            output::size(a.bytes),
                            a.path.display()
                        )
                    })
                    .collect();
                if human.is_empty() {
                    human.push(format!("No cold archives in {}.", dir.display()));
                }
                let fields = output::fields(json!({"dir": dir, "archives": archives}));
                output::success(json, Channel::Stdout, fields, &human)
            }
            Err(e) => output::failure(json, Channel::Stdout, "archive list", &e, Default::default(), &[]),
        },
        ArchiveCommand::Read { collection, from, to } => {
            let check = |m: &Option<String>, flag: &str| -> Result<()> {
                match m {
                    Some(v)
                        if !(v.len() == 7
                            && v.as_bytes()[4] == b'-'
                            && v.replace('-', "").bytes().all(|b| b.is_ascii_digit())) =>
                    {
                        Err(Error::invalid(format!("{flag} {v:?}: write a month as YYYY-MM")))
                    }
                    _ => Ok(()),
                }
            };
            let mut out = std::io::BufWriter::new(std::io::stdout());
            // `orb archive read … | head`: the reader left; stop quietly, without an error line.
            let mut reader_left = false;
            let mut put = |out: &mut std::io::BufWriter<std::io::Stdout>, doc: &orbstore::Document| {
                let mut line = serde_json::to_vec(doc).unwrap_or_default();
                line.push(b'\n');
                out.write_all(&line).map_err(|e| {
                    reader_left |= e.kind() == std::io::ErrorKind::BrokenPipe;
                    Error::io("writing to stdout", e)
                })
            };
            let result = check(&from, "--from").and_then(|()| check(&to, "--to")).and_then(|()| {
                cold::read(&dir, &collection, from.as_deref(), to.as_deref(), |doc| put(&mut out, &doc))
            });
            let flushed = out.flush();
            if reader_left || flushed.as_ref().is_err_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) {
                return ExitCode::FAILURE;
            }
            match (result, flushed) {
                (Ok(n), Ok(())) => {
                    eprintln!(
                        "{} of {collection} read from {}.",
                        output::plural(n, "document", "documents"),
                        dir.display()
                    );
                    ExitCode::SUCCESS
                }
                (Err(e), _) => {
                    eprintln!("orb archive read: {e}");
                    ExitCode::FAILURE
                }
                (_, Err(e)) => {
                    eprintln!("orb archive read: writing to stdout: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
