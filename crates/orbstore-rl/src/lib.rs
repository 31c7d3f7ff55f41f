//! Learning-agent state over orbstore, written once over the backend contract so that every
//! store works on every backend: a Q-table served from memory and saved by a
//! [`SavePolicy`], an experience-replay buffer with uniform and prioritized sampling, user
//! profiles with decaying exploration, versioned policies and configuration with lineage,
//! experience events with action metadata and archiving, learning metrics, and a score cache;
//! Orb's Luna preferences per mode ([`LunaPreferenceStore`]) and Te reflections per session
//! ([`TeReflectionStore`]).
//!
//! [`import`] brings in the JSON files that EmotiStream and Orb wrote.
//!
//! With the `postgres` feature, [`create_postgres_views`] presents the stores to SQL.

#![deny(missing_docs)]

mod config_store;
mod events;
mod experience;
pub mod import;
mod luna;
mod metrics;
mod policy;
mod profile;
mod qtable;
mod saver;
mod score_cache;
mod sumtree;
mod te;
mod versioned;
#[cfg(feature = "postgres")]
mod views;

pub use config_store::{ConfigEntry, ConfigStore, CONFIG_COLLECTION};
pub use events::{ActionMetadata, Event, EventStore, Rewards, EVENT_COLLECTION, METADATA_COLLECTION};
pub use experience::{
    DiskExperienceStore, Experience, ExperienceBatch, ExperienceRef, ExperienceStats, ExperienceStore,
    EXPERIENCE_COLLECTION,
};
pub use luna::{LunaPreferenceStore, LunaProfile, LUNA_PROFILE_COLLECTION, LUNA_USER_COLLECTION};
pub use metrics::{LearningMetrics, Metric, METRICS_COLLECTION};
pub use policy::{Policy, PolicyStore, POLICY_COLLECTION};
pub use profile::{
    decayed_exploration, GlobalStats, UserProfile, UserProfileStore, EXPLORATION_DECAY, INITIAL_EXPLORATION,
    MIN_EXPLORATION, PROFILE_COLLECTION,
};
pub use qtable::{QEntry, QStats, QTable, Q_COLLECTION};
pub use saver::{flush_all, flush_on_signal, AutoSaver, SaveChanges, SavePolicy, SaveStatus};
pub use score_cache::{CacheMetrics, ScoreCache, DRIFT, HISTORY};
pub use sumtree::SumTree;
pub use te::{Reflection, TeReflectionStore, TE_REFLECTION_COLLECTION, TE_SESSION_COLLECTION};
#[cfg(feature = "postgres")]
pub use views::create_postgres_views;

/// Where the stores of this crate keep a user's id, for a data-subject map (GDPR export): the
/// collection and the fields naming the user. Te's reflections are keyed by session, not user,
/// and are reached through `te_sessions` only by `TeReflectionStore`, so they are not listed.
pub const SUBJECT_FIELDS: &[(&str, &[&str])] = &[
    (experience::EXPERIENCE_COLLECTION, &["user"]),
    (profile::PROFILE_COLLECTION, &["_id"]),
    (luna::LUNA_PROFILE_COLLECTION, &["user"]),
    (luna::LUNA_USER_COLLECTION, &["_id"]),
    (te::TE_SESSION_COLLECTION, &["user"]),
];

/// JSON Schemas (draft 2020-12) of the documents the stores of this crate write: the collection
/// and the schema's JSON text, one per collection. Each says which fields a store always writes
/// (`required`), their types and the bounds the store guarantees (an exploration rate within
/// 0..=1, counts and times at least 0), and forbids other fields where the store writes every
/// one; free-form values (a policy's metadata, a configuration value, a metric's data) are left
/// open. `orb schema install rl` stores them in a store for validation; the `schemas` test
/// checks that every document the stores write satisfies them.
pub const SCHEMAS: &[(&str, &str)] = &[
    (qtable::Q_COLLECTION, include_str!("../schemas/q_values.json")),
    (experience::EXPERIENCE_COLLECTION, include_str!("../schemas/experiences.json")),
    (profile::PROFILE_COLLECTION, include_str!("../schemas/user_profiles.json")),
    (policy::POLICY_COLLECTION, include_str!("../schemas/policies.json")),
    (config_store::CONFIG_COLLECTION, include_str!("../schemas/configuration.json")),
    (metrics::METRICS_COLLECTION, include_str!("../schemas/learning_metrics.json")),
    (events::EVENT_COLLECTION, include_str!("../schemas/experience_events.json")),
    (events::METADATA_COLLECTION, include_str!("../schemas/action_metadata.json")),
    (luna::LUNA_PROFILE_COLLECTION, include_str!("../schemas/luna_profiles.json")),
    (luna::LUNA_USER_COLLECTION, include_str!("../schemas/luna_users.json")),
    (te::TE_REFLECTION_COLLECTION, include_str!("../schemas/te_reflections.json")),
    (te::TE_SESSION_COLLECTION, include_str!("../schemas/te_sessions.json")),
];
