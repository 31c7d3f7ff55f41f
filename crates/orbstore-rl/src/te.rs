//! [`TeReflectionStore`]: reflections per session (Orb's Te), and the user of each session.
//!
//! A reflection is stored under the id `<session>\u{1f}<reflection id>` in
//! [`TE_REFLECTION_COLLECTION`] (reflection ids need only be unique within their session), the
//! user of a session under the session's id in [`TE_SESSION_COLLECTION`]. Adding a reflection
//! with an id its session already holds replaces it, so adding the same again leaves the same
//! data.

use orbstore_core::{Document, Error, Filter, IndexSpec, PersistenceBackend, Query, Result, TypedCollection};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::qtable::now_ms;

/// The collection holding reflections.
pub const TE_REFLECTION_COLLECTION: &str = "te_reflections";
/// The collection holding the user of each session.
pub const TE_SESSION_COLLECTION: &str = "te_sessions";

/// One reflection: what came in, what went out, and what was noted about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reflection {
    /// The reflection's id, unique within its session.
    pub id: String,
    /// The session it belongs to.
    pub session: String,
    /// The input reflected on.
    pub input: String,
    /// The output produced.
    pub output: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Notes, if any.
    pub notes: Option<String>,
    /// Created, in milliseconds since the Unix epoch.
    pub created_at: u64,
}

impl Reflection {
    /// A reflection created now, with a generated id.
    pub fn new(session: &str, input: &str, output: &str) -> Reflection {
        Reflection {
            id: orbstore_core::generate_id(),
            session: session.to_owned(),
            input: input.to_owned(),
            output: output.to_owned(),
            tags: Vec::new(),
            notes: None,
            created_at: now_ms(),
        }
    }
}

/// The id a reflection is stored under.
fn reflection_id(session: &str, id: &str) -> String {
    // `\u{1f}` (unit separator), as for Q-values: it cannot clash with ordinary ids.
    format!("{session}\u{1f}{id}")
}

/// Checks the ids a reflection is stored under, before any write.
pub(crate) fn check_reflection_ids(session: &str, id: &str) -> Result<()> {
    if session.is_empty() || id.is_empty() {
        return Err(Error::invalid(format!(
            "a Te reflection needs a session and an id, got {session:?} and {id:?}"
        )));
    }
    orbstore_core::validate_id(&reflection_id(session, id))
}

/// A session's user, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TeSession {
    #[serde(rename = "_id")]
    session: String,
    user: String,
}

/// Te reflections over two collections (each call reads or writes the store).
#[derive(Debug, Clone)]
pub struct TeReflectionStore {
    reflections: TypedCollection<Reflection>,
    sessions: TypedCollection<TeSession>,
}

impl TeReflectionStore {
    /// Opens the Te reflections of `store` (collections [`TE_REFLECTION_COLLECTION`] and
    /// [`TE_SESSION_COLLECTION`]).
    pub async fn open(store: &dyn PersistenceBackend) -> Result<TeReflectionStore> {
        let reflections = store.collection(TE_REFLECTION_COLLECTION).await?;
        reflections.create_index(IndexSpec::new(["session", "created_at"])).await?;
        let sessions = store.collection(TE_SESSION_COLLECTION).await?;
        sessions.create_index(IndexSpec::new(["user"])).await?;
        Ok(TeReflectionStore {
            reflections: TypedCollection::new(reflections),
            sessions: TypedCollection::new(sessions),
        })
    }

    /// Stores a reflection, replacing the one with the same id in its session. An empty session
    /// or id (or ids too long to store) is `InvalidInput` and nothing changes.
    pub async fn add(&self, reflection: &Reflection) -> Result<()> {
        check_reflection_ids(&reflection.session, &reflection.id)?;
        let mut doc: Document = match serde_json::to_value(reflection) {
            Ok(Value::Object(m)) => m,
            _ => return Err(Error::invalid("a Te reflection did not serialize")),
        };
        doc.insert("_id".into(), Value::String(reflection_id(&reflection.session, &reflection.id)));
        self.reflections.inner().upsert(doc).await?;
        Ok(())
    }

    /// The reflection with this id in the session, or `None`.
    pub async fn get(&self, session: &str, id: &str) -> Result<Option<Reflection>> {
        check_reflection_ids(session, id)?;
        self.reflections.get(&reflection_id(session, id)).await
    }

    /// The session's reflections, newest first (equal times by id).
    pub async fn by_session(&self, session: &str) -> Result<Vec<Reflection>> {
        self.reflections.find(&Query::new(Filter::eq("session", session)).sort_desc("created_at")).await
    }

    /// Records whose session this is, replacing an earlier user. An empty session or user is
    /// `InvalidInput`.
    pub async fn set_session_user(&self, session: &str, user: &str) -> Result<()> {
        if session.is_empty() || user.is_empty() {
            return Err(Error::invalid(format!(
                "a Te session needs an id and a user, got {session:?} and {user:?}"
            )));
        }
        orbstore_core::validate_id(session)?;
        self.sessions.upsert(&TeSession { session: session.to_owned(), user: user.to_owned() }).await?;
        Ok(())
    }

    /// The session's user, or `None` when none was recorded.
    pub async fn session_user(&self, session: &str) -> Result<Option<String>> {
        orbstore_core::validate_id(session)?;
        Ok(self.sessions.get(session).await?.map(|s| s.user))
    }

    /// The sessions of a user, sorted by id.
    pub async fn sessions_of(&self, user: &str) -> Result<Vec<String>> {
        let found = self.sessions.find(&Query::new(Filter::eq("user", user))).await?;
        Ok(found.into_iter().map(|s| s.session).collect())
    }

    /// How many reflections are stored, in every session.
    pub async fn count(&self) -> Result<u64> {
        self.reflections.count(&Filter::all()).await
    }

    /// How many reflections the session holds.
    pub async fn count_in(&self, session: &str) -> Result<u64> {
        self.reflections.count(&Filter::eq("session", session)).await
    }
}
