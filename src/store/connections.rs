//! Connections, their webhook secrets, API usage and pauses.

use chrono::{DateTime, Utc};

use super::rows::{connection_from_row, mapping_json, secret_from_row, unique_violation};
use super::{to_millis, Store, StoreError, WebhookSecretRecord};
use crate::domain::{ApiUsage, Connection};

use crate::domain::{ConnectionId, ConnectionName};

impl Store {
    /// Stores a new connection with its first webhook secret. `Conflict` if the name is taken.
    pub async fn insert_connection(
        &self,
        c: &Connection,
        secret: &WebhookSecretRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "INSERT INTO connections ({SETTINGS}, id, name, provider, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
        );
        let inserted = bind_settings(sqlx::query(&sql), c)
            .bind(&c.id)
            .bind(&c.name)
            .bind(&c.provider)
            .bind(to_millis(c.created_at))
            .execute(&mut *tx)
            .await;
        match inserted {
            Err(e) if unique_violation(&e) => return Err(StoreError::Conflict),
            other => other?,
        };
        sqlx::query(
            "INSERT INTO webhook_secrets (id, connection_id, sealed, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
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

    pub async fn list_connections(&self) -> Result<Vec<Connection>, StoreError> {
        sqlx::query("SELECT * FROM connections ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(connection_from_row)
            .collect()
    }

    pub async fn get_connection(
        &self,
        name: &ConnectionName,
    ) -> Result<Option<Connection>, StoreError> {
        sqlx::query("SELECT * FROM connections WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(connection_from_row)
            .transpose()
    }

    /// Replaces a connection's settings; false if it no longer exists.
    pub async fn update_connection(&self, c: &Connection) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE connections SET ({SETTINGS}) = {} WHERE id = $15",
            super::dialect::in_list(1, 14)
        );
        let done = bind_settings(sqlx::query(&sql), c)
            .bind(&c.id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes a connection with its secrets and events; false if there was none.
    pub async fn delete_connection(&self, name: &ConnectionName) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM connections WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn connection_by_id(
        &self,
        id: &ConnectionId,
    ) -> Result<Option<Connection>, StoreError> {
        sqlx::query("SELECT * FROM connections WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(connection_from_row)
            .transpose()
    }

    /// The connection's secrets that verify webhooks at `now`, newest first.
    pub async fn valid_webhook_secrets(
        &self,
        connection_id: &ConnectionId,
        now: DateTime<Utc>,
    ) -> Result<Vec<WebhookSecretRecord>, StoreError> {
        sqlx::query(
            "SELECT * FROM webhook_secrets
             WHERE connection_id = $1 AND (expires_at IS NULL OR expires_at > $2)
             ORDER BY expires_at IS NULL DESC, created_at DESC, id DESC",
        )
        .bind(connection_id)
        .bind(to_millis(now))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(secret_from_row)
        .collect()
    }

    /// Makes `new` the current secret; every other still-valid one expires at
    /// `overlap_until` at the latest. Expired ones are deleted.
    pub async fn rotate_webhook_secret(
        &self,
        new: &WebhookSecretRecord,
        overlap_until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = to_millis(new.created_at);
        let until = to_millis(overlap_until);
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE webhook_secrets SET expires_at = $1
             WHERE connection_id = $2 AND (expires_at IS NULL OR expires_at > $1)",
        )
        .bind(until)
        .bind(&new.connection_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM webhook_secrets WHERE connection_id = $1 AND expires_at <= $2")
            .bind(&new.connection_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO webhook_secrets (id, connection_id, sealed, created_at, expires_at)
             VALUES ($1, $2, $3, $4, NULL)",
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

    /// Deletes every secret of the connection but the current one (a leaked
    /// old secret stops verifying at once); returns how many.
    pub async fn revoke_previous_webhook_secrets(
        &self,
        connection_id: &ConnectionId,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM webhook_secrets WHERE connection_id = $1 AND expires_at IS NOT NULL",
        )
        .bind(connection_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Records the org's API usage as Salesforce last reported it.
    pub async fn record_api_usage(
        &self,
        connection_id: &ConnectionId,
        usage: ApiUsage,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE connections SET api_used = $1, api_max = $2, api_usage_at = $3 WHERE id = $4",
        )
        .bind(usage.used)
        .bind(usage.max)
        .bind(to_millis(usage.at))
        .bind(connection_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stops claiming the connection's clients until `until` (the daily API limit).
    pub async fn pause_connection(
        &self,
        connection_id: &ConnectionId,
        until: DateTime<Utc>,
        reason: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE connections SET paused_until = $1, pause_reason = $2 WHERE id = $3")
            .bind(to_millis(until))
            .bind(reason)
            .bind(connection_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ids of the enabled connections that are not paused at `now`.
    pub async fn claimable_connections(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<ConnectionId>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM connections
             WHERE enabled AND (paused_until IS NULL OR paused_until <= $1) ORDER BY id",
        )
        .bind(to_millis(now))
        .fetch_all(&self.pool)
        .await?;
        Ok(ids.into_iter().map(ConnectionId::from_stored).collect())
    }
}

/// The columns an operator's edit sets, in the order [`bind_settings`] binds them.
const SETTINGS: &str = "caption, domain_url, consumer_key, consumer_secret_sealed, company,
    enabled, field_mapping, external_id_field, api_version, signature_scheme,
    signature_header, assign_on_create, on_duplicate, updated_at";

/// Binds `c`'s values of [`SETTINGS`] as the next fourteen parameters.
fn bind_settings<'q>(q: AnyQuery<'q>, c: &'q Connection) -> AnyQuery<'q> {
    q.bind(&c.caption)
        .bind(&c.domain_url)
        .bind(&c.consumer_key)
        .bind(&c.consumer_secret_sealed)
        .bind(&c.company)
        .bind(c.enabled)
        .bind(mapping_json(c))
        .bind(&c.external_id_field)
        .bind(&c.api_version)
        .bind(c.signature_scheme.as_str())
        .bind(&c.signature_header)
        .bind(c.assign_on_create)
        .bind(c.on_duplicate.as_str())
        .bind(to_millis(c.updated_at))
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;
