//! Rows to domain types, shared by every backend through [`Cols`].

use chrono::{DateTime, Utc};

use super::{
    from_millis, ClientRecord, ClientState, StoreError, StoredEvent, SyncError, WebhookSecretRecord,
};
use crate::connections::{Connection, SignatureScheme};

/// Typed column access; each backend says how it stores a flag.
pub(crate) trait Cols {
    fn text(&self, col: &str) -> Result<String, StoreError>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError>;
    fn int(&self, col: &str) -> Result<i64, StoreError>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>, StoreError>;
    fn flag(&self, col: &str) -> Result<bool, StoreError>;
}

macro_rules! impl_cols {
    ($row:ty, |$r:ident, $c:ident| $flag:expr) => {
        impl Cols for $row {
            fn text(&self, col: &str) -> Result<String, StoreError> {
                Ok(sqlx::Row::try_get(self, col)?)
            }
            fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError> {
                Ok(sqlx::Row::try_get(self, col)?)
            }
            fn int(&self, col: &str) -> Result<i64, StoreError> {
                Ok(sqlx::Row::try_get(self, col)?)
            }
            fn opt_int(&self, col: &str) -> Result<Option<i64>, StoreError> {
                Ok(sqlx::Row::try_get(self, col)?)
            }
            fn flag(&self, $c: &str) -> Result<bool, StoreError> {
                let $r = self;
                $flag
            }
        }
    };
}

// SQLite keeps flags as integers, Postgres as booleans.
impl_cols!(sqlx::sqlite::SqliteRow, |r, c| Ok(r.int(c)? != 0));
impl_cols!(sqlx::postgres::PgRow, |r, c| Ok(sqlx::Row::try_get(r, c)?));

pub(crate) fn connection_from_row(row: &impl Cols) -> Result<Connection, StoreError> {
    let scheme = row.text("signature_scheme")?;
    let mapping = row.text("field_mapping")?;
    Ok(Connection {
        id: row.text("id")?,
        name: row.text("name")?,
        caption: row.opt_text("caption")?,
        provider: row.text("provider")?,
        domain_url: row.opt_text("domain_url")?,
        consumer_key: row.opt_text("consumer_key")?,
        consumer_secret_sealed: row.opt_text("consumer_secret_sealed")?,
        company: row.opt_text("company")?,
        enabled: row.flag("enabled")?,
        field_mapping: serde_json::from_str(&mapping)
            .map_err(|e| StoreError::Corrupt(format!("field_mapping: {e}")))?,
        external_id_field: row.opt_text("external_id_field")?,
        api_version: row.text("api_version")?,
        signature_scheme: SignatureScheme::parse(&scheme)
            .ok_or_else(|| StoreError::Corrupt(format!("signature_scheme {scheme}")))?,
        signature_header: row.opt_text("signature_header")?,
        created_at: from_millis(row.int("created_at")?)?,
        updated_at: from_millis(row.int("updated_at")?)?,
        api_usage: match (
            row.opt_int("api_used")?,
            row.opt_int("api_max")?,
            row.opt_int("api_usage_at")?,
        ) {
            (Some(used), Some(max), Some(at)) => Some(super::ApiUsage {
                used,
                max,
                at: from_millis(at)?,
            }),
            _ => None,
        },
    })
}

pub(crate) fn secret_from_row(row: &impl Cols) -> Result<WebhookSecretRecord, StoreError> {
    Ok(WebhookSecretRecord {
        id: row.text("id")?,
        connection_id: row.text("connection_id")?,
        sealed: row.text("sealed")?,
        created_at: from_millis(row.int("created_at")?)?,
        expires_at: row.opt_int("expires_at")?.map(from_millis).transpose()?,
    })
}

pub(crate) fn event_from_row(row: &impl Cols) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        seq: row.int("seq")?,
        id: row.text("id")?,
        connection_id: row.text("connection_id")?,
        idempotency_key: row.text("idempotency_key")?,
        client_id: row.text("client_id")?,
        event_type: row.text("event_type")?,
        occurred_at: from_millis(row.int("occurred_at")?)?,
        received_at: from_millis(row.int("received_at")?)?,
        payload: row.text("payload")?,
        urgent: row.flag("urgent")?,
    })
}

pub(crate) fn client_from_row(row: &impl Cols) -> Result<ClientRecord, StoreError> {
    let state = row.text("state")?;
    let code = row.opt_text("last_error_code")?;
    let message = row.opt_text("last_error_message")?;
    let warnings = row.text("warnings")?;
    let time = |name: &str| -> Result<Option<DateTime<Utc>>, StoreError> {
        row.opt_int(name)?.map(from_millis).transpose()
    };
    Ok(ClientRecord {
        connection_id: row.text("connection_id")?,
        client_id: row.text("client_id")?,
        state: ClientState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("client state {state}")))?,
        lead_id: row.opt_text("lead_id")?,
        attempts: row.int("attempts")? as u32,
        first_failure_at: time("first_failure_at")?,
        next_attempt_at: time("next_attempt_at")?,
        last_error: code.map(|code| SyncError {
            code,
            message: message.unwrap_or_default(),
        }),
        last_synced_at: time("last_synced_at")?,
        warnings: serde_json::from_str(&warnings)
            .map_err(|e| StoreError::Corrupt(format!("warnings: {e}")))?,
        known: row.text("known")?,
        company_sent: row.flag("company_sent")?,
        pending_events: row.int("pending_events")? as u32,
    })
}

pub(crate) fn unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

pub(crate) fn mapping_json(conn: &Connection) -> String {
    serde_json::to_string(&conn.field_mapping).expect("a FieldMapping always serializes")
}

/// The order in which transactions lock client rows.
pub(crate) fn client_key(e: &super::NewEvent) -> (&str, &str) {
    (&e.connection_id, &e.client_id)
}
