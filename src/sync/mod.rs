//! The delivery worker: claim due clients, merge their pending events into one
//! write, send it, record the outcome. An event is marked done only in the same
//! transaction that records Salesforce's confirmation.
//!
//! - [`worker`]: the loop, claims, pruning, and recording outcomes;
//! - [`plan`]: loading and merging a client's events, choosing form and call;
//! - [`write`](mod@write): batched and single writes, mending rejected records;
//! - [`outcome`]: an attempt's effect on the client's record (pure);
//! - [`retry`]: the backoff schedule.

pub mod outcome;
pub mod pace;
mod plan;
pub mod retry;
mod worker;
mod write;

use std::time::Duration;

pub use retry::RetryPolicy;
pub use worker::Worker;

/// Batches of done events one pruning pass deletes, at most.
pub(crate) const PRUNE_PASS: usize = 20;

/// Rejections handled by resending without a field, per write, at most.
pub(crate) const MAX_ROUNDS: usize = 8;

/// How the worker paces itself.
#[derive(Debug, Clone, Copy)]
pub struct SyncSettings {
    pub retry: RetryPolicy,
    /// How long a claimed client stays leased (a killed worker's clients come back after it).
    pub lease: Duration,
    /// Clients claimed per round (written 200 to a collections call).
    pub batch: u32,
    /// Sleep between empty rounds when no webhook wakes the worker.
    pub poll: Duration,
    /// After a webhook wakes an idle worker, how long it waits for more to
    /// arrive so a burst goes out in few calls. A lone event waits this long.
    pub linger: Duration,
    /// How rounds are spaced while events keep arriving, so each call
    /// carries many of them.
    pub pace: pace::Pace,
    /// How long a connection pauses after Salesforce's daily limit, and how
    /// long non-urgent work waits while the API budget is spent.
    pub daily_limit_pause: Duration,
    /// Percent of the org's daily API allocation past which only urgent work
    /// (webhooks) is written; non-urgent work (backfill) waits.
    pub quota_budget_percent: u8,
    /// How long done events are kept (for duplicate detection and inspection)
    /// before they are deleted.
    pub event_retention: Duration,
    /// How often the worker deletes done events past their retention.
    pub prune_every: Duration,
}

impl SyncSettings {
    /// The rules an attempt's outcome follows.
    pub fn outcome_rules(&self) -> outcome::Rules {
        outcome::Rules {
            retry: self.retry,
            defer_for: self.daily_limit_pause,
        }
    }
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            lease: Duration::from_secs(5 * 60),
            batch: 400,
            poll: Duration::from_millis(500),
            linger: Duration::from_millis(200),
            pace: pace::Pace::default(),
            daily_limit_pause: Duration::from_secs(15 * 60),
            quota_budget_percent: 80,
            event_retention: Duration::from_secs(7 * 24 * 3600),
            prune_every: Duration::from_secs(10 * 60),
        }
    }
}
