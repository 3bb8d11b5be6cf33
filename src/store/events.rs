//! Events: stored with their client made due (on SQLite, in bulk after the
//! commit), read while pending, pruned once done.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::AnyConnection;

use super::dialect::{in_list, values, Dialect, IN_CHUNK};
use super::rows::{cache_statement, client_key, event_from_row};
use super::{to_millis, Inserted, NewEvent, Store, StoreError, StoredEvent};

use crate::domain::{ClientId, ConnectionId};

impl Store {
    /// Stores an event durably (committed when this returns), or reports a duplicate.
    pub async fn insert_event(&self, event: &NewEvent) -> Result<Inserted, StoreError> {
        Ok(self
            .insert_events(std::slice::from_ref(event))
            .await?
            .pop()
            .expect("one answer per event"))
    }

    /// Stores events in one transaction (one durable commit), answering each in order.
    pub async fn insert_events(&self, events: &[NewEvent]) -> Result<Vec<Inserted>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        if self.dialect == Dialect::Postgres {
            // One statement is its own transaction: the events and their
            // clients in one round trip, committed when it answers; a
            // duplicate's original, committed by then, is looked up after.
            let mut conn = self.pool.acquire().await?;
            let order = write_order(events);
            let inserted = insert_rows(&mut conn, self.dialect, &order).await?;
            return answers(&mut conn, events, &inserted).await;
        }
        let mut tx = self.pool.begin().await?;
        let answers = insert_events_in(&mut tx, self.dialect, events).await?;
        tx.commit().await?;
        Ok(answers)
    }

    /// Events of a connection not yet synced, in arrival order.
    pub async fn pending_events(
        &self,
        connection_id: &ConnectionId,
    ) -> Result<Vec<StoredEvent>, StoreError> {
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

    /// The client's events not yet done, in arrival order.
    pub async fn client_events(
        &self,
        connection_id: &ConnectionId,
        client_id: &ClientId,
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

    /// The pending events of these clients, by client then arrival.
    pub async fn events_of_clients(
        &self,
        connection_id: &ConnectionId,
        client_ids: &[ClientId],
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut out = Vec::new();
        for chunk in client_ids.chunks(IN_CHUNK) {
            let sql = self.dialect.positional(format!(
                "SELECT * FROM events WHERE connection_id = $1 AND processed_at IS NULL
                   AND client_id IN {} ORDER BY client_id, seq",
                in_list(2, chunk.len())
            ));
            let mut q = sqlx::query(&sql).bind(connection_id);
            for id in chunk {
                q = q.bind(id);
            }
            for row in q.fetch_all(&self.pool).await? {
                out.push(event_from_row(&row)?);
            }
        }
        Ok(out)
    }

    /// Deletes up to `limit` events that were done before `before`, oldest
    /// first; returns how many. Events not done are never deleted.
    pub async fn prune_events(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
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
}

/// The columns an event is stored with, in the order they are bound.
pub(super) const INSERT_EVENT: &str = "INSERT INTO events (id, connection_id, idempotency_key,
    client_id, event_type, occurred_at, received_at, payload, urgent, job_id, signed_digest)
    VALUES";
pub(super) const EVENT_PARAMS: usize = 11;

/// The id of the event already stored under a duplicate's key or signed
/// digest (or earlier in the same batch): $1 connection, $2 key, $3 digest.
pub(super) const DUPLICATE_OF: &str = "SELECT id FROM events WHERE connection_id = $1
    AND (idempotency_key = $2 OR signed_digest = $3) ORDER BY seq LIMIT 1";

/// On PostgreSQL, makes due the clients of the events a batch stored (the
/// `stored` rows of [`insert_rows`]'s statement), each once, in one order
/// (by client, byte by byte) so that concurrent batches wait for each other
/// instead of deadlocking.
const MAKE_STORED_DUE: &str = "INSERT INTO clients AS c (connection_id, client_id, state,
       next_attempt_at, updated_at, urgent)
     SELECT connection_id, client_id, 'pending', MIN(received_at), MAX(received_at), BOOL_OR(urgent)
     FROM stored GROUP BY connection_id, client_id
     ORDER BY connection_id COLLATE \"C\", client_id COLLATE \"C\"";

/// Makes a client due for a new event: a dead one starts over, a retrying
/// one keeps its backoff.
pub(super) const DUE_CLIENT_CONFLICT: &str = "ON CONFLICT (connection_id, client_id) DO UPDATE SET
       state = CASE WHEN c.state IN ('synced', 'dead') THEN 'pending' ELSE c.state END,
       attempts = CASE WHEN c.state = 'dead' THEN 0 ELSE c.attempts END,
       first_failure_at = CASE WHEN c.state = 'dead' THEN NULL ELSE c.first_failure_at END,
       next_attempt_at = CASE
         WHEN c.state = 'retrying' AND c.next_attempt_at IS NOT NULL THEN c.next_attempt_at
         WHEN c.next_attempt_at IS NOT NULL AND c.next_attempt_at < excluded.next_attempt_at
           THEN c.next_attempt_at
         ELSE excluded.next_attempt_at
       END,
       updated_at = excluded.updated_at,
       urgent = (c.urgent OR excluded.urgent)";

/// Events made due at most per transaction, so that a backlog (a disabled
/// connection's, a backfill's) never holds the write lock for long.
pub(super) const DUE_CHUNK: i64 = 512;

/// The last event's seq (0 when there is none) and the mark: the last event
/// seq whose client has been made due (NULL if it is missing).
pub(super) const DUE_BEHIND: &str = "SELECT COALESCE((SELECT MAX(seq) FROM events), 0),
    CAST((SELECT value FROM meta WHERE key = 'clients_due_through') AS INTEGER)";

/// The mark, read as the transaction's first statement, a write: the write
/// lock is taken before it is read, so two connections never make the same
/// events due.
pub(super) const DUE_MARK: &str = "UPDATE meta SET value = value
    WHERE key = 'clients_due_through' RETURNING CAST(value AS INTEGER)";

/// The seq of the last event of the next chunk after `$1` (NULL if none):
/// at most `$2` events.
pub(super) const DUE_CHUNK_END: &str =
    "SELECT MAX(seq) FROM (SELECT seq FROM events WHERE seq > $1 ORDER BY seq LIMIT $2)";

/// Makes due the clients of the events with seq in (`$1`, `$2`] that are not
/// yet done, once each, as [`DUE_CLIENT_CONFLICT`] does for a batch.
pub(super) const MAKE_DUE: &str = "INSERT INTO clients AS c (connection_id, client_id, state,
       next_attempt_at, updated_at, urgent)
     SELECT connection_id, client_id, 'pending', MIN(received_at), MAX(received_at), MAX(urgent)
     FROM events WHERE seq > $1 AND seq <= $2 AND processed_at IS NULL
     GROUP BY connection_id, client_id";

/// Moves the mark to `$1`.
pub(super) const DUE_MARK_SET: &str =
    "UPDATE meta SET value = CAST($1 AS TEXT) WHERE key = 'clients_due_through'";

impl Store {
    /// On SQLite, makes due the clients of every event stored since this last
    /// ran (on PostgreSQL each batch does it as it is stored). Whatever reads
    /// or claims clients calls this first, so a client is never missing once
    /// its webhook was answered; the committer also does it in its own
    /// transactions, a chunk at a time, so that little is left for them.
    ///
    /// The events' commits, not this, are what makes them durable: after a
    /// crash it starts again from the mark, which moves in the same
    /// transaction as the clients it made due.
    pub async fn make_clients_due(&self) -> Result<(), StoreError> {
        if self.dialect != Dialect::Sqlite {
            return Ok(());
        }
        let (last, mark): (i64, Option<i64>) =
            sqlx::query_as(DUE_BEHIND).fetch_one(&self.pool).await?;
        let mut mark = mark.ok_or_else(missing_due_mark)?;
        // Up to the events stored before this began: a steady stream never
        // keeps it going.
        while mark < last {
            let mut tx = self.pool.begin().await?;
            mark = sqlx::query_scalar(DUE_MARK)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(missing_due_mark)?;
            let end: Option<i64> = sqlx::query_scalar(DUE_CHUNK_END)
                .bind(mark)
                .bind(DUE_CHUNK)
                .fetch_one(&mut *tx)
                .await?;
            if let Some(end) = end {
                sqlx::query(&format!("{MAKE_DUE} {DUE_CLIENT_CONFLICT}"))
                    .bind(mark)
                    .bind(end)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(DUE_MARK_SET)
                    .bind(end)
                    .execute(&mut *tx)
                    .await?;
                mark = end;
            } else {
                mark = last;
            }
            tx.commit().await?;
        }
        Ok(())
    }
}

pub(super) fn missing_due_mark() -> StoreError {
    StoreError::Corrupt("meta has no clients_due_through".into())
}

/// The order a batch is written in. Rows are locked in one order everywhere
/// (by client; stable, so a client's events keep their arrival order), so
/// concurrent batches wait for each other instead of deadlocking.
pub(super) fn write_order(events: &[NewEvent]) -> Vec<&NewEvent> {
    let mut order: Vec<&NewEvent> = events.iter().collect();
    order.sort_by(|a, b| client_key(a).cmp(&client_key(b)));
    order
}

/// Stores events within `tx`; see [`Store::insert_events`]. One statement
/// per batch (and one per duplicate), not two per event: each is a round trip.
pub(super) async fn insert_events_in(
    tx: &mut AnyConnection,
    dialect: Dialect,
    events: &[NewEvent],
) -> Result<Vec<Inserted>, StoreError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let order = write_order(events);
    let inserted = insert_rows(tx, dialect, &order).await?;
    answers(tx, events, &inserted).await
}

/// Inserts the events in `order`, returning the ids of those stored (not
/// duplicates). On PostgreSQL the same statement makes their clients due,
/// locked in the same order (by client, byte by byte); on SQLite that is
/// done after the commit, in bulk ([`Store::make_clients_due`]).
async fn insert_rows(
    conn: &mut AnyConnection,
    dialect: Dialect,
    order: &[&NewEvent],
) -> Result<HashSet<String>, StoreError> {
    let rows = values(order.len(), EVENT_PARAMS);
    let sql = match dialect {
        Dialect::Sqlite => dialect.positional(format!(
            "{INSERT_EVENT} {rows} ON CONFLICT DO NOTHING RETURNING id"
        )),
        Dialect::Postgres => format!(
            "WITH stored AS ({INSERT_EVENT} {rows} ON CONFLICT DO NOTHING
               RETURNING id, connection_id, client_id, received_at, urgent),
             due AS ({MAKE_STORED_DUE} {DUE_CLIENT_CONFLICT})
             SELECT id FROM stored"
        ),
    };
    let mut q = sqlx::query_scalar(&sql);
    for e in order {
        q = q
            .bind(&e.id)
            .bind(&e.connection_id)
            .bind(&e.idempotency_key)
            .bind(&e.client_id)
            .bind(&e.event_type)
            .bind(to_millis(e.occurred_at))
            .bind(to_millis(e.received_at))
            .bind(&e.payload)
            .bind(e.urgent)
            .bind(&e.job_id)
            .bind(&e.signed_digest);
    }
    Ok(q.persistent(cache_statement(order.len()))
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .collect())
}

/// Each event's answer: stored, or the id of the event stored under its key
/// or signed digest.
async fn answers(
    conn: &mut AnyConnection,
    events: &[NewEvent],
    inserted: &HashSet<String>,
) -> Result<Vec<Inserted>, StoreError> {
    let mut answers = Vec::with_capacity(events.len());
    for e in events {
        if inserted.contains(&e.id) {
            answers.push(Inserted::Accepted);
        } else {
            let event_id: String = sqlx::query_scalar(DUPLICATE_OF)
                .bind(&e.connection_id)
                .bind(&e.idempotency_key)
                .bind(&e.signed_digest)
                .fetch_one(&mut *conn)
                .await?;
            answers.push(Inserted::Duplicate { event_id });
        }
    }
    Ok(answers)
}
