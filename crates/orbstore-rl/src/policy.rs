//! [`PolicyStore`]: versioned policies per state bin, with lineage and execution statistics.

use std::collections::BTreeMap;

use orbstore_core::{CollectionRef, Filter, IndexSpec, PersistenceBackend, Query, Result, Update};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::qtable::now_ms;
use crate::versioned::{insert_next, latest};

/// The collection holding policies.
pub const POLICY_COLLECTION: &str = "policies";

/// One version of a state bin's policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// `<state_bin>:v<version>`.
    #[serde(rename = "_id")]
    pub id: String,
    /// The state bin it applies to.
    pub state_bin: String,
    /// 1 for the first policy of a bin, then one more per save.
    pub version: u64,
    /// The previous version's id (`None` for the first).
    pub parent: Option<String>,
    /// The rule that produced it.
    pub rule_id: String,
    /// Weight per action.
    pub action_weights: BTreeMap<String, f64>,
    /// Anything else.
    pub metadata: Value,
    /// Whether it is the bin's active policy (exactly one per bin: the newest).
    pub active: bool,
    /// Times it was executed.
    pub executions: u64,
    /// Sum of the rewards of its executions.
    pub total_reward: f64,
    /// Created, in milliseconds since the Unix epoch.
    pub created_at: u64,
}

impl Policy {
    /// Mean reward per execution (0 before any).
    pub fn mean_reward(&self) -> f64 {
        if self.executions == 0 {
            0.0
        } else {
            self.total_reward / self.executions as f64
        }
    }
}

fn parse(doc: orbstore_core::Document) -> Result<Policy> {
    let id = doc.get("_id").cloned();
    serde_json::from_value(Value::Object(doc))
        .map_err(|e| orbstore_core::Error::corrupt(format!("policy {id:?} is unreadable: {e}")))
}

/// Policies over a collection.
#[derive(Debug, Clone)]
pub struct PolicyStore {
    coll: CollectionRef,
}

impl PolicyStore {
    /// Opens the policies of `store` (collection [`POLICY_COLLECTION`]).
    pub async fn open(store: &dyn PersistenceBackend) -> Result<PolicyStore> {
        let coll = store.collection(POLICY_COLLECTION).await?;
        coll.create_index(IndexSpec::new(["state_bin", "version"])).await?;
        Ok(PolicyStore { coll })
    }

    /// Saves a new version for the bin, whose parent is the previous one, and makes it the only
    /// active one. Safe under concurrent writers: each gets its own version.
    pub async fn save_policy(
        &self,
        state_bin: &str,
        rule_id: &str,
        action_weights: BTreeMap<String, f64>,
        metadata: Value,
    ) -> Result<Policy> {
        if let Some((a, w)) = action_weights.iter().find(|(_, w)| !w.is_finite()) {
            return Err(orbstore_core::Error::invalid(format!(
                "action weight of {a:?} must be finite, got {w}"
            )));
        }
        let doc = insert_next(&self.coll, "state_bin", state_bin, |_, _| {
            let mut d = orbstore_core::Document::new();
            d.insert("rule_id".into(), Value::String(rule_id.to_owned()));
            d.insert("action_weights".into(), serde_json::to_value(&action_weights).unwrap_or(Value::Null));
            d.insert("metadata".into(), metadata.clone());
            d.insert("active".into(), Value::Bool(true));
            d.insert("executions".into(), Value::from(0));
            d.insert("total_reward".into(), Value::from(0.0));
            d.insert("created_at".into(), Value::from(now_ms()));
            d
        })
        .await?;
        let policy = parse(doc)?;
        // Every older version of the bin stops being active. Writers racing here each clear
        // the versions below their own, so the newest stays the only active one.
        let older = Filter::and([
            Filter::eq("state_bin", state_bin),
            Filter::eq("active", true),
            Filter::lt("version", policy.version),
        ]);
        self.coll.update_many(&older, &Update::new().set("active", false)).await?;
        Ok(policy)
    }

    /// The bin's active policy (its newest version).
    pub async fn load_policy(&self, state_bin: &str) -> Result<Option<Policy>> {
        latest(&self.coll, "state_bin", state_bin).await?.map(parse).transpose()
    }

    /// Every version of the bin, newest first: the lineage.
    pub async fn history(&self, state_bin: &str) -> Result<Vec<Policy>> {
        let q = Query::new(Filter::eq("state_bin", state_bin)).sort_desc("version");
        self.coll.find(&q).await?.into_iter().map(parse).collect()
    }

    /// Records one execution of a policy and its reward; false when the policy does not exist.
    pub async fn record_execution(&self, policy_id: &str, reward: f64) -> Result<bool> {
        if !reward.is_finite() {
            return Err(orbstore_core::Error::invalid(format!("reward must be finite, got {reward}")));
        }
        let n = self
            .coll
            .update_one(
                &Filter::eq("_id", policy_id),
                &Update::new().inc("executions", 1).inc("total_reward", reward),
            )
            .await?;
        Ok(n == 1)
    }

    /// How many bins have an active policy, and the active ones by mean reward, best first.
    pub async fn active_by_mean_reward(&self) -> Result<Vec<Policy>> {
        let mut active: Vec<Policy> = self
            .coll
            .find(&Query::new(Filter::eq("active", true)))
            .await?
            .into_iter()
            .map(parse)
            .collect::<Result<_>>()?;
        active.sort_by(|a, b| b.mean_reward().total_cmp(&a.mean_reward()));
        Ok(active)
    }
}
