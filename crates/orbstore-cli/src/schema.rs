//! `orb schema set|show|list|remove|install` (the collections' JSON Schemas kept in the store,
//! `orbstore_schema`) and `orb validate [--collection NAME] [--fix]` (`orbstore_ops::validate`).
//! Every change of a schema and every repair is recorded in the audit log.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use orbstore::{Error, Result, Store};
use orbstore_ops::validate::{validate, ValidateOptions, ValidateReport};
use orbstore_schema::{
    get_schema, list_schemas, remove_schema, set_schema, Mode, SchemaEntry, SCHEMAS_COLLECTION,
};
use serde_json::{json, Map, Value};

use crate::bars::Bars;
use crate::output::{self, Channel};

/// `orb schema`.
#[derive(Args, Debug)]
pub struct SchemaArgs {
    #[command(subcommand)]
    command: SchemaCommand,
    /// Print one JSON object instead of a summary.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
enum SchemaCommand {
    /// The stored schemas: collection, mode, when set.
    List,
    /// One collection's schema, as JSON.
    Show {
        /// The collection.
        collection: String,
    },
    /// Store (or replace) a collection's schema from a JSON file (`-` reads stdin). Stored
    /// documents are not checked: `orb validate` reports them.
    Set {
        /// The collection.
        collection: String,
        /// The JSON Schema file.
        file: PathBuf,
        /// What a failing write does: strict (refused), warn (written, logged), off.
        #[arg(long, default_value = "strict")]
        mode: String,
    },
    /// Change only the mode of a stored schema.
    Mode {
        /// The collection.
        collection: String,
        /// strict, warn or off.
        mode: String,
    },
    /// Remove a collection's schema.
    Remove {
        /// The collection.
        collection: String,
    },
    /// Store the schemas that ship with orbstore: `rl` (the orbstore-rl stores, Orb's Luna and
    /// Te shapes included).
    Install {
        /// `rl`.
        set: String,
        /// The mode of each (default warn: existing applications keep writing while
        /// `orb validate` shows what does not match).
        #[arg(long, default_value = "warn")]
        mode: String,
    },
}

/// Runs `orb schema`.
pub async fn run(store: &Store, args: SchemaArgs) -> ExitCode {
    let json = args.json;
    match command(store, args.command).await {
        Ok((fields, human)) => output::success(json, Channel::Stdout, fields, &human),
        Err(e) => output::failure(json, Channel::Stdout, "schema", &e, Map::new(), &[]),
    }
}

async fn command(store: &Store, command: SchemaCommand) -> Result<(Map<String, Value>, Vec<String>)> {
    let store: &dyn orbstore::PersistenceBackend = &**store;
    let has_schemas = store.list_collections().await?.iter().any(|c| c == SCHEMAS_COLLECTION);
    match command {
        SchemaCommand::List => {
            let entries = if has_schemas { list_schemas(store).await? } else { Vec::new() };
            let mut human: Vec<String> = entries
                .iter()
                .map(|e| format!("{:<28} {:<7} set {}", e.collection, e.mode.as_str(), e.updated_at))
                .collect();
            if human.is_empty() {
                human.push("No schemas (orb schema set COLLECTION FILE, or orb schema install rl).".into());
            }
            let list: Vec<Value> = entries
                .iter()
                .map(|e| json!({"collection": e.collection, "mode": e.mode, "updated_at": e.updated_at}))
                .collect();
            Ok((fields(json!({"schemas": list})), human))
        }
        SchemaCommand::Show { collection } => {
            let entry = if has_schemas { get_schema(store, &collection).await? } else { None };
            let entry = entry.ok_or_else(|| Error::not_found(format!("{collection:?} has no schema")))?;
            let pretty = serde_json::to_string_pretty(&entry.schema).unwrap_or_default();
            let human = vec![
                format!("{} ({}, set {}):", entry.collection, entry.mode.as_str(), entry.updated_at),
                pretty,
            ];
            Ok((fields(serde_json::to_value(&entry).unwrap_or_default()), human))
        }
        SchemaCommand::Set { collection, file, mode } => {
            let mode = Mode::parse(&mode)?;
            let text = read_input(&file)?;
            let schema: Value = serde_json::from_str(&text)
                .map_err(|e| Error::invalid(format!("{}: not JSON: {e}", file.display())))?;
            let entry = SchemaEntry::new(collection, schema, mode);
            let result = set_schema(store, &entry).await;
            audited(store, "schema-set", &entry.collection, json!({"mode": mode}), result).await?;
            let human = vec![format!("Stored the schema of {} ({}).", entry.collection, mode.as_str())];
            Ok((fields(json!({"collection": entry.collection, "mode": mode})), human))
        }
        SchemaCommand::Mode { collection, mode } => {
            let mode = Mode::parse(&mode)?;
            let entry = if has_schemas { get_schema(store, &collection).await? } else { None };
            let entry = entry.ok_or_else(|| Error::not_found(format!("{collection:?} has no schema")))?;
            let entry = SchemaEntry::new(entry.collection, entry.schema, mode);
            let result = set_schema(store, &entry).await;
            audited(store, "schema-mode", &entry.collection, json!({"mode": mode}), result).await?;
            Ok((
                fields(json!({"collection": collection, "mode": mode})),
                vec![format!("{collection}: {}.", mode.as_str())],
            ))
        }
        SchemaCommand::Remove { collection } => {
            let removed = has_schemas && remove_schema(store, &collection).await?;
            audited(store, "schema-remove", &collection, json!({"removed": removed}), Ok(())).await?;
            let human = vec![if removed {
                format!("Removed the schema of {collection}.")
            } else {
                format!("{collection} had no schema.")
            }];
            Ok((fields(json!({"collection": collection, "removed": removed})), human))
        }
        SchemaCommand::Install { set, mode } => {
            let mode = Mode::parse(&mode)?;
            let shipped: &[(&str, &str)] = match set.as_str() {
                "rl" => orbstore_rl::SCHEMAS,
                other => {
                    return Err(Error::invalid(format!("no shipped schema set {other:?}: the set is rl")))
                }
            };
            let mut installed = Vec::new();
            for (collection, text) in shipped {
                let schema: Value = serde_json::from_str(text).map_err(|e| {
                    Error::corrupt(format!("the shipped schema of {collection} is not JSON: {e}"))
                })?;
                set_schema(store, &SchemaEntry::new(*collection, schema, mode)).await?;
                installed.push(*collection);
            }
            let counts = json!({"set": set, "mode": mode, "collections": installed});
            audited(store, "schema-install", &set, counts.clone(), Ok(())).await?;
            let human = vec![format!(
                "Stored {} schemas ({}): {}.",
                installed.len(),
                mode.as_str(),
                installed.join(", ")
            )];
            Ok((fields(counts), human))
        }
    }
}

/// The arguments of `orb validate`.
#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// Only this collection (it must have a schema); default: every collection with one.
    #[arg(long)]
    pub collection: Option<String>,
    /// Repair what the documented rules can (numbers from strings, clamping, defaults, dropping
    /// forbidden properties, duplicates) and write only documents that then validate.
    #[arg(long)]
    pub fix: bool,
    /// List at most this many failing documents per collection (all are counted).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
}

/// Runs `orb validate`: exit 0 only when no failing document is left.
pub async fn validate_command(store: &Store, args: ValidateArgs) -> ExitCode {
    let options = ValidateOptions {
        collection: args.collection.clone(),
        fix: args.fix,
        max_listed: args.limit,
        progress: Arc::new(Bars::new(args.json)),
    };
    let result = validate(&**store, &options).await;
    if args.fix {
        let counts = result.as_ref().map(|r| {
            let (fixed, unfixable): (u64, u64) =
                r.collections.iter().fold((0, 0), |(f, u), c| (f + c.fixed, u + c.unfixable));
            json!({"fixed": fixed, "unfixable": unfixable})
        });
        let target = args.collection.as_deref().unwrap_or("every collection with a schema");
        crate::audit::note(&**store, "validate-fix", target, counts).await;
    }
    match result {
        Ok(report) => {
            let fields = serde_json::to_value(&report).map(output::fields).unwrap_or_default();
            let human = human(&report);
            if report.remaining() == 0 {
                output::success(args.json, Channel::Stdout, fields, &human)
            } else {
                let e =
                    Error::invalid(format!("{} document(s) do not match their schema", report.remaining()));
                // The report is the output; the failure only sets `ok` and the exit code.
                if args.json {
                    output::failure(true, Channel::Stdout, "validate", &e, fields, &[])
                } else {
                    for l in &human {
                        output::line(Channel::Stdout, l);
                    }
                    output::line(Channel::Stderr, &format!("orb validate: {e}"));
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => output::failure(args.json, Channel::Stdout, "validate", &e, Map::new(), &[]),
    }
}

fn human(report: &ValidateReport) -> Vec<String> {
    if report.collections.is_empty() {
        return vec!["No collection has a schema (orb schema set, orb schema install rl).".into()];
    }
    let mut lines = Vec::new();
    for c in &report.collections {
        let mut head =
            format!("{} ({}): {} scanned, {} failing", c.collection, c.mode.as_str(), c.scanned, c.invalid);
        if report.fix {
            head.push_str(&format!(", {} fixed, {} not fixable", c.fixed, c.unfixable));
        }
        lines.push(head);
        for d in &c.documents {
            let state = match (report.fix, d.fixed) {
                (false, _) => "",
                (true, true) => " fixed:",
                (true, false) => " not fixed:",
            };
            lines.push(format!("  {}{state}", d.id));
            for ch in &d.changes {
                lines.push(format!(
                    "    {} {}: {}",
                    ch.rule,
                    if ch.path.is_empty() { "/" } else { &ch.path },
                    ch.detail
                ));
            }
            for v in &d.violations {
                lines.push(format!("    {v}"));
            }
        }
        let unlisted = c.invalid.saturating_sub(c.documents.len() as u64);
        if unlisted > 0 {
            lines.push(format!("  ... and {unlisted} more (--limit)"));
        }
    }
    lines
}

fn fields(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn read_input(file: &PathBuf) -> Result<String> {
    if file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| Error::io("reading stdin", e))?;
        return Ok(s);
    }
    std::fs::read_to_string(file).map_err(|e| Error::io(format!("reading {}", file.display()), e))
}

/// Records a schema change in the audit log, then returns its result.
async fn audited(
    store: &dyn orbstore::PersistenceBackend,
    what: &str,
    target: &str,
    counts: Value,
    result: Result<()>,
) -> Result<()> {
    crate::audit::note(store, what, target, result.as_ref().map(|_| counts)).await;
    result
}
