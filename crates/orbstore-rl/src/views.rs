//! PostgreSQL views that present the learning stores in a relational shape with typed columns,
//! for analysts' plain SQL. They live in a schema of their own, `<schema>_views`, because the
//! collections' tables already use the names (`experience_events` is the event collection).

use orbstore_core::{Error, PersistenceBackend, Result};
use orbstore_postgres::PostgresBackend;

use crate::{
    CONFIG_COLLECTION, EVENT_COLLECTION, METADATA_COLLECTION, METRICS_COLLECTION, POLICY_COLLECTION,
};

/// Milliseconds since the epoch, as `timestamptz`.
fn ms(col: &str) -> String {
    format!("to_timestamp((doc->>'{col}')::bigint / 1000.0)")
}

/// Creates (or replaces) the views `experience_events`, `action_metadata`, `adna_policies`,
/// `configuration_store` and `learning_metrics` in the schema `<schema>_views`, creating the
/// collections they read if needed. Returns the views' schema.
pub async fn create_postgres_views(backend: &PostgresBackend) -> Result<String> {
    let schema = backend.schema().to_owned();
    let views = format!("{schema}_views");
    if views.len() > 63 {
        return Err(Error::invalid(format!("schema {schema:?} is too long for a views schema beside it")));
    }
    for c in [EVENT_COLLECTION, METADATA_COLLECTION, POLICY_COLLECTION, CONFIG_COLLECTION, METRICS_COLLECTION]
    {
        backend.collection(c).await?;
    }
    let t = |c: &str| format!("\"{schema}\".\"{c}\"");
    let vector = |field: &str| {
        format!("ARRAY(SELECT x::float8 FROM json_array_elements_text(doc->'{field}') AS x) AS {field}")
    };
    let sql = format!(
        r#"
CREATE SCHEMA IF NOT EXISTS "{views}";
CREATE OR REPLACE VIEW "{views}".experience_events AS
SELECT doc->>'_id' AS id,
       (doc->>'timestamp_us')::bigint AS timestamp_us,
       to_timestamp((doc->>'timestamp_us')::bigint / 1000000.0) AS occurred_at,
       (doc->>'episode')::bigint AS episode,
       (doc->>'step')::int AS step,
       doc->>'event_type' AS event_type,
       (doc->>'flags')::bigint AS flags,
       {state},
       {action},
       (doc->'rewards'->>'homeostasis')::float8 AS reward_homeostasis,
       (doc->'rewards'->>'curiosity')::float8 AS reward_curiosity,
       (doc->'rewards'->>'efficiency')::float8 AS reward_efficiency,
       (doc->'rewards'->>'goal')::float8 AS reward_goal,
       (doc->>'total_reward')::float8 AS total_reward,
       doc->>'policy_version' AS policy_version,
       (doc->>'sequence')::bigint AS sequence,
       (doc->>'archived')::boolean AS archived
FROM {events};
CREATE OR REPLACE VIEW "{views}".action_metadata AS
SELECT doc->>'_id' AS event_id, doc->>'intent_type' AS intent_type, doc->>'executor_id' AS executor_id,
       doc->'parameters' AS parameters
FROM {metadata};
CREATE OR REPLACE VIEW "{views}".adna_policies AS
SELECT doc->>'_id' AS id, doc->>'state_bin' AS state_bin, (doc->>'version')::bigint AS version,
       doc->>'parent' AS parent_id, doc->>'rule_id' AS rule_id, doc->'action_weights' AS action_weights,
       doc->'metadata' AS metadata, (doc->>'active')::boolean AS active,
       (doc->>'executions')::bigint AS executions, (doc->>'total_reward')::float8 AS total_reward,
       CASE WHEN (doc->>'executions')::bigint > 0
            THEN (doc->>'total_reward')::float8 / (doc->>'executions')::bigint ELSE 0 END AS mean_reward,
       {policy_created} AS created_at
FROM {policies};
CREATE OR REPLACE VIEW "{views}".configuration_store AS
SELECT doc->>'_id' AS id, doc->>'component' AS component, doc->>'key' AS key,
       (doc->>'version')::bigint AS version, doc->>'parent' AS parent_id, doc->'value' AS value,
       {config_created} AS created_at
FROM {config};
CREATE OR REPLACE VIEW "{views}".learning_metrics AS
SELECT doc->>'_id' AS id, doc->>'metric_type' AS metric_type, doc->'data' AS data,
       doc->>'related' AS related, {metric_time} AS recorded_at
FROM {metrics};
"#,
        state = vector("state"),
        action = vector("action"),
        events = t(EVENT_COLLECTION),
        metadata = t(METADATA_COLLECTION),
        policies = t(POLICY_COLLECTION),
        config = t(CONFIG_COLLECTION),
        metrics = t(METRICS_COLLECTION),
        policy_created = ms("created_at"),
        config_created = ms("created_at"),
        metric_time = ms("timestamp"),
    );
    let client = backend.raw_client().await?;
    client
        .batch_execute(&sql)
        .await
        .map_err(|e| Error::backend(format!("create the views in {views:?}"), e))?;
    Ok(views)
}
