//! Where events and connections are kept: one trait, one module per backend.
//!
//! The store sees secrets only sealed; it never holds a key to open them.

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
}

/// What storing an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// Newly and durably stored.
    Accepted,
    /// The connection already has an event with this idempotency key.
    Duplicate { event_id: String },
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
    async fn insert_event(&self, event: &NewEvent) -> Result<Inserted, StoreError>;
    /// Events of a connection not yet synced, in arrival order.
    async fn pending_events(&self, connection_id: &str) -> Result<Vec<StoredEvent>, StoreError>;
}

/// Opens the store named by a database URL and brings its schema up to date.
pub async fn open(url: &str) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(sqlite::SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        anyhow::bail!(
            "PostgreSQL is not supported by this version yet; use a sqlite:// database URL"
        )
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
