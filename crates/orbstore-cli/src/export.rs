//! `orb export [--collection NAME]... [--filter JSON] [--format jsonl|json] [--out FILE]
//! [--json]`: documents of the environment's store, streamed (`orbstore_ops::export`). Without
//! `--out` the documents go to stdout and the summary to stderr.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use orbstore::{Error, Filter, Store};
use orbstore_ops::{ExportFormat, ExportOptions, ExportReport};
use serde_json::json;

use crate::bars::Bars;
use crate::output::{self, Channel};

/// The arguments of `orb export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Export this collection (repeat the flag for several); every collection by default.
    /// Exactly one writes its documents as they are; otherwise each is wrapped as
    /// {"collection": NAME, "document": DOC} (or one object of arrays with --format json).
    #[arg(long = "collection", value_name = "NAME")]
    pub collections: Vec<String>,
    /// Only documents matching this filter, e.g. '{"score": {"$gt": 0.5}}'.
    #[arg(long, value_name = "JSON")]
    pub filter: Option<String>,
    /// `jsonl` (one document per line) or `json` (one array).
    #[arg(long, default_value = "jsonl", value_name = "jsonl|json")]
    pub format: String,
    /// Write this file (complete or not at all) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Print the summary as one JSON object (on stderr when the documents go to stdout).
    #[arg(long)]
    pub json: bool,
}

/// Runs the command.
pub async fn run(store: &Store, args: ExportArgs) -> ExitCode {
    let channel = if args.out.is_some() { Channel::Stdout } else { Channel::Stderr };
    let result = async {
        let options = options(&args)?;
        match &args.out {
            Some(path) => orbstore_ops::export_to_file(store, &options, path).await,
            None => {
                let stdout = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout());
                orbstore_ops::export(store, &options, stdout).await.map(|(report, _)| report)
            }
        }
    }
    .await;
    match result {
        Ok(report) => print(&report, &args, channel),
        // `orb export | head`: the reader left; nothing to say, but the export did not finish.
        Err(e) if args.out.is_none() && broken_pipe(&e) => ExitCode::FAILURE,
        Err(e) => output::failure(args.json, channel, "export", &e, Default::default(), &[]),
    }
}

fn options(args: &ExportArgs) -> orbstore::Result<ExportOptions> {
    let filter = match &args.filter {
        None => Filter::all(),
        Some(text) => {
            let value: serde_json::Value = serde_json::from_str(text)
                .map_err(|e| Error::invalid(format!("--filter is not JSON ({e}): {text}")))?;
            Filter::from_json(&value)?
        }
    };
    Ok(ExportOptions {
        collections: args.collections.clone(),
        filter,
        format: ExportFormat::parse(&args.format)
            .map_err(|_| Error::invalid(format!("--format {:?}: choose jsonl or json", args.format)))?,
        // The bar shares stderr with the summary; it is drawn only on a terminal.
        progress: Arc::new(Bars::new(args.json)),
    })
}

fn broken_pipe(e: &Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) {
            return true;
        }
        source = s.source();
    }
    false
}

fn print(r: &ExportReport, args: &ExportArgs, channel: Channel) -> ExitCode {
    let collections: Vec<_> =
        r.collections.iter().map(|(name, n)| json!({"name": name, "documents": n})).collect();
    let fields = output::fields(json!({
        "path": r.path,
        "format": args.format.to_ascii_lowercase(),
        "documents": r.documents,
        "bytes": r.bytes,
        "collections": collections,
        "consistency": r.consistency.as_str(),
        "elapsed_ms": r.elapsed.as_millis() as u64,
    }));
    let names: Vec<&str> = r.collections.iter().map(|(n, _)| n.as_str()).collect();
    let human = vec![format!(
        "Exported {} from {} ({}) to {} in {:.1} s.",
        output::plural(r.documents, "document", "documents"),
        if names.is_empty() { "no collections".to_owned() } else { names.join(", ") },
        output::size(r.bytes),
        r.path.as_ref().map_or_else(|| "stdout".to_owned(), |p| p.display().to_string()),
        r.elapsed.as_secs_f64()
    )];
    output::success(args.json, channel, fields, &human)
}
