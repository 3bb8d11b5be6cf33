//! Where events and connections are kept: one implementation over SQLite and
//! PostgreSQL (sqlx's `Any` driver), with what differs between the two in
//! [`dialect`]. One module per table family: [`connections`](self::connections),
//! events, clients, backfill.
//!
//! The store sees secrets only sealed; it never holds a key to open them.

mod backfill;
mod clients;
mod connections;
pub mod dialect;
mod events;
mod rows;

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

pub use dialect::Dialect;

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

/// Connections each replica keeps to PostgreSQL.
pub const POSTGRES_POOL_SIZE: u32 = 16;
/// Connections to the SQLite file (one writes at a time; readers run beside it).
const SQLITE_POOL_SIZE: u32 = 8;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Durable state of the service: connections, events, clients, backfill jobs.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
}

/// Opens the store named by a database URL and brings its schema up to date.
pub async fn open(url: &str) -> anyhow::Result<std::sync::Arc<Store>> {
    Ok(std::sync::Arc::new(Store::open(url).await?))
}

impl Store {
    /// Opens the database at `sqlite://PATH` (created when missing) or
    /// `postgres://…`, and migrates it. Replicas starting together are fine:
    /// sqlx serialises migrations with a lock.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let Some(dialect) = Dialect::of_url(url) else {
            anyhow::bail!("LEADBRIDGE_DATABASE_URL must start with sqlite:// or postgres://")
        };
        let pool = match dialect {
            Dialect::Sqlite => {
                // Create the file if missing; WAL with synchronous=FULL, so a
                // commit that returned survives a process crash and a power cut.
                let mut url = url::Url::parse(url)?;
                if !url.query_pairs().any(|(k, _)| k == "mode") {
                    url.query_pairs_mut().append_pair("mode", "rwc");
                }
                AnyPoolOptions::new()
                    .max_connections(SQLITE_POOL_SIZE)
                    .acquire_timeout(Duration::from_secs(5))
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
                                 PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect_with(AnyConnectOptions::from_str(url.as_str())?)
                    .await?
            }
            Dialect::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(POSTGRES_POOL_SIZE)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect(url)
                    .await?
            }
        };
        match dialect {
            Dialect::Sqlite => SQLITE_MIGRATIONS.run(&pool).await?,
            Dialect::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        Ok(Self { pool, dialect })
    }

    /// Which database this is.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Succeeds when the store can serve a query now.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection to the database; later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A value of the store's own key-value table.
    pub async fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Sets `key` if it is unset; returns the value that is now stored.
    pub async fn meta_insert_if_absent(
        &self,
        key: &str,
        value: &str,
    ) -> Result<String, StoreError> {
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        self.meta_get(key)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("meta {key} vanished")))
    }
}

/// Milliseconds since the Unix epoch, as the stores keep time.
pub(crate) fn to_millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_millis(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| StoreError::Corrupt(format!("time {ms}")))
}
