//! [`ExperienceBatch`]: sampled experiences with their strings in one buffer, what a training
//! step reads without a `String` allocated per field (a batch of 32 costs two allocations, where
//! 32 owned [`Experience`]s cost 160).

use super::Experience;

/// Experiences sampled together ([`ExperienceStore::sample_batch`](crate::ExperienceStore::sample_batch)),
/// in the order drawn.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExperienceBatch {
    pub(super) text: String,
    pub(super) rows: Vec<Row>,
}

/// One experience of a batch: where its strings are in the batch's text, and its numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Row {
    /// Id, user, state, action, next state: start and length in `text`.
    pub(super) spans: [(u32, u32); 5],
    pub(super) reward: f64,
    pub(super) timestamp: u64,
    pub(super) completed: bool,
    pub(super) watch_duration: Option<f64>,
    pub(super) priority: f64,
}

/// One experience of an [`ExperienceBatch`], borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExperienceRef<'a> {
    /// The experience's id.
    pub id: &'a str,
    /// Whose experience it is.
    pub user: &'a str,
    /// The state's hash.
    pub state: &'a str,
    /// The action (or content) id.
    pub action: &'a str,
    /// The next state's hash.
    pub next_state: &'a str,
    /// The reward.
    pub reward: f64,
    /// When, in milliseconds since the Unix epoch.
    pub timestamp: u64,
    /// Whether the episode (or the content) was completed.
    pub completed: bool,
    /// How long the content was watched, in seconds, if that applies.
    pub watch_duration: Option<f64>,
    /// Its priority when drawn (prioritized sampling; 0 for a uniform sample).
    pub priority: f64,
}

impl ExperienceRef<'_> {
    /// The experience, owned.
    pub fn to_experience(&self) -> Experience {
        Experience {
            id: self.id.to_owned(),
            user: self.user.to_owned(),
            state: self.state.to_owned(),
            action: self.action.to_owned(),
            reward: self.reward,
            next_state: self.next_state.to_owned(),
            timestamp: self.timestamp,
            completed: self.completed,
            watch_duration: self.watch_duration,
        }
    }
}

impl ExperienceBatch {
    /// How many experiences it holds.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The `i`th experience drawn.
    pub fn get(&self, i: usize) -> Option<ExperienceRef<'_>> {
        let r = self.rows.get(i)?;
        let [id, user, state, action, next_state] = r
            .spans
            .map(|(start, len)| self.text.get(start as usize..(start + len) as usize).unwrap_or_default());
        Some(ExperienceRef {
            id,
            user,
            state,
            action,
            next_state,
            reward: r.reward,
            timestamp: r.timestamp,
            completed: r.completed,
            watch_duration: r.watch_duration,
            priority: r.priority,
        })
    }

    /// The experiences in the order drawn.
    pub fn iter(&self) -> impl Iterator<Item = ExperienceRef<'_>> {
        (0..self.rows.len()).filter_map(|i| self.get(i))
    }
}
