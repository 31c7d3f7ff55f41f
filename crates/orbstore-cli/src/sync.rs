//! `orb sync [--wait SECONDS] [--json]`: where the journal's sync to the server stands
//! (`PERSISTENCE_OFFLINE_MODE=true`), and with `--wait` ships everything journaled and waits
//! until the server has it or the time is up. Exit code 0 only when every acknowledged write is
//! on the server (or among the dead letters, which the status lists).
//!
//! The journal belongs to one process at a time (its replica store is locked): run `orb sync`
//! when the application that writes through the journal is stopped, or call
//! `JournalLayer::sync_status()` from inside it.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use orbstore::{Error, JournalLayer, Stacked};

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
    let status = match args.wait {
        Some(secs) => {
            let (bar, drawing) = waiting_bar(journal, args.json);
            let status = journal.sync_command(Some(Duration::from_secs(secs))).await;
            drawing.abort();
            bar.finish_and_clear();
            status
        }
        None => journal.sync_command(None).await,
    };
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

/// While `--wait` waits: a bar on stderr of the writes shipped out of those pending at the
/// start, redrawn from the status every 200 ms by the task returned (nothing with `--json`, and
/// indicatif draws nothing off a terminal).
fn waiting_bar(journal: &Arc<JournalLayer>, quiet: bool) -> (ProgressBar, tokio::task::JoinHandle<()>) {
    let start = journal.sync_status().pending_writes;
    let target = if quiet { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() };
    let bar = ProgressBar::with_draw_target(Some(start), target);
    bar.set_style(
        ProgressStyle::with_template("shipping to the server {bar:30} {pos}/{len} writes  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let (journal, drawn) = (journal.clone(), bar.clone());
    let task = tokio::spawn(async move {
        loop {
            let status = journal.sync_status();
            drawn.set_position(start.saturating_sub(status.pending_writes));
            // The count only: a whole error message would wrap the bar on a narrow terminal.
            let retrying = status.failed_attempts > 0 && status.last_error.is_some();
            drawn.set_message(if retrying {
                format!("server unreachable, {} failed attempts", status.failed_attempts)
            } else {
                String::new()
            });
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    (bar, task)
}
