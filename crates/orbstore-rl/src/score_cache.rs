//! [`ScoreCache`]: routing scores that go stale, kept in memory: by age (TTL), by drift of the
//! agent's recent performance from the baseline the score was computed against, or by hand.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How many recent performance measurements are kept per agent.
pub const HISTORY: usize = 10;
/// A cached score is dropped when the recent mean moves more than this share from its baseline.
pub const DRIFT: f64 = 0.2;

struct Entry {
    score: f64,
    baseline: f64,
    cached_at: Instant,
}

/// Hits, misses, size and age.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheMetrics {
    /// Scores cached now (expired ones included until looked up).
    pub size: usize,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that found nothing fresh.
    pub misses: u64,
    /// Mean age of the cached scores.
    pub mean_age: Duration,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    history: HashMap<String, VecDeque<f64>>,
    hits: u64,
    misses: u64,
}

/// Scores per agent with a time to live.
pub struct ScoreCache {
    ttl: Duration,
    state: Mutex<State>,
}

impl std::fmt::Debug for ScoreCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScoreCache").field("ttl", &self.ttl).field("metrics", &self.metrics()).finish()
    }
}

impl ScoreCache {
    /// A cache whose scores expire after `ttl`.
    pub fn new(ttl: Duration) -> ScoreCache {
        ScoreCache { ttl, state: Mutex::new(State::default()) }
    }

    /// Caches a score computed when the agent's performance was `baseline`.
    pub fn put(&self, agent: &str, score: f64, baseline: f64) {
        self.state
            .lock()
            .entries
            .insert(agent.to_owned(), Entry { score, baseline, cached_at: Instant::now() });
    }

    /// The agent's score, if cached and fresh.
    pub fn get(&self, agent: &str) -> Option<f64> {
        let mut s = self.state.lock();
        let fresh = s.entries.get(agent).filter(|e| e.cached_at.elapsed() < self.ttl).map(|e| e.score);
        match fresh {
            Some(v) => {
                s.hits += 1;
                Some(v)
            }
            None => {
                s.entries.remove(agent);
                s.misses += 1;
                None
            }
        }
    }

    /// Records a performance measurement (the last [`HISTORY`] are kept); when their mean moved
    /// more than [`DRIFT`] from the cached score's baseline, the score is dropped. Returns whether
    /// it was.
    pub fn record_performance(&self, agent: &str, value: f64) -> bool {
        let mut s = self.state.lock();
        let h = s.history.entry(agent.to_owned()).or_default();
        h.push_back(value);
        if h.len() > HISTORY {
            h.pop_front();
        }
        let mean = h.iter().sum::<f64>() / h.len() as f64;
        let drifted = s.entries.get(agent).is_some_and(|e| {
            let base = e.baseline.abs().max(f64::EPSILON);
            (mean - e.baseline).abs() / base > DRIFT
        });
        if drifted {
            s.entries.remove(agent);
        }
        drifted
    }

    /// The agent's recent measurements, oldest first.
    pub fn history(&self, agent: &str) -> Vec<f64> {
        self.state.lock().history.get(agent).map(|h| h.iter().copied().collect()).unwrap_or_default()
    }

    /// Drops the agent's score; true when there was one.
    pub fn invalidate(&self, agent: &str) -> bool {
        self.state.lock().entries.remove(agent).is_some()
    }

    /// Size, hits, misses, mean age.
    pub fn metrics(&self) -> CacheMetrics {
        let s = self.state.lock();
        let n = s.entries.len();
        let total: Duration = s.entries.values().map(|e| e.cached_at.elapsed()).sum();
        CacheMetrics {
            size: n,
            hits: s.hits,
            misses: s.misses,
            mean_age: if n == 0 { Duration::ZERO } else { total / n as u32 },
        }
    }
}
