//! The audit records the `orb` commands write (`orbstore_ops::audit`), and `orb audit`, which
//! prints them.

use std::process::ExitCode;

use clap::Args;
use orbstore::{Error, PersistenceBackend, Store};
use orbstore_ops::audit::{self, AuditRecord};
use serde_json::{json, Map, Value};

use crate::output::{self, Channel};

/// Appends the record of an operation; a failure to write it is said on stderr (the operation
/// itself is done and keeps its exit code).
pub async fn note(store: &dyn PersistenceBackend, what: &str, target: &str, outcome: Result<Value, &Error>) {
    let counts = outcome.map(|v| match v {
        Value::Object(m) => m,
        _ => Map::new(),
    });
    let record = AuditRecord::new(what, target, counts);
    if let Err(e) = audit::record(store, &record).await {
        eprintln!("orb: warning: the audit record of this {what} could not be written: {e}");
    }
}

/// `orb audit`.
#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Only the newest N records.
    #[arg(long, value_name = "N")]
    pub last: Option<usize>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Prints the audit log of the store.
pub async fn run(store: &Store, args: AuditArgs) -> ExitCode {
    match audit::records(&**store, args.last).await {
        Ok(records) => {
            let mut human: Vec<String> = records
                .iter()
                .map(|r| {
                    let detail = match &r.error {
                        Some(e) => format!(": {e}"),
                        None if r.counts.is_empty() => String::new(),
                        None => format!(" {}", Value::Object(r.counts.clone())),
                    };
                    format!(
                        "{}  {:<16} {:<7} by {:<10} on {}{detail}",
                        r.at, r.what, r.outcome, r.who, r.target
                    )
                })
                .collect();
            if human.is_empty() {
                human.push("The audit log is empty.".to_owned());
            }
            output::success(args.json, Channel::Stdout, output::fields(json!({"records": records})), &human)
        }
        Err(e) => output::failure(args.json, Channel::Stdout, "audit", &e, Default::default(), &[]),
    }
}
