#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod around;
pub mod breaker;
pub mod cache;
pub mod journal;
pub mod lazy;
pub mod metrics;
pub mod retry;
pub mod stack;
pub mod write_behind;

pub use around::{Around, AroundBackend, Op};
pub use breaker::{BreakerConfig, BreakerLayer, BreakerState, Circuit};
pub use cache::{CacheConfig, CacheLayer, CacheStats};
pub use journal::{DeadLetter, JournalConfig, JournalLayer, OfflineConfig, SyncStatus};
pub use lazy::{LazyBackend, Opener};
pub use metrics::MetricsLayer;
pub use retry::{retry_transaction, RetryConfig, RetryLayer};
pub use stack::{StackConfig, Stacked};
pub use write_behind::{Overflow, WriteBehindConfig, WriteBehindLayer, WriteBehindStatus};
