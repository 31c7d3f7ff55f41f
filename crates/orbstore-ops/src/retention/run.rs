//! Running the policies: find what is due, archive it (durably) when the policy says so, then
//! delete it in bounded batches.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::TryStreamExt;
use orbstore_core::{
    id_of, CollectionRef, Document, Error, Filter, PersistenceBackend, Projection, Query, Result, ID_FIELD,
};
use serde::Serialize;
use serde_json::Value;

use super::cold;
use super::policy::{policies, value_at, Action, RetentionPolicy};
use crate::progress::{NoProgress, Progress, Unit};

/// Documents deleted per statement: no single statement deletes millions.
pub const DELETE_BATCH: usize = 1_000;
/// Documents archived per round (fetched, merged into the month files, made durable, then
/// deleted): what the run holds in memory at once.
pub const ARCHIVE_ROUND: usize = 10_000;

/// How to run.
#[derive(Clone)]
pub struct RetentionOptions {
    /// The time the ages are measured from (a test passes its own clock's).
    pub now: SystemTime,
    /// Report what is due without changing anything.
    pub dry_run: bool,
    /// Where cold archives go (`ORB_ARCHIVE_DIR`, default `./archives`).
    pub archive_dir: PathBuf,
    /// Only these collections' policies (empty: every policy).
    pub collections: Vec<String>,
    /// Progress of each collection's deletes.
    pub progress: Arc<dyn Progress>,
}

impl RetentionOptions {
    /// Now, for real, archives in `archive_dir`, every policy.
    pub fn new(archive_dir: impl Into<PathBuf>) -> RetentionOptions {
        RetentionOptions {
            now: SystemTime::now(),
            dry_run: false,
            archive_dir: archive_dir.into(),
            collections: Vec::new(),
            progress: Arc::new(NoProgress),
        }
    }

    /// `ORB_ARCHIVE_DIR` (default `./archives`) through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> RetentionOptions {
        let dir =
            lookup(ARCHIVE_DIR_VAR).filter(|v| !v.trim().is_empty()).unwrap_or_else(|| "./archives".into());
        RetentionOptions::new(dir)
    }
}

/// 2000-01-01T00:00:00Z in microseconds since the epoch.
const YEAR_2000_MICROS: i128 = 946_684_800_000_000;

/// The variable naming the cold archives' directory.
pub const ARCHIVE_DIR_VAR: &str = "ORB_ARCHIVE_DIR";

/// What a run did (or, dry, would do) to one collection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectionRetention {
    /// The collection.
    pub collection: String,
    /// `delete` or `archive`.
    pub action: &'static str,
    /// Documents due.
    pub due: u64,
    /// Of those, deleted (0 in a dry run).
    pub deleted: u64,
    /// Of those, written to cold archives first (0 in a dry run).
    pub archived: u64,
    /// The oldest and newest time among the due documents (RFC 3339).
    pub oldest: Option<String>,
    /// See `oldest`.
    pub newest: Option<String>,
    /// Documents kept because their time field is missing or does not read in the policy's unit.
    pub unreadable_time: u64,
    /// Due documents whose time reads as before 2000: most of them means a wrong unit (seconds
    /// read as milliseconds give January 1970), which a real run refuses.
    pub before_2000: u64,
    /// The cold archive files written.
    pub archives: Vec<PathBuf>,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetentionReport {
    /// Nothing was changed.
    pub dry_run: bool,
    /// One entry per policy run, by collection name.
    pub collections: Vec<CollectionRetention>,
    /// How long it took.
    #[serde(serialize_with = "millis", rename = "elapsed_ms")]
    pub elapsed: Duration,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

impl RetentionReport {
    /// Documents due in all.
    pub fn total_due(&self) -> u64 {
        self.collections.iter().map(|c| c.due).sum()
    }
}

fn rfc3339(micros: i128) -> String {
    let t = UNIX_EPOCH + Duration::from_micros(micros.clamp(0, i128::from(u64::MAX)) as u64);
    humantime::format_rfc3339_micros(t).to_string()
}

/// Runs every stored policy (or those of `options.collections`) over `store`.
///
/// Safety across a crash: an archived document is deleted only after its month file is fsynced
/// and renamed into place; a crash between the two leaves it both archived and stored, and the
/// next run archives it again (replacing its copy) and deletes it. A document's time is read
/// again just before its batch is deleted, so one updated meanwhile to a newer time stays.
pub async fn run(store: &Arc<dyn PersistenceBackend>, options: &RetentionOptions) -> Result<RetentionReport> {
    let started = Instant::now();
    let mut chosen = policies(&**store).await?;
    if !options.collections.is_empty() {
        for c in &options.collections {
            if !chosen.iter().any(|p| &p.collection == c) {
                return Err(Error::invalid(format!("no retention policy for collection {c:?}")));
            }
        }
        chosen.retain(|p| options.collections.contains(&p.collection));
    }
    let existing = store.list_collections().await?;
    let now = options.now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i128);
    let mut report =
        RetentionReport { dry_run: options.dry_run, collections: Vec::new(), elapsed: Duration::ZERO };
    for policy in chosen {
        let mut out = CollectionRetention {
            collection: policy.collection.clone(),
            action: policy.action.as_str(),
            due: 0,
            deleted: 0,
            archived: 0,
            oldest: None,
            newest: None,
            unreadable_time: 0,
            before_2000: 0,
            archives: Vec::new(),
        };
        if existing.contains(&policy.collection) {
            let coll = store.collection(&policy.collection).await?;
            let cutoff = policy.max_age.map(|age| now - age.as_micros() as i128);
            let (due, unreadable) = find_due(&coll, &policy, cutoff).await?;
            out.due = due.len() as u64;
            out.unreadable_time = unreadable;
            out.oldest = due.iter().map(|(_, t)| *t).min().map(rfc3339);
            out.newest = due.iter().map(|(_, t)| *t).max().map(rfc3339);
            out.before_2000 = due.iter().filter(|(_, t)| *t < YEAR_2000_MICROS).count() as u64;
            if !options.dry_run && out.before_2000 * 2 > out.due {
                return Err(Error::invalid(format!(
                    "{} of the {} documents of {:?} due under its policy date from before 2000 (the oldest {}): \
                     the unit {:?} is probably wrong for {:?}; nothing was deleted. Fix the policy \
                     (orb retention set …), or check with --dry-run",
                    out.before_2000,
                    out.due,
                    policy.collection,
                    out.oldest.as_deref().unwrap_or("?"),
                    policy.unit.as_str(),
                    policy.time_field
                )));
            }
            if !options.dry_run && !due.is_empty() {
                apply(store, &coll, &policy, cutoff, due, options, &mut out).await.map_err(|e| {
                    Error::new(
                        e.kind(),
                        format!(
                            "retention of {:?} stopped after {} deleted and {} archived: {}",
                            policy.collection,
                            out.deleted,
                            out.archived,
                            e.message()
                        ),
                    )
                    .with_source(e)
                })?;
            }
        }
        report.collections.push(out);
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The due documents' ids and times (in `_id` order), and how many were kept for an unreadable
/// time. Only ids, times and group values are held in memory.
async fn find_due(
    coll: &CollectionRef,
    policy: &RetentionPolicy,
    cutoff: Option<i128>,
) -> Result<(Vec<(String, i128)>, u64)> {
    let mut paths = vec![policy.time_field.clone()];
    let group = policy.keep_newest.as_ref().and_then(|k| k.group_by.clone());
    paths.extend(group.clone());
    // Without a newest-N cap, a numeric unit lets the backend find the old ones (and use an
    // index on the time field); the unreadable ones are then not seen, so not counted.
    let filter = match (cutoff, &policy.keep_newest, policy.unit.number(cutoff.unwrap_or(0))) {
        (Some(_), None, Some(bound)) => Filter::lt(policy.time_field.clone(), bound),
        _ => Filter::all(),
    };
    let query = Query::new(filter).project(Projection::include(paths));
    let mut stream = coll.find_stream(&query).await?;
    let mut due = Vec::new();
    let mut unreadable = 0;
    let mut groups: HashMap<String, Vec<(i128, String)>> = HashMap::new();
    while let Some(doc) = stream.try_next().await? {
        let Some(id) = id_of(&doc).map(str::to_owned) else { continue };
        let Some(t) = value_at(&doc, &policy.time_field).and_then(|v| policy.unit.read(v)) else {
            unreadable += 1;
            continue;
        };
        if cutoff.is_some_and(|c| t < c) {
            due.push((id, t));
        } else if policy.keep_newest.is_some() {
            let key =
                group.as_deref().and_then(|g| value_at(&doc, g)).map_or(String::new(), Value::to_string);
            groups.entry(key).or_default().push((t, id));
        }
    }
    if let Some(keep) = &policy.keep_newest {
        for (_, mut members) in groups {
            // Newest first; equal times by id, so the choice is the same on every run.
            members.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            due.extend(members.into_iter().skip(keep.count as usize).map(|(t, id)| (id, t)));
        }
        due.sort();
    }
    Ok((due, unreadable))
}

/// Archives (when asked) and deletes the due documents, round by round.
async fn apply(
    store: &Arc<dyn PersistenceBackend>,
    coll: &CollectionRef,
    policy: &RetentionPolicy,
    cutoff: Option<i128>,
    due: Vec<(String, i128)>,
    options: &RetentionOptions,
    out: &mut CollectionRetention,
) -> Result<()> {
    let progress = &options.progress;
    progress.begin(&format!("retention {}", policy.collection), Some(due.len() as u64), Unit::Documents);
    let by_age_only = policy.keep_newest.is_none();
    // The archive directory is this run's alone while it archives (see `cold::lock`).
    let _lock = match policy.action {
        Action::Archive => {
            let dir = options.archive_dir.clone();
            Some(
                tokio::task::spawn_blocking(move || cold::lock(&dir))
                    .await
                    .map_err(|e| Error::backend("the archive lock thread failed", e))??,
            )
        }
        Action::Delete => None,
    };
    for round in due.chunks(ARCHIVE_ROUND) {
        let ids: Vec<String> = match policy.action {
            Action::Delete => round.iter().map(|(id, _)| id.clone()).collect(),
            Action::Archive => {
                let archived = archive_round(store, coll, policy, cutoff, round, options).await?;
                out.archived += archived.docs.len() as u64;
                for p in archived.paths {
                    if !out.archives.contains(&p) {
                        out.archives.push(p);
                    }
                }
                // Only what is now durable in an archive is deleted, and only while it is still
                // what was archived: a document changed since is kept for the next run (which
                // archives its new version), so no version is ever deleted unarchived.
                unchanged(coll, archived.docs).await?
            }
        };
        for batch in ids.chunks(DELETE_BATCH) {
            let mut filter = Filter::is_in(ID_FIELD, batch.iter().map(|id| Value::String(id.clone())));
            // A document made newer since it was found stays (age-based rules, numeric times).
            if let (true, Some(bound)) = (by_age_only, cutoff.and_then(|c| policy.unit.number(c))) {
                filter = Filter::and([filter, Filter::lt(policy.time_field.clone(), bound)]);
            }
            out.deleted += coll.delete_many(&filter).await?;
            progress.advance(batch.len() as u64);
        }
    }
    progress.end();
    Ok(())
}

struct Archived {
    /// Each archived document's id and canonical bytes.
    docs: Vec<(String, Vec<u8>)>,
    paths: Vec<PathBuf>,
}

/// The ids of `archived` whose document in the store is still byte for byte the archived one.
async fn unchanged(coll: &CollectionRef, archived: Vec<(String, Vec<u8>)>) -> Result<Vec<String>> {
    let mut out = Vec::with_capacity(archived.len());
    for batch in archived.chunks(DELETE_BATCH) {
        let filter = Filter::is_in(ID_FIELD, batch.iter().map(|(id, _)| Value::String(id.clone())));
        let now: HashMap<String, Vec<u8>> = coll
            .find(&Query::new(filter))
            .await?
            .into_iter()
            .map(|d| (id_of(&d).unwrap_or_default().to_owned(), crate::canonical::to_bytes(&d)))
            .collect();
        out.extend(batch.iter().filter(|(id, bytes)| now.get(id) == Some(bytes)).map(|(id, _)| id.clone()));
    }
    Ok(out)
}

/// Fetches a round's documents, checks each is still due, and merges them into their month
/// files, each fsynced before this returns.
async fn archive_round(
    store: &Arc<dyn PersistenceBackend>,
    coll: &CollectionRef,
    policy: &RetentionPolicy,
    cutoff: Option<i128>,
    round: &[(String, i128)],
    options: &RetentionOptions,
) -> Result<Archived> {
    let mut months: std::collections::BTreeMap<String, Vec<Document>> = Default::default();
    let mut archived = Vec::new();
    for batch in round.chunks(DELETE_BATCH) {
        let filter = Filter::is_in(ID_FIELD, batch.iter().map(|(id, _)| Value::String(id.clone())));
        let mut docs = coll.find(&Query::new(filter)).await?;
        docs.sort_by(|a, b| id_of(a).cmp(&id_of(b)));
        for doc in docs {
            let Some(t) = value_at(&doc, &policy.time_field).and_then(|v| policy.unit.read(v)) else {
                continue;
            };
            if policy.keep_newest.is_none() && cutoff.is_some_and(|c| t >= c) {
                continue;
            }
            archived.push((id_of(&doc).unwrap_or_default().to_owned(), crate::canonical::to_bytes(&doc)));
            months.entry(cold::period_of(t)).or_default().push(doc);
        }
    }
    let dir = options.archive_dir.clone();
    let (collection, kind) = (policy.collection.clone(), store.kind());
    let paths = tokio::task::spawn_blocking(move || {
        months
            .into_iter()
            .map(|(period, mut docs)| {
                docs.sort_by(|a, b| id_of(a).cmp(&id_of(b)));
                cold::add(&dir, &collection, &period, &docs, kind)
            })
            .collect::<Result<Vec<PathBuf>>>()
    })
    .await
    .map_err(|e| Error::backend("the archive writer thread failed", e))??;
    Ok(Archived { docs: archived, paths })
}

#[cfg(test)]
mod tests {
    use super::super::policy::TimeUnit;
    use super::*;

    #[test]
    fn units_read_their_magnitude_only() {
        let t = 1_700_000_000_i128 * 1_000_000;
        assert_eq!(TimeUnit::Seconds.read(&Value::from(1_700_000_000)), Some(t));
        assert_eq!(TimeUnit::Millis.read(&Value::from(1_700_000_000_000_i64)), Some(t));
        assert_eq!(TimeUnit::Micros.read(&Value::from(1_700_000_000_000_000_i64)), Some(t));
        assert_eq!(TimeUnit::Rfc3339.read(&Value::from("2023-11-14T22:13:20Z")), Some(t));
        assert_eq!(TimeUnit::Rfc3339.read(&Value::from("2023-11-15T00:13:20+02:00")), Some(t));
        assert_eq!(TimeUnit::Millis.read(&Value::from("1700000000000")), None, "a string is not a number");
        assert_eq!(TimeUnit::Rfc3339.read(&Value::from(5)), None);
        assert_eq!(TimeUnit::Rfc3339.read(&Value::from("yesterday")), None);
        assert_eq!(cold::period_of(t), "2023-11");
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.000000Z");
    }
}
