//! Clients: claims and leases, the outcome of an attempt, listing and requeueing.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::dialect::{in_list, Dialect, IN_CHUNK};
use super::rows::{
    backlog_from_rows, claim_from_row, client_from_row, Cols, BACKLOG_CLIENTS, BACKLOG_EVENTS,
};
use super::{to_millis, Backlog, Claim, Store, StoreError};
use crate::domain::{ClientRecord, ClientState, ClientUpdate, NextAttempt, SyncError};

use crate::domain::{ClientId, ConnectionId};

impl Store {
    /// Leases up to `limit` due clients of enabled, unpaused connections to
    /// `owner` until `lease_until`. A leased client is not claimed again until
    /// its lease ends, so one write per client is in flight. Clients with a
    /// webhook pending come before those with only backfill rows; connections
    /// take turns (the first one asked is picked at random each time).
    ///
    /// Each step is one index range (connection, urgency, due time), so a
    /// disabled connection's million held clients, or a backfill's, cost
    /// nothing here.
    pub async fn claim_due(
        &self,
        now: DateTime<Utc>,
        owner: &str,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Claim>, StoreError> {
        self.claim_due_except(now, owner, lease_until, limit, &HashSet::new())
            .await
    }

    /// [`Store::claim_due`] leaving out the connections in `busy` (whose
    /// previous sync has not ended in this process).
    pub async fn claim_due_except(
        &self,
        now: DateTime<Utc>,
        owner: &str,
        lease_until: DateTime<Utc>,
        limit: u32,
        busy: &HashSet<ConnectionId>,
    ) -> Result<Vec<Claim>, StoreError> {
        self.make_clients_due().await?;
        let mut connections = self.claimable_connections(now).await?;
        connections.retain(|id| !busy.contains(id));
        if !connections.is_empty() {
            let start = rand::random::<usize>() % connections.len();
            connections.rotate_left(start);
        }
        let mut claims = Vec::new();
        for urgent in [true, false] {
            for id in &connections {
                let room = limit.saturating_sub(claims.len() as u32);
                if room == 0 {
                    return Ok(claims);
                }
                claims.extend(
                    self.claim_due_in(id, urgent, now, owner, lease_until, room)
                        .await?,
                );
            }
        }
        Ok(claims)
    }

    /// [`Store::claim_due`] within one connection and urgency, oldest due first.
    pub async fn claim_due_in(
        &self,
        connection_id: &ConnectionId,
        urgent: bool,
        now: DateTime<Utc>,
        owner: &str,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Claim>, StoreError> {
        let rows = sqlx::query(self.dialect.claim_due_sql())
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

    /// Ends every lease (a single-process store after a restart).
    pub async fn release_all_leases(&self) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE clients SET lease_owner = NULL, lease_until = NULL WHERE lease_owner IS NOT NULL",
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Ends the leases `owner` holds (a worker that stopped mid-write).
    pub async fn release_leases_of(&self, owner: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE clients SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1",
        )
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    pub async fn client(
        &self,
        connection_id: &ConnectionId,
        client_id: &ClientId,
    ) -> Result<Option<ClientRecord>, StoreError> {
        self.make_clients_due().await?;
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

    /// Records an attempt's outcome, marks events done and ends the lease, in one
    /// transaction. False (and nothing written) if `owner` no longer holds the lease.
    pub async fn finish_client(
        &self,
        claim: &Claim,
        owner: &str,
        update: &ClientUpdate,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let items = [(claim.clone(), update.clone())];
        Ok(self.finish_clients(&items, owner, now).await?[0])
    }

    /// [`Store::finish_client`] for many clients in one transaction; one
    /// answer each. If the database refuses the data of the batch (a value it
    /// cannot hold), each client is recorded alone, so one row cannot hold
    /// back the rest: a client whose own outcome is refused answers false
    /// (its lease ends on its own and it is written again).
    pub async fn finish_clients(
        &self,
        items: &[(Claim, ClientUpdate)],
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<bool>, StoreError> {
        match self.finish_together(items, owner, now).await {
            Err(StoreError::Rejected(why)) if items.len() > 1 => {
                tracing::warn!(clients = items.len(), error = %why, "a batch's outcomes were refused; recording them one by one");
                let mut answers = Vec::with_capacity(items.len());
                for item in items {
                    answers.push(
                        match self.finish_together(std::slice::from_ref(item), owner, now).await {
                            Ok(a) => a[0],
                            Err(StoreError::Rejected(why)) => {
                                tracing::warn!(client_id = %item.0.client_id, error = %why, "a client's outcome was refused by the database");
                                false
                            }
                            Err(e) => return Err(e),
                        },
                    );
                }
                Ok(answers)
            }
            other => other,
        }
    }

    async fn finish_together(
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
                lease_until = NULL,
                create_sent_at = CASE WHEN $12 THEN create_sent_at ELSE NULL END
             WHERE connection_id = $13 AND client_id = $14 AND lease_owner = $15",
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
            .bind(u.create_unconfirmed)
            .bind(&claim.connection_id)
            .bind(&claim.client_id)
            .bind(owner)
            .execute(&mut *tx)
            .await?;
            if updated.rows_affected() == 0 {
                // Another worker holds the lease now: its answer stays false.
                continue;
            }
            for seqs in u.processed.chunks(IN_CHUNK) {
                let sql = self.dialect.positional(format!(
                    "UPDATE events SET processed_at = $1
                     WHERE connection_id = $2 AND client_id = $3 AND processed_at IS NULL
                       AND seq IN {}",
                    in_list(4, seqs.len())
                ));
                let mut q = sqlx::query(&sql)
                    .bind(now)
                    .bind(&claim.connection_id)
                    .bind(&claim.client_id);
                for seq in seqs {
                    q = q.bind(*seq);
                }
                q.execute(&mut *tx).await?;
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

    /// Ends the lease without counting an attempt; the client stays due.
    pub async fn release_client(
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

    /// Clients of a connection by client id after `after`, in the given states (all if empty).
    pub async fn list_clients(
        &self,
        connection_id: &ConnectionId,
        states: &[ClientState],
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ClientRecord>, StoreError> {
        self.make_clients_due().await?;
        let sql = list_sql(self.dialect, states);
        let mut q = sqlx::query(&sql)
            .bind(connection_id)
            .bind(after.unwrap_or(""))
            .bind(limit as i64);
        for st in states {
            q = q.bind(st.as_str());
        }
        q.fetch_all(&self.pool)
            .await?
            .iter()
            .map(client_from_row)
            .collect()
    }

    /// Makes a client due now with a fresh attempt count; false if unknown.
    pub async fn requeue_client(
        &self,
        connection_id: &ConnectionId,
        client_id: &ClientId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.make_clients_due().await?;
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

    /// Requeues every dead client of a connection; returns how many.
    pub async fn requeue_dead(
        &self,
        connection_id: &ConnectionId,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.make_clients_due().await?;
        let done = sqlx::query(&format!(
            "{REQUEUE} WHERE connection_id = $2 AND state = 'dead' AND {BY_STATE}"
        ))
        .bind(to_millis(now))
        .bind(connection_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Marks that a create of these clients' Leads is about to be sent (the
    /// first time is kept), so a crash or a lost answer is known afterwards.
    pub async fn mark_creates_sent(
        &self,
        connection_id: &ConnectionId,
        client_ids: &[ClientId],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        for chunk in client_ids.chunks(IN_CHUNK) {
            let sql = self.dialect.positional(format!(
                "UPDATE clients SET create_sent_at = COALESCE(create_sent_at, $1)
                 WHERE connection_id = $2 AND lead_id IS NULL AND client_id IN {}",
                in_list(3, chunk.len())
            ));
            let mut q = sqlx::query(&sql).bind(to_millis(at)).bind(connection_id);
            for id in chunk {
                q = q.bind(id);
            }
            q.execute(&self.pool).await?;
        }
        Ok(())
    }

    /// The client of a connection that holds Lead `lead_id`, if any. Not
    /// indexed: asked only when a create's answer was lost.
    pub async fn lead_holder(
        &self,
        connection_id: &ConnectionId,
        lead_id: &str,
    ) -> Result<Option<ClientId>, StoreError> {
        sqlx::query(
            "SELECT client_id FROM clients WHERE connection_id = $1 AND lead_id = $2 LIMIT 1",
        )
        .bind(connection_id)
        .bind(lead_id)
        .fetch_optional(&self.pool)
        .await?
        .map(|row| row.text("client_id").map(ClientId::from_stored))
        .transpose()
    }

    /// The records of these clients of a connection (unknown ones are left out).
    pub async fn clients_by_id(
        &self,
        connection_id: &ConnectionId,
        client_ids: &[ClientId],
    ) -> Result<Vec<ClientRecord>, StoreError> {
        let mut out = Vec::with_capacity(client_ids.len());
        for chunk in client_ids.chunks(IN_CHUNK) {
            let sql = self.dialect.positional(format!(
                "{CLIENT_SELECT} WHERE c.connection_id = $1 AND c.client_id IN {}",
                in_list(2, chunk.len())
            ));
            let mut q = sqlx::query(&sql).bind(connection_id);
            for id in chunk {
                q = q.bind(id);
            }
            for row in q.fetch_all(&self.pool).await? {
                out.push(client_from_row(&row)?);
            }
        }
        Ok(out)
    }

    /// Clients per connection and state, and events not yet done (for metrics).
    pub async fn backlog(&self) -> Result<Vec<Backlog>, StoreError> {
        self.make_clients_due().await?;
        let connections = sqlx::query(BACKLOG_EVENTS).fetch_all(&self.pool).await?;
        let clients = sqlx::query(BACKLOG_CLIENTS).fetch_all(&self.pool).await?;
        backlog_from_rows(&connections, &clients)
    }
}

/// The condition of the `clients_by_state` index (pending clients, the state
/// ingest stores new ones in, are left out of it). SQLite uses a partial
/// index only for a query that repeats its condition, so queries by another
/// state add it.
const BY_STATE: &str = "state <> 'pending'";

/// [`Store::list_clients`]' query: $1 connection, $2 after, $3 limit, then the states.
fn list_sql(dialect: Dialect, states: &[ClientState]) -> String {
    let id = dialect.bytewise("c.client_id");
    let state_filter = if states.is_empty() {
        String::new()
    } else if states.contains(&ClientState::Pending) {
        format!(" AND c.state IN {}", in_list(4, states.len()))
    } else {
        format!(
            " AND c.state IN {} AND c.{BY_STATE}",
            in_list(4, states.len())
        )
    };
    format!(
        "{CLIENT_SELECT} WHERE c.connection_id = $1 AND {id} > $2{state_filter}
         ORDER BY {id} LIMIT $3"
    )
}

/// A client row with the count of its events not yet done.
const CLIENT_SELECT: &str = "SELECT c.*, (SELECT COUNT(*) FROM events e
    WHERE e.connection_id = c.connection_id AND e.client_id = c.client_id
      AND e.processed_at IS NULL) AS pending_events FROM clients c";

/// Makes clients due at `$1` with a fresh attempt count (a converted one stays converted).
const REQUEUE: &str = "UPDATE clients SET
    state = CASE WHEN state = 'converted' THEN state ELSE 'pending' END,
    attempts = 0, first_failure_at = NULL, next_attempt_at = $1, updated_at = $1";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::rows::BACKLOG_EVENTS;
    use sqlx::Row;

    /// What SQLite's planner makes of `sql`, one line per step.
    async fn plan(store: &Store, sql: &str) -> String {
        let rows = sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
            .fetch_all(&store.pool)
            .await
            .unwrap();
        rows.iter()
            .map(|r| r.get::<String, _>("detail"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[tokio::test]
    async fn sqlite_reads_each_query_by_the_index_left_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("plan.db").display());
        let store = Store::open(&url).await.unwrap();
        let uses = |plan: &str, index: &str| {
            assert!(plan.contains(&format!("USING INDEX {index}")), "{plan}");
        };
        let dead = list_sql(Dialect::Sqlite, &[ClientState::Dead]);
        uses(&plan(&store, &dead).await, "clients_by_state");
        let held = list_sql(
            Dialect::Sqlite,
            &[ClientState::Pending, ClientState::Retrying],
        );
        uses(&plan(&store, &held).await, "sqlite_autoindex_clients_1");
        let requeue =
            format!("{REQUEUE} WHERE connection_id = $2 AND state = 'dead' AND {BY_STATE}");
        uses(&plan(&store, &requeue).await, "clients_by_state");
        uses(&plan(&store, BACKLOG_EVENTS).await, "events_by_client");
    }
}
