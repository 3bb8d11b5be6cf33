//! Every kind of edit of a connection, stored, with the caches it makes
//! stale dropped in the same place: a handler calls one of these and cannot
//! forget a cache. Other replicas' receivers expire on their own within 2 s.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use crate::configuration::Limits;
use crate::crypto::{generate_webhook_secret, MasterKey};
use crate::domain::{webhook_secret_context, Connection, ConnectionId};
use crate::salesforce::{Credentials, Salesforce};
use crate::store::{Store, StoreError, WebhookSecretRecord};
use crate::webhook::Receivers;

/// What an edit touches: the store and this process's caches.
#[derive(Clone, Copy)]
pub struct Edit<'a> {
    pub store: &'a Store,
    pub receivers: &'a Receivers,
    pub salesforce: &'a Salesforce,
    pub master_key: &'a MasterKey,
    pub limits: Limits,
}

/// Why an edit was not made.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A ceiling of [`Limits`] would be passed; the text says which.
    #[error("{0}")]
    Ceiling(String),
}

impl Edit<'_> {
    /// Stores a new connection with its first webhook secret, which is
    /// returned (the only time it is ever shown). `Conflict` when the name is taken.
    pub async fn create(
        &self,
        conn: &Connection,
        now: DateTime<Utc>,
    ) -> Result<SecretString, EditError> {
        let max = self.limits.max_configured_connections;
        if self.store.list_connections().await?.len() as u64 >= max {
            return Err(EditError::Ceiling(format!(
                "{max} connections exist, the most this service takes (LEADBRIDGE_MAX_CONNECTIONS_CONFIGURED)"
            )));
        }
        let (secret, record) = self.new_webhook_secret(&conn.id, now);
        self.store.insert_connection(conn, &record).await?;
        self.receivers.invalidate(&conn.name).await;
        Ok(secret)
    }

    /// Stores `next` over `current`; false when the connection is gone. Drops
    /// the cached receiver, and the token when the credentials changed.
    pub async fn update(
        &self,
        current: &Connection,
        next: &Connection,
    ) -> Result<bool, StoreError> {
        let stored = self.store.update_connection(next).await?;
        self.receivers.invalidate(&next.name).await;
        if current.credentials_fingerprint() != next.credentials_fingerprint() {
            if let Ok(old) = Credentials::of(current, self.master_key) {
                self.salesforce.forget_token(&old).await;
            }
        }
        Ok(stored)
    }

    /// Deletes the connection with its secrets and events; false when it was gone.
    pub async fn delete(&self, conn: &Connection) -> Result<bool, StoreError> {
        let deleted = self.store.delete_connection(&conn.name).await;
        self.receivers.invalidate(&conn.name).await;
        if let Ok(creds) = Credentials::of(conn, self.master_key) {
            self.salesforce.forget_token(&creds).await;
        }
        deleted
    }

    /// A new current webhook secret, returned; the previous ones verify
    /// until `until`.
    pub async fn rotate_webhook_secret(
        &self,
        conn: &Connection,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<SecretString, EditError> {
        let max = self.limits.max_secrets_per_connection;
        if self.store.valid_webhook_secrets(&conn.id, now).await?.len() as u64 >= max {
            return Err(EditError::Ceiling(format!(
                "the connection holds {max} valid webhook secrets, the most it may \
                 (LEADBRIDGE_MAX_SECRETS_PER_CONNECTION): revoke the previous ones first"
            )));
        }
        let (secret, record) = self.new_webhook_secret(&conn.id, now);
        self.store.rotate_webhook_secret(&record, until).await?;
        self.receivers.invalidate(&conn.name).await;
        Ok(secret)
    }

    /// Only the current webhook secret verifies from now on; how many stopped.
    pub async fn revoke_previous_webhook_secrets(
        &self,
        conn: &Connection,
    ) -> Result<u64, StoreError> {
        let revoked = self.store.revoke_previous_webhook_secrets(&conn.id).await?;
        self.receivers.invalidate(&conn.name).await;
        Ok(revoked)
    }

    fn new_webhook_secret(
        &self,
        connection_id: &ConnectionId,
        now: DateTime<Utc>,
    ) -> (SecretString, WebhookSecretRecord) {
        let secret = generate_webhook_secret();
        let id = uuid::Uuid::now_v7().to_string();
        let sealed = self.master_key.seal(
            &webhook_secret_context(connection_id, &id),
            secret.expose_secret(),
        );
        let record = WebhookSecretRecord {
            id,
            connection_id: connection_id.clone(),
            sealed,
            created_at: now,
            expires_at: None,
        };
        (secret, record)
    }
}
