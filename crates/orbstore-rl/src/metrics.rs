//! [`LearningMetrics`]: time-stamped measurements of learning, by type.

use orbstore_core::{
    CollectionRef, Filter, Id, IndexSpec, PersistenceBackend, Query, Result, TypedCollection,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::qtable::now_ms;

/// The collection holding metrics.
pub const METRICS_COLLECTION: &str = "learning_metrics";

/// One measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// The metric's id.
    #[serde(rename = "_id")]
    pub id: String,
    /// What was measured (`episode_reward`, say).
    pub metric_type: String,
    /// The measurement.
    pub data: Value,
    /// The policy or event it relates to, if any.
    pub related: Option<String>,
    /// When, in milliseconds since the Unix epoch.
    pub timestamp: u64,
}

/// Metrics over a collection.
#[derive(Debug, Clone)]
pub struct LearningMetrics {
    coll: TypedCollection<Metric>,
}

impl LearningMetrics {
    /// Opens the metrics of `store` (collection [`METRICS_COLLECTION`], indexed by type and time).
    pub async fn open(store: &dyn PersistenceBackend) -> Result<LearningMetrics> {
        let raw: CollectionRef = store.collection(METRICS_COLLECTION).await?;
        raw.create_index(IndexSpec::new(["metric_type", "timestamp"])).await?;
        Ok(LearningMetrics { coll: TypedCollection::new(raw) })
    }

    /// Records a measurement now.
    pub async fn record(&self, metric_type: &str, data: Value, related: Option<&str>) -> Result<Id> {
        let m = Metric {
            id: orbstore_core::generate_id(),
            metric_type: metric_type.to_owned(),
            data,
            related: related.map(str::to_owned),
            timestamp: now_ms(),
        };
        self.coll.insert(&m).await
    }

    /// Measurements of a type with `from <= timestamp < to` (milliseconds), oldest first.
    pub async fn query(&self, metric_type: &str, from: u64, to: u64) -> Result<Vec<Metric>> {
        let f = Filter::and([
            Filter::eq("metric_type", metric_type),
            Filter::gte("timestamp", from),
            Filter::lt("timestamp", to),
        ]);
        self.coll.find(&Query::new(f).sort_asc("timestamp")).await
    }

    /// How many measurements of a type there are.
    pub async fn count(&self, metric_type: &str) -> Result<u64> {
        self.coll.count(&Filter::eq("metric_type", metric_type)).await
    }
}
