//! [`LunaPreferenceStore`]: each user's preferences and constraints per mode (Orb's Luna), and
//! the mode each user has active.
//!
//! A profile is stored under the id `<user>\u{1f}<mode>` in [`LUNA_PROFILE_COLLECTION`], the
//! active mode under the user's id in [`LUNA_USER_COLLECTION`]. Writing a profile or an active
//! mode replaces what was there, so writing the same again leaves the same data.

use orbstore_core::{Document, Error, Filter, IndexSpec, PersistenceBackend, Query, Result, TypedCollection};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::qtable::now_ms;

/// The collection holding Luna profiles, one per user and mode.
pub const LUNA_PROFILE_COLLECTION: &str = "luna_profiles";
/// The collection holding each Luna user's active mode.
pub const LUNA_USER_COLLECTION: &str = "luna_users";

/// A user's preferences and constraints in one mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LunaProfile {
    /// The user's id.
    pub user: String,
    /// The mode's id (`focus`, `relax`, ...).
    pub mode: String,
    /// The preferences, each as the application wrote it (usually a string).
    pub preferences: Vec<Value>,
    /// The constraints, each as the application wrote it (usually a string).
    pub constraints: Vec<Value>,
    /// Last changed, in milliseconds since the Unix epoch.
    pub updated_at: u64,
}

impl LunaProfile {
    /// A profile changed now.
    pub fn new(user: &str, mode: &str, preferences: Vec<Value>, constraints: Vec<Value>) -> LunaProfile {
        LunaProfile {
            user: user.to_owned(),
            mode: mode.to_owned(),
            preferences,
            constraints,
            updated_at: now_ms(),
        }
    }
}

/// The id of a user's profile in a mode.
fn profile_id(user: &str, mode: &str) -> String {
    // `\u{1f}` (unit separator), as for Q-values: it cannot clash with ordinary ids.
    format!("{user}\u{1f}{mode}")
}

/// Checks the ids a profile is stored under, before any write.
pub(crate) fn check_profile_ids(user: &str, mode: &str) -> Result<()> {
    if user.is_empty() || mode.is_empty() {
        return Err(Error::invalid(format!(
            "a Luna profile needs a user and a mode, got {user:?} and {mode:?}"
        )));
    }
    orbstore_core::validate_id(&profile_id(user, mode))
}

/// A user's active mode, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LunaUser {
    #[serde(rename = "_id")]
    user: String,
    active_mode: Option<String>,
}

/// Luna preferences over two collections (each call reads or writes the store).
#[derive(Debug, Clone)]
pub struct LunaPreferenceStore {
    profiles: TypedCollection<LunaProfile>,
    users: TypedCollection<LunaUser>,
}

impl LunaPreferenceStore {
    /// Opens the Luna preferences of `store` (collections [`LUNA_PROFILE_COLLECTION`] and
    /// [`LUNA_USER_COLLECTION`]).
    pub async fn open(store: &dyn PersistenceBackend) -> Result<LunaPreferenceStore> {
        let profiles = store.collection(LUNA_PROFILE_COLLECTION).await?;
        profiles.create_index(IndexSpec::new(["user", "mode"])).await?;
        Ok(LunaPreferenceStore {
            profiles: TypedCollection::new(profiles),
            users: TypedCollection::new(store.collection(LUNA_USER_COLLECTION).await?),
        })
    }

    /// The user's profile in `mode`, or `None`.
    pub async fn get_profile(&self, user: &str, mode: &str) -> Result<Option<LunaProfile>> {
        check_profile_ids(user, mode)?;
        self.profiles.get(&profile_id(user, mode)).await
    }

    /// Stores a profile, replacing the one of the same user and mode. An empty user or mode
    /// (or ids too long to store) is `InvalidInput` and nothing changes.
    pub async fn set_profile(&self, profile: &LunaProfile) -> Result<()> {
        check_profile_ids(&profile.user, &profile.mode)?;
        let mut doc: Document = match serde_json::to_value(profile) {
            Ok(Value::Object(m)) => m,
            _ => return Err(Error::invalid("a Luna profile did not serialize")),
        };
        doc.insert("_id".into(), Value::String(profile_id(&profile.user, &profile.mode)));
        self.profiles.inner().upsert(doc).await?;
        Ok(())
    }

    /// Every profile of the user, by mode.
    pub async fn profiles(&self, user: &str) -> Result<Vec<LunaProfile>> {
        self.profiles.find(&Query::new(Filter::eq("user", user)).sort_asc("mode")).await
    }

    /// The modes the user has a profile in, sorted.
    pub async fn modes(&self, user: &str) -> Result<Vec<String>> {
        Ok(self.profiles(user).await?.into_iter().map(|p| p.mode).collect())
    }

    /// Makes `mode` the user's active mode (the mode need not have a profile yet). An empty user
    /// or mode is `InvalidInput`.
    pub async fn set_active_mode(&self, user: &str, mode: &str) -> Result<()> {
        check_profile_ids(user, mode)?;
        self.users.upsert(&LunaUser { user: user.to_owned(), active_mode: Some(mode.to_owned()) }).await?;
        Ok(())
    }

    /// The user's active mode, or `None` when none was set.
    pub async fn active_mode(&self, user: &str) -> Result<Option<String>> {
        if user.is_empty() {
            return Err(Error::invalid("a Luna user id must not be empty"));
        }
        Ok(self.users.get(user).await?.and_then(|u| u.active_mode))
    }

    /// The user's profile in the active mode, or `None` when no mode is active or the active
    /// mode has no profile.
    pub async fn active_profile(&self, user: &str) -> Result<Option<LunaProfile>> {
        match self.active_mode(user).await? {
            Some(mode) => self.get_profile(user, &mode).await,
            None => Ok(None),
        }
    }

    /// How many profiles are stored, for every user.
    pub async fn count(&self) -> Result<u64> {
        self.profiles.count(&Filter::all()).await
    }
}
