//! The loop: claim due clients, hand each connection's to a write, record
//! the outcomes; between rounds, prune done events.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::pace::Wake;
use tracing::Instrument;

use super::outcome::{self, Attempt};
use super::plan::{self, Job};
use super::{SyncSettings, PRUNE_PASS};
use crate::clock::Clock;
use crate::crypto::MasterKey;
use crate::domain::{ApiUsage, ClientRecord, ClientUpdate, Connection, ConnectionId, SyncError};
use crate::salesforce::errors::codes;
use crate::salesforce::{Credentials, Failure, Salesforce, MAX_BATCH};
use crate::store::{Claim, Store, StoreError};

/// Writes due clients to Salesforce.
pub struct Worker {
    pub(super) store: Arc<Store>,
    pub(super) salesforce: Arc<Salesforce>,
    pub(super) master_key: Arc<MasterKey>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) settings: SyncSettings,
    owner: String,
    wake: Arc<Wake>,
}

impl Worker {
    pub fn new(
        store: Arc<Store>,
        salesforce: Arc<Salesforce>,
        master_key: Arc<MasterKey>,
        clock: Arc<dyn Clock>,
        settings: SyncSettings,
        wake: Arc<Wake>,
    ) -> Self {
        Self {
            store,
            salesforce,
            master_key,
            clock,
            settings,
            owner: format!("worker-{}", uuid::Uuid::new_v4()),
            wake,
        }
    }

    /// The name its leases carry.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Claims the clients due now and writes each, waiting for every
    /// connection's writes; returns how many were claimed. (Tests drive the
    /// worker with this; [`Worker::run`] does not wait for slow connections.)
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let by_connection = self.claim(&HashSet::new()).await?;
        let n = by_connection.values().map(Vec::len).sum();
        futures_util::future::join_all(
            by_connection
                .into_iter()
                .map(|(id, claims)| self.sync_connection(id, claims)),
        )
        .await;
        Ok(n)
    }

    /// Claims the clients due now of every connection but `busy`'s, by connection.
    async fn claim(
        &self,
        busy: &HashSet<ConnectionId>,
    ) -> Result<BTreeMap<ConnectionId, Vec<Claim>>, StoreError> {
        let now = self.clock.now();
        let lease_until = now + self.settings.lease;
        let claims = self
            .store
            .claim_due_except(now, &self.owner, lease_until, self.settings.batch, busy)
            .await?;
        let mut by_connection: BTreeMap<ConnectionId, Vec<Claim>> = BTreeMap::new();
        for claim in claims {
            by_connection
                .entry(claim.connection_id.clone())
                .or_default()
                .push(claim);
        }
        Ok(by_connection)
    }

    /// One round of [`Worker::run`]: claims the clients due of connections
    /// whose previous sync has ended, and starts each connection's sync as a
    /// task of its own, so a slow org holds back no other. Returns how many
    /// were claimed.
    async fn start_round(
        self: &Arc<Self>,
        running: &mut JoinSet<ConnectionId>,
        busy: &mut HashSet<ConnectionId>,
    ) -> Result<usize, StoreError> {
        let by_connection = self.claim(busy).await?;
        let n = by_connection.values().map(Vec::len).sum();
        for (id, claims) in by_connection {
            busy.insert(id.clone());
            let this = self.clone();
            running.spawn(async move {
                this.sync_connection(id.clone(), claims).await;
                id
            });
        }
        Ok(n)
    }

    /// Deletes every event done longer ago than the retention period; returns how many.
    pub async fn prune(&self) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let (n, more) = self.prune_pass().await?;
            total += n;
            if !more {
                return Ok(total);
            }
        }
    }

    /// Deletes up to [`PRUNE_PASS`] batches of events past their retention;
    /// returns how many and whether more remain. Short pauses between
    /// batches leave the database to webhooks' commits.
    async fn prune_pass(&self) -> Result<(u64, bool), StoreError> {
        const BATCH: u32 = 5_000;
        let before = self.clock.now() - self.settings.event_retention;
        let mut total = 0;
        let mut more = true;
        for _ in 0..PRUNE_PASS {
            let n = self.store.prune_events(before, BATCH).await?;
            total += n;
            if n < u64::from(BATCH) {
                more = false;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if total > 0 {
            crate::metrics::events_pruned(total);
            tracing::info!(
                pruned = total,
                more,
                "done events past their retention deleted"
            );
        }
        Ok((total, more))
    }

    /// Runs rounds until `stop` turns true. When idle it sleeps until woken or
    /// `poll` passes; once woken it lingers briefly so a burst fills a batch.
    /// After a round that did not fill its batch, the next waits as
    /// [`Pace`](super::pace::Pace) says.
    /// Every `prune_every` it deletes done events past their retention.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        tracing::info!(owner = %self.owner, "sync worker started");
        let mut next_prune = tokio::time::Instant::now();
        // Each connection's sync in flight, as a task; dropped (aborted)
        // with this future if the shutdown deadline passes.
        let mut running: JoinSet<ConnectionId> = JoinSet::new();
        let mut busy: HashSet<ConnectionId> = HashSet::new();
        while !*stop.borrow() {
            while let Some(done) = running.try_join_next() {
                if let Ok(id) = done {
                    busy.remove(&id);
                }
            }
            if tokio::time::Instant::now() >= next_prune {
                // A large backlog of old events goes a pass a minute, between rounds.
                let again = match self.prune_pass().await {
                    Ok((_, true)) => Duration::from_secs(60),
                    Ok((_, false)) => self.settings.prune_every,
                    Err(e) => {
                        tracing::warn!(error = %e, "pruning done events failed; tried again later");
                        self.settings.prune_every
                    }
                };
                next_prune = tokio::time::Instant::now() + again;
            }
            let started = tokio::time::Instant::now();
            self.wake.take();
            let claimed = match self.start_round(&mut running, &mut busy).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "sync round failed; the store is unavailable");
                    0
                }
            };
            if claimed == 0 {
                tokio::select! {
                    _ = self.wake.notified() => {
                        tokio::time::sleep(self.settings.linger).await;
                    }
                    _ = tokio::time::sleep(self.settings.poll) => {}
                    // A connection's sync ended: its clients may be due again.
                    Some(done) = running.join_next(), if !running.is_empty() => {
                        if let Ok(id) = done {
                            busy.remove(&id);
                        }
                    }
                    _ = stop.changed() => {}
                }
                continue;
            }
            // Under a stream, wait for a call's worth of events (or the pace).
            let batch = self.settings.batch as usize;
            while let Some(wait) =
                self.settings
                    .pace
                    .wait(claimed, batch, started.elapsed(), self.wake.count())
            {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => break,
                }
            }
        }
        // The writes in flight finish and are recorded (the caller bounds
        // this by the shutdown deadline).
        while running.join_next().await.is_some() {}
        tracing::info!("sync worker stopped");
    }

    /// Syncs one connection's claimed clients: several at once go out as
    /// sObject Collections calls, a lone one as a single-record call.
    async fn sync_connection(&self, connection_id: ConnectionId, claims: Vec<Claim>) {
        let span = tracing::info_span!("sync", %connection_id);
        let result = async {
            let Some(conn) = self.store.connection_by_id(&connection_id).await? else {
                return Ok(());
            };
            let jobs = plan::prepare(&self.store, &conn, claims).await?;
            let upserts = conn.external_id_field.is_some();
            let budget = self.settings.quota_budget_percent;
            // A reading older than the pause no longer counts: the next write refreshes it.
            let now = self.clock.now();
            let over_budget = conn.api_usage.is_some_and(|u| {
                u.at_least(budget)
                    && (now - u.at).to_std().unwrap_or_default() < self.settings.daily_limit_pause
            });
            let mut outcomes = Vec::with_capacity(jobs.len());
            let mut to_write = Vec::new();
            for job in jobs {
                if over_budget && !job.urgent {
                    outcomes.push((job, Attempt::Deferred));
                    continue;
                }
                match job.settled(upserts) {
                    Some(attempt) => outcomes.push((job, attempt)),
                    None => to_write.push(job),
                }
            }
            // A create whose answer may have been lost is looked up before it
            // is sent again, one client at a time, each recorded before the
            // next, so two clients never take the same Lead.
            let (lost, to_write): (Vec<Job>, Vec<Job>) = to_write
                .into_iter()
                .partition(|j| plan::create_may_be_lost(&j.client, upserts));
            for job in lost {
                let attempt = self.write_bounded(&conn, &job, None).await;
                self.conclude(&conn, vec![(job, attempt)]).await?;
            }
            if to_write.len() > 1 {
                outcomes.extend(self.write_batched(&conn, to_write).await);
            } else {
                for job in to_write {
                    let attempt = self.write_bounded(&conn, &job, None).await;
                    outcomes.push((job, attempt));
                }
            }
            self.conclude(&conn, outcomes).await?;
            self.record_usage(&conn).await
        };
        if let Err(e) = result.instrument(span).await {
            // Leases end on their own; the clients are picked up again then.
            tracing::warn!(%connection_id, error = %e, "sync not recorded; the clients stay due");
        }
    }

    /// Records attempts: the daily limit pauses the connection and leaves its
    /// clients due; every other outcome is written, 200 clients a transaction.
    async fn conclude(
        &self,
        conn: &Connection,
        outcomes: Vec<(Job, Attempt)>,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut finished = Vec::with_capacity(outcomes.len());
        let mut paused = false;
        for (job, attempt) in outcomes {
            if let Attempt::Failed(Failure::DailyLimit { message }) = &attempt {
                if !paused {
                    let until = now + self.settings.daily_limit_pause;
                    tracing::warn!(connection = %conn.name, %until, error_code = codes::REQUEST_LIMIT_EXCEEDED, "Salesforce's daily API limit is spent; connection paused");
                    self.store
                        .pause_connection(&conn.id, until, message)
                        .await?;
                    paused = true;
                }
                let err = SyncError {
                    code: codes::REQUEST_LIMIT_EXCEEDED.into(),
                    message: message.clone(),
                };
                self.store
                    .release_client(&job.claim, &self.owner, Some(&err))
                    .await?;
                continue;
            }
            if matches!(attempt, Attempt::Written { .. }) {
                for (at, webhook) in &job.received {
                    let waited = (now - *at).to_std().unwrap_or_default().as_secs_f64();
                    let source = if *webhook { "webhook" } else { "backfill" };
                    crate::metrics::sync_latency(source, waited);
                }
            }
            let update = outcome::outcome(
                &job.client,
                attempt.clone(),
                &job.merge.merged,
                &job.read,
                self.settings.outcome_rules(),
                now,
                self.clock.jitter(),
            );
            log_attempt(conn, &job.client, &attempt, &update);
            finished.push((job.claim, update));
        }
        for chunk in finished.chunks(MAX_BATCH) {
            let recorded = self.store.finish_clients(chunk, &self.owner, now).await?;
            for ((claim, _), ok) in chunk.iter().zip(recorded) {
                if !ok {
                    tracing::warn!(connection = %conn.name, client_id = %claim.client_id, "lease lost before the outcome was recorded");
                }
            }
        }
        Ok(())
    }

    /// Stores the API usage Salesforce last reported for this connection, for
    /// every replica's budget check and the connection's view.
    async fn record_usage(&self, conn: &Connection) -> Result<(), StoreError> {
        let Ok(creds) = Credentials::of(conn, &self.master_key) else {
            return Ok(());
        };
        let Some((used, max)) = self.salesforce.usage(&creds).await else {
            return Ok(());
        };
        crate::metrics::api_usage(&conn.name, used, max);
        let usage = ApiUsage {
            used,
            max,
            at: self.clock.now(),
        };
        self.store.record_api_usage(&conn.id, usage).await
    }
}

/// One log line per attempt, with Salesforce's code when it failed.
fn log_attempt(conn: &Connection, client: &ClientRecord, attempt: &Attempt, u: &ClientUpdate) {
    let (connection, client_id) = (&conn.name, &client.client_id);
    match attempt {
        Attempt::Deferred => {
            tracing::info!(%connection, %client_id, "non-urgent sync deferred: the API budget is spent")
        }
        Attempt::Written { lead_id, .. } => {
            tracing::info!(%connection, %client_id, %lead_id, "lead written")
        }
        Attempt::Converted { .. } => {
            tracing::info!(%connection, %client_id, "lead converted; updates stopped")
        }
        Attempt::Failed(f) => tracing::warn!(
            %connection, %client_id, error_code = %f.code(), attempts = u.attempts,
            state = u.state.as_str(), "sync failed"
        ),
        Attempt::NothingToSend => {}
    }
}
