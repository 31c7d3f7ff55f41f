//! [`ConfigStore`]: versioned runtime configuration per component and key.

use orbstore_core::{CollectionRef, Filter, IndexSpec, PersistenceBackend, Query, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::qtable::now_ms;
use crate::versioned::{insert_next, latest};

/// The collection holding configuration.
pub const CONFIG_COLLECTION: &str = "configuration";

/// One version of a configuration value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigEntry {
    /// `<component>/<key>:v<version>`.
    #[serde(rename = "_id")]
    pub id: String,
    /// `<component>/<key>`.
    pub name: String,
    /// The component.
    pub component: String,
    /// The key.
    pub key: String,
    /// 1 for the first value, then one more per save.
    pub version: u64,
    /// The previous version's id.
    pub parent: Option<String>,
    /// The value.
    pub value: Value,
    /// Saved, in milliseconds since the Unix epoch.
    pub created_at: u64,
}

fn parse(doc: orbstore_core::Document) -> Result<ConfigEntry> {
    let id = doc.get("_id").cloned();
    serde_json::from_value(Value::Object(doc))
        .map_err(|e| orbstore_core::Error::corrupt(format!("configuration {id:?} is unreadable: {e}")))
}

/// Configuration over a collection.
#[derive(Debug, Clone)]
pub struct ConfigStore {
    coll: CollectionRef,
}

impl ConfigStore {
    /// Opens the configuration of `store` (collection [`CONFIG_COLLECTION`]).
    pub async fn open(store: &dyn PersistenceBackend) -> Result<ConfigStore> {
        let coll = store.collection(CONFIG_COLLECTION).await?;
        coll.create_index(IndexSpec::new(["name", "version"])).await?;
        Ok(ConfigStore { coll })
    }

    /// Saves a new version of `component`/`key` whose parent is the previous one.
    pub async fn save_config(&self, component: &str, key: &str, value: Value) -> Result<ConfigEntry> {
        if component.contains('/') {
            return Err(orbstore_core::Error::invalid(format!(
                "component {component:?} must not contain '/'"
            )));
        }
        let name = format!("{component}/{key}");
        let doc = insert_next(&self.coll, "name", &name, |_, _| {
            let mut d = orbstore_core::Document::new();
            d.insert("component".into(), Value::String(component.to_owned()));
            d.insert("key".into(), Value::String(key.to_owned()));
            d.insert("value".into(), value.clone());
            d.insert("created_at".into(), Value::from(now_ms()));
            d
        })
        .await?;
        parse(doc)
    }

    /// The newest value of `component`/`key`.
    pub async fn load_config(&self, component: &str, key: &str) -> Result<Option<Value>> {
        Ok(latest(&self.coll, "name", &format!("{component}/{key}"))
            .await?
            .map(parse)
            .transpose()?
            .map(|e| e.value))
    }

    /// Every version of `component`/`key`, newest first.
    pub async fn history(&self, component: &str, key: &str) -> Result<Vec<ConfigEntry>> {
        let q = Query::new(Filter::eq("name", format!("{component}/{key}"))).sort_desc("version");
        self.coll.find(&q).await?.into_iter().map(parse).collect()
    }
}
