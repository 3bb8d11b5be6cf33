//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`, so a
//! commit that returned survives a process crash and a power cut.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};

use super::{
    from_millis, to_millis, Inserted, NewEvent, Store, StoreError, StoredEvent, WebhookSecretRecord,
};
use crate::connections::{Connection, SignatureScheme};

/// SQLite-backed [`Store`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl SqliteStore {
    /// Opens (creating if missing) the database at a `sqlite://PATH` URL and migrates it.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }
}

fn unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

fn connection_from_row(row: &SqliteRow) -> Result<Connection, StoreError> {
    let scheme: String = row.try_get("signature_scheme")?;
    let mapping: String = row.try_get("field_mapping")?;
    Ok(Connection {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        caption: row.try_get("caption")?,
        provider: row.try_get("provider")?,
        domain_url: row.try_get("domain_url")?,
        consumer_key: row.try_get("consumer_key")?,
        consumer_secret_sealed: row.try_get("consumer_secret_sealed")?,
        company: row.try_get("company")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        field_mapping: serde_json::from_str(&mapping)
            .map_err(|e| StoreError::Corrupt(format!("field_mapping: {e}")))?,
        external_id_field: row.try_get("external_id_field")?,
        api_version: row.try_get("api_version")?,
        signature_scheme: SignatureScheme::parse(&scheme)
            .ok_or_else(|| StoreError::Corrupt(format!("signature_scheme {scheme}")))?,
        signature_header: row.try_get("signature_header")?,
        created_at: from_millis(row.try_get("created_at")?)?,
        updated_at: from_millis(row.try_get("updated_at")?)?,
    })
}

fn secret_from_row(row: &SqliteRow) -> Result<WebhookSecretRecord, StoreError> {
    Ok(WebhookSecretRecord {
        id: row.try_get("id")?,
        connection_id: row.try_get("connection_id")?,
        sealed: row.try_get("sealed")?,
        created_at: from_millis(row.try_get("created_at")?)?,
        expires_at: row
            .try_get::<Option<i64>, _>("expires_at")?
            .map(from_millis)
            .transpose()?,
    })
}

fn event_from_row(row: &SqliteRow) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        seq: row.try_get("seq")?,
        id: row.try_get("id")?,
        connection_id: row.try_get("connection_id")?,
        idempotency_key: row.try_get("idempotency_key")?,
        client_id: row.try_get("client_id")?,
        event_type: row.try_get("event_type")?,
        occurred_at: from_millis(row.try_get("occurred_at")?)?,
        received_at: from_millis(row.try_get("received_at")?)?,
        payload: row.try_get("payload")?,
    })
}

fn mapping_json(conn: &Connection) -> String {
    serde_json::to_string(&conn.field_mapping).expect("a FieldMapping always serializes")
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn meta_insert_if_absent(&self, key: &str, value: &str) -> Result<String, StoreError> {
        sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        self.meta_get(key)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("meta {key} vanished")))
    }

    async fn insert_connection(
        &self,
        c: &Connection,
        secret: &WebhookSecretRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO connections (id, name, caption, provider, domain_url, consumer_key,
                consumer_secret_sealed, company, enabled, field_mapping, external_id_field,
                api_version, signature_scheme, signature_header, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&c.id)
        .bind(&c.name)
        .bind(&c.caption)
        .bind(&c.provider)
        .bind(&c.domain_url)
        .bind(&c.consumer_key)
        .bind(&c.consumer_secret_sealed)
        .bind(&c.company)
        .bind(c.enabled as i64)
        .bind(mapping_json(c))
        .bind(&c.external_id_field)
        .bind(&c.api_version)
        .bind(c.signature_scheme.as_str())
        .bind(&c.signature_header)
        .bind(to_millis(c.created_at))
        .bind(to_millis(c.updated_at))
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if unique_violation(&e) => return Err(StoreError::Conflict),
            other => other?,
        };
        sqlx::query(
            "INSERT INTO webhook_secrets (id, connection_id, sealed, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&secret.id)
        .bind(&secret.connection_id)
        .bind(&secret.sealed)
        .bind(to_millis(secret.created_at))
        .bind(secret.expires_at.map(to_millis))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_connections(&self) -> Result<Vec<Connection>, StoreError> {
        sqlx::query("SELECT * FROM connections ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(connection_from_row)
            .collect()
    }

    async fn get_connection(&self, name: &str) -> Result<Option<Connection>, StoreError> {
        sqlx::query("SELECT * FROM connections WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(connection_from_row)
            .transpose()
    }

    async fn update_connection(&self, c: &Connection) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE connections SET caption = ?, domain_url = ?, consumer_key = ?,
                consumer_secret_sealed = ?, company = ?, enabled = ?, field_mapping = ?,
                external_id_field = ?, api_version = ?, signature_scheme = ?,
                signature_header = ?, updated_at = ?
             WHERE id = ?",
        )
        .bind(&c.caption)
        .bind(&c.domain_url)
        .bind(&c.consumer_key)
        .bind(&c.consumer_secret_sealed)
        .bind(&c.company)
        .bind(c.enabled as i64)
        .bind(mapping_json(c))
        .bind(&c.external_id_field)
        .bind(&c.api_version)
        .bind(c.signature_scheme.as_str())
        .bind(&c.signature_header)
        .bind(to_millis(c.updated_at))
        .bind(&c.id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_connection(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM connections WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn valid_webhook_secrets(
        &self,
        connection_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<WebhookSecretRecord>, StoreError> {
        sqlx::query(
            "SELECT * FROM webhook_secrets
             WHERE connection_id = ? AND (expires_at IS NULL OR expires_at > ?)
             ORDER BY created_at DESC",
        )
        .bind(connection_id)
        .bind(to_millis(now))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(secret_from_row)
        .collect()
    }

    async fn rotate_webhook_secret(
        &self,
        new: &WebhookSecretRecord,
        overlap_until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = to_millis(new.created_at);
        let until = to_millis(overlap_until);
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE webhook_secrets SET expires_at = ?
             WHERE connection_id = ? AND (expires_at IS NULL OR expires_at > ?)",
        )
        .bind(until)
        .bind(&new.connection_id)
        .bind(until)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM webhook_secrets WHERE connection_id = ? AND expires_at <= ?")
            .bind(&new.connection_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO webhook_secrets (id, connection_id, sealed, created_at, expires_at)
             VALUES (?, ?, ?, ?, NULL)",
        )
        .bind(&new.id)
        .bind(&new.connection_id)
        .bind(&new.sealed)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_event(&self, e: &NewEvent) -> Result<Inserted, StoreError> {
        let done = sqlx::query(
            "INSERT INTO events (id, connection_id, idempotency_key, client_id, event_type,
                occurred_at, received_at, payload)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (connection_id, idempotency_key) DO NOTHING",
        )
        .bind(&e.id)
        .bind(&e.connection_id)
        .bind(&e.idempotency_key)
        .bind(&e.client_id)
        .bind(&e.event_type)
        .bind(to_millis(e.occurred_at))
        .bind(to_millis(e.received_at))
        .bind(&e.payload)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(Inserted::Accepted);
        }
        let event_id: String = sqlx::query_scalar(
            "SELECT id FROM events WHERE connection_id = ? AND idempotency_key = ?",
        )
        .bind(&e.connection_id)
        .bind(&e.idempotency_key)
        .fetch_one(&self.pool)
        .await?;
        Ok(Inserted::Duplicate { event_id })
    }

    async fn pending_events(&self, connection_id: &str) -> Result<Vec<StoredEvent>, StoreError> {
        sqlx::query(
            "SELECT * FROM events WHERE connection_id = ? AND processed_at IS NULL ORDER BY seq",
        )
        .bind(connection_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(event_from_row)
        .collect()
    }
}
