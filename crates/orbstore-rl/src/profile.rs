//! [`UserProfileStore`]: each user's exploration rate, experience count and policy version.

use orbstore_core::{Error, PersistenceBackend, Result, TypedCollection};
use serde::{Deserialize, Serialize};

use crate::qtable::now_ms;

/// The collection holding profiles.
pub const PROFILE_COLLECTION: &str = "user_profiles";
/// A new user's exploration rate.
pub const INITIAL_EXPLORATION: f64 = 0.3;
/// The exploration rate never decays below this.
pub const MIN_EXPLORATION: f64 = 0.05;
/// The decay per experience.
pub const EXPLORATION_DECAY: f64 = 0.995;

/// A user's learning profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserProfile {
    /// The user's id.
    #[serde(rename = "_id")]
    pub user: String,
    /// Epsilon for epsilon-greedy selection.
    pub exploration_rate: f64,
    /// Experiences recorded for the user.
    pub experiences: u64,
    /// The version of the user's policy.
    pub policy_version: u64,
    /// Created, in milliseconds since the Unix epoch.
    pub created_at: u64,
    /// Last changed, in milliseconds since the Unix epoch.
    pub updated_at: u64,
}

/// Counts over every profile.
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalStats {
    /// Profiles.
    pub users: u64,
    /// Mean exploration rate (0 when none).
    pub mean_exploration_rate: f64,
    /// The user with the most experiences, and how many.
    pub most_experienced: Option<(String, u64)>,
}

/// The exploration rate after `n` experiences: max(0.05, 0.3 * 0.995^n).
pub fn decayed_exploration(n: u64) -> f64 {
    let n = i32::try_from(n).unwrap_or(i32::MAX);
    (INITIAL_EXPLORATION * EXPLORATION_DECAY.powi(n)).max(MIN_EXPLORATION)
}

/// Profiles over a collection (each call reads and writes the store: profiles are small).
#[derive(Debug, Clone)]
pub struct UserProfileStore {
    coll: TypedCollection<UserProfile>,
}

impl UserProfileStore {
    /// Opens the profiles of `store` (collection [`PROFILE_COLLECTION`]).
    pub async fn open(store: &dyn PersistenceBackend) -> Result<UserProfileStore> {
        Ok(UserProfileStore { coll: TypedCollection::new(store.collection(PROFILE_COLLECTION).await?) })
    }

    /// The user's profile.
    pub async fn get(&self, user: &str) -> Result<Option<UserProfile>> {
        self.coll.get(user).await
    }

    /// Creates a profile (exploration rate 0.3); `Conflict` when the user has one.
    pub async fn create(&self, user: &str) -> Result<UserProfile> {
        let now = now_ms();
        let p = UserProfile {
            user: user.to_owned(),
            exploration_rate: INITIAL_EXPLORATION,
            experiences: 0,
            policy_version: 0,
            created_at: now,
            updated_at: now,
        };
        self.coll.insert(&p).await?;
        Ok(p)
    }

    /// The user's profile, created if missing.
    pub async fn get_or_create(&self, user: &str) -> Result<UserProfile> {
        if let Some(p) = self.get(user).await? {
            return Ok(p);
        }
        match self.create(user).await {
            Err(e) if e.kind() == orbstore_core::ErrorKind::Conflict => {
                self.get(user).await?.ok_or_else(|| Error::not_found(format!("profile {user:?} vanished")))
            }
            other => other,
        }
    }

    /// Stores a profile as given (counts, version and times kept), replacing the user's: for
    /// imports and restores, so storing it again leaves the same data. An exploration rate
    /// outside 0..=1 is `InvalidInput` and nothing changes.
    pub async fn put(&self, profile: &UserProfile) -> Result<()> {
        if !(0.0..=1.0).contains(&profile.exploration_rate) {
            return Err(Error::invalid(format!(
                "exploration rate of {:?} must be within 0..=1, got {}",
                profile.user, profile.exploration_rate
            )));
        }
        self.coll.upsert(profile).await?;
        Ok(())
    }

    async fn change(&self, user: &str, f: impl FnOnce(&mut UserProfile)) -> Result<UserProfile> {
        let mut p = self.get_or_create(user).await?;
        f(&mut p);
        p.updated_at = now_ms();
        self.coll.upsert(&p).await?;
        Ok(p)
    }

    /// Adds `n` experiences and decays the exploration rate: max(0.05, 0.3 * 0.995^total).
    pub async fn increment_experiences(&self, user: &str, n: u64) -> Result<UserProfile> {
        self.change(user, |p| {
            p.experiences += n;
            p.exploration_rate = decayed_exploration(p.experiences);
        })
        .await
    }

    /// Sets the exploration rate; outside 0..=1 is `InvalidInput`.
    pub async fn update_exploration_rate(&self, user: &str, rate: f64) -> Result<UserProfile> {
        if !(0.0..=1.0).contains(&rate) {
            return Err(Error::invalid(format!("exploration rate must be within 0..=1, got {rate}")));
        }
        self.change(user, |p| p.exploration_rate = rate).await
    }

    /// Bumps the policy version.
    pub async fn increment_policy_version(&self, user: &str) -> Result<UserProfile> {
        self.change(user, |p| p.policy_version += 1).await
    }

    /// Puts the exploration rate back to 0.3.
    pub async fn reset_exploration(&self, user: &str) -> Result<UserProfile> {
        self.change(user, |p| p.exploration_rate = INITIAL_EXPLORATION).await
    }

    /// Users, mean exploration rate, most experienced user.
    pub async fn global_stats(&self) -> Result<GlobalStats> {
        let all = self.coll.find(&orbstore_core::Query::all()).await?;
        let n = all.len() as u64;
        let mean = if n == 0 { 0.0 } else { all.iter().map(|p| p.exploration_rate).sum::<f64>() / n as f64 };
        let most = all.iter().max_by_key(|p| p.experiences).map(|p| (p.user.clone(), p.experiences));
        Ok(GlobalStats { users: n, mean_exploration_rate: mean, most_experienced: most })
    }
}
