//! Orb's two files, Luna's profiles and Te's reflections, read into the stores' types.

use std::collections::BTreeMap;

use serde_json::Value;

use super::emotistream::{non_empty, Keyed};
use super::shape::{shown, Fields};
use crate::luna::check_profile_ids;
use crate::te::check_reflection_ids;
use crate::{LunaProfile, Reflection};

/// What `luna/profiles.json` holds.
pub(crate) struct Luna {
    pub(crate) profiles: Vec<LunaProfile>,
    /// `(user, mode)`.
    pub(crate) active: Vec<(String, String)>,
}

/// `luna/profiles.json`: `{"<user>": {"activeMode": "<mode>", "profiles": {"<mode>": {userId,
/// modeId, preferences, constraints, updatedAt}}}}`. `activeMode` may be absent or null (no mode
/// active), `preferences` and `constraints` absent (empty); `userId` and `modeId` may be left
/// out, but when present they must match the keys they are under.
pub(crate) fn luna(v: &Value) -> Result<Luna, String> {
    let Value::Object(users) = v else {
        return Err(format!("expected an object of user id -> profiles, got {}", shown(v)));
    };
    let mut out = Luna { profiles: Vec::new(), active: Vec::new() };
    for (user, entry) in users {
        let u = Fields::of(format!("user {user:?}"), entry)?;
        for (mode, profile) in u.object("profiles")? {
            let f = Fields::of(format!("user {user:?}, profile {mode:?}"), profile)?;
            for (field, expected) in [("userId", user), ("modeId", mode)] {
                if let Some(given) = f.opt_string(field)? {
                    if &given != expected {
                        return Err(format!(
                            "{}: {field} is {given:?} but the profile is filed under {expected:?}",
                            f.at()
                        ));
                    }
                }
            }
            check_profile_ids(user, mode).map_err(|e| format!("{}: {}", f.at(), e.message()))?;
            out.profiles.push(LunaProfile {
                user: user.clone(),
                mode: mode.clone(),
                preferences: f.array("preferences", true)?.to_vec(),
                constraints: f.array("constraints", true)?.to_vec(),
                updated_at: f.time_ms("updatedAt")?,
            });
        }
        if let Some(mode) = u.opt_string("activeMode")? {
            check_profile_ids(user, &mode).map_err(|e| format!("{}: activeMode: {}", u.at(), e.message()))?;
            out.active.push((user.clone(), mode));
        }
    }
    Ok(out)
}

/// What `te/reflections.json` holds.
pub(crate) struct Te {
    pub(crate) reflections: Vec<Reflection>,
    /// `(session, user)`.
    pub(crate) sessions: Vec<(String, String)>,
}

/// `te/reflections.json`: `{"sessions": {"<session>": [{id, input, output, tags, notes,
/// createdAt}]}, "userSessions": {"<user>": ["<session>", ...]}}`. `userSessions` may be absent;
/// `tags` absent (none), `notes` absent or null. A reflection id repeated within a session keeps
/// the later reflection; a session listed under two users is an error (a session has one user).
pub(crate) fn te(v: &Value) -> Result<Te, String> {
    let top = Fields::of("the file".into(), v)?;
    let mut reflections = Keyed::default();
    for (session, list) in top.object("sessions")? {
        let Value::Array(items) = list else {
            return Err(format!(
                "session {session:?}: expected an array of reflections, got {}",
                shown(list)
            ));
        };
        for (i, item) in items.iter().enumerate() {
            let f = Fields::of(format!("session {session:?}, reflection {i}"), item)?;
            let id = non_empty(&f, "id")?;
            let f = Fields::of(format!("session {session:?}, reflection {id:?}"), item)?;
            check_reflection_ids(session, &id).map_err(|e| format!("{}: {}", f.at(), e.message()))?;
            let r = Reflection {
                session: session.clone(),
                input: f.string("input")?,
                output: f.string("output")?,
                tags: f.strings("tags", true)?,
                notes: f.opt_string("notes")?,
                created_at: f.time_ms("createdAt")?,
                id,
            };
            reflections.put(format!("{session}\u{1f}{}", r.id), r);
        }
    }
    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    if let Some(users) = top.opt("userSessions") {
        let Value::Object(users) = users else {
            return Err(format!(
                "userSessions must be an object of user id -> session ids, got {}",
                shown(users)
            ));
        };
        for (user, sessions) in users {
            if user.is_empty() {
                return Err("userSessions: a user id must not be empty".into());
            }
            let ids = match sessions {
                Value::Array(ids) => ids.iter().map(Value::as_str).collect::<Option<Vec<_>>>(),
                _ => None,
            };
            let ids = ids.ok_or_else(|| {
                format!(
                    "userSessions: user {user:?}: expected an array of session ids, got {}",
                    shown(sessions)
                )
            })?;
            for session in ids {
                orbstore_core::validate_id(session).map_err(|e| {
                    format!("userSessions: user {user:?}: session {session:?}: {}", e.message())
                })?;
                match owner.get(session) {
                    Some(other) if other != user => {
                        return Err(format!(
                            "userSessions: session {session:?} is listed under both {other:?} and {user:?}"
                        ))
                    }
                    _ => {
                        owner.insert(session.to_owned(), user.clone());
                    }
                }
            }
        }
    }
    Ok(Te { reflections: reflections.into_vec(), sessions: owner.into_iter().collect() })
}
