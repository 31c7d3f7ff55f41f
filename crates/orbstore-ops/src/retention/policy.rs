//! Retention policies: what goes from which collection, and when. Kept in the store itself (the
//! `orbstore_retention` collection, one document per collection), so every process and every
//! backup sees the same rules.

use std::time::Duration;

use orbstore_core::{
    validate_collection_name, CollectionExt, Document, Error, FieldPath, PersistenceBackend, Result, ID_FIELD,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The collection holding the policies.
pub const POLICIES: &str = "orbstore_retention";

/// How a document's time field is read. The policy says it: magnitudes are not guessed (a
/// number of seconds and one of milliseconds can both be plausible), and a document whose field
/// does not read in the declared unit is kept and counted, never deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeUnit {
    /// A number of seconds since the Unix epoch.
    Seconds,
    /// A number of milliseconds since the Unix epoch (JavaScript's `Date.now()`).
    Millis,
    /// A number of microseconds since the Unix epoch (`orbstore-rl`'s `timestamp_us`).
    Micros,
    /// An RFC 3339 string with any offset (`2025-01-31T09:30:00Z`, `…+02:00`).
    Rfc3339,
}

impl TimeUnit {
    /// `seconds`, `millis`, `micros` or `rfc3339`.
    pub fn as_str(self) -> &'static str {
        match self {
            TimeUnit::Seconds => "seconds",
            TimeUnit::Millis => "millis",
            TimeUnit::Micros => "micros",
            TimeUnit::Rfc3339 => "rfc3339",
        }
    }

    /// Parses a unit name; anything else is `InvalidInput` naming the valid ones.
    pub fn parse(s: &str) -> Result<TimeUnit> {
        match s.trim().to_ascii_lowercase().as_str() {
            "seconds" | "s" => Ok(TimeUnit::Seconds),
            "millis" | "ms" => Ok(TimeUnit::Millis),
            "micros" | "us" => Ok(TimeUnit::Micros),
            "rfc3339" => Ok(TimeUnit::Rfc3339),
            _ => Err(Error::invalid(format!(
                "invalid time unit {s:?}: valid units are seconds, millis, micros, rfc3339"
            ))),
        }
    }

    /// Microseconds since the epoch in this unit, as a number to compare against (`None` for
    /// RFC 3339, which is compared after parsing).
    pub(crate) fn number(self, micros: i128) -> Option<Value> {
        let n = match self {
            TimeUnit::Seconds => micros / 1_000_000,
            TimeUnit::Millis => micros / 1_000,
            TimeUnit::Micros => micros,
            TimeUnit::Rfc3339 => return None,
        };
        Some(Value::from(i64::try_from(n).unwrap_or(i64::MAX)))
    }

    /// A document's time in microseconds since the epoch, when its value reads in this unit.
    pub(crate) fn read(self, value: &Value) -> Option<i128> {
        let scale = match self {
            TimeUnit::Seconds => 1_000_000.0,
            TimeUnit::Millis => 1_000.0,
            TimeUnit::Micros => 1.0,
            TimeUnit::Rfc3339 => {
                let s = value.as_str()?;
                let t =
                    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
                return Some(t.unix_timestamp_nanos() / 1_000);
            }
        };
        let f = value.as_f64()?;
        f.is_finite().then_some((f * scale) as i128)
    }
}

/// What happens to a document that is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Deleted.
    Delete,
    /// Written to a cold archive (fsynced), then deleted.
    Archive,
}

impl Action {
    /// `delete` or `archive`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Delete => "delete",
            Action::Archive => "archive",
        }
    }
}

/// Keep only the newest `count` documents per group (per value of `group_by`, or of the whole
/// collection without it): Orb keeps 1,000 reflections per session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeepNewest {
    /// How many to keep per group.
    pub count: u64,
    /// The field whose value makes a group (a dotted path); none: the whole collection.
    pub group_by: Option<String>,
}

/// One collection's retention rule. A document is due when it is older than `max_age`, or when
/// it is not among the newest `keep_newest.count` of its group; at least one of the two is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPolicy {
    /// The collection it governs.
    pub collection: String,
    /// The field holding each document's time (a dotted path).
    pub time_field: String,
    /// How that field is read.
    pub unit: TimeUnit,
    /// The oldest a document may get, in whole seconds in the store.
    #[serde(rename = "max_age_secs", with = "secs")]
    pub max_age: Option<Duration>,
    /// A cap per group.
    pub keep_newest: Option<KeepNewest>,
    /// Delete, or archive then delete.
    pub action: Action,
}

mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_u64(d.as_secs()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_secs))
    }
}

impl RetentionPolicy {
    /// Documents of `collection` older than `max_age` by `time_field` go by `action`.
    pub fn max_age(
        collection: impl Into<String>,
        time_field: impl Into<String>,
        unit: TimeUnit,
        max_age: Duration,
        action: Action,
    ) -> RetentionPolicy {
        RetentionPolicy {
            collection: collection.into(),
            time_field: time_field.into(),
            unit,
            max_age: Some(max_age),
            keep_newest: None,
            action,
        }
    }

    /// Also keep only the newest `count` per value of `group_by` (or of the whole collection).
    pub fn keeping_newest(mut self, count: u64, group_by: Option<&str>) -> RetentionPolicy {
        self.keep_newest = Some(KeepNewest { count, group_by: group_by.map(str::to_owned) });
        self
    }

    /// Checks the policy: a valid collection name (not the policies' own), valid paths, a rule.
    pub fn validate(&self) -> Result<()> {
        validate_collection_name(&self.collection)?;
        if self.collection.starts_with("orbstore_") {
            // The policies, the erasure ledger (deleting tombstones would bring erased users
            // back), the data-subject map, the leases, the migration markers.
            return Err(Error::invalid(format!(
                "{:?} is one of orbstore's own collections, which cannot have a retention policy",
                self.collection
            )));
        }
        if self.keep_newest.as_ref().is_some_and(|k| k.count == 0) {
            return Err(Error::invalid(format!(
                "keeping the newest 0 documents of {:?} would delete them all: keep at least 1",
                self.collection
            )));
        }
        FieldPath::parse(&self.time_field).map_err(|e| {
            Error::invalid(format!("the time field of {:?}: {}", self.collection, e.message()))
        })?;
        if let Some(k) = &self.keep_newest {
            if let Some(g) = &k.group_by {
                FieldPath::parse(g).map_err(|e| {
                    Error::invalid(format!("the group field of {:?}: {}", self.collection, e.message()))
                })?;
            }
        }
        match (self.max_age, &self.keep_newest) {
            (None, None) => Err(Error::invalid(format!(
                "the retention policy of {:?} has neither a maximum age nor a newest-N cap",
                self.collection
            ))),
            (Some(d), _) if d.is_zero() => Err(Error::invalid(format!(
                "the maximum age of {:?} must be at least one second",
                self.collection
            ))),
            _ => Ok(()),
        }
    }

    fn to_document(&self) -> Result<Document> {
        let mut doc = match serde_json::to_value(self).map_err(|e| Error::backend("encoding a policy", e))? {
            Value::Object(map) => map,
            _ => unreachable!("a struct serializes to an object"),
        };
        let name = doc.remove("collection").unwrap_or(Value::Null);
        doc.insert(ID_FIELD.to_owned(), name);
        Ok(doc)
    }

    fn from_document(mut doc: Document) -> Result<RetentionPolicy> {
        let id = doc.remove(ID_FIELD).unwrap_or(Value::Null);
        doc.insert("collection".to_owned(), id.clone());
        serde_json::from_value(Value::Object(doc))
            .map_err(|e| Error::corrupt(format!("the retention policy {id} in {POLICIES}: {e}")))
    }
}

/// Stores `policy` (replacing the collection's earlier one) after checking it.
pub async fn set_policy(store: &dyn PersistenceBackend, policy: &RetentionPolicy) -> Result<()> {
    policy.validate()?;
    store.collection(POLICIES).await?.upsert(policy.to_document()?).await?;
    Ok(())
}

/// Removes a collection's policy; whether there was one.
pub async fn remove_policy(store: &dyn PersistenceBackend, collection: &str) -> Result<bool> {
    validate_collection_name(collection)?;
    if !store.list_collections().await?.iter().any(|c| c == POLICIES) {
        return Ok(false);
    }
    store.collection(POLICIES).await?.delete_by_id(collection).await
}

/// Every stored policy, by collection name. A damaged record is `Corrupt` naming it.
pub async fn policies(store: &dyn PersistenceBackend) -> Result<Vec<RetentionPolicy>> {
    // Reading must not create the collection (a dry run changes nothing).
    if !store.list_collections().await?.iter().any(|c| c == POLICIES) {
        return Ok(Vec::new());
    }
    let docs = store.collection(POLICIES).await?.find_all().await?;
    let mut out = docs.into_iter().map(RetentionPolicy::from_document).collect::<Result<Vec<_>>>()?;
    out.sort_by(|a, b| a.collection.cmp(&b.collection));
    Ok(out)
}

/// Presets for the applications orbstore replaces.
pub mod presets {
    use super::*;

    const DAY: u64 = 86_400;
    const YEAR: u64 = 365 * DAY;

    /// SML Guardian's collections: memories 2 y, dream_cycles 2 y, profile_snapshots 3 y,
    /// emotional_states 180 d, interactions 90 d, sessions 90 d, access_logs 7 y, metrics 1 y;
    /// each read by `time_field` in `unit` and deleted.
    pub fn sml_guardian(time_field: &str, unit: TimeUnit) -> Vec<RetentionPolicy> {
        [
            ("memories", 2 * YEAR),
            ("dream_cycles", 2 * YEAR),
            ("profile_snapshots", 3 * YEAR),
            ("emotional_states", 180 * DAY),
            ("interactions", 90 * DAY),
            ("sessions", 90 * DAY),
            ("access_logs", 7 * YEAR),
            ("metrics", YEAR),
        ]
        .into_iter()
        .map(|(c, secs)| {
            RetentionPolicy::max_age(c, time_field, unit, Duration::from_secs(secs), Action::Delete)
        })
        .collect()
    }

    /// `orbstore-rl`'s experience events: hot for 7 days (by `timestamp_us`), then archived,
    /// as NeuroGraph does.
    pub fn experience_events() -> RetentionPolicy {
        RetentionPolicy::max_age(
            "experience_events",
            "timestamp_us",
            TimeUnit::Micros,
            Duration::from_secs(7 * DAY),
            Action::Archive,
        )
    }
}

/// The value at a dotted path through objects (no array expansion: a time is one value).
pub(crate) fn value_at<'a>(doc: &'a Document, path: &str) -> Option<&'a Value> {
    let mut segments = path.split('.');
    let mut current = doc.get(segments.next()?)?;
    for s in segments {
        current = current.as_object()?.get(s)?;
    }
    Some(current)
}
