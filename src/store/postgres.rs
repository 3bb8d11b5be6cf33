//! The store for several replicas: PostgreSQL. Claims use `FOR UPDATE SKIP
//! LOCKED` plus a lease expiry, so replicas never write one client at once and
//! a killed replica's clients are picked up again when its leases end.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres, QueryBuilder};

use super::rows::{
    backlog_from_rows, cache_statement, claim_from_row, client_from_row, client_key,
    connection_from_row, event_from_row, job_from_row, mapping_json, secret_from_row,
    unique_violation, BACKLOG_CLIENTS, BACKLOG_EVENTS, JOB_SELECT,
};
use super::{
    to_millis, ApiUsage, BackfillJob, Backlog, Claim, ClientRecord, ClientState, ClientUpdate,
    Inserted, JobProgress, JobState, NewEvent, NextAttempt, Store, StoreError, StoredEvent,
    SyncError, WebhookSecretRecord,
};
use crate::connections::Connection;

/// PostgreSQL-backed [`Store`].
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl PgStore {
    /// Connects to a `postgres://` URL and brings the schema up to date.
    /// Replicas starting together are fine: sqlx serialises migrations with an advisory lock.
    pub async fn open(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }
}

/// A client row with the count of its events not yet done.
const CLIENT_SELECT: &str = "SELECT c.*, (SELECT COUNT(*) FROM events e
    WHERE e.connection_id = c.connection_id AND e.client_id = c.client_id
      AND e.processed_at IS NULL) AS pending_events FROM clients c";

const REQUEUE: &str = "UPDATE clients SET
    state = CASE WHEN state = 'converted' THEN state ELSE 'pending' END,
    attempts = 0, first_failure_at = NULL, next_attempt_at = $1, updated_at = $1";

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn meta_insert_if_absent(&self, key: &str, value: &str) -> Result<String, StoreError> {
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
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
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(&c.id)
        .bind(&c.name)
        .bind(&c.caption)
        .bind(&c.provider)
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

    async fn list_connections(&self) -> Result<Vec<Connection>, StoreError> {
        sqlx::query("SELECT * FROM connections ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(connection_from_row)
            .collect()
    }

    async fn get_connection(&self, name: &str) -> Result<Option<Connection>, StoreError> {
        sqlx::query("SELECT * FROM connections WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(connection_from_row)
            .transpose()
    }

    async fn update_connection(&self, c: &Connection) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE connections SET caption = $1, domain_url = $2, consumer_key = $3,
                consumer_secret_sealed = $4, company = $5, enabled = $6, field_mapping = $7,
                external_id_field = $8, api_version = $9, signature_scheme = $10,
                signature_header = $11, updated_at = $12
             WHERE id = $13",
        )
        .bind(&c.caption)
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
        .bind(to_millis(c.updated_at))
        .bind(&c.id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_connection(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM connections WHERE name = $1")
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
             WHERE connection_id = $1 AND (expires_at IS NULL OR expires_at > $2)
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

    async fn insert_events(&self, events: &[NewEvent]) -> Result<Vec<Inserted>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await?;
        let answers = insert_events_in(&mut tx, events).await?;
        tx.commit().await?;
        Ok(answers)
    }

    async fn insert_backfill_chunk(
        &self,
        events: &[NewEvent],
        progress: &JobProgress,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        if !events.is_empty() {
            insert_events_in(&mut tx, events).await?;
        }
        update_job_in(&mut tx, progress).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn pending_events(&self, connection_id: &str) -> Result<Vec<StoredEvent>, StoreError> {
        sqlx::query(
            "SELECT * FROM events WHERE connection_id = $1 AND processed_at IS NULL ORDER BY seq",
        )
        .bind(connection_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(event_from_row)
        .collect()
    }

    async fn connection_by_id(&self, id: &str) -> Result<Option<Connection>, StoreError> {
        sqlx::query("SELECT * FROM connections WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(connection_from_row)
            .transpose()
    }

    async fn record_api_usage(
        &self,
        connection_id: &str,
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

    async fn pause_connection(
        &self,
        connection_id: &str,
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

    async fn claimable_connections(&self, now: DateTime<Utc>) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM connections
             WHERE enabled AND (paused_until IS NULL OR paused_until <= $1) ORDER BY id",
        )
        .bind(to_millis(now))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn claim_due_in(
        &self,
        connection_id: &str,
        urgent: bool,
        now: DateTime<Utc>,
        owner: &str,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Claim>, StoreError> {
        // SKIP LOCKED passes over rows another replica is claiming; the lease
        // check is re-evaluated on the locked row, so a row just leased by
        // another replica is not taken.
        let rows = sqlx::query(
            "UPDATE clients c SET lease_owner = $1, lease_until = $2
             FROM (
               SELECT d.connection_id, d.client_id FROM clients d
               WHERE d.connection_id = $3 AND d.urgent = $4
                 AND d.next_attempt_at IS NOT NULL AND d.next_attempt_at <= $5
                 AND (d.lease_until IS NULL OR d.lease_until <= $5)
               ORDER BY d.next_attempt_at
               LIMIT $6
               FOR UPDATE SKIP LOCKED
             ) due
             WHERE c.connection_id = due.connection_id AND c.client_id = due.client_id
             RETURNING c.connection_id, c.client_id",
        )
        .bind(owner)
        .bind(to_millis(lease_until))
        .bind(connection_id)
        .bind(urgent)
        .bind(to_millis(now))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(claim_from_row).collect()
    }

    async fn release_all_leases(&self) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE clients SET lease_owner = NULL, lease_until = NULL WHERE lease_owner IS NOT NULL",
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn release_leases_of(&self, owner: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE clients SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1",
        )
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn client(
        &self,
        connection_id: &str,
        client_id: &str,
    ) -> Result<Option<ClientRecord>, StoreError> {
        sqlx::query(&format!(
            "{CLIENT_SELECT} WHERE c.connection_id = $1 AND c.client_id = $2"
        ))
        .bind(connection_id)
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(client_from_row)
        .transpose()
    }

    async fn client_events(
        &self,
        connection_id: &str,
        client_id: &str,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        sqlx::query(
            "SELECT * FROM events
             WHERE connection_id = $1 AND client_id = $2 AND processed_at IS NULL ORDER BY seq",
        )
        .bind(connection_id)
        .bind(client_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(event_from_row)
        .collect()
    }

    async fn finish_clients(
        &self,
        items: &[(Claim, ClientUpdate)],
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<bool>, StoreError> {
        let now = to_millis(now);
        // The same lock order as insert_events: by client.
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by(|&a, &b| {
            let (x, y) = (&items[a].0, &items[b].0);
            (&x.connection_id, &x.client_id).cmp(&(&y.connection_id, &y.client_id))
        });
        let mut tx = self.pool.begin().await?;
        let mut answers = vec![false; items.len()];
        for i in order {
            let (claim, u) = &items[i];
            let updated = sqlx::query(
                "UPDATE clients SET state = $1, lead_id = $2, attempts = $3, first_failure_at = $4,
                last_error_code = $5, last_error_message = $6, last_synced_at = $7, warnings = $8,
                known = $9, company_sent = $10, updated_at = $11, lease_owner = NULL,
                lease_until = NULL
             WHERE connection_id = $12 AND client_id = $13 AND lease_owner = $14",
            )
            .bind(u.state.as_str())
            .bind(&u.lead_id)
            .bind(u.attempts as i64)
            .bind(u.first_failure_at.map(to_millis))
            .bind(u.last_error.as_ref().map(|e| e.code.as_str()))
            .bind(u.last_error.as_ref().map(|e| e.message.as_str()))
            .bind(u.last_synced_at.map(to_millis))
            .bind(serde_json::to_string(&u.warnings).expect("strings serialize"))
            .bind(&u.known)
            .bind(u.company_sent)
            .bind(now)
            .bind(&claim.connection_id)
            .bind(&claim.client_id)
            .bind(owner)
            .execute(&mut *tx)
            .await?;
            if updated.rows_affected() == 0 {
                answers.push(false);
                continue;
            }
            if !u.processed.is_empty() {
                sqlx::query(
                    "UPDATE events SET processed_at = $1
                 WHERE connection_id = $2 AND client_id = $3 AND seq = ANY($4)
                   AND processed_at IS NULL",
                )
                .bind(now)
                .bind(&claim.connection_id)
                .bind(&claim.client_id)
                .bind(&u.processed)
                .execute(&mut *tx)
                .await?;
            }
            // Due again at the retry time, or now if events arrived during the write.
            let (mode, at) = match u.next {
                NextAttempt::At(t) => ("at", Some(to_millis(t))),
                NextAttempt::IfEventsPending => ("if_pending", None),
                NextAttempt::Never => ("never", None),
            };
            sqlx::query(
                "UPDATE clients SET next_attempt_at = CASE
               WHEN $1 = 'at' THEN $2
               WHEN $1 = 'never' THEN NULL
               WHEN EXISTS (SELECT 1 FROM events e WHERE e.connection_id = clients.connection_id
                   AND e.client_id = clients.client_id AND e.processed_at IS NULL) THEN $3
               ELSE NULL END,
               urgent = EXISTS (SELECT 1 FROM events e WHERE e.connection_id = clients.connection_id
                   AND e.client_id = clients.client_id AND e.processed_at IS NULL AND e.urgent)
             WHERE connection_id = $4 AND client_id = $5",
            )
            .bind(mode)
            .bind(at)
            .bind(now)
            .bind(&claim.connection_id)
            .bind(&claim.client_id)
            .execute(&mut *tx)
            .await?;
            answers[i] = true;
        }
        tx.commit().await?;
        Ok(answers)
    }

    async fn release_client(
        &self,
        claim: &Claim,
        owner: &str,
        last_error: Option<&SyncError>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE clients SET lease_owner = NULL, lease_until = NULL,
                last_error_code = COALESCE($1, last_error_code),
                last_error_message = COALESCE($2, last_error_message)
             WHERE connection_id = $3 AND client_id = $4 AND lease_owner = $5",
        )
        .bind(last_error.map(|e| e.code.as_str()))
        .bind(last_error.map(|e| e.message.as_str()))
        .bind(&claim.connection_id)
        .bind(&claim.client_id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_clients(
        &self,
        connection_id: &str,
        states: &[ClientState],
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ClientRecord>, StoreError> {
        let states: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
        sqlx::query(&format!(
            "{CLIENT_SELECT} WHERE c.connection_id = $1 AND c.client_id COLLATE \"C\" > $2
               AND (cardinality($3::text[]) = 0 OR c.state = ANY($3))
             ORDER BY c.client_id COLLATE \"C\" LIMIT $4"
        ))
        .bind(connection_id)
        .bind(after.unwrap_or(""))
        .bind(&states)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(client_from_row)
        .collect()
    }

    async fn requeue_client(
        &self,
        connection_id: &str,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(&format!(
            "{REQUEUE} WHERE connection_id = $2 AND client_id = $3"
        ))
        .bind(to_millis(now))
        .bind(connection_id)
        .bind(client_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn requeue_dead(
        &self,
        connection_id: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(&format!(
            "{REQUEUE} WHERE connection_id = $2 AND state = 'dead'"
        ))
        .bind(to_millis(now))
        .bind(connection_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn clients_by_id(
        &self,
        connection_id: &str,
        client_ids: &[String],
    ) -> Result<Vec<ClientRecord>, StoreError> {
        sqlx::query(&format!(
            "{CLIENT_SELECT} WHERE c.connection_id = $1 AND c.client_id = ANY($2)"
        ))
        .bind(connection_id)
        .bind(client_ids)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(client_from_row)
        .collect()
    }

    async fn events_of_clients(
        &self,
        connection_id: &str,
        client_ids: &[String],
    ) -> Result<Vec<StoredEvent>, StoreError> {
        sqlx::query(
            "SELECT * FROM events WHERE connection_id = $1 AND processed_at IS NULL
               AND client_id = ANY($2) ORDER BY client_id, seq",
        )
        .bind(connection_id)
        .bind(client_ids)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(event_from_row)
        .collect()
    }

    async fn create_backfill_job(
        &self,
        job_id: &str,
        connection_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO backfill_jobs (id, connection_id, state, created_at, updated_at)
             VALUES ($1, $2, 'receiving', $3, $4)",
        )
        .bind(job_id)
        .bind(connection_id)
        .bind(to_millis(now))
        .bind(to_millis(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn update_backfill_job(&self, p: &JobProgress) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        update_job_in(&mut conn, p).await
    }

    async fn backfill_jobs(
        &self,
        connection_id: &str,
        limit: u32,
    ) -> Result<Vec<BackfillJob>, StoreError> {
        sqlx::query(&format!(
            "{JOB_SELECT} WHERE j.connection_id = $1 ORDER BY j.created_at DESC, j.id DESC LIMIT $2"
        ))
        .bind(connection_id)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(job_from_row)
        .collect()
    }

    async fn backfill_job(
        &self,
        connection_id: &str,
        job_id: &str,
    ) -> Result<Option<BackfillJob>, StoreError> {
        sqlx::query(&format!(
            "{JOB_SELECT} WHERE j.connection_id = $1 AND j.id = $2"
        ))
        .bind(connection_id)
        .bind(job_id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(job_from_row)
        .transpose()
    }

    async fn prune_events(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM events WHERE seq IN (
               SELECT seq FROM events WHERE processed_at IS NOT NULL AND processed_at < $1
               ORDER BY processed_at LIMIT $2)",
        )
        .bind(to_millis(before))
        .bind(limit as i64)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn backlog(&self) -> Result<Vec<Backlog>, StoreError> {
        let connections = sqlx::query(BACKLOG_EVENTS).fetch_all(&self.pool).await?;
        let clients = sqlx::query(BACKLOG_CLIENTS).fetch_all(&self.pool).await?;
        backlog_from_rows(&connections, &clients)
    }
}

/// Stores events within `tx`; see [`Store::insert_events`].
async fn insert_events_in(
    tx: &mut sqlx::PgConnection,
    events: &[NewEvent],
) -> Result<Vec<Inserted>, StoreError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    // Rows are locked in one order everywhere (by client; stable, so a
    // client's events keep their arrival order), so concurrent batches
    // wait for each other instead of deadlocking. A few statements per
    // batch, not two per event: each statement is a round trip.
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_by(|&a, &b| client_key(&events[a]).cmp(&client_key(&events[b])));
    let mut qb = QueryBuilder::<Postgres>::new(
        "INSERT INTO events (id, connection_id, idempotency_key, client_id, event_type,
            occurred_at, received_at, payload, urgent, job_id) ",
    );
    qb.push_values(order.iter().map(|&i| &events[i]), |mut row, e| {
        row.push_bind(&e.id)
            .push_bind(&e.connection_id)
            .push_bind(&e.idempotency_key)
            .push_bind(&e.client_id)
            .push_bind(&e.event_type)
            .push_bind(to_millis(e.occurred_at))
            .push_bind(to_millis(e.received_at))
            .push_bind(&e.payload)
            .push_bind(e.urgent)
            .push_bind(&e.job_id);
    });
    qb.push(" ON CONFLICT (connection_id, idempotency_key) DO NOTHING RETURNING id");
    let inserted: std::collections::HashSet<String> = qb
        .build_query_scalar()
        .persistent(cache_statement(events.len()))
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
    let mut answers = Vec::with_capacity(events.len());
    for e in events {
        if inserted.contains(&e.id) {
            answers.push(Inserted::Accepted);
        } else {
            // A duplicate (rare): the id of the event already stored under its key.
            let event_id: String = sqlx::query_scalar(
                "SELECT id FROM events WHERE connection_id = $1 AND idempotency_key = $2",
            )
            .bind(&e.connection_id)
            .bind(&e.idempotency_key)
            .fetch_one(&mut *tx)
            .await?;
            answers.push(Inserted::Duplicate { event_id });
        }
    }
    // Their clients become due, once each: a dead one starts over, a
    // retrying one keeps its backoff.
    let mut seen = std::collections::HashSet::new();
    let urgent_clients: std::collections::HashSet<(&str, &str)> = events
        .iter()
        .filter(|e| e.urgent && inserted.contains(&e.id))
        .map(client_key)
        .collect();
    let urgent = |e: &NewEvent| -> bool { urgent_clients.contains(&client_key(e)) };
    let due: Vec<&NewEvent> = order
        .iter()
        .map(|&i| &events[i])
        .filter(|e| inserted.contains(&e.id) && seen.insert(client_key(e)))
        .collect();
    if !due.is_empty() {
        let mut qb = QueryBuilder::<Postgres>::new(
            "INSERT INTO clients AS c (connection_id, client_id, state, next_attempt_at, updated_at, urgent) ",
        );
        qb.push_values(due, |mut row, e| {
            row.push_bind(&e.connection_id)
                .push_bind(&e.client_id)
                .push_bind("pending")
                .push_bind(to_millis(e.received_at))
                .push_bind(to_millis(e.received_at))
                .push_bind(urgent(e));
        });
        qb.push(
            " ON CONFLICT (connection_id, client_id) DO UPDATE SET
               state = CASE WHEN c.state IN ('synced', 'dead') THEN 'pending' ELSE c.state END,
               attempts = CASE WHEN c.state = 'dead' THEN 0 ELSE c.attempts END,
               first_failure_at = CASE WHEN c.state = 'dead' THEN NULL ELSE c.first_failure_at END,
               next_attempt_at = CASE
                 WHEN c.state = 'retrying' AND c.next_attempt_at IS NOT NULL THEN c.next_attempt_at
                 ELSE LEAST(c.next_attempt_at, excluded.next_attempt_at)
               END,
               updated_at = excluded.updated_at,
               urgent = c.urgent OR excluded.urgent",
        );
        qb.build()
            .persistent(cache_statement(events.len()))
            .execute(&mut *tx)
            .await?;
    }
    Ok(answers)
}

/// Records a job's progress within `tx`.
async fn update_job_in(tx: &mut sqlx::PgConnection, p: &JobProgress) -> Result<(), StoreError> {
    let done = p.state != JobState::Receiving;
    sqlx::query(
        "UPDATE backfill_jobs SET state = $1, lines_read = $2, accepted = $8, rejected_count = $3,
            rejected = $4, updated_at = $5, finished_at = $6
         WHERE id = $7",
    )
    .bind(p.state.as_str())
    .bind(p.read as i64)
    .bind(p.rejected_count as i64)
    .bind(serde_json::to_string(&p.rejected).expect("rejections serialize"))
    .bind(to_millis(p.at))
    .bind(done.then(|| to_millis(p.at)))
    .bind(&p.job_id)
    .bind(p.accepted as i64)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
