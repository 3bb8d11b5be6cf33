//! Where events and connections are kept: one implementation over SQLite and
//! PostgreSQL (sqlx's `Any` driver), with what differs between the two in
//! [`dialect`]. One module per table family: [`connections`],
//! events, clients, backfill.
//!
//! The store sees secrets only sealed; it never holds a key to open them.

mod backfill;
mod clients;
mod connections;
pub mod dialect;
mod events;
mod rows;
mod sqlite_writer;

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

pub use dialect::Dialect;
pub use sqlite_writer::{Checkpointer, LogState, SqliteWriter};

use crate::domain::{ClientId, ClientState, ConnectionId, ConnectionName};

/// A webhook secret of a connection, sealed. `expires_at` is set once it has
/// been rotated out; until then it is the current secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSecretRecord {
    pub id: String,
    pub connection_id: ConnectionId,
    pub sealed: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// An accepted webhook, about to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub id: String,
    pub connection_id: ConnectionId,
    /// `webhook-id`, `X-Request-Id` or the body's SHA-256: duplicates share it.
    pub idempotency_key: String,
    pub client_id: ClientId,
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    /// The raw body as received (it was verified and parsed as JSON).
    pub payload: String,
    /// Webhooks are urgent; a non-urgent event waits while the API budget is spent.
    pub urgent: bool,
    /// The backfill job that brought it in, if any.
    pub job_id: Option<String>,
    /// A digest of what the signature covers, when the key above is not
    /// covered by it (`hmac-sha256-hex`): a second event with the same digest
    /// is a duplicate too.
    pub signed_digest: Option<String>,
}

/// An event as stored; `seq` gives arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub seq: i64,
    pub id: String,
    pub connection_id: ConnectionId,
    pub idempotency_key: String,
    pub client_id: ClientId,
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

/// A client a worker has leased for one write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub connection_id: ConnectionId,
    pub client_id: ClientId,
}

/// Clients of one connection in one state, and its events not yet done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backlog {
    pub connection: ConnectionName,
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
    /// The committer that stores webhooks has stopped (the service is shutting down).
    #[error("the store is unavailable: the committer has stopped")]
    Stopped,
    /// The database refused the data itself (a constraint or an unstorable
    /// value): trying again will not help.
    #[error("the database refused the data: {0}")]
    Rejected(String),
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

impl StoreError {
    /// The same error for each of several waiters (sqlx errors cannot be cloned).
    pub fn shared(&self) -> StoreError {
        match self {
            StoreError::Conflict => StoreError::Conflict,
            StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
            StoreError::Rejected(m) => StoreError::Rejected(m.clone()),
            StoreError::Stopped => StoreError::Stopped,
            StoreError::Unavailable(e) => {
                StoreError::Unavailable(sqlx::Error::Protocol(format!("{e}")))
            }
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            // A constraint the data broke, or a value the database cannot
            // hold (Postgres's class 22, e.g. a NUL in text).
            sqlx::Error::Database(d)
                if matches!(
                    d.kind(),
                    sqlx::error::ErrorKind::ForeignKeyViolation
                        | sqlx::error::ErrorKind::NotNullViolation
                        | sqlx::error::ErrorKind::CheckViolation
                ) || d
                    .code()
                    .is_some_and(|c| c.len() == 5 && c.starts_with("22")) =>
            {
                StoreError::Rejected(d.message().to_string())
            }
            _ => StoreError::Unavailable(e),
        }
    }
}

/// Every connection to an SQLite file, the pool's and the committer's: WAL
/// with synchronous=FULL, so a commit that returned survives a process crash
/// and a power cut; a writer waits up to 10 s for another. A log that grew
/// (a long read kept it from being copied) is cut back to 64 MiB when it
/// starts over.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
    PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;
    PRAGMA journal_size_limit = 67108864;";

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
    /// The database file, when it is an SQLite file.
    sqlite_file: Option<std::path::PathBuf>,
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
                create_private(url)?;
                let mut url = url::Url::parse(url)?;
                if !url.query_pairs().any(|(k, _)| k == "mode") {
                    url.query_pairs_mut().append_pair("mode", "rwc");
                }
                AnyPoolOptions::new()
                    .max_connections(SQLITE_POOL_SIZE)
                    .acquire_timeout(Duration::from_secs(5))
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(SQLITE_PRAGMAS).await?;
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
        let sqlite_file = match dialect {
            Dialect::Sqlite => sqlite_writer::file_of(url),
            Dialect::Postgres => None,
        };
        Ok(Self {
            pool,
            dialect,
            sqlite_file,
        })
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

/// Creates a missing SQLite file readable by its owner only (it holds
/// clients' names and emails). SQLite gives its `-wal` and `-shm` files the
/// database file's mode. An existing file keeps the mode it has.
fn create_private(url: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    sqlx::sqlite::SqliteConnectOptions::from_str(url)?;
    let Some(path) = sqlite_writer::file_of(url) else {
        return Ok(());
    };
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(anyhow::anyhow!("cannot create {}: {e}", path.display())),
    }
}

/// Milliseconds since the Unix epoch, as the stores keep time.
pub(crate) fn to_millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_millis(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| StoreError::Corrupt(format!("time {ms}")))
}
