//! `orb user …`: the data-subject map (which collections hold a user's data, at which fields) and
//! the export of one user's data, live and archived (GDPR article 20), over
//! `orbstore_ops::subjects`. The map is the store's own entries plus those of the `orbstore-rl`
//! stores (`orbstore_rl::SUBJECT_FIELDS`); a stored entry wins for its collection.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use orbstore::{Error, Result, Store};
use orbstore_ops::subjects::{self, SubjectMap};
use serde_json::json;

use crate::output::{self, Channel};

/// `orb user`.
#[derive(Args, Debug)]
pub struct UserArgs {
    #[command(subcommand)]
    command: UserCommand,
    /// Print one JSON object as the summary.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// The data-subject map: collections and the fields naming a user.
    Map,
    /// Record that a collection's documents belong to the user named at these fields.
    Register {
        /// The collection.
        collection: String,
        /// Dotted paths naming the user (`_id` when the document's id is the user's).
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Erase one user: their documents in every mapped collection and cold archive, then
    /// compaction; a tombstone (a keyed hash, no personal data) in the erasure ledger. The audit
    /// log is kept.
    Forget {
        /// The user's id.
        user: String,
        /// Also rewrite the backups in BACKUP_DIR that still hold the user, without them.
        #[arg(long)]
        rewrite_backups: bool,
    },
    /// Everything one user has, live and in the cold archives, as one JSON document.
    Export {
        /// The user's id.
        user: String,
        /// Write this file (complete or not at all) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// The data-subject map: the store's entries over `orbstore-rl`'s.
pub async fn map(store: &Store) -> Result<SubjectMap> {
    let mut map: SubjectMap = orbstore_rl::SUBJECT_FIELDS
        .iter()
        .map(|(c, paths)| ((*c).to_owned(), paths.iter().map(|p| (*p).to_owned()).collect()))
        .collect();
    map.extend(subjects::stored_map(&**store).await?);
    Ok(map)
}

/// Runs `orb user`.
pub async fn run(store: &Store, args: UserArgs) -> ExitCode {
    let json = args.json;
    match args.command {
        UserCommand::Map => match map(store).await {
            Ok(m) => {
                let human = m.iter().map(|(c, p)| format!("{c:<24} {}", p.join(", "))).collect::<Vec<_>>();
                output::success(json, Channel::Stdout, output::fields(json!({"map": m})), &human)
            }
            Err(e) => output::failure(json, Channel::Stdout, "user map", &e, Default::default(), &[]),
        },
        UserCommand::Register { collection, paths } => {
            let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
            match subjects::register(&**store, &collection, &refs).await {
                Ok(()) => output::success(
                    json,
                    Channel::Stdout,
                    output::fields(json!({"collection": collection, "paths": paths})),
                    &[format!("{collection}: a user is named at {}", paths.join(", "))],
                ),
                Err(e) => {
                    output::failure(json, Channel::Stdout, "user register", &e, Default::default(), &[])
                }
            }
        }
        UserCommand::Export { user, out } => export(store, &user, out, json).await,
        UserCommand::Forget { user, rewrite_backups } => forget(store, &user, rewrite_backups, json).await,
    }
}

async fn export(store: &Store, user: &str, out: Option<PathBuf>, json: bool) -> ExitCode {
    // The summary goes where the data does not.
    let channel = if out.is_some() { Channel::Stdout } else { Channel::Stderr };
    let archive_dir =
        orbstore_ops::retention::RetentionOptions::from_lookup(|k| std::env::var(k).ok()).archive_dir;
    let result = async {
        let m = map(store).await?;
        let export = subjects::export_user(&**store, &m, user, Some(&archive_dir)).await?;
        let bytes =
            serde_json::to_vec_pretty(&export).map_err(|e| Error::backend("encoding the export", e))?;
        match &out {
            Some(path) => write_atomically(path, &bytes)?,
            None => {
                let mut stdout = std::io::stdout();
                stdout
                    .write_all(&bytes)
                    .and_then(|()| stdout.write_all(b"\n"))
                    .map_err(|e| Error::io("writing to stdout", e))?;
            }
        }
        Ok::<_, Error>(export)
    }
    .await;
    // Audited without the user's id: the audit log is kept for years and never erased.
    let counts = result.as_ref().map(|e| json!({"documents": e.total()}));
    crate::audit::note(&**store, "user-export", "one data subject (id not recorded)", counts).await;
    match result {
        Ok(e) => {
            let live: usize = e.collections.values().map(Vec::len).sum();
            let archived = e.total() - live;
            let to = out.as_ref().map_or_else(|| "stdout".to_owned(), |p| p.display().to_string());
            let fields = output::fields(
                json!({"documents": live, "archived": archived, "collections": e.collections.keys().collect::<Vec<_>>(), "out": to}),
            );
            let human =
                [format!("Exported {live} documents and {archived} archived ones of the user to {to}.")];
            output::success(json, channel, fields, &human)
        }
        // `orb user export … | head`: the reader left; nothing more to say.
        Err(e) if out.is_none() && reader_left(&e) => ExitCode::FAILURE,
        Err(e) => output::failure(json, channel, "user export", &e, Default::default(), &[]),
    }
}

fn reader_left(e: &Error) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

async fn forget(store: &Store, user: &str, rewrite_backups: bool, json: bool) -> ExitCode {
    let archive_dir =
        orbstore_ops::retention::RetentionOptions::from_lookup(|k| std::env::var(k).ok()).archive_dir;
    let result = async {
        let m = map(store).await?;
        let report = subjects::forget_user(&**store, &m, user, Some(&archive_dir)).await?;
        // The backups made before now that still hold the user, rewritten without them if asked.
        let dir = orbstore_ops::BackupOptions::from_env()?.dir;
        let u = user.to_owned();
        let backups = tokio::task::spawn_blocking(move || -> Result<Vec<(PathBuf, Option<u64>)>> {
            subjects::backups_holding(&dir, &m, &u)?
                .into_iter()
                .map(|p| {
                    let removed = if rewrite_backups {
                        Some(subjects::rewrite_backup_without(&p, &m, &u)?)
                    } else {
                        None
                    };
                    Ok((p, removed))
                })
                .collect()
        })
        .await
        .map_err(|e| Error::backend("the backup scan thread failed", e))??;
        Ok::<_, Error>((report, backups))
    }
    .await;
    match &result {
        Ok((r, _)) => {
            let counts = json!({"deleted": r.deleted, "archived_removed": r.archived_removed});
            crate::audit::note(&**store, "erasure", &r.tombstone, Ok(counts)).await
        }
        Err(e) => crate::audit::note(&**store, "erasure", "one data subject (id not recorded)", Err(e)).await,
    }
    match result {
        Ok((r, backups)) => {
            let deleted: u64 = r.deleted.values().sum();
            let archived: u64 = r.archived_removed.values().sum();
            let mut human = vec![format!(
                "Erased {deleted} documents and {archived} archived ones; tombstone {} recorded.",
                r.tombstone
            )];
            human.extend(r.compaction.iter().map(|c| format!("- {c}")));
            for (path, removed) in &backups {
                human.push(match removed {
                    Some(n) => format!("Rewrote the backup {} without the user ({n} documents removed).", path.display()),
                    None => format!(
                        "The backup {} still holds the user until it rotates out (orb restore into this store \
                         leaves them out; --rewrite-backups rewrites it).",
                        path.display()
                    ),
                });
            }
            let mut fields = serde_json::to_value(&r).map(output::fields).unwrap_or_default();
            let listed: Vec<_> = backups
                .iter()
                .map(|(p, removed)| json!({"path": p, "rewritten": removed.is_some(), "removed": removed}))
                .collect();
            fields.insert("backups_holding_the_user".into(), json!(listed));
            output::success(json, Channel::Stdout, fields, &human)
        }
        Err(e) => output::failure(json, Channel::Stdout, "user forget", &e, Default::default(), &[]),
    }
}

/// Writes `<path>.partial`, fsyncs it and renames it over `path`.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let written = (|| {
        let mut f = std::fs::File::create(&partial)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&partial, path)
    })();
    written.map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        Error::io(format!("writing {}", path.display()), e)
    })
}
