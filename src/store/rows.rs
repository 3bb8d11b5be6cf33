//! Rows to domain types.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{from_millis, Backlog, StoreError, StoredEvent, WebhookSecretRecord};
use crate::domain::{
    ApiUsage, BackfillJob, ClientId, ClientRecord, ClientState, Connection, ConnectionId,
    ConnectionName, DuplicatePolicy, JobState, SignatureScheme, SyncError,
};

/// Typed column access to a row of either database.
pub(crate) trait Cols {
    fn text(&self, col: &str) -> Result<String, StoreError>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError>;
    fn int(&self, col: &str) -> Result<i64, StoreError>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>, StoreError>;
    fn flag(&self, col: &str) -> Result<bool, StoreError>;
}

impl Cols for AnyRow {
    fn text(&self, col: &str) -> Result<String, StoreError> {
        Ok(self.try_get(col)?)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(col)?)
    }
    fn int(&self, col: &str) -> Result<i64, StoreError> {
        Ok(self.try_get(col)?)
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(col)?)
    }
    /// A BOOLEAN in Postgres, a 0/1 INTEGER in SQLite.
    fn flag(&self, col: &str) -> Result<bool, StoreError> {
        match self.try_get::<bool, _>(col) {
            Ok(b) => Ok(b),
            Err(_) => Ok(self.int(col)? != 0),
        }
    }
}

pub(crate) fn connection_from_row(row: &impl Cols) -> Result<Connection, StoreError> {
    let scheme = row.text("signature_scheme")?;
    let mapping = row.text("field_mapping")?;
    Ok(Connection {
        id: ConnectionId::from_stored(row.text("id")?),
        name: ConnectionName::from_stored(row.text("name")?),
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
        assign_on_create: row.flag("assign_on_create")?,
        on_duplicate: {
            let v = row.text("on_duplicate")?;
            DuplicatePolicy::parse(&v)
                .ok_or_else(|| StoreError::Corrupt(format!("on_duplicate {v}")))?
        },
        created_at: from_millis(row.int("created_at")?)?,
        updated_at: from_millis(row.int("updated_at")?)?,
        api_usage: match (
            row.opt_int("api_used")?,
            row.opt_int("api_max")?,
            row.opt_int("api_usage_at")?,
        ) {
            (Some(used), Some(max), Some(at)) => Some(ApiUsage {
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
        connection_id: ConnectionId::from_stored(row.text("connection_id")?),
        sealed: row.text("sealed")?,
        created_at: from_millis(row.int("created_at")?)?,
        expires_at: row.opt_int("expires_at")?.map(from_millis).transpose()?,
    })
}

pub(crate) fn event_from_row(row: &impl Cols) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        seq: row.int("seq")?,
        id: row.text("id")?,
        connection_id: ConnectionId::from_stored(row.text("connection_id")?),
        idempotency_key: row.text("idempotency_key")?,
        client_id: ClientId::from_stored(row.text("client_id")?),
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
        connection_id: ConnectionId::from_stored(row.text("connection_id")?),
        client_id: ClientId::from_stored(row.text("client_id")?),
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
        create_sent_at: time("create_sent_at")?,
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

/// A job row with its counts; select it with [`JOB_SELECT`].
pub(crate) fn job_from_row(row: &impl Cols) -> Result<BackfillJob, StoreError> {
    let state = row.text("state")?;
    let rejected = row.text("rejected")?;
    let count = |col: &str| -> Result<u64, StoreError> { Ok(row.int(col)?.max(0) as u64) };
    Ok(BackfillJob {
        id: row.text("id")?,
        connection_id: ConnectionId::from_stored(row.text("connection_id")?),
        state: JobState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("job state {state}")))?,
        read: count("lines_read")?,
        accepted: count("accepted")?,
        synced: count("synced")?,
        rejected_count: count("rejected_count")?,
        rejected: serde_json::from_str(&rejected)
            .map_err(|e| StoreError::Corrupt(format!("rejected lines: {e}")))?,
        created_at: from_millis(row.int("created_at")?)?,
        updated_at: from_millis(row.int("updated_at")?)?,
        finished_at: row.opt_int("finished_at")?.map(from_millis).transpose()?,
    })
}

/// A job with `synced`: its accepted lines less its events not yet done
/// (those are never pruned, so this stays exact after done events are).
pub(crate) const JOB_SELECT: &str = "SELECT j.*, j.accepted -
    (SELECT COUNT(*) FROM events e WHERE e.job_id = j.id AND e.processed_at IS NULL) AS synced
    FROM backfill_jobs j";

/// Clients per connection and state; rows of [`BACKLOG_CLIENTS`] then [`BACKLOG_EVENTS`].
pub(crate) const BACKLOG_CLIENTS: &str = "SELECT k.name, c.state, COUNT(*) AS n
    FROM clients c JOIN connections k ON k.id = c.connection_id GROUP BY k.name, c.state";

/// Every connection with its events not yet done.
pub(crate) const BACKLOG_EVENTS: &str = "SELECT k.name, k.enabled,
    (SELECT COUNT(*) FROM events e WHERE e.connection_id = k.id AND e.processed_at IS NULL) AS n
    FROM connections k ORDER BY k.name";

/// Builds the backlog from the rows of [`BACKLOG_EVENTS`] and [`BACKLOG_CLIENTS`].
pub(crate) fn backlog_from_rows(
    connections: &[impl Cols],
    clients: &[impl Cols],
) -> Result<Vec<Backlog>, StoreError> {
    let mut out: Vec<Backlog> = connections
        .iter()
        .map(|r| {
            Ok(Backlog {
                connection: ConnectionName::from_stored(r.text("name")?),
                enabled: r.flag("enabled")?,
                clients: Vec::new(),
                pending_events: r.int("n")?.max(0) as u64,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    for r in clients {
        let name = r.text("name")?;
        let state = r.text("state")?;
        let state = ClientState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("client state {state}")))?;
        if let Some(b) = out.iter_mut().find(|b| b.connection == name.as_str()) {
            b.clients.push((state, r.int("n")?.max(0) as u64));
        }
    }
    Ok(out)
}

/// Whether a multi-row statement of `rows` rows is worth keeping prepared.
/// Every batch size is its own statement text, cached per pooled connection;
/// one of thousands of parameters holds megabytes (measured: a backfill's
/// 500-row inserts took the process from 23 MiB to over 150 MiB). Small
/// batches, the common case, stay cached; large ones are prepared each time.
pub(crate) fn cache_statement(rows: usize) -> bool {
    rows <= 16
}

/// A claimed client, from `RETURNING connection_id, client_id`.
pub(crate) fn claim_from_row(row: &impl Cols) -> Result<super::Claim, StoreError> {
    Ok(super::Claim {
        connection_id: ConnectionId::from_stored(row.text("connection_id")?),
        client_id: ClientId::from_stored(row.text("client_id")?),
    })
}

/// Typed ids bind as the text they are stored as.
macro_rules! bind_as_text {
    ($($t:ty),*) => {$(
        impl sqlx::Type<sqlx::Any> for $t {
            fn type_info() -> sqlx::any::AnyTypeInfo {
                <String as sqlx::Type<sqlx::Any>>::type_info()
            }
        }

        impl<'q> sqlx::Encode<'q, sqlx::Any> for $t {
            fn encode_by_ref(
                &self,
                buf: &mut <sqlx::Any as sqlx::Database>::ArgumentBuffer<'q>,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <String as sqlx::Encode<'q, sqlx::Any>>::encode(self.as_str().to_owned(), buf)
            }
        }
    )*};
}

bind_as_text!(ConnectionId, ConnectionName, ClientId);
