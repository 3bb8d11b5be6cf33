//! Where events and connections are kept: one trait, one module per backend.
//!
//! The store sees secrets only sealed; it never holds a key to open them.

pub mod postgres;
mod rows;
pub mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::connections::Connection;

/// A webhook secret of a connection, sealed. `expires_at` is set once it has
/// been rotated out; until then it is the current secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSecretRecord {
    pub id: String,
    pub connection_id: String,
    pub sealed: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// The org's daily API usage, from `Sforce-Limit-Info: api-usage=USED/MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiUsage {
    pub used: i64,
    pub max: i64,
    pub at: DateTime<Utc>,
}

impl ApiUsage {
    /// Whether `used` has reached `percent` of `max`.
    pub fn at_least(&self, percent: u8) -> bool {
        self.max > 0 && self.used * 100 >= self.max * i64::from(percent)
    }
}

/// An accepted webhook, about to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub id: String,
    pub connection_id: String,
    /// `webhook-id`, `X-Request-Id` or the body's SHA-256: duplicates share it.
    pub idempotency_key: String,
    pub client_id: String,
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    /// The raw body as received (it was verified and parsed as JSON).
    pub payload: String,
    /// Webhooks are urgent; a non-urgent event waits while the API budget is spent.
    pub urgent: bool,
    /// The backfill job that brought it in, if any.
    pub job_id: Option<String>,
}

/// An event as stored; `seq` gives arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub seq: i64,
    pub id: String,
    pub connection_id: String,
    pub idempotency_key: String,
    pub client_id: String,
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub payload: String,
    pub urgent: bool,
}

/// What storing an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// Newly and durably stored.
    Accepted,
    /// The connection already has an event with this idempotency key.
    Duplicate { event_id: String },
}

/// Where a client stands with Salesforce (`held` is derived, not stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    Pending,
    Synced,
    Retrying,
    Dead,
    Converted,
}

impl ClientState {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientState::Pending => "pending",
            ClientState::Synced => "synced",
            ClientState::Retrying => "retrying",
            ClientState::Dead => "dead",
            ClientState::Converted => "converted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => ClientState::Pending,
            "synced" => ClientState::Synced,
            "retrying" => ClientState::Retrying,
            "dead" => ClientState::Dead,
            "converted" => ClientState::Converted,
            _ => return None,
        })
    }
}

/// The last error Salesforce gave for a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncError {
    pub code: String,
    pub message: String,
}

/// A client's sync record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRecord {
    pub connection_id: String,
    pub client_id: String,
    pub state: ClientState,
    pub lead_id: Option<String>,
    pub attempts: u32,
    pub first_failure_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<SyncError>,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub warnings: Vec<String>,
    /// JSON of [`crate::mapping::Known`]: what was last written.
    pub known: String,
    pub company_sent: bool,
    pub pending_events: u32,
}

/// A client a worker has leased for one write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub connection_id: String,
    pub client_id: String,
}

/// When a client is next due after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextAttempt {
    /// At this time (a retry).
    At(DateTime<Utc>),
    /// Now if events arrived during the write, else when one does.
    IfEventsPending,
    /// Only when a new event arrives or an operator retries (dead).
    Never,
}

/// What a worker learned from one attempt, written back with the lease released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientUpdate {
    pub state: ClientState,
    pub lead_id: Option<String>,
    pub attempts: u32,
    pub first_failure_at: Option<DateTime<Utc>>,
    /// When the client is next due.
    pub next: NextAttempt,
    pub last_error: Option<SyncError>,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub warnings: Vec<String>,
    pub known: String,
    pub company_sent: bool,
    /// These events (by `seq`) are done: confirmed by Salesforce, or skipped.
    /// Listed one by one: with concurrent writers, sequence order is not commit
    /// order, so "everything up to the highest seq read" could include an
    /// event this attempt never saw.
    pub processed: Vec<i64>,
}

/// One line of a backfill that was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Rejection {
    /// Counted from 1.
    pub line: u64,
    pub error: String,
}

/// Where a backfill upload stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Lines are still arriving.
    Receiving,
    /// The whole file was read; its rows are queued or synced.
    Received,
    /// The upload stopped before its end (the sender went away, or the
    /// service stopped); the lines stored before that are kept and synced.
    Interrupted,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Receiving => "receiving",
            JobState::Received => "received",
            JobState::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "receiving" => JobState::Receiving,
            "received" => JobState::Received,
            "interrupted" => JobState::Interrupted,
            _ => return None,
        })
    }
}

/// What an upload has read so far, written as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobProgress {
    pub job_id: String,
    pub state: JobState,
    pub read: u64,
    /// Lines stored, this chunk included.
    pub accepted: u64,
    pub rejected_count: u64,
    /// The first [`MAX_REJECTIONS_KEPT`] rejected lines.
    pub rejected: Vec<Rejection>,
    pub at: DateTime<Utc>,
}

/// Rejected lines a job keeps with their error; the rest are only counted.
pub const MAX_REJECTIONS_KEPT: usize = 1000;

/// A backfill job as stored, with `accepted` and `synced` counted from its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillJob {
    pub id: String,
    pub connection_id: String,
    pub state: JobState,
    pub read: u64,
    pub accepted: u64,
    pub synced: u64,
    pub rejected_count: u64,
    pub rejected: Vec<Rejection>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Clients of one connection in one state, and its events not yet done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backlog {
    pub connection: String,
    pub enabled: bool,
    /// (state, clients)
    pub clients: Vec<(ClientState, u64)>,
    pub pending_events: u64,
}

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique key (a connection's name) is taken.
    #[error("a record with this key already exists")]
    Conflict,
    /// The database cannot be reached or refused the operation.
    #[error("the store is unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// Stored data that this version cannot read.
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// A transaction the database aborted to resolve a conflict (deadlock,
    /// serialization failure): running it again may succeed.
    pub fn is_conflict_abort(&self) -> bool {
        match self {
            StoreError::Unavailable(sqlx::Error::Database(d)) => {
                matches!(d.code().as_deref(), Some("40P01" | "40001"))
            }
            _ => false,
        }
    }
}

/// Runs `attempt` again (up to three more times) while the database aborts it
/// to resolve a deadlock with another writer.
pub async fn retry_conflicts<T, F, Fut>(mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut result = attempt().await;
    for _ in 0..3 {
        match &result {
            Err(e) if e.is_conflict_abort() => result = attempt().await,
            _ => break,
        }
    }
    result
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Unavailable(e)
    }
}

/// Durable state of the service.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Succeeds when the store can serve a query now.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Closes every connection to the database; later calls fail.
    async fn close(&self);

    /// A value of the store's own key-value table.
    async fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Sets `key` if it is unset; returns the value that is now stored.
    async fn meta_insert_if_absent(&self, key: &str, value: &str) -> Result<String, StoreError>;

    /// Stores a new connection with its first webhook secret. `Conflict` if the name is taken.
    async fn insert_connection(
        &self,
        conn: &Connection,
        secret: &WebhookSecretRecord,
    ) -> Result<(), StoreError>;
    async fn list_connections(&self) -> Result<Vec<Connection>, StoreError>;
    async fn get_connection(&self, name: &str) -> Result<Option<Connection>, StoreError>;
    /// Replaces a connection's settings; false if it no longer exists.
    async fn update_connection(&self, conn: &Connection) -> Result<bool, StoreError>;
    /// Deletes a connection with its secrets and events; false if there was none.
    async fn delete_connection(&self, name: &str) -> Result<bool, StoreError>;

    /// The connection's secrets that verify webhooks at `now`, newest first.
    async fn valid_webhook_secrets(
        &self,
        connection_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<WebhookSecretRecord>, StoreError>;
    /// Makes `new` the current secret; every other still-valid one expires at
    /// `overlap_until` at the latest. Expired ones are deleted.
    async fn rotate_webhook_secret(
        &self,
        new: &WebhookSecretRecord,
        overlap_until: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Stores an event durably (committed when this returns), or reports a duplicate.
    async fn insert_event(&self, event: &NewEvent) -> Result<Inserted, StoreError> {
        Ok(self
            .insert_events(std::slice::from_ref(event))
            .await?
            .pop()
            .expect("one answer per event"))
    }
    /// Stores events in one transaction (one durable commit), answering each in order.
    async fn insert_events(&self, events: &[NewEvent]) -> Result<Vec<Inserted>, StoreError>;
    /// Events of a connection not yet synced, in arrival order.
    async fn pending_events(&self, connection_id: &str) -> Result<Vec<StoredEvent>, StoreError>;

    async fn connection_by_id(&self, id: &str) -> Result<Option<Connection>, StoreError>;
    /// Records the org's API usage as Salesforce last reported it.
    async fn record_api_usage(
        &self,
        connection_id: &str,
        usage: ApiUsage,
    ) -> Result<(), StoreError>;
    /// Stops claiming the connection's clients until `until` (the daily API limit).
    async fn pause_connection(
        &self,
        connection_id: &str,
        until: DateTime<Utc>,
        reason: &str,
    ) -> Result<(), StoreError>;

    /// Leases up to `limit` due clients of enabled, unpaused connections to
    /// `owner` until `lease_until`. A leased client is not claimed again until
    /// its lease ends, so one write per client is in flight. Clients with a
    /// webhook pending come before those with only backfill rows; connections
    /// take turns (the first one asked is picked at random each time).
    ///
    /// Each step is one index range (connection, urgency, due time), so a
    /// disabled connection's million held clients, or a backfill's, cost
    /// nothing here.
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        owner: &str,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Claim>, StoreError> {
        let mut connections = self.claimable_connections(now).await?;
        if !connections.is_empty() {
            let start = rand::random::<usize>() % connections.len();
            connections.rotate_left(start);
        }
        let mut claims = Vec::new();
        for urgent in [true, false] {
            for id in &connections {
                let room = limit.saturating_sub(claims.len() as u32);
                if room == 0 {
                    return Ok(claims);
                }
                claims.extend(
                    self.claim_due_in(id, urgent, now, owner, lease_until, room)
                        .await?,
                );
            }
        }
        Ok(claims)
    }
    /// Ids of the enabled connections that are not paused at `now`.
    async fn claimable_connections(&self, now: DateTime<Utc>) -> Result<Vec<String>, StoreError>;
    /// [`Store::claim_due`] within one connection and urgency, oldest due first.
    async fn claim_due_in(
        &self,
        connection_id: &str,
        urgent: bool,
        now: DateTime<Utc>,
        owner: &str,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Claim>, StoreError>;
    /// Ends every lease (a single-process store after a restart).
    async fn release_all_leases(&self) -> Result<u64, StoreError>;
    /// Ends the leases `owner` holds (a worker that stopped mid-write).
    async fn release_leases_of(&self, owner: &str) -> Result<u64, StoreError>;
    async fn client(
        &self,
        connection_id: &str,
        client_id: &str,
    ) -> Result<Option<ClientRecord>, StoreError>;
    /// The client's events not yet done, in arrival order.
    async fn client_events(
        &self,
        connection_id: &str,
        client_id: &str,
    ) -> Result<Vec<StoredEvent>, StoreError>;
    /// Records an attempt's outcome, marks events done and ends the lease, in one
    /// transaction. False (and nothing written) if `owner` no longer holds the lease.
    async fn finish_client(
        &self,
        claim: &Claim,
        owner: &str,
        update: &ClientUpdate,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let items = [(claim.clone(), update.clone())];
        Ok(self.finish_clients(&items, owner, now).await?[0])
    }
    /// [`Store::finish_client`] for many clients in one transaction; one answer each.
    async fn finish_clients(
        &self,
        items: &[(Claim, ClientUpdate)],
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<bool>, StoreError>;
    /// The records of these clients of a connection (unknown ones are left out).
    async fn clients_by_id(
        &self,
        connection_id: &str,
        client_ids: &[String],
    ) -> Result<Vec<ClientRecord>, StoreError>;
    /// The pending events of these clients, by client then arrival.
    async fn events_of_clients(
        &self,
        connection_id: &str,
        client_ids: &[String],
    ) -> Result<Vec<StoredEvent>, StoreError>;
    /// Ends the lease without counting an attempt; the client stays due.
    async fn release_client(
        &self,
        claim: &Claim,
        owner: &str,
        last_error: Option<&SyncError>,
    ) -> Result<(), StoreError>;
    /// Clients of a connection by client id after `after`, in the given states (all if empty).
    async fn list_clients(
        &self,
        connection_id: &str,
        states: &[ClientState],
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ClientRecord>, StoreError>;
    /// Makes a client due now with a fresh attempt count; false if unknown.
    async fn requeue_client(
        &self,
        connection_id: &str,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Requeues every dead client of a connection; returns how many.
    async fn requeue_dead(
        &self,
        connection_id: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// Starts a backfill job in state `receiving`.
    async fn create_backfill_job(
        &self,
        job_id: &str,
        connection_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Records how far an upload has come.
    async fn update_backfill_job(&self, progress: &JobProgress) -> Result<(), StoreError>;
    /// Stores a chunk of a backfill's events and the job's progress in one
    /// transaction, so the job's `accepted` is exact whatever happens next.
    async fn insert_backfill_chunk(
        &self,
        events: &[NewEvent],
        progress: &JobProgress,
    ) -> Result<(), StoreError>;
    /// A connection's most recent jobs, newest first.
    async fn backfill_jobs(
        &self,
        connection_id: &str,
        limit: u32,
    ) -> Result<Vec<BackfillJob>, StoreError>;
    /// A job of a connection, with its events counted.
    async fn backfill_job(
        &self,
        connection_id: &str,
        job_id: &str,
    ) -> Result<Option<BackfillJob>, StoreError>;
    /// Deletes up to `limit` events that were done before `before`, oldest
    /// first; returns how many. Events not done are never deleted.
    async fn prune_events(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError>;
    /// Clients per connection and state, and events not yet done (for metrics).
    async fn backlog(&self) -> Result<Vec<Backlog>, StoreError>;
}

/// Connections each replica keeps to PostgreSQL.
pub const POSTGRES_POOL_SIZE: u32 = 16;

/// Opens the store named by a database URL and brings its schema up to date.
pub async fn open(url: &str) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(sqlite::SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(std::sync::Arc::new(
            postgres::PgStore::open(url, POSTGRES_POOL_SIZE).await?,
        ))
    } else {
        anyhow::bail!("LEADBRIDGE_DATABASE_URL must start with sqlite:// or postgres://")
    }
}

/// Milliseconds since the Unix epoch, as the stores keep time.
pub(crate) fn to_millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_millis(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| StoreError::Corrupt(format!("time {ms}")))
}
