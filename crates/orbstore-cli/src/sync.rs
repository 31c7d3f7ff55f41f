//! `orb sync [--wait SECONDS] [--json]`: where the journal's sync to the server stands
//! (`PERSISTENCE_OFFLINE_MODE=true`), and with `--wait` ships everything journaled and waits
//! until the server has it or the time is up. Exit code 0 only when every acknowledged write is
//! on the server (or among the dead letters, which the status lists).
//!
//! The journal belongs to one process at a time (its replica store is locked): run `orb sync`
//! when the application that writes through the journal is stopped, or call
//! `JournalLayer::sync_status()` from inside it.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use orbstore::{Error, Stacked};

use crate::output::{self, Channel};

/// The arguments of `orb sync`.
#[derive(Args, Debug)]
pub struct SyncArgs {
    /// Ship everything journaled and wait until the server has it, at most this many seconds.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub wait: Option<u64>,
    /// Print the status as one JSON object (`ok` says whether it is synced).
    #[arg(long)]
    pub json: bool,
}

/// Runs the command on the store `from_env_stacked()` opened.
pub async fn run(stacked: &Stacked, args: SyncArgs) -> ExitCode {
    let Some(journal) = &stacked.journal else {
        let e = Error::invalid(
            "there is no journal to sync: orb sync reports on the journal of offline mode; set \
             PERSISTENCE_OFFLINE_MODE=true (and ORB_JOURNAL_DIR, default $ORB_DATA_DIR/journal)",
        );
        return output::failure(args.json, Channel::Stdout, "sync", &e, Default::default(), &[]);
    };
    let status = journal.sync_command(args.wait.map(Duration::from_secs)).await;
    let fields = match serde_json::to_value(&status) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => Default::default(),
    };
    let mut human: Vec<String> = status.to_string().lines().map(str::to_owned).collect();
    if !status.synced && args.wait.is_some() {
        human.push(format!("not synced within {} s", args.wait.unwrap_or_default()));
    }
    output::report(args.json, Channel::Stdout, status.synced, fields, &human)
}
