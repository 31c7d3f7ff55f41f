//! [`EventStore`]: high-rate experience events of an agent (state and action vectors, reward
//! components, policy version), with optional action metadata, newest-first queries, and
//! archiving that takes old events out of the hot queries.

use orbstore_core::{
    CollectionRef, Document, Error, Filter, IndexSpec, PersistenceBackend, Query, Result, StoredDocument,
    Update,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The collection holding events.
pub const EVENT_COLLECTION: &str = "experience_events";
/// The collection holding action metadata, keyed by event id.
pub const METADATA_COLLECTION: &str = "action_metadata";

/// The four reward components.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Rewards {
    /// Keeping internal variables in range.
    pub homeostasis: f64,
    /// Learning something new.
    pub curiosity: f64,
    /// Doing it cheaply.
    pub efficiency: f64,
    /// Progress towards the goal.
    pub goal: f64,
}

impl Rewards {
    /// The sum of the components.
    pub fn total(&self) -> f64 {
        self.homeostasis + self.curiosity + self.efficiency + self.goal
    }
}

/// One experience event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// A 128-bit id (stored as 32 hex digits: JSON numbers stop at 64 bits).
    #[serde(with = "hex_id")]
    pub id: u128,
    /// When, in microseconds since the Unix epoch.
    pub timestamp_us: u64,
    /// The episode.
    pub episode: u64,
    /// The step within the episode.
    pub step: u32,
    /// What kind of event.
    pub event_type: String,
    /// Bit flags.
    pub flags: u32,
    /// The 8-dimensional state.
    pub state: [f64; 8],
    /// The 8-dimensional action.
    pub action: [f64; 8],
    /// The reward components.
    pub rewards: Rewards,
    /// The hash of the policy version that acted.
    pub policy_version: String,
    /// The sequence number.
    pub sequence: u64,
}

/// What an action was: intent, executor and parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionMetadata {
    /// The intent's type.
    pub intent_type: String,
    /// Who executed it.
    pub executor_id: String,
    /// Its parameters.
    pub parameters: Value,
}

fn hex(id: u128) -> String {
    format!("{id:032x}")
}

/// A `u128` as 32 hex digits.
mod hex_id {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(id: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::hex(*id))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let text = String::deserialize(d)?;
        u128::from_str_radix(&text, 16).map_err(serde::de::Error::custom)
    }
}

fn event_doc(e: &Event) -> Result<Document> {
    if e.state.iter().chain(&e.action).any(|v| !v.is_finite())
        || ![e.rewards.homeostasis, e.rewards.curiosity, e.rewards.efficiency, e.rewards.goal]
            .iter()
            .all(|v| v.is_finite())
    {
        return Err(Error::invalid(format!("event {} holds a value that is not finite", hex(e.id))));
    }
    let mut doc = match serde_json::to_value(e) {
        Ok(Value::Object(m)) => m,
        _ => return Err(Error::invalid("an event did not serialize")),
    };
    // The id is also the document's `_id`; the total reward is stored so that `high_reward` is
    // a plain range condition an index can serve.
    doc.insert("_id".into(), Value::String(hex(e.id)));
    doc.insert("total_reward".into(), Value::from(e.rewards.total()));
    doc.insert("archived".into(), Value::Bool(false));
    Ok(doc)
}

fn parse(doc: Document) -> Result<Event> {
    let id = doc.get("_id").and_then(Value::as_str).unwrap_or_default().to_owned();
    serde_json::from_value(Value::Object(doc))
        .map_err(|e| Error::corrupt(format!("event {id:?} is unreadable: {e}")))
}

/// Events over two collections.
#[derive(Debug, Clone)]
pub struct EventStore {
    events: CollectionRef,
    metadata: CollectionRef,
}

impl EventStore {
    /// Opens the events of `store` (collections [`EVENT_COLLECTION`] and [`METADATA_COLLECTION`]).
    pub async fn open(store: &dyn PersistenceBackend) -> Result<EventStore> {
        let events = store.collection(EVENT_COLLECTION).await?;
        events.create_index(IndexSpec::new(["archived", "timestamp_us"])).await?;
        events.create_index(IndexSpec::new(["total_reward"])).await?;
        Ok(EventStore { events, metadata: store.collection(METADATA_COLLECTION).await? })
    }

    /// Writes one event.
    pub async fn write_event(&self, e: &Event) -> Result<()> {
        self.events.insert_one(event_doc(e)?).await.map(|_| ())
    }

    /// Writes an event with its action metadata; when the metadata cannot be written the
    /// event is removed again.
    pub async fn write_event_with_metadata(&self, e: &Event, m: &ActionMetadata) -> Result<()> {
        self.write_event(e).await?;
        let mut doc = match serde_json::to_value(m) {
            Ok(Value::Object(d)) => d,
            _ => return Err(Error::invalid("metadata did not serialize")),
        };
        doc.insert("_id".into(), Value::String(hex(e.id)));
        if let Err(err) = self.metadata.insert_one(doc).await {
            let _ = self.events.delete_one(&Filter::eq("_id", hex(e.id))).await;
            return Err(err);
        }
        Ok(())
    }

    /// Writes events atomically.
    pub async fn write_batch(&self, batch: &[Event]) -> Result<()> {
        let docs = batch.iter().map(event_doc).collect::<Result<Vec<_>>>()?;
        self.events.insert_many(docs).await.map(|_| ())
    }

    /// Events with `from <= timestamp_us < to`, newest first, at most `limit`, archived ones left out.
    pub async fn query_events(&self, from: u64, to: u64, limit: u64) -> Result<Vec<Event>> {
        let f = Filter::and([
            Filter::eq("archived", false),
            Filter::gte("timestamp_us", from),
            Filter::lt("timestamp_us", to),
        ]);
        let q = Query::new(f).sort_desc("timestamp_us").limit(limit);
        // Stored texts where the backend has them, deserialized straight into events: a
        // `Document` per event on the way cost more than the query (issue 15 §1).
        use futures::TryStreamExt;
        let stored: Vec<StoredDocument> = self.events.find_stored_stream(&q).await?.try_collect().await?;
        stored
            .into_iter()
            .map(|d| d.deserialize().map_err(|e| Error::corrupt(format!("an event is unreadable: {e}"))))
            .collect()
    }

    /// [`EventStore::query_events`] with each event's metadata, when it has some.
    pub async fn query_events_with_metadata(
        &self,
        from: u64,
        to: u64,
        limit: u64,
    ) -> Result<Vec<(Event, Option<ActionMetadata>)>> {
        let events = self.query_events(from, to, limit).await?;
        let ids: Vec<Value> = events.iter().map(|e| Value::String(hex(e.id))).collect();
        let mut meta = std::collections::HashMap::new();
        for d in self.metadata.find(&Query::new(Filter::is_in("_id", ids))).await? {
            let id = d.get("_id").and_then(Value::as_str).unwrap_or_default().to_owned();
            let m: ActionMetadata = serde_json::from_value(Value::Object(d))
                .map_err(|e| Error::corrupt(format!("metadata of {id:?} is unreadable: {e}")))?;
            meta.insert(id, m);
        }
        Ok(events
            .into_iter()
            .map(|e| {
                let m = meta.remove(&hex(e.id));
                (e, m)
            })
            .collect())
    }

    /// Events since `since` whose total reward is at least `min_total`, best first, at most `limit`.
    pub async fn high_reward(&self, since: u64, min_total: f64, limit: u64) -> Result<Vec<Event>> {
        let f = Filter::and([
            Filter::eq("archived", false),
            Filter::gte("timestamp_us", since),
            Filter::gte("total_reward", min_total),
        ]);
        let q = Query::new(f).sort_desc("total_reward").limit(limit);
        self.events.find(&q).await?.into_iter().map(parse).collect()
    }

    /// Archives events older than `older_than` (microseconds): they stay stored but leave the hot
    /// queries. Returns how many were archived.
    pub async fn archive_events(&self, older_than: u64) -> Result<u64> {
        let f = Filter::and([Filter::eq("archived", false), Filter::lt("timestamp_us", older_than)]);
        self.events.update_many(&f, &Update::new().set("archived", true)).await
    }
}
